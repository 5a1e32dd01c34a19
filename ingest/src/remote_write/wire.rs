//! Remote write 1.0 requests read straight from the decompressed bytes, for the shape nearly every
//! request has (series with labels and samples, no metadata, exemplars or histograms).
//!
//! Why not prost: decoding into the generated types allocates two `String`s per label, and a
//! Prometheus sender repeats the same series in every request. Profiled at the remote-write shape
//! Prometheus sends (8 shards, one time step per request), those allocations and their UTF-8 checks
//! were the largest part of a request's CPU. Here a series' labels are packed from the request's
//! bytes into a scratch buffer and looked up in the store: a known series costs no allocation
//! beyond its samples and needs no validation. A new series, and any request this reader does not
//! handle, goes through the generated types and the full checks, so errors read the same.

use vigil_model::{Label, Labels, Sample};

use crate::push::Assembled;

/// Why the fast reader stepped aside (the caller decodes the request with prost instead).
#[derive(Debug, PartialEq)]
pub(crate) struct Fallback;

struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn done(&self) -> bool {
        self.b.is_empty()
    }

    fn varint(&mut self) -> Result<u64, Fallback> {
        let mut v = 0u64;
        for i in 0..10 {
            let (&byte, rest) = self.b.split_first().ok_or(Fallback)?;
            self.b = rest;
            v |= ((byte & 0x7f) as u64) << (7 * i);
            if byte < 0x80 {
                return Ok(v);
            }
        }
        Err(Fallback)
    }

    fn bytes(&mut self) -> Result<&'a [u8], Fallback> {
        let n = self.varint()? as usize;
        if n > self.b.len() {
            return Err(Fallback);
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(head)
    }

    fn fixed64(&mut self) -> Result<u64, Fallback> {
        if self.b.len() < 8 {
            return Err(Fallback);
        }
        let (head, rest) = self.b.split_at(8);
        self.b = rest;
        Ok(u64::from_le_bytes(head.try_into().map_err(|_| Fallback)?))
    }

    /// Skips a field of `wire` type.
    fn skip(&mut self, wire: u64) -> Result<(), Fallback> {
        match wire {
            0 => self.varint().map(|_| ()),
            1 => self.fixed64().map(|_| ()),
            2 => self.bytes().map(|_| ()),
            5 => {
                if self.b.len() < 4 {
                    return Err(Fallback);
                }
                self.b = &self.b[4..];
                Ok(())
            }
            _ => Err(Fallback),
        }
    }
}

/// Reads `raw` (a decompressed `WriteRequest`) into `a`. On `Err(Fallback)` the caller must discard
/// `a` and decode the request the general way.
pub(crate) fn assemble(
    raw: &[u8],
    a: &mut Assembled<'_>,
    protocol: &'static str,
    state: &crate::push::PushState,
) -> Result<(), Fallback> {
    let mut r = Reader { b: raw };
    let mut labels: Vec<(&[u8], &[u8])> = Vec::with_capacity(16);
    // New series are checked (with metrics of refusals) only once the whole request was read, so a
    // fallback half-way leaves no trace.
    let mut new: Vec<(Vec<Label>, Vec<Sample>)> = Vec::new();
    while !r.done() {
        let tag = r.varint()?;
        match (tag >> 3, tag & 7) {
            (1, 2) => {
                let ts = r.bytes()?;
                labels.clear();
                let samples = series(ts, &mut labels)?;
                if let Some(known) = a.known_packed(labels.iter().copied()) {
                    a.push_known(known, samples);
                    continue;
                }
                // A series the store does not hold: check and build it the general way.
                let mut owned = Vec::with_capacity(labels.len());
                for (n, v) in &labels {
                    owned.push(Label {
                        name: String::from_utf8(n.to_vec()).map_err(|_| Fallback)?,
                        value: String::from_utf8(v.to_vec()).map_err(|_| Fallback)?,
                    });
                }
                new.push((owned, samples));
            }
            // Metadata (3) and anything unexpected: the general path.
            (3, _) => return Err(Fallback),
            (_, wire) => r.skip(wire)?,
        }
    }
    for (labels, samples) in new {
        a.add_series(
            protocol,
            &state.metrics,
            &state.limits.labels,
            labels,
            samples,
            true,
        );
    }
    Ok(())
}

