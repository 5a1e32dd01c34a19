//! PromQL functions, with the semantics of Prometheus 2.42.

use promql_parser::parser::{Call, Expr};
use regex::Regex;
use vigil_model::{Labels, MatchOp, is_valid_label_name};

use super::histogram::histogram_quantile;
pub(crate) use super::range_fns::quantile;
use super::range_fns::{
    counter_rate, extrapolated, holt_winters, instant_value, linear_regression, over_time,
    variance, windowed_sum,
};
use super::{
    Ctx, EvalError, Out, Ser, by_step, exec, merge_checked, range_arg, scalar_arg, select_instant,
    selector_matchers, string_arg, unwrap_parens, vector_arg,
};

pub(crate) fn call(c: &Call, ctx: &Ctx) -> Result<Out, EvalError> {
    let name = c.func.name;
    let args: Vec<&Expr> = c.args.args.iter().map(|b| b.as_ref()).collect();
    let arg = |i: usize| -> Result<&Expr, EvalError> {
        args.get(i)
            .copied()
            .ok_or_else(|| exec(format!("function {name}: missing argument {}", i + 1)))
    };
    match name {
        "time" => Ok(Out::Scalar(
            (0..ctx.n).map(|i| ctx.t(i) as f64 / 1000.0).collect(),
        )),
        "pi" => Ok(Out::Scalar(vec![std::f64::consts::PI; ctx.n])),
        "vector" => {
            let v = scalar_arg(arg(0)?, ctx)?;
            Ok(Out::Vector(vec![Ser {
                labels: Labels::empty(),
                pts: v.into_iter().enumerate().collect(),
            }]))
        }
        "scalar" => {
            let sers = vector_arg(arg(0)?, ctx)?;
            let steps = by_step(&sers, ctx.n);
            Ok(Out::Scalar(
                steps
                    .iter()
                    .map(|s| if s.len() == 1 { s[0].1 } else { f64::NAN })
                    .collect(),
            ))
        }
        "abs" => math(&args, ctx, f64::abs),
        "ceil" => math(&args, ctx, f64::ceil),
        "floor" => math(&args, ctx, f64::floor),
        "exp" => math(&args, ctx, f64::exp),
        "sqrt" => math(&args, ctx, f64::sqrt),
        "ln" => math(&args, ctx, f64::ln),
        "log2" => math(&args, ctx, f64::log2),
        "log10" => math(&args, ctx, f64::log10),
        "sin" => math(&args, ctx, f64::sin),
        "cos" => math(&args, ctx, f64::cos),
        "tan" => math(&args, ctx, f64::tan),
        "asin" => math(&args, ctx, f64::asin),
        "acos" => math(&args, ctx, f64::acos),
        "atan" => math(&args, ctx, f64::atan),
        "sinh" => math(&args, ctx, f64::sinh),
        "cosh" => math(&args, ctx, f64::cosh),
        "tanh" => math(&args, ctx, f64::tanh),
        "asinh" => math(&args, ctx, f64::asinh),
        "acosh" => math(&args, ctx, f64::acosh),
        "atanh" => math(&args, ctx, f64::atanh),
        "deg" => math(&args, ctx, |v| v * 180.0 / std::f64::consts::PI),
        "rad" => math(&args, ctx, |v| v * std::f64::consts::PI / 180.0),
        "sgn" => math(&args, ctx, |v| {
            if v > 0.0 {
                1.0
            } else if v < 0.0 {
                -1.0
            } else {
                v
            }
        }),
        "round" => {
            let to = match args.get(1) {
                Some(e) => scalar_arg(e, ctx)?,
                None => vec![1.0; ctx.n],
            };
            map_steps(vector_arg(arg(0)?, ctx)?, true, |i, v| {
                // Prometheus: floor(v / to + 0.5) * to, computed with the inverse for precision.
                let inv = 1.0 / to[i];
                Some((v * inv + 0.5).floor() / inv)
            })
        }
        "clamp" => {
            let (lo, hi) = (scalar_arg(arg(1)?, ctx)?, scalar_arg(arg(2)?, ctx)?);
            map_steps(vector_arg(arg(0)?, ctx)?, true, |i, v| {
                (lo[i] <= hi[i]).then(|| go_max(lo[i], go_min(hi[i], v)))
            })
        }
        "clamp_min" => {
            let lo = scalar_arg(arg(1)?, ctx)?;
            map_steps(vector_arg(arg(0)?, ctx)?, true, |i, v| {
                Some(go_max(lo[i], v))
            })
        }
        "clamp_max" => {
            let hi = scalar_arg(arg(1)?, ctx)?;
            map_steps(vector_arg(arg(0)?, ctx)?, true, |i, v| {
                Some(go_min(hi[i], v))
            })
        }
        "timestamp" => {
            let inner = unwrap_parens(arg(0)?);
            if let Expr::VectorSelector(vs) = inner {
                // The sample's own time, not the evaluation step.
                let out = select_instant(vs, ctx)?
                    .into_iter()
                    .map(|(l, pts)| Ser {
                        labels: l.without_metric_name(),
                        pts: pts
                            .into_iter()
                            .map(|(i, t, _)| (i, t as f64 / 1000.0))
                            .collect(),
                    })
                    .collect();
                Ok(Out::Vector(merge_checked(out)?))
            } else {
                map_steps(vector_arg(inner, ctx)?, true, |i, _| {
                    Some(ctx.t(i) as f64 / 1000.0)
                })
            }
        }
        "day_of_month" => date_fn(&args, ctx, |d| d.day as f64),
        "day_of_week" => date_fn(&args, ctx, |d| d.weekday as f64),
        "day_of_year" => date_fn(&args, ctx, |d| d.yday as f64),
        "days_in_month" => date_fn(&args, ctx, |d| {
            vigil_model::days_in_month(d.year, d.month) as f64
        }),
        "hour" => date_fn(&args, ctx, |d| d.hour as f64),
        "minute" => date_fn(&args, ctx, |d| d.minute as f64),
        "month" => date_fn(&args, ctx, |d| d.month as f64),
        "year" => date_fn(&args, ctx, |d| d.year as f64),
        "sort" | "sort_desc" => {
            let mut sers = vector_arg(arg(0)?, ctx)?;
            if ctx.n == 1 {
                let desc = name == "sort_desc";
                // NaN sorts last either way.
                sers.sort_by(|a, b| {
                    let (x, y) = (
                        a.pts.first().map_or(f64::NAN, |p| p.1),
                        b.pts.first().map_or(f64::NAN, |p| p.1),
                    );
                    match (x.is_nan(), y.is_nan()) {
                        (true, true) => std::cmp::Ordering::Equal,
                        (true, false) => std::cmp::Ordering::Greater,
                        (false, true) => std::cmp::Ordering::Less,
                        _ if desc => y.partial_cmp(&x).unwrap_or(std::cmp::Ordering::Equal),
                        _ => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
                    }
                });
            }
            Ok(Out::Vector(sers))
        }
        "label_replace" => label_replace(&args, ctx),
        "label_join" => label_join(&args, ctx),
        "absent" => {
            let inner = arg(0)?;
            let sers = vector_arg(inner, ctx)?;
            let present = by_step(&sers, ctx.n);
            let labels = absent_labels(unwrap_parens(inner));
            let pts = present
                .iter()
                .enumerate()
                .filter(|(_, s)| s.is_empty())
                .map(|(i, _)| (i, 1.0))
                .collect();
            Ok(Out::Vector(vec![Ser { labels, pts }]))
        }
        "histogram_quantile" => histogram_quantile(&args, ctx),
        "rate" => counter_rate(&args, ctx, name, true),
        "increase" => counter_rate(&args, ctx, name, false),
        "delta" => over_time(&args, ctx, name, |w, r, t| {
            extrapolated(w, r, t, false, false)
        }),
        "irate" => over_time(&args, ctx, name, |w, _, _| instant_value(w, true)),
        "idelta" => over_time(&args, ctx, name, |w, _, _| instant_value(w, false)),
        "deriv" => over_time(&args, ctx, name, |w, _, _| {
            (w.len() >= 2).then(|| linear_regression(w, w[0].0).0)
        }),
        "predict_linear" => {
            let d = scalar_arg(arg(1)?, ctx)?;
            over_time(&args, ctx, name, |w, _, (i, t)| {
                (w.len() >= 2).then(|| {
                    let (slope, intercept) = linear_regression(w, t);
                    slope * d[i] + intercept
                })
            })
        }
        "resets" => over_time(&args, ctx, name, |w, _, _| {
            Some(w.windows(2).filter(|p| p[1].1 < p[0].1).count() as f64)
        }),
        "changes" => over_time(&args, ctx, name, |w, _, _| {
            Some(
                w.windows(2)
                    .filter(|p| !(p[1].1 == p[0].1 || (p[1].1.is_nan() && p[0].1.is_nan())))
                    .count() as f64,
            )
        }),
        "avg_over_time" | "sum_over_time" => windowed_sum(&args, ctx, name),
        "count_over_time" => over_time(&args, ctx, name, |w, _, _| Some(w.len() as f64)),
        "min_over_time" => over_time(&args, ctx, name, |w, _, _| {
            Some(
                w.iter()
                    .skip(1)
                    .fold(w[0].1, |m, p| if p.1 < m || m.is_nan() { p.1 } else { m }),
            )
        }),
        "max_over_time" => over_time(&args, ctx, name, |w, _, _| {
            Some(
                w.iter()
                    .skip(1)
                    .fold(w[0].1, |m, p| if p.1 > m || m.is_nan() { p.1 } else { m }),
            )
        }),
        "last_over_time" => over_time(&args, ctx, name, |w, _, _| w.last().map(|p| p.1)),
        "present_over_time" => over_time(&args, ctx, name, |_, _, _| Some(1.0)),
        "stddev_over_time" => over_time(&args, ctx, name, |w, _, _| Some(variance(w).sqrt())),
        "stdvar_over_time" => over_time(&args, ctx, name, |w, _, _| Some(variance(w))),
        "quantile_over_time" => {
            let q = scalar_arg(arg(0)?, ctx)?;
            let shifted: Vec<&Expr> = args[1..].to_vec();
            over_time(&shifted, ctx, name, |w, _, (i, _)| {
                let mut v: Vec<f64> = w.iter().map(|p| p.1).collect();
                Some(quantile(q[i], &mut v))
            })
        }
        "holt_winters" | "double_exponential_smoothing" => {
            let (sf, tf) = (scalar_arg(arg(1)?, ctx)?, scalar_arg(arg(2)?, ctx)?);
            if let Some(bad) = sf.iter().find(|v| !(**v > 0.0 && **v < 1.0)) {
                return Err(exec(format!(
                    "invalid smoothing factor. Expected: 0 < sf < 1, got: {bad}"
                )));
            }
            if let Some(bad) = tf.iter().find(|v| !(**v > 0.0 && **v < 1.0)) {
                return Err(exec(format!(
                    "invalid trend factor. Expected: 0 < tf < 1, got: {bad}"
                )));
            }
            over_time(&args, ctx, name, |w, _, (i, _)| {
                holt_winters(w, sf[i], tf[i])
            })
        }
        "absent_over_time" => {
            let r = range_arg(arg(0)?, ctx)?;
            let labels = r.selector.map(absent_labels_vs).unwrap_or_default();
            let mut pts = Vec::new();
            for i in 0..ctx.n {
                let t = ctx.t(i);
                if !r.series.iter().any(|s| {
                    let (lo, hi) = r.window(s, t, ctx);
                    lo < hi
                }) {
                    pts.push((i, 1.0));
                }
            }
            Ok(Out::Vector(vec![Ser { labels, pts }]))
        }
        other => Err(exec(format!("function {other}() is not supported"))),
    }
}

