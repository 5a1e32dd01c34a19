//! The limits every run and every action passes, however the run was started (by an alert, by hand,
//! or by an alert another runbook's action raised): one run per target at a time, a cooldown per
//! binding and target, a maximum of attempts per alert, a global concurrency cap, and a fleet-wide
//! blast-radius budget per kind of action whose circuit breaker, once tripped, refuses that kind of
//! action until it is reset (and the run escalates). Decisions are values, so the caller records them.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// Limits (the `runbook_policy` section; defaults are a careful operator's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Time after a run ends before the same binding may run on the same target again.
    #[serde(with = "dur")]
    pub cooldown: Duration,
    /// Runs per alert (by fingerprint) within `attempts_window`.
    pub max_attempts: u32,
    #[serde(with = "dur")]
    pub attempts_window: Duration,
    /// Runs live at once, fleet-wide.
    pub max_concurrent: usize,
    /// Acting calls of one capability (`docker.restart`, ...) allowed fleet-wide per `window`.
    pub blast_radius: BlastRadius,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BlastRadius {
    pub max_actions: u32,
    #[serde(with = "dur")]
    pub window: Duration,
}

impl Default for BlastRadius {
    fn default() -> Self {
        BlastRadius {
            max_actions: 10,
            window: Duration::from_secs(600),
        }
    }
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            cooldown: Duration::from_secs(300),
            max_attempts: 3,
            attempts_window: Duration::from_secs(3600),
            max_concurrent: 4,
            blast_radius: BlastRadius::default(),
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
        crate::manifest::parse_duration(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("{s:?} is not a duration (like 5m)")))
    }
}

/// What a run is, for the limits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RunKey {
    /// The binding (receiver and runbook) that starts it.
    pub binding: String,
    /// What it acts on (the binding's templated target; by default the alert's fingerprint).
    pub target: String,
    /// The alert's fingerprint.
    pub alert: String,
}

/// Why a run or an action was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "refused", content = "reason")]
pub enum Refusal {
    /// Another run holds the target.
    Locked(String),
    Cooldown(String),
    MaxAttempts(String),
    Concurrency(String),
    /// The budget of this kind of action is spent (or its breaker is open): escalate.
    BlastRadius(String),
}

impl Refusal {
    pub fn reason(&self) -> &str {
        match self {
            Refusal::Locked(r)
            | Refusal::Cooldown(r)
            | Refusal::MaxAttempts(r)
            | Refusal::Concurrency(r)
            | Refusal::BlastRadius(r) => r,
        }
    }

    /// Refusals a human must hear about (the others just mean "not now").
    pub fn escalates(&self) -> bool {
        matches!(self, Refusal::MaxAttempts(_) | Refusal::BlastRadius(_))
    }
}

#[derive(Default)]
struct State {
    locked: HashSet<String>,
    running: usize,
    /// (binding, target) -> when its last run ended.
    ended: HashMap<(String, String), Instant>,
    /// alert -> when its runs started.
    attempts: HashMap<String, VecDeque<Instant>>,
    /// capability -> when its actions ran.
    actions: HashMap<String, VecDeque<Instant>>,
    /// capability -> when its breaker tripped.
    tripped: HashMap<String, Instant>,
}

/// The limits' state, shared by every run.
pub struct Policy {
    cfg: PolicyConfig,
    state: Mutex<State>,
}

/// Held by an admitted run: the target stays locked and the run counted until it is dropped.
pub struct Permit {
    policy: Arc<Policy>,
    key: RunKey,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut s = self.policy.state.lock();
        s.locked.remove(&self.key.target);
        s.running -= 1;
        s.ended.insert(
            (self.key.binding.clone(), self.key.target.clone()),
            Instant::now(),
        );
    }
}

