//! In-memory head chunks: delta-of-delta timestamps and XOR floats (the Gorilla encoding Prometheus uses
//! for its head), at about 1.4 bytes per sample for typical scrape data.
//!
//! Written here rather than taken from a crate: the Rust Gorilla crates (`tsz` and forks) are dormant, and
//! the head's append path is the hottest loop of ingest, so it has to be ours to measure and tune.

/// Samples per chunk before it is closed; Prometheus uses the same count.
pub const SAMPLES_PER_CHUNK: u16 = 120;

struct BitReader<'a> {
    buf: &'a [u8],
    pos: usize, // in bits
}

impl<'a> BitReader<'a> {
    #[inline]
    fn read_bit(&mut self) -> Option<bool> {
        let byte = *self.buf.get(self.pos / 8)?;
        let bit = (byte >> (7 - (self.pos % 8))) & 1 == 1;
        self.pos += 1;
        Some(bit)
    }

    /// Reads `nbits` (at most 64) bits, most significant first: one 128-bit big-endian load covers
    /// any bit offset, instead of a loop over bytes.
    #[inline]
    fn read_bits(&mut self, nbits: u8) -> Option<u64> {
        if nbits == 0 {
            return Some(0);
        }
        let end = self.pos + nbits as usize;
        if end > self.buf.len() * 8 {
            return None;
        }
        let byte = self.pos / 8;
        let off = (self.pos % 8) as u32;
        let word = match self.buf.get(byte..byte + 16) {
            Some(b) => u128::from_be_bytes(b.try_into().unwrap_or([0; 16])),
            None => {
                let mut w = [0u8; 16];
                let tail = &self.buf[byte..];
                w[..tail.len()].copy_from_slice(tail);
                u128::from_be_bytes(w)
            }
        };
        self.pos = end;
        Some(((word << off) >> (128 - nbits as u32)) as u64)
    }
}

/// An open chunk that accepts samples in time order, at most [`SAMPLES_PER_CHUNK`] of them.
///
/// Laid out for size: the head holds one per series, inside its `MemSeries` (see the size check in
/// head.rs). The bit stream is a boxed slice whose length is its capacity, `len` bytes of it used
/// (at most 120 samples of at most 145 bits each fit a u16 many times over), and the chunk's first
/// timestamp is read back from the stream instead of being kept beside it.
#[derive(Clone, Default)]
pub struct XorAppender {
    buf: Box<[u8]>,
    len: u16,
    /// Bits still free in the last used byte of `buf` (0 means a new byte is needed).
    free: u8,
    count: u16,
    leading: u8,
    trailing: u8,
    t: i64,
    t_delta: i64,
    v: u64,
}

impl XorAppender {
    pub fn new() -> Self {
        XorAppender {
            leading: 0xff,
            ..Default::default()
        }
    }

    /// Starts a new byte, growing the buffer when it is full. The buffer lives as long as the
    /// series' chunk, so it is allocated as a long-lived allocation (see `crate::alloc`).
    #[inline]
    fn push_byte(&mut self) {
        if self.len as usize == self.buf.len() {
            let mut v = Vec::from(std::mem::take(&mut self.buf));
            // Steps that follow the allocator's size classes instead of doubling: a head holds one open
            // chunk per series, and doubling would leave a quarter of that memory unused on average.
            let target = crate::alloc::next_size_class(v.len());
            crate::alloc::long_lived(|| v.reserve_exact(target - v.len()));
            v.resize(target, 0);
            // Length equals capacity: no reallocation.
            self.buf = v.into_boxed_slice();
        }
        self.len += 1;
        self.free = 8;
    }

    #[inline]
    fn write_bit(&mut self, bit: bool) {
        if self.free == 0 {
            self.push_byte();
        }
        if bit {
            self.buf[self.len as usize - 1] |= 1 << (self.free - 1);
        }
        self.free -= 1;
    }

    /// Writes the low `nbits` of `v`, most significant first.
    #[inline]
    fn write_bits(&mut self, v: u64, mut nbits: u8) {
        while nbits > 0 {
            if self.free == 0 {
                self.push_byte();
            }
            let take = nbits.min(self.free);
            let shift = nbits - take;
            let chunk = ((v >> shift) & ((1u64 << take) - 1)) as u8;
            self.buf[self.len as usize - 1] |= chunk << (self.free - take);
            self.free -= take;
            nbits -= take;
        }
    }

