//! The `http` prober: blackbox_exporter 0.23's HTTP probe. One request (and its redirects) over a
//! fresh connection each, timed by phase, with its status, TLS, header and body checks.
//!
//! It speaks HTTP itself (hyper's client connections over tokio and rustls) rather than through
//! the shared client, because the probe needs what a pooled client hides: the time of each phase,
//! every certificate the server presented, and the response of a redirect it refused to follow.

use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use tokio::net::TcpStream;

use super::config::{HttpProbe, Module};
use super::log::ProbeLog;
use super::registry::ProbeMetrics;
use super::resolve::choose_protocol;
use super::tls_info::set_tls_metrics;

/// Bodies are read into memory for the regular expressions; without a `body_size_limit` Vigil
/// still stops at this many bytes (blackbox_exporter has no bound).
const MAX_BODY: usize = 64 << 20;

const PHASES: &str = "Duration of http request by phase, summed over all redirects";

/// What an HTTP module needs prepared once, not at every probe.
pub struct PreparedHttp {
    tls: Result<Arc<rustls::ClientConfig>, String>,
    credentials: Result<vigil_http::Credentials, String>,
}

impl PreparedHttp {
    pub fn new(p: &HttpProbe) -> PreparedHttp {
        let hc = &p.http_client_config;
        PreparedHttp {
            tls: hc
                .tls_config
                .client_config(hc.enable_http2)
                .map(Arc::new)
                .map_err(|e| e.to_string()),
            credentials: hc.credentials().map_err(|e| e.to_string()),
        }
    }
}

/// The response a probe ends with.
struct Final {
    status: u16,
    version: hyper::Version,
    headers: HeaderMap,
    body: Option<hyper::body::Incoming>,
    tls: Option<TlsState>,
    first_byte: Instant,
    /// The redirect was not followed: the body is gone (as Go's client closes it).
    refused: bool,
    _conn: AbortOnDrop,
}

struct TlsState {
    certs: Vec<rustls::pki_types::CertificateDer<'static>>,
    version: Option<rustls::ProtocolVersion>,
}

use super::{AbortOnDrop, Io};

fn is_redirect(s: u16) -> bool {
    matches!(s, 301 | 302 | 303 | 307 | 308)
}

fn phase(m: &mut ProbeMetrics, p: &str, secs: f64) {
    m.add_with("probe_http_duration_seconds", PHASES, &[("phase", p)], secs);
}

