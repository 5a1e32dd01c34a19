//! The query side: evaluates queries over [`vigil_storage::MetricsReader`] and serves the
//! Prometheus-compatible HTTP API that Grafana, promtool and client libraries use.
//!
//! It reads through the storage's reader trait only and never writes: recording rules write back through
//! the appender, from the alerting side.

pub mod api;
pub mod eval;
pub mod format;

pub use api::{ApiOptions, BuildInfo, router};
pub use eval::QuerySection;
