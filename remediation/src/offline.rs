//! Runbooks off the server, for authors: `vigil runbook validate` (the module fits the ABI, the
//! manifest beside it parses and matches) and `vigil runbook test` (a run against recorded replies,
//! acting capabilities answered as in a dry run, every call printed).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::abi;
use crate::manifest::Manifest;
use crate::sandbox::{CallError, Dispatcher, RunReport, Runbook, Sandbox};

/// `NAME.wasm` -> `NAME.runbook.yml` beside it.
pub fn manifest_path(wasm: &Path) -> PathBuf {
    let stem = wasm
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    wasm.with_file_name(format!("{stem}.runbook.yml"))
}

/// A checked runbook: its manifest and compiled module.
pub struct Checked {
    pub manifest: Manifest,
    pub runbook: Arc<Runbook>,
}

/// Loads `wasm` and its manifest and checks them together; errors name the file and the problem.
pub fn validate(sandbox: &Sandbox, wasm: &Path) -> Result<Checked, String> {
    let bytes = std::fs::read(wasm).map_err(|e| format!("{}: {e}", wasm.display()))?;
    let runbook = sandbox
        .load(&bytes)
        .map_err(|e| format!("{}: {e}", wasm.display()))?;
    let mpath = manifest_path(wasm);
    let text = std::fs::read_to_string(&mpath).map_err(|e| {
        format!(
            "{}: {e} (every runbook needs a manifest beside it; see sdk/README.md)",
            mpath.display()
        )
    })?;
    let manifest = Manifest::parse(&text).map_err(|e| format!("{}: {e}", mpath.display()))?;
    let stem = wasm
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if manifest.name != stem {
        return Err(format!(
            "{}: name {:?} does not match the module's file name {:?}",
            mpath.display(),
            manifest.name,
            stem
        ));
    }
    Ok(Checked { manifest, runbook })
}

/// Whether a capability changes the world (answered as a dry run offline).
pub fn acts(capability: &str) -> bool {
    abi::ACTING.contains(&capability)
}

/// Answers calls offline: declared and granted capabilities only; reading ones from recorded
/// replies (`{"capability": result, ...}`; a result `{"$error": "..."}` fails the call), acting
/// ones with what a dry run answers.
pub struct Recorded {
    declared: Vec<String>,
    granted: Vec<String>,
    replies: BTreeMap<String, Value>,
}

impl Recorded {
    /// `granted`: the capabilities to grant (all the manifest declares when empty).
    pub fn new(
        manifest: &Manifest,
        granted: &[String],
        replies: BTreeMap<String, Value>,
    ) -> Recorded {
        Recorded {
            declared: manifest.capabilities.clone(),
            granted: if granted.is_empty() {
                manifest.capabilities.clone()
            } else {
                granted.to_vec()
            },
            replies,
        }
    }
}

#[async_trait::async_trait]
impl Dispatcher for Recorded {
    async fn call(&self, capability: &str, args: Value) -> Result<Value, CallError> {
        if !abi::CAPABILITIES.contains(&capability) {
            return Err(CallError::BadRequest(format!(
                "unknown capability {capability:?}"
            )));
        }
        if !self.declared.iter().any(|c| c == capability) {
            return Err(CallError::Denied(format!(
                "{capability} is not declared in the runbook's manifest"
            )));
        }
        if !self.granted.iter().any(|c| c == capability) {
            return Err(CallError::Denied(format!(
                "{capability} is not granted to this binding"
            )));
        }
        if let Some(r) = self.replies.get(capability) {
            if let Some(e) = r.get("$error").and_then(Value::as_str) {
                return Err(CallError::Failed(e.to_string()));
            }
            return Ok(r.clone());
        }
        if acts(capability) {
            return Ok(json!({"dry_run": true, "would": capability, "args": args}));
        }
        Err(CallError::Failed(format!(
            "no recorded reply for {capability}: give one with --replies FILE (a JSON object of capability -> result)"
        )))
    }
}

