//! The metrics database: head + WAL + blocks, and the maintenance that moves data between them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{Float64Array, Int64Array};
use futures::TryStreamExt;
use object_store::ObjectStore;
use parking_lot::{Mutex, RwLock};
use tracing::{info, warn};
use vigil_model::{Labels, Matcher};

use crate::append::{AppendError, AppendOutcome, MetricsAppender, SeriesBatch};
use crate::block::{self, Block, BlockError, BlockWriter, WriterOptions};
use crate::config::StorageConfig;
use crate::exemplars::{Exemplar, ExemplarStore};
use crate::head::{Head, MemSeries, merge_sorted};
use crate::metrics::{ReasonLabel, StorageMetrics};
use crate::reader::{MetricsReader, ReadError, SeriesData};
use crate::wal::{Record, SamplesEncoder, Wal, WalError};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(transparent)]
    Wal(#[from] WalError),
    #[error(transparent)]
    Block(#[from] BlockError),
    #[error("storage I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    #[error("invalid storage configuration: {0}")]
    Config(String),
    #[error("background task failed: {0}")]
    Join(String),
}

/// The metrics store.
pub struct Tsdb {
    cfg: StorageConfig,
    head: Arc<Head>,
    wal: Arc<Wal>,
    store: Arc<dyn ObjectStore>,
    blocks: RwLock<Vec<Arc<Block>>>,
    /// Blocks replaced by compaction or expired, deleted once in-flight reads are done with them.
    doomed: Mutex<Vec<(Instant, String)>>,
    exemplars: Arc<ExemplarStore>,
    metadata: Arc<crate::MetadataStore>,
    metrics: Arc<StorageMetrics>,
    maintenance: tokio::sync::Mutex<()>,
    staging: PathBuf,
}

/// How long a replaced block's files outlive it, so queries that picked it up can finish.
const DELETE_GRACE: Duration = Duration::from_secs(60);

impl Tsdb {
    /// Opens the store in `cfg.data_dir`: loads blocks, removes interrupted writes, replays the WAL.
    pub async fn open(
        cfg: StorageConfig,
        metrics: Arc<StorageMetrics>,
    ) -> Result<Arc<Tsdb>, StorageError> {
        cfg.section.validate().map_err(StorageError::Config)?;
        let dir = &cfg.data_dir;
        let io = |path: &PathBuf| {
            let path = path.clone();
            move |source| StorageError::Io { path, source }
        };
        std::fs::create_dir_all(dir.join("blocks")).map_err(io(dir))?;
        let staging = dir.join("staging");
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging).map_err(io(&staging))?;
        let store: Arc<dyn ObjectStore> = Arc::new(crate::durable::DurableLocal::new(dir)?);
        let blocks = load_blocks(&store).await?;
        remove_empty_block_dirs(&dir.join("blocks"));
        let t = &cfg.section.tsdb;
        let head = Arc::new(Head::new(
            t.out_of_order_time_window.as_millis(),
            metrics.clone(),
        ));
        if let Some(max) = blocks.iter().map(|b| b.meta.max_time).max() {
            head.set_min_valid_time(max + 1);
        }
        let wal_dir = dir.join("wal");
        let seg = t.wal_segment_size.0;
        let (h, m) = (head.clone(), metrics.clone());
        let started = Instant::now();
        let wal = tokio::task::spawn_blocking(move || {
            let mut refs: HashMap<u64, Arc<MemSeries>> = HashMap::new();
            let (wal, report) = Wal::open(&wal_dir, seg, m, |rec| match rec {
                Record::MinTime(t) => h.set_min_valid_time(t),
                Record::Series { series_ref, labels } => {
                    let s = h.replay_series(series_ref, labels);
                    refs.insert(series_ref, s);
                }
                Record::Samples(groups) => {
                    for g in groups {
                        if let Some(s) = refs.get(&g.series_ref) {
                            h.replay_samples(s, &g.samples);
                        }
                    }
                }
            })?;
            Ok::<_, WalError>((wal, report))
        })
        .await
        .map_err(|e| StorageError::Join(e.to_string()))??;
        let (wal, report) = wal;
        for r in &report.repaired {
            warn!(what = %r, "WAL repaired at start-up");
        }
        head.refresh_metrics();
        info!(
            series = head.num_series(),
            blocks = blocks.len(),
            wal_records = report.records,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "metrics storage opened"
        );
        let db = Arc::new(Tsdb {
            exemplars: Arc::new(ExemplarStore::new(cfg.section.exemplars.max_exemplars)),
            metadata: Arc::new(crate::MetadataStore::new(100_000)),
            cfg,
            head,
            wal: Arc::new(wal),
            store,
            blocks: RwLock::new(blocks),
            doomed: Mutex::new(Vec::new()),
            metrics,
            maintenance: tokio::sync::Mutex::new(()),
            staging,
        });
        db.update_block_metrics();
        Ok(db)
    }

    /// Metric family metadata reported by scrapes and senders.
    pub fn metadata(&self) -> Arc<crate::MetadataStore> {
        self.metadata.clone()
    }

    pub fn exemplars(&self) -> Arc<ExemplarStore> {
        self.exemplars.clone()
    }

    pub fn head(&self) -> &Head {
        &self.head
    }

    pub fn metrics(&self) -> &StorageMetrics {
        &self.metrics
    }

    /// Metas of the current blocks, oldest first.
    pub fn block_metas(&self) -> Vec<block::BlockMeta> {
        self.blocks.read().iter().map(|b| b.meta.clone()).collect()
    }

    pub fn data_dir(&self) -> &std::path::Path {
        &self.cfg.data_dir
    }

    fn writer_options(&self) -> WriterOptions {
        let t = &self.cfg.section.tsdb;
        WriterOptions {
            zstd_level: t.block_zstd_level,
            page_rows: t.block_page_rows,
            ..WriterOptions::default()
        }
    }

    fn update_block_metrics(&self) {
        let blocks = self.blocks.read();
        self.metrics.blocks.set(blocks.len() as i64);
        self.metrics
            .block_bytes
            .set(blocks.iter().map(|b| b.meta.stats.bytes as i64).sum());
        self.metrics
            .block_samples
            .set(blocks.iter().map(|b| b.meta.stats.num_samples as i64).sum());
    }

    /// Runs every maintenance step once: cut the head, compact, apply retention, delete replaced blocks.
    pub async fn maintain(&self) -> Result<(), StorageError> {
        let _g = self.maintenance.lock().await;
        while self.cut_once().await? {}
        if self.cfg.section.tsdb.compaction {
            loop {
                match self.compact_once().await {
                    Ok(true) => continue,
                    Ok(false) => break,
                    Err(e) => {
                        self.metrics.compactions_failed.inc();
                        return Err(e);
                    }
                }
            }
        }
        self.apply_retention()?;
        self.delete_doomed(false).await?;
        self.wal.refresh_metrics();
        self.head.refresh_metrics();
        Ok(())
    }

    /// Runs maintenance every `every` until `stop` fires.
    pub async fn run_maintenance(
        self: Arc<Self>,
        every: Duration,
        stop: tokio_util::sync::CancellationToken,
    ) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.cancelled() => return,
            }
            if let Err(e) = self.maintain().await {
                warn!(error = %e, "storage maintenance failed; will retry");
            }
        }
    }

    /// Cuts the oldest block range from the head if the head spans more than the configured ratio of
    /// block durations. Returns whether a block was cut.
    pub async fn cut_once(&self) -> Result<bool, StorageError> {
        let t = &self.cfg.section.tsdb;
        let bd = t.block_duration.as_millis();
        let Some((lo, hi)) = self.head.time_range() else {
            return Ok(false);
        };
        if ((hi - lo) as f64) <= bd as f64 * t.head_cut_ratio {
            return Ok(false);
        }
        let start = lo.div_euclid(bd) * bd;
        let end = start + bd;
        self.cut_range(start, end).await?;
        Ok(true)
    }

    /// Writes the head's samples below `end` (from `start` on, plus out-of-order ones) as a block and
    /// truncates the head and WAL.
    pub async fn cut_range(&self, start: i64, end: i64) -> Result<(), StorageError> {
        let t0 = Instant::now();
        self.head.begin_cut(end);
        let head = self.head.clone();
        let data = tokio::task::spawn_blocking(move || head.collect_for_block(start, end))
            .await
            .map_err(|e| StorageError::Join(e.to_string()))?;
        let written = self.write_block(&data, 1, vec![]).await;
        let blk = match written {
            Ok(b) => b,
            Err(e) => {
                self.head.restore_ooo(&data, end);
                return Err(e);
            }
        };
        drop(data);
        if let Some(b) = blk {
            info!(block = %b.meta.ulid, min_time = b.meta.min_time, max_time = b.meta.max_time, series = b.meta.stats.num_series,
                samples = b.meta.stats.num_samples, bytes = b.meta.stats.bytes, "cut a block from the head");
            self.add_block(b);
        }
        self.head.truncate(end);
        let (wal, head) = (self.wal.clone(), self.head.clone());
        tokio::task::spawn_blocking(move || wal.checkpoint(|sink| head.write_checkpoint(sink)))
            .await
            .map_err(|e| StorageError::Join(e.to_string()))??;
        self.metrics.head_cuts.inc();
        self.metrics
            .head_cut_seconds
            .observe(t0.elapsed().as_secs_f64());
        Ok(())
    }

    fn add_block(&self, b: Arc<Block>) {
        let mut blocks = self.blocks.write();
        blocks.push(b);
        blocks
            .sort_by(|a, b| (a.meta.min_time, &a.meta.ulid).cmp(&(b.meta.min_time, &b.meta.ulid)));
        drop(blocks);
        self.update_block_metrics();
    }

    /// Writes `data` (sorted by labels) as a new block and opens it. None when `data` has no samples.
    async fn write_block(
        &self,
        data: &[(Labels, Vec<(i64, f64)>)],
        level: u32,
        sources: Vec<String>,
    ) -> Result<Option<Arc<Block>>, StorageError> {
        let ulid = ulid::Ulid::new().to_string();
        let staging = self.staging.clone();
        let opts = self.writer_options();
        let u = ulid.clone();
        // The writer is synchronous and CPU-heavy (zstd): keep it off the async threads.
        let data_ref: &[(Labels, Vec<(i64, f64)>)] = data;
        let finished = tokio::task::block_in_place(|| -> Result<_, BlockError> {
            let mut w = BlockWriter::new(&staging, &u, &opts, level, sources)?;
            for (l, s) in data_ref {
                w.add_series(l, s)?;
            }
            w.finish()
        })?;
        let Some((dir, _meta)) = finished else {
            return Ok(None);
        };
        block::upload(self.store.as_ref(), &dir, &ulid).await?;
        Ok(Some(Arc::new(
            Block::open(self.store.clone(), &ulid).await?,
        )))
    }

    /// Merges one group of blocks chosen by the compaction plan. Returns whether it did anything.
    pub async fn compact_once(&self) -> Result<bool, StorageError> {
        let metas: Vec<block::BlockMeta> = self.block_metas();
        let t = &self.cfg.section.tsdb;
        let Some(group) = crate::compact::plan(
            &metas,
            t.block_duration.as_millis(),
            t.retention_time.as_millis(),
        ) else {
            return Ok(false);
        };
        let t0 = Instant::now();
        let inputs: Vec<Arc<Block>> = self
            .blocks
            .read()
            .iter()
            .filter(|b| group.contains(&b.meta.ulid))
            .cloned()
            .collect();
        let level = inputs
            .iter()
            .map(|b| b.meta.compaction.level)
            .max()
            .unwrap_or(1)
            + 1;
        let mut sources: Vec<String> = inputs
            .iter()
            .flat_map(|b| b.meta.compaction.sources.clone())
            .collect();
        sources.sort();
        sources.dedup();
        // Union of series in label order, with where each lives.
        let mut by_labels: BTreeMap<Labels, Vec<(usize, u32)>> = BTreeMap::new();
        for (bi, b) in inputs.iter().enumerate() {
            for id in b.all_ids() {
                by_labels
                    .entry(b.series(id).labels.clone())
                    .or_default()
                    .push((bi, id));
            }
        }
        let ulid = ulid::Ulid::new().to_string();
        let mut writer =
            BlockWriter::new(&self.staging, &ulid, &self.writer_options(), level, sources)?;
        let entries: Vec<(Labels, Vec<(usize, u32)>)> = by_labels.into_iter().collect();
        for chunk in entries.chunks(4096) {
            let mut per_block: Vec<Vec<u32>> = vec![Vec::new(); inputs.len()];
            for (_, locs) in chunk {
                for (bi, id) in locs {
                    per_block[*bi].push(*id);
                }
            }
            let mut read: Vec<HashMap<u32, Vec<(i64, f64)>>> = Vec::with_capacity(inputs.len());
            for (bi, ids) in per_block.iter().enumerate() {
                read.push(
                    inputs[bi]
                        .read(ids, i64::MIN, i64::MAX)
                        .await?
                        .into_iter()
                        .collect(),
                );
            }
            let merged: Vec<(Labels, Vec<(i64, f64)>)> = chunk
                .iter()
                .map(|(labels, locs)| {
                    let mut out: Vec<(i64, f64)> = Vec::new();
                    for (bi, id) in locs {
                        if let Some(s) = read[*bi].remove(id) {
                            out = merge_sorted(out, &s);
                        }
                    }
                    (labels.clone(), out)
                })
                .collect();
            tokio::task::block_in_place(|| -> Result<(), BlockError> {
                for (l, s) in &merged {
                    writer.add_series(l, s)?;
                }
                Ok(())
            })?;
        }
        let finished = tokio::task::block_in_place(|| writer.finish())?;
        if let Some((dir, _)) = finished {
            block::upload(self.store.as_ref(), &dir, &ulid).await?;
            let nb = Arc::new(Block::open(self.store.clone(), &ulid).await?);
            info!(block = %ulid, level, inputs = inputs.len(), samples = nb.meta.stats.num_samples, bytes = nb.meta.stats.bytes, "compacted blocks");
            self.add_block(nb);
        }
        self.retire(&group);
        self.metrics.compactions.inc();
        self.metrics
            .compaction_seconds
            .observe(t0.elapsed().as_secs_f64());
        Ok(true)
    }

    /// Removes blocks from the live set; their files go after a grace period.
    fn retire(&self, ulids: &[String]) {
        self.blocks
            .write()
            .retain(|b| !ulids.contains(&b.meta.ulid));
        let now = Instant::now();
        self.doomed
            .lock()
            .extend(ulids.iter().map(|u| (now, u.clone())));
        self.update_block_metrics();
    }

    async fn delete_doomed(&self, all: bool) -> Result<(), StorageError> {
        let due: Vec<String> = {
            let mut d = self.doomed.lock();
            let (due, keep): (Vec<_>, Vec<_>) = d
                .drain(..)
                .partition(|(t, _)| all || t.elapsed() >= DELETE_GRACE);
            *d = keep;
            due.into_iter().map(|(_, u)| u).collect()
        };
        for u in due {
            block::delete(self.store.as_ref(), &u).await?;
            remove_empty_dir(&self.cfg.data_dir.join("blocks").join(&u));
        }
        Ok(())
    }

    /// Deletes blocks past the retention time or beyond the size limit (oldest first).
    pub fn apply_retention(&self) -> Result<(), StorageError> {
        let t = &self.cfg.section.tsdb;
        let metas = self.block_metas();
        let mut expired: Vec<String> = Vec::new();
        let ret = t.retention_time.as_millis();
        if ret > 0
            && let Some(newest) = metas.iter().map(|m| m.max_time).max()
        {
            for m in &metas {
                if m.max_time < newest - ret {
                    expired.push(m.ulid.clone());
                }
            }
            let n = expired.len() as u64;
            self.metrics
                .retention_deleted_blocks
                .get_or_create(&ReasonLabel { reason: "time" })
                .inc_by(n);
        }
        let limit = t.retention_size.0;
        if limit > 0 {
            let mut total: u64 = self.wal.disk_size()
                + metas
                    .iter()
                    .filter(|m| !expired.contains(&m.ulid))
                    .map(|m| m.stats.bytes)
                    .sum::<u64>();
            let mut by_size = 0u64;
            for m in &metas {
                if total <= limit {
                    break;
                }
                if expired.contains(&m.ulid) {
                    continue;
                }
                total -= m.stats.bytes;
                expired.push(m.ulid.clone());
                by_size += 1;
            }
            self.metrics
                .retention_deleted_blocks
                .get_or_create(&ReasonLabel { reason: "size" })
                .inc_by(by_size);
        }
        if !expired.is_empty() {
            info!(blocks = ?expired, "retention: deleting blocks");
            self.retire(&expired);
        }
        Ok(())
    }

    /// Flushes and fsyncs the WAL and refuses further appends. Pending block deletions are done now.
    pub async fn close(&self) -> Result<(), StorageError> {
        let _g = self.maintenance.lock().await;
        self.wal.close()?;
        self.delete_doomed(true).await?;
        info!("metrics storage closed");
        Ok(())
    }

    fn overlapping_blocks(&self, mint: i64, maxt: i64) -> Vec<Arc<Block>> {
        self.blocks
            .read()
            .iter()
            .filter(|b| b.meta.max_time >= mint && b.meta.min_time <= maxt)
            .cloned()
            .collect()
    }
}

