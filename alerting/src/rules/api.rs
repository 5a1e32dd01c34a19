//! `/api/v1/rules` and `/api/v1/alerts` in Prometheus's shapes (what Grafana parses).

use std::sync::Arc;

use serde_json::{Value, json};
use vigil_model::rfc3339_ms;

use super::group::{Alert, AlertState, Group};

fn time(ms: Option<i64>) -> String {
    rfc3339_ms(ms.unwrap_or(0))
}

/// Go's `strconv.FormatFloat(v, 'e', -1, 64)`, as the alerts API prints values.
pub fn go_e(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let s = format!("{v:e}");
    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = e.parse().unwrap_or(0);
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{m}e{sign}{:02}", exp.abs())
}

fn alert_json(a: &Alert) -> Value {
    json!({
        "labels": a.labels,
        "annotations": a.annotations,
        "state": a.state.as_str(),
        "activeAt": time(Some(a.active_at)),
        "value": go_e(a.value),
    })
}

fn live(g: &Group) -> impl Iterator<Item = Alert> + '_ {
    g.rules.iter().flat_map(|r| {
        let mut v: Vec<Alert> = r
            .active
            .lock()
            .values()
            .filter(|a| a.state != AlertState::Inactive)
            .cloned()
            .collect();
        v.sort_by(|a, b| a.labels.cmp(&b.labels));
        v
    })
}

/// `data` of `/api/v1/rules`; `kind` is the `type` parameter (`alert` or `record`).
pub fn rules_json(groups: &[Arc<Group>], kind: Option<&str>) -> Value {
    let gs: Vec<Value> = groups
        .iter()
        .map(|g| {
            let rules: Vec<Value> = g
                .rules
                .iter()
                .filter(|r| match kind {
                    Some("alert") => r.is_alerting(),
                    Some("record") => !r.is_alerting(),
                    _ => true,
                })
                .map(|r| {
                    let st = r.status.lock().clone();
                    if r.is_alerting() {
                        let mut alerts: Vec<Alert> =
                            r.active.lock().values().filter(|a| a.state != AlertState::Inactive).cloned().collect();
                        alerts.sort_by(|a, b| a.labels.cmp(&b.labels));
                        let state = if alerts.iter().any(|a| a.state == AlertState::Firing) {
                            "firing"
                        } else if alerts.is_empty() {
                            "inactive"
                        } else {
                            "pending"
                        };
                        json!({
                            "state": state,
                            "name": r.name(),
                            "query": r.config.expr,
                            "duration": r.config.for_.map(|d| d.0.as_secs_f64()).unwrap_or(0.0),
                            "keepFiringFor": r.config.keep_firing_for.map(|d| d.0.as_secs_f64()).unwrap_or(0.0),
                            "labels": r.labels,
                            "annotations": r.config.annotations,
                            "alerts": alerts.iter().map(alert_json).collect::<Vec<_>>(),
                            "health": st.health,
                            "lastError": st.last_error,
                            "evaluationTime": st.evaluation_seconds,
                            "lastEvaluation": time(st.last_evaluation),
                            "type": "alerting",
                        })
                    } else {
                        json!({
                            "name": r.name(),
                            "query": r.config.expr,
                            "labels": r.labels,
                            "health": st.health,
                            "lastError": st.last_error,
                            "evaluationTime": st.evaluation_seconds,
                            "lastEvaluation": time(st.last_evaluation),
                            "type": "recording",
                        })
                    }
                })
                .collect();
            json!({
                "name": g.config.name,
                "file": g.file,
                "rules": rules,
                "interval": g.interval.as_secs_f64(),
                "limit": g.config.limit,
                "evaluationTime": *g.evaluation_seconds.lock(),
                "lastEvaluation": time(*g.last_evaluation.lock()),
            })
        })
        .collect();
    json!({ "groups": gs })
}

/// `data` of `/api/v1/alerts`: every pending or firing alert.
pub fn alerts_json(groups: &[Arc<Group>]) -> Value {
    let alerts: Vec<Value> = groups
        .iter()
        .flat_map(|g| live(g).map(|a| alert_json(&a)).collect::<Vec<_>>())
        .collect();
    json!({ "alerts": alerts })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_like_go_e_format() {
        assert_eq!(go_e(1.0), "1e+00");
        assert_eq!(go_e(0.5), "5e-01");
        assert_eq!(go_e(1234.5), "1.2345e+03");
        assert_eq!(go_e(f64::NAN), "NaN");
    }
}
