//! Probes: blackbox_exporter's probers built in, plus Vigil's own `postgres` and `docker` module
//! types, configured by an unchanged `blackbox.yml` ([`config`]).
//!
//! One prober per file (`http`, `tcp`, `dns`, `icmp`, `grpc`, `postgres`, `docker`), each writing blackbox_exporter's series into
//! a [`registry::ProbeMetrics`] and its log into a [`log::ProbeLog`]. [`Prober::run`] runs one
//! module against one target under one deadline; [`api`] answers `GET /probe` with the result, as
//! blackbox_exporter does, so a Prometheus job written for it works against Vigil.

pub mod api;
pub mod config;
pub mod dns;
pub mod docker;
pub mod grpc;
pub mod http;
pub mod icmp;
pub mod job;
pub mod log;
pub mod postgres;
pub mod registry;
mod resolve;
pub mod tcp;
mod tls_info;

use std::collections::HashMap;
use std::time::{Duration, Instant};

pub use config::{BlackboxConfig, Module};
pub use job::ProbeConfig;
pub use log::ProbeLog;
pub use registry::ProbeMetrics;

/// A stream a prober speaks over: TCP, or TLS over it.
pub(crate) trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// A prober's TLS client configuration with the given ALPN protocols (none for tcp and dns, `h2`
/// for grpc), built once per module; the error is reported when a probe needs it.
pub(crate) fn tls_client(
    t: &vigil_http::TlsConfig,
    alpn: &[&[u8]],
) -> Result<std::sync::Arc<rustls::ClientConfig>, String> {
    t.client_config(false)
        .map(|mut c| {
            c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
            std::sync::Arc::new(c)
        })
        .map_err(|e| e.to_string())
}

/// A connection task (hyper's, tokio-postgres's) that ends with the probe that started it.
pub(crate) struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A probe target as a URL, `http://` added when it has no scheme (as blackbox_exporter's http and
/// grpc probers read their targets).
pub(crate) fn target_url(target: &str) -> Result<reqwest::Url, String> {
    let text = if target.starts_with("http://") || target.starts_with("https://") {
        target.to_string()
    } else {
        format!("http://{target}")
    };
    reqwest::Url::parse(&text).map_err(|e| e.to_string())
}

/// What a module needs prepared once (TLS configurations, credentials), not at every probe.
struct Prepared {
    http: http::PreparedHttp,
    tcp: tcp::PreparedTcp,
    dns: dns::PreparedDns,
    grpc: grpc::PreparedGrpc,
}

/// The result of one probe.
#[derive(Clone, Debug)]
pub struct ProbeResult {
    pub success: bool,
    pub duration: Duration,
    pub metrics: ProbeMetrics,
    pub log: ProbeLog,
}

/// Runs the modules of one `blackbox.yml`.
pub struct Prober {
    config: BlackboxConfig,
    prepared: HashMap<String, Prepared>,
    user_agent: String,
}

impl Prober {
    pub fn new(config: BlackboxConfig) -> Prober {
        let prepared = config
            .modules
            .iter()
            .map(|(name, m)| {
                (
                    name.clone(),
                    Prepared {
                        http: http::PreparedHttp::new(&m.http),
                        tcp: tcp::PreparedTcp::new(m),
                        dns: dns::PreparedDns::new(m),
                        grpc: grpc::PreparedGrpc::new(m),
                    },
                )
            })
            .collect();
        Prober {
            config,
            prepared,
            user_agent: format!("Vigil/{}", env!("CARGO_PKG_VERSION")),
        }
    }

    pub fn module(&self, name: &str) -> Option<&Module> {
        self.config.modules.get(name)
    }

    /// Runs module `name` against `target` for at most `timeout`. `None` when there is no such
    /// module.
    pub async fn run(&self, name: &str, target: &str, timeout: Duration) -> Option<ProbeResult> {
        let module = self.config.modules.get(name)?;
        let prepared = self.prepared.get(name)?;
        let mut m = ProbeMetrics::new();
        let mut log = ProbeLog::new(name, target);
        log.info(
            "Beginning probe",
            &[
                ("probe", &module.prober),
                ("timeout_seconds", &timeout.as_secs_f64()),
            ],
        );
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + timeout;
        let fut = async {
            match module.prober.as_str() {
                "http" => {
                    http::probe(
                        target,
                        module,
                        &prepared.http,
                        &self.user_agent,
                        deadline,
                        &mut m,
                        &mut log,
                    )
                    .await
                }
                "tcp" => tcp::probe(target, module, &prepared.tcp, &mut m, &mut log).await,
                "dns" => dns::probe(target, module, &prepared.dns, &mut m, &mut log).await,
                "icmp" => icmp::probe(target, module, deadline, &mut m, &mut log).await,
                "postgres" => postgres::probe(target, module, deadline, &mut m, &mut log).await,
                "docker" => docker::probe(target, module, deadline, &mut m, &mut log).await,
                "grpc" => grpc::probe(target, module, &prepared.grpc, &mut m, &mut log).await,
                // The configuration refuses other probers when it loads.
                other => {
                    log.error("Unknown prober", &[("prober", &other)]);
                    false
                }
            }
        };
        let success = match tokio::time::timeout_at(deadline, fut).await {
            Ok(s) => s,
            Err(_) => {
                log.error(
                    "Probe timed out",
                    &[
                        ("err", &"context deadline exceeded"),
                        ("timeout_seconds", &timeout.as_secs_f64()),
                    ],
                );
                false
            }
        };
        let duration = started.elapsed();
        m.set(
            "probe_success",
            "Displays whether or not the probe was a success",
            if success { 1.0 } else { 0.0 },
        );
        m.set(
            "probe_duration_seconds",
            "Returns how long the probe took to complete in seconds",
            duration.as_secs_f64(),
        );
        if success {
            log.info(
                "Probe succeeded",
                &[("duration_seconds", &duration.as_secs_f64())],
            );
        } else {
            log.failed(duration.as_secs_f64());
        }
        Some(ProbeResult {
            success,
            duration,
            metrics: m,
            log,
        })
    }
}

/// blackbox_exporter's choice of timeout: the scrape's timeout (`X-Prometheus-Scrape-Timeout-Seconds`,
/// 120 s without the header) less `offset`, or the module's own when it is shorter.
pub fn effective_timeout(module: &Module, scrape_timeout: Option<f64>, offset: f64) -> Duration {
    let t = match scrape_timeout {
        Some(t) if t != 0.0 => t,
        _ => 120.0,
    };
    let max = t - offset;
    let own = module.timeout.0.as_secs_f64();
    let secs = if (own > 0.0 && own < max) || max < 0.0 {
        own
    } else {
        max
    };
    Duration::from_secs_f64(secs.max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_as_blackbox_exporter_chooses() {
        let m = |t: f64| Module {
            timeout: config::GoDuration(Duration::from_secs_f64(t)),
            ..Default::default()
        };
        for (own, hdr, off, want) in [
            (0.0, Some(15.0), 0.5, 14.5),
            (0.0, Some(15.0), 0.0, 15.0),
            (20.0, Some(15.0), 0.5, 14.5),
            (5.0, Some(15.0), 0.5, 5.0),
            (10.0, None, 0.5, 10.0),
            (10.0, Some(10.0), 0.5, 9.5),
            (9.5, None, 1.0, 9.5),
            (0.0, None, 0.5, 119.5),
            (0.0, None, 0.0, 120.0),
        ] {
            assert_eq!(
                effective_timeout(&m(own), hdr, off).as_secs_f64(),
                want,
                "{own} {hdr:?} {off}"
            );
        }
    }
}