    /// The used part of the bit stream.
    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }

    pub fn count(&self) -> u16 {
        self.count
    }

    /// The first sample's timestamp (the stream's first 64 bits); 0 while the chunk is empty.
    pub fn min_t(&self) -> i64 {
        first_timestamp(self.bytes())
    }

    pub fn max_t(&self) -> i64 {
        self.t
    }

    /// Time and value bits of the newest sample, if any.
    pub fn last(&self) -> Option<(i64, u64)> {
        (self.count > 0).then_some((self.t, self.v))
    }

    /// Appends a sample; the caller guarantees `t` is greater than the previous timestamp.
    pub fn append(&mut self, t: i64, v: f64) {
        debug_assert!(
            self.count < SAMPLES_PER_CHUNK,
            "a chunk holds at most {SAMPLES_PER_CHUNK} samples"
        );
        let vb = v.to_bits();
        match self.count {
            0 => {
                self.write_bits(t as u64, 64);
                self.write_bits(vb, 64);
            }
            1 => {
                let d = t - self.t;
                write_varint_bits(self, d);
                self.t_delta = d;
                self.write_value(vb);
            }
            _ => {
                let d = t - self.t;
                let dod = d - self.t_delta;
                // Bucketed delta-of-delta, as in the Gorilla paper and Prometheus.
                if dod == 0 {
                    self.write_bit(false);
                } else if fits(dod, 14) {
                    self.write_bits(0b10, 2);
                    self.write_bits(dod as u64, 14);
                } else if fits(dod, 17) {
                    self.write_bits(0b110, 3);
                    self.write_bits(dod as u64, 17);
                } else if fits(dod, 20) {
                    self.write_bits(0b1110, 4);
                    self.write_bits(dod as u64, 20);
                } else {
                    self.write_bits(0b1111, 4);
                    self.write_bits(dod as u64, 64);
                }
                self.t_delta = d;
                self.write_value(vb);
            }
        }
        self.t = t;
        self.v = vb;
        self.count += 1;
    }

    fn write_value(&mut self, vb: u64) {
        let x = vb ^ self.v;
        if x == 0 {
            self.write_bit(false);
            return;
        }
        self.write_bit(true);
        let mut leading = x.leading_zeros() as u8;
        let trailing = x.trailing_zeros() as u8;
        if leading >= 32 {
            leading = 31; // 5 bits hold the count
        }
        if self.leading != 0xff && leading >= self.leading && trailing >= self.trailing {
            self.write_bit(false);
            let sig = 64 - self.leading - self.trailing;
            self.write_bits(x >> self.trailing, sig);
        } else {
            self.leading = leading;
            self.trailing = trailing;
            self.write_bit(true);
            self.write_bits(leading as u64, 5);
            let sig = 64 - leading - trailing;
            // 64 significant bits are stored as 0 in 6 bits.
            self.write_bits((sig % 64) as u64, 6);
            self.write_bits(x >> trailing, sig);
        }
    }

    /// Freezes the chunk.
    pub fn finish(self) -> XorChunk {
        let min_t = self.min_t();
        let mut data = Vec::from(self.buf);
        data.truncate(self.len as usize);
        XorChunk {
            // Shrinking may move the bytes: keep them with the head's other long-lived data.
            data: crate::alloc::long_lived(|| data.into_boxed_slice()),
            count: self.count,
            min_t,
            max_t: self.t,
        }
    }

    /// Iterates over the samples appended so far.
    pub fn iter(&self) -> XorIter<'_> {
        XorIter::new(self.bytes(), self.count)
    }
}

#[inline]
fn fits(v: i64, bits: u8) -> bool {
    let lim = 1i64 << (bits - 1);
    (-lim..lim).contains(&v)
}

/// The first 64 bits of a chunk's stream: its first timestamp.
fn first_timestamp(stream: &[u8]) -> i64 {
    stream
        .get(..8)
        .map_or(0, |b| i64::from_be_bytes(b.try_into().unwrap_or([0; 8])))
}

fn write_varint_bits(w: &mut XorAppender, v: i64) {
    // Zig-zag, then 7-bit groups with a continuation bit, written through the bit stream.
    let mut u = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        let b = (u & 0x7f) as u8;
        u >>= 7;
        if u == 0 {
            w.write_bits(b as u64, 8);
            return;
        }
        w.write_bits((b | 0x80) as u64, 8);
    }
}

fn read_varint_bits(r: &mut BitReader<'_>) -> Option<i64> {
    let mut u = 0u64;
    let mut shift = 0;
    loop {
        let b = r.read_bits(8)? as u8;
        u |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
    Some(((u >> 1) as i64) ^ -((u & 1) as i64))
}

/// A closed, immutable chunk.
#[derive(Clone)]
pub struct XorChunk {
    data: Box<[u8]>,
    pub count: u16,
    pub min_t: i64,
    pub max_t: i64,
}

impl XorChunk {
    pub fn iter(&self) -> XorIter<'_> {
        XorIter::new(&self.data, self.count)
    }
}

