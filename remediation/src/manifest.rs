//! The manifest beside a runbook (`NAME.runbook.yml`, sdk/README.md "Manifest"): what the runbook is,
//! which ABI it speaks, the capabilities it needs and the parameters it takes. Parsed strictly (an
//! unknown field is an error naming it), and used to check a binding's parameters before a run.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::abi;

/// A runbook's manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The ABI version the module speaks (its entry point is `vigil_runbook_v{abi}`).
    pub abi: u32,
    /// Capabilities the runbook may call; a binding grants a subset.
    #[serde(default)]
    pub capabilities: Vec<String>,
    #[serde(default)]
    pub params: BTreeMap<String, ParamSpec>,
}

/// One parameter: its type, whether it must be given, and its default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    #[serde(rename = "type")]
    pub kind: ParamType,
    #[serde(default)]
    pub required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_yaml_ng::Value>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// Parameter types. Bindings template parameters as strings (from labels and annotations), so
/// every type also accepts its string form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    String,
    Integer,
    Number,
    Boolean,
    /// A Prometheus duration (`30s`, `1m30s`), passed to the runbook as that string.
    Duration,
}

impl ParamType {
    fn name(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Integer => "integer",
            ParamType::Number => "number",
            ParamType::Boolean => "boolean",
            ParamType::Duration => "duration",
        }
    }

    /// The value as the runbook receives it, or why it does not fit.
    fn coerce(self, v: &Value) -> Result<Value, String> {
        let s = v.as_str().map(str::trim);
        match (self, v) {
            (ParamType::String, Value::String(_)) => Ok(v.clone()),
            (ParamType::String, Value::Number(n)) => Ok(Value::String(n.to_string())),
            (ParamType::String, Value::Bool(b)) => Ok(Value::String(b.to_string())),
            (ParamType::Integer, Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(v.clone()),
            (ParamType::Integer, Value::String(_)) => s
                .and_then(|s| s.parse::<i64>().ok())
                .map(Value::from)
                .ok_or_else(|| format!("{v} is not an integer")),
            (ParamType::Number, Value::Number(_)) => Ok(v.clone()),
            (ParamType::Number, Value::String(_)) => s
                .and_then(|s| s.parse::<f64>().ok())
                .filter(|f| f.is_finite())
                .map(Value::from)
                .ok_or_else(|| format!("{v} is not a number")),
            (ParamType::Boolean, Value::Bool(_)) => Ok(v.clone()),
            (ParamType::Boolean, Value::String(_)) => match s {
                Some("true") => Ok(Value::Bool(true)),
                Some("false") => Ok(Value::Bool(false)),
                _ => Err(format!("{v} is not true or false")),
            },
            (ParamType::Duration, Value::String(_)) => {
                let s = s.unwrap_or_default();
                parse_duration(s)
                    .map(|_| Value::String(s.to_string()))
                    .ok_or_else(|| format!("{v} is not a duration (like 30s or 1m30s)"))
            }
            _ => Err(format!("{v} is not a {}", self.name())),
        }
    }
}

/// A Prometheus duration (`30s`, `1m30s`), as vigil-model parses it everywhere else.
pub fn parse_duration(s: &str) -> Option<Duration> {
    vigil_model::parse_duration(s).ok()
}

fn yaml_to_json(v: &serde_yaml_ng::Value) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

impl Manifest {
    /// Parses and checks a manifest.
    pub fn parse(text: &str) -> Result<Manifest, String> {
        let m: Manifest = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
        m.validate()?;
        Ok(m)
    }

