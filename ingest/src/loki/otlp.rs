//! OTLP/HTTP logs (`POST /v1/logs`, `/otlp/v1/logs`) mapped to streams as Loki maps them.
//!
//! - Resource attributes Loki indexes by default (`service.name`, `k8s.namespace.name`, … the list
//!   below) become stream labels, with names normalised (`service.name` → `service_name`); a resource
//!   without `service.name` gets `service_name` from the first of Loki's discovery labels it has, or
//!   `unknown_service`.
//! - Every other resource attribute, the scope's attributes, `scope_name`, `scope_version`, and the
//!   record's attributes become structured metadata (maps flattened with `_`), with `severity_text`,
//!   `severity_number`, `trace_id`, `span_id` (hex), `flags`, `observed_timestamp` and
//!   `dropped_attributes_count` when set.
//! - The line is the body as a string (maps and arrays as JSON); the time is `time_unix_nano`, else
//!   `observed_time_unix_nano`, else now.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};

use super::decode::{RawEntry, RawPush, RawStream};

/// Resource attributes that become stream labels (Loki's `blessedAttributes`).
pub const INDEXED_RESOURCE_ATTRIBUTES: &[&str] = &[
    "service.name",
    "service.namespace",
    "service.instance.id",
    "deployment.environment",
    "deployment.environment.name",
    "cloud.region",
    "cloud.availability_zone",
    "k8s.cluster.name",
    "k8s.namespace.name",
    "k8s.pod.name",
    "k8s.container.name",
    "container.name",
    "k8s.replicaset.name",
    "k8s.deployment.name",
    "k8s.statefulset.name",
    "k8s.daemonset.name",
    "k8s.cronjob.name",
    "k8s.job.name",
];

/// Labels `service_name` is taken from when a resource has no `service.name` (Loki's
/// `discover_service_name` default), in order.
const SERVICE_NAME_FROM: &[&str] = &[
    "service",
    "app",
    "application",
    "name",
    "app_kubernetes_io_name",
    "container",
    "container_name",
    "k8s_container_name",
    "component",
    "workload",
    "job",
];

/// Prometheus's OTLP label normalisation: characters outside `[a-zA-Z0-9_]` become `_`, a leading
/// digit gets `key_`.
pub fn normalize_label(k: &str) -> String {
    let mut out: String = k
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.as_bytes().first().is_some_and(|c| c.is_ascii_digit()) {
        out.insert_str(0, "key_");
    }
    out
}

