//! A minimal Elasticsearch ingest surface for log shippers that speak only Elasticsearch (Filebeat,
//! Fluent Bit's `es` output, Vector's `elasticsearch` sink, Logstash): `GET /` (cluster info, so
//! version detection works), `GET /_cluster/health`, `GET /_license`, and `POST /_bulk` /
//! `POST /{index}/_bulk` with `index` and `create` actions. Each document becomes one log entry:
//! the line is its message field (or the whole document as JSON), the time its `@timestamp`, the
//! stream labels `index` plus the configured fields (`ingest.logs.elasticsearch`).
//!
//! Answers as Elasticsearch does: 200 with one item per action (`201` created, or `400` with an
//! `error` for a document that cannot be stored, `429` for a stream over the limit) and
//! `"errors": true` when any item failed; 400 with an error object for an unreadable body (nothing
//! stored); 429 for the ingestion rate limit; 503 when the store failed. `update` and `delete`
//! are refused per item: the log store is append-only.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use vigil_model::{Labels, LogStream};

use super::decode::{RawEntry, RawPush, RawStream};
use super::{
    BACKLOG_RETRY, LokiPush, ProtocolReasonLabel, append, decompress, run_blocking, validate,
};
use crate::metrics::ProtocolLabel;

const PROTOCOL: &str = "elasticsearch";
/// The version reported by `GET /`: clients pick their request format by it (8.x: no mapping types).
const VERSION: &str = "8.11.0";

/// `ingest.logs.elasticsearch`: how documents become log entries.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ElasticConfig {
    /// Document fields (dotted paths, nested objects or dotted keys) that become stream labels,
    /// named with `.` and other invalid characters as `_` (`host.name` -> `host_name`).
    pub label_fields: Vec<String>,
    /// The first of these holding a string is the line; without one the whole document (as JSON,
    /// the time field left out) is.
    pub message_fields: Vec<String>,
    /// The first of these holding an RFC 3339 time or epoch milliseconds is the entry's time;
    /// without one, the time of arrival.
    pub timestamp_fields: Vec<String>,
    /// Fields kept as structured metadata.
    pub metadata_fields: Vec<String>,
}

impl Default for ElasticConfig {
    fn default() -> Self {
        ElasticConfig {
            label_fields: ["host.name", "service.name"].map(String::from).to_vec(),
            message_fields: ["message", "log", "msg"].map(String::from).to_vec(),
            timestamp_fields: ["@timestamp", "timestamp"].map(String::from).to_vec(),
            metadata_fields: Vec::new(),
        }
    }
}

/// A field by dotted path: nested objects (`{"host":{"name":..}}`), a dotted key
/// (`{"host.name":..}`), or a mix.
fn field<'a>(doc: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(v) = doc.get(path) {
        return Some(v);
    }
    for (i, _) in path.match_indices('.') {
        if let Some(Value::Object(inner)) = doc.get(&path[..i])
            && let Some(v) = field(inner, &path[i + 1..])
        {
            return Some(v);
        }
    }
    None
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `host.name` -> `host_name`, `@timestamp` -> `_timestamp`, `3d` -> `_3d`.
pub fn label_name(path: &str) -> String {
    let mut s: String = path
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if s.starts_with(|c: char| c.is_ascii_digit()) || s.is_empty() {
        s.insert(0, '_');
    }
    s
}

fn doc_time(
    doc: &Map<String, Value>,
    cfg: &ElasticConfig,
) -> Result<Option<(i64, String)>, String> {
    for f in &cfg.timestamp_fields {
        match field(doc, f) {
            None | Some(Value::Null) => continue,
            Some(Value::String(s)) => {
                let t = s.trim();
                // Epoch milliseconds as a string, or RFC 3339 (Elasticsearch's default formats).
                let ns = if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
                    t.parse::<i64>()
                        .ok()
                        .and_then(|ms| ms.checked_mul(1_000_000))
                } else if t.len() >= 20 && t.as_bytes()[4] == b'-' {
                    super::decode::rfc3339_ns(t)
                } else {
                    None
                }
                .ok_or_else(|| format!("failed to parse field [{f}] of type [date]: {s:?}"))?;
                return Ok(Some((ns, f.clone())));
            }
            Some(Value::Number(n)) => {
                let ms = n
                    .as_f64()
                    .ok_or_else(|| format!("failed to parse field [{f}] of type [date]"))?;
                return Ok(Some(((ms * 1e6) as i64, f.clone())));
            }
            Some(other) => {
                return Err(format!(
                    "failed to parse field [{f}] of type [date]: {other}"
                ));
            }
        }
    }
    Ok(None)
}

