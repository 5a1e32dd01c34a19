//! The `runbooks:` section of vigil.yml, and the engine it builds.
//!
//! ```yaml
//! runbooks:
//!   dir: runbooks/            # NAME.wasm + NAME.runbook.yml, relative to vigil.yml
//!   docker_host: ''           # default: the local socket
//!   docker_groups:            # containers docker.scale may create and remove, by group
//!     web: {image: web:1, ports: [8080], labels: {app: web}}
//!   processes:                # what process.restart may run, by name
//!     nginx: {command: [systemctl, restart, nginx], timeout: 30s}
//!   postgres:                 # clusters postgres.* may act on, by name
//!     main:
//!       login: {user: postgres, password_file: /etc/vigil/pg.pass}
//!       endpoint: 127.0.0.1:5000          # what clients use (HAProxy, pgbouncer)
//!       nodes:
//!         pg1: {address: 10.0.0.1:5432, fence: {command: [/usr/local/bin/fence, pg1]}}
//!         pg2: {address: 10.0.0.2:5432}
//!   routes:                   # what route.* may repoint, by name
//!     pg-writer: {kind: haproxy, socket: /run/haproxy/admin.sock, backend: pg}
//!   policy: {cooldown: 5m, max_attempts: 3, max_concurrent: 4,
//!            blast_radius: {max_actions: 10, window: 10m}}
//!   deadline: 60s             # one run, host calls included
//!   memory_limit_mib: 32
//!   admins: [alice]           # who may approve and run, when the web config has users
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use vigil_query::eval::EvalOptions;
use vigil_storage::MetricsReader;

use crate::capability::Registry;
use crate::capability::docker::DockerCapabilities;
use crate::capability::http::HttpCapability;
use crate::capability::postgres::{ClusterConfig, PostgresCapabilities};
use crate::capability::process::{ProcessCapabilities, ProcessCommand};
use crate::capability::query::QueryCapabilities;
use crate::capability::route::{RouteCapabilities, RouteConfig};
use crate::capability::scale::{GroupConfig, ScaleCapabilities};
use crate::engine::{AlertsSeries, Engine, load_runbooks};
use crate::execution::ExecutionStore;
use crate::policy::{Policy, PolicyConfig};
use crate::receiver::RouterEscalator;
use crate::sandbox::{Sandbox, SandboxConfig};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunbooksSection {
    pub dir: String,
    #[serde(default)]
    pub docker_host: String,
    /// Groups of containers `docker.scale` creates from a template, for hosts without Swarm.
    #[serde(default)]
    pub docker_groups: BTreeMap<String, GroupConfig>,
    #[serde(default)]
    pub processes: BTreeMap<String, ProcessCommand>,
    /// The PostgreSQL clusters `postgres.*` may act on, by name.
    #[serde(default)]
    pub postgres: BTreeMap<String, ClusterConfig>,
    /// What `route.*` may repoint, by name.
    #[serde(default)]
    pub routes: BTreeMap<String, RouteConfig>,
    #[serde(default)]
    pub policy: PolicyConfig,
    #[serde(default = "default_deadline", with = "crate::policy::dur")]
    pub deadline: Duration,
    #[serde(default = "default_memory")]
    pub memory_limit_mib: usize,
    /// How often verification looks at the alert.
    #[serde(default = "default_verify_every", with = "crate::policy::dur")]
    pub verify_every: Duration,
    /// Users of the web configuration's `basic_auth_users` who may approve, deny and start runs
    /// through the API. While the web configuration defines users, no one else may; without users
    /// (no authentication) the API is open, as Alertmanager's is.
    #[serde(default)]
    pub admins: Vec<String>,
}

fn default_deadline() -> Duration {
    Duration::from_secs(60)
}
fn default_memory() -> usize {
    32
}
fn default_verify_every() -> Duration {
    Duration::from_secs(1)
}

/// The engine and the escalator the router is handed to once it exists.
pub struct Built {
    pub engine: Arc<Engine>,
    pub escalator: Arc<RouterEscalator>,
}

