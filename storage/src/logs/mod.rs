//! The log store: WAL, in-memory head, Tantivy splits per time window.
//!
//! [`LogStore::append`] logs a push batch to the WAL and fsyncs before it returns (an acknowledged push
//! survives `kill -9`), then adds it to the head. A cut (when the head holds `head_max_bytes` or has
//! held entries for `head_max_age`) freezes the head, rotates the WAL, writes one split per time window
//! the entries fall in (see [`split`]), publishes them, records the last WAL segment they cover in
//! `wal_covered`, and deletes those segments. At start-up, splits that cover later segments than
//! `wal_covered` (a cut that did not finish) are deleted and the WAL is replayed into the head.
//!
//! Reads see the head, heads being cut and splits as one consistent snapshot. Retention deletes whole
//! splits. Compaction merges the small splits of a window into one (segments merged, nothing
//! tokenized again): the merged split names its inputs in `replaces`, is published, then the inputs
//! are deleted; a start-up after a crash in between deletes inputs that a split replaces.
//!
//! Layout under the data directory: `logs/wal/`, `logs/splits/<ulid>/`, `logs/wal_covered`.

mod head;
mod lines;
mod record;
mod split;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};
use vigil_model::{Labels, LogStream, Matcher};

pub use head::AppendStats;
use head::Head;
use split::{Bound, NewEntry, Split};

use crate::config::LogsConfig;
use crate::metrics::WalMetrics;
use crate::wal::{Wal, WalError};

#[derive(Debug, thiserror::Error)]
pub enum LogsError {
    #[error(transparent)]
    Wal(#[from] WalError),
    #[error("log split {path}: {message}")]
    Split { path: PathBuf, message: String },
    #[error("log store {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// More lines wait for indexing than `max_unindexed_bytes`: nothing was stored; retry later.
    #[error(
        "indexing is behind: {pending} bytes of lines wait to be written into splits, over the limit of {limit} (storage.logs.max_unindexed_bytes); retry later"
    )]
    Backlog { pending: u64, limit: u64 },
}

/// The log store's own metrics (`vigil_logs_*`).
#[derive(Clone)]
pub struct LogsMetrics {
    pub entries_appended: Counter,
    pub bytes_appended: Counter,
    pub duplicates_dropped: Counter,
    pub head_entries: Gauge,
    pub head_bytes: Gauge,
    pub head_streams: Gauge,
    pub splits: Gauge,
    pub split_disk_bytes: Gauge,
    pub split_raw_bytes: Gauge,
    pub cuts: Counter,
    pub cut_failures: Counter,
    pub cut_seconds: Histogram,
    pub retention_deleted_splits: Counter,
    pub backlog_refusals: Counter,
    pub compactions: Counter,
    pub compacted_splits: Counter,
    pub compaction_failures: Counter,
    pub compaction_seconds: Histogram,
    pub wal: WalMetrics,
}

impl Default for LogsMetrics {
    fn default() -> Self {
        LogsMetrics {
            entries_appended: Counter::default(),
            bytes_appended: Counter::default(),
            duplicates_dropped: Counter::default(),
            head_entries: Gauge::default(),
            head_bytes: Gauge::default(),
            head_streams: Gauge::default(),
            splits: Gauge::default(),
            split_disk_bytes: Gauge::default(),
            split_raw_bytes: Gauge::default(),
            cuts: Counter::default(),
            cut_failures: Counter::default(),
            cut_seconds: Histogram::new(exponential_buckets(0.01, 2.0, 14)),
            retention_deleted_splits: Counter::default(),
            backlog_refusals: Counter::default(),
            compactions: Counter::default(),
            compacted_splits: Counter::default(),
            compaction_failures: Counter::default(),
            compaction_seconds: Histogram::new(exponential_buckets(0.01, 2.0, 14)),
            wal: WalMetrics::default(),
        }
    }
}

