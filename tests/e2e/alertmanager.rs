//! Vigil as an Alertmanager: a real Prometheus 2.42 sends it alerts, which are routed to a webhook;
//! amtool creates, queries and expires silences and posts and queries alerts.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::Value;

use crate::harness::*;

/// A webhook receiver: records every JSON body POSTed to it, answers 200.
async fn webhook() -> (u16, Arc<Mutex<Vec<Value>>>) {
    http_receiver(|_| ("200 OK", String::new())).await
}

const AM: &str = r#"
route:
  receiver: default
  group_by: [alertname]
  group_wait: 1s
  group_interval: 2s
  routes:
    - matchers: ['severity="page"']
      receiver: hook
receivers:
  - name: default
  - name: hook
    webhook_configs:
      - url: http://127.0.0.1:HOOK_PORT/alerts
"#;

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_sends_alerts_to_vigil_and_they_are_routed() {
    let Some(prom_bin) = tool("prometheus") else {
        return;
    };
    let (hook_port, got) = webhook().await;
    let am = AM.replace("HOOK_PORT", &hook_port.to_string());
    let v = Vigil::start_with_files(
        "scrape_configs: []\nalertmanager_config: am.yml\n",
        &[("am.yml", &am)],
    )
    .await;

    let rules_dir = tempfile::tempdir().unwrap();
    std::fs::write(
        rules_dir.path().join("r.yml"),
        "groups:\n  - name: p\n    interval: 1s\n    rules:\n      - alert: FromPrometheus\n        expr: vector(1)\n        labels: {severity: page}\n        annotations: {summary: 'sent by Prometheus'}\n",
    )
    .unwrap();
    let cfg = format!(
        "global:\n  evaluation_interval: 1s\nrule_files: ['{}/r.yml']\nalerting:\n  alertmanagers:\n    - api_version: v2\n      static_configs: [{{targets: ['{}']}}]\n",
        rules_dir.path().display(),
        v.addr()
    );
    // Prometheus drops the very first send while its Alertmanager discovery starts and then resends
    // every resend delay (1m by default): 1s keeps the test short.
    let _prom = Prometheus::start(&prom_bin, &cfg, &["--rules.alert.resend-delay=1s"]).await;

    let body = eventually(
        Duration::from_secs(60),
        "the webhook to receive Prometheus's alert",
        || async {
            got.lock()
                .iter()
                .find(|b| b["alerts"][0]["labels"]["alertname"] == "FromPrometheus")
                .cloned()
        },
    )
    .await;
    assert_eq!(body["version"], "4");
    assert_eq!(body["receiver"], "hook");
    assert_eq!(body["status"], "firing");
    assert_eq!(body["groupLabels"]["alertname"], "FromPrometheus");
    assert_eq!(body["commonAnnotations"]["summary"], "sent by Prometheus");
    assert!(
        body["alerts"][0]["generatorURL"]
            .as_str()
            .unwrap()
            .contains("/graph"),
        "{body}"
    );
    // The v2 API lists it with its receiver.
    let alerts = get_json(&v.url("/api/v2/alerts")).await;
    let a = alerts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["labels"]["alertname"] == "FromPrometheus")
        .unwrap();
    assert_eq!(a["receivers"][0]["name"], "hook");
    assert_eq!(a["status"]["state"], "active");
}

