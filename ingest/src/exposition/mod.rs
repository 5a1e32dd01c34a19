//! Parser for the Prometheus text format 0.0.4 and OpenMetrics 1.0.
//!
//! Hand-written because no maintained crate passes our fixtures (see `docs/ARCHITECTURE.md`): the one
//! OpenMetrics crate rejects tabs before values, `# UNIT` on histograms, and rewrites `le="1.0"` and `-0`.
//!
//! The parser walks the page line by line and yields [`Entry`] values in document order. It borrows
//! from the input and allocates only for escaped label values and the small label vector. Any error fails
//! the whole page, as in Prometheus: a scrape is all or nothing.

use std::borrow::Cow;
use std::fmt;

#[cfg(test)]
mod tests;

/// Which grammar to apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4` (also the fallback for unknown content types, as Prometheus 2.x does).
    PrometheusText,
    /// `application/openmetrics-text; version=1.0.0`.
    OpenMetrics,
}

impl Format {
    /// Picks the parser from a response's `Content-Type`: OpenMetrics for `application/openmetrics-text`,
    /// the text format for anything else.
    pub fn from_content_type(ct: Option<&str>) -> Format {
        match ct {
            Some(ct)
                if ct
                    .trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/openmetrics-text") =>
            {
                Format::OpenMetrics
            }
            _ => Format::PrometheusText,
        }
    }
}

/// Metric family types from `# TYPE` lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
    GaugeHistogram,
    Summary,
    Info,
    StateSet,
    Unknown,
}

impl MetricType {
    /// Name as the Prometheus metadata API prints it.
    pub fn as_str(&self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::GaugeHistogram => "gaugehistogram",
            MetricType::Summary => "summary",
            MetricType::Info => "info",
            MetricType::StateSet => "stateset",
            MetricType::Unknown => "unknown",
        }
    }
}

/// A label as parsed: the value is borrowed unless it had escapes.
pub type ParsedLabel<'a> = (&'a str, Cow<'a, str>);

/// An OpenMetrics exemplar.
#[derive(Clone, Debug, PartialEq)]
pub struct Exemplar<'a> {
    pub labels: Vec<ParsedLabel<'a>>,
    pub value: f64,
    pub timestamp_ms: Option<i64>,
}

/// One sample line.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedSample<'a> {
    /// The raw `name{labels}` text: identical text means identical series, so it keys the scrape cache.
    pub series: &'a str,
    pub name: &'a str,
    /// Labels in document order, `__name__` excluded, empty values kept (callers drop them).
    pub labels: Vec<ParsedLabel<'a>>,
    pub value: f64,
    pub timestamp_ms: Option<i64>,
    pub exemplar: Option<Exemplar<'a>>,
}

/// One meaningful line of a page.
#[derive(Clone, Debug, PartialEq)]
pub enum Entry<'a> {
    Sample(ParsedSample<'a>),
    Help { name: &'a str, text: Cow<'a, str> },
    Type { name: &'a str, kind: MetricType },
    Unit { name: &'a str, unit: &'a str },
}

/// A syntax error with its position (1-based line and column, in characters).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

/// The bits of Go's `math.NaN()`, which Prometheus stores for a parsed `NaN` (never the stale marker).
pub const NORMAL_NAN_BITS: u64 = 0x7ff8_0000_0000_0001;

/// Streaming parser over one page.
pub struct Parser<'a> {
    src: &'a str,
    pos: usize,
    line_no: usize,
    format: Format,
    eof_seen: bool,
    done: bool,
}

impl<'a> Parser<'a> {
    pub fn new(src: &'a str, format: Format) -> Self {
        Parser {
            src,
            pos: 0,
            line_no: 0,
            format,
            eof_seen: false,
            done: false,
        }
    }