fn to_json(v: &AnyValue) -> serde_json::Value {
    use base64::Engine as _;
    match &v.value {
        None => serde_json::Value::Null,
        Some(any_value::Value::StringValue(s)) => serde_json::Value::String(s.clone()),
        Some(any_value::Value::BoolValue(b)) => serde_json::Value::Bool(*b),
        Some(any_value::Value::IntValue(i)) => serde_json::Value::from(*i),
        Some(any_value::Value::DoubleValue(d)) => serde_json::Number::from_f64(*d)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        Some(any_value::Value::BytesValue(b)) => {
            serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        Some(any_value::Value::ArrayValue(a)) => {
            serde_json::Value::Array(a.values.iter().map(to_json).collect())
        }
        Some(any_value::Value::KvlistValue(m)) => serde_json::Value::Object(
            m.values
                .iter()
                .map(|kv| {
                    (
                        kv.key.clone(),
                        kv.value
                            .as_ref()
                            .map(to_json)
                            .unwrap_or(serde_json::Value::Null),
                    )
                })
                .collect(),
        ),
        #[allow(unreachable_patterns)]
        Some(_) => serde_json::Value::Null,
    }
}

/// pdata's `AsString`: strings as they are, numbers and booleans as text, bytes base64, the rest JSON.
pub fn as_string(v: &AnyValue) -> String {
    match &v.value {
        None => String::new(),
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => {
            if d.is_nan() {
                "NaN".into()
            } else if d.is_infinite() {
                if *d > 0.0 { "+Inf" } else { "-Inf" }.into()
            } else {
                d.to_string()
            }
        }
        _ => match to_json(v) {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        },
    }
}

/// An attribute as name/value pairs: a map is flattened with `_` between the names.
fn attribute(kv: &KeyValue, prefix: &str, out: &mut Vec<(String, String)>) {
    let key = if prefix.is_empty() {
        normalize_label(&kv.key)
    } else {
        normalize_label(&format!("{prefix}_{}", kv.key))
    };
    match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::KvlistValue(m)) => {
            for inner in &m.values {
                attribute(inner, &key, out);
            }
        }
        _ => out.push((key, kv.value.as_ref().map(as_string).unwrap_or_default())),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Converts an export request into streams, grouped by their labels.
pub fn to_push(req: ExportLogsServiceRequest, now: i64) -> RawPush {
    let mut streams: Vec<RawStream> = Vec::new();
    for rl in req.resource_logs {
        let mut labels: Vec<(String, String)> = Vec::new();
        let mut resource_meta: Vec<(String, String)> = Vec::new();
        if let Some(res) = &rl.resource {
            for kv in &res.attributes {
                let mut pairs = Vec::new();
                attribute(kv, "", &mut pairs);
                if INDEXED_RESOURCE_ATTRIBUTES.contains(&kv.key.as_str()) {
                    labels.extend(pairs);
                } else {
                    resource_meta.extend(pairs);
                }
            }
        }
        labels.retain(|(_, v)| !v.is_empty());
        if !labels.iter().any(|(k, _)| k == "service_name") {
            let found = SERVICE_NAME_FROM
                .iter()
                .find_map(|n| labels.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()));
            labels.push((
                "service_name".into(),
                found.unwrap_or_else(|| "unknown_service".into()),
            ));
        }
        labels.sort();
        let idx = match streams.iter().position(|s| s.labels == labels) {
            Some(i) => i,
            None => {
                let selector = format!(
                    "{{{}}}",
                    labels
                        .iter()
                        .map(|(k, v)| format!("{k}={v:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                streams.push(RawStream {
                    labels: labels.clone(),
                    selector,
                    entries: Vec::new(),
                });
                streams.len() - 1
            }
        };
        for sl in rl.scope_logs {
            let mut scope_meta: Vec<(String, String)> = Vec::new();
            if let Some(scope) = &sl.scope {
                for kv in &scope.attributes {
                    attribute(kv, "", &mut scope_meta);
                }
                if !scope.name.is_empty() {
                    scope_meta.push(("scope_name".into(), scope.name.clone()));
                }
                if !scope.version.is_empty() {
                    scope_meta.push(("scope_version".into(), scope.version.clone()));
                }
                if scope.dropped_attributes_count != 0 {
                    scope_meta.push((
                        "scope_dropped_attributes_count".into(),
                        scope.dropped_attributes_count.to_string(),
                    ));
                }
            }
            for r in sl.log_records {
                let mut meta: Vec<(String, String)> = Vec::new();
                for kv in &r.attributes {
                    attribute(kv, "", &mut meta);
                }
                if r.time_unix_nano != 0 && r.observed_time_unix_nano != 0 {
                    meta.push((
                        "observed_timestamp".into(),
                        r.observed_time_unix_nano.to_string(),
                    ));
                }
                if r.severity_number != 0 {
                    meta.push(("severity_number".into(), r.severity_number.to_string()));
                }
                if !r.severity_text.is_empty() {
                    meta.push(("severity_text".into(), r.severity_text.clone()));
                }
                if r.dropped_attributes_count != 0 {
                    meta.push((
                        "dropped_attributes_count".into(),
                        r.dropped_attributes_count.to_string(),
                    ));
                }
                if r.flags != 0 {
                    meta.push(("flags".into(), r.flags.to_string()));
                }
                if !r.trace_id.is_empty() && r.trace_id.iter().any(|b| *b != 0) {
                    meta.push(("trace_id".into(), hex(&r.trace_id)));
                }
                if !r.span_id.is_empty() && r.span_id.iter().any(|b| *b != 0) {
                    meta.push(("span_id".into(), hex(&r.span_id)));
                }
                meta.extend(resource_meta.iter().cloned());
                meta.extend(scope_meta.iter().cloned());
                // A name set twice keeps its first value (the record's own over its scope's and
                // resource's); empty values say nothing.
                let mut seen = std::collections::HashSet::new();
                meta.retain(|(k, v)| !v.is_empty() && seen.insert(k.clone()));
                let ts = if r.time_unix_nano != 0 {
                    r.time_unix_nano as i64
                } else if r.observed_time_unix_nano != 0 {
                    r.observed_time_unix_nano as i64
                } else {
                    now
                };
                streams[idx].entries.push(RawEntry {
                    ts,
                    line: r.body.as_ref().map(as_string).unwrap_or_default(),
                    metadata: meta,
                });
            }
        }
    }
    RawPush {
        streams: streams
            .into_iter()
            .filter(|s| !s.entries.is_empty())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValueList};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource;

    fn kv(k: &str, v: any_value::Value) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }

    #[test]
    fn maps_as_loki_does() {
        use any_value::Value as V;
        let req = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![
                        kv("service.name", V::StringValue("checkout".into())),
                        kv("k8s.namespace.name", V::StringValue("shop".into())),
                        kv("host.name", V::StringValue("node-1".into())),
                    ],
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    scope: Some(InstrumentationScope {
                        name: "app.logger".into(),
                        version: "1.2".into(),
                        ..Default::default()
                    }),
                    log_records: vec![LogRecord {
                        time_unix_nano: 1_700_000_000_000_000_001,
                        observed_time_unix_nano: 1_700_000_000_000_000_002,
                        severity_number: 17,
                        severity_text: "ERROR".into(),
                        body: Some(AnyValue {
                            value: Some(V::StringValue("payment failed".into())),
                        }),
                        attributes: vec![
                            kv("http.status_code", V::IntValue(502)),
                            kv(
                                "user",
                                V::KvlistValue(KeyValueList {
                                    values: vec![kv("id", V::StringValue("u1".into()))],
                                }),
                            ),
                        ],
                        trace_id: vec![0xab; 16],
                        span_id: vec![0x01; 8],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let p = to_push(req, 0);
        assert_eq!(p.streams.len(), 1);
        let s = &p.streams[0];
        assert_eq!(
            s.labels,
            vec![
                ("k8s_namespace_name".to_string(), "shop".to_string()),
                ("service_name".to_string(), "checkout".to_string())
            ]
        );
        let e = &s.entries[0];
        assert_eq!(e.ts, 1_700_000_000_000_000_001);
        assert_eq!(e.line, "payment failed");
        let m: std::collections::BTreeMap<_, _> = e.metadata.iter().cloned().collect();
        assert_eq!(m["http_status_code"], "502");
        assert_eq!(m["user_id"], "u1");
        assert_eq!(m["host_name"], "node-1");
        assert_eq!(m["scope_name"], "app.logger");
        assert_eq!(m["scope_version"], "1.2");
        assert_eq!(m["severity_text"], "ERROR");
        assert_eq!(m["severity_number"], "17");
        assert_eq!(m["observed_timestamp"], "1700000000000000002");
        assert_eq!(m["trace_id"], "ab".repeat(16));
        assert_eq!(m["span_id"], "01".repeat(8));
    }

    #[test]
    fn service_name_fallback_and_bodies() {
        use any_value::Value as V;
        let rec = |body: V| LogRecord {
            body: Some(AnyValue { value: Some(body) }),
            ..Default::default()
        };
        let req = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![kv("k8s.container.name", V::StringValue("web".into()))],
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    log_records: vec![
                        rec(V::KvlistValue(KeyValueList {
                            values: vec![kv("a", V::IntValue(1))],
                        })),
                        rec(V::DoubleValue(1.5)),
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let p = to_push(req, 42);
        let s = &p.streams[0];
        assert!(s.labels.contains(&("service_name".into(), "web".into())));
        assert_eq!(s.entries[0].line, r#"{"a":1}"#);
        assert_eq!(s.entries[0].ts, 42);
        assert_eq!(s.entries[1].line, "1.5");
        assert_eq!(normalize_label("1abc.d-e"), "key_1abc_d_e");
    }
}
