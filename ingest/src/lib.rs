//! Metrics ingest: everything between the wire and [`vigil_storage::MetricsAppender`].
pub mod exposition;