    fn next_line(&mut self) -> Option<&'a str> {
        if self.pos >= self.src.len() {
            return None;
        }
        let rest = &self.src[self.pos..];
        let (line, adv) = match rest.find('\n') {
            Some(i) => (&rest[..i], i + 1),
            None => (rest, rest.len()),
        };
        self.pos += adv;
        self.line_no += 1;
        Some(line)
    }

    fn parse_line(&self, line: &'a str) -> Result<Option<Entry<'a>>, ParseError> {
        let mut c = LineCursor {
            s: line,
            i: 0,
            line: self.line_no,
        };
        let om = self.format == Format::OpenMetrics;
        if line.is_empty() {
            return if om {
                Err(c.err("empty line is not allowed in OpenMetrics"))
            } else {
                Ok(None)
            };
        }
        if line.starts_with('#') {
            return self.parse_comment(c);
        }
        if line.trim().is_empty() {
            return if om {
                Err(c.err("blank line is not allowed in OpenMetrics"))
            } else {
                Ok(None)
            };
        }
        let first = line.as_bytes()[0];
        if first == b' ' || first == b'\t' {
            return Err(c.err("unexpected whitespace before the metric name"));
        }
        self.parse_sample(&mut c).map(|s| Some(Entry::Sample(s)))
    }

    fn parse_comment(&self, mut c: LineCursor<'a>) -> Result<Option<Entry<'a>>, ParseError> {
        let om = self.format == Format::OpenMetrics;
        c.i = 1;
        if om {
            if c.rest() == " EOF" {
                return Ok(None); // handled by the caller
            }
            if !c.eat(" ") {
                return Err(c.err("expected a space after '#'"));
            }
        } else {
            c.skip_ws();
        }
        let kw_start = c.i;
        while c.peek().is_some_and(|b| b.is_ascii_alphabetic()) {
            c.i += 1;
        }
        let kw = &c.s[kw_start..c.i];
        let known = matches!(kw, "HELP" | "TYPE") || (om && kw == "UNIT");
        if !known || !c.peek().is_some_and(|b| b == b' ' || b == b'\t') {
            return if om {
                Err(c.err_at(kw_start, "expected HELP, TYPE, UNIT or EOF after '#'"))
            } else {
                Ok(None)
            };
        }
        c.skip_ws();
        let name = c
            .metric_name()
            .ok_or_else(|| c.err("expected a metric name"))?;
        match kw {
            "HELP" => {
                let text = if c.at_end() {
                    Cow::Borrowed("")
                } else {
                    if !c.skip_ws() {
                        return Err(c.err("expected whitespace after the metric name"));
                    }
                    unescape_help(c.rest(), om)
                };
                Ok(Some(Entry::Help { name, text }))
            }
            "TYPE" => {
                if !c.skip_ws() {
                    return Err(c.err("expected whitespace after the metric name"));
                }
                let t = c.rest().trim_end();
                let kind = match (t, om) {
                    ("counter", _) => MetricType::Counter,
                    ("gauge", _) => MetricType::Gauge,
                    ("histogram", _) => MetricType::Histogram,
                    ("summary", _) => MetricType::Summary,
                    ("untyped", false) | ("unknown", true) => MetricType::Unknown,
                    ("gaugehistogram", true) => MetricType::GaugeHistogram,
                    ("info", true) => MetricType::Info,
                    ("stateset", true) => MetricType::StateSet,
                    _ => return Err(c.err(&format!("invalid metric type {t:?}"))),
                };
                Ok(Some(Entry::Type { name, kind }))
            }
            _ => {
                if !c.skip_ws() {
                    return Err(c.err("expected whitespace after the metric name"));
                }
                let unit = c.rest().trim_end();
                if !unit.is_empty() && !name.ends_with(&format!("_{unit}")) {
                    return Err(c.err(&format!("unit {unit:?} is not a suffix of metric {name:?}")));
                }
                Ok(Some(Entry::Unit { name, unit }))
            }
        }
    }

    fn parse_sample(&self, c: &mut LineCursor<'a>) -> Result<ParsedSample<'a>, ParseError> {
        let om = self.format == Format::OpenMetrics;
        let name = c
            .metric_name()
            .ok_or_else(|| c.err("expected a metric name"))?;
        let mut labels = Vec::new();
        if c.peek() == Some(b'{') {
            c.i += 1;
            labels = c.label_set()?;
        }
        let series = &c.s[..c.i];
        if !c.skip_ws() {
            return Err(c.err("expected whitespace before the value"));
        }
        let value = parse_value(c.token(), om).ok_or_else(|| c.err_prev("invalid value"))?;
        let mut timestamp_ms = None;
        let mut exemplar = None;
        if c.skip_ws() && !c.at_end() {
            if c.peek() != Some(b'#') {
                let tok = c.token();
                timestamp_ms =
                    Some(parse_timestamp(tok, om).ok_or_else(|| c.err_prev("invalid timestamp"))?);
                c.skip_ws();
            }
            if om && c.peek() == Some(b'#') {
                exemplar = Some(self.parse_exemplar(c)?);
            }
        }
        if !c.at_end() {
            return Err(c.err("unexpected text after the sample"));
        }
        Ok(ParsedSample {
            series,
            name,
            labels,
            value,
            timestamp_ms,
            exemplar,
        })
    }

    fn parse_exemplar(&self, c: &mut LineCursor<'a>) -> Result<Exemplar<'a>, ParseError> {
        c.i += 1; // '#'
        c.skip_ws();
        if !c.eat("{") {
            return Err(c.err("expected '{' to start the exemplar's labels"));
        }
        let labels = c.label_set()?;
        if !c.skip_ws() {
            return Err(c.err("expected whitespace before the exemplar value"));
        }
        let value =
            parse_value(c.token(), true).ok_or_else(|| c.err_prev("invalid exemplar value"))?;
        let mut timestamp_ms = None;
        if c.skip_ws() && !c.at_end() {
            let tok = c.token();
            timestamp_ms = Some(
                parse_timestamp(tok, true)
                    .ok_or_else(|| c.err_prev("invalid exemplar timestamp"))?,
            );
            c.skip_ws();
        }
        let runes: usize = labels
            .iter()
            .map(|(n, v)| n.chars().count() + v.chars().count())
            .sum();
        if runes > 128 {
            return Err(c.err("exemplar labels exceed 128 UTF-8 characters"));
        }
        Ok(Exemplar {
            labels,
            value,
            timestamp_ms,
        })
    }
}

impl<'a> Iterator for Parser<'a> {
    type Item = Result<Entry<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        loop {
            let Some(line) = self.next_line() else {
                self.done = true;
                if self.format == Format::OpenMetrics && !self.eof_seen {
                    return Some(Err(ParseError {
                        line: self.line_no,
                        column: 1,
                        message: "data does not end with # EOF".into(),
                    }));
                }
                return None;
            };
            if self.eof_seen {
                if line.is_empty() && self.pos >= self.src.len() {
                    continue;
                }
                self.done = true;
                return Some(Err(ParseError {
                    line: self.line_no,
                    column: 1,
                    message: "unexpected data after # EOF".into(),
                }));
            }
            if self.format == Format::OpenMetrics && line == "# EOF" {
                self.eof_seen = true;
                continue;
            }
            match self.parse_line(line) {
                Ok(Some(e)) => return Some(Ok(e)),
                Ok(None) => continue,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

struct LineCursor<'a> {
    s: &'a str,
    i: usize,
    line: usize,
}

impl<'a> LineCursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.i).copied()
    }

    fn at_end(&self) -> bool {
        self.i >= self.s.len()
    }

    fn rest(&self) -> &'a str {
        &self.s[self.i..]
    }

    fn eat(&mut self, lit: &str) -> bool {
        if self.rest().starts_with(lit) {
            self.i += lit.len();
            true
        } else {
            false
        }
    }

    /// Skips spaces and tabs; true if it skipped any.
    fn skip_ws(&mut self) -> bool {
        let st = self.i;
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
        self.i > st
    }

    /// Up to the next whitespace.
    fn token(&mut self) -> &'a str {
        let st = self.i;
        while self.peek().is_some_and(|b| b != b' ' && b != b'\t') {
            self.i += 1;
        }
        &self.s[st..self.i]
    }

    fn column(&self, byte: usize) -> usize {
        self.s[..byte.min(self.s.len())].chars().count() + 1
    }

    fn err(&self, msg: &str) -> ParseError {
        self.err_at(self.i, msg)
    }

    fn err_at(&self, byte: usize, msg: &str) -> ParseError {
        let near: String = self.s[byte.min(self.s.len())..].chars().take(20).collect();
        let message = if near.is_empty() {
            format!("{msg} (at end of line)")
        } else {
            format!("{msg} near {near:?}")
        };
        ParseError {
            line: self.line,
            column: self.column(byte),
            message,
        }
    }

    /// Error pointing at the start of the token just read.
    fn err_prev(&self, msg: &str) -> ParseError {
        let mut st = self.i;
        while st > 0 && !matches!(self.s.as_bytes()[st - 1], b' ' | b'\t') {
            st -= 1;
        }
        self.err_at(st, msg)
    }

    fn metric_name(&mut self) -> Option<&'a str> {
        let b = self.s.as_bytes();
        let st = self.i;
        if !b
            .get(st)
            .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_' || *c == b':')
        {
            return None;
        }
        self.i += 1;
        while b
            .get(self.i)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b':')
        {
            self.i += 1;
        }
        Some(&self.s[st..self.i])
    }

    fn label_name(&mut self) -> Option<&'a str> {
        let b = self.s.as_bytes();
        let st = self.i;
        if !b
            .get(st)
            .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_')
        {
            return None;
        }
        self.i += 1;
        while b
            .get(self.i)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
        {
            self.i += 1;
        }
        Some(&self.s[st..self.i])
    }

    /// Parses `name="value", ...}` (the opening brace already consumed); a trailing comma is allowed.
    fn label_set(&mut self) -> Result<Vec<ParsedLabel<'a>>, ParseError> {
        let mut out: Vec<ParsedLabel<'a>> = Vec::new();
        loop {
            self.skip_ws();
            if self.eat("}") {
                return Ok(out);
            }
            let name_at = self.i;
            let name = self
                .label_name()
                .ok_or_else(|| self.err("expected a label name or '}'"))?;
            self.skip_ws();
            if !self.eat("=") {
                return Err(self.err("expected '=' after the label name"));
            }
            self.skip_ws();
            if !self.eat("\"") {
                return Err(self.err("expected '\"' to start the label value"));
            }
            let value = self.quoted()?;
            if out.iter().any(|(n, _)| *n == name) {
                return Err(self.err_at(name_at, &format!("duplicate label name {name:?}")));
            }
            out.push((name, value));
            self.skip_ws();
            if self.eat(",") {
                continue;
            }
            self.skip_ws();
            if self.eat("}") {
                return Ok(out);
            }
            return Err(self.err("expected ',' or '}' after the label value"));
        }
    }

    /// Reads a quoted label value (opening quote consumed) and unescapes `\\`, `\"`, `\n`; any other
    /// escaped character is kept with its backslash, as Prometheus does.
    fn quoted(&mut self) -> Result<Cow<'a, str>, ParseError> {
        let st = self.i;
        let b = self.s.as_bytes();
        let mut escaped = false;
        loop {
            match b.get(self.i) {
                None => return Err(self.err_at(st, "label value is not terminated by '\"'")),
                Some(b'"') => break,
                Some(b'\\') => {
                    escaped = true;
                    if self.i + 1 >= b.len() {
                        return Err(self.err_at(st, "label value is not terminated by '\"'"));
                    }
                    self.i += 2;
                }
                Some(_) => self.i += 1,
            }
        }
        let raw = &self.s[st..self.i];
        self.i += 1; // closing quote
        if !escaped {
            return Ok(Cow::Borrowed(raw));
        }
        let mut out = String::with_capacity(raw.len());
        let mut it = raw.chars();
        while let Some(ch) = it.next() {
            if ch != '\\' {
                out.push(ch);
                continue;
            }
            match it.next() {
                Some('\\') => out.push('\\'),
                Some('"') => out.push('"'),
                Some('n') => out.push('\n'),
                Some(o) => {
                    out.push('\\');
                    out.push(o);
                }
                None => out.push('\\'),
            }
        }
        Ok(Cow::Owned(out))
    }
}

