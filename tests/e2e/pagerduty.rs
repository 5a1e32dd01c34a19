//! PagerDuty Events API v2: a local receiver (PagerDuty's endpoint cannot run here) validates every
//! request against the published Events v2 schema; trigger then resolve share the dedup key.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
async fn pagerduty() -> (u16, Arc<Mutex<Vec<(Value, Vec<String>)>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let g = g.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut tmp = [0u8; 8192];
                loop {
                    let Ok(n) = s.read(&mut tmp).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&tmp[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    let Some(h) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let len = text[..h]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if buf.len() < h + 4 + len {
                        continue;
                    }
                    let body: Value =
                        serde_json::from_slice(&buf[h + 4..h + 4 + len]).unwrap_or(Value::Null);
                    let problems = schema_problems(&body);
                    let (status, reply) = if problems.is_empty() {
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
                    };
                    g.lock().push((body, problems));
                    let resp = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
                        reply.len()
                    );
                    let _ = s.write_all(resp.as_bytes()).await;
                    return;
                }
            });
        }
    });
    (port, got)
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
            .find(|(e, _)| e["event_action"] == "trigger")
            .cloned()
    })
    .await;
    assert!(trigger.1.is_empty(), "schema problems: {:?}", trigger.1);
    let e = &trigger.0;
    assert_eq!(e["routing_key"], "0123456789abcdef0123456789abcdef");
    assert_eq!(e["payload"]["severity"], "critical");
    assert_eq!(e["payload"]["source"], "Vigil");
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
            .find(|(e, _)| e["event_action"] == "resolve")
            .cloned()
    })
    .await;
    assert!(resolve.1.is_empty(), "schema problems: {:?}", resolve.1);
    assert_eq!(
        resolve.0["dedup_key"], trigger.0["dedup_key"],
        "trigger and resolve share the dedup key"
    );
    assert!(
        got.lock().iter().all(|(_, p)| p.is_empty()),
        "every request valid: {:?}",
        got.lock()
    );
}
