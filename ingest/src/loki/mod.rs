//! Loki push: `POST /loki/api/v1/push` (and the old `/api/prom/push`), protobuf (snappy) or JSON,
//! gzip/deflate bodies, into [`vigil_storage::logs::LogsAppender`].
//!
//! Answers as Loki does: 204 when everything was stored; 400 for an undecodable body (nothing stored)
//! or for invalid streams and entries (the valid rest stored, the body naming the first problems); 429
//! with `Retry-After` for the ingestion rate limit (nothing stored) and the active stream limit (the
//! rest stored); 5xx only when the store failed (nothing acknowledged: senders retry). The tenant
//! header `X-Scope-OrgID` is accepted and ignored: Vigil has one tenant.

pub mod decode;
pub mod elastic;
pub mod otlp;

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use tokio::sync::Semaphore;
use vigil_model::{Labels, LogEntry, LogStream, PromDuration, is_valid_label_name};
use vigil_storage::ByteSize;
use vigil_storage::logs::LogsAppender;

use crate::metrics::{IngestMetrics, ProtocolCodeLabel, ProtocolLabel, ProtocolReasonLabel};
use decode::RawPush;

const PROTOCOL: &str = "loki";

/// `ingest.logs`: limits on pushed logs (Loki's `limits_config` names and defaults where Loki has them).
#[derive(Clone, Debug, serde::Deserialize, serde::Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogLimits {
    /// Longest line; longer ones are refused (or cut, with `max_line_size_truncate`).
    pub max_line_size: ByteSize,
    pub max_line_size_truncate: bool,
    pub max_label_names_per_series: usize,
    pub max_label_name_length: usize,
    pub max_label_value_length: usize,
    /// Largest structured metadata of one entry (names and values together).
    pub max_structured_metadata_size: ByteSize,
    /// Refuse entries older than this (0 = accept any age).
    pub reject_old_samples_max_age: PromDuration,
    /// Refuse entries further in the future than this.
    pub creation_grace_period: PromDuration,
    /// Most streams taking entries at once (since the last cut); a new stream past it gets 429.
    pub max_streams: usize,
    /// Sustained bytes of lines per second (0 = unlimited) and the burst above it.
    pub ingestion_rate: ByteSize,
    pub ingestion_burst_size: ByteSize,
    /// How Elasticsearch `_bulk` documents become entries.
    pub elasticsearch: elastic::ElasticConfig,
}

impl Default for LogLimits {
    fn default() -> Self {
        LogLimits {
            max_line_size: ByteSize(256 << 10),
            max_line_size_truncate: false,
            max_label_names_per_series: 15,
            max_label_name_length: 1024,
            max_label_value_length: 2048,
            max_structured_metadata_size: ByteSize(64 << 10),
            reject_old_samples_max_age: PromDuration::from_secs(7 * 24 * 3600),
            creation_grace_period: PromDuration::from_secs(600),
            max_streams: 100_000,
            ingestion_rate: ByteSize(256 << 20),
            ingestion_burst_size: ByteSize(512 << 20),
            elasticsearch: elastic::ElasticConfig::default(),
        }
    }
}

/// A token bucket over line bytes.
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// State of the Loki push endpoints.
#[derive(Clone)]
pub struct LokiPush {
    pub store: Arc<dyn LogsAppender>,
    pub limits: LogLimits,
    pub metrics: IngestMetrics,
    pub max_decoded_bytes: usize,
    inflight: Arc<Semaphore>,
    bucket: Arc<Mutex<Bucket>>,
}

impl LokiPush {
    pub fn new(
        store: Arc<dyn LogsAppender>,
        limits: LogLimits,
        metrics: IngestMetrics,
        max_decoded_bytes: usize,
        max_inflight: usize,
    ) -> Self {
        let burst = limits.ingestion_burst_size.0 as f64;
        LokiPush {
            store,
            limits,
            metrics,
            max_decoded_bytes,
            inflight: Arc::new(Semaphore::new(max_inflight.max(1))),
            bucket: Arc::new(Mutex::new(Bucket {
                tokens: burst,
                at: Instant::now(),
            })),
        }
    }

