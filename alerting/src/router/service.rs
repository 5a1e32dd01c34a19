//! The running router: alerts in (from rules and `POST /api/v2/alerts`), silences and inhibition
//! applied, groups flushed on time and handed to [delivery](super::deliver), configuration loaded
//! and reloaded as a whole.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;
use tracing::warn;
use vigil_model::Labels;

use super::config::AlertmanagerConfig;
use super::dispatch::{Alert, Dispatcher, Flush, LogEntry, LogKey};
use super::inhibit::{InhibitRule, inhibited};
use super::metrics::RouterMetrics;
use super::silence::SilenceStore;
use crate::notify::Receivers;

/// The default configuration: every alert to one receiver with no integrations.
pub const DEFAULT_CONFIG: &str = "route:\n  receiver: default\nreceivers:\n  - name: default\n";

/// What the router needs from outside.
#[derive(Clone)]
pub struct RouterOptions {
    /// Where silences and the notification log are kept.
    pub data_dir: Option<PathBuf>,
    /// This server's URL, for `externalURL` in notifications.
    pub external_url: String,
    /// Where relative `templates:` paths start (the alertmanager.yml's directory).
    pub base_dir: PathBuf,
    /// Builds `runbook_configs` entries (the remediation part), when runbooks are configured.
    pub runbooks: Option<Arc<dyn crate::notify::runbook::RunbookFactory>>,
}

impl std::fmt::Debug for RouterOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouterOptions")
            .field("data_dir", &self.data_dir)
            .field("external_url", &self.external_url)
            .field("base_dir", &self.base_dir)
            .field("runbooks", &self.runbooks.is_some())
            .finish()
    }
}

pub(super) struct Inner {
    pub(super) intervals: Vec<super::timeinterval::NamedInterval>,
    pub(super) config: AlertmanagerConfig,
    pub(super) receivers: Receivers,
    pub(super) inhibit: Vec<InhibitRule>,
    pub(super) dispatcher: Dispatcher,
}

/// The alert router.
pub struct AlertRouter {
    pub metrics: RouterMetrics,
    pub(super) inner: Mutex<Inner>,
    pub silences: Mutex<SilenceStore>,
    pub(super) opts: RouterOptions,
    started: i64,
    /// Serialises writes of the notification log.
    pub(super) persist: tokio::sync::Mutex<()>,
}

/// Loads and builds a configuration: the routing tree, inhibition rules and every integration
/// (templates parsed, clients built), so nothing is left to fail at delivery.
fn load(
    text: &str,
    opts: &RouterOptions,
) -> Result<(AlertmanagerConfig, Receivers, Vec<InhibitRule>), String> {
    let config = AlertmanagerConfig::parse(text)?;
    let receivers = crate::notify::build(&config, &opts.base_dir, opts.runbooks.as_deref())?;
    let inhibit = config
        .inhibit_rules
        .iter()
        .map(InhibitRule::from_config)
        .collect::<Result<Vec<_>, _>>()?;
    Ok((config, receivers, inhibit))
}

/// Checks an alertmanager.yml as the router would load it (for `vigil check config`).
pub fn check(
    text: &str,
    base_dir: &std::path::Path,
    runbooks: Option<Arc<dyn crate::notify::runbook::RunbookFactory>>,
) -> Result<AlertmanagerConfig, String> {
    let opts = RouterOptions {
        data_dir: None,
        external_url: String::new(),
        base_dir: base_dir.to_path_buf(),
        runbooks,
    };
    load(text, &opts).map(|(c, _, _)| c)
}

impl AlertRouter {
    pub fn new(config_text: &str, opts: RouterOptions) -> Result<Arc<AlertRouter>, String> {
        let (config, receivers, inhibit) = load(config_text, &opts)?;
        let mut dispatcher = Dispatcher::new(config.root_route()?);
        let silences = SilenceStore::open(opts.data_dir.as_ref().map(|d| d.join("silences.json")))?;
        if let Some(p) = opts.data_dir.as_ref().map(|d| d.join("nflog.json"))
            && p.exists()
        {
            let text = std::fs::read_to_string(&p)
                .map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            // A log from an older version (another key shape) is dropped, not fatal: at worst one
            // repeated notification.
            match serde_json::from_str::<Vec<(LogKey, LogEntry)>>(&text) {
                Ok(entries) => dispatcher.restore_log(entries),
                Err(e) => {
                    warn!(file = %p.display(), error = %e, "ignoring an unreadable notification log")
                }
            }
        }
        Ok(Arc::new(AlertRouter {
            metrics: RouterMetrics::new(),
            inner: Mutex::new(Inner {
                intervals: config.intervals()?,
                config,
                receivers,
                inhibit,
                dispatcher,
            }),
            silences: Mutex::new(silences),
            opts,
            started: vigil_model::now_ms(),
            persist: tokio::sync::Mutex::new(()),
        }))
    }

