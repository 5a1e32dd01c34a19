//! Runs a LogQL pipeline over one entry: line filters, parsers, label filters, formatting.
//!
//! Semantics follow Loki: a parser's labels that clash with a stream label get an `_extracted` suffix;
//! a parser or conversion that fails sets `__error__` (and `__error_details__`) instead of dropping the
//! entry; numeric label filters let entries that already carry an error through, so `| __error__=""`
//! decides.

use std::collections::BTreeMap;

use regex::Regex;
use vigil_model::Labels;

use super::ast::*;
use super::parser::{parse_bytes, parse_duration};
use super::template::Tmpl;

pub const ERROR: &str = "__error__";
pub const ERROR_DETAILS: &str = "__error_details__";

enum Exec {
    Line(LineFilter),
    Json(Vec<(String, Vec<PathSeg>)>),
    Logfmt {
        strict: bool,
        keep_empty: bool,
        params: Vec<Extraction>,
    },
    Regexp(Regex),
    Pattern(Pattern),
    Unpack,
    LabelFilter(LabelFilter),
    LineFormat(Tmpl),
    LabelFormat(Vec<(String, FmtSrc)>),
    Drop(Vec<NameOrMatcher>),
    Keep(Vec<NameOrMatcher>),
    Decolorize,
}

enum FmtSrc {
    Label(String),
    Template(Tmpl),
}

#[derive(Clone, Debug)]
enum PathSeg {
    Key(String),
    Index(usize),
}

/// An entry after the pipeline: its labels and line.
pub struct Processed {
    pub labels: BTreeMap<String, String>,
    pub line: String,
}

/// A compiled pipeline.
pub struct Pipeline {
    stages: Vec<Exec>,
    /// Only line filters: labels never change.
    line_only: bool,
}

fn parse_path(p: &str) -> Result<Vec<PathSeg>, String> {
    let mut out = Vec::new();
    let mut chars = p.chars().peekable();
    let mut cur = String::new();
    while let Some(c) = chars.next() {
        match c {
            '.' => {
                if !cur.is_empty() {
                    out.push(PathSeg::Key(std::mem::take(&mut cur)));
                }
            }
            '[' => {
                if !cur.is_empty() {
                    out.push(PathSeg::Key(std::mem::take(&mut cur)));
                }
                let mut inner = String::new();
                let mut quoted = false;
                if chars.peek() == Some(&'"') {
                    quoted = true;
                    chars.next();
                    while let Some(c) = chars.next() {
                        if c == '\\' {
                            if let Some(e) = chars.next() {
                                inner.push(e);
                            }
                        } else if c == '"' {
                            break;
                        } else {
                            inner.push(c);
                        }
                    }
                    if chars.next() != Some(']') {
                        return Err(format!("invalid JSON path {p:?}: expected ]"));
                    }
                } else {
                    for c in chars.by_ref() {
                        if c == ']' {
                            break;
                        }
                        inner.push(c);
                    }
                }
                if quoted {
                    out.push(PathSeg::Key(inner));
                } else {
                    let i = inner
                        .trim()
                        .parse()
                        .map_err(|_| format!("invalid JSON path {p:?}: bad index {inner:?}"))?;
                    out.push(PathSeg::Index(i));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(PathSeg::Key(cur));
    }
    if out.is_empty() {
        return Err(format!("invalid JSON path {p:?}"));
    }
    Ok(out)
}

/// Loki's label key sanitation: characters outside `[a-zA-Z0-9_]` become `_`, a leading digit gets `_`.
pub fn sanitize(key: &str) -> String {
    let key = key.trim();
    let mut out = String::with_capacity(key.len() + 1);
    if key.as_bytes().first().is_some_and(|c| c.is_ascii_digit()) {
        out.push('_');
    }
    for c in key.chars() {
        out.push(if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        });
    }
    out
}

fn json_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    }
}

