//! Immutable blocks: a time range of samples as Parquet, plus a series index.
//!
//! A block is a folder `blocks/<ULID>/` in the object store holding:
//! - `samples.parquet`: one row per sample, sorted by (`series_id`, `timestamp`). Columns: `series_id`
//!   (uint32), `timestamp` (ms, UTC), `m` (int32) + `m_base` (int64) + `e` (int8): the decimal mantissa
//!   and exponent, `value_float` (double) for samples that are not short decimals. The value of a row is
//!   `coalesce(CASE WHEN e >= 0 THEN (m + m_base) * 10^e ELSE (m + m_base) / 10^-e END, value_float)`
//!   (see [`decimal`]); the expression is also stored in the file's key-value metadata.
//! - `series.parquet`: one row per series: `series_id`, `metric_name`, `labels` (map), `first_row`,
//!   `num_rows`, `min_time`, `max_time`.
//! - `meta.json`: time range, counts, compaction level and sources. Written last: a folder without it is
//!   an interrupted write and is removed at start-up.

pub mod decimal;
mod objreader;
mod reader;
mod writer;

use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};

pub use reader::Block;
use reader::block_prefix;
pub use writer::{BlockWriter, WriterOptions};

/// Version of the block layout; bump on incompatible change.
pub const FORMAT_VERSION: u32 = 1;
pub const SAMPLES_FILE: &str = "samples.parquet";
pub const SERIES_FILE: &str = "series.parquet";
pub const META_FILE: &str = "meta.json";
/// The SQL expression that reconstructs a sample's value, stored in `samples.parquet`'s metadata.
pub const VALUE_EXPRESSION: &str = "coalesce(CASE WHEN e >= 0 THEN CAST(m + m_base AS DOUBLE) * pow(10, e) ELSE CAST(m + m_base AS DOUBLE) / pow(10, -e) END, value_float)";

/// Contents of `meta.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BlockMeta {
    pub ulid: String,
    pub version: u32,
    /// Lowest sample timestamp (ms, inclusive).
    pub min_time: i64,
    /// Highest sample timestamp (ms, inclusive).
    pub max_time: i64,
    pub stats: BlockStats,
    pub compaction: CompactionMeta,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct BlockStats {
    pub num_series: u64,
    pub num_samples: u64,
    /// Samples stored in `value_float` rather than as decimals.
    pub num_float_samples: u64,
    /// Bytes of all the block's files.
    pub bytes: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct CompactionMeta {
    /// 1 for blocks cut from the head; one more than the highest input for compacted blocks.
    pub level: u32,
    /// ULIDs of the level-1 blocks whose data this block holds.
    pub sources: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("block {block}: object store: {source}")]
    Store {
        block: String,
        source: object_store::Error,
    },
    #[error("block {block}: parquet: {source}")]
    Parquet {
        block: String,
        source: parquet::errors::ParquetError,
    },
    #[error("block {block}: arrow: {source}")]
    Arrow {
        block: String,
        source: arrow_schema::ArrowError,
    },
    #[error("block {block}: I/O: {source}")]
    Io {
        block: String,
        source: std::io::Error,
    },
    #[error("block {block}: invalid: {message}")]
    Invalid { block: String, message: String },
}

/// Uploads a block written by [`BlockWriter`] from its staging folder; `meta.json` goes last so that a
/// block is visible only once complete. Removes the staging folder afterwards.
pub async fn upload(
    store: &dyn object_store::ObjectStore,
    dir: &std::path::Path,
    ulid: &str,
) -> Result<(), BlockError> {
    let prefix = block_prefix(ulid);
    for name in [SAMPLES_FILE, SERIES_FILE, META_FILE] {
        let data = tokio::fs::read(dir.join(name))
            .await
            .map_err(|source| BlockError::Io {
                block: ulid.into(),
                source,
            })?;
        store
            .put(&prefix.clone().join(name), data.into())
            .await
            .map_err(|source| BlockError::Store {
                block: ulid.into(),
                source,
            })?;
    }
    tokio::fs::remove_dir_all(dir)
        .await
        .map_err(|source| BlockError::Io {
            block: ulid.into(),
            source,
        })?;
    Ok(())
}

/// Deletes a block: `meta.json` first, so that an interrupted deletion leaves an incomplete block that
/// the next start-up cleans up rather than a damaged one that looks whole.
pub async fn delete(store: &dyn object_store::ObjectStore, ulid: &str) -> Result<(), BlockError> {
    let prefix = block_prefix(ulid);
    for name in [META_FILE, SERIES_FILE, SAMPLES_FILE] {
        match store.delete(&prefix.clone().join(name)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(source) => {
                return Err(BlockError::Store {
                    block: ulid.into(),
                    source,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
