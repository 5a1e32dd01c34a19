//! Binary operators: arithmetic, comparisons (with `bool`), set operators, and vector matching with
//! `on`/`ignoring` and `group_left`/`group_right`.

use std::collections::{HashMap, HashSet};

use promql_parser::parser::{BinModifier, BinaryExpr, LabelModifier, VectorMatchCardinality};
use vigil_model::Labels;

use super::{Ctx, EvalError, Out, Ser, by_step, exec, merge_checked};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Atan2,
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    And,
    Or,
    Unless,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "+" => Op::Add,
            "-" => Op::Sub,
            "*" => Op::Mul,
            "/" => Op::Div,
            "%" => Op::Mod,
            "^" => Op::Pow,
            "atan2" => Op::Atan2,
            "==" => Op::Eq,
            "!=" => Op::Ne,
            ">" => Op::Gt,
            "<" => Op::Lt,
            ">=" => Op::Ge,
            "<=" => Op::Le,
            "and" => Op::And,
            "or" => Op::Or,
            "unless" => Op::Unless,
            _ => return None,
        })
    }

    fn comparison(self) -> bool {
        matches!(self, Op::Eq | Op::Ne | Op::Gt | Op::Lt | Op::Ge | Op::Le)
    }

    /// Arithmetic drops the metric name from results (Prometheus 2.x leaves it on `atan2`).
    fn drops_name(self) -> bool {
        matches!(
            self,
            Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Mod | Op::Pow
        )
    }

    /// The value, and whether a comparison keeps the sample.
    fn apply(self, l: f64, r: f64) -> (f64, bool) {
        match self {
            Op::Add => (l + r, true),
            Op::Sub => (l - r, true),
            Op::Mul => (l * r, true),
            Op::Div => (l / r, true),
            Op::Mod => (go_mod(l, r), true),
            Op::Pow => (l.powf(r), true),
            Op::Atan2 => (l.atan2(r), true),
            Op::Eq => (l, l == r),
            Op::Ne => (l, l != r),
            Op::Gt => (l, l > r),
            Op::Lt => (l, l < r),
            Op::Ge => (l, l >= r),
            Op::Le => (l, l <= r),
            Op::And | Op::Or | Op::Unless => (l, true),
        }
    }
}

/// Go's `math.Mod`: the result has the sign of `x`.
fn go_mod(x: f64, y: f64) -> f64 {
    if y == 0.0 || x.is_infinite() || x.is_nan() || y.is_nan() {
        return f64::NAN;
    }
    x % y
}

pub(crate) fn eval(b: &BinaryExpr, ctx: &Ctx) -> Result<Out, EvalError> {
    let op_s = b.op.to_string();
    let op = Op::parse(&op_s).ok_or_else(|| exec(format!("operator {op_s} is not supported")))?;
    let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
    let (lhs, rhs) = (super::eval(&b.lhs, ctx)?, super::eval(&b.rhs, ctx)?);
    match (lhs, rhs) {
        (Out::Scalar(l), Out::Scalar(r)) => Ok(Out::Scalar(
            l.iter()
                .zip(r.iter())
                .map(|(l, r)| {
                    let (v, keep) = op.apply(*l, *r);
                    if op.comparison() {
                        f64::from(u8::from(keep))
                    } else {
                        v
                    }
                })
                .collect(),
        )),
        (Out::Vector(v), Out::Scalar(s)) => vector_scalar(v, &s, op, return_bool, false),
        (Out::Scalar(s), Out::Vector(v)) => vector_scalar(v, &s, op, return_bool, true),
        (Out::Vector(l), Out::Vector(r)) => match op {
            Op::And | Op::Or | Op::Unless => {
                Ok(Out::Vector(set_op(l, r, op, b.modifier.as_ref(), ctx.n)?))
            }
            _ => Ok(Out::Vector(vector_vector(
                l,
                r,
                op,
                b.modifier.as_ref(),
                return_bool,
                ctx.n,
            )?)),
        },
        _ => Err(exec(format!(
            "operator {op_s} needs scalar or instant vector operands"
        ))),
    }
}

