//! The guest side of Vigil's runbook ABI v1 (sdk/README.md) for runbooks written in Rust.
//!
//! ```ignore
//! use serde_json::json;
//! use vigil_sdk::{Runbook, Error};
//!
//! fn heal(rb: &Runbook) -> Result<(), Error> {
//!     let container = rb.param_str("container")?;
//!     rb.info(&format!("restarting {container}"));
//!     rb.call("docker.restart", json!({"container": container}))?;
//!     rb.output(&json!({"restarted": container}));
//!     Ok(())
//! }
//! vigil_sdk::runbook!(heal);
//! ```
//!
//! Build for `wasm32-wasip1` (or `wasm32-unknown-unknown`); on other targets the types compile, so a
//! runbook's pure logic can be unit-tested, but the host functions do not exist.

use serde_json::Value;

/// `call` statuses, as the host returns them.
pub mod status {
    pub const DENIED: i32 = -1;
    pub const FAILED: i32 = -2;
    pub const BAD_REQUEST: i32 = -3;
    pub const TIMEOUT: i32 = -4;
    pub const RESOLVED: i32 = -5;
}

/// Why a capability call gave no result (the host's reason in words).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// Not granted to this binding, or the target is outside the grant's scope.
    Denied(String),
    /// The capability ran and failed.
    Failed(String),
    /// Unknown capability, or arguments it cannot take.
    BadRequest(String),
    /// The call took longer than its timeout.
    Timeout(String),
    /// The alert resolved: the host no longer acts on it.
    Resolved(String),
    /// A status this SDK does not know (a newer host).
    Other(i32, String),
}

impl CallError {
    /// The error for a negative status and the host's `{"error": ...}` reply.
    pub fn from_status(status: i32, reply: &Value) -> CallError {
        let m = reply
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        match status {
            status::DENIED => CallError::Denied(m),
            status::FAILED => CallError::Failed(m),
            status::BAD_REQUEST => CallError::BadRequest(m),
            status::TIMEOUT => CallError::Timeout(m),
            status::RESOLVED => CallError::Resolved(m),
            s => CallError::Other(s, m),
        }
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (what, m) = match self {
            CallError::Denied(m) => ("denied", m),
            CallError::Failed(m) => ("failed", m),
            CallError::BadRequest(m) => ("bad request", m),
            CallError::Timeout(m) => ("timed out", m),
            CallError::Resolved(m) => ("alert resolved", m),
            CallError::Other(s, m) => return write!(f, "status {s}: {m}"),
        };
        write!(f, "{what}: {m}")
    }
}

impl std::error::Error for CallError {}

/// What a runbook function may fail with: a failed call or its own reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    Call {
        capability: String,
        error: CallError,
    },
    /// A parameter is missing or of the wrong type.
    Param(String),
    /// The runbook's own reason to fail.
    Message(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Call { capability, error } => write!(f, "{capability}: {error}"),
            Error::Param(m) | Error::Message(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

impl From<String> for Error {
    fn from(m: String) -> Error {
        Error::Message(m)
    }
}

impl From<&str> for Error {
    fn from(m: &str) -> Error {
        Error::Message(m.to_string())
    }
}

/// Log levels of [`Runbook::log`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Debug = 0,
    Info = 1,
    Warn = 2,
    Error = 3,
}

/// One run: its input (the alert, the parameters, whether it is a dry run) and the host's functions.
pub struct Runbook {
    input: Value,
}

impl Runbook {
    /// A run over `input` (the host's input document). [`runbook!`] builds it from the host.
    pub fn with_input(input: Value) -> Runbook {
        Runbook { input }
    }

    /// The whole input document (sdk/README.md, "The input").
    pub fn input(&self) -> &Value {
        &self.input
    }

    /// The alert the run is for (`labels`, `annotations`, `status`, `startsAt`, `fingerprint`).
    pub fn alert(&self) -> &Value {
        &self.input["alert"]
    }

    /// An alert label, if the alert has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.input["alert"]["labels"][name].as_str()
    }

    /// The binding's parameters, checked against the manifest by the host.
    pub fn params(&self) -> &Value {
        &self.input["params"]
    }

    /// A string parameter, or [`Error::Param`] naming it.
    pub fn param_str(&self, name: &str) -> Result<&str, Error> {
        self.input["params"][name]
            .as_str()
            .ok_or_else(|| Error::Param(format!("parameter {name} is missing or not a string")))
    }

    /// An optional string parameter; None when missing or empty.
    pub fn param_opt_str(&self, name: &str) -> Option<&str> {
        self.input["params"][name]
            .as_str()
            .filter(|s| !s.is_empty())
    }

    /// An integer parameter (the host has coerced `integer` parameters to numbers), or
    /// [`Error::Param`] naming it.
    pub fn param_int(&self, name: &str) -> Result<i64, Error> {
        self.input["params"][name]
            .as_i64()
            .ok_or_else(|| Error::Param(format!("parameter {name} is missing or not an integer")))
    }

    /// True when the host only records what the runbook would do (actions answer without acting).
    pub fn dry_run(&self) -> bool {
        self.input["dry_run"].as_bool().unwrap_or(false)
    }

    /// Calls a capability with a JSON object of arguments; answers its result.
    pub fn call(&self, capability: &str, args: Value) -> Result<Value, Error> {
        host::call(capability, &args).map_err(|error| Error::Call {
            capability: capability.to_string(),
            error,
        })
    }

    /// Appends a line to the execution record.
    pub fn log(&self, level: Level, message: &str) {
        host::log(level as i32, message);
    }

    pub fn info(&self, message: &str) {
        self.log(Level::Info, message);
    }

    pub fn warn(&self, message: &str) {
        self.log(Level::Warn, message);
    }

    pub fn error(&self, message: &str) {
        self.log(Level::Error, message);
    }

    /// Sets the run's summary, shown with the execution and in an escalation.
    pub fn output(&self, summary: &Value) {
        host::output(&serde_json::to_vec(summary).unwrap_or_default());
    }
}

