//! `query.logql`: a LogQL query over the log store, answered as the Loki API's `data` object: a log
//! query over the last `since` (default 1h, newest first, at most `limit` entries, default 100), a
//! metric query at now. Read-only, through the same evaluator and limits as the Loki API.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vigil_query::logql::ast::Query;
use vigil_query::logql::eval::{self, LogqlLimits, LogqlStats};
use vigil_storage::logs::{Direction, LogsReader};

use super::{Capability, Effect, Target, arg_str};
use crate::manifest::parse_duration;
use crate::sandbox::CallError;

/// Most entries a runbook may read in one call.
pub const MAX_ENTRIES: usize = 5000;

pub struct LogQueryCapability {
    reader: Arc<dyn LogsReader>,
    limits: LogqlLimits,
}

impl LogQueryCapability {
    pub fn new(reader: Arc<dyn LogsReader>, limits: LogqlLimits) -> Self {
        LogQueryCapability { reader, limits }
    }

    async fn query(&self, args: &Value) -> Result<Value, CallError> {
        let text = arg_str(args, "query")?;
        let since = match args.get("since") {
            None | Some(Value::Null) => Duration::from_secs(3600),
            Some(Value::String(s)) => parse_duration(s).ok_or_else(|| {
                CallError::BadRequest(format!("argument since {s:?} is not a duration (like 15m)"))
            })?,
            Some(_) => {
                return Err(CallError::BadRequest(
                    "argument since must be a duration string".into(),
                ));
            }
        };
        let limit = match args.get("limit") {
            None | Some(Value::Null) => 100,
            Some(v) => v
                .as_u64()
                .filter(|n| *n as usize <= MAX_ENTRIES)
                .ok_or_else(|| {
                    CallError::BadRequest(format!(
                        "argument limit must be a number up to {MAX_ENTRIES}"
                    ))
                })? as usize,
        };
        let q = vigil_query::logql::parse(text)
            .map_err(|e| CallError::BadRequest(format!("query {text:?}: {e}")))?;
        let now = vigil_model::now_ns();
        match q {
            Query::Logs(e) => {
                let reader = self.reader.clone();
                let deadline = Instant::now() + self.limits.eval.timeout;
                let start = now - since.as_nanos() as i64;
                let streams = tokio::task::spawn_blocking(move || {
                    let mut stats = LogqlStats::default();
                    eval::logs(
                        &*reader,
                        &e,
                        start,
                        now + 1,
                        limit,
                        Direction::Backward,
                        false,
                        deadline,
                        &mut stats,
                    )
                })
                .await
                .map_err(|e| CallError::Failed(e.to_string()))?
                .map_err(|e| CallError::Failed(format!("query {text:?}: {e}")))?;
                let result: Vec<Value> = streams
                    .iter()
                    .map(|s| {
                        json!({
                            "stream": s.labels,
                            "values": s.entries.iter().map(|e| json!([e.ts.to_string(), e.line])).collect::<Vec<_>>(),
                        })
                    })
                    .collect();
                Ok(json!({"resultType": "streams", "result": result}))
            }
            Query::Metric { promql, aggs } => {
                let (v, _) = eval::metric(
                    self.reader.clone(),
                    promql,
                    aggs,
                    now,
                    now,
                    1_000_000_000,
                    true,
                    &self.limits,
                )
                .await
                .map_err(|e| CallError::Failed(format!("query {text:?}: {e}")))?;
                serde_json::from_str(&vigil_query::api::value_json(&v))
                    .map_err(|e| CallError::Failed(format!("query {text:?}: {e}")))
            }
        }
    }
}

#[async_trait::async_trait]
impl Capability for LogQueryCapability {
    fn names(&self) -> &'static [(&'static str, Effect)] {
        &[("query.logql", Effect::Reads)]
    }

    async fn target(&self, _name: &str, _args: &Value) -> Result<Option<Target>, CallError> {
        Ok(None)
    }

    async fn call(
        &self,
        name: &str,
        args: &Value,
        _target: Option<&Target>,
    ) -> Result<Value, CallError> {
        match name {
            "query.logql" => self.query(args).await,
            other => Err(CallError::BadRequest(format!(
                "{other} is not a log capability"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_model::{Labels, LogEntry, LogStream};
    use vigil_storage::logs::{LogStore, LogsMetrics};

    #[tokio::test]
    async fn query_logql_reads_lines_and_metrics() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path(), Default::default(), LogsMetrics::default()).unwrap();
        let now = vigil_model::now_ns();
        store
            .append(vec![LogStream {
                labels: Labels::from_pairs([("app", "api")]),
                entries: vec![
                    LogEntry::new(now - 2_000_000_000, "level=error msg=\"db down\""),
                    LogEntry::new(now - 1_000_000_000, "level=info msg=ok"),
                ],
            }])
            .unwrap();
        let cap = LogQueryCapability::new(store, LogqlLimits::default());
        // It belongs to the ABI's list, as a reading capability (the registry refuses it otherwise).
        let mut reg = crate::capability::Registry::new();
        reg.register(Arc::new(LogQueryCapability::new(
            cap.reader.clone(),
            LogqlLimits::default(),
        )));
        let r = cap
            .call(
                "query.logql",
                &json!({"query": "{app=\"api\"} | logfmt | level=\"error\"", "since": "5m"}),
                None,
            )
            .await
            .unwrap();
        assert_eq!(r["resultType"], "streams");
        assert_eq!(
            r["result"][0]["values"][0][1],
            "level=error msg=\"db down\""
        );
        let r = cap
            .call(
                "query.logql",
                &json!({"query": "sum(count_over_time({app=\"api\"}[1m]))"}),
                None,
            )
            .await
            .unwrap();
        assert_eq!(r["resultType"], "vector");
        assert_eq!(r["result"][0]["value"][1], "2");
        let e = cap
            .call("query.logql", &json!({"query": "{app="}), None)
            .await
            .unwrap_err();
        assert!(matches!(e, CallError::BadRequest(_)), "{e:?}");
        let e = cap
            .call(
                "query.logql",
                &json!({"query": "{app=\"api\"}", "limit": 100000}),
                None,
            )
            .await
            .unwrap_err();
        assert!(matches!(e, CallError::BadRequest(_)), "{e:?}");
    }
}
