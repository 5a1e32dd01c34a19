//! Building and sending remote-write requests the way Prometheus does.

use prost::Message;
use vigil_ingest::remote_write::proto::v1;

/// One series to push: labels (in the given order, so tests can send unsorted ones) and samples.
pub struct Series {
    pub labels: Vec<(String, String)>,
    pub samples: Vec<(i64, f64)>,
}

pub fn series(labels: &[(&str, &str)], samples: Vec<(i64, f64)>) -> Series {
    Series {
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        samples,
    }
}

pub fn encode_v1(series: &[Series]) -> Vec<u8> {
    let req = v1::WriteRequest {
        timeseries: series
            .iter()
            .map(|s| v1::TimeSeries {
                labels: s
                    .labels
                    .iter()
                    .map(|(k, v)| v1::Label {
                        name: k.clone(),
                        value: v.clone(),
                    })
                    .collect(),
                samples: s
                    .samples
                    .iter()
                    .map(|&(t, v)| v1::Sample {
                        value: v,
                        timestamp: t,
                    })
                    .collect(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    req.encode_to_vec()
}

pub fn snappy(raw: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(raw).unwrap()
}

/// POSTs an already-compressed body with remote write 1.0 headers; returns status and body text.
pub async fn post_raw(url: &str, body: Vec<u8>, content_type: &str) -> (u16, String) {
    let r = crate::harness::client()
        .post(url)
        .header("Content-Type", content_type)
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .header("User-Agent", "vigil-e2e")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.text().await.unwrap())
}

/// Sends series by remote write 1.0; returns status and body text.
pub async fn write_v1(url: &str, series: &[Series]) -> (u16, String) {
    post_raw(url, snappy(&encode_v1(series)), "application/x-protobuf").await
}
