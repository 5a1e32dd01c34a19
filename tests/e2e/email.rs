//! Email through a real SMTP server (aiosmtpd): the message has the expected subject, recipients and
//! annotations; with the server down for a while, it arrives once the server is back, exactly once.

use std::process::Command;
use std::time::Duration;

use crate::harness::*;

fn have_aiosmtpd(py: &std::path::Path) -> bool {
    let ok = Command::new(py)
        .args(["-c", "import aiosmtpd"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok && in_ci() {
        panic!("aiosmtpd is not installed; ./scripts/test installs it (pip install aiosmtpd)");
    }
    if !ok {
        eprintln!("SKIPPED: aiosmtpd is not installed");
    }
    ok
}

fn messages(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn email_arrives_once_after_an_smtp_outage() {
    let Some(py) = tool("python3") else { return };
    if !have_aiosmtpd(&py) {
        return;
    }
    let smtp_port = free_port();
    let am = format!(
        r#"
global:
  smtp_from: 'vigil@example.org'
  smtp_require_tls: false
route:
  receiver: mail
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: mail
    email_configs:
      - to: 'oncall@example.org, dba@example.org'
        smarthost: '127.0.0.1:{smtp_port}'
"#
    );
    let rules = "groups:\n  - name: g\n    interval: 1s\n    rules:\n      - alert: DiskFull\n        expr: disk_used > 90\n        labels: {severity: page}\n        annotations: {summary: '{{ $labels.mount }} is {{ $value }}% full'}\n";
    let v = Vigil::start_with_files(
        "scrape_configs: []\nbuiltin_rules: false\nrule_files: [r.yml]\nalertmanager_config: am.yml\n",
        &[("am.yml", &am), ("r.yml", rules)],
    )
    .await;
    let t = (now_secs() * 1000.0) as i64;
    let (s, b) = crate::push::write_v1(
        &v.url("/api/v1/write"),
        &[crate::push::series(
            &[("__name__", "disk_used"), ("mount", "/var")],
            vec![(t, 95.0)],
        )],
    )
    .await;
    assert_eq!(s, 204, "{b}");

    // The SMTP server is down: delivery fails and is retried.
    eventually(Duration::from_secs(30), "a failed SMTP attempt", || async {
        v.log()
            .contains("notification attempt failed; will retry")
            .then_some(())
    })
    .await;

    // The server comes back: the message arrives, once.
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("mail.jsonl");
    let mut cmd = Command::new(&py);
    cmd.arg(fixtures_dir().parent().unwrap().join("smtp/smtp-sink"))
        .arg(smtp_port.to_string())
        .arg(&out);
    let _smtp = Proc::spawn("smtp-sink", &mut cmd, &tmp.path().join("smtp.log"));
    let m = eventually(Duration::from_secs(60), "the email", || async {
        messages(&out).first().cloned()
    })
    .await;
    assert_eq!(m["from"], "vigil@example.org");
    assert_eq!(
        m["to"],
        serde_json::json!(["oncall@example.org", "dba@example.org"])
    );
    let data = m["data"].as_str().unwrap();
    assert!(
        data.contains("Subject: [FIRING:1] DiskFull (/var page)"),
        "{data}"
    );
    assert!(data.contains("/var is 95% full"), "{data}");
    assert!(data.contains("text/html"), "HTML part: {data}");
    // Several more group flushes pass: still exactly one message.
    let flushes = v
        .self_metric("vigil_alert_group_flushes_total")
        .await
        .unwrap_or(0.0);
    eventually(Duration::from_secs(30), "more group flushes", || async {
        (v.self_metric("vigil_alert_group_flushes_total")
            .await
            .unwrap_or(0.0)
            >= flushes + 3.0)
            .then_some(())
    })
    .await;
    assert_eq!(
        messages(&out).len(),
        1,
        "duplicate emails: {:?}",
        messages(&out)
    );
    let metrics = v.metrics_text().await;
    assert!(
        metrics.contains("vigil_notifications_total{receiver=\"mail\",integration=\"email\"} 1"),
        "{metrics}"
    );
}
