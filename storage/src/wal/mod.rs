//! Write-ahead log: checksummed records in numbered segment files, fsynced before an append is
//! acknowledged, replayed (and repaired) on start.
//!
//! Layout: `wal/00000001`, `wal/00000002`, … and at most one `wal/checkpoint.NNNNNNNN/00000000` holding
//! the head's state as of segment NNNNNNNN, so the segments up to it could be deleted. Every record is
//! framed as `len: u32 LE | crc32: u32 LE | payload`.
//!
//! Appends go to an in-memory buffer under a mutex (cheap, keeps records in one total order); [`Wal::sync`]
//! writes the buffer out and fsyncs. Concurrent syncs coalesce: one fsync covers every record logged before
//! it started (group commit).

pub mod record;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use tracing::{info, warn};

use crate::metrics::{StorageMetrics, WalMetrics};
pub use record::{Record, SamplesEncoder};

const HEADER: usize = 8;
/// Largest record we write or accept; a length field above it is corruption.
pub const MAX_RECORD: usize = 256 << 20;

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("WAL I/O on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("WAL record of {0} bytes is over the {MAX_RECORD} byte limit")]
    TooLarge(usize),
    /// An earlier write or fsync failed: what the WAL holds after that point is unknown, so it
    /// takes nothing more until a restart replays and repairs it.
    #[error("the WAL failed earlier and accepts no writes until restart: {0}")]
    Failed(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

struct Inner {
    buf: Vec<u8>,
    /// Sequence number of the last record logged.
    seq: u64,
    file: Arc<File>,
    segment: u64,
    segment_bytes: u64,
    closed: bool,
}

/// The write-ahead log of the metrics head.
pub struct Wal {
    dir: PathBuf,
    segment_size: u64,
    inner: Mutex<Inner>,
    /// Highest sequence number known to be on disk.
    synced: Mutex<u64>,
    metrics: WalMetrics,
    /// The first write or fsync error, once one happened.
    failed: Mutex<Option<String>>,
}

/// What replay found, for the start-up log and tests.
#[derive(Debug, Default, Clone)]
pub struct ReplayReport {
    pub records: u64,
    pub segments: usize,
    pub checkpoint: Option<u64>,
    /// Human-readable descriptions of what repair dropped.
    pub repaired: Vec<String>,
}

fn segment_name(n: u64) -> String {
    format!("{n:08}")
}

fn list_segments(dir: &Path) -> Result<Vec<u64>, WalError> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).map_err(io_err(dir))? {
        let e = e.map_err(io_err(dir))?;
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.len() == 8 && name.bytes().all(|b| b.is_ascii_digit()) {
            out.push(name.parse().unwrap_or(0));
        }
    }
    out.sort_unstable();
    Ok(out)
}

fn latest_checkpoint(dir: &Path) -> Result<Option<u64>, WalError> {
    let mut best = None;
    for e in fs::read_dir(dir).map_err(io_err(dir))? {
        let e = e.map_err(io_err(dir))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(n) = name.strip_prefix("checkpoint.")
            && n.len() == 8
            && let Ok(n) = n.parse::<u64>()
        {
            best = best.max(Some(n));
        }
        if name.ends_with(".tmp") {
            // A checkpoint that was being written when the process died: never complete, never used.
            let _ = fs::remove_dir_all(e.path());
        }
    }
    Ok(best)
}

fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// Reads the records of one file. On a torn or corrupt record, truncates the file there and returns a
/// description of what was dropped.
fn read_file(
    path: &Path,
    f: &mut dyn FnMut(&[u8]) -> Result<(), String>,
    repair: bool,
) -> Result<(u64, Option<String>), WalError> {
    let mut data = Vec::new();
    File::open(path)
        .and_then(|mut fh| fh.read_to_end(&mut data))
        .map_err(io_err(path))?;
    let mut off = 0usize;
    let mut n = 0u64;
    let mut problem = None;
    while off < data.len() {
        if data.len() - off < HEADER {
            problem = Some("torn record header".to_string());
            break;
        }
        let len = u32::from_le_bytes(data[off..off + 4].try_into().unwrap_or_default()) as usize;
        let crc = u32::from_le_bytes(data[off + 4..off + 8].try_into().unwrap_or_default());
        if len == 0 || len > MAX_RECORD {
            problem = Some(format!("invalid record length {len}"));
            break;
        }
        if data.len() - off - HEADER < len {
            problem = Some(format!(
                "torn record: {len} bytes announced, {} present",
                data.len() - off - HEADER
            ));
            break;
        }
        let payload = &data[off + HEADER..off + HEADER + len];
        if crc32fast::hash(payload) != crc {
            problem = Some("checksum mismatch".to_string());
            break;
        }
        if let Err(e) = f(payload) {
            problem = Some(format!("undecodable record: {e}"));
            break;
        }
        n += 1;
        off += HEADER + len;
    }
    let Some(why) = problem else {
        return Ok((n, None));
    };
    let dropped = data.len() - off;
    let msg = format!(
        "{}: {why} at byte offset {off}; dropped the last {dropped} bytes",
        path.display()
    );
    if repair {
        let fh = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io_err(path))?;
        fh.set_len(off as u64).map_err(io_err(path))?;
        fh.sync_all().map_err(io_err(path))?;
    }
    Ok((n, Some(msg)))
}

