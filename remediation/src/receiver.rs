//! The `runbook_configs` receiver: each firing alert routed to it starts one execution of the
//! entry's runbook, with parameters and target templated from the alert; an execution that did not
//! fix its alert is escalated to `escalate_to` through the router, with its record.
//!
//! ```yaml
//! receivers:
//!   - name: heal-web
//!     runbook_configs:
//!       - runbook: restart-container
//!         params: {container: '{{ $labels.container }}'}
//!         target: 'container:{{ $labels.container }}'
//!         grants: [{capability: docker.restart, scope: {labels: {app: web}}}, {capability: docker.inspect}]
//!         verify_within: 1m
//!         escalate_to: oncall
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value, json};
use vigil_alerting::notify::runbook::RunbookFactory;
use vigil_alerting::notify::{Message, Notifier, NotifyError};
use vigil_alerting::router::{Alert, AlertRouter};

use crate::capability::Grant;
use crate::engine::{Binding, Engine, Escalator};
use crate::execution::Execution;

/// One `runbook_configs` entry as written (templates not yet applied).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryConfig {
    runbook: String,
    #[serde(default)]
    params: BTreeMap<String, String>,
    #[serde(default)]
    target: String,
    #[serde(default)]
    grants: Vec<Grant>,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    require_approval: bool,
    #[serde(default)]
    verify_within: Option<String>,
    #[serde(default)]
    escalate_to: Option<String>,
}

/// `{{ $labels.x }}`, `{{ .Labels.x }}`, `{{ $annotations.x }}`, `{{ .Annotations.x }}`: the
/// templates a parameter may use. Anything else is refused when the configuration loads.
fn render(
    text: &str,
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(j) = after.find("}}") else {
            return Err(format!("{text:?}: unclosed {{{{"));
        };
        let expr = after[..j].trim();
        let (map, name) = if let Some(n) = expr
            .strip_prefix("$labels.")
            .or_else(|| expr.strip_prefix(".Labels."))
        {
            (labels, n)
        } else if let Some(n) = expr
            .strip_prefix("$annotations.")
            .or_else(|| expr.strip_prefix(".Annotations."))
        {
            (annotations, n)
        } else {
            return Err(format!(
                "{text:?}: {{{{ {expr} }}}} is not supported in runbook parameters (use {{{{ $labels.NAME }}}} or {{{{ $annotations.NAME }}}})"
            ));
        };
        out.push_str(map.get(name).map(String::as_str).unwrap_or(""));
        rest = &after[j + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Builds `runbook_configs` entries against the loaded runbooks.
pub struct RunbookReceivers {
    engine: Arc<Engine>,
}

impl RunbookReceivers {
    pub fn new(engine: Arc<Engine>) -> RunbookReceivers {
        RunbookReceivers { engine }
    }
}

impl RunbookFactory for RunbookReceivers {
    fn build(
        &self,
        receiver: &str,
        index: usize,
        config: &serde_yaml_ng::Value,
    ) -> Result<Box<dyn Notifier>, String> {
        let c: EntryConfig =
            serde_yaml_ng::from_value(config.clone()).map_err(|e| e.to_string())?;
        let Some(rb) = self.engine.runbooks.get(&c.runbook) else {
            let known: Vec<&str> = self.engine.runbooks.keys().map(String::as_str).collect();
            return Err(format!(
                "no runbook named {:?} is loaded (loaded: {})",
                c.runbook,
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ));
        };
        for g in &c.grants {
            if !rb.manifest.capabilities.contains(&g.capability) {
                return Err(format!(
                    "grant of {} to runbook {}, whose manifest does not ask for it (it asks for: {})",
                    g.capability,
                    c.runbook,
                    rb.manifest.capabilities.join(", ")
                ));
            }
            if g.capability == "http.request" && g.scope.url_prefixes.is_empty() {
                return Err("a grant of http.request needs scope.url_prefixes".into());
            }
        }
        for k in c.params.keys() {
            if !rb.manifest.params.contains_key(k) {
                return Err(format!(
                    "parameter {k:?} is not declared by runbook {}",
                    c.runbook
                ));
            }
        }
        for (k, spec) in &rb.manifest.params {
            if spec.required && !c.params.contains_key(k) {
                return Err(format!(
                    "parameter {k} is required by runbook {}",
                    c.runbook
                ));
            }
        }
        let empty = BTreeMap::new();
        for t in c.params.values().chain(std::iter::once(&c.target)) {
            render(t, &empty, &empty)?;
        }
        let verify_within = match &c.verify_within {
            None => Duration::from_secs(120),
            Some(s) => crate::manifest::parse_duration(s)
                .ok_or_else(|| format!("verify_within {s:?} is not a duration"))?,
        };
        Ok(Box::new(RunbookNotifier {
            engine: self.engine.clone(),
            name: format!("{receiver}/{}[{index}]", c.runbook),
            entry: c,
            verify_within,
        }))
    }
}

struct RunbookNotifier {
    engine: Arc<Engine>,
    name: String,
    entry: EntryConfig,
    verify_within: Duration,
}

fn alert_json(a: &Alert) -> (Value, BTreeMap<String, String>) {
    let labels: BTreeMap<String, String> = a
        .labels
        .iter()
        .map(|l| (l.name.to_string(), l.value.to_string()))
        .collect();
    (
        json!({
            "status": "firing",
            "labels": labels,
            "annotations": a.annotations,
            "startsAt": vigil_model::rfc3339_ms(a.starts_at),
            "generatorURL": a.generator_url,
            "fingerprint": format!("{:016x}", a.fingerprint()),
        }),
        labels,
    )
}

impl Notifier for RunbookNotifier {
    fn notify<'a>(
        &'a self,
        m: &'a Message<'a>,
    ) -> futures::future::BoxFuture<'a, Result<(), NotifyError>> {
        Box::pin(async move {
            for a in m.firing() {
                let (alert, labels) = alert_json(a);
                let mut params = Map::new();
                for (k, t) in &self.entry.params {
                    let v = render(t, &labels, &a.annotations).map_err(NotifyError::fatal)?;
                    params.insert(k.clone(), Value::String(v));
                }
                let binding = Binding {
                    runbook: self.entry.runbook.clone(),
                    params,
                    grants: self.entry.grants.clone(),
                    dry_run: self.entry.dry_run,
                    require_approval: self.entry.require_approval,
                    verify_within: self.verify_within,
                    escalate_to: self.entry.escalate_to.clone(),
                    target: render(&self.entry.target, &labels, &a.annotations)
                        .map_err(NotifyError::fatal)?,
                };
                let (engine, name) = (self.engine.clone(), self.name.clone());
                // The run and its verification outlive the notification: the router's delivery
                // only starts them.
                tokio::spawn(async move {
                    let e = engine.execute(&name, &binding, alert).await;
                    tracing::info!(execution = %e.id, binding = %name, outcome = ?e.outcome, reason = ?e.reason, "runbook execution ended");
                });
            }
            Ok(())
        })
    }
}