fn vector_scalar(
    v: Vec<Ser>,
    s: &[f64],
    op: Op,
    return_bool: bool,
    swap: bool,
) -> Result<Out, EvalError> {
    if matches!(op, Op::And | Op::Or | Op::Unless) {
        return Err(exec("set operators need instant vectors on both sides"));
    }
    let drop = op.drops_name() || return_bool;
    let out: Vec<Ser> = v
        .into_iter()
        .map(|ser| {
            let pts = ser
                .pts
                .into_iter()
                .filter_map(|(i, x)| {
                    let (l, r) = if swap { (s[i], x) } else { (x, s[i]) };
                    let (mut value, mut keep) = op.apply(l, r);
                    // A comparison keeps the vector's value even when the vector is on the right.
                    if op.comparison() && swap {
                        value = r;
                    }
                    if return_bool {
                        value = f64::from(u8::from(keep));
                        keep = true;
                    }
                    keep.then_some((i, value))
                })
                .collect();
            Ser {
                labels: if drop {
                    ser.labels.without_metric_name()
                } else {
                    ser.labels
                },
                pts,
            }
        })
        .collect();
    Ok(Out::Vector(if drop { merge_checked(out)? } else { out }))
}

/// The matching signature of a series: the `on` labels, or all but the `ignoring` labels and the name.
fn signature(l: &Labels, matching: Option<&LabelModifier>) -> Labels {
    match matching {
        Some(LabelModifier::Include(on)) => {
            let mut b = Labels::empty().to_builder();
            for n in &on.labels {
                if let Some(v) = l.get(n) {
                    b.set(n.clone(), v.to_string());
                }
            }
            b.build()
        }
        Some(LabelModifier::Exclude(ign)) => {
            let mut b = l.to_builder();
            b.del("__name__");
            for n in &ign.labels {
                b.del(n);
            }
            b.build()
        }
        None => l.without_metric_name(),
    }
}

fn set_op(
    l: Vec<Ser>,
    r: Vec<Ser>,
    op: Op,
    m: Option<&BinModifier>,
    n: usize,
) -> Result<Vec<Ser>, EvalError> {
    let matching = m.and_then(|m| m.matching.as_ref());
    let lsig: Vec<Labels> = l.iter().map(|s| signature(&s.labels, matching)).collect();
    let rsig: Vec<Labels> = r.iter().map(|s| signature(&s.labels, matching)).collect();
    let (lsteps, rsteps) = (by_step(&l, n), by_step(&r, n));
    let mut lpts: Vec<Vec<(usize, f64)>> = vec![Vec::new(); l.len()];
    let mut rpts: Vec<Vec<(usize, f64)>> = vec![Vec::new(); r.len()];
    for i in 0..n {
        match op {
            Op::And | Op::Unless => {
                let present: HashSet<&Labels> = rsteps[i].iter().map(|(k, _)| &rsig[*k]).collect();
                for &(k, v) in &lsteps[i] {
                    if present.contains(&lsig[k]) == (op == Op::And) {
                        lpts[k].push((i, v));
                    }
                }
            }
            _ => {
                let present: HashSet<&Labels> = lsteps[i].iter().map(|(k, _)| &lsig[*k]).collect();
                for &(k, v) in &lsteps[i] {
                    lpts[k].push((i, v));
                }
                for &(k, v) in &rsteps[i] {
                    if !present.contains(&rsig[k]) {
                        rpts[k].push((i, v));
                    }
                }
            }
        }
    }
    let out: Vec<Ser> = l
        .into_iter()
        .zip(lpts)
        .chain(r.into_iter().zip(rpts))
        .filter(|(_, p)| !p.is_empty())
        .map(|(s, pts)| Ser {
            labels: s.labels,
            pts,
        })
        .collect();
    merge_checked(out)
}

