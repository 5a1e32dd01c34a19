//! The in-memory head: every series seen recently, its recent samples in compressed chunks, and the
//! postings to find series by label.
//!
//! Concurrency: a series' samples are guarded by its own mutex; the series registry is sharded by label
//! hash. A new series' WAL record is logged while its shard is write-locked, before any other writer can
//! see it, so a samples record can never precede the series record it refers to.

use hashbrown::HashTable;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};
use vigil_model::{Labels, Matcher};

use crate::append::{AppendOutcome, RejectReason, SeriesBatch};
use crate::chunk::{SAMPLES_PER_CHUNK, XorAppender, XorChunk};
use crate::metrics::StorageMetrics;
use crate::postings::Postings;
use crate::wal::record::encode_series;
use crate::wal::{SamplesEncoder, Wal, WalError};

const SHARDS: usize = 64;

/// Series by hash of their labels (collisions are separate entries) or by reference. A table holds
/// just the series pointer (8 bytes an entry): the hash is recomputed from the labels or the
/// reference when the table grows.
type SeriesTable = HashTable<Arc<MemSeries>>;

/// Series references are sequential: spread them over the table's buckets.
#[inline]
fn ref_hash(r: u64) -> u64 {
    r.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// One series in the head.
pub struct MemSeries {
    pub series_ref: u64,
    pub labels: Labels,
    state: Mutex<SeriesState>,
}

// The head's memory is mostly one of these per series: keep it within jemalloc's 128-byte size
// class, counting the Arc's two reference counts.
const _: () = assert!(std::mem::size_of::<MemSeries>() + 16 <= 128);

struct SeriesState {
    chunks: ChunkList,
    /// The chunk being written; holds the series' newest in-order sample unless the series has none.
    open: XorAppender,
    /// Out-of-order samples (within the configured window), sorted by time.
    ooo: OooBuf,
    /// Set when garbage collection removed the series: writers holding it must look it up again.
    removed: bool,
}

/// The closed chunks of a series: a boxed slice (16 bytes in every series instead of a `Vec`'s 24),
/// reallocated on each push, which happens once per 120 samples.
#[derive(Default)]
struct ChunkList(Box<[XorChunk]>);

impl std::ops::Deref for ChunkList {
    type Target = [XorChunk];
    fn deref(&self) -> &[XorChunk] {
        &self.0
    }
}

impl ChunkList {
    fn push(&mut self, c: XorChunk) {
        let mut v = Vec::from(std::mem::take(&mut self.0));
        crate::alloc::long_lived(|| {
            v.reserve_exact(1);
            v.push(c);
        });
        self.0 = v.into_boxed_slice();
    }

    fn retain(&mut self, keep: impl FnMut(&XorChunk) -> bool) {
        let mut v = Vec::from(std::mem::take(&mut self.0));
        v.retain(keep);
        self.0 = crate::alloc::long_lived(|| v.into_boxed_slice());
    }
}

/// Out-of-order samples of a series: nothing but a null pointer for the many series that never
/// receive any.
/// (The extra allocation of a boxed `Vec` is on purpose: 8 bytes in every series instead of 24.)
#[derive(Default)]
#[allow(clippy::box_collection)]
struct OooBuf(Option<Box<Vec<(i64, f64)>>>);

impl std::ops::Deref for OooBuf {
    type Target = [(i64, f64)];
    fn deref(&self) -> &[(i64, f64)] {
        self.0.as_deref().map_or(&[], |v| v.as_slice())
    }
}

impl OooBuf {
    fn insert(&mut self, i: usize, s: (i64, f64)) {
        self.0.get_or_insert_with(Default::default).insert(i, s);
    }

    fn set(&mut self, v: Vec<(i64, f64)>) {
        self.0 = (!v.is_empty()).then(|| Box::new(v));
    }

    /// Takes out the first `n` samples.
    fn take_front(&mut self, n: usize) -> Vec<(i64, f64)> {
        let Some(v) = self.0.as_mut() else {
            return Vec::new();
        };
        let front = v.drain(..n).collect();
        if v.is_empty() {
            self.0 = None;
        }
        front
    }

    fn retain(&mut self, keep: impl FnMut(&(i64, f64)) -> bool) {
        if let Some(v) = self.0.as_mut() {
            v.retain(keep);
            if v.is_empty() {
                self.0 = None;
            }
        }
    }
}

impl SeriesState {
    fn new() -> Self {
        SeriesState {
            chunks: ChunkList::default(),
            open: XorAppender::new(),
            ooo: OooBuf::default(),
            removed: false,
        }
    }

    fn push_in_order(&mut self, t: i64, v: f64) {
        if self.open.count() >= SAMPLES_PER_CHUNK {
            let full = std::mem::replace(&mut self.open, XorAppender::new());
            self.chunks.push(full.finish());
        }
        self.open.append(t, v);
    }

    /// Time and value bits of the newest in-order sample (`i64::MIN` when there is none).
    fn last(&self) -> (i64, u64) {
        self.open.last().unwrap_or((i64::MIN, 0))
    }

    /// In-order samples with `mint <= t <= maxt`, followed by nothing else; sorted.
    fn in_order(&self, mint: i64, maxt: i64, out: &mut Vec<(i64, f64)>) {
        for c in self.chunks.iter() {
            if c.max_t < mint || c.min_t > maxt {
                continue;
            }
            out.extend(c.iter().filter(|(t, _)| *t >= mint && *t <= maxt));
        }
        if self.open.count() > 0 && self.open.max_t() >= mint && self.open.min_t() <= maxt {
            out.extend(self.open.iter().filter(|(t, _)| *t >= mint && *t <= maxt));
        }
    }

    fn first_in_order_t(&self, min_valid: i64) -> Option<i64> {
        let from_chunk =
            |it: &mut dyn Iterator<Item = (i64, f64)>| it.map(|(t, _)| t).find(|t| *t >= min_valid);
        for c in self.chunks.iter() {
            if c.max_t >= min_valid {
                return from_chunk(&mut c.iter());
            }
        }
        if self.open.count() > 0 && self.open.max_t() >= min_valid {
            return from_chunk(&mut self.open.iter());
        }
        None
    }
}

/// Merges two sorted sample lists; on equal timestamps the first list wins.
pub(crate) fn merge_sorted(a: Vec<(i64, f64)>, b: &[(i64, f64)]) -> Vec<(i64, f64)> {
    if b.is_empty() {
        return a;
    }
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if j >= b.len() || (i < a.len() && a[i].0 <= b[j].0) {
            if j < b.len() && a[i].0 == b[j].0 {
                j += 1;
            }
            out.push(a[i]);
            i += 1;
        } else {
            out.push(b[j]);
            j += 1;
        }
    }
    out
}

