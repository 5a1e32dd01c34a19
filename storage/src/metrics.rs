//! The storage's own metrics (`vigil_storage_*`), registered once in the process registry.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label set for rejected samples.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

/// The metrics of one write-ahead log (the metrics store's, or the log store's).
#[derive(Clone)]
pub struct WalMetrics {
    pub size_bytes: Gauge,
    pub bytes_written: Counter,
    pub fsync_seconds: Histogram,
    pub corruptions: Counter,
    pub failed: Gauge,
}

impl Default for WalMetrics {
    fn default() -> Self {
        WalMetrics {
            size_bytes: Gauge::default(),
            bytes_written: Counter::default(),
            fsync_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            corruptions: Counter::default(),
            failed: Gauge::default(),
        }
    }
}

impl WalMetrics {
    /// Registers the WAL's metrics as `wal_*` in `r`.
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "wal_size_bytes",
            "Bytes of WAL segments and checkpoints on disk",
            self.size_bytes.clone(),
        );
        r.register(
            "wal_written_bytes",
            "Bytes written to the WAL",
            self.bytes_written.clone(),
        );
        r.register(
            "wal_fsync_duration_seconds",
            "Duration of WAL fsyncs",
            self.fsync_seconds.clone(),
        );
        r.register(
            "wal_corruptions",
            "Torn or corrupt WAL tails repaired at start-up",
            self.corruptions.clone(),
        );
        r.register(
            "wal_failed",
            "1 after a WAL write or fsync failed: every write is refused until restart",
            self.failed.clone(),
        );
    }
}

/// Every metric the storage exports.
#[derive(Clone)]
pub struct StorageMetrics {
    pub head_series: Gauge,
    pub head_chunks: Gauge,
    pub head_min_time: Gauge,
    pub head_max_time: Gauge,
    pub head_series_created: Counter,
    pub head_series_removed: Counter,
    pub samples_appended: Counter,
    pub samples_rejected: Family<ReasonLabel, Counter>,
    pub wal_size_bytes: Gauge,
    pub wal_bytes_written: Counter,
    pub wal_fsync_seconds: Histogram,
    pub wal_corruptions: Counter,
    /// 1 once a WAL write or fsync failed (writes are refused until restart).
    pub wal_failed: Gauge,
    pub blocks: Gauge,
    pub block_bytes: Gauge,
    pub block_samples: Gauge,
    pub head_cuts: Counter,
    pub head_cut_seconds: Histogram,
    pub compactions: Counter,
    pub compactions_failed: Counter,
    pub compaction_seconds: Histogram,
    pub retention_deleted_blocks: Family<ReasonLabel, Counter>,
}

impl Default for StorageMetrics {
    fn default() -> Self {
        StorageMetrics {
            head_series: Gauge::default(),
            head_chunks: Gauge::default(),
            head_min_time: Gauge::default(),
            head_max_time: Gauge::default(),
            head_series_created: Counter::default(),
            head_series_removed: Counter::default(),
            samples_appended: Counter::default(),
            samples_rejected: Family::default(),
            wal_size_bytes: Gauge::default(),
            wal_bytes_written: Counter::default(),
            wal_fsync_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            wal_corruptions: Counter::default(),
            wal_failed: Gauge::default(),
            blocks: Gauge::default(),
            block_bytes: Gauge::default(),
            block_samples: Gauge::default(),
            head_cuts: Counter::default(),
            head_cut_seconds: Histogram::new(exponential_buckets(0.01, 2.0, 14)),
            compactions: Counter::default(),
            compactions_failed: Counter::default(),
            compaction_seconds: Histogram::new(exponential_buckets(0.01, 2.0, 14)),
            retention_deleted_blocks: Family::default(),
        }
    }
}

impl StorageMetrics {
    /// The metrics store's WAL metrics (sharing this struct's `wal_*` metrics).
    pub fn wal(&self) -> WalMetrics {
        WalMetrics {
            size_bytes: self.wal_size_bytes.clone(),
            bytes_written: self.wal_bytes_written.clone(),
            fsync_seconds: self.wal_fsync_seconds.clone(),
            corruptions: self.wal_corruptions.clone(),
            failed: self.wal_failed.clone(),
        }
    }

    /// Registers every metric under the `vigil_storage` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("vigil_storage");
        r.register(
            "head_series",
            "Series in the in-memory head",
            self.head_series.clone(),
        );
        r.register(
            "head_chunks",
            "Compressed chunks held by the head",
            self.head_chunks.clone(),
        );
        r.register(
            "head_min_time_ms",
            "Oldest sample timestamp held by the head (ms)",
            self.head_min_time.clone(),
        );
        r.register(
            "head_max_time_ms",
            "Highest sample timestamp in the head (ms)",
            self.head_max_time.clone(),
        );
        r.register(
            "head_series_created",
            "Series created in the head",
            self.head_series_created.clone(),
        );
        r.register(
            "head_series_removed",
            "Series garbage-collected from the head",
            self.head_series_removed.clone(),
        );
        r.register(
            "samples_appended",
            "Samples appended to the head",
            self.samples_appended.clone(),
        );
        r.register(
            "samples_rejected",
            "Samples refused, by reason",
            self.samples_rejected.clone(),
        );
        r.register(
            "wal_size_bytes",
            "Bytes of WAL segments and checkpoints on disk",
            self.wal_size_bytes.clone(),
        );
        r.register(
            "wal_written_bytes",
            "Bytes written to the WAL",
            self.wal_bytes_written.clone(),
        );
        r.register(
            "wal_fsync_duration_seconds",
            "Duration of WAL fsyncs",
            self.wal_fsync_seconds.clone(),
        );
        r.register(
            "wal_corruptions",
            "Torn or corrupt WAL tails repaired at start-up",
            self.wal_corruptions.clone(),
        );
        r.register(
            "wal_failed",
            "1 after a WAL write or fsync failed: every write is refused until restart",
            self.wal_failed.clone(),
        );
        r.register("blocks", "Persisted blocks", self.blocks.clone());
        r.register(
            "block_bytes",
            "Bytes of all persisted blocks",
            self.block_bytes.clone(),
        );
        r.register(
            "block_samples",
            "Samples in all persisted blocks",
            self.block_samples.clone(),
        );
        r.register(
            "head_cuts",
            "Blocks cut from the head",
            self.head_cuts.clone(),
        );
        r.register(
            "head_cut_duration_seconds",
            "Time to write a block cut from the head",
            self.head_cut_seconds.clone(),
        );
        r.register(
            "compactions",
            "Compactions completed",
            self.compactions.clone(),
        );
        r.register(
            "compactions_failed",
            "Compactions that failed",
            self.compactions_failed.clone(),
        );
        r.register(
            "compaction_duration_seconds",
            "Duration of compactions",
            self.compaction_seconds.clone(),
        );
        r.register(
            "retention_deleted_blocks",
            "Blocks deleted by retention, by reason (time or size)",
            self.retention_deleted_blocks.clone(),
        );
    }

    pub fn reject(&self, reason: &'static str, n: u64) {
        if n > 0 {
            self.samples_rejected
                .get_or_create(&ReasonLabel { reason })
                .inc_by(n);
        }
    }
}
