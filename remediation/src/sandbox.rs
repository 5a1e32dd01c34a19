//! The WebAssembly sandbox a runbook runs in: wasmtime with a pooling allocator and a compiled-module
//! cache, one wall-clock deadline per run (epoch interruption for the guest's own code, a timeout
//! around every host call), a memory cap, a host-call budget, and nothing but the ABI's imports
//! (sdk/README.md). What a capability call does is the [`Dispatcher`]'s business: the sandbox only
//! moves JSON between the guest and it, and records every call.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::Serialize;
use serde_json::Value;
use wasmtime::{
    Caller, Config, Engine, Extern, InstanceAllocationStrategy, InstancePre, Linker, Module,
    PoolingAllocationConfig, ResourceLimiter, Store, Trap, UpdateDeadline,
};

use crate::abi;

/// Limits of one run and of the sandbox as a whole.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Wall-clock time a run may take, host calls included.
    pub deadline: Duration,
    /// Time one host call may take (within what is left of the deadline).
    pub call_timeout: Duration,
    /// Linear memory a run may have, in bytes.
    pub memory_limit: usize,
    /// Capability calls (`call`) a run may make.
    pub host_call_budget: u32,
    /// `log`, `fd_write` and `output` bytes a run may record; past it lines are dropped and counted.
    pub log_limit: usize,
    /// Runs that may be live at once (pool slots).
    pub max_concurrent: u32,
    /// Threads the guests run on (their own runtime, apart from the server's).
    pub threads: usize,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            deadline: Duration::from_secs(60),
            call_timeout: Duration::from_secs(15),
            memory_limit: 32 << 20,
            host_call_budget: 200,
            log_limit: 64 << 10,
            max_concurrent: 16,
            threads: 2,
        }
    }
}

/// Why a capability call did not return a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// Not granted to this binding, or outside the grant's scope.
    Denied(String),
    /// The capability ran and failed.
    Failed(String),
    /// Unknown capability or arguments it cannot take.
    BadRequest(String),
    /// The alert resolved: the host refuses to act on it.
    Resolved(String),
}

impl CallError {
    fn status(&self) -> i32 {
        match self {
            CallError::Denied(_) => abi::DENIED,
            CallError::Failed(_) => abi::FAILED,
            CallError::BadRequest(_) => abi::BAD_REQUEST,
            CallError::Resolved(_) => abi::RESOLVED,
        }
    }

    /// The status as the execution record writes it.
    fn name(&self) -> &'static str {
        match self {
            CallError::Denied(_) => "denied",
            CallError::Failed(_) => "failed",
            CallError::BadRequest(_) => "bad_request",
            CallError::Resolved(_) => "resolved",
        }
    }

    /// The reason, in words.
    pub fn message(&self) -> &str {
        match self {
            CallError::Denied(m)
            | CallError::Failed(m)
            | CallError::BadRequest(m)
            | CallError::Resolved(m) => m,
        }
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

/// Performs the capability calls of one run (grants, scopes and drivers live behind it).
#[async_trait::async_trait]
pub trait Dispatcher: Send + Sync {
    async fn call(&self, capability: &str, args: Value) -> Result<Value, CallError>;

    /// How long this call may take, when not the sandbox's `call_timeout` (still capped by the
    /// run's deadline).
    fn timeout(&self, _capability: &str, _args: &Value) -> Option<Duration> {
        None
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// The entry point returned 0 (or the guest called `proc_exit(0)`).
    Succeeded,
    /// The entry point returned another value, or the guest trapped, or a limit stopped it.
    Failed,
    /// The run's deadline passed.
    TimedOut,
}

#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    /// Order among the run's log lines and calls.
    pub seq: u32,
    /// Milliseconds since the run started.
    pub at_ms: u64,
    pub level: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CallRecord {
    /// Order among the run's log lines and calls.
    pub seq: u32,
    pub at_ms: u64,
    pub capability: String,
    pub args: Value,
    /// `ok`, `denied`, `failed`, `bad_request`, `timeout` or `resolved`.
    pub status: &'static str,
    pub result: Value,
    pub duration_ms: f64,
}

/// Everything a run did, for the execution record.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub status: RunStatus,
    /// The entry point's return value or the `proc_exit` code.
    pub exit_code: Option<i32>,
    /// Why the run failed or was stopped, in words.
    pub reason: Option<String>,
    pub calls: Vec<CallRecord>,
    pub logs: Vec<LogLine>,
    /// Log bytes dropped past the log limit.
    pub logs_dropped: usize,
    pub output: Option<Value>,
    /// Time spent waiting for a free sandbox slot before the run started.
    pub queued_ms: f64,
    pub instantiate_us: f64,
    pub duration_ms: f64,
}

/// A runbook module, compiled and linked, ready to instantiate.
pub struct Runbook {
    pre: InstancePre<RunState>,
    initialize: bool,
}

impl std::fmt::Debug for Runbook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runbook")
            .field("initialize", &self.initialize)
            .finish_non_exhaustive()
    }
}

