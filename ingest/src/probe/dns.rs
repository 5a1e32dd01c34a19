//! The `dns` prober: one query over UDP, TCP or TLS to the target server, then blackbox_exporter
//! 0.23's checks of the rcode and of each section's records, matched against the records written
//! as miekg/dns writes them (`name.\tTTL\tCLASS\tTYPE\trdata`).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::config::{Module, RrValidator};
use super::log::ProbeLog;
use super::registry::ProbeMetrics;
use super::resolve::choose_protocol;

const TYPES: &[(&str, u16)] = &[
    ("A", 1),
    ("NS", 2),
    ("CNAME", 5),
    ("SOA", 6),
    ("PTR", 12),
    ("HINFO", 13),
    ("MX", 15),
    ("TXT", 16),
    ("AAAA", 28),
    ("SRV", 33),
    ("NAPTR", 35),
    ("DS", 43),
    ("RRSIG", 46),
    ("NSEC", 47),
    ("DNSKEY", 48),
    ("TLSA", 52),
    ("SVCB", 64),
    ("HTTPS", 65),
    ("SPF", 99),
    ("AXFR", 252),
    ("ANY", 255),
    ("CAA", 257),
];

const CLASSES: &[(&str, u16)] = &[
    ("IN", 1),
    ("CS", 2),
    ("CH", 3),
    ("HS", 4),
    ("NONE", 254),
    ("ANY", 255),
];

const RCODES: &[(&str, u16)] = &[
    ("NOERROR", 0),
    ("FORMERR", 1),
    ("SERVFAIL", 2),
    ("NXDOMAIN", 3),
    ("NOTIMP", 4),
    ("REFUSED", 5),
    ("YXDOMAIN", 6),
    ("YXRRSET", 7),
    ("NXRRSET", 8),
    ("NOTAUTH", 9),
    ("NOTZONE", 10),
    ("BADSIG", 16),
    ("BADKEY", 17),
    ("BADTIME", 18),
    ("BADMODE", 19),
    ("BADNAME", 20),
    ("BADALG", 21),
    ("BADTRUNC", 22),
    ("BADCOOKIE", 23),
];

/// A record type by its name (case as miekg/dns accepts it: upper case).
pub fn record_type(name: &str) -> Option<u16> {
    TYPES.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

pub fn record_class(name: &str) -> Option<u16> {
    CLASSES.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

fn type_name(t: u16) -> String {
    TYPES
        .iter()
        .find(|(_, v)| *v == t)
        .map(|(n, _)| n.to_string())
        .unwrap_or_else(|| format!("TYPE{t}"))
}

fn class_name(c: u16) -> String {
    CLASSES
        .iter()
        .find(|(_, v)| *v == c)
        .map(|(n, _)| n.to_string())
        .unwrap_or_else(|| format!("CLASS{c}"))
}

/// Builds a query message.
fn encode_query(id: u16, name: &str, qtype: u16, qclass: u16, rd: bool) -> Result<Vec<u8>, String> {
    let mut m = Vec::with_capacity(64);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&(if rd { 0x0100u16 } else { 0 }).to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    m.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    let fqdn = name.trim_end_matches('.');
    if !fqdn.is_empty() {
        for label in fqdn.split('.') {
            if label.is_empty() || label.len() > 63 {
                return Err(format!("invalid query name {name:?}"));
            }
            m.push(label.len() as u8);
            m.extend_from_slice(label.as_bytes());
        }
    }
    m.push(0);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&qclass.to_be_bytes());
    Ok(m)
}

/// One resource record, parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct Rr {
    pub name: String,
    pub rtype: u16,
    pub class: u16,
    pub ttl: u32,
    pub rdata: String,
    /// SOA serial, when the record is a SOA.
    pub serial: Option<u32>,
}

impl std::fmt::Display for Rr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}\t{}\t{}\t{}\t{}",
            self.name,
            self.ttl,
            class_name(self.class),
            type_name(self.rtype),
            self.rdata
        )
    }
}

