//! `docker.replicas` (reads) and `docker.scale` (acts): how many replicas a service has and where
//! they answer, and a new count that the call waits to see running. Two kinds of service:
//!
//! - `service`: a Docker Swarm service (replicated mode). `scale` updates the service's spec, as
//!   the Engine gave it (raw JSON: bollard's typed spec drops fields and an update without them
//!   restarts every task), with its version index (a concurrent change fails instead of being
//!   overwritten). Addresses
//!   are the tasks' ports published in host mode, on their node's address.
//! - `group`: for hosts without Swarm, containers declared in the configuration
//!   (`runbooks.docker_groups`: image, command, labels, ports, a health check) and created from
//!   that template (a member counts once it runs and, with a health check, is healthy),
//!   labelled `vigil.group=NAME` and named `NAME-1`, `NAME-2`, ...; each published port gets a port
//!   Docker picks on `publish_host`. Scaling in removes the highest-numbered members first.
//!
//! Both answer `addresses` (`host:port` of the running replicas), which is what `route.set`
//! takes, so a runbook can scale and then repoint a load balancer.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, ContainerSummaryHealthStatusEnum, ContainerSummaryStateEnum, HealthConfig,
    HostConfig, PortBinding, TaskState,
};
use bollard::query_parameters::{
    CreateContainerOptions, InspectServiceOptions, ListContainersOptions, ListTasksOptions,
    RemoveContainerOptions, StartContainerOptions, StopContainerOptions,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Capability, Effect, Target, arg_u64, declared};
use crate::sandbox::CallError;

/// The label that marks the members of a group.
pub const GROUP_LABEL: &str = "vigil.group";
/// Replicas a call may ask for at most (a typo must not start a thousand containers).
const MAX_REPLICAS: u64 = 100;

/// A group of containers created from a template (`runbooks.docker_groups.NAME`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    pub image: String,
    /// The command (the image's when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Labels of every member (plus `vigil.group`); grants can be scoped to them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Container ports (TCP) to publish, each on a port Docker picks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
    #[serde(default = "default_publish_host")]
    pub publish_host: String,
    /// A network to attach the members to (Docker's default bridge when empty).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub network: String,
    /// Time a member gets to stop before it is killed, when scaling in.
    #[serde(default = "default_stop_timeout", with = "crate::policy::dur")]
    pub stop_timeout: Duration,
    /// A health check (run in the container, as Docker's HEALTHCHECK): with it, a member counts
    /// (and its address is answered) only once it is healthy. Without one, once it runs; but a
    /// running process may not listen yet, and Docker's port forwarding accepts connections for
    /// it regardless, so a load balancer sent there early gets errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
}

/// A member's health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Healthcheck {
    /// The command, run in the container without a shell; healthy when it exits with 0.
    pub command: Vec<String>,
    #[serde(default = "default_health_interval", with = "crate::policy::dur")]
    pub interval: Duration,
    #[serde(default = "default_health_interval", with = "crate::policy::dur")]
    pub timeout: Duration,
    #[serde(default = "default_health_retries")]
    pub retries: u32,
}

fn default_health_interval() -> Duration {
    Duration::from_secs(1)
}
fn default_health_retries() -> u32 {
    3
}

fn default_publish_host() -> String {
    "127.0.0.1".into()
}
fn default_stop_timeout() -> Duration {
    Duration::from_secs(10)
}

/// `docker.replicas` and `docker.scale`, for Swarm services and declared groups.
pub struct ScaleCapabilities {
    docker: Docker,
    /// The Engine API endpoint, for the raw calls of a service update.
    host: String,
    groups: BTreeMap<String, GroupConfig>,
}

/// What a call is about.
enum Subject<'a> {
    Service(&'a str),
    Group(&'a str, &'a GroupConfig),
}

fn failed(m: impl Into<String>) -> CallError {
    CallError::Failed(m.into())
}

