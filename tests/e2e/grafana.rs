//! The requests Grafana's Prometheus data source sends (compat/API-SURFACE.md §1), exactly as it sends
//! them, and what it needs back; promtool against Vigil; bad queries and the sample limit.

use std::process::Command;

use prost::Message;
use serde_json::{Value, json};
use vigil_ingest::remote_write::proto::v1;

use crate::harness::*;
use crate::push::{post_raw, series, snappy, write_v1};

const CONFIG: &str = "scrape_configs: []\nquery:\n  max_samples: 5000\n";

async fn post_form(url: &str, form: &[(&str, &str)]) -> (u16, String) {
    let r = client().post(url).form(form).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn get(url: &str) -> (u16, String) {
    let r = client().get(url).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn ok_json(what: &str, (status, body): (u16, String)) -> Value {
    assert_eq!(status, 200, "{what}: {body}");
    let v: Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {body}"));
    assert_eq!(v["status"], "success", "{what}: {body}");
    v
}

/// Loads a small data set: 3 series of `gf_requests_total` with metadata, 1 sample every 15 s for 1 h.
async fn load(v: &Vigil, t0: i64) {
    let mut req = Vec::new();
    for (i, path) in ["/a", "/b", "/c"].iter().enumerate() {
        let samples = (0..240)
            .map(|k| (t0 + k * 15_000, (k * (i as i64 + 1)) as f64))
            .collect();
        req.push(series(
            &[
                ("__name__", "gf_requests_total"),
                ("job", "web"),
                ("path", path),
            ],
            samples,
        ));
    }
    let (s, b) = write_v1(&v.url("/api/v1/write"), &req).await;
    assert_eq!(s, 204, "{b}");
    // Metadata as Prometheus's remote write sends it, in its own request.
    let meta = v1::WriteRequest {
        metadata: vec![v1::MetricMetadata {
            r#type: v1::metric_metadata::MetricType::Counter as i32,
            metric_family_name: "gf_requests_total".into(),
            help: "Requests served.".into(),
            unit: String::new(),
        }],
        ..Default::default()
    };
    let (s, b) = post_raw(
        &v.url("/api/v1/write"),
        snappy(&meta.encode_to_vec()),
        "application/x-protobuf",
    )
    .await;
    assert_eq!(s, 204, "{b}");
}

#[tokio::test(flavor = "multi_thread")]
async fn grafana_requests_get_what_grafana_parses() {
    let v = Vigil::start(CONFIG).await;
    let t0 = 1_700_000_000_000i64;
    load(&v, t0).await;
    let end = (t0 + 239 * 15_000) as f64 / 1000.0;

    // "Save & test": 1+1 at time=4, POST form; the body must be exactly this.
    let (s, body) = post_form(&v.url("/api/v1/query"), &[("query", "1+1"), ("time", "4")]).await;
    assert_eq!(s, 200);
    assert_eq!(
        body,
        r#"{"status":"success","data":{"resultType":"scalar","result":[4,"2"]}}"#
    );

    // buildinfo: all of Prometheus's fields, and no "features" (Grafana would take us for Mimir).
    let b = ok_json("buildinfo", get(&v.url("/api/v1/status/buildinfo")).await);
    for k in [
        "version",
        "revision",
        "branch",
        "buildUser",
        "buildDate",
        "goVersion",
    ] {
        assert!(b["data"][k].is_string(), "buildinfo lacks {k}: {b}");
    }
    assert!(b["data"].get("features").is_none());

    // Range query as Grafana sends it: POST form, float seconds, step in seconds, a timeout, and an
    // unknown parameter that must be ignored. resultType comes before result.
    let start = format!("{:.3}", end - 600.0);
    let ends = format!("{end:.3}");
    let (s, body) = post_form(
        &v.url("/api/v1/query_range"),
        &[
            ("query", "sum by (path) (rate(gf_requests_total[5m]))"),
            ("start", &start),
            ("end", &ends),
            ("step", "60"),
            ("timeout", "30s"),
            ("customParam", "x"),
        ],
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert!(
        body.find("\"resultType\"").unwrap() < body.find("\"result\"").unwrap(),
        "{body}"
    );
    let r: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(r["data"]["resultType"], "matrix");
    let res = r["data"]["result"].as_array().unwrap();
    assert_eq!(res.len(), 3);
    assert_eq!(res[0]["values"].as_array().unwrap().len(), 11);
    assert_eq!(res[0]["values"][0][1], "0.06666666666666667", "{body}");
    // RFC3339 times and a duration step are accepted too.
    let r = ok_json(
        "rfc3339 range",
        post_form(
            &v.url("/api/v1/query_range"),
            &[
                ("query", "gf_requests_total{path=\"/a\"}"),
                ("start", "2023-11-14T22:13:20Z"),
                ("end", "2023-11-14T22:23:20Z"),
                ("step", "1m"),
            ],
        )
        .await,
    );
    assert_eq!(
        r["data"]["result"][0]["values"].as_array().unwrap().len(),
        11
    );
    // GET works the same.
    let r = ok_json(
        "GET query",
        get(&v.url(&format!(
            "/api/v1/query?query=gf_requests_total&time={ends}"
        )))
        .await,
    );
    assert_eq!(r["data"]["result"].as_array().unwrap().len(), 3);

    // The exemplar probe on dashboard load: query=test, start/end in milliseconds: success, never 400.
    let ms = format!("{}", t0 + 3_600_000);
    let r = ok_json(
        "exemplar probe",
        post_form(
            &v.url("/api/v1/query_exemplars"),
            &[("query", "test"), ("start", &t0.to_string()), ("end", &ms)],
        )
        .await,
    );
    assert_eq!(r["data"], json!([]));

    // Label and series browsers.
    let r = ok_json(
        "labels",
        post_form(
            &v.url("/api/v1/labels"),
            &[
                ("start", &start),
                ("end", &ends),
                ("limit", "40000"),
                ("match[]", "gf_requests_total"),
            ],
        )
        .await,
    );
    assert_eq!(r["data"], json!(["__name__", "job", "path"]));
    let r = ok_json(
        "metric names",
        get(&v.url(&format!(
            "/api/v1/label/__name__/values?start={start}&end={ends}&limit=40000"
        )))
        .await,
    );
    assert_eq!(r["data"], json!(["gf_requests_total"]));
    let r = ok_json(
        "series",
        post_form(
            &v.url("/api/v1/series"),
            &[
                ("match[]", "{__name__!=\"\"}"),
                ("start", &start),
                ("end", &ends),
                ("limit", "2"),
            ],
        )
        .await,
    );
    assert_eq!(r["data"].as_array().unwrap().len(), 2);
    assert_eq!(r["warnings"], json!(["results truncated due to limit"]));

    // Metadata, as Grafana asks for it.
    let r = ok_json(
        "metadata",
        get(&v.url("/api/v1/metadata?limit=10000")).await,
    );
    assert_eq!(
        r["data"]["gf_requests_total"],
        json!([{"type": "counter", "help": "Requests served.", "unit": ""}])
    );
    let r = ok_json(
        "metadata one",
        get(&v.url("/api/v1/metadata?metric=nope")).await,
    );
    assert_eq!(r["data"], json!({}));

    // Called on data source init.
    // Only Vigil's built-in rules are loaded here.
    let r = ok_json("rules", get(&v.url("/api/v1/rules")).await);
    assert_eq!(r["data"]["groups"][0]["name"], "vigil-self", "{r}");
    assert_eq!(r["data"]["groups"][0]["file"], "<builtin>");
    let r = ok_json("alerts", get(&v.url("/api/v1/alerts")).await);
    assert_eq!(r["data"]["alerts"], json!([]));
    for p in [
        "/api/v1/status/config",
        "/api/v1/status/flags",
        "/api/v1/status/runtimeinfo",
        "/api/v1/status/tsdb",
    ] {
        ok_json(p, get(&v.url(p)).await);
    }
    let r = ok_json("tsdb", get(&v.url("/api/v1/status/tsdb")).await);
    assert!(r["data"]["headStats"]["numSeries"].is_number(), "{r}");
    assert!(
        ok_json("config", get(&v.url("/api/v1/status/config")).await)["data"]["yaml"]
            .as_str()
            .unwrap()
            .contains("max_samples")
    );
    let r = ok_json(
        "format_query",
        post_form(
            &v.url("/api/v1/format_query"),
            &[("query", "sum(rate(x[5m]))by(a)")],
        )
        .await,
    );
    assert_eq!(r["data"], "sum by (a) (rate(x[5m]))");

    // stats=all adds timings and sample counts.
    let r = ok_json(
        "stats",
        post_form(
            &v.url("/api/v1/query"),
            &[
                ("query", "gf_requests_total"),
                ("time", &ends),
                ("stats", "all"),
            ],
        )
        .await,
    );
    assert!(
        r["data"]["stats"]["timings"]["evalTotalTime"].is_number(),
        "{r}"
    );
    assert!(
        r["data"]["stats"]["samples"]["totalQueryableSamples"]
            .as_u64()
            .unwrap()
            > 0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_queries_and_limits_give_prometheus_errors() {
    let v = Vigil::start(CONFIG).await;
    let t0 = 1_700_000_000_000i64;
    load(&v, t0).await;
    let err =
        |(s, body): (u16, String)| -> (u16, Value) { (s, serde_json::from_str(&body).unwrap()) };

    // A syntax error: bad_data, 400, with the parser's position.
    let (s, e) = err(post_form(
        &v.url("/api/v1/query"),
        &[("query", "sum(rate(x[5m])"), ("time", "1700000000")],
    )
    .await);
    assert_eq!(s, 400);
    assert_eq!(e["status"], "error");
    assert_eq!(e["errorType"], "bad_data");
    let msg = e["error"].as_str().unwrap();
    assert!(
        msg.contains("invalid parameter \"query\"") && msg.chars().any(|c| c.is_ascii_digit()),
        "{msg}"
    );
    // A bad parameter.
    let (s, e) = err(post_form(
        &v.url("/api/v1/query_range"),
        &[("query", "up"), ("start", "x"), ("end", "1"), ("step", "1")],
    )
    .await);
    assert_eq!((s, e["errorType"].as_str()), (400, Some("bad_data")));
    let (s, e) = err(post_form(
        &v.url("/api/v1/query_range"),
        &[
            ("query", "up"),
            ("start", "0"),
            ("end", "100000"),
            ("step", "1"),
        ],
    )
    .await);
    assert_eq!((s, e["errorType"].as_str()), (400, Some("bad_data")));
    assert!(e["error"].as_str().unwrap().contains("11000"), "{e}");
    // A runtime error: execution, 422.
    let (s, e) = err(post_form(
        &v.url("/api/v1/query"),
        &[
            ("query", "gf_requests_total + on(job) gf_requests_total"),
            ("time", "1700000600"),
        ],
    )
    .await);
    assert_eq!(
        (s, e["errorType"].as_str()),
        (422, Some("execution")),
        "{e}"
    );

    // Over the configured sample limit (5000; the data holds 720 samples): a clear 422.
    let (s, e) = err(post_form(
        &v.url("/api/v1/query_range"),
        &[
            ("query", "rate(gf_requests_total[1h])"),
            ("start", "1700000000"),
            ("end", "1700003600"),
            ("step", "15"),
        ],
    )
    .await);
    assert_eq!(s, 200, "{e}");
    let (s, e) = err(
        post_form(
            &v.url("/api/v1/query_range"),
            &[("query", "rate(gf_requests_total[1h]) + rate(gf_requests_total[2h]) + rate(gf_requests_total[3h]) + rate(gf_requests_total[4h]) + rate(gf_requests_total[5h]) + rate(gf_requests_total[6h]) + rate(gf_requests_total[7h]) + rate(gf_requests_total[8h])"), ("start", "1700000000"), ("end", "1700003600"), ("step", "15")],
        )
        .await,
    );
    assert_eq!(
        (s, e["errorType"].as_str()),
        (422, Some("execution")),
        "{e}"
    );
    assert!(e["error"].as_str().unwrap().contains("5000"), "{e}");
    // The server is fine afterwards.
    assert_eq!(get(&v.url("/-/healthy")).await.0, 200);
    let r = ok_json(
        "after the limit",
        post_form(
            &v.url("/api/v1/query"),
            &[
                ("query", "count(gf_requests_total)"),
                ("time", "1700003000"),
            ],
        )
        .await,
    );
    assert_eq!(r["data"]["result"][0]["value"][1], "3");

    // A query past its timeout: timeout, 503. (A 1 ms timeout for a query that computes 3 × 3600
    // windows of 3600 points; on a server with the default sample limit, which this query is under.)
    let roomy = Vigil::start("scrape_configs: []\n").await;
    load(&roomy, t0).await;
    let (s, e) = err(post_form(
        &roomy.url("/api/v1/query_range"),
        &[
            ("query", "max_over_time(rate(gf_requests_total[5m])[1h:1s])"),
            ("start", "1700000000"),
            ("end", "1700003600"),
            ("step", "1"),
            ("timeout", "0.001"),
        ],
    )
    .await);
    assert_eq!((s, e["errorType"].as_str()), (503, Some("timeout")), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn promtool_queries_vigil() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let v = Vigil::start(CONFIG).await;
    let t0 = 1_700_000_000_000i64;
    load(&v, t0).await;
    let base = format!("http://{}", v.addr());
    let run = |args: &[&str]| {
        let out = Command::new(&promtool)
            .arg("query")
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "promtool query {args:?}: {text}");
        text
    };
    let out = run(&[
        "instant",
        "--time",
        "1700003000",
        &base,
        "sum(gf_requests_total)",
    ]);
    assert!(out.contains("=> 1200"), "{out}");
    let out = run(&[
        "range",
        "--start",
        "1700003000",
        "--end",
        "1700003060",
        "--step",
        "30s",
        &base,
        "gf_requests_total{path=\"/b\"}",
    ]);
    assert!(
        out.contains("400 @[1700003000]") && out.contains("408 @[1700003060]"),
        "{out}"
    );
    let out = run(&[
        "series",
        "--match",
        "gf_requests_total",
        "--start",
        "1700000000",
        "--end",
        "1700004000",
        &base,
    ]);
    assert_eq!(
        out.lines()
            .filter(|l| l.contains("gf_requests_total"))
            .count(),
        3,
        "{out}"
    );
    let out = run(&[
        "labels",
        "--start",
        "1700000000",
        "--end",
        "1700004000",
        &base,
        "path",
    ]);
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["/a", "/b", "/c"],
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn series_limit_gives_a_clear_error() {
    let v = Vigil::start("scrape_configs: []\nquery:\n  max_series: 2\n").await;
    load(&v, 1_700_000_000_000).await;
    let (s, body) = post_form(
        &v.url("/api/v1/query"),
        &[("query", "gf_requests_total"), ("time", "1700003000")],
    )
    .await;
    let e: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (s, e["errorType"].as_str()),
        (422, Some("execution")),
        "{body}"
    );
    assert!(
        e["error"].as_str().unwrap().contains("more than 2 series"),
        "{body}"
    );
    let r = ok_json(
        "within the limit",
        post_form(
            &v.url("/api/v1/query"),
            &[
                ("query", "gf_requests_total{path=\"/a\"}"),
                ("time", "1700003000"),
            ],
        )
        .await,
    );
    assert_eq!(r["data"]["result"].as_array().unwrap().len(), 1);
}

/// Resident memory of a process, in bytes.
fn rss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

/// Few stored samples but many steps: what a query would materialise (series × steps) is charged
/// against `max_samples`, as Prometheus charges it, so it gets a 422 instead of the memory.
#[tokio::test(flavor = "multi_thread")]
async fn materialised_points_count_against_max_samples() {
    let v =
        Vigil::start("scrape_configs: []\nbuiltin_rules: false\nquery:\n  max_samples: 1000000\n")
            .await;
    let end = (now_secs() as i64) * 1000;
    let start = end - 2 * 3600 * 1000;
    // 2,000 series, a sample every 4 minutes for 2 hours: 60,000 samples, far under the limit.
    let series: Vec<_> = (0..2000)
        .map(|s| {
            crate::push::series(
                &[("__name__", "sparse"), ("id", &format!("{s:04}"))],
                (0..30).map(|i| (start + i * 240_000, i as f64)).collect(),
            )
        })
        .collect();
    for chunk in series.chunks(500) {
        let (st, b) = crate::push::write_v1(&v.url("/api/v1/write"), chunk).await;
        assert_eq!(st, 204, "{b}");
    }
    let pid = v.proc.as_ref().unwrap().pid();
    let before = rss(pid);
    // Every 1 s step for 2 hours sees a sample of every series: 2,000 × 7,201 = 14.4M points.
    for q in [
        "sparse",
        "sum(sparse)",
        "rate(sparse[10m])",
        "max_over_time(sparse[5m:1m])",
    ] {
        let r = client()
            .post(v.url("/api/v1/query_range"))
            .form(&[
                ("query", q),
                ("start", &format!("{}", start / 1000)),
                ("end", &format!("{}", end / 1000)),
                ("step", "1"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422, "{q}");
        let e: serde_json::Value = r.json().await.unwrap();
        assert_eq!(e["errorType"], "execution", "{q}: {e}");
        assert!(
            e["error"].as_str().unwrap().contains("too many samples"),
            "{q}: {e}"
        );
    }
    let after = rss(pid);
    assert!(
        after < before + 150 * 1024 * 1024,
        "RSS grew from {before} to {after} bytes: the points were materialised"
    );
    // A narrower query over the same data still answers.
    let r = client()
        .post(v.url("/api/v1/query_range"))
        .form(&[
            ("query", "sum(sparse)"),
            ("start", &format!("{}", start / 1000)),
            ("end", &format!("{}", end / 1000)),
            ("step", "60"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
