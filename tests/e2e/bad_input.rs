//! Bad pushes get a 4xx naming the problem, valid parts of a batch are kept (the documented policy), and
//! nothing stored before is affected.

use crate::harness::*;
use crate::push::*;

const CONFIG: &str = r#"
scrape_configs: []
ingest:
  label_limit: 6
  label_name_length_limit: 40
  label_value_length_limit: 64
  max_request_bytes: 1MB
"#;

fn now_ms() -> i64 {
    (now_secs() * 1000.0) as i64
}

async fn otlp_json(url: &str, body: &str) -> (u16, String) {
    let r = client()
        .post(url)
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.text().await.unwrap())
}

fn expect(case: &str, got: (u16, String), status: u16, words: &[&str]) {
    assert_eq!(got.0, status, "{case}: status {} body {:?}", got.0, got.1);
    let lower = got.1.to_lowercase();
    for w in words {
        assert!(
            lower.contains(&w.to_lowercase()),
            "{case}: message {:?} does not mention {w:?}",
            got.1
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_4xx_naming_the_problem_and_leaves_stored_data_alone() {
    let v = Vigil::start(CONFIG).await;
    let url = v.url("/api/v1/write");
    let t = now_ms() - 60_000;
    let good = vec![
        series(
            &[("__name__", "keep_me"), ("job", "good"), ("k", "a")],
            vec![(t, 1.5), (t + 1000, 2.5)],
        ),
        series(
            &[("__name__", "keep_me"), ("job", "good"), ("k", "b")],
            vec![(t, -7.0)],
        ),
    ];
    assert_eq!(write_v1(&url, &good).await.0, 204);
    let snapshot = || async { sorted(&v.query("{job=\"good\"}[10m]", now_secs()).await) };
    let baseline = snapshot().await;
    assert_eq!(baseline.len(), 2);

    // Undecodable requests: refused whole.
    expect(
        "bad snappy",
        post_raw(
            &url,
            b"this is not snappy at all".to_vec(),
            "application/x-protobuf",
        )
        .await,
        400,
        &["snappy"],
    );
    let garbage = snappy(&[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01, 0x02]);
    expect(
        "malformed protobuf",
        post_raw(&url, garbage, "application/x-protobuf").await,
        400,
        &["protobuf"],
    );
    expect(
        "unknown remote-write message type",
        post_raw(
            &url,
            snappy(&encode_v1(&good)),
            "application/x-protobuf;proto=foo.Bar",
        )
        .await,
        415,
        &["foo.Bar"],
    );
    expect(
        "wrong content type",
        post_raw(&url, snappy(&encode_v1(&good)), "application/json").await,
        415,
        &["content-type"],
    );
    let big = vec![series(
        &[("__name__", "big"), ("job", "bad"), ("v", &"x".repeat(60))],
        (0..200_000).map(|i| (t + i, (i as f64).sqrt())).collect(),
    )];
    let (status, body) = write_v1(&url, &big).await;
    assert_eq!(status, 413, "over max_request_bytes: {body}");

    // Invalid series: each named; nothing of them stored.
    let long_name = "n".repeat(41);
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<&'a str>);
    let cases: Vec<Case> = vec![
        (
            "unsorted labels",
            vec![("__name__", "bad_m"), ("job", "bad"), ("a", "1")],
            vec!["sorted"],
        ),
        (
            "duplicate labels",
            vec![("__name__", "bad_m"), ("job", "bad"), ("job", "bad2")],
            vec!["duplicate", "job"],
        ),
        (
            "invalid metric name",
            vec![("__name__", "1-bad metric"), ("job", "bad")],
            vec!["metric name", "1-bad metric"],
        ),
        (
            "invalid label name",
            vec![("__name__", "bad_m"), ("bad-label", "x"), ("job", "bad")],
            vec!["label name", "bad-label"],
        ),
        (
            "missing metric name",
            vec![("job", "bad")],
            vec!["metric name"],
        ),
        (
            "too many labels",
            vec![
                ("__name__", "bad_m"),
                ("a", "1"),
                ("b", "1"),
                ("c", "1"),
                ("d", "1"),
                ("e", "1"),
                ("job", "bad"),
            ],
            vec!["labels", "6"],
        ),
        (
            "label name too long",
            vec![("__name__", "bad_m"), ("job", "bad"), (&long_name, "x")],
            vec!["40"],
        ),
    ];
    for (case, labels, words) in &cases {
        let got = write_v1(&url, &[series(labels, vec![(t, 1.0)])]).await;
        expect(case, got, 400, words);
    }
    let long_value = "v".repeat(65);
    expect(
        "label value too long",
        write_v1(
            &url,
            &[series(
                &[("__name__", "bad_m"), ("job", "bad"), ("x", &long_value)],
                vec![(t, 1.0)],
            )],
        )
        .await,
        400,
        &["64"],
    );

    // A mixed batch: the valid series is written, the invalid one is named in the 400.
    let mixed = vec![
        series(
            &[("__name__", "mixed_ok"), ("job", "mixed")],
            vec![(t, 42.0)],
        ),
        series(
            &[
                ("__name__", "mixed_bad"),
                ("job", "mixed"),
                ("a", "unsorted"),
            ],
            vec![(t, 1.0)],
        ),
    ];
    expect(
        "mixed batch",
        write_v1(&url, &mixed).await,
        400,
        &["sorted", "mixed_bad"],
    );
    let r = v.query("{job=\"mixed\"}", now_secs()).await;
    assert_eq!(r.as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r[0]["metric"]["__name__"], "mixed_ok");

    // Out-of-order and duplicate samples for a stored series: refused with the reason.
    let ooo = vec![series(
        &[("__name__", "keep_me"), ("job", "good"), ("k", "a")],
        vec![(t - 120_000, 9.0)],
    )];
    expect(
        "out of order",
        write_v1(&url, &ooo).await,
        400,
        &["out of order"],
    );
    let dup = vec![series(
        &[("__name__", "keep_me"), ("job", "good"), ("k", "a")],
        vec![(t + 1000, 99.0)],
    )];
    expect(
        "duplicate sample",
        write_v1(&url, &dup).await,
        400,
        &["duplicate"],
    );
    // Same timestamp and same value is accepted silently, as Prometheus does.
    let same = vec![series(
        &[("__name__", "keep_me"), ("job", "good"), ("k", "a")],
        vec![(t + 1000, 2.5)],
    )];
    assert_eq!(write_v1(&url, &same).await.0, 204);

    // OTLP: NaN and non-numeric timestamps, broken JSON, broken protobuf.
    let otlp = v.url("/v1/metrics");
    let doc = |ts: &str| {
        format!(
            r#"{{"resourceMetrics":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"bad"}}}}]}},"scopeMetrics":[{{"metrics":[{{"name":"otlp_bad","gauge":{{"dataPoints":[{{"timeUnixNano":{ts},"asDouble":1}}]}}}}]}}]}}]}}"#
        )
    };
    expect(
        "OTLP NaN timestamp",
        otlp_json(&otlp, &doc("\"NaN\"")).await,
        400,
        &["timeUnixNano"],
    );
    expect(
        "OTLP float timestamp",
        otlp_json(&otlp, &doc("NaN")).await,
        400,
        &["json"],
    );
    expect(
        "OTLP broken JSON",
        otlp_json(&otlp, "{\"resourceMetrics\": [").await,
        400,
        &["json"],
    );
    let r = client()
        .post(&otlp)
        .header("Content-Type", "application/x-protobuf")
        .body(vec![0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f])
        .send()
        .await
        .unwrap();
    let (s, b) = (r.status().as_u16(), r.text().await.unwrap());
    expect("OTLP malformed protobuf", (s, b), 400, &["protobuf"]);

    // Nothing stored before changed; nothing of the refused series was stored.
    assert_eq!(snapshot().await, baseline);
    for q in ["{job=\"bad\"}", "otlp_bad", "big", "mixed_bad"] {
        assert_eq!(
            v.query(q, now_secs()).await.as_array().unwrap().len(),
            0,
            "{q} was stored"
        );
    }
    // Rejections are counted by reason.
    let body = v.metrics_text().await;
    assert!(
        body.contains("vigil_storage_samples_rejected_total{reason=\"out_of_order\"} 1"),
        "{body}"
    );
}