/// Escalates through the router: the alert goes to the `escalate_to` receiver with the execution
/// record in its annotations (`runbook_execution`, JSON) and a summary of what was tried.
#[derive(Default)]
pub struct RouterEscalator {
    router: OnceLock<Weak<AlertRouter>>,
}

impl RouterEscalator {
    /// The router exists after the engine (it is built with the engine's receivers): set it then.
    pub fn set_router(&self, r: &Arc<AlertRouter>) {
        let _ = self.router.set(Arc::downgrade(r));
    }
}

#[async_trait::async_trait]
impl Escalator for RouterEscalator {
    async fn escalate(&self, receiver: &str, e: &Execution) -> Result<(), String> {
        let router = self
            .router
            .get()
            .and_then(Weak::upgrade)
            .ok_or_else(|| "the router is not running".to_string())?;
        let labels = crate::engine::string_map(&e.alert["labels"]);
        let mut annotations = crate::engine::string_map(&e.alert["annotations"]);
        let calls: Vec<String> = e
            .steps
            .iter()
            .filter(|s| s.kind == "call")
            .map(|s| {
                format!(
                    "{} -> {}",
                    s.detail["capability"].as_str().unwrap_or("?"),
                    s.detail["status"].as_str().unwrap_or("?")
                )
            })
            .collect();
        annotations.insert(
            "runbook_summary".into(),
            format!(
                "runbook {} ({}) ended {:?}: {}; calls: {}",
                e.runbook,
                e.id,
                e.outcome,
                e.reason.as_deref().unwrap_or("no reason given"),
                if calls.is_empty() {
                    "none".into()
                } else {
                    calls.join(", ")
                }
            ),
        );
        if !e.notes.is_empty() {
            annotations.insert("runbook_notes".into(), e.notes.join("\n"));
        }
        annotations.insert(
            "runbook_execution".into(),
            serde_json::to_string(e).unwrap_or_default(),
        );
        let now = vigil_model::now_ms();
        let alert = Alert {
            labels: vigil_model::Labels::from_pairs(labels),
            annotations,
            starts_at: e.alert["startsAt"]
                .as_str()
                .and_then(|s| vigil_model::parse_api_time(s).ok())
                .unwrap_or(now),
            ends_at: now + 3_600_000,
            generator_url: e.alert["generatorURL"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            updated_at: now,
        };
        router.notify_receiver(receiver, vec![alert]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_template_from_labels_and_annotations_only() {
        let l = BTreeMap::from([("container".to_string(), "web-1".to_string())]);
        let a = BTreeMap::from([("runbook_hint".to_string(), "soft".to_string())]);
        assert_eq!(render("{{ $labels.container }}", &l, &a).unwrap(), "web-1");
        assert_eq!(
            render(
                "c:{{.Labels.container}}/{{ $annotations.runbook_hint }}",
                &l,
                &a
            )
            .unwrap(),
            "c:web-1/soft"
        );
        assert_eq!(render("{{ $labels.missing }}", &l, &a).unwrap(), "");
        assert!(
            render("{{ .Value }}", &l, &a)
                .unwrap_err()
                .contains("not supported")
        );
        assert!(
            render("{{ $labels.x", &l, &a)
                .unwrap_err()
                .contains("unclosed")
        );
    }
}
