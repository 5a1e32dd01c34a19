//! Query evaluation.
//!
//! For now: plain vector and matrix selectors (with `offset` and `@`), number and string literals, and
//! parentheses, with Prometheus 2.x semantics: an instant vector takes each series' newest sample no
//! older than the lookback delta (5m), and a series whose newest sample is a staleness marker is absent.
//! The full PromQL engine replaces this module's `evaluate` entry points.

use std::time::{Duration, UNIX_EPOCH};

use promql_parser::label::MatchOp as PMatchOp;
use promql_parser::parser::{self, AtModifier, Expr, Offset, VectorSelector};
use vigil_model::{Labels, MatchOp, Matcher, is_stale_nan};
use vigil_storage::{MetricsReader, ReadError};

/// Result of a query.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar(i64, f64),
    String(i64, String),
    Vector(Vec<(Labels, i64, f64)>),
    Matrix(Vec<(Labels, Vec<(i64, f64)>)>),
}

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The query text is invalid (400 `bad_data`).
    #[error("{0}")]
    BadData(String),
    /// The query is valid but cannot be run (422 `execution`).
    #[error("{0}")]
    Execution(String),
    #[error(transparent)]
    Read(#[from] ReadError),
}

/// Evaluation settings.
#[derive(Clone, Debug)]
pub struct EvalOptions {
    pub lookback_ms: i64,
    /// Most samples one query may load (0 = unlimited).
    pub max_samples: usize,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            lookback_ms: 5 * 60 * 1000,
            max_samples: 50_000_000,
        }
    }
}

/// Parses a query, turning parser errors into `bad_data` messages.
pub fn parse(q: &str) -> Result<Expr, EvalError> {
    parser::parse(q).map_err(|e| EvalError::BadData(format!("invalid parameter \"query\": {e}")))
}

fn duration_ms(d: &Duration) -> i64 {
    d.as_millis() as i64
}

/// Converts a parsed selector into our matchers (the metric name becomes a `__name__` matcher).
pub fn selector_matchers(vs: &VectorSelector) -> Result<Vec<Matcher>, EvalError> {
    if !vs.matchers.or_matchers.is_empty() {
        return Err(EvalError::Execution(
            "\"or\" inside label matchers is not supported".into(),
        ));
    }
    let mut out = Vec::new();
    if let Some(n) = &vs.name {
        out.push(Matcher::equal("__name__", n.clone()));
    }
    for m in &vs.matchers.matchers {
        let op = match &m.op {
            PMatchOp::Equal => MatchOp::Equal,
            PMatchOp::NotEqual => MatchOp::NotEqual,
            PMatchOp::Re(_) => MatchOp::Regex,
            PMatchOp::NotRe(_) => MatchOp::NotRegex,
        };
        out.push(
            Matcher::new(op, m.name.clone(), m.value.clone())
                .map_err(|e| EvalError::BadData(e.to_string()))?,
        );
    }
    if out.iter().all(|m| m.matches_empty()) {
        return Err(EvalError::BadData(
            "vector selector must contain at least one non-empty matcher".into(),
        ));
    }
    Ok(out)
}

/// The time a selector reads at, for evaluation time `t` in a query over `[start, end]`.
fn selector_time(vs: &VectorSelector, t: i64, start: i64, end: i64) -> i64 {
    let base = match &vs.at {
        None => t,
        Some(AtModifier::Start) => start,
        Some(AtModifier::End) => end,
        Some(AtModifier::At(st)) => match st.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_millis() as i64,
            Err(e) => -(e.duration().as_millis() as i64),
        },
    };
    match &vs.offset {
        None => base,
        Some(Offset::Pos(d)) => base - duration_ms(d),
        Some(Offset::Neg(d)) => base + duration_ms(d),
    }
}

fn unwrap_parens(mut e: &Expr) -> &Expr {
    while let Expr::Paren(p) = e {
        e = &p.expr;
    }
    e
}

/// Newest non-stale sample at or before `t` and no older than the lookback, from a sorted series.
fn sample_at(ts: &[i64], vs: &[f64], t: i64, lookback: i64) -> Option<f64> {
    let i = ts.partition_point(|x| *x <= t);
    if i == 0 {
        return None;
    }
    let (st, sv) = (ts[i - 1], vs[i - 1]);
    if st < t - lookback || is_stale_nan(sv) {
        return None;
    }
    Some(sv)
}

