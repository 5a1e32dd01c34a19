//! The LogQL parser: stream selectors, pipelines and log range aggregations by recursive descent; the
//! vector layer above them (aggregations, binary operators, `vector()`) by `promql-parser`, after each
//! range aggregation is replaced by a placeholder metric name.

use std::time::Duration;

use regex::Regex;
use vigil_model::{MatchOp, Matcher};

use super::ast::*;

/// A syntax error with its byte offset in the query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub pos: usize,
    pub msg: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "parse error at line 1, col {}: {}",
            self.pos + 1,
            self.msg
        )
    }
}

type PResult<T> = Result<T, ParseError>;

const STAGE_KEYWORDS: &[&str] = &[
    "json",
    "logfmt",
    "regexp",
    "pattern",
    "unpack",
    "line_format",
    "label_format",
    "drop",
    "keep",
    "decolorize",
    "unwrap",
];

struct P<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
    /// Offset of `s` in the whole query, for error positions.
    base: usize,
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

impl<'a> P<'a> {
    fn new(s: &'a str, base: usize) -> Self {
        P {
            s,
            b: s.as_bytes(),
            i: 0,
            base,
        }
    }

    fn err<T>(&self, msg: impl Into<String>) -> PResult<T> {
        Err(ParseError {
            pos: self.base + self.i,
            msg: msg.into(),
        })
    }

    fn ws(&mut self) {
        while self.i < self.b.len() {
            let c = self.b[self.i];
            if c.is_ascii_whitespace() {
                self.i += 1;
            } else if c == b'#' {
                // Comments run to the end of the line.
                while self.i < self.b.len() && self.b[self.i] != b'\n' {
                    self.i += 1;
                }
            } else {
                break;
            }
        }
    }

    fn at_end(&mut self) -> bool {
        self.ws();
        self.i >= self.b.len()
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    fn looking_at(&mut self, t: &str) -> bool {
        self.ws();
        self.s[self.i..].starts_with(t)
    }

    fn eat(&mut self, t: &str) -> bool {
        if self.looking_at(t) {
            self.i += t.len();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, t: &str) -> PResult<()> {
        if self.eat(t) {
            Ok(())
        } else {
            let found = self.found();
            self.err(format!("syntax error: expected {t:?}, found {found}"))
        }
    }

    fn found(&mut self) -> String {
        self.ws();
        if self.i >= self.b.len() {
            return "the end of the query".into();
        }
        let rest: String = self.s[self.i..].chars().take(12).collect();
        format!("{rest:?}")
    }

    /// Reads an identifier without consuming it.
    fn peek_ident(&mut self) -> Option<&'a str> {
        self.ws();
        let start = self.i;
        if start >= self.b.len() || !is_ident_start(self.b[start]) {
            return None;
        }
        let mut j = start;
        while j < self.b.len() && is_ident(self.b[j]) {
            j += 1;
        }
        Some(&self.s[start..j])
    }

    fn ident(&mut self) -> PResult<String> {
        match self.peek_ident() {
            Some(id) => {
                self.i += id.len();
                Ok(id.to_string())
            }
            None => {
                let f = self.found();
                self.err(format!("syntax error: expected a label name, found {f}"))
            }
        }
    }

    fn keyword(&mut self, k: &str) -> bool {
        if self.peek_ident() == Some(k) {
            self.i += k.len();
            true
        } else {
            false
        }
    }

    /// A double-quoted (Go escapes) or backtick (raw) string.
    fn string(&mut self) -> PResult<String> {
        self.ws();
        match vigil_model::unquote_prefix(&self.s[self.i..], &['"', '`']) {
            Ok((v, used)) => {
                self.i += used;
                Ok(v)
            }
            Err(e) => {
                let msg = if matches!(self.b.get(self.i), Some(b'"') | Some(b'`')) {
                    e
                } else {
                    format!("syntax error: expected a string, found {}", self.found())
                };
                self.err(msg)
            }
        }
    }

    /// A number, possibly followed by a duration or bytes unit: returns the text of the literal.
    fn literal(&mut self) -> Option<&'a str> {
        self.ws();
        let start = self.i;
        let mut j = start;
        if j < self.b.len() && (self.b[j] == b'-' || self.b[j] == b'+') {
            j += 1;
        }
        let digits = j;
        while j < self.b.len() && (self.b[j].is_ascii_alphanumeric() || self.b[j] == b'.') {
            j += 1;
        }
        // µ (two bytes in UTF-8) in durations.
        while j < self.b.len() && !self.b[j].is_ascii() {
            let c = self.s[j..].chars().next()?;
            if c != 'µ' {
                break;
            }
            j += c.len_utf8();
            while j < self.b.len() && self.b[j].is_ascii_alphanumeric() {
                j += 1;
            }
        }
        if j == digits || !self.b[digits].is_ascii_digit() && self.b[digits] != b'.' {
            return None;
        }
        self.i = j;
        Some(&self.s[start..j])
    }

