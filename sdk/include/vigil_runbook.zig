//! Vigil runbook ABI v1 for Zig: the same imports and codes as vigil_runbook.h (sdk/README.md is the
//! reference). Zig 0.17 has no @cImport, and `zig translate-c` of the C header drops the
//! `import_module("vigil")` attribute, so Zig declares the imports itself here.
//! Export the entry point with `export fn vigil_runbook_v1() i32`.

/// Negative statuses of `call`; the last result then holds {"error": "..."}.
pub const DENIED: i32 = -1;
pub const FAILED: i32 = -2;
pub const BAD_REQUEST: i32 = -3;
pub const TIMEOUT: i32 = -4;
pub const RESOLVED: i32 = -5;

/// Log levels of `log`.
pub const DEBUG: i32 = 0;
pub const INFO: i32 = 1;
pub const WARN: i32 = 2;
pub const ERROR: i32 = 3;

/// Copies the run's input into buf if it fits in cap bytes; returns its length either way.
pub extern "vigil" fn input(buf: [*]u8, cap: i32) i32;
/// Calls a capability with a JSON object; returns the result's length (>= 0) or a negative status.
pub extern "vigil" fn call(name: [*]const u8, name_len: i32, args: [*]const u8, args_len: i32) i32;
/// Copies the last call's result (or {"error": ...}) into buf if it fits; returns its length.
pub extern "vigil" fn result(buf: [*]u8, cap: i32) i32;
/// Appends a line to the execution record.
pub extern "vigil" fn log(level: i32, msg: [*]const u8, len: i32) void;
/// Sets the run's summary (a JSON value).
pub extern "vigil" fn output(json: [*]const u8, len: i32) void;
