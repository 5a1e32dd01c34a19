//! A load test scenario (`vigil loadtest SCENARIO.yaml`): the targets, the load (a constant rate,
//! optionally reached by a ramp), the faults to inject on a schedule, how recovery is judged, and
//! the Vigil server the load test reports to.
//!
//! ```yaml
//! name: web-crash
//! vigil: {url: 'http://127.0.0.1:9201', alert: WebDown}
//! targets:
//!   - {name: web, url: 'http://127.0.0.1:8080/', timeout: 2s}
//! load: {rate: 200, duration: 2m, ramp: {from: 20, over: 10s}, max_in_flight: 1000}
//! faults:
//!   - {at: 30s, kind: docker, action: kill, container: web-1}
//!   - {at: 60s, kind: surge, rate: 800, duration: 20s}
//! recovery: {stable: 5s, slow: 500ms}
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A whole scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Labels the pushed metrics (`scenario`) and names the report.
    #[serde(default = "default_name")]
    pub name: String,
    /// The Vigil server the load test pushes its metrics to and reads alerts and runbook
    /// executions from; without it the report has no detection or remediation times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vigil: Option<VigilConfig>,
    pub targets: Vec<TargetConfig>,
    pub load: LoadConfig,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<FaultConfig>,
    #[serde(default)]
    pub recovery: RecoveryConfig,
}

fn default_name() -> String {
    "loadtest".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VigilConfig {
    /// The server's URL (`http://user:pass@host:port` for basic auth).
    pub url: String,
    /// The alert whose firing is the detection (its `ALERTS` series); default: the first alert
    /// that fires after the fault.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub alert: String,
    /// Push the load test's own metrics (remote write) every second.
    #[serde(default = "yes")]
    pub push: bool,
}

fn yes() -> bool {
    true
}

/// One HTTP target; requests go to the targets in turn, by weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    pub name: String,
    pub url: String,
    #[serde(default = "default_method")]
    pub method: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub body: String,
    /// A request not answered within this is a timeout.
    #[serde(default = "default_timeout", with = "dur")]
    pub timeout: Duration,
    #[serde(default = "one")]
    pub weight: u32,
}

fn default_method() -> String {
    "GET".into()
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn one() -> u32 {
    1
}

/// The load: an open model. Requests are sent at their scheduled times whatever happened to the
/// earlier ones, and latency counts from the scheduled time, so a stalled server shows up in the
/// figures instead of slowing the load down (no coordinated omission).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadConfig {
    /// Requests a second once the ramp is over.
    pub rate: f64,
    #[serde(with = "dur")]
    pub duration: Duration,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ramp: Option<Ramp>,
    /// Requests in flight at most; one over it waits (its latency counting) for a free slot.
    #[serde(default = "default_in_flight")]
    pub max_in_flight: usize,
}

fn default_in_flight() -> usize {
    1000
}

/// A linear ramp from `from` requests a second to the load's `rate` over `over`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ramp {
    pub from: f64,
    #[serde(with = "dur")]
    pub over: Duration,
}

/// A fault injected at `at` (from the start), undone after `duration` when it can be.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultConfig {
    #[serde(with = "dur")]
    pub at: Duration,
    pub kind: FaultKind,
    /// `docker`: kill, stop, pause or restart.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub action: String,
    /// `docker`: the container's name or id.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub container: String,
    /// `postgres_primary`: the data directory whose postmaster gets `kill -9`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// `signal`: the process, by pid file or pid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pidfile: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    /// `signal`: KILL (default), TERM, STOP, ...
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub signal: String,
    /// `latency`: the network device (`tc qdisc ... netem delay`), and the delay.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub device: String,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_dur")]
    pub delay: Option<Duration>,
    /// `surge`: the load's rate from `at` (for `duration`, or to the end): an overload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// `exec`: a command (no shell) run at `at`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Undo after this (`docker` pause/stop: unpause/start; `latency`: remove the qdisc).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_dur")]
    pub duration: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    Docker,
    PostgresPrimary,
    Signal,
    Latency,
    Exec,
    Surge,
}

