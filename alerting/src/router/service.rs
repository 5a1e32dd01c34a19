//! The running router: alerts in (from rules and `POST /api/v2/alerts`), silences and inhibition
//! applied, groups flushed on time, each integration of the receiver told what is new for it, with
//! retries until the group's next flush, and the notification log kept on disk.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use vigil_model::Labels;

use super::config::AlertmanagerConfig;
use super::dispatch::{Alert, Dispatcher, Flush, LogEntry, LogKey, needs_update};
use super::inhibit::{InhibitRule, inhibited};
use super::silence::SilenceStore;
use crate::notify::{Integration, Message, Receivers};

/// The default configuration: every alert to one receiver with no integrations.
pub const DEFAULT_CONFIG: &str = "route:\n  receiver: default\nreceivers:\n  - name: default\n";

/// What the router needs from outside.
#[derive(Clone, Debug)]
pub struct RouterOptions {
    /// Where silences and the notification log are kept.
    pub data_dir: Option<PathBuf>,
    /// This server's URL, for `externalURL` in notifications.
    pub external_url: String,
    /// Where relative `templates:` paths start (the alertmanager.yml's directory).
    pub base_dir: PathBuf,
}

struct Inner {
    intervals: Vec<super::timeinterval::NamedInterval>,
    config: AlertmanagerConfig,
    receivers: Receivers,
    inhibit: Vec<InhibitRule>,
    dispatcher: Dispatcher,
}

/// Labels of the per-integration notification metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct IntegrationLabel {
    pub receiver: String,
    pub integration: String,
}

/// Notification metrics (`vigil_notifications_*`, `vigil_notification_requests_*`) and group
/// flushes.
#[derive(Clone)]
pub struct RouterMetrics {
    pub notifications: Family<IntegrationLabel, Counter>,
    pub failed: Family<IntegrationLabel, Counter>,
    pub requests: Family<IntegrationLabel, Counter>,
    pub requests_failed: Family<IntegrationLabel, Counter>,
    pub latency: Family<IntegrationLabel, Histogram>,
    pub flushes: Counter,
}

impl RouterMetrics {
    fn new() -> Self {
        RouterMetrics {
            notifications: Default::default(),
            failed: Default::default(),
            requests: Default::default(),
            requests_failed: Default::default(),
            latency: Family::new_with_constructor(|| {
                Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                    0.005, 2.0, 14,
                ))
            }),
            flushes: Default::default(),
        }
    }

    pub fn register(&self, r: &mut prometheus_client::registry::Registry) {
        r.register(
            "vigil_notifications",
            "Notifications delivered, per receiver and integration",
            self.notifications.clone(),
        );
        r.register(
            "vigil_notifications_failed",
            "Notifications given up on (unrecoverable error, or still failing at the group's next flush)",
            self.failed.clone(),
        );
        r.register(
            "vigil_notification_requests",
            "Delivery attempts, retries included",
            self.requests.clone(),
        );
        r.register(
            "vigil_notification_requests_failed",
            "Delivery attempts that failed",
            self.requests_failed.clone(),
        );
        r.register(
            "vigil_notification_latency_seconds",
            "Time of one delivery attempt",
            self.latency.clone(),
        );
        r.register(
            "vigil_alert_group_flushes",
            "Alert group flushes (sent, deduplicated or muted)",
            self.flushes.clone(),
        );
    }
}

/// The alert router.
pub struct AlertRouter {
    pub metrics: RouterMetrics,
    inner: Mutex<Inner>,
    pub silences: Mutex<SilenceStore>,
    opts: RouterOptions,
    started: i64,
    /// Serialises writes of the notification log.
    persist: tokio::sync::Mutex<()>,
}

/// Loads and builds a configuration: the routing tree, inhibition rules and every integration
/// (templates parsed, clients built), so nothing is left to fail at delivery.
fn load(
    text: &str,
    opts: &RouterOptions,
) -> Result<(AlertmanagerConfig, Receivers, Vec<InhibitRule>), String> {
    let config = AlertmanagerConfig::parse(text)?;
    let receivers = crate::notify::build(&config, &opts.base_dir)?;
    let inhibit = config
        .inhibit_rules
        .iter()
        .map(InhibitRule::from_config)
        .collect::<Result<Vec<_>, _>>()?;
    Ok((config, receivers, inhibit))
}

