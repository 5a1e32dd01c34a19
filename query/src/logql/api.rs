//! The Loki HTTP API (`/loki/api/v1/...`) as Grafana's Loki data source and Loki clients call it.
//!
//! Parameters come from the URL and, for POST, a form body. Times are nanosecond integers, float or
//! integer seconds (an integer up to 1e10 is seconds, as Loki reads it) or RFC 3339. Errors answer
//! `{"status":"error","code":…,"message":…}` with Loki's status codes (400 bad query, 422 cannot be
//! run, 503 timeout). Paths under `/loki/` that are not served answer 404.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use vigil_storage::logs::{Direction, LogsReader};

use super::ast::Query;
use super::eval::{LogqlError, LogqlLimits, LogqlStats, OutStream};
use super::{parse, parser::parse_duration, parser::parse_log_query};
use crate::api::Params;

/// State of the Loki API.
pub struct LokiApi {
    pub reader: Arc<dyn LogsReader>,
    pub limits: LogqlLimits,
    pub version: String,
}

type St = Arc<LokiApi>;

/// Routes of the Loki API.
pub fn router(api: LokiApi) -> Router {
    let st: St = Arc::new(api);
    Router::new()
        .route("/loki/api/v1/query", get(query).post(query))
        .route(
            "/loki/api/v1/query_range",
            get(query_range).post(query_range),
        )
        .route("/loki/api/v1/labels", get(labels).post(labels))
        .route("/loki/api/v1/label", get(labels))
        .route("/loki/api/v1/label/{name}/values", get(label_values))
        .route("/loki/api/v1/series", get(series).post(series))
        .route(
            "/loki/api/v1/index/stats",
            get(index_stats).post(index_stats),
        )
        .route("/loki/api/v1/status/buildinfo", get(buildinfo))
        .route("/loki/api/v1/tail", get(tail))
        .route("/loki/api/v1/detected_fields", get(detected_fields))
        .route("/loki/api/v1/detected_labels", get(detected_labels))
        .route("/loki/api/v1/patterns", get(patterns).post(patterns))
        .route("/loki/api/v1/index/volume", get(volume).post(volume))
        .route(
            "/loki/api/v1/index/volume_range",
            get(volume_range).post(volume_range),
        )
        .route("/loki/{*rest}", get(not_served).post(not_served))
        .with_state(st)
}

#[derive(Debug)]
struct LokiError(StatusCode, String);

impl IntoResponse for LokiError {
    fn into_response(self) -> Response {
        (
            self.0,
            [(header::CONTENT_TYPE, "application/json")],
            json!({"status": "error", "code": self.0.as_u16(), "message": self.1}).to_string(),
        )
            .into_response()
    }
}

fn bad(msg: impl Into<String>) -> LokiError {
    LokiError(StatusCode::BAD_REQUEST, msg.into())
}

impl From<LogqlError> for LokiError {
    fn from(e: LogqlError) -> Self {
        match e {
            LogqlError::BadData(m) => LokiError(StatusCode::BAD_REQUEST, m),
            LogqlError::Execution(m) => LokiError(StatusCode::UNPROCESSABLE_ENTITY, m),
            LogqlError::Timeout => LokiError(
                StatusCode::SERVICE_UNAVAILABLE,
                "query timed out; narrow the selector or the time range".into(),
            ),
            LogqlError::Store(m) => LokiError(StatusCode::INTERNAL_SERVER_ERROR, m),
        }
    }
}

/// Loki's timestamp rule: RFC 3339; a number with a point is seconds (nanoseconds above 1e10); an
/// integer up to 1e10 is seconds, above it nanoseconds.
pub fn parse_loki_time(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.contains('T') || s.contains('-') && s.len() > 10 && !s.starts_with('-') {
        let ms = vigil_model::parse_api_time(s).ok()?;
        let frac = s.split_once('.').map(|(_, r)| {
            let d: String = r
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .take(9)
                .collect();
            format!("{d:0<9}").parse::<i64>().unwrap_or(0) % 1_000_000
        });
        return Some(ms * 1_000_000 + frac.unwrap_or(0));
    }
    if s.contains('.') || s.contains('e') || s.contains('E') {
        let f: f64 = s.parse().ok()?;
        if !f.is_finite() {
            return None;
        }
        let high = f.trunc();
        if high.abs() <= 1e10 {
            let low = ((f - high) * 1000.0).round() / 1000.0;
            return Some(high as i64 * 1_000_000_000 + (low * 1e9) as i64);
        }
        return Some(high as i64);
    }
    let v: i64 = s.parse().ok()?;
    Some(if v.abs() <= 10_000_000_000 {
        v.saturating_mul(1_000_000_000)
    } else {
        v
    })
}

