//! The running router: alerts in (from rules and `POST /api/v2/alerts`), silences and inhibition
//! applied, groups flushed on time, notifications delivered by the receivers' notifiers with retries.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use vigil_model::Labels;

use super::config::{AlertmanagerConfig, ReceiverConfig};
use super::dispatch::{Alert, Dispatcher, Notification};
use super::inhibit::{InhibitRule, inhibited};
use super::silence::SilenceStore;

/// The default configuration: every alert to one receiver with no integrations.
pub const DEFAULT_CONFIG: &str = "route:\n  receiver: default\nreceivers:\n  - name: default\n";

/// What the router needs from outside.
#[derive(Clone, Debug)]
pub struct RouterOptions {
    /// Where silences and the notification log are kept.
    pub data_dir: Option<PathBuf>,
    /// This server's URL, for `externalURL` in notifications.
    pub external_url: String,
}

struct Inner {
    intervals: Vec<super::timeinterval::NamedInterval>,
    config: AlertmanagerConfig,
    config_text: String,
    inhibit: Vec<InhibitRule>,
    dispatcher: Dispatcher,
}

/// Per-receiver notification metrics (`vigil_notifications_*`) and group flushes.
#[derive(Clone)]
pub struct RouterMetrics {
    pub notifications: prometheus_client::metrics::family::Family<
        ReceiverLabel,
        prometheus_client::metrics::counter::Counter,
    >,
    pub failed: prometheus_client::metrics::family::Family<
        ReceiverLabel,
        prometheus_client::metrics::counter::Counter,
    >,
    pub latency: prometheus_client::metrics::family::Family<
        ReceiverLabel,
        prometheus_client::metrics::histogram::Histogram,
    >,
    pub flushes: prometheus_client::metrics::counter::Counter,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct ReceiverLabel {
    pub receiver: String,
}

impl RouterMetrics {
    fn new() -> Self {
        RouterMetrics {
            notifications: Default::default(),
            failed: Default::default(),
            latency: prometheus_client::metrics::family::Family::new_with_constructor(|| {
                prometheus_client::metrics::histogram::Histogram::new(
                    prometheus_client::metrics::histogram::exponential_buckets(0.005, 2.0, 14),
                )
            }),
            flushes: Default::default(),
        }
    }

    pub fn register(&self, r: &mut prometheus_client::registry::Registry) {
        r.register(
            "vigil_notifications",
            "Notifications delivered, per receiver",
            self.notifications.clone(),
        );
        r.register(
            "vigil_notifications_failed",
            "Notifications that could not be delivered after retries, per receiver",
            self.failed.clone(),
        );
        r.register(
            "vigil_notification_latency_seconds",
            "Time to deliver a notification, retries included",
            self.latency.clone(),
        );
        r.register(
            "vigil_alert_group_flushes",
            "Alert group flushes (sent or deduplicated)",
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
    client: reqwest::Client,
    started: i64,
    /// Notifications being delivered (receiver, group key): a flush does not start a second one.
    in_flight: Mutex<std::collections::HashSet<(String, String)>>,
}

fn send_resolved_for(
    receivers: &[ReceiverConfig],
) -> impl Fn(&str) -> bool + Send + Sync + 'static {
    // A receiver wants resolved notifications when any of its integrations does (webhook and
    // PagerDuty default to yes, email to no).
    let map: BTreeMap<String, bool> = receivers
        .iter()
        .map(|r| {
            let flag = |v: &serde_yaml_ng::Value, default: bool| {
                v.get("send_resolved")
                    .and_then(|x| x.as_bool())
                    .unwrap_or(default)
            };
            let any = r.webhook_configs.iter().any(|c| flag(c, true))
                || r.pagerduty_configs.iter().any(|c| flag(c, true))
                || r.email_configs.iter().any(|c| flag(c, false));
            (r.name.clone(), any)
        })
        .collect();
    move |name: &str| map.get(name).copied().unwrap_or(false)
}

impl AlertRouter {
    pub fn new(config_text: &str, opts: RouterOptions) -> Result<Arc<AlertRouter>, String> {
        let config = AlertmanagerConfig::parse(config_text)?;
        let inhibit = config
            .inhibit_rules
            .iter()
            .map(InhibitRule::from_config)
            .collect::<Result<Vec<_>, _>>()?;
        let dispatcher =
            Dispatcher::new(config.root_route()?, send_resolved_for(&config.receivers));
        let silences = SilenceStore::open(opts.data_dir.as_ref().map(|d| d.join("silences.json")))?;
        let mut dispatcher = dispatcher;
        if let Some(p) = opts.data_dir.as_ref().map(|d| d.join("nflog.json"))
            && p.exists()
        {
            let text = std::fs::read_to_string(&p)
                .map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            let entries: Vec<((String, String), super::dispatch::LogEntry)> =
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?;
            dispatcher.restore_log(entries);
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Arc::new(AlertRouter {
            metrics: RouterMetrics::new(),
            inner: Mutex::new(Inner {
                intervals: config.intervals()?,
                config,
                config_text: config_text.to_string(),
                inhibit,
                dispatcher,
            }),
            silences: Mutex::new(silences),
            opts,
            client,
            started: vigil_model::now_ms(),
            in_flight: Mutex::new(Default::default()),
        }))
    }

