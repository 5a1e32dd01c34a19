//! Go text/template expansion of alert labels and annotations, as Prometheus does it: the template sees
//! `$labels`, `$externalLabels`, `$externalURL` and `$value`, and Prometheus's template functions
//! (`humanize`, `humanizeDuration`, `printf`, `reReplaceAll`, …).

use std::collections::{BTreeMap, HashMap};

use gtmpl::{Context, Template};
use gtmpl_value::{FuncError, Value};

/// What Prometheus puts in front of every rule template.
const PREFIX: &str = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}";

fn template() -> Template {
    let mut t = Template::default();
    t.add_funcs(&[
        ("humanize", humanize as gtmpl_value::Func),
        ("humanize1024", humanize1024),
        ("humanizeDuration", humanize_duration),
        ("humanizePercentage", humanize_percentage),
        ("humanizeTimestamp", humanize_timestamp),
        ("toUpper", to_upper),
        ("toLower", to_lower),
        ("title", title),
        ("match", re_match),
        ("reReplaceAll", re_replace_all),
        ("stripPort", strip_port),
        ("stripDomain", strip_domain),
        ("safeHtml", identity),
    ]);
    t
}

/// Checks that `text` is a valid template.
pub fn check(text: &str) -> Result<(), String> {
    delimiters(text)?;
    template()
        .parse(format!("{PREFIX}{text}"))
        .map_err(|e| e.to_string())
}

/// Every `{{` needs its `}}`: the template parser does not terminate on an unclosed action, so this is
/// checked before it runs.
fn delimiters(text: &str) -> Result<(), String> {
    let mut rest = text;
    while let Some(i) = rest.find("{{") {
        let after = &rest[i + 2..];
        match after.find("}}") {
            Some(j) => rest = &after[j + 2..],
            None => {
                return Err(format!(
                    "unclosed action at byte {}",
                    text.len() - rest.len() + i
                ));
            }
        }
    }
    Ok(())
}

/// Expands `text` for an alert with `labels` and `value`. On error, Prometheus puts the error text in
/// the field instead; so do we.
pub fn expand(
    text: &str,
    labels: &BTreeMap<String, String>,
    external: &BTreeMap<String, String>,
    external_url: &str,
    value: f64,
) -> String {
    if !text.contains("{{") {
        return text.to_string();
    }
    if let Err(e) = delimiters(text) {
        return format!("<error expanding template: {e}>");
    }
    let mut t = template();
    if let Err(e) = t.parse(format!("{PREFIX}{text}")) {
        return format!("<error expanding template: {e}>");
    }
    let map = |m: &BTreeMap<String, String>| -> Value {
        Value::Map(
            m.iter()
                .map(|(k, v)| (k.clone(), Value::from(v.clone())))
                .collect::<HashMap<_, _>>(),
        )
    };
    let mut data: HashMap<String, Value> = HashMap::new();
    data.insert("Labels".into(), map(labels));
    data.insert("ExternalLabels".into(), map(external));
    data.insert("ExternalURL".into(), Value::from(external_url.to_string()));
    data.insert("Value".into(), Value::from(value));
    match t.render(&Context::from(Value::Object(data))) {
        Ok(s) => s,
        Err(e) => format!("<error expanding template: {e}>"),
    }
}

fn num(args: &[Value], name: &str) -> Result<f64, FuncError> {
    match args.first() {
        Some(Value::Number(n)) => n
            .as_f64()
            .or_else(|| n.as_i64().map(|i| i as f64))
            .or_else(|| n.as_u64().map(|u| u as f64))
            .ok_or(FuncError::UnableToConvertFromValue),
        Some(Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| FuncError::Generic(format!("{name}: cannot convert {s:?} to a number"))),
        Some(_) => Err(FuncError::UnableToConvertFromValue),
        None => Err(FuncError::ExactlyXArgs(name.into(), 1)),
    }
}

fn string(args: &[Value], i: usize, name: &str) -> Result<String, FuncError> {
    match args.get(i) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v) => Ok(v.to_string()),
        None => Err(FuncError::AtLeastXArgs(name.into(), i + 1)),
    }
}

/// Go's `fmt.Sprintf("%.4g", v)`.
pub fn go_g4(v: f64) -> String {
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
    if v == 0.0 {
        return if v.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let s = format!("{v:.3e}");
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..4).contains(&exp) {
        let mant = trim_zeros(mant);
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mant}e{sign}{:02}", exp.abs());
    }
    let decimals = (3 - exp).max(0) as usize;
    trim_zeros(&format!("{v:.decimals$}")).to_string()
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

fn humanize(args: &[Value]) -> Result<Value, FuncError> {
    let mut v = num(args, "humanize")?;
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else if v != 0.0 && v.is_finite() {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    Ok(Value::from(format!("{}{prefix}", go_g4(v))))
}

fn humanize1024(args: &[Value]) -> Result<Value, FuncError> {
    let mut v = num(args, "humanize1024")?;
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
            if v.abs() < 1024.0 {
                break;
            }
            prefix = p;
            v /= 1024.0;
        }
    }
    Ok(Value::from(format!("{}{prefix}", go_g4(v))))
}

fn humanize_duration(args: &[Value]) -> Result<Value, FuncError> {
    let mut v = num(args, "humanizeDuration")?;
    if !v.is_finite() {
        return Ok(Value::from(go_g4(v)));
    }
    if v == 0.0 {
        return Ok(Value::from(format!("{}s", go_g4(v))));
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        v = v.abs();
        let d = v as i64;
        let (s, m, h, days) = (d % 60, (d / 60) % 60, (d / 3600) % 24, d / 86_400);
        let out = if days != 0 {
            format!("{sign}{days}d {h}h {m}m {s}s")
        } else if h != 0 {
            format!("{sign}{h}h {m}m {s}s")
        } else if m != 0 {
            format!("{sign}{m}m {s}s")
        } else {
            format!("{sign}{}s", go_g4(v))
        };
        return Ok(Value::from(out));
    }
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    Ok(Value::from(format!("{}{prefix}s", go_g4(v))))
}

