//! The runbook HTTP API, in the Prometheus API's envelope (`{"status": "success", "data": ...}`):
//!
//! - `GET /api/v1/runbooks`: the loaded runbooks and their manifests;
//! - `GET /api/v1/runbooks/executions?runbook=&binding=&outcome=&limit=`: newest first, each with
//!   its steps; `GET /api/v1/runbooks/executions/{id}`: one;
//! - `POST /api/v1/runbooks/executions/{id}/approve` and `/deny`: a pending execution;
//! - `GET /api/v1/runbooks/breakers`: the capabilities whose blast-radius breaker is open;
//!   `POST /api/v1/runbooks/breakers/{capability}/reset` closes one (409 when it is not open);
//! - `POST /api/v1/runbooks/{name}/run` with `{"alert": {...}, "params": {...}, "grants": [...],
//!   "dry_run": true, "target": "..."}`: a manual run (dry run unless `dry_run` is false), answered when it ended.
//!
//! While the web configuration requires basic authentication, approving, denying and running need
//! a user that `runbooks.admins` names (403 otherwise, Vigil's own token included); the record
//! holds that user. Without authentication anyone may, and the record says `anonymous`.

use std::sync::Arc;

use axum::Extension;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::capability::Grant;
use crate::engine::{Binding, Engine};
use vigil_http::web::Principal;

pub fn router(engine: Arc<Engine>) -> Router {
    Router::new()
        .route("/api/v1/runbooks", get(list_runbooks))
        .route("/api/v1/runbooks/executions", get(list_executions))
        .route("/api/v1/runbooks/executions/{id}", get(get_execution))
        .route("/api/v1/runbooks/executions/{id}/approve", post(approve))
        .route("/api/v1/runbooks/executions/{id}/deny", post(deny))
        .route("/api/v1/runbooks/breakers", get(list_breakers))
        .route(
            "/api/v1/runbooks/breakers/{capability}/reset",
            post(reset_breaker),
        )
        .route("/api/v1/runbooks/{name}/run", post(run))
        .with_state(engine)
}

fn ok(data: Value) -> Response {
    axum::Json(json!({"status": "success", "data": data})).into_response()
}

fn err(code: StatusCode, kind: &str, msg: impl Into<String>) -> Response {
    (
        code,
        axum::Json(json!({"status": "error", "errorType": kind, "error": msg.into()})),
    )
        .into_response()
}

/// Who acts, when they may: the authenticated user if a runbook admin, `anonymous` while
/// authentication is off; otherwise the 403 to answer.
#[allow(clippy::result_large_err)] // the Err is the response itself, answered at once
fn actor(e: &Engine, who: Option<Extension<Principal>>, what: &str) -> Result<String, Response> {
    let refused = match who.map(|Extension(p)| p) {
        None => return Ok("anonymous".to_string()),
        Some(Principal::User(u)) if e.is_admin(&u) => return Ok(u),
        Some(Principal::User(u)) => format!(
            "user {u:?} may not {what}: only the runbook admins (runbooks.admins in the Vigil \
             configuration) may"
        ),
        Some(Principal::Internal) => format!("Vigil's own credential may not {what}"),
    };
    Err(err(StatusCode::FORBIDDEN, "forbidden", refused))
}

async fn list_runbooks(State(e): State<Arc<Engine>>) -> Response {
    let list: Vec<Value> = e
        .runbooks
        .values()
        .map(|c| serde_json::to_value(&c.manifest).unwrap_or_default())
        .collect();
    ok(Value::Array(list))
}

#[derive(Deserialize)]
struct Filter {
    runbook: Option<String>,
    binding: Option<String>,
    outcome: Option<String>,
    limit: Option<usize>,
}

async fn list_executions(State(e): State<Arc<Engine>>, Query(f): Query<Filter>) -> Response {
    let list: Vec<Value> = e
        .store
        .list()
        .into_iter()
        .filter(|x| f.runbook.as_ref().is_none_or(|r| *r == x.runbook))
        .filter(|x| f.binding.as_ref().is_none_or(|b| *b == x.binding))
        .filter(|x| {
            f.outcome.as_ref().is_none_or(|o| {
                serde_json::to_value(x.outcome)
                    .ok()
                    .and_then(|v| v.as_str().map(|s| s == o))
                    == Some(true)
            })
        })
        .take(f.limit.unwrap_or(100))
        .map(|x| serde_json::to_value(x).unwrap_or_default())
        .collect();
    ok(Value::Array(list))
}

async fn get_execution(State(e): State<Arc<Engine>>, Path(id): Path<String>) -> Response {
    match e.store.get(&id) {
        Some(x) => ok(serde_json::to_value(x).unwrap_or_default()),
        None => err(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no execution {id}"),
        ),
    }
}

