//! `postgres.*`: what a failover needs from PostgreSQL, on clusters declared in the configuration
//! (`runbooks.postgres`): nodes by name with their addresses, one login, the endpoint clients use,
//! and how to fence each node. A runbook names a cluster and a node, never an address or a
//! password.
//!
//! - `postgres.status` (reads): every node of the cluster at once: reachable or not, role, timeline,
//!   WAL position (written on a primary, received on a replica), whether it is read-only, its
//!   streaming replicas with their sync state and positions (primary), its WAL receiver (replica).
//! - `postgres.fence` (acts): makes a node refuse writes now and when it comes back. A reachable
//!   primary gets `default_transaction_read_only = on` through `ALTER SYSTEM` (kept across
//!   restarts), its client sessions are terminated, and a new session is checked to be read-only;
//!   then the node's declared `fence` command runs, if any (stop it, or leave a `standby.signal`
//!   so that it restarts as a replica). An unreachable node can be fenced only by its command;
//!   without one the call fails, since nothing stops it from coming back as a primary.
//! - `postgres.promote` (acts): `pg_promote()` on a replica, and only when every other node of the
//!   cluster is a reachable replica or was fenced (by `postgres.fence`, within `fence_valid_for`):
//!   the host, not the runbook, refuses to make a second writer.
//! - `postgres.write_check` (reads): a real write (a temporary table created and filled in a
//!   transaction that commits, so synchronous replication is waited for) through the cluster's
//!   `endpoint` (HAProxy, pgbouncer) or on one node; answers which server took it.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::pg::{PgLogin, pg_error, split_address};
use super::process::ProcessCommand;
use super::{Capability, Effect, Target, arg_str, arg_u64, declared};
use crate::sandbox::CallError;

/// One declared cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// How Vigil logs in to every node (a superuser, or a role allowed `pg_promote`, `ALTER
    /// SYSTEM` and `pg_terminate_backend`).
    #[serde(default)]
    pub login: PgLogin,
    /// The address clients write through (`host:port` of HAProxy or pgbouncer), for
    /// `postgres.write_check` without a node.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub endpoint: String,
    /// How long a fence counts for `postgres.promote`.
    #[serde(default = "default_fence_valid_for", with = "crate::policy::dur")]
    pub fence_valid_for: Duration,
    pub nodes: BTreeMap<String, NodeConfig>,
}

/// One node of a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// `host:port` (port 5432 when left out).
    pub address: String,
    /// A command that fences the node whether or not it answers (stops it, or makes it restart as
    /// a replica). It runs with `VIGIL_CLUSTER`, `VIGIL_NODE` and `VIGIL_ADDRESS` set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fence: Option<ProcessCommand>,
}

fn default_fence_valid_for() -> Duration {
    Duration::from_secs(600)
}

/// The declared clusters, and the fences done.
#[derive(Debug)]
pub struct PostgresCapabilities {
    clusters: BTreeMap<String, ClusterConfig>,
    /// (cluster, node) -> when `postgres.fence` last succeeded on it.
    fenced: Mutex<HashMap<(String, String), Instant>>,
}

