//! restart-container: restarts the container named by the `container` parameter (templated from the
//! alert's labels by the binding), then checks it is running again, or waits for the `healthy_when`
//! PromQL condition when one is given.

use serde_json::json;
use vigil_sdk::{Error, Runbook};

fn restart(rb: &Runbook) -> Result<(), Error> {
    let container = rb.param_str("container")?;
    let before = rb.call("docker.inspect", json!({"container": container}))?;
    rb.info(&format!(
        "{container} before: running={} restarts={}",
        before["running"], before["restart_count"]
    ));
    if rb.dry_run() {
        rb.info("dry run: the restart below is recorded, not performed");
    }
    rb.call(
        "docker.restart",
        json!({"container": container, "timeout_seconds": 10}),
    )?;
    let healthy = match rb.params()["healthy_when"].as_str() {
        Some(cond) if !cond.is_empty() => {
            let wait = rb.params()["wait"].as_str().unwrap_or("30s");
            let r = rb.call("wait.until", json!({"query": cond, "timeout": wait}))?;
            r["met"].as_bool().unwrap_or(false)
        }
        _ => {
            let after = rb.call("docker.inspect", json!({"container": container}))?;
            after["running"].as_bool().unwrap_or(false) || rb.dry_run()
        }
    };
    rb.output(&json!({"container": container, "restarted": true, "healthy": healthy}));
    if healthy {
        Ok(())
    } else {
        Err(format!("{container} was restarted but is not healthy").into())
    }
}

vigil_sdk::runbook!(restart);
