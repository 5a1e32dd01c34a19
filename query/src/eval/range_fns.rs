//! Range-vector functions (`rate`, `*_over_time`, `deriv`, `holt_winters`, …) and their numerics,
//! with Prometheus 2.42's semantics and per-series prefix sums where windows overlap.

use promql_parser::parser::Expr;

use super::{Ctx, EvalError, Out, RangeArg, Ser, exec, merge_checked, range_arg};

/// Evaluates a range function: `f(window, arg, (step, eval time))` per series and step, where the
/// window holds the series' samples in the step's range. Names are dropped except by `last_over_time`.
pub(crate) fn over_time(
    args: &[&Expr],
    ctx: &Ctx,
    name: &str,
    f: impl Fn(&[(i64, f64)], &RangeArg, (usize, i64)) -> Option<f64>,
) -> Result<Out, EvalError> {
    let e = args
        .first()
        .ok_or_else(|| exec(format!("function {name}: missing range argument")))?;
    let r = range_arg(e, ctx)?;
    let keep_name = name == "last_over_time";
    let mut out = Vec::with_capacity(r.series.len());
    for s in &r.series {
        ctx.check()?;
        let mut pts = Vec::new();
        r.for_each_window(s, ctx, |i, t, lo, hi| {
            if let Some(v) = f(&s.pts[lo..hi], &r, (i, t)) {
                pts.push((i, v));
            }
        });
        ctx.charge(pts.len())?;
        if !pts.is_empty() {
            let labels = if keep_name {
                s.labels.clone()
            } else {
                s.labels.without_metric_name()
            };
            out.push(Ser { labels, pts });
        }
    }
    Ok(Out::Vector(merge_checked(out)?))
}

/// `sum_over_time` and `avg_over_time`. Windows of consecutive steps overlap, so for a series of finite
/// values the window sums come from prefix sums kept in double-double precision (error far below the
/// 1e-12 relative level), one pass per series instead of one per step; series with NaN or ±Inf take the
/// exact per-window path, whose special-value rules prefix sums cannot follow.
pub(crate) fn windowed_sum(args: &[&Expr], ctx: &Ctx, name: &str) -> Result<Out, EvalError> {
    let e = args
        .first()
        .ok_or_else(|| exec(format!("function {name}: missing range argument")))?;
    let r = range_arg(e, ctx)?;
    let average = name == "avg_over_time";
    let mut out = Vec::with_capacity(r.series.len());
    // Prefix sums (double-double) of the finite values, and prefix counts of the others.
    let (mut hi, mut lo, mut bad): (Vec<f64>, Vec<f64>, Vec<u32>) =
        (Vec::new(), Vec::new(), Vec::new());
    for s in &r.series {
        ctx.check()?;
        hi.clear();
        lo.clear();
        bad.clear();
        hi.push(0.0);
        lo.push(0.0);
        bad.push(0);
        let (mut h, mut l, mut nb) = (0.0f64, 0.0f64, 0u32);
        for p in &s.pts {
            if p.1.is_finite() {
                // TwoSum: h + l holds the running sum to ~106 bits.
                let t = h + p.1;
                let bp = t - h;
                l += (h - (t - bp)) + (p.1 - bp);
                h = t;
            } else {
                nb += 1;
            }
            hi.push(h);
            lo.push(l);
            bad.push(nb);
        }
        let mut pts = Vec::new();
        r.for_each_window(s, ctx, |i, _, a, b| {
            // The prefix path needs finite values in the window and finite prefix sums: a running
            // sum that overflowed (values near 1e308) would make Inf - Inf a NaN, where Prometheus
            // answers ±Inf (sum) or the finite mean (avg).
            let sum = (bad[b] == bad[a])
                .then(|| (hi[b] - hi[a]) + (lo[b] - lo[a]))
                .filter(|s| s.is_finite());
            let v = match sum {
                Some(sum) if average => sum / (b - a) as f64,
                Some(sum) => sum,
                None if average => avg(&s.pts[a..b]),
                None => kahan(s.pts[a..b].iter().map(|p| p.1)),
            };
            pts.push((i, v));
        });
        ctx.charge(pts.len())?;
        if !pts.is_empty() {
            out.push(Ser {
                labels: s.labels.without_metric_name(),
                pts,
            });
        }
    }
    Ok(Out::Vector(merge_checked(out)?))
}

/// `rate`, `increase` and `delta` with Prometheus 2.x extrapolation.
pub(crate) fn extrapolated(
    w: &[(i64, f64)],
    r: &RangeArg,
    t: (usize, i64),
    counter: bool,
    per_second: bool,
) -> Option<f64> {
    extrapolated_with(w, r, t, counter, per_second, None)
}

/// `rate` and `increase`: counter resets are summed once per series into prefix sums, so each step's
/// correction is one subtraction (exactly 0 for windows without resets, as the per-window loop gives);
/// series whose corrections are not all finite use the loop.
pub(crate) fn counter_rate(
    args: &[&Expr],
    ctx: &Ctx,
    name: &str,
    per_second: bool,
) -> Result<Out, EvalError> {
    let e = args
        .first()
        .ok_or_else(|| exec(format!("function {name}: missing range argument")))?;
    let r = range_arg(e, ctx)?;
    let mut out = Vec::with_capacity(r.series.len());
    let mut resets: Vec<f64> = Vec::new();
    for s in &r.series {
        ctx.check()?;
        resets.clear();
        resets.push(0.0);
        let mut acc = 0.0f64;
        for k in 1..s.pts.len() {
            let prev = s.pts[k - 1].1;
            if s.pts[k].1 < prev {
                acc += prev;
            }
            resets.push(acc);
        }
        let prefix_ok = acc.is_finite();
        let mut pts = Vec::new();
        r.for_each_window(s, ctx, |i, t, a, b| {
            let corr = prefix_ok.then(|| resets[b - 1] - resets[a]);
            if let Some(v) = extrapolated_with(&s.pts[a..b], &r, (i, t), true, per_second, corr) {
                pts.push((i, v));
            }
        });
        ctx.charge(pts.len())?;
        if !pts.is_empty() {
            out.push(Ser {
                labels: s.labels.without_metric_name(),
                pts,
            });
        }
    }
    Ok(Out::Vector(merge_checked(out)?))
}

