//! LogQL syntax: log pipelines and log range aggregations. Vector operations above range aggregations
//! (aggregations, binary operators, `vector()`, `topk`, …) are PromQL's and are parsed by
//! `promql-parser` (see [`super::parse`]).

use std::fmt;
use std::time::Duration;

use regex::Regex;
use vigil_model::Matcher;

/// A log query: a stream selector and its pipeline.
#[derive(Clone, Debug)]
pub struct LogExpr {
    pub matchers: Vec<Matcher>,
    pub stages: Vec<Stage>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LineOp {
    Contains,
    NotContains,
    Regex,
    NotRegex,
    Pattern,
    NotPattern,
}

/// `|= "a" or "b"`: the line matches when any value matches (for the negative operators: when none
/// does).
#[derive(Clone, Debug)]
pub struct LineFilter {
    pub op: LineOp,
    pub values: Vec<String>,
    pub regexes: Vec<Regex>,
    pub patterns: Vec<Pattern>,
}

/// A `pattern` expression: literals and captures (`<name>`, `<_>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PatternPart {
    Literal(String),
    Capture(Option<String>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    pub parts: Vec<PatternPart>,
}

/// Comparison operators of label filters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Clone, Debug)]
pub enum LabelFilter {
    /// `name = "v"`, `!=`, `=~`, `!~`.
    Matcher(Matcher),
    /// `name > 5` and so on, compared as numbers.
    Number(String, CmpOp, f64),
    /// `name > 250ms`: the label parsed as a Go duration, in seconds.
    Duration(String, CmpOp, f64),
    /// `name > 10KB`: the label parsed as a byte size.
    Bytes(String, CmpOp, f64),
    And(Box<LabelFilter>, Box<LabelFilter>),
    Or(Box<LabelFilter>, Box<LabelFilter>),
}

/// How an unwrapped label becomes a number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conversion {
    Number,
    Duration,
    Bytes,
}

#[derive(Clone, Debug)]
pub struct Unwrap {
    pub label: String,
    pub conversion: Conversion,
    /// Label filters after the unwrap (`| unwrap x | __error__=""`).
    pub post_filters: Vec<LabelFilter>,
}

/// `label_format dst=src` (rename) or `dst="{{ template }}"`.
#[derive(Clone, Debug)]
pub enum LabelFmt {
    Rename(String, String),
    Template(String, String),
}

/// A name for `drop`/`keep`, optionally only when the label matches.
#[derive(Clone, Debug)]
pub struct NameOrMatcher {
    pub name: String,
    pub matcher: Option<Matcher>,
}

/// A JSON or logfmt parameter: `label="path"` (or just `label`).
#[derive(Clone, Debug)]
pub struct Extraction {
    pub label: String,
    pub path: String,
}

#[derive(Clone, Debug)]
pub enum Stage {
    Line(LineFilter),
    Json(Vec<Extraction>),
    Logfmt {
        strict: bool,
        keep_empty: bool,
        params: Vec<Extraction>,
    },
    Regexp(Regex),
    Pattern(Pattern),
    Unpack,
    LabelFilter(LabelFilter),
    LineFormat(String),
    LabelFormat(Vec<LabelFmt>),
    Drop(Vec<NameOrMatcher>),
    Keep(Vec<NameOrMatcher>),
    Decolorize,
}

/// Log range aggregation operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeOp {
    CountOverTime,
    Rate,
    BytesOverTime,
    BytesRate,
    AbsentOverTime,
    SumOverTime,
    AvgOverTime,
    MinOverTime,
    MaxOverTime,
    StddevOverTime,
    StdvarOverTime,
    QuantileOverTime,
    FirstOverTime,
    LastOverTime,
    RateCounter,
}

impl RangeOp {
    pub fn from_name(s: &str) -> Option<RangeOp> {
        Some(match s {
            "count_over_time" => RangeOp::CountOverTime,
            "rate" => RangeOp::Rate,
            "bytes_over_time" => RangeOp::BytesOverTime,
            "bytes_rate" => RangeOp::BytesRate,
            "absent_over_time" => RangeOp::AbsentOverTime,
            "sum_over_time" => RangeOp::SumOverTime,
            "avg_over_time" => RangeOp::AvgOverTime,
            "min_over_time" => RangeOp::MinOverTime,
            "max_over_time" => RangeOp::MaxOverTime,
            "stddev_over_time" => RangeOp::StddevOverTime,
            "stdvar_over_time" => RangeOp::StdvarOverTime,
            "quantile_over_time" => RangeOp::QuantileOverTime,
            "first_over_time" => RangeOp::FirstOverTime,
            "last_over_time" => RangeOp::LastOverTime,
            "rate_counter" => RangeOp::RateCounter,
            _ => return None,
        })
    }

    /// Operators that need `| unwrap`.
    pub fn needs_unwrap(self) -> bool {
        !matches!(
            self,
            RangeOp::CountOverTime
                | RangeOp::Rate
                | RangeOp::BytesOverTime
                | RangeOp::BytesRate
                | RangeOp::AbsentOverTime
        )
    }

    /// Operators that accept `| unwrap` (rate sums unwrapped values per second).
    pub fn allows_unwrap(self) -> bool {
        self.needs_unwrap() || self == RangeOp::Rate
    }
}

impl fmt::Display for RangeOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            RangeOp::CountOverTime => "count_over_time",
            RangeOp::Rate => "rate",
            RangeOp::BytesOverTime => "bytes_over_time",
            RangeOp::BytesRate => "bytes_rate",
            RangeOp::AbsentOverTime => "absent_over_time",
            RangeOp::SumOverTime => "sum_over_time",
            RangeOp::AvgOverTime => "avg_over_time",
            RangeOp::MinOverTime => "min_over_time",
            RangeOp::MaxOverTime => "max_over_time",
            RangeOp::StddevOverTime => "stddev_over_time",
            RangeOp::StdvarOverTime => "stdvar_over_time",
            RangeOp::QuantileOverTime => "quantile_over_time",
            RangeOp::FirstOverTime => "first_over_time",
            RangeOp::LastOverTime => "last_over_time",
            RangeOp::RateCounter => "rate_counter",
        };
        f.write_str(s)
    }
}

/// `by (a, b)` / `without (a)` after a range aggregation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Grouping {
    By(Vec<String>),
    Without(Vec<String>),
}

/// `count_over_time({…} |= "x" [5m] offset 1h)` and the like.
#[derive(Clone, Debug)]
pub struct RangeAgg {
    pub op: RangeOp,
    /// The quantile of `quantile_over_time`.
    pub param: Option<f64>,
    pub log: LogExpr,
    pub unwrap: Option<Unwrap>,
    pub range: Duration,
    pub offset: Duration,
    pub grouping: Option<Grouping>,
}

/// A parsed query.
#[derive(Debug)]
pub enum Query {
    /// A log query (answers streams).
    Logs(LogExpr),
    /// A metric query: the PromQL expression over placeholders, and the range aggregation each
    /// placeholder (`__vigil_logql_<i>__`) stands for.
    Metric {
        promql: promql_parser::parser::Expr,
        aggs: Vec<RangeAgg>,
    },
}

/// The metric name a range aggregation stands behind in the PromQL expression.
pub fn placeholder(i: usize) -> String {
    format!("__vigil_logql_{i}__")
}

pub const PLACEHOLDER_PREFIX: &str = "__vigil_logql_";
