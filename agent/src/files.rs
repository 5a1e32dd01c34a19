//! File tailing: globs expanded on every poll; files followed by identity (device, inode), so a
//! rename (logrotate's default) keeps the old file being read to its end while the new one starts
//! at 0; a file shorter than the position read, or whose first bytes changed, was truncated
//! (copytruncate) and is read again from 0. Positions advance only past whole lines.

use std::collections::HashMap;
use std::fs::{self, File};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// How many leading bytes identify a file's content (to tell a truncated-and-rewritten file from
/// one that only grew).
const FP_MAX: usize = 128;
/// At most this much is read from one file in one go (so one busy file cannot starve the others).
const READ_CHUNK: usize = 1 << 20;

/// Where reading of one file stands; saved with every buffered batch.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FilePosition {
    /// The path the file was found under (its `filename` label).
    pub path: String,
    /// The stream's selector, so a file rotated away while the agent was down is still read into
    /// the same stream.
    pub stream: String,
    pub dev: u64,
    pub ino: u64,
    pub offset: u64,
    pub fp_len: u32,
    pub fp_crc: u32,
}

/// Where lines go.
pub trait Sink {
    fn line(&mut self, stream: &str, line: &[u8]);
    /// Whether the current batch is full (reading pauses).
    fn full(&self) -> bool;
}

pub struct FileSource {
    pub globs: Vec<String>,
    pub excludes: Vec<glob::Pattern>,
    /// Labels as `name="value"` pairs, sorted, without `filename`.
    pub labels: Vec<(String, String)>,
}

struct Tracked {
    path: String,
    stream: String,
    file: File,
    offset: u64,
    size_seen: u64,
    fp_len: u32,
    fp_crc: u32,
    /// Since when no glob matches it (renamed away or deleted).
    gone_since: Option<Instant>,
    /// Discovery order, so rotated files are finished before their successors start.
    order: u64,
}

#[derive(Default, Debug, Clone, Copy)]
pub struct TailStats {
    pub lines: u64,
    pub bytes: u64,
    pub rotations: u64,
    pub truncations: u64,
    pub opened: u64,
}

pub struct Tailer {
    sources: Vec<FileSource>,
    tracked: HashMap<(u64, u64), Tracked>,
    restored: HashMap<(u64, u64), FilePosition>,
    first_poll: bool,
    max_line: usize,
    rotate_wait: Duration,
    next_order: u64,
    pub stats: TailStats,
}

fn selector(labels: &[(String, String)], filename: &str) -> String {
    let mut all: Vec<(&str, &str)> = labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    all.push(("filename", filename));
    all.sort();
    let body: Vec<String> = all
        .iter()
        .map(|(k, v)| format!("{k}={}", serde_json::to_string(v).unwrap()))
        .collect();
    format!("{{{}}}", body.join(", "))
}

fn fingerprint(file: &File, size: u64) -> std::io::Result<(u32, u32)> {
    let n = (size as usize).min(FP_MAX);
    let mut buf = vec![0u8; n];
    file.read_exact_at(&mut buf, 0)?;
    Ok((n as u32, crc32fast::hash(&buf)))
}

impl Tailer {
    pub fn new(
        sources: Vec<FileSource>,
        restored: Vec<FilePosition>,
        max_line: usize,
        rotate_wait: Duration,
    ) -> Tailer {
        Tailer {
            sources,
            tracked: HashMap::new(),
            restored: restored.into_iter().map(|p| ((p.dev, p.ino), p)).collect(),
            first_poll: true,
            max_line,
            rotate_wait,
            next_order: 0,
            stats: TailStats::default(),
        }
    }

    pub fn has_sources(&self) -> bool {
        !self.sources.is_empty()
    }

    pub fn watched(&self) -> usize {
        self.tracked.len()
    }

