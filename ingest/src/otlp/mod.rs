//! OTLP/HTTP metrics receiver (`POST /v1/metrics` and Prometheus's `/api/v1/otlp/v1/metrics`).
//!
//! Translation follows Prometheus's OTLP translator in its default mode (underscore escaping with
//! suffixes): `service.namespace`/`service.name` become `job`, `service.instance.id` becomes `instance`, the
//! other resource attributes go to a `target_info` series; metric names get unit and `_total` suffixes;
//! cumulative sums, gauges, explicit-bucket histograms and summaries map to their classic Prometheus
//! series. Delta temporality and exponential histograms are refused per data point and reported in
//! `partial_success`, as the OTLP specification asks, with a 200.

use std::collections::BTreeMap;
use std::io::Read;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{self as pm, metric::Data};
use prost::Message;
use vigil_model::{Label, Labels, Sample, stale_nan};
use vigil_storage::Exemplar;

use crate::metrics::{ProtocolCodeLabel, ProtocolLabel};
use crate::push::{Assembled, PushState, write_blocking};

mod names;

use names::format_bound;
pub use names::{metric_name, normalize_label};

const PROTOCOL: &str = "otlp";
const FLAG_NO_RECORDED_VALUE: u32 = 1;
const TEMPORALITY_CUMULATIVE: i32 = 2;

/// Status message sent in error bodies (google.rpc.Status).
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

fn anyvalue_string(v: &AnyValue) -> String {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BytesValue(b)) => b.iter().map(|x| format!("{x:02x}")).collect(),
        Some(any_value::Value::ArrayValue(a)) => {
            let items: Vec<String> = a
                .values
                .iter()
                .map(|v| serde_json::Value::String(anyvalue_string(v)).to_string())
                .collect();
            format!("[{}]", items.join(","))
        }
        Some(any_value::Value::KvlistValue(kv)) => {
            let items: Vec<String> = kv
                .values
                .iter()
                .map(|p| {
                    format!(
                        "{}:{}",
                        serde_json::Value::String(p.key.clone()),
                        serde_json::Value::String(
                            p.value.as_ref().map(anyvalue_string).unwrap_or_default()
                        )
                    )
                })
                .collect();
            format!("{{{}}}", items.join(","))
        }
        // Dictionary references (profiles signal only) and absent values carry no text here.
        _ => String::new(),
    }
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
}

fn ns_to_ms(ns: u64) -> i64 {
    (ns / 1_000_000) as i64
}

struct Translator<'a> {
    state: &'a PushState,
    out: Assembled<'a>,
    rejected_points: i64,
    errors: Vec<String>,
}

