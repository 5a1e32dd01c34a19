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
