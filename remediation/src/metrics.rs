//! `vigil_runbook_*`: executions by runbook and outcome, run durations, instantiation time, host
//! calls by capability and status, and policy refusals by reason.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub runbook: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunbookLabel {
    pub runbook: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabel {
    pub capability: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CapabilityLabel {
    pub capability: String,
}

#[derive(Clone)]
pub struct RunbookMetrics {
    pub executions: Family<OutcomeLabel, Counter>,
    pub duration: Family<RunbookLabel, Histogram>,
    pub instantiate: Histogram,
    pub host_calls: Family<CallLabel, Counter>,
    pub refusals: Family<RefusalLabel, Counter>,
    pub breaker_open: Family<CapabilityLabel, Gauge>,
}

impl Default for RunbookMetrics {
    fn default() -> Self {
        RunbookMetrics {
            executions: Default::default(),
            duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 4.0, 10))
            }),
            instantiate: Histogram::new(exponential_buckets(0.000_001, 4.0, 10)),
            host_calls: Default::default(),
            refusals: Default::default(),
            breaker_open: Default::default(),
        }
    }
}

impl RunbookMetrics {
    pub fn register(&self, r: &mut prometheus_client::registry::Registry) {
        let r = r.sub_registry_with_prefix("vigil_runbook");
        r.register(
            "executions",
            "Runbook executions by runbook and outcome (pending, succeeded, failed, timed_out, denied, escalated, verified)",
            self.executions.clone(),
        );
        r.register(
            "run_duration_seconds",
            "Time of one runbook run in the sandbox",
            self.duration.clone(),
        );
        r.register(
            "instantiate_seconds",
            "Time to instantiate a compiled runbook",
            self.instantiate.clone(),
        );
        r.register(
            "host_calls",
            "Capability calls made by runbooks, by capability and status",
            self.host_calls.clone(),
        );
        r.register(
            "policy_refusals",
            "Runs and actions the policy refused, by reason (locked, cooldown, max_attempts, concurrency, blast_radius)",
            self.refusals.clone(),
        );
        r.register(
            "breaker_open",
            "1 while the blast-radius breaker of a capability is open (its actions are refused until reset)",
            self.breaker_open.clone(),
        );
    }

    /// The gauge of each breaker, from the policy's state.
    pub fn breakers(&self, open: &[String], closed: &[String]) {
        for (caps, v) in [(open, 1), (closed, 0)] {
            for c in caps {
                self.breaker_open
                    .get_or_create(&CapabilityLabel {
                        capability: c.clone(),
                    })
                    .set(v);
            }
        }
    }

    pub fn refused(&self, r: &crate::policy::Refusal) {
        let reason = serde_json::to_value(r)
            .ok()
            .and_then(|v| v["refused"].as_str().map(str::to_string))
            .unwrap_or_default();
        self.refusals.get_or_create(&RefusalLabel { reason }).inc();
    }
}