/// An LSN (`16/B374D848`) as a byte position.
pub(crate) fn parse_lsn(s: &str) -> Option<u64> {
    let (hi, lo) = s.split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

impl PostgresCapabilities {
    /// Checks the declarations; `base` is where relative TLS file names start.
    pub fn new(
        mut clusters: BTreeMap<String, ClusterConfig>,
        base: &std::path::Path,
    ) -> Result<PostgresCapabilities, String> {
        for (name, c) in &mut clusters {
            c.login
                .prepare(base)
                .map_err(|e| format!("postgres cluster {name}: login: {e}"))?;
        }
        for (name, c) in &clusters {
            if c.nodes.is_empty() {
                return Err(format!("postgres cluster {name}: no nodes"));
            }
            for (n, node) in &c.nodes {
                split_address(&node.address, 5432)
                    .map_err(|e| format!("postgres cluster {name}, node {n}: {e}"))?;
                if let Some(f) = &node.fence
                    && f.command.first().is_none_or(|p| p.is_empty())
                {
                    return Err(format!(
                        "postgres cluster {name}, node {n}: fence.command needs at least the program"
                    ));
                }
            }
            if !c.endpoint.is_empty() {
                split_address(&c.endpoint, 5432)
                    .map_err(|e| format!("postgres cluster {name}: endpoint: {e}"))?;
            }
        }
        Ok(PostgresCapabilities {
            clusters,
            fenced: Mutex::new(HashMap::new()),
        })
    }

    fn cluster(&self, args: &Value) -> Result<(&str, &ClusterConfig), CallError> {
        let name = arg_str(args, "cluster")?;
        declared(&self.clusters, "postgres cluster", name)
    }

    fn node<'a>(
        cluster: &str,
        c: &'a ClusterConfig,
        args: &Value,
    ) -> Result<(&'a str, &'a NodeConfig), CallError> {
        let name = arg_str(args, "node")?;
        c.nodes
            .get_key_value(name)
            .map(|(n, c)| (n.as_str(), c))
            .ok_or_else(|| {
                CallError::BadRequest(format!(
                    "cluster {cluster} has no node {name:?} (nodes: {})",
                    c.nodes.keys().cloned().collect::<Vec<_>>().join(", ")
                ))
            })
    }

    fn fenced_at(&self, cluster: &str, node: &str) -> Option<Instant> {
        self.fenced
            .lock()
            .get(&(cluster.to_string(), node.to_string()))
            .copied()
    }

    /// Every node's state, at once.
    async fn status(&self, cluster: &str, c: &ClusterConfig) -> Value {
        let futs = c.nodes.iter().map(|(name, n)| async move {
            let mut v = node_status(&c.login, name, &n.address).await;
            let fenced = self
                .fenced_at(cluster, name)
                .is_some_and(|t| t.elapsed() < c.fence_valid_for);
            v["fenced"] = json!(fenced);
            v
        });
        let nodes: Vec<Value> = futures::future::join_all(futs).await;
        let names = |f: &dyn Fn(&Value) -> bool| -> Vec<Value> {
            nodes
                .iter()
                .filter(|n| f(n))
                .map(|n| n["name"].clone())
                .collect()
        };
        let up = |n: &Value| n["up"] == true;
        json!({
            "cluster": cluster,
            "primaries": names(&|n| up(n) && n["role"] == "primary"),
            "writable": names(&|n| up(n) && n["role"] == "primary" && n["read_only"] == false),
            "replicas": names(&|n| up(n) && n["role"] == "replica"),
            "down": names(&|n| !up(n)),
            "nodes": nodes,
        })
    }
}

/// One node's state; `up: false` with the error when it cannot be asked.
async fn node_status(login: &PgLogin, name: &str, address: &str) -> Value {
    let down = |e: String| json!({"name": name, "address": address, "up": false, "error": e});
    let conn = match login.connect(address, None, "vigil-runbook").await {
        Ok(c) => c,
        Err(e) => return down(e),
    };
    let asked = tokio::time::timeout(
        login.connect_timeout + Duration::from_secs(3),
        read_state(&conn.client),
    )
    .await;
    match asked {
        Ok(Ok(mut v)) => {
            v["name"] = json!(name);
            v["address"] = json!(address);
            v["up"] = json!(true);
            v
        }
        Ok(Err(e)) => down(e),
        Err(_) => down(format!("{address}: no answer to the status queries")),
    }
}

