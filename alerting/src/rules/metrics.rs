//! The rule engine's own metrics (`vigil_rule_*`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::gauge::Gauge as FloatGaugeBase;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupLabel {
    pub rule_group: String,
}

type FloatGauge = FloatGaugeBase<f64, AtomicU64>;

/// Metrics of rule evaluation, per group (`rule_group` = `file;name`, as Prometheus labels them).
#[derive(Clone, Default)]
pub struct RuleMetrics {
    pub evaluations: Family<GroupLabel, Counter>,
    pub evaluation_failures: Family<GroupLabel, Counter>,
    pub last_duration: Family<GroupLabel, FloatGauge>,
    pub interval: Family<GroupLabel, FloatGauge>,
    pub rules: Family<GroupLabel, Gauge>,
    pub alerts_firing: Family<GroupLabel, Gauge>,
}

impl RuleMetrics {
    pub fn register(&self, r: &mut Registry) {
        let r = r.sub_registry_with_prefix("vigil_rule");
        r.register(
            "evaluations",
            "Rule evaluations, per group (one per rule per interval)",
            self.evaluations.clone(),
        );
        r.register(
            "evaluation_failures",
            "Rule evaluations that failed, per group",
            self.evaluation_failures.clone(),
        );
        r.register(
            "group_last_duration_seconds",
            "Duration of the last evaluation of the group",
            self.last_duration.clone(),
        );
        r.register(
            "group_interval_seconds",
            "Evaluation interval of the group",
            self.interval.clone(),
        );
        r.register("group_rules", "Rules in the group", self.rules.clone());
        r.register(
            "group_alerts_firing",
            "Firing alerts of the group's rules",
            self.alerts_firing.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes() {
        let m = RuleMetrics::default();
        let mut r = Registry::default();
        m.register(&mut r);
        m.evaluations
            .get_or_create(&GroupLabel {
                rule_group: "f;g".into(),
            })
            .inc();
        m.last_duration
            .get_or_create(&GroupLabel {
                rule_group: "f;g".into(),
            })
            .set(0.5);
        let mut s = String::new();
        prometheus_client::encoding::text::encode(&mut s, &r).unwrap();
        assert!(
            s.contains("vigil_rule_evaluations_total{rule_group=\"f;g\"} 1"),
            "{s}"
        );
        assert!(
            s.contains("vigil_rule_group_last_duration_seconds{rule_group=\"f;g\"} 0.5"),
            "{s}"
        );
    }
}