    fn duration(&mut self) -> PResult<Duration> {
        let at = self.i;
        match self.literal() {
            Some(t) => match parse_duration(t) {
                Some(d) if d >= 0.0 => Ok(Duration::from_secs_f64(d)),
                _ => {
                    self.i = at;
                    self.err(format!("invalid duration {t:?}"))
                }
            },
            None => {
                let f = self.found();
                self.err(format!("syntax error: expected a duration, found {f}"))
            }
        }
    }

    fn matcher(&mut self) -> PResult<Matcher> {
        let name = self.ident()?;
        let op = if self.eat("=~") {
            MatchOp::Regex
        } else if self.eat("!~") {
            MatchOp::NotRegex
        } else if self.eat("!=") {
            MatchOp::NotEqual
        } else if self.eat("=") {
            MatchOp::Equal
        } else {
            let f = self.found();
            return self.err(format!(
                "syntax error: expected =, !=, =~ or !~ after {name:?}, found {f}"
            ));
        };
        let at = self.i;
        let value = self.string()?;
        Matcher::new(op, name, value).map_err(|e| ParseError {
            pos: self.base + at,
            msg: e.to_string(),
        })
    }

    fn selector(&mut self) -> PResult<Vec<Matcher>> {
        let at = self.i;
        self.expect("{")?;
        let mut ms = Vec::new();
        if !self.eat("}") {
            loop {
                ms.push(self.matcher()?);
                if self.eat(",") {
                    if self.eat("}") {
                        break;
                    }
                    continue;
                }
                self.expect("}")?;
                break;
            }
        }
        if ms.iter().all(|m| m.matches("")) {
            self.i = at;
            return self.err("queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~\".*\" does not meet this requirement, but app=~\".+\" will");
        }
        Ok(ms)
    }

    fn line_filter(&mut self) -> PResult<Option<LineFilter>> {
        let op = if self.eat("|=") {
            LineOp::Contains
        } else if self.eat("!=") {
            LineOp::NotContains
        } else if self.eat("|~") {
            LineOp::Regex
        } else if self.eat("!~") {
            LineOp::NotRegex
        } else if self.eat("|>") {
            LineOp::Pattern
        } else if self.eat("!>") {
            LineOp::NotPattern
        } else {
            return Ok(None);
        };
        let mut f = LineFilter {
            op: op.clone(),
            values: Vec::new(),
            regexes: Vec::new(),
            patterns: Vec::new(),
        };
        loop {
            if self.peek_ident() == Some("ip") {
                return self.err("the ip() line filter is not supported");
            }
            let at = self.i;
            let v = self.string()?;
            match op {
                LineOp::Regex | LineOp::NotRegex => {
                    f.regexes.push(Regex::new(&v).map_err(|e| ParseError {
                        pos: self.base + at,
                        msg: format!("invalid regex {v:?}: {e}"),
                    })?);
                }
                LineOp::Pattern | LineOp::NotPattern => {
                    f.patterns
                        .push(parse_pattern(&v, true).map_err(|msg| ParseError {
                            pos: self.base + at,
                            msg,
                        })?);
                }
                _ => {}
            }
            f.values.push(v);
            if self.keyword("or") {
                continue;
            }
            break;
        }
        Ok(Some(f))
    }