/// `rate`, `increase` and `delta`; `correction` is the counter-reset correction when already known.
pub(crate) fn extrapolated_with(
    w: &[(i64, f64)],
    r: &RangeArg,
    (_, t): (usize, i64),
    counter: bool,
    per_second: bool,
    correction: Option<f64>,
) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let (range_start, range_end) = r.bounds(t);
    let (first, last) = (w[0], w[w.len() - 1]);
    let mut result = last.1 - first.1;
    if let (true, Some(c)) = (counter, correction) {
        result += c;
    } else if counter {
        let mut prev = first.1;
        for p in &w[1..] {
            if p.1 < prev {
                result += prev;
            }
            prev = p.1;
        }
    }
    let mut to_start = (first.0 - range_start) as f64 / 1000.0;
    let to_end = (range_end - last.0) as f64 / 1000.0;
    let sampled = (last.0 - first.0) as f64 / 1000.0;
    let avg_step = sampled / (w.len() - 1) as f64;
    if counter && result > 0.0 && first.1 >= 0.0 {
        let to_zero = sampled * (first.1 / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    let threshold = avg_step * 1.1;
    let mut interval = sampled;
    interval += if to_start < threshold {
        to_start
    } else {
        avg_step / 2.0
    };
    interval += if to_end < threshold {
        to_end
    } else {
        avg_step / 2.0
    };
    let mut factor = interval / sampled;
    if per_second {
        factor /= r.range as f64 / 1000.0;
    }
    Some(result * factor)
}

/// `irate` and `idelta`: from the last two samples.
pub(crate) fn instant_value(w: &[(i64, f64)], rate: bool) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let (prev, last) = (w[w.len() - 2], w[w.len() - 1]);
    let mut v = if rate && last.1 < prev.1 {
        last.1
    } else {
        last.1 - prev.1
    };
    let dt = last.0 - prev.0;
    if dt == 0 {
        return None;
    }
    if rate {
        v /= dt as f64 / 1000.0;
    }
    Some(v)
}

pub(crate) fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

pub(crate) fn kahan(vals: impl Iterator<Item = f64>) -> f64 {
    let (mut s, mut c) = (0.0, 0.0);
    for v in vals {
        (s, c) = kahan_inc(v, s, c);
    }
    s + c
}

/// Least-squares slope and intercept, x in seconds relative to `intercept_time`.
pub(crate) fn linear_regression(w: &[(i64, f64)], intercept_time: i64) -> (f64, f64) {
    let (mut n, mut sx, mut cx, mut sy, mut cy, mut sxy, mut cxy, mut sx2, mut cx2) =
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    let init = w[0].1;
    let mut const_y = true;
    for (k, &(t, v)) in w.iter().enumerate() {
        if const_y && k > 0 && v != init {
            const_y = false;
        }
        n += 1.0;
        let x = (t - intercept_time) as f64 / 1e3;
        (sx, cx) = kahan_inc(x, sx, cx);
        (sy, cy) = kahan_inc(v, sy, cy);
        (sxy, cxy) = kahan_inc(x * v, sxy, cxy);
        (sx2, cx2) = kahan_inc(x * x, sx2, cx2);
    }
    if const_y {
        if init.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init);
    }
    let (sx, sy, sxy, sx2) = (sx + cx, sy + cy, sxy + cxy, sx2 + cx2);
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    (slope, sy / n - slope * sx / n)
}

pub(crate) fn avg(w: &[(i64, f64)]) -> f64 {
    let (mut mean, mut count, mut c) = (0.0f64, 0.0f64, 0.0f64);
    for &(_, v) in w {
        count += 1.0;
        if mean.is_infinite() {
            if v.is_infinite() && (mean > 0.0) == (v > 0.0) {
                continue;
            }
            if !v.is_infinite() && !v.is_nan() {
                continue;
            }
        }
        (mean, c) = kahan_inc(v / count - mean / count, mean, c);
    }
    if mean.is_infinite() { mean } else { mean + c }
}

pub(crate) fn variance(w: &[(i64, f64)]) -> f64 {
    let (mut count, mut mean, mut cmean, mut aux, mut caux) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &(_, v) in w {
        count += 1.0;
        let delta = v - (mean + cmean);
        (mean, cmean) = kahan_inc(delta / count, mean, cmean);
        (aux, caux) = kahan_inc(delta * (v - (mean + cmean)), aux, caux);
    }
    (aux + caux) / count
}

/// Prometheus's `quantile`: linear interpolation between closest ranks; NaN sorts first.
pub(crate) fn quantile(q: f64, v: &mut [f64]) -> f64 {
    if v.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    v.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal),
    });
    let n = v.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    v[lower as usize] * (1.0 - weight) + v[upper as usize] * weight
}

pub(crate) fn holt_winters(w: &[(i64, f64)], sf: f64, tf: f64) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let (mut s0, mut s1) = (0.0, w[0].1);
    let mut b = w[1].1 - w[0].1;
    for (i, p) in w.iter().enumerate().skip(1) {
        let x = sf * p.1;
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let y = (1.0 - sf) * (s1 + b);
        s0 = s1;
        s1 = x + y;
    }
    Some(s1)
}
