//! `query.promql` (an instant PromQL query, answered as the Prometheus API's `data` object) and
//! `wait.until` (polls a PromQL condition until it holds or a timeout passes). Both only read, through
//! the same engine and limits as the query API.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vigil_query::eval::{self, EvalOptions};
use vigil_storage::MetricsReader;

use super::{Capability, Effect, Target, arg_str};
use crate::manifest::parse_duration;
use crate::sandbox::CallError;

/// Longest `wait.until` may wait, whatever its arguments say.
pub const MAX_WAIT: Duration = Duration::from_secs(600);

/// The query capabilities over a reader.
pub struct QueryCapabilities<R: MetricsReader> {
    reader: Arc<R>,
    opts: EvalOptions,
}

impl<R: MetricsReader> QueryCapabilities<R> {
    pub fn new(reader: Arc<R>, opts: EvalOptions) -> Self {
        QueryCapabilities { reader, opts }
    }

    /// Evaluates `query` now; answers the API's `data` object.
    async fn instant(&self, query: &str) -> Result<Value, CallError> {
        let expr = eval::parse(query)
            .map_err(|e| CallError::BadRequest(format!("query {query:?}: {e}")))?;
        let (v, _) = eval::instant(&*self.reader, expr, vigil_model::now_ms(), &self.opts)
            .await
            .map_err(|e| CallError::Failed(format!("query {query:?}: {e}")))?;
        serde_json::from_str(&vigil_query::api::value_json(&v))
            .map_err(|e| CallError::Failed(format!("query {query:?}: {e}")))
    }
}

fn duration_arg(args: &Value, name: &str, default: Duration) -> Result<Duration, CallError> {
    match args.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::String(s)) => parse_duration(s).ok_or_else(|| {
            CallError::BadRequest(format!(
                "argument {name} {s:?} is not a duration (like 30s)"
            ))
        }),
        Some(_) => Err(CallError::BadRequest(format!(
            "argument {name} must be a duration string"
        ))),
    }
}

/// A condition holds when the query answers a non-empty vector, or a scalar other than 0 (as an
/// alerting rule's expression fires on any result).
fn holds(data: &Value) -> bool {
    match data["resultType"].as_str() {
        Some("vector") | Some("matrix") => data["result"].as_array().is_some_and(|r| !r.is_empty()),
        Some("scalar") => data["result"][1].as_str().is_some_and(|v| v != "0"),
        _ => false,
    }
}

#[async_trait::async_trait]
impl<R: MetricsReader> Capability for QueryCapabilities<R> {
    fn names(&self) -> &'static [(&'static str, Effect)] {
        &[
            ("query.promql", Effect::Reads),
            ("wait.until", Effect::Reads),
        ]
    }

    async fn target(&self, _name: &str, _args: &Value) -> Result<Option<Target>, CallError> {
        Ok(None)
    }

    fn timeout(&self, name: &str, args: &Value) -> Option<Duration> {
        // wait.until runs as long as it is told to, within the run's deadline.
        (name == "wait.until").then(|| {
            duration_arg(args, "timeout", Duration::from_secs(30))
                .unwrap_or_default()
                .min(MAX_WAIT)
                + Duration::from_secs(5)
        })
    }

    async fn call(
        &self,
        name: &str,
        args: &Value,
        _target: Option<&Target>,
    ) -> Result<Value, CallError> {
        let query = arg_str(args, "query")?;
        match name {
            "query.promql" => self.instant(query).await,
            "wait.until" => {
                let timeout = duration_arg(args, "timeout", Duration::from_secs(30))?.min(MAX_WAIT);
                let interval = duration_arg(args, "interval", Duration::from_secs(1))?
                    .max(Duration::from_millis(100));
                let t0 = Instant::now();
                let mut checks = 0u32;
                loop {
                    checks += 1;
                    let data = self.instant(query).await?;
                    let waited = t0.elapsed();
                    if holds(&data) {
                        return Ok(
                            json!({"met": true, "after_ms": waited.as_millis() as u64, "checks": checks, "data": data}),
                        );
                    }
                    if waited + interval > timeout {
                        return Ok(
                            json!({"met": false, "after_ms": waited.as_millis() as u64, "checks": checks, "data": data}),
                        );
                    }
                    tokio::time::sleep(interval).await;
                }
            }
            other => Err(CallError::BadRequest(format!(
                "{other} is not a query capability"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_model::{Labels, Sample};
    use vigil_storage::{MetricsAppender, SeriesBatch, StorageConfig, StorageMetrics, Tsdb};

    async fn db(dir: &std::path::Path) -> Arc<Tsdb> {
        Tsdb::open(
            StorageConfig {
                data_dir: dir.to_path_buf(),
                section: Default::default(),
            },
            Arc::new(StorageMetrics::default()),
        )
        .await
        .unwrap()
    }

    fn write(db: &Tsdb, instance: &str, v: f64) {
        let labels =
            Labels::from_pairs([("__name__", "up"), ("instance", instance), ("job", "web")]);
        db.append(&[SeriesBatch {
            labels,
            samples: vec![Sample {
                t: vigil_model::now_ms(),
                v,
            }],
        }])
        .unwrap();
    }

    #[tokio::test]
    async fn query_promql_answers_as_the_api_does() {
        let dir = tempfile::tempdir().unwrap();
        let db = db(dir.path()).await;
        write(&db, "web-1", 0.0);
        let q = QueryCapabilities::new(db.clone(), EvalOptions::default());
        let r = q
            .call("query.promql", &json!({"query": "up == 0"}), None)
            .await
            .unwrap();
        assert_eq!(r["resultType"], "vector");
        assert_eq!(r["result"][0]["metric"]["instance"], "web-1");
        assert_eq!(r["result"][0]["value"][1], "0");
        let e = q
            .call("query.promql", &json!({"query": "up{"}), None)
            .await
            .unwrap_err();
        assert!(
            matches!(e, CallError::BadRequest(ref m) if m.contains("up{")),
            "{e:?}"
        );
        let e = q.call("query.promql", &json!({}), None).await.unwrap_err();
        assert_eq!(e, CallError::BadRequest("argument query is missing".into()));
    }

    #[tokio::test]
    async fn wait_until_sees_a_condition_come_true_or_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let db = db(dir.path()).await;
        write(&db, "web-1", 0.0);
        let q = Arc::new(QueryCapabilities::new(db.clone(), EvalOptions::default()));
        // The service comes back while the runbook waits.
        let writer = {
            let db = db.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(350)).await;
                write(&db, "web-1", 1.0);
            })
        };
        let r = q
            .call("wait.until", &json!({"query": "up{instance=\"web-1\"} == 1", "timeout": "5s", "interval": "100ms"}), None)
            .await
            .unwrap();
        writer.await.unwrap();
        assert_eq!(r["met"], true, "{r}");
        assert!(r["checks"].as_u64().unwrap() >= 2, "{r}");
        assert!(r["after_ms"].as_u64().unwrap() >= 300, "{r}");
        let r = q
            .call("wait.until", &json!({"query": "up{instance=\"web-2\"}", "timeout": "300ms", "interval": "100ms"}), None)
            .await
            .unwrap();
        assert_eq!(r["met"], false, "{r}");
        assert_eq!(
            q.timeout("wait.until", &json!({"timeout": "20s"})),
            Some(Duration::from_secs(25))
        );
        assert_eq!(q.timeout("query.promql", &json!({})), None);
    }
}
