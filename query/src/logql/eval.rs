//! Evaluates LogQL: log queries answer streams; metric queries compute each range aggregation from the
//! log store at the query's steps, then run the PromQL expression above them with the PromQL engine
//! (one engine for vectors), reading the aggregations as series through [`Synthetic`].

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::time::Instant;

use arrow_array::{Float64Array, Int64Array};
use vigil_model::{Labels, MatchOp, Matcher, stale_nan};
use vigil_storage::logs::{Direction, LogSelect, LogsReader};
use vigil_storage::{Exemplar, MetricsReader, ReadError, SeriesData};

use super::ast::*;
use super::pipeline::{ERROR, ERROR_DETAILS, Pipeline, convert};
use crate::eval::{EvalError, EvalOptions, Value};

/// Limits of a LogQL query.
#[derive(Clone, Debug)]
pub struct LogqlLimits {
    /// Largest `limit` a log query may ask for (Loki's `max_entries_limit_per_query`).
    pub max_entries: usize,
    /// Most series a metric query may produce (Loki's `max_query_series`).
    pub max_series: usize,
    /// Most entries a metric query may aggregate.
    pub max_samples: usize,
    pub eval: EvalOptions,
}

impl Default for LogqlLimits {
    fn default() -> Self {
        LogqlLimits {
            max_entries: 5000,
            max_series: 500,
            max_samples: 50_000_000,
            eval: EvalOptions::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LogqlError {
    #[error("{0}")]
    BadData(String),
    #[error("{0}")]
    Execution(String),
    #[error("query timed out")]
    Timeout,
    #[error("log store: {0}")]
    Store(String),
}

impl From<EvalError> for LogqlError {
    fn from(e: EvalError) -> Self {
        match e {
            EvalError::BadData(m) => LogqlError::BadData(m),
            EvalError::Execution(m) => LogqlError::Execution(m),
            EvalError::Timeout(_) => LogqlError::Timeout,
            EvalError::Read(r) => LogqlError::Execution(r.to_string()),
        }
    }
}

/// One entry of a log query's answer.
#[derive(Clone, Debug)]
pub struct OutEntry {
    pub ts: i64,
    pub line: String,
    pub metadata: Vec<(String, String)>,
    /// Labels the pipeline added (parsed), for categorized answers.
    pub parsed: Vec<(String, String)>,
}

/// A stream of a log query's answer.
#[derive(Clone, Debug)]
pub struct OutStream {
    pub labels: BTreeMap<String, String>,
    pub entries: Vec<OutEntry>,
}

/// Counters for the answer's `stats`.
#[derive(Clone, Debug, Default)]
pub struct LogqlStats {
    pub lines_processed: u64,
    pub bytes_processed: u64,
    pub entries_returned: u64,
    pub exec_seconds: f64,
}

/// Runs a log query over `[start, end)` (ns).
///
/// With `categorize`, streams are keyed by their own labels only, and structured metadata and parsed
/// labels travel with each entry (Loki's `categorize-labels` encoding).
#[allow(clippy::too_many_arguments)]
pub fn logs<R: LogsReader + ?Sized>(
    reader: &R,
    e: &LogExpr,
    start: i64,
    end: i64,
    limit: usize,
    direction: Direction,
    categorize: bool,
    deadline: Instant,
    stats: &mut LogqlStats,
) -> Result<Vec<OutStream>, LogqlError> {
    let p = Pipeline::new(&e.stages).map_err(LogqlError::BadData)?;
    let sel = LogSelect {
        matchers: e.matchers.clone(),
        start,
        end,
        contains: p.required_substrings(),
    };
    let mut streams: Vec<OutStream> = Vec::new();
    let mut index: HashMap<Vec<(String, String)>, usize> = HashMap::new();
    let mut n = 0usize;
    let mut timed_out = false;
    let mut scanned = 0u64;
    let mut bytes = 0u64;
    reader
        .scan(&sel, direction, &mut |row| {
            scanned += 1;
            bytes += row.line.len() as u64;
            if scanned.is_multiple_of(1024) && Instant::now() > deadline {
                timed_out = true;
                return false;
            }
            let (labels, line, parsed) = if p.line_only() {
                if !p.matches_line(&row.line) {
                    return true;
                }
                let mut l: BTreeMap<String, String> = row
                    .labels
                    .iter()
                    .map(|x| (x.name.to_string(), x.value.to_string()))
                    .collect();
                if !categorize {
                    for (k, v) in &row.metadata {
                        l.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                }
                (l, row.line.to_string(), Vec::new())
            } else {
                let Some(out) = p.process(&row.labels, &row.metadata, row.ts, &row.line) else {
                    return true;
                };
                if categorize {
                    let own: BTreeMap<String, String> = row
                        .labels
                        .iter()
                        .map(|x| (x.name.to_string(), x.value.to_string()))
                        .collect();
                    let parsed = out
                        .labels
                        .iter()
                        .filter(|(k, _)| {
                            !own.contains_key(*k) && !row.metadata.iter().any(|(m, _)| m == *k)
                        })
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    (own, out.line, parsed)
                } else {
                    (out.labels, out.line, Vec::new())
                }
            };
            let key: Vec<(String, String)> =
                labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            let i = *index.entry(key).or_insert_with(|| {
                streams.push(OutStream {
                    labels,
                    entries: Vec::new(),
                });
                streams.len() - 1
            });
            streams[i].entries.push(OutEntry {
                ts: row.ts,
                line,
                metadata: if categorize {
                    row.metadata.clone()
                } else {
                    Vec::new()
                },
                parsed,
            });
            n += 1;
            n < limit
        })
        .map_err(|e| LogqlError::Store(e.to_string()))?;
    stats.lines_processed += scanned;
    stats.bytes_processed += bytes;
    stats.entries_returned += n as u64;
    if timed_out {
        return Err(LogqlError::Timeout);
    }
    Ok(streams)
}

/// Per output series, the value at each step (or none).
pub type StepValues = Vec<(Labels, Vec<Option<f64>>)>;

/// Output series of a range aggregation: labels and samples, found by their label pairs.
#[derive(Default)]
struct SeriesSet {
    index: HashMap<Vec<(String, String)>, usize>,
    list: Vec<(BTreeMap<String, String>, Samples)>,
    /// When set, samples are added up per bucket of this grid instead of kept one by one.
    grid: Option<Grid>,
}

/// The step grid of a range aggregation whose windows are unions of whole steps: bucket `j` holds
/// the entries in `(base + j*step, base + (j+1)*step]`, and the window of step `k` is buckets
/// `k .. k + per_window`. Counting and byte sums add up per bucket, so they need neither the
/// entries kept nor sorted (a day of 28 M lines is 28 M samples otherwise).
#[derive(Clone, Copy)]
struct Grid {
    base: i64,
    step: i64,
    per_window: usize,
    len: usize,
}

impl Grid {
    /// The grid of `agg` over `steps`, when its op adds up whole numbers (count, rate, bytes, bytes
    /// rate, without unwrap), the steps are evenly spaced and the range is a whole number of steps.
    fn new(agg: &RangeAgg, steps: &[i64], range: i64, offset: i64) -> Option<Grid> {
        let adds_up = matches!(
            agg.op,
            RangeOp::CountOverTime | RangeOp::Rate | RangeOp::BytesOverTime | RangeOp::BytesRate
        );
        if !adds_up || agg.unwrap.is_some() || range <= 0 {
            return None;
        }
        let first = *steps.first()?;
        let step = if steps.len() > 1 {
            steps[1] - first
        } else {
            range
        };
        if step <= 0 || range % step != 0 || steps.windows(2).any(|w| w[1] - w[0] != step) {
            return None;
        }
        let per_window = usize::try_from(range / step).ok()?;
        let len = (steps.len() - 1).checked_add(per_window)?;
        // A grid far larger than the steps (a long range over few steps) would cost more than
        // keeping the entries.
        if len > (1 << 24) {
            return None;
        }
        Some(Grid {
            base: first - offset - range,
            step,
            per_window,
            len,
        })
    }

    fn bucket(&self, ts: i64) -> Option<usize> {
        let j = (ts - self.base - 1).div_euclid(self.step);
        usize::try_from(j).ok().filter(|&j| j < self.len)
    }
}

impl SeriesSet {
    /// The index of the series named `labels`, added when new.
    fn slot(&mut self, labels: BTreeMap<String, String>) -> usize {
        let key: Vec<(String, String)> =
            labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let grid = self.grid;
        *self.index.entry(key).or_insert_with(|| {
            let samples = match grid {
                Some(_) => Samples::Buckets(Vec::new()),
                None => Samples::Points {
                    ts: Vec::new(),
                    vals: Vec::new(),
                },
            };
            self.list.push((labels, samples));
            self.list.len() - 1
        })
    }

    fn push(&mut self, i: usize, ts: i64, v: f64) {
        match &mut self.list[i].1 {
            Samples::Points { ts: t, vals } => {
                t.push(ts);
                vals.push(v);
            }
            Samples::Buckets(runs) => {
                let Some(j) = self.grid.and_then(|g| g.bucket(ts)) else {
                    return;
                };
                // Whole numbers: 1 or a line's length (see `Grid::new`).
                let v = v as u64;
                match runs.last_mut() {
                    Some(last) if last.0 == j => {
                        last.1 += 1;
                        last.2 += v;
                    }
                    _ => runs.push((j, 1, v)),
                }
            }
        }
    }
}

/// Samples of one output series of a range aggregation.
enum Samples {
    /// Every entry's time (ns) and value.
    Points { ts: Vec<i64>, vals: Vec<f64> },
    /// Runs of entries in one bucket of the series set's [`Grid`]: (bucket, entries, sum of their
    /// values). Entries come in time order per stream, so a run covers many of them; buckets are
    /// made dense only when the series' values are computed.
    Buckets(Vec<(usize, u64, u64)>),
}

fn pipeline_error(labels: &BTreeMap<String, String>) -> LogqlError {
    let err = labels.get(ERROR).cloned().unwrap_or_default();
    let shown: BTreeMap<&String, &String> = labels
        .iter()
        .filter(|(k, _)| k.as_str() != ERROR_DETAILS)
        .collect();
    LogqlError::Execution(format!(
        "pipeline error: '{err}' for series: '{shown:?}'. Use a label filter to intentionally skip this error. (e.g | __error__!=\"{err}\"). To skip all potential errors you can match empty errors.(e.g __error__=\"\") The label filter can also be specified after unwrap. (e.g | unwrap latency | __error__=\"\" )"
    ))
}

fn group(labels: BTreeMap<String, String>, agg: &RangeAgg) -> BTreeMap<String, String> {
    let unwrapped = agg.unwrap.as_ref().map(|u| u.label.as_str());
    match &agg.grouping {
        Some(Grouping::By(names)) => labels
            .into_iter()
            .filter(|(k, _)| names.iter().any(|n| n == k))
            .collect(),
        Some(Grouping::Without(names)) => labels
            .into_iter()
            .filter(|(k, _)| !names.iter().any(|n| n == k) && Some(k.as_str()) != unwrapped)
            .collect(),
        None => labels
            .into_iter()
            .filter(|(k, _)| Some(k.as_str()) != unwrapped)
            .collect(),
    }
}

/// Computes a range aggregation at each step (ns): per output series, the value at each step (or none).
pub fn range_agg<R: LogsReader + ?Sized>(
    reader: &R,
    agg: &RangeAgg,
    steps: &[i64],
    limits: &LogqlLimits,
    deadline: Instant,
    stats: &mut LogqlStats,
) -> Result<StepValues, LogqlError> {
    let (Some(&first), Some(&last)) = (steps.first(), steps.last()) else {
        return Ok(Vec::new());
    };
    let range = agg.range.as_nanos() as i64;
    let offset = agg.offset.as_nanos() as i64;
    let p = Pipeline::new(&agg.log.stages).map_err(LogqlError::BadData)?;
    let sel = LogSelect {
        matchers: agg.log.matchers.clone(),
        start: first - offset - range + 1,
        end: last - offset + 1,
        contains: p.required_substrings(),
    };
    // Filters the store answers exactly need no line here.
    let need_line = !p.fully_pushed() || agg.unwrap.is_some();
    let bytes_op = matches!(agg.op, RangeOp::BytesOverTime | RangeOp::BytesRate);
    let mut series = SeriesSet {
        grid: Grid::new(agg, steps, range, offset),
        ..SeriesSet::default()
    };
    // Series of entries read without their line, by stream fingerprint.
    let mut by_stream: HashMap<u64, usize> = HashMap::new();
    let mut last: Option<(*const Labels, usize)> = None;
    let mut error: Option<LogqlError> = None;
    let mut count = 0usize;
    let mut scanned = 0u64;
    let mut bytes = 0u64;
    reader
        .scan_all(&sel, need_line, &mut |labels, ts, len, line| {
            if error.is_some() {
                return;
            }
            scanned += 1;
            bytes += len as u64;
            count += 1;
            if count > limits.max_samples {
                error = Some(LogqlError::Execution(format!(
                    "the query would aggregate more than {} log entries; narrow the selector, add line filters or shorten the range",
                    limits.max_samples
                )));
                return;
            }
            if count.is_multiple_of(4096) && Instant::now() > deadline {
                error = Some(LogqlError::Timeout);
                return;
            }
            let (out_labels, value) = match line {
                Some((line, meta)) if need_line => {
                    let Some(out) = p.process(labels, meta, ts, line) else {
                        return;
                    };
                    let mut l = out.labels;
                    let v = match &agg.unwrap {
                        Some(u) => {
                            let raw = l.get(&u.label).cloned().unwrap_or_default();
                            let v = if raw.is_empty() {
                                None
                            } else {
                                convert(&raw, u.conversion)
                            };
                            if v.is_none() && !l.contains_key(ERROR) {
                                l.insert(ERROR.into(), "SampleExtractionErr".into());
                                l.insert(
                                    ERROR_DETAILS.into(),
                                    format!("cannot convert {}={raw:?}", u.label),
                                );
                            }
                            for f in &u.post_filters {
                                if !super::pipeline::eval_filter(f, &mut l) {
                                    return;
                                }
                            }
                            v.unwrap_or(0.0)
                        }
                        None if bytes_op => line.len() as f64,
                        None => 1.0,
                    };
                    if l.contains_key(ERROR) {
                        error = Some(pipeline_error(&l));
                        return;
                    }
                    (group(l, agg), v)
                }
                _ => {
                    let v = if bytes_op { len as f64 } else { 1.0 };
                    // Without a line the series depends on the stream alone. Entries of one
                    // stream come in runs (a split yields a stream's entries together, with the
                    // same `Labels`): the run's series is found once, not hashed per entry.
                    let ptr: *const Labels = labels;
                    let i = match last {
                        Some((p, i)) if std::ptr::eq(p, ptr) => i,
                        _ => {
                            let fp = labels.stable_hash();
                            let i = *by_stream.entry(fp).or_insert_with(|| {
                                let l: BTreeMap<String, String> = labels
                                    .iter()
                                    .map(|x| (x.name.to_string(), x.value.to_string()))
                                    .collect();
                                series.slot(group(l, agg))
                            });
                            last = Some((ptr, i));
                            i
                        }
                    };
                    series.push(i, ts, v);
                    return;
                }
            };
            let i = series.slot(out_labels);
            series.push(i, ts, value);
        })
        .map_err(|e| LogqlError::Store(e.to_string()))?;
    stats.lines_processed += scanned;
    stats.bytes_processed += bytes;
    if let Some(e) = error {
        return Err(e);
    }
    let grid = series.grid;
    let series = series.list;
    if agg.op != RangeOp::AbsentOverTime && series.len() > limits.max_series {
        return Err(LogqlError::Execution(format!(
            "maximum of series ({}) reached for a single query; {} series would be returned: aggregate (sum by, topk) or narrow the selector",
            limits.max_series,
            series.len()
        )));
    }
    let range_s = agg.range.as_secs_f64();
    let mut out = Vec::with_capacity(series.len());
    let mut any_at = vec![false; steps.len()];
    for (labels, s) in series {
        let vals = match s {
            Samples::Points { mut ts, mut vals } => {
                // Sort by time: entries arrive in sorted runs (a stream of a split, the head),
                // which a stable sort of (time, value) pairs merges; equal times keep their order.
                if !ts.is_sorted() {
                    let mut pairs: Vec<(i64, f64)> =
                        ts.iter().copied().zip(vals.iter().copied()).collect();
                    pairs.sort_by_key(|p| p.0);
                    ts = pairs.iter().map(|p| p.0).collect();
                    vals = pairs.iter().map(|p| p.1).collect();
                }
                let mut out = Vec::with_capacity(steps.len());
                for (k, &t) in steps.iter().enumerate() {
                    let hi = t - offset;
                    let lo = hi - range;
                    let a = ts.partition_point(|&x| x <= lo);
                    let b = ts.partition_point(|&x| x <= hi);
                    let w = &vals[a..b];
                    if !w.is_empty() {
                        any_at[k] = true;
                    }
                    out.push(over_time(agg, w, &ts[a..b], lo, hi, range_s));
                }
                out
            }
            Samples::Buckets(runs) => {
                let g = grid.expect("bucketed samples exist only with a grid");
                let mut n = vec![0u64; g.len];
                let mut sum = vec![0u64; g.len];
                for (j, c, v) in runs {
                    n[j] += c;
                    sum[j] += v;
                }
                bucket_windows(agg, &n, &sum, g.per_window, range_s, &mut any_at)
            }
        };
        out.push((Labels::from_pairs(labels), vals));
    }
    if agg.op == RangeOp::AbsentOverTime {
        let labels = Labels::from_pairs(
            agg.log
                .matchers
                .iter()
                .filter(|m| m.op == MatchOp::Equal)
                .map(|m| (m.name.clone(), m.value.clone())),
        );
        let vals = any_at.iter().map(|&any| (!any).then_some(1.0)).collect();
        return Ok(vec![(labels, vals)]);
    }
    Ok(out)
}

/// Values at each step from per-bucket entry counts and value sums (see [`Grid`]): the window of
/// step `k` is buckets `k .. k + per_window` (the grid has one bucket per step plus `per_window - 1`),
/// added up through prefix sums.
fn bucket_windows(
    agg: &RangeAgg,
    n: &[u64],
    sum: &[u64],
    per_window: usize,
    range_s: f64,
    any_at: &mut [bool],
) -> Vec<Option<f64>> {
    let prefix = |v: &[u64]| {
        let mut p = Vec::with_capacity(v.len() + 1);
        let mut acc = 0u64;
        p.push(acc);
        for x in v {
            acc += x;
            p.push(acc);
        }
        p
    };
    let (pn, ps) = (prefix(n), prefix(sum));
    any_at
        .iter_mut()
        .enumerate()
        .map(|(k, any)| {
            let b = k + per_window;
            let count = pn[b] - pn[k];
            if count == 0 {
                return None;
            }
            *any = true;
            let total = (ps[b] - ps[k]) as f64;
            Some(match agg.op {
                RangeOp::CountOverTime => count as f64,
                RangeOp::Rate => count as f64 / range_s,
                RangeOp::BytesOverTime => total,
                _ => total / range_s,
            })
        })
        .collect()
}

/// Prometheus's quantile over a set of values.
fn quantile(q: f64, vals: &[f64]) -> f64 {
    if vals.is_empty() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    let mut v = vals.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len() as f64;
    let rank = q * (n - 1.0);
    let lo = rank.floor().max(0.0);
    let hi = rank.ceil().min(n - 1.0);
    let w = rank - lo;
    v[lo as usize] * (1.0 - w) + v[hi as usize] * w
}

fn over_time(agg: &RangeAgg, w: &[f64], ts: &[i64], lo: i64, hi: i64, range_s: f64) -> Option<f64> {
    if w.is_empty() {
        return None;
    }
    let n = w.len() as f64;
    let sum: f64 = w.iter().sum();
    Some(match agg.op {
        RangeOp::CountOverTime => n,
        RangeOp::Rate if agg.unwrap.is_none() => n / range_s,
        RangeOp::Rate => sum / range_s,
        RangeOp::BytesOverTime | RangeOp::SumOverTime => sum,
        RangeOp::BytesRate => sum / range_s,
        RangeOp::AbsentOverTime => return None,
        RangeOp::AvgOverTime => sum / n,
        RangeOp::MinOverTime => w.iter().copied().fold(f64::INFINITY, f64::min),
        RangeOp::MaxOverTime => w.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        RangeOp::StdvarOverTime | RangeOp::StddevOverTime => {
            let mean = sum / n;
            let var = w.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
            if agg.op == RangeOp::StddevOverTime {
                var.sqrt()
            } else {
                var
            }
        }
        RangeOp::QuantileOverTime => quantile(agg.param.unwrap_or(0.5), w),
        RangeOp::FirstOverTime => w[0],
        RangeOp::LastOverTime => w[w.len() - 1],
        RangeOp::RateCounter => {
            if w.len() < 2 {
                return None;
            }
            // Prometheus's extrapolated counter rate.
            let mut result = w[w.len() - 1] - w[0];
            let mut prev = w[0];
            for &x in &w[1..] {
                if x < prev {
                    result += prev;
                }
                prev = x;
            }
            let first_t = ts[0] as f64 / 1e9;
            let last_t = ts[ts.len() - 1] as f64 / 1e9;
            let mut to_start = first_t - lo as f64 / 1e9;
            let to_end = hi as f64 / 1e9 - last_t;
            let sampled = last_t - first_t;
            if sampled <= 0.0 {
                return None;
            }
            let avg = sampled / (n - 1.0);
            if result > 0.0 && w[0] >= 0.0 {
                let to_zero = sampled * (w[0] / result);
                if to_zero < to_start {
                    to_start = to_zero;
                }
            }
            let threshold = avg * 1.1;
            let mut interval = sampled;
            interval += if to_start < threshold {
                to_start
            } else {
                avg / 2.0
            };
            interval += if to_end < threshold {
                to_end
            } else {
                avg / 2.0
            };
            result * (interval / sampled) / range_s
        }
    })
}

/// The range aggregations of a metric query, served to the PromQL engine as series named by their
/// placeholders, with a value at each step where the aggregation has one and a staleness marker
/// elsewhere (so the engine's lookback never carries a value into a step without one).
pub struct Synthetic {
    series: Vec<(Labels, Vec<i64>, Vec<f64>)>,
}

impl Synthetic {
    pub fn new(aggs: Vec<StepValues>, steps_ms: &[i64]) -> Synthetic {
        let mut series = Vec::new();
        for (i, out) in aggs.into_iter().enumerate() {
            let name = placeholder(i);
            for (labels, vals) in out {
                let mut b = labels.to_builder();
                b.set(vigil_model::METRIC_NAME, name.clone());
                let mut ts = Vec::with_capacity(vals.len());
                let mut vs = Vec::with_capacity(vals.len());
                for (k, v) in vals.iter().enumerate() {
                    ts.push(steps_ms[k]);
                    vs.push(v.unwrap_or_else(stale_nan));
                }
                series.push((b.build(), ts, vs));
            }
        }
        Synthetic { series }
    }
}

impl MetricsReader for Synthetic {
    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        _max_samples: usize,
    ) -> impl Future<Output = Result<Vec<SeriesData>, ReadError>> + Send {
        let out: Vec<SeriesData> = self
            .series
            .iter()
            .filter(|(l, _, _)| {
                matchers
                    .iter()
                    .all(|m| m.matches(l.get(&m.name).unwrap_or("")))
            })
            .map(|(l, ts, vs)| {
                let (t, v): (Vec<i64>, Vec<f64>) = ts
                    .iter()
                    .zip(vs)
                    .filter(|(t, _)| **t >= mint && **t <= maxt)
                    .map(|(t, v)| (*t, *v))
                    .unzip();
                SeriesData {
                    labels: l.clone(),
                    timestamps: Int64Array::from(t),
                    values: Float64Array::from(v),
                }
            })
            .collect();
        async move { Ok(out) }
    }

    async fn series(
        &self,
        _m: &[Vec<Matcher>],
        _mint: i64,
        _maxt: i64,
        _limit: usize,
    ) -> Result<Vec<Labels>, ReadError> {
        Ok(Vec::new())
    }

    async fn label_names(
        &self,
        _m: &[Vec<Matcher>],
        _mint: i64,
        _maxt: i64,
        _limit: usize,
    ) -> Result<Vec<String>, ReadError> {
        Ok(Vec::new())
    }

    async fn label_values(
        &self,
        _name: &str,
        _m: &[Vec<Matcher>],
        _mint: i64,
        _maxt: i64,
        _limit: usize,
    ) -> Result<Vec<String>, ReadError> {
        Ok(Vec::new())
    }

    async fn exemplars(
        &self,
        _m: &[Vec<Matcher>],
        _mint: i64,
        _maxt: i64,
    ) -> Result<Vec<(Labels, Vec<Exemplar>)>, ReadError> {
        Ok(Vec::new())
    }
}

/// Removes the placeholder metric names from an answer.
pub fn strip_placeholders(v: Value) -> Value {
    let strip = |l: Labels| -> Labels {
        if l.metric_name()
            .is_some_and(|n| n.starts_with(PLACEHOLDER_PREFIX))
        {
            l.without_metric_name()
        } else {
            l
        }
    };
    match v {
        Value::Vector(v) => {
            Value::Vector(v.into_iter().map(|(l, t, x)| (strip(l), t, x)).collect())
        }
        Value::Matrix(m) => Value::Matrix(m.into_iter().map(|(l, p)| (strip(l), p)).collect()),
        other => other,
    }
}

/// Runs a metric query at the steps `start, start + step, … ≤ end` (ns); `instant` answers a vector.
#[allow(clippy::too_many_arguments)]
pub async fn metric<R: LogsReader + ?Sized + 'static>(
    reader: std::sync::Arc<R>,
    promql: promql_parser::parser::Expr,
    aggs: Vec<RangeAgg>,
    start: i64,
    end: i64,
    step: i64,
    instant: bool,
    limits: &LogqlLimits,
) -> Result<(Value, LogqlStats), LogqlError> {
    let t0 = Instant::now();
    let step = step.max(1_000_000);
    if end < start {
        return Err(LogqlError::BadData(
            "end timestamp must not be before start time".into(),
        ));
    }
    let mut steps = Vec::new();
    let mut t = start;
    while t <= end {
        steps.push(t);
        if steps.len() > 11_000 {
            return Err(LogqlError::BadData(
                "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)".into(),
            ));
        }
        t += step;
    }
    let deadline = Instant::now() + limits.eval.timeout;
    let steps_for = steps.clone();
    let lim = limits.clone();
    let (computed, mut stats) = tokio::task::spawn_blocking(move || {
        let mut stats = LogqlStats::default();
        let mut out = Vec::with_capacity(aggs.len());
        for a in &aggs {
            out.push(range_agg(
                &*reader, a, &steps_for, &lim, deadline, &mut stats,
            )?);
        }
        Ok::<_, LogqlError>((out, stats))
    })
    .await
    .map_err(|e| LogqlError::Execution(format!("query evaluation failed: {e}")))??;
    // The PromQL engine works in milliseconds.
    let steps_ms: Vec<i64> = steps.iter().map(|t| t.div_euclid(1_000_000)).collect();
    let syn = Synthetic::new(computed, &steps_ms);
    let (s, e) = (steps_ms[0], *steps_ms.last().unwrap_or(&steps_ms[0]));
    let v = if instant {
        crate::eval::instant(&syn, promql, s, &limits.eval).await?.0
    } else {
        crate::eval::range(&syn, promql, s, e, step / 1_000_000, &limits.eval)
            .await?
            .0
    };
    stats.exec_seconds = t0.elapsed().as_secs_f64();
    Ok((strip_placeholders(v), stats))
}
