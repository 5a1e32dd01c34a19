//! Rule files: recording rules write back, alerting rules go pending then firing with templated labels
//! and annotations, `ALERTS` series are written, state survives a restart and a reload, and
//! `vigil check rules` validates like promtool.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::harness::*;
use crate::push::*;

const RULES: &str = r#"
groups:
  - name: demo
    interval: 1s
    labels:
      team: web
    rules:
      - record: job:rq:sum
        expr: sum by (job) (rq_total)
      - alert: HighRequests
        expr: rq_total > 5
        for: 2s
        labels:
          severity: page
        annotations:
          summary: "{{ $labels.path }} has {{ $value }} requests"
          ratio: "{{ $value | humanizePercentage }}"
      - alert: SlowBurn
        expr: rq_total > 0
        for: 1h
"#;

async fn push_data(v: &Vigil) {
    let t = (now_secs() * 1000.0) as i64;
    let req = vec![
        series(
            &[("__name__", "rq_total"), ("job", "web"), ("path", "/a")],
            vec![(t, 10.0)],
        ),
        series(
            &[("__name__", "rq_total"), ("job", "web"), ("path", "/b")],
            vec![(t, 1.0)],
        ),
    ];
    let (s, b) = write_v1(&v.url("/api/v1/write"), &req).await;
    assert_eq!(s, 204, "{b}");
}

async fn alerts(v: &Vigil) -> Vec<Value> {
    v.get_json("/api/v1/alerts").await["data"]["alerts"]
        .as_array()
        .unwrap()
        .clone()
}

fn find<'a>(alerts: &'a [Value], name: &str, path: &str) -> Option<&'a Value> {
    alerts
        .iter()
        .find(|a| a["labels"]["alertname"] == name && a["labels"]["path"] == path)
}