async fn read_state(c: &tokio_postgres::Client) -> Result<Value, String> {
    let e = |e: tokio_postgres::Error| pg_error(&e);
    let r = c
        .query_one(
            "SELECT pg_is_in_recovery(), current_setting('default_transaction_read_only') = 'on', \
             current_setting('synchronous_standby_names'), current_setting('server_version')",
            &[],
        )
        .await
        .map_err(e)?;
    let in_recovery: bool = r.get(0);
    let mut v = json!({
        "role": if in_recovery { "replica" } else { "primary" },
        "read_only": in_recovery || r.get::<_, bool>(1),
        "synchronous_standby_names": r.get::<_, String>(2),
        "version": r.get::<_, String>(3),
    });
    if !in_recovery {
        let r = c
            .query_one(
                "SELECT pg_current_wal_lsn()::text, \
                 ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::bigint",
                &[],
            )
            .await
            .map_err(e)?;
        let lsn: String = r.get(0);
        v["lsn_text"] = json!(lsn);
        v["lsn"] = json!(parse_lsn(&lsn));
        v["timeline"] = json!(r.get::<_, i64>(1));
        let rows = c
            .query(
                "SELECT COALESCE(application_name, ''), COALESCE(host(client_addr), ''), \
                 COALESCE(state, ''), COALESCE(sync_state, ''), \
                 COALESCE(sent_lsn::text, ''), COALESCE(flush_lsn::text, ''), \
                 COALESCE(replay_lsn::text, '') FROM pg_stat_replication",
                &[],
            )
            .await
            .map_err(e)?;
        let current = parse_lsn(&lsn).unwrap_or(0);
        let replicas: Vec<Value> = rows
            .iter()
            .map(|r| {
                let flush = parse_lsn(&r.get::<_, String>(5));
                json!({
                    "application_name": r.get::<_, String>(0),
                    "client_addr": r.get::<_, String>(1),
                    "state": r.get::<_, String>(2),
                    "sync_state": r.get::<_, String>(3),
                    "sent_lsn": parse_lsn(&r.get::<_, String>(4)),
                    "flush_lsn": flush,
                    "replay_lsn": parse_lsn(&r.get::<_, String>(6)),
                    "flush_lag_bytes": flush.map(|f| current.saturating_sub(f)),
                })
            })
            .collect();
        v["replicas"] = json!(replicas);
    } else {
        let r = c
            .query_one(
                "SELECT COALESCE(pg_last_wal_receive_lsn()::text, ''), \
                 COALESCE(pg_last_wal_replay_lsn()::text, ''), pg_is_wal_replay_paused(), \
                 COALESCE((SELECT status FROM pg_stat_wal_receiver), ''), \
                 (SELECT received_tli::bigint FROM pg_stat_wal_receiver), \
                 COALESCE((SELECT sender_host || ':' || sender_port FROM pg_stat_wal_receiver), '')",
                &[],
            )
            .await
            .map_err(e)?;
        let (receive, replay) = (
            parse_lsn(&r.get::<_, String>(0)),
            parse_lsn(&r.get::<_, String>(1)),
        );
        let status: String = r.get(3);
        // The WAL a promotion would keep: all that was received (it is replayed before the end
        // of recovery), or what was replayed when nothing streamed.
        let lsn = receive.max(replay);
        v["receive_lsn"] = json!(receive);
        v["replay_lsn"] = json!(replay);
        v["lsn"] = json!(lsn);
        v["replay_paused"] = json!(r.get::<_, bool>(2));
        v["streaming"] = json!(status == "streaming");
        v["wal_receiver"] = json!(status);
        v["upstream"] = json!(r.get::<_, String>(5));
        // The timeline being replayed: the WAL receiver's, or the last checkpoint's (the latter
        // needs a superuser or a grant; left out when refused).
        let mut tli: Option<i64> = r.get(4);
        if tli.is_none()
            && let Ok(r) = c
                .query_one(
                    "SELECT timeline_id::bigint FROM pg_control_checkpoint()",
                    &[],
                )
                .await
        {
            tli = Some(r.get(0));
        }
        v["timeline"] = json!(tli);
    }
    Ok(v)
}

fn target_of(cluster: &str, node: Option<&str>) -> Target {
    let mut labels = BTreeMap::from([("cluster".to_string(), cluster.to_string())]);
    if let Some(n) = node {
        labels.insert("node".into(), n.to_string());
    }
    Target {
        kind: "postgres",
        id: match node {
            Some(n) => format!("{cluster}/{n}"),
            None => cluster.to_string(),
        },
        labels,
    }
}

