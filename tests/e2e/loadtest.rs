//! `vigil loadtest` as a user runs it: against a local server that answers after a known delay,
//! its percentiles sit on that delay (open model, latency from the scheduled start), and at the
//! same rate they agree with wrk's.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::harness::*;

/// A server answering every request after `delay`, on a port of its own.
pub async fn delay_server(delay: Duration) -> u16 {
    let app = axum::Router::new().fallback(move || async move {
        tokio::time::sleep(delay).await;
        "ok"
    });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    port
}

/// Runs `vigil loadtest` on `scenario` (YAML) and answers its JSON report.
pub fn loadtest(scenario: &str, extra: &[&str]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("scenario.yml");
    std::fs::write(&f, scenario).unwrap();
    let out_json = dir.path().join("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("loadtest")
        .arg(&f)
        .arg("--json")
        .arg(&out_json)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "vigil loadtest: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("p99 ms"), "{text}");
    serde_json::from_str(&std::fs::read_to_string(out_json).unwrap()).unwrap()
}

/// wrk's percentiles (`--latency`), milliseconds: (p50, p99).
fn wrk(url: &str, connections: u32, secs: u32) -> Option<(f64, f64)> {
    let bin = tool("wrk")?;
    let out = Command::new(bin)
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{secs}s"),
            "--latency",
            url,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "wrk: {text}");
    let ms = |p: &str| -> f64 {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(p))
            .unwrap_or_else(|| panic!("no {p} in wrk's output:\n{text}"));
        let v = line.split_whitespace().nth(1).unwrap();
        if let Some(x) = v.strip_suffix("ms") {
            x.parse().unwrap()
        } else if let Some(x) = v.strip_suffix("us") {
            x.parse::<f64>().unwrap() / 1000.0
        } else {
            v.strip_suffix('s').unwrap().parse::<f64>().unwrap() * 1000.0
        }
    };
    Some((ms("50%"), ms("99%")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn percentiles_sit_on_a_known_delay_and_agree_with_wrk() {
    let delay = Duration::from_millis(200);
    let port = delay_server(delay).await;
    let url = format!("http://127.0.0.1:{port}/");
    let r = loadtest(
        &format!(
            "name: delay\ntargets: [{{name: slow, url: '{url}'}}]\nload: {{rate: 50, duration: 6s}}\n"
        ),
        &["--quiet"],
    );
    let t = &r["total"];
    assert_eq!(t["errors"], 0, "{r:#}");
    let requests = t["requests"].as_u64().unwrap();
    assert!((290..=310).contains(&requests), "50/s for 6 s: {requests}");
    let (p50, p99) = (t["p50_ms"].as_f64().unwrap(), t["p99_ms"].as_f64().unwrap());
    // Within 10% of the delay, and never under it.
    for (q, v) in [("p50", p50), ("p99", p99)] {
        assert!(
            (200.0..=220.0).contains(&v),
            "{q} {v} ms for a 200 ms delay: {r:#}"
        );
    }
    // wrk with 10 connections at 200 ms makes 50 requests a second: the same rate.
    let Some((w50, w99)) = wrk(&url, 10, 6) else {
        return;
    };
    eprintln!("loadtest p50 {p50:.1} p99 {p99:.1}; wrk p50 {w50:.1} p99 {w99:.1} (ms)");
    for (ours, theirs, q) in [(p50, w50, "p50"), (p99, w99, "p99")] {
        assert!(
            (ours - theirs).abs() <= theirs * 0.1,
            "{q}: vigil loadtest {ours} ms, wrk {theirs} ms"
        );
    }
}

/// A stalled server: while it answers nothing, the open model keeps sending on schedule, and the
/// stall shows in the latency of every request scheduled during it (a closed-loop tool would
/// have sent almost nothing and reported little).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_shows_in_the_latency_of_everything_scheduled_during_it() {
    // Answers at once, except that for 1 s from the 2nd second it answers nothing.
    let started = std::time::Instant::now();
    let app = axum::Router::new().fallback(move || async move {
        let t = started.elapsed();
        if t >= Duration::from_secs(2) && t < Duration::from_secs(3) {
            tokio::time::sleep(Duration::from_secs(3) - t).await;
        }
        "ok"
    });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    let r = loadtest(
        &format!(
            "targets: [{{name: s, url: 'http://127.0.0.1:{port}/'}}]\nload: {{rate: 100, duration: 4s}}\n"
        ),
        &["--quiet"],
    );
    let t = &r["total"];
    // Requests scheduled through the stall: about 100, waiting 0.5 s on average.
    assert!(t["requests"].as_u64().unwrap() >= 390, "{r:#}");
    let p90 = t["p90_ms"].as_f64().unwrap();
    let max = t["max_ms"].as_f64().unwrap();
    assert!(p90 >= 100.0, "the stall is hidden: {r:#}");
    assert!((900.0..1300.0).contains(&max), "{r:#}");
}

/// The container-crash incident end to end: load at a busybox web container, the scenario kills
/// it, Vigil's 1 s probe fires `WebDown`, the restart-container runbook restarts it, and the
/// report's time to detect, to remediate and to recover agree with the execution record and with
/// each other; the load test's metrics are in Vigil.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_crash_is_detected_remediated_and_recovered() {
    if tool("docker").is_none() {
        return;
    }
    let Some(image) = crate::probes::busybox_image() else {
        return;
    };
    let rb = tempfile::tempdir().unwrap();
    if crate::runbook_authors::place_rust_runbook(rb.path(), "restart-container").is_none() {
        return;
    }
    let name = format!("vigil-lt-{}", std::process::id());
    let _c = crate::heal::Container(name.clone());
    let port = reserved_port();
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        "app=web",
        "-p",
        &format!("127.0.0.1:{port}:8080"),
        image,
        "/bin/sh",
        "-c",
        "/bin/busybox mkdir -p /www && echo ok > /www/index.html && exec /bin/busybox httpd -f -p 8080 -h /www",
    ]);
    let am = "route:\n  receiver: heal\n  group_by: [alertname, instance]\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1m\nreceivers:\n  - name: heal\n    runbook_configs:\n      - runbook: restart-container\n        params: {container: '{{ $labels.container }}'}\n        target: 'container:{{ $labels.container }}'\n        grants: [{capability: docker.restart, scope: {labels: {app: web}}}, {capability: docker.inspect}]\n        verify_within: 30s\n";
    let rules = "groups:\n  - name: heal\n    interval: 1s\n    rules:\n      - alert: WebDown\n        expr: probe_success{job=\"web\"} == 0\n        for: 2s\n";
    let config = format!(
        "scrape_configs: []\nbuiltin_rules: false\nrule_files: [r.yml]\nalertmanager_config: am.yml\nprobe_configs:\n  - job_name: web\n    module: http_2xx\n    interval: 1s\n    timeout: 1s\n    static_configs:\n      - targets: ['http://127.0.0.1:{port}/']\n        labels: {{container: {name}}}\nrunbooks:\n  dir: {}\n  verify_every: 250ms\n  policy: {{cooldown: 0s}}\n",
        rb.path().display()
    );
    let v = Vigil::start_with_files(&config, &[("am.yml", am), ("r.yml", rules)]).await;
    eventually(
        Duration::from_secs(30),
        "the web container probed up",
        || async {
            let r = v.query("probe_success{job=\"web\"} == 1", now_secs()).await;
            (r.as_array().map(Vec::len) == Some(1)).then_some(())
        },
    )
    .await;
    let scenario = format!(
        "name: crash\nvigil: {{url: '{}', alert: WebDown}}\ntargets: [{{name: web, url: 'http://127.0.0.1:{port}/', timeout: 2s}}]\n\
         load: {{rate: 50, duration: 25s}}\nfaults: [{{at: 5s, kind: docker, action: kill, container: {name}}}]\nrecovery: {{stable: 3s}}\n",
        v.url("")
    );
    let r = tokio::task::spawn_blocking(move || loadtest(&scenario, &["--quiet"]))
        .await
        .unwrap();
    let vg = &r["vigil"];
    assert_eq!(vg["outcome"], "verified", "{r:#}");
    assert_eq!(vg["alert"], "WebDown", "{r:#}");
    let (ttd, ttm) = (
        vg["time_to_detect_s"].as_f64().unwrap(),
        vg["time_to_remediate_s"].as_f64().unwrap(),
    );
    let ttr = r["recovery"]["time_to_recover_s"].as_f64().unwrap();
    eprintln!("crash: detect {ttd:.2} s, remediate {ttm:.2} s, recover {ttr:.2} s");
    assert!(ttd > 0.0 && ttd <= ttm && ttm <= ttr, "{r:#}");
    // The same times as the execution record (the alert's firing sample is read at 250 ms steps).
    let rec = &vg["record"];
    assert_eq!(rec["acted_s"], vg["time_to_remediate_s"], "{r:#}");
    assert!(
        (rec["detected_s"].as_f64().unwrap() - ttd).abs() < 1.5,
        "{r:#}"
    );
    let faults = r["faults"].as_array().unwrap();
    assert_eq!(faults[0]["what"], format!("docker kill {name}"));
    // The incident hurt: errors during, none after, and before at most the requests that were
    // in flight when the container died.
    let st = r["stretches"].as_array().unwrap();
    assert!(st[0]["errors"].as_u64().unwrap() <= 2, "{r:#}");
    assert!(st[1]["errors"].as_u64().unwrap() > 0, "{r:#}");
    assert_eq!(st[2]["errors"], 0, "{r:#}");
    // Its metrics were pushed into Vigil.
    let pushed = v
        .query(
            "vigil_loadtest_requests_total{scenario=\"crash\",outcome=\"ok\"}",
            now_secs(),
        )
        .await;
    assert!(
        pushed[0]["value"][1]
            .as_str()
            .unwrap()
            .parse::<f64>()
            .unwrap()
            > 100.0,
        "{pushed}"
    );
    let link = vg["link"].as_str().unwrap();
    assert!(link.starts_with(&v.url("/recovery?from=")), "{link}");
}