    pub fn positions(&self) -> Vec<FilePosition> {
        let mut v: Vec<FilePosition> = self
            .tracked
            .iter()
            .map(|(&(dev, ino), t)| FilePosition {
                path: t.path.clone(),
                stream: t.stream.clone(),
                dev,
                ino,
                offset: t.offset,
                fp_len: t.fp_len,
                fp_crc: t.fp_crc,
            })
            .collect();
        v.sort_by(|a, b| a.path.cmp(&b.path).then(a.ino.cmp(&b.ino)));
        v
    }

    fn open(&mut self, key: (u64, u64), path: &Path, stream: String, label_path: String) {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot open a log file");
                return;
            }
        };
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut t = Tracked {
            path: label_path,
            stream,
            file,
            offset: 0,
            size_seen: 0,
            fp_len: 0,
            fp_crc: 0,
            gone_since: None,
            order: self.next_order,
        };
        self.next_order += 1;
        if let Some(p) = self.restored.remove(&key) {
            // The same inode with the same first bytes: the file the position was saved for.
            let same = p.offset <= size
                && (p.fp_len == 0
                    || fingerprint(&t.file, p.fp_len as u64)
                        .is_ok_and(|fp| fp == (p.fp_len, p.fp_crc)));
            if same {
                t.offset = p.offset;
                t.fp_len = p.fp_len;
                t.fp_crc = p.fp_crc;
                t.stream = p.stream;
                t.path = p.path;
            } else {
                tracing::info!(path = %path.display(), "a saved position no longer fits its file (replaced or truncated); reading from the start");
            }
        }
        tracing::info!(path = %path.display(), offset = t.offset, "tailing");
        self.stats.opened += 1;
        self.tracked.insert(key, t);
    }

    fn discover(&mut self) {
        let mut matched: HashMap<(u64, u64), (PathBuf, usize)> = HashMap::new();
        for (si, src) in self.sources.iter().enumerate() {
            for g in &src.globs {
                let Ok(paths) = glob::glob(g) else { continue };
                for path in paths.flatten() {
                    if src.excludes.iter().any(|x| x.matches_path(&path)) {
                        continue;
                    }
                    let Ok(m) = fs::metadata(&path) else { continue };
                    if !m.is_file() {
                        continue;
                    }
                    matched.entry((m.dev(), m.ino())).or_insert((path, si));
                }
            }
        }
        let now = Instant::now();
        for (key, t) in self.tracked.iter_mut() {
            if matched.contains_key(key) {
                t.gone_since = None;
            } else if t.gone_since.is_none() {
                tracing::info!(path = %t.path, "file renamed away or deleted; reading it to its end");
                self.stats.rotations += 1;
                t.gone_since = Some(now);
            }
        }
        let mut fresh: Vec<_> = matched
            .into_iter()
            .filter(|(k, _)| !self.tracked.contains_key(k))
            .collect();
        fresh.sort_by(|a, b| a.1.0.cmp(&b.1.0));
        if self.first_poll {
            // Files rotated away while the agent was down: found beside where they were, by inode.
            let lost: Vec<FilePosition> = self
                .restored
                .values()
                .filter(|p| !fresh.iter().any(|(k, _)| *k == (p.dev, p.ino)))
                .cloned()
                .collect();
            for p in lost {
                let dir = Path::new(&p.path).parent().map(Path::to_path_buf);
                let found = dir.and_then(|d| fs::read_dir(d).ok()).and_then(|rd| {
                    rd.flatten().map(|e| e.path()).find(|f| {
                        fs::metadata(f)
                            .is_ok_and(|m| m.is_file() && (m.dev(), m.ino()) == (p.dev, p.ino))
                    })
                });
                if let Some(f) = found {
                    tracing::info!(path = %f.display(), was = %p.path, "finishing a file rotated while the agent was down");
                    let key = (p.dev, p.ino);
                    self.open(key, &f, p.stream.clone(), p.path.clone());
                    if let Some(t) = self.tracked.get_mut(&key) {
                        t.gone_since = Some(now);
                        t.order = 0;
                    }
                }
            }
            self.restored
                .retain(|k, _| fresh.iter().any(|(f, _)| f == k));
            self.first_poll = false;
        }
        for (key, (path, si)) in fresh {
            let label_path = path.to_string_lossy().into_owned();
            let stream = selector(&self.sources[si].labels, &label_path);
            self.open(key, &path, stream, label_path);
        }
    }

    /// Reads what is new in every file; returns whether a file has more to read right away.
    pub fn poll(&mut self, sink: &mut dyn Sink) -> bool {
        self.discover();
        let mut keys: Vec<((u64, u64), bool, u64)> = self
            .tracked
            .iter()
            .map(|(k, t)| (*k, t.gone_since.is_none(), t.order))
            .collect();
        // Rotated files first, then by discovery: a stream's lines keep their order.
        keys.sort_by_key(|(_, live, order)| (*live, *order));
        let mut more = false;
        let mut done = Vec::new();
        for (key, _, _) in keys {
            if sink.full() {
                more = true;
                break;
            }
            let t = self.tracked.get_mut(&key).unwrap();
            match read_new(t, sink, self.max_line, &mut self.stats) {
                Ok(true) => more = true,
                Ok(false) => {
                    if let Some(since) = t.gone_since
                        && since.elapsed() >= self.rotate_wait
                    {
                        // Finished: an unterminated last line is a line too.
                        let size = t.file.metadata().map(|m| m.len()).unwrap_or(t.offset);
                        if size > t.offset {
                            let mut rest = vec![0u8; (size - t.offset) as usize];
                            if t.file.read_exact_at(&mut rest, t.offset).is_ok() {
                                rest.truncate(self.max_line);
                                sink.line(&t.stream, &rest);
                                self.stats.lines += 1;
                                self.stats.bytes += rest.len() as u64;
                            }
                        }
                        tracing::info!(path = %t.path, "finished a rotated file");
                        done.push(key);
                    }
                }
                Err(e) => {
                    tracing::warn!(path = %t.path, error = %e, "cannot read a log file");
                }
            }
        }
        for k in done {
            self.tracked.remove(&k);
        }
        more
    }
}