impl MetricsAppender for Tsdb {
    fn known(&self, packed: &[u8]) -> Option<Labels> {
        self.head.known(packed)
    }

    fn append(&self, batch: &[SeriesBatch]) -> Result<AppendOutcome, AppendError> {
        // After a failed WAL write or fsync nothing more is accepted until restart: the head
        // must not get ahead of what the WAL holds.
        self.wal.check()?;
        let mut outcome = AppendOutcome::default();
        let mut enc = SamplesEncoder::new();
        let wal = &self.wal;
        self.head
            .append(batch, Some(wal), &mut enc, &mut outcome, |enc| {
                if !enc.is_empty() {
                    wal.log(&std::mem::take(enc).finish())?;
                }
                Ok(())
            })?;
        // Series records are logged as series are created; one sync covers them and the samples
        // (and whatever other writers logged meanwhile: group commit).
        self.wal.sync(self.wal.last_seq())?;
        self.metrics.samples_appended.inc_by(outcome.appended);
        Ok(outcome)
    }
}

/// Lists `blocks/` and opens complete blocks; removes interrupted writes and blocks whose data a
/// compacted block already holds.
/// The local object store deletes files but leaves their directory behind.
fn remove_empty_dir(dir: &std::path::Path) {
    match std::fs::remove_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            warn!(dir = %dir.display(), error = %e, "cannot remove a deleted block's directory")
        }
    }
}

