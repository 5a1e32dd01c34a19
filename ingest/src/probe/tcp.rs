//! The `tcp` prober: connect (optionally over TLS), then a scripted conversation of `expect` /
//! `send` / `starttls` steps, as blackbox_exporter 0.23 runs it.

use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::config::Module;
use super::log::ProbeLog;
use super::registry::ProbeMetrics;
use super::resolve::choose_protocol;
use super::tls_info::set_tls_metrics;

use super::Io;

/// Splits `host:port` as Go's `net.SplitHostPort` does (IPv6 in brackets).
pub fn split_host_port(t: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = t.strip_prefix('[') {
        let (h, p) = rest
            .split_once(']')
            .ok_or_else(|| format!("address {t}: missing ']' in address"))?;
        let p = p
            .strip_prefix(':')
            .ok_or_else(|| format!("address {t}: missing port in address"))?;
        (h.to_string(), p)
    } else {
        let (h, p) = t
            .rsplit_once(':')
            .ok_or_else(|| format!("address {t}: missing port in address"))?;
        if h.contains(':') {
            return Err(format!("address {t}: too many colons in address"));
        }
        (h.to_string(), p)
    };
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("address {t}: invalid port"))?;
    Ok((host, port))
}

pub struct PreparedTcp {
    tls: Result<Arc<rustls::ClientConfig>, String>,
}

impl PreparedTcp {
    pub fn new(m: &Module) -> PreparedTcp {
        PreparedTcp {
            tls: super::tls_client(&m.tcp.tls_config, &[]),
        }
    }
}

async fn tls_wrap(
    io: Box<dyn Io>,
    prepared: &PreparedTcp,
    name: &str,
) -> Result<
    (
        Box<dyn Io>,
        Vec<rustls::pki_types::CertificateDer<'static>>,
        Option<rustls::ProtocolVersion>,
    ),
    String,
> {
    let cfg = prepared.tls.clone()?;
    let server_name = rustls::pki_types::ServerName::try_from(name.to_string())
        .map_err(|e| format!("invalid TLS server name {name:?}: {e}"))?;
    let conn = tokio_rustls::TlsConnector::from(cfg)
        .connect(server_name, io)
        .await
        .map_err(|e| e.to_string())?;
    let (_, c) = conn.get_ref();
    let certs = c
        .peer_certificates()
        .map(|cs| cs.iter().map(|c| c.clone().into_owned()).collect())
        .unwrap_or_default();
    let v = c.protocol_version();
    Ok((Box::new(conn), certs, v))
}

