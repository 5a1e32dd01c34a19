//! Alertmanager's v2 API (`/api/v2/...`) over the router, as amtool, Prometheus and Grafana's
//! Alertmanager data source call it.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};
use vigil_model::rfc3339_ms as time;
use vigil_model::{Labels, parse_api_time};

use super::dispatch::Alert;
use super::matchers::Matchers;
use super::service::AlertRouter;
use super::silence::{ApiMatcher, Silence};

/// Routes of the v2 API.
pub fn router(r: Arc<AlertRouter>) -> Router {
    Router::new()
        .route("/api/v2/alerts", get(get_alerts).post(post_alerts))
        .route("/api/v2/alerts/groups", get(get_groups))
        .route("/api/v2/silences", get(get_silences).post(post_silence))
        .route(
            "/api/v2/silence/{id}",
            get(get_silence).delete(delete_silence),
        )
        .route("/api/v2/status", get(status))
        .route("/api/v2/receivers", get(receivers))
        .with_state(r)
}

fn bad(msg: impl Into<String>) -> Response {
    (StatusCode::BAD_REQUEST, axum::Json(json!(msg.into()))).into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostableAlert {
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    starts_at: Option<String>,
    #[serde(default)]
    ends_at: Option<String>,
    #[serde(default, rename = "generatorURL")]
    generator_url: String,
}

async fn post_alerts(State(r): State<Arc<AlertRouter>>, body: Bytes) -> Response {
    let posted: Vec<PostableAlert> = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return bad(format!("invalid alerts: {e}")),
    };
    let now = vigil_model::now_ms();
    let parse = |s: &Option<String>| -> Result<Option<i64>, String> {
        match s.as_deref() {
            None | Some("") => Ok(None),
            // Go's zero time (0001-01-01T00:00:00Z, with or without fractions) means "not set".
            Some(t) => parse_api_time(t)
                .map(|ms| (ms > 0).then_some(ms))
                .map_err(|_| format!("invalid time {t:?}")),
        }
    };
    let resolve_timeout = r.resolve_timeout_ms();
    let mut alerts = Vec::with_capacity(posted.len());
    for mut p in posted {
        // Empty values are absent labels, as Alertmanager treats them.
        p.labels.retain(|_, v| !v.is_empty());
        if p.labels.is_empty() {
            return bad("at least one label pair required");
        }
        for k in p.labels.keys() {
            if !vigil_model::is_valid_label_name(k) {
                return bad(format!("invalid label set: invalid name {k:?}"));
            }
        }
        let (starts, ends) = match (parse(&p.starts_at), parse(&p.ends_at)) {
            (Ok(s), Ok(e)) => (s, e),
            (Err(e), _) | (_, Err(e)) => return bad(e),
        };
        let starts_at = starts.or(ends).unwrap_or(now);
        let ends_at = ends.unwrap_or(now + resolve_timeout);
        if ends_at < starts_at {
            return bad("start time must be before end time");
        }
        alerts.push(Alert {
            labels: Labels::from_pairs(p.labels),
            annotations: p.annotations,
            starts_at,
            ends_at,
            generator_url: p.generator_url,
            updated_at: now,
        });
    }
    r.insert(alerts);
    StatusCode::OK.into_response()
}

/// Query parameters, repeated keys kept.
fn params(q: &Option<String>) -> Vec<(String, String)> {
    q.as_deref()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// The matchers of every `filter` parameter.
fn filters(ps: &[(String, String)]) -> Result<Vec<super::Matcher>, String> {
    let mut out = Vec::new();
    for (_, f) in ps.iter().filter(|(k, _)| k == "filter") {
        out.extend(Matchers::parse_entry(f)?);
    }
    Ok(out)
}

fn flag(ps: &[(String, String)], name: &str) -> bool {
    ps.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v != "false")
        .unwrap_or(true)
}

/// The query of `GET /api/v2/alerts` and `/api/v2/alerts/groups`: label matchers, the
/// active/silenced/inhibited flags, a receiver.
struct AlertQuery {
    filter: Vec<super::matchers::Matcher>,
    active: bool,
    silenced: bool,
    inhibited: bool,
    receiver: Option<String>,
}

impl AlertQuery {
    #[allow(clippy::result_large_err)] // the Err is the response itself, answered at once
    fn parse(q: &Option<String>) -> Result<AlertQuery, Response> {
        let ps = params(q);
        let filter = filters(&ps).map_err(bad)?;
        Ok(AlertQuery {
            filter,
            active: flag(&ps, "active"),
            silenced: flag(&ps, "silenced"),
            inhibited: flag(&ps, "inhibited"),
            receiver: ps
                .iter()
                .find(|(k, _)| k == "receiver")
                .map(|(_, v)| v.clone()),
        })
    }