/// Runs the probe; answers success.
pub async fn probe(
    target: &str,
    module: &Module,
    prepared: &PreparedHttp,
    user_agent: &str,
    deadline: tokio::time::Instant,
    m: &mut ProbeMetrics,
    log: &mut ProbeLog,
) -> bool {
    let cfg = &module.http;
    for (name, help) in [
        (
            "probe_http_content_length",
            "Length of http content response",
        ),
        (
            "probe_http_uncompressed_body_length",
            "Length of uncompressed response body",
        ),
        ("probe_http_redirects", "The number of redirects"),
        (
            "probe_http_ssl",
            "Indicates if SSL was used for the final redirect",
        ),
        ("probe_http_status_code", "Response HTTP status code"),
        (
            "probe_http_version",
            "Returns the version of HTTP of the probe response",
        ),
        (
            "probe_failed_due_to_regex",
            "Indicates if probe failed due to regex",
        ),
    ] {
        m.set(name, help, 0.0);
    }
    let url = match super::target_url(target) {
        Ok(u) => u,
        Err(e) => {
            log.error("Could not parse target URL", &[("err", &e)]);
            return false;
        }
    };
    let Some(host) = url.host_str().map(str::to_string) else {
        log.error("Could not parse target URL", &[("err", &"no host")]);
        return false;
    };
    let (ip, lookup) = choose_protocol(
        &host,
        &cfg.preferred_ip_protocol,
        cfg.ip_protocol_fallback,
        m,
        log,
    )
    .await;
    phase(m, "resolve", lookup);
    let ip = match ip {
        Ok(ip) => ip,
        Err(_) => return false,
    };
    for p in ["connect", "tls", "processing", "transfer"] {
        phase(m, p, 0.0);
    }
    let tls = match &prepared.tls {
        Ok(t) => t.clone(),
        Err(e) => {
            log.error("Error generating HTTP client", &[("err", e)]);
            return false;
        }
    };
    let credentials = match &prepared.credentials {
        Ok(c) => c,
        Err(e) => {
            log.error("Error generating HTTP client", &[("err", e)]);
            return false;
        }
    };
    let auth = match credentials.header() {
        Ok(a) => a,
        Err(e) => {
            log.error("Error generating HTTP client", &[("err", &e)]);
            return false;
        }
    };

    let mut headers = HeaderMap::new();
    let mut host_override: Option<String> = None;
    for (k, v) in &cfg.headers {
        if k.eq_ignore_ascii_case("host") {
            host_override = Some(v.clone());
            continue;
        }
        match (HeaderName::try_from(k.as_str()), HeaderValue::from_str(v)) {
            (Ok(n), Ok(val)) => {
                headers.insert(n, val);
            }
            _ => {
                log.error(
                    "Error creating request",
                    &[("err", &format!("invalid header {k:?}"))],
                );
                return false;
            }
        }
    }
    if !headers.contains_key(hyper::header::USER_AGENT)
        && let Ok(v) = HeaderValue::from_str(user_agent)
    {
        headers.insert(hyper::header::USER_AGENT, v);
    }
    if let Some(a) = auth {
        headers.insert(hyper::header::AUTHORIZATION, a);
    }
    let method = if cfg.method.is_empty() {
        "GET".to_string()
    } else {
        cfg.method.clone()
    };
    let mut state = State { m, log, resp: None };
    let follow = cfg.follow_redirects();
    let sni = if !cfg.http_client_config.tls_config.server_name.is_empty() {
        cfg.http_client_config.tls_config.server_name.clone()
    } else if let Some(h) = &host_override {
        h.split(':').next().unwrap_or(h).to_string()
    } else {
        host.clone()
    };
    let req = Plan {
        url,
        ip,
        method,
        body: Bytes::from(cfg.body.clone().into_bytes()),
        headers,
        host_override,
        sni,
        follow,
        tls,
    };
    let outcome = match tokio::time::timeout_at(deadline, run_requests(req, &mut state)).await {
        Ok(r) => r,
        Err(_) => Err("context deadline exceeded".into()),
    };
    let State { m, log, resp } = state;
    let Some(mut fin) = resp else {
        if let Err(e) = outcome {
            log.error("Error for HTTP request", &[("err", &e)]);
        }
        return false;
    };
    let _ = outcome; // a refused redirect: judged as Go's client hands it back
    finish(cfg, &mut fin, deadline, m, log).await
}

struct Plan {
    url: reqwest::Url,
    ip: IpAddr,
    method: String,
    body: Bytes,
    headers: HeaderMap,
    host_override: Option<String>,
    sni: String,
    follow: bool,
    tls: Arc<rustls::ClientConfig>,
}

struct State<'a> {
    m: &'a mut ProbeMetrics,
    log: &'a mut ProbeLog,
    resp: Option<Final>,
}

fn authority(u: &reqwest::Url) -> String {
    let host = match u.host() {
        Some(url::Host::Ipv6(a)) => format!("[{a}]"),
        Some(h) => h.to_string(),
        None => String::new(),
    };
    match u.port() {
        Some(p) => format!("{host}:{p}"),
        None => host,
    }
}