/// A parsed response.
#[derive(Debug, Default)]
pub struct Response {
    pub id: u16,
    pub rcode: u16,
    pub truncated: bool,
    pub answer: Vec<Rr>,
    pub authority: Vec<Rr>,
    pub additional: Vec<Rr>,
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Result<u8, String> {
        let v = *self
            .b
            .get(self.pos)
            .ok_or("dns: overflow unpacking uint8")?;
        self.pos += 1;
        Ok(v)
    }
    fn u16(&mut self) -> Result<u16, String> {
        Ok(((self.u8()? as u16) << 8) | self.u8()? as u16)
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(((self.u16()? as u32) << 16) | self.u16()? as u32)
    }
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], String> {
        let s = self
            .b
            .get(self.pos..self.pos + n)
            .ok_or("dns: overflow unpacking data")?;
        self.pos += n;
        Ok(s)
    }
    /// A domain name with compression pointers, as miekg writes it (FQDN, `\.` for dots inside
    /// labels, `\DDD` for other unprintable bytes).
    fn name(&mut self) -> Result<String, String> {
        let mut out = String::new();
        let mut pos = self.pos;
        let mut jumped = false;
        let mut hops = 0;
        loop {
            let len = *self
                .b
                .get(pos)
                .ok_or("dns: overflow unpacking domain name")? as usize;
            if len & 0xC0 == 0xC0 {
                let lo = *self
                    .b
                    .get(pos + 1)
                    .ok_or("dns: overflow unpacking domain name")?
                    as usize;
                if !jumped {
                    self.pos = pos + 2;
                }
                jumped = true;
                hops += 1;
                if hops > 64 {
                    return Err("dns: too many compression pointers".into());
                }
                pos = ((len & 0x3F) << 8) | lo;
                continue;
            }
            pos += 1;
            if len == 0 {
                break;
            }
            let label = self
                .b
                .get(pos..pos + len)
                .ok_or("dns: overflow unpacking domain name")?;
            for &c in label {
                match c {
                    b'.' | b'(' | b')' | b';' | b' ' | b'@' | b'"' | b'\\' => {
                        out.push('\\');
                        out.push(c as char);
                    }
                    0x21..=0x7e => out.push(c as char),
                    _ => out.push_str(&format!("\\{c:03}")),
                }
            }
            out.push('.');
            pos += len;
        }
        if !jumped {
            self.pos = pos;
        }
        if out.is_empty() {
            out.push('.');
        }
        Ok(out)
    }
}

fn txt_strings(data: &[u8]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < data.len() {
        let n = data[i] as usize;
        let s = &data[(i + 1).min(data.len())..(i + 1 + n).min(data.len())];
        let mut q = String::from("\"");
        for &c in s {
            match c {
                b'"' | b'\\' => {
                    q.push('\\');
                    q.push(c as char);
                }
                0x20..=0x7e => q.push(c as char),
                _ => q.push_str(&format!("\\{c:03}")),
            }
        }
        q.push('"');
        parts.push(q);
        i += 1 + n;
    }
    parts.join(" ")
}

fn rr(r: &mut Reader<'_>) -> Result<Rr, String> {
    let name = r.name()?;
    let rtype = r.u16()?;
    let class = r.u16()?;
    let ttl = r.u32()?;
    let len = r.u16()? as usize;
    let start = r.pos;
    let end = start + len;
    if end > r.b.len() {
        return Err("dns: overflow unpacking rdata".into());
    }
    let mut serial = None;
    let rdata = match rtype {
        1 if len == 4 => {
            let b = r.bytes(4)?;
            std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string()
        }
        28 if len == 16 => {
            let b: [u8; 16] = r.bytes(16)?.try_into().map_err(|_| "dns: bad AAAA")?;
            std::net::Ipv6Addr::from(b).to_string()
        }
        2 | 5 | 12 | 39 => r.name()?,
        15 => {
            let pref = r.u16()?;
            format!("{pref} {}", r.name()?)
        }
        6 => {
            let ns = r.name()?;
            let mbox = r.name()?;
            let s = r.u32()?;
            serial = Some(s);
            let (refresh, retry, expire, min) = (r.u32()?, r.u32()?, r.u32()?, r.u32()?);
            format!("{ns} {mbox} {s} {refresh} {retry} {expire} {min}")
        }
        33 => {
            let (p, w, port) = (r.u16()?, r.u16()?, r.u16()?);
            format!("{p} {w} {port} {}", r.name()?)
        }
        16 | 99 => txt_strings(r.bytes(len)?),
        _ => {
            let d = r.bytes(len)?;
            let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
            format!("\\# {len} {hex}")
        }
    };
    r.pos = end;
    Ok(Rr {
        name,
        rtype,
        class,
        ttl,
        rdata,
        serial,
    })
}