#[tokio::test(flavor = "multi_thread")]
async fn rules_record_alert_and_keep_state_across_restart_and_reload() {
    let mut v = Vigil::start(
        "scrape_configs: []\nglobal:\n  evaluation_interval: 1s\nrule_files: ['rules/*.yml']\n",
    )
    .await;
    // The rule file is read at start: write it, then restart so it is loaded.
    std::fs::create_dir_all(v.dir.path().join("rules")).unwrap();
    std::fs::write(v.dir.path().join("rules/demo.yml"), RULES).unwrap();
    v.terminate();
    v.launch().await;
    push_data(&v).await;

    // Pending first, firing after `for: 2s`, with templated annotations and group + rule labels.
    let firing = eventually(Duration::from_secs(20), "HighRequests to fire", || async {
        let a = alerts(&v).await;
        find(&a, "HighRequests", "/a")
            .filter(|x| x["state"] == "firing")
            .cloned()
    })
    .await;
    assert_eq!(firing["labels"]["severity"], "page");
    assert_eq!(firing["labels"]["team"], "web");
    assert_eq!(firing["labels"]["job"], "web");
    assert!(firing["labels"].get("__name__").is_none());
    assert_eq!(firing["annotations"]["summary"], "/a has 10 requests");
    assert_eq!(firing["annotations"]["ratio"], "1000%");
    assert_eq!(firing["value"], "1e+01");
    let a = alerts(&v).await;
    assert!(
        find(&a, "HighRequests", "/b").is_none(),
        "/b is below the threshold"
    );
    let slow = find(&a, "SlowBurn", "/a")
        .expect("SlowBurn pending")
        .clone();
    assert_eq!(slow["state"], "pending");

    // The synthetic series and the recording rule's output are queryable.
    let now = now_secs();
    let r = v.query("ALERTS{alertname=\"HighRequests\"}", now).await;
    assert_eq!(r[0]["metric"]["alertstate"], "firing", "{r}");
    let r = v
        .query("ALERTS_FOR_STATE{alertname=\"SlowBurn\", path=\"/a\"}", now)
        .await;
    assert!(
        r[0]["value"][1].as_str().unwrap().parse::<f64>().unwrap() > 1.6e9,
        "{r}"
    );
    let r = v.query("job:rq:sum", now).await;
    assert_eq!(r[0]["value"][1], "11", "{r}");
    assert_eq!(r[0]["metric"]["team"], "web");

    // The rule engine's own metrics.
    let m = v.metrics_text().await;
    assert!(
        m.lines()
            .any(|l| l.starts_with("vigil_rule_evaluations_total{") && l.contains("demo.yml;demo")),
        "{m}"
    );
    assert!(
        m.lines()
            .any(|l| l.starts_with("vigil_rule_group_alerts_firing{") && l.contains(";demo\"} 1")),
        "{m}"
    );

    // The rules API in Prometheus's shape.
    let rules = v.get_json("/api/v1/rules").await;
    let g = &rules["data"]["groups"][0];
    assert_eq!(g["name"], "demo");
    assert_eq!(g["interval"], 1.0);
    assert_eq!(g["rules"].as_array().unwrap().len(), 3);
    assert_eq!(g["rules"][0]["type"], "recording");
    assert_eq!(g["rules"][1]["type"], "alerting");
    assert_eq!(g["rules"][1]["state"], "firing");
    assert_eq!(g["rules"][1]["duration"], 2.0);
    assert_eq!(g["rules"][1]["health"], "ok");
    let only_alerts = v.get_json("/api/v1/rules?type=alert").await;
    assert_eq!(
        only_alerts["data"]["groups"][0]["rules"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // A restart keeps the pending alert's activeAt (restored from ALERTS_FOR_STATE) and the firing
    // alert fires at once instead of waiting `for` again.
    v.terminate();
    v.launch().await;
    let after = eventually(Duration::from_secs(20), "alerts after restart", || async {
        let a = alerts(&v).await;
        let s = find(&a, "SlowBurn", "/a").cloned();
        let h = find(&a, "HighRequests", "/a").cloned();
        s.zip(h)
    })
    .await;
    assert_eq!(
        after.0["activeAt"], slow["activeAt"],
        "SlowBurn's activeAt survived the restart"
    );
    assert_eq!(
        after.1["state"], "firing",
        "HighRequests fired at its first evaluation after the restart"
    );

    // A reload with one more rule keeps the existing alerts' state.
    std::fs::write(
        v.dir.path().join("rules/demo.yml"),
        format!("{RULES}      - record: extra:rq\n        expr: rq_total * 2\n"),
    )
    .unwrap();
    let r = client().post(v.url("/-/reload")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    eventually(
        Duration::from_secs(20),
        "the new rule to record",
        || async {
            (!v.query("extra:rq", now_secs())
                .await
                .as_array()
                .unwrap()
                .is_empty())
            .then_some(())
        },
    )
    .await;
    let a = alerts(&v).await;
    assert_eq!(
        find(&a, "SlowBurn", "/a").unwrap()["activeAt"],
        slow["activeAt"]
    );
    // A broken rule file is refused and the running rules stay.
    std::fs::write(
        v.dir.path().join("rules/demo.yml"),
        "groups:\n  - name: x\n    rules:\n      - record: y\n        expr: sum(\n",
    )
    .unwrap();
    let r = client().post(v.url("/-/reload")).send().await.unwrap();
    assert_eq!(r.status(), 500);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("line 4") && body.contains("could not parse expression"),
        "{body}"
    );
    assert_eq!(
        v.get_json("/api/v1/rules").await["data"]["groups"][0]["rules"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
}

#[test]
fn check_rules_like_promtool() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yml");
    std::fs::write(&good, RULES).unwrap();
    let bad = dir.path().join("bad.yml");
    std::fs::write(
        &bad,
        "groups:\n  - name: a\n    rules:\n      - alert: A\n        expr: up ==\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["check", "rules"])
        .arg(&good)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("SUCCESS: 3 rules found"), "{text}");
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["check", "rules"])
        .arg(&bad)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(text.contains("FAILED") && text.contains("line 4"), "{text}");
    // promtool 2.42 agrees about both files (group `labels` are newer than 2.42, so it checks the file
    // without them), when it is installed.
    if let Some(promtool) = tool("promtool") {
        let compat = dir.path().join("compat.yml");
        std::fs::write(&compat, RULES.replace("    labels:\n      team: web\n", "")).unwrap();
        assert!(
            Command::new(&promtool)
                .args(["check", "rules"])
                .arg(&compat)
                .status()
                .unwrap()
                .success()
        );
        assert!(
            !Command::new(&promtool)
                .args(["check", "rules"])
                .arg(&bad)
                .status()
                .unwrap()
                .success()
        );
    }
}

const UNIT_RULES: &str = r#"
groups:
  - name: example
    rules:
      - alert: InstanceDown
        expr: up == 0
        for: 5m
        labels:
          severity: page
        annotations:
          summary: "Instance {{ $labels.instance }} down"
          description: "{{ $labels.instance }} of job {{ $labels.job }} has been down for more than 5 minutes."
      - record: job:up:sum
        expr: sum by (job) (up)
      - alert: AnyInstanceDown
        expr: job:up:sum < 2
        for: 2m
"#;

fn unit_test(expect_summary: &str) -> String {
    format!(
        r#"
rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'up{{job="prometheus", instance="localhost:9090"}}'
        values: '0 0 0 0 0 0 0 0 0 0 0 0 0 0 0'
      - series: 'up{{job="node_exporter", instance="localhost:9100"}}'
        values: '1+0x6 0 0 0 0 0 0 0 0'
      - series: 'go_goroutines{{job="prometheus", instance="localhost:9090"}}'
        values: '10+10x2 30+20x5'
    alert_rule_test:
      - eval_time: 10m
        alertname: InstanceDown
        exp_alerts:
          - exp_labels:
              severity: page
              instance: localhost:9090
              job: prometheus
            exp_annotations:
              summary: "{expect_summary}"
              description: "localhost:9090 of job prometheus has been down for more than 5 minutes."
      - eval_time: 4m
        alertname: InstanceDown
        exp_alerts: []
      - eval_time: 3m
        alertname: AnyInstanceDown
        exp_alerts:
          - exp_labels: {{job: prometheus}}
          - exp_labels: {{job: node_exporter}}
    promql_expr_test:
      - expr: go_goroutines > 5
        eval_time: 4m
        exp_samples:
          - labels: 'go_goroutines{{job="prometheus",instance="localhost:9090"}}'
            value: 50
      - expr: job:up:sum
        eval_time: 12m
        exp_samples:
          - labels: 'job:up:sum{{job="prometheus"}}'
            value: 0
          - labels: 'job:up:sum{{job="node_exporter"}}'
            value: 0
"#
    )
}

#[test]
fn rule_unit_tests_agree_with_promtool() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yml"), UNIT_RULES).unwrap();
    let good = dir.path().join("good_test.yml");
    std::fs::write(&good, unit_test("Instance localhost:9090 down")).unwrap();
    let bad = dir.path().join("bad_test.yml");
    std::fs::write(&bad, unit_test("Instance somewhere-else down")).unwrap();
    let run = |prog: &std::path::Path, pre: &[&str], f: &std::path::Path| {
        let out = Command::new(prog).args(pre).arg(f).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let vigil = std::path::Path::new(env!("CARGO_BIN_EXE_vigil"));
    let (ok, out) = run(vigil, &["test", "rules"], &good);
    assert!(ok && out.contains("SUCCESS"), "{out}");
    let (ok, out) = run(vigil, &["test", "rules"], &bad);
    assert!(
        !ok && out.contains("FAILED") && out.contains("somewhere-else"),
        "{out}"
    );
    // The same files under promtool 2.42: the same verdicts.
    if let Some(promtool) = tool("promtool") {
        let (ok, out) = run(&promtool, &["test", "rules"], &good);
        assert!(ok, "promtool disagrees on the passing file: {out}");
        let (ok, out) = run(&promtool, &["test", "rules"], &bad);
        assert!(!ok, "promtool disagrees on the failing file: {out}");
    }
}

/// The probe rule templates shipped in alerting/rules/ pass their own unit tests under Vigil and
/// under promtool 2.42 (same verdict), and check clean.
#[test]
fn probe_rule_templates_pass_their_tests() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("alerting/rules");
    let vigil = std::path::Path::new(env!("CARGO_BIN_EXE_vigil"));
    for args in [
        vec!["test", "rules", "probes_test.yml"],
        vec!["check", "rules", "probes.yml"],
    ] {
        let out = Command::new(vigil)
            .args(&args)
            .current_dir(&dir)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && text.contains("SUCCESS"),
            "vigil {args:?}: {text}"
        );
    }
    if let Some(promtool) = tool("promtool") {
        let out = Command::new(&promtool)
            .args(["test", "rules", "probes_test.yml"])
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool test rules: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
