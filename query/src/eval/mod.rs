//! The PromQL engine: instant and range evaluation with Prometheus 2.x semantics.
//!
//! A query runs in two phases. First every selector's time range is worked out from the whole
//! expression (offsets, `@`, ranges, subqueries) and its series are loaded once through
//! [`MetricsReader`]. Then the expression is evaluated over all steps at once: each node yields, per
//! output series, the points it has at the evaluation steps ([`Out`]), so a series is scanned once per
//! query rather than once per step.
//!
//! Semantics follow Prometheus 2.42: a 5-minute inclusive lookback, staleness markers ending a series,
//! range windows closed on both ends, extrapolated `rate`, subquery steps aligned to absolute time.

mod aggregate;
mod binary;
mod functions;
mod histogram;
mod options;
mod parse;
mod plan;
mod range_fns;
mod select;

pub use options::{EvalOptions, QuerySection};
pub use parse::parse;
pub(crate) use plan::{key, load};
pub(crate) use select::{RangeArg, range_arg, select_instant};

use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use promql_parser::label::MatchOp as PMatchOp;
use promql_parser::parser::{AtModifier, Expr, Offset, VectorSelector};
use vigil_model::{Labels, MatchOp, Matcher};
use vigil_storage::{MetricsReader, ReadError};

/// Result of a query.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar(i64, f64),
    String(i64, String),
    Vector(Vec<(Labels, i64, f64)>),
    Matrix(Vec<(Labels, Vec<(i64, f64)>)>),
}

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The query text is invalid (400 `bad_data`).
    #[error("{0}")]
    BadData(String),
    /// The query is valid but cannot be run (422 `execution`).
    #[error("{0}")]
    Execution(String),
    /// The query ran past its deadline (503 `timeout`).
    #[error("query timed out in {0}")]
    Timeout(&'static str),
    #[error(transparent)]
    Read(#[from] ReadError),
}

/// What a query cost, for the API's `stats` option and the slow-query log.
#[derive(Clone, Debug, Default)]
pub struct QueryStats {
    pub series_loaded: usize,
    pub samples_loaded: usize,
    /// Most points held at once (loaded samples plus materialised ones).
    pub peak_points: usize,
    pub load_seconds: f64,
    pub eval_seconds: f64,
}

fn duration_ms(d: &Duration) -> i64 {
    d.as_millis() as i64
}

pub(crate) fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => duration_ms(d),
        Some(Offset::Neg(d)) => -duration_ms(d),
    }
}

/// Converts a parsed selector into our matchers (the metric name becomes a `__name__` matcher).
pub fn selector_matchers(vs: &VectorSelector) -> Result<Vec<Matcher>, EvalError> {
    if !vs.matchers.or_matchers.is_empty() {
        return Err(EvalError::Execution(
            "\"or\" inside label matchers is not supported".into(),
        ));
    }
    let mut out = Vec::new();
    if let Some(n) = &vs.name {
        out.push(Matcher::equal("__name__", n.clone()));
    }
    for m in &vs.matchers.matchers {
        let op = match &m.op {
            PMatchOp::Equal => MatchOp::Equal,
            PMatchOp::NotEqual => MatchOp::NotEqual,
            PMatchOp::Re(_) => MatchOp::Regex,
            PMatchOp::NotRe(_) => MatchOp::NotRegex,
        };
        out.push(
            Matcher::new(op, m.name.clone(), m.value.clone())
                .map_err(|e| EvalError::BadData(e.to_string()))?,
        );
    }
    if out.iter().all(|m| m.matches_empty()) {
        return Err(EvalError::BadData(
            "vector selector must contain at least one non-empty matcher".into(),
        ));
    }
    Ok(out)
}

/// A selected sample: step index, the sample's own time, value.
pub(crate) type StepSample = (usize, i64, f64);

/// A point of an evaluated series: step index and value.
pub(crate) type Pt = (usize, f64);

/// One output series of a node: its labels and its points at the evaluation steps.
#[derive(Clone, Debug)]
pub(crate) struct Ser {
    pub labels: Labels,
    pub pts: Vec<Pt>,
}