impl PostgresCapabilities {
    async fn fence(
        &self,
        cluster: &str,
        c: &ClusterConfig,
        node: &str,
    ) -> Result<Value, CallError> {
        let n = &c.nodes[node];
        let mut methods: Vec<&str> = Vec::new();
        let mut detail = serde_json::Map::new();
        let reachable = match c.login.connect(&n.address, None, "vigil-fence").await {
            Ok(conn) => {
                let in_recovery: bool = conn
                    .client
                    .query_one("SELECT pg_is_in_recovery()", &[])
                    .await
                    .map_err(|e| failed(format!("{node}: {}", pg_error(&e))))?
                    .get(0);
                if in_recovery {
                    methods.push("in_recovery");
                } else {
                    self.fence_read_only(c, node, &conn.client, &mut detail)
                        .await?;
                    methods.push("read_only");
                }
                true
            }
            Err(e) => {
                detail.insert("unreachable".into(), json!(e));
                if n.fence.is_none() {
                    return Err(failed(format!(
                        "{node} cannot be fenced: it does not answer ({e}) and declares no fence \
                         command, so nothing keeps it from coming back as a primary"
                    )));
                }
                false
            }
        };
        if let Some(cmd) = &n.fence {
            let r = super::process::run(
                &format!("fence of {node}"),
                cmd,
                &[
                    ("VIGIL_CLUSTER", cluster),
                    ("VIGIL_NODE", node),
                    ("VIGIL_ADDRESS", &n.address),
                ],
            )
            .await
            .map_err(|e| failed(format!("{node} cannot be fenced: {e}")))?;
            detail.insert("command".into(), r);
            methods.push("command");
            // What the command left: down, or up and refusing writes.
            if let Ok(conn) = c.login.connect(&n.address, None, "vigil-fence").await {
                let s = read_state(&conn.client).await.unwrap_or_default();
                if s["role"] == "primary" && s["read_only"] == false {
                    return Err(failed(format!(
                        "{node} still accepts writes after its fence command"
                    )));
                }
            }
        }
        self.fenced
            .lock()
            .insert((cluster.to_string(), node.to_string()), Instant::now());
        Ok(json!({
            "cluster": cluster,
            "node": node,
            "fenced": true,
            "reachable": reachable,
            "methods": methods,
            "detail": detail,
        }))
    }