    /// Parses the stages of a pipeline until something that is not a stage (`[`, `)`, the end).
    fn stages(&mut self, stages: &mut Vec<Stage>, unwrap: &mut Option<Unwrap>) -> PResult<()> {
        loop {
            if let Some(f) = self.line_filter()? {
                if unwrap.is_some() {
                    return self.err("line filters are not allowed after unwrap");
                }
                stages.push(Stage::Line(f));
                continue;
            }
            if !self.looking_at("|") {
                return Ok(());
            }
            self.i += 1;
            let kw = self.peek_ident();
            // `| json` and friends, unless a comparison follows (a label named like a keyword).
            let is_kw = match kw {
                Some(k) if STAGE_KEYWORDS.contains(&k) => {
                    let rest = self.s[self.i + k.len()..].trim_start();
                    !(rest.starts_with('=')
                        || rest.starts_with("!=")
                        || rest.starts_with("!~")
                        || rest.starts_with('>')
                        || rest.starts_with('<'))
                }
                _ => false,
            };
            if !is_kw {
                let f = self.label_filter()?;
                match unwrap {
                    Some(u) => u.post_filters.push(f),
                    None => stages.push(Stage::LabelFilter(f)),
                }
                continue;
            }
            if unwrap.is_some() {
                return self.err("only label filters may follow unwrap");
            }
            let kw = kw.unwrap_or_default();
            self.i += kw.len();
            match kw {
                "json" => stages.push(Stage::Json(self.extractions()?)),
                "logfmt" => {
                    let (mut strict, mut keep_empty) = (false, false);
                    loop {
                        if self.eat("--strict") {
                            strict = true;
                        } else if self.eat("--keep-empty") {
                            keep_empty = true;
                        } else {
                            break;
                        }
                    }
                    let params = self.extractions()?;
                    stages.push(Stage::Logfmt {
                        strict,
                        keep_empty,
                        params,
                    });
                }
                "regexp" => {
                    let at = self.i;
                    let v = self.string()?;
                    let re = Regex::new(&v).map_err(|e| ParseError {
                        pos: self.base + at,
                        msg: format!("invalid regexp {v:?}: {e}"),
                    })?;
                    if re.capture_names().flatten().next().is_none() {
                        self.i = at;
                        return self.err("regexp stage requires at least one named capture");
                    }
                    stages.push(Stage::Regexp(re));
                }
                "pattern" => {
                    let at = self.i;
                    let v = self.string()?;
                    let p = parse_pattern(&v, false).map_err(|msg| ParseError {
                        pos: self.base + at,
                        msg,
                    })?;
                    stages.push(Stage::Pattern(p));
                }
                "unpack" => stages.push(Stage::Unpack),
                "decolorize" => stages.push(Stage::Decolorize),
                "line_format" => {
                    let at = self.i;
                    let t = self.string()?;
                    super::template::check(&t).map_err(|msg| ParseError {
                        pos: self.base + at,
                        msg,
                    })?;
                    stages.push(Stage::LineFormat(t));
                }
                "label_format" => {
                    let mut v = Vec::new();
                    loop {
                        let dst = self.ident()?;
                        self.expect("=")?;
                        if let Some(src) = self.peek_ident() {
                            self.i += src.len();
                            v.push(LabelFmt::Rename(dst, src.to_string()));
                        } else {
                            let at = self.i;
                            let t = self.string()?;
                            super::template::check(&t).map_err(|msg| ParseError {
                                pos: self.base + at,
                                msg,
                            })?;
                            v.push(LabelFmt::Template(dst, t));
                        }
                        if !self.eat(",") {
                            break;
                        }
                    }
                    stages.push(Stage::LabelFormat(v));
                }
                "drop" | "keep" => {
                    let mut v = Vec::new();
                    loop {
                        let save = self.i;
                        let name = self.ident()?;
                        let matcher = if self.looking_at("=")
                            || self.looking_at("!=")
                            || self.looking_at("=~")
                            || self.looking_at("!~")
                        {
                            self.i = save;
                            Some(self.matcher()?)
                        } else {
                            None
                        };
                        v.push(NameOrMatcher { name, matcher });
                        if !self.eat(",") {
                            break;
                        }
                    }
                    stages.push(if kw == "drop" {
                        Stage::Drop(v)
                    } else {
                        Stage::Keep(v)
                    });
                }
                "unwrap" => {
                    let (conversion, label) = match self.peek_ident() {
                        Some(f @ ("duration" | "duration_seconds" | "bytes"))
                            if self.s[self.i + f.len()..].trim_start().starts_with('(') =>
                        {
                            self.i += f.len();
                            self.expect("(")?;
                            let l = self.ident()?;
                            self.expect(")")?;
                            (
                                if f == "bytes" {
                                    Conversion::Bytes
                                } else {
                                    Conversion::Duration
                                },
                                l,
                            )
                        }
                        _ => (Conversion::Number, self.ident()?),
                    };
                    *unwrap = Some(Unwrap {
                        label,
                        conversion,
                        post_filters: Vec::new(),
                    });
                }
                _ => unreachable!("keyword list"),
            }
        }
    }