impl RunbooksSection {
    /// Loads the runbooks (each checked as `vigil runbook validate` does) and builds the engine
    /// with every capability registered. `base_dir`: where a relative `dir` starts; `data_dir`:
    /// where executions are recorded (None: memory only, for `vigil check config`).
    pub fn build<R: MetricsReader>(
        &self,
        base_dir: &Path,
        data_dir: Option<&Path>,
        reader: Arc<R>,
        eval: EvalOptions,
        logs: Option<Arc<dyn vigil_storage::logs::LogsReader>>,
    ) -> Result<Built, String> {
        if self.memory_limit_mib == 0 || self.memory_limit_mib > 4096 {
            return Err("runbooks.memory_limit_mib must be between 1 and 4096".into());
        }
        let sandbox = Arc::new(
            Sandbox::new(SandboxConfig {
                deadline: self.deadline,
                memory_limit: self.memory_limit_mib << 20,
                ..SandboxConfig::default()
            })
            .map_err(|e| format!("runbook sandbox: {e:#}"))?,
        );
        let dir = base_dir.join(&self.dir);
        let runbooks = load_runbooks(&sandbox, &dir).map_err(|e| format!("runbooks.dir: {e}"))?;
        let mut registry = Registry::new();
        registry.register(Arc::new(
            DockerCapabilities::connect(&self.docker_host, 60)
                .map_err(|e| format!("runbooks.docker_host: {e}"))?,
        ));
        registry.register(Arc::new(
            ScaleCapabilities::new(&self.docker_host, self.docker_groups.clone())
                .map_err(|e| format!("runbooks.docker_groups: {e}"))?,
        ));
        registry.register(Arc::new(
            ProcessCapabilities::new(self.processes.clone())
                .map_err(|e| format!("runbooks.processes: {e}"))?,
        ));
        registry.register(Arc::new(
            PostgresCapabilities::new(self.postgres.clone(), base_dir)
                .map_err(|e| format!("runbooks.postgres: {e}"))?,
        ));
        registry.register(Arc::new(
            RouteCapabilities::new(self.routes.clone(), base_dir)
                .map_err(|e| format!("runbooks.routes: {e}"))?,
        ));
        registry.register(Arc::new(HttpCapability::new(
            vigil_http::HttpClient::plain(&Default::default()).map_err(|e| e.to_string())?,
        )));
        registry.register(Arc::new(QueryCapabilities::new(
            reader.clone(),
            eval.clone(),
        )));
        if let Some(logs) = logs {
            registry.register(Arc::new(crate::capability::logs::LogQueryCapability::new(
                logs,
                vigil_query::logql::eval::LogqlLimits {
                    eval: eval.clone(),
                    ..Default::default()
                },
            )));
        }
        let store = Arc::new(
            ExecutionStore::open(data_dir, 10_000)
                .map_err(|e| format!("runbook executions: {e}"))?,
        );
        let escalator = Arc::new(RouterEscalator::default());
        let engine = Arc::new(Engine {
            sandbox,
            registry,
            policy: Policy::new(self.policy.clone()),
            runbooks,
            store,
            alerts: Arc::new(AlertsSeries::new(reader, eval)),
            escalator: Some(escalator.clone()),
            verify_every: self.verify_every,
            metrics: Default::default(),
            pending: Default::default(),
            admins: parking_lot::RwLock::new(self.admins.clone()),
        });
        Ok(Built { engine, escalator })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `runbooks:` example of docs/configuration.md parses, and every capability family takes
    /// its declarations.
    #[test]
    fn the_documented_example_is_a_valid_section() {
        let doc = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md"),
        )
        .unwrap();
        let start = doc
            .find("```yaml\nrunbooks:\n")
            .expect("the runbooks example in docs/configuration.md")
            + "```yaml\n".len();
        let block = &doc[start..start + doc[start..].find("```").unwrap()];
        #[derive(Deserialize)]
        struct Doc {
            runbooks: RunbooksSection,
        }
        let mut s = serde_yaml_ng::from_str::<Doc>(block)
            .unwrap_or_else(|e| panic!("{e}\n{block}"))
            .runbooks;
        assert!(s.postgres["main"].login.tls_config.is_some());
        // The example's CA file does not exist here; the rest must load.
        for c in s.postgres.values_mut() {
            c.login.tls_config = None;
        }
        assert_eq!(s.postgres["main"].nodes.len(), 2);
        assert_eq!(s.postgres["main"].fence_valid_for, Duration::from_secs(600));
        assert_eq!(s.routes.len(), 3);
        assert_eq!(s.docker_groups["web"].ports, [8080]);
        PostgresCapabilities::new(s.postgres.clone(), Path::new("/etc/vigil")).unwrap();
        RouteCapabilities::new(s.routes.clone(), Path::new("/etc/vigil")).unwrap();
        ScaleCapabilities::new(&s.docker_host, s.docker_groups.clone()).unwrap();
        ProcessCapabilities::new(s.processes.clone()).unwrap();
    }
}