fn humanize_percentage(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::from(format!(
        "{}%",
        go_g4(num(args, "humanizePercentage")? * 100.0)
    )))
}

fn humanize_timestamp(args: &[Value]) -> Result<Value, FuncError> {
    let v = num(args, "humanizeTimestamp")?;
    if !v.is_finite() {
        return Ok(Value::from(go_g4(v)));
    }
    let d = std::time::Duration::from_secs_f64(v.max(0.0));
    let s = vigil_model::rfc3339(d);
    // Go's time.Time String(): "2006-01-02 15:04:05.999999999 +0000 UTC".
    let s = s.trim_end_matches('Z').replacen('T', " ", 1);
    Ok(Value::from(format!("{s} +0000 UTC")))
}

fn to_upper(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::from(string(args, 0, "toUpper")?.to_uppercase()))
}

fn to_lower(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::from(string(args, 0, "toLower")?.to_lowercase()))
}

fn title(args: &[Value]) -> Result<Value, FuncError> {
    let s = string(args, 0, "title")?;
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = !c.is_alphanumeric();
    }
    Ok(Value::from(out))
}

fn re_match(args: &[Value]) -> Result<Value, FuncError> {
    let (re, s) = (string(args, 0, "match")?, string(args, 1, "match")?);
    let re = regex_lite(&re)?;
    Ok(Value::from(re.is_match(&s)))
}

fn re_replace_all(args: &[Value]) -> Result<Value, FuncError> {
    let (re, repl, s) = (
        string(args, 0, "reReplaceAll")?,
        string(args, 1, "reReplaceAll")?,
        string(args, 2, "reReplaceAll")?,
    );
    let re = regex_lite(&re)?;
    Ok(Value::from(re.replace_all(&s, repl.as_str()).into_owned()))
}

fn regex_lite(re: &str) -> Result<regex::Regex, FuncError> {
    regex::Regex::new(re).map_err(|e| FuncError::Generic(e.to_string()))
}

fn strip_port(args: &[Value]) -> Result<Value, FuncError> {
    let s = string(args, 0, "stripPort")?;
    if let Some(rest) = s.strip_prefix('[')
        && let Some(i) = rest.find(']')
    {
        return Ok(Value::from(rest[..i].to_string()));
    }
    Ok(Value::from(match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.chars().all(|c| c.is_ascii_digit()) => h.to_string(),
        _ => s,
    }))
}

fn strip_domain(args: &[Value]) -> Result<Value, FuncError> {
    let s = string(args, 0, "stripDomain")?;
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => (h.to_string(), format!(":{p}")),
        _ => (s.clone(), String::new()),
    };
    if host.parse::<std::net::IpAddr>().is_ok() {
        return Ok(Value::from(s));
    }
    Ok(Value::from(format!(
        "{}{port}",
        host.split('.').next().unwrap_or("")
    )))
}

fn identity(args: &[Value]) -> Result<Value, FuncError> {
    Ok(args.first().cloned().unwrap_or(Value::NoValue))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> BTreeMap<String, String> {
        [
            ("instance".to_string(), "db-1:9100".to_string()),
            ("job".to_string(), "node".to_string()),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn expands_like_prometheus() {
        let l = labels();
        let e = BTreeMap::new();
        assert_eq!(
            expand(
                "{{ $labels.instance }} of {{ $labels.job }} is down",
                &l,
                &e,
                "",
                0.0
            ),
            "db-1:9100 of node is down"
        );
        assert_eq!(
            expand("{{ $value | humanize }}", &l, &e, "", 1234567.0),
            "1.235M"
        );
        assert_eq!(expand("{{ humanize $value }}", &l, &e, "", 0.0012), "1.2m");
        assert_eq!(
            expand("{{ $value | humanizePercentage }}", &l, &e, "", 0.1234),
            "12.34%"
        );
        assert_eq!(
            expand("{{ $value | humanizeDuration }}", &l, &e, "", 90061.0),
            "1d 1h 1m 1s"
        );
        assert_eq!(
            expand("{{ $value | humanize1024 }}", &l, &e, "", 2048.0),
            "2ki"
        );
        assert_eq!(
            expand("{{ printf \"%.2f\" $value }}", &l, &e, "", 1.23456),
            "1.23"
        );
        assert_eq!(
            expand("{{ $labels.instance | stripPort }}", &l, &e, "", 0.0),
            "db-1"
        );
        assert_eq!(expand("{{ toUpper $labels.job }}", &l, &e, "", 0.0), "NODE");
        assert_eq!(
            expand(
                "{{ reReplaceAll \"-[0-9]+\" \"\" $labels.instance }}",
                &l,
                &e,
                "",
                0.0
            ),
            "db:9100"
        );
        assert_eq!(expand("no template", &l, &e, "", 0.0), "no template");
        assert!(
            expand("{{ .Nope.Deeper }}", &l, &e, "", 0.0).starts_with("<error expanding template")
        );
    }

    #[test]
    fn go_g_formatting() {
        assert_eq!(go_g4(1.2345678), "1.235");
        assert_eq!(go_g4(1234.5), "1234");
        assert_eq!(go_g4(12345.0), "1.234e+04");
        assert_eq!(go_g4(0.0001), "0.0001");
        assert_eq!(go_g4(0.00001234), "1.234e-05");
        assert_eq!(go_g4(100.0), "100");
    }
}
