//! pg-failover: fails a PostgreSQL cluster over when its primary is lost. Every decision is logged
//! into the execution record, and the steps that must succeed come in this order, each stopping the
//! run when it fails:
//!
//! 1. `postgres.status` of every node. More than one node claiming primary is refused (a split
//!    brain needs a human); a writable primary means nothing to fail over (the route is repaired if
//!    it points elsewhere).
//! 2. The lag bound: the position the cluster reached is the highest of the replicas' and, with
//!    `job`, of what the probe last saw on any node (`vigil_probe_pg_wal_lsn_bytes`). Replicas
//!    further behind than `max_lag_bytes` are not candidates; with none left the run refuses, having
//!    changed nothing. The most advanced candidate is chosen.
//! 3. Fence every node that may still be a primary (down, or a primary that is read-only); one
//!    that cannot be fenced stops the run before any promotion.
//! 4. Promote the chosen replica (the host refuses too while an unfenced writer exists).
//! 5. Repoint `route` to it, then check that a write commits through the cluster's endpoint and
//!    lands on it (not in a dry run, where nothing was promoted).

use serde_json::{Value, json};
use vigil_sdk::{CallError, Error, Runbook};

/// What the status says to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Refuse, changing nothing: the reason.
    Refuse(String),
    /// A writable primary exists: nothing to fail over.
    Healthy { primary: String, address: String },
    /// Fence these nodes, then promote `promote` (at `address`), which lags `lag` bytes.
    Failover {
        fence: Vec<String>,
        promote: String,
        address: String,
        lag: u64,
    },
}

fn name(n: &Value) -> String {
    n["name"].as_str().unwrap_or_default().to_string()
}

/// Decides from `postgres.status` and the last position the cluster is known to have reached.
pub fn plan(status: &Value, reached: Option<u64>, max_lag: u64) -> Plan {
    let nodes = status["nodes"].as_array().cloned().unwrap_or_default();
    let up = |n: &&Value| n["up"] == true;
    let primaries: Vec<&Value> = nodes
        .iter()
        .filter(up)
        .filter(|n| n["role"] == "primary")
        .collect();
    if primaries.len() > 1 {
        let names: Vec<String> = primaries.iter().map(|n| name(n)).collect();
        return Plan::Refuse(format!(
            "{} nodes claim to be primary ({}): a split brain needs a human; nothing changed",
            names.len(),
            names.join(", ")
        ));
    }
    if let Some(p) = primaries.iter().find(|n| n["read_only"] == false) {
        return Plan::Healthy {
            primary: name(p),
            address: p["address"].as_str().unwrap_or_default().to_string(),
        };
    }
    let replicas: Vec<&Value> = nodes
        .iter()
        .filter(up)
        .filter(|n| n["role"] == "replica")
        .collect();
    if replicas.is_empty() {
        return Plan::Refuse(
            "no replica answers: there is nothing to promote; nothing changed".into(),
        );
    }
    let lsn = |n: &Value| n["lsn"].as_u64().unwrap_or(0);
    let top = replicas
        .iter()
        .map(|n| lsn(n))
        .max()
        .unwrap_or(0)
        .max(reached.unwrap_or(0));
    let mut candidates: Vec<(&Value, u64)> = replicas
        .iter()
        .map(|n| (*n, top - lsn(n)))
        .filter(|(_, lag)| *lag <= max_lag)
        .collect();
    if candidates.is_empty() {
        let lags: Vec<String> = replicas
            .iter()
            .map(|n| format!("{} lags {} bytes", name(n), top - lsn(n)))
            .collect();
        return Plan::Refuse(format!(
            "no replica is within max_lag_bytes={max_lag} of the position the cluster reached ({top}): {}; nothing changed",
            lags.join(", ")
        ));
    }
    // The most advanced; among equals, the first by name.
    candidates.sort_by(|a, b| {
        lsn(b.0)
            .cmp(&lsn(a.0))
            .then_with(|| name(a.0).cmp(&name(b.0)))
    });
    let (chosen, lag) = candidates[0];
    let fence = nodes
        .iter()
        .filter(|n| !up(n) || n["role"] == "primary")
        .map(name)
        .collect();
    Plan::Failover {
        fence,
        promote: name(chosen),
        address: chosen["address"].as_str().unwrap_or_default().to_string(),
        lag,
    }
}

