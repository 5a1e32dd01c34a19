//! Runbook receivers in the real server: an alert routed to a `runbook_configs` receiver starts the
//! runbook; a runbook that reports success without fixing anything is not verified, and after
//! `verify_within` the escalation receiver (a webhook) gets a page whose annotations carry the
//! execution record.

use std::time::Duration;

use serde_json::Value;

use crate::harness::*;

/// Logs that it fixed things and returns 0: it fixes nothing.
pub(crate) const PRETEND: &str = r#"(module
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
    with_runbook_and(am, rules, name, wat, manifest, "", None).await
}

/// [`with_runbook`] with more lines for the `runbooks:` section (indented by two spaces) and,
/// when given, a web configuration file (`--web.config.file`).
pub(crate) async fn with_runbook_and(
    am: &str,
    rules: &str,
    name: &str,
    wat: &str,
    manifest: &str,
    runbooks_extra: &str,
    web: Option<&str>,
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
    let web_file = dir.path().join("web.yml");
    let mut args = Vec::new();
    if let Some(w) = web {
        std::fs::write(&web_file, w).unwrap();
        args = vec![
            "--web.config.file".to_string(),
            web_file.display().to_string(),
        ];
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let v = Vigil::start_with_args(
        &format!(
            "scrape_configs: []\nbuiltin_rules: false\nrule_files: [r.yml]\nalertmanager_config: am.yml\nrunbooks:\n  dir: {}\n  verify_every: 200ms\n{runbooks_extra}",
            rb.display()
        ),
        &[("am.yml", am), ("r.yml", rules)],
        &args,
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
    // Without a web configuration there are no users: the record says anonymous.
    let r: Value = c
        .post(v.url(&format!("/api/v1/runbooks/executions/{a}/approve")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["data"]["approved_by"], "anonymous", "{r:#}");
    assert_eq!(r["data"]["outcome"], "failed", "{r:#}");
    let steps = r["data"]["steps"].as_array().unwrap();
    assert!(
        steps
            .iter()
            .any(|s| s["kind"] == "approval" && s["detail"]["by"] == "anonymous")
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

/// A GET with basic auth, as JSON.
pub(crate) async fn get_as(url: &str, user: &str, password: &str) -> Value {
    let r = client()
        .get(url)
        .basic_auth(user, Some(password))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "GET {url}: {}", r.status());
    r.json().await.unwrap()
}

/// A POST with basic auth (when `user` is given): status and JSON body (Null when not JSON).
pub(crate) async fn post_as(url: &str, who: Option<(&str, &str)>, body: Value) -> (u16, Value) {
    let mut req = client().post(url).json(&body);
    if let Some((u, p)) = who {
        req = req.basic_auth(u, Some(p));
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// While the web configuration has users, only the users `runbooks.admins` names may approve, deny
/// or run (403 for the others, 401 without credentials); the record names the admin. A pending
/// execution survives a restart and is approved afterwards; a reload changes the admins.
#[tokio::test(flavor = "multi_thread")]
async fn runbook_admins_approve_and_run_and_pending_runs_survive_a_restart() {
    let am = r#"route:
  receiver: heal
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: heal
    runbook_configs:
      - runbook: pretend-fix
        params: {service: '{{ $labels.service }}'}
        require_approval: true
        verify_within: 1s
"#;
    let rules = "groups:\n  - name: g\n    interval: 1s\n    rules:\n      - alert: ServiceDown\n        expr: vector(1)\n        labels: {service: a}\n";
    let manifest = "name: pretend-fix\nversion: 1.0.0\nabi: 1\ncapabilities: [log]\nparams:\n  service: {type: string, required: true}\n";
    let web = format!(
        "basic_auth_users:\n  alice: '{}'\n  bob: '{}'\n",
        bcrypt::hash("alice-pw", 4).unwrap(),
        bcrypt::hash("bob-pw", 4).unwrap()
    );
    let (mut v, _dir) = with_runbook_and(
        am,
        rules,
        "pretend-fix",
        PRETEND,
        manifest,
        "  admins: [alice]\n",
        Some(&web),
    )
    .await;
    let alice = Some(("alice", "alice-pw"));
    let bob = Some(("bob", "bob-pw"));
    let pending = |v: &Vigil| {
        let url = v.url("/api/v1/runbooks/executions?outcome=pending");
        async move {
            let r = get_as(&url, "bob", "bob-pw").await;
            r["data"].as_array().and_then(|d| d.first().cloned())
        }
    };
    let first = eventually(Duration::from_secs(60), "a pending execution", || {
        pending(&v)
    })
    .await;
    let id = first["id"].as_str().unwrap().to_string();
    let approve = v.url(&format!("/api/v1/runbooks/executions/{id}/approve"));
    let deny = v.url(&format!("/api/v1/runbooks/executions/{id}/deny"));
    let run = v.url("/api/v1/runbooks/pretend-fix/run");
    // No credentials: the front door refuses. A user who is not an admin: the API refuses.
    assert_eq!(post_as(&approve, None, Value::Null).await.0, 401);
    for url in [&approve, &deny] {
        let (status, body) = post_as(url, bob, Value::Null).await;
        assert_eq!(status, 403, "{body:#}");
        assert_eq!(body["errorType"], "forbidden");
        let msg = body["error"].as_str().unwrap();
        assert!(
            msg.contains("\"bob\"") && msg.contains("runbooks.admins"),
            "{msg}"
        );
    }
    let (status, body) = post_as(&run, bob, serde_json::json!({"params": {"service": "x"}})).await;
    assert_eq!(status, 403, "{body:#}");
    let one = get_as(
        &v.url(&format!("/api/v1/runbooks/executions/{id}")),
        "bob",
        "bob-pw",
    )
    .await;
    assert_eq!(one["data"]["outcome"], "pending", "refusals change nothing");

    // A restart: the execution still waits, and approving it runs it under its binding.
    assert!(v.terminate().success());
    v.launch().await;
    let again = get_as(
        &v.url(&format!("/api/v1/runbooks/executions/{id}")),
        "alice",
        "alice-pw",
    )
    .await;
    assert_eq!(again["data"]["outcome"], "pending", "{again:#}");
    assert_eq!(
        again["data"]["config"]["require_approval"], true,
        "{again:#}"
    );
    let (status, r) = post_as(&approve, alice, Value::Null).await;
    assert_eq!(status, 200, "{r:#}");
    assert_eq!(r["data"]["approved_by"], "alice", "{r:#}");
    let steps = r["data"]["steps"].as_array().unwrap();
    assert!(
        steps
            .iter()
            .any(|s| s["kind"] == "log" && s["detail"]["message"] == "all fixed, trust me"),
        "the approved run ran: {r:#}"
    );
    assert_eq!(
        r["data"]["outcome"], "failed",
        "it fixes nothing, so verification fails: {r:#}"
    );
    let (status, r) = post_as(&run, alice, serde_json::json!({"params": {"service": "x"}})).await;
    assert_eq!(status, 200, "{r:#}");
    assert_eq!(r["data"]["binding"], "manual by alice");
    assert_eq!(r["data"]["outcome"], "succeeded");

    // A reload makes bob the admin instead of alice.
    let cfg = std::fs::read_to_string(v.config_path()).unwrap();
    std::fs::write(
        v.config_path(),
        cfg.replace("admins: [alice]", "admins: [bob]"),
    )
    .unwrap();
    let (status, body) = post_as(&v.url("/-/reload"), alice, Value::Null).await;
    assert_eq!(status, 200, "{body:#}");
    let body = serde_json::json!({"params": {"service": "x"}});
    assert_eq!(post_as(&run, bob, body.clone()).await.0, 200);
    assert_eq!(post_as(&run, alice, body).await.0, 403);
}

/// Waits 60 s on a condition that never holds: a run still under way when Vigil is killed.
const STUCK: &str = r#"(module
  (import "vigil" "call" (func $call (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "wait.until")
  (data (i32.const 32) "{\22query\22:\22vector(1) == 2\22,\22timeout\22:\2260s\22}")
  (func (export "vigil_runbook_v1") (result i32)
    (drop (call $call (i32.const 0) (i32.const 10) (i32.const 32) (i32.const 42)))
    (i32.const 0)))"#;

/// Vigil is killed (-9) while a runbook runs: after the restart the execution is not left
/// `running` for ever. It is failed as interrupted and escalated, since no one else would look at
/// it: the alert was already handed to the runbook receiver.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_interrupted_by_a_crash_is_failed_and_escalated_after_the_restart() {
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
      - runbook: stuck
        grants: [{{capability: wait.until}}]
        escalate_to: oncall
  - name: oncall
    webhook_configs:
      - url: 'http://127.0.0.1:{port}/page'
"#
    );
    let rules = "groups:\n  - name: g\n    interval: 1s\n    rules:\n      - alert: ServiceDown\n        expr: vector(1)\n";
    let (mut v, _dir) = with_runbook(
        &am,
        rules,
        "stuck",
        STUCK,
        "name: stuck\nversion: 1.0.0\nabi: 1\ncapabilities: [wait.until]\n",
    )
    .await;
    let running = eventually(Duration::from_secs(60), "a running execution", || {
        let url = v.url("/api/v1/runbooks/executions?outcome=running");
        async move {
            let r = get_json(&url).await;
            r["data"]
                .as_array()
                .and_then(|d| d.first().cloned())
                .filter(|e| e["times"]["started"].is_i64())
        }
    })
    .await;
    let id = running["id"].as_str().unwrap().to_string();
    v.kill9();
    assert!(pages.lock().is_empty(), "no page before the restart");
    v.launch().await;
    let e = v
        .get_json(&format!("/api/v1/runbooks/executions/{id}"))
        .await;
    assert_eq!(e["data"]["outcome"], "escalated", "{e:#}");
    assert!(
        e["data"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("interrupted: Vigil stopped during the run"),
        "{e:#}"
    );
    assert!(
        e["data"]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["kind"] == "restart" && s["detail"]["previous_outcome"] == "running"),
        "{e:#}"
    );
    let page = eventually(Duration::from_secs(30), "the escalation page", || {
        let pages = pages.clone();
        async move { pages.lock().first().cloned() }
    })
    .await;
    let summary = page["alerts"][0]["annotations"]["runbook_summary"]
        .as_str()
        .unwrap();
    assert!(
        summary.contains(&id) && summary.contains("interrupted"),
        "{summary}"
    );
}

/// A run by hand that names a target waits its turn like any other: while an alert's run holds
/// the target, the manual run is refused by the lock, and says why.
#[tokio::test(flavor = "multi_thread")]
async fn a_manual_run_on_a_busy_target_is_refused_by_the_lock() {
    let am = r#"route:
  receiver: heal
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: heal
    runbook_configs:
      - runbook: stuck
        target: 'host:shared'
        grants: [{capability: wait.until}]
"#;
    let rules = "groups:\n  - name: g\n    interval: 1s\n    rules:\n      - alert: Down\n        expr: vector(1)\n";
    let (v, _dir) = with_runbook(
        am,
        rules,
        "stuck",
        STUCK,
        "name: stuck\nversion: 1.0.0\nabi: 1\ncapabilities: [wait.until]\n",
    )
    .await;
    eventually(Duration::from_secs(60), "the alert's run under way", || {
        let url = v.url("/api/v1/runbooks/executions?outcome=running");
        async move {
            let r = get_json(&url).await;
            r["data"]
                .as_array()
                .is_some_and(|d| d.iter().any(|e| e["times"]["started"].is_i64()))
                .then_some(())
        }
    })
    .await;
    let run = v.url("/api/v1/runbooks/stuck/run");
    let (status, r) = post_as(
        &run,
        None,
        serde_json::json!({"target": "host:shared", "dry_run": false}),
    )
    .await;
    assert_eq!(status, 200, "{r:#}");
    assert_eq!(r["data"]["outcome"], "denied", "{r:#}");
    assert_eq!(r["data"]["reason"], "another run is acting on host:shared");
    // Another target is free.
    let (_, r) = post_as(
        &run,
        None,
        serde_json::json!({"target": "host:other", "grants": [], "dry_run": false}),
    )
    .await;
    assert_ne!(r["data"]["outcome"], "denied", "{r:#}");
}
