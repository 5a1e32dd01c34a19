//! The `haproxy` kind: a backend's servers over HAProxy's runtime API.

use serde::Serialize;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{HaproxyRoute, failed};
use crate::sandbox::CallError;

/// One server of a backend, from `show servers state`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct HaServer {
    name: String,
    addr: String,
    port: u16,
    /// 0 stopped, 1 starting, 2 running, 3 stopping.
    op_state: u32,
    /// SRV_ADMF_* flags.
    admin_state: u32,
}

impl HaServer {
    /// In maintenance: forced, inherited or by resolution (SRV_ADMF_FMAINT|IMAINT|RMAINT). The
    /// `disabled` keyword's flag (CMAINT) stays after `state ready` and does not count.
    fn maint(&self) -> bool {
        self.admin_state & 0x23 != 0
    }

    fn address(&self) -> String {
        if self.addr.contains(':') {
            format!("[{}]:{}", self.addr, self.port)
        } else {
            format!("{}:{}", self.addr, self.port)
        }
    }

    fn json(&self) -> Value {
        json!({
            "server": self.name,
            "address": self.address(),
            "maint": self.maint(),
            "drain": self.admin_state & 0x18 != 0,
            "up": self.op_state == 2,
        })
    }
}

/// Sends one command to HAProxy's runtime API and answers its reply (the socket is closed by
/// HAProxy after one command in non-interactive mode).
async fn haproxy_command(h: &HaproxyRoute, command: &str) -> Result<String, CallError> {
    let io = async {
        let mut reply = Vec::new();
        let line = format!("{command}\n");
        if h.socket.starts_with('/') || h.socket.starts_with("unix://") {
            let path = h.socket.trim_start_matches("unix://");
            let mut s = tokio::net::UnixStream::connect(path).await?;
            s.write_all(line.as_bytes()).await?;
            s.read_to_end(&mut reply).await?;
        } else {
            let mut s = tokio::net::TcpStream::connect(&h.socket).await?;
            s.write_all(line.as_bytes()).await?;
            s.read_to_end(&mut reply).await?;
        }
        Ok::<_, std::io::Error>(reply)
    };
    let reply = tokio::time::timeout(h.timeout, io)
        .await
        .map_err(|_| {
            failed(format!(
                "HAProxy at {}: no reply to {command:?} within {}",
                h.socket,
                humantime::format_duration(h.timeout)
            ))
        })?
        .map_err(|e| failed(format!("HAProxy at {}: {e}", h.socket)))?;
    Ok(String::from_utf8_lossy(&reply).trim().to_string())
}

/// A `set`/`shutdown` command: HAProxy answers nothing, or a sentence saying what changed, on
/// success; anything else is its error.
async fn haproxy_change(h: &HaproxyRoute, command: &str) -> Result<(), CallError> {
    let r = haproxy_command(h, command).await?;
    let ok = r.is_empty()
        || r.starts_with("IP changed")
        || r.starts_with("no need to change")
        || r.starts_with("port changed");
    if ok {
        Ok(())
    } else {
        Err(failed(format!("HAProxy refused {command:?}: {r}")))
    }
}

fn parse_servers_state(text: &str, backend: &str) -> Result<Vec<HaServer>, String> {
    let mut header: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(h) = line.strip_prefix("# ") {
            header = h.split_whitespace().collect();
            continue;
        }
        if line.is_empty() || header.is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        let col = |name: &str| -> Result<&str, String> {
            header
                .iter()
                .position(|h| *h == name)
                .and_then(|i| f.get(i).copied())
                .ok_or_else(|| format!("`show servers state` has no {name} column: {line:?}"))
        };
        if col("be_name")? != backend {
            continue;
        }
        let num = |name: &str| -> Result<u32, String> {
            col(name)?
                .parse()
                .map_err(|_| format!("{name} is not a number in {line:?}"))
        };
        out.push(HaServer {
            name: col("srv_name")?.to_string(),
            addr: col("srv_addr")?.to_string(),
            port: num("srv_port")? as u16,
            op_state: num("srv_op_state")?,
            admin_state: num("srv_admin_state")?,
        });
    }
    Ok(out)
}

async fn haproxy_servers(h: &HaproxyRoute) -> Result<Vec<HaServer>, CallError> {
    let r = haproxy_command(h, &format!("show servers state {}", h.backend)).await?;
    if !r.starts_with('1') {
        return Err(failed(format!(
            "HAProxy at {}: backend {}: {r}",
            h.socket, h.backend
        )));
    }
    parse_servers_state(&r, &h.backend).map_err(failed)
}

/// `host:port` to the IP and port HAProxy takes (it wants addresses, not names).
async fn resolve(target: &str) -> Result<(String, u16), CallError> {
    let (host, port) =
        crate::capability::pg::split_address(target, 0).map_err(CallError::BadRequest)?;
    if port == 0 {
        return Err(CallError::BadRequest(format!(
            "target {target:?} has no port"
        )));
    }
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok((ip.to_string(), port));
    }
    let mut addrs = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| failed(format!("cannot resolve {host}: {e}")))?;
    let a = addrs
        .next()
        .ok_or_else(|| failed(format!("{host} resolves to no address")))?;
    Ok((a.ip().to_string(), port))
}