/// Parses a response message.
pub fn decode(b: &[u8]) -> Result<Response, String> {
    let mut r = Reader { b, pos: 0 };
    let id = r.u16()?;
    let flags = r.u16()?;
    let (qd, an, ns, ar) = (r.u16()?, r.u16()?, r.u16()?, r.u16()?);
    for _ in 0..qd {
        r.name()?;
        r.u16()?;
        r.u16()?;
    }
    let mut resp = Response {
        id,
        rcode: flags & 0x000F,
        truncated: flags & 0x0200 != 0,
        ..Default::default()
    };
    for _ in 0..an {
        resp.answer.push(rr(&mut r)?);
    }
    for _ in 0..ns {
        resp.authority.push(rr(&mut r)?);
    }
    for _ in 0..ar {
        let x = rr(&mut r)?;
        // The EDNS pseudo-record carries the extended rcode bits.
        if x.rtype == 41 {
            resp.rcode |= ((x.ttl >> 24) as u16) << 4;
        }
        resp.additional.push(x);
    }
    Ok(resp)
}

pub struct PreparedDns {
    tls: Result<Arc<rustls::ClientConfig>, String>,
}

impl PreparedDns {
    pub fn new(m: &Module) -> PreparedDns {
        PreparedDns {
            tls: super::tls_client(&m.dns.tls_config, &[]),
        }
    }
}

fn validate(rrs: &[Rr], v: &RrValidator, log: &mut ProbeLog) -> bool {
    if rrs.is_empty() && !v.fail_if_not_matches_regexp.is_empty() {
        log.error(
            "fail_if_not_matches_regexp specified but no RRs returned",
            &[],
        );
        return false;
    }
    if rrs.is_empty() && !v.fail_if_none_matches_regexp.is_empty() {
        log.error(
            "fail_if_none_matches_regexp specified but no RRs returned",
            &[],
        );
        return false;
    }
    // The expressions compile at probe time, as in blackbox_exporter 0.23: a bad one fails the probe.
    let mut compiled = |list: &[String]| -> Option<Vec<(String, regex::Regex)>> {
        let mut out = Vec::new();
        for re in list {
            match regex::Regex::new(re) {
                Ok(r) => out.push((re.clone(), r)),
                Err(e) => {
                    log.error("Error matching regexp", &[("regexp", re), ("err", &e)]);
                    return None;
                }
            }
        }
        Some(out)
    };
    let (Some(matches), Some(all), Some(not_matches), Some(none)) = (
        compiled(&v.fail_if_matches_regexp),
        compiled(&v.fail_if_all_match_regexp),
        compiled(&v.fail_if_not_matches_regexp),
        compiled(&v.fail_if_none_matches_regexp),
    ) else {
        return false;
    };
    let mut any_match = false;
    let mut all_match = true;
    for rr in rrs {
        let s = rr.to_string();
        log.info("Validating RR", &[("rr", &s)]);
        if let Some((re, _)) = matches.iter().find(|(_, r)| r.is_match(&s)) {
            log.error(
                "At least one RR matched regexp",
                &[("regexp", re), ("rr", &s)],
            );
            return false;
        }
        if let Some((re, _)) = not_matches.iter().find(|(_, r)| !r.is_match(&s)) {
            log.error(
                "At least one RR did not match regexp",
                &[("regexp", re), ("rr", &s)],
            );
            return false;
        }
        all_match &= all.iter().all(|(_, r)| r.is_match(&s));
        any_match |= none.iter().any(|(_, r)| r.is_match(&s));
    }
    if !all.is_empty() && !all_match {
        log.error("Not all RRs matched regexp", &[]);
        return false;
    }
    if !none.is_empty() && !any_match {
        log.error("None of the RRs did matched any regexp", &[]);
        return false;
    }
    true
}

async fn exchange(
    addr: SocketAddr,
    transport: &str,
    query: &[u8],
    tls: Option<(&PreparedDns, &str)>,
) -> Result<(Vec<u8>, f64, f64), String> {
    let started = Instant::now();
    if transport == "udp" {
        let bind: SocketAddr = if addr.is_ipv6() {
            "[::]:0".parse().expect("literal")
        } else {
            "0.0.0.0:0".parse().expect("literal")
        };
        let sock = tokio::net::UdpSocket::bind(bind)
            .await
            .map_err(|e| e.to_string())?;
        sock.connect(addr).await.map_err(|e| e.to_string())?;
        let sent = Instant::now();
        sock.send(query).await.map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 65535];
        loop {
            let n = sock
                .recv(&mut buf)
                .await
                .map_err(|e| format!("read udp {addr}: {e}"))?;
            if n >= 2 && buf[..2] == query[..2] {
                let rtt = sent.elapsed().as_secs_f64();
                return Ok((
                    buf[..n].to_vec(),
                    started.elapsed().as_secs_f64() - rtt,
                    rtt,
                ));
            }
        }
    }
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("dial tcp {addr}: {e}"))?;
    let mut io: Box<dyn super::Io> = match tls {
        Some((p, name)) => {
            let cfg = p.tls.clone()?;
            let sn = rustls::pki_types::ServerName::try_from(name.to_string())
                .map_err(|e| format!("invalid TLS server name {name:?}: {e}"))?;
            Box::new(
                tokio_rustls::TlsConnector::from(cfg)
                    .connect(sn, tcp)
                    .await
                    .map_err(|e| e.to_string())?,
            )
        }
        None => Box::new(tcp),
    };
    let sent = Instant::now();
    let mut msg = (query.len() as u16).to_be_bytes().to_vec();
    msg.extend_from_slice(query);
    io.write_all(&msg).await.map_err(|e| e.to_string())?;
    let mut len = [0u8; 2];
    io.read_exact(&mut len)
        .await
        .map_err(|e| format!("read tcp {addr}: {e}"))?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    io.read_exact(&mut buf)
        .await
        .map_err(|e| format!("read tcp {addr}: {e}"))?;
    let rtt = sent.elapsed().as_secs_f64();
    Ok((buf, started.elapsed().as_secs_f64() - rtt, rtt))
}