impl Wal {
    /// Opens (creating if needed) the WAL in `dir`, replays checkpoint and segments into `apply`, repairs a
    /// torn or corrupt tail (truncating the damaged segment and removing any after it, with a warning
    /// saying what was dropped), and starts a fresh segment for writing.
    pub fn open(
        dir: &Path,
        segment_size: u64,
        metrics: Arc<StorageMetrics>,
        mut apply: impl FnMut(Record),
    ) -> Result<(Wal, ReplayReport), WalError> {
        Self::open_raw(dir, segment_size, metrics.wal(), |payload| {
            record::decode(payload)
                .map(&mut apply)
                .map_err(|e| e.to_string())
        })
    }

    /// [`Wal::open`] for records of any format: `apply` gets each payload and says whether it could be
    /// decoded (an undecodable record is treated as a corrupt tail).
    pub fn open_raw(
        dir: &Path,
        segment_size: u64,
        metrics: WalMetrics,
        mut apply: impl FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<(Wal, ReplayReport), WalError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut report = ReplayReport::default();
        let cp = latest_checkpoint(dir)?;
        if let Some(cp) = cp {
            let path = dir
                .join(format!("checkpoint.{}", segment_name(cp)))
                .join(segment_name(0));
            let (n, problem) = read_file(&path, &mut apply, false)?;
            report.records += n;
            if let Some(p) = problem {
                // A checkpoint is written to a temporary name and renamed once fsynced, so damage here is
                // media corruption: say so loudly and use what could be read.
                warn!(problem = %p, "WAL checkpoint is damaged; continuing with the records before the damage");
                report.repaired.push(p);
            }
            report.checkpoint = Some(cp);
        }
        let segments: Vec<u64> = list_segments(dir)?
            .into_iter()
            .filter(|s| cp.is_none_or(|c| *s > c))
            .collect();
        let mut last = cp.unwrap_or(0);
        let mut damaged_at = None;
        for (i, &s) in segments.iter().enumerate() {
            let path = dir.join(segment_name(s));
            let (n, problem) = read_file(&path, &mut apply, true)?;
            report.records += n;
            report.segments += 1;
            last = s;
            if let Some(p) = problem {
                warn!(problem = %p, "repaired the WAL: a torn or corrupt tail was cut off; every record before it was kept");
                report.repaired.push(p);
                damaged_at = Some(i);
                break;
            }
        }
        if let Some(i) = damaged_at {
            for &s in &segments[i + 1..] {
                let path = dir.join(segment_name(s));
                let size = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                let msg = format!(
                    "{}: removed ({size} bytes) because an earlier segment was damaged",
                    path.display()
                );
                warn!(problem = %msg, "repaired the WAL");
                report.repaired.push(msg);
                fs::remove_file(&path).map_err(io_err(&path))?;
            }
        }
        metrics.corruptions.inc_by(report.repaired.len() as u64);
        let segment = last + 1;
        let (file, path) = Self::create_segment(dir, segment)?;
        info!(records = report.records, segments = report.segments, checkpoint = ?report.checkpoint, "replayed the WAL");
        let wal = Wal {
            dir: dir.to_path_buf(),
            segment_size,
            inner: Mutex::new(Inner {
                buf: Vec::with_capacity(1 << 16),
                seq: 0,
                file: Arc::new(file),
                segment,
                segment_bytes: 0,
                closed: false,
            }),
            synced: Mutex::new(0),
            metrics,
            failed: Mutex::new(None),
        };
        sync_dir(dir)?;
        let _ = path;
        wal.update_size_metric();
        Ok((wal, report))
    }

    fn create_segment(dir: &Path, n: u64) -> Result<(File, PathBuf), WalError> {
        let path = dir.join(segment_name(n));
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        Ok((f, path))
    }

