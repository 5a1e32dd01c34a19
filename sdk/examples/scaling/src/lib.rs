//! Step scaling for the scale-out and scale-in runbooks: change a Swarm service's or a container
//! group's replicas by `step` within `min`..=`max`, repoint a route at the replicas, and with
//! `while` (the PromQL condition that asked for the change, e.g. the alert's expression) keep
//! stepping until the condition clears for good or a bound is reached. Each decision is logged.
//!
//! Scaling out at `max` while the condition still holds fails the run, so the binding escalates:
//! more replicas are not allowed and the service is still overloaded. Scaling in stops quietly at
//! `min`.

use serde_json::{Value, json};
use vigil_sdk::{Error, Runbook};

/// Which way to scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Out,
    In,
}

/// The next replica count from `now`, or None at the bound.
pub fn next(direction: Direction, now: i64, step: i64, min: i64, max: i64) -> Option<i64> {
    let step = step.max(1);
    match direction {
        Direction::Out if now >= max => None,
        Direction::Out => Some((now + step).min(max).max(min)),
        Direction::In if now <= min => None,
        Direction::In => Some((now - step).max(min).min(max)),
    }
}

/// PromQL that is non-empty once `condition` no longer holds.
pub fn cleared(condition: &str) -> String {
    format!("vector(1) unless on() ({condition})")
}

fn holds(rb: &Runbook, condition: &str) -> Result<bool, Error> {
    let r = rb.call("query.promql", json!({"query": condition}))?;
    Ok(match r["resultType"].as_str() {
        Some("vector") | Some("matrix") => r["result"].as_array().is_some_and(|a| !a.is_empty()),
        Some("scalar") => r["result"][1].as_str().is_some_and(|v| v != "0"),
        _ => false,
    })
}

/// Runs the runbook in one direction.
pub fn scale(rb: &Runbook, direction: Direction) -> Result<(), Error> {
    let (key, name) = match (rb.param_opt_str("service"), rb.param_opt_str("group")) {
        (Some(s), None) => ("service", s),
        (None, Some(g)) => ("group", g),
        _ => return Err(Error::Param("give either `service` or `group`".into())),
    };
    let step = rb.param_int("step")?;
    let (min, max) = (rb.param_int("min")?, rb.param_int("max")?);
    if min < 0 || max < min {
        return Err(Error::Param(format!(
            "min {min} and max {max} are not a range"
        )));
    }
    let condition = rb.param_opt_str("while");
    let settle = rb.param_opt_str("settle").unwrap_or("30s");
    let route = rb.param_opt_str("route");
    let port = rb.params()["port"].as_i64().filter(|p| *p > 0);
    let mut subject = json!({ key: name });
    if let Some(p) = port {
        subject["port"] = json!(p);
    }
    let now = rb.call("docker.replicas", subject.clone())?;
    let mut replicas = now["desired"].as_i64().unwrap_or(0);
    let first = replicas;
    rb.info(&format!(
        "{key} {name}: {replicas} replicas ({} running), bounds {min}..={max}, step {step}",
        now["running"]
    ));
    let mut steps: Vec<Value> = Vec::new();
    loop {
        if let Some(c) = condition
            && !holds(rb, c)?
        {
            rb.info(&format!(
                "the condition no longer holds at {replicas} replicas"
            ));
            break;
        }
        let Some(to) = next(direction, replicas, step, min, max) else {
            if direction == Direction::Out {
                let why = format!(
                    "{key} {name} is at its maximum of {max} replicas and still needs more"
                );
                rb.error(&why);
                rb.output(&json!({"decision": "at_max", "from": first, "replicas": replicas, "steps": steps}));
                return Err(Error::Message(why));
            }
            rb.info(&format!("{key} {name} is at its minimum of {min} replicas"));
            break;
        };
        rb.info(&format!("scaling {key} {name} from {replicas} to {to}"));
        let mut args = subject.clone();
        args["replicas"] = json!(to);
        let r = rb.call("docker.scale", args)?;
        replicas = to;
        if let Some(route) = route {
            let set = rb.call(
                "route.set",
                json!({"route": route, "targets": r["addresses"]}),
            )?;
            rb.info(&format!("route {route} now targets {}", set["targets"]));
        }
        steps.push(
            json!({"replicas": to, "addresses": r["addresses"], "waited_ms": r["waited_ms"]}),
        );
        if rb.dry_run() {
            rb.info("dry run: one step shown; nothing changed, so the condition is not waited for");
            break;
        }
        let Some(c) = condition else { break };
        // Give the change `settle` to show; then the loop looks at the condition again.
        let w = rb.call(
            "wait.until",
            json!({"query": cleared(c), "timeout": settle}),
        )?;
        if w["met"] == true {
            rb.info(&format!(
                "the condition cleared {} ms after scaling to {to}",
                w["after_ms"]
            ));
            break;
        }
        rb.info(&format!(
            "the condition still holds {settle} after scaling to {to}"
        ));
    }
    rb.output(&json!({"decision": "scaled", "from": first, "replicas": replicas, "steps": steps}));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_stay_within_the_bounds() {
        assert_eq!(next(Direction::Out, 1, 1, 1, 4), Some(2));
        assert_eq!(next(Direction::Out, 3, 2, 1, 4), Some(4));
        assert_eq!(next(Direction::Out, 4, 1, 1, 4), None);
        assert_eq!(
            next(Direction::Out, 0, 1, 2, 4),
            Some(2),
            "below min: up to min at once"
        );
        assert_eq!(next(Direction::In, 4, 1, 1, 4), Some(3));
        assert_eq!(next(Direction::In, 2, 5, 1, 4), Some(1));
        assert_eq!(next(Direction::In, 1, 1, 1, 4), None);
        assert_eq!(
            next(Direction::In, 9, 1, 1, 4),
            Some(4),
            "above max: down to max at once"
        );
        assert_eq!(
            next(Direction::Out, 1, 0, 1, 4),
            Some(2),
            "a step is at least 1"
        );
        assert_eq!(cleared("up == 0"), "vector(1) unless on() (up == 0)");
    }
}
