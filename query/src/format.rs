//! Number and time formatting exactly as the Prometheus API writes them.

/// A sample value as Prometheus's `jsonutil.MarshalFloat` prints it: Go's `'f'` format with the
/// shortest precision, switching to `'e'` below 1e-6 and from 1e21 on; `NaN`, `+Inf`, `-Inf`.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let a = v.abs();
    if a != 0.0 && !(1e-6..1e21).contains(&a) {
        let s = format!("{v:e}");
        let Some((m, e)) = s.split_once('e') else {
            return s;
        };
        let (sign, digits) = match e.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', e),
        };
        return format!("{m}e{sign}{digits:0>2}");
    }
    format!("{v}")
}

/// Appends [`format_value`]'s text to `out` without allocating in the common case.
pub fn write_value(out: &mut String, v: f64) {
    use std::fmt::Write;
    let a = v.abs();
    // Integral values (counters, most gauges) print as integers: no float formatting needed.
    if a < 9.007_199_254_740_992e15 && v == v.trunc() && !(v == 0.0 && v.is_sign_negative()) {
        let _ = write!(out, "{}", v as i64);
    } else if (1e-5..1e9).contains(&a) {
        // ryu prints the same shortest digits as Go, in plain decimal notation in this range.
        let mut b = ryu::Buffer::new();
        out.push_str(b.format_finite(v));
    } else if v.is_finite() && (a == 0.0 || (1e-6..1e21).contains(&a)) {
        let _ = write!(out, "{v}");
    } else {
        out.push_str(&format_value(v));
    }
}

/// Appends [`format_time`]'s text to `out` without allocating.
pub fn write_time(out: &mut String, ms: i64) {
    use std::fmt::Write;
    let secs = ms.div_euclid(1000);
    let frac = ms.rem_euclid(1000);
    if frac == 0 {
        let _ = write!(out, "{secs}");
    } else if ms < 0 {
        out.push_str(&format_time(ms));
    } else if frac % 100 == 0 {
        let _ = write!(out, "{secs}.{}", frac / 100);
    } else if frac % 10 == 0 {
        let _ = write!(out, "{secs}.{:02}", frac / 10);
    } else {
        let _ = write!(out, "{secs}.{frac:03}");
    }
}

/// A millisecond timestamp as the float seconds the API uses (`1700000000.123`).
pub fn format_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let frac = ms.rem_euclid(1000);
    if frac == 0 {
        return secs.to_string();
    }
    if ms < 0 {
        // Keep the float meaning: -1.5 s is -1500 ms.
        let s = format!("{}", ms as f64 / 1000.0);
        return s;
    }
    let f = format!("{frac:03}");
    format!("{secs}.{}", f.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ryu_range_matches_core_formatting() {
        let mut x = 1e-5f64;
        while x < 1e16 {
            for v in [
                x,
                x * 1.234_567_891_234_5,
                -x * 7.77,
                x + 0.1,
                1.0 / x.max(1e-3),
                x * 0.999_999_999_7,
                x / 3.0,
            ] {
                let mut s = String::new();
                write_value(&mut s, v);
                assert_eq!(s, format_value(v), "{v:e}");
            }
            x *= 1.37;
        }
    }

    #[test]
    fn writers_match_formatters() {
        for v in [
            1.0,
            0.0015,
            -0.0,
            1e308,
            1e-7,
            1e20,
            1e21,
            f64::NAN,
            f64::INFINITY,
            0.1 + 0.2,
        ] {
            let mut s = String::new();
            write_value(&mut s, v);
            assert_eq!(s, format_value(v));
        }
        for t in [
            0,
            1_700_000_000_000,
            1_700_000_000_100,
            1_700_000_000_120,
            1_700_000_000_123,
            1_700_000_000_001,
            -1500,
        ] {
            let mut s = String::new();
            write_time(&mut s, t);
            assert_eq!(s, format_time(t), "{t}");
        }
    }

    #[test]
    fn values_like_go() {
        assert_eq!(format_value(1.0), "1");
        assert_eq!(format_value(0.0015), "0.0015");
        assert_eq!(format_value(-0.0), "-0");
        assert_eq!(format_value(1e308), "1e+308");
        assert_eq!(format_value(1.7560473e7), "17560473");
        assert_eq!(format_value(1e-7), "1e-07");
        assert_eq!(format_value(1e20), "100000000000000000000");
        assert_eq!(format_value(1e21), "1e+21");
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_value(0.1 + 0.2), "0.30000000000000004");
    }

    #[test]
    fn times() {
        assert_eq!(format_time(1_700_000_000_000), "1700000000");
        assert_eq!(format_time(1_700_000_000_120), "1700000000.12");
        assert_eq!(format_time(4000), "4");
        assert_eq!(format_time(-1500), "-1.5");
    }
}

pub use vigil_model::{rfc3339, rfc3339_ms};

#[cfg(test)]
mod rfc3339_tests {
    use super::rfc3339;
    use std::time::Duration;

    #[test]
    fn formats_like_go() {
        assert_eq!(rfc3339(Duration::from_secs(0)), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(Duration::from_millis(1_700_000_000_123)),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(
            rfc3339(Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
    }
}