/// The input document of sdk/README.md for a test run.
pub fn input(
    manifest: &Manifest,
    alert: &Value,
    params: &Map<String, Value>,
) -> Result<Value, String> {
    let params = manifest.check_params(params)?;
    let mut alert = alert.clone();
    if let Some(o) = alert.as_object_mut() {
        o.entry("status").or_insert(json!("firing"));
        o.entry("labels").or_insert(json!({}));
        o.entry("annotations").or_insert(json!({}));
    } else {
        return Err("the alert must be a JSON object (labels, annotations, ...)".into());
    }
    Ok(json!({
        "abi": manifest.abi,
        "runbook": {"name": manifest.name, "version": manifest.version},
        "dry_run": true,
        "params": params,
        "alert": alert,
        "execution": "test",
    }))
}

/// The run as the CLI prints it: each call, log line and the outcome.
pub fn render(manifest: &Manifest, r: &RunReport) -> String {
    let mut out = format!(
        "runbook {} {} (ABI {}), offline: recorded replies, acting calls answered as in a dry run\n",
        manifest.name, manifest.version, manifest.abi
    );
    // Calls and log lines in the order they happened.
    let mut events: Vec<(u32, String)> = Vec::new();
    for c in &r.calls {
        events.push((
            c.seq,
            format!(
                "call {} {} -> {} {} ({:.1} ms)",
                c.capability, c.args, c.status, c.result, c.duration_ms
            ),
        ));
    }
    for l in &r.logs {
        events.push((l.seq, format!("log {}: {}", l.level, l.message)));
    }
    events.sort_by_key(|(t, _)| *t);
    for (_, e) in events {
        out.push_str(&e);
        out.push('\n');
    }
    if r.logs_dropped > 0 {
        out.push_str(&format!(
            "({} log bytes dropped past the limit)\n",
            r.logs_dropped
        ));
    }
    if let Some(o) = &r.output {
        out.push_str(&format!("output: {o}\n"));
    }
    let status = serde_json::to_value(r.status).unwrap_or_default();
    out.push_str(&format!(
        "outcome: {} (exit {}) in {:.1} ms{}\n",
        status.as_str().unwrap_or("?"),
        r.exit_code
            .map(|c| c.to_string())
            .unwrap_or_else(|| "none".into()),
        r.duration_ms,
        r.reason
            .as_ref()
            .map(|x| format!(": {x}"))
            .unwrap_or_default()
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_sits_beside_the_module() {
        assert_eq!(
            manifest_path(Path::new("/x/restart-container.wasm")),
            PathBuf::from("/x/restart-container.runbook.yml")
        );
    }

    #[tokio::test]
    async fn recorded_replies_declared_and_granted_only() {
        let m = Manifest::parse(
            "name: d\nversion: 1.0.0\nabi: 1\ncapabilities: [query.promql, docker.restart, alert.annotate]\n",
        )
        .unwrap();
        let replies: BTreeMap<String, Value> = serde_json::from_value(json!({
            "query.promql": {"resultType": "vector", "result": []},
            "alert.annotate": {"$error": "no such alert"}
        }))
        .unwrap();
        let d = Recorded::new(
            &m,
            &[
                "query.promql".into(),
                "docker.restart".into(),
                "alert.annotate".into(),
            ],
            replies,
        );
        assert_eq!(
            d.call("query.promql", json!({"query": "up"}))
                .await
                .unwrap()["resultType"],
            "vector"
        );
        assert_eq!(
            d.call("docker.restart", json!({"container": "a"}))
                .await
                .unwrap()["dry_run"],
            true
        );
        assert_eq!(
            d.call("alert.annotate", json!({})).await,
            Err(CallError::Failed("no such alert".into()))
        );
        assert!(
            matches!(d.call("docker.stop", json!({})).await, Err(CallError::Denied(m)) if m.contains("not declared"))
        );
        assert!(matches!(
            d.call("nope.x", json!({})).await,
            Err(CallError::BadRequest(_))
        ));
        let only = Recorded::new(&m, &["query.promql".into()], BTreeMap::new());
        assert!(
            matches!(only.call("docker.restart", json!({})).await, Err(CallError::Denied(m)) if m.contains("not granted"))
        );
    }
}
