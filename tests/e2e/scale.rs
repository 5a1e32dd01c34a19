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

pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "docker {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

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
    let _s = Service(name.clone());
    let mut args: Vec<String> = [
        "service",
        "create",
        "-d",
        "--name",
        &name,
        "--replicas",
        "1",
        "--label",
        "app=web",
        "--publish",
        "mode=host,target=8080",
        image,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(web_command("0.1"));
    docker(&args.iter().map(String::as_str).collect::<Vec<_>>());
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
    let r = call(&c, "docker.scale", json!({"service": name, "replicas": 3})).await;
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
