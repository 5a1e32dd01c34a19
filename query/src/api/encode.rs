//! Prometheus's JSON for query results: labels, points, values written straight into strings.

use super::*;

pub(super) const MIN_TIME: i64 = i64::MIN / 4;
pub(super) const MAX_TIME: i64 = i64::MAX / 4;

pub(crate) fn json_str(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

pub(super) fn labels_json(l: &Labels, out: &mut String) {
    out.push('{');
    for (i, lb) in l.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&json_str(lb.name));
        out.push(':');
        out.push_str(&json_str(lb.value));
    }
    out.push('}');
}

pub(crate) fn point_json(t: i64, v: f64, out: &mut String) {
    out.push('[');
    crate::format::write_time(out, t);
    out.push_str(",\"");
    crate::format::write_value(out, v);
    out.push_str("\"]");
}

/// The `data` object of a query result.
pub fn value_json(v: &Value) -> String {
    let points = match v {
        Value::Matrix(m) => m.iter().map(|(_, p)| p.len()).sum::<usize>(),
        Value::Vector(x) => x.len(),
        _ => 1,
    };
    let mut out = String::with_capacity(64 + points * 32);
    match v {
        Value::Scalar(t, x) => {
            out.push_str("{\"resultType\":\"scalar\",\"result\":");
            point_json(*t, *x, &mut out);
            out.push('}');
        }
        Value::String(t, s) => {
            out.push_str("{\"resultType\":\"string\",\"result\":[");
            out.push_str(&format_time(*t));
            out.push(',');
            out.push_str(&json_str(s));
            out.push_str("]}");
        }
        Value::Vector(items) => {
            out.push_str("{\"resultType\":\"vector\",\"result\":[");
            for (i, (l, t, x)) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                labels_json(l, &mut out);
                out.push_str(",\"value\":");
                point_json(*t, *x, &mut out);
                out.push('}');
            }
            out.push_str("]}");
        }
        Value::Matrix(items) => {
            out.push_str("{\"resultType\":\"matrix\",\"result\":[");
            for (i, (l, pts)) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                labels_json(l, &mut out);
                out.push_str(",\"values\":[");
                for (j, (t, x)) in pts.iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    point_json(*t, *x, &mut out);
                }
                out.push_str("]}");
            }
            out.push_str("]}");
        }
    }
    out
}
