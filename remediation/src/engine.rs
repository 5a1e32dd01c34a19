//! One execution from start to verdict: the policy admits it (or refuses, recorded), an approval is
//! waited for when the binding requires one, the runbook runs in the sandbox with the binding's
//! grants, and afterwards the alert is watched for `verify_within`: cleared means `verified`;
//! otherwise, or when the run failed, the execution is handed to the escalation receiver.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use vigil_query::eval::EvalOptions;
use vigil_storage::MetricsReader;

use crate::capability::{Effect, Grant, Registry};
use crate::execution::{Execution, ExecutionStore, Outcome, Timestamps};
use crate::grants::{AlertCheck, GrantedDispatcher};
use crate::offline::{self, Checked};
use crate::policy::{Policy, RunKey};
use crate::sandbox::{RunStatus, Sandbox};

/// A binding of a runbook to alerts (a `runbook_configs` entry), its parameters already templated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Binding {
    pub runbook: String,
    #[serde(default)]
    pub params: Map<String, Value>,
    #[serde(default)]
    pub grants: Vec<Grant>,
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default)]
    pub require_approval: bool,
    /// How long the alert has to clear after the run.
    #[serde(default = "default_verify", with = "crate::policy::dur")]
    pub verify_within: Duration,
    /// The receiver paged when the run did not fix the alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalate_to: Option<String>,
    /// What the run acts on, for the per-target lock (default: the alert's fingerprint).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target: String,
}

fn default_verify() -> Duration {
    Duration::from_secs(120)
}

/// Tells whether an alert still fires.
#[async_trait::async_trait]
pub trait AlertState: Send + Sync {
    /// True while the alert (its labels) is firing.
    async fn firing(&self, labels: &BTreeMap<String, String>) -> bool;
}

/// Whether an alert fires, from the `ALERTS` series the rule engine writes.
pub struct AlertsSeries<R: MetricsReader> {
    reader: Arc<R>,
    opts: EvalOptions,
}

impl<R: MetricsReader> AlertsSeries<R> {
    pub fn new(reader: Arc<R>, opts: EvalOptions) -> Self {
        AlertsSeries { reader, opts }
    }
}

#[async_trait::async_trait]
impl<R: MetricsReader> AlertState for AlertsSeries<R> {
    async fn firing(&self, labels: &BTreeMap<String, String>) -> bool {
        let sel: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}={}", serde_json::Value::String(v.clone())))
            .collect();
        let q = format!("ALERTS{{alertstate=\"firing\",{}}}", sel.join(","));
        let Ok(expr) = vigil_query::eval::parse(&q) else {
            return false;
        };
        match vigil_query::eval::instant(&*self.reader, expr, vigil_model::now_ms(), &self.opts)
            .await
        {
            Ok((vigil_query::eval::Value::Vector(v), _)) => !v.is_empty(),
            _ => false,
        }
    }
}

/// Pages a receiver with an execution (the router, in the server).
#[async_trait::async_trait]
pub trait Escalator: Send + Sync {
    async fn escalate(&self, receiver: &str, execution: &Execution) -> Result<(), String>;
}

/// Runbooks by name, loaded from a directory of `NAME.wasm` + `NAME.runbook.yml`.
pub fn load_runbooks(sandbox: &Sandbox, dir: &Path) -> Result<BTreeMap<String, Checked>, String> {
    let mut out = BTreeMap::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut files: Vec<_> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
        .collect();
    files.sort();
    for f in files {
        let c = offline::validate(sandbox, &f)?;
        out.insert(c.manifest.name.clone(), c);
    }
    Ok(out)
}

pub struct Engine {
    pub sandbox: Arc<Sandbox>,
    pub registry: Registry,
    pub policy: Arc<Policy>,
    pub runbooks: BTreeMap<String, Checked>,
    pub store: Arc<ExecutionStore>,
    pub alerts: Arc<dyn AlertState>,
    pub escalator: Option<Arc<dyn Escalator>>,
    /// How often verification looks at the alert.
    pub verify_every: Duration,
    pub metrics: crate::metrics::RunbookMetrics,
    /// Executions waiting for an approval, with the binding they run under.
    pub pending: parking_lot::Mutex<std::collections::HashMap<String, (String, Binding)>>,
    /// The users of the web configuration who may approve, deny and start runs (`runbooks.admins`);
    /// consulted only while the web configuration requires basic authentication.
    pub admins: parking_lot::RwLock<Vec<String>>,
}