/// The highest position `job`'s nodes reached within `window`, from the probe's series.
fn reached(rb: &Runbook, job: &str, window: &str) -> Result<Option<u64>, Error> {
    let q = format!(
        "max(max_over_time(vigil_probe_pg_wal_lsn_bytes{{job={}}}[{window}]))",
        Value::String(job.to_string())
    );
    let r = rb.call("query.promql", json!({"query": q}))?;
    Ok(r["result"][0]["value"][1]
        .as_str()
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| v as u64))
}

/// Points `route` at `address` unless it already points there only.
fn repoint(rb: &Runbook, route: &str, address: &str) -> Result<Value, Error> {
    let now = rb.call("route.get", json!({"route": route}))?;
    if now["targets"] == json!([address]) {
        rb.info(&format!("route {route} already points at {address}"));
        return Ok(now);
    }
    rb.info(&format!(
        "repointing route {route} from {} to {address}",
        now["targets"]
    ));
    rb.call("route.set", json!({"route": route, "targets": [address]}))
}

/// A write through the cluster's endpoint, or on the node when the cluster declares none.
fn write_check(rb: &Runbook, cluster: &str, node: &str, timeout: i64) -> Result<Value, Error> {
    let through_endpoint = rb.call(
        "postgres.write_check",
        json!({"cluster": cluster, "timeout_seconds": timeout}),
    );
    match through_endpoint {
        Err(Error::Call {
            error: CallError::BadRequest(_),
            ..
        }) => rb.call(
            "postgres.write_check",
            json!({"cluster": cluster, "node": node, "timeout_seconds": timeout}),
        ),
        r => r,
    }
}

fn failover(rb: &Runbook) -> Result<(), Error> {
    let cluster = rb.param_str("cluster")?;
    let route = rb.param_opt_str("route");
    let max_lag = rb.param_int("max_lag_bytes")?.max(0) as u64;
    let status = rb.call("postgres.status", json!({"cluster": cluster}))?;
    rb.info(&format!(
        "cluster {cluster}: primaries {}, writable {}, replicas {}, down {}",
        status["primaries"], status["writable"], status["replicas"], status["down"]
    ));
    let reached = match rb.param_opt_str("job") {
        Some(job) => {
            let window = rb.param_opt_str("lsn_window").unwrap_or("5m");
            let r = reached(rb, job, window)?;
            rb.info(&format!(
                "the highest WAL position the probe saw in job {job} within {window}: {}",
                r.map(|v| v.to_string()).unwrap_or_else(|| "none".into())
            ));
            r
        }
        None => None,
    };
    match plan(&status, reached, max_lag) {
        Plan::Refuse(why) => {
            rb.error(&format!("refusing: {why}"));
            rb.output(&json!({"decision": "refused", "reason": why}));
            Err(Error::Message(format!("refused: {why}")))
        }
        Plan::Healthy { primary, address } => {
            rb.info(&format!("{primary} is a writable primary: no failover"));
            if let Some(route) = route {
                repoint(rb, route, &address)?;
            }
            rb.output(&json!({"decision": "none", "primary": primary}));
            Ok(())
        }
        Plan::Failover {
            fence,
            promote,
            address,
            lag,
        } => {
            rb.info(&format!(
                "failing over to {promote} ({address}), {lag} bytes behind; fencing first: {}",
                if fence.is_empty() {
                    "nothing".to_string()
                } else {
                    fence.join(", ")
                }
            ));
            for node in &fence {
                match rb.call("postgres.fence", json!({"cluster": cluster, "node": node})) {
                    Ok(r) => rb.info(&format!("fenced {node}: {}", r["methods"])),
                    Err(e) => {
                        let why =
                            format!("{node} cannot be fenced, so {promote} is not promoted: {e}");
                        rb.error(&why);
                        rb.output(&json!({"decision": "refused", "reason": why}));
                        return Err(Error::Message(why));
                    }
                }
            }
            let wait = rb.param_int("promote_wait")?.clamp(1, 600);
            let p = rb.call(
                "postgres.promote",
                json!({"cluster": cluster, "node": promote, "wait_seconds": wait}),
            )?;
            rb.info(&format!(
                "promoted {promote}: timeline {} -> {}",
                p["previous_timeline"], p["timeline"]
            ));
            let routed = match route {
                Some(route) => Some(repoint(rb, route, &address)?),
                None => None,
            };
            if rb.dry_run() {
                rb.info(
                    "dry run: nothing was fenced, promoted or repointed, so no write is checked",
                );
                rb.output(
                    &json!({"decision": "failover", "dry_run": true, "promoted": promote,
                                  "fenced": fence, "lag_bytes": lag}),
                );
                return Ok(());
            }
            let timeout = rb.param_int("write_timeout")?.clamp(1, 300);
            let w = write_check(rb, cluster, &promote, timeout)?;
            if w["node"] != json!(promote) {
                let why = format!(
                    "a write through {} landed on {}, not on {promote}",
                    w["through"], w["server"]
                );
                rb.error(&why);
                return Err(Error::Message(why));
            }
            rb.info(&format!(
                "a write committed through {} on {promote} in {} ms",
                w["through"], w["duration_ms"]
            ));
            rb.output(&json!({
                "decision": "failover",
                "promoted": promote,
                "fenced": fence,
                "lag_bytes": lag,
                "timeline": p["timeline"],
                "route": routed.map(|r| r["targets"].clone()),
                "write_check": w,
            }));
            Ok(())
        }
    }
}

