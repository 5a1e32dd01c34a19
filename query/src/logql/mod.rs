//! LogQL: the parser ([`parser`]), the pipeline that runs per log line ([`pipeline`]), the evaluator
//! ([`eval`]: log queries over the log store; metric queries as range aggregations fed to the PromQL
//! engine) and the Loki HTTP API ([`api`]).

pub mod api;
pub mod ast;
pub mod eval;
pub mod parser;
pub mod patterns;
pub mod pipeline;
pub mod template;

pub use parser::{ParseError, parse};

/// RFC 3339 with nanoseconds (Go's `time.RFC3339Nano`), for `__timestamp__`.
pub fn rfc3339_nano(ts: i64) -> String {
    vigil_model::rfc3339(std::time::Duration::from_nanos(ts.max(0) as u64))
}