/// What a node evaluates to over all steps.
pub(crate) enum Out {
    Scalar(Vec<f64>),
    Vector(Vec<Ser>),
    /// Raw samples of a range selector or subquery (only as the whole query, at one instant).
    Matrix(Vec<(Labels, Vec<(i64, f64)>)>),
    Str(String),
}

/// Loaded samples of one series.
#[derive(Clone, Debug)]
pub(crate) struct RawSeries {
    pub labels: Labels,
    pub ts: Vec<i64>,
    pub vs: Vec<f64>,
}

/// The evaluation context of a node: its steps, and the loaded data.
pub(crate) struct Ctx<'a> {
    pub start: i64,
    pub step: i64,
    pub n: usize,
    /// Start and end of the whole query, for `@ start()` and `@ end()`.
    pub query_start: i64,
    pub query_end: i64,
    pub opts: &'a EvalOptions,
    pub data: &'a HashMap<usize, Vec<RawSeries>>,
    pub deadline: std::time::Instant,
    /// Points held by evaluated nodes right now and at most, shared with subqueries' contexts.
    pub mem: &'a Memory,
}

/// The points a query holds in memory, charged against `max_samples` as Prometheus charges them:
/// every point a node materialises (an instant vector at each step, a function's result, a
/// subquery's series) counts while it is alive, on top of the loaded samples.
#[derive(Debug, Default)]
pub struct Memory {
    pub live: std::cell::Cell<usize>,
    pub peak: std::cell::Cell<usize>,
    /// Samples loaded from storage (alive for the whole query).
    pub loaded: usize,
}

impl Out {
    /// Points this output holds.
    fn points(&self) -> usize {
        match self {
            Out::Scalar(v) => v.len(),
            Out::Vector(s) => s.iter().map(|s| s.pts.len()).sum(),
            Out::Matrix(m) => m.iter().map(|(_, p)| p.len()).sum(),
            Out::Str(_) => 1,
        }
    }
}

impl Ctx<'_> {
    /// Charges `points` more, failing past `max_samples` with Prometheus's message.
    pub fn charge(&self, points: usize) -> Result<(), EvalError> {
        let live = self.mem.live.get() + points;
        self.mem.live.set(live);
        self.mem.peak.set(self.mem.peak.get().max(live));
        if self.opts.max_samples > 0 && live + self.mem.loaded > self.opts.max_samples {
            // A query already past its deadline reports that first.
            self.check()?;
            return Err(EvalError::Execution(format!(
                "query processing would load too many samples into memory in query execution (query.max_samples is {}); narrow the selectors, the time range or raise the step",
                self.opts.max_samples
            )));
        }
        Ok(())
    }

    /// Fails once the query's deadline has passed.
    pub fn check(&self) -> Result<(), EvalError> {
        if std::time::Instant::now() > self.deadline {
            return Err(EvalError::Timeout("expression evaluation"));
        }
        Ok(())
    }

    pub fn t(&self, i: usize) -> i64 {
        self.start + i as i64 * self.step
    }

    fn end(&self) -> i64 {
        self.t(self.n.saturating_sub(1))
    }

    /// The time an `@` modifier pins evaluation to, if any.
    pub fn at_time(&self, at: &Option<AtModifier>) -> Option<i64> {
        match at {
            None => None,
            Some(AtModifier::Start) => Some(self.query_start),
            Some(AtModifier::End) => Some(self.query_end),
            Some(AtModifier::At(st)) => Some(match st.duration_since(UNIX_EPOCH) {
                Ok(d) => d.as_millis() as i64,
                Err(e) => -(e.duration().as_millis() as i64),
            }),
        }
    }
}

pub(crate) fn exec(msg: impl Into<String>) -> EvalError {
    EvalError::Execution(msg.into())
}

