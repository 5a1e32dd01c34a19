//! Writes a block's files into a local staging folder, one series at a time in label order.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{
    Float64Builder, Int8Builder, Int32Builder, Int64Builder, MapBuilder, StringBuilder,
    TimestampMillisecondBuilder, UInt32Builder, UInt64Builder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::{KeyValue, SortingColumn};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use vigil_model::{Labels, METRIC_NAME};

use super::decimal::{Continuity, encode_series};
use super::{
    BlockError, BlockMeta, BlockStats, CompactionMeta, FORMAT_VERSION, META_FILE, SAMPLES_FILE,
    SERIES_FILE, VALUE_EXPRESSION,
};

/// Tuning of the samples file.
#[derive(Clone, Debug)]
pub struct WriterOptions {
    /// zstd level for `samples.parquet` (19 measured at 0.73 B/sample on the benchmark data).
    pub zstd_level: i32,
    /// Rows per data page: smaller pages let narrow queries skip more, larger ones compress better.
    pub page_rows: usize,
    pub row_group_rows: usize,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            zstd_level: 19,
            page_rows: 100_000,
            row_group_rows: 1 << 20,
        }
    }
}

pub(crate) fn samples_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("series_id", DataType::UInt32, false),
        Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Field::new("m", DataType::Int32, true),
        Field::new("m_base", DataType::Int64, true),
        Field::new("e", DataType::Int8, false),
        Field::new("value_float", DataType::Float64, true),
    ]))
}

pub(crate) fn series_schema() -> SchemaRef {
    let map = DataType::Map(
        Arc::new(Field::new(
            "entries",
            DataType::Struct(
                vec![
                    Field::new("key", DataType::Utf8, false),
                    Field::new("value", DataType::Utf8, true),
                ]
                .into(),
            ),
            false,
        )),
        false,
    );
    Arc::new(Schema::new(vec![
        Field::new("series_id", DataType::UInt32, false),
        Field::new("metric_name", DataType::Utf8, true),
        Field::new("labels", map, false),
        Field::new("first_row", DataType::UInt64, false),
        Field::new("num_rows", DataType::UInt32, false),
        Field::new("min_time", DataType::Int64, false),
        Field::new("max_time", DataType::Int64, false),
    ]))
}

struct SeriesRow {
    labels: Labels,
    first_row: u64,
    num_rows: u32,
    min_t: i64,
    max_t: i64,
}

/// Builds one block. Call [`BlockWriter::add_series`] in label order, then [`BlockWriter::finish`].
pub struct BlockWriter {
    ulid: String,
    dir: PathBuf,
    writer: ArrowWriter<File>,
    continuity: Continuity,
    sid: UInt32Builder,
    ts: TimestampMillisecondBuilder,
    m: Int32Builder,
    m_base: Int64Builder,
    e: Int8Builder,
    vf: Float64Builder,
    buffered: usize,
    rows: u64,
    floats: u64,
    series: Vec<SeriesRow>,
    last_labels: Option<Labels>,
    level: u32,
    sources: Vec<String>,
}

const FLUSH_ROWS: usize = 65_536;

