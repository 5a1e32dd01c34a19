//! PostgreSQL failover on real peers: a primary with a synchronous streaming replica (Debian's
//! postgresql-15), clients through HAProxy and pgbouncer.
//!
//! `capabilities_on_real_peers` drives the `postgres.*` and `route.*` capabilities directly: status,
//! the refusal to promote while the primary still takes writes, a fence of a live primary (its open
//! sessions end, new ones are read-only, and so is a restart), promotion, and both indirections
//! repointed and checked by connecting through them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use vigil_remediation::capability::Capability;
use vigil_remediation::capability::postgres::{ClusterConfig, PostgresCapabilities};
use vigil_remediation::capability::route::{RouteCapabilities, RouteConfig};

use crate::harness::*;
use crate::lb::*;
use crate::pg::PgPair;

/// The settings of a primary whose commits wait for the replica (`application_name=replica1`).
pub const SYNC: &[&str] = &[
    "synchronous_standby_names=replica1",
    "synchronous_commit=on",
    "wal_level=replica",
];

/// HAProxy in TCP mode in front of the pair: `pg1` (the primary) ready, `pg2` (the replica)
/// disabled, two free slots; clients connect to `frontend`.
pub fn haproxy_for(pair: &PgPair, frontend: u16) -> String {
    format!(
        "defaults\n  mode tcp\n  timeout connect 1s\n  timeout client 10m\n  timeout server 10m\n\n\
         frontend pg\n  bind 127.0.0.1:{frontend}\n  default_backend pg\n\n\
         backend pg\n  server pg1 127.0.0.1:{}\n  server pg2 127.0.0.1:{} disabled\n  \
         server-template spare 2 127.0.0.1:1 disabled\n",
        pair.primary.port, pair.replica.port
    )
}