/// Decodes samples from a chunk.
pub struct XorIter<'a> {
    r: BitReader<'a>,
    remaining: u16,
    n: u16,
    t: i64,
    t_delta: i64,
    v: u64,
    leading: u8,
    trailing: u8,
}

impl<'a> XorIter<'a> {
    fn new(buf: &'a [u8], count: u16) -> Self {
        XorIter {
            r: BitReader { buf, pos: 0 },
            remaining: count,
            n: 0,
            t: 0,
            t_delta: 0,
            v: 0,
            leading: 0,
            trailing: 0,
        }
    }

    fn next_inner(&mut self) -> Option<(i64, f64)> {
        match self.n {
            0 => {
                self.t = self.r.read_bits(64)? as i64;
                self.v = self.r.read_bits(64)?;
            }
            1 => {
                self.t_delta = read_varint_bits(&mut self.r)?;
                self.t += self.t_delta;
                self.read_value()?;
            }
            _ => {
                let mut prefix = 0u8;
                for _ in 0..4 {
                    if !self.r.read_bit()? {
                        break;
                    }
                    prefix += 1;
                }
                let dod = match prefix {
                    0 => 0,
                    1 => sign_extend(self.r.read_bits(14)?, 14),
                    2 => sign_extend(self.r.read_bits(17)?, 17),
                    3 => sign_extend(self.r.read_bits(20)?, 20),
                    _ => self.r.read_bits(64)? as i64,
                };
                self.t_delta += dod;
                self.t += self.t_delta;
                self.read_value()?;
            }
        }
        self.n += 1;
        Some((self.t, f64::from_bits(self.v)))
    }

    fn read_value(&mut self) -> Option<()> {
        if !self.r.read_bit()? {
            return Some(());
        }
        if self.r.read_bit()? {
            self.leading = self.r.read_bits(5)? as u8;
            let mut sig = self.r.read_bits(6)? as u8;
            if sig == 0 {
                sig = 64;
            }
            self.trailing = 64 - self.leading - sig;
        }
        let sig = 64 - self.leading - self.trailing;
        let bits = self.r.read_bits(sig)?;
        self.v ^= bits << self.trailing;
        Some(())
    }
}

#[inline]
fn sign_extend(v: u64, bits: u8) -> i64 {
    let shift = 64 - bits;
    ((v << shift) as i64) >> shift
}

impl Iterator for XorIter<'_> {
    type Item = (i64, f64);
    fn next(&mut self) -> Option<(i64, f64)> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        self.next_inner()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn roundtrip(samples: &[(i64, f64)]) {
        let mut a = XorAppender::new();
        for &(t, v) in samples {
            a.append(t, v);
        }
        let got: Vec<(i64, u64)> = a.iter().map(|(t, v)| (t, v.to_bits())).collect();
        let want: Vec<(i64, u64)> = samples.iter().map(|&(t, v)| (t, v.to_bits())).collect();
        assert_eq!(got, want);
        let c = a.finish();
        let got: Vec<(i64, u64)> = c.iter().map(|(t, v)| (t, v.to_bits())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn regular_scrape() {
        let s: Vec<(i64, f64)> = (0..120)
            .map(|i| (1_700_000_000_000 + i * 15_000, i as f64 * 1.5))
            .collect();
        roundtrip(&s);
        let mut a = XorAppender::new();
        for &(t, v) in &s {
            a.append(t, v);
        }
        assert!(a.bytes().len() < 120 * 3, "{} bytes", a.bytes().len());
        assert_eq!(a.min_t(), 1_700_000_000_000);
        assert_eq!(a.finish().min_t, 1_700_000_000_000);
    }

    #[test]
    fn special_values() {
        roundtrip(&[
            (-5, 1.0),
            (8187, 1.0),
            (16380, 2.0),
            (24573 + 8192, 2.0),
            (50000, f64::NAN),
            (50001, vigil_model::stale_nan()),
            (50002, f64::INFINITY),
            (50003, -0.0),
            (1_000_000_000, f64::MIN_POSITIVE),
            (1_000_000_001, 1e308),
            (i64::MAX / 2, -1.0),
        ]);
    }

    proptest! {
        #[test]
        fn any_increasing_series(start in -1_000_000_000_000i64..1_000_000_000_000, deltas in proptest::collection::vec(1i64..10_000_000_000, 0..=SAMPLES_PER_CHUNK as usize), vals in proptest::collection::vec(any::<u64>(), 200)) {
            let mut t = start;
            let mut s = Vec::new();
            for (i, d) in deltas.iter().enumerate() {
                s.push((t, f64::from_bits(vals[i])));
                t += d;
            }
            roundtrip(&s);
        }
    }
}