#[tokio::test(flavor = "multi_thread")]
async fn amtool_manages_silences_and_alerts() {
    let Some(amtool) = tool("amtool") else { return };
    let v = Vigil::start("scrape_configs: []\n").await;
    let url = format!("--alertmanager.url=http://{}", v.addr());
    let run = |args: &[&str]| {
        let out = Command::new(&amtool).arg(&url).args(args).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "amtool {args:?}: {text}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    // Alerts in and out.
    run(&[
        "alert",
        "add",
        "alertname=Disk",
        "instance=db-1",
        "severity=warning",
        "--annotation=summary=full",
    ]);
    let q = run(&["alert", "query", "-o", "json"]);
    let alerts: Value = serde_json::from_str(&q).unwrap();
    assert_eq!(alerts[0]["labels"]["alertname"], "Disk", "{q}");
    // A silence mutes it.
    let id = run(&[
        "silence",
        "add",
        "alertname=Disk",
        "instance=~db-.*",
        "--comment=maintenance",
        "--author=ops",
        "--duration=1h",
    ]);
    assert_eq!(id.len(), 36, "{id}");
    let q: Value = serde_json::from_str(&run(&["silence", "query", "-o", "json"])).unwrap();
    assert_eq!(q[0]["id"], id.as_str());
    assert_eq!(q[0]["status"]["state"], "active");
    assert_eq!(q[0]["createdBy"], "ops");
    let a: Value =
        serde_json::from_str(&run(&["alert", "query", "-o", "json", "--silenced"])).unwrap();
    assert_eq!(a[0]["status"]["state"], "suppressed", "{a}");
    assert_eq!(a[0]["status"]["silencedBy"][0], id.as_str());
    let q = run(&["silence", "query", "alertname=Disk", "-q"]);
    assert_eq!(q, id);
    // Expire: it stops muting and shows as expired.
    run(&["silence", "expire", &id]);
    let q: Value =
        serde_json::from_str(&run(&["silence", "query", "--expired", "-o", "json"])).unwrap();
    assert_eq!(q[0]["status"]["state"], "expired", "{q}");
    let a: Value = serde_json::from_str(&run(&["alert", "query", "-o", "json"])).unwrap();
    assert_eq!(a[0]["status"]["state"], "active", "{a}");
    // Status and receivers as amtool reads them.
    let s = run(&["config", "show"]);
    assert!(s.contains("receiver: default"), "{s}");
    // Grafana's Alertmanager data source wants /alertmanager/api/v2/status to be a 404.
    let r = client()
        .get(v.url("/alertmanager/api/v2/status"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn vigil_rules_are_routed_to_the_webhook_and_resolve() {
    let (hook_port, got) = webhook().await;
    let am = AM.replace("HOOK_PORT", &hook_port.to_string());
    let rules = "groups:\n  - name: own\n    interval: 1s\n    rules:\n      - alert: FromVigil\n        expr: flag > 0\n        labels: {severity: page}\n        annotations: {summary: 'flag is {{ $value }}'}\n";
    let v = Vigil::start_with_files(
        "scrape_configs: []\nbuiltin_rules: false\nrule_files: [r.yml]\nalertmanager_config: am.yml\n",
        &[("am.yml", &am), ("r.yml", rules)],
    )
    .await;
    let push = |value: f64| {
        let url = v.url("/api/v1/write");
        async move {
            let t = (now_secs() * 1000.0) as i64;
            let (s, b) = crate::push::write_v1(
                &url,
                &[crate::push::series(
                    &[("__name__", "flag"), ("job", "x")],
                    vec![(t, value)],
                )],
            )
            .await;
            assert_eq!(s, 204, "{b}");
        }
    };
    push(1.0).await;
    let body = eventually(
        Duration::from_secs(30),
        "FromVigil at the webhook",
        || async {
            got.lock()
                .iter()
                .find(|b| {
                    b["alerts"][0]["labels"]["alertname"] == "FromVigil" && b["status"] == "firing"
                })
                .cloned()
        },
    )
    .await;
    assert_eq!(body["alerts"][0]["annotations"]["summary"], "flag is 1");
    assert_eq!(body["alerts"][0]["labels"]["job"], "x");
    // The condition ends: the webhook (send_resolved defaults to true) hears that it resolved.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    push(0.0).await;
    eventually(
        Duration::from_secs(30),
        "the resolved notification",
        || async {
            got.lock()
                .iter()
                .any(|b| {
                    b["alerts"][0]["labels"]["alertname"] == "FromVigil"
                        && b["status"] == "resolved"
                })
                .then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_while_firing_sends_no_duplicate_page() {
    let (hook_port, got) = webhook().await;
    let am = AM.replace("HOOK_PORT", &hook_port.to_string()).replace(
        "group_interval: 2s",
        "group_interval: 1s\n  repeat_interval: 1h",
    );
    let rules = "groups:\n  - name: own\n    interval: 1s\n    rules:\n      - alert: StillBroken\n        expr: broken > 0\n        for: 2s\n        labels: {severity: page}\n";
    let mut v = Vigil::start_with_files(
        "scrape_configs: []\nbuiltin_rules: false\nrule_files: [r.yml]\nalertmanager_config: am.yml\n",
        &[("am.yml", &am), ("r.yml", rules)],
    )
    .await;
    let t = (now_secs() * 1000.0) as i64;
    let (s, b) = crate::push::write_v1(
        &v.url("/api/v1/write"),
        &[crate::push::series(
            &[("__name__", "broken"), ("job", "x")],
            vec![(t, 1.0)],
        )],
    )
    .await;
    assert_eq!(s, 204, "{b}");
    let pages = |got: &Arc<Mutex<Vec<Value>>>| {
        got.lock()
            .iter()
            .filter(|b| {
                b["alerts"][0]["labels"]["alertname"] == "StillBroken" && b["status"] == "firing"
            })
            .count()
    };
    eventually(Duration::from_secs(30), "the first page", || async {
        (pages(&got) == 1).then_some(())
    })
    .await;
    // The notification log is written (fsynced) right after the webhook answers: a kill -9 between
    // the two is the at-least-once window every notifier has (Alertmanager itself snapshots its log
    // only every 15 minutes). The test kills after the write, which is what it is about.
    let nflog = v.data_dir().join("alerting/nflog.json");
    eventually(
        Duration::from_secs(30),
        "the notification log on disk",
        || {
            let nflog = nflog.clone();
            async move {
                std::fs::read_to_string(&nflog)
                    .ok()
                    .filter(|t| t.contains("StillBroken"))
                    .map(|_| ())
            }
        },
    )
    .await;

    // kill -9 while the alert fires; after the restart it is firing again at once (its activeAt is
    // restored) and its group is flushed, but the notification log says it was already sent.
    v.kill9();
    v.launch().await;
    eventually(
        Duration::from_secs(30),
        "the alert to fire again after the restart",
        || async {
            let a = get_json(&v.url("/api/v1/alerts")).await;
            a["data"]["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["state"] == "firing")
                .then_some(())
        },
    )
    .await;
    eventually(
        Duration::from_secs(30),
        "three group flushes after the restart",
        || async {
            (v.self_metric("vigil_alert_group_flushes_total")
                .await
                .unwrap_or(0.0)
                >= 3.0)
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        pages(&got),
        1,
        "a duplicate page after the restart: {:?}",
        got.lock()
    );
}

/// `/api/v2/alerts/groups` answers as a real Alertmanager 0.25 does: the same groups, receivers
/// and alerts (as `gettableAlert`s with their status), the silenced one suppressed, and the same
/// filtering by `silenced`, `active` and matchers.
#[tokio::test(flavor = "multi_thread")]
async fn alert_groups_answer_as_alertmanager_does() {
    let Some(bin) = crate::peers::alertmanager_bin() else {
        return;
    };
    let config = "route:\n  receiver: default\n  group_by: [alertname]\n  group_wait: 1h\n  routes:\n    - matchers: ['severity=\"page\"']\n      receiver: pager\nreceivers:\n  - name: default\n  - name: pager\n";
    let am = crate::peers::Alertmanager::start(&bin, config, &[]).await;
    let v = Vigil::start_with_files(
        "scrape_configs: []\nalertmanager_config: am.yml\n",
        &[("am.yml", config)],
    )
    .await;
    let now = a_second_ago();
    let alerts = serde_json::json!([
        {"labels": {"alertname": "Disk", "instance": "db-1", "severity": "page"}, "annotations": {"summary": "full"}, "startsAt": now},
        {"labels": {"alertname": "Disk", "instance": "db-2", "severity": "page"}, "startsAt": now},
        {"labels": {"alertname": "Cpu", "instance": "web-1"}, "startsAt": now}
    ]);
    let silence = serde_json::json!({"matchers": [{"name": "instance", "value": "db-2", "isRegex": false, "isEqual": true}],
        "startsAt": now, "endsAt": "2099-01-01T00:00:00Z", "createdBy": "t", "comment": "c"});
    for base in [am.url(""), v.url("")] {
        let c = client();
        let r = c
            .post(format!("{base}/api/v2/alerts"))
            .json(&alerts)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{base}: {}", r.status());
        let r = c
            .post(format!("{base}/api/v2/silences"))
            .json(&silence)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{base}: {}", r.status());
    }
    /// What must agree: groups by their labels, each with its receiver and its alerts (labels,
    /// annotations, receivers, state, how many silences and inhibitions), and the keys an alert has.
    fn shape(groups: &Value) -> Value {
        let mut out: Vec<Value> = groups
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                let mut alerts: Vec<Value> = g["alerts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| {
                        let mut keys: Vec<&String> = a.as_object().unwrap().keys().collect();
                        keys.sort();
                        serde_json::json!({
                            "keys": keys,
                            "labels": a["labels"], "annotations": a["annotations"],
                            "receivers": a["receivers"], "state": a["status"]["state"],
                            "silenced": a["status"]["silencedBy"].as_array().unwrap().len(),
                            "inhibited": a["status"]["inhibitedBy"].as_array().unwrap().len(),
                        })
                    })
                    .collect();
                alerts.sort_by_key(|a| a["labels"].to_string());
                serde_json::json!({"labels": g["labels"], "receiver": g["receiver"], "alerts": alerts})
            })
            .collect();
        out.sort_by_key(|g| g["labels"].to_string());
        Value::Array(out)
    }
    for q in [
        "",
        "?silenced=false",
        "?active=false",
        "?filter=instance%3D%22db-1%22",
    ] {
        let (theirs, ours) = (
            get_json(&am.url(&format!("/api/v2/alerts/groups{q}"))).await,
            get_json(&v.url(&format!("/api/v2/alerts/groups{q}"))).await,
        );
        assert_eq!(
            shape(&ours),
            shape(&theirs),
            "{q}\nvigil: {ours:#}\nalertmanager: {theirs:#}"
        );
    }
}

/// Now as RFC 3339, a second ago (both systems take it as already started).
fn a_second_ago() -> String {
    vigil_model::rfc3339_ms(vigil_model::now_ms() - 1000)
}