impl Translator<'_> {
    fn labels_for(
        &self,
        base: &BTreeMap<String, String>,
        attrs: &[KeyValue],
        name: &str,
        extra: Option<(&str, String)>,
    ) -> Vec<Label> {
        let mut m: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for kv in attrs {
            let n = normalize_label(&kv.key);
            if n.is_empty() {
                continue;
            }
            m.entry(n).or_default().push((
                kv.key.clone(),
                kv.value.as_ref().map(anyvalue_string).unwrap_or_default(),
            ));
        }
        let mut merged: BTreeMap<String, String> = m
            .into_iter()
            .map(|(n, mut vs)| {
                vs.sort();
                (
                    n,
                    vs.into_iter().map(|(_, v)| v).collect::<Vec<_>>().join(";"),
                )
            })
            .collect();
        // job and instance from the resource win over data point attributes.
        for (k, v) in base {
            merged.insert(k.clone(), v.clone());
        }
        if let Some((k, v)) = extra {
            merged.insert(k.to_string(), v);
        }
        merged.insert("__name__".into(), name.to_string());
        merged
            .into_iter()
            .map(|(name, value)| Label { name, value })
            .collect()
    }

    fn push(&mut self, labels: Vec<Label>, samples: Vec<Sample>, exemplars: Vec<Exemplar>) {
        let st = self.state;
        if let Some(l) = self.out.add_series(
            PROTOCOL,
            &st.metrics,
            &st.limits.labels,
            labels,
            samples,
            true,
        ) && !exemplars.is_empty()
        {
            let l = self.out.labels(&l);
            self.out.exemplars.push((l, exemplars));
        }
    }

    fn exemplars(ex: &[pm::Exemplar]) -> Vec<Exemplar> {
        ex.iter()
            .map(|e| {
                let mut pairs: Vec<(String, String)> = Vec::new();
                if !e.trace_id.is_empty() {
                    pairs.push((
                        "trace_id".into(),
                        e.trace_id.iter().map(|b| format!("{b:02x}")).collect(),
                    ));
                }
                if !e.span_id.is_empty() {
                    pairs.push((
                        "span_id".into(),
                        e.span_id.iter().map(|b| format!("{b:02x}")).collect(),
                    ));
                }
                let mut runes: usize = pairs.iter().map(|(k, v)| k.len() + v.len()).sum();
                for kv in &e.filtered_attributes {
                    let (k, v) = (
                        normalize_label(&kv.key),
                        kv.value.as_ref().map(anyvalue_string).unwrap_or_default(),
                    );
                    runes += k.chars().count() + v.chars().count();
                    if runes > 128 {
                        break;
                    }
                    pairs.push((k, v));
                }
                let value = match e.value {
                    Some(pm::exemplar::Value::AsDouble(d)) => d,
                    Some(pm::exemplar::Value::AsInt(i)) => i as f64,
                    None => 0.0,
                };
                Exemplar {
                    labels: Labels::from_pairs(pairs),
                    value,
                    t: ns_to_ms(e.time_unix_nano),
                }
            })
            .collect()
    }

    fn number_points(
        &mut self,
        base: &BTreeMap<String, String>,
        name: &str,
        points: &[pm::NumberDataPoint],
    ) {
        for p in points {
            let v = if p.flags & FLAG_NO_RECORDED_VALUE != 0 {
                stale_nan()
            } else {
                match p.value {
                    Some(pm::number_data_point::Value::AsDouble(d)) => d,
                    Some(pm::number_data_point::Value::AsInt(i)) => i as f64,
                    None => {
                        self.reject(1, format!("metric {name}: data point without a value"));
                        continue;
                    }
                }
            };
            let labels = self.labels_for(base, &p.attributes, name, None);
            self.push(
                labels,
                vec![Sample {
                    t: ns_to_ms(p.time_unix_nano),
                    v,
                }],
                Self::exemplars(&p.exemplars),
            );
        }
    }

    fn reject(&mut self, n: i64, msg: String) {
        self.rejected_points += n;
        if self.errors.len() < 10 {
            self.errors.push(msg);
        }
    }

    fn translate(&mut self, req: ExportMetricsServiceRequest) {
        for rm in req.resource_metrics {
            let rattrs = rm.resource.map(|r| r.attributes).unwrap_or_default();
            let mut base = BTreeMap::new();
            let svc = attr(&rattrs, "service.name")
                .map(anyvalue_string)
                .filter(|s| !s.is_empty());
            let ns = attr(&rattrs, "service.namespace")
                .map(anyvalue_string)
                .filter(|s| !s.is_empty());
            if let Some(svc) = &svc {
                base.insert(
                    "job".to_string(),
                    match &ns {
                        Some(ns) => format!("{ns}/{svc}"),
                        None => svc.clone(),
                    },
                );
            }
            if let Some(inst) = attr(&rattrs, "service.instance.id")
                .map(anyvalue_string)
                .filter(|s| !s.is_empty())
            {
                base.insert("instance".to_string(), inst);
            }
            let (mut tmin, mut tmax) = (u64::MAX, 0u64);
            for sm in rm.scope_metrics {
                for m in sm.metrics {
                    let Some(data) = m.data else {
                        self.reject(0, format!("metric {}: no data", m.name));
                        continue;
                    };
                    let mut see = |t: u64| {
                        tmin = tmin.min(t);
                        tmax = tmax.max(t);
                    };
                    match data {
                        Data::Gauge(g) => {
                            g.data_points.iter().for_each(|p| see(p.time_unix_nano));
                            let name = metric_name(&m.name, &m.unit, false, true);
                            self.number_points(&base, &name, &g.data_points);
                        }
                        Data::Sum(s) => {
                            if s.aggregation_temporality != TEMPORALITY_CUMULATIVE && s.is_monotonic
                            {
                                self.reject(
                                    s.data_points.len() as i64,
                                    format!("metric {:?}: delta temporality is not supported (use cumulative, or a deltatocumulative processor)", m.name),
                                );
                                continue;
                            }
                            s.data_points.iter().for_each(|p| see(p.time_unix_nano));
                            let name =
                                metric_name(&m.name, &m.unit, s.is_monotonic, !s.is_monotonic);
                            self.number_points(&base, &name, &s.data_points);
                        }
                        Data::Histogram(h) => {
                            if h.aggregation_temporality != TEMPORALITY_CUMULATIVE {
                                self.reject(
                                    h.data_points.len() as i64,
                                    format!(
                                        "metric {:?}: delta temporality is not supported",
                                        m.name
                                    ),
                                );
                                continue;
                            }
                            let name = metric_name(&m.name, &m.unit, false, false);
                            for p in &h.data_points {
                                see(p.time_unix_nano);
                                self.histogram_point(&base, &name, p);
                            }
                        }
                        Data::Summary(s) => {
                            let name = metric_name(&m.name, &m.unit, false, false);
                            for p in &s.data_points {
                                see(p.time_unix_nano);
                                let t = ns_to_ms(p.time_unix_nano);
                                let stale = p.flags & FLAG_NO_RECORDED_VALUE != 0;
                                let val = |v: f64| if stale { stale_nan() } else { v };
                                let l = self.labels_for(
                                    &base,
                                    &p.attributes,
                                    &format!("{name}_sum"),
                                    None,
                                );
                                self.push(l, vec![Sample { t, v: val(p.sum) }], vec![]);
                                let l = self.labels_for(
                                    &base,
                                    &p.attributes,
                                    &format!("{name}_count"),
                                    None,
                                );
                                self.push(
                                    l,
                                    vec![Sample {
                                        t,
                                        v: val(p.count as f64),
                                    }],
                                    vec![],
                                );
                                for q in &p.quantile_values {
                                    let l = self.labels_for(
                                        &base,
                                        &p.attributes,
                                        &name,
                                        Some(("quantile", format_bound(q.quantile))),
                                    );
                                    self.push(l, vec![Sample { t, v: val(q.value) }], vec![]);
                                }
                            }
                        }
                        Data::ExponentialHistogram(h) => {
                            self.reject(
                                h.data_points.len() as i64,
                                format!("metric {:?}: exponential histograms need native histograms, which are not supported yet", m.name),
                            );
                        }
                    }
                }
            }
            // target_info carries the resource attributes that are not job/instance.
            let identifying = ["service.name", "service.namespace", "service.instance.id"];
            let extra: Vec<KeyValue> = rattrs
                .iter()
                .filter(|kv| !identifying.contains(&kv.key.as_str()))
                .cloned()
                .collect();
            if !extra.is_empty() && !base.is_empty() && tmin <= tmax {
                let labels = self.labels_for(&base, &extra, "target_info", None);
                let step = 150_000; // lookback delta / 2, so target_info stays visible between points
                let mut samples = Vec::new();
                let (lo, hi) = (ns_to_ms(tmin), ns_to_ms(tmax));
                let mut t = lo;
                while t < hi {
                    samples.push(Sample { t, v: 1.0 });
                    t += step;
                }
                samples.push(Sample { t: hi, v: 1.0 });
                self.push(labels, samples, vec![]);
            }
        }
    }

    fn histogram_point(
        &mut self,
        base: &BTreeMap<String, String>,
        name: &str,
        p: &pm::HistogramDataPoint,
    ) {
        let t = ns_to_ms(p.time_unix_nano);
        let stale = p.flags & FLAG_NO_RECORDED_VALUE != 0;
        let val = |v: f64| if stale { stale_nan() } else { v };
        if p.bucket_counts.len() > p.explicit_bounds.len() + 1 {
            self.reject(
                1,
                format!(
                    "histogram {name}: {} bucket counts for {} bounds",
                    p.bucket_counts.len(),
                    p.explicit_bounds.len()
                ),
            );
            return;
        }
        if let Some(sum) = p.sum {
            let l = self.labels_for(base, &p.attributes, &format!("{name}_sum"), None);
            self.push(l, vec![Sample { t, v: val(sum) }], vec![]);
        }
        let l = self.labels_for(base, &p.attributes, &format!("{name}_count"), None);
        self.push(
            l,
            vec![Sample {
                t,
                v: val(p.count as f64),
            }],
            vec![],
        );
        // Exemplars go to the first bucket whose bound holds their value.
        let mut ex_by_bucket: Vec<Vec<Exemplar>> = vec![Vec::new(); p.explicit_bounds.len() + 1];
        for e in Self::exemplars(&p.exemplars) {
            let i = p
                .explicit_bounds
                .iter()
                .position(|b| e.value <= *b)
                .unwrap_or(p.explicit_bounds.len());
            ex_by_bucket[i].push(e);
        }
        let mut cum = 0u64;
        for (i, b) in p.explicit_bounds.iter().enumerate() {
            cum += p.bucket_counts.get(i).copied().unwrap_or(0);
            let l = self.labels_for(
                base,
                &p.attributes,
                &format!("{name}_bucket"),
                Some(("le", format_bound(*b))),
            );
            self.push(
                l,
                vec![Sample {
                    t,
                    v: val(cum as f64),
                }],
                std::mem::take(&mut ex_by_bucket[i]),
            );
        }
        let l = self.labels_for(
            base,
            &p.attributes,
            &format!("{name}_bucket"),
            Some(("le", "+Inf".into())),
        );
        let last = p.explicit_bounds.len();
        self.push(
            l,
            vec![Sample {
                t,
                v: val(p.count as f64),
            }],
            std::mem::take(&mut ex_by_bucket[last]),
        );
    }
}

