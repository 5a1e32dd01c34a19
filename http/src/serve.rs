//! The accept loop every Vigil listener runs: optional TLS (from the web configuration), HTTP/1.1
//! and HTTP/2, a deadline for a request's headers and one for the whole request, and a graceful
//! shutdown that lets requests in flight finish.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::{debug, warn};

use crate::web::WebGuard;

/// Limits of the server, beyond the web configuration.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// A client must send a request's headers within this (also bounds idle keep-alive waits).
    pub header_read_timeout: Duration,
    /// A request must be read and answered within this (Prometheus's `--web.read-timeout`, 5m).
    pub request_timeout: Duration,
    /// TLS handshakes must finish within this.
    pub tls_handshake_timeout: Duration,
    /// How long shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            header_read_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(300),
            tls_handshake_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Wraps `app` with the web configuration's guard (headers, basic auth) and the request deadline.
pub fn guarded(app: Router, web: Option<Arc<WebGuard>>, opts: &ServeOptions) -> Router {
    let timeout = opts.request_timeout;
    let app = app.layer(axum::middleware::from_fn(
        move |req: Request, next: axum::middleware::Next| async move {
            match tokio::time::timeout(timeout, next.run(req)).await {
                Ok(r) => r,
                Err(_) => timeout_response(timeout),
            }
        },
    ));
    match web {
        Some(w) => app.layer(axum::middleware::from_fn_with_state(w, crate::web::guard)),
        None => app,
    }
}

fn timeout_response(d: Duration) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "the request took longer than the server's request timeout of {}s\n",
            d.as_secs()
        ),
    )
        .into_response()
}

/// Serves `app` on `listener` until `cancel`, then waits up to `shutdown_grace` for requests in
/// flight. `app` should already be [`guarded`].
pub async fn serve(
    listener: TcpListener,
    app: Router,
    web: Option<Arc<WebGuard>>,
    opts: ServeOptions,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let tls = web.as_ref().filter(|w| w.tls_enabled()).cloned();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(opts.header_read_timeout)
        // The per-connection read buffer otherwise grows to ~400 KiB under large request bodies and
        // stays with the keep-alive connection: with a few dozen remote-write shards that is tens
        // of megabytes held for nothing (bodies are collected separately).
        .max_buf_size(64 * 1024);
    builder.http2().timer(TokioTimer::new());
    if web.as_ref().is_some_and(|w| !w.http2_enabled()) {
        builder = builder.http1_only();
    }
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = cancel.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        let handshake_timeout = opts.tls_handshake_timeout;
        tokio::spawn(async move {
            let svc =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let app = app.clone();
                    async move {
                        Ok::<_, Infallible>(
                            app.oneshot(req.map(axum::body::Body::new))
                                .await
                                .into_response(),
                        )
                    }
                });
            match tls {
                None => {
                    let conn = builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                        .into_owned();
                    if let Err(e) = watcher.watch(conn).await {
                        debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
                Some(w) => {
                    let cfg = match w.tls_config() {
                        Ok(c) => c,
                        Err(e) => {
                            warn!(%peer, error = %e, "no usable TLS configuration; closing the connection");
                            return;
                        }
                    };
                    let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
                    let s = match tokio::time::timeout(handshake_timeout, acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let conn = builder
                        .serve_connection_with_upgrades(TokioIo::new(s), svc)
                        .into_owned();
                    if let Err(e) = watcher.watch(conn).await {
                        debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(opts.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        warn!(
            "requests still in flight after {}s; closing their connections",
            opts.shutdown_grace.as_secs()
        );
    }
    Ok(())
}
