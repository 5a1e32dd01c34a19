//! Storage configuration: the `storage:` section of the config file (Prometheus's own `storage.tsdb` and
//! `storage.exemplars` keys, plus Vigil's block and retention settings).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};
use vigil_model::PromDuration;

/// A byte size written as `512MB`, `10GB`, `1TiB` or a plain number of bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Default)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub fn parse(s: &str) -> Result<ByteSize, String> {
        let s = s.trim();
        let split = s
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: f64 = num
            .parse()
            .map_err(|_| format!("invalid size {s:?} (expected e.g. 512MB, 10GB)"))?;
        let mult: u64 = match unit.trim() {
            "" | "B" => 1,
            // Prometheus reads sizes as powers of two whatever the spelling (512MB = 512 MiB).
            "KB" | "KiB" => 1 << 10,
            "MB" | "MiB" => 1 << 20,
            "GB" | "GiB" => 1 << 30,
            "TB" | "TiB" => 1 << 40,
            "PB" | "PiB" => 1 << 50,
            u => {
                return Err(format!(
                    "invalid size unit {u:?} in {s:?} (use B, KB, MB, GB, TB, PB; all powers of 1024 as in Prometheus)"
                ));
            }
        };
        Ok(ByteSize((n * mult as f64) as u64))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(ByteSize(n)),
            Raw::S(s) => ByteSize::parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

/// `storage.tsdb`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TsdbConfig {
    /// Span of the blocks cut from the head (Prometheus: 2h).
    pub block_duration: PromDuration,
    /// Cut the oldest block range once the head spans more than this many block durations.
    pub head_cut_ratio: f64,
    /// Delete blocks older than this, measured from the newest block's end (0 = keep forever).
    pub retention_time: PromDuration,
    /// Delete the oldest blocks while blocks and WAL together exceed this (0 = no limit).
    pub retention_size: ByteSize,
    /// Accept samples up to this much older than the newest sample (0 = only in-order samples).
    pub out_of_order_time_window: PromDuration,
    pub wal_segment_size: ByteSize,
    /// Merge small blocks into larger ones (2h, 6h, 18h, … up to 10% of retention or 31d).
    pub compaction: bool,
    /// zstd level of block sample files.
    pub block_zstd_level: i32,
    /// Rows per Parquet data page in block sample files.
    pub block_page_rows: usize,
    /// How often the head is checked for a block to cut, and compaction and retention run.
    pub maintenance_interval: PromDuration,
}

impl Default for TsdbConfig {
    fn default() -> Self {
        TsdbConfig {
            block_duration: PromDuration::from_secs(2 * 3600),
            head_cut_ratio: 1.5,
            retention_time: PromDuration::from_secs(15 * 24 * 3600),
            retention_size: ByteSize(0),
            out_of_order_time_window: PromDuration::default(),
            wal_segment_size: ByteSize(128 << 20),
            compaction: true,
            block_zstd_level: 19,
            block_page_rows: 100_000,
            maintenance_interval: PromDuration::from_secs(60),
        }
    }
}

/// `storage.exemplars`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ExemplarsConfig {
    pub max_exemplars: usize,
}

impl Default for ExemplarsConfig {
    fn default() -> Self {
        ExemplarsConfig {
            max_exemplars: 100_000,
        }
    }
}

/// `storage.logs`: the log store (WAL, in-memory head, Tantivy splits).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogsConfig {
    /// Delete splits whose newest entry is older than this (0 = keep forever).
    pub retention_period: PromDuration,
    /// Splits cover aligned windows of this span: an entry goes to the split of its window.
    pub split_window: PromDuration,
    /// Cut the head into splits once its lines reach this many bytes…
    pub head_max_bytes: ByteSize,
    /// …or once its first entry has been held this long.
    pub head_max_age: PromDuration,
    pub wal_segment_size: ByteSize,
    /// zstd level of the stored raw lines (the splits' `.lines` blocks; cuts and compaction).
    pub docstore_zstd_level: i32,
    /// How often the head is checked for a cut, and compaction and retention run.
    pub maintenance_interval: PromDuration,
    /// Refuse appends (429 to pushers) while this many bytes of lines wait to be indexed (the head
    /// and heads being cut), so memory stays bounded when pushes outrun indexing (0 = no limit).
    pub max_unindexed_bytes: ByteSize,
    /// Compaction merges splits of one window holding fewer bytes of lines than this into splits of
    /// at most this many (0 = no compaction).
    pub compaction_target_bytes: ByteSize,
}

