//! The load test's own metrics, pushed every second to Vigil by remote write 1.0 (the Recovery
//! view draws them beside the alerts and the runbook's steps). Series, with `job="vigil-loadtest"`
//! and `scenario`:
//!
//! - `vigil_loadtest_requests_total{target,outcome}` (ok, status, error, timeout): a counter;
//! - `vigil_loadtest_latency_seconds{quantile}` (0.5, 0.9, 0.99, 1): the last second's answers;
//! - `vigil_loadtest_rate`: the scheduled rate; `vigil_loadtest_in_flight`;
//! - `vigil_loadtest_fault_time_seconds{fault,kind}`: when each fault was injected (Unix seconds).

use prost::Message;
use vigil_ingest::remote_write::proto::v1::{Label, Sample, TimeSeries, WriteRequest};

/// One series' labels (sorted by name, as remote write wants them) and value.
pub struct Point {
    pub name: &'static str,
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
}

/// The remote-write request for `points` at `ts_ms`.
pub fn request(job_labels: &[(&'static str, String)], points: &[Point], ts_ms: i64) -> Vec<u8> {
    let timeseries = points
        .iter()
        .map(|p| {
            let mut labels: Vec<Label> = std::iter::once(("__name__", p.name.to_string()))
                .chain(job_labels.iter().cloned())
                .chain(p.labels.iter().cloned())
                .map(|(name, value)| Label {
                    name: name.to_string(),
                    value,
                })
                .collect();
            labels.sort_by(|a, b| a.name.cmp(&b.name));
            TimeSeries {
                labels,
                samples: vec![Sample {
                    value: p.value,
                    timestamp: ts_ms,
                }],
                ..Default::default()
            }
        })
        .collect();
    let body = WriteRequest {
        timeseries,
        ..Default::default()
    }
    .encode_to_vec();
    snap::raw::Encoder::new()
        .compress_vec(&body)
        .unwrap_or_default()
}

/// Sends one request to `url` (`.../api/v1/write`); the error says what the server answered.
pub async fn send(
    client: &reqwest::Client,
    url: &crate::Endpoint,
    body: Vec<u8>,
) -> Result<(), String> {
    let r = url
        .request(client, reqwest::Method::POST, "/api/v1/write")
        .header("Content-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(body)
        .timeout(std::time::Duration::from_secs(5))
        .send()
        .await
        .map_err(|e| format!("remote write to {}: {e}", url.base))?;
    if r.status().is_success() {
        Ok(())
    } else {
        let st = r.status();
        let text = r.text().await.unwrap_or_default();
        Err(format!(
            "remote write to {}: {st}: {}",
            url.base,
            text.trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_decode_with_sorted_labels() {
        let body = request(
            &[("job", "vigil-loadtest".into()), ("scenario", "s".into())],
            &[Point {
                name: "vigil_loadtest_requests_total",
                labels: vec![("target", "web".into()), ("outcome", "ok".into())],
                value: 3.0,
            }],
            1_700_000_000_000,
        );
        let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
        let w = WriteRequest::decode(raw.as_slice()).unwrap();
        let names: Vec<&str> = w.timeseries[0]
            .labels
            .iter()
            .map(|l| l.name.as_str())
            .collect();
        assert_eq!(names, ["__name__", "job", "outcome", "scenario", "target"]);
        assert_eq!(w.timeseries[0].samples[0].value, 3.0);
    }
}
