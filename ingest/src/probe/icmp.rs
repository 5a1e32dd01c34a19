//! The `icmp` prober: one echo request, as blackbox_exporter sends it (an unprivileged ICMP socket
//! first, a raw socket when that is refused). Without either (no CAP_NET_RAW and a gid outside
//! `net.ipv4.ping_group_range`) the probe fails and says so.

use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::config::Module;
use super::log::ProbeLog;
use super::registry::ProbeMetrics;
use super::resolve::choose_protocol;

const PH: &str = "Duration of icmp request by phase";
const PAYLOAD: &[u8] = b"Prometheus Blackbox Exporter";

fn checksum(b: &[u8]) -> u16 {
    let mut sum = 0u32;
    for c in b.chunks(2) {
        let w = if c.len() == 2 {
            ((c[0] as u32) << 8) | c[1] as u32
        } else {
            (c[0] as u32) << 8
        };
        sum = sum.wrapping_add(w);
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

struct Outcome {
    setup: f64,
    rtt: Option<f64>,
    hop_limit: Option<u8>,
    error: Option<(String, String)>,
}

fn echo(ip: IpAddr, m: &Module, deadline: Instant) -> Outcome {
    let started = Instant::now();
    let v6 = ip.is_ipv6();
    let (domain, proto) = if v6 {
        (Domain::IPV6, Protocol::ICMPV6)
    } else {
        (Domain::IPV4, Protocol::ICMPV4)
    };
    let fail = |setup: f64, msg: &str, err: String| Outcome {
        setup,
        rtt: None,
        hop_limit: None,
        error: Some((msg.to_string(), err)),
    };
    let (sock, raw) = match Socket::new(domain, Type::DGRAM, Some(proto)) {
        Ok(s) if !m.icmp.dont_fragment => (s, false),
        _ => match Socket::new(domain, Type::RAW, Some(proto)) {
            Ok(s) => (s, true),
            Err(e) => {
                let what = if v6 {
                    "listen ip6:ipv6-icmp ::"
                } else {
                    "listen ip4:icmp 0.0.0.0"
                };
                return fail(
                    started.elapsed().as_secs_f64(),
                    "Error listening to socket",
                    format!(
                        "{what}: socket: {e} (ICMP probes need CAP_NET_RAW or a gid within net.ipv4.ping_group_range)"
                    ),
                );
            }
        },
    };
    if !m.icmp.source_ip_address.is_empty() {
        match m.icmp.source_ip_address.parse::<IpAddr>() {
            Ok(src) => {
                if let Err(e) = sock.bind(&SockAddr::from(SocketAddr::new(src, 0))) {
                    return fail(
                        started.elapsed().as_secs_f64(),
                        "Error listening to socket",
                        e.to_string(),
                    );
                }
            }
            Err(_) => {
                return fail(
                    started.elapsed().as_secs_f64(),
                    "Error parsing source ip address",
                    m.icmp.source_ip_address.clone(),
                );
            }
        }
    }
    if m.icmp.ttl > 0 {
        let _ = if v6 {
            sock.set_unicast_hops_v6(m.icmp.ttl as u32)
        } else {
            sock.set_ttl_v4(m.icmp.ttl as u32)
        };
    }
    let id: u16 = (std::process::id() & 0xffff) as u16;
    let seq: u16 = rand::random();
    let mut payload = PAYLOAD.to_vec();
    if m.icmp.payload_size > 0 {
        payload.resize(m.icmp.payload_size, 0);
    }
    let mut pkt = vec![if v6 { 128 } else { 8 }, 0, 0, 0];
    pkt.extend_from_slice(&id.to_be_bytes());
    pkt.extend_from_slice(&seq.to_be_bytes());
    pkt.extend_from_slice(&payload);
    if !v6 {
        let c = checksum(&pkt);
        pkt[2..4].copy_from_slice(&c.to_be_bytes());
    }
    let setup = started.elapsed().as_secs_f64();
    let target = SockAddr::from(SocketAddr::new(ip, 0));
    let sent = Instant::now();
    if let Err(e) = sock.send_to(&pkt, &target) {
        return fail(setup, "Error writing to socket", e.to_string());
    }
    let mut buf = [MaybeUninit::<u8>::uninit(); 65536];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return fail(setup, "Timeout reading from socket", "i/o timeout".into());
        }
        let _ = sock.set_read_timeout(Some(left.max(Duration::from_millis(1))));
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return fail(setup, "Timeout reading from socket", e.to_string());
            }
            Err(e) => return fail(setup, "Error reading from socket", e.to_string()),
        };
        // SAFETY: recv_from initialised the first n bytes.
        let data: Vec<u8> = buf[..n]
            .iter()
            .map(|b| unsafe { b.assume_init() })
            .collect();
        if from.as_socket().map(|s| s.ip()) != Some(ip) {
            continue;
        }
        // A raw IPv4 socket hands the IP header too.
        let (icmp, hop) = if raw && !v6 && !data.is_empty() {
            let ihl = ((data[0] & 0x0f) as usize) * 4;
            (
                data.get(ihl..).unwrap_or(&[]).to_vec(),
                data.get(8).copied(),
            )
        } else {
            (data, None)
        };
        if icmp.len() < 8 {
            continue;
        }
        let reply = if v6 { 129 } else { 0 };
        let rseq = u16::from_be_bytes([icmp[6], icmp[7]]);
        let rid = u16::from_be_bytes([icmp[4], icmp[5]]);
        // Unprivileged sockets get their identifier rewritten by the kernel.
        if icmp[0] == reply && rseq == seq && (!raw || rid == id) && icmp[8..] == payload[..] {
            return Outcome {
                setup,
                rtt: Some(sent.elapsed().as_secs_f64()),
                hop_limit: hop,
                error: None,
            };
        }
    }
}