fn unescape_help(s: &str, om: bool) -> Cow<'_, str> {
    if !s.contains('\\') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(ch) = it.next() {
        if ch != '\\' {
            out.push(ch);
            continue;
        }
        match it.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if om => out.push('"'),
            Some(o) => {
                out.push('\\');
                out.push(o);
            }
            None => out.push('\\'),
        }
    }
    Cow::Owned(out)
}

/// Parses a sample value the way Go's `strconv.ParseFloat` does for exposition values (`NaN`, `+Inf`,
/// `-Inf`, `Inf`, exponents), normalising NaN to Prometheus's NaN bits.
pub fn parse_value(tok: &str, _om: bool) -> Option<f64> {
    if tok.is_empty() {
        return None;
    }
    // Rust accepts "infinity"/"nan" case-insensitively like Go; reject forms Go would not take.
    let b = tok.as_bytes();
    if !b
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
    {
        return None;
    }
    let v: f64 = tok.parse().ok()?;
    Some(if v.is_nan() {
        f64::from_bits(NORMAL_NAN_BITS)
    } else {
        v
    })
}

/// Text format: integer milliseconds. OpenMetrics: float seconds, truncated to milliseconds.
fn parse_timestamp(tok: &str, om: bool) -> Option<i64> {
    if om {
        let f = parse_value(tok, true)?;
        if !f.is_finite() {
            return None;
        }
        let ms = f * 1000.0;
        if ms.abs() >= 9.2e18 {
            return None;
        }
        Some(ms as i64)
    } else {
        tok.parse::<i64>().ok()
    }
}