fn flatten(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
    if let serde_json::Value::Object(m) = v {
        for (k, v) in m {
            let key = if prefix.is_empty() {
                sanitize(k)
            } else {
                format!("{prefix}_{}", sanitize(k))
            };
            match v {
                serde_json::Value::Object(_) => flatten(&key, v, out),
                serde_json::Value::Array(_) => {}
                other => {
                    if let Some(t) = json_text(other) {
                        out.push((key, t));
                    }
                }
            }
        }
    }
}

/// go-logfmt, leniently: `key=value`, `key="quoted value"`, bare `key`.
fn logfmt(line: &str, strict: bool) -> Result<Vec<(String, String)>, String> {
    let b = line.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        while i < b.len() && b[i] <= b' ' {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let ks = i;
        while i < b.len() && b[i] > b' ' && b[i] != b'=' && b[i] != b'"' {
            i += 1;
        }
        let key = &line[ks..i];
        if key.is_empty() {
            if strict {
                return Err(format!(
                    "logfmt syntax error at pos {}: unexpected '{}'",
                    i + 1,
                    b[i] as char
                ));
            }
            // Skip the offending character.
            i += 1;
            continue;
        }
        if i < b.len() && b[i] == b'=' {
            i += 1;
            if i < b.len() && b[i] == b'"' {
                i += 1;
                let mut v = String::new();
                let mut closed = false;
                while i < b.len() {
                    let c = line[i..].chars().next().unwrap_or(' ');
                    if c == '\\' && i + 1 < b.len() {
                        let e = line[i + 1..].chars().next().unwrap_or(' ');
                        v.push(match e {
                            'n' => '\n',
                            't' => '\t',
                            'r' => '\r',
                            other => other,
                        });
                        i += 1 + e.len_utf8();
                        continue;
                    }
                    if c == '"' {
                        i += 1;
                        closed = true;
                        break;
                    }
                    v.push(c);
                    i += c.len_utf8();
                }
                if !closed && strict {
                    return Err(format!(
                        "logfmt syntax error at pos {}: unterminated quoted value",
                        i + 1
                    ));
                }
                out.push((key.to_string(), v));
            } else {
                let vs = i;
                while i < b.len() && b[i] > b' ' {
                    if b[i] == b'"' && strict {
                        return Err(format!(
                            "logfmt syntax error at pos {}: unexpected '\"'",
                            i + 1
                        ));
                    }
                    i += 1;
                }
                out.push((key.to_string(), line[vs..i].to_string()));
            }
        } else {
            if i < b.len() && b[i] == b'"' {
                if strict {
                    return Err(format!(
                        "logfmt syntax error at pos {}: unexpected '\"'",
                        i + 1
                    ));
                }
                i += 1;
            }
            out.push((key.to_string(), String::new()));
        }
    }
    Ok(out)
}

/// Substrings every match of `re` contains (literal runs required on every path), so the store can
/// narrow candidates by them; the regex still decides. Case-insensitive parts, alternations and
/// optional parts give none.
pub fn regex_required_literals(re: &str) -> Vec<String> {
    use regex_syntax::hir::{Hir, HirKind};
    fn lit(h: &Hir) -> Option<&str> {
        match h.kind() {
            HirKind::Literal(l) => std::str::from_utf8(&l.0).ok(),
            _ => None,
        }
    }
    fn walk(h: &Hir, out: &mut Vec<String>) {
        match h.kind() {
            HirKind::Literal(_) => out.extend(lit(h).map(str::to_string)),
            HirKind::Capture(c) => walk(&c.sub, out),
            HirKind::Repetition(r) if r.min >= 1 => walk(&r.sub, out),
            HirKind::Concat(hs) => {
                let mut run = String::new();
                for h in hs {
                    if let Some(s) = lit(h) {
                        run.push_str(s);
                        continue;
                    }
                    if !run.is_empty() {
                        out.push(std::mem::take(&mut run));
                    }
                    walk(h, out);
                }
                if !run.is_empty() {
                    out.push(run);
                }
            }
            _ => {}
        }
    }
    let Ok(hir) = regex_syntax::Parser::new().parse(re) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    walk(&hir, &mut out);
    out.retain(|s| !s.is_empty());
    out
}

