//! The series one probe produces, written as blackbox_exporter writes them: every family a gauge,
//! families sorted by name, labels by name, values in Go's shortest `%g` form.

use std::collections::BTreeMap;
use std::fmt::Write;

/// One family: its help text and its series (label pairs sorted by name, value).
#[derive(Clone, Debug, Default)]
struct Family {
    help: &'static str,
    series: BTreeMap<Vec<(String, String)>, f64>,
}

/// A series' labels as a family keys them: owned and sorted by name.
fn key(labels: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut l: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    l.sort();
    l
}

/// The metrics of one probe run.
#[derive(Clone, Debug, Default)]
pub struct ProbeMetrics {
    families: BTreeMap<String, Family>,
}

impl ProbeMetrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a gauge without labels (creating it).
    pub fn set(&mut self, name: &str, help: &'static str, v: f64) {
        self.set_with(name, help, &[], v);
    }

    /// Sets one series of a labelled gauge.
    pub fn set_with(&mut self, name: &str, help: &'static str, labels: &[(&str, &str)], v: f64) {
        let f = self.families.entry(name.to_string()).or_default();
        f.help = help;
        f.series.insert(key(labels), v);
    }

    /// Adds to one series of a labelled gauge (creating it at 0).
    pub fn add_with(&mut self, name: &str, help: &'static str, labels: &[(&str, &str)], v: f64) {
        let cur = self.get_with(name, labels).unwrap_or(0.0);
        self.set_with(name, help, labels, cur + v);
    }

    /// The value of a gauge without labels, if set.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.get_with(name, &[])
    }

    pub fn get_with(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.families.get(name)?.series.get(&key(labels)).copied()
    }

    /// Drops a family.
    pub fn remove(&mut self, name: &str) {
        self.families.remove(name);
    }

    pub fn contains(&self, name: &str) -> bool {
        self.families.contains_key(name)
    }

    /// The text exposition format 0.0.4, as blackbox_exporter's `/probe` answers.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for (name, f) in &self.families {
            if f.series.is_empty() {
                continue;
            }
            let _ = writeln!(out, "# HELP {name} {}", escape_help(f.help));
            let _ = writeln!(out, "# TYPE {name} gauge");
            for (labels, v) in &f.series {
                out.push_str(name);
                if !labels.is_empty() {
                    out.push('{');
                    for (i, (k, val)) in labels.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        let _ = write!(out, "{k}=\"{}\"", escape_value(val));
                    }
                    out.push('}');
                }
                out.push(' ');
                out.push_str(&go_float(*v));
                out.push('\n');
            }
        }
        out
    }
}

fn escape_help(s: &str) -> String {
    s.replace('\\', r"\\").replace('\n', r"\n")
}

fn escape_value(s: &str) -> String {
    s.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

/// A float as Go's `strconv.FormatFloat(v, 'g', -1, 64)` writes it (the text exposition of
/// client_golang): the shortest digits that read back as `v`, in exponent form (at least two
/// exponent digits) when the decimal exponent is below -4 or 6 and above.
pub fn go_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.into();
    }
    // Rust's `{:e}` prints the same shortest round-trip digits: "d.ddde±x".
    let e = format!("{v:e}");
    let (mantissa, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let (sign, abs) = if exp < 0 { ('-', -exp) } else { ('+', exp) };
        format!("{mantissa}e{sign}{abs:02}")
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_go_does() {
        for (v, s) in [
            (1.0, "1"),
            (0.5, "0.5"),
            (123456.0, "123456"),
            (1234567.0, "1.234567e+06"),
            (1672531200.0, "1.6725312e+09"),
            (3735928559.0, "3.735928559e+09"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (0.001234, "0.001234"),
            (-62135596800.0, "-6.21355968e+10"),
            (200.0, "200"),
            (1.1, "1.1"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
        ] {
            assert_eq!(go_float(v), s, "{v}");
        }
    }

    #[test]
    fn text_is_sorted_and_escaped() {
        let mut m = ProbeMetrics::new();
        m.set(
            "probe_success",
            "Displays whether or not the probe was a success",
            1.0,
        );
        m.set_with(
            "probe_http_duration_seconds",
            "Duration of http request by phase, summed over all redirects",
            &[("phase", "resolve")],
            0.25,
        );
        m.set_with(
            "probe_ssl_last_chain_info",
            "Contains SSL leaf certificate information",
            &[("subject", "CN=a\"b"), ("issuer", "CN=ca")],
            1.0,
        );
        let t = m.to_text();
        let want = "# HELP probe_http_duration_seconds Duration of http request by phase, summed over all redirects\n# TYPE probe_http_duration_seconds gauge\nprobe_http_duration_seconds{phase=\"resolve\"} 0.25\n# HELP probe_ssl_last_chain_info Contains SSL leaf certificate information\n# TYPE probe_ssl_last_chain_info gauge\nprobe_ssl_last_chain_info{issuer=\"CN=ca\",subject=\"CN=a\\\"b\"} 1\n# HELP probe_success Displays whether or not the probe was a success\n# TYPE probe_success gauge\nprobe_success 1\n";
        assert_eq!(t, want);
    }
}