impl Default for LogsConfig {
    fn default() -> Self {
        LogsConfig {
            retention_period: PromDuration::from_secs(31 * 24 * 3600),
            split_window: PromDuration::from_secs(3600),
            head_max_bytes: ByteSize(256 << 20),
            head_max_age: PromDuration::from_secs(15 * 60),
            wal_segment_size: ByteSize(128 << 20),
            docstore_zstd_level: 5,
            maintenance_interval: PromDuration::from_secs(10),
            max_unindexed_bytes: ByteSize(1 << 30),
            compaction_target_bytes: ByteSize(2 << 30),
        }
    }
}

/// The `storage:` section.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSection {
    pub tsdb: TsdbConfig,
    pub exemplars: ExemplarsConfig,
    pub logs: LogsConfig,
}

impl StorageSection {
    /// Checks values that deserialisation cannot.
    pub fn validate(&self) -> Result<(), String> {
        let t = &self.tsdb;
        if t.block_duration.0 < Duration::from_secs(60) {
            return Err(format!(
                "storage.tsdb.block_duration must be at least 1m, got {}",
                t.block_duration
            ));
        }
        if t.head_cut_ratio.is_nan() || t.head_cut_ratio < 1.0 {
            return Err(format!(
                "storage.tsdb.head_cut_ratio must be at least 1.0, got {}",
                t.head_cut_ratio
            ));
        }
        if !(1..=22).contains(&t.block_zstd_level) {
            return Err(format!(
                "storage.tsdb.block_zstd_level must be between 1 and 22, got {}",
                t.block_zstd_level
            ));
        }
        if t.block_page_rows < 1024 {
            return Err(format!(
                "storage.tsdb.block_page_rows must be at least 1024, got {}",
                t.block_page_rows
            ));
        }
        if t.maintenance_interval.0 < Duration::from_millis(100) {
            return Err(format!(
                "storage.tsdb.maintenance_interval must be at least 100ms, got {}",
                t.maintenance_interval
            ));
        }
        if t.wal_segment_size.0 < (1 << 20) {
            return Err("storage.tsdb.wal_segment_size must be at least 1MiB".into());
        }
        let l = &self.logs;
        if l.split_window.0 < Duration::from_secs(60) {
            return Err(format!(
                "storage.logs.split_window must be at least 1m, got {}",
                l.split_window
            ));
        }
        if l.head_max_bytes.0 < (1 << 20) {
            return Err("storage.logs.head_max_bytes must be at least 1MiB".into());
        }
        if l.head_max_age.0 < Duration::from_secs(1) {
            return Err(format!(
                "storage.logs.head_max_age must be at least 1s, got {}",
                l.head_max_age
            ));
        }
        if !(1..=22).contains(&l.docstore_zstd_level) {
            return Err(format!(
                "storage.logs.docstore_zstd_level must be between 1 and 22, got {}",
                l.docstore_zstd_level
            ));
        }
        if l.wal_segment_size.0 < (1 << 20) {
            return Err("storage.logs.wal_segment_size must be at least 1MiB".into());
        }
        if l.maintenance_interval.0 < Duration::from_millis(100) {
            return Err(format!(
                "storage.logs.maintenance_interval must be at least 100ms, got {}",
                l.maintenance_interval
            ));
        }
        Ok(())
    }
}

/// Everything the store needs to open.
#[derive(Clone, Debug)]
pub struct StorageConfig {
    pub data_dir: PathBuf,
    pub section: StorageSection,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(ByteSize::parse("512MB").unwrap().0, 512 << 20);
        assert_eq!(ByteSize::parse("1GiB").unwrap().0, 1 << 30);
        assert_eq!(ByteSize::parse("100").unwrap().0, 100);
        assert!(ByteSize::parse("5 parsecs").is_err());
    }

    #[test]
    fn yaml_section() {
        let s: StorageSection = serde_yaml_ng::from_str("tsdb:\n  retention_time: 30d\n  out_of_order_time_window: 10m\nexemplars:\n  max_exemplars: 5\n").unwrap();
        assert_eq!(s.tsdb.retention_time, PromDuration::from_secs(30 * 86400));
        assert_eq!(
            s.tsdb.out_of_order_time_window,
            PromDuration::from_secs(600)
        );
        assert_eq!(s.exemplars.max_exemplars, 5);
        assert!(serde_yaml_ng::from_str::<StorageSection>("tsdb:\n  retention: 1d\n").is_err());
    }
}
