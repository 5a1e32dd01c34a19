//! `route.get` and `route.set`: repoint clients through the indirection they already use. Routes are
//! declared in the configuration by name (`runbooks.routes`); a runbook names one and gives the new
//! targets (`host:port`), never a path, a socket or a command. Three kinds:
//!
//! - `haproxy`: a backend's servers, over HAProxy's runtime API (the admin-level stats socket,
//!   Unix or TCP). `set` puts every server that is not a target in maintenance and shuts its
//!   sessions down first (clients of a demoted node must not keep writing to it), then gives free
//!   server slots the new addresses (`set server B/S addr`) and makes the targets `ready`; the
//!   backend's state is read back and compared. Slots come from the configuration (`server` lines or
//!   a `server-template`); runtime changes do not survive a restart of HAProxy unless its
//!   `server-state-file` keeps them.
//! - `pgbouncer`: one database entry of pgbouncer.ini. `set` rewrites its `host` and `port`
//!   (atomically, keeping the file's owner and mode), then `RELOAD`s pgbouncer over its admin console
//!   and reads `SHOW DATABASES` back; a reload that fails puts the old file back.
//! - `file_sd`: a Prometheus file_sd JSON file (`[{"targets": [...], "labels": {...}}]`) that readers
//!   of file_sd pick up when it changes, replaced atomically (temporary file, fsync, rename,
//!   directory fsync) so a reader never sees half a file.

mod file_sd;
mod haproxy;
mod pgbouncer;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::pg::PgLogin;
use super::{Capability, Effect, Target, arg_str, declared};
use crate::sandbox::CallError;

/// One declared route; `kind` says which.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "snake_case")]
pub enum RouteConfig {
    /// A file_sd JSON file (relative paths start at vigil.yml's directory).
    FileSd { path: PathBuf },
    /// A backend of HAProxy, through its runtime API.
    Haproxy(HaproxyRoute),
    /// A database of pgbouncer.
    Pgbouncer(Box<PgbouncerRoute>),
}

