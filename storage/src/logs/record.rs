//! The log WAL's record: one push batch (streams with their entries), as acknowledged.
//!
//! Layout: `u8 kind (1) | uvarint streams | per stream: uvarint pairs, (name, value)… | uvarint entries |
//! per entry: varint ts (ns, delta to the previous entry of the stream) | line | uvarint pairs,
//! (name, value)…`; strings are uvarint length + UTF-8.

use vigil_model::{Label, Labels, LogEntry, LogStream};

use crate::wal::record::{Cursor, DecodeError, put_str, put_uvarint, put_varint};

const KIND_ENTRIES: u8 = 1;

/// Encodes a batch; streams with no entries are skipped.
pub(crate) fn encode(streams: &[LogStream]) -> Vec<u8> {
    let size: usize = streams
        .iter()
        .map(|s| s.labels.byte_size() + s.entries.iter().map(|e| e.line.len() + 16).sum::<usize>())
        .sum();
    let mut buf = Vec::with_capacity(size + 16);
    buf.push(KIND_ENTRIES);
    let n = streams.iter().filter(|s| !s.entries.is_empty()).count();
    put_uvarint(&mut buf, n as u64);
    for s in streams.iter().filter(|s| !s.entries.is_empty()) {
        put_uvarint(&mut buf, s.labels.len() as u64);
        for l in &s.labels {
            put_str(&mut buf, l.name);
            put_str(&mut buf, l.value);
        }
        put_uvarint(&mut buf, s.entries.len() as u64);
        let mut prev = 0i64;
        for e in &s.entries {
            put_varint(&mut buf, e.ts.wrapping_sub(prev));
            prev = e.ts;
            put_str(&mut buf, &e.line);
            put_uvarint(&mut buf, e.metadata.len() as u64);
            for (k, v) in &e.metadata {
                put_str(&mut buf, k);
                put_str(&mut buf, v);
            }
        }
    }
    buf
}

/// Decodes a batch written by [`encode`].
pub(crate) fn decode(payload: &[u8]) -> Result<Vec<LogStream>, DecodeError> {
    let mut c = Cursor { b: payload, i: 0 };
    let kind = *c.bytes(1)?.first().ok_or(DecodeError::Truncated)?;
    if kind != KIND_ENTRIES {
        return Err(DecodeError::UnknownType(kind));
    }
    let n = c.uvarint()? as usize;
    let mut out = Vec::with_capacity(n.min(1 << 16));
    for _ in 0..n {
        let pairs = c.uvarint()? as usize;
        let mut labels = Vec::with_capacity(pairs.min(64));
        for _ in 0..pairs {
            let name = c.string()?;
            let value = c.string()?;
            labels.push(Label::new(name, value));
        }
        let count = c.uvarint()? as usize;
        let mut entries = Vec::with_capacity(count.min(1 << 16));
        let mut prev = 0i64;
        for _ in 0..count {
            let ts = prev.wrapping_add(c.varint()?);
            prev = ts;
            let line = c.string()?;
            let m = c.uvarint()? as usize;
            let mut metadata = Vec::with_capacity(m.min(64));
            for _ in 0..m {
                metadata.push((c.string()?, c.string()?));
            }
            entries.push(LogEntry { ts, line, metadata });
        }
        out.push(LogStream {
            // Written from a valid label set: sorted, unique, no empty values.
            labels: Labels::from_pairs(labels.into_iter().map(|l| (l.name, l.value))),
            entries,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trip(
            streams in proptest::collection::vec(
                (
                    proptest::collection::btree_map("[a-z_]{1,6}", "[ -~]{1,8}", 0..4),
                    proptest::collection::vec(
                        (any::<i64>(), "\\PC{0,40}", proptest::collection::vec(("[a-z]{1,4}", "[ -~]{0,6}"), 0..3)),
                        1..20,
                    ),
                ),
                0..5,
            )
        ) {
            let streams: Vec<LogStream> = streams
                .into_iter()
                .map(|(labels, entries)| LogStream {
                    labels: Labels::from_pairs(labels),
                    entries: entries
                        .into_iter()
                        .map(|(ts, line, metadata)| LogEntry { ts, line, metadata })
                        .collect(),
                })
                .collect();
            let back = decode(&encode(&streams)).unwrap();
            prop_assert_eq!(back, streams);
        }
    }

    #[test]
    fn truncated_is_an_error() {
        let s = vec![LogStream {
            labels: Labels::from_pairs([("app", "x")]),
            entries: vec![LogEntry::new(5, "hello")],
        }];
        let b = encode(&s);
        for cut in 0..b.len() {
            assert!(decode(&b[..cut]).is_err(), "cut at {cut}");
        }
    }
}