    /// Applies a new configuration; alerts and groups stay.
    pub fn reload(&self, config_text: &str) -> Result<(), String> {
        let config = AlertmanagerConfig::parse(config_text)?;
        let inhibit = config
            .inhibit_rules
            .iter()
            .map(InhibitRule::from_config)
            .collect::<Result<Vec<_>, _>>()?;
        let mut g = self.inner.lock();
        let log = g.dispatcher.log().clone();
        let mut d = Dispatcher::new(config.root_route()?, send_resolved_for(&config.receivers));
        d.restore_log(log);
        // Re-insert the alerts held so far under the new tree.
        let now = vigil_model::now_ms();
        for (a, _) in g.dispatcher.alerts() {
            d.insert(a, now);
        }
        g.dispatcher = d;
        g.intervals = config.intervals()?;
        g.config = config;
        g.config_text = config_text.to_string();
        g.inhibit = inhibit;
        Ok(())
    }

    pub fn config_text(&self) -> String {
        self.inner.lock().config_text.clone()
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

    /// Every alert held, with its receivers and why it is muted.
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

    /// Writes the notification log, so a restart does not notify again what was already sent.
    fn persist_log(&self) {
        let Some(dir) = &self.opts.data_dir else {
            return;
        };
        let now = vigil_model::now_ms();
        let entries: Vec<((String, String), super::dispatch::LogEntry)> = self
            .inner
            .lock()
            .dispatcher
            .log()
            .iter()
            .filter(|(_, e)| e.at + super::silence::RETENTION_MS > now)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let p = dir.join("nflog.json");
        let tmp = dir.join("nflog.json.tmp");
        let res = serde_json::to_string(&entries)
            .map_err(|e| e.to_string())
            .and_then(|t| std::fs::write(&tmp, t).map_err(|e| e.to_string()))
            .and_then(|_| std::fs::rename(&tmp, &p).map_err(|e| e.to_string()));
        if let Err(e) = res {
            warn!(error = %e, "cannot persist the notification log");
        }
    }

    /// Flushes due groups at `now` and returns the notifications, muted alerts removed.
    pub fn tick(&self, now: i64) -> Vec<Notification> {
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
        let muted = |r: &super::config::Route, _: i64| {
            active(&r.mute_time_intervals)
                || (!r.active_time_intervals.is_empty() && !active(&r.active_time_intervals))
        };
        let out = dispatcher.tick_with(now, &keep, &muted);
        self.metrics.flushes.inc_by(dispatcher.flushes - before);
        out
    }

    /// Runs until cancelled: flush every second, deliver, record what was delivered.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            let now = vigil_model::now_ms();
            for n in self.tick(now) {
                let key = (n.receiver.clone(), n.group_key.clone());
                if !self.in_flight.lock().insert(key.clone()) {
                    continue;
                }
                let me = self.clone();
                tokio::spawn(async move {
                    let label = ReceiverLabel {
                        receiver: n.receiver.clone(),
                    };
                    let t0 = std::time::Instant::now();
                    if me.deliver(&n).await {
                        me.metrics.notifications.get_or_create(&label).inc();
                        me.metrics
                            .latency
                            .get_or_create(&label)
                            .observe(t0.elapsed().as_secs_f64());
                        me.inner.lock().dispatcher.sent(&n);
                        me.persist_log();
                    } else {
                        me.metrics.failed.get_or_create(&label).inc();
                    }
                    me.in_flight.lock().remove(&key);
                });
            }
        }
    }