    /// `json` / `logfmt` parameters: `label`, `label="path"`, comma-separated.
    fn extractions(&mut self) -> PResult<Vec<Extraction>> {
        let mut v = Vec::new();
        while let Some(id) = self.peek_ident() {
            self.i += id.len();
            let label = id.to_string();
            let path = if self.looking_at("=") && !self.looking_at("==") && !self.looking_at("=~") {
                self.i += 1;
                self.string()?
            } else {
                label.clone()
            };
            v.push(Extraction { label, path });
            if !self.eat(",") {
                break;
            }
        }
        Ok(v)
    }

    fn label_filter(&mut self) -> PResult<LabelFilter> {
        let mut l = self.label_and()?;
        while self.keyword("or") {
            let r = self.label_and()?;
            l = LabelFilter::Or(Box::new(l), Box::new(r));
        }
        Ok(l)
    }

    fn label_and(&mut self) -> PResult<LabelFilter> {
        let mut l = self.label_primary()?;
        loop {
            if self.keyword("and") || self.eat(",") {
                let r = self.label_primary()?;
                l = LabelFilter::And(Box::new(l), Box::new(r));
                continue;
            }
            // Whitespace between two predicates means and.
            match self.peek_ident() {
                Some(id) if id != "or" && id != "offset" => {
                    let r = self.label_primary()?;
                    l = LabelFilter::And(Box::new(l), Box::new(r));
                }
                _ => {
                    if self.peek() == Some(b'(') {
                        let r = self.label_primary()?;
                        l = LabelFilter::And(Box::new(l), Box::new(r));
                        continue;
                    }
                    return Ok(l);
                }
            }
        }
    }

