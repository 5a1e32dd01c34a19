//! The routing tree against Alertmanager's own `amtool`: the same alertmanager.yml, the same label
//! sets, the same receivers; and the same verdict on valid and invalid files.

use std::process::Command;

use vigil_alerting::router::AlertmanagerConfig;

use crate::harness::*;

const AM: &str = r#"
global:
  resolve_timeout: 5m
route:
  receiver: default
  group_by: [alertname]
  routes:
    - matchers: ['severity="page"']
      receiver: pager
      routes:
        - match: {service: db}
          receiver: dba
        - match_re: {service: 'cache|queue'}
          receiver: infra
          continue: true
        - matchers: ['team!="ops"']
          receiver: dev-pager
    - matchers: ['service=~"web|api"', 'env!~"dev.*"']
      receiver: web
      continue: true
    - matchers: ['team="frontend"']
      receiver: frontend
receivers:
  - name: default
  - name: pager
  - name: dba
  - name: infra
  - name: dev-pager
  - name: web
  - name: frontend
"#;

const CASES: &[&[(&str, &str)]] = &[
    &[("severity", "page")],
    &[("severity", "page"), ("service", "db")],
    &[("severity", "page"), ("service", "cache")],
    &[("severity", "page"), ("service", "cache"), ("team", "ops")],
    &[("severity", "page"), ("team", "ops")],
    &[("service", "api"), ("team", "frontend")],
    &[("service", "api"), ("env", "dev-1"), ("team", "frontend")],
    &[("service", "web")],
    &[("x", "y")],
    &[],
];

#[test]
fn routes_like_amtool() {
    let Some(amtool) = tool("amtool") else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("am.yml");
    std::fs::write(&file, AM).unwrap();
    let root = AlertmanagerConfig::parse(AM).unwrap().root_route().unwrap();
    for labels in CASES {
        let args: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let out = Command::new(&amtool)
            .args([
                "config",
                "routes",
                "test",
                &format!("--config.file={}", file.display()),
            ])
            .args(&args)
            .output()
            .unwrap();
        let want = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let get = |n: &str| labels.iter().find(|(k, _)| *k == n).map(|(_, v)| *v);
        let got: Vec<&str> = root
            .matching(&get)
            .iter()
            .map(|r| r.receiver.as_str())
            .collect();
        assert_eq!(got.join(","), want, "labels {labels:?}");
    }
}

#[test]
fn config_verdicts_like_amtool() {
    let Some(amtool) = tool("amtool") else { return };
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (AM, true),
        ("route:\n  receiver: nope\nreceivers: [{name: a}]\n", false),
        (
            "route:\n  receiver: a\nreceivers: [{name: a}, {name: a}]\n",
            false,
        ),
        (
            "route:\n  receiver: a\n  routes: [{matchers: ['x=~\"(\"']}]\nreceivers: [{name: a}]\n",
            false,
        ),
        (
            "route:\n  receiver: a\n  group_by: ['...', 'x']\nreceivers: [{name: a}]\n",
            false,
        ),
        (
            "route:\n  receiver: a\n  routes: [{receiver: b, matchers: ['a=\"1\"', 'b=~\"x|y\"']}]\nreceivers: [{name: a}, {name: b}]\n",
            true,
        ),
        (
            "route:\n  receiver: a\n  routes: [{receiver: a, mute_time_intervals: [night], active_time_intervals: [week]}]\nreceivers: [{name: a}]\ntime_intervals:\n  - name: night\n    time_intervals: [{times: [{start_time: '22:00', end_time: '24:00'}], weekdays: ['monday:friday']}]\n  - name: week\n    time_intervals: [{days_of_month: ['1:7', '-3:-1'], months: ['january:march'], years: ['2024:2030']}]\n",
            true,
        ),
        (
            "route:\n  receiver: a\nreceivers: [{name: a}]\ntime_intervals:\n  - name: bad\n    time_intervals: [{weekdays: [funday]}]\n",
            false,
        ),
        (
            "route:\n  receiver: a\nreceivers: [{name: a}]\ntime_intervals:\n  - name: bad\n    time_intervals: [{times: [{start_time: '25:00', end_time: '26:00'}]}]\n",
            false,
        ),
    ];
    for (i, (text, valid)) in cases.iter().enumerate() {
        let f = dir.path().join(format!("c{i}.yml"));
        std::fs::write(&f, text).unwrap();
        let am_ok = Command::new(&amtool)
            .arg("check-config")
            .arg(&f)
            .output()
            .unwrap()
            .status
            .success();
        assert_eq!(am_ok, *valid, "amtool's verdict on case {i}");
        assert_eq!(
            AlertmanagerConfig::parse(text).is_ok(),
            *valid,
            "Vigil's verdict on case {i}: {:?}",
            AlertmanagerConfig::parse(text).err()
        );
    }
}

