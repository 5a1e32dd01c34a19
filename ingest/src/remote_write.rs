//! Prometheus remote write 1.0 and 2.0 receiver (`POST /api/v1/write`).
//!
//! Negotiation follows the 2.0 specification: `Content-Type: application/x-protobuf` selects 1.0 unless a
//! `proto=io.prometheus.write.v2.Request` parameter selects 2.0 (no Content-Type at all is 1.0, for old
//! clients); any other type, message or a `Content-Encoding` other than snappy is a 415. Decoding errors
//! are 400 and store nothing; see [`crate::push`] for the policy on partly invalid batches. 2.0 answers
//! always carry the `X-Prometheus-Remote-Write-*-Written` headers.

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prost::Message;
use vigil_model::{Label, Labels, Sample};
use vigil_storage::Exemplar;

use crate::metrics::{ProtocolCodeLabel, ProtocolLabel};
use crate::push::{Assembled, PushState, SeriesKey, write_blocking};

/// Generated from the upstream protobuf definitions (`ingest/proto`).
mod wire;

pub mod proto {
    /// Remote write 1.0 / remote read (`package prometheus`).
    pub mod v1 {
        #![allow(clippy::all, missing_docs)]
        include!(concat!(env!("OUT_DIR"), "/prometheus.rs"));
    }
    /// Remote write 2.0 (`package io.prometheus.write.v2`).
    pub mod v2 {
        #![allow(clippy::all, missing_docs)]
        include!(concat!(env!("OUT_DIR"), "/io.prometheus.write.v2.rs"));
    }
}

const V1_MESSAGE: &str = "prometheus.WriteRequest";
const V2_MESSAGE: &str = "io.prometheus.write.v2.Request";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

impl Version {
    fn protocol(self) -> &'static str {
        match self {
            Version::V1 => "remote_write_v1",
            Version::V2 => "remote_write_v2",
        }
    }
}

/// Picks the message type from the headers, or explains the 415.
pub fn negotiate(headers: &HeaderMap) -> Result<Version, String> {
    if let Some(enc) = headers.get(header::CONTENT_ENCODING) {
        let enc = enc.to_str().unwrap_or("").trim();
        if !enc.is_empty() && !enc.eq_ignore_ascii_case("snappy") {
            return Err(format!(
                "{enc} encoding (compression) is not accepted by this server; only snappy is acceptable"
            ));
        }
    }
    let Some(ct) = headers.get(header::CONTENT_TYPE) else {
        return Ok(Version::V1);
    };
    let ct = ct
        .to_str()
        .map_err(|_| "Content-Type is not ASCII".to_string())?;
    let mut parts = ct.split(';');
    let media = parts.next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case("application/x-protobuf") {
        return Err(format!(
            "expected Content-Type application/x-protobuf, got {media:?}"
        ));
    }
    for p in parts {
        let p = p.trim();
        if p.is_empty() {
            continue;
        }
        let Some((k, v)) = p.split_once('=') else {
            return Err(format!("malformed Content-Type parameter {p:?}"));
        };
        if k.trim().eq_ignore_ascii_case("proto") {
            return match v.trim().trim_matches('"') {
                V1_MESSAGE => Ok(Version::V1),
                V2_MESSAGE => Ok(Version::V2),
                other => Err(format!(
                    "{other} protobuf message is not accepted by this server; accepted [{V1_MESSAGE} {V2_MESSAGE}]"
                )),
            };
        }
    }
    Ok(Version::V1)
}

thread_local! {
    /// Each blocking thread's decompression buffer, reused across requests: a fresh buffer per
    /// request costs an allocation and, for large bodies, page faults on zeroed pages.
    static DECODED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Decompresses a snappy block into this thread's reused buffer and runs `f` on it.
fn with_snappy_decoded<T>(
    body: &[u8],
    limit: usize,
    f: impl FnOnce(&[u8]) -> T,
) -> Result<T, String> {
    let n = snap::raw::decompress_len(body).map_err(|e| format!("snappy: {e}"))?;
    if n > limit {
        return Err(format!(
            "request decompresses to {n} bytes, over the {limit} byte limit"
        ));
    }
    DECODED.with(|cell| {
        let mut buf = cell.borrow_mut();
        if buf.len() < n {
            buf.resize(n, 0);
        }
        let got = snap::raw::Decoder::new()
            .decompress(body, &mut buf[..n])
            .map_err(|e| format!("snappy: {e}"))?;
        let out = f(&buf[..got]);
        // Keep what typical requests need (Prometheus sends at most a few hundred KiB decoded),
        // not the buffer of an unusually large one: every blocking thread has its own.
        if buf.len() > 4 << 20 {
            *buf = Vec::new();
        }
        Ok(out)
    })
}

/// Decompresses a snappy block, refusing bodies that would expand past `limit`.
pub fn snappy_decode(body: &[u8], limit: usize) -> Result<Vec<u8>, String> {
    let n = snap::raw::decompress_len(body).map_err(|e| format!("snappy: {e}"))?;
    if n > limit {
        return Err(format!(
            "request decompresses to {n} bytes, over the {limit} byte limit"
        ));
    }
    snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| format!("snappy: {e}"))
}

