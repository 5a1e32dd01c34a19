//! The self-healing demo (examples/self-healing) as a user runs it: `demo.sh` starts the web
//! container, the API group, a PostgreSQL pair behind HAProxy, the app and Vigil, and drives the
//! three scenarios with `vigil loadtest`: a container crash, an overload, a primary lost. Each is
//! detected, remediated by its runbook and verified, and the report's times agree with the
//! execution record.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_heals_its_three_incidents() {
    for t in ["docker", "haproxy", "psql"] {
        if tool(t).is_none() {
            return;
        }
    }
    if crate::pg::pg_bindir().is_none() || crate::probes::busybox_image().is_none() {
        return;
    }
    let Some(wasm) = crate::runbook_authors::build_rust_runbook("pg-failover") else {
        return;
    };
    let psycopg2 = Command::new("python3")
        .args(["-c", "import psycopg2"])
        .status()
        .is_ok_and(|s| s.success());
    if !psycopg2 {
        assert!(
            !in_ci(),
            "psycopg2 is not installed; ./scripts/test installs it"
        );
        eprintln!("SKIPPED: python3 has no psycopg2 (pip install psycopg2-binary)");
        return;
    }
    let state = tempfile::tempdir().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(state.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut cmd = Command::new(root.join("examples/self-healing/demo.sh"));
    cmd.env("VIGIL", env!("CARGO_BIN_EXE_vigil"))
        .env("DEMO_STATE", state.path().join("demo"))
        .env("WASM_DIR", wasm.parent().unwrap());
    for p in [
        "VIGIL_PORT",
        "WEB_PORT",
        "APP_PORT",
        "API_PORT",
        "PG_PORT",
        "PG1_PORT",
        "PG2_PORT",
        "STATS_PORT",
    ] {
        cmd.env(p, reserved_port().to_string());
    }
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    );
    let reports = state.path().join("demo/reports");
    assert!(
        out.status.success(),
        "demo.sh: {}\n{stdout}\n{}\n---- vigil log ----\n{}",
        out.status,
        stderr
            .lines()
            .rev()
            .take(60)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n"),
        tail(&state.path().join("demo/vigil.log"), 40)
    );
    eprintln!("{stdout}");
    for (scenario, runbook, alert) in [
        ("container-crash", "restart-container", "WebDown"),
        ("overload", "scale-out", "ApiSaturated"),
        ("primary-loss", "pg-failover", "PostgresPrimaryMissing"),
    ] {
        let read = |f: &str| -> Value {
            serde_json::from_str(&std::fs::read_to_string(reports.join(f)).unwrap()).unwrap()
        };
        let r = read(&format!("{scenario}.json"));
        let e = read(&format!("{scenario}.execution.json"))["data"].clone();
        let v = &r["vigil"];
        assert_eq!(e["runbook"], runbook, "{scenario}: {r:#}");
        assert_eq!(e["outcome"], "verified", "{scenario}: {e:#}");
        assert_eq!(v["alert"], alert, "{scenario}: {r:#}");
        let fault_ms = r["faults"][0]["at_ms"].as_i64().unwrap();
        let since = |k: &str| (e["times"][k].as_i64().unwrap() - fault_ms) as f64 / 1e3;
        let (ttd, ttm, ttr) = (
            v["time_to_detect_s"].as_f64().unwrap(),
            v["time_to_remediate_s"].as_f64().unwrap(),
            r["recovery"]["time_to_recover_s"].as_f64().unwrap(),
        );
        // The report's times are the record's: the alert's firing is the record's `detected`
        // (its startsAt), the first action its `acted`.
        assert!(
            (ttd - since("detected")).abs() < 0.5,
            "{scenario}: {ttd} vs {e:#}"
        );
        assert!(
            (ttm - since("acted")).abs() < 0.01,
            "{scenario}: {ttm} vs {e:#}"
        );
        assert!(0.0 < ttd && ttd <= ttm, "{scenario}: {r:#}");
        assert!(
            ttm <= ttr,
            "{scenario}: recovered before the runbook acted: {r:#}"
        );
        assert!(since("recovered") >= ttm, "{scenario}: {e:#}");
        // The incident hurt: errors or slow answers during it, none after.
        let after = &r["stretches"][2];
        assert_eq!(after["errors"], 0, "{scenario}: {r:#}");
        assert!(stdout.contains(scenario), "{stdout}");
    }
}