/// Translates a request into series (exposed for tests).
pub fn translate(
    req: ExportMetricsServiceRequest,
    state: &PushState,
) -> (Assembled<'_>, i64, Vec<String>) {
    let mut tr = Translator {
        state,
        out: Assembled::new(state.appender.as_ref()),
        rejected_points: 0,
        errors: Vec::new(),
    };
    tr.translate(req);
    (tr.out, tr.rejected_points, tr.errors)
}

fn error_response(enc: Encoding, status: StatusCode, message: String) -> Response {
    // gRPC code 3 = INVALID_ARGUMENT, 14 = UNAVAILABLE, 13 = INTERNAL.
    let code = match status {
        StatusCode::BAD_REQUEST => 3,
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS => 14,
        _ => 13,
    };
    match enc {
        Encoding::Json => (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({"code": code, "message": message}).to_string(),
        )
            .into_response(),
        Encoding::Protobuf => (
            status,
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            RpcStatus { code, message }.encode_to_vec(),
        )
            .into_response(),
    }
}

fn decode(
    headers: &HeaderMap,
    body: &[u8],
    limit: usize,
) -> Result<(Encoding, ExportMetricsServiceRequest), (Encoding, StatusCode, String)> {
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
    let enc = match media.as_str() {
        "application/x-protobuf" | "application/protobuf" => Encoding::Protobuf,
        "application/json" => Encoding::Json,
        _ => {
            return Err((
                Encoding::Json,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "unsupported Content-Type {ct:?}: use application/x-protobuf or application/json"
                ),
            ));
        }
    };
    let ce = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let raw: Vec<u8> = match ce.as_str() {
        "" | "identity" => body.to_vec(),
        "gzip" => {
            let mut out = Vec::new();
            let mut r = flate2::read::GzDecoder::new(body).take(limit as u64 + 1);
            r.read_to_end(&mut out)
                .map_err(|e| (enc, StatusCode::BAD_REQUEST, format!("gzip: {e}")))?;
            if out.len() > limit {
                return Err((
                    enc,
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("request decompresses to more than {limit} bytes"),
                ));
            }
            out
        }
        other => {
            return Err((
                enc,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("unsupported Content-Encoding {other:?}: use gzip or none"),
            ));
        }
    };
    let req = match enc {
        Encoding::Protobuf => ExportMetricsServiceRequest::decode(raw.as_slice()).map_err(|e| {
            (
                enc,
                StatusCode::BAD_REQUEST,
                format!("malformed protobuf ExportMetricsServiceRequest: {e}"),
            )
        })?,
        Encoding::Json => {
            let malformed = |e: serde_json::Error| {
                (
                    enc,
                    StatusCode::BAD_REQUEST,
                    format!(
                        "malformed OTLP JSON at line {} column {}: {e}",
                        e.line(),
                        e.column()
                    ),
                )
            };
            let doc: serde_json::Value = serde_json::from_slice(&raw).map_err(malformed)?;
            // The generated decoder turns a data point it cannot read into "no data" without an
            // error; check the fields it would drop first so the sender hears what is wrong.
            check_json_points(&doc).map_err(|m| (enc, StatusCode::BAD_REQUEST, m))?;
            serde_json::from_value(doc).map_err(malformed)?
        }
    };
    Ok((enc, req))
}