fn time_param(p: &Params, k: &str, default: i64) -> Result<i64, LokiError> {
    match p.get(k) {
        None => Ok(default),
        Some(s) => parse_loki_time(s).ok_or_else(|| {
            bad(format!(
                "invalid parameter {k:?}: cannot parse {s:?} as nanoseconds, seconds or RFC 3339"
            ))
        }),
    }
}

fn duration_param(p: &Params, k: &str) -> Result<Option<i64>, LokiError> {
    match p.get(k) {
        None => Ok(None),
        Some(s) => {
            let secs = s
                .parse::<f64>()
                .ok()
                .or_else(|| parse_duration(s))
                .filter(|d| d.is_finite() && *d >= 0.0)
                .ok_or_else(|| {
                    bad(format!(
                        "invalid parameter {k:?}: cannot parse {s:?} as a duration"
                    ))
                })?;
            Ok(Some((secs * 1e9) as i64))
        }
    }
}

fn direction(p: &Params) -> Result<Direction, LokiError> {
    match p.get("direction").map(str::to_ascii_lowercase).as_deref() {
        None | Some("backward") => Ok(Direction::Backward),
        Some("forward") => Ok(Direction::Forward),
        Some(other) => Err(bad(format!(
            "invalid parameter \"direction\": {other:?} (use forward or backward)"
        ))),
    }
}

fn limit(p: &Params, max: usize) -> Result<usize, LokiError> {
    let n = match p.get("limit") {
        None => 100,
        Some(s) => s
            .parse::<usize>()
            .map_err(|_| bad(format!("invalid parameter \"limit\": {s:?}")))?,
    };
    if n > max {
        return Err(bad(format!(
            "max entries limit per query exceeded, limit > max_entries_limit ({n} > {max})"
        )));
    }
    Ok(n)
}

fn stats_json(s: &LogqlStats) -> serde_json::Value {
    let secs = s.exec_seconds.max(1e-9);
    json!({
        "summary": {
            "bytesProcessedPerSecond": (s.bytes_processed as f64 / secs) as u64,
            "linesProcessedPerSecond": (s.lines_processed as f64 / secs) as u64,
            "totalBytesProcessed": s.bytes_processed,
            "totalLinesProcessed": s.lines_processed,
            "execTime": s.exec_seconds,
            "queueTime": 0,
            "subqueries": 0,
            "totalEntriesReturned": s.entries_returned,
            "splits": 0,
            "shards": 0,
            "totalPostFilterLines": s.entries_returned,
            "totalStructuredMetadataBytesProcessed": 0,
        }
    })
}

fn ok_json(body: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

fn streams_json(streams: &[OutStream], categorize: bool, stats: &LogqlStats) -> String {
    let result: Vec<serde_json::Value> = streams
        .iter()
        .map(|s| {
            let values: Vec<serde_json::Value> = s
                .entries
                .iter()
                .map(|e| {
                    let mut v = vec![json!(e.ts.to_string()), json!(e.line)];
                    if categorize && (!e.metadata.is_empty() || !e.parsed.is_empty()) {
                        let mut extra = serde_json::Map::new();
                        if !e.metadata.is_empty() {
                            extra.insert(
                                "structuredMetadata".into(),
                                e.metadata
                                    .iter()
                                    .map(|(k, v)| (k.clone(), json!(v)))
                                    .collect(),
                            );
                        }
                        if !e.parsed.is_empty() {
                            extra.insert(
                                "parsed".into(),
                                e.parsed
                                    .iter()
                                    .map(|(k, v)| (k.clone(), json!(v)))
                                    .collect(),
                            );
                        }
                        v.push(serde_json::Value::Object(extra));
                    }
                    serde_json::Value::Array(v)
                })
                .collect();
            json!({"stream": s.labels, "values": values})
        })
        .collect();
    // Grafana's parser wants `resultType` before `result` (serde_json's maps sort their keys).
    format!(
        "{{\"status\":\"success\",\"data\":{{\"resultType\":\"streams\",\"result\":{},\"stats\":{}{}}}}}",
        serde_json::Value::Array(result),
        stats_json(stats),
        if categorize {
            ",\"encodingFlags\":[\"categorize-labels\"]"
        } else {
            ""
        }
    )
}

fn metric_json(v: &crate::eval::Value, stats: &LogqlStats) -> String {
    let data = crate::api::value_json(v);
    // `{"resultType":…,"result":[…]}` plus the stats.
    let inner = data.strip_suffix('}').unwrap_or(&data);
    format!(
        "{{\"status\":\"success\",\"data\":{inner},\"stats\":{}}}}}",
        stats_json(stats)
    )
}

fn categorize(headers: &HeaderMap) -> bool {
    headers
        .get_all("X-Loki-Response-Encoding-Flags")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|f| f.trim() == "categorize-labels"))
}

