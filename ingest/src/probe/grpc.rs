//! The `grpc` prober: the standard gRPC health check (`grpc.health.v1.Health/Check`) over HTTP/2,
//! with or without TLS, as blackbox_exporter 0.23 runs it. The request and response are two small
//! protobuf messages, encoded here; HTTP/2 is hyper's client connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, Bytes};
use http_body_util::{BodyExt, Full};

use super::Io;
use super::config::Module;
use super::log::ProbeLog;
use super::registry::ProbeMetrics;
use super::resolve::choose_protocol;
use super::tls_info::set_tls_metrics;

const PHASES: &str = "Duration of gRPC request by phase";
const STATUSES: [&str; 4] = ["UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"];
/// gRPC's code for a server that cannot be reached.
const UNAVAILABLE: u32 = 14;

pub struct PreparedGrpc {
    tls: Result<Arc<rustls::ClientConfig>, String>,
}

impl PreparedGrpc {
    pub fn new(m: &Module) -> PreparedGrpc {
        let g = m.grpc.clone().unwrap_or_default();
        PreparedGrpc {
            tls: super::tls_client(&g.tls_config, &[b"h2"]),
        }
    }
}

/// `HealthCheckRequest { string service = 1; }`, framed as a gRPC message.
fn request_frame(service: &str) -> Bytes {
    let mut msg = Vec::new();
    if !service.is_empty() {
        msg.push(0x0a);
        let mut n = service.len();
        while n >= 0x80 {
            msg.push((n as u8 & 0x7f) | 0x80);
            n >>= 7;
        }
        msg.push(n as u8);
        msg.extend_from_slice(service.as_bytes());
    }
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    frame.extend_from_slice(&msg);
    Bytes::from(frame)
}

/// The `status` of a framed `HealthCheckResponse` (0 when the field is absent, as proto3 reads it).
fn response_status(body: &[u8]) -> Result<u64, String> {
    if body.len() < 5 {
        return Err("grpc: response message missing".into());
    }
    let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    let msg = body
        .get(5..5 + len)
        .ok_or("grpc: truncated response message")?;
    let mut i = 0;
    let varint = |i: &mut usize| -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *msg.get(*i).ok_or("grpc: truncated varint")?;
            *i += 1;
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("grpc: varint too long".into())
    };
    let mut status = 0;
    while i < msg.len() {
        let key = varint(&mut i)?;
        match (key >> 3, key & 7) {
            (1, 0) => status = varint(&mut i)?,
            (_, 0) => {
                varint(&mut i)?;
            }
            (_, 2) => {
                let n = varint(&mut i)? as usize;
                i += n;
            }
            (_, 5) => i += 4,
            (_, 1) => i += 8,
            _ => return Err("grpc: bad wire type".into()),
        }
    }
    Ok(status)
}

/// gRPC's code for an HTTP status that is not 200, as grpc-go maps it.
fn code_of_http(s: u16) -> u32 {
    match s {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502..=504 => 14,
        _ => 2,
    }
}

struct Answer {
    code: u32,
    status: Option<u64>,
    tls: Option<(
        Vec<rustls::pki_types::CertificateDer<'static>>,
        Option<rustls::ProtocolVersion>,
    )>,
    error: Option<String>,
}

async fn check(
    addr: SocketAddr,
    authority: &str,
    tls: Option<(&PreparedGrpc, &str)>,
    service: &str,
) -> Answer {
    let fail = |code: u32, e: String| Answer {
        code,
        status: None,
        tls: None,
        error: Some(e),
    };
    let tcp = match tokio::net::TcpStream::connect(addr).await {
        Ok(t) => t,
        Err(e) => {
            return fail(
                UNAVAILABLE,
                format!("connection error: dial tcp {addr}: {e}"),
            );
        }
    };
    let _ = tcp.set_nodelay(true);
    let (io, tls_state): (Box<dyn Io>, _) = match tls {
        None => (Box::new(tcp), None),
        Some((p, name)) => {
            let cfg = match p.tls.clone() {
                Ok(c) => c,
                Err(e) => return fail(UNAVAILABLE, e),
            };
            let sn = match rustls::pki_types::ServerName::try_from(name.to_string()) {
                Ok(n) => n,
                Err(e) => {
                    return fail(
                        UNAVAILABLE,
                        format!("invalid TLS server name {name:?}: {e}"),
                    );
                }
            };
            match tokio_rustls::TlsConnector::from(cfg).connect(sn, tcp).await {
                Ok(c) => {
                    let (_, s) = c.get_ref();
                    let certs = s
                        .peer_certificates()
                        .map(|cs| cs.iter().map(|c| c.clone().into_owned()).collect())
                        .unwrap_or_default();
                    let v = s.protocol_version();
                    (Box::new(c), Some((certs, v)))
                }
                Err(e) => return fail(UNAVAILABLE, format!("connection error: tls: {e}")),
            }
        }
    };
    let io = hyper_util::rt::TokioIo::new(io);
    let (mut send, conn) =
        match hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io).await
        {
            Ok(x) => x,
            Err(e) => return fail(UNAVAILABLE, format!("connection error: {e}")),
        };
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    let _task = super::AbortOnDrop(task);
    let scheme = if tls.is_some() { "https" } else { "http" };
    let req = match hyper::Request::builder()
        .method("POST")
        .uri(format!(
            "{scheme}://{authority}/grpc.health.v1.Health/Check"
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header(
            "user-agent",
            concat!("vigil-probe/", env!("CARGO_PKG_VERSION")),
        )
        .body(Full::new(request_frame(service)))
    {
        Ok(r) => r,
        Err(e) => return fail(2, e.to_string()),
    };
    let resp = match send.send_request(req).await {
        Ok(r) => r,
        Err(e) => return fail(UNAVAILABLE, format!("transport: {e}")),
    };
    if resp.status() != hyper::StatusCode::OK {
        let s = resp.status().as_u16();
        return fail(code_of_http(s), format!("unexpected HTTP status code {s}"));
    }
    let header_status = resp
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u32>().ok());
    let mut body = resp.into_body();
    let mut data = Vec::new();
    let mut trailer_status = None;
    let mut message = None;
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => return fail(UNAVAILABLE, format!("transport: {e}")),
        };
        if let Some(t) = frame.trailers_ref() {
            trailer_status = t
                .get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u32>().ok());
            message = t
                .get("grpc-message")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
        } else if let Ok(mut d) = frame.into_data() {
            while d.has_remaining() {
                let c = d.chunk().to_vec();
                d.advance(c.len());
                data.extend_from_slice(&c);
            }
        }
    }
    let code = trailer_status.or(header_status).unwrap_or(2);
    if code != 0 {
        return Answer {
            code,
            status: None,
            tls: None,
            error: Some(format!(
                "rpc error: code = {code} desc = {}",
                message.unwrap_or_default()
            )),
        };
    }
    match response_status(&data) {
        Ok(s) => Answer {
            code: 0,
            status: Some(s),
            tls: tls_state,
            error: None,
        },
        Err(e) => fail(13, e),
    }
}

