//! Planning and loading: the time range every selector needs over the whole expression (offsets,
//! `@`, ranges, subqueries), then each selector's series loaded once, within the sample and series
//! limits.

use std::collections::HashMap;
use std::time::UNIX_EPOCH;

use promql_parser::parser::{AtModifier, Expr, VectorSelector};
use vigil_model::Matcher;
use vigil_storage::{MetricsReader, ReadError};

use super::{
    EvalError, EvalOptions, QueryStats, RawSeries, duration_ms, exec, offset_ms, selector_matchers,
};

pub(crate) fn key(vs: &VectorSelector) -> usize {
    vs as *const VectorSelector as usize
}

/// Works out the time range each selector needs, for evaluation times in `[lo, hi]`.
pub(crate) fn plan(
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
pub(crate) async fn load<R: MetricsReader>(
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
