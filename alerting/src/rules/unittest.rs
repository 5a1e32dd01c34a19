//! `vigil test rules`: promtool's rule unit-test files (`rule_files`, `evaluation_interval`, `tests[]`
//! with `input_series`, `alert_rule_test` and `promql_expr_test`), run against a temporary store with
//! the same rule evaluation `vigil serve` uses.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use promql_parser::parser::Expr;
use serde::Deserialize;
use vigil_model::{Labels, PromDuration, Sample, stale_nan};
use vigil_query::eval::{self, Value};
use vigil_storage::{MetricsAppender, SeriesBatch, StorageConfig, StorageMetrics, Tsdb};

use super::group::{AlertState, Group, GroupOptions};
use super::manager::{expand_globs, load_groups};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    #[serde(default)]
    rule_files: Vec<String>,
    #[serde(default)]
    evaluation_interval: Option<PromDuration>,
    #[serde(default)]
    group_eval_order: Vec<String>,
    #[serde(default)]
    tests: Vec<TestGroup>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestGroup {
    #[serde(default)]
    name: String,
    #[serde(default)]
    interval: Option<PromDuration>,
    #[serde(default)]
    input_series: Vec<InputSeries>,
    #[serde(default)]
    alert_rule_test: Vec<AlertTest>,
    #[serde(default)]
    promql_expr_test: Vec<ExprTest>,
    #[serde(default)]
    external_labels: BTreeMap<String, String>,
    #[serde(default)]
    external_url: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InputSeries {
    series: String,
    values: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertTest {
    eval_time: PromDuration,
    alertname: String,
    #[serde(default)]
    exp_alerts: Vec<ExpAlert>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpAlert {
    #[serde(default)]
    exp_labels: BTreeMap<String, String>,
    #[serde(default)]
    exp_annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExprTest {
    expr: String,
    eval_time: PromDuration,
    #[serde(default)]
    exp_samples: Vec<ExpSample>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpSample {
    #[serde(default)]
    labels: String,
    value: f64,
}

/// Expands promtool's series notation (`1+2x3 _ stale 5x2 -1-1x2`) into values per step; `None` is a
/// missing sample.
pub fn expand_values(s: &str) -> Result<Vec<Option<f64>>, String> {
    let mut out = Vec::new();
    for tok in s.split_whitespace() {
        if tok == "_" {
            out.push(None);
            continue;
        }
        if tok == "stale" {
            out.push(Some(stale_nan()));
            continue;
        }
        if let Some((head, n)) = tok.split_once('x') {
            let n: usize = n
                .parse()
                .map_err(|_| format!("invalid repetition in {tok:?}"))?;
            if head == "_" {
                out.extend(std::iter::repeat_n(None, n));
                continue;
            }
            // `a+b`, `a-b` (a may be negative), or `a` (repeat: a, n more times).
            let split = head
                .char_indices()
                .skip(1)
                .find(|(i, c)| (*c == '+' || *c == '-') && !head[..*i].ends_with(['e', 'E']))
                .map(|(i, _)| i);
            let (start, step) = match split {
                Some(i) => {
                    let a: f64 = head[..i]
                        .parse()
                        .map_err(|_| format!("invalid number in {tok:?}"))?;
                    let b: f64 = head[i + 1..]
                        .parse()
                        .map_err(|_| format!("invalid step in {tok:?}"))?;
                    (a, if &head[i..i + 1] == "-" { -b } else { b })
                }
                None => (
                    parse_num(head).ok_or_else(|| format!("invalid number in {tok:?}"))?,
                    0.0,
                ),
            };
            for k in 0..=n {
                out.push(Some(start + step * k as f64));
            }
            continue;
        }
        out.push(Some(
            parse_num(tok).ok_or_else(|| format!("invalid value {tok:?}"))?,
        ));
    }
    Ok(out)
}

fn parse_num(s: &str) -> Option<f64> {
    match s {
        "Inf" | "+Inf" | "inf" | "+inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

/// Labels of a series written as a selector (`up{job="a"}`).
fn series_labels(s: &str) -> Result<Labels, String> {
    let e = eval::parse(s).map_err(|e| e.to_string())?;
    let Expr::VectorSelector(vs) = e else {
        return Err(format!("{s:?} is not a series"));
    };
    let mut pairs: Vec<(String, String)> = Vec::new();
    if let Some(n) = &vs.name {
        pairs.push(("__name__".into(), n.clone()));
    }
    for m in &vs.matchers.matchers {
        pairs.push((m.name.clone(), m.value.clone()));
    }
    Ok(Labels::from_pairs(pairs))
}

/// Runs every test of a unit-test file; returns the failures (empty = success).
pub async fn run_file(path: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let tf: TestFile = serde_yaml_ng::from_str(&text).map_err(|e| e.to_string())?;
    let base = path.parent().unwrap_or(Path::new("."));
    let files = expand_globs(&tf.rule_files, base)?;
    let eval_interval = tf
        .evaluation_interval
        .map(|d| d.0)
        .unwrap_or(Duration::from_secs(60));
    let mut failures = Vec::new();
    for (ti, t) in tf.tests.iter().enumerate() {
        let name = if t.name.is_empty() {
            format!("test {}", ti + 1)
        } else {
            t.name.clone()
        };
        let opts = GroupOptions {
            default_interval: eval_interval,
            external_labels: t.external_labels.clone(),
            external_url: t.external_url.clone(),
            eval: Default::default(),
            logs: None,
        };
        let mut groups = load_groups(&files, &opts).map_err(|e| e.to_string())?;
        if !tf.group_eval_order.is_empty() {
            groups.sort_by_key(|g| {
                tf.group_eval_order
                    .iter()
                    .position(|n| *n == g.config.name)
                    .unwrap_or(usize::MAX)
            });
        }
        for f in run_test(t, groups, &opts, eval_interval).await? {
            failures.push(format!("{name}: {f}"));
        }
    }
    Ok(failures)
}

async fn run_test(
    t: &TestGroup,
    groups: Vec<Group>,
    opts: &GroupOptions,
    eval_interval: Duration,
) -> Result<Vec<String>, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let db = Tsdb::open(
        StorageConfig {
            data_dir: dir.path().to_path_buf(),
            section: Default::default(),
        },
        Arc::new(StorageMetrics::default()),
    )
    .await
    .map_err(|e| e.to_string())?;
    let step = t
        .interval
        .map(|d| d.0)
        .unwrap_or(Duration::from_secs(60))
        .as_millis() as i64;
    let mut batch = Vec::new();
    for s in &t.input_series {
        let labels = series_labels(&s.series)?;
        let samples: Vec<Sample> = expand_values(&s.values)?
            .into_iter()
            .enumerate()
            .filter_map(|(i, v)| {
                v.map(|v| Sample {
                    t: i as i64 * step,
                    v,
                })
            })
            .collect();
        batch.push(SeriesBatch { labels, samples });
    }
    let app: Arc<dyn MetricsAppender> = db.clone();
    if !batch.is_empty() {
        app.append(&batch).map_err(|e| e.to_string())?;
    }
    let ev = eval_interval.as_millis() as i64;
    let last = t
        .alert_rule_test
        .iter()
        .map(|a| a.eval_time.as_millis())
        .chain(t.promql_expr_test.iter().map(|e| e.eval_time.as_millis()))
        .max()
        .unwrap_or(0);
    let mut failures = Vec::new();
    let mut ts = 0i64;
    while ts <= last {
        for g in &groups {
            g.evaluate(db.as_ref(), &app, ts, opts).await;
        }
        // As promtool: alerts asked for at `eval_time` are compared after the evaluation at `ts` with
        // `ts <= eval_time < ts + evaluation_interval`.
        for a in t
            .alert_rule_test
            .iter()
            .filter(|a| ts <= a.eval_time.as_millis() && a.eval_time.as_millis() < ts + ev)
        {
            let mut got: Vec<(BTreeMap<String, String>, BTreeMap<String, String>)> = groups
                .iter()
                .flat_map(|g| g.rules.iter())
                .filter(|r| r.is_alerting() && r.name() == a.alertname)
                .flat_map(|r| r.active.lock().values().cloned().collect::<Vec<_>>())
                .filter(|al| al.state == AlertState::Firing)
                .map(|al| {
                    let mut l: BTreeMap<String, String> = al
                        .labels
                        .iter()
                        .map(|x| (x.name.to_string(), x.value.to_string()))
                        .collect();
                    l.remove("alertname");
                    (l, al.annotations)
                })
                .collect();
            let mut want: Vec<(BTreeMap<String, String>, BTreeMap<String, String>)> = a
                .exp_alerts
                .iter()
                .map(|e| (e.exp_labels.clone(), e.exp_annotations.clone()))
                .collect();
            got.sort();
            want.sort();
            if got != want {
                failures.push(format!(
                    "alertname: {}, time: {}\n    exp: {want:?}\n    got: {got:?}",
                    a.alertname, a.eval_time
                ));
            }
        }
        ts += ev;
    }
    for e in &t.promql_expr_test {
        let expr = eval::parse(&e.expr).map_err(|x| x.to_string())?;
        let at = e.eval_time.as_millis();
        let got = match eval::instant(db.as_ref(), expr, at, &Default::default()).await {
            Ok((Value::Vector(v), _)) => v.into_iter().map(|(l, _, x)| (l, x)).collect::<Vec<_>>(),
            Ok((Value::Scalar(_, x), _)) => vec![(Labels::empty(), x)],
            Ok(_) => Vec::new(),
            Err(x) => {
                failures.push(format!("expr: {:?}, time: {}: {x}", e.expr, e.eval_time));
                continue;
            }
        };
        let mut want = Vec::new();
        for s in &e.exp_samples {
            let l = if s.labels.is_empty() {
                Labels::empty()
            } else {
                series_labels(&s.labels)?
            };
            want.push((l, s.value));
        }
        let mut got = got;
        got.sort_by(|a, b| a.0.cmp(&b.0));
        want.sort_by(|a, b| a.0.cmp(&b.0));
        let same = got.len() == want.len()
            && got.iter().zip(want.iter()).all(|(g, w)| {
                g.0 == w.0
                    && (g.1 == w.1
                        || (g.1 - w.1).abs() <= 1e-6 * w.1.abs().max(1.0)
                        || (g.1.is_nan() && w.1.is_nan()))
            });
        if !same {
            failures.push(format!(
                "expr: {:?}, time: {}\n    exp: {want:?}\n    got: {got:?}",
                e.expr, e.eval_time
            ));
        }
    }
    db.close().await.map_err(|e| e.to_string())?;
    Ok(failures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expanding_notation() {
        let v = |s: &str| expand_values(s).unwrap();
        assert_eq!(v("1+2x3"), vec![Some(1.0), Some(3.0), Some(5.0), Some(7.0)]);
        assert_eq!(v("5x2"), vec![Some(5.0), Some(5.0), Some(5.0)]);
        assert_eq!(v("-1-1x2"), vec![Some(-1.0), Some(-2.0), Some(-3.0)]);
        assert_eq!(v("1 _ 3"), vec![Some(1.0), None, Some(3.0)]);
        assert_eq!(v("_x2 1e3"), vec![None, None, Some(1000.0)]);
        assert!(v("stale")[0].is_some_and(vigil_model::is_stale_nan));
        assert!(expand_values("1+x").is_err());
    }
}
