//! Runbook receivers in the real server: an alert routed to a `runbook_configs` receiver starts the
//! runbook; a runbook that reports success without fixing anything is not verified, and after
//! `verify_within` the escalation receiver (a webhook) gets a page whose annotations carry the
//! execution record.

use std::time::Duration;

use serde_json::Value;

use crate::harness::*;

/// Logs that it fixed things and returns 0: it fixes nothing.
const PRETEND: &str = r#"(module
  (import "vigil" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "all fixed, trust me")
  (func (export "vigil_runbook_v1") (result i32)
    (call $log (i32.const 1) (i32.const 0) (i32.const 19))
    (i32.const 0)))"#;

/// Vigil with the rule file `rules`, the alertmanager.yml `am`, and one runbook in its `runbooks`
/// directory: `NAME.wasm` assembled from `wat`, with `manifest` beside it. The directory lives as
/// long as the returned guard.
async fn with_runbook(
    am: &str,
    rules: &str,
    name: &str,
    wat: &str,
    manifest: &str,
) -> (Vigil, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let rb = dir.path().join("rb");
    std::fs::create_dir_all(&rb).unwrap();
    std::fs::write(
        rb.join(format!("{name}.wasm")),
        wat::parse_str(wat).unwrap(),
    )
    .unwrap();
    std::fs::write(rb.join(format!("{name}.runbook.yml")), manifest).unwrap();
    let v = Vigil::start_with_files(
        &format!(
            "scrape_configs: []\nbuiltin_rules: false\nrule_files: [r.yml]\nalertmanager_config: am.yml\nrunbooks:\n  dir: {}\n  verify_every: 200ms\n",
            rb.display()
        ),
        &[("am.yml", am), ("r.yml", rules)],
    )
    .await;
    (v, dir)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_runbook_that_fixes_nothing_escalates_with_its_record() {
    let (port, pages) = http_receiver(|_| ("200 OK", String::new())).await;
    let am = format!(
        r#"route:
  receiver: heal
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: heal
    runbook_configs:
      - runbook: pretend-fix
        params: {{service: '{{{{ $labels.service }}}}'}}
        target: 'service:{{{{ $labels.service }}}}'
        verify_within: 2s
        escalate_to: oncall
  - name: oncall
    webhook_configs:
      - url: 'http://127.0.0.1:{port}/page'
"#
    );
    let rules = "groups:\n  - name: g\n    interval: 1s\n    rules:\n      - alert: ServiceDown\n        expr: vector(1)\n        labels: {service: web}\n        annotations: {summary: web is down}\n";
    let manifest = "name: pretend-fix\nversion: 1.0.0\nabi: 1\ncapabilities: [log]\nparams:\n  service: {type: string, required: true}\n";
    let (v, _dir) = with_runbook(&am, rules, "pretend-fix", PRETEND, manifest).await;
    let page = eventually(Duration::from_secs(60), "the escalation page", || {
        let pages = pages.clone();
        async move { pages.lock().first().cloned() }
    })
    .await;
    let a = &page["alerts"][0];
    assert_eq!(page["receiver"], "oncall", "{page:#}");
    assert_eq!(a["labels"]["alertname"], "ServiceDown");
    assert_eq!(a["labels"]["service"], "web");
    assert_eq!(a["annotations"]["summary"], "web is down");
    let summary = a["annotations"]["runbook_summary"].as_str().unwrap();
    assert!(
        summary.contains("runbook pretend-fix") && summary.contains("still fires after 2s"),
        "{summary}"
    );
    let rec: Value =
        serde_json::from_str(a["annotations"]["runbook_execution"].as_str().unwrap()).unwrap();
    assert_eq!(rec["runbook"], "pretend-fix");
    assert_eq!(rec["binding"], "heal/pretend-fix[0]");
    assert_eq!(rec["params"]["service"], "web");
    assert_eq!(
        rec["outcome"], "failed",
        "the record as it stood when it was escalated: {rec:#}"
    );
    let steps = rec["steps"].as_array().unwrap();
    assert!(
        steps
            .iter()
            .any(|s| s["kind"] == "policy" && s["detail"]["target"] == "service:web"),
        "{rec:#}"
    );
    assert!(
        steps
            .iter()
            .any(|s| s["kind"] == "log" && s["detail"]["message"] == "all fixed, trust me"),
        "{rec:#}"
    );
    assert!(
        steps
            .iter()
            .any(|s| s["kind"] == "verify" && s["detail"]["cleared"] == false),
        "{rec:#}"
    );
    // The execution is recorded as escalated on disk.
    let log = std::fs::read_to_string(v.data_dir().join("runbooks/executions.jsonl")).unwrap();
    let last: Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert_eq!(last["outcome"], "escalated");
    assert_eq!(last["id"], rec["id"]);
    let m = v.metrics_text().await;
    for want in [
        r#"vigil_runbook_executions_total{runbook="pretend-fix",outcome="escalated"} 1"#,
        r#"vigil_runbook_run_duration_seconds_count{runbook="pretend-fix"} 1"#,
        "vigil_runbook_instantiate_seconds_count 1",
    ] {
        assert!(
            m.lines().any(|l| l == want),
            "{want} missing:\n{}",
            m.lines()
                .filter(|l| l.contains("vigil_runbook"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// `vigil check config` loads the runbooks and checks each `runbook_configs` entry against them.
#[test]
fn check_config_checks_runbook_receivers() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("rb")).unwrap();
    std::fs::write(
        dir.path().join("rb/pretend-fix.wasm"),
        wat::parse_str(PRETEND).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("rb/pretend-fix.runbook.yml"),
        "name: pretend-fix\nversion: 1.0.0\nabi: 1\ncapabilities: [log]\n",
    )
    .unwrap();
    let check = |am: &str| {
        std::fs::write(dir.path().join("am.yml"), am).unwrap();
        std::fs::write(
            dir.path().join("vigil.yml"),
            "alertmanager_config: am.yml\nrunbooks:\n  dir: rb\n",
        )
        .unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(["check", "config"])
            .arg(dir.path().join("vigil.yml"))
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (ok, out) = check(
        "route: {receiver: heal}\nreceivers:\n  - name: heal\n    runbook_configs: [{runbook: pretend-fix}]\n",
    );
    assert!(ok && out.contains("runbooks valid (1 loaded)"), "{out}");
    let (ok, out) = check(
        "route: {receiver: heal}\nreceivers:\n  - name: heal\n    runbook_configs: [{runbook: restart-db}]\n",
    );
    assert!(
        !ok && out.contains("no runbook named \"restart-db\" is loaded (loaded: pretend-fix)"),
        "{out}"
    );
    let (ok, out) = check(
        "route: {receiver: heal}\nreceivers:\n  - name: heal\n    runbook_configs: [{runbook: pretend-fix, grants: [{capability: docker.restart}]}]\n",
    );
    assert!(
        !ok && out.contains("whose manifest does not ask for it"),
        "{out}"
    );
}

/// A binding that requires approval waits as `pending`; approving runs it (recording who), denying
/// never runs it; the API lists and filters executions, and runs a runbook by hand (dry by default).
#[tokio::test(flavor = "multi_thread")]
async fn approvals_and_the_runbook_api() {
    let am = r#"route:
  receiver: heal
  group_by: [alertname, service]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: heal
    runbook_configs:
      - runbook: pretend-fix
        params: {service: '{{ $labels.service }}'}
        target: 'service:{{ $labels.service }}'
        require_approval: true
        verify_within: 1s
"#;
    let rules = "groups:\n  - name: g\n    interval: 1s\n    rules:\n      - alert: ServiceDown\n        expr: vector(1)\n        labels: {service: a}\n      - alert: ServiceDown\n        expr: vector(1)\n        labels: {service: b}\n";
    let manifest = "name: pretend-fix\nversion: 1.0.0\nabi: 1\ncapabilities: [log]\nparams:\n  service: {type: string, required: true}\n";
    let (v, _dir) = with_runbook(am, rules, "pretend-fix", PRETEND, manifest).await;
    let c = client();
    let pending = eventually(Duration::from_secs(60), "two pending executions", || {
        let url = v.url("/api/v1/runbooks/executions?outcome=pending");
        async move {
            let r = get_json(&url).await;
            let d = r["data"].as_array().cloned().unwrap_or_default();
            (d.len() == 2).then_some(d)
        }
    })
    .await;
    let by_service = |s: &str| {
        pending
            .iter()
            .find(|e| e["params"]["service"] == s)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (a, b) = (by_service("a"), by_service("b"));
    for e in &pending {
        assert!(
            !e["steps"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["kind"] == "log"),
            "a pending execution ran: {e:#}"
        );
    }
    // Approve a: it runs (the runbook logs) and, since it fixes nothing, fails verification.
    let r: Value = c
        .post(v.url(&format!("/api/v1/runbooks/executions/{a}/approve")))
        .basic_auth("alice", Some("x"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["data"]["approved_by"], "alice", "{r:#}");
    assert_eq!(r["data"]["outcome"], "failed", "{r:#}");
    let steps = r["data"]["steps"].as_array().unwrap();
    assert!(
        steps
            .iter()
            .any(|s| s["kind"] == "approval" && s["detail"]["by"] == "alice")
    );
    assert!(steps.iter().any(|s| s["kind"] == "log"));
    // Deny b: it never runs; a second decision is refused.
    let r: Value = c
        .post(v.url(&format!("/api/v1/runbooks/executions/{b}/deny")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["data"]["outcome"], "denied");
    assert_eq!(r["data"]["reason"], "denied by anonymous");
    assert!(
        !r["data"]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["kind"] == "log")
    );
    let again = c
        .post(v.url(&format!("/api/v1/runbooks/executions/{b}/approve")))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);
    let one = get_json(&v.url(&format!("/api/v1/runbooks/executions/{b}"))).await;
    assert_eq!(one["data"]["outcome"], "denied");
    // The catalogue and a manual run (a dry run unless asked otherwise).
    let list = get_json(&v.url("/api/v1/runbooks")).await;
    assert_eq!(list["data"][0]["name"], "pretend-fix");
    assert_eq!(list["data"][0]["capabilities"], serde_json::json!(["log"]));
    let r: Value = c
        .post(v.url("/api/v1/runbooks/pretend-fix/run"))
        .json(&serde_json::json!({"params": {"service": "c"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["data"]["outcome"], "succeeded", "{r:#}");
    assert_eq!(r["data"]["dry_run"], true);
    assert_eq!(r["data"]["binding"], "manual by anonymous");
    let r = c
        .post(v.url("/api/v1/runbooks/pretend-fix/run"))
        .json(&serde_json::json!({"params": {}}))
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"]["outcome"], "failed");
    assert_eq!(
        body["data"]["reason"],
        "parameter service is required by runbook pretend-fix"
    );
    let failed = get_json(&v.url("/api/v1/runbooks/executions?outcome=failed&limit=10")).await;
    assert_eq!(failed["data"].as_array().unwrap().len(), 2, "{failed:#}");
    // The same by the CLI.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args([
            "runbook",
            "run",
            "pretend-fix",
            "--server",
            &v.url(""),
            "--params",
            r#"{"service":"d"}"#,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rec: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rec["outcome"], "succeeded");
    assert_eq!(rec["params"]["service"], "d");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["runbook", "run", "no-such", "--server", &v.url("")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no runbook named \"no-such\""));
}

/// Waits 2 s on a condition that never holds (wait.until), then returns 0.
const SLOW: &str = r#"(module
  (import "vigil" "call" (func $call (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "wait.until")
  (data (i32.const 32) "{\22query\22:\22vector(1) == 2\22,\22timeout\22:\222s\22}")
  (func (export "vigil_runbook_v1") (result i32)
    (drop (call $call (i32.const 0) (i32.const 10) (i32.const 32) (i32.const 41)))
    (i32.const 0)))"#;

/// Two alerts for one target: while the first execution holds the target, the second is refused
/// by the lock, and the record says why.
#[tokio::test(flavor = "multi_thread")]
async fn two_alerts_for_one_target_run_one_at_a_time() {
    let am = r#"route:
  receiver: heal
  group_by: [alertname, service]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: heal
    runbook_configs:
      - runbook: slow
        target: 'host:shared'
        grants: [{capability: wait.until}]
        verify_within: 1s
"#;
    let rules = "groups:\n  - name: g\n    interval: 1s\n    rules:\n      - alert: Down\n        expr: vector(1)\n        labels: {service: a}\n      - alert: Down\n        expr: vector(1)\n        labels: {service: b}\n";
    let (v, _dir) = with_runbook(
        am,
        rules,
        "slow",
        SLOW,
        "name: slow\nversion: 1.0.0\nabi: 1\ncapabilities: [wait.until]\n",
    )
    .await;
    let done = eventually(Duration::from_secs(60), "both executions decided", || {
        let url = v.url("/api/v1/runbooks/executions");
        async move {
            let r = get_json(&url).await;
            let d = r["data"].as_array().cloned().unwrap_or_default();
            let decided = d.iter().filter(|e| e["outcome"] != "running").count();
            (d.len() == 2 && decided == 2).then_some(d)
        }
    })
    .await;
    let denied: Vec<&Value> = done.iter().filter(|e| e["outcome"] == "denied").collect();
    let ran: Vec<&Value> = done.iter().filter(|e| e["outcome"] != "denied").collect();
    assert_eq!((denied.len(), ran.len()), (1, 1), "{done:#?}");
    assert_eq!(denied[0]["reason"], "another run is acting on host:shared");
    assert!(
        ran[0]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["kind"] == "call"
                && s["detail"]["capability"] == "wait.until"
                && s["detail"]["result"]["met"] == false),
        "{:#}",
        ran[0]
    );
}