/// When the service counts as recovered: from the fault on, the first moment after which every
/// request for `stable` succeeded and none was slower than `slow`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecoveryConfig {
    #[serde(with = "dur")]
    pub stable: Duration,
    /// Slower than this is impact (default: 5 times the p99 before the fault, at least 100ms).
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_dur")]
    pub slow: Option<Duration>,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        RecoveryConfig {
            stable: Duration::from_secs(5),
            slow: None,
        }
    }
}

/// A scenario that cannot run, with the reason.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {message}")]
    File { path: String, message: String },
}

impl Scenario {
    /// Reads and checks a scenario file.
    pub fn load(path: &std::path::Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Scenario::parse(&text).map_err(|e| ScenarioError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    }

    pub fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        let s: Scenario =
            serde_yaml_ng::from_str(text).map_err(|e| ScenarioError::Invalid(e.to_string()))?;
        s.validate()?;
        Ok(s)
    }

    fn validate(&self) -> Result<(), ScenarioError> {
        let bad = |m: String| Err(ScenarioError::Invalid(m));
        if self.targets.is_empty() {
            return bad("targets: at least one".into());
        }
        for t in &self.targets {
            match url::Url::parse(&t.url) {
                Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
                _ => {
                    return bad(format!(
                        "target {}: {:?} is not an http(s) URL",
                        t.name, t.url
                    ));
                }
            }
            if reqwest::Method::from_bytes(t.method.as_bytes()).is_err() {
                return bad(format!("target {}: {:?} is not a method", t.name, t.method));
            }
            if t.weight == 0 {
                return bad(format!("target {}: weight must be at least 1", t.name));
            }
        }
        let l = &self.load;
        if !(l.rate > 0.0 && l.rate <= 1_000_000.0) {
            return bad(format!(
                "load.rate {} must be above 0 (and at most 1e6)",
                l.rate
            ));
        }
        if l.duration.is_zero() {
            return bad("load.duration must be above 0".into());
        }
        if l.max_in_flight == 0 {
            return bad("load.max_in_flight must be at least 1".into());
        }
        if let Some(r) = &l.ramp
            && !(r.from > 0.0 && r.from <= 1_000_000.0)
        {
            return bad(format!("load.ramp.from {} must be above 0", r.from));
        }
        for (i, f) in self.faults.iter().enumerate() {
            let need = |what: &str, ok: bool| {
                if ok {
                    Ok(())
                } else {
                    Err(ScenarioError::Invalid(format!(
                        "faults[{i}] ({:?}) needs {what}",
                        f.kind
                    )))
                }
            };
            match f.kind {
                FaultKind::Docker => {
                    need("container", !f.container.is_empty())?;
                    need(
                        "action: kill, stop, pause or restart",
                        matches!(f.action.as_str(), "kill" | "stop" | "pause" | "restart"),
                    )?;
                }
                FaultKind::PostgresPrimary => need("data_dir", f.data_dir.is_some())?,
                FaultKind::Signal => {
                    need("pidfile or pid", f.pidfile.is_some() != f.pid.is_some())?;
                    need(
                        "a signal name (KILL, TERM, STOP, CONT, HUP, INT)",
                        f.signal.is_empty() || crate::fault::signal_number(&f.signal).is_some(),
                    )?;
                }
                FaultKind::Latency => {
                    need("device", !f.device.is_empty())?;
                    need("delay", f.delay.is_some())?;
                }
                FaultKind::Exec => need("command", !f.command.is_empty())?,
                FaultKind::Surge => need(
                    "rate (requests a second, above 0)",
                    f.rate.is_some_and(|r| r > 0.0 && r <= 1_000_000.0),
                )?,
            }
            if f.at >= l.duration {
                return bad(format!(
                    "faults[{i}] at {} is not within the load's duration ({})",
                    vigil_model::format_duration(f.at),
                    vigil_model::format_duration(l.duration)
                ));
            }
        }
        if let Some(v) = &self.vigil
            && url::Url::parse(&v.url).is_err()
        {
            return bad(format!("vigil.url {:?} is not a URL", v.url));
        }
        Ok(())
    }