impl LogsMetrics {
    /// Registers every metric under the `vigil_logs` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("vigil_logs");
        r.register(
            "entries_appended",
            "Log entries stored (acknowledged pushes)",
            self.entries_appended.clone(),
        );
        r.register(
            "appended_bytes",
            "Bytes of log lines stored",
            self.bytes_appended.clone(),
        );
        r.register(
            "duplicates_dropped",
            "Entries dropped as exact repeats (same time and line) of an entry the head holds for their stream",
            self.duplicates_dropped.clone(),
        );
        r.register(
            "backlog_refused_appends",
            "Appends refused because more lines waited for indexing than storage.logs.max_unindexed_bytes",
            self.backlog_refusals.clone(),
        );
        r.register(
            "head_entries",
            "Entries in the in-memory head",
            self.head_entries.clone(),
        );
        r.register(
            "head_bytes",
            "Bytes of lines in the in-memory head",
            self.head_bytes.clone(),
        );
        r.register(
            "head_streams",
            "Streams in the in-memory head",
            self.head_streams.clone(),
        );
        r.register("splits", "Log splits on disk", self.splits.clone());
        r.register(
            "split_disk_bytes",
            "Bytes of all log splits on disk",
            self.split_disk_bytes.clone(),
        );
        r.register(
            "split_raw_bytes",
            "Bytes of the raw lines the splits hold",
            self.split_raw_bytes.clone(),
        );
        r.register("cuts", "Head cuts into splits", self.cuts.clone());
        r.register(
            "cut_failures",
            "Head cuts that failed (the entries stay in memory and in the WAL)",
            self.cut_failures.clone(),
        );
        r.register(
            "cut_duration_seconds",
            "Time to write the splits of a head cut",
            self.cut_seconds.clone(),
        );
        r.register(
            "retention_deleted_splits",
            "Splits deleted by retention",
            self.retention_deleted_splits.clone(),
        );
        r.register(
            "compactions",
            "Compactions: small splits of one window merged into one",
            self.compactions.clone(),
        );
        r.register(
            "compacted_splits",
            "Splits merged into others by compaction (and deleted)",
            self.compacted_splits.clone(),
        );
        r.register(
            "compaction_failures",
            "Compactions that failed (the small splits stay as they were)",
            self.compaction_failures.clone(),
        );
        r.register(
            "compaction_duration_seconds",
            "Time to merge the splits of one compaction",
            self.compaction_seconds.clone(),
        );
        self.wal.register(r);
    }
}

/// What a read selects: streams, a time range `[start, end)` in ns, and substrings every line must
/// contain (case-sensitive; answered from the index where it can).
#[derive(Clone, Debug, Default)]
pub struct LogSelect {
    pub matchers: Vec<Matcher>,
    pub start: i64,
    pub end: i64,
    pub contains: Vec<String>,
}

impl LogSelect {
    fn line_ok(&self, line: &str) -> bool {
        self.contains.iter().all(|n| line.contains(n.as_str()))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Forward,
    Backward,
}

/// An entry read back.
#[derive(Clone, Debug)]
pub struct LogRow {
    pub labels: Labels,
    pub ts: i64,
    pub line: Arc<str>,
    pub metadata: Vec<(String, String)>,
}

/// Index statistics of a selection (Loki's `index/stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogStats {
    pub streams: u64,
    /// Splits (and the head) holding matching entries: our chunks.
    pub chunks: u64,
    pub bytes: u64,
    pub entries: u64,
}

/// What the query side needs from the log store. Every method blocks (index reads): call it from a
/// blocking thread.
pub trait LogsReader: Send + Sync + 'static {
    /// Visits the selected entries in time order (`direction`) until `visit` returns false.
    fn scan(
        &self,
        sel: &LogSelect,
        direction: Direction,
        visit: &mut dyn FnMut(LogRow) -> bool,
    ) -> Result<(), LogsError>;

    /// Visits every selected entry in no particular order: labels, time, line length, and, when
    /// `need_line`, the line and its structured metadata.
    #[allow(clippy::type_complexity)]
    fn scan_all(
        &self,
        sel: &LogSelect,
        need_line: bool,
        visit: &mut dyn FnMut(&Labels, i64, usize, Option<(&str, &[(String, String)])>),
    ) -> Result<(), LogsError>;

    /// Streams matching any of the matcher sets (all streams when empty) with entries in `[start, end)`.
    fn streams(&self, matchers: &[Vec<Matcher>], start: i64, end: i64) -> Vec<Labels>;

    fn stats(&self, matchers: &[Matcher], start: i64, end: i64) -> LogStats;

    /// Label names of streams matching `matchers` (all streams when empty) in `[start, end)`.
    fn label_names(&self, matchers: &[Matcher], start: i64, end: i64) -> Vec<String> {
        let sets = if matchers.is_empty() {
            Vec::new()
        } else {
            vec![matchers.to_vec()]
        };
        let mut names = BTreeSet::new();
        for l in self.streams(&sets, start, end) {
            for p in &l {
                names.insert(p.name.to_string());
            }
        }
        names.into_iter().collect()
    }

    /// Values of label `name` on streams matching `matchers` in `[start, end)`.
    fn label_values(&self, name: &str, matchers: &[Matcher], start: i64, end: i64) -> Vec<String> {
        let sets = if matchers.is_empty() {
            Vec::new()
        } else {
            vec![matchers.to_vec()]
        };
        let mut values = BTreeSet::new();
        for l in self.streams(&sets, start, end) {
            if let Some(v) = l.get(name) {
                values.insert(v.to_string());
            }
        }
        values.into_iter().collect()
    }

    /// Every batch stored from now on, as pushed (a slow receiver loses the oldest and is told how
    /// many).
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<Vec<LogStream>>>;
}

