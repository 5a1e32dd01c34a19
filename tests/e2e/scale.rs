//! Scaling on real Docker: `docker.replicas` and `docker.scale` on a Swarm service (host-mode
//! published ports, since the routing mesh does not answer here) and on a group of containers
//! created from a template; every address a call answers is checked to serve HTTP.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use vigil_remediation::capability::Capability;
use vigil_remediation::capability::scale::{GroupConfig, ScaleCapabilities};

use crate::harness::*;

/// A web server that answers `/` at once and `/cgi-bin/slow` after `delay` seconds, one request
/// at a time per replica when a load balancer says so (busybox httpd forks a CGI per request).
pub fn web_command(delay: &str) -> Vec<String> {
    let script = format!(
        "/bin/busybox mkdir -p /www/cgi-bin && echo ok > /www/index.html && \
         printf '#!/bin/sh\\n/bin/busybox sleep {delay}\\necho Content-Type: text/plain\\necho\\necho slow\\n' > /www/cgi-bin/slow && \
         /bin/busybox chmod +x /www/cgi-bin/slow && exec /bin/busybox httpd -f -p 8080 -h /www"
    );
    vec!["/bin/sh".into(), "-c".into(), script]
}

/// The web server's health check: it answers `/`.
pub const HEALTH: &str = "/bin/busybox wget -q -O /dev/null http://127.0.0.1:8080/";

/// Puts this Docker Engine in Swarm mode (a one-node swarm advertised on 127.0.0.1) when it is not
/// already; false (skipped outside CI) when that fails.
pub fn swarm() -> bool {
    let state = docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
    if state == "active" {
        return true;
    }
    let out = Command::new("docker")
        .args(["swarm", "init", "--advertise-addr", "127.0.0.1"])
        .output()
        .unwrap();
    // Another test may have initialised it meanwhile.
    let ok = out.status.success()
        || docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]) == "active";
    if !ok {
        assert!(
            !in_ci(),
            "docker swarm init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("SKIPPED: docker swarm init failed");
    }
    ok
}

/// A Swarm service removed when dropped.
pub struct Service(pub String);

impl Service {
    /// Creates a one-replica web service labelled `app=web` whose tasks publish 8080 in host mode
    /// (each on a port Docker picks), serving `/cgi-bin/slow` in `delay` seconds.
    pub fn web(name: &str, image: &str, delay: &str) -> Service {
        // With a health check, a task counts as running (and gets traffic) once it answers.
        let mut args: Vec<String> = [
            "service",
            "create",
            "-d",
            "--name",
            name,
            "--replicas",
            "1",
            "--label",
            "app=web",
            "--publish",
            "mode=host,target=8080",
            "--health-cmd",
            HEALTH,
            "--health-interval",
            "1s",
            "--health-start-period",
            "30s",
            image,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(web_command(delay));
        docker(&args.iter().map(String::as_str).collect::<Vec<_>>());
        Service(name.to_string())
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["service", "rm", &self.0])
            .output();
    }
}

/// The members of a group removed when dropped.
pub struct Group(pub String);

impl Drop for Group {
    fn drop(&mut self) {
        let ids = Command::new("docker")
            .args([
                "ps",
                "-aq",
                "--filter",
                &format!("label=vigil.group={}", self.0),
            ])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
            .unwrap_or_default();
        for id in ids.split_whitespace() {
            let _ = Command::new("docker").args(["rm", "-f", id]).output();
        }
    }
}

/// Every address answers `/` with 200.
pub async fn all_serve(addresses: &Value) {
    let c = client();
    for a in addresses.as_array().unwrap() {
        let url = format!("http://{}/", a.as_str().unwrap());
        eventually(Duration::from_secs(20), &format!("{url} answering"), || {
            let (c, url) = (c.clone(), url.clone());
            async move {
                c.get(&url)
                    .send()
                    .await
                    .ok()
                    .filter(|r| r.status() == 200)
                    .map(|_| ())
            }
        })
        .await;
    }
}

