//! Delivery semantics, Vigil against a real Alertmanager 0.25: both load the same alertmanager.yml
//! and the same `--web.external-url`, get the same alerts through `POST /api/v2/alerts`, and notify
//! the same HTTPS endpoints (a recorder with a private CA, named in `http_config.tls_config`). The
//! recorder tells the two apart by User-Agent. Each scenario asserts that both sent the same
//! notifications, byte for byte, and what those are.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::*;
use crate::peers::*;

const EXTERNAL: &str = "http://alerts.example";
const AM_AGENT: &str = "Alertmanager/";
const VIGIL_AGENT: &str = "Vigil/";

/// An Alertmanager and a Vigil with the same configuration, and the recorder they notify.
struct Pair {
    am: Alertmanager,
    vigil: Vigil,
    rec: Recorder,
    _ca: TestCa,
}

/// `config` may use `{R}` (the recorder's base URL) and `{CA}` (the CA file).
async fn pair(config: &str) -> Option<Pair> {
    let bin = alertmanager_bin()?;
    let ca = TestCa::new();
    let rec = Recorder::start(Some(&ca)).await;
    let text = config
        .replace("{R}", &rec.url)
        .replace("{CA}", &ca.ca().display().to_string());
    let am = Alertmanager::start(&bin, &text, &[&format!("--web.external-url={EXTERNAL}")]).await;
    let vigil = Vigil::start_with_args(
        "scrape_configs: []\nbuiltin_rules: false\nalertmanager_config: am.yml\n",
        &[("am.yml", &text)],
        &["--web.external-url", EXTERNAL],
    )
    .await;
    Some(Pair {
        am,
        vigil,
        rec,
        _ca: ca,
    })
}

fn rfc3339(secs: f64) -> String {
    let ms = (secs * 1000.0) as u64;
    let d = std::time::Duration::from_millis(ms);
    // Through Vigil's own formatter would be circular; Go parses any RFC 3339 with a fraction.
    let t = std::time::UNIX_EPOCH + d;
    let dt: chrono_like::DateTime = t.into();
    dt.to_string()
}

/// Just enough calendar arithmetic for RFC 3339 timestamps in UTC.
mod chrono_like {
    pub struct DateTime(i64, u32);
    impl From<std::time::SystemTime> for DateTime {
        fn from(t: std::time::SystemTime) -> Self {
            let d = t.duration_since(std::time::UNIX_EPOCH).unwrap();
            DateTime(d.as_secs() as i64, d.subsec_millis())
        }
    }
    impl std::fmt::Display for DateTime {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            let days = self.0.div_euclid(86400);
            let rem = self.0.rem_euclid(86400);
            // Civil from days (Howard Hinnant's algorithm).
            let z = days + 719468;
            let era = z.div_euclid(146097);
            let doe = z - era * 146097;
            let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
            let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
            let mp = (5 * doy + 2) / 153;
            let d = doy - (153 * mp + 2) / 5 + 1;
            let m = if mp < 10 { mp + 3 } else { mp - 9 };
            let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
            write!(
                f,
                "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
                rem / 3600,
                rem / 60 % 60,
                rem % 60,
                self.1
            )
        }
    }
}

/// One alert for `POST /api/v2/alerts`.
fn alert(labels: &[(&str, &str)], annotations: &[(&str, &str)], starts: f64, ends: f64) -> Value {
    let m = |kv: &[(&str, &str)]| {
        Value::Object(
            kv.iter()
                .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
                .collect(),
        )
    };
    json!({
        "labels": m(labels),
        "annotations": m(annotations),
        "startsAt": rfc3339(starts),
        "endsAt": rfc3339(ends),
        "generatorURL": "http://prometheus.example/graph?g0.expr=up&g0.tab=1",
    })
}

impl Pair {
    /// Posts the same alerts to both.
    async fn post(&self, alerts: &[Value]) {
        for url in [
            self.am.url("/api/v2/alerts"),
            self.vigil.url("/api/v2/alerts"),
        ] {
            let r = client().post(&url).json(&alerts).send().await.unwrap();
            assert!(r.status().is_success(), "POST {url}: {}", r.status());
        }
    }

    /// Creates the same silence on both.
    async fn silence(&self, name: &str, value: &str) {
        let now = now_secs();
        let body = json!({
            "matchers": [{"name": name, "value": value, "isRegex": false, "isEqual": true}],
            "startsAt": rfc3339(now - 1.0),
            "endsAt": rfc3339(now + 3600.0),
            "createdBy": "test",
            "comment": "delivery suite",
        });
        for url in [
            self.am.url("/api/v2/silences"),
            self.vigil.url("/api/v2/silences"),
        ] {
            let r = client().post(&url).json(&body).send().await.unwrap();
            assert!(r.status().is_success(), "POST {url}: {}", r.status());
        }
    }