    /// Applies a new configuration; alerts, groups and the notification log stay.
    pub fn reload(&self, config_text: &str) -> Result<(), String> {
        let (config, receivers, inhibit) = load(config_text, &self.opts)?;
        let intervals = config.intervals()?;
        let mut d = Dispatcher::new(config.root_route()?);
        let mut g = self.inner.lock();
        d.restore_log(g.dispatcher.log().clone());
        // Re-insert the alerts held so far under the new tree.
        let now = vigil_model::now_ms();
        for (a, _) in g.dispatcher.alerts() {
            d.insert(a, now);
        }
        *g = Inner {
            intervals,
            config,
            receivers,
            inhibit,
            dispatcher: d,
        };
        Ok(())
    }

    /// The loaded configuration as YAML, defaults filled in and every secret shown as
    /// `<secret>` (Alertmanager's `config.original`).
    pub fn config_text(&self) -> String {
        serde_yaml_ng::to_string(&self.inner.lock().config).unwrap_or_default()
    }

    /// `global.resolve_timeout` in ms: the end of an alert posted without `endsAt`.
    pub fn resolve_timeout_ms(&self) -> i64 {
        self.inner.lock().config.global.resolve_timeout.as_millis()
    }

    pub fn receivers(&self) -> Vec<String> {
        self.inner
            .lock()
            .config
            .receivers
            .iter()
            .map(|r| r.name.clone())
            .collect()
    }

    pub fn started(&self) -> i64 {
        self.started
    }

    /// Adds or updates alerts.
    pub fn insert(&self, alerts: Vec<Alert>) {
        let now = vigil_model::now_ms();
        let mut g = self.inner.lock();
        for a in alerts {
            g.dispatcher.insert(a, now);
        }
    }

    /// Every alert held, with its receivers, the silences muting it and whether it is inhibited.
    pub fn alerts(&self, now: i64) -> Vec<(Alert, Vec<String>, Vec<String>, bool)> {
        let g = self.inner.lock();
        let all: Vec<(Alert, Vec<String>)> = g.dispatcher.alerts();
        let plain: Vec<Alert> = all.iter().map(|(a, _)| a.clone()).collect();
        let sil = self.silences.lock();
        all.into_iter()
            .map(|(a, r)| {
                let s = sil.muting(&a.labels, now);
                let inh = inhibited(&g.inhibit, &a, &plain, now);
                (a, r, s, inh)
            })
            .collect()
    }

    /// Alert groups, for `/api/v2/alerts/groups`.
    pub fn groups(&self) -> Vec<(Labels, String, Vec<Alert>)> {
        self.inner.lock().dispatcher.groups()
    }

    /// Flushes due groups at `now`: silenced, inhibited and time-muted alerts removed.
    pub fn tick(&self, now: i64) -> Vec<Flush> {
        let mut g = self.inner.lock();
        let Inner {
            dispatcher,
            inhibit,
            intervals,
            ..
        } = &mut *g;
        let before = dispatcher.flushes;
        // Inhibition compares with every held alert: only collect them when there are rules.
        let plain: Vec<Alert> = if inhibit.is_empty() {
            Vec::new()
        } else {
            dispatcher.alerts().into_iter().map(|(a, _)| a).collect()
        };
        let sil = self.silences.lock();
        let keep = |a: &Alert| {
            sil.muting(&a.labels, now).is_empty() && !inhibited(inhibit, a, &plain, now)
        };
        let active = |names: &[String]| {
            names
                .iter()
                .any(|n| intervals.iter().any(|i| i.name == *n && i.contains(now)))
        };
        // A route is muted while one of its mute intervals is active, or while none of its active
        // intervals (when it has some) is.
        let muted = |r: &super::config::Route| {
            active(&r.mute_time_intervals)
                || (!r.active_time_intervals.is_empty() && !active(&r.active_time_intervals))
        };
        let out = dispatcher.tick(now, &keep, &muted);
        self.metrics.flushes.inc_by(dispatcher.flushes - before);
        out
    }

    /// Runs until cancelled: flush every second, deliver each flush in its own task.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            for f in self.tick(vigil_model::now_ms()) {
                let me = self.clone();
                let cancel = cancel.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        ok = me.deliver(&f) => {
                            me.inner.lock().dispatcher.finished(&f, ok);
                        }
                        // Shutdown: the flush is not logged, so it is delivered after restart.
                        _ = cancel.cancelled() => {}
                    }
                });
            }
        }
    }
}