/// The head of the metrics store.
pub struct Head {
    /// By hash of the labels, in `SHARDS` locks.
    shards: Vec<RwLock<SeriesTable>>,
    by_ref: RwLock<SeriesTable>,
    postings: RwLock<Postings>,
    next_ref: AtomicU64,
    /// In-order samples older than this are refused (their range is in a block already).
    min_valid_time: AtomicI64,
    /// Reads ignore in-order samples older than this: they are in a block. Trails `min_valid_time`
    /// while a block is being cut, so the data stays visible until the block is.
    read_min_time: AtomicI64,
    min_time: AtomicI64,
    max_time: AtomicI64,
    ooo_window_ms: i64,
    metrics: Arc<StorageMetrics>,
}

/// Samples of a series read from the head.
pub struct HeadSeries {
    pub series_ref: u64,
    pub labels: Labels,
    pub samples: Vec<(i64, f64)>,
}

impl Head {
    pub fn new(ooo_window_ms: i64, metrics: Arc<StorageMetrics>) -> Self {
        Head {
            shards: (0..SHARDS)
                .map(|_| RwLock::new(SeriesTable::new()))
                .collect(),
            by_ref: RwLock::new(SeriesTable::new()),
            postings: RwLock::new(Postings::default()),
            next_ref: AtomicU64::new(1),
            min_valid_time: AtomicI64::new(i64::MIN),
            read_min_time: AtomicI64::new(i64::MIN),
            min_time: AtomicI64::new(i64::MAX),
            max_time: AtomicI64::new(i64::MIN),
            ooo_window_ms,
            metrics,
        }
    }

