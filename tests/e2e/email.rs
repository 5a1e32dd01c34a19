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
    let smtp_port = reserved_port();
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

/// The SMTP sink with extra flags, on `port`; waits until it says it is ready.
async fn sink(
    py: &std::path::Path,
    port: u16,
    out: &std::path::Path,
    flags: &[&str],
    dir: &std::path::Path,
    name: &str,
) -> Proc {
    let mut cmd = Command::new(py);
    cmd.arg(fixtures_dir().parent().unwrap().join("smtp/smtp-sink"))
        .arg(port.to_string())
        .arg(out)
        .args(flags);
    let p = Proc::spawn(name, &mut cmd, &dir.join(format!("{name}.log")));
    eventually(
        Duration::from_secs(20),
        &format!("{name} to start"),
        || async {
            std::fs::read_to_string(dir.join(format!("{name}.log")))
                .unwrap_or_default()
                .contains("ready")
                .then_some(())
        },
    )
    .await;
    p
}

/// Email over STARTTLS (required, the default) and over implicit TLS on port 465, both to a real
/// aiosmtpd with a certificate of a private CA named in `tls_config.ca_file`, with AUTH over the
/// encrypted session; an integration that does not trust that CA fails with a TLS error.
#[tokio::test(flavor = "multi_thread")]
async fn email_over_starttls_and_implicit_tls_with_a_private_ca() {
    let Some(py) = tool("python3") else { return };
    if !have_aiosmtpd(&py) {
        return;
    }
    let ca = crate::peers::TestCa::new();
    let other = crate::peers::TestCa::new();
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key) = (
        ca.cert().display().to_string(),
        ca.key().display().to_string(),
    );
    // The sinks bind before Vigil needs them, on reserved ports (aiosmtpd cannot report a
    // port 0 binding); 465 is the port that means implicit TLS to Alertmanager and to Vigil.
    let starttls_port = reserved_port();
    let starttls_out = tmp.path().join("starttls.jsonl");
    let _s1 = sink(
        &py,
        starttls_port,
        &starttls_out,
        &["--starttls", &cert, &key, "--auth", "vigil:mail-pw"],
        tmp.path(),
        "starttls",
    )
    .await;
    let implicit_out = tmp.path().join("implicit.jsonl");
    let implicit = std::net::TcpListener::bind("127.0.0.1:465").is_ok();
    if !implicit {
        assert!(!in_ci(), "port 465 must be bindable in CI (run as root)");
        eprintln!("SKIPPED the implicit-TLS half: cannot bind port 465 (not root)");
    }
    let _s2 = if implicit {
        Some(
            sink(
                &py,
                465,
                &implicit_out,
                &["--implicit-tls", &cert, &key, "--auth", "vigil:mail-pw"],
                tmp.path(),
                "implicit",
            )
            .await,
        )
    } else {
        None
    };
    let mut receivers = format!(
        "      - to: 'oncall@example.org'\n        smarthost: 'localhost:{starttls_port}'\n        auth_username: vigil\n        auth_password: mail-pw\n        tls_config: {{ca_file: '{}'}}\n      - to: 'distrust@example.org'\n        smarthost: 'localhost:{starttls_port}'\n        auth_username: vigil\n        auth_password: mail-pw\n        tls_config: {{ca_file: '{}'}}\n",
        ca.ca().display(),
        other.ca().display()
    );
    if implicit {
        receivers.push_str(&format!(
            "      - to: 'implicit@example.org'\n        smarthost: 'localhost:465'\n        auth_username: vigil\n        auth_password: mail-pw\n        tls_config: {{ca_file: '{}'}}\n",
            ca.ca().display()
        ));
    }
    let am = format!(
        "global:\n  smtp_from: 'vigil@example.org'\nroute:\n  receiver: mail\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: mail\n    email_configs:\n{receivers}"
    );
    let v = Vigil::start_with_files(
        "scrape_configs: []\nbuiltin_rules: false\nalertmanager_config: am.yml\n",
        &[("am.yml", &am)],
    )
    .await;
    let now = now_secs();
    let r = client()
        .post(v.url("/api/v2/alerts"))
        .json(&serde_json::json!([{
            "labels": {"alertname": "CertExpiry", "instance": "web-1"},
            "annotations": {"summary": "certificate of web-1 expires in 3 days"},
            "startsAt": vigil_model_time(now - 5.0),
        }]))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let m = eventually(Duration::from_secs(60), "the STARTTLS email", || async {
        messages(&starttls_out)
            .into_iter()
            .find(|m| m["to"] == serde_json::json!(["oncall@example.org"]))
    })
    .await;
    assert_eq!(m["tls"], true, "STARTTLS was used");
    assert_eq!(m["login"], "vigil", "AUTH over the encrypted session");
    assert!(
        m["data"]
            .as_str()
            .unwrap()
            .contains("Subject: [FIRING:1] CertExpiry"),
        "{m}"
    );
    if implicit {
        let m = eventually(
            Duration::from_secs(60),
            "the implicit-TLS email",
            || async { messages(&implicit_out).first().cloned() },
        )
        .await;
        assert_eq!(m["tls"], true);
        assert_eq!(m["login"], "vigil");
    }
    // The integration that trusts another CA never delivers, and says why.
    eventually(
        Duration::from_secs(30),
        "a certificate error for the distrusting integration",
        || async {
            let log = v.log();
            log.lines()
                .any(|l| {
                    l.contains("email[1]")
                        && (l.contains("certificate") || l.contains("UnknownIssuer"))
                })
                .then_some(())
        },
    )
    .await;
    assert!(
        !messages(&starttls_out)
            .iter()
            .any(|m| m["to"] == serde_json::json!(["distrust@example.org"])),
        "a server with a certificate of an untrusted CA got mail"
    );
}

/// RFC 3339 of a Unix time in seconds (UTC, milliseconds).
fn vigil_model_time(secs: f64) -> String {
    let ms = (secs * 1000.0) as i64;
    let (days, rem) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (y, m, d) = civil(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + if m <= 2 { 1 } else { 0 }, m, d)
}
