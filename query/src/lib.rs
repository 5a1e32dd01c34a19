//! The query side: evaluates PromQL over [`vigil_storage::MetricsReader`] and LogQL over
//! [`vigil_storage::logs::LogsReader`], and serves the Prometheus- and Loki-compatible HTTP APIs that
//! Grafana, promtool and client libraries use.
//!
//! It reads through the storage's reader trait only and never writes: recording rules write back through
//! the appender, from the alerting side.

pub mod api;
pub mod eval;
pub mod format;
pub mod logql;

pub use api::{ApiOptions, BuildInfo, router};
pub use eval::QuerySection;