/// What ingest needs from the log store. `append` blocks on the WAL's fsync.
pub trait LogsAppender: Send + Sync + 'static {
    fn append(&self, batch: Vec<LogStream>) -> Result<AppendStats, LogsError>;
    /// Streams that took entries since the last cut (Loki's active streams).
    fn active_streams(&self) -> usize;
    fn is_active(&self, labels: &Labels) -> bool;
}

impl LogsAppender for LogStore {
    fn append(&self, batch: Vec<LogStream>) -> Result<AppendStats, LogsError> {
        LogStore::append(self, batch)
    }
    fn active_streams(&self) -> usize {
        self.head.read().streams.len()
    }
    fn is_active(&self, labels: &Labels) -> bool {
        self.head.read().streams.contains_key(&labels.stable_hash())
    }
}

/// A window still open for regular cuts is compacted once it holds this many small splits.
const OPEN_WINDOW_SPLITS: usize = 8;

/// Frozen heads being written as splits, and the published splits: replaced together.
#[derive(Default, Clone)]
struct Sources {
    frozen: Vec<(Arc<Head>, u64)>,
    splits: Vec<Arc<Split>>,
}

pub struct LogStore {
    dir: PathBuf,
    cfg: LogsConfig,
    wal: Wal,
    head: RwLock<Head>,
    sources: RwLock<Sources>,
    /// Appends hold it shared from WAL write to head insert; a cut takes it exclusively to swap the
    /// head and rotate the WAL, so no entry is in the new head with its record in a covered segment.
    gate: RwLock<()>,
    cut_lock: Mutex<()>,
    metrics: LogsMetrics,
    /// Every stored batch, for live tails.
    tail: tokio::sync::broadcast::Sender<Arc<Vec<LogStream>>>,
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> LogsError + '_ {
    move |source| LogsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Candidates of a scan round in the direction's order: (time, source, doc, stream).
fn sort_cands(cands: &mut [(i64, usize, u64, u64)], backward: bool) {
    if backward {
        cands.sort_unstable_by_key(|b| std::cmp::Reverse((b.0, b.1, b.2)));
    } else {
        cands.sort_unstable_by_key(|a| (a.0, a.1, a.2));
    }
}

fn read_covered(dir: &Path) -> u64 {
    fs::read_to_string(dir.join("wal_covered"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn write_covered(dir: &Path, seg: u64) -> Result<(), LogsError> {
    let tmp = dir.join("wal_covered.tmp");
    let path = dir.join("wal_covered");
    fs::write(&tmp, format!("{seg}\n")).map_err(io_err(&tmp))?;
    fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io_err(&tmp))?;
    fs::rename(&tmp, &path).map_err(io_err(&path))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

impl LogStore {
    /// Opens (creating) the store in `dir` (the data directory's `logs/`), replaying the WAL.
    pub fn open(
        dir: &Path,
        cfg: LogsConfig,
        metrics: LogsMetrics,
    ) -> Result<Arc<LogStore>, LogsError> {
        let splits_dir = dir.join("splits");
        let wal_dir = dir.join("wal");
        fs::create_dir_all(&splits_dir).map_err(io_err(&splits_dir))?;
        fs::create_dir_all(&wal_dir).map_err(io_err(&wal_dir))?;
        let covered = read_covered(dir);
        let mut splits = Vec::new();
        for e in fs::read_dir(&splits_dir)
            .map_err(io_err(&splits_dir))?
            .flatten()
        {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                let _ = fs::remove_dir_all(&p);
                continue;
            }
            match Split::open(&p, cfg.docstore_zstd_level) {
                Ok(s) if s.meta.wal_seg > covered => {
                    // Written by a cut that did not finish: the WAL still holds its entries.
                    info!(split = %p.display(), "removing a split of an unfinished cut; its entries are replayed from the WAL");
                    let _ = fs::remove_dir_all(&p);
                }
                Ok(s) => splits.push(Arc::new(s)),
                Err(e) => {
                    error!(split = %p.display(), error = %e, "cannot open a log split; leaving it in place and skipping it");
                }
            }
        }
        // A compaction that published its split but stopped before deleting its inputs.
        let replaced: BTreeSet<String> = splits
            .iter()
            .flat_map(|s: &Arc<Split>| s.meta.replaces.iter().cloned())
            .collect();
        splits.retain(|s| {
            if !replaced.contains(&s.meta.id) {
                return true;
            }
            info!(split = %s.dir.display(), "removing a split that a finished compaction replaced");
            if let Err(e) = s.delete() {
                warn!(split = %s.dir.display(), error = %e, "cannot remove a compacted split");
            }
            false
        });
        splits.sort_by_key(|s| (s.meta.min_ts, s.meta.id.clone()));
        // Segments a finished cut covers may survive a crash between `wal_covered` and their removal.
        for e in fs::read_dir(&wal_dir).map_err(io_err(&wal_dir))?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.len() == 8
                && let Ok(n) = name.parse::<u64>()
                && n <= covered
            {
                fs::remove_file(e.path()).map_err(io_err(&e.path()))?;
            }
        }
        let mut head = Head::default();
        let mut replayed = 0u64;
        let (wal, report) = Wal::open_raw(
            &wal_dir,
            cfg.wal_segment_size.0,
            metrics.wal.clone(),
            |payload| {
                let batch = record::decode(payload).map_err(|e| e.to_string())?;
                replayed += head.append(batch).entries;
                Ok(())
            },
        )?;
        info!(
            entries = replayed,
            records = report.records,
            splits = splits.len(),
            "opened the log store"
        );
        let store = Arc::new(LogStore {
            dir: dir.to_path_buf(),
            cfg,
            wal,
            head: RwLock::new(head),
            sources: RwLock::new(Sources {
                frozen: Vec::new(),
                splits,
            }),
            gate: RwLock::new(()),
            cut_lock: Mutex::new(()),
            metrics,
            tail: tokio::sync::broadcast::channel(1024).0,
        });
        store.refresh_metrics();
        Ok(store)
    }

    /// Stores a batch durably (WAL fsync), then makes it readable. Blocks on the fsync.
    pub fn append(&self, batch: Vec<LogStream>) -> Result<AppendStats, LogsError> {
        let limit = self.cfg.max_unindexed_bytes.0;
        if limit > 0 {
            // Each lock alone (the cut takes sources, then head): the head being filled and the
            // frozen heads still being written into splits.
            let head = self.head.read().bytes;
            let frozen: u64 = self
                .sources
                .read()
                .frozen
                .iter()
                .map(|(h, _)| h.bytes)
                .sum();
            let pending = head + frozen;
            if pending >= limit {
                self.metrics.backlog_refusals.inc();
                return Err(LogsError::Backlog { pending, limit });
            }
        }
        let _g = self.gate.read();
        let payload = record::encode(&batch);
        let seq = self.wal.log(&payload)?;
        self.wal.sync(seq)?;
        let tailed = (self.tail.receiver_count() > 0).then(|| batch.clone());
        let st = self.head.write().append(batch);
        if let Some(b) = tailed {
            // No receiver left is not an error: nobody tails.
            let _ = self.tail.send(Arc::new(b));
        }
        self.metrics.entries_appended.inc_by(st.entries);
        self.metrics.bytes_appended.inc_by(st.bytes);
        self.metrics.duplicates_dropped.inc_by(st.duplicates);
        Ok(st)
    }

    fn refresh_metrics(&self) {
        {
            let h = self.head.read();
            self.metrics.head_entries.set(h.entries as i64);
            self.metrics.head_bytes.set(h.bytes as i64);
            self.metrics.head_streams.set(h.streams.len() as i64);
        }
        let s = self.sources.read();
        self.metrics.splits.set(s.splits.len() as i64);
        self.metrics
            .split_disk_bytes
            .set(s.splits.iter().map(|s| s.meta.disk_bytes).sum::<u64>() as i64);
        self.metrics
            .split_raw_bytes
            .set(s.splits.iter().map(|s| s.meta.bytes).sum::<u64>() as i64);
        self.wal.refresh_metrics();
    }

    /// Whether the head is due for a cut.
    fn cut_due(&self) -> bool {
        let h = self.head.read();
        h.entries > 0
            && (h.bytes >= self.cfg.head_max_bytes.0
                || h.started
                    .is_some_and(|t| t.elapsed() >= self.cfg.head_max_age.0))
    }

    /// Writes the head as splits now (blocking). Heads whose earlier cut failed are retried first.
    pub fn cut(&self) -> Result<(), LogsError> {
        let _one = self.cut_lock.lock();
        {
            let _g = self.gate.write();
            let mut sources = self.sources.write();
            let mut h = self.head.write();
            if h.entries > 0 {
                let seg = self.wal.rotate()?;
                let old = std::mem::take(&mut *h);
                sources.frozen.push((Arc::new(old), seg));
            }
        }
        let pending = self.sources.read().frozen.clone();
        for (head, seg) in pending {
            let t0 = Instant::now();
            match self.write_head(&head, seg) {
                Ok(new) => {
                    {
                        let mut s = self.sources.write();
                        s.splits.extend(new);
                        s.splits.sort_by_key(|s| (s.meta.min_ts, s.meta.id.clone()));
                        s.frozen.retain(|(h, _)| !Arc::ptr_eq(h, &head));
                    }
                    write_covered(&self.dir, seg)?;
                    self.wal.remove_upto(seg)?;
                    self.metrics.cuts.inc();
                    self.metrics.cut_seconds.observe(t0.elapsed().as_secs_f64());
                }
                Err(e) => {
                    self.metrics.cut_failures.inc();
                    self.refresh_metrics();
                    return Err(e);
                }
            }
        }
        self.refresh_metrics();
        Ok(())
    }

    /// Writes a frozen head as one split per window; on failure removes what it wrote.
    fn write_head(&self, head: &Head, seg: u64) -> Result<Vec<Arc<Split>>, LogsError> {
        let window = self.cfg.split_window.0.as_nanos().max(1) as i64;
        let cutoff = self.retention_cutoff();
        let kept = |ts: i64| cutoff.is_none_or(|c| ts >= c);
        // Streams by fingerprint, each as appended (in time order unless pushed out of order): a
        // split's entries mostly come out sorted already, so `Split::write`'s sort is one pass, and
        // each window's list is allocated once at its size.
        let mut streams: Vec<_> = head.streams.iter().collect();
        streams.sort_unstable_by_key(|(fp, _)| **fp);
        let mut by_window: BTreeMap<i64, Vec<NewEntry<'_>>> = BTreeMap::new();
        {
            let mut sizes: BTreeMap<i64, usize> = BTreeMap::new();
            for (_, s) in &streams {
                for e in s.entries.iter().filter(|e| kept(e.ts)) {
                    *sizes.entry(e.ts.div_euclid(window) * window).or_default() += 1;
                }
            }
            for (w, n) in sizes {
                by_window.insert(w, Vec::with_capacity(n));
            }
        }
        for (fp, s) in streams {
            for e in &s.entries {
                if !kept(e.ts) {
                    continue;
                }
                by_window
                    .entry(e.ts.div_euclid(window) * window)
                    .or_default()
                    .push(NewEntry {
                        fp: *fp,
                        labels: &s.labels,
                        ts: e.ts,
                        line: &e.line,
                        metadata: &e.metadata,
                    });
            }
        }
        let splits_dir = self.dir.join("splits");
        let mut out: Vec<Arc<Split>> = Vec::new();
        for (w, entries) in by_window {
            match Split::write(&splits_dir, w, seg, self.cfg.docstore_zstd_level, entries) {
                Ok(s) => out.push(Arc::new(s)),
                Err(e) => {
                    for s in &out {
                        let _ = s.delete();
                    }
                    return Err(e);
                }
            }
        }
        Ok(out)
    }

    fn retention_cutoff(&self) -> Option<i64> {
        let r = self.cfg.retention_period.0;
        (!r.is_zero()).then(|| vigil_model::now_ns() - r.as_nanos() as i64)
    }

    /// Deletes splits past retention.
    pub fn apply_retention(&self) -> Result<usize, LogsError> {
        let Some(cutoff) = self.retention_cutoff() else {
            return Ok(0);
        };
        let doomed: Vec<Arc<Split>> = {
            let mut s = self.sources.write();
            let (old, keep): (Vec<_>, Vec<_>) =
                s.splits.drain(..).partition(|s| s.meta.max_ts < cutoff);
            s.splits = keep;
            old
        };
        for d in &doomed {
            info!(split = %d.dir.display(), "retention: deleting a log split");
            d.delete()?;
        }
        self.metrics
            .retention_deleted_splits
            .inc_by(doomed.len() as u64);
        self.refresh_metrics();
        Ok(doomed.len())
    }

    /// Groups of small splits due for compaction, oldest window first. Per window, splits under
    /// `compaction_target_bytes` of lines are taken in time order into groups of at most that many
    /// bytes; a group of two or more is due once the window is closed (its end is `head_max_age` in
    /// the past, so no regular cut adds to it), or while it is open once it holds
    /// [`OPEN_WINDOW_SPLITS`] splits (fast ingest cuts often).
    fn compaction_plan(&self, now: i64) -> Vec<Vec<Arc<Split>>> {
        let target = self.cfg.compaction_target_bytes.0;
        if target == 0 {
            return Vec::new();
        }
        let window = self.cfg.split_window.0.as_nanos().max(1) as i64;
        let settle = self.cfg.head_max_age.0.as_nanos() as i64;
        let mut by_window: BTreeMap<i64, Vec<Arc<Split>>> = BTreeMap::new();
        for s in &self.sources.read().splits {
            if s.meta.bytes < target {
                by_window.entry(s.meta.window).or_default().push(s.clone());
            }
        }
        let mut plan = Vec::new();
        for (w, mut small) in by_window {
            let closed = w.saturating_add(window).saturating_add(settle) <= now;
            small.sort_by_key(|s| (s.meta.min_ts, s.meta.id.clone()));
            let mut plan_group = |g: Vec<Arc<Split>>| {
                if g.len() >= 2 && (closed || g.len() >= OPEN_WINDOW_SPLITS) {
                    plan.push(g);
                }
            };
            let mut group: Vec<Arc<Split>> = Vec::new();
            let mut key = None;
            let mut bytes = 0u64;
            for s in small {
                let k = s.merge_key();
                if !group.is_empty() && (bytes + s.meta.bytes > target || key.as_ref() != Some(&k))
                {
                    plan_group(std::mem::take(&mut group));
                    bytes = 0;
                }
                bytes += s.meta.bytes;
                key = Some(k);
                group.push(s);
            }
            plan_group(group);
        }
        plan
    }

    /// Merges small splits of each window (see [`Self::compaction_plan`]); stops early when a cut is
    /// due so that indexing is not held up. Returns the number of splits merged away.
    pub fn compact(&self) -> Result<usize, LogsError> {
        let mut merged = 0;
        for group in self.compaction_plan(vigil_model::now_ns()) {
            if self.cut_due() {
                break;
            }
            let _one = self.cut_lock.lock();
            let t0 = Instant::now();
            let new = match Split::merge(
                &self.dir.join("splits"),
                &group,
                self.cfg.docstore_zstd_level,
            ) {
                Ok(s) => Arc::new(s),
                Err(e) => {
                    self.metrics.compaction_failures.inc();
                    return Err(e);
                }
            };
            let published = {
                let mut s = self.sources.write();
                // Retention may have taken an input meanwhile: then the merged split is dropped.
                let all_there = group
                    .iter()
                    .all(|g| s.splits.iter().any(|x| Arc::ptr_eq(x, g)));
                if all_there {
                    s.splits
                        .retain(|x| !group.iter().any(|g| Arc::ptr_eq(x, g)));
                    s.splits.push(new.clone());
                    s.splits.sort_by_key(|s| (s.meta.min_ts, s.meta.id.clone()));
                }
                all_there
            };
            if !published {
                new.delete()?;
                continue;
            }
            // Readers holding an input keep reading it (open files outlive their directory entry).
            for g in &group {
                if let Err(e) = g.delete() {
                    warn!(split = %g.dir.display(), error = %e, "cannot remove a compacted split; it is removed at the next start");
                }
            }
            info!(
                split = %new.dir.display(),
                inputs = group.len(),
                entries = new.meta.entries,
                seconds = t0.elapsed().as_secs_f64(),
                "compacted log splits"
            );
            self.metrics.compactions.inc();
            self.metrics.compacted_splits.inc_by(group.len() as u64);
            self.metrics
                .compaction_seconds
                .observe(t0.elapsed().as_secs_f64());
            merged += group.len();
            self.refresh_metrics();
        }
        Ok(merged)
    }

    /// One maintenance pass: a cut when due, retention, then compaction.
    pub fn maintain(&self) -> Result<(), LogsError> {
        if self.cut_due() {
            self.cut()?;
        }
        self.apply_retention()?;
        self.compact()?;
        self.refresh_metrics();
        Ok(())
    }

    /// Runs [`LogStore::maintain`] every `maintenance_interval` until cancelled.
    pub async fn run_maintenance(self: Arc<Self>, cancel: CancellationToken) {
        let every: Duration = self.cfg.maintenance_interval.0;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            let me = self.clone();
            match tokio::task::spawn_blocking(move || me.maintain()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    warn!(error = %e, "log store maintenance failed; retrying next interval")
                }
                Err(e) => warn!(error = %e, "log store maintenance panicked"),
            }
        }
    }