async fn run_logs(
    st: &St,
    e: super::ast::LogExpr,
    start: i64,
    end: i64,
    limit: usize,
    dir: Direction,
    cat: bool,
) -> Result<Response, LokiError> {
    let t0 = Instant::now();
    let (streams, mut stats) = fetch_logs(st, e, start, end, limit, dir, cat).await?;
    stats.exec_seconds = t0.elapsed().as_secs_f64();
    Ok(ok_json(streams_json(&streams, cat, &stats)))
}

/// Runs a log query on a blocking thread within the query timeout.
async fn fetch_logs(
    st: &St,
    e: super::ast::LogExpr,
    start: i64,
    end: i64,
    limit: usize,
    dir: Direction,
    cat: bool,
) -> Result<(Vec<OutStream>, LogqlStats), LokiError> {
    let deadline = Instant::now() + st.limits.eval.timeout;
    read(st, move |r| {
        let mut stats = LogqlStats::default();
        super::eval::logs(r, &e, start, end, limit, dir, cat, deadline, &mut stats)
            .map(|s| (s, stats))
    })
    .await?
    .map_err(LokiError::from)
}

/// Runs a store read on a blocking thread.
async fn read<T: Send + 'static>(
    st: &St,
    f: impl FnOnce(&dyn LogsReader) -> T + Send + 'static,
) -> Result<T, LokiError> {
    let st = st.clone();
    tokio::task::spawn_blocking(move || f(&*st.reader))
        .await
        .map_err(|e| LokiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// A parameter that must be there.
fn required<'a>(p: &'a Params, key: &str) -> Result<&'a str, LokiError> {
    p.get(key)
        .ok_or_else(|| bad(format!("missing parameter {key:?}")))
}

/// A non-negative integer parameter, or `default` when absent.
fn usize_param(p: &Params, key: &str, default: usize) -> Result<usize, LokiError> {
    match p.get(key) {
        None => Ok(default),
        Some(s) => s
            .parse::<usize>()
            .map_err(|_| bad(format!("invalid parameter {key:?}: {s:?}"))),
    }
}