/// Removes directories under `blocks/` left empty by deletions that finished their files only.
fn remove_empty_block_dirs(blocks: &std::path::Path) {
    let Ok(rd) = std::fs::read_dir(blocks) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() && std::fs::read_dir(&p).is_ok_and(|mut d| d.next().is_none()) {
            remove_empty_dir(&p);
        }
    }
}

async fn load_blocks(store: &Arc<dyn ObjectStore>) -> Result<Vec<Arc<Block>>, StorageError> {
    let prefix = object_store::path::Path::from("blocks");
    let objects: Vec<object_store::ObjectMeta> = store.list(Some(&prefix)).try_collect().await?;
    let mut files: BTreeMap<String, HashSet<String>> = BTreeMap::new();
    for o in objects {
        let parts: Vec<String> = o.location.parts().map(|p| p.as_ref().to_string()).collect();
        if parts.len() == 3 {
            files
                .entry(parts[1].clone())
                .or_default()
                .insert(parts[2].clone());
        }
    }
    let mut blocks = Vec::new();
    for (ulid, names) in &files {
        if !names.contains(block::META_FILE) {
            warn!(block = %ulid, "removing an incomplete block (interrupted write or deletion)");
            block::delete(store.as_ref(), ulid).await?;
            continue;
        }
        match Block::open(store.clone(), ulid).await {
            Ok(b) => blocks.push(Arc::new(b)),
            Err(e) => {
                warn!(block = %ulid, error = %e, "cannot open block; leaving it in place and ignoring it")
            }
        }
    }
    // A compaction that died between writing its output and deleting its inputs leaves both.
    let mut superseded = Vec::new();
    for b in &blocks {
        let covered = blocks.iter().any(|o| {
            o.meta.ulid != b.meta.ulid
                && o.meta.compaction.level > b.meta.compaction.level
                && b.meta
                    .compaction
                    .sources
                    .iter()
                    .all(|s| o.meta.compaction.sources.contains(s))
        });
        if covered {
            superseded.push(b.meta.ulid.clone());
        }
    }
    for u in &superseded {
        info!(block = %u, "removing a block already merged into a compacted block");
        block::delete(store.as_ref(), u).await?;
    }
    blocks.retain(|b| !superseded.contains(&b.meta.ulid));
    blocks.sort_by(|a, b| (a.meta.min_time, &a.meta.ulid).cmp(&(b.meta.min_time, &b.meta.ulid)));
    Ok(blocks)
}