    pub fn num_series(&self) -> usize {
        self.by_ref.read().len()
    }

    /// Lowest and highest in-order sample time in the head; `None` when empty.
    pub fn time_range(&self) -> Option<(i64, i64)> {
        let (lo, hi) = (
            self.min_time.load(Ordering::Acquire),
            self.max_time.load(Ordering::Acquire),
        );
        (lo <= hi).then_some((lo, hi))
    }

    pub fn min_valid_time(&self) -> i64 {
        self.min_valid_time.load(Ordering::Acquire)
    }

    fn shard(&self, hash: u64) -> &RwLock<SeriesTable> {
        &self.shards[(hash as usize) % SHARDS]
    }

    /// The labels of a series, by packed form (see [`Labels::packed`]).
    pub fn known(&self, packed: &[u8]) -> Option<Labels> {
        let hash = Labels::hash_packed(packed);
        self.shard(hash)
            .read()
            .find(hash, |s| s.labels.packed() == packed)
            .map(|s| s.labels.clone())
    }

    fn lookup(&self, hash: u64, labels: &Labels) -> Option<Arc<MemSeries>> {
        self.shard(hash)
            .read()
            .find(hash, |s| s.labels == *labels)
            .cloned()
    }

    /// Finds or creates the series; a new series' record is logged to `wal` (when given) before it
    /// becomes visible.
    fn get_or_create(
        &self,
        labels: &Labels,
        wal: Option<&Wal>,
    ) -> Result<(Arc<MemSeries>, bool), WalError> {
        let hash = labels.stable_hash();
        if let Some(s) = self.lookup(hash, labels) {
            return Ok((s, false));
        }
        let mut shard = self.shard(hash).write();
        if let Some(s) = shard.find(hash, |s| s.labels == *labels) {
            return Ok((s.clone(), false));
        }
        let series_ref = self.next_ref.fetch_add(1, Ordering::Relaxed);
        if let Some(wal) = wal {
            let mut buf = Vec::with_capacity(64);
            encode_series(&mut buf, series_ref, labels);
            wal.log(&buf)?;
        }
        let s = self.insert_locked(&mut shard, hash, series_ref, labels.clone());
        Ok((s, true))
    }

    fn insert_locked(
        &self,
        shard: &mut SeriesTable,
        hash: u64,
        series_ref: u64,
        labels: Labels,
    ) -> Arc<MemSeries> {
        // Everything allocated here lives as long as the series; `labels` was built by a decoder
        // among its request's short-lived allocations, so the head keeps its own copy.
        let s = crate::alloc::long_lived(|| {
            let s = Arc::new(MemSeries {
                series_ref,
                labels: labels.deep_clone(),
                state: Mutex::new(SeriesState::new()),
            });
            shard.insert_unique(hash, s.clone(), |x| x.labels.stable_hash());
            // Refs come from a counter but two shards may insert out of ref order; Postings handles that.
            self.postings
                .write()
                .add(series_ref, s.labels.iter().map(|l| (l.name, l.value)));
            self.by_ref
                .write()
                .insert_unique(ref_hash(series_ref), s.clone(), |x| ref_hash(x.series_ref));
            s
        });
        drop(labels);
        self.metrics.head_series_created.inc();
        self.metrics.head_series.inc();
        s
    }

