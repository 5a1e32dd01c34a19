//! A real Prometheus 2.42 remote-writes to Vigil; Vigil answers selector queries exactly as Prometheus
//! answers them from its own TSDB.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::harness::*;

/// `labels -> [(t, v)]` from a matrix result, for diffs that name the series.
fn by_series(result: &Value) -> BTreeMap<String, Vec<Value>> {
    result
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["metric"].to_string(),
                e["values"].as_array().cloned().unwrap_or_default(),
            )
        })
        .collect()
}

fn diff(a: &BTreeMap<String, Vec<Value>>, b: &BTreeMap<String, Vec<Value>>) -> String {
    let mut out = Vec::new();
    for (k, v) in a {
        match b.get(k) {
            None => out.push(format!("only in Prometheus: {k}")),
            Some(w) if w != v => out.push(format!(
                "differs: {k}\n  prometheus {v:?}\n  vigil      {w:?}"
            )),
            _ => {}
        }
    }
    for k in b.keys() {
        if !a.contains_key(k) {
            out.push(format!("only in Vigil: {k}"));
        }
    }
    out.truncate(10);
    out.join("\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_remote_write_matches_prometheus_own_answers() {
    let Some(prom_bin) = tool("prometheus") else {
        return;
    };
    let vigil = Vigil::start("scrape_configs: []\n").await;
    let prom_port = reserved_port();
    let config = format!(
        r#"
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ['127.0.0.1:{prom_port}']
remote_write:
  - url: {url}
    queue_config:
      batch_send_deadline: 1s
      max_samples_per_send: 2000
      min_backoff: 100ms
      max_backoff: 1s
"#,
        url = vigil.url("/api/v1/write")
    );
    // Prometheus must listen where its own scrape job points.
    let prom = {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("prometheus.yml");
        std::fs::write(&cfg, &config).unwrap();
        let mut cmd = std::process::Command::new(&prom_bin);
        cmd.arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .arg("--log.level=warn");
        let mut proc = Proc::spawn("prometheus", &mut cmd, &dir.path().join("prometheus.log"));
        wait_ready(
            &mut proc,
            &format!("http://127.0.0.1:{prom_port}/-/ready"),
            Duration::from_secs(60),
        )
        .await;
        Prometheus::from_parts(prom_port, proc, dir)
    };

    // Let Prometheus scrape itself for a while, then compare a window that has certainly been sent.
    let start = now_secs();
    tokio::time::sleep(Duration::from_secs(12)).await;
    let end = now_secs() - 3.0;
    let window = (end - start).ceil() as i64 + 1;
    let vbase = format!("http://{}", vigil.addr());

    // Raw samples: a range selector in an instant query returns every stored sample of the window.
    let raw_q = format!("{{job=\"prometheus\"}}[{window}s]");
    let want = by_series(&query(&prom.base(), &raw_q, end).await);
    assert!(
        want.len() > 100,
        "Prometheus scraped only {} series",
        want.len()
    );
    let samples: usize = want.values().map(|v| v.len()).sum();
    let got = eventually(
        Duration::from_secs(60),
        "Vigil to hold every sample Prometheus sent",
        || {
            let (q, vbase, want) = (raw_q.clone(), vbase.clone(), want.clone());
            async move {
                let got = by_series(&query(&vbase, &q, end).await);
                (got == want).then_some(got)
            }
        },
    )
    .await;
    assert_eq!(diff(&want, &got), "");
    eprintln!(
        "raw samples identical: {} series, {samples} samples",
        want.len()
    );

    // Plain selectors at instant and range resolution, through the 5-minute lookback.
    for q in [
        "up",
        "prometheus_http_requests_total",
        "{__name__=~\"prometheus_tsdb_head_.*\", job=\"prometheus\"}",
        "go_memstats_alloc_bytes{instance=~\".+\"}",
        "prometheus_engine_query_duration_seconds{quantile!=\"0.5\"}",
        "scrape_samples_scraped offset 2s",
    ] {
        let p = query_range(&prom.base(), q, start, end, 1.0).await;
        let v = query_range(&vbase, q, start, end, 1.0).await;
        assert_eq!(diff(&by_series(&p), &by_series(&v)), "", "query_range {q}");
        assert!(
            !p.as_array().unwrap().is_empty(),
            "{q} returned nothing in Prometheus"
        );
        let p = sorted(&query(&prom.base(), q, end).await);
        let v = sorted(&query(&vbase, q, end).await);
        assert_eq!(p, v, "instant query {q}");
    }

    // Series and label values agree too.
    let series_q = format!("/api/v1/series?match[]=up&start={start}&end={end}");
    let p = get_json(&format!("{}{series_q}", prom.base())).await;
    let v = vigil.get_json(&series_q).await;
    assert_eq!(p["data"], v["data"]);
    let lv = format!("/api/v1/label/job/values?start={start}&end={end}");
    assert_eq!(
        get_json(&format!("{}{lv}", prom.base())).await["data"],
        vigil.get_json(&lv).await["data"]
    );
    drop(prom);
}
