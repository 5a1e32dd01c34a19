//! The disk buffer: every batch the agent reads is written here (fsynced) before it is sent, with
//! the read positions it reached, so a restart resumes where the last durable batch ended and
//! resends what the server did not acknowledge.
//!
//! Layout: `DIR/NNNNNNNNNNNNNNNNNNNN.seg` files named by the sequence number of their first record,
//! each a run of records `[u32 len][u32 crc32(payload)][payload]`, payload
//! `[u64 seq][u32 positions len][positions][body]`; `DIR/acked` holds the highest acknowledged
//! sequence number. A torn record at the end of the last segment (a crash mid-write) is cut off at
//! open. Segments whose records are all acknowledged are deleted, except the one being written
//! (it holds the newest positions).

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum BufferError {
    #[error("disk buffer {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> BufferError + '_ {
    move |source| BufferError::Io {
        path: path.to_path_buf(),
        source,
    }
}

const HEADER: usize = 8;

#[derive(Clone, Copy, Debug)]
struct Loc {
    seq: u64,
    segment: u64,
    offset: u64,
    len: u32,
}

struct Segment {
    first: u64,
    last: u64,
    path: PathBuf,
}

struct Inner {
    segments: Vec<Segment>,
    active: File,
    active_len: u64,
    next_seq: u64,
    acked: u64,
    pending: VecDeque<Loc>,
    pending_bytes: u64,
}

pub struct Buffer {
    dir: PathBuf,
    segment_bytes: u64,
    inner: Mutex<Inner>,
}

/// A record read back: its sequence number and the body to send.
pub struct Record {
    pub seq: u64,
    pub body: Vec<u8>,
}

fn seg_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.seg"))
}

