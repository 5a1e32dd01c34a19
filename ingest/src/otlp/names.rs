//! OTLP to Prometheus naming, as Prometheus's OTLP translator does it: label keys normalised, units and
//! `_total` turned into metric-name suffixes, bucket bounds printed as Go prints them.

/// Makes an OTLP attribute key a valid Prometheus label name, as Prometheus's translator does.
pub fn normalize_label(key: &str) -> String {
    if key.is_empty() {
        return String::new();
    }
    let mut s: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.as_bytes()[0].is_ascii_digit() {
        s = format!("key_{s}");
    } else if s.starts_with('_') && !s.starts_with("__") {
        s = format!("key{s}");
    }
    s
}

pub(crate) fn unit_word(u: &str) -> Option<&'static str> {
    Some(match u {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "1" => "",
        "%" => "percent",
        _ => return None,
    })
}

pub(crate) fn per_unit_word(u: &str) -> Option<&'static str> {
    Some(match u {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        _ => return None,
    })
}

pub(crate) fn unit_tokens(u: &str) -> Vec<String> {
    let clean = |s: &str| -> Vec<String> {
        s.split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect()
    };
    // Curly-brace annotations ({requests}) are not units.
    let mut u = u.to_string();
    while let (Some(a), Some(b)) = (u.find('{'), u.find('}')) {
        if b < a {
            break;
        }
        u.replace_range(a..=b, "");
    }
    let (main, per) = match u.split_once('/') {
        Some((m, p)) => (m.trim().to_string(), Some(p.trim().to_string())),
        None => (u.trim().to_string(), None),
    };
    let mut out = match unit_word(&main) {
        Some(w) => clean(w),
        None => clean(&main),
    };
    if let Some(p) = per
        && !p.is_empty()
    {
        let w = per_unit_word(&p).map(str::to_string).unwrap_or(p);
        out.push("per".into());
        out.extend(clean(&w));
    }
    out
}

/// The Prometheus metric name for an OTLP metric (default translation: underscores and suffixes).
pub fn metric_name(name: &str, unit: &str, monotonic_sum: bool, gauge: bool) -> String {
    let mut tokens: Vec<String> = name
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == ':'))
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect();
    for t in unit_tokens(unit) {
        if !tokens.contains(&t) {
            tokens.push(t);
        }
    }
    if monotonic_sum {
        tokens.retain(|t| t != "total");
        tokens.push("total".into());
    }
    if gauge && unit.trim() == "1" && !tokens.iter().any(|t| t == "ratio") {
        tokens.push("ratio".into());
    }
    let mut s = tokens.join("_");
    if s.as_bytes().first().is_some_and(|b| b.is_ascii_digit()) {
        s = format!("_{s}");
    }
    s
}

/// Go's `strconv.FormatFloat(f, 'f', -1, 64)`, used for `le` and `quantile` values.
pub(crate) fn format_bound(f: f64) -> String {
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if f.is_nan() {
        return "NaN".into();
    }
    format!("{f}")
}
