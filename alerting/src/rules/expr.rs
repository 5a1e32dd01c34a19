//! Rule expressions: PromQL, or LogQL metric queries in the same rule files (Loki ruler format).
//!
//! An expression is LogQL when it is not PromQL (`rate({app="api"} |= "error" [5m])`), or when it
//! parses as both and every selector in it lacks a metric name (`sum(count_over_time({app="api"}[5m]))`:
//! a PromQL rule over "every metric of app=api" is not a thing anyone writes; a Loki rule is).

use std::fmt;
use std::sync::Arc;

use promql_parser::parser::Expr;
use promql_parser::util::{ExprVisitor, walk_expr};
use vigil_query::logql::ast::{Query, RangeAgg};
use vigil_query::logql::eval::LogqlLimits;
use vigil_storage::logs::LogsReader;

/// A parsed rule expression.
#[derive(Clone, Debug)]
pub enum RuleExpr {
    PromQL(Expr),
    LogQL { promql: Expr, aggs: Vec<RangeAgg> },
}

/// Where LogQL rules read logs.
#[derive(Clone)]
pub struct LogQuerier {
    pub reader: Arc<dyn LogsReader>,
    pub limits: LogqlLimits,
}

impl fmt::Debug for LogQuerier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LogQuerier")
    }
}

/// Counts selectors with and without a metric name.
#[derive(Default)]
struct Names {
    named: usize,
    nameless: usize,
}

impl ExprVisitor for Names {
    type Error = std::convert::Infallible;
    fn pre_visit(&mut self, e: &Expr) -> Result<bool, Self::Error> {
        let vs = match e {
            Expr::VectorSelector(vs) => Some(vs),
            Expr::MatrixSelector(ms) => Some(&ms.vs),
            _ => None,
        };
        if let Some(vs) = vs {
            let named =
                vs.name.is_some() || vs.matchers.matchers.iter().any(|m| m.name == "__name__");
            if named {
                self.named += 1;
            } else {
                self.nameless += 1;
            }
        }
        Ok(true)
    }
}

fn looks_like_logs(e: &Expr) -> bool {
    let mut n = Names::default();
    let _ = walk_expr(&mut n, e);
    n.nameless > 0 && n.named == 0
}

/// Parses a rule's expression as PromQL or LogQL.
pub fn parse(s: &str) -> Result<RuleExpr, String> {
    let promql = vigil_query::eval::parse(s);
    if let Ok(e) = &promql
        && !looks_like_logs(e)
    {
        return Ok(RuleExpr::PromQL(e.clone()));
    }
    match vigil_query::logql::parser::parse(s) {
        Ok(Query::Metric { promql, aggs }) => Ok(RuleExpr::LogQL { promql, aggs }),
        Ok(Query::Logs(_)) => Err(
            "a log query cannot be a rule's expression: use a metric query, e.g. count_over_time({...}[5m])".into(),
        ),
        Err(le) => match promql {
            Ok(e) => Ok(RuleExpr::PromQL(e)),
            Err(pe) => Err(if s.contains('|') {
                format!("not a LogQL metric query: {le}")
            } else {
                pe.to_string()
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promql_and_logql_told_apart() {
        assert!(matches!(parse("up == 0"), Ok(RuleExpr::PromQL(_))));
        assert!(matches!(parse("vector(1)"), Ok(RuleExpr::PromQL(_))));
        assert!(matches!(
            parse(r#"sum(rate(http_requests_total{job="api"}[5m])) > 1"#),
            Ok(RuleExpr::PromQL(_))
        ));
        assert!(matches!(
            parse(r#"sum(count_over_time({app="api"}[5m])) > 10"#),
            Ok(RuleExpr::LogQL { .. })
        ));
        assert!(matches!(
            parse(r#"sum by (level) (rate({app="api"} |= "error" | logfmt [1m]))"#),
            Ok(RuleExpr::LogQL { .. })
        ));
        assert!(
            parse(r#"{app="api"} |= "x""#)
                .unwrap_err()
                .contains("log query")
        );
        assert!(parse("sum(").is_err());
        assert!(
            parse(r#"rate({app="api"} | bogus [1m])"#)
                .unwrap_err()
                .contains("LogQL")
        );
    }
}