/// Why a module cannot be a runbook.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("not a valid WebAssembly module: {0}")]
    Invalid(String),
    #[error(
        "imports `{module}::{name}`, which runbooks cannot use (ABI v1 provides the `vigil` imports and a few inert WASI functions; see sdk/README.md)"
    )]
    ForbiddenImport { module: String, name: String },
    #[error("import `{module}::{name}` has the wrong type: {detail}")]
    ImportType {
        module: String,
        name: String,
        detail: String,
    },
    #[error(
        "exports no `{}` function (ABI v1 entry point, `() -> i32`)",
        abi::ENTRY_V1
    )]
    NoEntryPoint,
    #[error("`{}` must have type `() -> i32`", abi::ENTRY_V1)]
    EntryType,
    #[error("exports no memory named `memory`")]
    NoMemory,
}

/// Per-run state inside the store.
pub struct RunState {
    started: Instant,
    deadline: Instant,
    cfg: SandboxConfig,
    input: Vec<u8>,
    last_result: Vec<u8>,
    calls_left: u32,
    /// The next event's sequence number.
    seq: u32,
    dispatcher: Arc<dyn Dispatcher>,
    calls: Vec<CallRecord>,
    logs: Vec<LogLine>,
    log_bytes: usize,
    logs_dropped: usize,
    output: Option<Value>,
    /// Why the sandbox stopped the guest, when it did (a limit, the deadline, `proc_exit`).
    stop: Option<Stop>,
    memory_limit: usize,
}

#[derive(Debug, Clone)]
enum Stop {
    Exit(i32),
    TimedOut(String),
    Limit(String),
}

impl ResourceLimiter for RunState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_limit {
            let reason = format!(
                "memory limit exceeded: the runbook asked for {} KiB of linear memory, the limit is {} KiB",
                desired >> 10,
                self.memory_limit >> 10
            );
            self.stop = Some(Stop::Limit(reason.clone()));
            return Err(wasmtime::Error::msg(reason));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > TABLE_ELEMENTS {
            let reason =
                format!("table limit exceeded: {desired} elements, the limit is {TABLE_ELEMENTS}");
            self.stop = Some(Stop::Limit(reason.clone()));
            return Err(wasmtime::Error::msg(reason));
        }
        Ok(true)
    }
}

impl RunState {
    fn next_seq(&mut self) -> u32 {
        self.seq += 1;
        self.seq
    }

    fn at_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn record_log(&mut self, level: &'static str, bytes: &[u8]) {
        if self.log_bytes + bytes.len() > self.cfg.log_limit {
            self.logs_dropped += bytes.len();
            return;
        }
        self.log_bytes += bytes.len();
        let message = String::from_utf8_lossy(bytes)
            .trim_end_matches('\n')
            .to_string();
        let at_ms = self.at_ms();
        let seq = self.next_seq();
        self.logs.push(LogLine {
            seq,
            at_ms,
            level,
            message,
        });
    }
}

/// Table elements a runbook may have (function tables of compiled C and Rust are small).
const TABLE_ELEMENTS: usize = 20_000;
/// Epoch ticks per second: the deadline's resolution, and how often a busy guest yields.
const TICK: Duration = Duration::from_millis(10);