/// Loads the data of `expr` and evaluates it on a blocking thread (evaluation is CPU work), within the
/// timeout. The expression is boxed so the selectors' addresses, which key the loaded data, stay put.
async fn run<R: MetricsReader>(
    reader: &R,
    expr: Expr,
    start: i64,
    end: i64,
    step: i64,
    opts: &EvalOptions,
) -> Result<(Out, QueryStats), EvalError> {
    let began = std::time::Instant::now();
    let deadline = began + opts.timeout;
    let expr = Box::new(expr);
    let mut stats = QueryStats::default();
    let data = tokio::time::timeout(
        opts.timeout,
        load(reader, &expr, start, end, opts, &mut stats),
    )
    .await
    .map_err(|_| EvalError::Timeout("loading series"))??;
    stats.load_seconds = began.elapsed().as_secs_f64();
    let opts = opts.clone();
    let n = ((end - start) / step + 1).max(0) as usize;
    let evaluated = std::time::Instant::now();
    let loaded = stats.samples_loaded;
    let (out, peak) = tokio::task::spawn_blocking(move || {
        let mem = Memory {
            loaded,
            ..Memory::default()
        };
        let ctx = Ctx {
            start,
            step,
            n,
            query_start: start,
            query_end: end,
            opts: &opts,
            data: &data,
            deadline,
            mem: &mem,
        };
        eval(&expr, &ctx).map(|o| (o, mem.peak.get()))
    })
    .await
    .map_err(|e| exec(format!("query evaluation failed: {e}")))??;
    stats.eval_seconds = evaluated.elapsed().as_secs_f64();
    stats.peak_points = peak + loaded;
    Ok((out, stats))
}

/// Evaluates an instant query at `t` (ms).
pub async fn instant<R: MetricsReader>(
    reader: &R,
    expr: Expr,
    t: i64,
    opts: &EvalOptions,
) -> Result<(Value, QueryStats), EvalError> {
    let (out, stats) = run(reader, expr, t, t, 1, opts).await?;
    let v = match out {
        Out::Scalar(v) => Value::Scalar(t, v[0]),
        Out::Str(s) => Value::String(t, s),
        Out::Matrix(m) => Value::Matrix(m),
        Out::Vector(sers) => Value::Vector(
            sers.into_iter()
                .filter_map(|s| s.pts.first().map(|p| (s.labels, t, p.1)))
                .collect(),
        ),
    };
    Ok((v, stats))
}

/// Evaluates a range query over `[start, end]` every `step` ms.
pub async fn range<R: MetricsReader>(
    reader: &R,
    expr: Expr,
    start: i64,
    end: i64,
    step: i64,
    opts: &EvalOptions,
) -> Result<(Value, QueryStats), EvalError> {
    match unwrap_parens(&expr) {
        Expr::StringLiteral(_) => {
            return Err(EvalError::BadData(
                "invalid expression type \"string\" for range query, must be Scalar or instant Vector".into(),
            ));
        }
        Expr::MatrixSelector(_) | Expr::Subquery(_) => {
            return Err(EvalError::BadData(
                "invalid expression type \"range vector\" for range query, must be Scalar or instant Vector".into(),
            ));
        }
        _ => {}
    }
    let (out, stats) = run(reader, expr, start, end, step, opts).await?;
    let t = |i: usize| start + i as i64 * step;
    let mut m = match out {
        Out::Scalar(v) => vec![(
            Labels::empty(),
            v.iter().enumerate().map(|(i, v)| (t(i), *v)).collect(),
        )],
        Out::Vector(sers) => sers
            .into_iter()
            .filter(|s| !s.pts.is_empty())
            .map(|s| (s.labels, s.pts.iter().map(|(i, v)| (t(*i), *v)).collect()))
            .collect(),
        Out::Str(_) | Out::Matrix(_) => {
            return Err(EvalError::BadData(
                "invalid expression type for range query, must be Scalar or instant Vector".into(),
            ));
        }
    };
    m.sort_by(|a, b| a.0.cmp(&b.0));
    Ok((Value::Matrix(m), stats))
}

pub(crate) fn unwrap_parens(mut e: &Expr) -> &Expr {
    while let Expr::Paren(p) = e {
        e = &p.expr;
    }
    e
}

/// Evaluates a node over all steps of `ctx`, charging what it materialises (its children's
/// outputs are released once it is computed from them).
pub(crate) fn eval(e: &Expr, ctx: &Ctx) -> Result<Out, EvalError> {
    let before = ctx.mem.live.get();
    let out = eval_node(e, ctx)?;
    ctx.mem.live.set(before);
    ctx.charge(out.points())?;
    Ok(out)
}

