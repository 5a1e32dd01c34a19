//! `docker.*` through the Docker Engine API (bollard): `docker.inspect` and `docker.logs` read,
//! `docker.restart`, `docker.stop` and `docker.start` act. Every call names its container with the
//! `container` argument (a name or an id); the target's labels are the container's own Docker labels
//! plus `name` and `image`, so a grant can be scoped to `{labels: {app: web}}`.

use std::collections::BTreeMap;

use bollard::Docker;
use bollard::query_parameters::{
    InspectContainerOptions, LogsOptions, RestartContainerOptions, StartContainerOptions,
    StopContainerOptions,
};
use futures::StreamExt;
use serde_json::{Value, json};

use super::{Capability, Effect, Target, arg_str, arg_u64};
use crate::sandbox::CallError;

const DEFAULT_SOCKET: &str = "unix:///var/run/docker.sock";
/// Lines `docker.logs` returns at most.
const MAX_TAIL: u64 = 1000;

/// The `docker.*` capabilities, on one Engine API connection.
pub struct DockerCapabilities {
    docker: Docker,
}

impl DockerCapabilities {
    /// Connects (lazily: nothing is sent until the first call) to `host`, a `unix://` socket or an
    /// `http://` address; empty means the local socket.
    pub fn connect(host: &str, timeout_secs: u64) -> Result<DockerCapabilities, String> {
        connect(host, timeout_secs).map(|docker| DockerCapabilities { docker })
    }
}

/// A lazy Engine API client for `host` (`unix://` or `http://`; empty: the local socket).
pub(crate) fn connect(host: &str, timeout_secs: u64) -> Result<Docker, String> {
    let host = if host.is_empty() {
        DEFAULT_SOCKET
    } else {
        host
    };
    let r = if host.starts_with("unix://") {
        Docker::connect_with_unix(host, timeout_secs, bollard::API_DEFAULT_VERSION)
    } else {
        Docker::connect_with_http(host, timeout_secs, bollard::API_DEFAULT_VERSION)
    };
    r.map_err(|e| format!("{host}: {e}"))
}

fn failed(container: &str, e: bollard::errors::Error) -> CallError {
    match e {
        bollard::errors::Error::DockerResponseServerError {
            status_code,
            message,
        } => CallError::Failed(format!(
            "container {container}: {message} (HTTP {status_code})"
        )),
        e => CallError::Failed(format!("container {container}: {e}")),
    }
}

#[async_trait::async_trait]
impl Capability for DockerCapabilities {
    fn names(&self) -> &'static [(&'static str, Effect)] {
        &[
            ("docker.inspect", Effect::Reads),
            ("docker.logs", Effect::Reads),
            ("docker.restart", Effect::Acts),
            ("docker.start", Effect::Acts),
            ("docker.stop", Effect::Acts),
        ]
    }

    async fn target(&self, _name: &str, args: &Value) -> Result<Option<Target>, CallError> {
        let container = arg_str(args, "container")?;
        let c = self
            .docker
            .inspect_container(container, None::<InspectContainerOptions>)
            .await
            .map_err(|e| failed(container, e))?;
        let name = c
            .name
            .as_deref()
            .unwrap_or(container)
            .trim_start_matches('/')
            .to_string();
        let mut labels: BTreeMap<String, String> = c
            .config
            .as_ref()
            .and_then(|cfg| cfg.labels.clone())
            .unwrap_or_default()
            .into_iter()
            .collect();
        labels.insert("name".into(), name.clone());
        if let Some(image) = c.config.as_ref().and_then(|cfg| cfg.image.clone()) {
            labels.insert("image".into(), image);
        }
        Ok(Some(Target {
            kind: "container",
            id: name,
            labels,
        }))
    }

    async fn call(
        &self,
        name: &str,
        args: &Value,
        target: Option<&Target>,
    ) -> Result<Value, CallError> {
        // Act on the name the target resolved to, so the scope checked is the container acted on.
        let container = match target {
            Some(t) => t.id.as_str(),
            None => arg_str(args, "container")?,
        };
        let timeout = arg_u64(args, "timeout_seconds", 10)?.min(300) as i32;
        match name {
            "docker.inspect" => {
                let c = self
                    .docker
                    .inspect_container(container, None::<InspectContainerOptions>)
                    .await
                    .map_err(|e| failed(container, e))?;
                let state = c.state.unwrap_or_default();
                Ok(json!({
                    "name": container,
                    "id": c.id,
                    "image": c.config.as_ref().and_then(|cfg| cfg.image.clone()),
                    "labels": target.map(|t| &t.labels),
                    "running": state.running.unwrap_or(false),
                    "status": state.status.map(|s| s.to_string()),
                    "exit_code": state.exit_code,
                    "oom_killed": state.oom_killed,
                    "started_at": state.started_at,
                    "finished_at": state.finished_at,
                    "restart_count": c.restart_count,
                    "health": state.health.and_then(|h| h.status).map(|s| s.to_string()),
                }))
            }
            "docker.logs" => {
                let tail = arg_u64(args, "tail", 50)?.min(MAX_TAIL);
                let opts = LogsOptions {
                    stdout: true,
                    stderr: true,
                    tail: tail.to_string(),
                    ..Default::default()
                };
                let mut stream = self.docker.logs(container, Some(opts));
                let mut lines = Vec::new();
                while let Some(item) = stream.next().await {
                    let out = item.map_err(|e| failed(container, e))?;
                    for l in out.to_string().lines() {
                        lines.push(l.to_string());
                    }
                }
                let skip = lines.len().saturating_sub(tail as usize);
                Ok(json!({"name": container, "lines": lines[skip..]}))
            }
            "docker.restart" => {
                let opts = RestartContainerOptions {
                    t: Some(timeout),
                    signal: None,
                };
                self.docker
                    .restart_container(container, Some(opts))
                    .await
                    .map_err(|e| failed(container, e))?;
                Ok(json!({"name": container, "restarted": true}))
            }
            "docker.stop" => {
                let opts = StopContainerOptions {
                    t: Some(timeout),
                    signal: None,
                };
                self.docker
                    .stop_container(container, Some(opts))
                    .await
                    .map_err(|e| failed(container, e))?;
                Ok(json!({"name": container, "stopped": true}))
            }
            "docker.start" => {
                self.docker
                    .start_container(container, None::<StartContainerOptions>)
                    .await
                    .map_err(|e| failed(container, e))?;
                Ok(json!({"name": container, "started": true}))
            }
            other => Err(CallError::BadRequest(format!(
                "{other} is not a docker capability"
            ))),
        }
    }
}