    /// Takes `bytes` from the rate limit, or says how long until they would be there.
    fn take(&self, bytes: u64) -> Result<(), Duration> {
        let rate = self.limits.ingestion_rate.0 as f64;
        if rate <= 0.0 {
            return Ok(());
        }
        let burst = (self.limits.ingestion_burst_size.0 as f64).max(rate);
        let mut b = self.bucket.lock();
        let now = Instant::now();
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(burst);
        b.at = now;
        let want = bytes as f64;
        if want <= b.tokens {
            b.tokens -= want;
            return Ok(());
        }
        Err(Duration::from_secs_f64(
            ((want.min(burst) - b.tokens) / rate).max(1.0),
        ))
    }
}

/// Turns a decoded push into valid streams; returns them and the problems found (invalid streams and
/// entries are left out).
pub fn validate(
    push: RawPush,
    limits: &LogLimits,
    now: i64,
    mut rejected: impl FnMut(&'static str, u64),
) -> (Vec<LogStream>, Vec<String>) {
    let mut out = Vec::with_capacity(push.streams.len());
    let mut problems = Vec::new();
    let oldest = (!limits.reject_old_samples_max_age.0.is_zero())
        .then(|| now - limits.reject_old_samples_max_age.0.as_nanos() as i64);
    let newest = now + limits.creation_grace_period.0.as_nanos() as i64;
    for s in push.streams {
        let n = s.entries.len() as u64;
        let bad = |why: String| format!("stream {}: {why}", s.selector);
        if s.labels.is_empty() {
            problems.push(bad("at least one label pair is required per stream".into()));
            rejected("missing_labels", n);
            continue;
        }
        if let Some((name, _)) = s.labels.iter().find(|(k, _)| !is_valid_label_name(k)) {
            problems.push(bad(format!(
                "invalid label name {name:?}: names match [a-zA-Z_][a-zA-Z0-9_]*"
            )));
            rejected("invalid_label_name", n);
            continue;
        }
        let mut names: Vec<&str> = s.labels.iter().map(|(k, _)| k.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            problems.push(bad(format!("duplicate label name {:?}", w[0])));
            rejected("duplicate_label_names", n);
            continue;
        }
        if s.labels.len() > limits.max_label_names_per_series {
            problems.push(bad(format!(
                "{} label names, over the limit of {} (ingest.logs.max_label_names_per_series)",
                s.labels.len(),
                limits.max_label_names_per_series
            )));
            rejected("max_label_names_per_series", n);
            continue;
        }
        if let Some((k, _)) = s
            .labels
            .iter()
            .find(|(k, _)| k.len() > limits.max_label_name_length)
        {
            problems.push(bad(format!(
                "label name {k:?} is {} bytes, over the limit of {}",
                k.len(),
                limits.max_label_name_length
            )));
            rejected("label_name_too_long", n);
            continue;
        }
        if let Some((k, v)) = s
            .labels
            .iter()
            .find(|(_, v)| v.len() > limits.max_label_value_length)
        {
            problems.push(bad(format!(
                "value of label {k:?} is {} bytes, over the limit of {}",
                v.len(),
                limits.max_label_value_length
            )));
            rejected("label_value_too_long", n);
            continue;
        }
        let labels = Labels::from_pairs(s.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        if labels.is_empty() {
            problems.push(bad("every label value is empty".into()));
            rejected("missing_labels", n);
            continue;
        }
        let mut entries = Vec::with_capacity(s.entries.len());
        for e in s.entries {
            if oldest.is_some_and(|o| e.ts < o) {
                problems.push(bad(format!(
                    "entry at {} is too old: the oldest accepted is {} (ingest.logs.reject_old_samples_max_age {})",
                    e.ts,
                    oldest.unwrap_or_default(),
                    limits.reject_old_samples_max_age
                )));
                rejected("too_old", 1);
                continue;
            }
            if e.ts > newest {
                problems.push(bad(format!(
                    "entry at {} is too far in the future: the newest accepted is {} (ingest.logs.creation_grace_period {})",
                    e.ts, newest, limits.creation_grace_period
                )));
                rejected("too_far_in_future", 1);
                continue;
            }
            let mut line = e.line;
            if line.len() > limits.max_line_size.0 as usize {
                if limits.max_line_size_truncate {
                    let mut cut = limits.max_line_size.0 as usize;
                    while !line.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    line.truncate(cut);
                } else {
                    problems.push(bad(format!(
                        "line of {} bytes at {} is over the limit of {} bytes (ingest.logs.max_line_size)",
                        line.len(),
                        e.ts,
                        limits.max_line_size.0
                    )));
                    rejected("line_too_long", 1);
                    continue;
                }
            }
            let meta_size: usize = e.metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
            if meta_size > limits.max_structured_metadata_size.0 as usize {
                problems.push(bad(format!(
                    "structured metadata of {meta_size} bytes at {} is over the limit of {} bytes",
                    e.ts, limits.max_structured_metadata_size.0
                )));
                rejected("structured_metadata_too_large", 1);
                continue;
            }
            if let Some((k, _)) = e.metadata.iter().find(|(k, _)| !is_valid_label_name(k)) {
                problems.push(bad(format!(
                    "invalid structured metadata name {k:?} at {}",
                    e.ts
                )));
                rejected("invalid_structured_metadata", 1);
                continue;
            }
            entries.push(LogEntry {
                ts: e.ts,
                line,
                metadata: e.metadata,
            });
        }
        if !entries.is_empty() {
            out.push(LogStream { labels, entries });
        }
    }
    (out, problems)
}

fn decompress(headers: &HeaderMap, body: &[u8], limit: usize) -> Result<Vec<u8>, String> {
    let ce = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let mut out = Vec::new();
    let res = match ce.as_str() {
        "" | "identity" => return Ok(body.to_vec()),
        "gzip" => flate2::read::GzDecoder::new(body)
            .take(limit as u64 + 1)
            .read_to_end(&mut out),
        "deflate" => {
            // HTTP's deflate is zlib-wrapped; some clients send raw deflate.
            let r = flate2::read::ZlibDecoder::new(body)
                .take(limit as u64 + 1)
                .read_to_end(&mut out);
            if r.is_err() {
                out.clear();
                flate2::read::DeflateDecoder::new(body)
                    .take(limit as u64 + 1)
                    .read_to_end(&mut out)
            } else {
                r
            }
        }
        other => {
            return Err(format!(
                "unsupported Content-Encoding {other:?}: use gzip, deflate or none"
            ));
        }
    };
    res.map_err(|e| format!("{ce}: {e}"))?;
    if out.len() > limit {
        return Err(format!(
            "the decompressed body is over the {limit} byte limit"
        ));
    }
    Ok(out)
}

/// Decodes a push body by its Content-Type (protobuf when absent, as Loki does).
pub fn decode_body(headers: &HeaderMap, body: &[u8], limit: usize) -> Result<RawPush, String> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let raw = decompress(headers, body, limit)?;
    match media.as_str() {
        "" | "application/x-protobuf" | "application/protobuf" => decode::protobuf(&raw, limit),
        "application/json" => decode::json(&raw),
        _ => Err(format!(
            "unsupported Content-Type {ct:?}: use application/x-protobuf (snappy) or application/json"
        )),
    }
}

fn text(code: StatusCode, msg: String) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        msg + "\n",
    )
        .into_response()
}

