//! PostgreSQL failover on real peers: a primary with a synchronous streaming replica (Debian's
//! postgresql-15), clients through HAProxy and pgbouncer.
//!
//! `capabilities_on_real_peers` drives the `postgres.*` and `route.*` capabilities directly: status,
//! the refusal to promote while the primary still takes writes, a fence of a live primary (its open
//! sessions end, new ones are read-only, and so is a restart), promotion, and both indirections
//! repointed and checked by connecting through them.

use std::collections::BTreeMap;
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
    let pg = PostgresCapabilities::new(clusters).unwrap();
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
    assert!(
        before.batch_execute("SELECT 1").await.is_err(),
        "the old session still works"
    );
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
