//! Ingest: everything between the wire and [`vigil_storage::MetricsAppender`] (metrics) or
//! [`vigil_storage::logs::LogsAppender`] (logs: Loki push in [`loki`]).
//!
//! Owns the exposition parsers ([`exposition`]), the scrape manager with service discovery and
//! relabeling ([`scrape`]), and the push receivers: Prometheus remote write 1.0/2.0 ([`remote_write`]) and
//! OTLP/HTTP metrics ([`otlp`]), which share one batch policy ([`push`]); and the health probes
//! ([`probe`]: blackbox_exporter's modules, PostgreSQL and Docker), whose results are stored as series
//! without a scrape round trip.
//!
//! Ingest validates and converts; it never keeps samples itself and never reads from storage.

pub mod exposition;
pub mod loki;
pub mod metrics;
pub mod otlp;
pub mod probe;
pub mod push;
pub mod remote_write;
pub mod scrape;

pub use metrics::IngestMetrics;
pub use push::{IngestSection, PushLimits, PushState};