    /// Appends a batch. Accepted samples are added to `wal_out`, and `log(wal_out)` is called while
    /// every series of the batch is still locked: two batches that share a series are logged in the
    /// order the head applied them, so replay accepts exactly what was acknowledged. Batches with
    /// disjoint series run in parallel. Locks are taken in series-ref order, so batches never
    /// deadlock. The caller syncs the WAL after `append` returns.
    pub fn append(
        &self,
        batch: &[SeriesBatch],
        wal: Option<&Wal>,
        wal_out: &mut SamplesEncoder,
        outcome: &mut AppendOutcome,
        log: impl FnOnce(&mut SamplesEncoder) -> Result<(), WalError>,
    ) -> Result<(), WalError> {
        let mut batch_min = i64::MAX;
        let mut batch_max = i64::MIN;
        let mut created = 0u64;
        // Resolve every series first (creating and logging new ones), then lock them all.
        let mut entries: Vec<(Arc<MemSeries>, usize)> = Vec::with_capacity(batch.len());
        for (i, sb) in batch.iter().enumerate() {
            if sb.samples.is_empty() {
                continue;
            }
            let (series, new) = self.get_or_create(&sb.labels, wal)?;
            created += new as u64;
            entries.push((series, i));
        }
        // Stable: samples of one series sent twice in a batch keep their order.
        entries.sort_by_key(|(s, _)| s.series_ref);
        loop {
            let mut guards = Vec::with_capacity(entries.len());
            let mut stale = false;
            for (k, (series, _)) in entries.iter().enumerate() {
                if k > 0 && Arc::ptr_eq(&entries[k - 1].0, series) {
                    continue;
                }
                let g = series.state.lock();
                stale |= g.removed;
                guards.push((k, g));
            }
            if stale {
                // A series was garbage-collected between lookup and lock (it had no samples left):
                // look the batch up again, which recreates it.
                drop(guards);
                for (series, i) in entries.iter_mut() {
                    if series.state.lock().removed {
                        let (s, new) = self.get_or_create(&batch[*i].labels, wal)?;
                        created += new as u64;
                        *series = s;
                    }
                }
                entries.sort_by_key(|(s, _)| s.series_ref);
                continue;
            }
            let mut accepted: Vec<(i64, f64)> = Vec::new();
            let mut gi = 0;
            for (k, (series, i)) in entries.iter().enumerate() {
                while gi + 1 < guards.len() && guards[gi + 1].0 <= k {
                    gi += 1;
                }
                let st = &mut guards[gi].1;
                accepted.clear();
                self.append_locked(series, st, &batch[*i], &mut accepted, outcome, true);
                if let (Some(first), Some(last)) = (accepted.first(), accepted.last()) {
                    batch_min = batch_min.min(first.0);
                    batch_max = batch_max.max(last.0);
                    wal_out.add(series.series_ref, &accepted);
                }
            }
            log(wal_out)?;
            drop(guards);
            break;
        }
        outcome.series_created += created;
        if batch_min <= batch_max {
            self.min_time
                .fetch_min(batch_min.max(self.min_valid_time()), Ordering::AcqRel);
            self.max_time.fetch_max(batch_max, Ordering::AcqRel);
        }
        Ok(())
    }

    fn append_locked(
        &self,
        series: &MemSeries,
        st: &mut SeriesState,
        sb: &SeriesBatch,
        accepted: &mut Vec<(i64, f64)>,
        outcome: &mut AppendOutcome,
        count_rejections: bool,
    ) {
        let min_valid = self.min_valid_time();
        let head_max = self.max_time.load(Ordering::Acquire);
        for s in &sb.samples {
            let (t, v) = (s.t, s.v);
            let (last_t, last_v) = st.last();
            if last_t == i64::MIN || t > last_t {
                if t >= min_valid {
                    st.push_in_order(t, v);
                    accepted.push((t, v));
                    outcome.appended += 1;
                    continue;
                }
            } else if t == last_t {
                if v.to_bits() == last_v {
                    outcome.duplicates_ignored += 1;
                } else {
                    outcome.reject(&series.labels, t, RejectReason::Duplicate);
                    if count_rejections {
                        self.metrics.reject(RejectReason::Duplicate.as_label(), 1);
                    }
                }
                continue;
            }
            // Older than the series' newest sample, or older than the head accepts in order.
            let newest = head_max.max(last_t);
            if self.ooo_window_ms > 0
                && newest != i64::MIN
                && t >= newest.saturating_sub(self.ooo_window_ms)
            {
                match st.ooo.binary_search_by_key(&t, |(ts, _)| *ts) {
                    Ok(i) if st.ooo[i].1.to_bits() == v.to_bits() => {
                        outcome.duplicates_ignored += 1
                    }
                    Ok(_) => {
                        outcome.reject(&series.labels, t, RejectReason::Duplicate);
                        if count_rejections {
                            self.metrics.reject(RejectReason::Duplicate.as_label(), 1);
                        }
                    }
                    Err(i) => {
                        st.ooo.insert(i, (t, v));
                        accepted.push((t, v));
                        outcome.appended += 1;
                    }
                }
                continue;
            }
            let reason = if t < min_valid {
                RejectReason::OutOfBounds
            } else {
                RejectReason::OutOfOrder
            };
            outcome.reject(&series.labels, t, reason);
            if count_rejections {
                self.metrics.reject(reason.as_label(), 1);
            }
        }
        // Staleness markers are stored like any sample; queries interpret them. The WAL record keeps
        // arrival order and replay re-applies these same rules.
    }