impl BlockWriter {
    /// Starts a block in `staging/<ulid>/`.
    pub fn new(
        staging: &Path,
        ulid: &str,
        opts: &WriterOptions,
        level: u32,
        sources: Vec<String>,
    ) -> Result<Self, BlockError> {
        let io = |source| BlockError::Io {
            block: ulid.to_string(),
            source,
        };
        let dir = staging.join(ulid);
        std::fs::create_dir_all(&dir).map_err(io)?;
        let file = File::create(dir.join(SAMPLES_FILE)).map_err(io)?;
        let level_z =
            ZstdLevel::try_new(opts.zstd_level).map_err(|source| BlockError::Parquet {
                block: ulid.into(),
                source,
            })?;
        let col = |n: &str| ColumnPath::from(n);
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(level_z))
            .set_dictionary_enabled(false)
            .set_column_dictionary_enabled(col("e"), true)
            .set_column_dictionary_enabled(col("m_base"), true)
            .set_column_encoding(col("series_id"), Encoding::DELTA_BINARY_PACKED)
            .set_column_encoding(col("timestamp"), Encoding::DELTA_BINARY_PACKED)
            .set_column_encoding(col("m"), Encoding::DELTA_BINARY_PACKED)
            .set_column_encoding(col("value_float"), Encoding::PLAIN)
            .set_data_page_row_count_limit(opts.page_rows)
            .set_data_page_size_limit(64 << 20)
            .set_dictionary_page_size_limit(8 << 20)
            .set_max_row_group_row_count(Some(opts.row_group_rows))
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_sorting_columns(Some(vec![
                SortingColumn {
                    column_idx: 0,
                    descending: false,
                    nulls_first: false,
                },
                SortingColumn {
                    column_idx: 1,
                    descending: false,
                    nulls_first: false,
                },
            ]))
            .set_key_value_metadata(Some(vec![
                KeyValue::new("vigil.format_version".into(), FORMAT_VERSION.to_string()),
                KeyValue::new(
                    "vigil.value_expression".into(),
                    VALUE_EXPRESSION.to_string(),
                ),
            ]))
            .build();
        let writer =
            ArrowWriter::try_new(file, samples_schema(), Some(props)).map_err(|source| {
                BlockError::Parquet {
                    block: ulid.into(),
                    source,
                }
            })?;
        Ok(BlockWriter {
            ulid: ulid.to_string(),
            dir,
            writer,
            continuity: Continuity::new(),
            sid: UInt32Builder::with_capacity(FLUSH_ROWS),
            ts: TimestampMillisecondBuilder::with_capacity(FLUSH_ROWS).with_timezone("UTC"),
            m: Int32Builder::with_capacity(FLUSH_ROWS),
            m_base: Int64Builder::with_capacity(FLUSH_ROWS),
            e: Int8Builder::with_capacity(FLUSH_ROWS),
            vf: Float64Builder::with_capacity(FLUSH_ROWS),
            buffered: 0,
            rows: 0,
            floats: 0,
            series: Vec::new(),
            last_labels: None,
            level,
            sources,
        })
    }

    fn invalid(&self, message: String) -> BlockError {
        BlockError::Invalid {
            block: self.ulid.clone(),
            message,
        }
    }

    /// Appends one series' samples (sorted by time, unique timestamps). Series must come in label order.
    pub fn add_series(
        &mut self,
        labels: &Labels,
        samples: &[(i64, f64)],
    ) -> Result<(), BlockError> {
        if samples.is_empty() {
            return Ok(());
        }
        if let Some(prev) = &self.last_labels
            && prev >= labels
        {
            return Err(self.invalid(format!(
                "series {labels} added out of label order (after {prev})"
            )));
        }
        if samples.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(self.invalid(format!(
                "samples of {labels} are not strictly increasing in time"
            )));
        }
        let id = self.series.len() as u32;
        let values: Vec<f64> = samples.iter().map(|s| s.1).collect();
        let enc = encode_series(&values);
        let off = self.continuity.offset(&enc.mantissas);
        for (i, &(t, v)) in samples.iter().enumerate() {
            self.sid.append_value(id);
            self.ts.append_value(t);
            self.e.append_value(enc.e as i8);
            match off.m[i] {
                Some(m) => {
                    self.m.append_value(m);
                    self.m_base.append_value(off.base);
                    self.vf.append_null();
                }
                None => {
                    self.m.append_null();
                    self.m_base.append_null();
                    self.vf.append_value(v);
                    self.floats += 1;
                }
            }
        }
        self.series.push(SeriesRow {
            labels: labels.clone(),
            first_row: self.rows,
            num_rows: samples.len() as u32,
            min_t: samples[0].0,
            max_t: samples[samples.len() - 1].0,
        });
        self.rows += samples.len() as u64;
        self.buffered += samples.len();
        self.last_labels = Some(labels.clone());
        if self.buffered >= FLUSH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), BlockError> {
        if self.buffered == 0 {
            return Ok(());
        }
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.sid.finish()),
            Arc::new(self.ts.finish().with_timezone("UTC")),
            Arc::new(self.m.finish()),
            Arc::new(self.m_base.finish()),
            Arc::new(self.e.finish()),
            Arc::new(self.vf.finish()),
        ];
        let batch =
            RecordBatch::try_new(samples_schema(), cols).map_err(|source| BlockError::Arrow {
                block: self.ulid.clone(),
                source,
            })?;
        self.writer
            .write(&batch)
            .map_err(|source| BlockError::Parquet {
                block: self.ulid.clone(),
                source,
            })?;
        self.buffered = 0;
        Ok(())
    }

    /// Closes the files and writes `meta.json`. Returns the folder holding the block and its meta.
    /// An empty writer returns `None` (no block is made of no samples).
    pub fn finish(mut self) -> Result<Option<(PathBuf, BlockMeta)>, BlockError> {
        self.flush()?;
        let ulid = self.ulid.clone();
        let pq = |source| BlockError::Parquet {
            block: ulid.clone(),
            source,
        };
        let io = |source| BlockError::Io {
            block: ulid.clone(),
            source,
        };
        self.writer.close().map_err(pq)?;
        if self.series.is_empty() {
            std::fs::remove_dir_all(&self.dir).map_err(io)?;
            return Ok(None);
        }
        // Series index.
        let mut sid = UInt32Builder::new();
        let mut name = StringBuilder::new();
        let mut labels = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
        let mut first = UInt64Builder::new();
        let mut nrows = UInt32Builder::new();
        let mut mint = Int64Builder::new();
        let mut maxt = Int64Builder::new();
        for (i, s) in self.series.iter().enumerate() {
            sid.append_value(i as u32);
            name.append_option(s.labels.get(METRIC_NAME));
            for l in s.labels.iter() {
                labels.keys().append_value(l.name);
                labels.values().append_value(l.value);
            }
            labels.append(true).map_err(|source| BlockError::Arrow {
                block: ulid.clone(),
                source,
            })?;
            first.append_value(s.first_row);
            nrows.append_value(s.num_rows);
            mint.append_value(s.min_t);
            maxt.append_value(s.max_t);
        }
        let cols: Vec<ArrayRef> = vec![
            Arc::new(sid.finish()),
            Arc::new(name.finish()),
            Arc::new(labels.finish()),
            Arc::new(first.finish()),
            Arc::new(nrows.finish()),
            Arc::new(mint.finish()),
            Arc::new(maxt.finish()),
        ];
        let batch =
            RecordBatch::try_new(series_schema(), cols).map_err(|source| BlockError::Arrow {
                block: ulid.clone(),
                source,
            })?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).map_err(pq)?))
            .build();
        let f = File::create(self.dir.join(SERIES_FILE)).map_err(io)?;
        let mut w = ArrowWriter::try_new(f, series_schema(), Some(props)).map_err(pq)?;
        w.write(&batch).map_err(pq)?;
        w.close().map_err(pq)?;
        let bytes = std::fs::metadata(self.dir.join(SAMPLES_FILE))
            .map_err(io)?
            .len()
            + std::fs::metadata(self.dir.join(SERIES_FILE))
                .map_err(io)?
                .len();
        let meta = BlockMeta {
            ulid: ulid.clone(),
            version: FORMAT_VERSION,
            min_time: self.series.iter().map(|s| s.min_t).min().unwrap_or(0),
            max_time: self.series.iter().map(|s| s.max_t).max().unwrap_or(0),
            stats: BlockStats {
                num_series: self.series.len() as u64,
                num_samples: self.rows,
                num_float_samples: self.floats,
                bytes,
            },
            compaction: CompactionMeta {
                level: self.level,
                sources: if self.sources.is_empty() {
                    vec![ulid.clone()]
                } else {
                    self.sources.clone()
                },
            },
        };
        let json = serde_json::to_vec_pretty(&meta).map_err(|e| BlockError::Invalid {
            block: ulid.clone(),
            message: e.to_string(),
        })?;
        std::fs::write(self.dir.join(META_FILE), json).map_err(io)?;
        Ok(Some((self.dir.clone(), meta)))
    }
}
