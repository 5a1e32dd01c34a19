//! Delivery of a flush: each integration of the receiver told what is new for it (deduplicated
//! against its own notification-log entry), with backoff until the group's next flush, and the
//! notification log written durably after a change (Alertmanager's DedupStage, RetryStage and
//! SetNotifiesStage).

use std::time::Duration;

use tracing::{debug, info, warn};

use super::dispatch::{Alert, Flush, LogEntry, LogKey, needs_update};
use super::metrics::IntegrationLabel;
use super::service::AlertRouter;
use crate::notify::{Integration, Message};

impl AlertRouter {
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

impl AlertRouter {
    /// Sends `alerts` once to every integration of `receiver`, outside grouping and the
    /// notification log: an escalation from a runbook that did not fix its alert. Errors name the
    /// integrations that failed.
    pub async fn notify_receiver(&self, receiver: &str, alerts: Vec<Alert>) -> Result<(), String> {
        let (integrations, templates) = {
            let g = self.inner.lock();
            match g.receivers.by_name.get(receiver) {
                Some(i) => (i.clone(), g.receivers.templates.clone()),
                None => return Err(format!("no receiver named {receiver:?}")),
            }
        };
        let group_labels = vigil_model::Labels::from_pairs(
            alerts
                .first()
                .and_then(|a| a.labels.get("alertname"))
                .map(|n| ("alertname", n.to_string())),
        );
        let group_key = format!(
            "{{}}/escalation:{{alertname={:?}}}",
            group_labels.get("alertname").unwrap_or("")
        );
        let msg = Message {
            receiver,
            group_key: &group_key,
            group_labels: &group_labels,
            alerts: &alerts,
            now: vigil_model::now_ms(),
            external_url: &self.opts.external_url,
            templates: &templates,
        };
        let mut failed = Vec::new();
        for i in integrations.iter() {
            let label = IntegrationLabel {
                receiver: receiver.to_string(),
                integration: i.kind.to_string(),
            };
            self.metrics.requests.get_or_create(&label).inc();
            match i.notifier.notify(&msg).await {
                Ok(()) => {
                    self.metrics.notifications.get_or_create(&label).inc();
                }
                Err(e) => {
                    self.metrics.requests_failed.get_or_create(&label).inc();
                    failed.push(format!("{}: {e}", i.name()));
                }
            }
        }
        if failed.is_empty() {
            info!(receiver, "escalation sent");
            Ok(())
        } else {
            Err(failed.join("; "))
        }
    }
}