/// Matches a `pattern` against a line: the captures, or `None` when a literal is missing. A leading
/// literal must start the line.
pub fn match_pattern<'a>(p: &'a Pattern, line: &'a str) -> Option<Vec<(&'a str, &'a str)>> {
    let mut caps = Vec::new();
    let mut pos = 0usize;
    let mut pending: Option<&Option<String>> = None;
    for (k, part) in p.parts.iter().enumerate() {
        match part {
            PatternPart::Literal(l) => {
                let at = if k == 0 {
                    if !line.starts_with(l.as_str()) {
                        return None;
                    }
                    0
                } else {
                    pos + line[pos..].find(l.as_str())?
                };
                if let Some(Some(name)) = pending.take() {
                    caps.push((name.as_str(), &line[pos..at]));
                }
                pos = at + l.len();
            }
            PatternPart::Capture(name) => pending = Some(name),
        }
    }
    if let Some(Some(name)) = pending {
        caps.push((name.as_str(), &line[pos..]));
    }
    Some(caps)
}

/// Whether a line-filter pattern matches the whole line (a trailing literal must end it).
fn pattern_filter_matches(p: &Pattern, line: &str) -> bool {
    match match_pattern(p, line) {
        None => false,
        Some(_) => match p.parts.last() {
            Some(PatternPart::Literal(l)) => line.ends_with(l.as_str()),
            _ => true,
        },
    }
}

impl LineFilter {
    pub fn matches(&self, line: &str) -> bool {
        match self.op {
            LineOp::Contains => self.values.iter().any(|v| line.contains(v.as_str())),
            LineOp::NotContains => !self.values.iter().any(|v| line.contains(v.as_str())),
            LineOp::Regex => self.regexes.iter().any(|r| r.is_match(line)),
            LineOp::NotRegex => !self.regexes.iter().any(|r| r.is_match(line)),
            LineOp::Pattern => self
                .patterns
                .iter()
                .any(|p| pattern_filter_matches(p, line)),
            LineOp::NotPattern => !self
                .patterns
                .iter()
                .any(|p| pattern_filter_matches(p, line)),
        }
    }
}

fn cmp(op: CmpOp, a: f64, b: f64) -> bool {
    match op {
        CmpOp::Eq => a == b,
        CmpOp::Ne => a != b,
        CmpOp::Gt => a > b,
        CmpOp::Ge => a >= b,
        CmpOp::Lt => a < b,
        CmpOp::Le => a <= b,
    }
}

fn set_error(labels: &mut BTreeMap<String, String>, err: &str, details: String) {
    if !labels.contains_key(ERROR) {
        labels.insert(ERROR.into(), err.into());
        labels.insert(ERROR_DETAILS.into(), details);
    }
}

/// Evaluates a label filter; may set `__error__` (and then keeps the entry).
pub fn eval_filter(f: &LabelFilter, labels: &mut BTreeMap<String, String>) -> bool {
    match f {
        LabelFilter::Matcher(m) => m.matches(labels.get(&m.name).map(String::as_str).unwrap_or("")),
        LabelFilter::And(a, b) => eval_filter(a, labels) && eval_filter(b, labels),
        LabelFilter::Or(a, b) => eval_filter(a, labels) || eval_filter(b, labels),
        LabelFilter::Number(name, op, want)
        | LabelFilter::Duration(name, op, want)
        | LabelFilter::Bytes(name, op, want) => {
            if labels.contains_key(ERROR) {
                return true;
            }
            let Some(v) = labels.get(name) else {
                return *op == CmpOp::Ne;
            };
            let got = match f {
                LabelFilter::Number(..) => v.trim().parse::<f64>().ok(),
                LabelFilter::Duration(..) => parse_duration(v.trim()),
                _ => parse_bytes(v.trim()),
            };
            match got {
                Some(g) => cmp(*op, g, *want),
                None => {
                    let d = format!("cannot convert {name}={v:?} for comparison");
                    set_error(labels, "LabelFilterErr", d);
                    true
                }
            }
        }
    }
}

