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
mod range_fns;

use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use promql_parser::label::MatchOp as PMatchOp;
use promql_parser::parser::{self, AtModifier, Expr, Offset, VectorSelector};
use vigil_model::{Labels, MatchOp, Matcher, is_stale_nan};
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

/// Evaluation settings.
#[derive(Clone, Debug)]
pub struct EvalOptions {
    pub lookback_ms: i64,
    /// Most samples one query may load (0 = unlimited).
    pub max_samples: usize,
    /// Most series one query may load (0 = unlimited).
    pub max_series: usize,
    /// Step of subqueries that give none (Prometheus: the global evaluation interval, 1m).
    pub default_subquery_step_ms: i64,
    /// Longest a query may run (Prometheus: `--query.timeout`, 2m).
    pub timeout: std::time::Duration,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            lookback_ms: 5 * 60 * 1000,
            max_samples: 50_000_000,
            max_series: 0,
            default_subquery_step_ms: 60_000,
            timeout: std::time::Duration::from_secs(120),
        }
    }
}

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
fn error_position(q: &str, msg: &str) -> (usize, usize) {
    position_by(q, msg, &mut |p| parser::parse(p).is_ok())
}

/// [`error_position`] with the prefix check as an argument (tests count the parses).
fn position_by(q: &str, msg: &str, parses: &mut dyn FnMut(&str) -> bool) -> (usize, usize) {
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
fn rename_functions(q: &str) -> std::borrow::Cow<'_, str> {
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

fn key(vs: &VectorSelector) -> usize {
    vs as *const VectorSelector as usize
}

/// Works out the time range each selector needs, for evaluation times in `[lo, hi]`.
fn plan(
    e: &Expr,
    lo: i64,
    hi: i64,
    qs: i64,
    qe: i64,
    opts: &EvalOptions,
    out: &mut HashMap<usize, (Vec<Matcher>, i64, i64)>,
) -> Result<(), EvalError> {
    let pin = |at: &Option<AtModifier>, lo: i64, hi: i64| -> (i64, i64) {
        match at {
            None => (lo, hi),
            Some(AtModifier::Start) => (qs, qs),
            Some(AtModifier::End) => (qe, qe),
            Some(AtModifier::At(st)) => {
                let t = match st.duration_since(UNIX_EPOCH) {
                    Ok(d) => d.as_millis() as i64,
                    Err(e) => -(e.duration().as_millis() as i64),
                };
                (t, t)
            }
        }
    };
    let mut add = |vs: &VectorSelector, back: i64, lo: i64, hi: i64| -> Result<(), EvalError> {
        let (a, b) = pin(&vs.at, lo, hi);
        let off = offset_ms(&vs.offset);
        let (mint, maxt) = (a - off - back, b - off);
        let m = selector_matchers(vs)?;
        let e = out.entry(key(vs)).or_insert((m, mint, maxt));
        e.1 = e.1.min(mint);
        e.2 = e.2.max(maxt);
        Ok(())
    };
    match e {
        Expr::VectorSelector(vs) => add(vs, opts.lookback_ms, lo, hi),
        Expr::MatrixSelector(ms) => add(&ms.vs, duration_ms(&ms.range), lo, hi),
        Expr::Subquery(sq) => {
            let (a, b) = pin(&sq.at, lo, hi);
            let off = offset_ms(&sq.offset);
            plan(
                &sq.expr,
                a - off - duration_ms(&sq.range),
                b - off,
                qs,
                qe,
                opts,
                out,
            )
        }
        Expr::Paren(p) => plan(&p.expr, lo, hi, qs, qe, opts, out),
        Expr::Unary(u) => plan(&u.expr, lo, hi, qs, qe, opts, out),
        Expr::Binary(b) => {
            plan(&b.lhs, lo, hi, qs, qe, opts, out)?;
            plan(&b.rhs, lo, hi, qs, qe, opts, out)
        }
        Expr::Aggregate(a) => {
            if let Some(p) = &a.param {
                plan(p, lo, hi, qs, qe, opts, out)?;
            }
            plan(&a.expr, lo, hi, qs, qe, opts, out)
        }
        Expr::Call(c) => {
            for a in &c.args.args {
                plan(a, lo, hi, qs, qe, opts, out)?;
            }
            Ok(())
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => Ok(()),
        Expr::Extension(_) => Err(exec("extension expressions are not supported")),
    }
}

/// Loads every selector's series once.
async fn load<R: MetricsReader>(
    reader: &R,
    expr: &Expr,
    start: i64,
    end: i64,
    opts: &EvalOptions,
    stats: &mut QueryStats,
) -> Result<HashMap<usize, Vec<RawSeries>>, EvalError> {
    let mut p = HashMap::new();
    plan(expr, start, end, start, end, opts, &mut p)?;
    let mut data = HashMap::with_capacity(p.len());
    let mut loaded = 0usize;
    for (k, (m, mint, maxt)) in p {
        let budget = if opts.max_samples == 0 {
            0
        } else {
            let left = opts.max_samples.saturating_sub(loaded);
            if left == 0 {
                return Err(ReadError::TooManySamples {
                    limit: opts.max_samples,
                }
                .into());
            }
            left
        };
        let sd = reader
            .select(&m, mint, maxt, budget)
            .await
            .map_err(|e| match e {
                // The reader saw only what was left of the budget; report the query's limit.
                ReadError::TooManySamples { .. } => ReadError::TooManySamples {
                    limit: opts.max_samples,
                },
                other => other,
            })?;
        let series: Vec<RawSeries> = sd
            .into_iter()
            .map(|s| RawSeries {
                labels: s.labels,
                ts: s.timestamps.values().to_vec(),
                vs: s.values.values().to_vec(),
            })
            .collect();
        loaded += series.iter().map(|s| s.ts.len()).sum::<usize>();
        stats.series_loaded += series.len();
        if opts.max_series > 0 && stats.series_loaded > opts.max_series {
            return Err(exec(format!(
                "query would load more than {} series (query.max_series); narrow the selectors",
                opts.max_series
            )));
        }
        data.insert(k, series);
    }
    stats.samples_loaded = loaded;
    Ok(data)
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

/// An instant-vector selector over all steps: per series, `(step, sample time, value)` for every step
/// at which the series has a non-stale sample within the lookback.
pub(crate) fn select_instant(
    vs: &VectorSelector,
    ctx: &Ctx,
) -> Result<Vec<(Labels, Vec<StepSample>)>, EvalError> {
    let Some(data) = ctx.data.get(&key(vs)) else {
        return Ok(Vec::new());
    };
    let at = ctx.at_time(&vs.at);
    let off = offset_ms(&vs.offset);
    let lookback = ctx.opts.lookback_ms;
    let mut out = Vec::with_capacity(data.len());
    for s in data {
        let mut pts = Vec::new();
        for i in 0..ctx.n {
            let r = at.unwrap_or_else(|| ctx.t(i)) - off;
            let j = s.ts.partition_point(|x| *x <= r);
            if j == 0 {
                continue;
            }
            let (st, sv) = (s.ts[j - 1], s.vs[j - 1]);
            if st < r - lookback || is_stale_nan(sv) {
                continue;
            }
            pts.push((i, st, sv));
        }
        // Charged series by series, so a query that would materialise too much stops before it
        // has (and the server's memory stays bounded).
        ctx.charge(pts.len())?;
        if !pts.is_empty() {
            out.push((s.labels.clone(), pts));
        }
    }
    Ok(out)
}

/// A series of a range-vector argument: its samples (no staleness markers) as `(time, value)`, so a
/// step's window is a slice.
#[derive(Clone, Debug)]
pub(crate) struct RangeSeries {
    pub labels: Labels,
    pub pts: Vec<(i64, f64)>,
}

/// A range-vector argument: series without staleness markers, and how to find each step's window.
pub(crate) struct RangeArg<'e> {
    pub series: Vec<RangeSeries>,
    pub range: i64,
    pub offset: i64,
    pub at: Option<i64>,
    /// The selector, when the argument is a plain range selector (for `absent_over_time` labels).
    pub selector: Option<&'e VectorSelector>,
}

impl RangeArg<'_> {
    /// Index range `[lo, hi)` of `s`'s samples in the window of evaluation time `t` (both ends inclusive
    /// in time, as in Prometheus 2.x).
    pub fn window(&self, s: &RangeSeries, t: i64, _ctx: &Ctx) -> (usize, usize) {
        let r = self.at.unwrap_or(t) - self.offset;
        let lo = s.pts.partition_point(|x| x.0 < r - self.range);
        let hi = s.pts.partition_point(|x| x.0 <= r);
        (lo, hi.max(lo))
    }

    /// Calls `f(step, time, lo, hi)` for every step whose window holds samples of `s`, moving the window
    /// bounds forward instead of searching for them per step (steps only move forward in time).
    pub fn for_each_window(
        &self,
        s: &RangeSeries,
        ctx: &Ctx,
        mut f: impl FnMut(usize, i64, usize, usize),
    ) {
        let (mut lo, mut hi) = (0usize, 0usize);
        let n = s.pts.len();
        for i in 0..ctx.n {
            let t = ctx.t(i);
            let (a, b) = if self.at.is_some() {
                self.window(s, t, ctx)
            } else {
                let r = t - self.offset;
                while lo < n && s.pts[lo].0 < r - self.range {
                    lo += 1;
                }
                if hi < lo {
                    hi = lo;
                }
                while hi < n && s.pts[hi].0 <= r {
                    hi += 1;
                }
                (lo, hi)
            };
            if a < b {
                f(i, t, a, b);
            }
        }
    }

    /// Start and end of the window of evaluation time `t`.
    pub fn bounds(&self, t: i64) -> (i64, i64) {
        let r = self.at.unwrap_or(t) - self.offset;
        (r - self.range, r)
    }
}

/// Evaluates a range selector or subquery into a [`RangeArg`].
pub(crate) fn range_arg<'e>(e: &'e Expr, ctx: &Ctx) -> Result<RangeArg<'e>, EvalError> {
    match unwrap_parens(e) {
        Expr::MatrixSelector(ms) => {
            let series = ctx
                .data
                .get(&key(&ms.vs))
                .map(|d| {
                    d.iter()
                        .map(|s| RangeSeries {
                            labels: s.labels.clone(),
                            pts: s
                                .ts
                                .iter()
                                .zip(s.vs.iter())
                                .filter(|(_, v)| !is_stale_nan(**v))
                                .map(|(t, v)| (*t, *v))
                                .collect(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            Ok(RangeArg {
                series,
                range: duration_ms(&ms.range),
                offset: offset_ms(&ms.vs.offset),
                at: ctx.at_time(&ms.vs.at),
                selector: Some(&ms.vs),
            })
        }
        Expr::Subquery(sq) => {
            let range = duration_ms(&sq.range);
            let off = offset_ms(&sq.offset);
            let at = ctx.at_time(&sq.at);
            let step = sq
                .step
                .as_ref()
                .map(duration_ms)
                .filter(|s| *s > 0)
                .unwrap_or(ctx.opts.default_subquery_step_ms);
            let (first, last) = match at {
                Some(t) => (t - off, t - off),
                None => (ctx.t(0) - off, ctx.end() - off),
            };
            let lo = first - range;
            // The first step at or after `lo` that is a multiple of the step, as Prometheus aligns it.
            let mut start = step * (lo / step);
            if start < lo {
                start += step;
            }
            let n = if last < start {
                0
            } else {
                ((last - start) / step + 1) as usize
            };
            let sub = Ctx {
                start,
                step,
                n,
                query_start: ctx.query_start,
                query_end: ctx.query_end,
                opts: ctx.opts,
                data: ctx.data,
                deadline: ctx.deadline,
                mem: ctx.mem,
            };
            let series = match eval(&sq.expr, &sub)? {
                Out::Vector(sers) => sers
                    .into_iter()
                    .map(|s| RangeSeries {
                        labels: s.labels,
                        pts: s.pts.iter().map(|(i, v)| (sub.t(*i), *v)).collect(),
                    })
                    .collect(),
                Out::Scalar(v) => vec![RangeSeries {
                    labels: Labels::empty(),
                    pts: v
                        .into_iter()
                        .enumerate()
                        .map(|(i, v)| (sub.t(i), v))
                        .collect(),
                }],
                _ => {
                    return Err(exec(
                        "subquery is only allowed on instant vector or scalar expressions",
                    ));
                }
            };
            Ok(RangeArg {
                series,
                range,
                offset: off,
                at,
                selector: None,
            })
        }
        _ => Err(exec(
            "expected a range vector (a range selector or a subquery)",
        )),
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