pub async fn probe(
    target: &str,
    module: &Module,
    prepared: &PreparedTcp,
    m: &mut ProbeMetrics,
    log: &mut ProbeLog,
) -> bool {
    let cfg = &module.tcp;
    m.set(
        "probe_failed_due_to_regex",
        "Indicates if probe failed due to regex",
        0.0,
    );
    let (host, port) = match split_host_port(target) {
        Ok(hp) => hp,
        Err(e) => {
            log.error("Error splitting target address and port", &[("err", &e)]);
            return false;
        }
    };
    let (ip, _) = choose_protocol(
        &host,
        &cfg.preferred_ip_protocol,
        cfg.ip_protocol_fallback,
        m,
        log,
    )
    .await;
    let Ok(ip) = ip else { return false };
    let addr = std::net::SocketAddr::new(ip, port);
    let verified = !cfg.tls_config.insecure_skip_verify;
    let sni = if cfg.tls_config.server_name.is_empty() {
        host.clone()
    } else {
        cfg.tls_config.server_name.clone()
    };
    let stream = if cfg.source_ip_address.is_empty() {
        TcpStream::connect(addr).await
    } else {
        let src: std::net::IpAddr = match cfg.source_ip_address.parse() {
            Ok(s) => s,
            Err(_) => {
                log.error(
                    "Error parsing source ip address",
                    &[("srcIP", &cfg.source_ip_address)],
                );
                return false;
            }
        };
        let sock = if src.is_ipv6() {
            tokio::net::TcpSocket::new_v6()
        } else {
            tokio::net::TcpSocket::new_v4()
        };
        match sock.and_then(|s| s.bind(std::net::SocketAddr::new(src, 0)).map(|_| s)) {
            Ok(s) => s.connect(addr).await,
            Err(e) => Err(e),
        }
    };
    let mut io: Box<dyn Io> = if cfg.tls {
        log.info("Dialing TCP with TLS", &[]);
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                log.error("Error dialing TCP", &[("err", &e)]);
                return false;
            }
        };
        match tls_wrap(Box::new(stream), prepared, &sni).await {
            Ok((io, certs, v)) => {
                set_tls_metrics(m, &certs, v, verified);
                io
            }
            Err(e) => {
                log.error("Error dialing TCP", &[("err", &e)]);
                return false;
            }
        }
    } else {
        log.info("Dialing TCP without TLS", &[]);
        match stream {
            Ok(s) => Box::new(s),
            Err(e) => {
                log.error("Error dialing TCP", &[("err", &e)]);
                return false;
            }
        }
    };
    log.info("Successfully dialed", &[]);
    let mut reader = BufReader::new(io);
    for (i, qr) in cfg.query_response.iter().enumerate() {
        log.info("Processing query response entry", &[("entry_number", &i)]);
        let mut send = qr.send.clone();
        if let Some(re) = &qr.expect {
            log.debug("Expecting", &[("expect", &re.text)]);
            let mut matched = false;
            loop {
                let mut line = Vec::new();
                match reader.read_until(b'\n', &mut line).await {
                    Ok(0) => break,
                    Ok(_) => {
                        while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                            line.pop();
                        }
                        let text = String::from_utf8_lossy(&line).into_owned();
                        log.debug("Read line", &[("line", &text)]);
                        if let Some(caps) = re.re.captures(&text) {
                            log.info("Regexp matched", &[("regexp", &re.text), ("line", &text)]);
                            m.set(
                                "probe_failed_due_to_regex",
                                "Indicates if probe failed due to regex",
                                0.0,
                            );
                            let mut out = String::new();
                            caps.expand(&qr.send, &mut out);
                            send = out;
                            matched = true;
                            break;
                        }
                    }
                    Err(e) => {
                        log.error("Error reading from connection", &[("err", &e)]);
                        return false;
                    }
                }
            }
            if !matched {
                m.set(
                    "probe_failed_due_to_regex",
                    "Indicates if probe failed due to regex",
                    1.0,
                );
                log.error("Regexp did not match", &[("regexp", &re.text)]);
                return false;
            }
        }
        if !send.is_empty() {
            log.debug("Sending line", &[("line", &send)]);
            let w = reader.get_mut();
            if let Err(e) = w.write_all(format!("{send}\n").as_bytes()).await {
                log.error("Failed to send", &[("err", &e)]);
                return false;
            }
            let _ = w.flush().await;
        }
        if qr.starttls {
            // Bytes already buffered belong to the plain conversation and are dropped, as
            // blackbox_exporter starts a fresh reader after the handshake.
            io = reader.into_inner();
            match tls_wrap(io, prepared, &sni).await {
                Ok((tls, certs, v)) => {
                    set_tls_metrics(m, &certs, v, verified);
                    reader = BufReader::new(tls);
                }
                Err(e) => {
                    log.error("TLS Handshake (client) failed.", &[("err", &e)]);
                    return false;
                }
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port() {
        assert_eq!(split_host_port("a:80").unwrap(), ("a".into(), 80));
        assert_eq!(split_host_port("[::1]:22").unwrap(), ("::1".into(), 22));
        assert!(
            split_host_port("example.com")
                .unwrap_err()
                .contains("missing port")
        );
        assert!(split_host_port("::1:22").is_err());
    }
}