async fn query(
    State(st): State<St>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, LokiError> {
    let p = Params::from(q, &headers, &body);
    let text = required(&p, "query")?;
    let t = time_param(&p, "time", vigil_model::now_ns())?;
    match parse(text).map_err(|e| bad(e.to_string()))? {
        // Loki answers log queries only over a range.
        Query::Logs(_) => Err(bad(
            "log queries are not supported as an instant query type, please change your query to a range query type",
        )),
        Query::Metric { promql, aggs } => {
            let (v, stats) = super::eval::metric(
                st.reader.clone(),
                promql,
                aggs,
                t,
                t,
                1_000_000_000,
                true,
                &st.limits,
            )
            .await?;
            Ok(ok_json(metric_json(&v, &stats)))
        }
    }
}

async fn query_range(
    State(st): State<St>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, LokiError> {
    let p = Params::from(q, &headers, &body);
    let text = required(&p, "query")?;
    let end = time_param(&p, "end", vigil_model::now_ns())?;
    let since = duration_param(&p, "since")?.unwrap_or(3_600_000_000_000);
    let start = time_param(&p, "start", end.min(vigil_model::now_ns()) - since)?;
    if end < start {
        return Err(bad(
            "end timestamp must not be before or equal to start time",
        ));
    }
    let lim = limit(&p, st.limits.max_entries)?;
    let dir = direction(&p)?;
    match parse(text).map_err(|e| bad(e.to_string()))? {
        Query::Logs(e) => run_logs(&st, e, start, end, lim, dir, categorize(&headers)).await,
        Query::Metric { promql, aggs } => {
            let step = match duration_param(&p, "step")? {
                Some(s) if s > 0 => s,
                Some(_) => {
                    return Err(bad(
                        "zero or negative query resolution step widths are not accepted. Try a positive integer",
                    ));
                }
                None => (((end - start) / 1_000_000_000) / 250).max(1) * 1_000_000_000,
            };
            if (end - start) / step > 11_000 {
                return Err(bad(
                    "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
                ));
            }
            let (v, stats) = super::eval::metric(
                st.reader.clone(),
                promql,
                aggs,
                start,
                end,
                step,
                false,
                &st.limits,
            )
            .await?;
            Ok(ok_json(metric_json(&v, &stats)))
        }
    }
}

/// `start`/`end` of the metadata endpoints: default the last 6 hours.
fn meta_span(p: &Params) -> Result<(i64, i64), LokiError> {
    let end = time_param(p, "end", vigil_model::now_ns())?;
    let since = duration_param(p, "since")?.unwrap_or(6 * 3_600_000_000_000);
    let start = time_param(p, "start", end - since)?;
    Ok((start, end.saturating_add(1)))
}

fn selector(p: &Params, key: &str) -> Result<Vec<vigil_model::Matcher>, LokiError> {
    match p.get(key) {
        None => Ok(Vec::new()),
        Some(q) => parse_log_query(q)
            .map(|e| e.matchers)
            .map_err(|e| bad(format!("invalid parameter {key:?}: {e}"))),
    }
}

async fn labels(
    State(st): State<St>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, LokiError> {
    let p = Params::from(q, &headers, &body);
    let (start, end) = meta_span(&p)?;
    let ms = selector(&p, "query")?;
    let names = read(&st, move |r| r.label_names(&ms, start, end)).await?;
    Ok(ok_json(
        json!({"status": "success", "data": names}).to_string(),
    ))
}

async fn label_values(
    State(st): State<St>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, LokiError> {
    let p = Params::from(q, &headers, &body);
    let (start, end) = meta_span(&p)?;
    let ms = selector(&p, "query")?;
    let values = read(&st, move |r| r.label_values(&name, &ms, start, end)).await?;
    Ok(ok_json(
        json!({"status": "success", "data": values}).to_string(),
    ))
}

async fn series(
    State(st): State<St>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, LokiError> {
    let p = Params::from(q, &headers, &body);
    let (start, end) = meta_span(&p)?;
    let mut sets = Vec::new();
    for m in p.all("match[]").into_iter().chain(p.all("match")) {
        sets.push(
            parse_log_query(m)
                .map(|e| e.matchers)
                .map_err(|e| bad(format!("invalid parameter \"match[]\": {e}")))?,
        );
    }
    if sets.is_empty() {
        return Err(bad(
            "missing parameter \"match[]\": give at least one stream selector",
        ));
    }
    let out = read(&st, move |r| r.streams(&sets, start, end)).await?;
    let data: Vec<_> = out.iter().map(|l| l.to_map()).collect();
    Ok(ok_json(
        json!({"status": "success", "data": data}).to_string(),
    ))
}

async fn index_stats(
    State(st): State<St>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, LokiError> {
    let p = Params::from(q, &headers, &body);
    let (start, end) = meta_span(&p)?;
    let text = required(&p, "query")?;
    let ms = parse_log_query(text)
        .map(|e| e.matchers)
        .map_err(|e| bad(format!("invalid parameter \"query\": {e}")))?;
    let s = read(&st, move |r| r.stats(&ms, start, end)).await?;
    Ok(ok_json(
        json!({"streams": s.streams, "chunks": s.chunks, "bytes": s.bytes, "entries": s.entries})
            .to_string(),
    ))
}

/// `GET /loki/api/v1/tail` (WebSocket): the last `limit` entries since `start` (default: the last
/// hour), then every entry stored from now on that the query keeps, as frames
/// `{"streams":[{"stream":{…},"values":[["<ns>","line"]]}],"dropped_entries":[…]}`.
async fn tail(
    State(st): State<St>,
    RawQuery(q): RawQuery,
    ws: axum::extract::ws::WebSocketUpgrade,
) -> Result<Response, LokiError> {
    let p = Params::from(q, &HeaderMap::new(), &Bytes::new());
    let text = required(&p, "query")?;
    let e = parse_log_query(text).map_err(|e| bad(e.to_string()))?;
    let lim = limit(&p, st.limits.max_entries)?;
    let start = time_param(&p, "start", vigil_model::now_ns() - 3_600_000_000_000)?;
    Ok(ws.on_upgrade(move |socket| tail_session(st, e, start, lim, socket)))
}

fn frame(streams: &[OutStream], dropped: u64) -> String {
    let result: Vec<serde_json::Value> = streams
        .iter()
        .map(|s| {
            json!({
                "stream": s.labels,
                "values": s.entries.iter().map(|e| json!([e.ts.to_string(), e.line])).collect::<Vec<_>>(),
            })
        })
        .collect();
    let dropped: Vec<serde_json::Value> = if dropped > 0 {
        // Which entries a slow client lost is not known here, only how many.
        vec![
            json!({"labels": {}, "timestamp": vigil_model::now_ns().to_string(), "count": dropped}),
        ]
    } else {
        Vec::new()
    };
    json!({"streams": result, "dropped_entries": dropped}).to_string()
}

async fn tail_session(
    st: St,
    e: super::ast::LogExpr,
    start: i64,
    lim: usize,
    mut socket: axum::extract::ws::WebSocket,
) {
    use axum::extract::ws::Message;
    use tokio::sync::broadcast::error::RecvError;
    // Subscribe before reading the history, so nothing falls between them; what both see is sent once.
    let mut rx = st.reader.subscribe();
    let history = fetch_logs(
        &st,
        e.clone(),
        start,
        i64::MAX,
        lim,
        Direction::Backward,
        false,
    )
    .await;
    let mut seen = std::collections::HashSet::new();
    if let Ok((mut streams, _)) = history {
        for s in &mut streams {
            s.entries.reverse();
            for en in &s.entries {
                seen.insert((en.ts, en.line.clone()));
            }
        }
        if !streams.is_empty()
            && socket
                .send(Message::Text(frame(&streams, 0).into()))
                .await
                .is_err()
        {
            return;
        }
    }
    let pipeline = match super::pipeline::Pipeline::new(&e.stages) {
        Ok(p) => p,
        Err(_) => return,
    };
    loop {
        tokio::select! {
            msg = rx.recv() => {
                let (batch, dropped) = match msg {
                    Ok(b) => (b, 0),
                    Err(RecvError::Lagged(n)) => (Arc::new(Vec::new()), n),
                    Err(RecvError::Closed) => return,
                };
                let mut out: Vec<OutStream> = Vec::new();
                for s in batch.iter() {
                    if !e.matchers.iter().all(|m| m.matches(s.labels.get(&m.name).unwrap_or(""))) {
                        continue;
                    }
                    for en in &s.entries {
                        if seen.remove(&(en.ts, en.line.clone())) {
                            continue;
                        }
                        let Some(p) = pipeline.process(&s.labels, &en.metadata, en.ts, &en.line) else {
                            continue;
                        };
                        let entry = super::eval::OutEntry {
                            ts: en.ts,
                            line: p.line,
                            metadata: Vec::new(),
                            parsed: Vec::new(),
                        };
                        match out.iter_mut().find(|o| o.labels == p.labels) {
                            Some(o) => o.entries.push(entry),
                            None => out.push(OutStream { labels: p.labels, entries: vec![entry] }),
                        }
                    }
                }
                if (!out.is_empty() || dropped > 0)
                    && socket.send(Message::Text(frame(&out, dropped).into())).await.is_err()
                {
                    return;
                }
            }
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                _ => {}
            },
        }
    }
}

/// What a volume request groups by (`aggregateBy`).
enum VolumeBy {
    /// `series` (the default): one result per label set, see [`volume_query`].
    Series,
    /// `labels`: one result per label name, `{name=""}`, the bytes of the streams that carry it;
    /// only the `targetLabels` names when given.
    Labels(Option<Vec<String>>),
}

fn target_labels(p: &Params) -> Option<Vec<String>> {
    p.get("targetLabels").map(|t| {
        t.split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    })
}

/// The LogQL a volume request stands for. By series: bytes of the selected streams per group, where
/// the groups are `targetLabels` or, without them, the labels the selector names (Loki's defaults).
/// By labels: bytes per stream, summed per label name afterwards ([`label_volumes_json`]).
fn volume_query(p: &Params, range_ns: i64) -> Result<(String, VolumeBy), LokiError> {
    let text = required(p, "query")?;
    let e = parse_log_query(text).map_err(|e| bad(format!("invalid parameter \"query\": {e}")))?;
    if !e.stages.is_empty() {
        return Err(bad(
            "volume queries take a stream selector without a pipeline",
        ));
    }
    let range = format!("{}ms", (range_ns / 1_000_000).max(1));
    match p.get("aggregateBy") {
        None | Some("series") => {}
        Some("labels") => {
            return Ok((
                format!("bytes_over_time({}[{range}])", text.trim()),
                VolumeBy::Labels(target_labels(p)),
            ));
        }
        Some(other) => {
            return Err(bad(format!(
                "invalid aggregateBy {other:?}: use series or labels"
            )));
        }
    }
    let mut groups: Vec<String> = match target_labels(p) {
        Some(t) => t,
        None => e.matchers.iter().map(|m| m.name.clone()).collect(),
    };
    groups.sort();
    groups.dedup();
    // Streams without a target label are left out, as Loki leaves them out.
    let mut sel = text.trim().trim_end_matches('}').to_string();
    if let Some(t) = p.get("targetLabels") {
        for g in t.split(',').map(str::trim).filter(|g| !g.is_empty()) {
            if !e.matchers.iter().any(|m| m.name == g) {
                sel.push_str(&format!(", {g}=~\".+\""));
            }
        }
    }
    sel.push('}');
    Ok((
        format!(
            "sum by ({}) (bytes_over_time({sel}[{range}]))",
            groups.join(", ")
        ),
        VolumeBy::Series,
    ))
}

/// The answer of an `aggregateBy=labels` volume request: per-stream bytes `v` summed per label name
/// (restricted to `only`), the largest `n` names by total, each as the series `{name=""}` (a label
/// set `Labels` cannot hold, an empty value meaning no label there), in Loki's order: largest
/// first, ties by name.
fn label_volumes_json(
    v: &crate::eval::Value,
    only: Option<&[String]>,
    n: usize,
    instant: bool,
    stats: &LogqlStats,
) -> String {
    use crate::eval::Value;
    use std::collections::BTreeMap;
    let points: Vec<(&vigil_model::Labels, i64, f64)> = match v {
        Value::Vector(items) => items.iter().map(|(l, t, x)| (l, *t, *x)).collect(),
        Value::Matrix(items) => items
            .iter()
            .flat_map(|(l, pts)| pts.iter().map(move |(t, x)| (l, *t, *x)))
            .collect(),
        _ => Vec::new(),
    };
    let mut by: BTreeMap<&str, BTreeMap<i64, f64>> = BTreeMap::new();
    for (l, t, x) in points {
        for lb in l.iter() {
            if only.is_none_or(|o| o.iter().any(|n| n == lb.name)) {
                *by.entry(lb.name).or_default().entry(t).or_default() += x;
            }
        }
    }
    let mut rows: Vec<(&str, f64, BTreeMap<i64, f64>)> = by
        .into_iter()
        .map(|(name, pts)| (name, pts.values().sum(), pts))
        .collect();
    rows.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    rows.truncate(n);
    let mut out = String::from(if instant {
        "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":["
    } else {
        "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":["
    });
    for (i, (name, _, pts)) in rows.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"metric\":{");
        out.push_str(&crate::api::json_str(name));
        out.push_str(":\"\"},");
        out.push_str(if instant {
            "\"value\":"
        } else {
            "\"values\":["
        });
        for (j, (t, x)) in pts.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            crate::api::point_json(*t, *x, &mut out);
        }
        if !instant {
            out.push(']');
        }
        out.push('}');
    }
    out.push_str(&format!("]}},\"stats\":{}}}", stats_json(stats)));
    out
}

fn volume_limit(v: crate::eval::Value, n: usize) -> crate::eval::Value {
    use crate::eval::Value;
    match v {
        Value::Vector(mut items) => {
            items.sort_by(|a, b| b.2.total_cmp(&a.2));
            items.truncate(n);
            Value::Vector(items)
        }
        Value::Matrix(mut items) => {
            let total = |p: &[(i64, f64)]| p.iter().map(|x| x.1).sum::<f64>();
            items.sort_by(|a, b| total(&b.1).total_cmp(&total(&a.1)));
            items.truncate(n);
            Value::Matrix(items)
        }
        other => other,
    }
}

/// `GET /loki/api/v1/index/volume`: bytes per group over `[start, end]`, as a vector at `end`.
async fn volume(
    State(st): State<St>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, LokiError> {
    let p = Params::from(q, &headers, &body);
    let (start, end) = meta_span(&p)?;
    let end = end - 1;
    volume_answer(&st, &p, None, (end, end), (end - start).max(1)).await
}

/// `GET /loki/api/v1/index/volume_range`: bytes per group per `step` over `[start, end]`.
async fn volume_range(
    State(st): State<St>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, LokiError> {
    let p = Params::from(q, &headers, &body);
    let (start, end) = meta_span(&p)?;
    let end = end - 1;
    let step = match duration_param(&p, "step")? {
        Some(s) if s > 0 => s,
        _ => (((end - start) / 1_000_000_000) / 250).max(1) * 1_000_000_000,
    };
    volume_answer(&st, &p, Some(step), (start, end), step).await
}

/// Runs a volume request over `[start, end]`: an instant vector at `end` without a `step`, a
/// matrix with one; `range_ns` is each point's window.
async fn volume_answer(
    st: &St,
    p: &Params,
    step: Option<i64>,
    (start, end): (i64, i64),
    range_ns: i64,
) -> Result<Response, LokiError> {
    let n = p.get("limit").and_then(|l| l.parse().ok()).unwrap_or(100);
    let (text, by) = volume_query(p, range_ns)?;
    let Query::Metric { promql, aggs } = parse(&text).map_err(|e| bad(e.to_string()))? else {
        return Err(bad("not a volume query"));
    };
    let instant = step.is_none();
    let (v, stats) = super::eval::metric(
        st.reader.clone(),
        promql,
        aggs,
        start,
        end,
        step.unwrap_or(1_000_000_000),
        instant,
        &st.limits,
    )
    .await?;
    Ok(ok_json(match by {
        VolumeBy::Series => metric_json(&volume_limit(v, n), &stats),
        VolumeBy::Labels(only) => label_volumes_json(&v, only.as_deref(), n, instant, &stats),
    }))
}

async fn buildinfo(State(st): State<St>) -> Response {
    // Grafana gates Loki features on this version: Vigil answers as the Loki API level it serves.
    ok_json(
        json!({
            "version": "3.0.0",
            "revision": st.version,
            "branch": "vigil",
            "buildUser": "vigil",
            "buildDate": "",
            "goVersion": ""
        })
        .to_string(),
    )
}

async fn not_served(Path(rest): Path<String>) -> Response {
    LokiError(
        StatusCode::NOT_FOUND,
        format!("/loki/{rest} is not served by Vigil"),
    )
    .into_response()
}

/// The type Grafana's Logs Drilldown shows for a detected field, from every value seen.
fn field_type(values: &std::collections::HashSet<String>) -> &'static str {
    let all = |f: &dyn Fn(&str) -> bool| values.iter().all(|v| f(v));
    if all(&|v| v.parse::<i64>().is_ok()) {
        "int"
    } else if all(&|v| v.parse::<f64>().is_ok()) {
        "float"
    } else if all(&|v| v == "true" || v == "false") {
        "boolean"
    } else if all(&|v| super::parser::parse_duration(v).is_some()) {
        "duration"
    } else if all(&|v| super::parser::parse_bytes(v).is_some()) {
        "bytes"
    } else {
        "string"
    }
}

/// Lines a `patterns` request reads at most (the newest ones).
const PATTERN_LINES: usize = 100_000;

/// `GET /loki/api/v1/patterns?query&start&end&step` (Grafana's Logs Drilldown): the newest
/// [`PATTERN_LINES`] lines of a log query grouped into templates (see [`super::patterns`]), each with
/// its level and its line count per step: `{"status":"success","data":[{"pattern","level",
/// "samples":[[<unix seconds>, <count>]]}]}`, most lines first.
async fn patterns(
    State(st): State<St>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, LokiError> {
    let p = Params::from(q, &headers, &body);
    let text = required(&p, "query")?;
    let (start, end) = meta_span(&p)?;
    // Loki's default step for a range: about 250 points, at least a second.
    let step = duration_param(&p, "step")?
        .filter(|s| *s > 0)
        .unwrap_or_else(|| ((end - start) / 250).max(1_000_000_000));
    let e = parse_log_query(text).map_err(|e| bad(e.to_string()))?;
    let (streams, _) = fetch_logs(
        &st,
        e,
        start,
        end,
        PATTERN_LINES,
        Direction::Backward,
        false,
    )
    .await?;
    let mut miner = super::patterns::Miner::default();
    for s in &streams {
        let stream_level = s
            .labels
            .get("detected_level")
            .or_else(|| s.labels.get("level"))
            .cloned();
        for e in &s.entries {
            let level = match &stream_level {
                Some(l) => l.clone(),
                None => super::patterns::detect_level(&e.line, &e.metadata),
            };
            miner.add(&e.line, &level, e.ts.div_euclid(step) * step);
        }
    }
    let data: Vec<_> = miner
        .into_patterns()
        .into_iter()
        .map(|(pattern, level, samples)| {
            let samples: Vec<_> = samples
                .into_iter()
                .map(|(t, n)| json!([t.div_euclid(1_000_000_000), n]))
                .collect();
            json!({"pattern": pattern, "level": level, "samples": samples})
        })
        .collect();
    Ok(ok_json(
        json!({"status": "success", "data": data}).to_string(),
    ))
}

/// Labels Loki's `detected_labels` keeps even when every value looks like an id or a number.
const STATIC_LABELS: [&str; 4] = ["cluster", "namespace", "instance", "pod"];

/// True when `v` is a number or a UUID (with or without dashes, braces or a `urn:uuid:` prefix, as
/// Go's `uuid.Parse` reads them).
fn id_like(v: &str) -> bool {
    if v.trim().parse::<f64>().is_ok() {
        return true;
    }
    let v = v.strip_prefix("urn:uuid:").unwrap_or(v);
    let v = v
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .unwrap_or(v);
    let dashes: &[usize] = match v.len() {
        32 => &[],
        36 => &[8, 13, 18, 23],
        _ => return false,
    };
    v.bytes().enumerate().all(|(i, b)| {
        if dashes.contains(&i) {
            b == b'-'
        } else {
            b.is_ascii_hexdigit()
        }
    })
}

/// `GET /loki/api/v1/detected_labels?query&start&end` (Grafana's Logs Drilldown): the stream labels of
/// the streams a selector matches (all streams without one), each with its number of distinct values.
/// As Loki: a label whose values are all numbers or UUIDs is left out, except `cluster`, `namespace`,
/// `instance` and `pod`.
async fn detected_labels(
    State(st): State<St>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, LokiError> {
    use std::collections::{BTreeMap, BTreeSet};
    let p = Params::from(q, &headers, &body);
    let (start, end) = meta_span(&p)?;
    let ms = selector(&p, "query")?;
    let sets = if ms.is_empty() { Vec::new() } else { vec![ms] };
    let streams = read(&st, move |r| r.streams(&sets, start, end)).await?;
    let mut values: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for l in &streams {
        for (k, v) in l.to_map() {
            values.entry(k).or_default().insert(v);
        }
    }
    let out: Vec<_> = values
        .into_iter()
        .filter(|(k, vs)| STATIC_LABELS.contains(&k.as_str()) || !vs.iter().all(|v| id_like(v)))
        .map(|(k, vs)| json!({"label": k, "cardinality": vs.len()}))
        .collect();
    Ok(ok_json(json!({"detectedLabels": out}).to_string()))
}

/// `GET /loki/api/v1/detected_fields?query&start&end&limit&field_limit`: the fields found in the
/// newest `limit` (default 1000) lines of a log query: what `json` or `logfmt` would extract from
/// each line, and structured metadata; with their type, number of distinct values and parser.
async fn detected_fields(
    State(st): State<St>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, LokiError> {
    use super::ast::Stage;
    use super::pipeline::Pipeline;
    use std::collections::{BTreeMap, BTreeSet, HashSet};
    let p = Params::from(q, &headers, &body);
    let text = required(&p, "query")?;
    let (start, end) = meta_span(&p)?;
    let key = if p.get("line_limit").is_some() {
        "line_limit"
    } else {
        "limit"
    };
    let lines = usize_param(&p, key, 1000)?.min(st.limits.max_entries.max(1000));
    let field_limit = usize_param(&p, "field_limit", 1000)?;
    let e = parse_log_query(text).map_err(|e| bad(e.to_string()))?;
    let (streams, _) = fetch_logs(&st, e, start, end, lines, Direction::Backward, true).await?;
    let json_p = Pipeline::new(&[Stage::Json(Vec::new())]).map_err(bad)?;
    let logfmt_p = Pipeline::new(&[Stage::Logfmt {
        strict: false,
        keep_empty: false,
        params: Vec::new(),
    }])
    .map_err(bad)?;
    let none = vigil_model::Labels::empty();
    // name -> (distinct values, parsers)
    let mut fields: BTreeMap<String, (HashSet<String>, BTreeSet<&'static str>)> = BTreeMap::new();
    for s in &streams {
        for en in &s.entries {
            for (k, v) in &en.metadata {
                fields.entry(k.clone()).or_default().0.insert(v.clone());
            }
            let (pl, parser) = if en.line.trim_start().starts_with('{') {
                (&json_p, "json")
            } else {
                (&logfmt_p, "logfmt")
            };
            let Some(out) = pl.process(&none, &[], en.ts, &en.line) else {
                continue;
            };
            if out.labels.contains_key("__error__") {
                continue;
            }
            for (k, v) in out.labels {
                let f = fields.entry(k).or_default();
                f.0.insert(v);
                f.1.insert(parser);
            }
        }
    }
    let out: Vec<serde_json::Value> = fields
        .into_iter()
        .take(field_limit)
        .map(|(label, (values, parsers))| {
            json!({
                "label": label,
                "type": field_type(&values),
                "cardinality": values.len(),
                "parsers": if parsers.is_empty() { serde_json::Value::Null } else { json!(parsers) },
            })
        })
        .collect();
    Ok(ok_json(json!({"fields": out, "limit": lines}).to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loki_times() {
        assert_eq!(
            parse_loki_time("1700000000"),
            Some(1_700_000_000_000_000_000)
        );
        assert_eq!(
            parse_loki_time("1700000000000000001"),
            Some(1_700_000_000_000_000_001)
        );
        assert_eq!(
            parse_loki_time("1700000000.5"),
            Some(1_700_000_000_500_000_000)
        );
        assert_eq!(
            parse_loki_time("4000000000"),
            Some(4_000_000_000_000_000_000)
        );
        assert_eq!(
            parse_loki_time("2023-11-14T22:13:20.000000001Z"),
            Some(1_700_000_000_000_000_001)
        );
        assert_eq!(parse_loki_time("yesterday"), None);
    }
}
