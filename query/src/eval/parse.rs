//! Parsing: Prometheus 2.x function names mapped to the parser's, parse errors turned into
//! `bad_data` messages with Prometheus's `line:column` position.

use promql_parser::parser::{self, Expr};

use super::EvalError;

/// Functions Prometheus 2.x knows under a name the parser (which follows 3.x) spells differently.
const RENAMED: &[(&str, &str)] = &[("holt_winters", "double_exponential_smoothing")];

/// Parses a query, turning parser errors into `bad_data` messages.
pub fn parse(q: &str) -> Result<Expr, EvalError> {
    let q = rename_functions(q);
    parser::parse(&q).map_err(|e| {
        let (line, col) = error_position(&q, &e);
        EvalError::BadData(format!(
            "invalid parameter \"query\": {line}:{col}: parse error: {e}"
        ))
    })
}

/// Where a parse error is, as Prometheus reports it (`line:column`, 1-based), since the parser's
/// messages carry no position: the end of the input for errors about a missing end, the offending name
/// for unknown functions and bad regexes, else the first token that no valid prefix reaches.
pub(crate) fn error_position(q: &str, msg: &str) -> (usize, usize) {
    position_by(q, msg, &mut |p| parser::parse(p).is_ok())
}

/// [`error_position`] with the prefix check as an argument (tests count the parses).
pub(crate) fn position_by(
    q: &str,
    msg: &str,
    parses: &mut dyn FnMut(&str) -> bool,
) -> (usize, usize) {
    let at = |byte: usize| -> (usize, usize) {
        let before = &q[..byte.min(q.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    };
    if msg.starts_with("unclosed") || msg.starts_with("unexpected end") {
        return at(q.trim_end().len());
    }
    if let Some(name) = msg
        .strip_prefix("unknown function with name '")
        .and_then(|r| r.strip_suffix('\''))
        && let Some(i) = q.find(name)
    {
        return at(i);
    }
    if msg.starts_with("illegal regex")
        && let Some(i) = q.find("=~").or_else(|| q.find("!~"))
    {
        return at(i + 2);
    }
    // Token boundaries: where a word character meets a non-word one.
    let word = |c: char| c.is_alphanumeric() || c == '_' || c == ':' || c == '.';
    let mut bounds: Vec<usize> = Vec::new();
    let mut prev: Option<bool> = None;
    for (i, c) in q.char_indices() {
        let w = word(c);
        if prev != Some(w) || !w {
            bounds.push(i);
        }
        prev = Some(w);
    }
    bounds.push(q.len());
    let mut ok = |b: usize| b > 0 && parses(&q[..b]);
    // The longest prefix ending at a token boundary that parses. Short queries try every boundary;
    // longer ones bisect (a few parses instead of one per token, which would be quadratic in the
    // query's length).
    let last_ok = if bounds.len() <= 64 {
        bounds
            .iter()
            .copied()
            .filter(|&b| ok(b))
            .last()
            .unwrap_or(0)
    } else {
        let (mut lo, mut hi) = (0usize, bounds.len());
        while hi - lo > 1 {
            let mid = (lo + hi) / 2;
            if ok(bounds[mid]) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        if ok(bounds[lo]) { bounds[lo] } else { 0 }
    };
    let rest = &q[last_ok..];
    at(last_ok + (rest.len() - rest.trim_start().len()))
}

/// Rewrites 2.x function names outside string literals (`holt_winters(` becomes the 3.x name).
/// Works on characters, so string literals with any UTF-8 are copied unchanged.
pub(crate) fn rename_functions(q: &str) -> std::borrow::Cow<'_, str> {
    if !RENAMED.iter().any(|(old, _)| q.contains(old)) {
        return q.into();
    }
    let mut out = String::with_capacity(q.len() + 16);
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut prev: Option<char> = None;
    let mut it = q.char_indices();
    while let Some((i, c)) = it.next() {
        if let Some(qc) = quote {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' && qc != '`' {
                escaped = true;
            } else if c == qc {
                quote = None;
            }
            prev = Some(c);
            continue;
        }
        if c == '"' || c == '\'' || c == '`' {
            quote = Some(c);
            out.push(c);
            prev = Some(c);
            continue;
        }
        let boundary = !prev.is_some_and(|p| p.is_alphanumeric() || p == '_' || p == ':');
        if boundary
            && let Some((old, new)) = RENAMED.iter().find(|(old, _)| q[i..].starts_with(old))
            && q[i + old.len()..].trim_start().starts_with('(')
        {
            out.push_str(new);
            // Skip the rest of the old name.
            for _ in 1..old.chars().count() {
                it.next();
            }
            prev = old.chars().last();
            continue;
        }
        out.push(c);
        prev = Some(c);
    }
    out.into()
}