    /// Flushes the WAL and refuses further writes (the head is replayed at the next start).
    pub fn close(&self) -> Result<(), LogsError> {
        self.wal.close()?;
        Ok(())
    }

    /// Matching entries of the head and of heads being cut, in time order, and the splits to read.
    fn snapshot(&self, sel: &LogSelect) -> (Vec<LogRow>, Vec<Arc<Split>>) {
        let sources = self.sources.read();
        let h = self.head.read();
        let mut rows = Vec::new();
        for head in std::iter::once(&*h).chain(sources.frozen.iter().map(|(h, _)| &**h)) {
            for (_, s) in head.matching(&sel.matchers, sel.start, sel.end) {
                for e in &s.entries {
                    if e.ts >= sel.start && e.ts < sel.end && sel.line_ok(&e.line) {
                        rows.push(LogRow {
                            labels: s.labels.clone(),
                            ts: e.ts,
                            line: e.line.clone(),
                            metadata: e.metadata.clone(),
                        });
                    }
                }
            }
        }
        let splits = sources
            .splits
            .iter()
            .filter(|s| s.meta.max_ts >= sel.start && s.meta.min_ts < sel.end)
            .cloned()
            .collect();
        drop(h);
        drop(sources);
        rows.sort_by_key(|r| r.ts);
        (rows, splits)
    }
}