/// Runs `f` as the runbook: reads the input, calls `f`, and turns its result into the exit code
/// (0, or 1 after logging the error). [`runbook!`] exports it as the ABI's entry point.
pub fn run(f: fn(&Runbook) -> Result<(), Error>) -> i32 {
    let input = host::input();
    let rb = Runbook::with_input(serde_json::from_slice(&input).unwrap_or(Value::Null));
    match f(&rb) {
        Ok(()) => 0,
        Err(e) => {
            rb.error(&e.to_string());
            1
        }
    }
}

/// Exports `vigil_runbook_v1`, running the given `fn(&Runbook) -> Result<(), Error>`.
#[macro_export]
macro_rules! runbook {
    ($f:path) => {
        #[unsafe(no_mangle)]
        pub extern "C" fn vigil_runbook_v1() -> i32 {
            $crate::run($f)
        }
    };
}

#[cfg(target_arch = "wasm32")]
mod host {
    use super::CallError;
    use serde_json::Value;

    #[link(wasm_import_module = "vigil")]
    unsafe extern "C" {
        #[link_name = "input"]
        fn vigil_input(buf: *mut u8, cap: i32) -> i32;
        #[link_name = "call"]
        fn vigil_call(name: *const u8, name_len: i32, args: *const u8, args_len: i32) -> i32;
        #[link_name = "result"]
        fn vigil_result(buf: *mut u8, cap: i32) -> i32;
        #[link_name = "log"]
        fn vigil_log(level: i32, msg: *const u8, len: i32);
        #[link_name = "output"]
        fn vigil_output(json: *const u8, len: i32);
    }

    /// Reads a host buffer whose length the first call tells.
    fn read(f: unsafe extern "C" fn(*mut u8, i32) -> i32) -> Vec<u8> {
        // SAFETY: the host writes at most `cap` bytes at `buf`, and only when they fit.
        let n = unsafe { f(std::ptr::null_mut(), 0) };
        let mut buf = vec![0u8; n.max(0) as usize];
        if n > 0 {
            unsafe { f(buf.as_mut_ptr(), n) };
        }
        buf
    }

    pub fn input() -> Vec<u8> {
        read(vigil_input)
    }

    pub fn call(capability: &str, args: &Value) -> Result<Value, CallError> {
        let args = serde_json::to_vec(args).unwrap_or_default();
        // SAFETY: both slices are live for the call; the host only reads them.
        let status = unsafe {
            vigil_call(
                capability.as_ptr(),
                capability.len() as i32,
                args.as_ptr(),
                args.len() as i32,
            )
        };
        let reply: Value = serde_json::from_slice(&read(vigil_result)).unwrap_or(Value::Null);
        if status < 0 {
            Err(CallError::from_status(status, &reply))
        } else {
            Ok(reply)
        }
    }

    pub fn log(level: i32, message: &str) {
        // SAFETY: the host only reads the slice.
        unsafe { vigil_log(level, message.as_ptr(), message.len() as i32) }
    }

    pub fn output(json: &[u8]) {
        // SAFETY: the host only reads the slice.
        unsafe { vigil_output(json.as_ptr(), json.len() as i32) }
    }
}

/// Outside WebAssembly there is no host: a runbook's logic can be unit-tested, calling the host panics.
#[cfg(not(target_arch = "wasm32"))]
mod host {
    use super::CallError;
    use serde_json::Value;

    const NO_HOST: &str =
        "vigil-sdk: the host functions exist only inside Vigil's sandbox (build for wasm32-wasip1)";

    pub fn input() -> Vec<u8> {
        panic!("{NO_HOST}")
    }

    pub fn call(_capability: &str, _args: &Value) -> Result<Value, CallError> {
        panic!("{NO_HOST}")
    }

    pub fn log(_level: i32, _message: &str) {
        panic!("{NO_HOST}")
    }

    pub fn output(_json: &[u8]) {
        panic!("{NO_HOST}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn statuses_map_to_errors_with_the_hosts_reason() {
        let reply = json!({"error": "docker.restart is not granted"});
        assert_eq!(
            CallError::from_status(-1, &reply),
            CallError::Denied("docker.restart is not granted".into())
        );
        assert!(matches!(
            CallError::from_status(-4, &reply),
            CallError::Timeout(_)
        ));
        assert!(matches!(
            CallError::from_status(-9, &reply),
            CallError::Other(-9, _)
        ));
        let e = Error::Call {
            capability: "docker.restart".into(),
            error: CallError::from_status(-2, &json!({"error": "no such container"})),
        };
        assert_eq!(e.to_string(), "docker.restart: failed: no such container");
    }

    #[test]
    fn the_input_document_is_read_as_the_readme_describes_it() {
        let rb = Runbook::with_input(json!({
            "abi": 1, "dry_run": true, "params": {"container": "web-1", "n": 3},
            "alert": {"labels": {"alertname": "WebDown"}}
        }));
        assert!(rb.dry_run());
        assert_eq!(rb.param_str("container").unwrap(), "web-1");
        assert_eq!(
            rb.param_str("n").unwrap_err(),
            Error::Param("parameter n is missing or not a string".into())
        );
        assert_eq!(rb.param_int("n").unwrap(), 3);
        assert!(rb.param_int("container").is_err());
        assert_eq!(rb.param_opt_str("container"), Some("web-1"));
        assert_eq!(rb.param_opt_str("nothing"), None);
        assert_eq!(rb.label("alertname"), Some("WebDown"));
        assert_eq!(rb.label("job"), None);
    }
}