/// One document as a one-entry stream, or why it cannot be one.
fn to_stream(
    index: &str,
    mut doc: Map<String, Value>,
    cfg: &ElasticConfig,
    now: i64,
) -> Result<RawStream, String> {
    let (ts, ts_field) = match doc_time(&doc, cfg)? {
        Some((ts, f)) => (ts, Some(f)),
        None => (now, None),
    };
    let mut labels = vec![("index".to_string(), index.to_string())];
    for f in &cfg.label_fields {
        if let Some(v) = field(&doc, f).and_then(scalar) {
            labels.push((label_name(f), v));
        }
    }
    let metadata = cfg
        .metadata_fields
        .iter()
        .filter_map(|f| Some((label_name(f), scalar(field(&doc, f)?)?)))
        .collect();
    let message = cfg
        .message_fields
        .iter()
        .find_map(|f| match field(&doc, f) {
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        });
    let line = match message {
        Some(m) => m,
        None => {
            if let Some(f) = ts_field {
                doc.remove(&f);
            }
            Value::Object(doc).to_string()
        }
    };
    let selector = format!(
        "{{{}}}",
        labels
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(RawStream {
        labels,
        selector,
        entries: vec![RawEntry { ts, line, metadata }],
    })
}

static IDS: AtomicU64 = AtomicU64::new(0);

/// A 20-character id like the ones Elasticsearch makes.
fn new_id(now: i64) -> String {
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let n = IDS.fetch_add(1, Ordering::Relaxed);
    let mut x = (now as u128) << 64 | n as u128;
    (0..20)
        .map(|_| {
            let c = ABC[(x & 63) as usize] as char;
            x >>= 6;
            c
        })
        .collect()
}

fn es_error(code: StatusCode, kind: &str, reason: &str) -> Response {
    let body = json!({
        "error": {
            "root_cause": [{"type": kind, "reason": reason}],
            "type": kind,
            "reason": reason,
        },
        "status": code.as_u16(),
    });
    es_json(code, &body)
}

fn es_json(code: StatusCode, body: &Value) -> Response {
    let mut r = (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    r.headers_mut().insert(
        "X-Elastic-Product",
        HeaderValue::from_static("Elasticsearch"),
    );
    r
}

/// `GET /` (and `HEAD /`): who answers, for clients that check the version.
pub async fn info() -> Response {
    es_json(
        StatusCode::OK,
        &json!({
            "name": "vigil",
            "cluster_name": "vigil",
            "cluster_uuid": "vigil-logs",
            "version": {
                "number": VERSION,
                "build_flavor": "default",
                "build_type": "vigil",
                "build_hash": env!("CARGO_PKG_VERSION"),
                "build_date": "2024-01-01T00:00:00.000Z",
                "build_snapshot": false,
                "lucene_version": "9.8.0",
                "minimum_wire_compatibility_version": "7.17.0",
                "minimum_index_compatibility_version": "7.0.0",
            },
            "tagline": "You Know, for Search",
        }),
    )
}

/// `GET /_cluster/health` (Vector's health check).
pub async fn health() -> Response {
    es_json(
        StatusCode::OK,
        &json!({
            "cluster_name": "vigil", "status": "green", "timed_out": false,
            "number_of_nodes": 1, "number_of_data_nodes": 1,
            "active_primary_shards": 1, "active_shards": 1, "relocating_shards": 0,
            "initializing_shards": 0, "unassigned_shards": 0, "delayed_unassigned_shards": 0,
            "number_of_pending_tasks": 0, "number_of_in_flight_fetch": 0,
            "task_max_waiting_in_queue_millis": 0, "active_shards_percent_as_number": 100.0,
        }),
    )
}

/// `GET /_license` (Filebeat and Logstash read it at connect).
pub async fn license() -> Response {
    es_json(
        StatusCode::OK,
        &json!({"license": {
            "status": "active", "uid": "vigil", "type": "basic", "mode": "basic",
            "issue_date_in_millis": 0, "max_nodes": 1000, "issued_to": "vigil", "issuer": "vigil",
            "start_date_in_millis": -1,
        }}),
    )
}

/// Any other Elasticsearch API: an Elasticsearch-shaped 404 naming what is served.
/// (Nested under `/elastic`: `uri` is the path below it.)
pub async fn unsupported(uri: axum::http::Uri) -> Response {
    es_error(
        StatusCode::NOT_FOUND,
        "unsupported_operation_exception",
        &format!(
            "/elastic{} is not served: Vigil takes logs through POST /_bulk only (with GET /, /_cluster/health, /_license); disable index template and ILM setup in the shipper",
            uri.path()
        ),
    )
}

/// One action of a bulk body.
struct Action {
    op: String,
    index: Option<String>,
    id: Option<String>,
    /// The document, or why there is none.
    doc: Result<Map<String, Value>, String>,
}

/// Splits an NDJSON bulk body into actions; an unreadable action line fails the whole request.
fn parse_bulk(body: &[u8]) -> Result<Vec<Action>, String> {
    let mut lines = body
        .split(|&b| b == b'\n')
        .enumerate()
        .filter(|(_, l)| !l.iter().all(|b| b.is_ascii_whitespace()));
    let mut out = Vec::new();
    while let Some((n, line)) = lines.next() {
        let v: Value = serde_json::from_slice(line)
            .map_err(|e| format!("Malformed action/metadata line [{}]: {e}", n + 1))?;
        let Value::Object(m) = v else {
            return Err(format!(
                "Malformed action/metadata line [{}], expected START_OBJECT",
                n + 1
            ));
        };
        if m.len() != 1 {
            return Err(format!(
                "Malformed action/metadata line [{}], expected one action, got {}",
                n + 1,
                m.len()
            ));
        }
        let (op, meta) = m.into_iter().next().unwrap();
        let meta = meta.as_object().cloned().unwrap_or_default();
        let index = meta.get("_index").and_then(Value::as_str).map(String::from);
        let id = meta.get("_id").and_then(scalar);
        match op.as_str() {
            "index" | "create" | "update" => {
                let Some((_, src)) = lines.next() else {
                    return Err(format!(
                        "The bulk request must be terminated by a newline [\\n]; action line [{}] has no document",
                        n + 1
                    ));
                };
                let doc = match serde_json::from_slice::<Value>(src) {
                    Ok(Value::Object(d)) => Ok(d),
                    Ok(_) => Err("the document is not a JSON object".to_string()),
                    Err(e) => Err(format!("failed to parse the document: {e}")),
                };
                let doc = if op == "update" {
                    Err("update is not supported: Vigil's log store is append-only".into())
                } else {
                    doc
                };
                out.push(Action { op, index, id, doc });
            }
            "delete" => out.push(Action {
                op,
                index,
                id,
                doc: Err("delete is not supported: Vigil's log store is append-only".into()),
            }),
            other => {
                return Err(format!(
                    "Malformed action/metadata line [{}], expected one of [create, delete, index, update] but found [{other}]",
                    n + 1
                ));
            }
        }
    }
    Ok(out)
}

/// `filter_path` for the response (Filebeat asks for `errors,items.*.error,items.*.status`).
fn filter(resp: Value, filter_path: Option<&str>) -> Value {
    let Some(fp) = filter_path else {
        return resp;
    };
    let pats: Vec<&str> = fp.split(',').map(str::trim).collect();
    let Value::Object(top) = resp else {
        return resp;
    };
    let mut out = Map::new();
    for (k, v) in top {
        if pats.contains(&k.as_str()) {
            out.insert(k, v);
        } else if k == "items" {
            let fields: Vec<&str> = pats
                .iter()
                .filter_map(|p| p.strip_prefix("items.*."))
                .collect();
            if fields.is_empty() {
                continue;
            }
            let items = v
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|it| {
                            let Some((op, body)) = it.as_object().and_then(|o| o.iter().next())
                            else {
                                return it.clone();
                            };
                            let kept: Map<String, Value> = body
                                .as_object()
                                .map(|b| {
                                    b.iter()
                                        .filter(|(f, _)| fields.contains(&f.as_str()))
                                        .map(|(f, x)| (f.clone(), x.clone()))
                                        .collect()
                                })
                                .unwrap_or_default();
                            json!({ op.clone(): kept })
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.insert(k, Value::Array(items));
        }
    }
    Value::Object(out)
}

/// An item error: status, Elasticsearch's error type, the reason.
type ItemError = (u16, String, String);
/// Each action's operation, index and id, and its stream (taken when stored) or its error.
type ItemResult = (String, String, String, Result<Option<LogStream>, ItemError>);

fn bulk_request(
    st: &LokiPush,
    path_index: Option<&str>,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let started = Instant::now();
    let filter_path = query.and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "filter_path")
            .map(|(_, v)| v.into_owned())
    });
    let body = match decompress(headers, body, st.max_decoded_bytes) {
        Ok(b) => b,
        Err(e) => return es_error(StatusCode::BAD_REQUEST, "parse_exception", &e),
    };
    let actions = match parse_bulk(&body) {
        Ok(a) => a,
        Err(e) => return es_error(StatusCode::BAD_REQUEST, "illegal_argument_exception", &e),
    };
    if actions.is_empty() {
        return es_error(
            StatusCode::BAD_REQUEST,
            "action_request_validation_exception",
            "Validation Failed: 1: no requests added;",
        );
    }
    let cfg = &st.limits.elasticsearch;
    let now = vigil_model::now_ns();
    let reject = |reason: &'static str, n: u64| {
        if n > 0 {
            st.metrics
                .log_entries_rejected
                .get_or_create(&ProtocolReasonLabel {
                    protocol: PROTOCOL,
                    reason,
                })
                .inc_by(n);
        }
    };
    st.metrics
        .log_entries_received
        .get_or_create(&ProtocolLabel { protocol: PROTOCOL })
        .inc_by(actions.len() as u64);
    let mut results: Vec<ItemResult> = Vec::with_capacity(actions.len());
    let mut bytes = 0u64;
    for a in actions {
        let index = a.index.or_else(|| path_index.map(String::from));
        let id = a.id.unwrap_or_else(|| new_id(now));
        let Some(index) = index else {
            reject("missing_index", 1);
            results.push((
                a.op,
                String::new(),
                id,
                Err((
                    400,
                    "action_request_validation_exception".into(),
                    "Validation Failed: 1: index is missing;".into(),
                )),
            ));
            continue;
        };
        let stream = match a.doc.and_then(|doc| to_stream(&index, doc, cfg, now)) {
            Ok(s) => s,
            Err(e) => {
                reject("invalid_document", 1);
                results.push((
                    a.op,
                    index,
                    id,
                    Err((400, "mapper_parsing_exception".into(), e)),
                ));
                continue;
            }
        };
        let (mut valid, problems) = validate(
            RawPush {
                streams: vec![stream],
            },
            &st.limits,
            now,
            reject,
        );
        match valid.pop() {
            Some(s) => {
                bytes += s.entries.iter().map(|e| e.line.len() as u64).sum::<u64>();
                results.push((a.op, index, id, Ok(Some(s))));
            }
            None => results.push((
                a.op,
                index,
                id,
                Err((
                    400,
                    "document_parsing_exception".into(),
                    problems.join("; "),
                )),
            )),
        }
    }
    if let Err(wait) = st.take(bytes) {
        let n = results.iter().filter(|r| r.3.is_ok()).count() as u64;
        reject("rate_limited", n);
        let mut r = es_error(
            StatusCode::TOO_MANY_REQUESTS,
            "es_rejected_execution_exception",
            &format!(
                "ingestion rate limit exceeded ({} bytes/s, ingest.logs.ingestion_rate); retry later",
                st.limits.ingestion_rate.0
            ),
        );
        if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    // The active stream limit, per document.
    if st.limits.max_streams > 0 {
        let mut active = st.store.active_streams();
        let mut admitted: std::collections::HashSet<Labels> = Default::default();
        for r in results.iter_mut() {
            let Ok(Some(s)) = &r.3 else { continue };
            if admitted.contains(&s.labels) || st.store.is_active(&s.labels) {
                continue;
            }
            if active < st.limits.max_streams {
                active += 1;
                admitted.insert(s.labels.clone());
            } else {
                reject("stream_limit", 1);
                r.3 = Err((
                    429,
                    "es_rejected_execution_exception".into(),
                    format!(
                        "stream {} refused: {} active streams, the limit (ingest.logs.max_streams)",
                        s.labels, st.limits.max_streams
                    ),
                ));
            }
        }
    }
    let streams: Vec<LogStream> = results
        .iter_mut()
        .filter_map(|r| match &mut r.3 {
            Ok(s) => s.take(),
            Err(_) => None,
        })
        .collect();
    if !streams.is_empty() {
        match append(st, streams, PROTOCOL) {
            Ok(()) => {}
            Err(e @ vigil_storage::logs::LogsError::Backlog { .. }) => {
                let mut r = es_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "es_rejected_execution_exception",
                    &e.to_string(),
                );
                r.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(BACKLOG_RETRY.as_secs()),
                );
                return r;
            }
            Err(e) => {
                return es_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable_shards_exception",
                    &format!("the log store cannot take writes: {e}"),
                );
            }
        }
    }
    let mut errors = false;
    let items: Vec<Value> = results
        .into_iter()
        .enumerate()
        .map(|(seq, (op, index, id, r))| {
            let body = match r {
                Ok(_) => json!({
                    "_index": index, "_id": id, "_version": 1, "result": "created",
                    "_shards": {"total": 1, "successful": 1, "failed": 0},
                    "_seq_no": seq, "_primary_term": 1, "status": 201,
                }),
                Err((status, kind, reason)) => {
                    errors = true;
                    json!({
                        "_index": index, "_id": id, "status": status,
                        "error": {"type": kind, "reason": reason},
                    })
                }
            };
            json!({ op: body })
        })
        .collect();
    let resp = json!({
        "took": started.elapsed().as_millis() as u64,
        "errors": errors,
        "items": items,
    });
    es_json(StatusCode::OK, &filter(resp, filter_path.as_deref()))
}

