//! Decimal value encoding for block files.
//!
//! Most sample values are short decimals (counters in whole units, gauges rounded to a few places). A
//! series' values in one block are stored as integer mantissas `M` with one decimal exponent `e`
//! (`value = M * 10^e`, or `M / 10^-e` for negative `e`: a single correctly rounded IEEE operation on
//! exact operands, so the original bits come back exactly). Values that are not such decimals (NaN, the
//! staleness marker, ±Inf, -0, long binary fractions) go to a float column instead.
//!
//! To make Parquet's DELTA_BINARY_PACKED see no jump between the last row of one series and the first of
//! the next, the stored column is `m = M - m_base` with `m_base` chosen per series so that the series
//! continues where the previous one ended (the "continuity offset"); readers add `m_base` back.

/// Largest |exponent| used: 10^22 is the largest power of ten exactly representable in an f64.
const MAX_EXP: i32 = 22;
/// Mantissas must be exactly representable integers.
const MAX_MANTISSA: f64 = 9_007_199_254_740_992.0; // 2^53

const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Rebuilds a value from mantissa and exponent.
#[inline]
pub fn reconstruct(m: i64, e: i32) -> f64 {
    if e >= 0 {
        m as f64 * POW10[e as usize]
    } else {
        m as f64 / POW10[(-e) as usize]
    }
}

/// The largest exponent `e` such that `v == M * 10^e` for an integer `M` with |M| < 2^53, from the
/// value's shortest decimal representation. None for values that are not such decimals.
pub fn value_exponent(v: f64) -> Option<i32> {
    if !v.is_finite() || (v == 0.0 && v.is_sign_negative()) {
        return None;
    }
    if v == 0.0 {
        return Some(MAX_EXP);
    }
    // Shortest round-trip representation, in scientific form: d.ddddde±x.
    let s = format!("{:e}", v.abs());
    let (mant, exp) = s.split_once('e')?;
    let exp: i32 = exp.parse().ok()?;
    let frac_digits = mant
        .split_once('.')
        .map(|(_, f)| f.len() as i32)
        .unwrap_or(0);
    let mut digits: String = mant.replace('.', "");
    // Strip trailing zeros of the digit string (they raise the exponent).
    let mut e = exp - frac_digits;
    while digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
        e += 1;
    }
    if digits.len() > 16 {
        return None;
    }
    Some(e.clamp(-MAX_EXP, MAX_EXP))
}

/// The mantissa of `v` at exponent `e`, if it reproduces `v` bit for bit.
pub fn mantissa(v: f64, e: i32) -> Option<i64> {
    if !(-MAX_EXP..=MAX_EXP).contains(&e) {
        return None;
    }
    let m = if e >= 0 {
        v / POW10[e as usize]
    } else {
        v * POW10[(-e) as usize]
    };
    let m = m.round();
    if m.abs() >= MAX_MANTISSA {
        return None;
    }
    let m = m as i64;
    (reconstruct(m, e).to_bits() == v.to_bits()).then_some(m)
}

/// How one series' samples are stored in a block.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedSeries {
    /// Exponent shared by the series' decimal samples.
    pub e: i32,
    /// Per sample: `Some(M)` for decimal samples, `None` for samples stored as floats.
    pub mantissas: Vec<Option<i64>>,
}

/// Chooses the exponent for a series and computes its mantissas.
pub fn encode_series(values: &[f64]) -> EncodedSeries {
    let e = values
        .iter()
        .filter_map(|v| value_exponent(*v))
        .min()
        .unwrap_or(0);
    let mantissas = values
        .iter()
        .map(|v| {
            if value_exponent(*v).is_some() {
                mantissa(*v, e)
            } else {
                None
            }
        })
        .collect();
    EncodedSeries { e, mantissas }
}

/// Assigns the continuity offset across series, in row order.
#[derive(Default)]
pub struct Continuity {
    last: i64,
}

/// Stored form of one series: `m[i] = M[i] - base` fits in i32.
pub struct Offsetted {
    pub base: i64,
    /// `None` where a value is not a decimal, or its mantissa did not fit the series' int32 window:
    /// it goes to the float column.
    pub m: Vec<Option<i32>>,
}

impl Continuity {
    pub fn new() -> Self {
        Continuity { last: 0 }
    }

