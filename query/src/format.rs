//! Number and time formatting exactly as the Prometheus API writes them.

/// A sample value as Prometheus's `jsonutil.MarshalFloat` prints it: Go's `'f'` format with the
/// shortest precision, switching to `'e'` below 1e-6 and from 1e21 on; `NaN`, `+Inf`, `-Inf`.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    let a = v.abs();
    if a != 0.0 && !(1e-6..1e21).contains(&a) {
        let s = format!("{v:e}");
        let Some((m, e)) = s.split_once('e') else { return s };
        let (sign, digits) = match e.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', e),
        };
        return format!("{m}e{sign}{digits:0>2}");
    }
    format!("{v}")
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