    /// Fails when an earlier write or fsync failed.
    pub fn check(&self) -> Result<(), WalError> {
        match &*self.failed.lock() {
            Some(m) => Err(WalError::Failed(m.clone())),
            None => Ok(()),
        }
    }

    /// Records an I/O failure: from now on every write fails, with this reason.
    fn fail(&self, e: WalError) -> WalError {
        let mut f = self.failed.lock();
        if f.is_none() {
            tracing::error!(error = %e, "the WAL could not be written or synced; refusing every write until restart (a restart replays and repairs the log)");
            self.metrics.failed.set(1);
            *f = Some(e.to_string());
        }
        e
    }

    /// Appends a record to the log buffer and returns its sequence number. Not durable until
    /// [`Wal::sync`] has returned for this number or a later one.
    pub fn log(&self, payload: &[u8]) -> Result<u64, WalError> {
        if payload.len() > MAX_RECORD {
            return Err(WalError::TooLarge(payload.len()));
        }
        self.check()?;
        let mut g = self.inner.lock();
        g.buf
            .extend_from_slice(&(payload.len() as u32).to_le_bytes());
        g.buf
            .extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        g.buf.extend_from_slice(payload);
        g.seq += 1;
        Ok(g.seq)
    }

    /// Sequence number of the last record logged.
    pub fn last_seq(&self) -> u64 {
        self.inner.lock().seq
    }

    /// Makes every record up to `seq` durable.
    pub fn sync(&self, seq: u64) -> Result<(), WalError> {
        let mut synced = self.synced.lock();
        self.check()?;
        if *synced >= seq {
            return Ok(());
        }
        let (file, target) = {
            let mut g = self.inner.lock();
            self.flush_locked(&mut g).map_err(|e| self.fail(e))?;
            (g.file.clone(), g.seq)
        };
        let t0 = Instant::now();
        file.sync_data()
            .map_err(io_err(&self.dir))
            .map_err(|e| self.fail(e))?;
        self.metrics
            .fsync_seconds
            .observe(t0.elapsed().as_secs_f64());
        *synced = target;
        Ok(())
    }

    /// Writes the buffer to the current segment; rotates to a new segment when it is full.
    fn flush_locked(&self, g: &mut Inner) -> Result<(), WalError> {
        if g.closed {
            return Err(WalError::Io {
                path: self.dir.clone(),
                source: io::Error::other("the WAL is closed (shutting down)"),
            });
        }
        if g.buf.is_empty() {
            return Ok(());
        }
        let path = self.dir.join(segment_name(g.segment));
        (&*g.file).write_all(&g.buf).map_err(io_err(&path))?;
        g.segment_bytes += g.buf.len() as u64;
        self.metrics.bytes_written.inc_by(g.buf.len() as u64);
        g.buf.clear();
        if g.buf.capacity() > 64 << 20 {
            g.buf = Vec::with_capacity(1 << 16);
        }
        if g.segment_bytes >= self.segment_size {
            self.rotate_locked(g)?;
        }
        Ok(())
    }

    fn rotate_locked(&self, g: &mut Inner) -> Result<(), WalError> {
        g.file.sync_data().map_err(io_err(&self.dir))?;
        let (file, _) = Self::create_segment(&self.dir, g.segment + 1)?;
        g.file = Arc::new(file);
        g.segment += 1;
        g.segment_bytes = 0;
        sync_dir(&self.dir)?;
        self.update_size_metric();
        Ok(())
    }