/// What became of a decoded push.
pub enum Outcome {
    Stored,
    /// Some streams or entries were invalid (the rest stored): the problems, and how many entries.
    Invalid(Vec<String>, u64),
    /// The rate limit refused the push (nothing stored): how long to wait, and why.
    RateLimited(Duration, String),
    /// New streams past the stream limit (the rest stored).
    StreamLimited(Vec<String>, u64),
    /// The store failed: nothing acknowledged.
    StoreFailed(String),
}

/// Validates, limits and stores a decoded push (blocking: the WAL fsync).
pub fn store_push(st: &LokiPush, push: RawPush, protocol: &'static str) -> Outcome {
    let reject = |reason: &'static str, n: u64| {
        if n > 0 {
            st.metrics
                .log_entries_rejected
                .get_or_create(&ProtocolReasonLabel { protocol, reason })
                .inc_by(n);
        }
    };
    let entries: u64 = push.streams.iter().map(|s| s.entries.len() as u64).sum();
    let bytes: u64 = push
        .streams
        .iter()
        .flat_map(|s| s.entries.iter())
        .map(|e| e.line.len() as u64)
        .sum();
    st.metrics
        .log_entries_received
        .get_or_create(&ProtocolLabel { protocol })
        .inc_by(entries);
    if let Err(wait) = st.take(bytes) {
        reject("rate_limited", entries);
        return Outcome::RateLimited(
            wait,
            format!(
                "ingestion rate limit exceeded ({} bytes/s, ingest.logs.ingestion_rate) while pushing {entries} lines totaling {bytes} bytes; retry later or raise the limit",
                st.limits.ingestion_rate.0
            ),
        );
    }
    let mut invalid = 0u64;
    let (mut streams, problems) = validate(push, &st.limits, vigil_model::now_ns(), |r, n| {
        invalid += n;
        reject(r, n)
    });
    // The active stream limit: streams new to the head past it are refused.
    let mut limited = Vec::new();
    let mut limited_entries = 0u64;
    if st.limits.max_streams > 0 {
        let mut active = st.store.active_streams();
        streams.retain(|s| {
            let known = st.store.is_active(&s.labels);
            if known || active < st.limits.max_streams {
                active += (!known) as usize;
                true
            } else {
                limited.push(format!(
                    "stream {} refused: {} active streams, the limit (ingest.logs.max_streams)",
                    s.labels, st.limits.max_streams
                ));
                limited_entries += s.entries.len() as u64;
                reject("stream_limit", s.entries.len() as u64);
                false
            }
        });
    }
    if !streams.is_empty() {
        match append(st, streams, protocol) {
            Ok(()) => {}
            Err(e @ vigil_storage::logs::LogsError::Backlog { .. }) => {
                reject("indexing_backlog", entries);
                return Outcome::RateLimited(BACKLOG_RETRY, e.to_string());
            }
            Err(e) => {
                return Outcome::StoreFailed(format!("the log store cannot take writes: {e}"));
            }
        }
    }
    if !limited.is_empty() {
        return Outcome::StreamLimited(limited, limited_entries);
    }
    if !problems.is_empty() {
        return Outcome::Invalid(problems, invalid);
    }
    Outcome::Stored
}