/// Reads whole lines after the position; returns whether more is left to read now.
fn read_new(
    t: &mut Tracked,
    sink: &mut dyn Sink,
    max_line: usize,
    stats: &mut TailStats,
) -> std::io::Result<bool> {
    let size = t.file.metadata()?.len();
    if size != t.size_seen {
        // Shorter than what was read, or shorter than or different in its first bytes.
        let truncated = size < t.offset
            || (t.fp_len > 0
                && (size < t.fp_len as u64
                    || fingerprint(&t.file, t.fp_len as u64)? != (t.fp_len, t.fp_crc)));
        if truncated {
            tracing::info!(path = %t.path, was = t.offset, size, "file truncated; reading it from the start");
            stats.truncations += 1;
            t.offset = 0;
            t.fp_len = 0;
        }
        t.size_seen = size;
    }
    if (t.fp_len as usize) < FP_MAX && size > t.fp_len as u64 {
        (t.fp_len, t.fp_crc) = fingerprint(&t.file, size)?;
    }
    while t.offset < size && !sink.full() {
        let n = ((size - t.offset) as usize).min(READ_CHUNK);
        let mut buf = vec![0u8; n];
        t.file.read_exact_at(&mut buf, t.offset)?;
        let mut start = 0;
        while let Some(i) = buf[start..].iter().position(|&b| b == b'\n') {
            let mut line = &buf[start..start + i];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            let line = &line[..line.len().min(max_line)];
            sink.line(&t.stream, line);
            stats.lines += 1;
            stats.bytes += line.len() as u64;
            start += i + 1;
            if sink.full() {
                break;
            }
        }
        if start == 0 {
            if n >= max_line {
                // No end of line in sight: a line too long to wait for, cut.
                sink.line(&t.stream, &buf[..max_line]);
                stats.lines += 1;
                stats.bytes += max_line as u64;
                t.offset += max_line as u64;
                continue;
            }
            // Only an unfinished line: wait for its end.
            return Ok(false);
        }
        t.offset += start as u64;
    }
    Ok(t.offset < size && sink.full())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[derive(Default)]
    struct Lines(Vec<(String, String)>, usize);
    impl Sink for Lines {
        fn line(&mut self, stream: &str, line: &[u8]) {
            self.0
                .push((stream.into(), String::from_utf8_lossy(line).into_owned()));
        }
        fn full(&self) -> bool {
            self.1 > 0 && self.0.len() >= self.1
        }
    }

    fn tailer(dir: &Path) -> Tailer {
        Tailer::new(
            vec![FileSource {
                globs: vec![format!("{}/*.log", dir.display())],
                excludes: vec![],
                labels: vec![("job".into(), "t".into())],
            }],
            vec![],
            1000,
            Duration::ZERO,
        )
    }

    fn append(p: &Path, s: &str) {
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .unwrap()
            .write_all(s.as_bytes())
            .unwrap();
    }

    #[test]
    fn rename_rotation_truncation_and_partial_lines() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("app.log");
        let mut t = tailer(d.path());
        let mut out = Lines::default();
        append(&log, "a\nb\npart");
        t.poll(&mut out);
        assert_eq!(
            out.0.iter().map(|x| x.1.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(
            out.0[0].0,
            format!(r#"{{filename="{}", job="t"}}"#, log.display())
        );
        append(&log, "ial\r\n");
        // Renamed away with a line still being written to it, a new file in its place.
        fs::rename(&log, d.path().join("app.log.1")).unwrap();
        append(&d.path().join("app.log.1"), "late\nunterminated");
        append(&log, "new1\n");
        out.0.clear();
        t.poll(&mut out);
        t.poll(&mut out);
        assert_eq!(
            out.0.iter().map(|x| x.1.as_str()).collect::<Vec<_>>(),
            ["partial", "late", "unterminated", "new1"]
        );
        assert_eq!(t.watched(), 1);
        // copytruncate: emptied, then written past the old position.
        fs::write(&log, "").unwrap();
        append(&log, "after truncate, a longer first line\n");
        out.0.clear();
        t.poll(&mut out);
        assert_eq!(out.0.len(), 1);
        assert_eq!(out.0[0].1, "after truncate, a longer first line");
        assert_eq!(t.stats.truncations, 1);
    }

    #[test]
    fn positions_resume_and_find_files_rotated_meanwhile() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("app.log");
        append(&log, "1\n2\n");
        let mut t = tailer(d.path());
        let mut out = Lines::default();
        t.poll(&mut out);
        let pos = t.positions();
        assert_eq!(pos.len(), 1);
        assert_eq!(pos[0].offset, 4);
        // While "down": more lines, then rotation, then a new file.
        append(&log, "3\n");
        fs::rename(&log, d.path().join("app.log.1")).unwrap();
        append(&log, "4\n");
        let mut t = Tailer::new(tailer(d.path()).sources, pos, 1000, Duration::ZERO);
        let mut out = Lines::default();
        t.poll(&mut out);
        t.poll(&mut out);
        assert_eq!(
            out.0.iter().map(|x| x.1.as_str()).collect::<Vec<_>>(),
            ["3", "4"]
        );
    }

    #[test]
    fn a_full_sink_pauses_without_losing_lines() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("x.log");
        append(&log, "1\n2\n3\n4\n5\n");
        let mut t = tailer(d.path());
        let mut out = Lines(Vec::new(), 2);
        assert!(t.poll(&mut out));
        assert_eq!(out.0.len(), 2);
        out.1 = 0;
        assert!(!t.poll(&mut out));
        assert_eq!(
            out.0.iter().map(|x| x.1.as_str()).collect::<Vec<_>>(),
            ["1", "2", "3", "4", "5"]
        );
    }
}