    /// Re-creates a series from a WAL series record. Returns the series (an existing one when the same
    /// labels were logged before under another reference).
    pub fn replay_series(&self, series_ref: u64, labels: Labels) -> Arc<MemSeries> {
        let hash = labels.stable_hash();
        if let Some(s) = self.lookup(hash, &labels) {
            return s;
        }
        self.next_ref.fetch_max(series_ref + 1, Ordering::Relaxed);
        let mut shard = self.shard(hash).write();
        self.insert_locked(&mut shard, hash, series_ref, labels)
    }

    /// Re-applies logged samples to a series with the normal rules (duplicates of what a checkpoint
    /// already holds are ignored).
    pub fn replay_samples(&self, series: &MemSeries, samples: &[(i64, f64)]) -> u64 {
        let sb = SeriesBatch {
            labels: Labels::empty(),
            samples: samples
                .iter()
                .map(|&(t, v)| vigil_model::Sample { t, v })
                .collect(),
        };
        let mut outcome = AppendOutcome::default();
        let mut accepted = Vec::new();
        let mut st = series.state.lock();
        // Replay must not count rejections as fresh ones: use a scratch outcome.
        self.append_locked(series, &mut st, &sb, &mut accepted, &mut outcome, false);
        drop(st);
        if let (Some(f), Some(l)) = (accepted.first(), accepted.last()) {
            self.min_time
                .fetch_min(f.0.max(self.min_valid_time()), Ordering::AcqRel);
            self.max_time.fetch_max(l.0, Ordering::AcqRel);
        }
        outcome.appended
    }

    /// Sets the lowest time accepted and read in order (blocks hold what is below).
    pub fn set_min_valid_time(&self, t: i64) {
        self.min_valid_time.fetch_max(t, Ordering::AcqRel);
        self.read_min_time.fetch_max(t, Ordering::AcqRel);
    }

    /// Series refs selected by the matchers.
    pub fn select_refs(&self, matchers: &[Matcher]) -> Vec<u64> {
        self.postings.read().select(matchers)
    }

    pub fn series_by_ref(&self, r: u64) -> Option<Arc<MemSeries>> {
        self.by_ref
            .read()
            .find(ref_hash(r), |s| s.series_ref == r)
            .cloned()
    }

    /// Samples of the selected series in `[mint, maxt]`. Series without samples in range are skipped.
    pub fn read(&self, refs: &[u64], mint: i64, maxt: i64) -> Vec<HeadSeries> {
        let min_valid = self.read_min_time.load(Ordering::Acquire);
        let mut out = Vec::with_capacity(refs.len());
        for r in refs {
            let Some(s) = self.series_by_ref(*r) else {
                continue;
            };
            let st = s.state.lock();
            let mut samples = Vec::with_capacity(128);
            st.in_order(mint.max(min_valid), maxt, &mut samples);
            let ooo: Vec<(i64, f64)> = st
                .ooo
                .iter()
                .copied()
                .filter(|(t, _)| *t >= mint && *t <= maxt)
                .collect();
            drop(st);
            let samples = merge_sorted(samples, &ooo);
            if !samples.is_empty() {
                out.push(HeadSeries {
                    series_ref: s.series_ref,
                    labels: s.labels.clone(),
                    samples,
                });
            }
        }
        out
    }

    /// Labels of the selected series that have samples in `[mint, maxt]` (or that exist at all when the
    /// range covers the whole head).
    pub fn series_labels(&self, refs: &[u64], mint: i64, maxt: i64) -> Vec<Labels> {
        let min_valid = self.read_min_time.load(Ordering::Acquire);
        refs.iter()
            .filter_map(|r| self.series_by_ref(*r))
            .filter(|s| {
                let st = s.state.lock();
                let in_order = st
                    .chunks
                    .iter()
                    .any(|c| c.max_t >= mint.max(min_valid) && c.min_t <= maxt)
                    || (st.open.count() > 0
                        && st.open.max_t() >= mint.max(min_valid)
                        && st.open.min_t() <= maxt);
                in_order || st.ooo.iter().any(|(t, _)| *t >= mint && *t <= maxt)
            })
            .map(|s| s.labels.clone())
            .collect()
    }

