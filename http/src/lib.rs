//! Vigil's HTTP edges, shared by every part so that all of them behave the same:
//!
//! - [`client`]: outgoing requests. [`HttpClientConfig`] is Prometheus's `http_config` (TLS with
//!   private CAs and client certificates, basic auth, authorization headers, proxies, redirects),
//!   parsed and validated with Prometheus's rules; [`HttpClient`] is what scrapes and notifiers send
//!   with. TLS is rustls with the system's roots (or the Mozilla set when the system has none).
//! - [`web`] and [`serve`]: incoming connections. [`WebGuard`] is Prometheus's web configuration
//!   file (TLS, basic auth with bcrypt, response headers); [`serve::serve`] is the accept loop with
//!   header and request deadlines and a graceful shutdown.
//!
//! This crate knows nothing of metrics, alerts or storage; it must never log a credential (every
//! secret is a [`vigil_model::Secret`]).

pub mod client;
pub mod serve;
pub mod tls;
pub mod web;

pub use client::{ClientOptions, Credentials, HttpClient, HttpClientConfig, TlsConfig};
pub use serve::{ServeOptions, guarded, serve};
pub use web::{WebConfigFile, WebGuard};

/// Makes rustls's ring provider the process default, for any TLS that is not built through this
/// crate (idempotent). Call it once at start.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A configuration that cannot be used, with the reason in Prometheus's words where it has them.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HttpConfigError {
    #[error("{0}")]
    Invalid(String),
}