/// Sends the request and follows redirects; leaves the response the probe judges in `st.resp`.
async fn run_requests(mut p: Plan, st: &mut State<'_>) -> Result<(), String> {
    let first_authority = authority(&p.url);
    let mut redirects = 0u32;
    let mut hop = 0u32;
    loop {
        let https = p.url.scheme() == "https";
        if p.url.scheme() != "http" && !https {
            return Err(format!("unsupported protocol scheme {:?}", p.url.scheme()));
        }
        let port = p.url.port().unwrap_or(if https { 443 } else { 80 });
        let started = Instant::now();
        let ip = if hop == 0 {
            p.ip
        } else {
            let host = p.url.host_str().unwrap_or_default().to_string();
            let h = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let ip = match h.parse::<IpAddr>() {
                Ok(ip) => ip,
                Err(_) => tokio::net::lookup_host((h.as_str(), port))
                    .await
                    .map_err(|e| format!("dial tcp: lookup {host}: {e}"))?
                    .next()
                    .ok_or_else(|| format!("dial tcp: lookup {host}: no such host"))?
                    .ip(),
            };
            phase(st.m, "resolve", started.elapsed().as_secs_f64());
            ip
        };
        let dns_done = Instant::now();
        let addr = SocketAddr::new(ip, port);
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("dial tcp {addr}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let connected = Instant::now();
        let authority_now = authority(&p.url);
        // The Host the request carries: the URL's, or the configured override while the redirect
        // stays on the first host (as Go keeps a custom Host for relative redirects).
        let host_header = match &p.host_override {
            Some(h) if authority_now == first_authority => h.clone(),
            _ => authority_now.clone(),
        };
        let (io, tls_state, h2): (Box<dyn Io>, Option<TlsState>, bool) = if https {
            let name = if authority_now == first_authority {
                p.sni.clone()
            } else {
                st.log.info(
                    "Address does not match first address, not sending TLS ServerName",
                    &[("first", &first_authority), ("address", &authority_now)],
                );
                p.url
                    .host_str()
                    .unwrap_or_default()
                    .trim_matches(['[', ']'])
                    .to_string()
            };
            let server_name = rustls::pki_types::ServerName::try_from(name.clone())
                .map_err(|e| format!("invalid TLS server name {name:?}: {e}"))?;
            let conn = tokio_rustls::TlsConnector::from(p.tls.clone())
                .connect(server_name, tcp)
                .await
                .map_err(|e| format!("Get {:?}: {e}", p.url.as_str()))?;
            let tls_done = Instant::now();
            phase(st.m, "connect", (connected - dns_done).as_secs_f64());
            phase(st.m, "tls", (tls_done - connected).as_secs_f64());
            let (_, c) = conn.get_ref();
            let h2 = c.alpn_protocol() == Some(b"h2");
            let state = TlsState {
                certs: c
                    .peer_certificates()
                    .map(|cs| cs.iter().map(|c| c.clone().into_owned()).collect())
                    .unwrap_or_default(),
                version: c.protocol_version(),
            };
            (Box::new(conn), Some(state), h2)
        } else {
            phase(st.m, "connect", (connected - dns_done).as_secs_f64());
            (Box::new(tcp), None, false)
        };
        let got_conn = Instant::now();
        let path = match p.url.query() {
            Some(q) => format!("{}?{q}", p.url.path()),
            None => p.url.path().to_string(),
        };
        let mut b = hyper::Request::builder().method(p.method.as_str());
        b = if h2 {
            b.uri(format!("{}://{host_header}{path}", p.url.scheme()))
        } else {
            b.uri(path.as_str())
                .header(hyper::header::HOST, host_header.as_str())
        };
        let mut req = b
            .body(Full::new(p.body.clone()))
            .map_err(|e| format!("building the request: {e}"))?;
        for (k, v) in &p.headers {
            // Credentials go only to the first host, as Go drops them on a redirect elsewhere.
            if k == hyper::header::AUTHORIZATION && authority_now != first_authority {
                continue;
            }
            req.headers_mut().insert(k.clone(), v.clone());
        }
        let io = hyper_util::rt::TokioIo::new(io);
        let (resp, conn) = if h2 {
            let (mut send, conn) =
                hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                    .await
                    .map_err(|e| format!("Get {:?}: {e}", p.url.as_str()))?;
            let task = AbortOnDrop(tokio::spawn(async move {
                let _ = conn.await;
            }));
            let r = send
                .send_request(req)
                .await
                .map_err(|e| format!("Get {:?}: {e}", p.url.as_str()))?;
            (r, task)
        } else {
            let (mut send, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|e| format!("Get {:?}: {e}", p.url.as_str()))?;
            let task = AbortOnDrop(tokio::spawn(async move {
                let _ = conn.await;
            }));
            let r = send
                .send_request(req)
                .await
                .map_err(|e| format!("Get {:?}: {e}", p.url.as_str()))?;
            (r, task)
        };
        let first_byte = Instant::now();
        phase(st.m, "processing", (first_byte - got_conn).as_secs_f64());
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get(hyper::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let (parts, body) = resp.into_parts();
        let mut fin = Final {
            status,
            version: parts.version,
            headers: parts.headers,
            body: Some(body),
            tls: tls_state,
            first_byte,
            refused: false,
            _conn: conn,
        };
        if is_redirect(status)
            && let Some(loc) = location
        {
            redirects = hop + 1;
            st.m.set(
                "probe_http_redirects",
                "The number of redirects",
                redirects as f64,
            );
            if redirects > 10 || !p.follow {
                st.log.info("Not following redirect", &[]);
                fin.refused = true;
                fin.body = None;
                st.resp = Some(fin);
                return Err("don't follow redirects".into());
            }
            let next = p
                .url
                .join(&loc)
                .map_err(|e| format!("failed to parse Location header {loc:?}: {e}"))?;
            st.log.info("Received redirect", &[("location", &next)]);
            if matches!(status, 301..=303) && p.method != "GET" && p.method != "HEAD" {
                p.method = "GET".into();
                p.body = Bytes::new();
            }
            p.url = next;
            hop += 1;
            continue;
        }
        let _ = redirects;
        st.resp = Some(fin);
        return Ok(());
    }
}

/// Judges the final response: status, headers, body, version, TLS; sets the series.
async fn finish(
    cfg: &HttpProbe,
    fin: &mut Final,
    deadline: tokio::time::Instant,
    m: &mut ProbeMetrics,
    log: &mut ProbeLog,
) -> bool {
    log.info("Received HTTP response", &[("status_code", &fin.status)]);
    let mut success = if !cfg.valid_status_codes.is_empty() {
        let ok = cfg.valid_status_codes.contains(&fin.status);
        if !ok {
            log.info(
                "Invalid HTTP response status code",
                &[
                    ("status_code", &fin.status),
                    (
                        "valid_status_codes",
                        &format!("{:?}", cfg.valid_status_codes),
                    ),
                ],
            );
        }
        ok
    } else {
        let ok = (200..300).contains(&fin.status);
        if !ok {
            log.info(
                "Invalid HTTP response status code, wanted 2xx",
                &[("status_code", &fin.status)],
            );
        }
        ok
    };
    if success
        && (!cfg.fail_if_header_matches.is_empty() || !cfg.fail_if_header_not_matches.is_empty())
    {
        success = headers_ok(cfg, &fin.headers, log);
        m.set(
            "probe_failed_due_to_regex",
            "Indicates if probe failed due to regex",
            if success { 0.0 } else { 1.0 },
        );
    }
    let mut body_len = 0usize;
    if fin.refused {
        if success
            && (!cfg.fail_if_body_matches_regexp.is_empty()
                || !cfg.fail_if_body_not_matches_regexp.is_empty())
        {
            log.error(
                "Error reading HTTP body",
                &[("err", &"http: read on closed response body")],
            );
            m.set(
                "probe_failed_due_to_regex",
                "Indicates if probe failed due to regex",
                1.0,
            );
            success = false;
        }
    } else if let Some(body) = fin.body.take() {
        let limit = cfg.body_size_limit.map(|b| b.0 as usize).filter(|l| *l > 0);
        let read =
            tokio::time::timeout_at(deadline, read_body(body, cfg.compression.as_deref(), limit))
                .await
                .unwrap_or_else(|_| Err((0, "context deadline exceeded".into())));
        match read {
            Ok(bytes) => {
                body_len = bytes.len();
                if success
                    && (!cfg.fail_if_body_matches_regexp.is_empty()
                        || !cfg.fail_if_body_not_matches_regexp.is_empty())
                {
                    success = body_ok(cfg, &bytes, log);
                    m.set(
                        "probe_failed_due_to_regex",
                        "Indicates if probe failed due to regex",
                        if success { 0.0 } else { 1.0 },
                    );
                }
            }
            Err((n, e)) => {
                body_len = n;
                log.info("Failed to read HTTP response body", &[("err", &e)]);
                success = false;
            }
        }
        phase(m, "transfer", fin.first_byte.elapsed().as_secs_f64());
    }
    let proto = match fin.version {
        hyper::Version::HTTP_09 => "HTTP/0.9",
        hyper::Version::HTTP_10 => "HTTP/1.0",
        hyper::Version::HTTP_11 => "HTTP/1.1",
        hyper::Version::HTTP_2 => "HTTP/2.0",
        hyper::Version::HTTP_3 => "HTTP/3.0",
        _ => "",
    };
    if success
        && !cfg.valid_http_versions.is_empty()
        && !cfg.valid_http_versions.iter().any(|v| v == proto)
    {
        log.error("Invalid HTTP version number", &[("version", &proto)]);
        success = false;
    }
    if let Some(t) = &fin.tls {
        m.set(
            "probe_http_ssl",
            "Indicates if SSL was used for the final redirect",
            1.0,
        );
        set_tls_metrics(
            m,
            &t.certs,
            t.version,
            !cfg.http_client_config.tls_config.insecure_skip_verify,
        );
        if cfg.fail_if_ssl {
            log.error("Final request was over SSL", &[]);
            success = false;
        }
    } else if cfg.fail_if_not_ssl {
        log.error("Final request was not over SSL", &[]);
        success = false;
    }
    m.set(
        "probe_http_status_code",
        "Response HTTP status code",
        fin.status as f64,
    );
    let content_length = if matches!(fin.status, 100..=199 | 204 | 304) {
        0.0
    } else {
        fin.headers
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(-1.0)
    };
    m.set(
        "probe_http_content_length",
        "Length of http content response",
        content_length,
    );
    m.set(
        "probe_http_uncompressed_body_length",
        "Length of uncompressed response body",
        body_len as f64,
    );
    let version = proto
        .trim_start_matches("HTTP/")
        .parse::<f64>()
        .unwrap_or(0.0);
    m.set(
        "probe_http_version",
        "Returns the version of HTTP of the probe response",
        version,
    );
    if let Some(t) = fin
        .headers
        .get(hyper::header::LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
    {
        m.set(
            "probe_http_last_modified_timestamp_seconds",
            "Returns the Last-Modified HTTP response header in unixtime",
            t.as_secs() as f64,
        );
    }
    success
}

fn headers_ok(cfg: &HttpProbe, headers: &HeaderMap, log: &mut ProbeLog) -> bool {
    // (matchers, fail when a value matches?, message): fail_if_header_matches fails when any value
    // matches, fail_if_header_not_matches when none does; a missing header fails either unless
    // allow_missing.
    for (matchers, fail_on_match, msg) in [
        (
            &cfg.fail_if_header_matches,
            true,
            "Header matched regular expression",
        ),
        (
            &cfg.fail_if_header_not_matches,
            false,
            "Header did not match regular expression",
        ),
    ] {
        for hm in matchers {
            let values: Vec<&str> = headers
                .get_all(hm.header.as_str())
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            if values.is_empty() {
                if !hm.allow_missing {
                    log.error("Missing required header", &[("header", &hm.header)]);
                    return false;
                }
                continue;
            }
            if values.iter().any(|v| hm.regexp.re.is_match(v)) == fail_on_match {
                log.error(msg, &[("header", &hm.header), ("regexp", &hm.regexp.text)]);
                return false;
            }
        }
    }
    true
}

fn body_ok(cfg: &HttpProbe, body: &[u8], log: &mut ProbeLog) -> bool {
    let text = String::from_utf8_lossy(body);
    for r in &cfg.fail_if_body_matches_regexp {
        if r.re.is_match(&text) {
            log.error("Body matched regular expression", &[("regexp", &r.text)]);
            return false;
        }
    }
    for r in &cfg.fail_if_body_not_matches_regexp {
        if !r.re.is_match(&text) {
            log.error(
                "Body did not match regular expression",
                &[("regexp", &r.text)],
            );
            return false;
        }
    }
    true
}

/// Reads the body, decodes it when `compression` is set, and stops past `limit` decoded bytes.
/// On failure answers the bytes counted so far with the error.
async fn read_body(
    mut body: hyper::body::Incoming,
    compression: Option<&str>,
    limit: Option<usize>,
) -> Result<Vec<u8>, (usize, String)> {
    let mut raw = Vec::new();
    let cap = limit.unwrap_or(MAX_BODY).max(1);
    let raw_cap = if compression.is_some() { MAX_BODY } else { cap };
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| (raw.len(), e.to_string()))?;
        if let Some(d) = frame.data_ref() {
            raw.extend_from_slice(d);
            if raw.len() > raw_cap {
                raw.truncate(raw_cap);
                return Err((raw.len(), "http: request body too large".into()));
            }
        }
    }
    let decoded = match compression.map(|c| c.to_ascii_lowercase()) {
        None => raw,
        Some(c) if c.is_empty() || c == "identity" => raw,
        Some(c) => {
            let mut reader: Box<dyn Read> = match c.as_str() {
                "gzip" => Box::new(flate2::read::GzDecoder::new(raw.as_slice())),
                "deflate" => Box::new(flate2::read::DeflateDecoder::new(raw.as_slice())),
                "br" => Box::new(brotli_decompressor::Decompressor::new(raw.as_slice(), 4096)),
                other => return Err((0, format!("unsupported compression algorithm {other:?}"))),
            };
            let mut out = Vec::new();
            let mut buf = [0u8; 16384];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        out.extend_from_slice(&buf[..n]);
                        if out.len() > cap {
                            out.truncate(cap);
                            return Err((out.len(), "http: request body too large".into()));
                        }
                    }
                    Err(e) => return Err((out.len(), e.to_string())),
                }
            }
            out
        }
    };
    if decoded.len() > cap {
        return Err((cap, "http: request body too large".into()));
    }
    Ok(decoded)
}