fn add_extracted(
    labels: &mut BTreeMap<String, String>,
    stream: &Labels,
    key: String,
    value: String,
) {
    let key = if stream.get(&key).is_some() {
        format!("{key}_extracted")
    } else {
        key
    };
    labels.insert(key, value);
}

fn decolorize(line: &str) -> String {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
            .unwrap_or_else(|_| Regex::new("$^").expect("valid"))
    });
    re.replace_all(line, "").into_owned()
}

impl Pipeline {
    pub fn new(stages: &[Stage]) -> Result<Pipeline, String> {
        let mut out = Vec::with_capacity(stages.len());
        for s in stages {
            out.push(match s {
                Stage::Line(f) => Exec::Line(f.clone()),
                Stage::Json(params) => Exec::Json(
                    params
                        .iter()
                        .map(|e| Ok((e.label.clone(), parse_path(&e.path)?)))
                        .collect::<Result<_, String>>()?,
                ),
                Stage::Logfmt {
                    strict,
                    keep_empty,
                    params,
                } => Exec::Logfmt {
                    strict: *strict,
                    keep_empty: *keep_empty,
                    params: params.clone(),
                },
                Stage::Regexp(r) => Exec::Regexp(r.clone()),
                Stage::Pattern(p) => Exec::Pattern(p.clone()),
                Stage::Unpack => Exec::Unpack,
                Stage::LabelFilter(f) => Exec::LabelFilter(f.clone()),
                Stage::LineFormat(t) => Exec::LineFormat(Tmpl::new(t)?),
                Stage::LabelFormat(v) => Exec::LabelFormat(
                    v.iter()
                        .map(|f| {
                            Ok(match f {
                                LabelFmt::Rename(d, s) => (d.clone(), FmtSrc::Label(s.clone())),
                                LabelFmt::Template(d, t) => {
                                    (d.clone(), FmtSrc::Template(Tmpl::new(t)?))
                                }
                            })
                        })
                        .collect::<Result<_, String>>()?,
                ),
                Stage::Drop(v) => Exec::Drop(v.clone()),
                Stage::Keep(v) => Exec::Keep(v.clone()),
                Stage::Decolorize => Exec::Decolorize,
            });
        }
        let line_only = out.iter().all(|e| matches!(e, Exec::Line(_)));
        Ok(Pipeline {
            stages: out,
            line_only,
        })
    }

    /// True when the pipeline only filters lines (labels stay the stream's).
    pub fn line_only(&self) -> bool {
        self.line_only
    }