    fn label_primary(&mut self) -> PResult<LabelFilter> {
        if self.eat("(") {
            let f = self.label_filter()?;
            self.expect(")")?;
            return Ok(f);
        }
        let name = self.ident()?;
        let op = if self.eat("==") {
            "=="
        } else if self.eat("=~") {
            "=~"
        } else if self.eat("!~") {
            "!~"
        } else if self.eat("!=") {
            "!="
        } else if self.eat(">=") {
            ">="
        } else if self.eat("<=") {
            "<="
        } else if self.eat(">") {
            ">"
        } else if self.eat("<") {
            "<"
        } else if self.eat("=") {
            "="
        } else {
            let f = self.found();
            return self.err(format!(
                "syntax error: expected a comparison after {name:?}, found {f}"
            ));
        };
        if self.peek_ident() == Some("ip") {
            return self.err("the ip() label filter is not supported");
        }
        if matches!(self.peek(), Some(b'"') | Some(b'`')) {
            let at = self.i;
            let v = self.string()?;
            let mop = match op {
                "=" | "==" => MatchOp::Equal,
                "!=" => MatchOp::NotEqual,
                "=~" => MatchOp::Regex,
                "!~" => MatchOp::NotRegex,
                _ => {
                    self.i = at;
                    return self.err(format!(
                        "{op} compares numbers, durations or sizes, not the string {v:?}"
                    ));
                }
            };
            return Matcher::new(mop, name, v)
                .map(LabelFilter::Matcher)
                .map_err(|e| ParseError {
                    pos: self.base + at,
                    msg: e.to_string(),
                });
        }
        let cmp = match op {
            "=" | "==" => CmpOp::Eq,
            "!=" => CmpOp::Ne,
            ">" => CmpOp::Gt,
            ">=" => CmpOp::Ge,
            "<" => CmpOp::Lt,
            "<=" => CmpOp::Le,
            _ => {
                return self.err(format!("{op} needs a string"));
            }
        };
        let at = self.i;
        let Some(lit) = self.literal() else {
            let f = self.found();
            return self.err(format!(
                "syntax error: expected a number, duration, size or string, found {f}"
            ));
        };
        if let Ok(n) = lit.parse::<f64>() {
            return Ok(LabelFilter::Number(name, cmp, n));
        }
        if let Some(d) = parse_duration(lit) {
            return Ok(LabelFilter::Duration(name, cmp, d));
        }
        if let Some(b) = parse_bytes(lit) {
            return Ok(LabelFilter::Bytes(name, cmp, b));
        }
        self.i = at;
        self.err(format!(
            "{lit:?} is not a number, a duration (250ms) or a size (10KB)"
        ))
    }

    /// A log expression: selector and pipeline, possibly in parentheses.
    fn log_expr(&mut self, unwrap: &mut Option<Unwrap>) -> PResult<LogExpr> {
        if self.eat("(") {
            let e = self.log_expr(unwrap)?;
            self.expect(")")?;
            return Ok(e);
        }
        let matchers = self.selector()?;
        let mut stages = Vec::new();
        self.stages(&mut stages, unwrap)?;
        Ok(LogExpr { matchers, stages })
    }

    /// `op([param,] log-range) [by|without (…)]`.
    fn range_agg(&mut self) -> PResult<RangeAgg> {
        let name = self.ident()?;
        let Some(op) = RangeOp::from_name(&name) else {
            return self.err(format!("unknown range aggregation {name:?}"));
        };
        self.expect("(")?;
        let param = if op == RangeOp::QuantileOverTime {
            let at = self.i;
            let lit = self.literal();
            let q = lit.and_then(|l| l.parse::<f64>().ok());
            let Some(q) = q else {
                self.i = at;
                return self
                    .err("quantile_over_time needs a quantile first: quantile_over_time(0.99, …)");
            };
            self.expect(",")?;
            Some(q)
        } else {
            None
        };
        let mut unwrap = None;
        let mut log = self.log_expr(&mut unwrap)?;
        self.expect("[")?;
        let range = self.duration()?;
        self.expect("]")?;
        if range.is_zero() {
            return self.err("the range of a range aggregation must be positive");
        }
        let offset = if self.keyword("offset") {
            self.duration()?
        } else {
            Duration::ZERO
        };
        // The older form puts the pipeline after the range: `{…}[5m] | json | unwrap x`.
        self.stages(&mut log.stages, &mut unwrap)?;
        self.expect(")")?;
        let grouping = if self.keyword("by") {
            Some(Grouping::By(self.label_list()?))
        } else if self.keyword("without") {
            Some(Grouping::Without(self.label_list()?))
        } else {
            None
        };
        if op.needs_unwrap() && unwrap.is_none() {
            return self.err(format!(
                "{op} needs an unwrapped label: {op}({{…}} | unwrap <label> [5m])"
            ));
        }
        if unwrap.is_some() && !op.allows_unwrap() {
            return self.err(format!("{op} does not take an unwrapped label"));
        }
        if grouping.is_some()
            && matches!(
                op,
                RangeOp::CountOverTime | RangeOp::BytesOverTime | RangeOp::BytesRate
            )
        {
            return self.err(format!("grouping not allowed for {op} aggregation"));
        }
        Ok(RangeAgg {
            op,
            param,
            log,
            unwrap,
            range,
            offset,
            grouping,
        })
    }

