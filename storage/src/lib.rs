//! Vigil's metrics store, and (in [`logs`]) its log store.
//!
//! Data path: [`MetricsAppender::append`] validates samples against the [`head`], logs the accepted ones to
//! the [`wal`] and fsyncs before returning (an acknowledged write survives `kill -9`). The head keeps
//! recent samples in compressed chunks; once it spans more than 1.5 block durations, its oldest block
//! range is written as an immutable block (Parquet samples + series index, see [`block`]) through
//! `object_store`, and the WAL is checkpointed. Blocks are compacted into larger ones and deleted by
//! retention. Reads return Arrow arrays per series.
//!
//! This crate owns everything under the data directory's `wal/` and `blocks/`; nothing else may write
//! there. It must never parse wire formats (that is `ingest`) or evaluate PromQL (that is `query`).

pub mod alloc;
mod append;
mod block;
mod chunk;
mod compact;
pub mod config;
mod db;
#[cfg(test)]
mod db_tests;
mod durable;
mod exemplars;
mod head;
pub mod logs;
mod metadata;
mod metrics;
mod postings;
mod reader;
mod wal;

pub use append::{
    AppendError, AppendOutcome, MetricsAppender, RejectReason, Rejection, SeriesBatch,
};
pub use config::{ByteSize, LogsConfig, StorageConfig, StorageSection};
pub use db::{StorageError, Tsdb};
pub use exemplars::{Exemplar, ExemplarStore};
pub use metadata::{MetadataStore, MetricMetadata};
pub use metrics::{StorageMetrics, WalMetrics};
pub use reader::{MetricsReader, ReadError, SeriesData};