pub async fn probe(
    target: &str,
    module: &Module,
    prepared: &PreparedDns,
    m: &mut ProbeMetrics,
    log: &mut ProbeLog,
) -> bool {
    let cfg = &module.dns;
    const PH: &str = "Duration of DNS request by phase";
    for p in ["resolve", "connect", "request"] {
        m.set_with("probe_dns_duration_seconds", PH, &[("phase", p)], 0.0);
    }
    for (n, h) in [
        (
            "probe_dns_answer_rrs",
            "Returns number of entries in the answer resource record list",
        ),
        (
            "probe_dns_authority_rrs",
            "Returns number of entries in the authority resource record list",
        ),
        (
            "probe_dns_additional_rrs",
            "Returns number of entries in the additional resource record list",
        ),
        (
            "probe_dns_query_succeeded",
            "Displays whether or not the query was executed successfully",
        ),
    ] {
        m.set(n, h, 0.0);
    }
    let transport = if cfg.transport_protocol.is_empty() {
        "udp"
    } else {
        cfg.transport_protocol.as_str()
    };
    if transport != "udp" && transport != "tcp" {
        log.error(
            "Configuration error: Expected transport protocol udp or tcp",
            &[("protocol", &transport)],
        );
        return false;
    }
    if cfg.dns_over_tls && transport == "udp" {
        log.error(
            "Configuration error: Expected transport protocol tcp for DoT",
            &[("protocol", &transport)],
        );
        return false;
    }
    let default_port = if cfg.dns_over_tls { 853 } else { 53 };
    let (host, port) = match super::tcp::split_host_port(target) {
        Ok(hp) => hp,
        Err(_) => (target.to_string(), default_port),
    };
    let (ip, lookup) = choose_protocol(
        &host,
        &cfg.preferred_ip_protocol,
        cfg.ip_protocol_fallback,
        m,
        log,
    )
    .await;
    let ip: IpAddr = match ip {
        Ok(ip) => ip,
        Err(_) => return false,
    };
    m.set_with(
        "probe_dns_duration_seconds",
        PH,
        &[("phase", "resolve")],
        lookup,
    );
    let qtype = record_type(if cfg.query_type.is_empty() {
        "ANY"
    } else {
        &cfg.query_type
    })
    .unwrap_or(255);
    let qclass = record_class(if cfg.query_class.is_empty() {
        "IN"
    } else {
        &cfg.query_class
    })
    .unwrap_or(1);
    let id: u16 = rand::random();
    let query = match encode_query(id, &cfg.query_name, qtype, qclass, cfg.recursion_desired) {
        Ok(q) => q,
        Err(e) => {
            log.error("Error while sending a DNS query", &[("err", &e)]);
            return false;
        }
    };
    let addr = SocketAddr::new(ip, port);
    log.info(
        "Making DNS query",
        &[
            ("target", &addr),
            ("dial_protocol", &transport),
            ("query", &cfg.query_name),
            ("type", &qtype),
            ("class", &qclass),
        ],
    );
    let sni = if cfg.tls_config.server_name.is_empty() {
        host.clone()
    } else {
        cfg.tls_config.server_name.clone()
    };
    let tls = cfg.dns_over_tls.then_some((prepared, sni.as_str()));
    let (bytes, connect, rtt) = match exchange(addr, transport, &query, tls).await {
        Ok(r) => r,
        Err(e) => {
            log.error("Error while sending a DNS query", &[("err", &e)]);
            return false;
        }
    };
    m.set_with(
        "probe_dns_duration_seconds",
        PH,
        &[("phase", "connect")],
        connect,
    );
    m.set_with(
        "probe_dns_duration_seconds",
        PH,
        &[("phase", "request")],
        rtt,
    );
    let resp = match decode(&bytes) {
        Ok(r) if r.id == id => r,
        Ok(_) => {
            log.error(
                "Error while sending a DNS query",
                &[("err", &"dns: id mismatch")],
            );
            return false;
        }
        Err(e) => {
            log.error("Error while sending a DNS query", &[("err", &e)]);
            return false;
        }
    };
    log.info(
        "Got response",
        &[("rcode", &resp.rcode), ("answers", &resp.answer.len())],
    );
    m.set(
        "probe_dns_answer_rrs",
        "Returns number of entries in the answer resource record list",
        resp.answer.len() as f64,
    );
    m.set(
        "probe_dns_authority_rrs",
        "Returns number of entries in the authority resource record list",
        resp.authority.len() as f64,
    );
    m.set(
        "probe_dns_additional_rrs",
        "Returns number of entries in the additional resource record list",
        resp.additional.len() as f64,
    );
    m.set(
        "probe_dns_query_succeeded",
        "Displays whether or not the query was executed successfully",
        1.0,
    );
    if qtype == 6 {
        let serial = resp
            .answer
            .iter()
            .filter_map(|r| r.serial)
            .next_back()
            .unwrap_or(0);
        m.set(
            "probe_dns_serial",
            "Returns the serial number of the zone",
            serial as f64,
        );
    }
    let valid: Vec<String> = cfg
        .valid_rcodes
        .clone()
        .unwrap_or_else(|| vec!["NOERROR".into()]);
    let mut rcode_ok = false;
    for name in &valid {
        match RCODES.iter().find(|(n, _)| n == name) {
            Some((_, v)) if *v == resp.rcode => rcode_ok = true,
            Some(_) => {}
            None => {
                log.error(
                    "Invalid rcode",
                    &[
                        ("rcode", name),
                        (
                            "known_rcode",
                            &"NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED, ...",
                        ),
                    ],
                );
                return false;
            }
        }
    }
    if !rcode_ok {
        log.error(
            "Rcode not valid",
            &[("rcode", &resp.rcode), ("valid_rcodes", &valid.join(","))],
        );
        return false;
    }
    log.info("Validating Answer RRs", &[]);
    if !validate(&resp.answer, &cfg.validate_answer_rrs, log) {
        log.error("Answer RRs validation failed", &[]);
        return false;
    }
    log.info("Validating Authority RRs", &[]);
    if !validate(&resp.authority, &cfg.validate_authority_rrs, log) {
        log.error("Authority RRs validation failed", &[]);
        return false;
    }
    log.info("Validating Additional RRs", &[]);
    if !validate(&resp.additional, &cfg.validate_additional_rrs, log) {
        log.error("Additional RRs validation failed", &[]);
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_miekg_text() {
        // A response to "example.com. A" with one answer (compressed name) and one TXT.
        let q = encode_query(0x1234, "example.com", 1, 1, true).unwrap();
        let mut r = q.clone();
        r[2] = 0x81;
        r[3] = 0x80;
        r[7] = 2; // two answers
        r.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 127, 0, 0, 1]);
        r.extend_from_slice(&[
            0xC0, 12, 0, 16, 0, 1, 0, 0, 0, 60, 0, 6, 5, b'h', b'e', b'"', b'l', b'o',
        ]);
        let resp = decode(&r).unwrap();
        assert_eq!(resp.id, 0x1234);
        assert_eq!(resp.rcode, 0);
        assert_eq!(
            resp.answer[0].to_string(),
            "example.com.\t3600\tIN\tA\t127.0.0.1"
        );
        assert_eq!(
            resp.answer[1].to_string(),
            "example.com.\t60\tIN\tTXT\t\"he\\\"lo\""
        );
    }

    #[test]
    fn all_match_fails_when_not_all_match() {
        let mk = |d: &str| Rr {
            name: "x.".into(),
            rtype: 1,
            class: 1,
            ttl: 1,
            rdata: d.into(),
            serial: None,
        };
        let v = RrValidator {
            fail_if_all_match_regexp: vec![".*127.0.0.*".into()],
            ..Default::default()
        };
        let mut log = ProbeLog::new("m", "t");
        assert!(!validate(&[mk("127.0.0.1"), mk("10.0.0.1")], &v, &mut log));
        assert!(validate(&[mk("127.0.0.1")], &v, &mut log));
        assert!(validate(&[], &v, &mut log), "no records pass");
    }
}
