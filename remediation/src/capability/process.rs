//! `process.restart`: runs a command the operator declared in the configuration, by its name. The
//! runbook only names it (`{"name": "nginx"}`); the command line, its environment and its timeout
//! come from the configuration, never from the runbook.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use super::{Capability, Effect, Target, arg_str, declared};
use crate::sandbox::CallError;

/// Output kept of each stream, from its end.
const TAIL: usize = 4096;

/// One declared command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessCommand {
    /// The program and its arguments (no shell).
    pub command: Vec<String>,
    /// Longest the command may run before it is killed.
    #[serde(default = "default_timeout", with = "crate::policy::dur")]
    pub timeout: Duration,
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

/// The declared commands, by name.
pub struct ProcessCapabilities {
    commands: BTreeMap<String, ProcessCommand>,
}

impl ProcessCapabilities {
    /// Checks the declarations: every command has a program.
    pub fn new(commands: BTreeMap<String, ProcessCommand>) -> Result<ProcessCapabilities, String> {
        for (name, c) in &commands {
            if c.command.first().is_none_or(|p| p.is_empty()) {
                return Err(format!(
                    "process command {name}: `command` needs at least the program"
                ));
            }
        }
        Ok(ProcessCapabilities { commands })
    }
}

fn tail(bytes: &[u8]) -> String {
    let start = bytes.len().saturating_sub(TAIL);
    String::from_utf8_lossy(&bytes[start..])
        .trim_end()
        .to_string()
}

#[async_trait::async_trait]
impl Capability for ProcessCapabilities {
    fn names(&self) -> &'static [(&'static str, Effect)] {
        &[("process.restart", Effect::Acts)]
    }

    async fn target(&self, _name: &str, args: &Value) -> Result<Option<Target>, CallError> {
        let name = arg_str(args, "name")?;
        declared(&self.commands, "process command", name)?;
        Ok(Some(Target {
            kind: "process",
            id: name.to_string(),
            labels: BTreeMap::from([("name".to_string(), name.to_string())]),
        }))
    }

    fn timeout(&self, _name: &str, args: &Value) -> Option<Duration> {
        let name = args.get("name")?.as_str()?;
        self.commands
            .get(name)
            .map(|c| c.timeout + Duration::from_secs(2))
    }

    async fn call(
        &self,
        _name: &str,
        args: &Value,
        _target: Option<&Target>,
    ) -> Result<Value, CallError> {
        let name = arg_str(args, "name")?;
        let Some(c) = self.commands.get(name) else {
            return Err(CallError::BadRequest(format!(
                "no process command {name:?} is declared"
            )));
        };
        run(name, c, &[]).await
    }
}

/// Runs a declared command (no shell, stdin closed, killed at its timeout) with `env` added to
/// Vigil's environment; answers its exit code, the tails of its output and its duration, or
/// `Failed` with stderr's tail when it did not exit with 0.
pub(crate) async fn run(
    name: &str,
    c: &ProcessCommand,
    env: &[(&str, &str)],
) -> Result<Value, CallError> {
    let Some(program) = c.command.first() else {
        return Err(CallError::Failed(format!("{name}: the command is empty")));
    };
    let t0 = std::time::Instant::now();
    let mut child = tokio::process::Command::new(program)
        .args(&c.command[1..])
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| CallError::Failed(format!("{name}: cannot start {program}: {e}")))?;
    let (mut out, mut err) = (child.stdout.take(), child.stderr.take());
    // Both at once: a child that fills one pipe while the other is read would wait for ever.
    let read = async {
        let (mut o, mut e) = (Vec::new(), Vec::new());
        tokio::join!(
            async {
                if let Some(s) = out.as_mut() {
                    let _ = s.read_to_end(&mut o).await;
                }
            },
            async {
                if let Some(s) = err.as_mut() {
                    let _ = s.read_to_end(&mut e).await;
                }
            }
        );
        (o, e)
    };
    let waited = tokio::time::timeout(c.timeout, async {
        let (o, e) = read.await;
        (child.wait().await, o, e)
    })
    .await;
    let Ok((status, stdout, stderr)) = waited else {
        // kill_on_drop ends it.
        return Err(CallError::Failed(format!(
            "{name}: still running after {}; killed",
            humantime::format_duration(c.timeout)
        )));
    };
    let status = status.map_err(|e| CallError::Failed(format!("{name}: {e}")))?;
    let code = status.code();
    let result = json!({
        "name": name,
        "exit_code": code,
        "stdout": tail(&stdout),
        "stderr": tail(&stderr),
        "duration_ms": t0.elapsed().as_millis() as u64,
    });
    if status.success() {
        Ok(result)
    } else {
        Err(CallError::Failed(format!(
            "{name} exited with {}: {}",
            code.map(|c| c.to_string())
                .unwrap_or_else(|| "a signal".into()),
            tail(&stderr)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(yaml: &str) -> ProcessCapabilities {
        ProcessCapabilities::new(serde_yaml_ng::from_str(yaml).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn runs_only_declared_commands_and_reports_how_they_ended() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("restarted");
        let p = caps(&format!(
            "web: {{command: [sh, -c, 'echo restarting; touch {}']}}\nbroken: {{command: [sh, -c, 'echo no config >&2; exit 3']}}\nslow: {{command: [sleep, '10'], timeout: 200ms}}\n",
            marker.display()
        ));
        let args = json!({"name": "web"});
        let t = p.target("process.restart", &args).await.unwrap().unwrap();
        assert_eq!(t.key(), "process:web");
        let r = p.call("process.restart", &args, Some(&t)).await.unwrap();
        assert_eq!(r["exit_code"], 0);
        assert_eq!(r["stdout"], "restarting");
        assert!(marker.exists(), "the declared command did not run");
        let e = p
            .call("process.restart", &json!({"name": "broken"}), None)
            .await
            .unwrap_err();
        assert_eq!(
            e,
            CallError::Failed("broken exited with 3: no config".into())
        );
        let e = p
            .call("process.restart", &json!({"name": "slow"}), None)
            .await
            .unwrap_err();
        assert_eq!(
            e,
            CallError::Failed("slow: still running after 200ms; killed".into())
        );
        let e = p
            .target("process.restart", &json!({"name": "rm -rf /"}))
            .await
            .unwrap_err();
        assert!(
            matches!(e, CallError::BadRequest(ref m) if m.contains("declared: broken, slow, web")),
            "{e:?}"
        );
        assert!(
            ProcessCapabilities::new(serde_yaml_ng::from_str("x: {command: []}\n").unwrap())
                .is_err()
        );
        assert!(
            serde_yaml_ng::from_str::<BTreeMap<String, ProcessCommand>>(
                "x: {command: [a], shell: true}\n"
            )
            .is_err()
        );
    }
}