/// Checks an alertmanager.yml as the router would load it (for `vigil check config`).
pub fn check(text: &str, base_dir: &std::path::Path) -> Result<AlertmanagerConfig, String> {
    let opts = RouterOptions {
        data_dir: None,
        external_url: String::new(),
        base_dir: base_dir.to_path_buf(),
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

    /// Writes the notification log (fsynced, off the async threads), so a restart does not
    /// notify again what was already sent.
    async fn persist_log(&self) {
        let Some(dir) = self.opts.data_dir.clone() else {
            return;
        };
        let _one = self.persist.lock().await;
        let now = vigil_model::now_ms();
        let entries: Vec<(LogKey, LogEntry)> = {
            let mut g = self.inner.lock();
            g.dispatcher.expire_log(now);
            g.dispatcher
                .log()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        let res = tokio::task::spawn_blocking(move || {
            let body = serde_json::to_vec(&entries).map_err(|e| e.to_string())?;
            crate::persist::write_durably(&dir.join("nflog.json"), &body).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
        if let Err(e) = res {
            warn!(error = %e, "cannot persist the notification log");
        }
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

    /// Delivers a flush to every integration of its receiver, concurrently; true when all of them
    /// succeeded or had nothing new to say.
    pub async fn deliver(&self, f: &Flush) -> bool {
        let (integrations, templates) = {
            let g = self.inner.lock();
            match g.receivers.by_name.get(&f.receiver) {
                Some(i) => (i.clone(), g.receivers.templates.clone()),
                None => return true,
            }
        };
        let results = futures::future::join_all(
            integrations
                .iter()
                .map(|i| self.deliver_to(f, i, &templates)),
        )
        .await;
        if results.iter().any(|(_, logged)| *logged) {
            self.persist_log().await;
        }
        results.iter().all(|(ok, _)| *ok)
    }

    /// One integration: dedup against its own log entry, then attempts with backoff until the
    /// group's next flush (Alertmanager's DedupStage, RetryStage and SetNotifiesStage). Answers
    /// (succeeded or nothing to do, notification log changed).
    async fn deliver_to(
        &self,
        f: &Flush,
        i: &Integration,
        templates: &crate::notify::TemplateSet,
    ) -> (bool, bool) {
        let name = i.name();
        let key: LogKey = (f.group_id.clone(), f.receiver.clone(), name.clone());
        let needed = {
            let g = self.inner.lock();
            needs_update(g.dispatcher.log_entry(&key), f, i.send_resolved)
        };
        if !needed {
            return (true, false);
        }
        let alerts: Vec<Alert> = if i.send_resolved {
            f.alerts.clone()
        } else {
            f.alerts
                .iter()
                .filter(|a| !a.resolved_at(f.at))
                .cloned()
                .collect()
        };
        if alerts.is_empty() {
            // Only resolved alerts for an integration that does not announce them: nothing is
            // sent, but the log records it so that a new firing is news again.
            self.inner.lock().dispatcher.sent(f, &name);
            return (true, true);
        }
        let label = IntegrationLabel {
            receiver: f.receiver.clone(),
            integration: i.kind.to_string(),
        };
        let msg = Message {
            receiver: &f.receiver,
            group_key: &f.group_key,
            group_labels: &f.group_labels,
            alerts: &alerts,
            now: f.at,
            external_url: &self.opts.external_url,
            templates,
        };
        let mut backoff = Duration::from_millis(500);
        let mut attempts = 0u32;
        let mut last_error = String::new();
        loop {
            attempts += 1;
            self.metrics.requests.get_or_create(&label).inc();
            let t0 = std::time::Instant::now();
            let res = i.notifier.notify(&msg).await;
            self.metrics
                .latency
                .get_or_create(&label)
                .observe(t0.elapsed().as_secs_f64());
            match res {
                Ok(()) => {
                    info!(receiver = %f.receiver, integration = %name, attempts, "notification sent");
                    self.metrics.notifications.get_or_create(&label).inc();
                    self.inner.lock().dispatcher.sent(f, &name);
                    return (true, true);
                }
                Err(e) => {
                    self.metrics.requests_failed.get_or_create(&label).inc();
                    if !e.retry {
                        warn!(receiver = %f.receiver, integration = %name, attempts, error = %e,
                            "notification failed with an unrecoverable error; trying again at the group's next flush");
                        self.metrics.failed.get_or_create(&label).inc();
                        return (false, false);
                    }
                    if e.message != last_error {
                        warn!(receiver = %f.receiver, integration = %name, attempts, error = %e, "notification attempt failed; will retry");
                    } else {
                        debug!(receiver = %f.receiver, integration = %name, attempts, error = %e, "notification attempt failed again");
                    }
                    last_error = e.message;
                }
            }
            // Jittered exponential backoff (×1.5, ±50 %, at most 60 s) until the next flush.
            let jitter = 0.5 + rand::random::<f64>();
            let wait = backoff.mul_f64(jitter);
            if vigil_model::now_ms() + wait.as_millis() as i64 >= f.deadline {
                warn!(receiver = %f.receiver, integration = %name, attempts, error = %last_error,
                    "notification still failing at the group's next flush; it will be retried then");
                self.metrics.failed.get_or_create(&label).inc();
                return (false, false);
            }
            tokio::time::sleep(wait).await;
            backoff = backoff.mul_f64(1.5).min(Duration::from_secs(60));
        }
    }
}

use vigil_query::format::rfc3339_ms as time;

/// The alert as Alertmanager's v2 API prints it.
pub fn alert_json(a: &Alert, now: i64) -> Value {
    json!({
        "status": if a.resolved_at(now) { "resolved" } else { "firing" },
        "labels": a.labels,
        "annotations": a.annotations,
        "startsAt": time(a.starts_at),
        "endsAt": time(a.ends_at),
        "generatorURL": a.generator_url,
        "fingerprint": format!("{:016x}", a.fingerprint()),
    })
}

/// Labels every alert shares (for the v2 API's groups).
pub fn common_labels(alerts: &[Alert]) -> BTreeMap<String, String> {
    crate::notify::common(alerts.iter().map(|a| {
        a.labels
            .iter()
            .map(|l| (l.name.to_string(), l.value.to_string()))
            .collect()
    }))
}