/// Go's `math.Max`: NaN wins.
fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// Go's `math.Min`: NaN wins.
fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

/// Applies `f(step, value)` to every point of a vector; `None` drops the point.
fn map_steps(
    sers: Vec<Ser>,
    drop_name: bool,
    f: impl Fn(usize, f64) -> Option<f64>,
) -> Result<Out, EvalError> {
    let out: Vec<Ser> = sers
        .into_iter()
        .map(|s| Ser {
            labels: if drop_name {
                s.labels.without_metric_name()
            } else {
                s.labels
            },
            pts: s
                .pts
                .into_iter()
                .filter_map(|(i, v)| f(i, v).map(|v| (i, v)))
                .collect(),
        })
        .collect();
    Ok(Out::Vector(if drop_name {
        merge_checked(out)?
    } else {
        out
    }))
}

fn math(args: &[&Expr], ctx: &Ctx, f: impl Fn(f64) -> f64) -> Result<Out, EvalError> {
    let e = args.first().ok_or_else(|| exec("missing argument"))?;
    map_steps(vector_arg(e, ctx)?, true, |_, v| Some(f(v)))
}

/// A civil date and time in UTC.
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    weekday: u32,
    yday: u32,
}

fn civil(secs: i64) -> Civil {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = vigil_model::civil_from_days(days);
    let leap = vigil_model::days_in_month(year, 2) == 29;
    const CUM: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let yday = CUM[(month - 1) as usize] + day + u32::from(leap && month > 2);
    Civil {
        year,
        month,
        day,
        hour: (rem / 3600) as u32,
        minute: (rem % 3600 / 60) as u32,
        weekday: (days + 4).rem_euclid(7) as u32,
        yday,
    }
}