/// Evaluates an instant query at `t` (ms).
pub async fn instant<R: MetricsReader>(
    reader: &R,
    expr: &Expr,
    t: i64,
    opts: &EvalOptions,
) -> Result<Value, EvalError> {
    match unwrap_parens(expr) {
        Expr::NumberLiteral(n) => Ok(Value::Scalar(t, n.val)),
        Expr::StringLiteral(s) => Ok(Value::String(t, s.val.clone())),
        Expr::VectorSelector(vs) => {
            let m = selector_matchers(vs)?;
            let at = selector_time(vs, t, t, t);
            let data = reader.select(&m, at - opts.lookback_ms, at, opts.max_samples).await?;
            let mut out = Vec::new();
            for s in data {
                if let Some(v) = sample_at(s.timestamps.values(), s.values.values(), at, opts.lookback_ms) {
                    out.push((s.labels, t, v));
                }
            }
            Ok(Value::Vector(out))
        }
        Expr::MatrixSelector(ms) => {
            let m = selector_matchers(&ms.vs)?;
            let at = selector_time(&ms.vs, t, t, t);
            let range = duration_ms(&ms.range);
            let data = reader.select(&m, at - range, at, opts.max_samples).await?;
            let mut out = Vec::new();
            for s in data {
                let points: Vec<(i64, f64)> = s
                    .timestamps
                    .values()
                    .iter()
                    .zip(s.values.values().iter())
                    .filter(|(_, v)| !is_stale_nan(**v))
                    .map(|(t, v)| (*t, *v))
                    .collect();
                if !points.is_empty() {
                    out.push((s.labels, points));
                }
            }
            Ok(Value::Matrix(out))
        }
        _ => Err(EvalError::Execution(
            "this build evaluates plain selectors and literals only; operators and functions are not supported yet".into(),
        )),
    }
}

/// Evaluates a range query over `[start, end]` every `step` ms.
pub async fn range<R: MetricsReader>(
    reader: &R,
    expr: &Expr,
    start: i64,
    end: i64,
    step: i64,
    opts: &EvalOptions,
) -> Result<Value, EvalError> {
    let steps: Vec<i64> = (0..)
        .map(|i| start + i * step)
        .take_while(|t| *t <= end)
        .collect();
    match unwrap_parens(expr) {
        Expr::NumberLiteral(n) => Ok(Value::Matrix(vec![(Labels::empty(), steps.iter().map(|t| (*t, n.val)).collect())])),
        Expr::StringLiteral(_) => Err(EvalError::BadData(
            "invalid expression type \"string\" for range query, must be Scalar or instant Vector".into(),
        )),
        Expr::MatrixSelector(_) => Err(EvalError::BadData(
            "invalid expression type \"range vector\" for range query, must be Scalar or instant Vector".into(),
        )),
        Expr::VectorSelector(vs) => {
            let m = selector_matchers(vs)?;
            let first = selector_time(vs, start, start, end);
            let last = selector_time(vs, end, start, end);
            let (lo, hi) = (first.min(last), first.max(last));
            let data = reader.select(&m, lo - opts.lookback_ms, hi, opts.max_samples).await?;
            let mut out = Vec::new();
            for s in data {
                let (ts, vs_) = (s.timestamps.values(), s.values.values());
                let points: Vec<(i64, f64)> = steps
                    .iter()
                    .filter_map(|t| sample_at(ts, vs_, selector_time(vs, *t, start, end), opts.lookback_ms).map(|v| (*t, v)))
                    .collect();
                if !points.is_empty() {
                    out.push((s.labels, points));
                }
            }
            Ok(Value::Matrix(out))
        }
        _ => Err(EvalError::Execution(
            "this build evaluates plain selectors and literals only; operators and functions are not supported yet".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookback_and_staleness() {
        let ts = [0, 10_000, 20_000, 400_000];
        let vs = [1.0, 2.0, vigil_model::stale_nan(), 4.0];
        assert_eq!(sample_at(&ts, &vs, 15_000, 300_000), Some(2.0));
        assert_eq!(
            sample_at(&ts, &vs, 25_000, 300_000),
            None,
            "stale marker hides the series"
        );
        assert_eq!(sample_at(&ts, &vs, 399_999, 300_000), None);
        assert_eq!(sample_at(&ts, &vs, 400_000, 300_000), Some(4.0));
        assert_eq!(
            sample_at(&ts, &vs, 700_000, 300_000),
            Some(4.0),
            "lookback is inclusive in 2.x"
        );
        assert_eq!(sample_at(&ts, &vs, 700_001, 300_000), None);
        assert_eq!(sample_at(&ts, &vs, -1, 300_000), None);
    }

    #[test]
    fn matchers_from_selector() {
        let Expr::VectorSelector(vs) = parse("up{job=~\"a|b\", x!=\"\"}").unwrap() else {
            panic!()
        };
        let m = selector_matchers(&vs).unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m[0], Matcher::equal("__name__", "up"));
        // The parser itself refuses selectors that match everything.
        assert!(matches!(parse("{job=~\".*\"}"), Err(EvalError::BadData(_))));
    }
}