/// Problems listed in an answer; the rest are counted.
const MAX_LISTED: usize = 10;

/// Joins the first problems into one message, counting the rest.
pub fn summarize(mut problems: Vec<String>, tail: &str) -> String {
    let n = problems.len();
    problems.truncate(MAX_LISTED);
    let mut msg = problems.join("\n");
    if n > MAX_LISTED {
        msg.push_str(&format!("\n… and {} more", n - MAX_LISTED));
    }
    msg.push_str(tail);
    msg
}

fn observe(st: &LokiPush, protocol: &'static str, t0: Instant, resp: &Response) {
    st.metrics
        .requests
        .get_or_create(&ProtocolCodeLabel {
            protocol,
            code: resp.status().as_u16(),
        })
        .inc();
    st.metrics
        .request_seconds
        .get_or_create(&ProtocolLabel { protocol })
        .observe(t0.elapsed().as_secs_f64());
}

/// Waits for a processing slot, or answers 429.
async fn slot(st: &LokiPush) -> Result<tokio::sync::OwnedSemaphorePermit, Response> {
    match tokio::time::timeout(Duration::from_secs(10), st.inflight.clone().acquire_owned()).await {
        Ok(Ok(p)) => Ok(p),
        _ => {
            let mut r = text(
                StatusCode::TOO_MANY_REQUESTS,
                "too many concurrent push requests; retry later".into(),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            Err(r)
        }
    }
}

/// How long pushers refused for an indexing backlog are told to wait.
pub(crate) const BACKLOG_RETRY: Duration = Duration::from_secs(2);

/// Appends to the log store and counts what was written under `protocol`.
pub(crate) fn append(
    st: &LokiPush,
    streams: Vec<LogStream>,
    protocol: &'static str,
) -> Result<(), vigil_storage::logs::LogsError> {
    let a = st.store.append(streams)?;
    let label = ProtocolLabel { protocol };
    st.metrics
        .log_entries_written
        .get_or_create(&label)
        .inc_by(a.entries);
    st.metrics
        .log_bytes_written
        .get_or_create(&label)
        .inc_by(a.bytes);
    Ok(())
}

/// `POST /loki/api/v1/push`, `POST /api/prom/push`.
pub async fn handle(State(state): State<LokiPush>, headers: HeaderMap, body: Bytes) -> Response {
    run_blocking(
        state,
        PROTOCOL,
        move |st| loki_request(st, &headers, &body),
        |e| text(StatusCode::INTERNAL_SERVER_ERROR, e),
    )
    .await
}

fn loki_request(st: &LokiPush, headers: &HeaderMap, body: &[u8]) -> Response {
    let push = match decode_body(headers, body, st.max_decoded_bytes) {
        Ok(p) => p,
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("cannot decode the push: {e}"),
            );
        }
    };
    match store_push(st, push, PROTOCOL) {
        Outcome::Stored => StatusCode::NO_CONTENT.into_response(),
        Outcome::Invalid(p, _) => text(
            StatusCode::BAD_REQUEST,
            summarize(p, "\nevery valid entry was stored"),
        ),
        Outcome::RateLimited(wait, msg) => {
            let mut r = text(StatusCode::TOO_MANY_REQUESTS, msg);
            if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
        Outcome::StreamLimited(p, _) => {
            let mut r = text(StatusCode::TOO_MANY_REQUESTS, summarize(p, ""));
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
            r
        }
        Outcome::StoreFailed(m) => text(StatusCode::SERVICE_UNAVAILABLE, m),
    }
}

