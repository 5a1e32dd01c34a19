//! Remote write 2.0 and OTLP/HTTP metrics, sent as their clients send them, read back through the API.

use std::collections::BTreeMap;
use std::io::Write;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, Summary, SummaryDataPoint, metric::Data, number_data_point,
    summary_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use vigil_ingest::remote_write::proto::v2;

use crate::harness::*;
use crate::push::snappy;

const V2_TYPE: &str = "application/x-protobuf;proto=io.prometheus.write.v2.Request";

async fn post_v2(url: &str, req: &v2::Request) -> reqwest::Response {
    client()
        .post(url)
        .header("Content-Type", V2_TYPE)
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Write-Version", "2.0.0")
        .body(snappy(&req.encode_to_vec()))
        .send()
        .await
        .unwrap()
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn remote_write_2_with_symbols_and_exemplars() {
    let v = Vigil::start("scrape_configs: []\n").await;
    let url = v.url("/api/v1/write");
    let t = (now_secs() * 1000.0) as i64 - 10_000;
    let symbols: Vec<String> = [
        "",
        "__name__",
        "rw2_requests_total",
        "instance",
        "a:1",
        "job",
        "rw2",
        "trace_id",
        "abc123",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    let req = v2::Request {
        symbols: symbols.clone(),
        timeseries: vec![v2::TimeSeries {
            labels_refs: vec![1, 2, 3, 4, 5, 6],
            samples: vec![
                v2::Sample {
                    value: 1.25,
                    timestamp: t,
                    ..Default::default()
                },
                v2::Sample {
                    value: 2.5,
                    timestamp: t + 1000,
                    ..Default::default()
                },
            ],
            exemplars: vec![v2::Exemplar {
                labels_refs: vec![7, 8],
                value: 0.7,
                timestamp: t + 1000,
            }],
            ..Default::default()
        }],
    };
    let r = post_v2(&url, &req).await;
    assert_eq!(r.status(), 204, "{:?}", r.text().await);
    assert_eq!(header(&r, "X-Prometheus-Remote-Write-Samples-Written"), "2");
    assert_eq!(
        header(&r, "X-Prometheus-Remote-Write-Histograms-Written"),
        "0"
    );
    assert_eq!(
        header(&r, "X-Prometheus-Remote-Write-Exemplars-Written"),
        "1"
    );
    let got = v
        .query("rw2_requests_total[1m]", (t + 2000) as f64 / 1000.0)
        .await;
    assert_eq!(
        got[0]["metric"],
        serde_json::json!({"__name__": "rw2_requests_total", "instance": "a:1", "job": "rw2"})
    );
    let vals: Vec<String> = got[0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1].as_str().unwrap().to_string())
        .collect();
    assert_eq!(vals, ["1.25", "2.5"]);
    let ex = v
        .get_json(&format!(
            "/api/v1/query_exemplars?query=rw2_requests_total&start={}&end={}",
            t as f64 / 1000.0 - 1.0,
            t as f64 / 1000.0 + 5.0
        ))
        .await;
    assert_eq!(
        ex["data"][0]["exemplars"][0]["labels"]["trace_id"], "abc123",
        "{ex}"
    );
    assert_eq!(ex["data"][0]["exemplars"][0]["value"], "0.7");

    // A label reference outside the symbol table: 400, nothing of the request written.
    let mut bad = req.clone();
    bad.timeseries[0].labels_refs = vec![1, 2, 3, 99];
    bad.timeseries[0].samples = vec![v2::Sample {
        value: 9.0,
        timestamp: t + 5000,
        ..Default::default()
    }];
    let r = post_v2(&url, &bad).await;
    assert_eq!(r.status(), 400);
    let body = r.text().await.unwrap();
    assert!(body.contains("99") && body.contains("symbol"), "{body}");
    // An odd number of label references.
    bad.timeseries[0].labels_refs = vec![1, 2, 3];
    let r = post_v2(&url, &bad).await;
    assert_eq!(r.status(), 400);
    // Native histograms are refused by name, and counted as not written.
    let hist = v2::Request {
        symbols: symbols.clone(),
        timeseries: vec![v2::TimeSeries {
            labels_refs: vec![1, 2, 3, 4, 5, 6],
            histograms: vec![v2::Histogram {
                timestamp: t + 6000,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let r = post_v2(&url, &hist).await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        header(&r, "X-Prometheus-Remote-Write-Histograms-Written"),
        "0"
    );
    assert!(r.text().await.unwrap().contains("native histograms"));
    let after = v
        .query("rw2_requests_total[1m]", (t + 9000) as f64 / 1000.0)
        .await;
    assert_eq!(
        after[0]["values"].as_array().unwrap().len(),
        2,
        "refused requests changed the series: {after}"
    );
}

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

/// One request with a gauge, a monotonic cumulative sum, a histogram and a summary.
fn otlp_request(instance: &str, t_ns: u64) -> ExportMetricsServiceRequest {
    let start = t_ns - 60_000_000_000;
    let metric = |name: &str, unit: &str, data: Data| Metric {
        name: name.into(),
        unit: unit.into(),
        data: Some(data),
        ..Default::default()
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", "checkout"),
                    kv("service.namespace", "shop"),
                    kv("service.instance.id", instance),
                    kv("host.name", "h1"),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![
                    metric(
                        "memory.usage",
                        "By",
                        Data::Gauge(Gauge {
                            data_points: vec![NumberDataPoint {
                                attributes: vec![kv("state", "used")],
                                time_unix_nano: t_ns,
                                value: Some(number_data_point::Value::AsDouble(1024.5)),
                                ..Default::default()
                            }],
                        }),
                    ),
                    metric(
                        "http.requests",
                        "{request}",
                        Data::Sum(Sum {
                            data_points: vec![NumberDataPoint {
                                attributes: vec![kv("http.method", "GET")],
                                start_time_unix_nano: start,
                                time_unix_nano: t_ns,
                                value: Some(number_data_point::Value::AsInt(42)),
                                ..Default::default()
                            }],
                            aggregation_temporality: AggregationTemporality::Cumulative as i32,
                            is_monotonic: true,
                        }),
                    ),
                    metric(
                        "rpc.duration",
                        "s",
                        Data::Histogram(Histogram {
                            data_points: vec![HistogramDataPoint {
                                start_time_unix_nano: start,
                                time_unix_nano: t_ns,
                                count: 6,
                                sum: Some(3.5),
                                bucket_counts: vec![2, 3, 1],
                                explicit_bounds: vec![0.1, 1.0],
                                ..Default::default()
                            }],
                            aggregation_temporality: AggregationTemporality::Cumulative as i32,
                        }),
                    ),
                    metric(
                        "gc.pause",
                        "s",
                        Data::Summary(Summary {
                            data_points: vec![SummaryDataPoint {
                                start_time_unix_nano: start,
                                time_unix_nano: t_ns,
                                count: 4,
                                sum: 0.8,
                                quantile_values: vec![
                                    summary_data_point::ValueAtQuantile {
                                        quantile: 0.5,
                                        value: 0.1,
                                    },
                                    summary_data_point::ValueAtQuantile {
                                        quantile: 0.99,
                                        value: 0.5,
                                    },
                                ],
                                ..Default::default()
                            }],
                        }),
                    ),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// `series -> value` of every series of `instance`, in the shape Prometheus's OTLP translation gives.
async fn stored(v: &Vigil, instance: &str, at: f64) -> BTreeMap<String, String> {
    let r = v.query(&format!("{{instance=\"{instance}\"}}"), at).await;
    r.as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let mut m = e["metric"].as_object().unwrap().clone();
            assert_eq!(m.remove("job").unwrap(), "shop/checkout", "{e}");
            m.remove("instance");
            let name = m.remove("__name__").unwrap();
            let rest: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
                .collect();
            (
                format!("{}{{{}}}", name.as_str().unwrap(), rest.join(",")),
                e["value"][1].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn expected() -> BTreeMap<String, String> {
    [
        ("memory_usage_bytes{state=used}", "1024.5"),
        ("http_requests_total{http_method=GET}", "42"),
        ("rpc_duration_seconds_bucket{le=0.1}", "2"),
        ("rpc_duration_seconds_bucket{le=1}", "5"),
        ("rpc_duration_seconds_bucket{le=+Inf}", "6"),
        ("rpc_duration_seconds_count{}", "6"),
        ("rpc_duration_seconds_sum{}", "3.5"),
        ("gc_pause_seconds{quantile=0.5}", "0.1"),
        ("gc_pause_seconds{quantile=0.99}", "0.5"),
        ("gc_pause_seconds_count{}", "4"),
        ("gc_pause_seconds_sum{}", "0.8"),
        ("target_info{host_name=h1}", "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn otlp_protobuf_gzip_and_json_translate_like_prometheus() {
    let v = Vigil::start("scrape_configs: []\n").await;
    let t_ns = ((now_secs() - 5.0) * 1e9) as u64;
    let at = t_ns as f64 / 1e9 + 1.0;

    // Protobuf, gzip-compressed, at the Prometheus-compatible path.
    let raw = otlp_request("pod-1", t_ns).encode_to_vec();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&raw).unwrap();
    let r = client()
        .post(v.url("/api/v1/otlp/v1/metrics"))
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "gzip")
        .body(gz.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    assert_eq!(stored(&v, "pod-1", at).await, expected());

    // JSON (as the OTLP/JSON encoding writes it) at the collector path.
    let json = serde_json::to_string(&otlp_request("pod-2", t_ns)).unwrap();
    assert!(
        json.contains("\"timeUnixNano\""),
        "not OTLP/JSON field names: {json}"
    );
    let r = client()
        .post(v.url("/v1/metrics"))
        .header("Content-Type", "application/json")
        .body(json)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    assert_eq!(stored(&v, "pod-2", at).await, expected());
}
