//! The runbook host: the WebAssembly sandbox a runbook runs in ([`sandbox`]), the names and codes of
//! the runbook ABI ([`abi`], described for runbook authors in sdk/README.md), manifests
//! ([`manifest`]), capabilities behind one trait ([`capability`]: Docker so far) and the dispatcher
//! that puts a binding's grants, scopes, dry run and the firing check in front of them ([`grants`]).
//! Next: the other capabilities, bindings in alertmanager.yml, policy, verification and the
//! execution record.
//!
//! Nothing here may act on the world without a granted capability: the sandbox gives a runbook no
//! import but the ABI's, and every capability call goes through a [`sandbox::Dispatcher`].

pub mod abi;
pub mod api;
pub mod capability;
pub mod config;
pub mod engine;
pub mod execution;
pub mod grants;
pub mod manifest;
pub mod metrics;
pub mod offline;
pub mod policy;
pub mod receiver;
pub mod sandbox;