impl RouteConfig {
    fn kind(&self) -> &'static str {
        match self {
            RouteConfig::FileSd { .. } => "file_sd",
            RouteConfig::Haproxy(_) => "haproxy",
            RouteConfig::Pgbouncer(_) => "pgbouncer",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaproxyRoute {
    /// The stats socket with `level admin`: a Unix socket's path, or `host:port` for a TCP one
    /// (`stats socket ipv4@127.0.0.1:9999 level admin`).
    pub socket: String,
    pub backend: String,
    /// Longest one runtime API command may take.
    #[serde(default = "default_timeout", with = "crate::policy::dur")]
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PgbouncerRoute {
    /// pgbouncer.ini (relative paths start at vigil.yml's directory).
    pub config: PathBuf,
    /// The entry of `[databases]` to repoint.
    pub database: String,
    /// The admin console: `address` (`host:port` or a socket directory) and a user pgbouncer's
    /// `admin_users` lists.
    pub admin_address: String,
    #[serde(default)]
    pub admin: PgLogin,
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

/// The declared routes, by name.
pub struct RouteCapabilities {
    routes: BTreeMap<String, RouteConfig>,
}

impl RouteCapabilities {
    /// `base`: where relative paths start.
    pub fn new(
        routes: BTreeMap<String, RouteConfig>,
        base: &Path,
    ) -> Result<RouteCapabilities, String> {
        let mut out = BTreeMap::new();
        for (n, r) in routes {
            let r = match r {
                RouteConfig::FileSd { path } => RouteConfig::FileSd {
                    path: base.join(path),
                },
                RouteConfig::Haproxy(h) => {
                    if h.backend.is_empty() || h.socket.is_empty() {
                        return Err(format!("route {n}: haproxy needs `socket` and `backend`"));
                    }
                    RouteConfig::Haproxy(h)
                }
                RouteConfig::Pgbouncer(mut p) => {
                    if p.database.is_empty() || p.admin_address.is_empty() {
                        return Err(format!(
                            "route {n}: pgbouncer needs `database` and `admin_address`"
                        ));
                    }
                    p.config = base.join(&p.config);
                    p.admin
                        .prepare(base)
                        .map_err(|e| format!("route {n}: admin: {e}"))?;
                    RouteConfig::Pgbouncer(p)
                }
            };
            out.insert(n, r);
        }
        Ok(RouteCapabilities { routes: out })
    }

    fn route(&self, args: &Value) -> Result<(&str, &RouteConfig), CallError> {
        let name = arg_str(args, "route")?;
        declared(&self.routes, "route", name)
    }
}

fn failed(m: impl Into<String>) -> CallError {
    CallError::Failed(m.into())
}

/// The `targets` argument: `host:port` strings.
fn targets_arg(args: &Value) -> Result<Vec<String>, CallError> {
    let targets: Vec<String> = match args.get("targets").and_then(Value::as_array) {
        Some(t) => t
            .iter()
            .map(|x| x.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| CallError::BadRequest("targets must be strings".into()))?,
        None => {
            return Err(CallError::BadRequest(
                "route.set needs `targets`, an array of host:port strings".into(),
            ));
        }
    };
    if let Some(bad) = targets
        .iter()
        .find(|t| t.is_empty() || t.contains(char::is_whitespace))
    {
        return Err(CallError::BadRequest(format!(
            "target {bad:?} is not host:port"
        )));
    }
    Ok(targets)
}

/// Replaces `path` with `bytes` so that a reader sees the old file or the new one, never a mix, and
/// the new one survives a power loss once this returns. The new file keeps the old one's mode and
/// owner (pgbouncer.ini is usually readable by its service user only).
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("route");
    let tmp = dir.join(format!(".{name}.vigil-tmp"));
    let old = std::fs::metadata(path).ok();
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        if let Some(m) = &old {
            f.set_permissions(m.permissions())?;
            // Only root may give a file away; otherwise it stays ours, which is what we can do.
            let _ = std::os::unix::fs::fchown(&f, Some(m.uid()), Some(m.gid()));
        }
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[async_trait::async_trait]
impl Capability for RouteCapabilities {
    fn names(&self) -> &'static [(&'static str, Effect)] {
        &[("route.get", Effect::Reads), ("route.set", Effect::Acts)]
    }

    async fn target(&self, _name: &str, args: &Value) -> Result<Option<Target>, CallError> {
        let (name, cfg) = self.route(args)?;
        Ok(Some(Target {
            kind: "route",
            id: name.to_string(),
            labels: BTreeMap::from([
                ("name".to_string(), name.to_string()),
                ("kind".to_string(), cfg.kind().to_string()),
            ]),
        }))
    }

    async fn call(
        &self,
        name: &str,
        args: &Value,
        _target: Option<&Target>,
    ) -> Result<Value, CallError> {
        let (route, cfg) = self.route(args)?;
        let mut r = if name == "route.get" {
            match cfg {
                RouteConfig::FileSd { path } => file_sd::get(path).await?,
                RouteConfig::Haproxy(h) => haproxy::get(h).await?,
                RouteConfig::Pgbouncer(p) => pgbouncer::get(p).await?,
            }
        } else {
            let targets = targets_arg(args)?;
            if targets.is_empty() && !matches!(cfg, RouteConfig::FileSd { .. }) {
                return Err(CallError::BadRequest(
                    "route.set needs at least one target".into(),
                ));
            }
            match cfg {
                RouteConfig::FileSd { path } => file_sd::set(path, args, targets).await?,
                RouteConfig::Haproxy(h) => haproxy::set(h, &targets).await?,
                RouteConfig::Pgbouncer(p) => pgbouncer::set(p, &targets).await?,
            }
        };
        r["route"] = json!(route);
        r["kind"] = json!(cfg.kind());
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(dir: &Path) -> RouteCapabilities {
        RouteCapabilities::new(
            BTreeMap::from([(
                "pg-writer".to_string(),
                RouteConfig::FileSd {
                    path: "sd/pg.json".into(),
                },
            )]),
            dir,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn file_sd_set_replaces_the_file_and_get_reads_it_back() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sd")).unwrap();
        let c = caps(dir.path());
        let r = c
            .call("route.get", &json!({"route": "pg-writer"}), None)
            .await
            .unwrap();
        assert_eq!(r["groups"], json!([]), "no file yet: no groups");
        let r = c
            .call(
                "route.set",
                &json!({"route": "pg-writer", "targets": ["10.0.0.2:5432"], "labels": {"role": "primary"}}),
                None,
            )
            .await
            .unwrap();
        assert_eq!(r["previous"], json!([]));
        assert_eq!(r["kind"], "file_sd");
        let on_disk: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("sd/pg.json")).unwrap()).unwrap();
        assert_eq!(
            on_disk,
            json!([{"targets": ["10.0.0.2:5432"], "labels": {"role": "primary"}}])
        );
        let r = c
            .call(
                "route.set",
                &json!({"route": "pg-writer", "targets": ["10.0.0.3:5432"]}),
                None,
            )
            .await
            .unwrap();
        assert_eq!(r["previous"], json!(["10.0.0.2:5432"]));
        assert_eq!(r["previous_groups"], on_disk);
        let r = c
            .call("route.get", &json!({"route": "pg-writer"}), None)
            .await
            .unwrap();
        assert_eq!(r["targets"], json!(["10.0.0.3:5432"]));
        // Nothing but the file itself is left in the directory.
        let names: Vec<String> = std::fs::read_dir(dir.path().join("sd"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["pg.json"]);
    }

    #[tokio::test]
    async fn bad_requests_name_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let c = caps(dir.path());
        let e = c
            .target("route.set", &json!({"route": "other"}))
            .await
            .unwrap_err();
        assert_eq!(
            e,
            CallError::BadRequest("no route \"other\" is declared (declared: pg-writer)".into())
        );
        for (args, want) in [
            (json!({"route": "pg-writer"}), "route.set needs `targets`"),
            (
                json!({"route": "pg-writer", "targets": [1]}),
                "targets must be strings",
            ),
            (
                json!({"route": "pg-writer", "targets": ["a b"]}),
                "is not host:port",
            ),
            (
                json!({"route": "pg-writer", "targets": ["a:1"], "labels": {"0x": "y"}}),
                "is not a label name",
            ),
        ] {
            let e = c.call("route.set", &args, None).await.unwrap_err();
            assert!(e.to_string().contains(want), "{args}: {e}");
        }
        // A file that is not file_sd is refused, not overwritten.
        std::fs::create_dir_all(dir.path().join("sd")).unwrap();
        std::fs::write(dir.path().join("sd/pg.json"), "{}").unwrap();
        let e = c
            .call(
                "route.set",
                &json!({"route": "pg-writer", "targets": ["a:1"]}),
                None,
            )
            .await
            .unwrap_err();
        assert!(e.to_string().contains("is not a file_sd file"), "{e}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("sd/pg.json")).unwrap(),
            "{}"
        );
    }
}