pub async fn probe(
    target: &str,
    module: &Module,
    deadline: tokio::time::Instant,
    m: &mut ProbeMetrics,
    log: &mut ProbeLog,
) -> bool {
    for p in ["resolve", "setup", "rtt"] {
        m.set_with("probe_icmp_duration_seconds", PH, &[("phase", p)], 0.0);
    }
    let (ip, lookup) = choose_protocol(
        target,
        &module.icmp.preferred_ip_protocol,
        module.icmp.ip_protocol_fallback,
        m,
        log,
    )
    .await;
    let Ok(ip) = ip else { return false };
    m.set_with(
        "probe_icmp_duration_seconds",
        PH,
        &[("phase", "resolve")],
        lookup,
    );
    log.info("Creating socket", &[]);
    let module = module.clone();
    let dl = deadline.into_std();
    let out = match tokio::task::spawn_blocking(move || echo(ip, &module, dl)).await {
        Ok(o) => o,
        Err(e) => {
            log.error("ICMP probe task failed", &[("err", &e)]);
            return false;
        }
    };
    m.set_with(
        "probe_icmp_duration_seconds",
        PH,
        &[("phase", "setup")],
        out.setup,
    );
    if let Some((msg, err)) = out.error {
        log.error(&msg, &[("err", &err)]);
        return false;
    }
    if let Some(rtt) = out.rtt {
        m.set_with("probe_icmp_duration_seconds", PH, &[("phase", "rtt")], rtt);
        log.info("Found matching reply packet", &[]);
    }
    if let Some(h) = out.hop_limit {
        m.set(
            "probe_icmp_reply_hop_limit",
            "Replied packet hop limit (TTL for ipv4)",
            h as f64,
        );
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icmp_checksum() {
        // Echo request id 1 seq 1 with no payload: 0x08 0x00 [f7 fd] 0x00 0x01 0x00 0x01.
        assert_eq!(checksum(&[8, 0, 0, 0, 0, 1, 0, 1]), 0xf7fd);
    }
}
