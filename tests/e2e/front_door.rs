//! The front door: Vigil behind Prometheus's own web configuration file (TLS with a private CA,
//! bcrypt basic auth, response headers). A real Prometheus remote-writes through it, amtool manages
//! silences through it, every route refuses missing or wrong credentials, and no secret of any
//! configuration file shows in an API answer or a log line.

use std::process::Command;
use std::time::Duration;

use crate::harness::*;
use crate::peers::*;

/// A client that trusts the test CA.
fn tls_client(ca: &TestCa) -> reqwest::Client {
    vigil_http::install_crypto_provider();
    let pem = std::fs::read(ca.ca()).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn web_config(ca: &TestCa, user: &str, password: &str) -> std::path::PathBuf {
    let hash = bcrypt::hash(password, 4).unwrap();
    ca.web_config(&format!(
        "basic_auth_users:\n  {user}: '{hash}'\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n    Strict-Transport-Security: max-age=31536000\n"
    ))
}

/// Vigil behind a web configuration; answers it and its https base URL.
async fn guarded_vigil(
    web: &std::path::Path,
    config: &str,
    files: &[(&str, &str)],
) -> (Vigil, String) {
    let v = Vigil::start_with_args(
        config,
        files,
        &["--web.config.file", &web.display().to_string()],
    )
    .await;
    let base = format!("https://127.0.0.1:{}", v.port);
    (v, base)
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_and_amtool_through_tls_and_basic_auth() {
    let (Some(prom), Some(promtool), Some(amtool)) =
        (tool("prometheus"), tool("promtool"), tool("amtool"))
    else {
        return;
    };
    let ca = TestCa::new();
    let web = web_config(&ca, "alice", "s3cret");
    // Prometheus itself accepts this web configuration file.
    let out = Command::new(&promtool)
        .args(["check", "web-config"])
        .arg(&web)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool check web-config: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (v, base) = guarded_vigil(&web, "builtin_rules: false\n", &[]).await;
    let c = tls_client(&ca);

    // Response headers of the web configuration, on every answer.
    let r = c
        .get(format!("{base}/-/healthy"))
        .basic_auth("alice", Some("s3cret"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-frame-options"], "deny");
    assert_eq!(r.headers()["strict-transport-security"], "max-age=31536000");

    // A real Prometheus scrapes Vigil and remote-writes into it, both through TLS (private CA)
    // with basic auth.
    let auth = format!(
        "basic_auth: {{username: alice, password: s3cret}}\n    tls_config: {{ca_file: {}}}",
        ca.ca().display()
    );
    let _p = Prometheus::start(
        &prom,
        &format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: door\n    scheme: https\n    {auth}\n    static_configs: [{{targets: ['127.0.0.1:{}']}}]\nremote_write:\n  - url: {base}/api/v1/write\n    {auth}\n    queue_config: {{batch_send_deadline: 1s}}\n",
            v.port
        ),
        &[],
    )
    .await;
    let found = eventually(
        Duration::from_secs(60),
        "remote-written samples",
        || async {
            let r = c
                .get(format!("{base}/api/v1/query?query=up{{job=\"door\"}}"))
                .basic_auth("alice", Some("s3cret"))
                .send()
                .await
                .ok()?;
            let j: serde_json::Value = r.json().await.ok()?;
            let res = j["data"]["result"].as_array()?.clone();
            (!res.is_empty()).then_some(res)
        },
    )
    .await;
    assert_eq!(found[0]["metric"]["job"], "door");
    assert_eq!(
        found[0]["value"][1], "1",
        "Prometheus scraped Vigil through the door"
    );

    // Vigil's own self-scrape works behind TLS and auth.
    eventually(Duration::from_secs(40), "the self-scrape", || async {
        let r = c
            .get(format!("{base}/api/v1/query?query=up{{job=\"vigil\"}}"))
            .basic_auth("alice", Some("s3cret"))
            .send()
            .await
            .ok()?;
        let j: serde_json::Value = r.json().await.ok()?;
        (j["data"]["result"][0]["value"][1] == "1").then_some(())
    })
    .await;

    // amtool, configured with --http.config.file, manages silences through the same door.
    let http_cfg = ca.dir.path().join("amtool-http.yml");
    std::fs::write(
        &http_cfg,
        format!(
            "basic_auth: {{username: alice, password: s3cret}}\ntls_config: {{ca_file: {}}}\n",
            ca.ca().display()
        ),
    )
    .unwrap();
    let amtool_run = |args: &[&str]| {
        let out = Command::new(&amtool)
            .arg(format!("--alertmanager.url={base}"))
            .arg(format!("--http.config.file={}", http_cfg.display()))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "amtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let id = amtool_run(&[
        "silence",
        "add",
        "alertname=Maintenance",
        "--comment=through the front door",
        "--duration=1h",
    ]);
    assert!(!id.is_empty());
    assert!(amtool_run(&["silence", "query", "-q"]).contains(&id));
    amtool_run(&["silence", "expire", &id]);
    assert!(!amtool_run(&["silence", "query", "-q"]).contains(&id));
    // Without the file, amtool is refused.
    let out = Command::new(&amtool)
        .arg(format!("--alertmanager.url={base}"))
        .args(["silence", "query"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    drop(v);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_refuses_missing_or_wrong_credentials() {
    let ca = TestCa::new();
    let web = web_config(&ca, "alice", "s3cret");
    let (v, base) = guarded_vigil(&web, "builtin_rules: false\nscrape_configs: []\n", &[]).await;
    let c = tls_client(&ca);
    let routes: &[(&str, &str)] = &[
        ("GET", "/"),
        ("GET", "/metrics"),
        ("GET", "/debug/allocator"),
        ("GET", "/-/healthy"),
        ("GET", "/-/ready"),
        ("POST", "/-/reload"),
        ("GET", "/api/v1/query?query=up"),
        ("POST", "/api/v1/query_range"),
        ("GET", "/api/v1/series?match[]=up"),
        ("GET", "/api/v1/labels"),
        ("GET", "/api/v1/label/job/values"),
        ("GET", "/api/v1/metadata"),
        ("GET", "/api/v1/status/config"),
        ("GET", "/api/v1/status/flags"),
        ("GET", "/api/v1/status/buildinfo"),
        ("GET", "/api/v1/targets"),
        ("GET", "/api/v1/rules"),
        ("GET", "/api/v1/alerts"),
        ("POST", "/api/v1/write"),
        ("POST", "/v1/metrics"),
        ("POST", "/api/v1/otlp/v1/metrics"),
        ("GET", "/api/v2/status"),
        ("GET", "/api/v2/alerts"),
        ("POST", "/api/v2/alerts"),
        ("GET", "/api/v2/alerts/groups"),
        ("GET", "/api/v2/silences"),
        ("POST", "/api/v2/silences"),
        ("GET", "/api/v2/receivers"),
        ("GET", "/no/such/route"),
    ];
    for (method, path) in routes {
        let url = format!("{base}{path}");
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        for creds in [
            None,
            Some(("alice", "wrong")),
            Some(("mallory", "s3cret")),
            Some(("", "")),
        ] {
            let mut req = c.request(m.clone(), &url);
            if let Some((u, p)) = creds {
                req = req.basic_auth(u, Some(p));
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 401, "{method} {path} with {creds:?}");
            assert_eq!(r.headers()["www-authenticate"], "Basic", "{method} {path}");
        }
        let r = c
            .request(m.clone(), &url)
            .basic_auth("alice", Some("s3cret"))
            .send()
            .await
            .unwrap();
        assert_ne!(r.status(), 401, "{method} {path} with the right password");
    }
    // Plain HTTP to the TLS port gets no answer from the API.
    let plain = client()
        .get(format!("http://127.0.0.1:{}/-/healthy", v.port))
        .basic_auth("alice", Some("s3cret"))
        .send()
        .await;
    assert!(plain.map(|r| !r.status().is_success()).unwrap_or(true));
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_shows_in_api_answers_or_logs() {
    let ca = TestCa::new();
    let secrets = [
        "scrape-pass-1",
        "scrape-token-2",
        "smtp-pass-3",
        "slack-token-4",
        "og-key-5",
        "pd-key-6",
        "hook-pass-7",
        "hook-token-8",
        "web-pass-9",
    ];
    let web = web_config(&ca, "alice", "web-pass-9");
    let hash_line = std::fs::read_to_string(&web).unwrap();
    let hash = hash_line
        .lines()
        .find(|l| l.contains("alice:"))
        .and_then(|l| l.split('\'').nth(1))
        .unwrap()
        .to_string();
    // Everything points at a receiver that is down, so deliveries fail and are logged.
    let rec = Recorder::start(Some(&ca)).await;
    rec.set_down("/", true);
    let am = format!(
        r#"global:
  smtp_smarthost: '127.0.0.1:1'
  smtp_from: vigil@example.org
  smtp_auth_username: vigil
  smtp_auth_password: smtp-pass-3
  smtp_require_tls: false
  slack_api_url: '{r}/services/slack-token-4'
  opsgenie_api_key: og-key-5
  opsgenie_api_url: '{r}/og/'
  http_config: {{tls_config: {{ca_file: '{ca}'}}}}
route:
  receiver: all
  group_wait: 0s
  group_interval: 1s
receivers:
  - name: all
    email_configs: [{{to: oncall@example.org}}]
    slack_configs: [{{channel: '#x'}}]
    opsgenie_configs: [{{}}]
    pagerduty_configs: [{{routing_key: pd-key-6, url: '{r}/v2/enqueue'}}]
    webhook_configs:
      - url: '{r}/hook?token=hook-token-8'
        http_config:
          basic_auth: {{username: vigil, password: hook-pass-7}}
          tls_config: {{ca_file: '{ca}'}}
"#,
        r = rec.url,
        ca = ca.ca().display()
    );
    let cfg = "global: {scrape_interval: 1s}\nalertmanager_config: am.yml\nbuiltin_rules: false\nrule_files: [r.yml]\nscrape_configs:\n  - job_name: basic\n    basic_auth: {username: u, password: scrape-pass-1}\n    static_configs: [{targets: ['127.0.0.1:1']}]\n  - job_name: bearer\n    bearer_token: scrape-token-2\n    static_configs: [{targets: ['127.0.0.1:1']}]\n".to_string();
    let rules = "groups:\n  - name: g\n    interval: 1s\n    rules:\n      - alert: Always\n        expr: vector(1)\n";
    let (v, base) = guarded_vigil(&web, &cfg, &[("am.yml", &am), ("r.yml", rules)]).await;
    let c = tls_client(&ca);
    // Deliveries to every integration have been attempted (and failed).
    eventually(Duration::from_secs(60), "failed deliveries", || async {
        (rec.attempts("Vigil/", "/hook") > 0
            && rec.attempts("Vigil/", "/og/") > 0
            && rec.attempts("Vigil/", "/v2/enqueue") > 0
            && rec.attempts("Vigil/", "/services/") > 0
            && v.log().contains("email[0]"))
        .then_some(())
    })
    .await;
    let mut answers = String::new();
    for path in [
        "/api/v1/status/config",
        "/api/v1/status/flags",
        "/api/v1/status/runtimeinfo",
        "/api/v1/status/buildinfo",
        "/api/v1/targets",
        "/api/v1/rules",
        "/api/v1/alerts",
        "/api/v2/status",
        "/api/v2/receivers",
        "/api/v2/alerts",
        "/api/v2/alerts/groups",
        "/metrics",
    ] {
        let r = c
            .get(format!("{base}{path}"))
            .basic_auth("alice", Some("web-pass-9"))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        answers.push_str(&r.text().await.unwrap());
    }
    let config = c
        .get(format!("{base}/api/v1/status/config"))
        .basic_auth("alice", Some("web-pass-9"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        config.contains("<secret>"),
        "secrets are shown masked: {config}"
    );
    let status = c
        .get(format!("{base}/api/v2/status"))
        .basic_auth("alice", Some("web-pass-9"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(status.contains("<secret>"), "{status}");
    let log = v.log();
    for s in secrets.iter().copied().chain([hash.as_str()]) {
        assert!(!answers.contains(s), "{s:?} shows in an API answer");
        assert!(!log.contains(s), "{s:?} shows in the log:\n{log}");
    }
}