    /// Substrings every kept line must contain, for the store's index: the single-valued `|=` filters
    /// before any stage that rewrites the line.
    pub fn required_substrings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for s in &self.stages {
            match s {
                Exec::Line(f)
                    if f.op == LineOp::Contains
                        && f.values.len() == 1
                        && !f.values[0].is_empty() =>
                {
                    out.push(f.values[0].clone());
                }
                // What every match must contain narrows the candidates; the filter still decides.
                Exec::Line(f) if f.op == LineOp::Regex && f.regexes.len() == 1 => {
                    out.extend(regex_required_literals(f.regexes[0].as_str()));
                }
                Exec::Line(f) if f.op == LineOp::Pattern && f.patterns.len() == 1 => {
                    out.extend(f.patterns[0].parts.iter().filter_map(|p| match p {
                        PatternPart::Literal(l) if !l.is_empty() => Some(l.clone()),
                        _ => None,
                    }));
                }
                Exec::LineFormat(_) | Exec::Decolorize | Exec::Unpack => break,
                _ => {}
            }
        }
        out
    }

    /// True when every stage is a single-valued `|=` (what the store itself checks exactly).
    pub fn fully_pushed(&self) -> bool {
        self.stages
            .iter()
            .all(|s| matches!(s, Exec::Line(f) if f.op == LineOp::Contains && f.values.len() == 1))
    }

    /// Whether only line filters run (labels untouched), and all of them match.
    pub fn matches_line(&self, line: &str) -> bool {
        self.stages.iter().all(|s| match s {
            Exec::Line(f) => f.matches(line),
            _ => true,
        })
    }

    /// Runs the pipeline. `None` when the entry is filtered out.
    pub fn process(
        &self,
        stream: &Labels,
        metadata: &[(String, String)],
        ts: i64,
        line: &str,
    ) -> Option<Processed> {
        let mut labels: BTreeMap<String, String> = stream
            .iter()
            .map(|l| (l.name.to_string(), l.value.to_string()))
            .collect();
        for (k, v) in metadata {
            labels.entry(k.clone()).or_insert_with(|| v.clone());
        }
        let mut line: std::borrow::Cow<'_, str> = std::borrow::Cow::Borrowed(line);
        for s in &self.stages {
            match s {
                Exec::Line(f) => {
                    if !f.matches(&line) {
                        return None;
                    }
                }
                Exec::Json(params) => match serde_json::from_str::<serde_json::Value>(&line) {
                    Ok(v) if v.is_object() => {
                        if params.is_empty() {
                            let mut kv = Vec::new();
                            flatten("", &v, &mut kv);
                            for (k, val) in kv {
                                add_extracted(&mut labels, stream, k, val);
                            }
                        } else {
                            for (label, path) in params {
                                let mut cur = Some(&v);
                                for seg in path {
                                    cur = cur.and_then(|c| match seg {
                                        PathSeg::Key(k) => c.get(k),
                                        PathSeg::Index(i) => c.get(*i),
                                    });
                                }
                                let val = cur.and_then(json_text).unwrap_or_default();
                                add_extracted(&mut labels, stream, label.clone(), val);
                            }
                        }
                    }
                    Ok(_) => set_error(
                        &mut labels,
                        "JSONParserErr",
                        "the line is not a JSON object".into(),
                    ),
                    Err(e) => set_error(&mut labels, "JSONParserErr", e.to_string()),
                },
                Exec::Logfmt {
                    strict,
                    keep_empty,
                    params,
                } => match logfmt(&line, *strict) {
                    Ok(kv) => {
                        if params.is_empty() {
                            for (k, v) in kv {
                                if v.is_empty() && !keep_empty {
                                    continue;
                                }
                                add_extracted(&mut labels, stream, sanitize(&k), v);
                            }
                        } else {
                            for p in params {
                                if let Some((_, v)) = kv.iter().find(|(k, _)| *k == p.path) {
                                    add_extracted(&mut labels, stream, p.label.clone(), v.clone());
                                }
                            }
                        }
                    }
                    Err(e) => set_error(&mut labels, "LogfmtParserErr", e),
                },
                Exec::Regexp(re) => {
                    if let Some(c) = re.captures(&line) {
                        for name in re.capture_names().flatten() {
                            if let Some(m) = c.name(name) {
                                add_extracted(
                                    &mut labels,
                                    stream,
                                    sanitize(name),
                                    m.as_str().to_string(),
                                );
                            }
                        }
                    }
                }
                Exec::Pattern(p) => {
                    if let Some(caps) = match_pattern(p, &line) {
                        let caps: Vec<(String, String)> = caps
                            .into_iter()
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .collect();
                        for (k, v) in caps {
                            add_extracted(&mut labels, stream, k, v);
                        }
                    }
                }
                Exec::Unpack => match serde_json::from_str::<serde_json::Value>(&line) {
                    Ok(serde_json::Value::Object(m)) => {
                        let mut new_line = None;
                        for (k, v) in &m {
                            if let serde_json::Value::String(s) = v {
                                if k == "_entry" {
                                    new_line = Some(s.clone());
                                } else {
                                    add_extracted(&mut labels, stream, sanitize(k), s.clone());
                                }
                            }
                        }
                        if let Some(l) = new_line {
                            line = std::borrow::Cow::Owned(l);
                        }
                    }
                    Ok(_) => set_error(
                        &mut labels,
                        "JSONParserErr",
                        "the line is not a JSON object".into(),
                    ),
                    Err(e) => set_error(&mut labels, "JSONParserErr", e.to_string()),
                },
                Exec::LabelFilter(f) => {
                    if !eval_filter(f, &mut labels) {
                        return None;
                    }
                }
                Exec::LineFormat(t) => match t.render(&labels, &line, ts) {
                    Ok(l) => line = std::borrow::Cow::Owned(l),
                    Err(e) => set_error(&mut labels, "TemplateFormatErr", e),
                },
                Exec::LabelFormat(v) => {
                    let before = labels.clone();
                    for (dst, src) in v {
                        match src {
                            FmtSrc::Label(s) => {
                                if let Some(val) = before.get(s) {
                                    labels.remove(s);
                                    labels.insert(dst.clone(), val.clone());
                                }
                            }
                            FmtSrc::Template(t) => match t.render(&before, &line, ts) {
                                Ok(val) => {
                                    labels.insert(dst.clone(), val);
                                }
                                Err(e) => set_error(&mut labels, "TemplateFormatErr", e),
                            },
                        }
                    }
                }
                Exec::Drop(v) => {
                    for d in v {
                        let hit = match (&d.matcher, labels.get(&d.name)) {
                            (None, _) => true,
                            (Some(m), Some(val)) => m.matches(val),
                            (Some(_), None) => false,
                        };
                        if hit {
                            labels.remove(&d.name);
                            if d.name == ERROR {
                                labels.remove(ERROR_DETAILS);
                            }
                        }
                    }
                }
                Exec::Keep(v) => {
                    labels.retain(|k, val| {
                        v.iter().any(|d| {
                            d.name == *k && d.matcher.as_ref().is_none_or(|m| m.matches(val))
                        })
                    });
                }
                Exec::Decolorize => line = std::borrow::Cow::Owned(decolorize(&line)),
            }
        }
        labels.retain(|_, v| !v.is_empty());
        Some(Processed {
            labels,
            line: line.into_owned(),
        })
    }
}

