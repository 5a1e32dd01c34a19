//! Aggregation operators (`sum`, `avg`, `topk`, `count_values`, …) with `by` and `without`.

use std::collections::HashMap;

use promql_parser::parser::{AggregateExpr, LabelModifier};
use vigil_model::{Labels, is_valid_label_name};

use super::{Ctx, EvalError, Out, Ser, by_step, exec, functions::quantile, string_arg};

/// The labels an aggregation groups a series by.
fn group_labels(l: &Labels, m: &Option<LabelModifier>) -> Labels {
    match m {
        None => Labels::empty(),
        Some(LabelModifier::Include(keep)) => {
            let mut b = Labels::empty().to_builder();
            for n in &keep.labels {
                if let Some(v) = l.get(n) {
                    b.set(n.clone(), v.to_string());
                }
            }
            b.build()
        }
        Some(LabelModifier::Exclude(drop)) => {
            let mut b = l.to_builder();
            b.del("__name__");
            for n in &drop.labels {
                b.del(n);
            }
            b.build()
        }
    }
}

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)`.
fn format_f(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

pub(crate) fn eval(a: &AggregateExpr, ctx: &Ctx) -> Result<Out, EvalError> {
    let op = a.op.to_string();
    let input = match super::eval(&a.expr, ctx)? {
        Out::Vector(v) => v,
        _ => return Err(exec(format!("{op}: expected an instant vector"))),
    };
    let param_scalar = |ctx: &Ctx| -> Result<Vec<f64>, EvalError> {
        match a
            .param
            .as_deref()
            .map(|p| super::eval(p, ctx))
            .transpose()?
        {
            Some(Out::Scalar(v)) => Ok(v),
            _ => Err(exec(format!("{op}: expected a scalar parameter"))),
        }
    };
    match op.as_str() {
        "topk" | "bottomk" => {
            let k = param_scalar(ctx)?;
            return Ok(Out::Vector(top_k(
                input,
                &a.modifier,
                &k,
                op == "topk",
                ctx,
            )));
        }
        "count_values" => {
            let label = string_arg(
                a.param
                    .as_deref()
                    .ok_or_else(|| exec("count_values: missing label"))?,
            )?;
            if !is_valid_label_name(&label) {
                return Err(exec(format!("invalid label name {label:?}")));
            }
            return Ok(Out::Vector(count_values(input, &a.modifier, &label, ctx)));
        }
        _ => {}
    }
    let q = if op == "quantile" {
        Some(param_scalar(ctx)?)
    } else {
        None
    };
    // Group of each input series.
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut out: Vec<Ser> = Vec::new();
    let gid: Vec<usize> = input
        .iter()
        .map(|s| {
            let g = group_labels(&s.labels, &a.modifier);
            *index.entry(g.clone()).or_insert_with(|| {
                out.push(Ser {
                    labels: g,
                    pts: Vec::new(),
                });
                out.len() - 1
            })
        })
        .collect();
    let steps = by_step(&input, ctx.n);
    #[derive(Clone, Default)]
    struct Acc {
        n: f64,
        v: f64,
        mean: f64,
        vals: Vec<f64>,
        seen: bool,
    }
    let mut acc: Vec<Acc> = vec![Acc::default(); out.len()];
    for (i, step) in steps.iter().enumerate() {
        for x in acc.iter_mut() {
            x.seen = false;
            x.vals.clear();
        }
        for &(k, v) in step {
            let g = &mut acc[gid[k]];
            if !g.seen {
                *g = Acc {
                    n: 1.0,
                    v,
                    mean: v,
                    vals: std::mem::take(&mut g.vals),
                    seen: true,
                };
                match op.as_str() {
                    "count" | "group" => g.v = 1.0,
                    "stddev" | "stdvar" => g.v = 0.0,
                    "quantile" => g.vals.push(v),
                    _ => {}
                }
                continue;
            }
            g.n += 1.0;
            match op.as_str() {
                "sum" => g.v += v,
                "avg" => {
                    if g.mean.is_infinite() {
                        if v.is_infinite() && (g.mean > 0.0) == (v > 0.0) {
                            continue;
                        }
                        if !v.is_infinite() && !v.is_nan() {
                            continue;
                        }
                    }
                    g.mean += v / g.n - g.mean / g.n;
                }
                "count" => g.v += 1.0,
                "group" => {}
                "min" => {
                    if g.v > v || g.v.is_nan() {
                        g.v = v;
                    }
                }
                "max" => {
                    if g.v < v || g.v.is_nan() {
                        g.v = v;
                    }
                }
                "stddev" | "stdvar" => {
                    let delta = v - g.mean;
                    g.mean += delta / g.n;
                    g.v += delta * (v - g.mean);
                }
                "quantile" => g.vals.push(v),
                other => return Err(exec(format!("aggregation {other} is not supported"))),
            }
        }
        for (gi, g) in acc.iter_mut().enumerate() {
            if !g.seen {
                continue;
            }
            let v = match op.as_str() {
                "avg" => g.mean,
                "stdvar" => g.v / g.n,
                "stddev" => (g.v / g.n).sqrt(),
                "quantile" => quantile(q.as_ref().map_or(f64::NAN, |q| q[i]), &mut g.vals),
                _ => g.v,
            };
            out[gi].pts.push((i, v));
        }
    }
    out.retain(|s| !s.pts.is_empty());
    Ok(Out::Vector(out))
}

/// `topk`/`bottomk`: per step and group, the k largest (smallest) samples, keeping their labels.
fn top_k(input: Vec<Ser>, m: &Option<LabelModifier>, k: &[f64], top: bool, ctx: &Ctx) -> Vec<Ser> {
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let gid: Vec<usize> = input
        .iter()
        .map(|s| {
            let n = index.len();
            *index.entry(group_labels(&s.labels, m)).or_insert(n)
        })
        .collect();
    let steps = by_step(&input, ctx.n);
    let mut pts: Vec<Vec<(usize, f64)>> = vec![Vec::new(); input.len()];
    // "Better" in the heap order of Prometheus: NaN is worse than any number.
    let better = |a: f64, b: f64| -> bool {
        if b.is_nan() {
            return !a.is_nan();
        }
        if top { a > b } else { a < b }
    };
    for (i, step) in steps.iter().enumerate() {
        let kk = k[i];
        if kk.is_nan() || kk < 1.0 {
            continue;
        }
        let kk = kk.min(i64::MAX as f64) as usize;
        let mut heaps: Vec<GoHeap> = (0..index.len())
            .map(|_| GoHeap {
                items: Vec::new(),
                top,
            })
            .collect();
        for &(s, v) in step {
            let h = &mut heaps[gid[s]];
            // Prometheus 2.x: admit when there is room, when the sample beats the worst kept one (at
            // the root), or when the root is NaN; make room by popping the root.
            let root = h.items.first().map(|x| x.1);
            let admit = match root {
                None => true,
                Some(r) => h.items.len() < kk || (if top { r < v } else { r > v }) || r.is_nan(),
            };
            if admit {
                if h.items.len() == kk {
                    h.pop_root();
                }
                h.push((s, v));
            }
        }
        for h in heaps {
            for (s, v) in h.items {
                pts[s].push((i, v));
            }
        }
    }
    let mut out: Vec<(Ser, f64)> = input
        .into_iter()
        .zip(pts)
        .filter(|(_, p)| !p.is_empty())
        .map(|(s, p)| {
            let last = p.last().map_or(f64::NAN, |x| x.1);
            (
                Ser {
                    labels: s.labels,
                    pts: p,
                },
                last,
            )
        })
        .collect();
    if ctx.n == 1 {
        // Instant results come out ordered, best first, as Prometheus returns them.
        out.sort_by(|a, b| {
            if better(a.1, b.1) {
                std::cmp::Ordering::Less
            } else if better(b.1, a.1) {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        });
    }
    out.into_iter().map(|(s, _)| s).collect()
}

/// Go's `container/heap` over samples, with Prometheus's orders: for `topk` a min-heap and for
/// `bottomk` a max-heap, NaN at the root either way. Emulated exactly so ties pick the same series.
struct GoHeap {
    items: Vec<(usize, f64)>,
    top: bool,
}

impl GoHeap {
    fn less(&self, i: usize, j: usize) -> bool {
        let (a, b) = (self.items[i].1, self.items[j].1);
        if a.is_nan() {
            return true;
        }
        if self.top { a < b } else { a > b }
    }

    fn up(&mut self, mut j: usize) {
        while j > 0 {
            let i = (j - 1) / 2;
            if !self.less(j, i) {
                break;
            }
            self.items.swap(i, j);
            j = i;
        }
    }

    fn down(&mut self, i0: usize) -> bool {
        let n = self.items.len();
        let mut i = i0;
        loop {
            let j1 = 2 * i + 1;
            if j1 >= n {
                break;
            }
            let mut j = j1;
            if j1 + 1 < n && self.less(j1 + 1, j1) {
                j = j1 + 1;
            }
            if !self.less(j, i) {
                break;
            }
            self.items.swap(i, j);
            i = j;
        }
        i > i0
    }

    fn push(&mut self, x: (usize, f64)) {
        self.items.push(x);
        let n = self.items.len() - 1;
        self.up(n);
    }

    /// `heap.Pop`: the root goes to the end, the rest is re-heaped, the end is removed.
    fn pop_root(&mut self) {
        let n = self.items.len() - 1;
        self.items.swap(0, n);
        self.items.pop();
        // `down` runs over the remaining items only, as Go's does over the first n.
        self.down(0);
    }
}

fn count_values(input: Vec<Ser>, m: &Option<LabelModifier>, label: &str, ctx: &Ctx) -> Vec<Ser> {
    // The value label joins the grouping labels (`by`) or stays (`without`).
    let m = match m {
        Some(LabelModifier::Include(l)) => {
            let mut l = l.clone();
            l.labels.push(label.to_string());
            Some(LabelModifier::Include(l))
        }
        Some(other) => Some(other.clone()),
        None => Some(LabelModifier::Include(promql_parser::label::Labels::new(
            vec![label],
        ))),
    };
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut out: Vec<Ser> = Vec::new();
    for (i, step) in by_step(&input, ctx.n).iter().enumerate() {
        let mut counts: HashMap<usize, f64> = HashMap::new();
        let mut order = Vec::new();
        for &(s, v) in step {
            let mut b = input[s].labels.to_builder();
            b.set(label.to_string(), format_f(v));
            let g = group_labels(&b.build(), &m);
            let gi = *index.entry(g.clone()).or_insert_with(|| {
                out.push(Ser {
                    labels: g,
                    pts: Vec::new(),
                });
                out.len() - 1
            });
            let c = counts.entry(gi).or_insert(0.0);
            if *c == 0.0 {
                order.push(gi);
            }
            *c += 1.0;
        }
        for gi in order {
            out[gi].pts.push((i, counts[&gi]));
        }
    }
    out
}
