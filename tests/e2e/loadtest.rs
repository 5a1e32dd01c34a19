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
