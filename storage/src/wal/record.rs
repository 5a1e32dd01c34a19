//! WAL record payloads.
//!
//! Every record starts with a type byte. Integers are LEB128 varints (signed ones zig-zag encoded);
//! floats are their 8 IEEE bytes, little endian, so NaN payloads (the staleness marker) survive.

use vigil_model::{Label, Labels};

pub const REC_SERIES: u8 = 1;
pub const REC_SAMPLES: u8 = 2;
pub const REC_MIN_TIME: u8 = 3;

/// A decoded record.
#[derive(Debug, PartialEq)]
pub enum Record {
    /// A new series and the reference later records use for it.
    Series { series_ref: u64, labels: Labels },
    /// Samples, grouped by series.
    Samples(Vec<SeriesSamples>),
    /// Written at the start of a checkpoint: samples older than this are in blocks already.
    MinTime(i64),
}

/// Samples of one series in a samples record.
#[derive(Debug, PartialEq, Default, Clone)]
pub struct SeriesSamples {
    pub series_ref: u64,
    pub samples: Vec<(i64, f64)>,
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("record ends early")]
    Truncated,
    #[error("unknown record type {0}")]
    UnknownType(u8),
    #[error("label in record is not UTF-8")]
    Utf8,
    #[error("varint overflows")]
    Varint,
}

pub fn put_uvarint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

pub fn put_varint(buf: &mut Vec<u8>, v: i64) {
    put_uvarint(buf, ((v << 1) ^ (v >> 63)) as u64);
}

pub fn put_str(buf: &mut Vec<u8>, s: &str) {
    put_uvarint(buf, s.len() as u64);
    buf.extend_from_slice(s.as_bytes());
}

/// Encodes a series record.
pub fn encode_series(buf: &mut Vec<u8>, series_ref: u64, labels: &Labels) {
    buf.push(REC_SERIES);
    put_uvarint(buf, series_ref);
    put_uvarint(buf, labels.len() as u64);
    for l in labels {
        put_str(buf, l.name);
        put_str(buf, l.value);
    }
}

/// Incrementally builds a samples record.
pub struct SamplesEncoder {
    buf: Vec<u8>,
    groups: usize,
}

impl Default for SamplesEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl SamplesEncoder {
    pub fn new() -> Self {
        SamplesEncoder {
            buf: vec![REC_SAMPLES],
            groups: 0,
        }
    }

    /// Adds the samples of one series (in the order they were appended).
    pub fn add(&mut self, series_ref: u64, samples: &[(i64, f64)]) {
        if samples.is_empty() {
            return;
        }
        self.groups += 1;
        put_uvarint(&mut self.buf, series_ref);
        put_uvarint(&mut self.buf, samples.len() as u64);
        let mut prev = 0i64;
        for (i, &(t, v)) in samples.iter().enumerate() {
            put_varint(&mut self.buf, if i == 0 { t } else { t.wrapping_sub(prev) });
            prev = t;
            self.buf.extend_from_slice(&v.to_bits().to_le_bytes());
        }
    }

    pub fn is_empty(&self) -> bool {
        self.groups == 0
    }

    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

pub fn encode_min_time(buf: &mut Vec<u8>, t: i64) {
    buf.push(REC_MIN_TIME);
    put_varint(buf, t);
}

pub(crate) struct Cursor<'a> {
    pub(crate) b: &'a [u8],
    pub(crate) i: usize,
}

impl Cursor<'_> {
    pub(crate) fn uvarint(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        let mut shift = 0u32;
        loop {
            let byte = *self.b.get(self.i).ok_or(DecodeError::Truncated)?;
            self.i += 1;
            if shift >= 64 {
                return Err(DecodeError::Varint);
            }
            v |= ((byte & 0x7f) as u64) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
            shift += 7;
        }
    }

    pub(crate) fn varint(&mut self) -> Result<i64, DecodeError> {
        let u = self.uvarint()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        let end = self.i.checked_add(n).ok_or(DecodeError::Truncated)?;
        let s = self.b.get(self.i..end).ok_or(DecodeError::Truncated)?;
        self.i = end;
        Ok(s)
    }

    pub(crate) fn string(&mut self) -> Result<String, DecodeError> {
        let n = self.uvarint()? as usize;
        let b = self.bytes(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| DecodeError::Utf8)
    }

    pub(crate) fn f64(&mut self) -> Result<f64, DecodeError> {
        let b = self.bytes(8)?;
        Ok(f64::from_bits(u64::from_le_bytes(
            b.try_into().map_err(|_| DecodeError::Truncated)?,
        )))
    }
}

/// Decodes one record payload.
pub fn decode(payload: &[u8]) -> Result<Record, DecodeError> {
    let (&typ, rest) = payload.split_first().ok_or(DecodeError::Truncated)?;
    let mut c = Cursor { b: rest, i: 0 };
    match typ {
        REC_SERIES => {
            let series_ref = c.uvarint()?;
            let n = c.uvarint()? as usize;
            let mut labels = Vec::with_capacity(n.min(256));
            for _ in 0..n {
                let name = c.string()?;
                let value = c.string()?;
                labels.push(Label { name, value });
            }
            Ok(Record::Series {
                series_ref,
                labels: Labels::from_pairs(labels.into_iter().map(|l| (l.name, l.value))),
            })
        }
        REC_SAMPLES => {
            let mut groups = Vec::new();
            while c.i < rest.len() {
                let series_ref = c.uvarint()?;
                let n = c.uvarint()? as usize;
                let mut samples = Vec::with_capacity(n.min(1 << 16));
                let mut t = 0i64;
                for i in 0..n {
                    let d = c.varint()?;
                    t = if i == 0 { d } else { t.wrapping_add(d) };
                    samples.push((t, c.f64()?));
                }
                groups.push(SeriesSamples {
                    series_ref,
                    samples,
                });
            }
            Ok(Record::Samples(groups))
        }
        REC_MIN_TIME => Ok(Record::MinTime(c.varint()?)),
        t => Err(DecodeError::UnknownType(t)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let labels = Labels::from_pairs([("__name__", "up"), ("job", "a\u{2603}")]);
        let mut b = Vec::new();
        encode_series(&mut b, 77, &labels);
        assert_eq!(
            decode(&b).unwrap(),
            Record::Series {
                series_ref: 77,
                labels
            }
        );

        let mut e = SamplesEncoder::new();
        e.add(
            1,
            &[(-5, 1.0), (10, vigil_model::stale_nan()), (i64::MAX, -0.0)],
        );
        e.add(2, &[(0, f64::INFINITY)]);
        let b = e.finish();
        let Record::Samples(g) = decode(&b).unwrap() else {
            panic!()
        };
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].samples[2].0, i64::MAX);
        assert!(vigil_model::is_stale_nan(g[0].samples[1].1));
        assert_eq!(g[0].samples[2].1.to_bits(), (-0.0f64).to_bits());

        let mut b = Vec::new();
        encode_min_time(&mut b, -42);
        assert_eq!(decode(&b).unwrap(), Record::MinTime(-42));
    }

    #[test]
    fn truncated_is_an_error() {
        let mut e = SamplesEncoder::new();
        e.add(1, &[(5, 1.0)]);
        let b = e.finish();
        assert!(decode(&b[..b.len() - 1]).is_err());
    }
}