    /// Starts cutting `[.., hi)` into a block: from now on appends below `hi` are refused in order
    /// (out-of-order ones within the window still land in the out-of-order buffer).
    pub fn begin_cut(&self, hi: i64) {
        self.min_valid_time.fetch_max(hi, Ordering::AcqRel);
    }

    /// Every in-order sample in `[lo, hi)` plus the out-of-order samples below `hi`, per series, sorted
    /// by labels, for cutting a block. The out-of-order samples are taken out of the head (give them back
    /// with [`Head::restore_ooo`] if the block cannot be written).
    pub fn collect_for_block(&self, lo: i64, hi: i64) -> Vec<(Labels, Vec<(i64, f64)>)> {
        let min_valid = self.read_min_time.load(Ordering::Acquire);
        let all: Vec<Arc<MemSeries>> = self.by_ref.read().iter().cloned().collect();
        let mut out = Vec::with_capacity(all.len());
        for s in all {
            let mut st = s.state.lock();
            let mut samples = Vec::new();
            st.in_order(lo.max(min_valid), hi - 1, &mut samples);
            let split = st.ooo.partition_point(|(t, _)| *t < hi);
            let ooo = st.ooo.take_front(split);
            drop(st);
            let samples = merge_sorted(samples, &ooo);
            if !samples.is_empty() {
                out.push((s.labels.clone(), samples));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Puts back out-of-order samples taken by [`Head::collect_for_block`] when the block failed.
    pub fn restore_ooo(&self, data: &[(Labels, Vec<(i64, f64)>)], below: i64) {
        for (labels, samples) in data {
            let Some(s) = self.lookup(labels.stable_hash(), labels) else {
                continue;
            };
            let mut st = s.state.lock();
            let keep_from = st.ooo.partition_point(|(t, _)| *t < below);
            let mut back: Vec<(i64, f64)> = samples
                .iter()
                .copied()
                .filter(|(t, _)| *t < below)
                .collect();
            // In-order samples of the range are still in the chunks; only re-add what the chunks lack.
            let mut in_order = Vec::new();
            st.in_order(i64::MIN, below - 1, &mut in_order);
            back.retain(|(t, _)| in_order.binary_search_by_key(t, |(x, _)| *x).is_err());
            let merged = merge_sorted(back, &st.ooo[keep_from..]);
            st.ooo.set(merged);
        }
    }

    /// Drops everything below `t` (now persisted in a block), removes series left empty, and makes `t`
    /// the lowest in-order time accepted and read.
    pub fn truncate(&self, t: i64) {
        self.min_valid_time.fetch_max(t, Ordering::AcqRel);
        self.read_min_time.fetch_max(t, Ordering::AcqRel);
        let all: Vec<Arc<MemSeries>> = self.by_ref.read().iter().cloned().collect();
        let mut removed = Vec::new();
        let mut new_min = i64::MAX;
        let mut chunks = 0usize;
        for s in &all {
            let mut st = s.state.lock();
            st.chunks.retain(|c| c.max_t >= t);
            if st.open.count() > 0 && st.open.max_t() < t {
                st.open = XorAppender::new();
            }
            st.ooo.retain(|(ts, _)| *ts >= t);
            if let Some(first) = st.first_in_order_t(t) {
                new_min = new_min.min(first);
            }
            chunks += st.chunks.len() + usize::from(st.open.count() > 0);
            if st.chunks.is_empty() && st.open.count() == 0 && st.ooo.is_empty() {
                st.removed = true;
                removed.push(s.clone());
            }
        }
        if !removed.is_empty() {
            let mut ids: Vec<u64> = removed.iter().map(|s| s.series_ref).collect();
            ids.sort_unstable();
            for s in &removed {
                let hash = s.labels.stable_hash();
                let mut shard = self.shard(hash).write();
                if let Ok(e) = shard.find_entry(hash, |x| x.series_ref == s.series_ref) {
                    e.remove();
                }
            }
            let mut by_ref = self.by_ref.write();
            for &id in &ids {
                if let Ok(e) = by_ref.find_entry(ref_hash(id), |x| x.series_ref == id) {
                    e.remove();
                }
            }
            drop(by_ref);
            self.postings.write().remove(&ids);
            self.metrics.head_series_removed.inc_by(ids.len() as u64);
            self.metrics.head_series.dec_by(ids.len() as i64);
        }
        // Unsynchronised with concurrent appends on purpose: an append racing this only lowers
        // min_time through fetch_min afterwards, which keeps it correct.
        self.min_time.store(
            if new_min == i64::MAX {
                self.max_time.load(Ordering::Acquire).max(t)
            } else {
                new_min
            },
            Ordering::Release,
        );
        if self.by_ref.read().is_empty() {
            self.min_time.store(i64::MAX, Ordering::Release);
            self.max_time.store(i64::MIN, Ordering::Release);
        }
        self.metrics.head_chunks.set(chunks as i64);
        self.update_time_metrics();
    }

    pub fn update_time_metrics(&self) {
        if let Some((lo, hi)) = self.time_range() {
            self.metrics.head_min_time.set(lo);
            self.metrics.head_max_time.set(hi);
        }
    }

    /// Writes the head's state as WAL records (for a checkpoint): min valid time, every series, every
    /// sample it holds.
    pub fn write_checkpoint(&self, sink: &mut dyn FnMut(&[u8])) {
        let mut buf = Vec::new();
        crate::wal::record::encode_min_time(&mut buf, self.min_valid_time());
        sink(&buf);
        let mut all: Vec<Arc<MemSeries>> = self.by_ref.read().iter().cloned().collect();
        all.sort_by_key(|s| s.series_ref);
        for s in &all {
            buf.clear();
            encode_series(&mut buf, s.series_ref, &s.labels);
            sink(&buf);
        }
        let min_valid = self.min_valid_time();
        for group in all.chunks(1000) {
            let mut enc = SamplesEncoder::new();
            for s in group {
                let st = s.state.lock();
                let mut samples = Vec::new();
                st.in_order(min_valid, i64::MAX, &mut samples);
                let ooo = st.ooo.to_vec();
                drop(st);
                // In-order samples first so replay rebuilds chunks in order, then the out-of-order ones.
                let mut all_samples = samples;
                all_samples.extend(ooo);
                enc.add(s.series_ref, &all_samples);
            }
            if !enc.is_empty() {
                sink(&enc.finish());
            }
        }
    }

    /// Chunk count, for metrics.
    pub fn refresh_metrics(&self) {
        let all: Vec<Arc<MemSeries>> = self.by_ref.read().iter().cloned().collect();
        let mut chunks = 0usize;
        for s in &all {
            let st = s.state.lock();
            chunks += st.chunks.len() + usize::from(st.open.count() > 0);
        }
        self.metrics.head_chunks.set(chunks as i64);
        self.metrics.head_series.set(all.len() as i64);
        self.update_time_metrics();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_model::{MatchOp, Sample};

    fn sb(name: &str, samples: &[(i64, f64)]) -> SeriesBatch {
        SeriesBatch {
            labels: Labels::from_pairs([("__name__", name)]),
            samples: samples.iter().map(|&(t, v)| Sample { t, v }).collect(),
        }
    }

    fn append(h: &Head, b: &[SeriesBatch]) -> AppendOutcome {
        let mut o = AppendOutcome::default();
        let mut enc = SamplesEncoder::new();
        h.append(b, None, &mut enc, &mut o, |_| Ok(())).unwrap();
        o
    }

    #[test]
    fn in_order_duplicates_and_out_of_order() {
        let h = Head::new(0, Arc::new(StorageMetrics::default()));
        let o = append(&h, &[sb("a", &[(10, 1.0), (20, 2.0)])]);
        assert_eq!((o.appended, o.series_created, o.rejected), (2, 1, 0));
        let o = append(
            &h,
            &[sb("a", &[(20, 2.0), (20, 3.0), (15, 9.0), (30, 3.0)])],
        );
        assert_eq!(o.appended, 1);
        assert_eq!(o.duplicates_ignored, 1);
        assert_eq!(o.rejected, 2);
        assert_eq!(o.rejections[0].reason, RejectReason::Duplicate);
        assert_eq!(o.rejections[1].reason, RejectReason::OutOfOrder);
        let refs = h.select_refs(&[Matcher::new(MatchOp::Equal, "__name__", "a").unwrap()]);
        let got = h.read(&refs, 0, 100);
        assert_eq!(got[0].samples, vec![(10, 1.0), (20, 2.0), (30, 3.0)]);
    }

    #[test]
    fn replay_skips_without_counting_rejections() {
        let m = Arc::new(StorageMetrics::default());
        let h = Head::new(0, m.clone());
        let s = h.replay_series(1, Labels::from_pairs([("__name__", "a")]));
        assert_eq!(h.replay_samples(&s, &[(10, 1.0), (20, 2.0)]), 2);
        // Below the head's lower bound (a cut happened), older than the newest and a duplicate with
        // another value: skipped by replay, and none of them is a refused write.
        h.set_min_valid_time(15);
        assert_eq!(h.replay_samples(&s, &[(12, 5.0), (18, 5.0), (20, 9.0)]), 0);
        let counted: u64 = [
            RejectReason::OutOfBounds,
            RejectReason::OutOfOrder,
            RejectReason::Duplicate,
        ]
        .iter()
        .map(|r| {
            m.samples_rejected
                .get_or_create(&crate::metrics::ReasonLabel {
                    reason: r.as_label(),
                })
                .get()
        })
        .sum();
        assert_eq!(counted, 0);
        // The same samples through a normal append are counted.
        append(&h, &[sb("a", &[(12, 5.0)])]);
        let oob = m
            .samples_rejected
            .get_or_create(&crate::metrics::ReasonLabel {
                reason: "out_of_bounds",
            })
            .get();
        assert_eq!(oob, 1);
    }

    #[test]
    fn ooo_window_accepts_and_merges() {
        let h = Head::new(100, Arc::new(StorageMetrics::default()));
        append(&h, &[sb("a", &[(1000, 1.0), (1100, 2.0)])]);
        let o = append(&h, &[sb("a", &[(1050, 1.5), (500, 0.5)])]);
        assert_eq!(o.appended, 1);
        assert_eq!(o.rejections[0].reason, RejectReason::OutOfOrder);
        let refs = h.select_refs(&[]);
        assert_eq!(
            h.read(&refs, 0, 2000)[0].samples,
            vec![(1000, 1.0), (1050, 1.5), (1100, 2.0)]
        );
    }

    #[test]
    fn chunks_roll_over_and_truncate_drops_old() {
        let h = Head::new(0, Arc::new(StorageMetrics::default()));
        let samples: Vec<(i64, f64)> = (0..500).map(|i| (i * 10, i as f64)).collect();
        append(&h, &[sb("a", &samples), sb("b", &[(5, 1.0)])]);
        let refs = h.select_refs(&[]);
        assert_eq!(
            h.read(&refs, 0, 10_000)
                .iter()
                .map(|s| s.samples.len())
                .sum::<usize>(),
            501
        );
        let block = h.collect_for_block(0, 2000);
        assert_eq!(block.len(), 2);
        assert_eq!(block[0].1.len(), 200);
        h.truncate(2000);
        // Series b had nothing left and is gone; a keeps samples from 2000 on.
        assert_eq!(h.num_series(), 1);
        let refs = h.select_refs(&[]);
        let got = h.read(&refs, 0, 10_000);
        assert_eq!(got[0].samples.first().unwrap().0, 2000);
        assert_eq!(got[0].samples.len(), 300);
        assert_eq!(h.time_range(), Some((2000, 4990)));
        // Too old now.
        let o = append(&h, &[sb("a", &[(1500, 1.0)]), sb("c", &[(1999, 1.0)])]);
        assert_eq!(o.rejected, 2);
        assert!(
            o.rejections
                .iter()
                .all(|r| r.reason == RejectReason::OutOfBounds)
        );
    }
}
