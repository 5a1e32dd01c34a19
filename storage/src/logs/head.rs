//! The in-memory head: entries acknowledged since the last cut, per stream, readable at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use vigil_model::{Labels, LogStream, Matcher};

/// One entry held by the head.
#[derive(Clone, Debug)]
pub(crate) struct HeadEntry {
    pub ts: i64,
    pub line: Arc<str>,
    pub metadata: Vec<(String, String)>,
}

pub(crate) struct HeadStream {
    pub labels: Labels,
    pub entries: Vec<HeadEntry>,
    pub bytes: u64,
    pub min_ts: i64,
    pub max_ts: i64,
    /// Whether `entries` are in time order (every append so far came at or after the last one).
    pub sorted: bool,
}

impl HeadStream {
    /// Whether the stream holds this exact entry (time and line). Found by binary search while the
    /// stream is in time order; an out-of-order stream is only checked against its last entry.
    fn holds(&self, ts: i64, line: &str) -> bool {
        let Some(last) = self.entries.last() else {
            return false;
        };
        if ts > last.ts {
            return false;
        }
        if ts == last.ts && *last.line == *line {
            return true;
        }
        if !self.sorted {
            return false;
        }
        let from = self.entries.partition_point(|x| x.ts < ts);
        self.entries[from..]
            .iter()
            .take_while(|x| x.ts == ts)
            .any(|x| *x.line == *line)
    }
}

#[derive(Default)]
pub(crate) struct Head {
    pub streams: HashMap<u64, HeadStream>,
    pub bytes: u64,
    pub entries: u64,
    /// When the head took its first entry.
    pub started: Option<Instant>,
}

/// What an append added.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AppendStats {
    pub entries: u64,
    pub bytes: u64,
    /// Entries dropped as exact repeats (same time and line) of an entry the head holds for the
    /// stream (Loki drops repeats of the previous entry; a resent batch repeats earlier ones).
    pub duplicates: u64,
}

impl Head {
    pub fn append(&mut self, batch: Vec<LogStream>) -> AppendStats {
        let mut st = AppendStats::default();
        for s in batch {
            if s.entries.is_empty() {
                continue;
            }
            let fp = s.labels.stable_hash();
            let hs = self.streams.entry(fp).or_insert_with(|| HeadStream {
                labels: s.labels.clone(),
                entries: Vec::new(),
                bytes: 0,
                min_ts: i64::MAX,
                max_ts: i64::MIN,
                sorted: true,
            });
            for e in s.entries {
                // An exact repeat (a client resending a batch it had no answer for) is dropped.
                if hs.holds(e.ts, &e.line) {
                    st.duplicates += 1;
                    continue;
                }
                if hs.entries.last().is_some_and(|l| e.ts < l.ts) {
                    hs.sorted = false;
                }
                let n = e.line.len() as u64;
                hs.bytes += n;
                hs.min_ts = hs.min_ts.min(e.ts);
                hs.max_ts = hs.max_ts.max(e.ts);
                hs.entries.push(HeadEntry {
                    ts: e.ts,
                    line: Arc::from(e.line),
                    metadata: e.metadata,
                });
                st.entries += 1;
                st.bytes += n;
            }
        }
        if st.entries > 0 && self.started.is_none() {
            self.started = Some(Instant::now());
        }
        self.bytes += st.bytes;
        self.entries += st.entries;
        st
    }

    /// Streams matching every matcher with entries in `[start, end)`.
    pub fn matching<'a>(
        &'a self,
        matchers: &'a [Matcher],
        start: i64,
        end: i64,
    ) -> impl Iterator<Item = (u64, &'a HeadStream)> + 'a {
        self.streams
            .iter()
            .filter(move |(_, s)| s.max_ts >= start && s.min_ts < end)
            .filter(move |(_, s)| {
                matchers
                    .iter()
                    .all(|m| m.matches(s.labels.get(&m.name).unwrap_or("")))
            })
            .map(|(fp, s)| (*fp, s))
    }
}