fn v1_labels(labels: Vec<proto::v1::Label>) -> Vec<Label> {
    labels
        .into_iter()
        .map(|l| Label {
            name: l.name,
            value: l.value,
        })
        .collect()
}

/// Turns a decoded 1.0 request into series.
pub fn assemble_v1(req: proto::v1::WriteRequest, state: &PushState) -> Assembled<'_> {
    let mut a = Assembled::new(state.appender.as_ref());
    if let Some(store) = &state.metadata {
        for m in &req.metadata {
            let kind = proto::v1::metric_metadata::MetricType::try_from(m.r#type)
                .map(|t| t.as_str_name().to_ascii_lowercase())
                .unwrap_or_else(|_| "unknown".into());
            store.record(
                &m.metric_family_name,
                vigil_storage::MetricMetadata {
                    kind,
                    help: m.help.clone(),
                    unit: m.unit.clone(),
                },
            );
        }
    }
    let protocol = Version::V1.protocol();
    for ts in req.timeseries {
        let samples: Vec<Sample> = ts
            .samples
            .iter()
            .map(|s| Sample {
                t: s.timestamp,
                v: s.value,
            })
            .collect();
        let exemplars: Vec<Exemplar> = ts
            .exemplars
            .into_iter()
            .map(|e| Exemplar {
                labels: Labels::from_pairs(e.labels.into_iter().map(|l| (l.name, l.value))),
                value: e.value,
                t: e.timestamp,
            })
            .collect();
        let nh = ts.histograms.len() as u64;
        let Some(key) = a.add_series(
            protocol,
            &state.metrics,
            &state.limits.labels,
            v1_labels(ts.labels),
            samples,
            true,
        ) else {
            continue;
        };
        finish_series(&mut a, key, nh, exemplars);
    }
    a
}

/// What both versions do after a series was accepted: refuse its native histogram samples by name,
/// keep its exemplars.
fn finish_series(a: &mut Assembled, key: SeriesKey, histograms: u64, exemplars: Vec<Exemplar>) {
    if histograms == 0 && exemplars.is_empty() {
        return;
    }
    let labels = a.labels(&key);
    if histograms > 0 {
        a.invalid_samples += histograms;
        a.problem(format!(
            "series {labels}: native histograms are not supported yet; {histograms} histogram samples refused"
        ));
    }
    if !exemplars.is_empty() {
        a.exemplars.push((labels, exemplars));
    }
}

/// Turns a decoded 2.0 request into series, resolving symbol references.
pub fn assemble_v2(req: proto::v2::Request, state: &PushState) -> Result<Assembled<'_>, String> {
    let syms = &req.symbols;
    if syms.first().is_some_and(|s| !s.is_empty()) {
        return Err("symbols[0] must be the empty string".into());
    }
    let sym = |i: u32| -> Result<&String, String> {
        syms.get(i as usize).ok_or_else(|| {
            format!(
                "symbol reference {i} is out of range ({} symbols)",
                syms.len()
            )
        })
    };
    let refs_to_labels = |refs: &[u32]| -> Result<Vec<Label>, String> {
        if !refs.len().is_multiple_of(2) {
            return Err(format!("odd number of label references ({})", refs.len()));
        }
        refs.chunks(2)
            .map(|p| {
                Ok(Label {
                    name: sym(p[0])?.clone(),
                    value: sym(p[1])?.clone(),
                })
            })
            .collect()
    };
    let mut a = Assembled::new(state.appender.as_ref());
    let protocol = Version::V2.protocol();
    for ts in req.timeseries {
        let labels = refs_to_labels(&ts.labels_refs)?;
        let samples: Vec<Sample> = ts
            .samples
            .iter()
            .map(|s| Sample {
                t: s.timestamp,
                v: s.value,
            })
            .collect();
        let mut exemplars = Vec::with_capacity(ts.exemplars.len());
        for e in &ts.exemplars {
            exemplars.push(Exemplar {
                labels: Labels::from_pairs(
                    refs_to_labels(&e.labels_refs)?
                        .into_iter()
                        .map(|l| (l.name, l.value)),
                ),
                value: e.value,
                t: e.timestamp,
            });
        }
        let nh = ts.histograms.len() as u64;
        let Some(key) = a.add_series(
            protocol,
            &state.metrics,
            &state.limits.labels,
            labels,
            samples,
            true,
        ) else {
            continue;
        };
        finish_series(&mut a, key, nh, exemplars);
    }
    Ok(a)
}

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// `POST /api/v1/write`.
pub async fn handle(State(state): State<PushState>, headers: HeaderMap, body: Bytes) -> Response {
    let t0 = Instant::now();
    let (version, resp) = match negotiate(&headers) {
        Err(msg) => (Version::V1, text(StatusCode::UNSUPPORTED_MEDIA_TYPE, msg)),
        Ok(v) => (v, process(&state, v, body).await),
    };
    let protocol = version.protocol();
    state
        .metrics
        .requests
        .get_or_create(&ProtocolCodeLabel {
            protocol,
            code: resp.status().as_u16(),
        })
        .inc();
    state
        .metrics
        .request_seconds
        .get_or_create(&ProtocolLabel { protocol })
        .observe(t0.elapsed().as_secs_f64());
    resp
}