    fn label_list(&mut self) -> PResult<Vec<String>> {
        self.expect("(")?;
        let mut v = Vec::new();
        if self.eat(")") {
            return Ok(v);
        }
        loop {
            v.push(self.ident()?);
            if self.eat(",") {
                if self.eat(")") {
                    return Ok(v);
                }
                continue;
            }
            self.expect(")")?;
            return Ok(v);
        }
    }
}

/// Parses a duration: Prometheus's (`5m`, `1h30m`, `1d`, `1w`, `1y`) and Go's (`1.5s`, `250ms`, `10us`,
/// `5ns`) units; returns seconds.
pub fn parse_duration(s: &str) -> Option<f64> {
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if s.is_empty() {
        return None;
    }
    if s == "0" {
        return Some(0.0);
    }
    let mut total = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        if n == 0 {
            return None;
        }
        let num: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..u] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            "w" => 7.0 * 86400.0,
            "y" => 365.0 * 86400.0,
            _ => return None,
        };
        total += num * mult;
        rest = &rest[u..];
    }
    Some(if neg { -total } else { total })
}

/// Parses a byte size as go-humanize does (`10KB` = 10 000, `10KiB` = 10 240, `5MB`, `1.5GiB`, `42B`).
pub fn parse_bytes(s: &str) -> Option<f64> {
    let n = s
        .find(|c: char| !c.is_ascii_digit() && c != '.' && c != '-' && c != '+')
        .unwrap_or(s.len());
    let num: f64 = s[..n].trim().parse().ok()?;
    let unit = s[n..].trim().to_ascii_lowercase();
    let mult = match unit.as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "ki" | "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mi" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gi" | "gib" => 1024f64.powi(3),
        "t" | "tb" => 1e12,
        "ti" | "tib" => 1024f64.powi(4),
        "p" | "pb" => 1e15,
        "pi" | "pib" => 1024f64.powi(5),
        "e" | "eb" => 1e18,
        "ei" | "eib" => 1024f64.powi(6),
        _ => return None,
    };
    Some(num * mult)
}

/// Parses a `pattern` expression. A line-filter pattern may start or end with a capture and needs no
/// named capture; a parser pattern needs at least one named capture and no two captures in a row.
pub fn parse_pattern(s: &str, filter: bool) -> Result<Pattern, String> {
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut rest = s;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('<')
            && let Some(end) = r.find('>')
        {
            let name = &r[..end];
            let valid = name == "_"
                || (!name.is_empty()
                    && name.bytes().next().is_some_and(is_ident_start)
                    && name.bytes().all(is_ident));
            if valid {
                if !lit.is_empty() {
                    parts.push(PatternPart::Literal(std::mem::take(&mut lit)));
                }
                if matches!(parts.last(), Some(PatternPart::Capture(_))) {
                    return Err(format!(
                        "invalid pattern {s:?}: two captures in a row (<{name}>) need a literal between them"
                    ));
                }
                parts.push(PatternPart::Capture(
                    (name != "_").then(|| name.to_string()),
                ));
                rest = &r[end + 1..];
                continue;
            }
        }
        let c = rest.chars().next().unwrap_or(' ');
        lit.push(c);
        rest = &rest[c.len_utf8()..];
    }
    if !lit.is_empty() {
        parts.push(PatternPart::Literal(lit));
    }
    if !filter
        && !parts
            .iter()
            .any(|p| matches!(p, PatternPart::Capture(Some(_))))
    {
        return Err(format!(
            "invalid pattern {s:?}: at least one named capture (<name>) is needed"
        ));
    }
    let mut names: Vec<&String> = parts
        .iter()
        .filter_map(|p| match p {
            PatternPart::Capture(Some(n)) => Some(n),
            _ => None,
        })
        .collect();
    names.sort();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return Err(format!("invalid pattern {s:?}: a capture name is repeated"));
    }
    Ok(Pattern { parts })
}

