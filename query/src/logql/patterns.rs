//! Log patterns for `/loki/api/v1/patterns` (Grafana's Logs Drilldown): lines grouped into templates
//! in the manner of Drain, as Loki's pattern ingester does.
//!
//! A line is split on whitespace; inside a token, every piece between `=`, `:`, `,`, `"`, `(`, `)`,
//! `[`, `]`, `{` or `}` that holds a digit is a variable (`<_>`), so `duration=70ms` becomes
//! `duration=<_>`. Lines with the same number of tokens, the same level and the same first token are
//! compared with the templates found so far: when at least half of the tokens are equal the line
//! joins that template, and the positions where they differ become `<_>`; otherwise it starts a new
//! template. Each template counts its lines per step.

use std::collections::{BTreeMap, HashMap};

/// The variable placeholder Loki's patterns use.
pub const VAR: &str = "<_>";
/// Templates kept per answer; lines that would start more are counted in none.
pub const MAX_PATTERNS: usize = 1000;
/// Tokens of a line compared; lines with more are cut here.
const MAX_TOKENS: usize = 128;
const DELIMS: &[char] = &['=', ':', ',', '"', '(', ')', '[', ']', '{', '}'];

/// A template as answered: pattern, level, and (step start in ns, lines) in time order.
pub type PatternSeries = (String, String, Vec<(i64, u64)>);

/// One template: its tokens, level and line count per step (ns bucket start).
struct Template {
    tokens: Vec<String>,
    level: String,
    counts: BTreeMap<i64, u64>,
    total: u64,
}

/// Groups lines into templates.
#[derive(Default)]
pub struct Miner {
    templates: Vec<Template>,
    /// (token count, level, first token) -> templates
    groups: HashMap<(usize, String, String), Vec<usize>>,
}

/// A token with every digit-holding piece between delimiters replaced by [`VAR`].
fn mask(token: &str) -> String {
    if !token.bytes().any(|b| b.is_ascii_digit()) {
        return token.to_string();
    }
    let mut out = String::with_capacity(token.len());
    let mut piece = String::new();
    let flush = |piece: &mut String, out: &mut String| {
        if piece.bytes().any(|b| b.is_ascii_digit()) {
            out.push_str(VAR);
        } else {
            out.push_str(piece);
        }
        piece.clear();
    };
    for c in token.chars() {
        if DELIMS.contains(&c) {
            flush(&mut piece, &mut out);
            out.push(c);
        } else {
            piece.push(c);
        }
    }
    flush(&mut piece, &mut out);
    out
}

fn tokens(line: &str) -> Vec<String> {
    line.split_whitespace().take(MAX_TOKENS).map(mask).collect()
}

/// The level of a line as Loki detects it when a stream carries none: a `level`/`severity`
/// field (logfmt or JSON), else the first of the usual level words; `unknown` otherwise.
pub fn detect_level(line: &str, metadata: &[(String, String)]) -> String {
    for (k, v) in metadata {
        if k == "detected_level" || k == "level" || k == "severity_text" {
            return normalize_level(v);
        }
    }
    let head: String = line
        .chars()
        .take(512)
        .collect::<String>()
        .to_ascii_lowercase();
    for key in ["level", "severity", "lvl"] {
        for sep in ["=", "\":\"", ": "] {
            let pat = format!("{key}{sep}");
            if let Some(i) = head.find(&pat) {
                let rest = &head[i + pat.len()..];
                let v: String = rest
                    .trim_start_matches('"')
                    .chars()
                    .take_while(|c| c.is_ascii_alphabetic())
                    .collect();
                if !v.is_empty() {
                    return normalize_level(&v);
                }
            }
        }
    }
    let words: Vec<&str> = head
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| !w.is_empty())
        .collect();
    for (names, level) in [
        (&["fatal", "critical", "crit", "panic"][..], "critical"),
        (&["error", "err"][..], "error"),
        (&["warn", "warning"][..], "warn"),
        (&["info"][..], "info"),
        (&["debug", "dbg"][..], "debug"),
        (&["trace"][..], "trace"),
    ] {
        if words.iter().any(|w| names.contains(w)) {
            return level.to_string();
        }
    }
    "unknown".to_string()
}