async fn process(state: &PushState, version: Version, body: Bytes) -> Response {
    let permit = match tokio::time::timeout(
        state.limits.queue_timeout,
        state.inflight.clone().acquire_owned(),
    )
    .await
    {
        Ok(Ok(p)) => p,
        _ => {
            let mut r = text(
                StatusCode::TOO_MANY_REQUESTS,
                "too many concurrent write requests; retry later".into(),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            return r;
        }
    };
    let st = state.clone();
    let joined = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let assembled = with_snappy_decoded(&body, st.limits.max_decoded_bytes, |raw| {
            Ok::<_, (StatusCode, String)>(match version {
                Version::V1 => {
                    let mut fast = Assembled::new(st.appender.as_ref());
                    if wire::assemble(raw, &mut fast, Version::V1.protocol(), &st).is_ok() {
                        return Ok(fast);
                    }
                    let req = proto::v1::WriteRequest::decode(raw).map_err(|e| {
                        (
                            StatusCode::BAD_REQUEST,
                            format!("malformed protobuf (remote write 1.0 WriteRequest): {e}"),
                        )
                    })?;
                    assemble_v1(req, &st)
                }
                Version::V2 => {
                    let req = proto::v2::Request::decode(raw).map_err(|e| {
                        (
                            StatusCode::BAD_REQUEST,
                            format!("malformed protobuf (remote write 2.0 Request): {e}"),
                        )
                    })?;
                    assemble_v2(req, &st).map_err(|e| (StatusCode::BAD_REQUEST, e))?
                }
            })
        })
        .map_err(|e| (StatusCode::BAD_REQUEST, e))??;
        // Storage faults (a failed WAL, shutdown) are 503: the sender keeps the samples and retries.
        write_blocking(&st, version.protocol(), assembled)
            .map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, e.to_string()))
    })
    .await;
    let (mut resp, written) = match joined {
        Err(e) => (
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("internal error: {e}"),
            ),
            None,
        ),
        Ok(Err((code, msg))) => (text(code, msg), None),
        Ok(Ok(res)) => match res.refusal() {
            None => (StatusCode::NO_CONTENT.into_response(), Some(res)),
            Some(body) => (text(StatusCode::BAD_REQUEST, body), Some(res)),
        },
    };
    if version == Version::V2 {
        let (samples, exemplars) = written
            .as_ref()
            .map(|w| (w.samples_written(), w.exemplars_written))
            .unwrap_or((0, 0));
        let h = resp.headers_mut();
        h.insert(
            "X-Prometheus-Remote-Write-Samples-Written",
            HeaderValue::from(samples),
        );
        h.insert(
            "X-Prometheus-Remote-Write-Histograms-Written",
            HeaderValue::from(0u64),
        );
        h.insert(
            "X-Prometheus-Remote-Write-Exemplars-Written",
            HeaderValue::from(exemplars),
        );
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hm(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn negotiation() {
        assert_eq!(negotiate(&hm(&[])), Ok(Version::V1));
        assert_eq!(
            negotiate(&hm(&[("content-type", "application/x-protobuf")])),
            Ok(Version::V1)
        );
        assert_eq!(
            negotiate(&hm(&[(
                "content-type",
                "application/x-protobuf;proto=io.prometheus.write.v2.Request"
            )])),
            Ok(Version::V2)
        );
        assert_eq!(
            negotiate(&hm(&[(
                "content-type",
                "application/x-protobuf; proto=prometheus.WriteRequest"
            )])),
            Ok(Version::V1)
        );
        assert!(negotiate(&hm(&[("content-type", "application/json")])).is_err());
        assert!(
            negotiate(&hm(&[(
                "content-type",
                "application/x-protobuf;proto=foo.Bar"
            )]))
            .is_err()
        );
        assert!(negotiate(&hm(&[("content-encoding", "gzip")])).is_err());
        assert_eq!(
            negotiate(&hm(&[("content-encoding", "SNAPPY")])),
            Ok(Version::V1)
        );
    }

    #[test]
    fn snappy_limits() {
        let data = vec![7u8; 10_000];
        let enc = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        assert_eq!(snappy_decode(&enc, 20_000).unwrap(), data);
        assert!(snappy_decode(&enc, 5_000).unwrap_err().contains("limit"));
        assert!(snappy_decode(b"\xff\xff\xff", 1000).is_err());
        assert!(snappy_decode(b"", 1000).is_err());
    }
}
