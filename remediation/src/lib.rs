//! The runbook host: wasmtime sandbox, the runbook ABI and capabilities, drivers (Docker, PostgreSQL, process, HTTP,
//! Kubernetes), policies and verification.
//!
//! Not built yet: a later issue fills this crate. Nothing here may act on the world without a granted capability.