fn normalize_level(v: &str) -> String {
    match v.to_ascii_lowercase().as_str() {
        "fatal" | "critical" | "crit" | "panic" | "emerg" | "alert" => "critical",
        "error" | "err" | "eror" => "error",
        "warn" | "warning" => "warn",
        "info" | "information" | "informational" | "notice" => "info",
        "debug" | "dbg" => "debug",
        "trace" => "trace",
        _ => "unknown",
    }
    .to_string()
}

impl Miner {
    /// Counts `line` (of `level`) in the step starting at `bucket`.
    pub fn add(&mut self, line: &str, level: &str, bucket: i64) {
        let toks = tokens(line);
        if toks.is_empty() {
            return;
        }
        let key = (toks.len(), level.to_string(), toks[0].clone());
        let ids = self.groups.entry(key).or_default();
        let mut best: Option<(usize, usize)> = None;
        for &i in ids.iter() {
            let t = &self.templates[i];
            let same = t
                .tokens
                .iter()
                .zip(&toks)
                .filter(|(a, b)| a == b || *a == VAR)
                .count();
            if same * 2 >= toks.len() && best.is_none_or(|(_, s)| same > s) {
                best = Some((i, same));
            }
        }
        let i = match best {
            Some((i, _)) => {
                let t = &mut self.templates[i];
                for (a, b) in t.tokens.iter_mut().zip(&toks) {
                    if a != b && a != VAR {
                        *a = VAR.to_string();
                    }
                }
                i
            }
            None => {
                if self.templates.len() >= MAX_PATTERNS {
                    return;
                }
                self.templates.push(Template {
                    tokens: toks,
                    level: level.to_string(),
                    counts: BTreeMap::new(),
                    total: 0,
                });
                ids.push(self.templates.len() - 1);
                self.templates.len() - 1
            }
        };
        let t = &mut self.templates[i];
        *t.counts.entry(bucket).or_default() += 1;
        t.total += 1;
    }

    /// The templates, most lines first: (pattern, level, [(bucket, count)] in time order).
    pub fn into_patterns(self) -> Vec<PatternSeries> {
        let mut ts = self.templates;
        ts.sort_by(|a, b| b.total.cmp(&a.total).then(a.tokens.cmp(&b.tokens)));
        ts.into_iter()
            .map(|t| (t.tokens.join(" "), t.level, t.counts.into_iter().collect()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_variables_and_merges_differing_tokens() {
        let mut m = Miner::default();
        for i in 0..10 {
            m.add(
                &format!("level=info msg=\"GET /api/users/{i}\" duration={i}ms user=u{i}"),
                "info",
                0,
            );
            m.add(
                &format!(
                    "connection from 10.0.0.{i} closed by {}",
                    ["alice", "bob"][i % 2]
                ),
                "unknown",
                if i < 5 { 0 } else { 10 },
            );
        }
        m.add("level=error msg=\"boom\" code=E1", "error", 10);
        let p = m.into_patterns();
        assert_eq!(
            p,
            vec![
                (
                    "connection from <_> closed by <_>".to_string(),
                    "unknown".to_string(),
                    vec![(0, 5), (10, 5)]
                ),
                (
                    "level=info msg=\"GET <_>\" duration=<_> user=<_>".to_string(),
                    "info".to_string(),
                    vec![(0, 10)]
                ),
                (
                    "level=error msg=\"boom\" code=<_>".to_string(),
                    "error".to_string(),
                    vec![(10, 1)]
                ),
            ]
        );
    }

    #[test]
    fn levels_from_fields_words_and_metadata() {
        assert_eq!(detect_level("ts=1 level=WARN msg=x", &[]), "warn");
        assert_eq!(detect_level(r#"{"level":"error","msg":"x"}"#, &[]), "error");
        assert_eq!(detect_level("2024-01-01 ERROR disk full", &[]), "error");
        assert_eq!(detect_level("all good", &[]), "unknown");
        assert_eq!(
            detect_level("x", &[("detected_level".into(), "debug".into())]),
            "debug"
        );
    }
}
