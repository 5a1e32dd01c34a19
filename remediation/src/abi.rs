//! ABI version 1 of runbooks, as sdk/README.md describes it: names, types and status codes.

/// The module the host's own imports live in.
pub const MODULE: &str = "vigil";
/// The WASI module whose few inert functions the host provides.
pub const WASI: &str = "wasi_snapshot_preview1";
/// The entry point of an ABI v1 runbook.
pub const ENTRY_V1: &str = "vigil_runbook_v1";
/// The ABI versions this host runs.
pub const VERSIONS: &[u32] = &[1];

/// `call` statuses (negative; a non-negative value is the result's length).
pub const DENIED: i32 = -1;
pub const FAILED: i32 = -2;
pub const BAD_REQUEST: i32 = -3;
pub const TIMEOUT: i32 = -4;
pub const RESOLVED: i32 = -5;

/// WASI's errno for a bad file descriptor.
pub const WASI_EBADF: i32 = 8;

/// The parameter and result types of an import the host provides, or `None` when it provides none
/// by that name.
pub fn import_type(module: &str, name: &str) -> Option<(Vec<&'static str>, Vec<&'static str>)> {
    let t = |p: &[&'static str], r: &[&'static str]| Some((p.to_vec(), r.to_vec()));
    match (module, name) {
        (MODULE, "input") | (MODULE, "result") => t(&["i32", "i32"], &["i32"]),
        (MODULE, "call") => t(&["i32", "i32", "i32", "i32"], &["i32"]),
        (MODULE, "log") => t(&["i32", "i32", "i32"], &[]),
        (MODULE, "output") => t(&["i32", "i32"], &[]),
        (WASI, "fd_write") => t(&["i32", "i32", "i32", "i32"], &["i32"]),
        (WASI, "proc_exit") => t(&["i32"], &[]),
        // stdio's FILE machinery links these even when only snprintf is used; no file is open.
        (WASI, "fd_close") => t(&["i32"], &["i32"]),
        (WASI, "fd_seek") => t(&["i32", "i64", "i32", "i32"], &["i32"]),
        (WASI, "fd_fdstat_get") => t(&["i32", "i32"], &["i32"]),
        (WASI, "args_sizes_get")
        | (WASI, "environ_sizes_get")
        | (WASI, "args_get")
        | (WASI, "environ_get") => t(&["i32", "i32"], &["i32"]),
        _ => None,
    }
}

/// The capabilities a manifest may list and a binding may grant (sdk/README.md, "Capabilities").
pub const CAPABILITIES: &[&str] = &[
    "alert.annotate",
    "docker.inspect",
    "docker.logs",
    "docker.replicas",
    "docker.restart",
    "docker.scale",
    "docker.start",
    "docker.stop",
    "http.request",
    "log",
    "postgres.fence",
    "postgres.promote",
    "postgres.status",
    "postgres.write_check",
    "process.restart",
    "query.logql",
    "query.promql",
    "route.get",
    "route.set",
    "wait.until",
];

/// Those of [`CAPABILITIES`] that change the world (dry runs answer them without acting; the
/// blast-radius budget counts them). The registry checks each capability family against it.
pub const ACTING: &[&str] = &[
    "docker.restart",
    "docker.scale",
    "docker.start",
    "docker.stop",
    "http.request",
    "postgres.fence",
    "postgres.promote",
    "process.restart",
    "route.set",
];