/// The engine, its epoch ticker, the linker with the ABI's imports and the module cache.
pub struct Sandbox {
    engine: Engine,
    linker: Linker<RunState>,
    cfg: SandboxConfig,
    cache: Mutex<HashMap<u128, Arc<Runbook>>>,
    /// One permit per pool slot: a run beyond them waits instead of failing to instantiate.
    slots: tokio::sync::Semaphore,
    stop_ticker: Arc<AtomicBool>,
    /// The guests' own runtime. Its scheduler polls timers and I/O and takes new runs from the
    /// shared queue at every task switch, so a host call's timeout fires on time and a new run starts
    /// at once even while other guests compute on its threads (each yields every epoch tick).
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
        // Dropped from async code too: never block on the guests' threads here.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Sandbox {
    pub fn new(cfg: SandboxConfig) -> anyhow::Result<Sandbox> {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_core_instances(cfg.max_concurrent)
            .total_memories(cfg.max_concurrent)
            .total_tables(cfg.max_concurrent)
            .total_stacks(cfg.max_concurrent)
            .max_memory_size(cfg.memory_limit)
            .table_elements(TABLE_ELEMENTS)
            .max_unused_warm_slots(cfg.max_concurrent.min(4));
        let mut config = Config::new();
        config
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
            // Reserve only what the memory limit allows, with guard pages for bounds checks.
            .memory_reservation(cfg.memory_limit.next_power_of_two() as u64)
            .memory_guard_size(64 << 10)
            .memory_reservation_for_growth(0)
            .max_wasm_stack(512 << 10);
        let engine = Engine::new(&config).map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let stop_ticker = Arc::new(AtomicBool::new(false));
        {
            let engine = engine.clone();
            let stop = stop_ticker.clone();
            std::thread::Builder::new()
                .name("vigil-runbook-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(TICK);
                        engine.increment_epoch();
                    }
                })?;
        }
        let mut linker = Linker::new(&engine);
        define_imports(&mut linker).map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cfg.threads.max(1))
            .thread_name("vigil-runbook")
            .event_interval(1)
            .global_queue_interval(1)
            .enable_all()
            .build()?;
        Ok(Sandbox {
            runtime: Some(runtime),
            engine,
            linker,
            cfg: cfg.clone(),
            cache: Mutex::new(HashMap::new()),
            slots: tokio::sync::Semaphore::new(cfg.max_concurrent as usize),
            stop_ticker,
        })
    }

    pub fn config(&self) -> &SandboxConfig {
        &self.cfg
    }

    /// Compiles and checks a module, or returns the cached one for the same bytes.
    pub fn load(&self, wasm: &[u8]) -> Result<Arc<Runbook>, LoadError> {
        let key = xxhash_rust::xxh3::xxh3_128(wasm);
        if let Some(r) = self.cache.lock().get(&key) {
            return Ok(r.clone());
        }
        let module =
            Module::new(&self.engine, wasm).map_err(|e| LoadError::Invalid(format!("{e:#}")))?;
        check_module(&module)?;
        let pre = self
            .linker
            .instantiate_pre(&module)
            .map_err(|e| LoadError::Invalid(format!("{e:#}")))?;
        let initialize = module
            .get_export("_initialize")
            .is_some_and(|e| e.func().is_some());
        let r = Arc::new(Runbook { pre, initialize });
        self.cache.lock().insert(key, r.clone());
        Ok(r)
    }

    /// Compiled modules in the cache.
    pub fn cached(&self) -> usize {
        self.cache.lock().len()
    }

    /// Runs a runbook once with `input` (the JSON document of sdk/README.md).
    ///
    /// The guest runs on the sandbox's own threads (see [`Sandbox::new`]), never on the caller's
    /// runtime: a guest that computes does not delay the server's requests, timers or alerts.
    pub async fn run(
        &self,
        runbook: &Arc<Runbook>,
        input: &Value,
        dispatcher: Arc<dyn Dispatcher>,
    ) -> RunReport {
        let queued = Instant::now();
        // Never closed, so acquiring only waits.
        let _slot = self.slots.acquire().await.ok();
        let queued_ms = queued.elapsed().as_secs_f64() * 1e3;
        let job = execute(
            self.engine.clone(),
            self.cfg.clone(),
            runbook.clone(),
            serde_json::to_vec(input).unwrap_or_default(),
            dispatcher,
            queued_ms,
        );
        let handle = match &self.runtime {
            Some(rt) => rt.spawn(job),
            None => unreachable!("the runtime lives as long as the sandbox"),
        };
        match handle.await {
            Ok(report) => report,
            Err(e) => RunReport {
                status: RunStatus::Failed,
                exit_code: None,
                reason: Some(format!("the sandbox lost the run: {e}")),
                calls: Vec::new(),
                logs: Vec::new(),
                logs_dropped: 0,
                output: None,
                queued_ms,
                instantiate_us: 0.0,
                duration_ms: 0.0,
            },
        }
    }
}