/// Date functions take a vector of Unix times (default: `vector(time())`).
fn date_fn(args: &[&Expr], ctx: &Ctx, f: impl Fn(&Civil) -> f64) -> Result<Out, EvalError> {
    let sers = match args.first() {
        Some(e) => vector_arg(e, ctx)?,
        None => vec![Ser {
            labels: Labels::empty(),
            pts: (0..ctx.n).map(|i| (i, ctx.t(i) as f64 / 1000.0)).collect(),
        }],
    };
    map_steps(sers, true, |_, v| {
        if v.is_finite() {
            Some(f(&civil(v as i64)))
        } else {
            Some(f64::NAN)
        }
    })
}

fn label_replace(args: &[&Expr], ctx: &Ctx) -> Result<Out, EvalError> {
    if args.len() != 5 {
        return Err(exec("label_replace takes 5 arguments"));
    }
    let (dst, repl, src, re) = (
        string_arg(args[1])?,
        string_arg(args[2])?,
        string_arg(args[3])?,
        string_arg(args[4])?,
    );
    let re = Regex::new(&format!("^(?s:{re})$")).map_err(|e| {
        EvalError::BadData(format!(
            "invalid regular expression in label_replace(): {re}: {e}"
        ))
    })?;
    if !is_valid_label_name(&dst) {
        return Err(EvalError::BadData(format!(
            "invalid destination label name in label_replace(): {dst}"
        )));
    }
    let sers = vector_arg(args[0], ctx)?;
    let out = sers
        .into_iter()
        .map(|s| {
            let v = s.labels.get(&src).unwrap_or("").to_string();
            let labels = match re.captures(&v) {
                Some(caps) => {
                    let mut res = String::new();
                    caps.expand(&repl, &mut res);
                    // An empty result deletes the label (the builder's `set` does that).
                    let mut b = s.labels.to_builder();
                    b.set(dst.clone(), res);
                    b.build()
                }
                None => s.labels,
            };
            Ser { labels, pts: s.pts }
        })
        .collect();
    Ok(Out::Vector(merge_checked(out)?))
}