    /// Picks `base` so that the series' first stored value continues from the previous series' last one
    /// with the series' own first step, keeping the whole series inside i32.
    pub fn offset(&mut self, mantissas: &[Option<i64>]) -> Offsetted {
        let present: Vec<i64> = mantissas.iter().flatten().copied().collect();
        let Some(&first) = present.first() else {
            return Offsetted {
                base: 0,
                m: vec![None; mantissas.len()],
            };
        };
        let d0 = present.get(1).map(|x| x.wrapping_sub(first)).unwrap_or(0);
        let (lo, hi) = present.iter().fold((0i64, 0i64), |(lo, hi), x| {
            let r = x.wrapping_sub(first);
            (lo.min(r), hi.max(r))
        });
        let mut start = self.last.saturating_add(d0);
        if start.saturating_add(lo) < i32::MIN as i64 || start.saturating_add(hi) > i32::MAX as i64
        {
            // Restart at the bottom of the i32 range: fits any series whose range is below 2^32.
            start = (i32::MIN as i64).saturating_sub(lo);
        }
        let base = first.wrapping_sub(start);
        let m: Vec<Option<i32>> = mantissas
            .iter()
            .map(|x| x.and_then(|x| i32::try_from(x.wrapping_sub(base)).ok()))
            .collect();
        if let Some(l) = m.iter().rev().flatten().next() {
            self.last = *l as i64;
        }
        Offsetted { base, m }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn exponents() {
        assert_eq!(value_exponent(12345.678), Some(-3));
        assert_eq!(value_exponent(1500.0), Some(2));
        assert_eq!(value_exponent(16e9), Some(9));
        assert_eq!(value_exponent(0.1), Some(-1));
        assert_eq!(value_exponent(f64::NAN), None);
        assert_eq!(value_exponent(-0.0), None);
        assert_eq!(value_exponent(1.0 / 3.0), Some(-16));
        assert_eq!(value_exponent(0.1 + 0.2), None);
    }

    #[test]
    fn series_share_the_smallest_exponent() {
        let enc = encode_series(&[1.5, 2.25, 300.0, f64::INFINITY]);
        assert_eq!(enc.e, -2);
        assert_eq!(enc.mantissas, vec![Some(150), Some(225), Some(30000), None]);
    }

    #[test]
    fn continuity_removes_jumps_and_stays_exact() {
        let mut c = Continuity::new();
        let a = c.offset(&[Some(1_000_000), Some(1_000_010), Some(1_000_020)]);
        let b = c.offset(&[Some(5), Some(7)]);
        let am: Vec<i32> = a.m.iter().flatten().copied().collect();
        let bm: Vec<i32> = b.m.iter().flatten().copied().collect();
        assert_eq!(
            bm[0] - am[2],
            2,
            "first step of b equals its own first delta"
        );
        assert_eq!(am[0] as i64 + a.base, 1_000_000);
        assert_eq!(bm[1] as i64 + b.base, 7);
        // A series wider than i32 around the previous value restarts at i32::MIN.
        let w = c.offset(&[Some(0), Some(4_000_000_000)]);
        assert!(w.m.iter().all(|x| x.is_some()));
        assert_eq!(w.m[1].unwrap() as i64 + w.base, 4_000_000_000);
        // Wider than 2^32: spilled to floats.
        let x = c.offset(&[Some(0), Some(5_000_000_000)]);
        assert!(x.m.iter().any(|m| m.is_none()));
    }

    proptest! {
        #[test]
        fn decimal_round_trip(v in any::<f64>()) {
            if let Some(e) = value_exponent(v)
                && let Some(m) = mantissa(v, e)
            {
                prop_assert_eq!(reconstruct(m, e).to_bits(), v.to_bits());
            }
        }

        #[test]
        fn rounded_values_are_decimal(i in -1_000_000_000i64..1_000_000_000, places in 0u32..6) {
            let v = i as f64 / 10f64.powi(places as i32);
            let enc = encode_series(&[v]);
            prop_assert!(enc.mantissas[0].is_some(), "{} not decimal", v);
            prop_assert_eq!(reconstruct(enc.mantissas[0].unwrap(), enc.e).to_bits(), v.to_bits());
        }
    }
}
