//! Self-healing end to end, on real Docker: a web container (busybox httpd) is probed every second;
//! `probe_success == 0` for 2 s fires an alert routed to the `restart-container` runbook (the Rust
//! example, built from source); the container's process is killed; the runbook restarts it, the
//! probe succeeds, the alert resolves, and the execution is `verified` with its detect, act and
//! recover timestamps. Three faults in a row, each healed (bench/heal.py measures the times).

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::harness::*;

pub struct Container(pub String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
    }
}

pub fn executions(v: &Vigil) -> Vec<Value> {
    let p = v.data_dir().join("runbooks/executions.jsonl");
    let text = std::fs::read_to_string(p).unwrap_or_default();
    // Latest version of each execution, in order of first appearance.
    let mut out: Vec<Value> = Vec::new();
    for l in text.lines() {
        let Ok(e) = serde_json::from_str::<Value>(l) else {
            continue;
        };
        match out.iter_mut().find(|x| x["id"] == e["id"]) {
            Some(x) => *x = e,
            None => out.push(e),
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_container_is_restarted_and_the_alert_verified_cleared() {
    if tool("docker").is_none() {
        return;
    }
    let Some(image) = crate::probes::busybox_image() else {
        return;
    };
    let Some(wasm) = crate::runbook_authors::build_rust_example() else {
        return;
    };
    let name = format!("vigil-heal-{}", std::process::id());
    let _c = Container(name.clone());
    let port = reserved_port();
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        "app=web",
        "-p",
        &format!("127.0.0.1:{port}:8080"),
        image,
        "/bin/sh",
        "-c",
        "/bin/busybox mkdir -p /www && echo ok > /www/index.html && exec /bin/busybox httpd -f -p 8080 -h /www",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let rb = dir.path().join("rb");
    std::fs::create_dir_all(&rb).unwrap();
    std::fs::copy(&wasm, rb.join("restart-container.wasm")).unwrap();
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("sdk/examples/restart-container/restart-container.runbook.yml"),
        rb.join("restart-container.runbook.yml"),
    )
    .unwrap();
    let am = r#"route:
  receiver: heal
  group_by: [alertname, instance]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1m
receivers:
  - name: heal
    runbook_configs:
      - runbook: restart-container
        params: {container: '{{ $labels.container }}'}
        target: 'container:{{ $labels.container }}'
        grants:
          - {capability: docker.restart, scope: {labels: {app: web}}}
          - {capability: docker.inspect}
        verify_within: 30s
"#;
    let rules = "groups:\n  - name: heal\n    interval: 1s\n    rules:\n      - alert: WebDown\n        expr: probe_success{job=\"web\"} == 0\n        for: 2s\n";
    let config = format!(
        "scrape_configs: []\nbuiltin_rules: false\nrule_files: [r.yml]\nalertmanager_config: am.yml\nprobe_configs:\n  - job_name: web\n    module: http_2xx\n    interval: 1s\n    timeout: 1s\n    static_configs:\n      - targets: ['http://127.0.0.1:{port}/']\n        labels: {{container: {name}}}\nrunbooks:\n  dir: {}\n  verify_every: 250ms\n  policy: {{cooldown: 0s}}\n",
        rb.display()
    );
    let v = Vigil::start_with_files(&config, &[("am.yml", am), ("r.yml", rules)]).await;
    let base = format!("http://{}", v.addr());
    let healthy = |base: String| async move {
        let r = get_json(&format!(
            "{base}/api/v1/query?query=probe_success{{job=%22web%22}}"
        ))
        .await;
        r["data"]["result"][0]["value"][1] == "1"
    };
    eventually(
        Duration::from_secs(30),
        "the first successful probe",
        || {
            let base = base.clone();
            async move { healthy(base).await.then_some(()) }
        },
    )
    .await;
    for fault in 1..=3usize {
        let started_before = docker(&["inspect", "-f", "{{.State.StartedAt}}", &name]);
        docker(&["kill", &name]);
        let e = eventually(
            Duration::from_secs(60),
            &format!("fault {fault} verified"),
            || {
                let v = &v;
                async move {
                    let ex = executions(v);
                    (ex.len() >= fault && ex[fault - 1]["outcome"] == "verified")
                        .then(|| ex[fault - 1].clone())
                }
            },
        )
        .await;
        assert_ne!(
            docker(&["inspect", "-f", "{{.State.StartedAt}}", &name]),
            started_before
        );
        assert_eq!(
            docker(&["inspect", "-f", "{{.State.Running}}", &name]),
            "true"
        );
        assert_eq!(e["runbook"], "restart-container");
        assert_eq!(e["params"]["container"], name.as_str());
        let t = &e["times"];
        let (detected, acted, recovered) = (
            t["detected"].as_i64().unwrap(),
            t["acted"].as_i64().unwrap(),
            t["recovered"].as_i64().unwrap(),
        );
        assert!(detected <= acted && acted <= recovered, "{t}");
        let calls: Vec<&str> = e["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["kind"] == "call")
            .map(|s| s["detail"]["capability"].as_str().unwrap())
            .collect();
        assert_eq!(
            calls,
            ["docker.inspect", "docker.restart", "docker.inspect"],
            "{e:#}"
        );
        eventually(Duration::from_secs(30), "healthy again", || {
            let base = base.clone();
            async move { healthy(base).await.then_some(()) }
        })
        .await;
        // The alert has resolved before the next fault, so the next one is a new alert.
        eventually(Duration::from_secs(30), "the alert resolved", || {
            let base = base.clone();
            async move {
                let r = get_json(&format!("{base}/api/v1/alerts")).await;
                r["data"]["alerts"]
                    .as_array()
                    .unwrap()
                    .is_empty()
                    .then_some(())
            }
        })
        .await;
    }
}

/// A dry-run binding goes through the whole path (alert, route, policy, sandbox, grants) and
/// changes nothing in Docker: the container is not restarted, the record shows what would have
/// been done. A manual run through the API (a dry run by default) leaves it alone too.
#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_changes_nothing_in_docker() {
    if tool("docker").is_none() {
        return;
    }
    let Some(image) = crate::probes::busybox_image() else {
        return;
    };
    let Some(wasm) = crate::runbook_authors::build_rust_example() else {
        return;
    };
    let name = format!("vigil-dry-{}", std::process::id());
    let _c = Container(name.clone());
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        "app=web",
        image,
        "/bin/sh",
        "-c",
        "exec /bin/busybox sleep 3600",
    ]);
    let state = || {
        docker(&[
            "inspect",
            "-f",
            "{{.State.StartedAt}} {{.State.Pid}} {{.RestartCount}} {{.State.Running}}",
            &name,
        ])
    };
    let before = state();
    let dir = tempfile::tempdir().unwrap();
    let rb = dir.path().join("rb");
    std::fs::create_dir_all(&rb).unwrap();
    std::fs::copy(&wasm, rb.join("restart-container.wasm")).unwrap();
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("sdk/examples/restart-container/restart-container.runbook.yml"),
        rb.join("restart-container.runbook.yml"),
    )
    .unwrap();
    let am = r#"route:
  receiver: heal
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: heal
    runbook_configs:
      - runbook: restart-container
        params: {container: '{{ $labels.container }}'}
        target: 'container:{{ $labels.container }}'
        grants:
          - {capability: docker.restart, scope: {labels: {app: web}}}
          - {capability: docker.inspect}
        dry_run: true