async fn call(cap: &dyn Capability, name: &str, args: Value) -> Result<Value, String> {
    cap.call(name, &args, None).await.map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capabilities_on_real_peers() {
    let Some(pair) = PgPair::start(SYNC).await else {
        return;
    };
    let frontend = reserved_port();
    let Some(haproxy) = Haproxy::start(&haproxy_for(&pair, frontend)).await else {
        return;
    };
    let Some(bouncer) = Pgbouncer::start("appdb", "127.0.0.1", pair.primary.port).await else {
        return;
    };
    let (p1, p2) = (pair.primary.port, pair.replica.port);
    let clusters: BTreeMap<String, ClusterConfig> = serde_yaml_ng::from_str(&format!(
        "main:\n  endpoint: 127.0.0.1:{frontend}\n  nodes:\n    pg1: {{address: '127.0.0.1:{p1}'}}\n    pg2: {{address: '127.0.0.1:{p2}'}}\n"
    ))
    .unwrap();
    let pg = PostgresCapabilities::new(clusters, std::path::Path::new("/")).unwrap();
    let routes: BTreeMap<String, RouteConfig> = serde_yaml_ng::from_str(&format!(
        "writer: {{kind: haproxy, socket: {}, backend: pg}}\nbouncer: {{kind: pgbouncer, config: {}, database: appdb, admin_address: '127.0.0.1:{}'}}\n",
        haproxy.socket.display(),
        bouncer.ini.display(),
        bouncer.port
    ))
    .unwrap();
    let route = RouteCapabilities::new(routes, std::path::Path::new("/")).unwrap();
    let main = json!({"cluster": "main"});

    // The replica streams synchronously; a write through HAProxy lands on the primary.
    let s = eventually(Duration::from_secs(30), "the replica in sync", || {
        let pg = &pg;
        let main = main.clone();
        async move {
            let s = call(pg, "postgres.status", main).await.unwrap();
            (s["nodes"][0]["replicas"][0]["sync_state"] == "sync").then_some(s)
        }
    })
    .await;
    assert_eq!(s["primaries"], json!(["pg1"]), "{s:#}");
    assert_eq!(s["writable"], json!(["pg1"]), "{s:#}");
    assert_eq!(s["replicas"], json!(["pg2"]), "{s:#}");
    let (n1, n2) = (&s["nodes"][0], &s["nodes"][1]);
    assert_eq!(n1["timeline"], 1);
    assert_eq!(n1["replicas"][0]["application_name"], "replica1");
    assert_eq!(n2["role"], "replica");
    assert_eq!(n2["streaming"], true);
    assert_eq!(n2["upstream"], format!("127.0.0.1:{p1}"));
    assert!(n1["lsn"].as_u64().unwrap() >= n2["lsn"].as_u64().unwrap());
    let w = call(&pg, "postgres.write_check", main.clone())
        .await
        .unwrap();
    assert_eq!(w["node"], "pg1", "{w:#}");
    let r = call(&route, "route.get", json!({"route": "writer"}))
        .await
        .unwrap();
    assert_eq!(r["targets"], json!([format!("127.0.0.1:{p1}")]), "{r:#}");

    // No promotion while the primary takes writes and is not fenced.
    let e = call(
        &pg,
        "postgres.promote",
        json!({"cluster": "main", "node": "pg2"}),
    )
    .await
    .unwrap_err();
    assert!(
        e.contains("not promoting pg2: pg1 is a primary and is not fenced"),
        "{e}"
    );

    // A fence of the live primary: a session opened before it is ended, new sessions cannot write,
    // and the setting is in postgresql.auto.conf for its next start.
    let before = pg_connect(p1, "postgres").await.unwrap();
    before
        .batch_execute("CREATE TABLE t (id int primary key)")
        .await
        .unwrap();
    let f = call(
        &pg,
        "postgres.fence",
        json!({"cluster": "main", "node": "pg1"}),
    )
    .await
    .unwrap();
    assert_eq!(f["methods"], json!(["read_only"]), "{f:#}");
    assert!(
        f["detail"]["sessions_terminated"].as_i64().unwrap() >= 1,
        "{f:#}"
    );
    // pg_terminate_backend signals; the session ends as soon as its backend sees it.
    eventually(
        Duration::from_secs(5),
        "the session opened before the fence ended",
        || async {
            before
                .batch_execute("SELECT 1")
                .await
                .is_err()
                .then_some(())
        },
    )
    .await;
    let after = pg_connect(p1, "postgres").await.unwrap();
    let e = after
        .batch_execute("INSERT INTO t VALUES (1)")
        .await
        .unwrap_err();
    assert!(
        e.as_db_error()
            .unwrap()
            .message()
            .contains("read-only transaction"),
        "{e:?}"
    );
    let auto = std::fs::read_to_string(pair.primary.data.join("postgresql.auto.conf")).unwrap();
    assert!(
        auto.contains("default_transaction_read_only = 'on'"),
        "{auto}"
    );
    let s = call(&pg, "postgres.status", main.clone()).await.unwrap();
    assert_eq!(s["writable"], json!([]), "{s:#}");
    assert_eq!(s["nodes"][0]["fenced"], true);

    // Promotion: the replica becomes a primary on timeline 2.
    let p = call(
        &pg,
        "postgres.promote",
        json!({"cluster": "main", "node": "pg2", "wait_seconds": 30}),
    )
    .await
    .unwrap();
    assert_eq!(p["role"], "primary", "{p:#}");
    assert_eq!(p["timeline"], 2, "{p:#}");
    assert_eq!(p["previous_timeline"], 1, "{p:#}");
    let e = call(
        &pg,
        "postgres.promote",
        json!({"cluster": "main", "node": "pg2"}),
    )
    .await
    .unwrap_err();
    assert!(
        e.contains("pg2 cannot be promoted: it is not a replica"),
        "{e}"
    );

    // HAProxy: the writer moves to pg2; pg1 goes to maintenance; a write through it lands on pg2.
    let r = call(
        &route,
        "route.set",
        json!({"route": "writer", "targets": [format!("127.0.0.1:{p2}")]}),
    )
    .await
    .unwrap();
    assert_eq!(r["previous"], json!([format!("127.0.0.1:{p1}")]), "{r:#}");
    assert_eq!(r["targets"], json!([format!("127.0.0.1:{p2}")]), "{r:#}");
    assert_eq!(
        server_port_via(frontend, "postgres").await.unwrap(),
        p2 as i32
    );
    let w = call(&pg, "postgres.write_check", main.clone())
        .await
        .unwrap();
    assert_eq!(w["node"], "pg2", "{w:#}");
    let state = haproxy.cli("show servers state pg").await;
    assert!(
        state.contains(" pg1 127.0.0.1 0 1 "),
        "pg1 in maintenance:\n{state}"
    );
    // An address no server has takes the first free slot (in maintenance, in configuration order).
    let r = call(
        &route,
        "route.set",
        json!({"route": "writer", "targets": [format!("127.0.0.1:{p2}"), "127.0.0.1:7"]}),
    )
    .await
    .unwrap();
    assert_eq!(
        r["commands"],
        json!([
            "set server pg/pg1 addr 127.0.0.1 port 7",
            "set server pg/pg1 state ready"
        ]),
        "{r:#}"
    );
    let e = call(
        &route,
        "route.set",
        json!({"route": "writer", "targets": ["127.0.0.1:7", "127.0.0.1:8", "127.0.0.1:9", "127.0.0.1:10", "127.0.0.1:11"]}),
    )
    .await
    .unwrap_err();
    assert!(e.contains("has 4 servers for 5 targets"), "{e}");

    // pgbouncer: the entry is rewritten and reloaded; new clients land on pg2.
    assert_eq!(
        server_port_via(bouncer.port, "appdb").await.unwrap(),
        p1 as i32
    );
    let r = call(
        &route,
        "route.set",
        json!({"route": "bouncer", "targets": [format!("127.0.0.1:{p2}")]}),
    )
    .await
    .unwrap();
    assert_eq!(r["previous"], json!([format!("127.0.0.1:{p1}")]), "{r:#}");
    assert_eq!(r["targets"], json!([format!("127.0.0.1:{p2}")]), "{r:#}");
    assert_eq!(
        server_port_via(bouncer.port, "appdb").await.unwrap(),
        p2 as i32
    );
    let ini = std::fs::read_to_string(&bouncer.ini).unwrap();
    assert!(
        ini.contains(&format!("appdb = host=127.0.0.1 port={p2} dbname=postgres")),
        "{ini}"
    );
    {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(&bouncer.ini).unwrap();
        assert_eq!(m.mode() & 0o777, 0o644, "the mode is kept");
    }
    let e = call(
        &route,
        "route.set",
        json!({"route": "bouncer", "targets": ["127.0.0.1:1", "127.0.0.1:2"]}),
    )
    .await
    .unwrap_err();
    assert!(e.contains("give one target"), "{e}");
    drop(after);
}

/// PostgreSQL over TLS: a primary that rejects connections without encryption (`hostnossl ...
/// reject`), its certificate from a private CA. The capabilities and the postgres prober reach it
/// with a `tls_config` naming the CA; without one, or with another CA, they cannot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_over_tls_for_capabilities_and_the_prober() {
    let ca = crate::peers::TestCa::new();
    let other_ca = crate::peers::TestCa::new();
    let files = tempfile::tempdir().unwrap();
    let (uid, gid) = crate::pg::postgres_ids();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(files.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        for (from, to, mode) in [
            (ca.cert(), "server.crt", 0o644),
            (ca.key(), "server.key", 0o600),
        ] {
            let dst = files.path().join(to);
            std::fs::copy(from, &dst).unwrap();
            std::os::unix::fs::chown(&dst, Some(uid), Some(gid)).unwrap();
            std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(mode)).unwrap();
        }
    }
    let hba = files.path().join("pg_hba.conf");
    std::fs::write(
        &hba,
        "local all all trust\nhost replication all 127.0.0.1/32 trust\n\
         hostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
    )
    .unwrap();
    let f = |n: &str| files.path().join(n).display().to_string();
    let settings = [
        "ssl=on".to_string(),
        format!("ssl_cert_file={}", f("server.crt")),
        format!("ssl_key_file={}", f("server.key")),
        format!("hba_file={}", hba.display()),
    ];
    let settings: Vec<&str> = settings.iter().map(String::as_str).collect();
    let Some(pair) = PgPair::start(&settings).await else {
        return;
    };
    let p1 = pair.primary.port;
    let cluster = |tls: &str| {
        let c: BTreeMap<String, ClusterConfig> = serde_yaml_ng::from_str(&format!(
            "main:\n  login: {{connect_timeout: 2s{tls}}}\n  nodes:\n    pg1: {{address: '127.0.0.1:{p1}'}}\n"
        ))
        .unwrap();
        PostgresCapabilities::new(c, std::path::Path::new("/")).unwrap()
    };
    let main = json!({"cluster": "main"});
    let tls = cluster(&format!(
        ", tls_config: {{ca_file: '{}'}}",
        ca.ca().display()
    ));
    let s = call(&tls, "postgres.status", main.clone()).await.unwrap();
    assert_eq!(s["primaries"], json!(["pg1"]), "{s:#}");
    let w = call(
        &tls,
        "postgres.write_check",
        json!({"cluster": "main", "node": "pg1"}),
    )
    .await
    .unwrap();
    assert_eq!(w["node"], "pg1", "{w:#}");
    let plain = cluster("");
    let s = call(&plain, "postgres.status", main.clone()).await.unwrap();
    assert_eq!(s["down"], json!(["pg1"]), "{s:#}");
    assert!(
        s["nodes"][0]["error"]
            .as_str()
            .unwrap()
            .contains("no encryption"),
        "{s:#}"
    );
    let wrong = cluster(&format!(
        ", tls_config: {{ca_file: '{}'}}",
        other_ca.ca().display()
    ));
    let s = call(&wrong, "postgres.status", main.clone()).await.unwrap();
    assert_eq!(s["down"], json!(["pg1"]), "{s:#}");
    assert!(
        s["nodes"][0]["error"]
            .as_str()
            .unwrap()
            .contains("certificate"),
        "{s:#}"
    );
    // A bad tls_config is refused when the configuration loads.
    let bad: BTreeMap<String, ClusterConfig> = serde_yaml_ng::from_str(&format!(
        "main:\n  login: {{tls_config: {{ca_file: /nonexistent/ca.pem}}}}\n  nodes:\n    pg1: {{address: '127.0.0.1:{p1}'}}\n"
    ))
    .unwrap();
    let e = PostgresCapabilities::new(bad, std::path::Path::new("/")).unwrap_err();
    assert!(
        e.contains("tls_config") && e.contains("/nonexistent/ca.pem"),
        "{e}"
    );

    // The prober, with and without TLS.
    let blackbox = format!(
        "modules:\n  pg_tls:\n    prober: postgres\n    timeout: 3s\n    postgres:\n      user: postgres\n      tls_config: {{ca_file: '{}'}}\n  pg_plain:\n    prober: postgres\n    timeout: 3s\n    postgres:\n      user: postgres\n",
        ca.ca().display()
    );
    let v = Vigil::start_with_files(
        "blackbox_config: blackbox.yml\n",
        &[("blackbox.yml", &blackbox)],
    )
    .await;
    let probe = |module: &str| {
        let url = v.url(&format!("/probe?module={module}&target=127.0.0.1:{p1}"));
        async move {
            client()
                .get(url)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    let m = probe("pg_tls").await;
    assert!(m.contains("\nprobe_success 1"), "{m}");
    assert!(m.contains("\nvigil_probe_pg_is_primary 1"), "{m}");
    let m = probe("pg_plain").await;
    assert!(m.contains("\nprobe_success 0"), "{m}");
}

// ---- The whole loop through the server --------------------------------------------------------

/// A fence command for a node whose data directory is on this host: kill what may still run of
/// it, and leave a `standby.signal`, so that when anything starts it again it comes up in recovery,
/// refusing writes. (An operator's own script; Vigil only runs what is declared.)
const FENCE_SH: &str = r#"#!/bin/sh
set -eu
data="$1"
if [ -f "$data/postmaster.pid" ]; then
  pid=$(head -n 1 "$data/postmaster.pid")
  kill -9 "$pid" 2>/dev/null || true
fi
touch "$data/standby.signal"
chown postgres:postgres "$data/standby.signal"
echo "fenced $VIGIL_NODE ($VIGIL_ADDRESS)"
"#;

/// A synchronous pair behind HAProxy, and a Vigil that probes both nodes every second, evaluates
/// the shipped probe rules (alerting/rules/probes.yml), and binds the pg-failover runbook to
/// `PostgresPrimaryMissing` (and `PostgresMultiplePrimaries`) with escalation to a webhook.
pub struct Rig {
    pub pair: PgPair,
    pub haproxy: Haproxy,
    pub frontend: u16,
    pub vigil: Vigil,
    pub pages: Arc<parking_lot::Mutex<Vec<Value>>>,
    _dir: tempfile::TempDir,
}

/// How a rig differs.
pub struct RigOptions {
    /// Declare fence commands for the nodes.
    pub fence: bool,
    pub max_lag_bytes: u64,
    /// Declare the HAProxy route with a socket that does not exist (a route that cannot be changed).
    pub broken_route: bool,
}

impl Rig {
    pub async fn start(o: RigOptions) -> Option<Rig> {
        let pair = PgPair::start(SYNC).await?;
        let frontend = reserved_port();
        let haproxy = Haproxy::start(&haproxy_for(&pair, frontend)).await?;
        let (hook, pages) = http_receiver(|_| ("200 OK", String::new())).await;
        let dir = tempfile::tempdir().unwrap();
        let rb = dir.path().join("rb");
        std::fs::create_dir_all(&rb).unwrap();
        crate::runbook_authors::place_rust_runbook(&rb, "pg-failover")?;
        let fence_sh = dir.path().join("fence.sh");
        std::fs::write(&fence_sh, FENCE_SH).unwrap();
        let fence = |data: &std::path::Path| {
            if o.fence {
                format!(
                    ", fence: {{command: [sh, '{}', '{}'], timeout: 20s}}",
                    fence_sh.display(),
                    data.display()
                )
            } else {
                String::new()
            }
        };
        let (p1, p2) = (pair.primary.port, pair.replica.port);
        let config = format!(
            "scrape_configs: []\nbuiltin_rules: false\nrule_files: [{rules}]\nalertmanager_config: am.yml\n\
             blackbox_config: blackbox.yml\n\
             probe_configs:\n  - job_name: pg\n    module: pg\n    interval: 1s\n    timeout: 900ms\n    static_configs:\n      - targets: ['127.0.0.1:{p1}', '127.0.0.1:{p2}']\n\
             runbooks:\n  dir: {rb}\n  deadline: 2m\n  verify_every: 250ms\n  policy: {{cooldown: 0s}}\n\
             \x20 postgres:\n    main:\n      endpoint: '127.0.0.1:{frontend}'\n      login: {{connect_timeout: 1s}}\n      nodes:\n\
             \x20       pg1: {{address: '127.0.0.1:{p1}'{f1}}}\n        pg2: {{address: '127.0.0.1:{p2}'{f2}}}\n\
             \x20 routes:\n    writer: {{kind: haproxy, socket: '{sock}', backend: pg}}\n",
            rules = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("alerting/rules/probes.yml")
                .display(),
            rb = rb.display(),
            f1 = fence(&pair.primary.data),
            f2 = fence(&pair.replica.data),
            sock = if o.broken_route {
                dir.path().join("no-such.sock")
            } else {
                haproxy.socket.clone()
            }
            .display(),
        );
        let blackbox = "modules:\n  pg:\n    prober: postgres\n    timeout: 900ms\n    postgres:\n      user: postgres\n      dbname: postgres\n";
        let am = format!(
            "route:\n  receiver: oncall\n  group_by: [alertname, job]\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1h\n  routes:\n\
             \x20   - matchers: ['alertname=~\"PostgresPrimaryMissing|PostgresMultiplePrimaries\"']\n      receiver: failover\n\
             receivers:\n  - name: oncall\n    webhook_configs: [{{url: 'http://127.0.0.1:{hook}/'}}]\n  - name: failover\n    runbook_configs:\n\
             \x20     - runbook: pg-failover\n        params: {{cluster: main, route: writer, job: '{{{{ $labels.job }}}}', max_lag_bytes: '{lag}'}}\n\
             \x20       target: 'postgres:main'\n        grants:\n\
             \x20         - {{capability: postgres.status}}\n          - {{capability: postgres.fence}}\n          - {{capability: postgres.promote}}\n\
             \x20         - {{capability: postgres.write_check}}\n          - {{capability: route.get}}\n          - {{capability: route.set}}\n\
             \x20         - {{capability: query.promql}}\n        verify_within: 30s\n        escalate_to: oncall\n",
            lag = o.max_lag_bytes,
        );
        let vigil =
            Vigil::start_with_files(&config, &[("am.yml", &am), ("blackbox.yml", blackbox)]).await;
        Some(Rig {
            pair,
            haproxy,
            frontend,
            vigil,
            pages,
            _dir: dir,
        })
    }

    /// The latest version of every execution, oldest first.
    pub fn executions(&self) -> Vec<Value> {
        crate::heal::executions(&self.vigil)
    }

    /// Waits for the first execution to end (anything but running or pending).
    pub async fn first_ended(&self, limit: Duration) -> Value {
        eventually(limit, "the runbook's execution ended", || async {
            self.executions()
                .into_iter()
                .find(|e| e["outcome"] != "running" && e["outcome"] != "pending")
        })
        .await
    }

    /// Waits until the probe has seen both nodes in their roles and the replica in sync.
    pub async fn settled(&self) {
        eventually(Duration::from_secs(30), "both nodes probed, the replica in sync", || async {
            let r = self
                .vigil
                .query("vigil_probe_pg_replica_lag_bytes{sync_state=\"sync\"} or vigil_probe_pg_in_recovery == 1", now_secs())
                .await;
            (r.as_array().map(Vec::len) == Some(2)).then_some(())
        })
        .await;
    }
}

/// What pg-failover calls when it fails over, in order.
pub const FAILOVER_STEPS: &[&str] = &[
    "postgres.status",
    "query.promql",
    "postgres.fence",
    "postgres.promote",
    "route.get",
    "route.set",
    "postgres.write_check",
];

/// The capabilities an execution called, in order.
pub fn called(e: &Value) -> Vec<String> {
    e["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "call")
        .map(|s| s["detail"]["capability"].as_str().unwrap().to_string())
        .collect()
}

/// A client writing numbered rows through `port` as fast as the database acknowledges them,
/// reconnecting after any error; it keeps the id and time of every acknowledged commit.
pub struct Writer {
    pub acked: Arc<parking_lot::Mutex<Vec<(i64, std::time::Instant)>>>,
    /// Writes not acknowledged (errors and timeouts).
    pub errors: Arc<std::sync::atomic::AtomicUsize>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    pub fn start(port: u16) -> Writer {
        use std::sync::atomic::Ordering;
        let acked = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let errors = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (a, e, s) = (acked.clone(), errors.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let mut next: i64 = 1;
            let mut conn: Option<tokio_postgres::Client> = None;
            while !s.load(Ordering::SeqCst) {
                if conn.as_ref().is_none_or(|c| c.is_closed()) {
                    conn = pg_connect(port, "postgres").await.ok();
                    if conn.is_none() {
                        e.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                }
                let id = next;
                next += 1;
                let c = conn.as_ref().unwrap();
                let r = tokio::time::timeout(
                    Duration::from_secs(2),
                    c.execute("INSERT INTO acked (id, at) VALUES ($1, now())", &[&id]),
                )
                .await;
                match r {
                    Ok(Ok(_)) => a.lock().push((id, std::time::Instant::now())),
                    _ => {
                        // Not acknowledged (maybe committed, maybe not): not counted either way.
                        e.fetch_add(1, Ordering::SeqCst);
                        conn = None;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        });
        Writer {
            acked,
            errors,
            stop,
            task,
        }
    }

    pub async fn stop(self) -> Vec<(i64, std::time::Instant)> {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = self.task.await;
        self.acked.lock().clone()
    }

    pub fn count(&self) -> usize {
        self.acked.lock().len()
    }
}

/// The longest time between two consecutive acknowledged writes from a second before `fault` on.
pub fn unavailable(acked: &[(i64, std::time::Instant)], fault: std::time::Instant) -> Duration {
    let from = fault - Duration::from_secs(1);
    acked
        .windows(2)
        .filter(|w| w[1].1 >= from)
        .map(|w| w[1].1 - w[0].1)
        .max()
        .unwrap_or_default()
}

/// Whether a node refuses writes: in recovery, or read-only.
async fn refuses_writes(port: u16) -> bool {
    let c = pg_connect(port, "postgres").await.unwrap();
    let r = c
        .query_one(
            "SELECT pg_is_in_recovery() OR current_setting('default_transaction_read_only') = 'on'",
            &[],
        )
        .await
        .unwrap();
    r.get(0)
}

/// The acceptance scenario: writes acknowledged through HAProxy, `kill -9` of the primary's
/// postmaster; the probe fires, pg-failover fences the old primary, promotes the synchronous
/// replica and repoints HAProxy; the client resumes; every acknowledged row is on the new primary,
/// the old one comes back read-only when restarted, and the execution is verified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_primary_fails_over_with_nothing_acknowledged_lost() {
    let Some(mut rig) = Rig::start(RigOptions {
        fence: true,
        max_lag_bytes: 16 << 20,
        broken_route: false,
    })
    .await
    else {
        return;
    };
    let (p1, p2) = (rig.pair.primary.port, rig.pair.replica.port);
    pg_connect(p1, "postgres")
        .await
        .unwrap()
        .batch_execute("CREATE TABLE acked (id bigint PRIMARY KEY, at timestamptz)")
        .await
        .unwrap();
    rig.settled().await;
    let writer = Writer::start(rig.frontend);
    eventually(Duration::from_secs(20), "writes acknowledged", || async {
        (writer.count() >= 200).then_some(())
    })
    .await;
    let before_fault = writer.count();
    rig.pair.kill_primary();
    let fault = std::time::Instant::now();
    let e = rig.first_ended(Duration::from_secs(90)).await;
    assert_eq!(e["outcome"], "verified", "{e:#}\n{}", rig.vigil.log());
    assert_eq!(called(&e), FAILOVER_STEPS, "{e:#}");
    assert_eq!(e["output"]["promoted"], "pg2", "{e:#}");
    assert_eq!(e["output"]["fenced"], json!(["pg1"]), "{e:#}");
    let t = &e["times"];
    assert!(
        t["detected"].as_i64() <= t["acted"].as_i64()
            && t["acted"].as_i64() <= t["recovered"].as_i64(),
        "{t}"
    );
    // The client resumes through HAProxy, now on pg2.
    eventually(
        Duration::from_secs(30),
        "writes acknowledged after the failover",
        || async { (writer.count() >= before_fault + 200).then_some(()) },
    )
    .await;
    assert!(
        writer.errors.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "the client saw the outage"
    );
    let acked = writer.stop().await;
    // Write unavailability: the longest gap between two acknowledged writes (the last before the
    // fault and the first after; the killed postmaster's orphaned backend may still acknowledge a
    // commit the synchronous replica confirmed, so the moment of the kill is not the edge).
    let gap = unavailable(&acked, fault);
    eprintln!(
        "failover: writes unavailable for {:.2} s ({} acknowledged)",
        gap.as_secs_f64(),
        acked.len(),
    );
    // Nothing acknowledged is lost: every acknowledged id is on the new primary.
    let stored: std::collections::HashSet<i64> = pg_connect(p2, "postgres")
        .await
        .unwrap()
        .query("SELECT id FROM acked", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let lost: Vec<i64> = acked
        .iter()
        .map(|a| a.0)
        .filter(|id| !stored.contains(id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged rows lost: {lost:?}",
        lost.len()
    );
    assert!(!refuses_writes(p2).await, "the new primary takes writes");
    // The old primary is fenced: started again, it is in recovery and refuses writes.
    assert!(rig.pair.primary.data.join("standby.signal").exists());
    rig.pair.restart_primary().await;
    assert!(
        refuses_writes(p1).await,
        "the old primary came back writable"
    );
    let e2 = pg_connect(p1, "postgres")
        .await
        .unwrap()
        .execute("INSERT INTO acked (id) VALUES (-1)", &[])
        .await
        .unwrap_err();
    assert!(
        e2.as_db_error().unwrap().message().contains("read-only"),
        "{e2:?}"
    );
    // HAProxy routes to pg2 only, and nobody was paged.
    let state = rig.haproxy.cli("show servers state pg").await;
    assert!(state.contains(" pg2 127.0.0.1 2 "), "{state}");
    assert!(
        rig.pages
            .lock()
            .iter()
            .all(|p| !p.to_string().contains("runbook_summary")),
        "{:?}",
        rig.pages.lock()
    );
}

/// What a refusal must leave: the execution escalated with `reason`, only reading calls made, the
/// page carrying the reason, HAProxy still routing to pg1 alone, and no fence on pg1.
async fn refused_and_escalated(rig: &Rig, reason: &str, calls: &[&str]) -> Value {
    let e = rig.first_ended(Duration::from_secs(90)).await;
    assert_eq!(e["outcome"], "escalated", "{e:#}");
    assert!(
        e["reason"].as_str().unwrap_or_default().contains(reason),
        "{e:#}"
    );
    assert_eq!(called(&e), calls, "{e:#}");
    assert_eq!(e["output"]["decision"], "refused", "{e:#}");
    let page = escalation_page(&rig.pages).await;
    assert!(
        page["annotations"]["runbook_summary"]
            .as_str()
            .unwrap()
            .contains(reason),
        "{page:#}"
    );
    let r = rig.haproxy.cli("show servers state pg").await;
    assert!(
        r.contains(" pg1 127.0.0.1 2 0 ") && r.contains(" pg2 127.0.0.1 0 5 "),
        "the route changed:\n{r}"
    );
    assert!(
        !rig.pair.primary.data.join("standby.signal").exists(),
        "pg1 was fenced"
    );
    e
}

/// Two nodes claim to be primary (the replica was promoted by hand): the runbook refuses, fences
/// and promotes nothing, both keep taking writes, and on-call is paged with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_primaries_are_refused_and_escalated() {
    let Some(rig) = Rig::start(RigOptions {
        fence: true,
        max_lag_bytes: 16 << 20,
        broken_route: false,
    })
    .await
    else {
        return;
    };
    rig.settled().await;
    rig.pair.promote_replica();
    refused_and_escalated(
        &rig,
        "2 nodes claim to be primary (pg1, pg2)",
        &["postgres.status", "query.promql"],
    )
    .await;
    assert!(!refuses_writes(rig.pair.primary.port).await);
    assert!(!refuses_writes(rig.pair.replica.port).await);
}

/// The replica stopped receiving WAL while the primary wrote 8 MB more; the primary dies. The
/// probe saw how far the primary got, so the runbook refuses to promote a replica that far behind
/// (max_lag_bytes 1 MiB): nothing is fenced or promoted, and on-call is paged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_past_the_lag_bound_is_not_promoted() {
    let Some(mut rig) = Rig::start(RigOptions {
        fence: true,
        max_lag_bytes: 1 << 20,
        broken_route: false,
    })
    .await
    else {
        return;
    };
    rig.settled().await;
    let (p1, p2) = (rig.pair.primary.port, rig.pair.replica.port);
    let replica = pg_connect(p2, "postgres").await.unwrap();
    replica
        .batch_execute("ALTER SYSTEM SET primary_conninfo = ''")
        .await
        .unwrap();
    replica
        .batch_execute("SELECT pg_reload_conf()")
        .await
        .unwrap();
    eventually(
        Duration::from_secs(20),
        "the replica no longer streaming",
        || async {
            let n: i64 = replica
                .query_one("SELECT count(*) FROM pg_stat_wal_receiver", &[])
                .await
                .unwrap()
                .get(0);
            (n == 0).then_some(())
        },
    )
    .await;
    let primary = pg_connect(p1, "postgres").await.unwrap();
    // Without the standby, synchronous commits would wait for ever: commit locally.
    primary
        .batch_execute(
            "SET synchronous_commit = local; \
             CREATE TABLE big AS SELECT g, repeat('x', 1000) AS pad FROM generate_series(1, 8000) g",
        )
        .await
        .unwrap();
    let lsn: f64 = primary
        .query_one(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let q = format!("vigil_probe_pg_wal_lsn_bytes{{instance='127.0.0.1:{p1}'}} >= {lsn}");
    eventually(
        Duration::from_secs(20),
        "the probe seeing the primary's position",
        || async {
            (rig.vigil
                .query(&q, now_secs())
                .await
                .as_array()
                .map(Vec::len)
                == Some(1))
            .then_some(())
        },
    )
    .await;
    rig.pair.kill_primary();
    refused_and_escalated(
        &rig,
        "no replica is within max_lag_bytes=1048576",
        &["postgres.status", "query.promql"],
    )
    .await;
    let in_recovery: bool = replica
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .unwrap()
        .get(0);
    assert!(in_recovery, "the lagging replica was promoted");
}

/// The primary dies and declares no fence command: it cannot be fenced (it might come back as a
/// primary), so the replica is not promoted; on-call is paged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_that_cannot_be_fenced_is_not_replaced() {
    let Some(mut rig) = Rig::start(RigOptions {
        fence: false,
        max_lag_bytes: 16 << 20,
        broken_route: false,
    })
    .await
    else {
        return;
    };
    rig.settled().await;
    rig.pair.kill_primary();
    let e = refused_and_escalated(
        &rig,
        "pg1 cannot be fenced, so pg2 is not promoted",
        &["postgres.status", "query.promql", "postgres.fence"],
    )
    .await;
    assert!(
        e["reason"]
            .as_str()
            .unwrap()
            .contains("declares no fence command"),
        "{e:#}"
    );
    assert!(
        refuses_writes(rig.pair.replica.port).await,
        "pg2 was promoted"
    );
}

/// A partial failure: the replica is promoted but the route cannot be changed (HAProxy's socket is
/// gone). The run fails after the promotion and pages on-call with what was done and what failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_that_cannot_be_changed_escalates_with_what_was_done() {
    let Some(mut rig) = Rig::start(RigOptions {
        fence: true,
        max_lag_bytes: 16 << 20,
        broken_route: true,
    })
    .await
    else {
        return;
    };
    rig.settled().await;
    rig.pair.kill_primary();
    let e = rig.first_ended(Duration::from_secs(90)).await;
    assert_eq!(e["outcome"], "escalated", "{e:#}");
    assert_eq!(called(&e), FAILOVER_STEPS[..5], "{e:#}");
    assert!(
        e["reason"].as_str().unwrap().contains("no-such.sock"),
        "{e:#}"
    );
    // The promotion happened; the page says so, and that the route failed.
    assert!(!refuses_writes(rig.pair.replica.port).await);
    let page = escalation_page(&rig.pages).await;
    let summary = page["annotations"]["runbook_summary"].as_str().unwrap();
    assert!(
        summary.contains("postgres.promote -> ok") && summary.contains("route.get -> failed"),
        "{summary}"
    );
}