    /// Replaces every segment written so far by a checkpoint. `write` is called with a sink for the
    /// records that stand for the head's state (series still alive, samples not yet in blocks); records
    /// logged concurrently go to the new segment and are replayed after the checkpoint.
    pub fn checkpoint(&self, write: impl FnOnce(&mut dyn FnMut(&[u8]))) -> Result<(), WalError> {
        let covered = {
            let mut synced = self.synced.lock();
            let mut g = self.inner.lock();
            self.flush_locked(&mut g).map_err(|e| self.fail(e))?;
            let seq = g.seq;
            self.rotate_locked(&mut g).map_err(|e| self.fail(e))?;
            *synced = seq;
            g.segment - 1
        };
        let final_dir = self
            .dir
            .join(format!("checkpoint.{}", segment_name(covered)));
        let tmp_dir = self
            .dir
            .join(format!("checkpoint.{}.tmp", segment_name(covered)));
        let _ = fs::remove_dir_all(&tmp_dir);
        fs::create_dir_all(&tmp_dir).map_err(io_err(&tmp_dir))?;
        let path = tmp_dir.join(segment_name(0));
        let file = File::create(&path).map_err(io_err(&path))?;
        let mut w = io::BufWriter::with_capacity(1 << 20, file);
        let mut err = None;
        write(&mut |payload: &[u8]| {
            if err.is_some() {
                return;
            }
            let r = w
                .write_all(&(payload.len() as u32).to_le_bytes())
                .and_then(|_| w.write_all(&crc32fast::hash(payload).to_le_bytes()))
                .and_then(|_| w.write_all(payload));
            if let Err(e) = r {
                err = Some(e);
            }
        });
        if let Some(e) = err {
            return Err(WalError::Io { path, source: e });
        }
        let file = w.into_inner().map_err(|e| WalError::Io {
            path: path.clone(),
            source: e.into_error(),
        })?;
        file.sync_all().map_err(io_err(&path))?;
        drop(file);
        sync_dir(&tmp_dir)?;
        fs::rename(&tmp_dir, &final_dir).map_err(io_err(&final_dir))?;
        sync_dir(&self.dir)?;
        // Everything the checkpoint covers can go now.
        for s in list_segments(&self.dir)? {
            if s <= covered {
                let p = self.dir.join(segment_name(s));
                fs::remove_file(&p).map_err(io_err(&p))?;
            }
        }
        for e in fs::read_dir(&self.dir)
            .map_err(io_err(&self.dir))?
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(n) = name
                .strip_prefix("checkpoint.")
                .and_then(|n| n.parse::<u64>().ok())
                && n < covered
            {
                let _ = fs::remove_dir_all(e.path());
            }
        }
        self.update_size_metric();
        Ok(())
    }

    /// Ends the current segment (flushed and fsynced) and starts a new one; returns the number of the
    /// last segment ended, which holds every record logged before the call. A store that persists
    /// what those records describe elsewhere then calls [`Wal::remove_upto`] with it.
    pub fn rotate(&self) -> Result<u64, WalError> {
        let mut synced = self.synced.lock();
        let mut g = self.inner.lock();
        self.flush_locked(&mut g).map_err(|e| self.fail(e))?;
        let seq = g.seq;
        self.rotate_locked(&mut g).map_err(|e| self.fail(e))?;
        *synced = seq;
        Ok(g.segment - 1)
    }

    /// Deletes the segments numbered up to `last` (see [`Wal::rotate`]).
    pub fn remove_upto(&self, last: u64) -> Result<(), WalError> {
        for s in list_segments(&self.dir)? {
            if s <= last {
                let p = self.dir.join(segment_name(s));
                fs::remove_file(&p).map_err(io_err(&p))?;
            }
        }
        sync_dir(&self.dir)?;
        self.update_size_metric();
        Ok(())
    }

    /// Flushes and fsyncs everything, then refuses further writes.
    pub fn close(&self) -> Result<(), WalError> {
        let mut synced = self.synced.lock();
        let mut g = self.inner.lock();
        self.flush_locked(&mut g)?;
        g.file.sync_all().map_err(io_err(&self.dir))?;
        *synced = g.seq;
        g.closed = true;
        Ok(())
    }

    /// Bytes of segments and checkpoints on disk.
    pub fn disk_size(&self) -> u64 {
        fn walk(p: &Path) -> u64 {
            let Ok(rd) = fs::read_dir(p) else { return 0 };
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => walk(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        }
        walk(&self.dir)
    }

    fn update_size_metric(&self) {
        self.metrics.size_bytes.set(self.disk_size() as i64);
    }

    /// Refreshes the on-disk size gauge (called periodically).
    pub fn refresh_metrics(&self) {
        self.update_size_metric();
    }
}