/// Where a resumed scan continues in a source, given the last key visited (time, source, doc).
fn bound_for(cursor: Option<(i64, usize, u64)>, src: usize, backward: bool) -> Option<Bound> {
    let (ts, cs, cd) = cursor?;
    Some(if !backward {
        if src < cs {
            Bound::AtLeast(ts.saturating_add(1), 0)
        } else if src == cs {
            Bound::AtLeast(ts, cd + 1)
        } else {
            Bound::AtLeast(ts, 0)
        }
    } else if src < cs {
        Bound::AtMost(ts, u64::MAX)
    } else if src == cs && cd > 0 {
        Bound::AtMost(ts, cd - 1)
    } else {
        Bound::AtMost(ts.saturating_sub(1), u64::MAX)
    })
}

fn admits(b: &Option<Bound>, ts: i64, d: u64) -> bool {
    match b {
        None => true,
        Some(Bound::AtLeast(t, x)) => (ts, d) >= (*t, *x),
        Some(Bound::AtMost(t, x)) => (ts, d) <= (*t, *x),
    }
}

impl LogsReader for LogStore {
    fn scan(
        &self,
        sel: &LogSelect,
        direction: Direction,
        visit: &mut dyn FnMut(LogRow) -> bool,
    ) -> Result<(), LogsError> {
        let backward = direction == Direction::Backward;
        let (head_rows, splits) = self.snapshot(sel);
        let fps: Vec<Vec<u64>> = splits
            .iter()
            .map(|s| s.matching_streams(&sel.matchers, sel.start, sel.end))
            .collect();
        let needles = split::Needles::new(&sel.contains);
        let mut cursor: Option<(i64, usize, u64)> = None;
        let mut k = 256usize;
        loop {
            // Candidates: (time, source, doc, stream); source 0 is the head, i + 1 is splits[i].
            let mut cands: Vec<(i64, usize, u64, u64)> = Vec::new();
            let mut more = false;
            let b = bound_for(cursor, 0, backward);
            let hs: Vec<(i64, usize, u64, u64)> = if backward {
                head_rows
                    .iter()
                    .enumerate()
                    .rev()
                    .filter(|(i, r)| admits(&b, r.ts, *i as u64))
                    .take(k + 1)
                    .map(|(i, r)| (r.ts, 0, i as u64, 0))
                    .collect()
            } else {
                head_rows
                    .iter()
                    .enumerate()
                    .filter(|(i, r)| admits(&b, r.ts, *i as u64))
                    .take(k + 1)
                    .map(|(i, r)| (r.ts, 0, i as u64, 0))
                    .collect()
            };
            more |= hs.len() > k;
            cands.extend(hs.into_iter().take(k));
            // Splits nearest the direction's start first: once k candidates are in hand, a split
            // wholly beyond the k-th (older, going backward) cannot add one to this round.
            let mut order: Vec<usize> = (0..splits.len()).collect();
            if backward {
                order.sort_by_key(|&i| std::cmp::Reverse(splits[i].meta.max_ts));
            } else {
                order.sort_by_key(|&i| splits[i].meta.min_ts);
            }
            for i in order {
                let s = &splits[i];
                if fps[i].is_empty() {
                    continue;
                }
                if cands.len() >= k {
                    sort_cands(&mut cands, backward);
                    if cands.len() > k {
                        cands.truncate(k);
                        more = true;
                    }
                    let kth = cands[k - 1].0;
                    let beyond = if backward {
                        s.meta.max_ts < kth
                    } else {
                        s.meta.min_ts > kth
                    };
                    if beyond {
                        // Its entries come in a later round, if the caller wants more.
                        more = true;
                        continue;
                    }
                }
                let keys = s.keys(
                    &fps[i],
                    &needles,
                    sel.start,
                    sel.end,
                    bound_for(cursor, i + 1, backward),
                    Some((k, backward)),
                )?;
                more |= keys.len() >= k;
                cands.extend(
                    keys.into_iter()
                        .map(|key| (key.ts, i + 1, key.segdoc, key.fp)),
                );
            }
            sort_cands(&mut cands, backward);
            if cands.len() > k {
                cands.truncate(k);
                more = true;
            }
            for (ts, src, d, fp) in cands {
                cursor = Some((ts, src, d));
                let row = if src == 0 {
                    head_rows[d as usize].clone()
                } else {
                    let s = &splits[src - 1];
                    let (line, metadata) = s.fetch(d)?;
                    if !sel.line_ok(&line) {
                        continue;
                    }
                    LogRow {
                        labels: s.labels(fp).cloned().unwrap_or_default(),
                        ts,
                        line: Arc::from(line),
                        metadata,
                    }
                };
                if !visit(row) {
                    return Ok(());
                }
            }
            if !more {
                return Ok(());
            }
            k = (k * 2).min(1 << 20);
        }
    }