fn ago(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

impl Policy {
    pub fn new(cfg: PolicyConfig) -> Arc<Policy> {
        Arc::new(Policy {
            cfg,
            state: Mutex::new(State::default()),
        })
    }

    pub fn config(&self) -> &PolicyConfig {
        &self.cfg
    }

    /// Admits a run at `now`, or says why not. Checks are in the order an operator reads them.
    pub fn admit(self: &Arc<Self>, key: &RunKey, now: Instant) -> Result<Permit, Refusal> {
        let mut s = self.state.lock();
        if s.locked.contains(&key.target) {
            return Err(Refusal::Locked(format!(
                "another run is acting on {}",
                key.target
            )));
        }
        if let Some(end) = s.ended.get(&(key.binding.clone(), key.target.clone()))
            && now.saturating_duration_since(*end) < self.cfg.cooldown
        {
            let left = self.cfg.cooldown - now.saturating_duration_since(*end);
            return Err(Refusal::Cooldown(format!(
                "{} ran on {} {} ago; cooldown {} (again in {})",
                key.binding,
                key.target,
                ago(now.saturating_duration_since(*end)),
                ago(self.cfg.cooldown),
                ago(left + Duration::from_millis(999)),
            )));
        }
        let window = self.cfg.attempts_window;
        let attempts = s.attempts.entry(key.alert.clone()).or_default();
        while attempts
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= window)
        {
            attempts.pop_front();
        }
        if attempts.len() as u32 >= self.cfg.max_attempts {
            return Err(Refusal::MaxAttempts(format!(
                "alert {} had {} runs within {}, the most allowed",
                key.alert,
                attempts.len(),
                ago(window)
            )));
        }
        if s.running >= self.cfg.max_concurrent {
            return Err(Refusal::Concurrency(format!(
                "{} runs are live, the most allowed at once",
                s.running
            )));
        }
        s.attempts
            .entry(key.alert.clone())
            .or_default()
            .push_back(now);
        s.locked.insert(key.target.clone());
        s.running += 1;
        Ok(Permit {
            policy: self.clone(),
            key: key.clone(),
        })
    }

    /// Charges one acting call of `capability` at `now` to the fleet-wide budget. Past the budget
    /// the breaker trips and every later call of that kind is refused until [`Policy::reset`].
    pub fn charge(&self, capability: &str, now: Instant) -> Result<(), Refusal> {
        let b = &self.cfg.blast_radius;
        let mut s = self.state.lock();
        if let Some(t) = s.tripped.get(capability) {
            return Err(Refusal::BlastRadius(format!(
                "the {capability} breaker tripped {} ago and stays open until an operator resets it",
                ago(now.saturating_duration_since(*t))
            )));
        }
        let q = s.actions.entry(capability.to_string()).or_default();
        while q
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= b.window)
        {
            q.pop_front();
        }
        if q.len() as u32 >= b.max_actions {
            let n = q.len();
            s.tripped.insert(capability.to_string(), now);
            return Err(Refusal::BlastRadius(format!(
                "blast-radius budget spent: {n} {capability} actions fleet-wide within {}, the most allowed; the breaker is now open",
                ago(b.window)
            )));
        }
        q.push_back(now);
        Ok(())
    }

    /// Capabilities whose breaker is open.
    pub fn tripped(&self) -> Vec<String> {
        let mut v: Vec<String> = self.state.lock().tripped.keys().cloned().collect();
        v.sort();
        v
    }

    /// Closes a breaker (an operator's decision) and forgets that kind's recent actions.
    pub fn reset(&self, capability: &str) -> bool {
        let mut s = self.state.lock();
        s.actions.remove(capability);
        s.tripped.remove(capability).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(target: &str, alert: &str) -> RunKey {
        RunKey {
            binding: "web/restart-container".into(),
            target: target.into(),
            alert: alert.into(),
        }
    }

    fn cfg(y: &str) -> PolicyConfig {
        serde_yaml_ng::from_str(y).unwrap()
    }

    #[test]
    fn one_run_per_target_then_a_cooldown() {
        let p = Policy::new(cfg("cooldown: 1m\n"));
        let t0 = Instant::now();
        let run = p.admit(&key("web-1", "a1"), t0).unwrap();
        // A second alert for the same target waits for the first run.
        let e = p.admit(&key("web-1", "a2"), t0).err().unwrap();
        assert_eq!(e, Refusal::Locked("another run is acting on web-1".into()));
        // Another target is not held up.
        let other = p.admit(&key("web-2", "a3"), t0).unwrap();
        drop(run);
        let e = p.admit(&key("web-1", "a2"), Instant::now()).err().unwrap();
        assert!(
            matches!(&e, Refusal::Cooldown(m) if m.contains("cooldown 1m")),
            "{e:?}"
        );
        assert!(!e.escalates());
        // After the cooldown it runs again.
        assert!(
            p.admit(
                &key("web-1", "a2"),
                Instant::now() + Duration::from_secs(61)
            )
            .is_ok()
        );
        drop(other);
    }

    #[test]
    fn attempts_per_alert_and_concurrency_are_capped() {
        let p = Policy::new(cfg(
            "cooldown: 0s\nmax_attempts: 2\nattempts_window: 10m\nmax_concurrent: 2\n",
        ));
        let t0 = Instant::now();
        drop(p.admit(&key("web-1", "flappy"), t0).unwrap());
        drop(
            p.admit(&key("web-1", "flappy"), t0 + Duration::from_secs(1))
                .unwrap(),
        );
        let e = p
            .admit(&key("web-1", "flappy"), t0 + Duration::from_secs(2))
            .err()
            .unwrap();
        assert!(
            matches!(&e, Refusal::MaxAttempts(m) if m.contains("had 2 runs within 10m")),
            "{e:?}"
        );
        assert!(e.escalates());
        // Out of the window, attempts count again from zero.
        assert!(
            p.admit(&key("web-1", "flappy"), t0 + Duration::from_secs(601))
                .is_ok()
        );
        let _a = p.admit(&key("a", "x"), t0).unwrap();
        let _b = p.admit(&key("b", "y"), t0).unwrap();
        let e = p.admit(&key("c", "z"), t0).err().unwrap();
        assert_eq!(
            e,
            Refusal::Concurrency("2 runs are live, the most allowed at once".into())
        );
    }

    #[test]
    fn the_blast_radius_breaker_trips_and_stays_open_until_reset() {
        let p = Policy::new(cfg("blast_radius: {max_actions: 3, window: 10m}\n"));
        let t0 = Instant::now();
        for i in 0..3 {
            p.charge("docker.restart", t0 + Duration::from_secs(i))
                .unwrap();
        }
        // Another kind has its own budget.
        p.charge("process.restart", t0).unwrap();
        let e = p
            .charge("docker.restart", t0 + Duration::from_secs(5))
            .unwrap_err();
        assert!(
            matches!(&e, Refusal::BlastRadius(m) if m.contains("3 docker.restart actions fleet-wide within 10m")),
            "{e:?}"
        );
        assert!(e.escalates());
        // Open even after the window: a human closes it.
        let e = p
            .charge("docker.restart", t0 + Duration::from_secs(3600))
            .unwrap_err();
        assert!(
            matches!(&e, Refusal::BlastRadius(m) if m.contains("until an operator resets it")),
            "{e:?}"
        );
        assert_eq!(p.tripped(), vec!["docker.restart".to_string()]);
        assert!(p.reset("docker.restart"));
        p.charge("docker.restart", t0 + Duration::from_secs(3601))
            .unwrap();
    }

    #[test]
    fn config_defaults_and_typos() {
        let c = cfg("{}\n");
        assert_eq!(c, PolicyConfig::default());
        assert!(serde_yaml_ng::from_str::<PolicyConfig>("cooldwn: 1m\n").is_err());
        assert!(serde_yaml_ng::from_str::<PolicyConfig>("cooldown: soon\n").is_err());
    }
}