fn label_join(args: &[&Expr], ctx: &Ctx) -> Result<Out, EvalError> {
    if args.len() < 3 {
        return Err(exec("label_join takes at least 3 arguments"));
    }
    let (dst, sep) = (string_arg(args[1])?, string_arg(args[2])?);
    let srcs: Vec<String> = args[3..]
        .iter()
        .map(|a| string_arg(a))
        .collect::<Result<_, _>>()?;
    if !is_valid_label_name(&dst) {
        return Err(EvalError::BadData(format!(
            "invalid destination label name in label_join(): {dst}"
        )));
    }
    let sers = vector_arg(args[0], ctx)?;
    let out = sers
        .into_iter()
        .map(|s| {
            let joined = srcs
                .iter()
                .map(|n| s.labels.get(n).unwrap_or(""))
                .collect::<Vec<_>>()
                .join(&sep);
            let mut b = s.labels.to_builder();
            b.set(dst.clone(), joined);
            Ser {
                labels: b.build(),
                pts: s.pts,
            }
        })
        .collect();
    Ok(Out::Vector(merge_checked(out)?))
}

/// Labels of `absent(...)`: the selector's equality matchers, other than the metric name.
fn absent_labels(e: &Expr) -> Labels {
    match e {
        Expr::VectorSelector(vs) => absent_labels_vs(vs),
        _ => Labels::empty(),
    }
}

fn absent_labels_vs(vs: &promql_parser::parser::VectorSelector) -> Labels {
    let Ok(ms) = selector_matchers(vs) else {
        return Labels::empty();
    };
    let mut b = Labels::empty().to_builder();
    let mut seen = std::collections::HashSet::new();
    for m in ms.iter().filter(|m| m.name != "__name__") {
        if m.op == MatchOp::Equal && seen.insert(m.name.clone()) {
            b.set(m.name.clone(), m.value.clone());
        } else {
            b.del(&m.name);
        }
    }
    b.build()
}

#[cfg(test)]
mod tests {
    use super::super::histogram::bucket_quantile;
    use super::*;

    #[test]
    fn civil_dates() {
        let d = civil(1_700_000_000); // 2023-11-14T22:13:20Z, a Tuesday
        assert_eq!(
            (d.year, d.month, d.day, d.hour, d.minute, d.weekday, d.yday),
            (2023, 11, 14, 22, 13, 2, 318)
        );
        assert_eq!(civil(0).weekday, 4);
    }

    #[test]
    fn bucket_quantiles() {
        let mut b = vec![(0.1, 2.0), (1.0, 5.0), (f64::INFINITY, 6.0)];
        assert!((bucket_quantile(0.5, &mut b) - 0.4).abs() < 1e-12);
        assert_eq!(bucket_quantile(0.99, &mut b), 1.0);
        assert!(bucket_quantile(0.5, &mut [(1.0, 1.0)]).is_nan());
    }

    #[test]
    fn quantiles_interpolate() {
        assert_eq!(quantile(0.5, &mut [3.0, 1.0, 2.0, 4.0]), 2.5);
        assert_eq!(quantile(2.0, &mut [1.0]), f64::INFINITY);
    }
}