    /// Waits until each system delivered `n` requests under `prefix`; answers (Alertmanager's,
    /// Vigil's).
    async fn delivered(&self, prefix: &str, n: usize) -> (Vec<Recorded>, Vec<Recorded>) {
        eventually(
            Duration::from_secs(60),
            &format!("{n} deliveries under {prefix} from both"),
            || async {
                let a = self.rec.delivered(AM_AGENT, prefix);
                let v = self.rec.delivered(VIGIL_AGENT, prefix);
                (a.len() >= n && v.len() >= n).then_some((a, v))
            },
        )
        .await
    }

    /// Lets `secs` pass (several group intervals), then answers what each delivered under `prefix`.
    async fn settle(&self, prefix: &str, secs: u64) -> (Vec<Recorded>, Vec<Recorded>) {
        tokio::time::sleep(Duration::from_secs(secs)).await;
        (
            self.rec.delivered(AM_AGENT, prefix),
            self.rec.delivered(VIGIL_AGENT, prefix),
        )
    }
}

/// The two systems sent the same bodies, in order.
fn same(am: &[Recorded], vigil: &[Recorded]) {
    assert_eq!(
        am.len(),
        vigil.len(),
        "number of notifications: Alertmanager {:#?}\nVigil {:#?}",
        am.iter().map(|r| r.json()).collect::<Vec<_>>(),
        vigil.iter().map(|r| r.json()).collect::<Vec<_>>()
    );
    for (a, v) in am.iter().zip(vigil) {
        assert_eq!(a.path, v.path, "request paths");
        assert_eq!(a.method, v.method, "request methods");
        assert_eq!(
            String::from_utf8_lossy(&a.body),
            String::from_utf8_lossy(&v.body),
            "bodies differ (left Alertmanager, right Vigil)"
        );
    }
}

const ROUTE: &str =
    "  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 2s\n  repeat_interval: 1h\n";

#[tokio::test(flavor = "multi_thread")]
async fn pagerduty_over_https_with_a_private_ca() {
    let Some(p) = pair(&format!(
        "route:\n  receiver: pd\n{ROUTE}receivers:\n  - name: pd\n    pagerduty_configs:\n      - routing_key: 0123456789abcdef0123456789abcdef\n        url: '{{R}}/v2/enqueue'\n        severity: critical\n        http_config:\n          tls_config:\n            ca_file: '{{CA}}'\n"
    ))
    .await
    else {
        return;
    };
    let t0 = now_secs() - 1.0;
    let labels = [
        ("alertname", "DbDown"),
        ("instance", "pg-1"),
        ("severity", "page"),
    ];
    let ann = [("summary", "primary pg-1 is down")];
    p.post(&[alert(&labels, &ann, t0, t0 + 3600.0)]).await;
    let (am, v) = p.delivered("/v2/enqueue", 1).await;
    same(&am[..1], &v[..1]);
    let trigger = v[0].json();
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(trigger["payload"]["severity"], "critical");
    assert_eq!(trigger["dedup_key"].as_str().unwrap().len(), 64);

    let t1 = now_secs();
    p.post(&[alert(&labels, &ann, t0, t1)]).await;
    let (am, v) = p.delivered("/v2/enqueue", 2).await;
    same(&am, &v);
    assert_eq!(v[1].json()["event_action"], "resolve");
    assert_eq!(v[1].json()["dedup_key"], trigger["dedup_key"]);
    let (am, v) = p.settle("/v2/enqueue", 6).await;
    same(&am, &v);
    assert_eq!(v.len(), 2, "nothing after the resolve");
}