/// `POST /v1/logs`, `POST /otlp/v1/logs`: OTLP/HTTP logs, protobuf or JSON, answered in the request's
/// encoding; invalid records are reported as a partial success.
pub async fn handle_otlp(
    State(state): State<LokiPush>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    run_blocking(
        state,
        OTLP_PROTOCOL,
        move |st| otlp_request(st, &headers, &body),
        |e| text(StatusCode::INTERNAL_SERVER_ERROR, e),
    )
    .await
}

/// Runs a push's work on a blocking thread (the WAL fsync) once a processing slot is free, and
/// records the request; `internal` answers a panic of `work`.
pub(crate) async fn run_blocking<F>(
    state: LokiPush,
    protocol: &'static str,
    work: F,
    internal: fn(String) -> Response,
) -> Response
where
    F: FnOnce(&LokiPush) -> Response + Send + 'static,
{
    let t0 = Instant::now();
    let resp = match slot(&state).await {
        Err(r) => r,
        Ok(permit) => {
            let st = state.clone();
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                work(&st)
            })
            .await
            .unwrap_or_else(|e| internal(format!("internal error: {e}")))
        }
    };
    observe(&state, protocol, t0, &resp);
    resp
}

const OTLP_PROTOCOL: &str = "otlp_logs";

fn otlp_request(st: &LokiPush, headers: &HeaderMap, body: &[u8]) -> Response {
    use opentelemetry_proto::tonic::collector::logs::v1::{
        ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
    };
    use prost::Message;
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let json = match ct.as_str() {
        "application/x-protobuf" | "application/protobuf" => false,
        "application/json" => true,
        other => {
            return text(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "unsupported Content-Type {other:?}: use application/x-protobuf or application/json"
                ),
            );
        }
    };
    let raw = match decompress(headers, body, st.max_decoded_bytes) {
        Ok(r) => r,
        Err(e) => return text(StatusCode::BAD_REQUEST, e),
    };
    let req: ExportLogsServiceRequest = if json {
        match serde_json::from_slice(&raw) {
            Ok(r) => r,
            Err(e) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "malformed OTLP JSON at line {} column {}: {e}",
                        e.line(),
                        e.column()
                    ),
                );
            }
        }
    } else {
        match ExportLogsServiceRequest::decode(&raw[..]) {
            Ok(r) => r,
            Err(e) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("malformed OTLP protobuf: {e}"),
                );
            }
        }
    };
    let push = otlp::to_push(req, vigil_model::now_ns());
    let partial = match store_push(st, push, OTLP_PROTOCOL) {
        Outcome::Stored => None,
        Outcome::Invalid(p, n) => Some((n, summarize(p, ""))),
        Outcome::StreamLimited(p, n) => Some((n, summarize(p, ""))),
        Outcome::RateLimited(wait, msg) => {
            let mut r = text(StatusCode::TOO_MANY_REQUESTS, msg);
            if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return r;
        }
        Outcome::StoreFailed(m) => return text(StatusCode::SERVICE_UNAVAILABLE, m),
    };
    let resp = ExportLogsServiceResponse {
        partial_success: partial.map(|(n, msg)| ExportLogsPartialSuccess {
            rejected_log_records: n as i64,
            error_message: msg,
        }),
    };
    if json {
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::to_string(&resp).unwrap_or_else(|_| "{}".into()),
        )
            .into_response()
    } else {
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            resp.encode_to_vec(),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use decode::{RawEntry, RawStream};

    fn raw(labels: &[(&str, &str)], entries: Vec<(i64, &str)>) -> RawStream {
        RawStream {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            selector: format!("{labels:?}"),
            entries: entries
                .into_iter()
                .map(|(ts, l)| RawEntry {
                    ts,
                    line: l.into(),
                    metadata: Vec::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn validation_keeps_the_valid_rest() {
        let now = 1_700_000_000_000_000_000i64;
        let limits = LogLimits {
            max_line_size: ByteSize(10),
            ..LogLimits::default()
        };
        let push = RawPush {
            streams: vec![
                raw(
                    &[("app", "ok")],
                    vec![
                        (now, "fine"),
                        (now, "this line is too long"),
                        (now - 8 * 86400 * 1_000_000_000, "old"),
                        (now + 3600 * 1_000_000_000, "future"),
                    ],
                ),
                raw(&[("bad-name", "x")], vec![(now, "x")]),
                raw(&[], vec![(now, "x")]),
                raw(&[("a", "1"), ("a", "2")], vec![(now, "x")]),
            ],
        };
        let mut rejected = Vec::new();
        let (streams, problems) = validate(push, &limits, now, |r, n| rejected.push((r, n)));
        assert_eq!(streams.len(), 1);
        assert_eq!(streams[0].entries.len(), 1);
        assert_eq!(streams[0].entries[0].line, "fine");
        assert_eq!(problems.len(), 6, "{problems:#?}");
        assert!(problems.iter().any(|p| p.contains("too old")));
        assert!(problems.iter().any(|p| p.contains("future")));
        assert!(problems.iter().any(|p| p.contains("max_line_size")));
        assert!(
            problems
                .iter()
                .any(|p| p.contains("invalid label name \"bad-name\""))
        );
        assert!(problems.iter().any(|p| p.contains("duplicate label name")));
        assert!(rejected.contains(&("line_too_long", 1)));
    }

    #[test]
    fn truncation_when_asked() {
        let now = 1_700_000_000_000_000_000i64;
        let limits = LogLimits {
            max_line_size: ByteSize(4),
            max_line_size_truncate: true,
            ..LogLimits::default()
        };
        let push = RawPush {
            streams: vec![raw(&[("app", "x")], vec![(now, "héllo")])],
        };
        let (streams, problems) = validate(push, &limits, now, |_, _| {});
        assert!(problems.is_empty());
        assert_eq!(streams[0].entries[0].line, "hél");
    }
}
