//! The router's own metrics: notifications and delivery attempts per receiver and integration,
//! their latency, and group flushes.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

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
    pub(super) fn new() -> Self {
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
