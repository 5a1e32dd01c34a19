//! The `postgres` prober (a Vigil module type): connects to the target (`host:port`, port 5432 by
//! default), runs `SELECT 1`, and reads what a failover needs to know: the node's role
//! (`pg_is_in_recovery()`), its timeline, on a primary the replicas streaming from it and their lag
//! (`pg_stat_replication`), on a replica its WAL receiver and its replay lag; on both, the WAL
//! position (a failover compares a replica's with the last one its primary had).
//!
//! Series (all gauges): `vigil_probe_pg_up`, `vigil_probe_pg_connect_seconds`,
//! `vigil_probe_pg_query_seconds`, `vigil_probe_pg_in_recovery`, `vigil_probe_pg_is_primary`,
//! `vigil_probe_pg_timeline`, `vigil_probe_pg_wal_lsn_bytes`, `vigil_probe_pg_connected_replicas`,
//! `vigil_probe_pg_replica_lag_bytes{application_name,client_addr,state,sync_state}` and
//! `vigil_probe_pg_replica_replay_lag_seconds{…}` (primary), `vigil_probe_pg_wal_receiver_up`,
//! `vigil_probe_pg_replication_lag_bytes` and `vigil_probe_pg_replication_lag_seconds` (replica).

use std::time::{Duration, Instant};

use super::config::Module;
use super::log::ProbeLog;
use super::registry::ProbeMetrics;

fn f(m: &mut ProbeMetrics, name: &str, help: &'static str, v: f64) {
    m.set(name, help, v);
}