    fn keeps(
        &self,
        a: &Alert,
        receivers: &[String],
        silenced_by: &[String],
        inhibited: bool,
    ) -> bool {
        if !self
            .filter
            .iter()
            .all(|m| m.matches(a.labels.get(&m.name).unwrap_or("")))
        {
            return false;
        }
        if let Some(rx) = &self.receiver
            && !receivers.iter().any(|x| x == rx)
        {
            return false;
        }
        let suppressed = !silenced_by.is_empty() || inhibited;
        !((!suppressed && !self.active)
            || (!silenced_by.is_empty() && !self.silenced)
            || (inhibited && !self.inhibited))
    }
}

/// An alert as Alertmanager's API gives it (`gettableAlert`): with its receivers, its status
/// (active or suppressed, silenced by, inhibited by) and when it was last updated.
fn gettable(
    a: &Alert,
    receivers: &[String],
    silenced_by: &[String],
    inhibited: bool,
    now: i64,
) -> Value {
    let mut j = alert_json(a, now);
    let o = j.as_object_mut().expect("object");
    o.remove("status");
    // Alertmanager leaves an empty generatorURL out.
    if o.get("generatorURL").is_some_and(|u| u == "") {
        o.remove("generatorURL");
    }
    o.insert("updatedAt".into(), json!(time(a.updated_at)));
    o.insert(
        "receivers".into(),
        json!(
            receivers
                .iter()
                .map(|n| json!({"name": n}))
                .collect::<Vec<_>>()
        ),
    );
    let suppressed = !silenced_by.is_empty() || inhibited;
    o.insert(
        "status".into(),
        json!({
            "state": if suppressed { "suppressed" } else { "active" },
            "silencedBy": silenced_by,
            "inhibitedBy": if inhibited { vec!["inhibition rule".to_string()] } else { Vec::new() },
        }),
    );
    j
}

async fn get_alerts(State(r): State<Arc<AlertRouter>>, RawQuery(q): RawQuery) -> Response {
    let query = match AlertQuery::parse(&q) {
        Ok(x) => x,
        Err(e) => return e,
    };
    let now = vigil_model::now_ms();
    let out: Vec<Value> = r
        .alerts(now)
        .into_iter()
        .filter(|(a, rs, sil, inh)| !a.resolved_at(now) && query.keeps(a, rs, sil, *inh))
        .map(|(a, rs, sil, inh)| gettable(&a, &rs, &sil, inh, now))
        .collect();
    axum::Json(Value::Array(out)).into_response()
}

/// `GET /api/v2/alerts/groups`: each group with its receiver and its alerts as `gettableAlert`s
/// (the same filters as `/api/v2/alerts`); groups left with no alert are not listed.
async fn get_groups(State(r): State<Arc<AlertRouter>>, RawQuery(q): RawQuery) -> Response {
    let query = match AlertQuery::parse(&q) {
        Ok(x) => x,
        Err(e) => return e,
    };
    let now = vigil_model::now_ms();
    let status: std::collections::HashMap<u64, (Vec<String>, Vec<String>, bool)> = r
        .alerts(now)
        .into_iter()
        .map(|(a, rs, sil, inh)| (a.fingerprint(), (rs, sil, inh)))
        .collect();
    let gs: Vec<Value> = r
        .groups()
        .into_iter()
        .filter_map(|(labels, receiver, alerts)| {
            let alerts: Vec<Value> = alerts
                .iter()
                .filter(|a| !a.resolved_at(now))
                .filter_map(|a| {
                    let (rs, sil, inh) = status
                        .get(&a.fingerprint())
                        .cloned()
                        .unwrap_or_else(|| (vec![receiver.clone()], Vec::new(), false));
                    query
                        .keeps(a, &rs, &sil, inh)
                        .then(|| gettable(a, &rs, &sil, inh, now))
                })
                .collect();
            (!alerts.is_empty()).then(
                || json!({"labels": labels, "receiver": {"name": receiver}, "alerts": alerts}),
            )
        })
        .collect();
    axum::Json(Value::Array(gs)).into_response()
}

fn silence_json(s: &Silence, now: i64) -> Value {
    json!({
        "id": s.id,
        "matchers": s.matchers,
        "startsAt": time(s.starts_at),
        "endsAt": time(s.ends_at),
        "updatedAt": time(s.updated_at),
        "createdBy": s.created_by,
        "comment": s.comment,
        "status": {"state": s.state(now).as_str()},
    })
}

