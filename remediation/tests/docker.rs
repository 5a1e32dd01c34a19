//! `docker.*` capabilities on a real Docker Engine, called by a runbook (WAT) through the grants of
//! its binding: a restart inside the grant's scope happens, one outside it is denied and leaves the
//! container alone, a dry run changes nothing, and a resolved alert stops the action.
//!
//! Needs `docker` and Debian's static busybox (imported as a local image: nothing can be pulled). A
//! missing one skips the test outside CI and fails it under `CI=true`.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use vigil_remediation::capability::docker::DockerCapabilities;
use vigil_remediation::capability::{Grant, Registry};
use vigil_remediation::grants::{AlertCheck, GrantedDispatcher};
use vigil_remediation::sandbox::{RunStatus, Sandbox, SandboxConfig};

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

fn tool(name: &str) -> Option<PathBuf> {
    for dir in ["/usr/bin", "/bin", "/usr/sbin", "/usr/local/bin"] {
        let p = PathBuf::from(dir).join(name);
        if p.is_file() {
            return Some(p);
        }
    }
    assert!(
        !in_ci(),
        "{name} is not installed; ./scripts/test installs it"
    );
    eprintln!("SKIPPED: {name} is not installed");
    None
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "docker {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The image the e2e probe tests use too, built by tests/fixtures/docker/busybox-image.
fn busybox_image() -> Option<&'static str> {
    let busybox = tool("busybox")?;
    tool("docker")?;
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/docker/busybox-image");
    let out = Command::new(&script).arg(&busybox).output().unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Some("vigil-test-busybox:1")
}

/// Containers removed when the test ends, passed or failed.
struct Containers(Vec<String>);

impl Drop for Containers {
    fn drop(&mut self) {
        for c in &self.0 {
            let _ = Command::new("docker").args(["rm", "-f", c]).output();
        }
    }
}

fn started_at(c: &str) -> String {
    docker(&["inspect", "-f", "{{.State.StartedAt}}", c])
}

/// Restarts the container named by its input (`{"container": NAME}`, passed on as the arguments),
/// then inspects it; returns 0, or the negative status of the first call that failed.
const RESTART: &str = r#"(module
  (import "vigil" "input" (func $input (param i32 i32) (result i32)))
  (import "vigil" "call" (func $call (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "docker.restart")
  (data (i32.const 32) "docker.inspect")
  (func (export "vigil_runbook_v1") (result i32) (local $n i32) (local $s i32)
    (local.set $n (call $input (i32.const 1024) (i32.const 4096)))
    (local.set $s (call $call (i32.const 0) (i32.const 14) (i32.const 1024) (local.get $n)))
    (if (i32.lt_s (local.get $s) (i32.const 0)) (then (return (local.get $s))))
    (local.set $s (call $call (i32.const 32) (i32.const 14) (i32.const 1024) (local.get $n)))
    (if (result i32) (i32.lt_s (local.get $s) (i32.const 0))
      (then (local.get $s)) (else (i32.const 0)))))"#;

struct Resolved;

#[async_trait::async_trait]
impl AlertCheck for Resolved {
    async fn resolved(&self) -> Option<String> {
        Some("the alert resolved at 10:00:03".into())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_restart_within_the_grants_scope_only() {
    let Some(image) = busybox_image() else { return };
    let tag = format!("rb-{}", std::process::id());
    let (web, db) = (format!("vigil-{tag}-web"), format!("vigil-{tag}-db"));
    let _cleanup = Containers(vec![web.clone(), db.clone()]);
    for (name, app) in [(&web, "web"), (&db, "db")] {
        docker(&[
            "run",
            "-d",
            "--name",
            name,
            "--label",
            &format!("app={app}"),
            image,
            "/bin/busybox",
            "sleep",
            "3600",
        ]);
    }
    let (web0, db0) = (started_at(&web), started_at(&db));
    let mut registry = Registry::new();
    registry.register(Arc::new(DockerCapabilities::connect("", 30).unwrap()));
    let grants: Vec<Grant> = serde_yaml_ng::from_str(
        "- capability: docker.restart\n  scope: {labels: {app: web}}\n- capability: docker.inspect\n",
    )
    .unwrap();
    let sb = Sandbox::new(SandboxConfig {
        deadline: Duration::from_secs(60),
        call_timeout: Duration::from_secs(30),
        ..SandboxConfig::default()
    })
    .unwrap();
    let rb = sb.load(RESTART.as_bytes()).unwrap();
    let run = |container: &str, dry_run: bool, alert: Option<Arc<dyn AlertCheck>>| {
        let d = Arc::new(GrantedDispatcher::new(
            registry.clone(),
            grants.clone(),
            dry_run,
            alert,
        ));
        let input = json!({"container": container});
        let (sb, rb) = (&sb, rb.clone());
        async move { sb.run(&rb, &input, d).await }
    };

    // Inside the scope: restarted for real (a new start time), then inspected.
    let r = run(&web, false, None).await;
    assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
    assert_eq!(r.calls[0].status, "ok", "{:?}", r.calls);
    assert_eq!(r.calls[0].result, json!({"name": web, "restarted": true}));
    let inspected = &r.calls[1].result;
    assert_eq!(inspected["running"], Value::Bool(true), "{inspected}");
    assert_eq!(inspected["labels"]["app"], "web");
    assert_ne!(started_at(&web), web0, "the container was not restarted");

    // Outside the scope: denied with the reason, the container untouched.
    let r = run(&db, false, None).await;
    assert_eq!(r.exit_code, Some(-1), "{r:?}");
    assert_eq!(r.calls[0].status, "denied");
    assert_eq!(
        r.calls[0].result["error"],
        format!("container {db} is outside the grant's scope: it lacks the label app=web")
    );
    assert_eq!(started_at(&db), db0);

    // A dry run answers what it would do and changes nothing.
    let web1 = started_at(&web);
    let r = run(&web, true, None).await;
    assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
    assert_eq!(r.calls[0].result["dry_run"], true);
    assert_eq!(r.calls[0].result["target"], format!("container:{web}"));
    assert_eq!(started_at(&web), web1, "a dry run restarted the container");

    // The alert resolved before the action: refused, nothing restarted.
    let r = run(&web, false, Some(Arc::new(Resolved))).await;
    assert_eq!(r.exit_code, Some(-5), "{r:?}");
    assert_eq!(r.calls[0].status, "resolved");
    assert_eq!(
        r.calls[0].result["error"],
        "docker.restart not performed: the alert resolved at 10:00:03"
    );
    assert_eq!(started_at(&web), web1);

    // An unknown container fails the call with Docker's reason; an ungranted capability is denied.
    let r = run("vigil-no-such-container", false, None).await;
    assert_eq!(r.exit_code, Some(-2), "{r:?}");
    assert!(
        r.calls[0].result["error"]
            .as_str()
            .unwrap()
            .contains("No such container"),
        "{:?}",
        r.calls[0].result
    );
    let no_restart: Vec<Grant> = serde_yaml_ng::from_str("- capability: docker.inspect\n").unwrap();
    let d = Arc::new(GrantedDispatcher::new(
        registry.clone(),
        no_restart,
        false,
        None,
    ));
    let r = sb.run(&rb, &json!({"container": web}), d).await;
    assert_eq!(r.exit_code, Some(-1));
    assert_eq!(
        r.calls[0].result["error"],
        "docker.restart is not granted to this binding"
    );
}
