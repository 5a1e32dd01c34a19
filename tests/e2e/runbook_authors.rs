//! What a runbook author does: build the SDK's examples from source with the toolchains the README
//! names (Rust through Debian's rustc-web for wasm32-wasip1, C through clang and wasi-libc, Zig from
//! PyPI's ziglang), then `vigil runbook validate` and `vigil runbook test` them. Nothing built is
//! committed; the Rust build shares `target/wasm-examples` between runs.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::harness::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn examples() -> PathBuf {
    root().join("sdk/examples")
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Python with the `ziglang` package, or None (skipped outside CI) without it.
fn zig() -> Option<PathBuf> {
    let py = tool("python3")?;
    let ok = Command::new(&py)
        .args(["-m", "ziglang", "version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            !in_ci(),
            "ziglang is not installed; ./scripts/test installs it"
        );
        eprintln!("SKIPPED: ziglang is not installed (pip install ziglang)");
        return None;
    }
    Some(py)
}

/// Copies `name`'s manifest beside `wasm` (renamed NAME.wasm), as a deployment would place them.
fn place(dir: &Path, name: &str, wasm: &Path) -> PathBuf {
    let dst = dir.join(format!("{name}.wasm"));
    std::fs::copy(wasm, &dst).unwrap();
    std::fs::copy(
        examples().join(name).join(format!("{name}.runbook.yml")),
        dir.join(format!("{name}.runbook.yml")),
    )
    .unwrap();
    dst
}