async fn get_silences(State(r): State<Arc<AlertRouter>>, RawQuery(q): RawQuery) -> Response {
    let ps = params(&q);
    let filter = match filters(&ps) {
        Ok(f) => f,
        Err(e) => return bad(e),
    };
    let now = vigil_model::now_ms();
    let list = r.silences.lock().list(now);
    let out: Vec<Value> = list
        .iter()
        .filter(|s| {
            // A silence matches a filter when it has a matcher equal to each filter matcher.
            filter.iter().all(|f| {
                s.matchers.iter().any(|m| {
                    m.name == f.name
                        && m.value == f.value
                        && matches!(
                            (m.is_regex, m.is_equal, f.kind),
                            (false, true, super::MatchType::Equal)
                                | (false, false, super::MatchType::NotEqual)
                                | (true, true, super::MatchType::Regexp)
                                | (true, false, super::MatchType::NotRegexp)
                        )
                })
            })
        })
        .map(|s| silence_json(s, now))
        .collect();
    axum::Json(Value::Array(out)).into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostableSilence {
    #[serde(default)]
    id: String,
    matchers: Vec<ApiMatcher>,
    starts_at: String,
    ends_at: String,
    #[serde(default)]
    created_by: String,
    #[serde(default)]
    comment: String,
}

async fn post_silence(State(r): State<Arc<AlertRouter>>, body: Bytes) -> Response {
    let p: PostableSilence = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => return bad(format!("invalid silence: {e}")),
    };
    let (Ok(starts_at), Ok(ends_at)) = (parse_api_time(&p.starts_at), parse_api_time(&p.ends_at))
    else {
        return bad("invalid startsAt or endsAt");
    };
    if p.created_by.is_empty() {
        return bad("silence invalid: creator information missing");
    }
    if p.comment.is_empty() {
        return bad("silence invalid: comment missing");
    }
    let now = vigil_model::now_ms();
    let s = Silence {
        id: p.id,
        matchers: p.matchers,
        starts_at,
        ends_at,
        updated_at: now,
        created_by: p.created_by,
        comment: p.comment,
    };
    let res = {
        let r = r.clone();
        tokio::task::spawn_blocking(move || r.silences.lock().set(s, now))
            .await
            .unwrap_or_else(|e| Err(e.to_string()))
    };
    match res {
        Ok(id) => axum::Json(json!({"silenceID": id})).into_response(),
        Err(e) if e.contains("not found") => {
            (StatusCode::NOT_FOUND, axum::Json(json!(e))).into_response()
        }
        Err(e) => bad(e),
    }
}

async fn get_silence(State(r): State<Arc<AlertRouter>>, Path(id): Path<String>) -> Response {
    let now = vigil_model::now_ms();
    match r.silences.lock().get(&id) {
        Some(s) => axum::Json(silence_json(s, now)).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn delete_silence(State(r): State<Arc<AlertRouter>>, Path(id): Path<String>) -> Response {
    let now = vigil_model::now_ms();
    let res = {
        let (r, id) = (r.clone(), id.clone());
        tokio::task::spawn_blocking(move || r.silences.lock().expire(&id, now))
            .await
            .unwrap_or_else(|e| Err(e.to_string()))
    };
    match res {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) if e.contains("not found") => StatusCode::NOT_FOUND.into_response(),
        Err(e) => bad(e),
    }
}

async fn status(State(r): State<Arc<AlertRouter>>) -> Response {
    axum::Json(json!({
        "cluster": {"status": "disabled", "peers": [], "name": "vigil"},
        "config": {"original": r.config_text()},
        "uptime": time(r.started()),
        "versionInfo": {
            "version": env!("CARGO_PKG_VERSION"),
            "revision": "unknown",
            "branch": "main",
            "buildUser": "vigil",
            "buildDate": "unknown",
            "goVersion": "n/a (Rust)",
        },
    }))
    .into_response()
}

async fn receivers(State(r): State<Arc<AlertRouter>>) -> Response {
    axum::Json(Value::Array(
        r.receivers()
            .into_iter()
            .map(|n| json!({"name": n}))
            .collect(),
    ))
    .into_response()
}

/// The alert as Alertmanager's v2 API prints it.
pub fn alert_json(a: &Alert, now: i64) -> Value {
    json!({
        "status": if a.resolved_at(now) { "resolved" } else { "firing" },
        "labels": a.labels,
        "annotations": a.annotations,
        "startsAt": time(a.starts_at),
        "endsAt": time(a.ends_at),
        "generatorURL": a.generator_url,
        "fingerprint": format!("{:016x}", a.fingerprint()),
    })
}
