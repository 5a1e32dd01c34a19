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

use crate::eval::{self, EvalError, EvalOptions, Value};
use crate::format::{format_time, format_value};

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

fn success_raw(data_json: String, warnings: &[String]) -> Response {
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
struct Params(Vec<(String, String)>);

impl Params {
    fn from(query: Option<String>, headers: &HeaderMap, body: &Bytes) -> Params {
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

    fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    fn all(&self, k: &str) -> Vec<&str> {
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

const MIN_TIME: i64 = i64::MIN / 4;
const MAX_TIME: i64 = i64::MAX / 4;

fn json_str(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

fn labels_json(l: &Labels, out: &mut String) {
    out.push('{');
    for (i, lb) in l.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&json_str(&lb.name));
        out.push(':');
        out.push_str(&json_str(&lb.value));
    }
    out.push('}');
}

fn point_json(t: i64, v: f64, out: &mut String) {
    out.push('[');
    out.push_str(&format_time(t));
    out.push_str(",\"");
    out.push_str(&format_value(v));
    out.push_str("\"]");
}

/// The `data` object of a query result.
pub fn value_json(v: &Value) -> String {
    let mut out = String::new();
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

async fn query<R: MetricsReader>(
    State(st): State<ApiState<R>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::from(q, &headers, &body);
    let run = async {
        let qs = p
            .get("query")
            .ok_or_else(|| ApiError::bad_data("invalid parameter \"query\": query is empty"))?;
        let t = p.time("time", now_ms())?;
        let expr = eval::parse(qs)?;
        let started = Instant::now();
        let v = eval::instant(st.reader.as_ref(), &expr, t, &st.opts.eval).await?;
        tracing::debug!(
            query = qs,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "instant query"
        );
        Ok::<_, ApiError>(v)
    };
    match run.await {
        Ok(v) => success_raw(value_json(&v), &[]),
        Err(e) => e.into_response(),
    }
}

async fn query_range<R: MetricsReader>(
    State(st): State<ApiState<R>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::from(q, &headers, &body);
    let run = async {
        let qs = p
            .get("query")
            .ok_or_else(|| ApiError::bad_data("invalid parameter \"query\": query is empty"))?;
        let start = p
            .get("start")
            .ok_or_else(|| ApiError::bad_data("invalid parameter \"start\": missing"))?;
        let start = p.time("start", 0).map_err(|_| {
            ApiError::bad_data(format!(
                "invalid parameter \"start\": cannot parse \"{start}\" to a valid timestamp"
            ))
        })?;
        let end = p
            .get("end")
            .ok_or_else(|| ApiError::bad_data("invalid parameter \"end\": missing"))?;
        let end = p.time("end", 0).map_err(|_| {
            ApiError::bad_data(format!(
                "invalid parameter \"end\": cannot parse \"{end}\" to a valid timestamp"
            ))
        })?;
        if end < start {
            return Err(ApiError::bad_data(
                "invalid parameter \"end\": end timestamp must not be before start time",
            ));
        }
        let step_s = p
            .get("step")
            .ok_or_else(|| ApiError::bad_data("invalid parameter \"step\": missing"))?;
        let step = parse_api_duration(step_s).map_err(|_| {
            ApiError::bad_data(format!(
                "invalid parameter \"step\": cannot parse \"{step_s}\" to a valid duration"
            ))
        })?;
        if step <= 0 {
            return Err(ApiError::bad_data(
                "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer",
            ));
        }
        if (end - start) / step > st.opts.max_points_per_series {
            return Err(ApiError::bad_data(format!(
                "exceeded maximum resolution of {} points per timeseries. Try decreasing the query resolution (?step=XX)",
                st.opts.max_points_per_series
            )));
        }
        let expr = eval::parse(qs)?;
        Ok::<_, ApiError>(
            eval::range(st.reader.as_ref(), &expr, start, end, step, &st.opts.eval).await?,
        )
    };
    match run.await {
        Ok(v) => success_raw(value_json(&v), &[]),
        Err(e) => e.into_response(),
    }
}

async fn query_exemplars<R: MetricsReader>(
    State(st): State<ApiState<R>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::from(q, &headers, &body);
    let run = async {
        let qs = p
            .get("query")
            .ok_or_else(|| ApiError::bad_data("invalid parameter \"query\": query is empty"))?;
        let start = p.time("start", MIN_TIME)?;
        let end = p.time("end", MAX_TIME)?;
        let expr = eval::parse(qs)?;
        // Exemplars of every selector in the expression.
        let mut sets = Vec::new();
        collect_selectors(&expr, &mut sets)?;
        let ex = st.reader.exemplars(&sets, start, end).await?;
        let data: Vec<serde_json::Value> = ex
            .into_iter()
            .map(|(l, e)| {
                json!({
                    "seriesLabels": l,
                    "exemplars": e.iter().map(|x| json!({
                        "labels": x.labels,
                        "value": format_value(x.value),
                        "timestamp": serde_json::Number::from_f64(x.t as f64 / 1000.0),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        Ok::<_, ApiError>(serde_json::to_string(&data).unwrap_or_else(|_| "[]".into()))
    };
    match run.await {
        Ok(s) => success_raw(s, &[]),
        Err(e) => e.into_response(),
    }
}

fn collect_selectors(
    e: &promql_parser::parser::Expr,
    out: &mut Vec<Vec<Matcher>>,
) -> Result<(), ApiError> {
    use promql_parser::parser::Expr;
    match e {
        Expr::VectorSelector(vs) => out.push(eval::selector_matchers(vs)?),
        Expr::MatrixSelector(ms) => out.push(eval::selector_matchers(&ms.vs)?),
        Expr::Paren(p) => collect_selectors(&p.expr, out)?,
        Expr::Aggregate(a) => collect_selectors(&a.expr, out)?,
        Expr::Unary(u) => collect_selectors(&u.expr, out)?,
        Expr::Binary(b) => {
            collect_selectors(&b.lhs, out)?;
            collect_selectors(&b.rhs, out)?;
        }
        Expr::Subquery(s) => collect_selectors(&s.expr, out)?,
        Expr::Call(c) => {
            for a in &c.args.args {
                collect_selectors(a, out)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn truncated_warning(n: usize, limit: usize) -> Vec<String> {
    if limit > 0 && n >= limit {
        vec!["results truncated due to limit".into()]
    } else {
        Vec::new()
    }
}

async fn series<R: MetricsReader>(
    State(st): State<ApiState<R>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::from(q, &headers, &body);
    let run = async {
        let m = p.matches()?;
        if m.is_empty() {
            return Err(ApiError::bad_data("no match[] parameter provided"));
        }
        let (start, end, limit) = (
            p.time("start", MIN_TIME)?,
            p.time("end", MAX_TIME)?,
            p.limit()?,
        );
        let s = st.reader.series(&m, start, end, limit).await?;
        Ok::<_, ApiError>((
            serde_json::to_string(&s).unwrap_or_else(|_| "[]".into()),
            truncated_warning(s.len(), limit),
        ))
    };
    match run.await {
        Ok((s, w)) => success_raw(s, &w),
        Err(e) => e.into_response(),
    }
}

async fn labels<R: MetricsReader>(
    State(st): State<ApiState<R>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::from(q, &headers, &body);
    let run = async {
        let m = p.matches()?;
        let (start, end, limit) = (
            p.time("start", MIN_TIME)?,
            p.time("end", MAX_TIME)?,
            p.limit()?,
        );
        let n = st.reader.label_names(&m, start, end, limit).await?;
        Ok::<_, ApiError>((
            serde_json::to_string(&n).unwrap_or_else(|_| "[]".into()),
            truncated_warning(n.len(), limit),
        ))
    };
    match run.await {
        Ok((s, w)) => success_raw(s, &w),
        Err(e) => e.into_response(),
    }
}

async fn label_values<R: MetricsReader>(
    State(st): State<ApiState<R>>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::from(q, &headers, &body);
    let run = async {
        if name != "__name__" && !is_valid_label_name(&name) {
            return Err(ApiError::bad_data(format!("invalid label name: {name:?}")));
        }
        let m = p.matches()?;
        let (start, end, limit) = (
            p.time("start", MIN_TIME)?,
            p.time("end", MAX_TIME)?,
            p.limit()?,
        );
        let v = st.reader.label_values(&name, &m, start, end, limit).await?;
        Ok::<_, ApiError>((
            serde_json::to_string(&v).unwrap_or_else(|_| "[]".into()),
            truncated_warning(v.len(), limit),
        ))
    };
    match run.await {
        Ok((s, w)) => success_raw(s, &w),
        Err(e) => e.into_response(),
    }
}

async fn buildinfo<R: MetricsReader>(State(st): State<ApiState<R>>) -> Response {
    // No "features" key: Grafana would take the server for Mimir.
    let b = &st.opts.build;
    let data = json!({
        "version": b.version,
        "revision": b.revision,
        "branch": "main",
        "buildUser": "vigil",
        "buildDate": "unknown",
        "goVersion": "n/a (Rust)",
    });
    success_raw(data.to_string(), &[])
}