/// One `TimeSeries`: its labels (into `labels`) and samples.
fn series<'a>(
    ts: &'a [u8],
    labels: &mut Vec<(&'a [u8], &'a [u8])>,
) -> Result<Vec<Sample>, Fallback> {
    let mut r = Reader { b: ts };
    let mut samples = Vec::new();
    while !r.done() {
        let tag = r.varint()?;
        match (tag >> 3, tag & 7) {
            (1, 2) => {
                let mut l = Reader { b: r.bytes()? };
                let (mut name, mut value): (&[u8], &[u8]) = (&[], &[]);
                while !l.done() {
                    let t = l.varint()?;
                    match (t >> 3, t & 7) {
                        (1, 2) => name = l.bytes()?,
                        (2, 2) => value = l.bytes()?,
                        (_, wire) => l.skip(wire)?,
                    }
                }
                labels.push((name, value));
            }
            (2, 2) => {
                let mut s = Reader { b: r.bytes()? };
                let (mut v, mut t) = (0f64, 0i64);
                while !s.done() {
                    let tag = s.varint()?;
                    match (tag >> 3, tag & 7) {
                        (1, 1) => v = f64::from_bits(s.fixed64()?),
                        (2, 0) => t = s.varint()? as i64,
                        (_, wire) => s.skip(wire)?,
                    }
                }
                samples.push(Sample { t, v });
            }
            // Exemplars (3) and native histograms (4) are handled by the general path.
            (3, _) | (4, _) => return Err(Fallback),
            (_, wire) => r.skip(wire)?,
        }
    }
    Ok(samples)
}

impl Assembled<'_> {
    /// The stored labels of the series these wire labels name, if the store holds it.
    pub(crate) fn known_packed<'b>(
        &mut self,
        labels: impl Iterator<Item = (&'b [u8], &'b [u8])>,
    ) -> Option<Labels> {
        let store = self.known?;
        let scratch = self.scratch_mut();
        scratch.clear();
        for (n, v) in labels.filter(|(_, v)| !v.is_empty()) {
            scratch.extend_from_slice(n);
            scratch.push(0xff);
            scratch.extend_from_slice(v);
            scratch.push(0xff);
        }
        store.known(scratch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    use crate::remote_write::proto::v1;

    fn req() -> v1::WriteRequest {
        v1::WriteRequest {
            timeseries: vec![v1::TimeSeries {
                labels: vec![
                    v1::Label {
                        name: "__name__".into(),
                        value: "up".into(),
                    },
                    v1::Label {
                        name: "job".into(),
                        value: "x".into(),
                    },
                ],
                samples: vec![
                    v1::Sample {
                        value: 1.5,
                        timestamp: 1000,
                    },
                    v1::Sample {
                        value: -2.0,
                        timestamp: -5,
                    },
                ],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn reads_what_prost_writes() {
        let raw = req().encode_to_vec();
        let mut labels = Vec::new();
        let mut r = Reader { b: &raw };
        let tag = r.varint().unwrap();
        assert_eq!(tag, (1 << 3) | 2);
        let samples = series(r.bytes().unwrap(), &mut labels).unwrap();
        assert_eq!(
            labels,
            vec![(&b"__name__"[..], &b"up"[..]), (&b"job"[..], &b"x"[..])]
        );
        assert_eq!(
            samples,
            vec![Sample { t: 1000, v: 1.5 }, Sample { t: -5, v: -2.0 }]
        );
    }

    #[test]
    fn exemplars_metadata_and_garbage_fall_back() {
        let mut q = req();
        q.timeseries[0].exemplars.push(Default::default());
        let raw = q.encode_to_vec();
        let mut r = Reader { b: &raw };
        r.varint().unwrap();
        assert_eq!(series(r.bytes().unwrap(), &mut Vec::new()), Err(Fallback));
        let mut r = Reader {
            b: &[0x0a, 0x05, 0x01],
        };
        r.varint().unwrap();
        assert_eq!(r.bytes(), Err(Fallback), "a length past the end");
    }
}