#[cfg(test)]
impl Wal {
    /// Makes every later write fail, as a full or failing disk does.
    fn break_for_test(&self) {
        let full = OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full");
        self.inner.lock().file = Arc::new(full);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_model::Labels;

    #[test]
    fn after_a_failed_write_every_later_write_fails() {
        let dir = tempfile::tempdir().unwrap();
        let m = metrics();
        let (wal, _) = Wal::open(dir.path(), 1 << 20, m.clone(), |_| {}).unwrap();
        let seq = wal.log(b"first").unwrap();
        wal.sync(seq).unwrap();
        wal.break_for_test();
        let seq = wal.log(b"second").unwrap();
        let e = wal.sync(seq).unwrap_err();
        assert!(matches!(e, WalError::Io { .. }), "{e}");
        // The disk may be fine again; the log is not: what it holds after the failure is unknown.
        let e = wal.log(b"third").unwrap_err();
        assert!(matches!(e, WalError::Failed(_)), "{e}");
        assert!(e.to_string().contains("until restart"), "{e}");
        assert!(matches!(wal.sync(seq), Err(WalError::Failed(_))));
        assert_eq!(m.wal_failed.get(), 1);
    }

    fn metrics() -> Arc<StorageMetrics> {
        Arc::new(StorageMetrics::default())
    }

    fn collect(dir: &Path) -> (Vec<Record>, ReplayReport) {
        let mut recs = Vec::new();
        let (wal, rep) = Wal::open(dir, 1 << 20, metrics(), |r| recs.push(r)).unwrap();
        drop(wal);
        (recs, rep)
    }

    fn samples_rec(r: u64, t: i64) -> Vec<u8> {
        let mut e = SamplesEncoder::new();
        e.add(r, &[(t, t as f64)]);
        e.finish()
    }

    #[test]
    fn replays_what_was_synced() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(dir.path(), 1 << 20, metrics(), |_| {}).unwrap();
        let mut b = Vec::new();
        record::encode_series(&mut b, 1, &Labels::from_pairs([("__name__", "a")]));
        wal.log(&b).unwrap();
        let s = wal.log(&samples_rec(1, 10)).unwrap();
        wal.sync(s).unwrap();
        drop(wal);
        let (recs, rep) = collect(dir.path());
        assert_eq!(recs.len(), 2);
        assert!(rep.repaired.is_empty());
    }

    #[test]
    fn torn_tail_is_cut_and_reported_earlier_records_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(dir.path(), 1 << 20, metrics(), |_| {}).unwrap();
        for t in 0..10 {
            let s = wal.log(&samples_rec(1, t)).unwrap();
            wal.sync(s).unwrap();
        }
        drop(wal);
        let seg = dir.path().join(segment_name(1));
        let len = fs::metadata(&seg).unwrap().len();
        // Tear the last record in half.
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(len - 5)
            .unwrap();
        let (recs, rep) = collect(dir.path());
        assert_eq!(recs.len(), 9);
        assert_eq!(rep.repaired.len(), 1);
        assert!(
            rep.repaired[0].contains("torn record"),
            "{:?}",
            rep.repaired
        );
        // Repair is idempotent: the next start sees a clean log with the same 9 records.
        let (recs, rep) = collect(dir.path());
        assert_eq!(recs.len(), 9);
        assert!(rep.repaired.is_empty());
    }

    #[test]
    fn corrupt_middle_drops_the_rest_and_later_segments() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(dir.path(), 200, metrics(), |_| {}).unwrap();
        for t in 0..40 {
            let s = wal.log(&samples_rec(1, t)).unwrap();
            wal.sync(s).unwrap();
        }
        drop(wal);
        let segs = list_segments(dir.path()).unwrap();
        assert!(segs.len() > 3, "{segs:?}");
        // Flip a payload byte in the second segment's first record.
        let p = dir.path().join(segment_name(segs[1]));
        let mut data = fs::read(&p).unwrap();
        data[HEADER + 2] ^= 0xff;
        fs::write(&p, data).unwrap();
        let (recs, rep) = collect(dir.path());
        let first_seg_records = {
            let mut n = 0;
            read_file(
                &dir.path().join(segment_name(segs[0])),
                &mut |_| {
                    n += 1;
                    Ok(())
                },
                false,
            )
            .unwrap();
            n
        };
        assert_eq!(recs.len(), first_seg_records);
        assert!(
            rep.repaired.iter().any(|m| m.contains("checksum mismatch")),
            "{:?}",
            rep.repaired
        );
        assert!(
            rep.repaired.iter().any(|m| m.contains("removed")),
            "{:?}",
            rep.repaired
        );
    }

    #[test]
    fn checkpoint_replaces_segments() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(dir.path(), 1 << 20, metrics(), |_| {}).unwrap();
        for t in 0..5 {
            let s = wal.log(&samples_rec(1, t)).unwrap();
            wal.sync(s).unwrap();
        }
        wal.checkpoint(|w| {
            let mut b = Vec::new();
            record::encode_min_time(&mut b, 3);
            w(&b);
            w(&samples_rec(1, 3));
            w(&samples_rec(1, 4));
        })
        .unwrap();
        let s = wal.log(&samples_rec(1, 5)).unwrap();
        wal.sync(s).unwrap();
        drop(wal);
        let (recs, rep) = collect(dir.path());
        assert_eq!(rep.checkpoint, Some(1));
        assert_eq!(recs.len(), 4, "{recs:?}");
        assert_eq!(recs[0], Record::MinTime(3));
    }
}