/// Merges per-source sample lists of one series (each sorted) into one, dropping repeated timestamps.
fn merge_parts(mut parts: Vec<Vec<(i64, f64)>>) -> Vec<(i64, f64)> {
    if parts.len() == 1 {
        return parts.pop().unwrap_or_default();
    }
    parts.sort_by_key(|p| p.first().map(|s| s.0));
    let mut out: Vec<(i64, f64)> = Vec::with_capacity(parts.iter().map(Vec::len).sum());
    for p in parts {
        if out
            .last()
            .is_none_or(|l| p.first().is_none_or(|f| f.0 > l.0))
        {
            out.extend(p);
        } else {
            out = merge_sorted(out, &p);
        }
    }
    out
}

impl MetricsReader for Tsdb {
    fn metadata(
        &self,
        metric: Option<&str>,
        limit: usize,
    ) -> Vec<(String, Vec<crate::MetricMetadata>)> {
        self.metadata.get(metric, limit)
    }

    async fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        max_samples: usize,
    ) -> Result<Vec<SeriesData>, ReadError> {
        let mut acc: BTreeMap<Labels, Vec<Vec<(i64, f64)>>> = BTreeMap::new();
        let mut total = 0usize;
        let mut check = |n: usize| -> Result<(), ReadError> {
            total += n;
            if max_samples > 0 && total > max_samples {
                return Err(ReadError::TooManySamples { limit: max_samples });
            }
            Ok(())
        };
        for b in self.overlapping_blocks(mint, maxt) {
            let ids = b.select(matchers);
            let est: usize = ids.iter().map(|i| b.series(*i).num_rows as usize).sum();
            if max_samples > 0 && est > max_samples.saturating_mul(4) {
                // Even allowing for the range cut, this cannot fit: refuse before reading.
                return Err(ReadError::TooManySamples { limit: max_samples });
            }
            for (id, samples) in b
                .read(&ids, mint, maxt)
                .await
                .map_err(|e| ReadError::Storage(e.to_string()))?
            {
                check(samples.len())?;
                acc.entry(b.series(id).labels.clone())
                    .or_default()
                    .push(samples);
            }
        }
        let refs = self.head.select_refs(matchers);
        for hs in self.head.read(&refs, mint, maxt) {
            check(hs.samples.len())?;
            acc.entry(hs.labels).or_default().push(hs.samples);
        }
        Ok(acc
            .into_iter()
            .map(|(labels, parts)| {
                let samples = merge_parts(parts);
                SeriesData {
                    labels,
                    timestamps: Int64Array::from_iter_values(samples.iter().map(|s| s.0)),
                    values: Float64Array::from_iter_values(samples.iter().map(|s| s.1)),
                }
            })
            .collect())
    }

    async fn series(
        &self,
        matchers: &[Vec<Matcher>],
        mint: i64,
        maxt: i64,
        limit: usize,
    ) -> Result<Vec<Labels>, ReadError> {
        let mut set: std::collections::BTreeSet<Labels> = std::collections::BTreeSet::new();
        for ms in matchers {
            for b in self.overlapping_blocks(mint, maxt) {
                for id in b.select(ms) {
                    let s = b.series(id);
                    if s.max_t >= mint && s.min_t <= maxt {
                        set.insert(s.labels.clone());
                    }
                }
            }
            let refs = self.head.select_refs(ms);
            set.extend(self.head.series_labels(&refs, mint, maxt));
        }
        let mut out: Vec<Labels> = set.into_iter().collect();
        if limit > 0 {
            out.truncate(limit);
        }
        Ok(out)
    }

    async fn label_names(
        &self,
        matchers: &[Vec<Matcher>],
        mint: i64,
        maxt: i64,
        limit: usize,
    ) -> Result<Vec<String>, ReadError> {
        let mut names: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
        if matchers.is_empty() {
            for b in self.overlapping_blocks(mint, maxt) {
                names.extend(b.label_names(None));
            }
            let refs = self.head.select_refs(&[]);
            for l in self.head.series_labels(&refs, mint, maxt) {
                names.extend(l.iter().map(|x| x.name.to_string()));
            }
        } else {
            for l in self.series(matchers, mint, maxt, 0).await? {
                names.extend(l.iter().map(|x| x.name.to_string()));
            }
        }
        let mut out: Vec<String> = names.into_iter().collect();
        if limit > 0 {
            out.truncate(limit);
        }
        Ok(out)
    }

    async fn label_values(
        &self,
        name: &str,
        matchers: &[Vec<Matcher>],
        mint: i64,
        maxt: i64,
        limit: usize,
    ) -> Result<Vec<String>, ReadError> {
        let mut values: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
        let all = if matchers.is_empty() {
            vec![Vec::new()]
        } else {
            matchers.to_vec()
        };
        for l in self.series(&all, mint, maxt, 0).await? {
            if let Some(v) = l.get(name) {
                values.insert(v.to_string());
            }
        }
        let mut out: Vec<String> = values.into_iter().collect();
        if limit > 0 {
            out.truncate(limit);
        }
        Ok(out)
    }

    async fn exemplars(
        &self,
        matchers: &[Vec<Matcher>],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<(Labels, Vec<Exemplar>)>, ReadError> {
        let mut out: Vec<(Labels, Vec<Exemplar>)> = Vec::new();
        for ms in matchers {
            for (l, ex) in self.exemplars.select(ms, mint, maxt) {
                if !out.iter().any(|(o, _)| *o == l) {
                    out.push((l, ex));
                }
            }
        }
        Ok(out)
    }
}