    /// POSTs a JSON body; success on 2xx (and on 400 when `bad_request_is_final`, logged).
    async fn post_json(
        &self,
        url: &str,
        body: &Value,
        bad_request_is_final: bool,
    ) -> Result<(), String> {
        match self.client.post(url).json(body).send().await {
            Ok(resp) if resp.status().is_success() => Ok(()),
            Ok(resp) if bad_request_is_final && resp.status().as_u16() == 400 => {
                warn!(
                    url,
                    "the receiver refused the notification as invalid; not retrying"
                );
                Ok(())
            }
            Ok(resp) => Err(format!("status {}", resp.status())),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Delivers a notification to every integration of its receiver, each retried with backoff for up
    /// to a minute; true when all succeeded. A failed notification is not logged as sent, so the group's
    /// next flush tries again: nothing is lost while a receiver is down, and nothing is sent twice.
    pub async fn deliver(&self, n: &Notification) -> bool {
        let (receiver, global) = {
            let g = self.inner.lock();
            (
                g.config
                    .receivers
                    .iter()
                    .find(|r| r.name == n.receiver)
                    .cloned(),
                g.config.global.clone(),
            )
        };
        let Some(r) = receiver else { return true };
        let mut ok = true;
        for w in &r.webhook_configs {
            let Some(url) = w.get("url").and_then(|u| u.as_str()) else {
                continue;
            };
            let max = w.get("max_alerts").and_then(|m| m.as_u64()).unwrap_or(0) as usize;
            let body = webhook_payload(n, &self.opts.external_url, max);
            ok &= retry(&n.receiver, url, || self.post_json(url, &body, false)).await;
        }
        for p in &r.pagerduty_configs {
            let cfg = match super::pagerduty::PagerDutyConfig::from_yaml(
                p,
                &global,
                &self.opts.external_url,
            ) {
                Ok(c) => c,
                Err(err) => {
                    warn!(receiver = %n.receiver, error = %err, "PagerDuty receiver misconfigured");
                    ok = false;
                    continue;
                }
            };
            if n.firing().next().is_none() && !cfg.send_resolved {
                continue;
            }
            let body = super::pagerduty::event(&cfg, n);
            // PagerDuty answers 400 to an invalid event: retrying cannot help.
            ok &= retry(&n.receiver, &cfg.url, || {
                self.post_json(&cfg.url, &body, true)
            })
            .await;
        }
        for e in &r.email_configs {
            let cfg = match super::email::EmailConfig::from_yaml(e, &global) {
                Ok(c) => c,
                Err(err) => {
                    warn!(receiver = %n.receiver, error = %err, "email receiver misconfigured");
                    ok = false;
                    continue;
                }
            };
            if n.firing().next().is_none() && !cfg.send_resolved {
                continue;
            }
            let what = format!("smtp://{} to {}", cfg.smarthost, cfg.to);
            ok &= retry(&n.receiver, &what, || super::email::send(&cfg, n)).await;
        }
        ok
    }
}

/// Runs `f` until it succeeds, backing off from 0.5 s to 10 s, for at most a minute.
async fn retry<F, Fut>(receiver: &str, target: &str, f: F) -> bool
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut delay = Duration::from_millis(500);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match f().await {
            Ok(()) => {
                info!(receiver, target, "notification sent");
                return true;
            }
            Err(e) => warn!(receiver, target, error = %e, "notification failed; will retry"),
        }
        if tokio::time::Instant::now() + delay > deadline {
            return false;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}

use vigil_query::format::rfc3339_ms as time;

/// The alert as Alertmanager's notifications and v2 API print it.
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

/// Labels (or annotations) every alert shares.
fn common(maps: Vec<BTreeMap<String, String>>) -> BTreeMap<String, String> {
    let mut it = maps.into_iter();
    let Some(mut acc) = it.next() else {
        return BTreeMap::new();
    };
    for m in it {
        acc.retain(|k, v| m.get(k) == Some(v));
    }
    acc
}

/// Alertmanager's webhook payload, version 4.
pub fn webhook_payload(n: &Notification, external_url: &str, max_alerts: usize) -> Value {
    let firing = n.alerts.iter().any(|a| !a.resolved_at(n.at));
    let labels = |a: &Alert| {
        a.labels
            .iter()
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect::<BTreeMap<_, _>>()
    };
    let common_labels = common(n.alerts.iter().map(labels).collect());
    let common_annotations = common(n.alerts.iter().map(|a| a.annotations.clone()).collect());
    let shown = if max_alerts > 0 {
        n.alerts.len().min(max_alerts)
    } else {
        n.alerts.len()
    };
    json!({
        "version": "4",
        "groupKey": n.group_key,
        "truncatedAlerts": n.alerts.len() - shown,
        "status": if firing { "firing" } else { "resolved" },
        "receiver": n.receiver,
        "groupLabels": n.group_labels,
        "commonLabels": common_labels,
        "commonAnnotations": common_annotations,
        "externalURL": external_url,
        "alerts": n.alerts[..shown].iter().map(|a| alert_json(a, n.at)).collect::<Vec<_>>(),
    })
}