    fn scan_all(
        &self,
        sel: &LogSelect,
        need_line: bool,
        visit: &mut dyn FnMut(&Labels, i64, usize, Option<(&str, &[(String, String)])>),
    ) -> Result<(), LogsError> {
        let (head_rows, splits) = self.snapshot(sel);
        for r in &head_rows {
            visit(
                &r.labels,
                r.ts,
                r.line.len(),
                need_line.then_some((&*r.line, &r.metadata[..])),
            );
        }
        drop(head_rows);
        let need_line = need_line || !sel.contains.is_empty();
        let needles = split::Needles::new(&sel.contains);
        for s in &splits {
            let fps = s.matching_streams(&sel.matchers, sel.start, sel.end);
            if fps.is_empty() {
                continue;
            }
            let mut keys = s.keys(&fps, &needles, sel.start, sel.end, None, None)?;
            let empty = Labels::empty();
            if !need_line {
                for k in &keys {
                    visit(s.labels(k.fp).unwrap_or(&empty), k.ts, k.len as usize, None);
                }
                continue;
            }
            // In doc order, so each compressed block of the doc store is read once.
            keys.sort_unstable_by_key(|k| k.segdoc);
            for k in &keys {
                let (line, meta) = s.fetch(k.segdoc)?;
                if !sel.line_ok(&line) {
                    continue;
                }
                visit(
                    s.labels(k.fp).unwrap_or(&empty),
                    k.ts,
                    line.len(),
                    Some((&line, &meta)),
                );
            }
        }
        Ok(())
    }