fn vector_vector(
    l: Vec<Ser>,
    r: Vec<Ser>,
    op: Op,
    m: Option<&BinModifier>,
    return_bool: bool,
    n: usize,
) -> Result<Vec<Ser>, EvalError> {
    let card = m
        .map(|m| m.card.clone())
        .unwrap_or(VectorMatchCardinality::OneToOne);
    let matching = m.and_then(|m| m.matching.as_ref());
    let include: Vec<String> = card.labels().map(|l| l.labels.clone()).unwrap_or_default();
    // Group_right swaps the sides: the "many" side is always `many` below.
    let swapped = matches!(card, VectorMatchCardinality::OneToMany(_));
    let (many, one) = if swapped { (r, l) } else { (l, r) };
    let msig: Vec<Labels> = many
        .iter()
        .map(|s| signature(&s.labels, matching))
        .collect();
    let osig: Vec<Labels> = one.iter().map(|s| signature(&s.labels, matching)).collect();
    let (msteps, osteps) = (by_step(&many, n), by_step(&one, n));
    let mut result_labels: HashMap<(usize, usize), usize> = HashMap::new();
    let mut out: Vec<Ser> = Vec::new();
    let mut out_index: HashMap<Labels, usize> = HashMap::new();
    for i in 0..n {
        if msteps[i].is_empty() || osteps[i].is_empty() {
            continue;
        }
        let mut one_by_sig: HashMap<&Labels, (usize, f64)> =
            HashMap::with_capacity(osteps[i].len());
        for &(k, v) in &osteps[i] {
            if let Some((prev, _)) = one_by_sig.insert(&osig[k], (k, v)) {
                let side = if swapped { "left" } else { "right" };
                return Err(exec(format!(
                    "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                    osig[k], one[prev].labels, one[k].labels
                )));
            }
        }
        let mut matched: HashMap<&Labels, HashSet<usize>> = HashMap::new();
        for &(k, v) in &msteps[i] {
            let Some(&(o, ov)) = one_by_sig.get(&msig[k]) else {
                continue;
            };
            let (vl, vr) = if swapped { (ov, v) } else { (v, ov) };
            let (mut value, keep) = op.apply(vl, vr);
            if return_bool {
                value = f64::from(u8::from(keep));
            } else if !keep {
                continue;
            }
            let oi = match result_labels.get(&(k, o)) {
                Some(&x) => x,
                None => {
                    let mut lb = many[k].labels.to_builder();
                    if op.drops_name() || return_bool {
                        lb.del("__name__");
                    }
                    if matches!(card, VectorMatchCardinality::OneToOne) {
                        match matching {
                            Some(LabelModifier::Include(on)) => {
                                let keep: HashSet<&str> =
                                    on.labels.iter().map(String::as_str).collect();
                                lb.retain(|lab| keep.contains(lab.name.as_str()));
                            }
                            Some(LabelModifier::Exclude(ign)) => {
                                for nme in &ign.labels {
                                    lb.del(nme);
                                }
                            }
                            None => {}
                        }
                    }
                    for nme in &include {
                        // Taken from the "one" side; absent there means deleted.
                        lb.set(nme.clone(), one[o].labels.get(nme).unwrap_or(""));
                    }
                    let labels = lb.build();
                    let x = match out_index.get(&labels) {
                        Some(&x) => x,
                        None => {
                            out_index.insert(labels.clone(), out.len());
                            out.push(Ser {
                                labels,
                                pts: Vec::new(),
                            });
                            out.len() - 1
                        }
                    };
                    result_labels.insert((k, o), x);
                    x
                }
            };
            let set = matched.entry(&msig[k]).or_default();
            if matches!(card, VectorMatchCardinality::OneToOne) {
                if !set.is_empty() {
                    return Err(exec(
                        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)",
                    ));
                }
            } else if set.contains(&oi) {
                return Err(exec(
                    "multiple matches for labels: grouping labels must ensure unique matches",
                ));
            }
            set.insert(oi);
            if out[oi].pts.last().is_some_and(|p| p.0 == i) {
                return Err(exec("vector cannot contain metrics with the same labelset"));
            }
            out[oi].pts.push((i, value));
        }
    }
    out.retain(|s| !s.pts.is_empty());
    Ok(out)
}
