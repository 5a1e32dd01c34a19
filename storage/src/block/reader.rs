//! Opens blocks from the object store and reads series from them.
//!
//! Opening a block loads its series index (labels, row ranges, time ranges) and the samples file's
//! Parquet footer with its page index. A read selects only the row ranges of the wanted series, so the
//! Parquet reader fetches only the pages holding them.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float64Type, Int8Type, Int32Type, Int64Type, TimestampMillisecondType, UInt32Type, UInt64Type,
};
use arrow_array::{Array, RecordBatch};
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection,
    RowSelector,
};
use parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder;
use parquet::file::metadata::PageIndexPolicy;
use vigil_model::{Label, Labels, Matcher};

use super::decimal::reconstruct;
use super::objreader::ObjectReader;
use super::{BlockError, BlockMeta, META_FILE, SAMPLES_FILE, SERIES_FILE};
use crate::postings::Postings;

/// One series of a block's index.
#[derive(Clone, Debug)]
pub struct BlockSeries {
    pub labels: Labels,
    pub first_row: u64,
    pub num_rows: u32,
    pub min_t: i64,
    pub max_t: i64,
}

/// An opened block.
pub struct Block {
    pub meta: BlockMeta,
    store: Arc<dyn ObjectStore>,
    prefix: ObjPath,
    series: Vec<BlockSeries>,
    postings: Postings,
    samples_meta: ArrowReaderMetadata,
    samples_size: u64,
}

/// Object-store folder of a block.
pub(crate) fn block_prefix(ulid: &str) -> ObjPath {
    ObjPath::from(format!("blocks/{ulid}"))
}

impl Block {
    /// Loads a block's meta, series index and samples footer.
    pub async fn open(store: Arc<dyn ObjectStore>, ulid: &str) -> Result<Block, BlockError> {
        let b = ulid.to_string();
        let st = |source| BlockError::Store {
            block: b.clone(),
            source,
        };
        let pq = |source| BlockError::Parquet {
            block: b.clone(),
            source,
        };
        let prefix = block_prefix(ulid);
        let meta_bytes = store
            .get(&prefix.clone().join(META_FILE))
            .await
            .map_err(st)?
            .bytes()
            .await
            .map_err(st)?;
        let meta: BlockMeta =
            serde_json::from_slice(&meta_bytes).map_err(|e| BlockError::Invalid {
                block: b.clone(),
                message: format!("meta.json: {e}"),
            })?;
        let series_bytes = store
            .get(&prefix.clone().join(SERIES_FILE))
            .await
            .map_err(st)?
            .bytes()
            .await
            .map_err(st)?;
        let series = read_series_index(series_bytes).map_err(pq)?;
        let mut postings = Postings::default();
        for (i, s) in series.iter().enumerate() {
            postings.add(i as u64, s.labels.iter().map(|l| (l.name, l.value)));
        }
        let samples_path = prefix.clone().join(SAMPLES_FILE);
        let head = store.head(&samples_path).await.map_err(st)?;
        let mut reader = ObjectReader::new(store.clone(), samples_path, head.size);
        let opts = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
        let samples_meta = ArrowReaderMetadata::load_async(&mut reader, opts)
            .await
            .map_err(pq)?;
        Ok(Block {
            meta,
            store,
            prefix,
            series,
            postings,
            samples_meta,
            samples_size: head.size,
        })
    }

    pub fn series(&self, id: u32) -> &BlockSeries {
        &self.series[id as usize]
    }

    /// Series ids matching all matchers.
    pub fn select(&self, matchers: &[Matcher]) -> Vec<u32> {
        self.postings
            .select(matchers)
            .into_iter()
            .map(|i| i as u32)
            .collect()
    }

    /// Ids of every series, in label order.
    pub fn all_ids(&self) -> Vec<u32> {
        (0..self.series.len() as u32).collect()
    }

    /// Label names on the given series (all series when None).
    pub fn label_names(&self, ids: Option<&[u64]>) -> Vec<String> {
        self.postings.label_names(ids)
    }