fn docker_error(what: &str, e: bollard::errors::Error) -> CallError {
    match e {
        bollard::errors::Error::DockerResponseServerError {
            status_code,
            message,
        } => failed(format!("{what}: {message} (HTTP {status_code})")),
        e => failed(format!("{what}: {e}")),
    }
}

/// The current state of a service or group: (desired, running, replicas as JSON, addresses).
struct Replicas {
    desired: u64,
    running: u64,
    /// Replicas still stopping after a scale-in (Swarm tasks told to shut down that still run).
    stopping: u64,
    items: Vec<Value>,
    addresses: Vec<String>,
}

impl ScaleCapabilities {
    pub fn new(
        docker_host: &str,
        groups: BTreeMap<String, GroupConfig>,
    ) -> Result<ScaleCapabilities, String> {
        for (name, g) in &groups {
            if g.image.is_empty() {
                return Err(format!("docker group {name}: image is required"));
            }
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(format!(
                    "docker group {name:?}: a name of letters, digits, - and _ (it names containers)"
                ));
            }
        }
        Ok(ScaleCapabilities {
            docker: super::docker::connect(docker_host, 120)?,
            host: if docker_host.is_empty() {
                "unix:///var/run/docker.sock".to_string()
            } else {
                docker_host.to_string()
            },
            groups,
        })
    }

    fn subject<'a>(&'a self, args: &'a Value) -> Result<Subject<'a>, CallError> {
        let s = |k: &str| {
            args.get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        match (s("service"), s("group")) {
            (Some(svc), None) => Ok(Subject::Service(svc)),
            (None, Some(g)) => {
                declared(&self.groups, "docker group", g).map(|(n, c)| Subject::Group(n, c))
            }
            _ => Err(CallError::BadRequest(
                "name either a Swarm `service` or a declared `group`".into(),
            )),
        }
    }

    async fn service_replicas(&self, name: &str, port: Option<u16>) -> Result<Replicas, CallError> {
        let svc = self
            .docker
            .inspect_service(name, None::<InspectServiceOptions>)
            .await
            .map_err(|e| docker_error(&format!("service {name}"), e))?;
        let desired = svc
            .spec
            .as_ref()
            .and_then(|s| s.mode.as_ref())
            .and_then(|m| m.replicated.as_ref())
            .and_then(|r| r.replicas)
            .ok_or_else(|| failed(format!("service {name} is not in replicated mode")))?
            as u64;
        let filters = HashMap::from([("service".to_string(), vec![name.to_string()])]);
        let tasks = self
            .docker
            .list_tasks(Some(ListTasksOptions {
                filters: Some(filters),
            }))
            .await
            .map_err(|e| docker_error(&format!("tasks of {name}"), e))?;
        let mut node_addr: HashMap<String, String> = HashMap::new();
        let (mut running, mut stopping) = (0, 0);
        let mut items = Vec::new();
        let mut addresses = Vec::new();
        for t in tasks {
            let state = t.status.as_ref().and_then(|s| s.state);
            let wanted = t.desired_state == Some(TaskState::RUNNING);
            let is_running = state == Some(TaskState::RUNNING);
            if is_running && !wanted {
                stopping += 1;
            }
            if !wanted {
                continue;
            }
            let node = t.node_id.clone().unwrap_or_default();
            if !node.is_empty() && !node_addr.contains_key(&node) {
                let addr = self
                    .docker
                    .inspect_node(&node)
                    .await
                    .ok()
                    .and_then(|n| n.status)
                    .and_then(|s| s.addr)
                    .unwrap_or_else(|| "127.0.0.1".into());
                node_addr.insert(node.clone(), addr);
            }
            let host = node_addr.get(&node).cloned().unwrap_or_default();
            let ports: Vec<(i64, i64)> = t
                .status
                .as_ref()
                .and_then(|s| s.port_status.as_ref())
                .and_then(|p| p.ports.clone())
                .unwrap_or_default()
                .into_iter()
                .filter_map(|p| Some((p.target_port?, p.published_port?)))
                .collect();
            let published = ports
                .iter()
                .find(|(target, _)| port.is_none_or(|p| *target == p as i64))
                .map(|(_, published)| format!("{host}:{published}"));
            if is_running {
                running += 1;
                addresses.extend(published.clone());
            }
            items.push(json!({
                "id": t.id,
                "slot": t.slot,
                "state": state.map(|s| s.to_string()),
                "node": node,
                "address": published,
            }));
        }
        items.sort_by_key(|t| t["slot"].as_i64());
        addresses.sort();
        Ok(Replicas {
            desired,
            running,
            stopping,
            items,
            addresses,
        })
    }

    /// The members of a group: (name, index, running, addresses), by index.
    async fn members(
        &self,
        name: &str,
        port: Option<u16>,
    ) -> Result<Vec<(String, u64, bool, Vec<String>)>, CallError> {
        let filters = HashMap::from([("label".to_string(), vec![format!("{GROUP_LABEL}={name}")])]);
        let list = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            }))
            .await
            .map_err(|e| docker_error(&format!("members of group {name}"), e))?;
        let mut out = Vec::new();
        for c in list {
            let cname = c
                .names
                .as_ref()
                .and_then(|n| n.first())
                .map(|n| n.trim_start_matches('/').to_string())
                .unwrap_or_default();
            let index = cname
                .strip_prefix(&format!("{name}-"))
                .and_then(|i| i.parse::<u64>().ok())
                .unwrap_or(u64::MAX);
            // Ready: running, and healthy when it has a health check.
            let healthy = match c.health.as_ref().and_then(|h| h.status) {
                Some(ContainerSummaryHealthStatusEnum::HEALTHY) => true,
                Some(ContainerSummaryHealthStatusEnum::STARTING)
                | Some(ContainerSummaryHealthStatusEnum::UNHEALTHY) => false,
                // Engines before API 1.46 do not list the health: their status says it.
                _ => {
                    let st = c.status.as_deref().unwrap_or_default();
                    !(st.contains("(health: starting)") || st.contains("(unhealthy)"))
                }
            };
            let running = c.state == Some(ContainerSummaryStateEnum::RUNNING) && healthy;
            let mut addrs: Vec<String> = c
                .ports
                .unwrap_or_default()
                .into_iter()
                .filter(|p| port.is_none_or(|want| p.private_port == want))
                .filter_map(|p| {
                    let ip = p.ip.filter(|ip| ip != "0.0.0.0" && ip != "::")?;
                    Some(format!("{ip}:{}", p.public_port?))
                })
                .collect();
            addrs.sort();
            addrs.dedup();
            out.push((cname, index, running, addrs));
        }
        out.sort_by_key(|m| (m.1, m.0.clone()));
        Ok(out)
    }

    async fn group_replicas(&self, name: &str, port: Option<u16>) -> Result<Replicas, CallError> {
        let members = self.members(name, port).await?;
        let mut addresses: Vec<String> = members
            .iter()
            .filter(|m| m.2)
            .filter_map(|m| m.3.first().cloned())
            .collect();
        addresses.sort();
        Ok(Replicas {
            desired: members.len() as u64,
            running: members.iter().filter(|m| m.2).count() as u64,
            stopping: 0,
            items: members
                .iter()
                .map(|(n, _, r, a)| json!({"name": n, "running": r, "address": a.first()}))
                .collect(),
            addresses,
        })
    }

    async fn replicas(&self, s: &Subject<'_>, port: Option<u16>) -> Result<Replicas, CallError> {
        match s {
            Subject::Service(n) => self.service_replicas(n, port).await,
            Subject::Group(n, _) => self.group_replicas(n, port).await,
        }
    }

    /// One raw Engine API call: (status, JSON body).
    async fn engine(
        &self,
        method: hyper::Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Value), CallError> {
        use http_body_util::{BodyExt, Full};
        let body = Full::new(bytes::Bytes::from(body.unwrap_or_default()));
        let exec = hyper_util::rt::TokioExecutor::new();
        let req = |uri: hyper::Uri| {
            hyper::Request::builder()
                .method(method.clone())
                .uri(uri)
                .header("Content-Type", "application/json")
                .body(body.clone())
                .map_err(|e| failed(format!("Docker request: {e}")))
        };
        let resp = if let Some(socket) = self.host.strip_prefix("unix://") {
            let client = hyper_util::client::legacy::Client::builder(exec)
                .build::<_, Full<bytes::Bytes>>(hyperlocal::UnixConnector);
            client
                .request(req(hyperlocal::Uri::new(socket, path).into())?)
                .await
        } else {
            let base = self
                .host
                .replacen("tcp://", "http://", 1)
                .trim_end_matches('/')
                .to_string();
            let uri: hyper::Uri = format!("{base}{path}")
                .parse()
                .map_err(|e| failed(format!("Docker host {base}: {e}")))?;
            let client = hyper_util::client::legacy::Client::builder(exec)
                .build::<_, Full<bytes::Bytes>>(
                    hyper_util::client::legacy::connect::HttpConnector::new(),
                );
            client.request(req(uri)?).await
        }
        .map_err(|e| failed(format!("Docker Engine at {}: {e}", self.host)))?;
        let status = resp.status().as_u16();
        let bytes = tokio::time::timeout(Duration::from_secs(60), resp.into_body().collect())
            .await
            .map_err(|_| failed("Docker Engine: no answer within 60s"))?
            .map_err(|e| failed(format!("Docker Engine: {e}")))?
            .to_bytes();
        let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok((status, v))
    }

    /// Sets a service's replicas with the spec the Engine gave (only `Mode.Replicated.Replicas`
    /// changes), at the version it was read at: a concurrent change fails instead of being undone.
    async fn scale_service(&self, name: &str, replicas: u64) -> Result<(), CallError> {
        let path = format!("/services/{}", url_path(name));
        let (status, svc) = self.engine(hyper::Method::GET, &path, None).await?;
        if status != 200 {
            return Err(failed(format!(
                "service {name}: {} (HTTP {status})",
                svc["message"].as_str().unwrap_or("not found")
            )));
        }
        let version = svc["Version"]["Index"]
            .as_u64()
            .ok_or_else(|| failed(format!("service {name} has no version index")))?;
        let mut spec = svc["Spec"].clone();
        if !spec["Mode"]["Replicated"].is_object() {
            return Err(failed(format!("service {name} is not in replicated mode")));
        }
        spec["Mode"]["Replicated"]["Replicas"] = json!(replicas);
        let body = serde_json::to_vec(&spec).map_err(|e| failed(e.to_string()))?;
        let (status, r) = self
            .engine(
                hyper::Method::POST,
                &format!("{path}/update?version={version}"),
                Some(body),
            )
            .await?;
        if status != 200 {
            return Err(failed(format!(
                "update of service {name}: {} (HTTP {status})",
                r["message"].as_str().unwrap_or("refused")
            )));
        }
        Ok(())
    }

    async fn scale_group(
        &self,
        name: &str,
        g: &GroupConfig,
        replicas: u64,
    ) -> Result<(), CallError> {
        let members = self.members(name, None).await?;
        // Members beyond the count go, highest-numbered first.
        for (cname, _, _, _) in members.iter().skip(replicas as usize).rev() {
            let _ = self
                .docker
                .stop_container(
                    cname,
                    Some(StopContainerOptions {
                        t: Some(g.stop_timeout.as_secs() as i32),
                        signal: None,
                    }),
                )
                .await;
            self.docker
                .remove_container(
                    cname,
                    Some(RemoveContainerOptions {
                        force: true,
                        ..Default::default()
                    }),
                )
                .await
                .map_err(|e| docker_error(&format!("removal of {cname}"), e))?;
        }
        // Members that stay are started if they stopped.
        for (cname, _, running, _) in members.iter().take(replicas as usize) {
            if !running {
                self.docker
                    .start_container(cname, None::<StartContainerOptions>)
                    .await
                    .map_err(|e| docker_error(&format!("start of {cname}"), e))?;
            }
        }
        // New members take the lowest free numbers.
        let used: Vec<u64> = members.iter().map(|m| m.1).collect();
        let mut next = (1..).filter(|i| !used.contains(i));
        for _ in members.len() as u64..replicas {
            let cname = format!("{name}-{}", next.next().unwrap_or(u64::MAX));
            let mut labels: HashMap<String, String> = g
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            labels.insert(GROUP_LABEL.into(), name.to_string());
            let bindings = g
                .ports
                .iter()
                .map(|p| {
                    (
                        format!("{p}/tcp"),
                        Some(vec![PortBinding {
                            host_ip: Some(g.publish_host.clone()),
                            host_port: Some(String::new()),
                        }]),
                    )
                })
                .collect();
            let ns = |d: Duration| d.as_nanos() as i64;
            let healthcheck = g.healthcheck.as_ref().map(|h| HealthConfig {
                test: Some(
                    std::iter::once("CMD".to_string())
                        .chain(h.command.iter().cloned())
                        .collect(),
                ),
                interval: Some(ns(h.interval)),
                timeout: Some(ns(h.timeout)),
                retries: Some(h.retries as i64),
                start_period: Some(ns(Duration::from_secs(30))),
                ..Default::default()
            });
            let body = ContainerCreateBody {
                image: Some(g.image.clone()),
                healthcheck,
                cmd: (!g.command.is_empty()).then(|| g.command.clone()),
                env: Some(g.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
                labels: Some(labels),
                exposed_ports: Some(g.ports.iter().map(|p| format!("{p}/tcp")).collect()),
                host_config: Some(HostConfig {
                    port_bindings: Some(bindings),
                    network_mode: (!g.network.is_empty()).then(|| g.network.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            };
            self.docker
                .create_container(
                    Some(CreateContainerOptions {
                        name: Some(cname.clone()),
                        ..Default::default()
                    }),
                    body,
                )
                .await
                .map_err(|e| docker_error(&format!("creation of {cname}"), e))?;
            self.docker
                .start_container(&cname, None::<StartContainerOptions>)
                .await
                .map_err(|e| docker_error(&format!("start of {cname}"), e))?;
        }
        Ok(())
    }
}

/// A service name or id as one path segment.
fn url_path(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

fn replicas_json(kind: &str, name: &str, r: &Replicas) -> Value {
    json!({
        kind: name,
        "desired": r.desired,
        "running": r.running,
        "stopping": r.stopping,
        "replicas": r.items,
        "addresses": r.addresses,
    })
}

#[async_trait::async_trait]
impl Capability for ScaleCapabilities {
    fn names(&self) -> &'static [(&'static str, Effect)] {
        &[
            ("docker.replicas", Effect::Reads),
            ("docker.scale", Effect::Acts),
        ]
    }

    async fn target(&self, _name: &str, args: &Value) -> Result<Option<Target>, CallError> {
        Ok(Some(match self.subject(args)? {
            Subject::Service(name) => {
                let svc = self
                    .docker
                    .inspect_service(name, None::<InspectServiceOptions>)
                    .await
                    .map_err(|e| docker_error(&format!("service {name}"), e))?;
                let name = svc
                    .spec
                    .as_ref()
                    .and_then(|s| s.name.clone())
                    .unwrap_or_else(|| name.to_string());
                let mut labels: BTreeMap<String, String> = svc
                    .spec
                    .and_then(|s| s.labels)
                    .unwrap_or_default()
                    .into_iter()
                    .collect();
                labels.insert("name".into(), name.clone());
                Target {
                    kind: "service",
                    id: name,
                    labels,
                }
            }
            Subject::Group(name, g) => {
                let mut labels = g.labels.clone();
                labels.insert("name".into(), name.to_string());
                Target {
                    kind: "group",
                    id: name.to_string(),
                    labels,
                }
            }
        }))
    }

    fn timeout(&self, name: &str, args: &Value) -> Option<Duration> {
        (name == "docker.scale").then(|| {
            let t = args
                .get("timeout_seconds")
                .and_then(Value::as_u64)
                .unwrap_or(60);
            Duration::from_secs(t.min(600) + 30)
        })
    }

    async fn call(
        &self,
        name: &str,
        args: &Value,
        _target: Option<&Target>,
    ) -> Result<Value, CallError> {
        let subject = self.subject(args)?;
        let (kind, sname) = match &subject {
            Subject::Service(n) => ("service", *n),
            Subject::Group(n, _) => ("group", *n),
        };
        let port = match args.get("port") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .filter(|p| (1..=65535).contains(p))
                    .ok_or_else(|| CallError::BadRequest("port must be a port number".into()))?
                    as u16,
            ),
        };
        if name == "docker.replicas" {
            let r = self.replicas(&subject, port).await?;
            return Ok(replicas_json(kind, sname, &r));
        }
        let want = match args.get("replicas").and_then(Value::as_u64) {
            Some(n) if n <= MAX_REPLICAS => n,
            Some(n) => {
                return Err(CallError::BadRequest(format!(
                    "{n} replicas is more than {MAX_REPLICAS}"
                )));
            }
            None => {
                return Err(CallError::BadRequest(
                    "docker.scale needs `replicas`, a non-negative integer".into(),
                ));
            }
        };
        let timeout = Duration::from_secs(arg_u64(args, "timeout_seconds", 60)?.min(600));
        let before = self.replicas(&subject, port).await?;
        let t0 = Instant::now();
        match &subject {
            Subject::Service(n) => {
                if before.desired != want {
                    self.scale_service(n, want).await?;
                }
            }
            Subject::Group(n, g) => self.scale_group(n, g, want).await?,
        }
        // Wait until the count runs (and, for a service, the removed tasks have stopped).
        let deadline = t0 + timeout;
        loop {
            let now = self.replicas(&subject, port).await?;
            let addressed = port.is_none() || now.addresses.len() as u64 == want;
            if now.running == want && now.stopping == 0 && now.desired == want && addressed {
                let mut out = replicas_json(kind, sname, &now);
                out["previous"] = json!(before.desired);
                out["previous_addresses"] = json!(before.addresses);
                out["waited_ms"] = json!(t0.elapsed().as_millis() as u64);
                return Ok(out);
            }
            if Instant::now() >= deadline {
                return Err(failed(format!(
                    "{kind} {sname}: {} of {want} replicas running ({} stopping) after {}",
                    now.running,
                    now.stopping,
                    humantime::format_duration(timeout)
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn calls_name_a_service_or_a_declared_group() {
        let groups: BTreeMap<String, GroupConfig> =
            serde_yaml_ng::from_str("web: {image: busybox, ports: [8080], labels: {app: web}}\n")
                .unwrap();
        assert_eq!(groups["web"].publish_host, "127.0.0.1");
        let c = ScaleCapabilities::new("", groups).unwrap();
        let t = c
            .target("docker.scale", &json!({"group": "web"}))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(t.key(), "group:web");
        assert_eq!(t.labels["app"], "web");
        for (args, want) in [
            (json!({}), "either a Swarm `service` or a declared `group`"),
            (json!({"service": "a", "group": "web"}), "either"),
            (
                json!({"group": "db"}),
                "no docker group \"db\" is declared (declared: web)",
            ),
            (json!({"group": "web"}), "needs `replicas`"),
            (json!({"group": "web", "replicas": 1000}), "more than 100"),
            (
                json!({"group": "web", "replicas": 1, "port": 0}),
                "port must be",
            ),
        ] {
            let e = c.call("docker.scale", &args, None).await.unwrap_err();
            assert!(e.to_string().contains(want), "{args}: {e}");
        }
        assert!(
            ScaleCapabilities::new("", serde_yaml_ng::from_str("'a b': {image: x}\n").unwrap())
                .is_err()
        );
        assert!(
            serde_yaml_ng::from_str::<BTreeMap<String, GroupConfig>>("w: {image: x, port: [1]}\n")
                .is_err()
        );
    }
}