    fn validate(&self) -> Result<(), String> {
        let valid_name = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
            && self.name.starts_with(|c: char| c.is_ascii_lowercase());
        if !valid_name {
            return Err(format!(
                "name {:?}: use lower-case letters, digits, '-' and '_', starting with a letter (at most 64)",
                self.name
            ));
        }
        let parts: Vec<&str> = self
            .version
            .split(['-', '+'])
            .next()
            .unwrap_or("")
            .split('.')
            .collect();
        if parts.len() != 3
            || parts
                .iter()
                .any(|p| p.is_empty() || !p.chars().all(|c| c.is_ascii_digit()))
        {
            return Err(format!(
                "version {:?} is not a semantic version (MAJOR.MINOR.PATCH)",
                self.version
            ));
        }
        if !abi::VERSIONS.contains(&self.abi) {
            return Err(format!(
                "abi {} is not supported by this Vigil (it runs ABI {})",
                self.abi,
                abi::VERSIONS
                    .iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        for c in &self.capabilities {
            if !abi::CAPABILITIES.contains(&c.as_str()) {
                return Err(format!(
                    "capability {c:?} does not exist (known: {})",
                    abi::CAPABILITIES.join(", ")
                ));
            }
        }
        for (i, c) in self.capabilities.iter().enumerate() {
            if self.capabilities[..i].contains(c) {
                return Err(format!("capability {c:?} is listed twice"));
            }
        }
        for (name, p) in &self.params {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("parameter {name:?}: use letters, digits and '_'"));
            }
            if let Some(d) = &p.default {
                if p.required {
                    return Err(format!(
                        "parameter {name}: a required parameter cannot have a default"
                    ));
                }
                p.kind
                    .coerce(&yaml_to_json(d))
                    .map_err(|e| format!("parameter {name}: default {e}"))?;
            }
        }
        Ok(())
    }

    /// Checks a binding's parameters against the schema: every given one is known and fits its
    /// type, every required one is there; defaults fill in the rest. Answers the parameters the
    /// runbook receives.
    pub fn check_params(&self, given: &Map<String, Value>) -> Result<Map<String, Value>, String> {
        let mut out = Map::new();
        for (k, v) in given {
            let Some(spec) = self.params.get(k) else {
                let known: Vec<&str> = self.params.keys().map(String::as_str).collect();
                return Err(format!(
                    "parameter {k:?} is not declared by runbook {} (it takes: {})",
                    self.name,
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ));
            };
            let v = spec
                .kind
                .coerce(v)
                .map_err(|e| format!("parameter {k}: {e}"))?;
            out.insert(k.clone(), v);
        }
        for (k, spec) in &self.params {
            if out.contains_key(k) {
                continue;
            }
            if spec.required {
                return Err(format!(
                    "parameter {k} is required by runbook {}",
                    self.name
                ));
            }
            if let Some(d) = &spec.default {
                out.insert(k.clone(), spec.kind.coerce(&yaml_to_json(d))?);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const RESTART: &str = "name: restart-container\nversion: 1.0.0\nabi: 1\ncapabilities: [docker.inspect, docker.restart, wait.until, log]\nparams:\n  container: {type: string, required: true}\n  wait: {type: duration, default: 30s}\n  attempts: {type: integer, default: 2}\n  force: {type: boolean}\n";

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn the_readme_manifest_parses_and_fills_defaults() {
        let m = Manifest::parse(RESTART).unwrap();
        assert_eq!(m.name, "restart-container");
        assert_eq!(m.capabilities.len(), 4);
        let p = m.check_params(&obj(json!({"container": "web-1"}))).unwrap();
        assert_eq!(
            Value::Object(p),
            json!({"container": "web-1", "wait": "30s", "attempts": 2})
        );
        // Templated parameters arrive as strings and are converted to the declared type.
        let p = m
            .check_params(&obj(
                json!({"container": "web-1", "attempts": "5", "force": "true", "wait": "1m30s"}),
            ))
            .unwrap();
        assert_eq!(p["attempts"], json!(5));
        assert_eq!(p["force"], json!(true));
        assert_eq!(p["wait"], json!("1m30s"));
    }

    #[test]
    fn parameters_that_do_not_fit_are_refused_naming_them() {
        let m = Manifest::parse(RESTART).unwrap();
        let e = m.check_params(&obj(json!({}))).unwrap_err();
        assert_eq!(
            e,
            "parameter container is required by runbook restart-container"
        );
        let e = m
            .check_params(&obj(json!({"container": "a", "colour": "red"})))
            .unwrap_err();
        assert!(
            e.contains("\"colour\" is not declared")
                && e.contains("attempts, container, force, wait"),
            "{e}"
        );
        let e = m
            .check_params(&obj(json!({"container": "a", "attempts": "many"})))
            .unwrap_err();
        assert_eq!(e, "parameter attempts: \"many\" is not an integer");
        let e = m
            .check_params(&obj(json!({"container": "a", "wait": "soon"})))
            .unwrap_err();
        assert!(
            e.starts_with("parameter wait: \"soon\" is not a duration"),
            "{e}"
        );
        let e = m
            .check_params(&obj(json!({"container": ["a"]})))
            .unwrap_err();
        assert_eq!(e, "parameter container: [\"a\"] is not a string");
    }

    #[test]
    fn bad_manifests_say_what_is_wrong() {
        let bad = |text: &str| Manifest::parse(text).unwrap_err();
        assert!(
            bad("name: x\nversion: 1.0.0\nabi: 1\nmystery: 1\n")
                .contains("unknown field `mystery`")
        );
        assert!(bad("name: X Y\nversion: 1.0.0\nabi: 1\n").contains("name \"X Y\""));
        assert!(bad("name: x\nversion: one\nabi: 1\n").contains("not a semantic version"));
        assert!(bad("name: x\nversion: 1.0.0\nabi: 2\n").contains("abi 2 is not supported"));
        let e = bad("name: x\nversion: 1.0.0\nabi: 1\ncapabilities: [docker.explode]\n");
        assert!(
            e.contains("\"docker.explode\" does not exist") && e.contains("docker.restart"),
            "{e}"
        );
        assert!(
            bad("name: x\nversion: 1.0.0\nabi: 1\ncapabilities: [log, log]\n")
                .contains("listed twice")
        );
        assert!(
            bad("name: x\nversion: 1.0.0\nabi: 1\nparams:\n  n: {type: integer, default: lots}\n")
                .contains("parameter n: default \"lots\" is not an integer")
        );
        assert!(
            bad("name: x\nversion: 1.0.0\nabi: 1\nparams:\n  n: {type: colour}\n")
                .contains("unknown variant `colour`")
        );
        assert!(bad("name: x\nversion: 1.0.0\nabi: 1\nparams:\n  n: {type: string, required: true, default: a}\n")
            .contains("cannot have a default"));
    }

    #[test]
    fn durations_as_prometheus_writes_them() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        for bad in ["", "s", "1", "1x", "-1s", "1.5s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
