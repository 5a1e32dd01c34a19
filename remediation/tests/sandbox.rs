//! The sandbox against real modules (the WAT fixtures beside this file, compiled by wasmtime): what a
//! runbook may do, and every way it is stopped when it does more.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{Value, json};
use vigil_remediation::sandbox::{
    CallError, Dispatcher, LoadError, RunStatus, Sandbox, SandboxConfig,
};

/// Grants `alert.annotate` (recording the note) and `test.sleep` (sleeping `ms`); denies the rest,
/// as a binding without those grants would.
#[derive(Default)]
struct Grants {
    notes: Mutex<Vec<Value>>,
}

#[async_trait::async_trait]
impl Dispatcher for Grants {
    /// A call marked `long` may take 400 ms (as wait.until asks for its own timeout).
    fn timeout(&self, _capability: &str, args: &Value) -> Option<Duration> {
        (args["long"] == true).then_some(Duration::from_millis(400))
    }

    async fn call(&self, capability: &str, args: Value) -> Result<Value, CallError> {
        match capability {
            "alert.annotate" => {
                self.notes.lock().push(args);
                Ok(json!({"annotated": true}))
            }
            "test.sleep" => {
                let ms = args["ms"].as_u64().unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(json!({"slept_ms": ms}))
            }
            other => Err(CallError::Denied(format!(
                "{other} is not granted to this runbook"
            ))),
        }
    }
}