    fn streams(&self, matchers: &[Vec<Matcher>], start: i64, end: i64) -> Vec<Labels> {
        let all: [Vec<Matcher>; 1] = [Vec::new()];
        let sets: &[Vec<Matcher>] = if matchers.is_empty() { &all } else { matchers };
        let mut out = BTreeSet::new();
        let sources = self.sources.read();
        let h = self.head.read();
        for ms in sets {
            for head in std::iter::once(&*h).chain(sources.frozen.iter().map(|(h, _)| &**h)) {
                for (_, s) in head.matching(ms, start, end) {
                    out.insert(s.labels.clone());
                }
            }
            for sp in &sources.splits {
                if sp.meta.max_ts < start || sp.meta.min_ts >= end {
                    continue;
                }
                for fp in sp.matching_streams(ms, start, end) {
                    if let Some(l) = sp.labels(fp) {
                        out.insert(l.clone());
                    }
                }
            }
        }
        out.into_iter().collect()
    }

    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<Vec<LogStream>>> {
        self.tail.subscribe()
    }

    fn stats(&self, matchers: &[Matcher], start: i64, end: i64) -> LogStats {
        let mut st = LogStats::default();
        let mut streams = BTreeSet::new();
        let sources = self.sources.read();
        let h = self.head.read();
        for head in std::iter::once(&*h).chain(sources.frozen.iter().map(|(h, _)| &**h)) {
            let mut any = false;
            for (fp, s) in head.matching(matchers, start, end) {
                any = true;
                streams.insert(fp);
                for e in &s.entries {
                    if e.ts >= start && e.ts < end {
                        st.entries += 1;
                        st.bytes += e.line.len() as u64;
                    }
                }
            }
            st.chunks += any as u64;
        }
        for sp in &sources.splits {
            if sp.meta.max_ts < start || sp.meta.min_ts >= end {
                continue;
            }
            let fps: BTreeSet<u64> = sp
                .matching_streams(matchers, start, end)
                .into_iter()
                .collect();
            if fps.is_empty() {
                continue;
            }
            st.chunks += 1;
            for s in sp.meta.streams.iter().filter(|s| fps.contains(&s.fp)) {
                streams.insert(s.fp);
                // Per-stream totals of the split: exact when the range covers the split, as Loki's
                // chunk-based statistics are.
                st.entries += s.entries;
                st.bytes += s.bytes;
            }
        }
        st.streams = streams.len() as u64;
        st
    }
}

#[cfg(test)]
mod tests;
