//! The rule manager: loads rule files (globs), runs each group on its interval, reloads without
//! losing alert state, and serves the state to the API.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use vigil_storage::{MetricsAppender, MetricsReader};

use super::config::{RuleFile, RuleFileError};
use super::group::{Group, GroupOptions};

/// A rule file that failed to load.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {error}")]
pub struct LoadError {
    pub file: String,
    pub error: RuleFileError,
}

/// Expands `rule_files` patterns (relative to `base`) into files, sorted.
pub fn expand_globs(patterns: &[String], base: &Path) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in patterns {
        let full = if Path::new(p).is_absolute() {
            PathBuf::from(p)
        } else {
            base.join(p)
        };
        let pat = full.to_string_lossy().to_string();
        let paths =
            glob::glob(&pat).map_err(|e| format!("invalid rule_files pattern {p:?}: {e}"))?;
        for f in paths.flatten() {
            if f.is_file() {
                out.push(f);
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Vigil's built-in rules for its own health.
pub const BUILTIN_RULES: &str = include_str!("builtin.yml");

/// The built-in groups, under the file name `<builtin>`.
pub fn builtin_groups(opts: &GroupOptions) -> Vec<Group> {
    match RuleFile::parse(BUILTIN_RULES) {
        Ok(f) => f
            .groups
            .into_iter()
            .map(|g| Group::new("<builtin>", g, opts))
            .collect(),
        Err(e) => {
            warn!(error = %e, "built-in rules do not load");
            Vec::new()
        }
    }
}

/// Loads and validates every group of `files`.
pub fn load_groups(files: &[PathBuf], opts: &GroupOptions) -> Result<Vec<Group>, LoadError> {
    let mut groups = Vec::new();
    for f in files {
        let name = f.display().to_string();
        let rf = RuleFile::load(f).map_err(|error| LoadError {
            file: name.clone(),
            error,
        })?;
        for g in rf.groups {
            groups.push(Group::new(&name, g, opts));
        }
    }
    Ok(groups)
}

struct Running {
    group: Arc<Group>,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

/// Runs rule groups against a reader and writes their results through an appender.
pub struct RuleManager<R: MetricsReader> {
    reader: Arc<R>,
    appender: Arc<dyn MetricsAppender>,
    opts: Mutex<GroupOptions>,
    running: tokio::sync::Mutex<Vec<Running>>,
    snapshot: Mutex<Vec<Arc<Group>>>,
    first_start: Mutex<bool>,
    metrics: super::RuleMetrics,
    /// Where firing and resolved alerts go after each evaluation.
    router: Mutex<Option<Arc<crate::router::AlertRouter>>>,
}

impl<R: MetricsReader> RuleManager<R> {
    pub fn new(
        reader: Arc<R>,
        appender: Arc<dyn MetricsAppender>,
        opts: GroupOptions,
    ) -> Arc<Self> {
        Arc::new(RuleManager {
            reader,
            appender,
            opts: Mutex::new(opts),
            running: tokio::sync::Mutex::new(Vec::new()),
            snapshot: Mutex::new(Vec::new()),
            first_start: Mutex::new(true),
            metrics: super::RuleMetrics::default(),
            router: Mutex::new(None),
        })
    }

    /// Sends alerts to `router` from now on.
    pub fn set_router(&self, router: Arc<crate::router::AlertRouter>) {
        *self.router.lock() = Some(router);
    }

    /// The manager's metrics, to register in the server's registry.
    pub fn metrics(&self) -> &super::RuleMetrics {
        &self.metrics
    }

    /// The groups currently loaded, for the API.
    pub fn groups(&self) -> Vec<Arc<Group>> {
        self.snapshot.lock().clone()
    }

    /// Replaces the running groups with `groups`. Groups and rules that are unchanged keep their state;
    /// on the first start, alert `activeAt` times are restored from `ALERTS_FOR_STATE`.
    pub async fn apply(self: &Arc<Self>, groups: Vec<Group>, opts: GroupOptions) {
        *self.opts.lock() = opts.clone();
        let mut running = self.running.lock().await;
        let old: Vec<Running> = std::mem::take(&mut *running);
        for r in &old {
            r.cancel.cancel();
        }
        for r in &old {
            r.task.abort();
        }
        let first = std::mem::replace(&mut *self.first_start.lock(), false);
        let restored = if first {
            super::group::load_alert_state(self.reader.as_ref(), vigil_model::now_ms(), &opts).await
        } else {
            Default::default()
        };
        let old_by_key: HashMap<String, &Running> =
            old.iter().map(|o| (o.group.key(), o)).collect();
        let mut snap = Vec::new();
        for g in groups {
            if let Some(o) = old_by_key.get(&g.key()) {
                g.inherit(&o.group);
            } else if first {
                g.restore_from(&restored);
            }
            let g = Arc::new(g);
            let cancel = CancellationToken::new();
            let task = tokio::spawn(run_group(self.clone(), g.clone(), cancel.clone()));
            snap.push(g.clone());
            running.push(Running {
                group: g,
                cancel,
                task,
            });
        }
        info!(groups = snap.len(), "rule groups loaded");
        *self.snapshot.lock() = snap;
    }

    /// Stops every group.
    pub async fn stop(&self) {
        let mut running = self.running.lock().await;
        for r in running.drain(..) {
            r.cancel.cancel();
            let _ = r.task.await;
        }
    }
}

async fn run_group<R: MetricsReader>(
    m: Arc<RuleManager<R>>,
    g: Arc<Group>,
    cancel: CancellationToken,
) {
    loop {
        let now = vigil_model::now_ms();
        let iv = g.interval.as_millis() as i64;
        // The next evaluation time of this group's phase.
        let mut next = g.eval_timestamp(now);
        if next < now || g.last_evaluation.lock().is_some_and(|l| l >= next) {
            next += iv;
        }
        let wait = Duration::from_millis((next - now).max(0) as u64);
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        let opts = m.opts.lock().clone();
        let started = std::time::Instant::now();
        g.evaluate(m.reader.as_ref(), &m.appender, next, &opts)
            .await;
        let took = started.elapsed();
        if let Some(r) = m.router.lock().clone() {
            r.insert(router_alerts(&g, next, &opts));
        }
        let label = super::metrics::GroupLabel {
            rule_group: g.key(),
        };
        let met = &m.metrics;
        met.evaluations
            .get_or_create(&label)
            .inc_by(g.rules.len() as u64);
        let failed = g
            .rules
            .iter()
            .filter(|r| r.status.lock().health == "err")
            .count();
        met.evaluation_failures
            .get_or_create(&label)
            .inc_by(failed as u64);
        met.last_duration
            .get_or_create(&label)
            .set(took.as_secs_f64());
        met.interval
            .get_or_create(&label)
            .set(g.interval.as_secs_f64());
        met.rules.get_or_create(&label).set(g.rules.len() as i64);
        let firing: usize = g
            .rules
            .iter()
            .map(|r| {
                r.active
                    .lock()
                    .values()
                    .filter(|a| a.state == super::AlertState::Firing)
                    .count()
            })
            .sum();
        met.alerts_firing.get_or_create(&label).set(firing as i64);
        if took > g.interval {
            warn!(group = %g.config.name, seconds = took.as_secs_f64(), "rule group evaluation took longer than its interval");
        }
    }
}

/// The group's alerts as the router takes them, as Prometheus sends them to Alertmanager: firing
/// alerts with `endsAt` four intervals (at least four minutes) ahead, so they resolve by themselves if
/// Vigil stops sending them; resolved alerts with their resolution time. Pending alerts are not sent.
fn router_alerts(g: &Group, ts: i64, opts: &GroupOptions) -> Vec<crate::router::Alert> {
    let resend = 4 * (g.interval.as_millis() as i64).max(60_000);
    let mut out = Vec::new();
    for r in g.rules.iter().filter(|r| r.is_alerting()) {
        let url = format!(
            "{}/graph?g0.expr={}&g0.tab=1",
            opts.external_url,
            url_escape(&r.config.expr)
        );
        for a in r.active.lock().values() {
            let ends_at = match (a.state, a.resolved_at) {
                (super::AlertState::Firing, _) => ts + resend,
                (super::AlertState::Inactive, Some(t)) if a.fired_at.is_some() => t,
                _ => continue,
            };
            out.push(crate::router::Alert {
                labels: a.labels.clone(),
                annotations: a.annotations.clone(),
                starts_at: a.fired_at.unwrap_or(a.active_at),
                ends_at,
                generator_url: url.clone(),
                updated_at: ts,
            });
        }
    }
    out
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