/// One run, on the sandbox's runtime.
async fn execute(
    engine: Engine,
    cfg: SandboxConfig,
    runbook: Arc<Runbook>,
    input: Vec<u8>,
    dispatcher: Arc<dyn Dispatcher>,
    queued_ms: f64,
) -> RunReport {
    {
        let started = Instant::now();
        let state = RunState {
            started,
            deadline: started + cfg.deadline,
            cfg: cfg.clone(),
            input,
            last_result: Vec::new(),
            calls_left: cfg.host_call_budget,
            seq: 0,
            dispatcher,
            calls: Vec::new(),
            logs: Vec::new(),
            log_bytes: 0,
            logs_dropped: 0,
            output: None,
            stop: None,
            memory_limit: cfg.memory_limit,
        };
        let mut store = Store::new(&engine, state);
        store.limiter(|s| s as &mut dyn ResourceLimiter);
        store.set_epoch_deadline(1);
        // Each tick: past the deadline the guest traps; before it, the guest yields to the executor
        // so a busy loop never holds a runtime thread for more than one tick.
        store.epoch_deadline_callback(|ctx| {
            let s = ctx.data();
            if Instant::now() >= s.deadline {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        let result: wasmtime::Result<(f64, i32)> = async {
            let instance = runbook.pre.instantiate_async(&mut store).await?;
            let inst_us = started.elapsed().as_secs_f64() * 1e6;
            if runbook.initialize {
                let init = instance.get_typed_func::<(), ()>(&mut store, "_initialize")?;
                init.call_async(&mut store, ()).await?;
            }
            let entry = instance.get_typed_func::<(), i32>(&mut store, abi::ENTRY_V1)?;
            let code = entry.call_async(&mut store, ()).await?;
            wasmtime::Result::Ok((inst_us, code))
        }
        .await;
        let duration_ms = started.elapsed().as_secs_f64() * 1e3;
        let deadline_passed = Instant::now() >= store.data().deadline;
        let s = store.into_data();
        let (status, exit_code, reason, instantiate_us) = match result {
            Ok((us, 0)) => (RunStatus::Succeeded, Some(0), None, us),
            Ok((us, code)) => (
                RunStatus::Failed,
                Some(code),
                Some(format!("the runbook returned {code}")),
                us,
            ),
            Err(e) => {
                let (status, code, reason) = match (&s.stop, e.downcast_ref::<Trap>()) {
                    (Some(Stop::Exit(0)), _) => (RunStatus::Succeeded, Some(0), None),
                    (Some(Stop::Exit(c)), _) => (
                        RunStatus::Failed,
                        Some(*c),
                        Some(format!("the runbook exited with {c}")),
                    ),
                    (Some(Stop::TimedOut(r)), _) => (RunStatus::TimedOut, None, Some(r.clone())),
                    (Some(Stop::Limit(r)), _) => (RunStatus::Failed, None, Some(r.clone())),
                    (None, Some(Trap::Interrupt)) if deadline_passed => (
                        RunStatus::TimedOut,
                        None,
                        Some(format!(
                            "deadline of {} exceeded while the runbook was running",
                            humantime::format_duration(cfg.deadline)
                        )),
                    ),
                    (None, Some(Trap::StackOverflow)) => (
                        RunStatus::Failed,
                        None,
                        Some("stack overflow in the runbook".to_string()),
                    ),
                    (None, _) => (
                        RunStatus::Failed,
                        None,
                        Some(format!("the runbook trapped: {e:#}")),
                    ),
                };
                (status, code, reason, 0.0)
            }
        };
        // A runbook that fails by its own decision says why in its last error line (the SDKs
        // log the error they return): that is the run's reason, beside the exit code.
        let reason = match (reason, exit_code) {
            (Some(r), Some(c)) if c != 0 => {
                match s.logs.iter().rev().find(|l| l.level == "error") {
                    Some(l) => Some(format!("{r}: {}", l.message)),
                    None => Some(r),
                }
            }
            (r, _) => r,
        };
        RunReport {
            status,
            exit_code,
            reason,
            calls: s.calls,
            logs: s.logs,
            logs_dropped: s.logs_dropped,
            output: s.output,
            queued_ms,
            instantiate_us,
            duration_ms,
        }
    }
}

/// Rejects modules whose imports or exports do not fit ABI v1, naming the offending item.
fn check_module(module: &Module) -> Result<(), LoadError> {
    for imp in module.imports() {
        let (m, n) = (imp.module(), imp.name());
        let Some(want) = abi::import_type(m, n) else {
            return Err(LoadError::ForbiddenImport {
                module: m.to_string(),
                name: n.to_string(),
            });
        };
        let ok = match imp.ty() {
            wasmtime::ExternType::Func(f) => {
                let params: Vec<_> = f.params().map(|p| p.to_string()).collect();
                let results: Vec<_> = f.results().map(|p| p.to_string()).collect();
                params == want.0 && results == want.1
            }
            _ => false,
        };
        if !ok {
            return Err(LoadError::ImportType {
                module: m.to_string(),
                name: n.to_string(),
                detail: format!(
                    "expected a function ({}) -> ({})",
                    want.0.join(", "),
                    want.1.join(", ")
                ),
            });
        }
    }
    match module.get_export(abi::ENTRY_V1) {
        None => return Err(LoadError::NoEntryPoint),
        Some(wasmtime::ExternType::Func(f)) => {
            let p = f.params().count();
            let r: Vec<_> = f.results().map(|t| t.to_string()).collect();
            if p != 0 || r != ["i32"] {
                return Err(LoadError::EntryType);
            }
        }
        Some(_) => return Err(LoadError::EntryType),
    }
    if !matches!(
        module.get_export("memory"),
        Some(wasmtime::ExternType::Memory(_))
    ) {
        return Err(LoadError::NoMemory);
    }
    Ok(())
}

fn memory(caller: &mut Caller<'_, RunState>) -> wasmtime::Result<wasmtime::Memory> {
    match caller.get_export("memory") {
        Some(Extern::Memory(m)) => Ok(m),
        _ => Err(wasmtime::Error::msg("the runbook exports no memory")),
    }
}

fn read_bytes(caller: &mut Caller<'_, RunState>, ptr: i32, len: i32) -> wasmtime::Result<Vec<u8>> {
    let mem = memory(caller)?;
    let (ptr, len) = (ptr as u32 as usize, len as u32 as usize);
    let data = mem.data(&caller);
    match data.get(ptr..ptr.saturating_add(len)) {
        Some(b) => Ok(b.to_vec()),
        None => Err(wasmtime::Error::msg(format!(
            "the runbook passed bytes {ptr}..{} outside its memory ({} bytes)",
            ptr.saturating_add(len),
            data.len()
        ))),
    }
}

/// Copies `src` to `buf` if it fits in `cap`; returns the length of `src` either way.
fn copy_out(
    caller: &mut Caller<'_, RunState>,
    src: &[u8],
    buf: i32,
    cap: i32,
) -> wasmtime::Result<i32> {
    let (buf, cap) = (buf as u32 as usize, cap as u32 as usize);
    if src.len() <= cap && !src.is_empty() {
        let mem = memory(caller)?;
        let data = mem.data_mut(&mut *caller);
        let Some(dst) = data.get_mut(buf..buf + src.len()) else {
            return Err(wasmtime::Error::msg(format!(
                "the runbook passed a buffer {buf}..{} outside its memory",
                buf + src.len()
            )));
        };
        dst.copy_from_slice(src);
    }
    Ok(src.len() as i32)
}

fn stop(caller: &mut Caller<'_, RunState>, why: Stop) -> wasmtime::Error {
    let msg = match &why {
        Stop::Exit(c) => format!("exit {c}"),
        Stop::TimedOut(r) | Stop::Limit(r) => r.clone(),
    };
    caller.data_mut().stop = Some(why);
    wasmtime::Error::msg(msg)
}

fn define_imports(linker: &mut Linker<RunState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        abi::MODULE,
        "input",
        |mut caller: Caller<'_, RunState>, buf: i32, cap: i32| {
            let input = std::mem::take(&mut caller.data_mut().input);
            let r = copy_out(&mut caller, &input, buf, cap);
            caller.data_mut().input = input;
            r
        },
    )?;
    linker.func_wrap(
        abi::MODULE,
        "result",
        |mut caller: Caller<'_, RunState>, buf: i32, cap: i32| {
            let last = std::mem::take(&mut caller.data_mut().last_result);
            let r = copy_out(&mut caller, &last, buf, cap);
            caller.data_mut().last_result = last;
            r
        },
    )?;
    linker.func_wrap(
        abi::MODULE,
        "log",
        |mut caller: Caller<'_, RunState>,
         level: i32,
         ptr: i32,
         len: i32|
         -> wasmtime::Result<()> {
            let bytes = read_bytes(&mut caller, ptr, len)?;
            let level = match level {
                0 => "debug",
                1 => "info",
                2 => "warn",
                _ => "error",
            };
            caller.data_mut().record_log(level, &bytes);
            Ok(())
        },
    )?;
    linker.func_wrap(
        abi::MODULE,
        "output",
        |mut caller: Caller<'_, RunState>, ptr: i32, len: i32| -> wasmtime::Result<()> {
            let bytes = read_bytes(&mut caller, ptr, len)?;
            let v = serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
            caller.data_mut().output = Some(v);
            Ok(())
        },
    )?;
    linker.func_wrap_async(
        abi::MODULE,
        "call",
        |mut caller: Caller<'_, RunState>, (np, nl, ap, al): (i32, i32, i32, i32)| {
            Box::new(async move { host_call(&mut caller, np, nl, ap, al).await })
        },
    )?;
    // The inert WASI functions a libc links in (sdk/README.md, "No ambient authority").
    linker.func_wrap(
        abi::WASI,
        "fd_write",
        |mut caller: Caller<'_, RunState>,
         fd: i32,
         iovs: i32,
         n: i32,
         written: i32|
         -> wasmtime::Result<i32> {
            if fd != 1 && fd != 2 {
                return Ok(abi::WASI_EBADF);
            }
            let mut total = Vec::new();
            for i in 0..n.max(0) {
                let iov = read_bytes(&mut caller, iovs + i * 8, 8)?;
                let ptr = i32::from_le_bytes(iov[0..4].try_into().unwrap_or_default());
                let len = i32::from_le_bytes(iov[4..8].try_into().unwrap_or_default());
                total.extend(read_bytes(&mut caller, ptr, len)?);
            }
            let level = if fd == 1 { "info" } else { "warn" };
            caller.data_mut().record_log(level, &total);
            let n = (total.len() as u32).to_le_bytes();
            let mem = memory(&mut caller)?;
            mem.write(&mut caller, written as u32 as usize, &n)
                .map_err(|_| {
                    wasmtime::Error::msg("fd_write: the written-count pointer is outside memory")
                })?;
            Ok(0)
        },
    )?;
    linker.func_wrap(
        abi::WASI,
        "proc_exit",
        |mut caller: Caller<'_, RunState>, code: i32| -> wasmtime::Result<()> {
            Err(stop(&mut caller, Stop::Exit(code)))
        },
    )?;
    for name in ["args_sizes_get", "environ_sizes_get"] {
        linker.func_wrap(
            abi::WASI,
            name,
            |mut caller: Caller<'_, RunState>, count: i32, size: i32| -> wasmtime::Result<i32> {
                let mem = memory(&mut caller)?;
                for p in [count, size] {
                    mem.write(&mut caller, p as u32 as usize, &0u32.to_le_bytes())
                        .map_err(|_| wasmtime::Error::msg("pointer outside memory"))?;
                }
                Ok(0)
            },
        )?;
    }
    // No descriptor is open to close, seek or describe (fd 1 and 2 only take writes).
    linker.func_wrap(
        abi::WASI,
        "fd_close",
        |_: Caller<'_, RunState>, _: i32| -> i32 { abi::WASI_EBADF },
    )?;
    linker.func_wrap(
        abi::WASI,
        "fd_seek",
        |_: Caller<'_, RunState>, _: i32, _: i64, _: i32, _: i32| -> i32 { abi::WASI_EBADF },
    )?;
    linker.func_wrap(
        abi::WASI,
        "fd_fdstat_get",
        |_: Caller<'_, RunState>, _: i32, _: i32| -> i32 { abi::WASI_EBADF },
    )?;
    for name in ["args_get", "environ_get"] {
        linker.func_wrap(
            abi::WASI,
            name,
            |_: Caller<'_, RunState>, _: i32, _: i32| -> i32 { 0 },
        )?;
    }
    Ok(())
}

