//! Ingest's own metrics (`vigil_ingest_*`, `vigil_scrape_*`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProtocolLabel {
    pub protocol: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProtocolCodeLabel {
    pub protocol: &'static str,
    pub code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProtocolReasonLabel {
    pub protocol: &'static str,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabel {
    pub job: String,
}

/// Every metric ingest exports.
#[derive(Clone)]
pub struct IngestMetrics {
    pub requests: Family<ProtocolCodeLabel, Counter>,
    pub request_seconds: Family<ProtocolLabel, Histogram>,
    pub samples_received: Family<ProtocolLabel, Counter>,
    pub samples_written: Family<ProtocolLabel, Counter>,
    pub series_invalid: Family<ProtocolReasonLabel, Counter>,
    pub exemplars_written: Family<ProtocolLabel, Counter>,
    pub exemplars_dropped: Family<ProtocolLabel, Counter>,
    pub scrapes: Family<JobLabel, Counter>,
    pub scrapes_failed: Family<JobLabel, Counter>,
    pub scrape_targets: Family<JobLabel, Gauge>,
    pub sd_file_errors: Counter,
    /// `/probe` requests answered.
    pub probes_served: Counter,
    /// Probes of `probe_configs` jobs run, failed (`probe_success` 0) and started late.
    pub probes_run: Family<JobLabel, Counter>,
    pub probes_failed: Family<JobLabel, Counter>,
    pub probes_late: Family<JobLabel, Counter>,
    /// `/probe` requests naming a module the blackbox.yml does not have.
    pub probe_module_unknown: Counter,
    /// Log entries received, stored, and refused by reason (Loki push, OTLP logs).
    pub log_entries_received: Family<ProtocolLabel, Counter>,
    pub log_entries_written: Family<ProtocolLabel, Counter>,
    pub log_bytes_written: Family<ProtocolLabel, Counter>,
    pub log_entries_rejected: Family<ProtocolReasonLabel, Counter>,
}

impl Default for IngestMetrics {
    fn default() -> Self {
        IngestMetrics {
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0005, 2.0, 16))
            }),
            samples_received: Family::default(),
            samples_written: Family::default(),
            series_invalid: Family::default(),
            exemplars_written: Family::default(),
            exemplars_dropped: Family::default(),
            scrapes: Family::default(),
            scrapes_failed: Family::default(),
            scrape_targets: Family::default(),
            sd_file_errors: Counter::default(),
            probes_served: Counter::default(),
            probes_run: Family::default(),
            probes_failed: Family::default(),
            probes_late: Family::default(),
            probe_module_unknown: Counter::default(),
            log_entries_received: Family::default(),
            log_entries_written: Family::default(),
            log_bytes_written: Family::default(),
            log_entries_rejected: Family::default(),
        }
    }
}

impl IngestMetrics {
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("vigil_ingest");
        r.register(
            "requests",
            "Push requests handled, by protocol and HTTP status",
            self.requests.clone(),
        );
        r.register(
            "request_duration_seconds",
            "Push request handling time",
            self.request_seconds.clone(),
        );
        r.register(
            "samples_received",
            "Samples received, by protocol",
            self.samples_received.clone(),
        );
        r.register(
            "samples_written",
            "Samples stored, by protocol",
            self.samples_written.clone(),
        );
        r.register(
            "series_invalid",
            "Series refused for invalid labels, by protocol and reason",
            self.series_invalid.clone(),
        );
        r.register(
            "exemplars_written",
            "Exemplars stored",
            self.exemplars_written.clone(),
        );
        r.register(
            "exemplars_dropped",
            "Exemplars not stored (exemplar storage disabled or invalid)",
            self.exemplars_dropped.clone(),
        );
        r.register(
            "log_entries_received",
            "Log entries received, by protocol",
            self.log_entries_received.clone(),
        );
        r.register(
            "log_entries_written",
            "Log entries stored, by protocol",
            self.log_entries_written.clone(),
        );
        r.register(
            "log_written_bytes",
            "Bytes of log lines stored, by protocol",
            self.log_bytes_written.clone(),
        );
        r.register(
            "log_entries_rejected",
            "Log entries refused, by protocol and reason",
            self.log_entries_rejected.clone(),
        );
        let s = registry.sub_registry_with_prefix("vigil_scrape");
        s.register("scrapes", "Scrapes performed, by job", self.scrapes.clone());
        s.register(
            "scrapes_failed",
            "Scrapes that failed (HTTP, parse or limit errors), by job",
            self.scrapes_failed.clone(),
        );
        s.register(
            "targets",
            "Active scrape targets, by job",
            self.scrape_targets.clone(),
        );
        s.register(
            "sd_file_errors",
            "file_sd_configs files that could not be read or parsed",
            self.sd_file_errors.clone(),
        );
        let p = registry.sub_registry_with_prefix("vigil_probe");
        p.register(
            "http_requests",
            "GET /probe requests answered (blackbox_exporter-compatible endpoint)",
            self.probes_served.clone(),
        );
        p.register(
            "runs",
            "Probes run by probe_configs jobs, by job",
            self.probes_run.clone(),
        );
        p.register(
            "failures",
            "Probes of probe_configs jobs that failed (probe_success 0), by job",
            self.probes_failed.clone(),
        );
        p.register(
            "late",
            "Probes of probe_configs jobs that started more than half an interval after their slot, by job",
            self.probes_late.clone(),
        );
        p.register(
            "module_unknown",
            "GET /probe requests naming a module that blackbox.yml does not define",
            self.probe_module_unknown.clone(),
        );
    }
}
