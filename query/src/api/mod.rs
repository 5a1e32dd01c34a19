//! The Prometheus HTTP API (`/api/v1/...`) as Grafana, promtool and client libraries call it.
//!
//! Every endpoint takes its parameters from the URL and, for POST, from an
//! `application/x-www-form-urlencoded` body (Grafana's default). Errors use Prometheus's envelope and
//! status codes: `bad_data` 400, `execution` 422, `internal` 500.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use vigil_model::{
    Labels, Matcher, is_valid_label_name, now_ms, parse_api_duration, parse_api_time,
};
use vigil_storage::{MetricsReader, ReadError};

use crate::eval::{self, EvalError, EvalOptions, QueryStats, Value};
use crate::format::{format_time, format_value};

mod encode;
pub use encode::value_json;
pub(crate) use encode::{json_str, point_json};
mod meta;
mod query;
mod status;

use encode::*;
use meta::*;
use query::*;
use status::*;

/// Build information reported by `/api/v1/status/buildinfo`.
#[derive(Clone, Debug)]
pub struct BuildInfo {
    pub version: String,
    pub revision: String,
}

/// Settings of the API.
#[derive(Clone, Debug)]
pub struct ApiOptions {
    pub eval: EvalOptions,
    /// Most points per series a range query may return (Prometheus: 11,000).
    pub max_points_per_series: i64,
    pub build: BuildInfo,
    /// Queries slower than this are logged at `info` with their cost.
    pub slow_query_threshold: std::time::Duration,
    /// The running configuration as YAML (secrets shown as `<secret>`), for
    /// `/api/v1/status/config`; the server replaces it on reload.
    pub config_yaml: std::sync::Arc<std::sync::RwLock<String>>,
    /// Command-line flags, for `/api/v1/status/flags`.
    pub flags: Vec<(String, String)>,
    /// Storage retention as text, for `/api/v1/status/runtimeinfo`.
    pub retention: String,
    pub started: std::time::SystemTime,
}

impl Default for ApiOptions {
    fn default() -> Self {
        ApiOptions {
            eval: EvalOptions::default(),
            max_points_per_series: 11_000,
            build: BuildInfo {
                version: env!("CARGO_PKG_VERSION").into(),
                revision: "unknown".into(),
            },
            slow_query_threshold: std::time::Duration::from_secs(5),
            config_yaml: Default::default(),
            flags: Vec::new(),
            retention: String::new(),
            started: std::time::SystemTime::now(),
        }
    }
}

struct ApiState<R> {
    reader: Arc<R>,
    opts: ApiOptions,
}

impl<R> Clone for ApiState<R> {
    fn clone(&self) -> Self {
        ApiState {
            reader: self.reader.clone(),
            opts: self.opts.clone(),
        }
    }
}

/// Routes of the Prometheus query API.
pub fn router<R: MetricsReader>(reader: Arc<R>, opts: ApiOptions) -> Router {
    let st = ApiState { reader, opts };
    Router::new()
        .route("/api/v1/query", get(query::<R>).post(query::<R>))
        .route(
            "/api/v1/query_range",
            get(query_range::<R>).post(query_range::<R>),
        )
        .route(
            "/api/v1/query_exemplars",
            get(query_exemplars::<R>).post(query_exemplars::<R>),
        )
        .route("/api/v1/series", get(series::<R>).post(series::<R>))
        .route("/api/v1/labels", get(labels::<R>).post(labels::<R>))
        .route("/api/v1/label/{name}/values", get(label_values::<R>))
        .route("/api/v1/status/buildinfo", get(buildinfo::<R>))
        .route("/api/v1/format_query", get(format_query).post(format_query))
        .route("/api/v1/metadata", get(metadata::<R>))
        .route("/api/v1/status/config", get(status_config::<R>))
        .route("/api/v1/status/flags", get(status_flags::<R>))
        .route("/api/v1/status/runtimeinfo", get(status_runtimeinfo::<R>))
        .route("/api/v1/status/tsdb", get(status_tsdb::<R>))
        .with_state(st)
}

