//! Resolving a probe's target host with blackbox_exporter's IP protocol preference, and the series
//! that go with it (`probe_ip_protocol`, `probe_dns_lookup_time_seconds`, `probe_ip_addr_hash`).

use std::net::IpAddr;
use std::time::Instant;

use super::log::ProbeLog;
use super::registry::ProbeMetrics;

/// Resolves `host` (an IP literal resolves to itself). `preferred` is `ip4` or `ip6` (empty means
/// `ip6`, as in blackbox_exporter); with `fallback` the other family is used when the preferred one
/// has no address (its last address, as blackbox_exporter picks). Sets the three series whatever
/// happens; answers the address and the lookup time in seconds.
pub async fn choose_protocol(
    host: &str,
    preferred: &str,
    fallback: bool,
    m: &mut ProbeMetrics,
    log: &mut ProbeLog,
) -> (Result<IpAddr, String>, f64) {
    let want6 = preferred.is_empty() || preferred == "ip6";
    m.set(
        "probe_ip_protocol",
        "Specifies whether probe ip protocol is IP4 or IP6",
        0.0,
    );
    m.set(
        "probe_ip_addr_hash",
        "Specifies the hash of IP address. It's useful to detect if the IP address changes.",
        0.0,
    );
    let started = Instant::now();
    let proto = if want6 { "ip6" } else { "ip4" };
    log.info(
        "Resolving target address",
        &[("target", &host), ("ip_protocol", &proto)],
    );
    let host_trim = host.trim_start_matches('[').trim_end_matches(']');
    let found: Result<Vec<IpAddr>, String> = match host_trim.parse::<IpAddr>() {
        Ok(ip) => Ok(vec![ip]),
        Err(_) => tokio::net::lookup_host((host_trim, 0))
            .await
            .map(|it| it.map(|a| a.ip()).collect())
            .map_err(|e| format!("lookup {host}: {e}")),
    };
    let elapsed = started.elapsed().as_secs_f64();
    m.set(
        "probe_dns_lookup_time_seconds",
        "Returns the time taken for probe dns lookup in seconds",
        elapsed,
    );
    let chosen = found.and_then(|ips| {
        let is_wanted = |ip: &IpAddr| ip.is_ipv6() == want6;
        if let Some(ip) = ips.iter().find(|ip| is_wanted(ip)) {
            return Ok(*ip);
        }
        if !fallback {
            return Err(format!("no {proto} address for {host}"));
        }
        ips.iter()
            .rev()
            .find(|ip| !is_wanted(ip))
            .copied()
            .ok_or_else(|| "unable to find ip; no fallback".to_string())
    });
    match &chosen {
        Ok(ip) => {
            log.info("Resolved target address", &[("target", &host), ("ip", ip)]);
            m.set(
                "probe_ip_protocol",
                "Specifies whether probe ip protocol is IP4 or IP6",
                if ip.is_ipv6() { 6.0 } else { 4.0 },
            );
            m.set(
                "probe_ip_addr_hash",
                "Specifies the hash of IP address. It's useful to detect if the IP address changes.",
                ip_hash(ip) as f64,
            );
        }
        Err(e) => log.error(
            "Resolution with IP protocol failed",
            &[("target", &host), ("err", e)],
        ),
    }
    (chosen, elapsed)
}

/// FNV-1a (32 bits) over the address bytes: 4 for IPv4, 16 for IPv6.
pub fn ip_hash(ip: &IpAddr) -> u32 {
    let bytes: Vec<u8> = match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    let mut h: u32 = 0x811c9dc5;
    for b in bytes {
        h ^= b as u32;
        h = h.wrapping_mul(0x01000193);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn literals_and_preference() {
        let mut m = ProbeMetrics::new();
        let mut log = ProbeLog::new("m", "t");
        let (ip, _) = choose_protocol("127.0.0.1", "", true, &mut m, &mut log).await;
        assert_eq!(
            ip.unwrap().to_string(),
            "127.0.0.1",
            "ip6 preferred, v4 by fallback"
        );
        assert_eq!(m.get("probe_ip_protocol"), Some(4.0));
        let (ip, _) = choose_protocol("127.0.0.1", "ip6", false, &mut m, &mut log).await;
        assert!(ip.is_err(), "no fallback");
        let (ip, _) = choose_protocol("[::1]", "ip6", false, &mut m, &mut log).await;
        assert_eq!(ip.unwrap().to_string(), "::1");
        assert_eq!(m.get("probe_ip_protocol"), Some(6.0));
        assert!(m.contains("probe_dns_lookup_time_seconds"));
    }
}