/// Parses a log query (a selector and pipeline) that must make up the whole text.
pub fn parse_log_query(q: &str) -> PResult<LogExpr> {
    let mut p = P::new(q, 0);
    let mut unwrap = None;
    let e = p.log_expr(&mut unwrap)?;
    if unwrap.is_some() {
        return p.err("unwrap is only allowed inside a range aggregation");
    }
    if !p.at_end() {
        let f = p.found();
        return p.err(format!("syntax error: unexpected {f}"));
    }
    Ok(e)
}

/// Finds the end of a parenthesised group starting at `open` (the index of `(`), skipping strings.
fn matching_paren(b: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = open;
    while i < b.len() {
        match b[i] {
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'`' => {
                i += 1;
                while i < b.len() && b[i] != b'`' {
                    i += 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// Parses a LogQL query.
pub fn parse(q: &str) -> PResult<Query> {
    let b = q.as_bytes();
    let first = skip_ws(b, 0);
    // A log query starts with a selector (possibly parenthesised).
    let mut k = first;
    while k < b.len() && (b[k] == b'(' || b[k].is_ascii_whitespace()) {
        k += 1;
    }
    if k < b.len() && b[k] == b'{' {
        return parse_log_query(q).map(Query::Logs);
    }
    let mut out = String::with_capacity(q.len());
    let mut aggs = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'"' || c == b'`' || c == b'\'' {
            let start = i;
            i += 1;
            while i < b.len() && b[i] != c {
                if b[i] == b'\\' && c != b'`' {
                    i += 1;
                }
                i += 1;
            }
            i = (i + 1).min(b.len());
            out.push_str(&q[start..i]);
            continue;
        }
        if is_ident_start(c) && (i == 0 || !is_ident(b[i - 1])) {
            let mut j = i;
            while j < b.len() && is_ident(b[j]) {
                j += 1;
            }
            let id = &q[i..j];
            let after = skip_ws(b, j);
            if RangeOp::from_name(id).is_some() && after < b.len() && b[after] == b'(' {
                let Some(close) = matching_paren(b, after) else {
                    return Err(ParseError {
                        pos: after,
                        msg: "syntax error: unclosed (".into(),
                    });
                };
                let mut end = close + 1;
                let g = skip_ws(b, end);
                for kw in ["by", "without"] {
                    if q[g..].starts_with(kw) && !b.get(g + kw.len()).is_some_and(|c| is_ident(*c))
                    {
                        let open = skip_ws(b, g + kw.len());
                        if open < b.len()
                            && b[open] == b'('
                            && let Some(gc) = matching_paren(b, open)
                        {
                            end = gc + 1;
                        }
                    }
                }
                let mut p = P::new(&q[i..end], i);
                let agg = p.range_agg()?;
                if !p.at_end() {
                    let f = p.found();
                    return p.err(format!("syntax error: unexpected {f}"));
                }
                out.push_str(&placeholder(aggs.len()));
                aggs.push(agg);
                i = end;
                continue;
            }
            out.push_str(id);
            i = j;
            continue;
        }
        if c == b'{' {
            return Err(ParseError {
                pos: i,
                msg: "syntax error: a stream selector must be inside a range aggregation here (e.g. count_over_time({…}[5m]))".into(),
            });
        }
        let ch = q[i..].chars().next().unwrap_or(' ');
        out.push(ch);
        i += ch.len_utf8();
    }
    let promql = promql_parser::parser::parse(&out).map_err(|e| ParseError {
        pos: 0,
        msg: format!("syntax error: {e}"),
    })?;
    Ok(Query::Metric { promql, aggs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_queries() {
        let e = parse_log_query(r#"{app="api", env=~"prod|stage"} |= "error" != `timeout` |~ "5\\d\\d" | json | status >= 500 and duration > 250ms or size < 10KB | line_format "{{.msg}}""#).unwrap();
        assert_eq!(e.matchers.len(), 2);
        assert_eq!(e.stages.len(), 6);
        assert!(matches!(&e.stages[3], Stage::Json(p) if p.is_empty()));
        assert!(matches!(
            &e.stages[4],
            Stage::LabelFilter(LabelFilter::Or(..))
        ));
        let e = parse_log_query(r#"{app="api"} | logfmt --strict level, msg="message" | level="error", code!=200 | drop __error__, __error_details__ | keep level, app="api""#).unwrap();
        assert!(
            matches!(&e.stages[0], Stage::Logfmt { strict: true, params, .. } if params.len() == 2)
        );
        assert!(matches!(&e.stages[2], Stage::Drop(v) if v.len() == 2));
        assert!(matches!(&e.stages[3], Stage::Keep(v) if v.len() == 2 && v[1].matcher.is_some()));
        assert!(parse_log_query(r#"{app=~".*"}"#).is_err());
        assert!(parse_log_query(r#"{app="x"} | regexp "(\\w+)""#).is_err());
        assert!(
            parse_log_query(r#"{app="x"} |= "a" or "b" | pattern "<ip> - <_> <status>""#).is_ok()
        );
        assert!(parse_log_query(r#"{app="x"} | pattern "<a><b>""#).is_err());
        let err = parse_log_query(r#"{app="x"} |= "a" blah"#).unwrap_err();
        assert!(err.to_string().contains("col"), "{err}");
    }

    #[test]
    fn metric_queries() {
        let Query::Metric { aggs, promql } = parse(
            r#"sum by (level) (count_over_time({app="api"} | json [1m])) / ignoring(level) group_left sum(rate({app="api"}[5m] offset 1h))"#,
        )
        .unwrap() else {
            panic!("metric")
        };
        assert_eq!(aggs.len(), 2);
        assert_eq!(aggs[1].offset, Duration::from_secs(3600));
        assert!(promql.to_string().contains("__vigil_logql_0__"));
        let Query::Metric { aggs, .. } = parse(
            r#"quantile_over_time(0.99, {app="api"} | logfmt | unwrap duration(latency) | __error__="" [5m]) by (path)"#,
        )
        .unwrap() else {
            panic!("metric")
        };
        let u = aggs[0].unwrap.as_ref().unwrap();
        assert_eq!(u.conversion, Conversion::Duration);
        assert_eq!(u.post_filters.len(), 1);
        assert_eq!(aggs[0].grouping, Some(Grouping::By(vec!["path".into()])));
        assert!(
            matches!(parse("vector(1)+vector(1)").unwrap(), Query::Metric { aggs, .. } if aggs.is_empty())
        );
        assert!(parse(r#"sum_over_time({app="x"}[1m])"#).is_err());
        assert!(parse(r#"count_over_time({app="x"} | unwrap x [1m])"#).is_err());
        assert!(parse(r#"count_over_time({app="x"}[1m]) by (a)"#).is_err());
        assert!(parse(r#"sum(count_over_time({app="x"}[1m])"#).is_err());
    }

    #[test]
    fn literals() {
        assert_eq!(parse_duration("1h30m"), Some(5400.0));
        assert_eq!(parse_duration("250ms"), Some(0.25));
        assert_eq!(parse_duration("1.5s"), Some(1.5));
        assert_eq!(parse_duration("5x"), None);
        assert_eq!(parse_bytes("10KB"), Some(10_000.0));
        assert_eq!(parse_bytes("10KiB"), Some(10_240.0));
        assert_eq!(parse_bytes("5 MB"), Some(5e6));
        assert_eq!(parse_bytes("7"), Some(7.0));
    }
}