async fn host_call(
    caller: &mut Caller<'_, RunState>,
    np: i32,
    nl: i32,
    ap: i32,
    al: i32,
) -> wasmtime::Result<i32> {
    let name_bytes = read_bytes(caller, np, nl)?;
    let args_bytes = read_bytes(caller, ap, al)?;
    let at_ms = caller.data().at_ms();
    let capability = String::from_utf8_lossy(&name_bytes).into_owned();
    if caller.data().calls_left == 0 {
        let budget = caller.data().cfg.host_call_budget;
        return Err(stop(
            caller,
            Stop::Limit(format!(
                "host-call budget exhausted: the runbook made more than {budget} capability calls"
            )),
        ));
    }
    caller.data_mut().calls_left -= 1;
    let seq = caller.data_mut().next_seq();
    let remaining = caller
        .data()
        .deadline
        .saturating_duration_since(Instant::now());
    if remaining.is_zero() {
        let d = caller.data().cfg.deadline;
        return Err(stop(
            caller,
            Stop::TimedOut(format!(
                "deadline of {} exceeded",
                humantime::format_duration(d)
            )),
        ));
    }
    // The capability may need longer than the default (wait.until); never past the deadline.
    let parsed = serde_json::from_slice::<Value>(&args_bytes);
    let call_timeout = parsed
        .as_ref()
        .ok()
        .and_then(|a| caller.data().dispatcher.timeout(&capability, a))
        .unwrap_or(caller.data().cfg.call_timeout);
    let timeout = call_timeout.min(remaining);
    let t0 = Instant::now();
    let (args, outcome) = match parsed {
        Ok(args @ Value::Object(_)) => {
            let dispatcher = caller.data().dispatcher.clone();
            let fut = dispatcher.call(&capability, args.clone());
            let r = tokio::time::timeout(timeout, fut).await.ok();
            (args, r)
        }
        Ok(other) => (
            other,
            Some(Err(CallError::BadRequest(
                "arguments must be a JSON object".to_string(),
            ))),
        ),
        Err(e) => (
            Value::String(String::from_utf8_lossy(&args_bytes).into_owned()),
            Some(Err(CallError::BadRequest(format!(
                "arguments are not JSON: {e}"
            )))),
        ),
    };
    let duration_ms = t0.elapsed().as_secs_f64() * 1e3;
    let (status, code, result) = match outcome {
        Some(Ok(v)) => ("ok", 0, v),
        Some(Err(e)) => (
            e.name(),
            e.status(),
            serde_json::json!({"error": e.message()}),
        ),
        None if timeout < call_timeout => {
            // The run's deadline, not the call's own timeout, ran out: the run is over.
            let d = caller.data().cfg.deadline;
            caller.data_mut().calls.push(CallRecord {
                seq,
                at_ms,
                capability: capability.clone(),
                args,
                status: "timeout",
                result: Value::Null,
                duration_ms,
            });
            return Err(stop(
                caller,
                Stop::TimedOut(format!(
                    "deadline of {} exceeded during the {capability} call",
                    humantime::format_duration(d)
                )),
            ));
        }
        None => (
            "timeout",
            abi::TIMEOUT,
            serde_json::json!({"error": format!("{capability} took longer than {}", humantime::format_duration(call_timeout))}),
        ),
    };
    let bytes = serde_json::to_vec(&result).unwrap_or_default();
    let s = caller.data_mut();
    s.calls.push(CallRecord {
        seq,
        at_ms,
        capability,
        args,
        status,
        result,
        duration_ms,
    });
    s.last_result = bytes;
    Ok(if code == 0 {
        s.last_result.len() as i32
    } else {
        code
    })
}