struct StillFiring {
    alerts: Arc<dyn AlertState>,
    labels: BTreeMap<String, String>,
}

#[async_trait::async_trait]
impl AlertCheck for StillFiring {
    async fn resolved(&self) -> Option<String> {
        (!self.alerts.firing(&self.labels).await)
            .then(|| "the alert is no longer firing".to_string())
    }
}

fn labels_of(alert: &Value) -> BTreeMap<String, String> {
    string_map(&alert["labels"])
}

/// A JSON object's string members (an alert's labels or annotations).
pub(crate) fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

impl Engine {
    async fn save(&self, e: &Execution) {
        let (store, e2) = (self.store.clone(), e.clone());
        let r = tokio::task::spawn_blocking(move || store.put(&e2)).await;
        if !matches!(r, Ok(Ok(()))) {
            tracing::error!(execution = %e.id, "cannot persist the execution record");
        }
    }

    /// Runs `binding` for `alert` (a JSON object with `labels`, `annotations`, `startsAt`,
    /// `fingerprint`) to its verdict.
    pub async fn execute(&self, binding_name: &str, binding: &Binding, alert: Value) -> Execution {
        self.execute_as(None, binding_name, binding, alert).await
    }

    /// Approves a pending execution and runs it to its verdict (the policy is asked again: time
    /// has passed). None when no execution with that id is pending.
    pub async fn approve(&self, id: &str, user: &str) -> Option<Execution> {
        let (mut e, name, mut binding) = self.take_pending(id)?;
        e.approved_by = Some(user.to_string());
        e.step("approval", json!({"approved": true, "by": user}));
        binding.require_approval = false;
        let alert = e.alert.clone();
        Some(self.execute_as(Some(e), &name, &binding, alert).await)
    }

    /// Denies a pending execution: it never runs.
    pub async fn deny(&self, id: &str, user: &str) -> Option<Execution> {
        let (mut e, _, _) = self.take_pending(id)?;
        e.step("approval", json!({"approved": false, "by": user}));
        e.outcome = Outcome::Denied;
        e.reason = Some(format!("denied by {user}"));
        self.save(&e).await;
        Some(e)
    }

    /// After a restart, from the execution log: runs that waited for an approval wait again under
    /// the binding they were created with; runs that were under way when Vigil stopped (in the
    /// sandbox or in verification) end `failed` as interrupted, and are escalated when their
    /// binding names a receiver, since no one else will look at them. Call once the escalator can
    /// reach the router. Returns (pending again, interrupted).
    pub async fn recover(&self) -> (usize, usize) {
        let (mut waiting, mut interrupted) = (0, 0);
        for mut e in self.store.list() {
            match (e.outcome, e.config.clone()) {
                (Outcome::Pending, Some(b)) => {
                    self.pending
                        .lock()
                        .insert(e.id.clone(), (e.binding.clone(), b));
                    waiting += 1;
                }
                (Outcome::Pending | Outcome::Running | Outcome::Succeeded, b) => {
                    interrupted += 1;
                    let was = e.outcome;
                    e.step("restart", json!({"previous_outcome": was}));
                    e.outcome = Outcome::Failed;
                    e.reason = Some(match was {
                        Outcome::Pending => {
                            "Vigil restarted while the run waited for an approval, and the record \
                             does not hold the binding to run it under"
                                .to_string()
                        }
                        _ => "interrupted: Vigil stopped during the run or its verification; the \
                              record holds what happened before"
                            .to_string(),
                    });
                    e.times.finished.get_or_insert(vigil_model::now_ms());
                    match b {
                        Some(b) => {
                            self.finish(&b, e).await;
                        }
                        None => self.record(&e).await,
                    }
                }
                _ => {}
            }
        }
        if waiting + interrupted > 0 {
            tracing::info!(
                waiting,
                interrupted,
                "runbook executions recovered from the execution log"
            );
        }
        (waiting, interrupted)
    }

    /// Closes the blast-radius breaker of `capability` (an admin's decision, logged). False when it
    /// was not open.
    pub fn reset_breaker(&self, capability: &str, user: &str) -> bool {
        let was_open = self.policy.reset(capability);
        if was_open {
            tracing::warn!(capability, by = user, "blast-radius breaker reset");
            self.metrics.breakers(&[], &[capability.to_string()]);
        }
        was_open
    }

