//! The engine's settings and the `query:` configuration section they come from.

/// Evaluation settings.
#[derive(Clone, Debug)]
pub struct EvalOptions {
    pub lookback_ms: i64,
    /// Most samples one query may load (0 = unlimited).
    pub max_samples: usize,
    /// Most series one query may load (0 = unlimited).
    pub max_series: usize,
    /// Step of subqueries that give none (Prometheus: the global evaluation interval, 1m).
    pub default_subquery_step_ms: i64,
    /// Longest a query may run (Prometheus: `--query.timeout`, 2m).
    pub timeout: std::time::Duration,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            lookback_ms: 5 * 60 * 1000,
            max_samples: 50_000_000,
            max_series: 0,
            default_subquery_step_ms: 60_000,
            timeout: std::time::Duration::from_secs(120),
        }
    }
}

/// `query:` — limits and settings of the query engine.
#[derive(Clone, Debug, serde::Deserialize, serde::Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct QuerySection {
    /// Most samples one query may load (Prometheus `--query.max-samples`: 50,000,000).
    pub max_samples: usize,
    /// Most series one query may load (0 = unlimited).
    pub max_series: usize,
    /// Longest a query may run (Prometheus `--query.timeout`: 2m).
    pub timeout: vigil_model::PromDuration,
    /// How far back an instant selector looks for a sample (Prometheus `--query.lookback-delta`: 5m).
    pub lookback_delta: vigil_model::PromDuration,
    /// Queries slower than this are logged.
    pub slow_query_threshold: vigil_model::PromDuration,
    /// Step of subqueries without one (Prometheus: `global.evaluation_interval`, 1m).
    pub default_subquery_step: Option<vigil_model::PromDuration>,
}

impl Default for QuerySection {
    fn default() -> Self {
        QuerySection {
            max_samples: 50_000_000,
            max_series: 1_000_000,
            timeout: vigil_model::PromDuration::from_secs(120),
            lookback_delta: vigil_model::PromDuration::from_secs(300),
            slow_query_threshold: vigil_model::PromDuration::from_secs(5),
            default_subquery_step: None,
        }
    }
}

impl QuerySection {
    /// The engine's settings; `evaluation_interval` is the default step of subqueries without one.
    pub fn eval_options(&self, evaluation_interval: vigil_model::PromDuration) -> EvalOptions {
        EvalOptions {
            lookback_ms: self.lookback_delta.as_millis(),
            max_samples: self.max_samples,
            max_series: self.max_series,
            default_subquery_step_ms: self
                .default_subquery_step
                .unwrap_or(evaluation_interval)
                .as_millis(),
            timeout: self.timeout.0,
        }
    }
}