fn fixture(name: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("{name}.wat"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn small() -> SandboxConfig {
    SandboxConfig {
        deadline: Duration::from_millis(500),
        call_timeout: Duration::from_millis(200),
        memory_limit: 4 << 20,
        host_call_budget: 25,
        log_limit: 4 << 10,
        max_concurrent: 4,
        threads: 2,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runbook_reads_its_input_calls_a_granted_capability_logs_and_outputs() {
    let sb = Sandbox::new(small()).unwrap();
    let rb = sb.load(&fixture("ok")).unwrap();
    let grants = Arc::new(Grants::default());
    let input = json!({"alert": {"labels": {"alertname": "DiskFull"}}, "params": {"x": 1}});
    let r = sb.run(&rb, &input, grants.clone()).await;
    assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
    assert_eq!(r.exit_code, Some(0));
    assert_eq!(r.reason, None);
    assert_eq!(
        r.output.as_ref(),
        Some(&input),
        "the input came back as the output"
    );
    assert_eq!(r.calls.len(), 1, "{:?}", r.calls);
    let c = &r.calls[0];
    assert_eq!(c.capability, "alert.annotate");
    assert_eq!(c.args, json!({"note": "restarted"}));
    assert_eq!(c.status, "ok");
    assert_eq!(c.result, json!({"annotated": true}));
    assert_eq!(*grants.notes.lock(), vec![json!({"note": "restarted"})]);
    let logs: Vec<(&str, &str)> = r
        .logs
        .iter()
        .map(|l| (l.level, l.message.as_str()))
        .collect();
    assert_eq!(
        logs,
        vec![("info", "starting"), ("warn", r#"{"annotated":true}"#)]
    );
    assert!(r.instantiate_us > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_bytes_compile_once() {
    let sb = Sandbox::new(small()).unwrap();
    let a = sb.load(&fixture("ok")).unwrap();
    let b = sb.load(&fixture("ok")).unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!(sb.cached(), 1);
    sb.load(&fixture("loop")).unwrap();
    assert_eq!(sb.cached(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_loop_is_stopped_at_the_deadline_without_holding_a_thread() {
    let sb = Arc::new(Sandbox::new(small()).unwrap());
    let spinning = sb.load(&fixture("loop")).unwrap();
    let ok = sb.load(&fixture("ok")).unwrap();
    let t0 = Instant::now();
    // Two runtime threads, three tasks: the loop must yield for the others to finish first.
    let spin = {
        let sb = sb.clone();
        tokio::spawn(async move {
            sb.run(&spinning, &json!({}), Arc::new(Grants::default()))
                .await
        })
    };
    let spin2 = {
        let sb = sb.clone();
        let spinning = sb.load(&fixture("loop")).unwrap();
        tokio::spawn(async move {
            sb.run(&spinning, &json!({}), Arc::new(Grants::default()))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The caller's runtime (the server's) keeps its threads: a timer there fires while both spin.
    let server_timer = tokio::spawn(tokio::time::sleep(Duration::from_millis(20)));
    let quick = sb.run(&ok, &json!({}), Arc::new(Grants::default())).await;
    server_timer.await.unwrap();
    assert_eq!(quick.status, RunStatus::Succeeded, "{quick:?}");
    assert!(
        !spin.is_finished() && !spin2.is_finished(),
        "a run next to two spinning guests finished only after they were stopped ({:?})",
        t0.elapsed()
    );
    for r in [spin.await.unwrap(), spin2.await.unwrap()] {
        assert_eq!(r.status, RunStatus::TimedOut, "{r:?}");
        assert_eq!(r.exit_code, None);
        let reason = r.reason.unwrap();
        assert!(reason.contains("deadline of 500ms exceeded"), "{reason}");
        assert!(r.duration_ms >= 500.0, "stopped early: {}", r.duration_ms);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_past_the_limit_stops_the_run_with_the_reason() {
    let sb = Sandbox::new(small()).unwrap();
    let rb = sb.load(&fixture("membomb")).unwrap();
    let r = sb.run(&rb, &json!({}), Arc::new(Grants::default())).await;
    assert_eq!(r.status, RunStatus::Failed, "{r:?}");
    let reason = r.reason.unwrap();
    assert!(reason.contains("memory limit exceeded"), "{reason}");
    assert!(reason.contains("the limit is 4096 KiB"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_call_budget_stops_a_flood_of_calls() {
    let sb = Sandbox::new(small()).unwrap();
    let rb = sb.load(&fixture("flood")).unwrap();
    let grants = Arc::new(Grants::default());
    let r = sb.run(&rb, &json!({}), grants.clone()).await;
    assert_eq!(r.status, RunStatus::Failed, "{r:?}");
    assert_eq!(
        r.reason.as_deref(),
        Some("host-call budget exhausted: the runbook made more than 25 capability calls")
    );
    assert_eq!(r.calls.len(), 25);
    assert_eq!(grants.notes.lock().len(), 25, "no call past the budget ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ungranted_capability_is_denied_and_recorded() {
    let sb = Sandbox::new(small()).unwrap();
    let rb = sb.load(&fixture("ungranted")).unwrap();
    let r = sb.run(&rb, &json!({}), Arc::new(Grants::default())).await;
    assert_eq!(r.status, RunStatus::Failed);
    assert_eq!(r.exit_code, Some(-1), "the guest saw DENIED (-1)");
    assert_eq!(r.calls.len(), 1);
    assert_eq!(r.calls[0].capability, "docker.restart");
    assert_eq!(r.calls[0].status, "denied");
    assert_eq!(
        r.calls[0].result,
        json!({"error": "docker.restart is not granted to this runbook"})
    );
}

#[test]
fn modules_outside_the_abi_are_refused_at_load_naming_the_reason() {
    let sb = Sandbox::new(small()).unwrap();
    match sb.load(&fixture("wasi_open")) {
        Err(LoadError::ForbiddenImport { module, name }) => {
            assert_eq!(
                (module.as_str(), name.as_str()),
                ("wasi_snapshot_preview1", "path_open")
            );
        }
        other => panic!("{other:?}"),
    }
    let e = sb.load(b"\0asm\x01\0\0\0garbage").unwrap_err();
    assert!(matches!(e, LoadError::Invalid(_)), "{e}");
    let e = sb
        .load(br#"(module (memory (export "memory") 1) (func (export "main") (result i32) (i32.const 0)))"#)
        .unwrap_err();
    assert!(matches!(e, LoadError::NoEntryPoint), "{e}");
    assert!(e.to_string().contains("vigil_runbook_v1"), "{e}");
    let e = sb
        .load(br#"(module (import "vigil" "log" (func (param i32))) (memory (export "memory") 1) (func (export "vigil_runbook_v1") (result i32) (i32.const 0)))"#)
        .unwrap_err();
    assert!(matches!(e, LoadError::ImportType { .. }), "{e}");
    assert!(e.to_string().contains("(i32, i32, i32) -> ()"), "{e}");
    let e = sb
        .load(br#"(module (func (export "vigil_runbook_v1") (result i32) (i32.const 0)))"#)
        .unwrap_err();
    assert!(matches!(e, LoadError::NoMemory), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasi_stdout_and_stderr_become_logs_and_proc_exit_the_exit_code() {
    let sb = Sandbox::new(small()).unwrap();
    let rb = sb.load(&fixture("wasi_exit")).unwrap();
    let r = sb.run(&rb, &json!({}), Arc::new(Grants::default())).await;
    let logs: Vec<(&str, &str)> = r
        .logs
        .iter()
        .map(|l| (l.level, l.message.as_str()))
        .collect();
    assert_eq!(logs, vec![("info", "to stdout"), ("warn", "to stderr")]);
    assert_eq!(r.status, RunStatus::Failed);
    assert_eq!(r.exit_code, Some(3));
    assert_eq!(r.reason.as_deref(), Some("the runbook exited with 3"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_call_times_out_for_the_guest_and_the_deadline_ends_the_run() {
    let sb = Sandbox::new(small()).unwrap();
    let rb = sb.load(&fixture("slow")).unwrap();
    // Longer than the call timeout (200 ms), within the deadline: the guest sees TIMEOUT (-4).
    let r = sb
        .run(&rb, &json!({"ms": 300}), Arc::new(Grants::default()))
        .await;
    assert_eq!(r.exit_code, Some(-4), "{r:?}");
    assert_eq!(r.calls[0].status, "timeout");
    assert_eq!(
        r.calls[0].result,
        json!({"error": "test.sleep took longer than 200ms"})
    );
    // The dispatcher may give a call longer than the default timeout (within the deadline).
    let r = sb
        .run(
            &rb,
            &json!({"ms": 300, "long": true}),
            Arc::new(Grants::default()),
        )
        .await;
    assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
    assert_eq!(r.calls[0].result, json!({"slept_ms": 300}));
    // A quick call answers.
    let r = sb
        .run(&rb, &json!({"ms": 10}), Arc::new(Grants::default()))
        .await;
    assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
    assert_eq!(r.calls[0].result, json!({"slept_ms": 10}));
    // With less of the deadline left than the call timeout, the deadline ends the run mid-call.
    let cfg = SandboxConfig {
        call_timeout: Duration::from_secs(5),
        ..small()
    };
    let sb = Sandbox::new(cfg).unwrap();
    let rb = sb.load(&fixture("slow")).unwrap();
    let r = sb
        .run(&rb, &json!({"ms": 3000}), Arc::new(Grants::default()))
        .await;
    assert_eq!(r.status, RunStatus::TimedOut, "{r:?}");
    assert_eq!(
        r.reason.as_deref(),
        Some("deadline of 500ms exceeded during the test.sleep call")
    );
    assert_eq!(r.calls[0].status, "timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_beyond_the_pool_wait_for_a_slot() {
    let cfg = SandboxConfig {
        deadline: Duration::from_millis(400),
        max_concurrent: 2,
        ..small()
    };
    let sb = Arc::new(Sandbox::new(cfg).unwrap());
    let rb = sb.load(&fixture("loop")).unwrap();
    let runs: Vec<_> = (0..3)
        .map(|_| {
            let (sb, rb) = (sb.clone(), rb.clone());
            tokio::spawn(async move { sb.run(&rb, &json!({}), Arc::new(Grants::default())).await })
        })
        .collect();
    let mut queued = Vec::new();
    for r in runs {
        let r = r.await.unwrap();
        assert_eq!(r.status, RunStatus::TimedOut, "{r:?}");
        queued.push(r.queued_ms);
    }
    assert_eq!(
        queued.iter().filter(|q| **q >= 390.0).count(),
        1,
        "exactly one run waited for a slot: {queued:?}"
    );
}