/// Converts an unwrapped label's value.
pub fn convert(v: &str, c: Conversion) -> Option<f64> {
    let v = v.trim();
    match c {
        Conversion::Number => v.parse().ok(),
        Conversion::Duration => parse_duration(v),
        Conversion::Bytes => parse_bytes(v),
    }
}

#[cfg(test)]
mod tests {
    use super::super::parser::parse_log_query;
    use super::*;

    fn run(q: &str, line: &str) -> Option<(BTreeMap<String, String>, String)> {
        let e = parse_log_query(q).unwrap();
        let p = Pipeline::new(&e.stages).unwrap();
        p.process(
            &Labels::from_pairs([("app", "api"), ("level", "info")]),
            &[],
            0,
            line,
        )
        .map(|x| (x.labels, x.line))
    }

    #[test]
    fn regex_literals_every_match_holds() {
        let cases: &[(&str, &[&str])] = &[
            ("error.*timeout", &["error", "timeout"]),
            ("(?i)error", &[]),
            ("err(or|no)", &["err"]),
            ("a|b", &[]),
            ("GET /api/v[0-9]+/users", &["GET /api/v", "/users"]),
            ("x{0,3}y", &["y"]),
            ("(foo)+bar", &["foo", "bar"]),
            ("^status=5\\d\\d$", &["status=5"]),
            ("(", &[]),
        ];
        for (re, want) in cases {
            assert_eq!(regex_required_literals(re), *want, "{re}");
        }
        // Through the pipeline: regex and pattern filters add what they require; `or` adds none.
        let p = |q: &str| {
            let e = crate::logql::parser::parse_log_query(q).unwrap();
            Pipeline::new(&e.stages).unwrap().required_substrings()
        };
        assert_eq!(p(r#"{a="b"} |~ "db.*timeout""#), ["db", "timeout"]);
        assert_eq!(p(r#"{a="b"} |> "<_> error <_>""#), [" error "]);
        assert!(p(r#"{a="b"} |~ "x" or "y""#).is_empty());
    }

    #[test]
    fn json_and_filters() {
        let (l, _) = run(
            r#"{app="api"} | json | status >= 500"#,
            r#"{"status":503,"level":"error","req":{"path":"/x","ids":[1,2]},"ok":false,"n":null}"#,
        )
        .unwrap();
        assert_eq!(l["status"], "503");
        assert_eq!(l["level_extracted"], "error");
        assert_eq!(l["req_path"], "/x");
        assert_eq!(l["ok"], "false");
        assert!(!l.contains_key("req_ids") && !l.contains_key("n"));
        assert!(run(r#"{app="api"} | json | status >= 500"#, r#"{"status":200}"#).is_none());
        let (l, _) = run(
            r#"{app="api"} | json p="req.path", first="req.ids[0]""#,
            r#"{"req":{"path":"/y","ids":[7]}}"#,
        )
        .unwrap();
        assert_eq!((l["p"].as_str(), l["first"].as_str()), ("/y", "7"));
        let (l, _) = run(r#"{app="api"} | json"#, "not json").unwrap();
        assert_eq!(l[ERROR], "JSONParserErr");
        assert!(run(r#"{app="api"} | json | __error__="""#, "not json").is_none());
    }

    #[test]
    fn logfmt_pattern_regexp_format() {
        let (l, _) = run(
            r#"{app="api"} | logfmt | duration > 1s and size >= 1KB"#,
            r#"ts=2024 msg="hello world" duration=1.5s size=2KB empty="#,
        )
        .unwrap();
        assert_eq!(l["msg"], "hello world");
        assert!(!l.contains_key("empty"));
        let (l, _) = run(
            r#"{app="api"} | pattern "<ip> - - [<_>] \"<method> <path> <_>\" <status> <size>""#,
            r#"10.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET /a.gif HTTP/1.0" 200 2326"#,
        )
        .unwrap();
        assert_eq!(
            (
                l["ip"].as_str(),
                l["method"].as_str(),
                l["path"].as_str(),
                l["status"].as_str(),
                l["size"].as_str()
            ),
            ("10.0.0.1", "GET", "/a.gif", "200", "2326")
        );
        let (l, line) = run(
            r#"{app="api"} | regexp "(?P<verb>\\w+) (?P<n>\\d+)" | line_format "{{.verb}}={{.n}} ({{.app}})" | label_format v=verb"#,
            "PUT 42",
        )
        .unwrap();
        assert_eq!(line, "PUT=42 (api)");
        assert_eq!(l["v"], "PUT");
        assert!(!l.contains_key("verb"));
        let (l, _) = run(r#"{app="api"} | logfmt | n > 5"#, "n=abc").unwrap();
        assert_eq!(l[ERROR], "LabelFilterErr");
        let (l, _) = run(r#"{app="api"} | drop level | keep app"#, "x").unwrap();
        assert_eq!(l.len(), 1);
        let (_, line) = run(r#"{app="api"} | decolorize"#, "\x1b[31mred\x1b[0m").unwrap();
        assert_eq!(line, "red");
    }
}
