//! The dispatcher of one run: a capability call goes through the binding's grants and their scopes,
//! a dry run answers acting calls with what would have been done, and right before the run's first
//! action the alert is checked to be still firing. Only then does the capability run. Later actions
//! of the same run are steps of a remediation already under way (fence, then promote, then
//! repoint): the alert may clear because of the first, and stopping halfway would be worse.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::capability::{Effect, Grant, Registry};
use crate::policy::{Policy, Refusal};
use crate::sandbox::{CallError, Dispatcher};

/// Answers whether the alert a run is for still fires (checked right before each action).
#[async_trait::async_trait]
pub trait AlertCheck: Send + Sync {
    /// None while it fires; the reason otherwise (resolved, silenced away, gone).
    async fn resolved(&self) -> Option<String>;
}

/// Grants, scopes, dry run and the firing check in front of the registry.
pub struct GrantedDispatcher {
    registry: Registry,
    grants: Vec<Grant>,
    dry_run: bool,
    alert: Option<Arc<dyn AlertCheck>>,
    policy: Option<Arc<Policy>>,
    /// Actions the policy refused during the run (a blast-radius refusal escalates the run).
    refused: parking_lot::Mutex<Vec<Refusal>>,
    /// Notes of `alert.annotate`, shown with the execution.
    notes: parking_lot::Mutex<Vec<String>>,
    /// Whether an acting call of this run has gone to its capability.
    acted: std::sync::atomic::AtomicBool,
}

impl GrantedDispatcher {
    pub fn new(
        registry: Registry,
        grants: Vec<Grant>,
        dry_run: bool,
        alert: Option<Arc<dyn AlertCheck>>,
    ) -> GrantedDispatcher {
        GrantedDispatcher {
            registry,
            grants,
            dry_run,
            alert,
            policy: None,
            refused: Default::default(),
            notes: Default::default(),
            acted: Default::default(),
        }
    }

    /// Charges every acting call to the fleet-wide blast-radius budget of `policy`.
    pub fn with_policy(mut self, policy: Arc<Policy>) -> GrantedDispatcher {
        self.policy = Some(policy);
        self
    }

    /// The run's `alert.annotate` notes.
    pub fn notes(&self) -> Vec<String> {
        self.notes.lock().clone()
    }

    /// What the policy refused during the run.
    pub fn refusals(&self) -> Vec<Refusal> {
        self.refused.lock().clone()
    }
}

#[async_trait::async_trait]
impl Dispatcher for GrantedDispatcher {
    fn timeout(&self, capability: &str, args: &Value) -> Option<std::time::Duration> {
        self.registry
            .get(capability)
            .and_then(|(_, c)| c.timeout(capability, args))
    }

    async fn call(&self, capability: &str, args: Value) -> Result<Value, CallError> {
        // alert.annotate belongs to the run itself: its notes go into the execution record.
        if capability == "alert.annotate" {
            if !self.grants.iter().any(|g| g.capability == capability) {
                return Err(CallError::Denied(format!(
                    "{capability} is not granted to this binding"
                )));
            }
            let note = crate::capability::arg_str(&args, "note")?;
            if note.len() > 4096 {
                return Err(CallError::BadRequest("a note is at most 4096 bytes".into()));
            }
            let mut notes = self.notes.lock();
            if notes.len() >= 50 {
                return Err(CallError::BadRequest("at most 50 notes per run".into()));
            }
            notes.push(note.to_string());
            return Ok(json!({"annotated": true, "notes": notes.len()}));
        }
        // The grant first: a runbook learns nothing about what this host has that it may not use.
        let granted: Vec<&Grant> = self
            .grants
            .iter()
            .filter(|g| g.capability == capability)
            .collect();
        if granted.is_empty() {
            return Err(CallError::Denied(format!(
                "{capability} is not granted to this binding"
            )));
        }
        let Some((effect, cap)) = self.registry.get(capability) else {
            return Err(CallError::BadRequest(format!(
                "unknown capability {capability:?}"
            )));
        };
        // A request may only go where an operator allowed: http.request needs URL prefixes.
        if capability == "http.request" && granted.iter().all(|g| g.scope.url_prefixes.is_empty()) {
            return Err(CallError::Denied(
                "http.request is granted without scope.url_prefixes, so no URL is allowed".into(),
            ));
        }
        let target = cap.target(capability, &args).await?;
        // Several grants of one capability: any one covering the target is enough.
        let refusals: Vec<String> = granted
            .iter()
            .filter_map(|g| g.scope.refuses(target.as_ref()))
            .collect();
        if refusals.len() == granted.len() {
            return Err(CallError::Denied(refusals.join("; ")));
        }
        if effect == Effect::Acts {
            if self.dry_run {
                return Ok(json!({
                    "dry_run": true,
                    "would": capability,
                    "target": target.as_ref().map(|t| t.key()),
                    "args": args,
                }));
            }
            use std::sync::atomic::Ordering;
            if let Some(a) = &self.alert
                && !self.acted.load(Ordering::SeqCst)
                && let Some(why) = a.resolved().await
            {
                return Err(CallError::Resolved(format!(
                    "{capability} not performed: {why}"
                )));
            }
            if let Some(p) = &self.policy
                && let Err(r) = p.charge(capability, std::time::Instant::now())
            {
                let reason = format!("{capability} not performed: {}", r.reason());
                self.refused.lock().push(r);
                return Err(CallError::Denied(reason));
            }
            self.acted.store(true, Ordering::SeqCst);
        }
        cap.call(capability, &args, target.as_ref()).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::capability::process::ProcessCapabilities;

    /// Firing at the first look, resolved at every later one (as when the first action fixed it).
    struct ClearsAfterFirstLook(AtomicUsize);

    #[async_trait::async_trait]
    impl AlertCheck for ClearsAfterFirstLook {
        async fn resolved(&self) -> Option<String> {
            (self.0.fetch_add(1, Ordering::SeqCst) > 0).then(|| "the alert resolved".to_string())
        }
    }

    #[tokio::test]
    async fn the_alert_is_checked_before_the_first_action_only() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("acted");
        let mut registry = Registry::new();
        registry.register(Arc::new(
            ProcessCapabilities::new(
                serde_yaml_ng::from_str(&format!(
                    "step: {{command: [sh, -c, 'echo step >> {}']}}\n",
                    log.display()
                ))
                .unwrap(),
            )
            .unwrap(),
        ));
        let grants: Vec<Grant> =
            serde_yaml_ng::from_str("- capability: process.restart\n").unwrap();
        let check = Arc::new(ClearsAfterFirstLook(AtomicUsize::new(0)));
        let d =
            GrantedDispatcher::new(registry.clone(), grants.clone(), false, Some(check.clone()));
        // Fence, promote, repoint: the second and third steps run although the alert cleared.
        for _ in 0..3 {
            d.call("process.restart", json!({"name": "step"}))
                .await
                .unwrap();
        }
        assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 3);
        assert_eq!(
            check.0.load(Ordering::SeqCst),
            1,
            "looked once, before the first"
        );
        // A run whose alert is already resolved does not start acting.
        let d = GrantedDispatcher::new(registry, grants, false, Some(check));
        let e = d
            .call("process.restart", json!({"name": "step"}))
            .await
            .unwrap_err();
        assert_eq!(
            e,
            CallError::Resolved("process.restart not performed: the alert resolved".into())
        );
        assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 3);
    }
}
