//! The blast-radius budget on real actions: a runbook bound to a flapping alert keeps restarting a
//! (declared, real) process; past the fleet-wide budget the action is refused, the refusal is kept
//! for escalation, and the command does not run again.

use std::sync::Arc;

use serde_json::json;
use vigil_remediation::capability::process::ProcessCapabilities;
use vigil_remediation::capability::{Grant, Registry};
use vigil_remediation::grants::GrantedDispatcher;
use vigil_remediation::policy::{Policy, Refusal, RunKey};
use vigil_remediation::sandbox::{CallError, Dispatcher};

#[tokio::test]
async fn a_flapping_alert_trips_the_breaker_and_stops_acting() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("restarts");
    let mut reg = Registry::new();
    reg.register(Arc::new(
        ProcessCapabilities::new(
            serde_yaml_ng::from_str(&format!(
                "web: {{command: [sh, -c, 'echo restart >> {}']}}\n",
                log.display()
            ))
            .unwrap(),
        )
        .unwrap(),
    ));
    let grants: Vec<Grant> = serde_yaml_ng::from_str("- capability: process.restart\n").unwrap();
    let policy = Policy::new(
        serde_yaml_ng::from_str(
            "cooldown: 0s\nmax_attempts: 100\nblast_radius: {max_actions: 3, window: 10m}\n",
        )
        .unwrap(),
    );
    let mut refused = Vec::new();
    for run in 0..5 {
        // Each firing of the flapping alert is one admitted run with one action.
        let key = RunKey {
            binding: "web/restart".into(),
            target: "process:web".into(),
            alert: "flappy".into(),
        };
        let _permit = policy.admit(&key, std::time::Instant::now()).unwrap();
        let d = GrantedDispatcher::new(reg.clone(), grants.clone(), false, None)
            .with_policy(policy.clone());
        match d.call("process.restart", json!({"name": "web"})).await {
            Ok(r) => assert_eq!(r["exit_code"], 0, "run {run}"),
            Err(CallError::Denied(m)) => {
                assert!(m.starts_with("process.restart not performed: "), "{m}");
                refused.push((run, d.refusals()));
            }
            Err(e) => panic!("run {run}: {e:?}"),
        }
    }
    let restarts = std::fs::read_to_string(&log).unwrap().lines().count();
    assert_eq!(restarts, 3, "the command ran past the budget");
    assert_eq!(refused.len(), 2);
    for (_, r) in &refused {
        assert!(matches!(&r[..], [Refusal::BlastRadius(_)]), "{r:?}");
        assert!(r[0].escalates());
    }
    assert_eq!(policy.tripped(), vec!["process.restart".to_string()]);
}