fn eval_node(e: &Expr, ctx: &Ctx) -> Result<Out, EvalError> {
    ctx.check()?;
    match e {
        Expr::Paren(p) => eval(&p.expr, ctx),
        Expr::NumberLiteral(n) => Ok(Out::Scalar(vec![n.val; ctx.n])),
        Expr::StringLiteral(s) => Ok(Out::Str(s.val.clone())),
        Expr::Unary(u) => match eval(&u.expr, ctx)? {
            Out::Scalar(v) => Ok(Out::Scalar(v.into_iter().map(|x| -x).collect())),
            Out::Vector(sers) => {
                let out = sers
                    .into_iter()
                    .map(|s| Ser {
                        labels: s.labels.without_metric_name(),
                        pts: s.pts.into_iter().map(|(i, v)| (i, -v)).collect(),
                    })
                    .collect();
                Ok(Out::Vector(merge_checked(out)?))
            }
            _ => Err(exec(
                "unary minus applies to scalars and instant vectors only",
            )),
        },
        Expr::VectorSelector(vs) => Ok(Out::Vector(
            select_instant(vs, ctx)?
                .into_iter()
                .map(|(labels, pts)| Ser {
                    labels,
                    pts: pts.into_iter().map(|(i, _, v)| (i, v)).collect(),
                })
                .collect(),
        )),
        Expr::MatrixSelector(_) | Expr::Subquery(_) => {
            let r = range_arg(e, ctx)?;
            let t = ctx.t(0);
            let mut out = Vec::new();
            for s in &r.series {
                let (lo, hi) = r.window(s, t, ctx);
                if lo < hi {
                    out.push((s.labels.clone(), s.pts[lo..hi].to_vec()));
                }
            }
            Ok(Out::Matrix(out))
        }
        Expr::Call(c) => functions::call(c, ctx),
        Expr::Aggregate(a) => aggregate::eval(a, ctx),
        Expr::Binary(b) => binary::eval(b, ctx),
        Expr::Extension(_) => Err(exec("extension expressions are not supported")),
    }
}

/// Merges series that ended up with the same labels (after a name was dropped, say); two points at the
/// same step are the error Prometheus reports for such vectors.
pub(crate) fn merge_checked(sers: Vec<Ser>) -> Result<Vec<Ser>, EvalError> {
    let mut idx: HashMap<Labels, usize> = HashMap::with_capacity(sers.len());
    let mut out: Vec<Ser> = Vec::with_capacity(sers.len());
    let mut merged = false;
    for s in sers {
        match idx.get(&s.labels) {
            Some(&k) => {
                out[k].pts.extend(s.pts);
                merged = true;
            }
            None => {
                idx.insert(s.labels.clone(), out.len());
                out.push(s);
            }
        }
    }
    if merged {
        for s in &mut out {
            s.pts.sort_by_key(|p| p.0);
            if s.pts.windows(2).any(|w| w[0].0 == w[1].0) {
                return Err(exec("vector cannot contain metrics with the same labelset"));
            }
        }
    }
    Ok(out)
}

/// Step-major view of series: for each step, `(series index, value)`.
pub(crate) fn by_step(sers: &[Ser], n: usize) -> Vec<Vec<(usize, f64)>> {
    let mut out = vec![Vec::new(); n];
    for (k, s) in sers.iter().enumerate() {
        for (i, v) in &s.pts {
            out[*i].push((k, *v));
        }
    }
    out
}

/// Evaluates an argument that must be a scalar (per step).
pub(crate) fn scalar_arg(e: &Expr, ctx: &Ctx) -> Result<Vec<f64>, EvalError> {
    match eval(e, ctx)? {
        Out::Scalar(v) => Ok(v),
        _ => Err(exec("expected a scalar argument")),
    }
}

/// Evaluates an argument that must be an instant vector.
pub(crate) fn vector_arg(e: &Expr, ctx: &Ctx) -> Result<Vec<Ser>, EvalError> {
    match eval(e, ctx)? {
        Out::Vector(v) => Ok(v),
        _ => Err(exec("expected an instant vector argument")),
    }
}

/// Evaluates an argument that must be a string literal.
pub(crate) fn string_arg(e: &Expr) -> Result<String, EvalError> {
    match unwrap_parens(e) {
        Expr::StringLiteral(s) => Ok(s.val.clone()),
        _ => Err(exec("expected a string argument")),
    }
}

#[cfg(test)]
mod tests;
