//! Instantiation of a cached runbook and the cost of a no-op host call, in the sandbox as the server
//! configures it (pooling allocator, epoch deadline, memory cap).
//!
//! `cargo run --release -p vigil-remediation --example instantiate -- [runs] [calls]`

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};
use vigil_remediation::sandbox::{CallError, Dispatcher, RunStatus, Sandbox, SandboxConfig};

/// Answers every call with an empty object: what is left is the sandbox's own cost per call
/// (reading the guest's strings, parsing the arguments, recording the call, copying the reply).
struct Noop;

#[async_trait::async_trait]
impl Dispatcher for Noop {
    async fn call(&self, _capability: &str, _args: Value) -> Result<Value, CallError> {
        Ok(json!({}))
    }
}

const EMPTY: &str = r#"(module (memory (export "memory") 1)
  (func (export "vigil_runbook_v1") (result i32) (i32.const 0)))"#;

/// Makes `n` calls of `log` (a capability with an empty object) and returns 0.
fn caller(n: u32) -> String {
    format!(
        r#"(module
  (import "vigil" "call" (func $call (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "test.noop")
  (data (i32.const 16) "{{}}")
  (func (export "vigil_runbook_v1") (result i32) (local $i i32)
    (loop $l
      (drop (call $call (i32.const 0) (i32.const 9) (i32.const 16) (i32.const 2)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const {n}))))
    (i32.const 0)))"#
    )
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5000);
    let calls: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cfg = SandboxConfig {
        host_call_budget: calls + 1,
        ..Default::default()
    };
    let sb = Sandbox::new(cfg).expect("engine");
    let t = Instant::now();
    let empty = sb.load(EMPTY.as_bytes()).expect("load");
    let compile_ms = t.elapsed().as_secs_f64() * 1e3;
    let input = json!({"abi": 1, "params": {}});
    rt.block_on(async {
        let d: Arc<dyn Dispatcher> = Arc::new(Noop);
        // Warm the pool's slots.
        for _ in 0..100 {
            sb.run(&empty, &input, d.clone()).await;
        }
        let mut inst = Vec::with_capacity(runs);
        let mut whole = Vec::with_capacity(runs);
        for _ in 0..runs {
            let t = Instant::now();
            let r = sb.run(&empty, &input, d.clone()).await;
            whole.push(t.elapsed().as_secs_f64() * 1e6);
            assert_eq!(r.status, RunStatus::Succeeded);
            inst.push(r.instantiate_us);
        }
        inst.sort_by(f64::total_cmp);
        whole.sort_by(f64::total_cmp);
        println!("compile (first load, cranelift): {compile_ms:.1} ms");
        println!(
            "instantiate a cached runbook ({runs} runs): p50 {:.1} µs, p90 {:.1} µs, p99 {:.1} µs",
            percentile(&inst, 0.5),
            percentile(&inst, 0.9),
            percentile(&inst, 0.99)
        );
        println!(
            "whole run of an empty runbook (store, instance, entry call, report): p50 {:.1} µs, p99 {:.1} µs",
            percentile(&whole, 0.5),
            percentile(&whole, 0.99)
        );
        let many = sb.load(caller(calls).as_bytes()).expect("load");
        let one = sb.load(caller(1).as_bytes()).expect("load");
        let t = Instant::now();
        let r1 = sb.run(&one, &input, d.clone()).await;
        let base = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let r = sb.run(&many, &input, d.clone()).await;
        let total = t.elapsed().as_secs_f64();
        assert_eq!(r.status, RunStatus::Succeeded, "{:?}", r.reason);
        assert_eq!(r1.status, RunStatus::Succeeded);
        assert_eq!(r.calls.len(), calls as usize);
        println!(
            "no-op host call ({calls} in one run): {:.2} µs each",
            (total - base) / (calls - 1) as f64 * 1e6
        );
    });
}