async fn approve(
    State(e): State<Arc<Engine>>,
    Path(id): Path<String>,
    p: Option<Extension<Principal>>,
) -> Response {
    let who = match actor(&e, p, "approve runbook executions") {
        Ok(w) => w,
        Err(r) => return r,
    };
    match e.approve(&id, &who).await {
        Some(x) => ok(serde_json::to_value(x).unwrap_or_default()),
        None => err(
            StatusCode::CONFLICT,
            "bad_data",
            format!("execution {id} is not pending"),
        ),
    }
}

async fn deny(
    State(e): State<Arc<Engine>>,
    Path(id): Path<String>,
    p: Option<Extension<Principal>>,
) -> Response {
    let who = match actor(&e, p, "deny runbook executions") {
        Ok(w) => w,
        Err(r) => return r,
    };
    match e.deny(&id, &who).await {
        Some(x) => ok(serde_json::to_value(x).unwrap_or_default()),
        None => err(
            StatusCode::CONFLICT,
            "bad_data",
            format!("execution {id} is not pending"),
        ),
    }
}

async fn list_breakers(State(e): State<Arc<Engine>>) -> Response {
    let open: Vec<Value> = e
        .policy
        .tripped()
        .into_iter()
        .map(|c| json!({"capability": c, "open": true}))
        .collect();
    ok(Value::Array(open))
}

async fn reset_breaker(
    State(e): State<Arc<Engine>>,
    Path(capability): Path<String>,
    p: Option<Extension<Principal>>,
) -> Response {
    let who = match actor(&e, p, "reset blast-radius breakers") {
        Ok(w) => w,
        Err(r) => return r,
    };
    if e.reset_breaker(&capability, &who) {
        ok(json!({"capability": capability, "open": false, "reset_by": who}))
    } else {
        err(
            StatusCode::CONFLICT,
            "bad_data",
            format!("the {capability} breaker is not open"),
        )
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunRequest {
    #[serde(default)]
    alert: Value,
    #[serde(default)]
    params: Map<String, Value>,
    #[serde(default)]
    grants: Option<Vec<Grant>>,
    #[serde(default = "yes")]
    dry_run: bool,
    #[serde(default)]
    verify_within: Option<String>,
    /// What the run acts on, for the per-target lock (as a binding's `target`); default: the
    /// alert's fingerprint, or the run alone.
    #[serde(default)]
    target: String,
}

fn yes() -> bool {
    true
}

async fn run(
    State(e): State<Arc<Engine>>,
    Path(name): Path<String>,
    p: Option<Extension<Principal>>,
    body: axum::body::Bytes,
) -> Response {
    let who = match actor(&e, p, "run runbooks") {
        Ok(w) => w,
        Err(r) => return r,
    };
    let req: RunRequest = match serde_json::from_slice(if body.is_empty() { b"{}" } else { &body })
    {
        Ok(r) => r,
        Err(x) => {
            return err(
                StatusCode::BAD_REQUEST,
                "bad_data",
                format!("request body: {x}"),
            );
        }
    };
    let Some(rb) = e.runbooks.get(&name) else {
        return err(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no runbook named {name:?}"),
        );
    };
    let grants = req.grants.unwrap_or_else(|| {
        rb.manifest
            .capabilities
            .iter()
            .map(|c| Grant {
                capability: c.clone(),
                scope: Default::default(),
            })
            .collect()
    });
    for g in &grants {
        if !rb.manifest.capabilities.contains(&g.capability) {
            return err(
                StatusCode::BAD_REQUEST,
                "bad_data",
                format!("{name} does not ask for {}", g.capability),
            );
        }
    }
    let verify_within = match req
        .verify_within
        .as_deref()
        .map(crate::manifest::parse_duration)
    {
        None => std::time::Duration::from_secs(0),
        Some(Some(d)) => d,
        Some(None) => {
            return err(
                StatusCode::BAD_REQUEST,
                "bad_data",
                "verify_within is not a duration",
            );
        }
    };
    let mut alert = if req.alert.is_object() {
        req.alert
    } else {
        json!({})
    };
    if alert.get("labels").is_none() {
        alert["labels"] = json!({});
    }
    let binding = Binding {
        runbook: name.clone(),
        params: req.params,
        grants,
        dry_run: req.dry_run,
        require_approval: false,
        verify_within,
        escalate_to: None,
        target: req.target,
    };
    let x = e
        .execute(&format!("manual by {who}"), &binding, alert)
        .await;
    ok(serde_json::to_value(x).unwrap_or_default())
}
