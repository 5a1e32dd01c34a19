//! The runbook policy through the real server, with alerts from the rule engine and the router:
//! the cooldown and the attempt limit hold for an alert that keeps being notified; a flapping alert
//! whose runbook acts (a declared command that appends a line to a file, so every action performed
//! is visible) is stopped by the blast-radius budget, escalates, and runs again only after an admin
//! resets the breaker.

use std::time::Duration;

use serde_json::Value;

use crate::harness::*;
use crate::runbooks::{PRETEND, post_as, with_runbook_and};

const MANIFEST: &str = "name: pretend-fix\nversion: 1.0.0\nabi: 1\ncapabilities: [log]\n";

/// Every execution, oldest first.
async fn executions(v: &Vigil) -> Vec<Value> {
    let r = v.get_json("/api/v1/runbooks/executions?limit=1000").await;
    let mut d = r["data"].as_array().cloned().unwrap_or_default();
    d.reverse();
    d
}

fn ran(e: &Value) -> bool {
    e["steps"]
        .as_array()
        .is_some_and(|s| s.iter().any(|s| s["kind"] == "log"))
}

/// An alert notified again every second (repeat_interval: 1s): one run, then the cooldown refuses
/// each later one on that target, with the reason recorded, and nothing escalates.
#[tokio::test(flavor = "multi_thread")]
async fn the_cooldown_holds_for_an_alert_notified_again_and_again() {
    let am = r#"route:
  receiver: heal
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1s
receivers:
  - name: heal
    runbook_configs:
      - runbook: pretend-fix
        target: 'service:web'
        verify_within: 0s
"#;
    let rules = "groups:\n  - name: g\n    interval: 1s\n    rules:\n      - alert: ServiceDown\n        expr: vector(1)\n";
    let (v, _dir) = with_runbook_and(
        am,
        rules,
        "pretend-fix",
        PRETEND,
        MANIFEST,
        "  policy: {cooldown: 1h, max_attempts: 100}\n",
        None,
    )
    .await;
    let ex = eventually(Duration::from_secs(60), "four executions", || {
        let v = &v;
        async move {
            let ex = executions(v).await;
            (ex.len() >= 4 && ex.iter().all(|e| e["outcome"] != "running")).then_some(ex)
        }
    })
    .await;
    assert!(ran(&ex[0]), "the first run ran: {:#}", ex[0]);
    for e in &ex[1..] {
        assert!(!ran(e), "a run inside the cooldown ran: {e:#}");
        assert_eq!(e["outcome"], "denied", "{e:#}");
        let why = e["reason"].as_str().unwrap();
        assert!(
            why.starts_with("heal/pretend-fix[0] ran on service:web")
                && why.contains("cooldown 1h"),
            "{why}"
        );
        let policy = e["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["kind"] == "policy")
            .unwrap();
        assert_eq!(policy["detail"]["refused"], "cooldown", "{e:#}");
    }
    let m = v.metrics_text().await;
    let refusals: f64 = m
        .lines()
        .find_map(|l| l.strip_prefix(r#"vigil_runbook_policy_refusals_total{reason="cooldown"} "#))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0);
    assert!(refusals >= 3.0, "{m}");
}

/// The same alert, with no cooldown and `max_attempts: 2`: two runs, then each later notification
/// is refused by the attempt limit and escalated to on-call with the reason.
#[tokio::test(flavor = "multi_thread")]
async fn max_attempts_hold_and_the_refusal_escalates() {
    let (port, pages) = http_receiver(|_| ("200 OK", String::new())).await;
    let am = format!(
        r#"route:
  receiver: heal
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1s
receivers:
  - name: heal
    runbook_configs:
      - runbook: pretend-fix
        verify_within: 0s
        escalate_to: oncall
  - name: oncall
    webhook_configs:
      - url: 'http://127.0.0.1:{port}/page'
"#
    );
    let rules = "groups:\n  - name: g\n    interval: 1s\n    rules:\n      - alert: ServiceDown\n        expr: vector(1)\n";
    let (v, _dir) = with_runbook_and(
        &am,
        rules,
        "pretend-fix",
        PRETEND,
        MANIFEST,
        "  policy: {cooldown: 0s, max_attempts: 2, attempts_window: 1h}\n",
        None,
    )
    .await;
    let ex = eventually(Duration::from_secs(60), "four executions", || {
        let v = &v;
        async move {
            let ex = executions(v).await;
            (ex.len() >= 4 && ex.iter().all(|e| e["outcome"] != "running")).then_some(ex)
        }
    })
    .await;
    let runs: Vec<&Value> = ex.iter().filter(|e| ran(e)).collect();
    assert_eq!(runs.len(), 2, "{ex:#?}");
    assert!(ran(&ex[0]) && ran(&ex[1]), "{ex:#?}");
    for e in &ex[2..] {
        assert!(!ran(e), "{e:#}");
        assert_eq!(e["outcome"], "escalated", "{e:#}");
        let why = e["reason"].as_str().unwrap();
        assert!(
            why.contains("had 2 runs within 1h, the most allowed"),
            "{why}"
        );
    }
    let refused = eventually(Duration::from_secs(30), "a page for the refusal", || {
        let pages = pages.clone();
        async move {
            pages.lock().iter().find_map(|p| {
                let s = p["alerts"][0]["annotations"]["runbook_summary"].as_str()?;
                s.contains("the most allowed").then(|| s.to_string())
            })
        }
    })
    .await;
    assert!(refused.contains("runbook pretend-fix"), "{refused}");
}

/// Appends one line to the file the `bump` command writes: the runbook's only action.
const BUMP: &str = r#"(module
  (import "vigil" "call" (func $call (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "process.restart")
  (data (i32.const 32) "{\22name\22:\22bump\22}")
  (func (export "vigil_runbook_v1") (result i32)
    (drop (call $call (i32.const 0) (i32.const 15) (i32.const 32) (i32.const 15)))
    (i32.const 0)))"#;

/// A reason given by the budget: the trip, or the open breaker.
fn by_budget(reason: &str) -> bool {
    reason.contains("blast-radius budget spent") || reason.contains("breaker tripped")
}

fn lines(p: &std::path::Path) -> usize {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .count()
}

/// A flapping alert (firing 3 s, resolved 3 s) bound to a runbook that acts: the fleet-wide
/// budget allows two actions, the third trips the breaker and escalates; while it is open every
/// run is refused its action and escalates; a runbook admin's reset lets the next run act.
#[tokio::test(flavor = "multi_thread")]
async fn a_flapping_alert_is_stopped_by_the_blast_radius_budget_and_escalates() {
    let (port, pages) = http_receiver(|_| ("200 OK", String::new())).await;
    let dir = tempfile::tempdir().unwrap();
    let actions = dir.path().join("actions.txt");
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
      - runbook: bump
        grants: [{{capability: process.restart}}]
        verify_within: 0s
        escalate_to: oncall
  - name: oncall
    webhook_configs:
      - url: 'http://127.0.0.1:{port}/page'
"#
    );
    let rules = "groups:\n  - name: g\n    interval: 1s\n    rules:\n      - alert: Flapping\n        expr: vector(time() % 6) < 3\n";
    let extra = format!(
        "  processes:\n    bump: {{command: [/bin/sh, -c, 'echo acted >> {}']}}\n  policy: {{cooldown: 0s, max_attempts: 100, blast_radius: {{max_actions: 2, window: 1h}}}}\n",
        actions.display()
    );
    let (v, _rb) = with_runbook_and(
        &am,
        rules,
        "bump",
        BUMP,
        "name: bump\nversion: 1.0.0\nabi: 1\ncapabilities: [process.restart]\n",
        &extra,
        None,
    )
    .await;
    let acted = |e: &Value| {
        e["steps"].as_array().is_some_and(|s| {
            s.iter()
                .any(|s| s["kind"] == "call" && s["detail"]["status"] == "ok")
        })
    };
    // Runs go on until two have been refused by the open breaker (the trip and one after it).
    let ex = eventually(
        Duration::from_secs(90),
        "two runs stopped by the budget",
        || {
            let v = &v;
            async move {
                let ex = executions(v).await;
                let stopped = ex
                    .iter()
                    .filter(|e| {
                        e["outcome"] == "escalated" && e["reason"].as_str().is_some_and(by_budget)
                    })
                    .count();
                (stopped >= 2).then_some(ex)
            }
        },
    )
    .await;
    assert_eq!(lines(&actions), 2, "exactly the budget was spent: {ex:#?}");
    assert_eq!(ex.iter().filter(|e| acted(e)).count(), 2, "{ex:#?}");
    let stopped: Vec<&Value> = ex
        .iter()
        .filter(|e| e["reason"].as_str().is_some_and(by_budget))
        .collect();
    let first = stopped[0]["reason"].as_str().unwrap();
    assert!(
        first.contains("blast-radius budget spent: 2 process.restart actions fleet-wide within 1h"),
        "{first}"
    );
    let later = stopped[1]["reason"].as_str().unwrap();
    assert!(
        later.contains("the process.restart breaker tripped")
            && later.contains("until an operator resets it"),
        "{later}"
    );
    eventually(Duration::from_secs(30), "the breaker's page", || {
        let pages = pages.clone();
        async move {
            pages
                .lock()
                .iter()
                .any(|p| {
                    p["alerts"][0]["annotations"]["runbook_summary"]
                        .as_str()
                        .is_some_and(|s| s.contains("blast-radius budget spent"))
                })
                .then_some(())
        }
    })
    .await;
    let open = v.get_json("/api/v1/runbooks/breakers").await;
    assert_eq!(open["data"][0]["capability"], "process.restart", "{open:#}");
    let m = v.metrics_text().await;
    assert!(
        m.lines()
            .any(|l| l == r#"vigil_runbook_breaker_open{capability="process.restart"} 1"#),
        "{m}"
    );
    // An admin (no web users here: anyone) closes the breaker; the next flap acts again.
    let reset = v.url("/api/v1/runbooks/breakers/process.restart/reset");
    let (status, body) = post_as(&reset, None, Value::Null).await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(
        post_as(&reset, None, Value::Null).await.0,
        409,
        "no longer open"
    );
    assert_eq!(
        v.get_json("/api/v1/runbooks/breakers").await["data"],
        serde_json::json!([])
    );
    eventually(Duration::from_secs(60), "an action after the reset", || {
        let actions = actions.clone();
        async move { (lines(&actions) == 3).then_some(()) }
    })
    .await;
    let m = v.metrics_text().await;
    assert!(
        m.lines()
            .any(|l| l == r#"vigil_runbook_breaker_open{capability="process.restart"} 0"#),
        "{m}"
    );
}