async fn bulk_inner(
    state: LokiPush,
    index: Option<String>,
    query: Option<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    run_blocking(
        state,
        PROTOCOL,
        move |st| bulk_request(st, index.as_deref(), query.as_deref(), &headers, &body),
        |e| es_error(StatusCode::INTERNAL_SERVER_ERROR, "exception", &e),
    )
    .await
}

/// `POST /_bulk`, `PUT /_bulk`.
pub async fn bulk(
    State(state): State<LokiPush>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    bulk_inner(state, None, query, headers, body).await
}

/// `POST /{index}/_bulk`: the index for actions that name none.
pub async fn bulk_index(
    State(state): State<LokiPush>,
    Path(index): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    bulk_inner(state, Some(index), query, headers, body).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_by_path_and_label_names() {
        let d: Map<String, Value> = serde_json::from_str(
            r#"{"host":{"name":"web-1"},"service.name":"api","kubernetes":{"pod.name":"p-1"}}"#,
        )
        .unwrap();
        assert_eq!(field(&d, "host.name"), Some(&json!("web-1")));
        assert_eq!(field(&d, "service.name"), Some(&json!("api")));
        assert_eq!(field(&d, "kubernetes.pod.name"), Some(&json!("p-1")));
        assert_eq!(field(&d, "host.ip"), None);
        assert_eq!(label_name("host.name"), "host_name");
        assert_eq!(label_name("@timestamp"), "_timestamp");
    }

    #[test]
    fn documents_become_entries() {
        let cfg = ElasticConfig::default();
        let d: Map<String, Value> = serde_json::from_str(
            r#"{"@timestamp":"2024-05-01T10:00:00.123456789Z","message":"GET / 200","host":{"name":"web-1"}}"#,
        )
        .unwrap();
        let s = to_stream("logs", d, &cfg, 0).unwrap();
        assert_eq!(
            s.labels,
            vec![
                ("index".to_string(), "logs".to_string()),
                ("host_name".to_string(), "web-1".to_string())
            ]
        );
        assert_eq!(s.entries[0].ts, 1_714_557_600_123_456_789);
        assert_eq!(s.entries[0].line, "GET / 200");
        // No message field: the document is the line, without its time.
        let d: Map<String, Value> =
            serde_json::from_str(r#"{"timestamp":1714557600000,"level":"warn","n":3}"#).unwrap();
        let s = to_stream("app", d, &cfg, 0).unwrap();
        assert_eq!(s.entries[0].ts, 1_714_557_600_000_000_000);
        assert_eq!(s.entries[0].line, r#"{"level":"warn","n":3}"#);
        let d: Map<String, Value> =
            serde_json::from_str(r#"{"@timestamp":"yesterday","message":"x"}"#).unwrap();
        assert!(
            to_stream("a", d, &cfg, 0)
                .unwrap_err()
                .contains("@timestamp")
        );
    }

    #[test]
    fn bulk_bodies() {
        let b = b"{\"index\":{\"_index\":\"a\"}}\n{\"message\":\"x\"}\n{\"delete\":{\"_index\":\"a\",\"_id\":\"1\"}}\n{\"create\":{}}\n{not json}\n";
        let a = parse_bulk(b).unwrap();
        assert_eq!(a.len(), 3);
        assert!(a[0].doc.is_ok());
        assert!(a[1].doc.as_ref().unwrap_err().contains("append-only"));
        assert!(a[2].doc.as_ref().unwrap_err().contains("failed to parse"));
        assert!(parse_bulk(b"{\"index\":{}}\n").is_err());
        assert!(parse_bulk(b"{\"frobnicate\":{}}\n{}\n").is_err());
        assert!(parse_bulk(b"not json\n").is_err());
    }

    #[test]
    fn filter_path_keeps_what_filebeat_asks_for() {
        let r = json!({"took": 3, "errors": false, "items": [{"create": {"_index": "a", "_id": "x", "status": 201, "result": "created"}}]});
        assert_eq!(
            filter(r, Some("errors,items.*.error,items.*.status")),
            json!({"errors": false, "items": [{"create": {"status": 201}}]})
        );
    }
}