fn read_acked(dir: &Path) -> u64 {
    fs::read_to_string(dir.join("acked"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn sync_dir(dir: &Path) -> Result<(), BufferError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// A record found by [`scan`]: sequence number, offset, length, positions.
type Scanned = (u64, usize, usize, Vec<u8>);

/// Parses the records of one segment; returns them and the length of the valid prefix.
fn scan(data: &[u8]) -> (Vec<Scanned>, usize) {
    let mut out = Vec::new();
    let mut at = 0;
    while at + HEADER <= data.len() {
        let len = u32::from_le_bytes(data[at..at + 4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(data[at + 4..at + 8].try_into().unwrap());
        let start = at + HEADER;
        if len < 12 || start + len > data.len() {
            break;
        }
        let payload = &data[start..start + len];
        if crc32fast::hash(payload) != crc {
            break;
        }
        let seq = u64::from_le_bytes(payload[0..8].try_into().unwrap());
        let plen = u32::from_le_bytes(payload[8..12].try_into().unwrap()) as usize;
        if 12 + plen > len {
            break;
        }
        out.push((seq, at, HEADER + len, payload[12..12 + plen].to_vec()));
        at = start + len;
    }
    (out, at)
}

impl Buffer {
    /// Opens (or creates) the buffer in `dir`; returns it with the positions of the newest record.
    pub fn open(dir: &Path, segment_bytes: u64) -> Result<(Buffer, Option<Vec<u8>>), BufferError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let acked = read_acked(dir);
        let mut firsts: Vec<u64> = fs::read_dir(dir)
            .map_err(io(dir))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(".seg")?.parse().ok()
            })
            .collect();
        firsts.sort_unstable();
        let mut segments = Vec::new();
        let mut pending = VecDeque::new();
        let mut pending_bytes = 0;
        let mut positions = None;
        let mut next_seq = acked + 1;
        let n = firsts.len();
        for (i, first) in firsts.into_iter().enumerate() {
            let path = seg_path(dir, first);
            let mut data = Vec::new();
            File::open(&path)
                .and_then(|mut f| f.read_to_end(&mut data))
                .map_err(io(&path))?;
            let (records, valid) = scan(&data);
            if valid < data.len() {
                if i + 1 == n {
                    tracing::warn!(path = %path.display(), kept = valid, dropped = data.len() - valid, "disk buffer: cutting a torn record off the last segment");
                    OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .and_then(|f| {
                            f.set_len(valid as u64)?;
                            f.sync_all()
                        })
                        .map_err(io(&path))?;
                } else {
                    tracing::error!(path = %path.display(), "disk buffer: a damaged record inside an older segment; the rest of that segment is skipped");
                }
            }
            let mut last = first.saturating_sub(1);
            for (seq, offset, len, pos) in records {
                last = seq;
                next_seq = next_seq.max(seq + 1);
                positions = Some(pos);
                if seq > acked {
                    pending.push_back(Loc {
                        seq,
                        segment: first,
                        offset: offset as u64,
                        len: len as u32,
                    });
                    pending_bytes += len as u64;
                }
            }
            segments.push(Segment { first, last, path });
        }
        let (active, active_len) = match segments.last() {
            Some(s) => {
                let f = OpenOptions::new()
                    .append(true)
                    .open(&s.path)
                    .map_err(io(&s.path))?;
                let len = f.metadata().map_err(io(&s.path))?.len();
                (f, len)
            }
            None => {
                let path = seg_path(dir, next_seq);
                let f = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(io(&path))?;
                sync_dir(dir)?;
                segments.push(Segment {
                    first: next_seq,
                    last: next_seq - 1,
                    path,
                });
                (f, 0)
            }
        };
        let b = Buffer {
            dir: dir.to_path_buf(),
            segment_bytes,
            inner: Mutex::new(Inner {
                segments,
                active,
                active_len,
                next_seq,
                acked,
                pending,
                pending_bytes,
            }),
        };
        b.gc(&mut b.inner.lock())?;
        Ok((b, positions))
    }

    /// Appends a record durably (fsync) and returns its sequence number.
    pub fn append(&self, positions: &[u8], body: &[u8]) -> Result<u64, BufferError> {
        let mut g = self.inner.lock();
        if g.active_len >= self.segment_bytes {
            let first = g.next_seq;
            let path = seg_path(&self.dir, first);
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(io(&path))?;
            sync_dir(&self.dir)?;
            g.active = f;
            g.active_len = 0;
            g.segments.push(Segment {
                first,
                last: first - 1,
                path,
            });
        }
        let seq = g.next_seq;
        let mut payload = Vec::with_capacity(12 + positions.len() + body.len());
        payload.extend_from_slice(&seq.to_le_bytes());
        payload.extend_from_slice(&(positions.len() as u32).to_le_bytes());
        payload.extend_from_slice(positions);
        payload.extend_from_slice(body);
        let mut rec = Vec::with_capacity(HEADER + payload.len());
        rec.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        rec.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        rec.extend_from_slice(&payload);
        let path = g.segments.last().unwrap().path.clone();
        g.active.write_all(&rec).map_err(io(&path))?;
        g.active.sync_data().map_err(io(&path))?;
        let offset = g.active_len;
        g.active_len += rec.len() as u64;
        g.next_seq += 1;
        let segment = {
            let s = g.segments.last_mut().unwrap();
            s.last = seq;
            s.first
        };
        g.pending.push_back(Loc {
            seq,
            segment,
            offset,
            len: rec.len() as u32,
        });
        g.pending_bytes += rec.len() as u64;
        Ok(seq)
    }

    /// The oldest record not acknowledged yet.
    pub fn first_pending(&self) -> Result<Option<Record>, BufferError> {
        let (loc, path) = {
            let g = self.inner.lock();
            let Some(loc) = g.pending.front().copied() else {
                return Ok(None);
            };
            (loc, seg_path(&self.dir, loc.segment))
        };
        let mut data = vec![0u8; loc.len as usize];
        File::open(&path)
            .and_then(|f| f.read_exact_at(&mut data, loc.offset))
            .map_err(io(&path))?;
        let plen = u32::from_le_bytes(data[HEADER + 8..HEADER + 12].try_into().unwrap()) as usize;
        Ok(Some(Record {
            seq: loc.seq,
            body: data.split_off(HEADER + 12 + plen),
        }))
    }

    /// Records everything up to `seq` as acknowledged (durably) and deletes spent segments.
    pub fn ack(&self, seq: u64) -> Result<(), BufferError> {
        let mut g = self.inner.lock();
        while let Some(l) = g.pending.front() {
            if l.seq > seq {
                break;
            }
            g.pending_bytes -= l.len as u64;
            g.pending.pop_front();
        }
        g.acked = g.acked.max(seq);
        let tmp = self.dir.join("acked.tmp");
        let dst = self.dir.join("acked");
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(format!("{}\n", g.acked).as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(io(&tmp))?;
        fs::rename(&tmp, &dst).map_err(io(&dst))?;
        sync_dir(&self.dir)?;
        self.gc(&mut g)
    }

    fn gc(&self, g: &mut Inner) -> Result<(), BufferError> {
        while g.segments.len() > 1 && g.segments[0].last <= g.acked {
            let s = g.segments.remove(0);
            fs::remove_file(&s.path).map_err(io(&s.path))?;
        }
        Ok(())
    }

    /// Bytes of records not acknowledged yet.
    pub fn pending_bytes(&self) -> u64 {
        self.inner.lock().pending_bytes
    }

    pub fn pending_records(&self) -> usize {
        self.inner.lock().pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_reopen_and_acks_are_kept() {
        let d = tempfile::tempdir().unwrap();
        {
            let (b, pos) = Buffer::open(d.path(), 64).unwrap();
            assert!(pos.is_none());
            for i in 0..5u8 {
                assert_eq!(b.append(&[i], &[i; 40]).unwrap(), i as u64 + 1);
            }
            assert_eq!(b.first_pending().unwrap().unwrap().body, vec![0; 40]);
            b.ack(2).unwrap();
            assert_eq!(b.pending_records(), 3);
        }
        let (b, pos) = Buffer::open(d.path(), 64).unwrap();
        assert_eq!(pos, Some(vec![4]));
        let r = b.first_pending().unwrap().unwrap();
        assert_eq!((r.seq, r.body), (3, vec![2; 40]));
        b.ack(5).unwrap();
        assert!(b.first_pending().unwrap().is_none());
        // Only the segment being written is left.
        let segs = fs::read_dir(d.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "seg")
            })
            .count();
        assert_eq!(segs, 1);
        assert_eq!(b.append(b"p", b"next").unwrap(), 6);
    }

    #[test]
    fn a_torn_tail_is_cut_and_numbering_goes_on() {
        let d = tempfile::tempdir().unwrap();
        {
            let (b, _) = Buffer::open(d.path(), 1 << 20).unwrap();
            b.append(b"a", b"one").unwrap();
            b.append(b"b", b"two").unwrap();
        }
        let seg = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|x| x == "seg"))
            .unwrap();
        let len = fs::metadata(&seg).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(len - 2)
            .unwrap();
        let (b, pos) = Buffer::open(d.path(), 1 << 20).unwrap();
        assert_eq!(pos, Some(b"a".to_vec()));
        assert_eq!(b.pending_records(), 1);
        assert_eq!(b.append(b"c", b"three").unwrap(), 2);
        drop(b);
        let (b, pos) = Buffer::open(d.path(), 1 << 20).unwrap();
        assert_eq!(pos, Some(b"c".to_vec()));
        assert_eq!(b.pending_records(), 2);
    }
}
