//! Prometheus duration strings: `1h30m`, `15s`, `100ms`, `2d`, `1w`, `1y` (units from largest to
//! smallest, each at most once, as Prometheus's `model.ParseDuration` accepts).

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer};
use serde::{Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "not a valid duration string: {input:?} (expected e.g. 15s, 1m30s, 2h, 100ms; units y w d h m s ms)"
)]
pub struct DurationParseError {
    pub input: String,
}

const UNITS: [(&str, u64); 7] = [
    ("y", 365 * 24 * 3600 * 1000),
    ("w", 7 * 24 * 3600 * 1000),
    ("d", 24 * 3600 * 1000),
    ("h", 3600 * 1000),
    ("m", 60 * 1000),
    ("s", 1000),
    ("ms", 1),
];

/// Parses a Prometheus duration into milliseconds.
pub fn parse_duration(s: &str) -> Result<Duration, DurationParseError> {
    let err = || DurationParseError {
        input: s.to_string(),
    };
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(err());
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut total: u64 = 0;
    let mut last_unit = usize::MAX; // index into UNITS of the previous unit; must strictly increase
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return Err(err());
        }
        let n: u64 = s[start..i].parse().map_err(|_| err())?;
        let ustart = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &s[ustart..i];
        let idx = UNITS.iter().position(|(u, _)| *u == unit).ok_or_else(err)?;
        if last_unit != usize::MAX && idx <= last_unit {
            return Err(err());
        }
        last_unit = idx;
        total = n
            .checked_mul(UNITS[idx].1)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(err)?;
    }
    Ok(Duration::from_millis(total))
}

/// Formats like Prometheus: the largest units first, zero parts omitted (`1h30m`, `15s`, `0s`).
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis() as u64;
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (u, mult) in UNITS.iter() {
        if ms >= *mult {
            let n = ms / mult;
            ms %= mult;
            out.push_str(&format!("{n}{u}"));
        }
    }
    out
}

/// A duration that (de)serialises as a Prometheus duration string, for config files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PromDuration(pub Duration);

impl PromDuration {
    pub fn from_secs(s: u64) -> Self {
        PromDuration(Duration::from_secs(s))
    }
    pub fn as_millis(&self) -> i64 {
        self.0.as_millis() as i64
    }
}

impl From<Duration> for PromDuration {
    fn from(d: Duration) -> Self {
        PromDuration(d)
    }
}

impl std::str::FromStr for PromDuration {
    type Err = DurationParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_duration(s).map(PromDuration)
    }
}

impl fmt::Display for PromDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for PromDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A visitor (rather than String::deserialize then parse) makes the error surface while the
        // deserializer still points at the scalar, so YAML errors carry the value's own line.
        struct V;
        impl de::Visitor<'_> for V {
            type Value = PromDuration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as 15s, 1m30s or 2h")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<PromDuration, E> {
                parse_duration(s).map(PromDuration).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

impl Serialize for PromDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_forms() {
        assert_eq!(parse_duration("15s").unwrap(), Duration::from_secs(15));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("100ms").unwrap(), Duration::from_millis(100));
        assert_eq!(
            parse_duration("1m500ms").unwrap(),
            Duration::from_millis(60_500)
        );
        assert_eq!(
            parse_duration("2d").unwrap(),
            Duration::from_secs(2 * 86400)
        );
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
    }

    #[test]
    fn rejects_bad_forms() {
        for s in ["", "15", "s", "1.5s", "30m1h", "1s1s", "-1s", "1x"] {
            assert!(parse_duration(s).is_err(), "{s}");
        }
    }

    #[test]
    fn formats_round_trip() {
        for s in ["15s", "1h30m", "100ms", "1w2d", "0s", "1y"] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
    }
}