pub async fn probe(
    target: &str,
    module: &Module,
    prepared: &PreparedGrpc,
    m: &mut ProbeMetrics,
    log: &mut ProbeLog,
) -> bool {
    // blackbox_exporter applies the grpc defaults only when a `grpc:` mapping is present.
    let present = module.grpc.is_some();
    let cfg = module.grpc.clone().unwrap_or_default();
    m.set_with(
        "probe_grpc_duration_seconds",
        PHASES,
        &[("phase", "resolve")],
        0.0,
    );
    m.set(
        "probe_grpc_ssl",
        "Indicates if SSL was used for the connection",
        0.0,
    );
    m.set("probe_grpc_status_code", "Response gRPC status code", 0.0);
    m.set(
        "probe_ssl_earliest_cert_expiry",
        "Returns last SSL chain expiry in unixtime",
        0.0,
    );
    let url = match super::target_url(target) {
        Ok(u) => u,
        Err(e) => {
            log.error("Could not parse target URL", &[("err", &e)]);
            return false;
        }
    };
    let host = url
        .host_str()
        .unwrap_or_default()
        .trim_matches(['[', ']'])
        .to_string();
    let port = url.port().unwrap_or(if cfg.tls { 443 } else { 80 });
    let fallback = present && cfg.ip_protocol_fallback;
    let (ip, lookup) = choose_protocol(&host, &cfg.preferred_ip_protocol, fallback, m, log).await;
    let ip = match ip {
        Ok(ip) => ip,
        Err(e) => {
            log.error("Error resolving address", &[("err", &e)]);
            return false;
        }
    };
    m.set_with(
        "probe_grpc_duration_seconds",
        PHASES,
        &[("phase", "resolve")],
        lookup,
    );
    let started = Instant::now();
    let sni = if cfg.tls_config.server_name.is_empty() {
        host.clone()
    } else {
        cfg.tls_config.server_name.clone()
    };
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    log.debug(
        if cfg.tls {
            "Dialing GRPC with TLS"
        } else {
            "Dialing GRPC without TLS"
        },
        &[],
    );
    let a = check(
        SocketAddr::new(ip, port),
        &authority,
        cfg.tls.then_some((prepared, sni.as_str())),
        &cfg.service,
    )
    .await;
    m.set_with(
        "probe_grpc_duration_seconds",
        PHASES,
        &[("phase", "check")],
        started.elapsed().as_secs_f64(),
    );
    for s in STATUSES {
        m.set_with(
            "probe_grpc_healthcheck_response",
            "Response HealthCheck response",
            &[("serving_status", s)],
            0.0,
        );
    }
    if let Some(s) = a.status {
        let name = STATUSES.get(s as usize).copied().unwrap_or("UNKNOWN");
        m.set_with(
            "probe_grpc_healthcheck_response",
            "Response HealthCheck response",
            &[("serving_status", name)],
            1.0,
        );
    }
    if a.status.is_some()
        && let Some((certs, v)) = &a.tls
    {
        m.set(
            "probe_grpc_ssl",
            "Indicates if SSL was used for the connection",
            1.0,
        );
        set_tls_metrics(m, certs, *v, !cfg.tls_config.insecure_skip_verify);
        // blackbox_exporter's gRPC probe has no last-chain expiry series.
        m.remove("probe_ssl_last_chain_expiry_timestamp_seconds");
    }
    m.set(
        "probe_grpc_status_code",
        "Response gRPC status code",
        a.code as f64,
    );
    match (a.status, &a.error) {
        (Some(1), None) => true,
        (_, err) => {
            log.error(
                "can't connect grpc server:",
                &[("err", &err.clone().unwrap_or_else(|| "not serving".into()))],
            );
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages() {
        assert_eq!(&request_frame("")[..], &[0, 0, 0, 0, 0]);
        assert_eq!(
            &request_frame("ab")[..],
            &[0, 0, 0, 0, 4, 0x0a, 2, b'a', b'b']
        );
        assert_eq!(response_status(&[0, 0, 0, 0, 2, 0x08, 1]).unwrap(), 1);
        assert_eq!(response_status(&[0, 0, 0, 0, 0]).unwrap(), 0);
    }
}