pub async fn probe(
    target: &str,
    module: &Module,
    deadline: tokio::time::Instant,
    m: &mut ProbeMetrics,
    log: &mut ProbeLog,
) -> bool {
    let Some(cfg) = &module.postgres else {
        log.error("a postgres module needs a postgres: section", &[]);
        return false;
    };
    f(
        m,
        "vigil_probe_pg_up",
        "Whether the server accepted a connection and answered SELECT 1",
        0.0,
    );
    let (host, port) = match super::tcp::split_host_port(target) {
        Ok(hp) => hp,
        Err(_) => (target.to_string(), 5432),
    };
    let password = if !cfg.password_file.is_empty() {
        match std::fs::read_to_string(&cfg.password_file) {
            Ok(p) => p.trim().to_string(),
            Err(e) => {
                log.error("Cannot read password_file", &[("err", &e)]);
                return false;
            }
        }
    } else {
        cfg.password.expose().to_string()
    };
    let mut pc = tokio_postgres::Config::new();
    pc.host(&host)
        .port(port)
        .application_name("vigil-probe")
        .connect_timeout(
            deadline
                .saturating_duration_since(tokio::time::Instant::now())
                .max(Duration::from_millis(1)),
        );
    if !cfg.user.is_empty() {
        pc.user(&cfg.user);
    }
    if !password.is_empty() {
        pc.password(password.as_bytes());
    }
    if !cfg.dbname.is_empty() {
        pc.dbname(&cfg.dbname);
    }
    for (k, v) in &cfg.params {
        if k == "application_name" {
            pc.application_name(v);
        } else if k == "options" {
            pc.options(v);
        }
    }
    log.info(
        "Connecting to PostgreSQL",
        &[("host", &host), ("port", &port)],
    );
    let started = Instant::now();
    let connected = match &cfg.tls_config {
        None => {
            pc.ssl_mode(tokio_postgres::config::SslMode::Disable);
            pc.connect(tokio_postgres::NoTls)
                .await
                .map(|(c, conn)| (c, tokio::spawn(async move { drop(conn.await) })))
        }
        Some(t) => {
            pc.ssl_mode(tokio_postgres::config::SslMode::Require);
            let mut tls = match t.client_config(false) {
                Ok(c) => c,
                Err(e) => {
                    log.error("Error creating TLS configuration", &[("err", &e)]);
                    return false;
                }
            };
            // PostgreSQL 17 and later want it; older servers ignore it.
            tls.alpn_protocols = vec![b"postgresql".to_vec()];
            pc.connect(tokio_postgres_rustls::MakeRustlsConnect::new(tls))
                .await
                .map(|(c, conn)| (c, tokio::spawn(async move { drop(conn.await) })))
        }
    };
    let (client, conn_task) = match connected {
        Ok(c) => c,
        Err(e) => {
            log.error("Error connecting to PostgreSQL", &[("err", &e)]);
            return false;
        }
    };
    let _conn = super::AbortOnDrop(conn_task);
    f(
        m,
        "vigil_probe_pg_connect_seconds",
        "Time to connect and authenticate",
        started.elapsed().as_secs_f64(),
    );
    let q = Instant::now();
    if let Err(e) = client.simple_query("SELECT 1").await {
        log.error("SELECT 1 failed", &[("err", &e)]);
        return false;
    }
    f(
        m,
        "vigil_probe_pg_query_seconds",
        "Time of SELECT 1",
        q.elapsed().as_secs_f64(),
    );
    f(
        m,
        "vigil_probe_pg_up",
        "Whether the server accepted a connection and answered SELECT 1",
        1.0,
    );
    let in_recovery: bool = match client.query_one("SELECT pg_is_in_recovery()", &[]).await {
        Ok(r) => r.get(0),
        Err(e) => {
            log.error("Cannot read the role", &[("err", &e)]);
            return false;
        }
    };
    // pg_control_checkpoint() needs superuser or a grant; without it the timeline is left out.
    let timeline: Option<i64> = match client
        .query_one(
            "SELECT timeline_id::bigint FROM pg_control_checkpoint()",
            &[],
        )
        .await
    {
        Ok(r) => Some(r.get(0)),
        Err(e) => {
            log.debug("Cannot read the timeline", &[("err", &e)]);
            None
        }
    };
    log.info(
        "Role",
        &[
            ("in_recovery", &in_recovery),
            ("timeline", &format!("{timeline:?}")),
        ],
    );
    f(
        m,
        "vigil_probe_pg_in_recovery",
        "1 when the server is a replica (pg_is_in_recovery())",
        if in_recovery { 1.0 } else { 0.0 },
    );
    f(
        m,
        "vigil_probe_pg_is_primary",
        "1 when the server is a primary (not in recovery)",
        if in_recovery { 0.0 } else { 1.0 },
    );
    if let Some(t) = timeline {
        f(
            m,
            "vigil_probe_pg_timeline",
            "Timeline of the last checkpoint (grows with each promotion)",
            t as f64,
        );
    }
    if in_recovery {
        let q = "SELECT \
            (SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming')::bigint, \
            COALESCE(pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()), 0)::float8, \
            CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 \
                 ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0) END::float8, \
            pg_wal_lsn_diff(GREATEST(COALESCE(pg_last_wal_receive_lsn(), '0/0'), \
                                     COALESCE(pg_last_wal_replay_lsn(), '0/0')), '0/0')::float8";
        match client.query_one(q, &[]).await {
            Ok(r) => {
                let receiving: i64 = r.get(0);
                let bytes: f64 = r.get(1);
                let secs: f64 = r.get(2);
                f(
                    m,
                    "vigil_probe_pg_wal_lsn_bytes",
                    "WAL position in bytes: written on a primary, received (or replayed) on a replica",
                    r.get(3),
                );
                f(
                    m,
                    "vigil_probe_pg_wal_receiver_up",
                    "1 when the replica's WAL receiver is streaming from a primary",
                    if receiving > 0 { 1.0 } else { 0.0 },
                );
                f(
                    m,
                    "vigil_probe_pg_replication_lag_bytes",
                    "WAL received but not yet replayed on this replica",
                    bytes.max(0.0),
                );
                f(
                    m,
                    "vigil_probe_pg_replication_lag_seconds",
                    "Age of the last replayed transaction while WAL is waiting to be replayed (0 when caught up)",
                    secs.max(0.0),
                );
            }
            Err(e) => {
                log.error(
                    "Cannot read the replica's replication state",
                    &[("err", &e)],
                );
                return false;
            }
        }
    } else {
        let q = "SELECT COALESCE(application_name, ''), COALESCE(host(client_addr), ''), \
            COALESCE(state, ''), COALESCE(sync_state, ''), \
            COALESCE(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), 0)::float8, \
            COALESCE(EXTRACT(EPOCH FROM replay_lag), 0)::float8 \
            FROM pg_stat_replication";
        match client
            .query_one(
                "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8",
                &[],
            )
            .await
        {
            Ok(r) => f(
                m,
                "vigil_probe_pg_wal_lsn_bytes",
                "WAL position in bytes: written on a primary, received (or replayed) on a replica",
                r.get(0),
            ),
            Err(e) => {
                log.error("Cannot read the WAL position", &[("err", &e)]);
                return false;
            }
        }
        match client.query(q, &[]).await {
            Ok(rows) => {
                let mut streaming = 0;
                for r in &rows {
                    let (app, addr, state, sync): (String, String, String, String) =
                        (r.get(0), r.get(1), r.get(2), r.get(3));
                    let (bytes, secs): (f64, f64) = (r.get(4), r.get(5));
                    if state == "streaming" {
                        streaming += 1;
                    }
                    let labels = [
                        ("application_name", app.as_str()),
                        ("client_addr", addr.as_str()),
                        ("state", state.as_str()),
                        ("sync_state", sync.as_str()),
                    ];
                    m.set_with(
                        "vigil_probe_pg_replica_lag_bytes",
                        "WAL the primary wrote that a replica has not replayed yet",
                        &labels,
                        bytes.max(0.0),
                    );
                    m.set_with("vigil_probe_pg_replica_replay_lag_seconds", "Replay lag of a replica as the primary measures it (pg_stat_replication.replay_lag)", &labels, secs.max(0.0));
                }
                f(
                    m,
                    "vigil_probe_pg_connected_replicas",
                    "Replicas streaming from this primary",
                    streaming as f64,
                );
            }
            Err(e) => {
                log.error("Cannot read pg_stat_replication", &[("err", &e)]);
                return false;
            }
        }
    }
    true
}