fn vigil(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `vigil runbook validate` and `vigil runbook test --json`; answers the execution record.
fn validate_and_test(wasm: &Path, alert: &Value, params: &Value, replies: &Value) -> Value {
    let dir = wasm.parent().unwrap();
    let (ok, out) = vigil(&["runbook", "validate", wasm.to_str().unwrap()]);
    assert!(ok && out.contains("SUCCESS"), "{out}");
    let alert_f = dir.join("alert.json");
    std::fs::write(&alert_f, alert.to_string()).unwrap();
    let replies_f = dir.join("replies.json");
    std::fs::write(&replies_f, replies.to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["runbook", "test", wasm.to_str().unwrap(), "--alert"])
        .arg(&alert_f)
        .arg("--params")
        .arg(params.to_string())
        .arg("--replies")
        .arg(&replies_f)
        .arg("--json")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {text}{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(out.status.success(), "{report:#}");
    report
}

fn calls(report: &Value) -> Vec<(String, String)> {
    report["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["capability"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn alert() -> Value {
    json!({"labels": {"alertname": "WebDown", "instance": "web-1", "container": "web-1"},
           "annotations": {"summary": "web-1 is down"}})
}

/// The Debian toolchain (rustc-web, cargo-web) at /usr/bin, or None (skipped outside CI).
fn debian_cargo() -> Option<PathBuf> {
    // Debian's rustc-web and cargo-web at /usr/bin, not rustup's: they have the wasm32-wasip1 target.
    let cargo = PathBuf::from("/usr/bin/cargo");
    for p in [&cargo, &PathBuf::from("/usr/bin/rustc")] {
        if !p.is_file() {
            assert!(
                !in_ci(),
                "{} is missing; ./scripts/test installs rustc-web and cargo-web",
                p.display()
            );
            eprintln!(
                "SKIPPED: {} is missing (apt-get install rustc-web cargo-web rust-web-src)",
                p.display()
            );
            return None;
        }
    }
    Some(cargo)
}

/// Builds the Rust examples of sdk/examples (one workspace) for wasm32-wasip1 and answers the
/// module of `name` (`restart-container`, `pg-failover`, `scale-out`, `scale-in`), or None
/// (skipped outside CI) without the toolchain. Tests building at once wait on cargo's lock.
pub fn build_rust_runbook(name: &str) -> Option<PathBuf> {
    let cargo = debian_cargo()?;
    let target = root().join("target/wasm-examples");
    run(
        Command::new(&cargo)
            .current_dir(examples())
            .env("RUSTC", "/usr/bin/rustc")
            .env("RUSTC_BOOTSTRAP", "1")
            .env("RUSTFLAGS", "-L /usr/lib/wasm32-wasi -C linker=wasm-ld")
            .env("CARGO_TARGET_DIR", &target)
            .env_remove("RUSTUP_TOOLCHAIN")
            .env_remove("CARGO")
            .args([
                "build",
                "--release",
                "--locked",
                "--target",
                "wasm32-wasip1",
                "-Zbuild-std=std,panic_abort",
            ]),
        "cargo build of the Rust examples in sdk/examples",
    );
    Some(target.join(format!(
        "wasm32-wasip1/release/{}.wasm",
        name.replace('-', "_")
    )))
}

/// sdk/examples/restart-container built for wasm32-wasip1.
pub fn build_rust_example() -> Option<PathBuf> {
    build_rust_runbook("restart-container")
}

/// Places a Rust example's module and manifest in `dir` (a runbook directory).
pub fn place_rust_runbook(dir: &Path, name: &str) -> Option<()> {
    let wasm = build_rust_runbook(name)?;
    place(dir, name, &wasm);
    Some(())
}

/// The examples' own unit tests (their decision logic), on the host.
#[test]
fn the_rust_examples_pass_their_unit_tests() {
    let Some(cargo) = debian_cargo() else { return };
    run(
        Command::new(&cargo)
            .current_dir(examples())
            .env("RUSTC", "/usr/bin/rustc")
            .env("RUSTDOC", "/usr/bin/rustdoc")
            .env("CARGO_TARGET_DIR", root().join("target/wasm-examples"))
            .env_remove("RUSTUP_TOOLCHAIN")
            .env_remove("CARGO")
            .args(["test", "--locked", "--lib"]),
        "cargo test of the Rust examples in sdk/examples",
    );
}

/// pg-failover offline (a dry run): the primary is down and the replica within the bound, so it
/// would fence, promote and repoint, in that order; nothing was promoted, so no write is checked.
#[test]
fn the_failover_example_validates_and_tests() {
    let Some(built) = build_rust_runbook("pg-failover") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let wasm = place(dir.path(), "pg-failover", &built);
    let status = json!({"cluster": "main", "primaries": [], "writable": [], "replicas": ["pg2"], "down": ["pg1"],
        "nodes": [
            {"name": "pg1", "address": "10.0.0.1:5432", "up": false, "error": "connection refused"},
            {"name": "pg2", "address": "10.0.0.2:5432", "up": true, "role": "replica", "lsn": 5000, "read_only": true}]});
    let replies = json!({
        "postgres.status": status,
        "query.promql": {"resultType": "vector", "result": [{"metric": {}, "value": [1700000000, "5100"]}]},
        "route.get": {"route": "writer", "targets": ["10.0.0.1:5432"]}
    });
    let alert =
        json!({"labels": {"alertname": "PostgresPrimaryMissing", "job": "pg"}, "annotations": {}});
    let params = json!({"cluster": "main", "route": "writer", "job": "pg", "max_lag_bytes": 1000});
    let r = validate_and_test(&wasm, &alert, &params, &replies);
    assert_eq!(r["status"], "succeeded", "{r:#}");
    assert_eq!(
        calls(&r).into_iter().map(|c| c.0).collect::<Vec<_>>(),
        crate::failover::FAILOVER_STEPS[..6]
    );
    assert_eq!(
        r["calls"][1]["args"]["query"],
        "max(max_over_time(vigil_probe_pg_wal_lsn_bytes{job=\"pg\"}[5m]))"
    );
    assert_eq!(
        r["calls"][2]["args"],
        json!({"cluster": "main", "node": "pg1"})
    );
    assert_eq!(r["calls"][3]["args"]["node"], "pg2");
    assert_eq!(
        r["calls"][5]["args"],
        json!({"route": "writer", "targets": ["10.0.0.2:5432"]})
    );
    assert_eq!(r["output"]["decision"], "failover", "{r:#}");
    assert_eq!(r["output"]["dry_run"], true, "{r:#}");
    assert_eq!(r["output"]["promoted"], "pg2", "{r:#}");
    assert_eq!(r["output"]["lag_bytes"], 100, "{r:#}");
    // Past the bound (the cluster reached 5100, the replica has 5000): refused before any action.
    let replies_f = dir.path().join("replies.json");
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args([
            "runbook",
            "test",
            wasm.to_str().unwrap(),
            "--json",
            "--alert",
        ])
        .arg(dir.path().join("alert.json"))
        .arg("--params")
        .arg(json!({"cluster": "main", "job": "pg", "max_lag_bytes": 50}).to_string())
        .arg("--replies")
        .arg(&replies_f)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        calls(&r).into_iter().map(|c| c.0).collect::<Vec<_>>(),
        ["postgres.status", "query.promql"]
    );
    assert_eq!(r["output"]["decision"], "refused", "{r:#}");
    assert!(
        r["output"]["reason"]
            .as_str()
            .unwrap()
            .contains("pg2 lags 100 bytes"),
        "{r:#}"
    );
}

#[test]
fn the_rust_example_builds_validates_and_tests() {
    let Some(built) = build_rust_example() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let wasm = place(dir.path(), "restart-container", &built);
    let r = validate_and_test(
        &wasm,
        &alert(),
        &json!({"container": "web-1"}),
        &json!({"docker.inspect": {"name": "web-1", "running": true, "restart_count": 0}}),
    );
    assert_eq!(r["status"], "succeeded", "{r:#}");
    assert_eq!(
        calls(&r),
        [
            ("docker.inspect".into(), "ok".into()),
            ("docker.restart".into(), "ok".into()),
            ("docker.inspect".into(), "ok".into())
        ]
    );
    assert_eq!(
        r["calls"][1]["args"],
        json!({"container": "web-1", "timeout_seconds": 10})
    );
    assert_eq!(r["calls"][1]["result"]["dry_run"], true);
    assert_eq!(
        r["output"],
        json!({"container": "web-1", "restarted": true, "healthy": true})
    );
    // Without the container parameter the manifest refuses the run before it starts.
    let (ok, out) = vigil(&[
        "runbook",
        "test",
        wasm.to_str().unwrap(),
        "--alert",
        dir.path().join("alert.json").to_str().unwrap(),
    ]);
    assert!(
        !ok && out.contains("parameter container is required"),
        "{out}"
    );
}

#[test]
fn the_c_example_builds_validates_and_tests() {
    let Some(clang) = tool("clang") else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("built.wasm");
    run(
        Command::new(&clang)
            .args(["--target=wasm32-wasi", "-O2", "-mexec-model=reactor", "-I"])
            .arg(root().join("sdk/include"))
            .arg("-o")
            .arg(&out)
            .arg(examples().join("diagnose/diagnose.c")),
        "clang of sdk/examples/diagnose",
    );
    let wasm = place(dir.path(), "diagnose", &out);
    let replies = json!({
        "query.promql": {"resultType": "vector", "result": [
            {"metric": {"__name__": "up", "instance": "web-1"}, "value": [1700000000, "0"]}]},
        "alert.annotate": {"annotated": true}
    });
    let r = validate_and_test(
        &wasm,
        &alert(),
        &json!({"query": "up{instance=\"web-1\"}"}),
        &replies,
    );
    assert_eq!(r["status"], "succeeded", "{r:#}");
    assert_eq!(
        calls(&r),
        [
            ("query.promql".into(), "ok".into()),
            ("alert.annotate".into(), "ok".into())
        ]
    );
    assert_eq!(
        r["calls"][0]["args"],
        json!({"query": "up{instance=\"web-1\"}"})
    );
    assert_eq!(
        r["calls"][1]["args"],
        json!({"note": "diagnose: up{instance=\"web-1\"} returned 1 series"})
    );
    assert_eq!(
        r["output"],
        json!({"query": "up{instance=\"web-1\"}", "series": 1})
    );
    // A failing query: the runbook reports it and fails.
    let r2 = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args([
            "runbook",
            "test",
            wasm.to_str().unwrap(),
            "--json",
            "--alert",
        ])
        .arg(dir.path().join("alert.json"))
        .args(["--params", r#"{"query":"up"}"#])
        .output()
        .unwrap();
    assert!(!r2.status.success());
    let r2: Value = serde_json::from_slice(&r2.stdout).unwrap();
    assert_eq!(r2["exit_code"], 4, "{r2:#}");
    assert_eq!(r2["calls"][0]["status"], "failed");
    assert!(
        r2["logs"][0]["message"]
            .as_str()
            .unwrap()
            .contains("no recorded reply for query.promql"),
        "{r2:#}"
    );
}

#[test]
fn the_zig_example_builds_validates_and_tests() {
    let Some(py) = zig() else { return };
    let dir = tempfile::tempdir().unwrap();
    for f in [
        examples().join("http-webhook/http-webhook.zig"),
        root().join("sdk/include/vigil_runbook.zig"),
    ] {
        std::fs::copy(&f, dir.path().join(f.file_name().unwrap())).unwrap();
    }
    run(
        Command::new(&py)
            .current_dir(dir.path())
            .env("ZIG_GLOBAL_CACHE_DIR", root().join("target/zig-cache"))
            .args([
                "-m",
                "ziglang",
                "build-exe",
                "http-webhook.zig",
                "-target",
                "wasm32-wasi",
                "-O",
                "ReleaseSmall",
                "-fno-entry",
                "-rdynamic",
                "--name",
                "built",
            ]),
        "zig build-exe of sdk/examples/http-webhook",
    );
    let wasm = place(dir.path(), "http-webhook", &dir.path().join("built.wasm"));
    let r = validate_and_test(
        &wasm,
        &alert(),
        &json!({"url": "https://hooks.example/alert"}),
        &json!({}),
    );
    assert_eq!(r["status"], "succeeded", "{r:#}");
    assert_eq!(calls(&r), [("http.request".into(), "ok".into())]);
    let args = &r["calls"][0]["args"];
    assert_eq!(args["method"], "POST");
    assert_eq!(args["url"], "https://hooks.example/alert");
    assert_eq!(args["json"]["labels"]["alertname"], "WebDown");
    assert_eq!(args["json"]["annotations"]["summary"], "web-1 is down");
    assert_eq!(r["calls"][0]["result"]["dry_run"], true);
}