vigil_sdk::runbook!(failover);

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, up: bool, role: &str, lsn: u64, read_only: bool) -> Value {
        json!({"name": name, "address": format!("10.0.0.{}:5432", &name[2..]), "up": up,
               "role": role, "lsn": lsn, "read_only": read_only})
    }

    fn status(nodes: Vec<Value>) -> Value {
        json!({"nodes": nodes})
    }

    #[test]
    fn the_most_advanced_replica_within_the_bound_is_promoted_after_fencing_the_rest() {
        let s = status(vec![
            json!({"name": "pg1", "up": false}),
            node("pg2", true, "replica", 1000, true),
            node("pg3", true, "replica", 1200, true),
        ]);
        assert_eq!(
            plan(&s, Some(1300), 500),
            Plan::Failover {
                fence: vec!["pg1".into()],
                promote: "pg3".into(),
                address: "10.0.0.3:5432".into(),
                lag: 100
            }
        );
        // pg3 too far behind the last known position: pg2 is not better.
        match plan(&s, Some(2000), 500) {
            Plan::Refuse(why) => assert!(
                why.contains("pg2 lags 1000 bytes, pg3 lags 800 bytes"),
                "{why}"
            ),
            p => panic!("{p:?}"),
        }
    }

    #[test]
    fn two_primaries_or_a_healthy_one_mean_no_failover() {
        let two = status(vec![
            node("pg1", true, "primary", 10, false),
            node("pg2", true, "primary", 10, false),
        ]);
        assert!(
            matches!(plan(&two, None, 0), Plan::Refuse(w) if w.contains("2 nodes claim to be primary (pg1, pg2)"))
        );
        let ok = status(vec![
            node("pg1", true, "primary", 10, false),
            node("pg2", true, "replica", 10, true),
        ]);
        assert_eq!(
            plan(&ok, None, 0),
            Plan::Healthy {
                primary: "pg1".into(),
                address: "10.0.0.1:5432".into()
            }
        );
        // A fenced (read-only) primary is fenced again and a replica promoted.
        let fenced = status(vec![
            node("pg1", true, "primary", 10, true),
            node("pg2", true, "replica", 10, true),
        ]);
        assert!(
            matches!(plan(&fenced, None, 0), Plan::Failover { fence, promote, .. } if fence == ["pg1"] && promote == "pg2")
        );
        let none = status(vec![
            json!({"name": "pg1", "up": false}),
            json!({"name": "pg2", "up": false}),
        ]);
        assert!(
            matches!(plan(&none, None, 0), Plan::Refuse(w) if w.contains("no replica answers"))
        );
    }
}