#[tokio::test(flavor = "multi_thread")]
async fn silence_after_a_page_sends_nothing() {
    let Some(p) = pair(&format!(
        "route:\n  receiver: hook\n{ROUTE}receivers:\n  - name: hook\n    webhook_configs:\n      - url: '{{R}}/hook'\n        http_config: {{tls_config: {{ca_file: '{{CA}}'}}}}\n"
    ))
    .await
    else {
        return;
    };
    let t0 = now_secs() - 1.0;
    let labels = [("alertname", "DiskFull"), ("instance", "db-1")];
    p.post(&[alert(&labels, &[], t0, t0 + 3600.0)]).await;
    let (am, v) = p.delivered("/hook", 1).await;
    same(&am, &v);
    assert_eq!(v[0].json()["status"], "firing");

    p.silence("alertname", "DiskFull").await;
    let (am, v) = p.settle("/hook", 6).await;
    same(&am, &v);
    // Resolved while silenced: still nothing (no empty or "resolved" notification).
    p.post(&[alert(&labels, &[], t0, now_secs())]).await;
    let (am, v) = p.settle("/hook", 8).await;
    same(&am, &v);
    assert_eq!(v.len(), 1, "only the first page");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resolve_survives_an_80s_receiver_outage() {
    let Some(p) = pair(&format!(
        "route:\n  receiver: hook\n{ROUTE}receivers:\n  - name: hook\n    webhook_configs:\n      - url: '{{R}}/hook'\n        http_config: {{tls_config: {{ca_file: '{{CA}}'}}}}\n"
    ))
    .await
    else {
        return;
    };
    let t0 = now_secs() - 1.0;
    let labels = [("alertname", "ApiDown"), ("instance", "api-1")];
    p.post(&[alert(
        &labels,
        &[("summary", "api-1 is down")],
        t0,
        t0 + 3600.0,
    )])
    .await;
    let (am, v) = p.delivered("/hook", 1).await;
    same(&am, &v);

    p.rec.set_down("/hook", true);
    p.post(&[alert(
        &labels,
        &[("summary", "api-1 is down")],
        t0,
        now_secs(),
    )])
    .await;
    tokio::time::sleep(Duration::from_secs(80)).await;
    assert!(
        p.rec.attempts(VIGIL_AGENT, "/hook") > 2 && p.rec.attempts(AM_AGENT, "/hook") > 2,
        "both kept retrying during the outage"
    );
    p.rec.set_down("/hook", false);
    let (am, v) = p.delivered("/hook", 2).await;
    let (am, v) = (am[..2].to_vec(), v[..2].to_vec());
    same(&am, &v);
    assert_eq!(v[1].json()["status"], "resolved", "the resolve arrived");
    let (am, v) = p.settle("/hook", 6).await;
    same(&am, &v);
    assert_eq!(v.len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_integration_does_not_repeat_the_other() {
    let Some(p) = pair(&format!(
        "route:\n  receiver: two\n{ROUTE}receivers:\n  - name: two\n    webhook_configs:\n      - url: '{{R}}/a'\n        http_config: {{tls_config: {{ca_file: '{{CA}}'}}}}\n      - url: '{{R}}/b'\n        http_config: {{tls_config: {{ca_file: '{{CA}}'}}}}\n"
    ))
    .await
    else {
        return;
    };
    p.rec.set_down("/b", true);
    let t0 = now_secs() - 1.0;
    p.post(&[alert(
        &[("alertname", "Flaky"), ("instance", "x")],
        &[],
        t0,
        t0 + 3600.0,
    )])
    .await;
    let (am, v) = p.delivered("/a", 1).await;
    same(&am, &v);
    eventually(Duration::from_secs(30), "retries of /b", || async {
        (p.rec.attempts(AM_AGENT, "/b") > 1 && p.rec.attempts(VIGIL_AGENT, "/b") > 1).then_some(())
    })
    .await;
    // Several flushes retry /b; /a was told once.
    tokio::time::sleep(Duration::from_secs(6)).await;
    p.rec.set_down("/b", false);
    let (am_b, v_b) = p.delivered("/b", 1).await;
    same(&am_b[..1], &v_b[..1]);
    let (am, v) = p.settle("/a", 6).await;
    same(&am, &v);
    assert_eq!(v.len(), 1, "no repeat to the integration that succeeded");
    let (am_b, v_b) = p.settle("/b", 0).await;
    same(&am_b, &v_b);
    assert_eq!(v_b.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn inhibition_after_a_page_sends_nothing() {
    let Some(p) = pair("route:\n  receiver: hook\n  group_by: [alertname, severity]\n  group_wait: 1s\n  group_interval: 2s\n  repeat_interval: 1h\ninhibit_rules:\n  - source_matchers: ['severity=\"critical\"']\n    target_matchers: ['severity=\"warning\"']\n    equal: [cluster]\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: '{R}/hook'\n        http_config: {tls_config: {ca_file: '{CA}'}}\n")
    .await
    else {
        return;
    };
    let t0 = now_secs() - 1.0;
    let warn = [
        ("alertname", "Latency"),
        ("severity", "warning"),
        ("cluster", "eu"),
    ];
    p.post(&[alert(&warn, &[], t0, t0 + 3600.0)]).await;
    let (am, v) = p.delivered("/hook", 1).await;
    same(&am, &v);
    let crit = [
        ("alertname", "ClusterDown"),
        ("severity", "critical"),
        ("cluster", "eu"),
    ];
    p.post(&[alert(&crit, &[], now_secs() - 1.0, t0 + 3600.0)])
        .await;
    let (am, v) = p.delivered("/hook", 2).await;
    same(&am, &v);
    assert_eq!(v[1].json()["groupLabels"]["alertname"], "ClusterDown");
    // While the critical fires, a new warning in its cluster is never sent; one in another cluster
    // (the `equal` label differs) is.
    let muted = [
        ("alertname", "DiskSlow"),
        ("severity", "warning"),
        ("cluster", "eu"),
    ];
    let other = [
        ("alertname", "QueueFull"),
        ("severity", "warning"),
        ("cluster", "us"),
    ];
    p.post(&[alert(&muted, &[], now_secs() - 1.0, t0 + 3600.0)])
        .await;
    p.post(&[alert(&other, &[], now_secs() - 1.0, t0 + 3600.0)])
        .await;
    let (am, v) = p.delivered("/hook", 3).await;
    same(&am, &v);
    assert_eq!(v[2].json()["groupLabels"]["alertname"], "QueueFull");
    assert_eq!(v[2].json()["alerts"][0]["labels"]["cluster"], "us");
    // The warning resolves while inhibited: nothing more for it.
    p.post(&[alert(&warn, &[], t0, now_secs())]).await;
    let (am, v) = p.settle("/hook", 8).await;
    same(&am, &v);
    assert_eq!(v.len(), 3, "the inhibited groups stay quiet");
    assert!(
        v.iter()
            .all(|r| r.json()["groupLabels"]["alertname"] != "DiskSlow"),
        "an alert inhibited from the start was sent"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn slack_and_opsgenie_payloads_match_alertmanagers() {
    let Some(p) = pair(&format!(
        r#"global:
  slack_api_url: '{{R}}/slack/T000/B000/XXXX'
  opsgenie_api_url: '{{R}}/og/'
  opsgenie_api_key: key-123
  http_config:
    tls_config:
      ca_file: '{{CA}}'
route:
  receiver: chat
{ROUTE}receivers:
  - name: chat
    slack_configs:
      - channel: '#alerts'
        send_resolved: true
        fields:
          - title: Instances
            value: '{{{{ range .Alerts }}}}{{{{ .Labels.instance }}}} {{{{ end }}}}'
        actions:
          - type: button
            text: Runbook
            url: '{{{{ .CommonAnnotations.runbook }}}}'
    opsgenie_configs:
      - responders: [{{name: ops, type: team}}]
        tags: 'db,prod'
        priority: P1
        details: {{team: dba}}
"#
    ))
    .await
    else {
        return;
    };
    // Started now, not a second ago: Alertmanager flushes a new group at once when its first alert
    // is older than group_wait, and it takes the alerts of one POST one by one, so an older start
    // races the second alert into a later notification.
    let t0 = now_secs();
    let ann = [
        ("summary", "replication lag <high> & growing"),
        ("runbook", "https://wiki.example/lag?x=1&y=2"),
    ];
    let a1 = [
        ("alertname", "ReplicaLag"),
        ("instance", "pg-2"),
        ("job", "pg"),
    ];
    let a2 = [
        ("alertname", "ReplicaLag"),
        ("instance", "pg-3"),
        ("job", "pg"),
    ];
    p.post(&[
        alert(&a1, &ann, t0, t0 + 3600.0),
        alert(&a2, &ann, t0, t0 + 3600.0),
    ])
    .await;
    let (am, v) = p.delivered("/slack/", 1).await;
    same(&am, &v);
    let slack = v[0].json();
    assert_eq!(slack["channel"], "#alerts");
    assert_eq!(slack["attachments"][0]["color"], "danger");
    let (am, v) = p.delivered("/og/", 1).await;
    same(&am, &v);
    assert_eq!(v[0].path, "/og/v2/alerts");
    for r in [&am[0], &v[0]] {
        assert_eq!(r.headers["authorization"], "GenieKey key-123");
    }
    assert_eq!(v[0].json()["priority"], "P1");

    let t1 = now_secs();
    p.post(&[alert(&a1, &ann, t0, t1), alert(&a2, &ann, t0, t1)])
        .await;
    let (am, v) = p.delivered("/slack/", 2).await;
    same(&am, &v);
    assert_eq!(v[1].json()["attachments"][0]["color"], "good");
    let (am, v) = p.delivered("/og/", 2).await;
    same(&am, &v);
    assert!(
        v[1].path.ends_with("/close?identifierType=alias"),
        "{}",
        v[1].path
    );
}
