//! The sandbox's limits against runbooks written in C (clang + wasi-libc, built by this test from
//! `tests/fixtures/c`), the way authors' code misbehaves: an endless loop, unbounded allocation, a
//! flood of calls, an ungranted capability, an action outside the grant's scope, and a WASI file
//! import. Each is stopped or refused with a clear reason. Needs clang with the wasm32-wasi target
//! (skipped outside CI without it).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use vigil_remediation::capability::process::ProcessCapabilities;
use vigil_remediation::capability::{Grant, Registry};
use vigil_remediation::grants::GrantedDispatcher;
use vigil_remediation::sandbox::{LoadError, RunReport, RunStatus, Sandbox, SandboxConfig};

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Compiles `name.c`; None (after saying so) without clang outside CI.
fn build(name: &str, out: &Path) -> Option<Vec<u8>> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let clang = ["/usr/bin/clang", "/usr/local/bin/clang"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file());
    let Some(clang) = clang else {
        assert!(
            !in_ci(),
            "clang is not installed; ./scripts/test installs it"
        );
        eprintln!("SKIPPED: clang is not installed");
        return None;
    };
    let wasm = out.join(format!("{name}.wasm"));
    let st = Command::new(clang)
        .args(["--target=wasm32-wasi", "-O1", "-mexec-model=reactor", "-I"])
        .arg(here.join("../sdk/include"))
        .arg("-o")
        .arg(&wasm)
        .arg(here.join(format!("tests/fixtures/c/{name}.c")))
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "clang {name}.c: {}",
        String::from_utf8_lossy(&st.stderr)
    );
    Some(std::fs::read(wasm).unwrap())
}

fn dispatcher(dir: &Path) -> Arc<GrantedDispatcher> {
    let mut reg = Registry::new();
    reg.register(Arc::new(
        ProcessCapabilities::new(
            serde_yaml_ng::from_str(&format!(
                "web: {{command: [touch, '{0}/web']}}\ndb: {{command: [touch, '{0}/db']}}\n",
                dir.display()
            ))
            .unwrap(),
        )
        .unwrap(),
    ));
    let grants: Vec<Grant> = serde_yaml_ng::from_str(
        "- capability: alert.annotate\n- capability: process.restart\n  scope: {names: [web]}\n",
    )
    .unwrap();
    Arc::new(GrantedDispatcher::new(reg, grants, false, None))
}

async fn run(sb: &Sandbox, wasm: &[u8], dir: &Path) -> RunReport {
    let rb = sb.load(wasm).unwrap();
    sb.run(&rb, &json!({}), dispatcher(dir)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_runbooks_that_misbehave_are_stopped_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let Some(looping) = build("loop", dir.path()) else {
        return;
    };
    let sb = Sandbox::new(SandboxConfig {
        deadline: Duration::from_millis(500),
        memory_limit: 8 << 20,
        host_call_budget: 25,
        ..SandboxConfig::default()
    })
    .unwrap();

    let r = run(&sb, &looping, dir.path()).await;
    assert_eq!(r.status, RunStatus::TimedOut, "{r:?}");
    assert!(
        r.reason
            .as_deref()
            .unwrap()
            .contains("deadline of 500ms exceeded"),
        "{r:?}"
    );

    let r = run(&sb, &build("membomb", dir.path()).unwrap(), dir.path()).await;
    assert_eq!(r.status, RunStatus::Failed, "{r:?}");
    assert!(
        r.reason
            .as_deref()
            .unwrap()
            .contains("the limit is 8192 KiB"),
        "{r:?}"
    );

    let r = run(&sb, &build("flood", dir.path()).unwrap(), dir.path()).await;
    assert_eq!(r.status, RunStatus::Failed, "{r:?}");
    assert_eq!(
        r.reason.as_deref(),
        Some("host-call budget exhausted: the runbook made more than 25 capability calls")
    );

    let r = run(&sb, &build("ungranted", dir.path()).unwrap(), dir.path()).await;
    assert_eq!(r.exit_code, Some(-1), "{r:?}");
    assert_eq!(r.calls[0].status, "denied");
    assert_eq!(
        r.calls[0].result["error"],
        "docker.restart is not granted to this binding"
    );

    let r = run(
        &sb,
        &build("outside_scope", dir.path()).unwrap(),
        dir.path(),
    )
    .await;
    assert_eq!(r.exit_code, Some(-1), "{r:?}");
    assert_eq!(r.calls[0].status, "denied");
    assert_eq!(
        r.calls[0].result["error"],
        "process db is outside the grant's scope (names: web)"
    );
    assert!(
        !dir.path().join("db").exists(),
        "the process outside the scope ran"
    );

    // fopen links wasi-libc's file layer: the first import the host does not give refuses the
    // module (path_open, fd_read, fd_fdstat_set_flags ...), named in the error.
    match sb.load(&build("wasi_file", dir.path()).unwrap()) {
        Err(e @ LoadError::ForbiddenImport { .. }) => {
            let LoadError::ForbiddenImport { module, name } = &e else {
                unreachable!()
            };
            assert_eq!(module, "wasi_snapshot_preview1");
            assert!(
                name.starts_with("fd_") || name.starts_with("path_"),
                "{name}"
            );
            assert!(
                e.to_string()
                    .contains(&format!("`wasi_snapshot_preview1::{name}`")),
                "{e}"
            );
        }
        other => panic!("{other:?}"),
    }
}