fn active(servers: &[HaServer]) -> Vec<String> {
    servers
        .iter()
        .filter(|s| !s.maint())
        .map(HaServer::address)
        .collect()
}

pub(super) async fn get(h: &HaproxyRoute) -> Result<Value, CallError> {
    let servers = haproxy_servers(h).await?;
    Ok(json!({
        "backend": h.backend,
        "targets": active(&servers),
        "servers": servers.iter().map(HaServer::json).collect::<Vec<_>>(),
    }))
}

pub(super) async fn set(h: &HaproxyRoute, targets: &[String]) -> Result<Value, CallError> {
    let mut wanted = Vec::new();
    for t in targets {
        let r = resolve(t).await?;
        if !wanted.contains(&r) {
            wanted.push(r);
        }
    }
    let servers = haproxy_servers(h).await?;
    let previous = active(&servers);
    // Each wanted address keeps the server that already has it; the others take free servers,
    // those in maintenance first.
    let mut slot_of: Vec<Option<usize>> = wanted
        .iter()
        .map(|(ip, port)| {
            servers
                .iter()
                .position(|s| s.addr == *ip && s.port == *port)
        })
        .collect();
    let mut free: Vec<usize> = (0..servers.len())
        .filter(|i| !slot_of.contains(&Some(*i)))
        .collect();
    free.sort_by_key(|i| !servers[*i].maint());
    let mut free = free.into_iter();
    for s in slot_of.iter_mut().filter(|s| s.is_none()) {
        *s = free.next();
    }
    if slot_of.iter().any(Option::is_none) {
        return Err(failed(format!(
            "backend {} has {} servers for {} targets: declare more slots (server-template)",
            h.backend,
            servers.len(),
            wanted.len()
        )));
    }
    let chosen: Vec<usize> = slot_of.iter().flatten().copied().collect();
    let mut commands = Vec::new();
    // First stop traffic to what is no longer a target: a demoted writer must not get writes.
    for (i, s) in servers.iter().enumerate() {
        if !chosen.contains(&i) && !s.maint() {
            for c in [
                format!("set server {}/{} state maint", h.backend, s.name),
                format!("shutdown sessions server {}/{}", h.backend, s.name),
            ] {
                haproxy_change(h, &c).await?;
                commands.push(c);
            }
        }
    }
    for ((ip, port), i) in wanted.iter().zip(&chosen) {
        let s = &servers[*i];
        if s.addr != *ip || s.port != *port {
            let c = format!("set server {}/{} addr {ip} port {port}", h.backend, s.name);
            haproxy_change(h, &c).await?;
            commands.push(c);
        }
        if s.maint() || s.admin_state & 0x18 != 0 {
            let c = format!("set server {}/{} state ready", h.backend, s.name);
            haproxy_change(h, &c).await?;
            commands.push(c);
        }
    }
    // Read it back: what HAProxy routes to now is the result.
    let after = haproxy_servers(h).await?;
    let now = active(&after);
    let mut want: Vec<String> = wanted
        .iter()
        .map(|(ip, port)| {
            if ip.contains(':') {
                format!("[{ip}]:{port}")
            } else {
                format!("{ip}:{port}")
            }
        })
        .collect();
    let mut got = now.clone();
    want.sort();
    got.sort();
    if want != got {
        return Err(failed(format!(
            "backend {} routes to [{}] after the change, not to [{}]",
            h.backend,
            got.join(", "),
            want.join(", ")
        )));
    }
    Ok(json!({
        "backend": h.backend,
        "previous": previous,
        "targets": now,
        "commands": commands,
        "servers": after.iter().map(HaServer::json).collect::<Vec<_>>(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_state_parses_by_header_and_flags_mean_what_haproxy_means() {
        let text = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n3 pg 1 pg1 127.0.0.1 2 0 1 1 1 1 0 2 0 0 0 0 - 5432 - 0 0 - - 0\n3 pg 2 pg2 127.0.0.1 2 4 1 1 1 1 0 0 8 0 0 0 - 5433 - 0 0 - - 0\n3 pg 3 slot1 127.0.0.1 0 5 1 1 1 1 0 0 8 0 0 0 - 1 - 0 0 - - 0\n4 other 1 x 10.0.0.1 2 0 1 1 1 1 0 0 8 0 0 0 - 80 - 0 0 - - 0\n";
        let s = parse_servers_state(text, "pg").unwrap();
        assert_eq!(s.len(), 3, "other backends are left out");
        assert!(!s[0].maint() && s[0].op_state == 2);
        // `disabled` in the configuration, then `state ready`: CMAINT alone is not maintenance.
        assert!(!s[1].maint());
        assert!(s[2].maint());
        assert_eq!(active(&s), ["127.0.0.1:5432", "127.0.0.1:5433"]);
    }
}