    /// The scheduled rate at `t` from the start, requests a second: a surge's while it lasts, else
    /// the ramp's or the load's.
    pub fn rate_at(&self, t: Duration) -> f64 {
        let surge = self.faults.iter().rev().find(|f| {
            f.kind == FaultKind::Surge && t >= f.at && f.duration.is_none_or(|d| t < f.at + d)
        });
        if let Some(r) = surge.and_then(|f| f.rate) {
            return r;
        }
        match &self.load.ramp {
            Some(r) if t < r.over => {
                r.from + (self.load.rate - r.from) * t.as_secs_f64() / r.over.as_secs_f64()
            }
            _ => self.load.rate,
        }
    }
}

pub(crate) mod dur {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&vigil_model::format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        vigil_model::parse_duration(&s)
            .map_err(|_| serde::de::Error::custom(format!("{s:?} is not a duration (like 30s)")))
    }
}

pub(crate) mod opt_dur {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&vigil_model::format_duration(*d)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map(|s| {
            vigil_model::parse_duration(&s)
                .map_err(|_| serde::de::Error::custom(format!("{s:?} is not a duration")))
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_scenario_parses_and_mistakes_are_named() {
        let doc = include_str!("scenario.rs");
        let start = doc.find("//! ```yaml\n").unwrap() + "//! ```yaml\n".len();
        let end = start + doc[start..].find("//! ```").unwrap();
        let yaml: String = doc[start..end]
            .lines()
            .map(|l| l.strip_prefix("//! ").unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        let s = Scenario::parse(&yaml).unwrap();
        assert_eq!(s.name, "web-crash");
        assert_eq!(s.load.rate, 200.0);
        assert_eq!(s.faults[0].kind, FaultKind::Docker);
        assert_eq!(s.recovery.stable, Duration::from_secs(5));
        // The ramp: 20/s at the start, halfway at 5 s, the full rate after.
        assert_eq!(s.rate_at(Duration::ZERO), 20.0);
        assert_eq!(s.rate_at(Duration::from_secs(5)), 110.0);
        assert_eq!(s.rate_at(Duration::from_secs(59)), 200.0);
        assert_eq!(s.rate_at(Duration::from_secs(60)), 800.0, "the surge");
        let surge = Scenario::parse(
            "targets: [{name: a, url: 'http://x'}]\nload: {rate: 2, duration: 60s}\nfaults: [{at: 10s, kind: surge, rate: 50, duration: 20s}]\n",
        )
        .unwrap();
        assert_eq!(surge.rate_at(Duration::from_secs(9)), 2.0);
        assert_eq!(surge.rate_at(Duration::from_secs(10)), 50.0);
        assert_eq!(surge.rate_at(Duration::from_secs(30)), 2.0);
        for (text, want) in [
            (
                "targets: []\nload: {rate: 1, duration: 1s}\n",
                "at least one",
            ),
            (
                "targets: [{name: a, url: 'ftp://x'}]\nload: {rate: 1, duration: 1s}\n",
                "is not an http(s) URL",
            ),
            (
                "targets: [{name: a, url: 'http://x'}]\nload: {rate: 0, duration: 1s}\n",
                "load.rate 0 must be above 0",
            ),
            (
                "targets: [{name: a, url: 'http://x'}]\nload: {rate: 1, duration: 1s}\nfaults: [{at: 0s, kind: docker, action: smash, container: c}]\n",
                "needs action",
            ),
            (
                "targets: [{name: a, url: 'http://x'}]\nload: {rate: 1, duration: 1s}\nfaults: [{at: 5s, kind: exec, command: [true]}]\n",
                "not within the load's duration",
            ),
            (
                "targets: [{name: a, url: 'http://x'}]\nload: {rate: 1, duration: 1s, rampe: 1}\n",
                "unknown field `rampe`",
            ),
        ] {
            let e = Scenario::parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