    /// Whether `user` may approve, deny and start runs while authentication is on.
    pub fn is_admin(&self, user: &str) -> bool {
        self.admins.read().iter().any(|a| a == user)
    }

    fn take_pending(&self, id: &str) -> Option<(Execution, String, Binding)> {
        let (name, binding) = self.pending.lock().remove(id)?;
        let e = self.store.get(id)?;
        (e.outcome == Outcome::Pending).then_some((e, name, binding))
    }

    async fn execute_as(
        &self,
        resumed: Option<Execution>,
        binding_name: &str,
        binding: &Binding,
        alert: Value,
    ) -> Execution {
        let labels = labels_of(&alert);
        let fingerprint = alert["fingerprint"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut e = resumed.unwrap_or_else(|| Execution {
            id: ulid::Ulid::new().to_string(),
            binding: binding_name.to_string(),
            runbook: binding.runbook.clone(),
            version: String::new(),
            alert: alert.clone(),
            params: Value::Object(binding.params.clone()),
            dry_run: binding.dry_run,
            outcome: Outcome::Running,
            reason: None,
            approved_by: None,
            steps: Vec::new(),
            output: None,
            notes: Vec::new(),
            times: Timestamps {
                detected: alert["startsAt"]
                    .as_str()
                    .and_then(|s| vigil_model::parse_api_time(s).ok()),
                created: vigil_model::now_ms(),
                ..Default::default()
            },
            config: Some(binding.clone()),
        });
        let Some(rb) = self.runbooks.get(&binding.runbook) else {
            e.outcome = Outcome::Failed;
            e.reason = Some(format!("no runbook named {:?} is loaded", binding.runbook));
            return self.finish(binding, e).await;
        };
        e.version = rb.manifest.version.clone();
        let params = match rb.manifest.check_params(&binding.params) {
            Ok(p) => p,
            Err(m) => {
                e.outcome = Outcome::Failed;
                e.reason = Some(m);
                return self.finish(binding, e).await;
            }
        };
        let target = if !binding.target.is_empty() {
            binding.target.clone()
        } else if fingerprint.is_empty() {
            // A run by hand without an alert or a target locks only itself.
            format!("run:{}", e.id)
        } else {
            format!("alert:{fingerprint}")
        };
        // The policy decides when the run would start, after the approval.
        if binding.require_approval {
            e.outcome = Outcome::Pending;
            e.reason = Some("waiting for an approval".into());
            self.pending
                .lock()
                .insert(e.id.clone(), (binding_name.to_string(), binding.clone()));
            self.record(&e).await;
            return e;
        }
        let key = RunKey {
            binding: binding_name.to_string(),
            target: target.clone(),
            alert: fingerprint.clone(),
        };
        let permit = match self.policy.admit(&key, Instant::now()) {
            Ok(p) => {
                e.step("policy", json!({"admitted": true, "target": target}));
                p
            }
            Err(r) => {
                self.metrics.refused(&r);
                e.step("policy", serde_json::to_value(&r).unwrap_or_default());
                e.outcome = Outcome::Denied;
                e.reason = Some(r.reason().to_string());
                if r.escalates() {
                    return self.finish(binding, e).await;
                }
                self.record(&e).await;
                return e;
            }
        };
        e.outcome = Outcome::Running;
        e.reason = None;
        let input = json!({
            "abi": rb.manifest.abi,
            "runbook": {"name": rb.manifest.name, "version": rb.manifest.version},
            "dry_run": binding.dry_run,
            "params": params,
            "alert": alert,
            "execution": e.id,
        });
        // A run by hand without an alert has nothing to re-check or verify.
        let check: Option<Arc<dyn AlertCheck>> = (!labels.is_empty()).then(|| {
            Arc::new(StillFiring {
                alerts: self.alerts.clone(),
                labels: labels.clone(),
            }) as Arc<dyn AlertCheck>
        });
        let d = Arc::new(
            GrantedDispatcher::new(
                self.registry.clone(),
                binding.grants.clone(),
                binding.dry_run,
                check,
            )
            .with_policy(self.policy.clone()),
        );
        e.times.started = Some(vigil_model::now_ms());
        self.save(&e).await;
        let report = self.sandbox.run(&rb.runbook, &input, d.clone()).await;
        drop(permit);
        let label = crate::metrics::RunbookLabel {
            runbook: binding.runbook.clone(),
        };
        self.metrics
            .duration
            .get_or_create(&label)
            .observe(report.duration_ms / 1e3);
        if report.instantiate_us > 0.0 {
            self.metrics
                .instantiate
                .observe(report.instantiate_us / 1e6);
        }
        for c in &report.calls {
            self.metrics
                .host_calls
                .get_or_create(&crate::metrics::CallLabel {
                    capability: c.capability.clone(),
                    status: c.status.to_string(),
                })
                .inc();
        }
        for r in d.refusals() {
            self.metrics.refused(&r);
        }
        self.metrics.breakers(&self.policy.tripped(), &[]);
        let started = e.times.started.unwrap_or_default();
        for c in &report.calls {
            let acts = self
                .registry
                .get(&c.capability)
                .is_some_and(|(x, _)| x == Effect::Acts);
            if acts && c.status == "ok" && !binding.dry_run && e.times.acted.is_none() {
                e.times.acted = Some(started + c.at_ms as i64);
            }
            e.steps.push(crate::execution::Step {
                at: started + c.at_ms as i64,
                kind: "call".into(),
                detail: serde_json::to_value(c).unwrap_or_default(),
            });
        }
        for l in &report.logs {
            e.steps.push(crate::execution::Step {
                at: started + l.at_ms as i64,
                kind: "log".into(),
                detail: serde_json::to_value(l).unwrap_or_default(),
            });
        }
        e.steps
            .sort_by_key(|s| (s.at, s.detail["seq"].as_u64().unwrap_or(0)));
        e.output = report.output.clone();
        e.notes = d.notes();
        e.times.finished = Some(vigil_model::now_ms());
        let tripped: Vec<_> = d.refusals().into_iter().filter(|r| r.escalates()).collect();
        e.outcome = match report.status {
            RunStatus::Succeeded => Outcome::Succeeded,
            RunStatus::Failed => Outcome::Failed,
            RunStatus::TimedOut => Outcome::TimedOut,
        };
        e.reason = report.reason.clone();
        if let Some(r) = tripped.first() {
            e.outcome = Outcome::Failed;
            e.reason = Some(r.reason().to_string());
            return self.finish(binding, e).await;
        }
        if e.outcome == Outcome::Succeeded && !binding.dry_run && !labels.is_empty() {
            // Verification: the alert must clear within verify_within.
            let deadline = Instant::now() + binding.verify_within;
            loop {
                if !self.alerts.firing(&labels).await {
                    e.times.recovered = Some(vigil_model::now_ms());
                    e.outcome = Outcome::Verified;
                    e.step("verify", json!({"cleared": true}));
                    break;
                }
                if Instant::now() >= deadline {
                    e.step("verify", json!({"cleared": false, "within": humantime::format_duration(binding.verify_within).to_string()}));
                    e.reason = Some(format!(
                        "the runbook succeeded but the alert still fires after {}",
                        humantime::format_duration(binding.verify_within)
                    ));
                    e.outcome = Outcome::Failed;
                    break;
                }
                tokio::time::sleep(self.verify_every).await;
            }
        }
        self.finish(binding, e).await
    }

    /// Escalates what did not end well (when the binding names a receiver), then records.
    async fn finish(&self, binding: &Binding, mut e: Execution) -> Execution {
        let bad = matches!(
            e.outcome,
            Outcome::Failed | Outcome::TimedOut | Outcome::Denied
        );
        if bad && let (Some(to), Some(esc)) = (&binding.escalate_to, &self.escalator) {
            match esc.escalate(to, &e).await {
                Ok(()) => {
                    e.step(
                        "escalate",
                        json!({"receiver": to, "previous_outcome": e.outcome}),
                    );
                    e.outcome = Outcome::Escalated;
                }
                Err(m) => e.step("escalate", json!({"receiver": to, "error": m})),
            }
        }
        self.record(&e).await;
        e
    }

    /// An execution reached an outcome: counted and persisted.
    async fn record(&self, e: &Execution) {
        self.count(e);
        self.save(e).await;
    }

    fn count(&self, e: &Execution) {
        let outcome = serde_json::to_value(e.outcome)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        self.metrics
            .executions
            .get_or_create(&crate::metrics::OutcomeLabel {
                runbook: e.runbook.clone(),
                outcome,
            })
            .inc();
    }
}
