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
        out.push_str(&json_str(lb.name));
        out.push(':');
        out.push_str(&json_str(lb.value));
    }
    out.push('}');
}

fn point_json(t: i64, v: f64, out: &mut String) {
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

/// Evaluation options of one request: the `timeout` parameter can only shorten the server's timeout.
fn eval_options(st_opts: &ApiOptions, p: &Params) -> Result<EvalOptions, ApiError> {
    let mut o = st_opts.eval.clone();
    if let Some(t) = p.get("timeout") {
        let ms = parse_api_duration(t).map_err(|_| {
            ApiError::bad_data(format!(
                "invalid parameter \"timeout\": cannot parse \"{t}\" to a valid duration"
            ))
        })?;
        if ms > 0 {
            o.timeout = o.timeout.min(std::time::Duration::from_millis(ms as u64));
        }
    }
    Ok(o)
}

/// The `stats` object Prometheus adds to `data` when asked with `stats=all`.
fn stats_json(s: &QueryStats, total: f64) -> String {
    json!({
        "timings": {
            "evalTotalTime": total,
            "resultSortTime": 0.0,
            "queryPreparationTime": s.load_seconds,
            "innerEvalTime": s.eval_seconds,
            "execQueueTime": 0.0,
            "execTotalTime": total,
        },
        "samples": {
            "totalQueryableSamples": s.samples_loaded,
            "peakSamples": s.peak_points,
        },
    })
    .to_string()
}

/// Answers a query: the result, its stats when asked, and a log line when it was slow.
fn answer(
    opts: &ApiOptions,
    p: &Params,
    q: &str,
    v: &Value,
    stats: &QueryStats,
    started: Instant,
) -> Response {
    let total = started.elapsed();
    if total >= opts.slow_query_threshold {
        tracing::info!(
            query = q,
            seconds = total.as_secs_f64(),
            series = stats.series_loaded,
            samples = stats.samples_loaded,
            "slow query"
        );
    }
    let mut data = value_json(v);
    if p.get("stats").is_some() {
        data.pop();
        data.push_str(",\"stats\":");
        data.push_str(&stats_json(stats, total.as_secs_f64()));
        data.push('}');
    }
    success_raw(data, &[])
}

async fn query<R: MetricsReader>(
    State(st): State<ApiState<R>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::from(q, &headers, &body);
    let started = Instant::now();
    let run = async {
        let qs = p
            .get("query")
            .ok_or_else(|| ApiError::bad_data("invalid parameter \"query\": query is empty"))?;
        let t = p.time("time", now_ms())?;
        let opts = eval_options(&st.opts, &p)?;
        let expr = eval::parse(qs)?;
        let (v, stats) = eval::instant(st.reader.as_ref(), expr, t, &opts).await?;
        Ok::<_, ApiError>((qs, v, stats))
    };
    match run.await {
        Ok((qs, v, stats)) => answer(&st.opts, &p, qs, &v, &stats, started),
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
    let started = Instant::now();
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
        let opts = eval_options(&st.opts, &p)?;
        let expr = eval::parse(qs)?;
        let (v, stats) = eval::range(st.reader.as_ref(), expr, start, end, step, &opts).await?;
        Ok::<_, ApiError>((qs, v, stats))
    };
    match run.await {
        Ok((qs, v, stats)) => answer(&st.opts, &p, qs, &v, &stats, started),
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

/// A list answer of the metadata endpoints: the items, plus Prometheus's warning when `limit` cut it.
fn list_response<T: serde::Serialize>(res: Result<(Vec<T>, usize), ApiError>) -> Response {
    match res {
        Ok((items, limit)) => {
            let warnings: Vec<String> = if limit > 0 && items.len() >= limit {
                vec!["results truncated due to limit".into()]
            } else {
                Vec::new()
            };
            success_raw(
                serde_json::to_string(&items).unwrap_or_else(|_| "[]".into()),
                &warnings,
            )
        }
        Err(e) => e.into_response(),
    }
}

async fn series<R: MetricsReader>(
    State(st): State<ApiState<R>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::from(q, &headers, &body);
    list_response(
        async {
            let m = p.matches()?;
            if m.is_empty() {
                return Err(ApiError::bad_data("no match[] parameter provided"));
            }
            let (start, end, limit) = p.span_and_limit()?;
            Ok((st.reader.series(&m, start, end, limit).await?, limit))
        }
        .await,
    )
}

async fn labels<R: MetricsReader>(
    State(st): State<ApiState<R>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::from(q, &headers, &body);
    list_response(
        async {
            let m = p.matches()?;
            let (start, end, limit) = p.span_and_limit()?;
            Ok((st.reader.label_names(&m, start, end, limit).await?, limit))
        }
        .await,
    )
}

async fn label_values<R: MetricsReader>(
    State(st): State<ApiState<R>>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::from(q, &headers, &body);
    list_response(
        async {
            if name != "__name__" && !is_valid_label_name(&name) {
                return Err(ApiError::bad_data(format!("invalid label name: {name:?}")));
            }
            let m = p.matches()?;
            let (start, end, limit) = p.span_and_limit()?;
            Ok((
                st.reader.label_values(&name, &m, start, end, limit).await?,
                limit,
            ))
        }
        .await,
    )
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

async fn format_query(RawQuery(q): RawQuery, headers: HeaderMap, body: Bytes) -> Response {
    let p = Params::from(q, &headers, &body);
    let run = || {
        let qs = p
            .get("query")
            .ok_or_else(|| ApiError::bad_data("invalid parameter \"query\": query is empty"))?;
        let expr = eval::parse(qs)?;
        Ok::<_, ApiError>(expr.prettify())
    };
    match run() {
        Ok(s) => success_raw(json_str(&s), &[]),
        Err(e) => e.into_response(),
    }
}

async fn metadata<R: MetricsReader>(
    State(st): State<ApiState<R>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::from(q, &headers, &body);
    let limit = match p.get("limit") {
        None => 0,
        Some(s) => match s.parse::<i64>() {
            Ok(n) if n >= 0 => n as usize,
            // Prometheus treats a negative limit as "no limit".
            Ok(_) => 0,
            Err(_) => return ApiError::bad_data("limit must be a number").into_response(),
        },
    };
    let m = st.reader.metadata(p.get("metric"), limit);
    let mut data = serde_json::Map::new();
    for (name, recs) in m {
        data.insert(name, serde_json::to_value(recs).unwrap_or_default());
    }
    success_raw(serde_json::Value::Object(data).to_string(), &[])
}

async fn status_config<R: MetricsReader>(State(st): State<ApiState<R>>) -> Response {
    let yaml = st
        .opts
        .config_yaml
        .read()
        .map(|y| y.clone())
        .unwrap_or_default();
    success_raw(json!({ "yaml": yaml }).to_string(), &[])
}

async fn status_flags<R: MetricsReader>(State(st): State<ApiState<R>>) -> Response {
    let mut m = serde_json::Map::new();
    for (k, v) in &st.opts.flags {
        m.insert(k.clone(), serde_json::Value::String(v.clone()));
    }
    success_raw(serde_json::Value::Object(m).to_string(), &[])
}

async fn status_runtimeinfo<R: MetricsReader>(State(st): State<ApiState<R>>) -> Response {
    let started = st
        .opts
        .started
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let data = json!({
        "startTime": crate::format::rfc3339(started),
        "CWD": cwd,
        "reloadConfigSuccess": true,
        "lastConfigTime": crate::format::rfc3339(started),
        "corruptionCount": 0,
        "goroutineCount": 0,
        "GOMAXPROCS": threads,
        "GOMEMLIMIT": 0,
        "GOGC": "",
        "GODEBUG": "",
        "storageRetention": st.opts.retention,
    });
    success_raw(data.to_string(), &[])
}

/// Cardinality statistics over the series of the last 2h (Prometheus reports its head block).
async fn status_tsdb<R: MetricsReader>(
    State(st): State<ApiState<R>>,
    RawQuery(q): RawQuery,
) -> Response {
    let p = Params::from(q, &HeaderMap::new(), &Bytes::new());
    let limit = p
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0)
        .unwrap_or(10);
    let now = now_ms();
    let all = match Matcher::new(vigil_model::MatchOp::Regex, "__name__", ".+") {
        Ok(m) => vec![vec![m]],
        Err(e) => return ApiError::internal(e.to_string()).into_response(),
    };
    let series = match st.reader.series(&all, now - 2 * 3600 * 1000, now, 0).await {
        Ok(s) => s,
        Err(e) => return ApiError::from(e).into_response(),
    };
    use std::collections::HashMap;
    let mut by_name: HashMap<&str, u64> = HashMap::new();
    let mut values_by_label: HashMap<&str, std::collections::HashSet<&str>> = HashMap::new();
    let mut bytes_by_label: HashMap<&str, u64> = HashMap::new();
    let mut by_pair: HashMap<String, u64> = HashMap::new();
    let mut pairs = 0u64;
    for l in &series {
        if let Some(n) = l.metric_name() {
            *by_name.entry(n).or_default() += 1;
        }
        for lb in l.iter() {
            pairs += 1;
            if values_by_label.entry(lb.name).or_default().insert(lb.value) {
                *bytes_by_label.entry(lb.name).or_default() += lb.value.len() as u64;
            }
            *by_pair
                .entry(format!("{}={}", lb.name, lb.value))
                .or_default() += 1;
        }
    }
    fn top<K: ToString>(
        m: impl IntoIterator<Item = (K, u64)>,
        limit: usize,
    ) -> Vec<serde_json::Value> {
        let mut v: Vec<(String, u64)> = m.into_iter().map(|(k, n)| (k.to_string(), n)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v.into_iter()
            .take(limit)
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect()
    }
    let data = json!({
        "headStats": {
            "numSeries": series.len(),
            "numLabelPairs": pairs,
            "chunkCount": 0,
            "minTime": now - 2 * 3600 * 1000,
            "maxTime": now,
        },
        "seriesCountByMetricName": top(by_name, limit),
        "labelValueCountByLabelName": top(values_by_label.iter().map(|(k, v)| (*k, v.len() as u64)), limit),
        "memoryInBytesByLabelName": top(bytes_by_label, limit),
        "seriesCountByLabelValuePair": top(by_pair, limit),
    });
    success_raw(data.to_string(), &[])
}
