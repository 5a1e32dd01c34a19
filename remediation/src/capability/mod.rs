//! Capabilities: what a runbook may ask the host to do, one file per family behind one trait,
//! registered in one place ([`Registry::standard`]). A capability names the target a call is about
//! (a container, a URL, a command) before it runs, so grants can be scoped to targets, targets
//! locked, and dry runs answered without acting.

pub mod docker;
pub mod http;
pub mod logs;
pub mod pg;
pub mod postgres;
pub mod process;
pub mod query;
pub mod route;
pub mod scale;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::sandbox::CallError;

/// Whether a capability changes the world. Acting calls are refused in a dry run (answered with
/// what would have been done), re-checked against the alert just before they run, and counted by
/// the blast-radius budget; reading calls are not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    Reads,
    Acts,
}

/// What one call is about: a kind (`container`, `url`, `process`), an identity, and labels a
/// grant's scope is matched against (a container's own labels plus `name` and `image`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    pub kind: &'static str,
    pub id: String,
    pub labels: BTreeMap<String, String>,
}

impl Target {
    /// `kind:id`, the key of per-target locks.
    pub fn key(&self) -> String {
        format!("{}:{}", self.kind, self.id)
    }
}

/// One capability family (`docker.*`, `http.request`, ...).
#[async_trait::async_trait]
pub trait Capability: Send + Sync {
    /// The names this family answers to, each with its effect.
    fn names(&self) -> &'static [(&'static str, Effect)];

    /// The target of a call of `name`, from its arguments (may look it up: a container's labels).
    /// Errors are the call's: a missing argument is `BadRequest`, an unknown container `Failed`.
    async fn target(&self, name: &str, args: &Value) -> Result<Option<Target>, CallError>;

    /// How long a call may take, when longer than the sandbox's default call timeout.
    fn timeout(&self, _name: &str, _args: &Value) -> Option<std::time::Duration> {
        None
    }

    /// Performs the call.
    async fn call(
        &self,
        name: &str,
        args: &Value,
        target: Option<&Target>,
    ) -> Result<Value, CallError>;
}

/// Every capability the host has, by name.
#[derive(Clone, Default)]
pub struct Registry {
    by_name: BTreeMap<&'static str, (Effect, Arc<dyn Capability>)>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.by_name.keys()).finish()
    }
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Adds a family; a name registered twice is a programming error.
    pub fn register(&mut self, cap: Arc<dyn Capability>) {
        for (name, effect) in cap.names() {
            assert!(
                crate::abi::CAPABILITIES.contains(name)
                    && (*effect == Effect::Acts) == crate::abi::ACTING.contains(name),
                "capability {name}: its effect differs from abi::ACTING, or abi::CAPABILITIES lacks it"
            );
            let old = self.by_name.insert(name, (*effect, cap.clone()));
            assert!(old.is_none(), "capability {name} registered twice");
        }
    }

    pub fn get(&self, name: &str) -> Option<(Effect, &Arc<dyn Capability>)> {
        self.by_name.get(name).map(|(e, c)| (*e, c))
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.by_name.keys().copied()
    }
}

/// A binding's grant of one capability, with the targets it may touch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    pub capability: String,
    #[serde(default, skip_serializing_if = "Scope::is_any")]
    pub scope: Scope,
}

/// Which targets a grant covers. Empty means every target of the capability.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// Labels the target must carry with these exact values (a container's Docker labels, or
    /// `name` and `image`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Target identities the grant covers (container names, command names); any when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// For `http.request`: URL prefixes the call's URL must start with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub url_prefixes: Vec<String>,
}

impl Scope {
    pub fn is_any(&self) -> bool {
        self.labels.is_empty() && self.names.is_empty() && self.url_prefixes.is_empty()
    }

    /// None when the target is covered, or the reason it is not.
    pub fn refuses(&self, target: Option<&Target>) -> Option<String> {
        if self.is_any() {
            return None;
        }
        let Some(t) = target else {
            return Some("the grant is scoped, and this call names no target".into());
        };
        if !self.names.is_empty() && !self.names.contains(&t.id) {
            return Some(format!(
                "{} {} is outside the grant's scope (names: {})",
                t.kind,
                t.id,
                self.names.join(", ")
            ));
        }
        for (k, v) in &self.labels {
            if t.labels.get(k) != Some(v) {
                return Some(format!(
                    "{} {} is outside the grant's scope: it lacks the label {k}={v}",
                    t.kind, t.id
                ));
            }
        }
        if !self.url_prefixes.is_empty() && !self.url_prefixes.iter().any(|p| t.id.starts_with(p)) {
            return Some(format!(
                "{} is outside the grant's URL prefixes ({})",
                t.id,
                self.url_prefixes.join(", ")
            ));
        }
        None
    }
}

/// Looks `name` up among what the configuration declares; the error names what is declared, so a
/// runbook author sees the choices (`what`: "route", "postgres cluster", ...).
pub(crate) fn declared<'a, T>(
    map: &'a BTreeMap<String, T>,
    what: &str,
    name: &str,
) -> Result<(&'a str, &'a T), CallError> {
    map.get_key_value(name)
        .map(|(n, v)| (n.as_str(), v))
        .ok_or_else(|| {
            let known: Vec<&str> = map.keys().map(String::as_str).collect();
            CallError::BadRequest(format!(
                "no {what} {name:?} is declared (declared: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ))
        })
}

/// A required string argument.
pub(crate) fn arg_str<'a>(args: &'a Value, name: &str) -> Result<&'a str, CallError> {
    match args.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(_) => Err(CallError::BadRequest(format!(
            "argument {name} must be a non-empty string"
        ))),
        None => Err(CallError::BadRequest(format!("argument {name} is missing"))),
    }
}

/// An optional unsigned integer argument.
pub(crate) fn arg_u64(args: &Value, name: &str, default: u64) -> Result<u64, CallError> {
    match args.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v.as_u64().ok_or_else(|| {
            CallError::BadRequest(format!("argument {name} must be a non-negative integer"))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(id: &str, labels: &[(&str, &str)]) -> Target {
        Target {
            kind: "container",
            id: id.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn scopes_cover_what_they_name_and_say_why_not() {
        let any = Scope::default();
        assert_eq!(any.refuses(None), None);
        let web: Scope = serde_yaml_ng::from_str("labels: {app: web}\n").unwrap();
        assert_eq!(
            web.refuses(Some(&container("web-1", &[("app", "web")]))),
            None
        );
        assert_eq!(
            web.refuses(Some(&container("db-1", &[("app", "db")])))
                .unwrap(),
            "container db-1 is outside the grant's scope: it lacks the label app=web"
        );
        assert!(web.refuses(None).unwrap().contains("names no target"));
        let named: Scope = serde_yaml_ng::from_str("names: [web-1, web-2]\n").unwrap();
        assert_eq!(named.refuses(Some(&container("web-2", &[]))), None);
        assert!(
            named
                .refuses(Some(&container("web-3", &[])))
                .unwrap()
                .contains("names: web-1, web-2")
        );
        let urls: Scope =
            serde_yaml_ng::from_str("url_prefixes: ['https://api.example/v1/']\n").unwrap();
        let url = |u: &str| Target {
            kind: "url",
            id: u.into(),
            labels: BTreeMap::new(),
        };
        assert_eq!(
            urls.refuses(Some(&url("https://api.example/v1/scale"))),
            None
        );
        assert!(
            urls.refuses(Some(&url("https://api.example/v2/")))
                .is_some()
        );
        assert!(
            serde_yaml_ng::from_str::<Scope>("label: {a: b}\n").is_err(),
            "typos are errors"
        );
    }
}