    /// `default_transaction_read_only` for every new transaction, kept across restarts; sessions
    /// that could still write are ended; a new session is checked to be read-only.
    async fn fence_read_only(
        &self,
        c: &ClusterConfig,
        node: &str,
        client: &tokio_postgres::Client,
        detail: &mut serde_json::Map<String, Value>,
    ) -> Result<(), CallError> {
        let n = &c.nodes[node];
        let sql =
            |e: tokio_postgres::Error| failed(format!("{node} cannot be fenced: {}", pg_error(&e)));
        client
            .batch_execute("ALTER SYSTEM SET default_transaction_read_only = on")
            .await
            .map_err(sql)?;
        client
            .batch_execute("SELECT pg_reload_conf()")
            .await
            .map_err(sql)?;
        // The postmaster rereads its configuration asynchronously: new sessions see it soon after.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let conn = c
                .login
                .connect(&n.address, None, "vigil-fence")
                .await
                .map_err(|e| failed(format!("{node} cannot be fenced: {e}")))?;
            let ro: String = conn
                .client
                .query_one("SHOW default_transaction_read_only", &[])
                .await
                .map_err(sql)?
                .get(0);
            if ro == "on" {
                break;
            }
            if Instant::now() >= deadline {
                return Err(failed(format!(
                    "{node} cannot be fenced: new sessions are not read-only 5s after the reload"
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let ended: i64 = client
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
                &[],
            )
            .await
            .map_err(sql)?
            .get(0);
        detail.insert("sessions_terminated".into(), json!(ended));
        Ok(())
    }

    async fn promote(
        &self,
        cluster: &str,
        c: &ClusterConfig,
        node: &str,
        wait_seconds: u64,
    ) -> Result<Value, CallError> {
        let status = self.status(cluster, c).await;
        let nodes = status["nodes"].as_array().cloned().unwrap_or_default();
        let me = nodes
            .iter()
            .find(|n| n["name"] == node)
            .cloned()
            .unwrap_or_default();
        if me["up"] != true {
            return Err(failed(format!(
                "{node} cannot be promoted: {}",
                me["error"].as_str().unwrap_or("it does not answer")
            )));
        }
        if me["role"] != "replica" {
            return Err(failed(format!(
                "{node} cannot be promoted: it is not a replica"
            )));
        }
        // No second writer: every other node is a replica that answers, or was fenced.
        for n in nodes.iter().filter(|n| n["name"] != node) {
            let name = n["name"].as_str().unwrap_or_default();
            let replica = n["up"] == true && n["role"] == "replica";
            if !replica && n["fenced"] != true {
                let what = if n["up"] == true {
                    "is a primary".to_string()
                } else {
                    format!(
                        "does not answer ({})",
                        n["error"].as_str().unwrap_or_default()
                    )
                };
                return Err(CallError::Denied(format!(
                    "not promoting {node}: {name} {what} and is not fenced; fence it first \
                     (postgres.fence)"
                )));
            }
        }
        let t0 = Instant::now();
        let conn = c
            .login
            .connect(&c.nodes[node].address, None, "vigil-promote")
            .await
            .map_err(failed)?;
        let done: bool = conn
            .client
            .query_one("SELECT pg_promote(true, $1)", &[&(wait_seconds as i32)])
            .await
            .map_err(|e| failed(format!("{node}: pg_promote: {}", pg_error(&e))))?
            .get(0);
        if !done {
            return Err(failed(format!(
                "{node}: the promotion did not finish within {wait_seconds}s"
            )));
        }
        let after = read_state(&conn.client).await.map_err(failed)?;
        Ok(json!({
            "cluster": cluster,
            "node": node,
            "promoted": true,
            "role": after["role"],
            "timeline": after["timeline"],
            "lsn": after["lsn"],
            "previous_timeline": me["timeline"],
            "duration_ms": t0.elapsed().as_millis() as u64,
        }))
    }

    async fn write_check(
        &self,
        c: &ClusterConfig,
        node: Option<&str>,
        timeout: Duration,
    ) -> Result<Value, CallError> {
        let through = match node {
            Some(n) => c.nodes[n].address.clone(),
            None if !c.endpoint.is_empty() => c.endpoint.clone(),
            None => {
                return Err(CallError::BadRequest(
                    "the cluster declares no endpoint: name a node".into(),
                ));
            }
        };
        let t0 = Instant::now();
        let deadline = t0 + timeout;
        let mut attempts = 0;
        // Retried until the timeout: right after a switch, the route may still be settling.
        let server = loop {
            attempts += 1;
            let left = deadline.saturating_duration_since(Instant::now());
            let e = match tokio::time::timeout(left, write_once(&c.login, &through)).await {
                Ok(Ok(server)) => break server,
                Ok(Err(e)) => e,
                Err(_) => "no commit before the timeout".to_string(),
            };
            if Instant::now() + Duration::from_millis(200) >= deadline {
                return Err(failed(format!(
                    "a write through {through} did not commit within {} ({attempts} attempts; last: {e})",
                    humantime::format_duration(timeout)
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let node_name = c
            .nodes
            .iter()
            .find(|(_, n)| {
                split_address(&n.address, 5432)
                    .ok()
                    .is_some_and(|(h, p)| format!("{h}:{p}") == server)
            })
            .map(|(name, _)| name.clone());
        Ok(json!({
            "through": through,
            "server": server,
            "node": node_name,
            "committed": true,
            "attempts": attempts,
            "duration_ms": t0.elapsed().as_millis() as u64,
        }))
    }
}

fn failed(m: impl Into<String>) -> CallError {
    CallError::Failed(m.into())
}

/// One write through `through`: a temporary table created and filled in a transaction that
/// commits. Answers the server (`ip:port`) that took it.
async fn write_once(login: &PgLogin, through: &str) -> Result<String, String> {
    let mut conn = login.connect(through, None, "vigil-write-check").await?;
    let e = |e: tokio_postgres::Error| format!("{through}: {}", pg_error(&e));
    let tx = conn.client.transaction().await.map_err(e)?;
    tx.batch_execute(
        "CREATE TEMP TABLE vigil_write_check (at timestamptz) ON COMMIT DROP; \
         INSERT INTO vigil_write_check VALUES (now())",
    )
    .await
    .map_err(e)?;
    let r = tx
        .query_one(
            "SELECT COALESCE(host(inet_server_addr()), ''), COALESCE(inet_server_port(), 0)",
            &[],
        )
        .await
        .map_err(e)?;
    let server = format!("{}:{}", r.get::<_, String>(0), r.get::<_, i32>(1));
    tx.commit().await.map_err(e)?;
    Ok(server)
}

#[async_trait::async_trait]
impl Capability for PostgresCapabilities {
    fn names(&self) -> &'static [(&'static str, Effect)] {
        &[
            ("postgres.fence", Effect::Acts),
            ("postgres.promote", Effect::Acts),
            ("postgres.status", Effect::Reads),
            ("postgres.write_check", Effect::Reads),
        ]
    }

    async fn target(&self, name: &str, args: &Value) -> Result<Option<Target>, CallError> {
        let (cluster, c) = self.cluster(args)?;
        let node = match name {
            "postgres.fence" | "postgres.promote" => Some(Self::node(cluster, c, args)?.0),
            _ if args.get("node").is_some_and(|n| !n.is_null()) => {
                Some(Self::node(cluster, c, args)?.0)
            }
            _ => None,
        };
        Ok(Some(target_of(cluster, node)))
    }

    fn timeout(&self, name: &str, args: &Value) -> Option<Duration> {
        let c = self.clusters.get(args.get("cluster")?.as_str()?)?;
        let connect = c.login.connect_timeout * 2 + Duration::from_secs(5);
        match name {
            "postgres.promote" => {
                let wait = args
                    .get("wait_seconds")
                    .and_then(Value::as_u64)
                    .unwrap_or(60);
                Some(Duration::from_secs(wait.min(600)) + connect * 2)
            }
            "postgres.fence" => {
                let node = c.nodes.get(args.get("node")?.as_str()?)?;
                let cmd = node.fence.as_ref().map(|f| f.timeout).unwrap_or_default();
                Some(cmd + connect * 3 + Duration::from_secs(5))
            }
            "postgres.write_check" => {
                let t = args
                    .get("timeout_seconds")
                    .and_then(Value::as_u64)
                    .unwrap_or(5);
                Some(Duration::from_secs(t.min(300)) + Duration::from_secs(1))
            }
            _ => Some(connect),
        }
    }

    async fn call(
        &self,
        name: &str,
        args: &Value,
        _target: Option<&Target>,
    ) -> Result<Value, CallError> {
        let (cluster, c) = self.cluster(args)?;
        match name {
            "postgres.status" => Ok(self.status(cluster, c).await),
            "postgres.fence" => {
                let (node, _) = Self::node(cluster, c, args)?;
                self.fence(cluster, c, node).await
            }
            "postgres.promote" => {
                let (node, _) = Self::node(cluster, c, args)?;
                let wait = arg_u64(args, "wait_seconds", 60)?.clamp(1, 600);
                self.promote(cluster, c, node, wait).await
            }
            "postgres.write_check" => {
                let node = match args.get("node") {
                    None | Some(Value::Null) => None,
                    Some(_) => Some(Self::node(cluster, c, args)?.0),
                };
                let t = arg_u64(args, "timeout_seconds", 5)?.clamp(1, 300);
                self.write_check(c, node, Duration::from_secs(t)).await
            }
            other => Err(CallError::BadRequest(format!(
                "{other} is not a postgres capability"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsns_are_byte_positions() {
        assert_eq!(parse_lsn("0/0"), Some(0));
        assert_eq!(parse_lsn("0/3000060"), Some(0x3000060));
        assert_eq!(parse_lsn("16/B374D848"), Some((0x16 << 32) | 0xB374D848));
        assert_eq!(parse_lsn(""), None);
        assert_eq!(parse_lsn("x/1"), None);
    }

    #[tokio::test]
    async fn declarations_are_checked_and_calls_name_declared_things_only() {
        let bad: BTreeMap<String, ClusterConfig> =
            serde_yaml_ng::from_str("main: {nodes: {}}\n").unwrap();
        assert!(
            PostgresCapabilities::new(bad, std::path::Path::new("/"))
                .unwrap_err()
                .contains("no nodes")
        );
        let bad: BTreeMap<String, ClusterConfig> =
            serde_yaml_ng::from_str("main: {nodes: {pg1: {address: '127.0.0.1:x'}}}\n").unwrap();
        assert!(
            PostgresCapabilities::new(bad, std::path::Path::new("/"))
                .unwrap_err()
                .contains("node pg1")
        );
        assert!(
            serde_yaml_ng::from_str::<BTreeMap<String, ClusterConfig>>(
                "main: {nodes: {pg1: {address: a, fence_cmd: [x]}}}\n"
            )
            .is_err(),
            "typos are errors"
        );
        let c: BTreeMap<String, ClusterConfig> = serde_yaml_ng::from_str(
            "main:\n  login: {user: ops, connect_timeout: 300ms}\n  nodes:\n    pg1: {address: '127.0.0.1:1'}\n    pg2: {address: '127.0.0.1:2', fence: {command: ['false']}}\n",
        )
        .unwrap();
        let p = PostgresCapabilities::new(c, std::path::Path::new("/")).unwrap();
        let t = p
            .target(
                "postgres.promote",
                &json!({"cluster": "main", "node": "pg2"}),
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(t.key(), "postgres:main/pg2");
        assert_eq!(t.labels["cluster"], "main");
        let e = p
            .target(
                "postgres.promote",
                &json!({"cluster": "main", "node": "pg9"}),
            )
            .await
            .unwrap_err();
        assert!(e.to_string().contains("nodes: pg1, pg2"), "{e}");
        let e = p
            .target("postgres.status", &json!({"cluster": "other"}))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("declared: main"), "{e}");
        // Nothing listens on ports 1 and 2: both are down, and neither can be fenced. pg1 has no
        // fence command; pg2's fails.
        let s = p
            .call("postgres.status", &json!({"cluster": "main"}), None)
            .await
            .unwrap();
        assert_eq!(s["down"], json!(["pg1", "pg2"]), "{s:#}");
        assert_eq!(s["nodes"][0]["up"], false);
        let e = p
            .call(
                "postgres.fence",
                &json!({"cluster": "main", "node": "pg1"}),
                None,
            )
            .await
            .unwrap_err();
        assert!(e.to_string().contains("declares no fence command"), "{e}");
        let e = p
            .call(
                "postgres.fence",
                &json!({"cluster": "main", "node": "pg2"}),
                None,
            )
            .await
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("pg2 cannot be fenced: fence of pg2 exited with 1"),
            "{e}"
        );
        let e = p
            .call(
                "postgres.promote",
                &json!({"cluster": "main", "node": "pg2"}),
                None,
            )
            .await
            .unwrap_err();
        assert!(e.to_string().contains("cannot be promoted"), "{e}");
        let e = p
            .call("postgres.write_check", &json!({"cluster": "main"}), None)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("declares no endpoint"), "{e}");
    }
}