"#;
    let rules = format!(
        "groups:\n  - name: g\n    interval: 1s\n    rules:\n      - alert: WebDown\n        expr: vector(1)\n        labels: {{container: {name}}}\n"
    );
    let config = format!(
        "scrape_configs: []\nbuiltin_rules: false\nrule_files: [r.yml]\nalertmanager_config: am.yml\nrunbooks:\n  dir: {}\n",
        rb.display()
    );
    let v = Vigil::start_with_files(&config, &[("am.yml", am), ("r.yml", &rules)]).await;
    let e = eventually(Duration::from_secs(60), "the dry run's end", || {
        let v = &v;
        async move {
            executions(v)
                .into_iter()
                .find(|e| e["outcome"] != "running")
        }
    })
    .await;
    assert_eq!(e["outcome"], "succeeded", "{e:#}");
    assert_eq!(e["dry_run"], true);
    let restart = e["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "call" && s["detail"]["capability"] == "docker.restart")
        .unwrap_or_else(|| panic!("no docker.restart call: {e:#}"));
    assert_eq!(restart["detail"]["result"]["dry_run"], true, "{e:#}");
    assert_eq!(
        restart["detail"]["result"]["would"], "docker.restart",
        "{e:#}"
    );
    assert!(
        e["times"]["acted"].is_null(),
        "a dry run acts on nothing: {e:#}"
    );
    // By hand, through the API: a dry run unless asked otherwise.
    let (status, r) = crate::runbooks::post_as(
        &v.url("/api/v1/runbooks/restart-container/run"),
        None,
        serde_json::json!({"params": {"container": name}}),
    )
    .await;
    assert_eq!(status, 200, "{r:#}");
    assert_eq!(r["data"]["outcome"], "succeeded", "{r:#}");
    assert_eq!(r["data"]["dry_run"], true);
    assert_eq!(state(), before, "the container was not touched");
}
