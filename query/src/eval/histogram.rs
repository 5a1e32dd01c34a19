//! `histogram_quantile` over classic buckets, as Prometheus 2.x computes it.

use promql_parser::parser::Expr;
use vigil_model::Labels;

use super::{Ctx, EvalError, Out, Ser, by_step, exec, scalar_arg, vector_arg};

pub(crate) fn histogram_quantile(args: &[&Expr], ctx: &Ctx) -> Result<Out, EvalError> {
    let q = scalar_arg(args.first().ok_or_else(|| exec("missing quantile"))?, ctx)?;
    let sers = vector_arg(args.get(1).ok_or_else(|| exec("missing vector"))?, ctx)?;
    // Per input series: its group (labels without `le` and name) and its upper bound.
    let mut groups: std::collections::HashMap<Labels, usize> = std::collections::HashMap::new();
    let mut group_labels: Vec<Labels> = Vec::new();
    let mut meta: Vec<Option<(usize, f64)>> = Vec::with_capacity(sers.len());
    for s in &sers {
        let Some(le) = s.labels.get("le").and_then(parse_go_float) else {
            meta.push(None);
            continue;
        };
        let mut b = s.labels.to_builder();
        b.del("le").del("__name__");
        let g = b.build();
        let n = groups.len();
        let gi = *groups.entry(g.clone()).or_insert_with(|| {
            group_labels.push(g);
            n
        });
        meta.push(Some((gi, le)));
    }
    let mut out: Vec<Ser> = group_labels
        .into_iter()
        .map(|labels| Ser {
            labels,
            pts: Vec::new(),
        })
        .collect();
    let steps = by_step(&sers, ctx.n);
    let mut buckets: Vec<Vec<(f64, f64)>> = vec![Vec::new(); out.len()];
    for (i, step) in steps.iter().enumerate() {
        for b in buckets.iter_mut() {
            b.clear();
        }
        for &(k, v) in step {
            if let Some((g, le)) = meta[k] {
                buckets[g].push((le, v));
            }
        }
        for (g, b) in buckets.iter_mut().enumerate() {
            if !b.is_empty() {
                out[g].pts.push((i, bucket_quantile(q[i], b)));
            }
        }
    }
    out.retain(|s| !s.pts.is_empty());
    Ok(Out::Vector(out))
}

/// Parses a float as Go's strconv.ParseFloat does for bucket bounds (`+Inf`, `1e3`, `0.5`).
pub(crate) fn parse_go_float(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

/// Prometheus 2.x `bucketQuantile` over `(upper bound, cumulative count)` pairs.
pub(crate) fn bucket_quantile(q: f64, b: &mut [(f64, f64)]) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    b.sort_by(|x, y| x.0.partial_cmp(&y.0).unwrap_or(std::cmp::Ordering::Equal));
    if b.last().is_none_or(|l| l.0 != f64::INFINITY) {
        return f64::NAN;
    }
    // Coalesce equal bounds.
    let mut c: Vec<(f64, f64)> = Vec::with_capacity(b.len());
    for &(le, n) in b.iter() {
        match c.last_mut() {
            Some(last) if last.0 == le => last.1 += n,
            _ => c.push((le, n)),
        }
    }
    // Ensure monotonic counts.
    let mut max = f64::NEG_INFINITY;
    for x in c.iter_mut() {
        if x.1 > max {
            max = x.1;
        } else if x.1 < max {
            x.1 = max;
        }
    }
    if c.len() < 2 {
        return f64::NAN;
    }
    let observations = c[c.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let idx = c[..c.len() - 1].partition_point(|x| x.1 < rank);
    if idx == c.len() - 1 {
        return c[c.len() - 2].0;
    }
    if idx == 0 && c[0].0 <= 0.0 {
        return c[0].0;
    }
    let (mut start, end, mut count) = (0.0, c[idx].0, c[idx].1);
    if idx > 0 {
        start = c[idx - 1].0;
        count -= c[idx - 1].1;
        rank -= c[idx - 1].1;
    }
    start + (end - start) * (rank / count)
}
