//! Selecting samples for evaluation: instant vectors at every step (lookback, staleness), and
//! range-vector arguments (range selectors and subqueries) with their per-step windows.

use promql_parser::parser::{Expr, VectorSelector};
use vigil_model::{Labels, is_stale_nan};

use super::*;

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
                        .map(|s| {
                            // Sized up front: the filter hides the length from `collect`, which
                            // would otherwise grow a day of points by repeated reallocation.
                            let mut pts = Vec::with_capacity(s.ts.len());
                            pts.extend(
                                s.ts.iter()
                                    .zip(s.vs.iter())
                                    .filter(|(_, v)| !is_stale_nan(**v))
                                    .map(|(t, v)| (*t, *v)),
                            );
                            RangeSeries {
                                labels: s.labels.clone(),
                                pts,
                            }
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