/// Checks the 64-bit integer fields of every JSON data point: OTLP/JSON carries them as decimal strings
/// (or plain integers); anything else (`"NaN"`, floats, words) is refused naming the metric and field.
fn check_json_points(doc: &serde_json::Value) -> Result<(), String> {
    use serde_json::Value;
    const KINDS: [&str; 5] = [
        "gauge",
        "sum",
        "histogram",
        "exponentialHistogram",
        "summary",
    ];
    const UNSIGNED: [&str; 3] = ["timeUnixNano", "startTimeUnixNano", "count"];
    let arr = |v: &Value, k: &str| {
        v.get(k)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let check = |v: &Value, field: &str, signed: bool| -> Result<(), String> {
        let ok = match v {
            Value::Number(n) => n.is_u64() || (signed && n.is_i64()),
            Value::String(s) => {
                let digits = if signed {
                    s.strip_prefix('-').unwrap_or(s)
                } else {
                    s.as_str()
                };
                !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
            }
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "{field} {v} is not a {}integer",
                if signed { "" } else { "non-negative " }
            ))
        }
    };
    for rm in arr(doc, "resourceMetrics") {
        for sm in arr(&rm, "scopeMetrics") {
            for m in arr(&sm, "metrics") {
                let name = m.get("name").and_then(Value::as_str).unwrap_or("");
                for kind in KINDS {
                    let Some(data) = m.get(kind) else { continue };
                    for (i, p) in arr(data, "dataPoints").iter().enumerate() {
                        let at = |e: String| format!("metric {name:?}: {kind} data point {i}: {e}");
                        for f in UNSIGNED {
                            if let Some(v) = p.get(f) {
                                check(v, f, false).map_err(at)?;
                            }
                        }
                        if let Some(v) = p.get("asInt") {
                            check(v, "asInt", true).map_err(at)?;
                        }
                        for (j, e) in arr(p, "exemplars").iter().enumerate() {
                            if let Some(v) = e.get("timeUnixNano") {
                                check(v, "timeUnixNano", false)
                                    .map_err(|e| at(format!("exemplar {j}: {e}")))?;
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// `POST /v1/metrics`.
pub async fn handle(State(state): State<PushState>, headers: HeaderMap, body: Bytes) -> Response {
    let t0 = Instant::now();
    let resp = process(&state, &headers, body).await;
    state
        .metrics
        .requests
        .get_or_create(&ProtocolCodeLabel {
            protocol: PROTOCOL,
            code: resp.status().as_u16(),
        })
        .inc();
    state
        .metrics
        .request_seconds
        .get_or_create(&ProtocolLabel { protocol: PROTOCOL })
        .observe(t0.elapsed().as_secs_f64());
    resp
}

async fn process(state: &PushState, headers: &HeaderMap, body: Bytes) -> Response {
    let permit = match tokio::time::timeout(
        state.limits.queue_timeout,
        state.inflight.clone().acquire_owned(),
    )
    .await
    {
        Ok(Ok(p)) => p,
        _ => {
            let mut r = error_response(
                Encoding::Json,
                StatusCode::TOO_MANY_REQUESTS,
                "too many concurrent write requests; retry later".into(),
            );
            r.headers_mut().insert(
                header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("5"),
            );
            return r;
        }
    };
    let st = state.clone();
    let headers = headers.clone();
    let res = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let (enc, req) = decode(&headers, &body, st.limits.max_decoded_bytes)?;
        let (assembled, rejected, mut errors) = translate(req, &st);
        let w = write_blocking(&st, PROTOCOL, assembled)
            .map_err(|e| (enc, StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
        let rejected = rejected + w.invalid_samples as i64 + w.outcome.rejected as i64;
        if let Some(r) = w.refusal() {
            errors.push(r);
        }
        Ok::<_, (Encoding, StatusCode, String)>((enc, rejected, errors))
    })
    .await;
    match res {
        Err(e) => error_response(
            Encoding::Json,
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal error: {e}"),
        ),
        Ok(Err((enc, code, msg))) => error_response(enc, code, msg),
        Ok(Ok((enc, rejected, errors))) => {
            let resp = ExportMetricsServiceResponse {
                partial_success: (rejected > 0 || !errors.is_empty()).then(|| {
                    ExportMetricsPartialSuccess {
                        rejected_data_points: rejected,
                        error_message: errors.join("; "),
                    }
                }),
            };
            match enc {
                Encoding::Protobuf => (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/x-protobuf")],
                    resp.encode_to_vec(),
                )
                    .into_response(),
                Encoding::Json => (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/json")],
                    serde_json::to_string(&resp).unwrap_or_else(|_| "{}".into()),
                )
                    .into_response(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus_translation() {
        assert_eq!(
            metric_name("http.server.duration", "ms", false, false),
            "http_server_duration_milliseconds"
        );
        assert_eq!(metric_name("requests", "1", true, false), "requests_total");
        assert_eq!(
            metric_name("requests.total", "", true, false),
            "requests_total"
        );
        assert_eq!(
            metric_name("cpu.utilization", "1", false, true),
            "cpu_utilization_ratio"
        );
        assert_eq!(
            metric_name("throughput", "By/s", false, true),
            "throughput_bytes_per_second"
        );
        assert_eq!(metric_name("queue", "{items}", false, true), "queue");
        assert_eq!(
            metric_name("2xx.count", "", true, false),
            "_2xx_count_total"
        );
        assert_eq!(metric_name("memory", "By", false, true), "memory_bytes");
    }

    #[test]
    fn label_normalisation() {
        assert_eq!(normalize_label("http.method"), "http_method");
        assert_eq!(normalize_label("2fa"), "key_2fa");
        assert_eq!(normalize_label("_private"), "key_private");
        assert_eq!(normalize_label("__reserved"), "__reserved");
    }

    #[test]
    fn bounds_format_like_go() {
        assert_eq!(format_bound(0.005), "0.005");
        assert_eq!(format_bound(1.0), "1");
        assert_eq!(format_bound(1e21), "1000000000000000000000");
        assert_eq!(format_bound(f64::INFINITY), "+Inf");
    }
}
