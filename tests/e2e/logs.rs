//! Logs: Loki push in its three body shapes (JSON, protobuf with snappy, gzip), Grafana's Loki data
//! source requests exactly as compat/API-SURFACE.md §2 lists them, bad input, and durability across
//! `kill -9` with the head cut into splits.

use std::io::Write;
use std::time::Duration;

use vigil_model::now_ns;

use prost::Message;
use serde_json::{Value, json};
use vigil_ingest::loki::decode::{EntryAdapter, LabelPair, PushRequest, StreamAdapter, Timestamp};

use crate::harness::*;

/// Splits are cut within a second, so queries read the index as well as the head.
const CONFIG: &str = "scrape_configs: []\nstorage:\n  logs:\n    head_max_age: 1s\n    maintenance_interval: 200ms\n";

async fn push_json(v: &Vigil, body: &Value) -> (u16, String) {
    let r = client()
        .post(v.url("/loki/api/v1/push"))
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn push_raw(v: &Vigil, ct: &str, ce: Option<&str>, body: Vec<u8>) -> (u16, String) {
    let mut r = client()
        .post(v.url("/loki/api/v1/push"))
        .header("Content-Type", ct)
        .header("X-Scope-OrgID", "tenant-a");
    if let Some(ce) = ce {
        r = r.header("Content-Encoding", ce);
    }
    let r = r.body(body).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn with_query(v: &Vigil, path: &str, params: &[(&str, String)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, val) in params {
        q.append_pair(k, val);
    }
    format!("{}?{}", v.url(path), q.finish())
}

/// GETs a Loki API path as Grafana does; returns status and parsed body.
async fn get(v: &Vigil, path: &str, params: &[(&str, String)]) -> (u16, Value) {
    let r = client()
        .get(with_query(v, path, params))
        .header("X-Query-Tags", "Source=grafana")
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// A fixed data set: 60 JSON app lines (levels cycling), 30 nginx lines, 20 logfmt lines, spread over
/// the last minute; returns (t0, t_last) in ns.
async fn load(v: &Vigil) -> (i64, i64) {
    let t0 = now_ns() - 60_000_000_000;
    let levels = ["info", "warn", "error"];
    let app: Vec<Value> = (0..60)
        .map(|i| {
            json!([
                (t0 + i * 1_000_000_000).to_string(),
                json!({"level": levels[i as usize % 3], "msg": format!("request {i}"), "status": 200 + (i % 3) * 150, "duration": format!("{}ms", 10 * i)}).to_string()
            ])
        })
        .collect();
    let (s, b) = push_json(
        v,
        &json!({"streams": [{"stream": {"app": "api", "env": "prod"}, "values": app}]}),
    )
    .await;
    assert_eq!(s, 204, "{b}");
    // nginx lines by protobuf + snappy, with structured metadata on every other line.
    let entries = (0..30)
        .map(|i| {
            let ts = t0 + i * 2_000_000_000 + 500_000_000;
            EntryAdapter {
                timestamp: Some(Timestamp {
                    seconds: ts / 1_000_000_000,
                    nanos: (ts % 1_000_000_000) as i32,
                }),
                line: format!(
                    "10.0.0.{} - - [06/Dec/2026:05:00:{:02} +0000] \"GET /item/{i} HTTP/1.1\" {} {} \"-\" \"curl/8\"",
                    i % 4,
                    i % 60,
                    if i % 5 == 0 { 500 } else { 200 },
                    100 + i
                ),
                structured_metadata: if i % 2 == 0 {
                    vec![LabelPair {
                        name: "trace_id".into(),
                        value: format!("t{i}"),
                    }]
                } else {
                    vec![]
                },
            }
        })
        .collect();
    let req = PushRequest {
        streams: vec![StreamAdapter {
            labels: r#"{app="web", env="prod"}"#.into(),
            entries,
        }],
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .unwrap();
    let (s, b) = push_raw(v, "application/x-protobuf", None, body).await;
    assert_eq!(s, 204, "{b}");
    // logfmt lines as gzip-compressed JSON.
    let lf: Vec<Value> = (0..20)
        .map(|i| {
            json!([
                (t0 + i * 3_000_000_000 + 250_000_000).to_string(),
                format!(
                    "level={} component=db msg=\"query took {}ms\" rows={}",
                    if i % 4 == 0 { "error" } else { "info" },
                    i * 7,
                    i
                )
            ])
        })
        .collect();
    let raw =
        json!({"streams": [{"stream": {"app": "db", "env": "stage"}, "values": lf}]}).to_string();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(raw.as_bytes()).unwrap();
    let (s, b) = push_raw(v, "application/json", Some("gzip"), gz.finish().unwrap()).await;
    assert_eq!(s, 204, "{b}");
    (t0, t0 + 60_000_000_000)
}

fn stream_lines(resp: &Value) -> Vec<(String, String)> {
    resp["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| {
            s["values"].as_array().unwrap().iter().map(|e| {
                (
                    e[0].as_str().unwrap().to_string(),
                    e[1].as_str().unwrap().to_string(),
                )
            })
        })
        .collect()
}

/// Grafana's Loki data source, request by request (API-SURFACE §2): health check, labels, label
/// values, series, log and metric query_range with Grafana's parameters, the volume histogram,
/// index/stats, categorized labels, and 404 for what is not served.
#[tokio::test]
async fn grafana_loki_data_source() {
    let v = Vigil::start(CONFIG).await;
    let (t0, t1) = load(&v).await;
    let (start, end) = (
        (t0 - 1_000_000_000).to_string(),
        (t1 + 5_000_000_000).to_string(),
    );

    // Save & test: instant vector(1)+vector(1) at time=4000000000.
    let (s, b) = get(
        &v,
        "/loki/api/v1/query",
        &[
            ("query", "vector(1)+vector(1)".into()),
            ("time", "4000000000".into()),
        ],
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["status"], "success");
    assert_eq!(b["data"]["resultType"], "vector");
    assert_eq!(b["data"]["result"][0]["value"][1], "2", "{b}");
    assert_eq!(b["data"]["result"][0]["metric"], json!({}));

    // Splits are cut after a second; let the cut happen so the rest reads index and head.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while v.self_metric("vigil_logs_splits").await.unwrap_or(0.0) < 1.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no split was cut: {}",
            v.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Labels and values (Grafana's label browser).
    let (s, b) = get(
        &v,
        "/loki/api/v1/labels",
        &[("start", start.clone()), ("end", end.clone())],
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(b, json!({"status": "success", "data": ["app", "env"]}));
    let (_, b) = get(
        &v,
        "/loki/api/v1/label/app/values",
        &[("start", start.clone()), ("end", end.clone())],
    )
    .await;
    assert_eq!(b["data"], json!(["api", "db", "web"]));
    let (_, b) = get(
        &v,
        "/loki/api/v1/label/app/values",
        &[
            ("start", start.clone()),
            ("end", end.clone()),
            ("query", r#"{env="prod"}"#.into()),
        ],
    )
    .await;
    assert_eq!(b["data"], json!(["api", "web"]));
    let (_, b) = get(
        &v,
        "/loki/api/v1/labels",
        &[
            ("start", start.clone()),
            ("end", end.clone()),
            ("query", r#"{app="db"}"#.into()),
        ],
    )
    .await;
    assert_eq!(b["data"], json!(["app", "env"]));
    let (_, b) = get(
        &v,
        "/loki/api/v1/series",
        &[
            ("match[]", r#"{env="prod"}"#.into()),
            ("start", start.clone()),
            ("end", end.clone()),
        ],
    )
    .await;
    assert_eq!(
        b["data"],
        json!([{"app": "api", "env": "prod"}, {"app": "web", "env": "prod"}])
    );

    // A log query as Grafana sends it: backward, limit 1000, step in ms, ns times.
    let (s, b) = get(
        &v,
        "/loki/api/v1/query_range",
        &[
            ("query", r#"{app="api"} |= "request 1""#.into()),
            ("direction", "backward".into()),
            ("limit", "1000".into()),
            ("step", "1000ms".into()),
            ("start", start.clone()),
            ("end", end.clone()),
        ],
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["resultType"], "streams");
    assert!(b["data"]["stats"].is_object());
    // Grafana reads `resultType` before `result`.
    let raw = client()
        .get(with_query(
            &v,
            "/loki/api/v1/query_range",
            &[("query", r#"{app="api"}"#.into()), ("limit", "1".into())],
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        raw.find("\"resultType\"").unwrap() < raw.find("\"result\"").unwrap(),
        "{raw}"
    );
    let lines = stream_lines(&b);
    // "request 1" and "request 10".."request 19": 11 lines, newest first.
    assert_eq!(lines.len(), 11, "{b}");
    assert!(lines[0].1.contains("\"request 19\""), "{lines:?}");
    assert!(
        lines
            .windows(2)
            .all(|w| w[0].0.parse::<i64>().unwrap() > w[1].0.parse::<i64>().unwrap())
    );
    assert_eq!(
        b["data"]["result"][0]["stream"],
        json!({"app": "api", "env": "prod"})
    );

    // Forward with a limit, and a parser with a label filter.
    let (_, b) = get(
        &v,
        "/loki/api/v1/query_range",
        &[
            (
                "query",
                r#"{app="api"} | json | level="error" | status >= 500"#.into(),
            ),
            ("direction", "forward".into()),
            ("limit", "5".into()),
            ("start", start.clone()),
            ("end", end.clone()),
        ],
    )
    .await;
    let lines = stream_lines(&b);
    assert_eq!(lines.len(), 5);
    assert!(lines[0].1.contains("\"request 2\""), "{lines:?}");
    let s0 = &b["data"]["result"][0]["stream"];
    assert_eq!(s0["level"], "error");
    assert_eq!(s0["status"], "500");

    // The logs volume histogram Grafana draws under every log query.
    let (s, b) = get(
        &v,
        "/loki/api/v1/query_range",
        &[
            (
                "query",
                r#"sum by (level) (count_over_time({app="api"} | json [10s]))"#.into(),
            ),
            ("start", (t0 / 1_000_000_000 * 1_000_000_000).to_string()),
            ("end", (t1 / 1_000_000_000 * 1_000_000_000).to_string()),
            ("step", "10000ms".into()),
        ],
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["resultType"], "matrix");
    let result = b["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 3, "{b}");
    let total: f64 = result
        .iter()
        .flat_map(|s| s["values"].as_array().unwrap().iter())
        .map(|p| p[1].as_str().unwrap().parse::<f64>().unwrap())
        .sum();
    // Windows of 10 s every 10 s tile the minute: each line is counted once.
    assert!((59.0..=60.0).contains(&total), "{total} {b}");
    for s in result {
        assert!(["info", "warn", "error"].contains(&s["metric"]["level"].as_str().unwrap()));
        // Times are seconds (numbers), values strings, as Prometheus writes them.
        assert!(s["values"][0][0].is_number() && s["values"][0][1].is_string());
    }

    // An instant metric query with binary operators over two aggregations.
    let (s, b) = get(
        &v,
        "/loki/api/v1/query",
        &[
            (
                "query",
                r#"sum(count_over_time({app="web"} |~ "\" 500 " [5m])) / sum(count_over_time({app="web"}[5m]))"#.into(),
            ),
            ("time", end.clone()),
        ],
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["result"][0]["value"][1], "0.2", "{b}");

    // index/stats: flat, no envelope.
    let (_, b) = get(
        &v,
        "/loki/api/v1/index/stats",
        &[
            ("query", r#"{env="prod"}"#.into()),
            ("start", start.clone()),
            ("end", end.clone()),
        ],
    )
    .await;
    assert_eq!(b["streams"], 2, "{b}");
    assert_eq!(b["entries"], 90, "{b}");
    assert!(b["bytes"].as_u64().unwrap() > 0 && b["chunks"].as_u64().unwrap() >= 1);

    // Volume (Grafana's Logs Drilldown): bytes per group, by the selector's labels or targetLabels.
    let (s, b) = get(
        &v,
        "/loki/api/v1/index/volume",
        &[
            ("query", r#"{env="prod"}"#.into()),
            ("start", start.clone()),
            ("end", end.clone()),
        ],
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["resultType"], "vector");
    assert_eq!(b["data"]["result"][0]["metric"], json!({"env": "prod"}));
    let prod_bytes: f64 = b["data"]["result"][0]["value"][1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let (_, b) = get(
        &v,
        "/loki/api/v1/index/volume",
        &[
            ("query", r#"{env="prod"}"#.into()),
            ("targetLabels", "app".into()),
            ("start", start.clone()),
            ("end", end.clone()),
        ],
    )
    .await;
    let per_app: Vec<(String, f64)> = b["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["metric"]["app"].as_str().unwrap().to_string(),
                r["value"][1].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(per_app.len(), 2, "{b}");
    assert_eq!(per_app.iter().map(|x| x.1).sum::<f64>(), prod_bytes);
    let (s, b) = get(
        &v,
        "/loki/api/v1/index/volume_range",
        &[
            ("query", r#"{app="web"}"#.into()),
            ("step", "10s".into()),
            ("start", start.clone()),
            ("end", end.clone()),
        ],
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["resultType"], "matrix");
    let total: f64 = b["data"]["result"][0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1].as_str().unwrap().parse::<f64>().unwrap())
        .sum();
    let web: f64 = per_app.iter().find(|x| x.0 == "web").unwrap().1;
    assert_eq!(total, web, "{b}");

    // aggregateBy=labels: one result per label name, `{name=""}`, the bytes of the streams that
    // carry it (Loki's shape); targetLabels restricts the names; an unknown mode is a 400.
    let (s, b) = get(
        &v,
        "/loki/api/v1/index/volume",
        &[
            ("query", r#"{env="prod"}"#.into()),
            ("aggregateBy", "labels".into()),
            ("start", start.clone()),
            ("end", end.clone()),
        ],
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["resultType"], "vector", "{b}");
    let by_name: Vec<(serde_json::Value, f64)> = b["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["metric"].clone(),
                r["value"][1].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        by_name,
        vec![
            (json!({"app": ""}), prod_bytes),
            (json!({"env": ""}), prod_bytes)
        ],
        "{b}"
    );
    let (s, b) = get(
        &v,
        "/loki/api/v1/index/volume_range",
        &[
            ("query", r#"{app=~"web|db"}"#.into()),
            ("aggregateBy", "labels".into()),
            ("targetLabels", "env".into()),
            ("step", "10s".into()),
            ("start", start.clone()),
            ("end", end.clone()),
        ],
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["resultType"], "matrix", "{b}");
    let result = b["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 1, "{b}");
    assert_eq!(result[0]["metric"], json!({"env": ""}), "{b}");
    let env_total: f64 = result[0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1].as_str().unwrap().parse::<f64>().unwrap())
        .sum();
    let (_, b) = get(
        &v,
        "/loki/api/v1/index/volume",
        &[
            ("query", r#"{app=~"web|db"}"#.into()),
            ("targetLabels", "app".into()),
            ("start", start.clone()),
            ("end", end.clone()),
        ],
    )
    .await;
    let web_db: f64 = b["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"][1].as_str().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(env_total, web_db, "{b}");
    let (s, b) = get(
        &v,
        "/loki/api/v1/index/volume",
        &[
            ("query", r#"{env="prod"}"#.into()),
            ("aggregateBy", "streams".into()),
            ("start", start.clone()),
            ("end", end.clone()),
        ],
    )
    .await;
    assert_eq!(s, 400, "{b}");
    assert!(
        b["message"].as_str().unwrap().contains("aggregateBy"),
        "{b}"
    );

    // Categorized labels: stream labels only, structured metadata and parsed labels per entry.
    let r = client()
        .get(with_query(
            &v,
            "/loki/api/v1/query_range",
            &[
                (
                    "query",
                    r#"{app="web"} | pattern "<ip> - - <_> \"<method> <path> <_>\" <status> <_>""#
                        .to_string(),
                ),
                ("limit", "2".into()),
                ("start", start.clone()),
                ("end", end.clone()),
            ],
        ))
        .header("X-Loki-Response-Encoding-Flags", "categorize-labels")
        .send()
        .await
        .unwrap();
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["data"]["encodingFlags"], json!(["categorize-labels"]));
    assert_eq!(
        b["data"]["result"][0]["stream"],
        json!({"app": "web", "env": "prod"})
    );
    let entries: Vec<&Value> = b["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["values"].as_array().unwrap().iter())
        .collect();
    assert_eq!(entries.len(), 2);
    assert!(entries.iter().all(|e| e[2]["parsed"]["method"] == "GET"));
    assert!(
        entries
            .iter()
            .any(|e| e[2]["structuredMetadata"]["trace_id"].is_string()),
        "{b}"
    );

    // Structured metadata is a label for filters.
    let (_, b) = get(
        &v,
        "/loki/api/v1/query_range",
        &[
            ("query", r#"{app="web"} | trace_id="t4""#.into()),
            ("start", start.clone()),
            ("end", end.clone()),
        ],
    )
    .await;
    let lines = stream_lines(&b);
    assert_eq!(lines.len(), 1, "{b}");
    assert!(lines[0].1.contains("/item/4 "));

    // What is not served: 404 (Grafana falls back); the v2alpha tail probe too.
    let (s, _) = get(&v, "/loki/api/v2alpha/tail", &[]).await;
    assert_eq!(s, 404);

    // Logs Drilldown's patterns: the 60 JSON lines make one template per level (the request number
    // and duration are variables), 20 lines each, counted per step.
    let (s, b) = get(
        &v,
        "/loki/api/v1/patterns",
        &[
            ("query", r#"{app="api"}"#.into()),
            ("start", start.clone()),
            ("end", end.clone()),
            ("step", "10s".into()),
        ],
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["status"], "success");
    let pats = b["data"].as_array().unwrap();
    let mut got: Vec<(String, String, i64)> = pats
        .iter()
        .map(|p| {
            let samples = p["samples"].as_array().unwrap();
            // Steps are whole seconds, aligned to the step, in time order.
            let ts: Vec<i64> = samples.iter().map(|x| x[0].as_i64().unwrap()).collect();
            assert!(
                ts.windows(2).all(|w| w[0] < w[1]) && ts.iter().all(|t| t % 10 == 0),
                "{p}"
            );
            (
                p["pattern"].as_str().unwrap().to_string(),
                p["level"].as_str().unwrap().to_string(),
                samples.iter().map(|x| x[1].as_i64().unwrap()).sum(),
            )
        })
        .collect();
    got.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(got.len(), 3, "{b}");
    for ((pattern, level, n), l) in got.iter().zip(["error", "info", "warn"]) {
        assert_eq!((level.as_str(), *n), (l, 20), "{b}");
        assert!(pattern.contains(&format!(r#""level":"{l}""#)), "{pattern}");
        assert!(pattern.contains("request <_>"), "{pattern}");
        assert!(!pattern.bytes().any(|c| c.is_ascii_digit()), "{pattern}");
    }
    let (s, _) = get(&v, "/loki/api/v1/patterns", &[]).await;
    assert_eq!(s, 400);

    // Logs Drilldown's detected labels: stream labels with their number of values; labels whose
    // values are all numbers or UUIDs are left out, except Loki's static ones (`pod`).
    let batch = |pod: &str, run: &str| {
        json!({"stream": {"app": "batch", "pod": pod, "run_id": run, "env": "prod"},
               "values": [[(t0 + 1).to_string(), "batch done"]]})
    };
    let (s, _) = push_json(
        &v,
        &json!({"streams": [
            batch("101", "0f8fa7a2-3c4b-4d6e-9f10-1a2b3c4d5e6f"),
            batch("102", "7c9e6679-7425-40de-944b-e07fc1f90ae7"),
        ]}),
    )
    .await;
    assert_eq!(s, 204);
    let (s, b) = get(
        &v,
        "/loki/api/v1/detected_labels",
        &[("start", start.clone()), ("end", end.clone())],
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b,
        json!({"detectedLabels": [
            {"label": "app", "cardinality": 4},
            {"label": "env", "cardinality": 2},
            {"label": "pod", "cardinality": 2},
        ]})
    );
    let (_, b) = get(
        &v,
        "/loki/api/v1/detected_labels",
        &[
            ("query", r#"{env="prod"}"#.into()),
            ("start", start.clone()),
            ("end", end.clone()),
        ],
    )
    .await;
    assert_eq!(
        b["detectedLabels"],
        json!([
            {"label": "app", "cardinality": 3},
            {"label": "env", "cardinality": 1},
            {"label": "pod", "cardinality": 2},
        ])
    );

    // Logs Drilldown's detected fields: what json finds in the JSON app lines, typed.
    let (s, b) = get(
        &v,
        "/loki/api/v1/detected_fields",
        &[
            ("query", r#"{app="api"}"#.into()),
            ("start", start.clone()),
            ("end", end.clone()),
            ("limit", "1000".into()),
        ],
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b["fields"],
        json!([
            {"label": "duration", "type": "duration", "cardinality": 60, "parsers": ["json"]},
            {"label": "level", "type": "string", "cardinality": 3, "parsers": ["json"]},
            {"label": "msg", "type": "string", "cardinality": 60, "parsers": ["json"]},
            {"label": "status", "type": "int", "cardinality": 3, "parsers": ["json"]},
        ]),
        "{b}"
    );
    // logfmt lines, and structured metadata (no parser).
    let (_, b) = get(
        &v,
        "/loki/api/v1/detected_fields",
        &[
            ("query", r#"{app=~"db|web"}"#.into()),
            ("start", start.clone()),
            ("end", end.clone()),
        ],
    )
    .await;
    let f: Vec<(String, String)> = b["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["label"].as_str().unwrap().to_string(),
                x["type"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(f.contains(&("rows".into(), "int".into())), "{b}");
    assert!(f.contains(&("trace_id".into(), "string".into())), "{b}");

    // Errors: a bad query is a 400 with the position; log queries are not instant queries.
    let (s, b) = get(
        &v,
        "/loki/api/v1/query_range",
        &[("query", r#"{app="api"} |= "x" blah"#.into())],
    )
    .await;
    assert_eq!(s, 400);
    assert!(b["message"].as_str().unwrap().contains("col"), "{b}");
    let (s, _) = get(
        &v,
        "/loki/api/v1/query",
        &[("query", r#"{app="api"}"#.into())],
    )
    .await;
    assert_eq!(s, 400);
    let (s, b) = get(
        &v,
        "/loki/api/v1/query_range",
        &[(
            "query",
            r#"sum(count_over_time({app="api"} | json | unwrap status [1m]))"#.into(),
        )],
    )
    .await;
    assert_eq!(s, 400, "{b}");
}

/// Bad pushes get a clear 4xx with the reason; what else was in the push, and what was stored before,
/// stays.
#[tokio::test]
async fn bad_pushes_are_refused_with_reasons() {
    let v = Vigil::start("scrape_configs: []\ningest:\n  logs:\n    max_line_size: 1KB\n").await;
    let now = now_ns();
    let (s, b) = push_json(
        &v,
        &json!({"streams": [{"stream": {"app": "ok"}, "values": [[now.to_string(), "kept before"]]}]}),
    )
    .await;
    assert_eq!(s, 204, "{b}");

    // Undecodable bodies: nothing stored, the reason named.
    let cases: Vec<(&str, Option<&str>, Vec<u8>, &str)> = vec![
        (
            "application/json",
            None,
            b"{\"streams\": [".to_vec(),
            "JSON",
        ),
        (
            "application/json",
            None,
            br#"{"streams":[{"stream":{"app":"x"},"values":[["notatime","l"]]}]}"#.to_vec(),
            "timestamp",
        ),
        (
            "application/x-protobuf",
            None,
            b"definitely not snappy".to_vec(),
            "snappy",
        ),
        (
            "application/x-protobuf",
            None,
            snap::raw::Encoder::new()
                .compress_vec(&[0xff, 0xff, 0xff, 0x01])
                .unwrap(),
            "protobuf",
        ),
        (
            "application/json",
            Some("gzip"),
            b"not gzip".to_vec(),
            "gzip",
        ),
        ("text/plain", None, b"hello".to_vec(), "Content-Type"),
    ];
    for (ct, ce, body, why) in cases {
        let (s, b) = push_raw(&v, ct, ce, body).await;
        assert_eq!(s, 400, "{ct} {why}: {b}");
        assert!(b.contains(why), "{why}: {b}");
    }

    // Invalid entries and streams beside valid ones: 400 naming each, the valid ones stored.
    let old = now - 30 * 86_400 * 1_000_000_000;
    let future = now + 3_600 * 1_000_000_000;
    let big = "x".repeat(2000);
    let (s, b) = push_json(
        &v,
        &json!({"streams": [
            {"stream": {"app": "mixed"}, "values": [
                [now.to_string(), "valid line"],
                [old.to_string(), "too old"],
                [future.to_string(), "too new"],
                [(now + 1).to_string(), big],
            ]},
            {"stream": {"bad-name": "x"}, "values": [[now.to_string(), "invalid label"]]},
        ]}),
    )
    .await;
    assert_eq!(s, 400, "{b}");
    for why in [
        "too old",
        "in the future",
        "max_line_size",
        "invalid label name \"bad-name\"",
    ] {
        assert!(b.contains(why), "{why}: {b}");
    }
    assert!(b.contains("every valid entry was stored"), "{b}");

    let (_, q) = get(
        &v,
        "/loki/api/v1/query_range",
        &[
            ("query", r#"{app=~"ok|mixed"}"#.into()),
            ("start", (now - 60_000_000_000).to_string()),
            ("end", (now + 60_000_000_000).to_string()),
        ],
    )
    .await;
    let mut lines: Vec<String> = stream_lines(&q).into_iter().map(|(_, l)| l).collect();
    lines.sort();
    assert_eq!(lines, vec!["kept before", "valid line"]);
    let m = v.metrics_text().await;
    assert!(
        m.lines().any(
            |l| l.starts_with("vigil_ingest_log_entries_rejected_total{")
                && l.contains("reason=\"too_old\"")
        ),
        "{m}"
    );
}

/// Every acknowledged push survives `kill -9`, whether it was still in the head (WAL) or already in a
/// split, and comes back exactly once.
#[tokio::test]
async fn pushes_survive_kill9_exactly_once() {
    let mut v = Vigil::start(CONFIG).await;
    let t0 = now_ns() - 10_000_000_000;
    for batch in 0..4 {
        let values: Vec<Value> = (0..50)
            .map(|i| {
                json!([
                    (t0 + (batch * 50 + i) * 1_000_000).to_string(),
                    format!("batch {batch} line {i}")
                ])
            })
            .collect();
        let (s, b) = push_json(
            &v,
            &json!({"streams": [{"stream": {"app": "crash"}, "values": values}]}),
        )
        .await;
        assert_eq!(s, 204, "{b}");
        if batch == 1 {
            // Let the first half reach a split.
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while v.self_metric("vigil_logs_splits").await.unwrap_or(0.0) < 1.0 {
                assert!(std::time::Instant::now() < deadline, "no split was cut");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    v.kill9();
    v.launch().await;
    let (_, b) = get(
        &v,
        "/loki/api/v1/query_range",
        &[
            ("query", r#"{app="crash"}"#.into()),
            ("limit", "1000".into()),
            ("direction", "forward".into()),
            ("start", (t0 - 1).to_string()),
            ("end", (t0 + 1_000_000_000).to_string()),
        ],
    )
    .await;
    let lines: Vec<String> = stream_lines(&b).into_iter().map(|(_, l)| l).collect();
    assert_eq!(lines.len(), 200, "{}", v.log());
    let mut want = Vec::new();
    for batch in 0..4 {
        for i in 0..50 {
            want.push(format!("batch {batch} line {i}"));
        }
    }
    assert_eq!(lines, want);
}

/// A real OpenTelemetry SDK (Python `opentelemetry-sdk` with its OTLP/HTTP log exporter) ships logs
/// that come back through LogQL with their attributes mapped as Loki maps them: indexed resource
/// attributes as stream labels, everything else as structured metadata, the trace context as hex.
#[tokio::test]
async fn opentelemetry_sdk_logs_come_back_through_logql() {
    let have_sdk = std::process::Command::new("python3")
        .args([
            "-c",
            "import opentelemetry.exporter.otlp.proto.http._log_exporter",
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !have_sdk {
        assert!(
            !in_ci(),
            "python3 with opentelemetry-sdk and opentelemetry-exporter-otlp-proto-http is missing"
        );
        eprintln!("skipping: the OpenTelemetry Python SDK is not installed");
        return;
    }
    let v = Vigil::start(CONFIG).await;
    let before = now_ns();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/e2e/fixtures/otel_logs.py"
    );
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .arg(v.url("/otlp/v1/logs"))
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let ids = String::from_utf8_lossy(&out.stdout);
    let mut ids = ids.split_whitespace();
    let (trace_id, span_id) = (
        ids.next().unwrap().to_string(),
        ids.next().unwrap().to_string(),
    );

    let range = [
        ("start", (before - 60_000_000_000).to_string()),
        ("end", (now_ns() + 60_000_000_000).to_string()),
    ];
    let (_, b) = get(
        &v,
        "/loki/api/v1/series",
        &[
            ("match[]", r#"{service_name="checkout"}"#.into()),
            range[0].clone(),
            range[1].clone(),
        ],
    )
    .await;
    let streams = b["data"].as_array().unwrap_or_else(|| panic!("{b}"));
    assert_eq!(streams.len(), 1, "{b}");
    let labels = streams[0].as_object().unwrap();
    assert_eq!(labels["service_name"], "checkout");
    assert_eq!(labels["k8s_namespace_name"], "shop");
    // Only Loki's indexed resource attributes are labels (the SDK adds service.instance.id, which is
    // one of them); host.name is not.
    for k in labels.keys() {
        assert!(
            vigil_ingest::loki::otlp::INDEXED_RESOURCE_ATTRIBUTES
                .iter()
                .any(|a| vigil_ingest::loki::otlp::normalize_label(a) == *k),
            "{k} is a label: {b}"
        );
    }
    // Everything else is structured metadata, usable by label filters.
    let (_, b) = get(
        &v,
        "/loki/api/v1/query_range",
        &[
            (
                "query",
                r#"{service_name="checkout"} | severity_text="ERROR" | http_status_code >= 500"#
                    .into(),
            ),
            range[0].clone(),
            range[1].clone(),
        ],
    )
    .await;
    let lines = stream_lines(&b);
    assert_eq!(lines.len(), 1, "{b}");
    assert_eq!(lines[0].1, "payment failed");
    let s = &b["data"]["result"][0]["stream"];
    assert_eq!(s["trace_id"], trace_id, "{b}");
    assert_eq!(s["span_id"], span_id, "{b}");
    assert_eq!(s["payment_provider"], "acme");
    assert_eq!(s["host_name"], "node-1");
    assert_eq!(s["scope_name"], "shop.payments");
    assert_eq!(s["severity_number"], "17");
    // All three records, and a metric query over them by severity.
    let (_, b) = get(
        &v,
        "/loki/api/v1/query",
        &[
            (
                "query",
                r#"sum by (severity_text) (count_over_time({service_name="checkout"} | severity_text=~".+" | keep severity_text [5m]))"#.into(),
            ),
            ("time", (now_ns() + 1_000_000_000).to_string()),
        ],
    )
    .await;
    let mut got: Vec<(String, String)> = b["data"]["result"]
        .as_array()
        .unwrap_or_else(|| panic!("{b}"))
        .iter()
        .map(|r| {
            (
                r["metric"]["severity_text"].as_str().unwrap().to_string(),
                r["value"][1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("ERROR".to_string(), "1".to_string()),
            ("INFO".to_string(), "1".to_string()),
            ("WARN".to_string(), "1".to_string())
        ],
        "{b}"
    );
}

/// Live tail as Grafana opens it: a WebSocket on `/loki/api/v1/tail` gets the recent history, then the
/// entries pushed afterwards that the query keeps, without polling.
#[tokio::test]
async fn live_tail_over_websocket() {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;

    let v = Vigil::start(CONFIG).await;
    let t0 = now_ns() - 5_000_000_000;
    let (s, b) = push_json(
        &v,
        &json!({"streams": [{"stream": {"app": "tail"}, "values": [
            [t0.to_string(), "keep: before"],
            [(t0 + 1).to_string(), "drop: before"],
        ]}]}),
    )
    .await;
    assert_eq!(s, 204, "{b}");
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("query", r#"{app="tail"} |= "keep""#)
        .append_pair("delay_for", "0")
        .append_pair("limit", "100")
        .append_pair("start", (t0 - 1_000_000_000).to_string().as_str());
    let url = format!("ws://127.0.0.1:{}/loki/api/v1/tail?{}", v.port, q.finish());
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();

    async fn next<
        S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
    >(
        ws: &mut S,
    ) -> Value {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => serde_json::from_str::<Value>(&t).unwrap(),
            other => panic!("no frame: {other:?}"),
        }
    }
    let history = next(&mut ws).await;
    assert_eq!(history["streams"][0]["stream"], json!({"app": "tail"}));
    assert_eq!(
        history["streams"][0]["values"][0][1], "keep: before",
        "{history}"
    );
    assert_eq!(history["streams"][0]["values"].as_array().unwrap().len(), 1);

    for line in ["drop: live", "keep: live"] {
        let (s, b) = push_json(
            &v,
            &json!({"streams": [{"stream": {"app": "tail"}, "values": [[now_ns().to_string(), line]]}]}),
        )
        .await;
        assert_eq!(s, 204, "{b}");
    }
    let live = next(&mut ws).await;
    assert_eq!(live["streams"][0]["values"][0][1], "keep: live", "{live}");
    assert_eq!(live["streams"][0]["values"].as_array().unwrap().len(), 1);
    assert!(live["dropped_entries"].as_array().unwrap().is_empty());
    ws.close(None).await.unwrap();
}

/// Elasticsearch shippers: the official Elasticsearch Python client (version check, cluster health,
/// `helpers.bulk` with item errors), then Filebeat's and Fluent Bit's `_bulk` requests as they send
/// them (gzip, `filter_path`, `create` actions, `log` as the message field), a malformed body, and
/// an API that is not served.
#[tokio::test]
async fn elasticsearch_bulk_from_shippers() {
    let have_client = std::process::Command::new("python3")
        .args(["-c", "import elasticsearch"])
        .status()
        .is_ok_and(|s| s.success());
    if !have_client {
        assert!(!in_ci(), "python3 with the elasticsearch client is missing");
        eprintln!("skipping: no python3 elasticsearch client");
        return;
    }
    let v = Vigil::start(CONFIG).await;
    let t0_ms = now_ns() / 1_000_000 - 60_000;
    let script =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/fixtures/es_bulk.py");
    let out = tokio::process::Command::new("python3")
        .arg(&script)
        .arg(v.url("/elastic"))
        .arg(t0_ms.to_string())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        v.log()
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["version"], "8.11.0");
    assert_eq!(r["health"], "green");
    assert_eq!(r["ok"], 120, "{r}");
    assert_eq!(r["errors"], json!([]), "{r}");
    assert_eq!(r["ok2"], 1, "{r}");
    let errs = r["errors2"].as_array().unwrap();
    assert_eq!(errs.len(), 3, "{r}");
    let reasons: Vec<String> = errs
        .iter()
        .map(|e| {
            let (op, body) = e.as_object().unwrap().iter().next().unwrap();
            assert_eq!(body["status"], 400, "{e}");
            format!("{op}: {}", body["error"]["reason"].as_str().unwrap())
        })
        .collect();
    assert!(reasons[0].contains("[@timestamp]"), "{reasons:?}");
    assert!(reasons[1].contains("max_line_size"), "{reasons:?}");
    assert!(
        reasons[2].starts_with("delete: ") && reasons[2].contains("append-only"),
        "{reasons:?}"
    );

    // Stored as log entries: labels from `index` and the label fields, the documents' times.
    let (_, b) = get(
        &v,
        "/loki/api/v1/query_range",
        &[
            (
                "query",
                r#"{index="shop-logs", host_name="web-0", service_name="shop"}"#.into(),
            ),
            ("limit", "1000".into()),
            ("direction", "forward".into()),
            ("start", ((t0_ms - 1) * 1_000_000).to_string()),
            ("end", (now_ns() + 1_000_000_000).to_string()),
        ],
    )
    .await;
    let lines = stream_lines(&b);
    assert_eq!(lines.len(), 40, "{b}");
    assert_eq!(
        lines[0],
        ((t0_ms * 1_000_000).to_string(), "order 0 placed".into())
    );
    assert_eq!(lines[1].1, "order 3 placed");
    let (_, b) = get(
        &v,
        "/loki/api/v1/query",
        &[
            (
                "query",
                r#"sum(count_over_time({index="shop-logs"}[1h]))"#.into(),
            ),
            ("time", (now_ns() + 1_000_000_000).to_string()),
        ],
    )
    .await;
    assert_eq!(b["data"]["result"][0]["value"][1], "121", "{b}");

    // Filebeat: gzip, create actions into its data stream, filter_path, ECS documents.
    let ts = vigil_model::rfc3339_ms(now_ns() / 1_000_000 - 1000);
    let mut body = String::new();
    for i in 0..2 {
        body.push_str("{\"create\":{\"_index\":\"filebeat-8.11.0\"}}\n");
        body.push_str(
            &json!({"@timestamp": ts, "message": format!("filebeat line {i}"),
            "log": {"file": {"path": "/var/log/app.log"}, "offset": i * 16},
            "input": {"type": "filestream"}, "host": {"name": "box"},
            "agent": {"type": "filebeat", "version": "8.11.0"}, "ecs": {"version": "8.0.0"}})
            .to_string(),
        );
        body.push('\n');
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(body.as_bytes()).unwrap();
    let r = client()
        .post(v.url("/elastic/_bulk?filter_path=errors,items.*.error,items.*.status"))
        .header("Content-Type", "application/json")
        .header("Content-Encoding", "gzip")
        .body(gz.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["X-Elastic-Product"], "Elasticsearch");
    let j: Value = r.json().await.unwrap();
    assert_eq!(
        j,
        json!({"errors": false, "items": [{"create": {"status": 201}}, {"create": {"status": 201}}]})
    );

    // Fluent Bit's es output (Suppress_Type_Name On): the line is in `log`; the index in the path.
    let body = "{\"create\":{}}\n{\"@timestamp\":\"".to_string()
        + &ts
        + "\",\"log\":\"kube line\",\"stream\":\"stdout\"}\n";
    let r = client()
        .post(v.url("/elastic/fluent-bit/_bulk"))
        .header("Content-Type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap();
    let j: Value = r.json().await.unwrap();
    assert_eq!(j["errors"], false, "{j}");
    assert_eq!(j["items"][0]["create"]["_index"], "fluent-bit");
    assert_eq!(j["items"][0]["create"]["result"], "created");
    assert_eq!(j["items"][0]["create"]["_id"].as_str().unwrap().len(), 20);
    let (_, b) = get(
        &v,
        "/loki/api/v1/query_range",
        &[
            ("query", r#"{index=~"filebeat.*|fluent-bit"}"#.into()),
            ("limit", "10".into()),
            ("direction", "forward".into()),
            (
                "start",
                ((now_ns() / 1_000_000 - 5000) * 1_000_000).to_string(),
            ),
            ("end", (now_ns() + 1_000_000_000).to_string()),
        ],
    )
    .await;
    let mut got: Vec<String> = stream_lines(&b).into_iter().map(|(_, l)| l).collect();
    got.sort();
    assert_eq!(
        got,
        ["filebeat line 0", "filebeat line 1", "kube line"],
        "{b}"
    );

    // A body that is not NDJSON: 400 with Elasticsearch's error shape, nothing stored.
    let r = client()
        .post(v.url("/elastic/_bulk"))
        .body("{\"index\":{\"_index\":\"x\"}}\n{\"message\":\"fine\"}\nnot json\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let j: Value = r.json().await.unwrap();
    assert_eq!(j["error"]["type"], "illegal_argument_exception", "{j}");
    assert!(
        j["error"]["reason"].as_str().unwrap().contains("line [3]"),
        "{j}"
    );
    let (_, b) = get(
        &v,
        "/loki/api/v1/query_range",
        &[
            ("query", r#"{index="x"}"#.into()),
            (
                "start",
                ((now_ns() / 1_000_000 - 600_000) * 1_000_000).to_string(),
            ),
        ],
    )
    .await;
    assert_eq!(b["data"]["result"], json!([]), "{b}");

    // Template and ILM set-up are not served: an Elasticsearch-shaped 404 that says so.
    let r = client()
        .put(v.url("/elastic/_index_template/filebeat-8.11.0"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let j: Value = r.json().await.unwrap();
    assert!(
        j["error"]["reason"].as_str().unwrap().contains("_bulk"),
        "{j}"
    );
}

/// LogQL rules in an ordinary rule file (Loki ruler format): a recording rule whose series PromQL
/// then reads, and an alerting rule that fires on error lines with its value in the annotation;
/// a PromQL rule in the same group goes on working.
#[tokio::test(flavor = "multi_thread")]
async fn logql_recording_and_alerting_rules() {
    const RULES: &str = r#"groups:
  - name: shop-logs
    interval: 1s
    rules:
      - record: app:log_errors:count1m
        expr: sum by (app) (count_over_time({app="shop"} |= "error" [1m]))
      - alert: ShopLogErrors
        expr: sum by (app) (count_over_time({app="shop"} | logfmt | level="error" [1m])) > 3
        labels:
          severity: page
        annotations:
          summary: "{{ $value }} error lines from {{ $labels.app }}"
      - record: promql:still:works
        expr: vector(7)
"#;
    let v = Vigil::start_with_files(
        "scrape_configs: []\nglobal:\n  evaluation_interval: 1s\nrule_files: ['rules.yml']\n",
        &[("rules.yml", RULES)],
    )
    .await;
    let t0 = now_ns() - 20_000_000_000;
    let values: Vec<Value> = (0..10)
        .map(|i| {
            let level = if i % 2 == 0 { "error" } else { "info" };
            json!([
                (t0 + i * 1_000_000_000).to_string(),
                format!("level={level} msg=\"order {i}\"")
            ])
        })
        .collect();
    let (s, b) = push_json(
        &v,
        &json!({"streams": [{"stream": {"app": "shop"}, "values": values}]}),
    )
    .await;
    assert_eq!(s, 204, "{b}");

    let alert = eventually(Duration::from_secs(20), "ShopLogErrors to fire", || async {
        let a = v.get_json("/api/v1/alerts").await;
        a["data"]["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["labels"]["alertname"] == "ShopLogErrors" && x["state"] == "firing")
            .cloned()
    })
    .await;
    assert_eq!(alert["labels"]["app"], "shop");
    assert_eq!(alert["labels"]["severity"], "page");
    assert_eq!(alert["annotations"]["summary"], "5 error lines from shop");
    let rec = eventually(Duration::from_secs(20), "the recorded series", || async {
        let r = v.query("app:log_errors:count1m", now_secs()).await;
        r.as_array().and_then(|a| a.first().cloned())
    })
    .await;
    assert_eq!(rec["metric"]["app"], "shop");
    assert_eq!(rec["value"][1], "5");
    let r = v.query("promql:still:works", now_secs()).await;
    assert_eq!(r[0]["value"][1], "7", "{r}");
    // The rules API lists them healthy.
    let rules = v.get_json("/api/v1/rules").await;
    for r in rules["data"]["groups"][0]["rules"].as_array().unwrap() {
        assert_eq!(r["health"], "ok", "{r}");
    }
}