    /// Reads the samples of the given series (any order) within `[mint, maxt]`. Series with no samples
    /// in range are left out. Results come in increasing id order.
    pub async fn read(
        &self,
        ids: &[u32],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<(u32, Vec<(i64, f64)>)>, BlockError> {
        let mut ids: Vec<u32> = ids
            .iter()
            .copied()
            .filter(|i| {
                let s = &self.series[*i as usize];
                s.max_t >= mint && s.min_t <= maxt
            })
            .collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let b = self.meta.ulid.clone();
        let pq = |source| BlockError::Parquet {
            block: b.clone(),
            source,
        };
        let total_rows: u64 = self.samples_meta.metadata().file_metadata().num_rows() as u64;
        let mut selectors = Vec::with_capacity(ids.len() * 2 + 1);
        let mut pos = 0u64;
        for id in &ids {
            let s = &self.series[*id as usize];
            if s.first_row > pos {
                selectors.push(RowSelector::skip((s.first_row - pos) as usize));
            }
            selectors.push(RowSelector::select(s.num_rows as usize));
            pos = s.first_row + s.num_rows as u64;
        }
        if total_rows > pos {
            selectors.push(RowSelector::skip((total_rows - pos) as usize));
        }
        let reader = ObjectReader::new(
            self.store.clone(),
            self.prefix.clone().join(SAMPLES_FILE),
            self.samples_size,
        );
        let schema = self.samples_meta.metadata().file_metadata().schema_descr();
        let mask = ProjectionMask::roots(schema, [1, 2, 3, 4, 5]);
        let stream =
            ParquetRecordBatchStreamBuilder::new_with_metadata(reader, self.samples_meta.clone())
                .with_projection(mask)
                .with_row_selection(RowSelection::from(selectors))
                .with_batch_size(65_536)
                .build()
                .map_err(pq)?;
        let batches: Vec<RecordBatch> = stream.try_collect().await.map_err(pq)?;
        let mut out = Vec::with_capacity(ids.len());
        let mut it = ids.iter();
        // (series id, rows left, samples)
        #[allow(clippy::type_complexity)]
        let mut cur: Option<(u32, usize, Vec<(i64, f64)>)> = None;
        for batch in &batches {
            let ts = batch.column(0).as_primitive::<TimestampMillisecondType>();
            let m = batch.column(1).as_primitive::<Int32Type>();
            let mb = batch.column(2).as_primitive::<Int64Type>();
            let e = batch.column(3).as_primitive::<Int8Type>();
            let vf = batch.column(4).as_primitive::<Float64Type>();
            for row in 0..batch.num_rows() {
                if cur.as_ref().is_none_or(|c| c.1 == 0) {
                    if let Some((id, _, samples)) = cur.take()
                        && !samples.is_empty()
                    {
                        out.push((id, samples));
                    }
                    let id = *it.next().ok_or_else(|| BlockError::Invalid {
                        block: b.clone(),
                        message: "more rows than selected".into(),
                    })?;
                    let n = self.series[id as usize].num_rows as usize;
                    cur = Some((id, n, Vec::with_capacity(n)));
                }
                let c = cur.as_mut().expect("set above");
                c.1 -= 1;
                let t = ts.value(row);
                if t < mint || t > maxt {
                    continue;
                }
                let v = if m.is_valid(row) {
                    reconstruct(m.value(row) as i64 + mb.value(row), e.value(row) as i32)
                } else {
                    vf.value(row)
                };
                c.2.push((t, v));
            }
        }
        if let Some((id, _, samples)) = cur
            && !samples.is_empty()
        {
            out.push((id, samples));
        }
        Ok(out)
    }
}

fn read_series_index(bytes: Bytes) -> Result<Vec<BlockSeries>, parquet::errors::ParquetError> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)?
        .with_batch_size(65_536)
        .build()?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| parquet::errors::ParquetError::General(e.to_string()))?;
        let labels = batch.column(2).as_map();
        let keys = labels.keys().as_string::<i32>();
        let values = labels.values().as_string::<i32>();
        let first = batch.column(3).as_primitive::<UInt64Type>();
        let nrows = batch.column(4).as_primitive::<UInt32Type>();
        let mint = batch.column(5).as_primitive::<Int64Type>();
        let maxt = batch.column(6).as_primitive::<Int64Type>();
        let offsets = labels.value_offsets();
        for row in 0..batch.num_rows() {
            let (lo, hi) = (offsets[row] as usize, offsets[row + 1] as usize);
            let ls: Vec<Label> = (lo..hi)
                .map(|i| Label::new(keys.value(i), values.value(i)))
                .collect();
            out.push(BlockSeries {
                labels: Labels::from_pairs(ls.into_iter().map(|l| (l.name, l.value))),
                first_row: first.value(row),
                num_rows: nrows.value(row),
                min_t: mint.value(row),
                max_t: maxt.value(row),
            });
        }
    }
    Ok(out)
}