/// `vigil check config` and `amtool check-config` on the same receiver configurations: the same
/// verdicts, and for each invalid one the same reason (the message both print).
#[test]
fn receiver_config_verdicts_like_amtool() {
    let Some(amtool) = tool("amtool") else { return };
    let dir = tempfile::tempdir().unwrap();
    let head = "route:\n  receiver: r\nreceivers:\n  - name: r\n";
    let cases: &[(&str, Option<&str>)] = &[
        (
            "    pagerduty_configs: [{routing_key: k}]\n    webhook_configs: [{url: 'https://hooks.example/x', max_alerts: 3}]\n    slack_configs: [{api_url: 'https://hooks.slack.com/services/T/B/X', channel: '#a', actions: [{type: button, text: Go, url: 'https://x'}]}]\n    opsgenie_configs: [{api_key: k, responders: [{name: ops, type: team}]}]\n    email_configs: [{to: a@example.org, from: b@example.org, smarthost: 'smtp.example.org:587'}]\n",
            None,
        ),
        (
            "    pagerduty_configs: [{severity: critical}]\n",
            Some("missing service or routing key in PagerDuty config"),
        ),
        (
            "    pagerduty_configs: [{routing_key: k, routing_key_file: /k}]\n",
            Some("at most one of routing_key & routing_key_file must be configured"),
        ),
        (
            "    webhook_configs: [{send_resolved: true}]\n",
            Some("missing URL in webhook config"),
        ),
        (
            "    webhook_configs: [{url: 'example.com/hook'}]\n",
            Some("unsupported scheme \"\" for URL"),
        ),
        (
            "    webhook_configs: [{url: 'ftp://example.com/hook'}]\n",
            Some("unsupported scheme \"ftp\" for URL"),
        ),
        (
            "    slack_configs: [{channel: '#a'}]\n",
            Some("no global Slack API URL set either inline or in a file"),
        ),
        (
            "    slack_configs: [{api_url: 'https://x/y', actions: [{text: Go, url: 'https://x'}]}]\n",
            Some("missing type in Slack action configuration"),
        ),
        (
            "    opsgenie_configs: [{message: m}]\n",
            Some("no global OpsGenie API Key set either inline or in a file"),
        ),
        (
            "    opsgenie_configs: [{api_key: k, responders: [{name: x, type: group}]}]\n",
            Some("type does not match valid options"),
        ),
        (
            "    email_configs: [{from: a@example.org, smarthost: 'x:25'}]\n",
            Some("missing to address in email config"),
        ),
        (
            "    email_configs: [{to: a@example.org, from: a@example.org}]\n",
            Some("no global SMTP smarthost set"),
        ),
        (
            "    email_configs: [{to: a@example.org, from: a@example.org, smarthost: localhost}]\n",
            Some("missing port in address"),
        ),
        (
            "    webhook_configs: [{url: 'http://x/', http_config: {basic_auth: {username: u}, bearer_token: t}}]\n",
            Some(
                "at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured",
            ),
        ),
        (
            "    webhook_configs: [{url: 'http://x/', http_config: {authorization: {type: Basic, credentials: c}}}]\n",
            Some("authorization type cannot be set to \"basic\", use \"basic_auth\" instead"),
        ),
        (
            "    webhook_configs: [{url: 'http://x/', http_config: {tls_config: {min_version: TLS9}}}]\n",
            Some("unknown TLS version: TLS9"),
        ),
        (
            "    webhook_configs: [{url: 'http://x/', max_alerts: -1}]\n",
            Some(""),
        ),
        (
            "    slak_configs: [{api_url: 'https://x/'}]\n",
            Some("slak_configs"),
        ),
    ];
    for (i, (receiver, err)) in cases.iter().enumerate() {
        let am = dir.path().join(format!("am{i}.yml"));
        std::fs::write(&am, format!("{head}{receiver}")).unwrap();
        let cfg = dir.path().join(format!("vigil{i}.yml"));
        std::fs::write(&cfg, format!("alertmanager_config: am{i}.yml\n")).unwrap();
        let a = Command::new(&amtool)
            .arg("check-config")
            .arg(&am)
            .output()
            .unwrap();
        let v = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(["check", "config"])
            .arg(&cfg)
            .output()
            .unwrap();
        let a_out =
            String::from_utf8_lossy(&a.stdout).to_string() + &String::from_utf8_lossy(&a.stderr);
        let v_out =
            String::from_utf8_lossy(&v.stdout).to_string() + &String::from_utf8_lossy(&v.stderr);
        assert_eq!(
            a.status.success(),
            err.is_none(),
            "amtool on case {i}: {a_out}"
        );
        assert_eq!(
            v.status.success(),
            err.is_none(),
            "vigil on case {i}: {v_out}"
        );
        if let Some(e) = err {
            assert!(a_out.contains(e), "amtool's reason for case {i}: {a_out}");
            assert!(v_out.contains(e), "vigil's reason for case {i}: {v_out}");
        }
    }
    // A receiver type Alertmanager has and Vigil does not send to: amtool accepts it, Vigil says
    // which one it cannot honour instead of ignoring it.
    let am = dir.path().join("vo.yml");
    std::fs::write(
        &am,
        format!("global: {{victorops_api_key: k}}\n{head}    victorops_configs: [{{routing_key: team}}]\n"),
    )
    .unwrap();
    let cfg = dir.path().join("vo-vigil.yml");
    std::fs::write(&cfg, "alertmanager_config: vo.yml\n").unwrap();
    assert!(
        Command::new(&amtool)
            .arg("check-config")
            .arg(&am)
            .status()
            .unwrap()
            .success()
    );
    let v = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["check", "config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&v.stdout);
    assert!(!v.status.success(), "{out}");
    assert!(
        out.contains("victorops_configs are not supported by Vigil"),
        "{out}"
    );
}