async fn call(cap: &dyn Capability, name: &str, args: Value) -> Value {
    cap.call(name, &args, None)
        .await
        .unwrap_or_else(|e| panic!("{name} {args}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_scales_from_its_template() {
    if tool("docker").is_none() {
        return;
    }
    let Some(image) = crate::probes::busybox_image() else {
        return;
    };
    let name = format!("vigil-group-{}", std::process::id());
    let _g = Group(name.clone());
    let groups: BTreeMap<String, GroupConfig> = BTreeMap::from([(
        name.clone(),
        GroupConfig {
            image: image.into(),
            command: web_command("0.1"),
            env: BTreeMap::new(),
            labels: BTreeMap::from([("app".into(), "web".into())]),
            ports: vec![8080],
            publish_host: "127.0.0.1".into(),
            network: String::new(),
            stop_timeout: Duration::from_secs(1),
            healthcheck: Some(vigil_remediation::capability::scale::Healthcheck {
                command: HEALTH.split(' ').map(str::to_string).collect(),
                interval: Duration::from_secs(1),
                timeout: Duration::from_secs(1),
                retries: 3,
            }),
        },
    )]);
    let c = ScaleCapabilities::new("", groups).unwrap();
    let g = json!({"group": name});
    let r = call(&c, "docker.replicas", g.clone()).await;
    assert_eq!(
        (r["desired"].as_u64(), r["running"].as_u64()),
        (Some(0), Some(0))
    );
    let r = call(
        &c,
        "docker.scale",
        json!({"group": name, "replicas": 3, "port": 8080}),
    )
    .await;
    assert_eq!(r["previous"], 0, "{r:#}");
    assert_eq!(r["running"], 3, "{r:#}");
    assert_eq!(r["addresses"].as_array().unwrap().len(), 3, "{r:#}");
    all_serve(&r["addresses"]).await;
    let names: Vec<&str> = r["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            format!("{name}-1"),
            format!("{name}-2"),
            format!("{name}-3")
        ]
    );
    assert_eq!(
        docker(&[
            "inspect",
            "-f",
            "{{index .Config.Labels \"app\"}}",
            &format!("{name}-2")
        ]),
        "web"
    );
    // Counted once healthy: Docker says so of each member answered.
    for i in 1..=3 {
        assert_eq!(
            docker(&[
                "inspect",
                "-f",
                "{{.State.Health.Status}}",
                &format!("{name}-{i}")
            ]),
            "healthy"
        );
    }
    // Scaling in removes the highest-numbered members; a stopped member is started again.
    docker(&["stop", "-t", "0", &format!("{name}-1")]);
    let r = call(&c, "docker.scale", json!({"group": name, "replicas": 2})).await;
    assert_eq!(r["previous"], 3, "{r:#}");
    assert_eq!(r["running"], 2, "{r:#}");
    let names: Vec<&str> = r["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, [format!("{name}-1"), format!("{name}-2")]);
    all_serve(&r["addresses"]).await;
    let r = call(&c, "docker.scale", json!({"group": name, "replicas": 0})).await;
    assert_eq!(r["running"], 0, "{r:#}");
    assert_eq!(
        docker(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=vigil.group={name}")
        ]),
        ""
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swarm_service_scales_and_its_tasks_answer() {
    if tool("docker").is_none() {
        return;
    }
    let Some(image) = crate::probes::busybox_image() else {
        return;
    };
    if !swarm() {
        return;
    }
    let name = format!("vigil-svc-{}", std::process::id());
    let _s = Service::web(&name, image, "0.1");
    let c = ScaleCapabilities::new("", BTreeMap::new()).unwrap();
    let svc = json!({"service": name});
    let t = c.target("docker.scale", &svc).await.unwrap().unwrap();
    assert_eq!(t.key(), format!("service:{name}"));
    assert_eq!(t.labels["app"], "web");
    let r = eventually(Duration::from_secs(60), "the first task running", || {
        let (c, svc) = (&c, svc.clone());
        async move {
            let r = call(c, "docker.replicas", svc).await;
            (r["running"] == 1).then_some(r)
        }
    })
    .await;
    assert_eq!(r["desired"], 1);
    all_serve(&r["addresses"]).await;
    let before_id = r["replicas"][0]["id"].clone();
    let r = call(&c, "docker.scale", json!({"service": name, "replicas": 3})).await;
    // Only the count changed: the task template is as it was (its health check kept), and the
    // first task still runs (a changed template would have replaced every task).
    let spec = |which: &str| -> Value {
        serde_json::from_str(&docker(&[
            "service",
            "inspect",
            "-f",
            &format!("{{{{json .{which}.TaskTemplate.ContainerSpec}}}}"),
            &name,
        ]))
        .unwrap()
    };
    let (before, after) = (spec("PreviousSpec"), spec("Spec"));
    for k in ["Image", "Args", "Healthcheck"] {
        assert_eq!(before[k], after[k], "{k} changed: {before} -> {after}");
    }
    let first = r["replicas"][0]["id"].clone();
    assert_eq!(first, before_id, "the first task was replaced: {r:#}");
    assert_eq!(r["previous"], 1, "{r:#}");
    assert_eq!(r["running"], 3, "{r:#}");
    assert_eq!(r["addresses"].as_array().unwrap().len(), 3, "{r:#}");
    all_serve(&r["addresses"]).await;
    assert_eq!(
        docker(&[
            "service",
            "inspect",
            "-f",
            "{{.Spec.Mode.Replicated.Replicas}}",
            &name
        ]),
        "3"
    );
    let r = call(&c, "docker.scale", json!({"service": name, "replicas": 1})).await;
    assert_eq!(r["running"], 1, "{r:#}");
    assert_eq!(r["stopping"], 0, "{r:#}");
    assert_eq!(r["addresses"].as_array().unwrap().len(), 1, "{r:#}");
    all_serve(&r["addresses"]).await;
}

// ---- Through the server ---------------------------------------------------------------------

/// An open-model load: `rate` requests a second to `url`, each sent on time whether or not the
/// earlier ones have answered (no coordinated omission); counts answers and failures.
pub struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    pub ok: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    pub failed: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Load {
    pub fn start(url: String, rate: u32) -> Load {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let ok = std::sync::Arc::new(AtomicUsize::new(0));
        let failed = std::sync::Arc::new(AtomicUsize::new(0));
        let (s, o, f) = (stop.clone(), ok.clone(), failed.clone());
        let task = tokio::spawn(async move {
            let c = reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap();
            let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            while !s.load(Ordering::SeqCst) {
                tick.tick().await;
                let (c, url, o, f) = (c.clone(), url.clone(), o.clone(), f.clone());
                tokio::spawn(async move {
                    match c.get(&url).send().await {
                        Ok(r) if r.status().is_success() => o.fetch_add(1, Ordering::SeqCst),
                        Ok(r) => {
                            eprintln!(
                                "load: {} {}",
                                r.status(),
                                r.text().await.unwrap_or_default().trim()
                            );
                            f.fetch_add(1, Ordering::SeqCst)
                        }
                        Err(e) => {
                            eprintln!("load: {e}");
                            f.fetch_add(1, Ordering::SeqCst)
                        }
                    };
                });
            }
        });
        Load {
            stop,
            ok,
            failed,
            task,
        }
    }

    pub async fn stop(self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = self.task.await;
    }
}

fn executions_of(v: &Vigil, runbook: &str) -> Vec<Value> {
    crate::heal::executions(v)
        .into_iter()
        .filter(|e| e["runbook"] == runbook)
        .collect()
}

async fn ended(v: &Vigil, runbook: &str, limit: Duration) -> Value {
    eventually(
        limit,
        &format!("an execution of {runbook} ended"),
        || async {
            executions_of(v, runbook)
                .into_iter()
                .find(|e| e["outcome"] != "running" && e["outcome"] != "pending")
        },
    )
    .await
}

fn replicas_of(service: &str) -> u32 {
    docker(&[
        "service",
        "inspect",
        "-f",
        "{{.Spec.Mode.Replicated.Replicas}}",
        service,
    ])
    .parse()
    .unwrap()
}

/// A web service of one replica that serves one slow request at a time (HAProxy `maxconn 1` per
/// server, as a single-worker application server would) gets 6 requests a second: its queue grows,
/// `WebSaturated` fires, and scale-out adds replicas (a Swarm service, HAProxy repointed at its
/// tasks) until the queue drains; the execution is verified. When the load stops, `WebIdle` fires
/// and scale-in removes replicas down to the minimum of 1; verified too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_scales_a_service_out_and_idle_scales_it_back_in() {
    if tool("docker").is_none() {
        return;
    }
    let Some(image) = crate::probes::busybox_image() else {
        return;
    };
    if !swarm() {
        return;
    }
    let rb = tempfile::tempdir().unwrap();
    crate::runbook_authors::place_rust_runbook(rb.path(), "scale-out");
    if crate::runbook_authors::place_rust_runbook(rb.path(), "scale-in").is_none() {
        return;
    }
    let name = format!("vigil-web-{}", std::process::id());
    // 0.25 s a request, one at a time: a replica serves 4 a second, whatever the CPU is doing.
    let _s = Service::web(&name, image, "0.25");
    let c = ScaleCapabilities::new("", BTreeMap::new()).unwrap();
    let first = eventually(Duration::from_secs(60), "the first task running", || {
        let (c, name) = (&c, name.clone());
        async move {
            let r = call(c, "docker.replicas", json!({"service": name, "port": 8080})).await;
            (r["running"] == 1).then(|| r["addresses"][0].as_str().unwrap().to_string())
        }
    })
    .await;
    all_serve(&json!([first])).await;
    let (front, stats) = (reserved_port(), reserved_port());
    let Some(haproxy) = crate::lb::Haproxy::start(&format!(
        "defaults\n  mode http\n  log stdout format raw local0\n  option httplog\n  timeout connect 1s\n  timeout client 60s\n  timeout server 60s\n  timeout queue 60s\n  retries 3\n  option redispatch\n  option http-server-close\n\n\
         frontend web\n  bind 127.0.0.1:{front}\n  default_backend web\n\n\
         frontend stats\n  bind 127.0.0.1:{stats}\n  http-request use-service prometheus-exporter if {{ path /metrics }}\n\n\
         backend web\n  server w1 {first} maxconn 1\n  server-template w 2-6 127.0.0.1:1 disabled maxconn 1\n"
    ))
    .await
    else {
        return;
    };
    let saturated = r#"sum by (proxy) (haproxy_backend_current_queue{proxy="web"}) > 2"#;
    let idle = r#"sum by (proxy) (rate(haproxy_backend_http_requests_total{proxy="web"}[5s])) < 1 and on (proxy) haproxy_backend_active_servers{proxy="web"} > 1"#;
    let rules = format!(
        "groups:\n  - name: web\n    interval: 1s\n    rules:\n      - alert: WebSaturated\n        expr: '{saturated}'\n        for: 2s\n      - alert: WebIdle\n        expr: '{idle}'\n        for: 3s\n"
    );
    let grants = "        grants:\n          - {capability: docker.replicas}\n          - {capability: docker.scale, scope: {labels: {app: web}}}\n          - {capability: route.set}\n          - {capability: query.promql}\n          - {capability: wait.until}\n";
    let am = format!(
        "route:\n  receiver: oncall\n  group_by: [alertname]\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1h\n  routes:\n\
         \x20   - {{matchers: ['alertname=\"WebSaturated\"'], receiver: out}}\n    - {{matchers: ['alertname=\"WebIdle\"'], receiver: in}}\n\
         receivers:\n  - name: oncall\n\
         \x20 - name: out\n    runbook_configs:\n      - runbook: scale-out\n        params: {{service: {name}, route: web, port: '8080', min: '1', max: '4', step: '1', while: '{saturated}', settle: 20s}}\n        target: 'service:{name}'\n{grants}        verify_within: 60s\n\
         \x20 - name: in\n    runbook_configs:\n      - runbook: scale-in\n        params: {{service: {name}, route: web, port: '8080', min: '1', max: '4', step: '1', while: '{idle}', settle: 3s}}\n        target: 'service:{name}'\n{grants}        verify_within: 60s\n"
    );
    let config = format!(
        "builtin_rules: false\nglobal: {{scrape_interval: 1s}}\nscrape_configs:\n  - job_name: haproxy\n    static_configs: [{{targets: ['127.0.0.1:{stats}']}}]\n\
         rule_files: [r.yml]\nalertmanager_config: am.yml\n\
         runbooks:\n  dir: {}\n  deadline: 3m\n  verify_every: 250ms\n  policy: {{cooldown: 5s}}\n  routes:\n    web: {{kind: haproxy, socket: '{}', backend: web}}\n",
        rb.path().display(),
        haproxy.socket.display()
    );
    let v = Vigil::start_with_files(&config, &[("am.yml", &am), ("r.yml", &rules)]).await;
    // 6 a second: one replica falls behind, two keep up.
    let load = Load::start(format!("http://127.0.0.1:{front}/cgi-bin/slow"), 6);
    let (load_ok, load_failed) = (load.ok.clone(), load.failed.clone());
    let out = ended(&v, "scale-out", Duration::from_secs(240)).await;
    assert_eq!(out["outcome"], "verified", "{out:#}\n{}", v.log());
    let scaled_to = replicas_of(&name);
    assert!(scaled_to >= 2, "{out:#}");
    assert_eq!(out["output"]["replicas"], scaled_to, "{out:#}");
    let active = v
        .query("haproxy_backend_active_servers{proxy=\"web\"}", now_secs())
        .await;
    eprintln!("scale-out: 1 -> {scaled_to} replicas; HAProxy: {active}");
    // The routed servers are the service's tasks.
    let r = call(
        &c,
        "docker.replicas",
        json!({"service": name, "port": 8080}),
    )
    .await;
    let state = haproxy.cli("show servers state web").await;
    for a in r["addresses"].as_array().unwrap() {
        let port = a.as_str().unwrap().rsplit(':').next().unwrap();
        assert!(
            state.lines().any(|l| l.contains(&format!(" {port} "))
                && l.split_whitespace().nth(6) != Some("5")
                && l.split_whitespace().nth(6) != Some("1")),
            "task {a} not routed:\n{state}"
        );
    }
    load.stop().await;
    let (ok, failed) = (
        load_ok.load(std::sync::atomic::Ordering::SeqCst),
        load_failed.load(std::sync::atomic::Ordering::SeqCst),
    );
    eprintln!("load: {ok} answered, {failed} failed");
    assert!(ok > 0);
    assert_eq!(failed, 0, "scaling out dropped requests");
    let inn = ended(&v, "scale-in", Duration::from_secs(240)).await;
    assert_eq!(inn["outcome"], "verified", "{inn:#}\n{}", v.log());
    assert_eq!(replicas_of(&name), 1, "{inn:#}");
    assert_eq!(inn["output"]["replicas"], 1, "{inn:#}");
    let calls = crate::failover::called(&inn);
    assert_eq!(
        calls.iter().filter(|c| *c == "docker.scale").count() as u32,
        scaled_to - 1,
        "{inn:#}"
    );
}

/// Bound to a rule that never clears, scale-out steps up to its maximum (a container group
/// created from a template, its addresses written to a file_sd route) and then stops and
/// escalates, saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_that_never_clears_stops_at_max_and_escalates() {
    if tool("docker").is_none() {
        return;
    }
    let Some(image) = crate::probes::busybox_image() else {
        return;
    };
    let rb = tempfile::tempdir().unwrap();
    if crate::runbook_authors::place_rust_runbook(rb.path(), "scale-out").is_none() {
        return;
    }
    let group = format!("vigil-never-{}", std::process::id());
    let _g = Group(group.clone());
    let (hook, pages) = http_receiver(|_| ("200 OK", String::new())).await;
    let rules = "groups:\n  - name: g\n    interval: 1s\n    rules:\n      - alert: AlwaysBusy\n        expr: vector(1)\n        labels: {service: web}\n";
    let am = format!(
        "route:\n  receiver: out\n  group_by: [alertname]\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1h\n\
         receivers:\n  - name: oncall\n    webhook_configs: [{{url: 'http://127.0.0.1:{hook}/'}}]\n\
         \x20 - name: out\n    runbook_configs:\n      - runbook: scale-out\n        params: {{group: {group}, route: web, min: '1', max: '3', step: '1', while: 'vector(1)', settle: 1s}}\n\
         \x20       target: 'group:{group}'\n        grants:\n          - {{capability: docker.replicas}}\n          - {{capability: docker.scale}}\n          - {{capability: route.set}}\n          - {{capability: query.promql}}\n          - {{capability: wait.until}}\n\
         \x20       verify_within: 10s\n        escalate_to: oncall\n"
    );
    let cmd: Vec<String> = web_command("0.1");
    let config = format!(
        "scrape_configs: []\nbuiltin_rules: false\nrule_files: [r.yml]\nalertmanager_config: am.yml\n\
         runbooks:\n  dir: {}\n  deadline: 2m\n  policy: {{cooldown: 1h}}\n\
         \x20 docker_groups:\n    {group}:\n      image: {image}\n      command: {}\n      ports: [8080]\n      labels: {{app: web}}\n      stop_timeout: 1s\n\
         \x20 routes:\n    web: {{kind: file_sd, path: web.json}}\n",
        rb.path().display(),
        serde_json::to_string(&cmd).unwrap(),
    );
    let v = Vigil::start_with_files(&config, &[("am.yml", &am), ("r.yml", rules)]).await;
    let e = ended(&v, "scale-out", Duration::from_secs(120)).await;
    assert_eq!(e["outcome"], "escalated", "{e:#}");
    assert!(
        e["reason"].as_str().unwrap().contains(&format!(
            "group {group} is at its maximum of 3 replicas and still needs more"
        )),
        "{e:#}"
    );
    assert_eq!(e["output"]["decision"], "at_max", "{e:#}");
    assert_eq!(e["output"]["replicas"], 3, "{e:#}");
    let running = docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=vigil.group={group}"),
    ]);
    assert_eq!(running.lines().count(), 3, "stopped at max");
    // The route lists the three replicas, each serving.
    let sd: Value =
        serde_json::from_str(&std::fs::read_to_string(v.dir.path().join("web.json")).unwrap())
            .unwrap();
    assert_eq!(sd[0]["targets"].as_array().unwrap().len(), 3, "{sd}");
    all_serve(&sd[0]["targets"]).await;
    let page = escalation_page(&pages).await;
    assert!(
        page["annotations"]["runbook_summary"]
            .as_str()
            .unwrap()
            .contains("at its maximum of 3 replicas"),
        "{page:#}"
    );
}
