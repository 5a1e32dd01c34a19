//! PagerDuty Events API v2: a local receiver (PagerDuty's endpoint cannot run here) validates every
//! request against the published Events v2 schema; trigger then resolve share the dedup key.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::Value;

use crate::harness::*;

/// Problems of an event under the Events API v2 schema (empty = valid).
fn schema_problems(e: &Value) -> Vec<String> {
    let mut p = Vec::new();
    let s = |v: &Value| v.as_str().map(str::to_string);
    match s(&e["routing_key"]) {
        Some(k) if !k.is_empty() => {}
        _ => p.push("routing_key missing".into()),
    }
    let action = s(&e["event_action"]).unwrap_or_default();
    if !["trigger", "acknowledge", "resolve"].contains(&action.as_str()) {
        p.push(format!("event_action {action:?}"));
    }
    match s(&e["dedup_key"]) {
        Some(k) if !k.is_empty() && k.len() <= 255 => {}
        Some(_) => p.push("dedup_key empty or over 255 characters".into()),
        None if action == "trigger" => {}
        None => p.push("dedup_key required for acknowledge/resolve".into()),
    }
    if action == "trigger" {
        let pl = &e["payload"];
        match s(&pl["summary"]) {
            Some(x) if !x.is_empty() && x.len() <= 1024 => {}
            _ => p.push("payload.summary missing or over 1024 characters".into()),
        }
        if s(&pl["source"]).is_none_or(|x| x.is_empty()) {
            p.push("payload.source missing".into());
        }
        if !["critical", "error", "warning", "info"]
            .contains(&s(&pl["severity"]).unwrap_or_default().as_str())
        {
            p.push(format!("payload.severity {:?}", pl["severity"]));
        }
        if !pl["custom_details"].is_null() && !pl["custom_details"].is_object() {
            p.push("payload.custom_details must be an object".into());
        }
    }
    p
}

/// A stand-in for events.pagerduty.com/v2/enqueue: 202 for valid events, 400 with the problems else.
async fn pagerduty() -> (u16, Arc<Mutex<Vec<Value>>>) {
    http_receiver(|body| {
        let problems = schema_problems(body);
        if problems.is_empty() {
            (
                "202 Accepted",
                format!(
                    r#"{{"status":"success","message":"Event processed","dedup_key":{}}}"#,
                    body["dedup_key"]
                ),
            )
        } else {
            (
                "400 Bad Request",
                format!(
                    r#"{{"status":"invalid event","errors":{}}}"#,
                    serde_json::json!(problems)
                ),
            )
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn pagerduty_trigger_then_resolve_with_one_dedup_key() {
    let (pd_port, got) = pagerduty().await;
    let am = format!(
        r#"
global:
  pagerduty_url: 'http://127.0.0.1:{pd_port}/v2/enqueue'
route:
  receiver: pd
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
receivers:
  - name: pd
    pagerduty_configs:
      - routing_key: 0123456789abcdef0123456789abcdef
        severity: critical
        details: {{runbook: 'https://wiki/db'}}
"#
    );
    let rules = "groups:\n  - name: g\n    interval: 1s\n    rules:\n      - alert: DbDown\n        expr: db_up == 0\n        annotations: {summary: 'primary {{ $labels.instance }} is down'}\n";
    let v = Vigil::start_with_files(
        "scrape_configs: []\nbuiltin_rules: false\nrule_files: [r.yml]\nalertmanager_config: am.yml\n",
        &[("am.yml", &am), ("r.yml", rules)],
    )
    .await;
    let push = |val: f64| {
        let url = v.url("/api/v1/write");
        async move {
            let t = (now_secs() * 1000.0) as i64;
            let (s, b) = crate::push::write_v1(
                &url,
                &[crate::push::series(
                    &[("__name__", "db_up"), ("instance", "pg-1")],
                    vec![(t, val)],
                )],
            )
            .await;
            assert_eq!(s, 204, "{b}");
        }
    };
    push(0.0).await;
    let trigger = eventually(Duration::from_secs(30), "the trigger event", || async {
        got.lock()
            .iter()
            .find(|e| e["event_action"] == "trigger")
            .cloned()
    })
    .await;
    assert!(
        schema_problems(&trigger).is_empty(),
        "schema problems: {:?}",
        schema_problems(&trigger)
    );
    let e = &trigger;
    assert_eq!(e["routing_key"], "0123456789abcdef0123456789abcdef");
    assert_eq!(e["payload"]["severity"], "critical");
    assert_eq!(
        e["payload"]["source"], "Alertmanager",
        "Alertmanager's default client and source"
    );
    assert!(
        e["payload"]["summary"]
            .as_str()
            .unwrap()
            .starts_with("[FIRING:1] DbDown"),
        "{e}"
    );
    assert!(
        e["payload"]["custom_details"]["firing"]
            .as_str()
            .unwrap()
            .contains("primary pg-1 is down"),
        "{e}"
    );
    assert_eq!(e["payload"]["custom_details"]["runbook"], "https://wiki/db");

    tokio::time::sleep(Duration::from_millis(1100)).await;
    push(1.0).await;
    let resolve = eventually(Duration::from_secs(30), "the resolve event", || async {
        got.lock()
            .iter()
            .find(|e| e["event_action"] == "resolve")
            .cloned()
    })
    .await;
    assert!(
        schema_problems(&resolve).is_empty(),
        "schema problems: {:?}",
        schema_problems(&resolve)
    );
    assert_eq!(
        resolve["dedup_key"], trigger["dedup_key"],
        "trigger and resolve share the dedup key"
    );
    assert!(
        got.lock().iter().all(|e| schema_problems(e).is_empty()),
        "every request valid: {:?}",
        got.lock()
    );
}