/// An API error: type and message.
#[derive(Debug)]
pub struct ApiError {
    kind: &'static str,
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub fn bad_data(message: impl Into<String>) -> Self {
        ApiError {
            kind: "bad_data",
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
    pub fn execution(message: impl Into<String>) -> Self {
        ApiError {
            kind: "execution",
            status: StatusCode::UNPROCESSABLE_ENTITY,
            message: message.into(),
        }
    }
    pub fn timeout(message: impl Into<String>) -> Self {
        ApiError {
            kind: "timeout",
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: message.into(),
        }
    }
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError {
            kind: "internal",
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
        }
    }
}

impl From<EvalError> for ApiError {
    fn from(e: EvalError) -> Self {
        match e {
            EvalError::BadData(m) => ApiError::bad_data(m),
            EvalError::Execution(m) => ApiError::execution(m),
            e @ EvalError::Timeout(_) => ApiError::timeout(e.to_string()),
            EvalError::Read(r @ ReadError::TooManySamples { .. }) => {
                ApiError::execution(r.to_string())
            }
            EvalError::Read(r) => ApiError::internal(r.to_string()),
        }
    }
}

impl From<ReadError> for ApiError {
    fn from(e: ReadError) -> Self {
        EvalError::Read(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"status": "error", "errorType": self.kind, "error": self.message});
        (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response()
    }
}

pub(crate) fn success_raw(data_json: String, warnings: &[String]) -> Response {
    let mut body = String::with_capacity(data_json.len() + 64);
    body.push_str("{\"status\":\"success\",\"data\":");
    body.push_str(&data_json);
    if !warnings.is_empty() {
        body.push_str(",\"warnings\":");
        body.push_str(&serde_json::to_string(warnings).unwrap_or_else(|_| "[]".into()));
    }
    body.push('}');
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// Request parameters from the query string and a form body, in order; repeated keys kept.
pub(crate) struct Params(pub(crate) Vec<(String, String)>);

impl Params {
    pub(crate) fn from(query: Option<String>, headers: &HeaderMap, body: &Bytes) -> Params {
        let mut v: Vec<(String, String)> = Vec::new();
        if let Some(q) = query {
            v.extend(form_urlencoded::parse(q.as_bytes()).into_owned());
        }
        let is_form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|c| c.to_str().ok())
            .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
        if is_form && !body.is_empty() {
            v.extend(form_urlencoded::parse(body).into_owned());
        }
        Params(v)
    }

    pub(crate) fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    pub(crate) fn all(&self, k: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn time(&self, k: &str, default: i64) -> Result<i64, ApiError> {
        match self.get(k) {
            None => Ok(default),
            Some(s) => parse_api_time(s).map_err(|_| {
                ApiError::bad_data(format!(
                    "invalid parameter \"{k}\": cannot parse \"{s}\" to a valid timestamp"
                ))
            }),
        }
    }

    fn limit(&self) -> Result<usize, ApiError> {
        match self.get("limit") {
            None => Ok(0),
            Some(s) => s.parse::<usize>().map_err(|_| {
                ApiError::bad_data(format!(
                    "invalid parameter \"limit\": cannot parse \"{s}\" to a non-negative integer"
                ))
            }),
        }
    }

    /// `start` and `end` (default: all time) and `limit` (default: none) of the metadata endpoints.
    fn span_and_limit(&self) -> Result<(i64, i64, usize), ApiError> {
        Ok((
            self.time("start", MIN_TIME)?,
            self.time("end", MAX_TIME)?,
            self.limit()?,
        ))
    }

    /// `match[]` selectors, each turned into matchers.
    fn matches(&self) -> Result<Vec<Vec<Matcher>>, ApiError> {
        self.all("match[]")
            .into_iter()
            .map(|m| {
                let expr = eval::parse(m).map_err(|e| {
                    ApiError::bad_data(format!("invalid parameter \"match[]\": {e}"))
                })?;
                match expr {
                    promql_parser::parser::Expr::VectorSelector(vs) => {
                        eval::selector_matchers(&vs).map_err(ApiError::from)
                    }
                    _ => Err(ApiError::bad_data(format!(
                        "invalid parameter \"match[]\": {m:?} is not a series selector"
                    ))),
                }
            })
            .collect()
    }
}
