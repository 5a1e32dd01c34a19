//! PromQL answers of Vigil against a real Prometheus 2.42 holding the same data: every query of the
//! shared list and of Vigil's own list, as instant queries at several times and as a range query.

use std::process::Command;

use crate::harness::*;

fn fixture(name: &str) -> String {
    fixtures_dir()
        .parent()
        .unwrap()
        .join("promql")
        .join(name)
        .display()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn promql_answers_match_prometheus() {
    let Some(prom_bin) = tool("prometheus") else {
        return;
    };
    let Some(py) = tool("python3") else { return };
    let vigil = Vigil::start("scrape_configs: []\n").await;
    let prom = Prometheus::start(
        &prom_bin,
        "global: {}\nscrape_configs: []\n",
        &["--web.enable-remote-write-receiver"],
    )
    .await;
    let push = Command::new(&py)
        .arg(fixture("rw-push"))
        .args([
            "--url",
            &format!("{}/api/v1/write", prom.base()),
            "--url",
            &vigil.url("/api/v1/write"),
        ])
        .args(["--instances", "20", "--hours", "2", "--end", "1700000000"])
        .output()
        .unwrap();
    assert!(
        push.status.success(),
        "rw-push: {}",
        String::from_utf8_lossy(&push.stderr)
    );
    // Values near the float limit, for the overflow cases of *_over_time.
    let huge: Vec<_> = [("vigil_huge", 1.0), ("vigil_huge_neg", -1.0)]
        .iter()
        .map(|(name, sign)| {
            crate::push::series(
                &[("__name__", name), ("job", "limits")],
                (0..240)
                    .map(|i| {
                        (
                            1_699_997_000_000 + i * 10_000,
                            sign * (1.7e308 - i as f64 * 1e305),
                        )
                    })
                    .collect(),
            )
        })
        .collect();
    for url in [
        format!("{}/api/v1/write", prom.base()),
        vigil.url("/api/v1/write"),
    ] {
        let (st, body) = crate::push::write_v1(&url, &huge).await;
        assert!((200..300).contains(&st), "{url}: {st} {body}");
    }
    for list in ["shared-queries.txt", "extra-queries.txt"] {
        let out = Command::new(&py)
            .arg(fixture("promql-compare"))
            .args([
                "--ref",
                &prom.base(),
                "--cand",
                &format!("http://{}", vigil.addr()),
            ])
            .args([
                "--queries",
                &fixture(list),
                "--start",
                "1699993000",
                "--end",
                "1700000000",
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        let last = text.lines().last().unwrap_or("").to_string();
        eprintln!("{list}: {last}");
        assert!(
            out.status.success() && last.ends_with(" 0 failed"),
            "{list}:\n{text}"
        );
        let passed: usize = last
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let queries = std::fs::read_to_string(fixture(list))
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .count();
        assert_eq!(passed, queries, "{list}: every query must agree");
    }
}
