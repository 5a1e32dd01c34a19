//! `probe_configs:`: probe jobs whose results go straight into storage, without a scrape round trip.
//!
//! A probe job is a scrape job whose fetch runs a prober in-process: it shares the scrape loop's
//! discovery (`static_configs`, `file_sd_configs`), relabeling, per-target phase (jitter), staleness
//! and report series (`up`, `scrape_duration_seconds`, …), so its series are exactly those a
//! Prometheus scraping blackbox_exporter would store: the probe's `probe_*` series with `job` and
//! `instance` (the target) labels, and `up` 1 whenever the probe ran (`probe_success` says whether
//! the target answered).

use serde::{Deserialize, Serialize};
use vigil_model::PromDuration;

use crate::scrape::config::{FileSdConfig, ScrapeConfig, StaticConfig};
use crate::scrape::relabel::RelabelConfig;

/// One `probe_configs:` entry.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    pub job_name: String,
    /// A module of the `blackbox_config` file (or a built-in one).
    pub module: String,
    /// How often each target is probed (default: `global.scrape_interval`); 1s and up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<PromDuration>,
    /// How long one probe may take (default: the interval, at most 10s; the module's own `timeout`
    /// wins when shorter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<PromDuration>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub static_configs: Vec<StaticConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub file_sd_configs: Vec<FileSdConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relabel_configs: Vec<RelabelConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metric_relabel_configs: Vec<RelabelConfig>,
}

impl ProbeConfig {
    /// Checks what can be checked without the blackbox configuration.
    pub fn validate(&self) -> Result<(), String> {
        if self.job_name.is_empty() {
            return Err("probe_configs: job_name is empty".into());
        }
        if self.module.is_empty() {
            return Err(format!("probe job {:?}: module is empty", self.job_name));
        }
        if let Some(i) = self.interval
            && i.0 < std::time::Duration::from_secs(1)
        {
            return Err(format!(
                "probe job {:?}: interval {i} is below the minimum of 1s",
                self.job_name
            ));
        }
        if let (Some(i), Some(t)) = (self.interval, self.timeout)
            && t > i
        {
            return Err(format!(
                "probe job {:?}: timeout {t} greater than interval {i}",
                self.job_name
            ));
        }
        for s in &self.static_configs {
            for k in s.labels.keys() {
                if !vigil_model::is_valid_label_name(k) {
                    return Err(format!(
                        "probe job {:?}: {k:?} is not a valid label name",
                        self.job_name
                    ));
                }
            }
        }
        Ok(())
    }

    /// The scrape job that runs this probe job.
    pub fn to_scrape(&self) -> ScrapeConfig {
        let mut j: ScrapeConfig = serde_yaml_ng::from_str(&format!(
            "job_name: {}\n",
            serde_json::to_string(&self.job_name).unwrap_or_default()
        ))
        .expect("a job name alone is a valid scrape job");
        j.scrape_interval = self.interval;
        j.scrape_timeout = self.timeout.or_else(|| {
            self.interval
                .map(|i| PromDuration(i.0.min(std::time::Duration::from_secs(10))))
        });
        j.static_configs = self.static_configs.clone();
        j.file_sd_configs = self.file_sd_configs.clone();
        j.relabel_configs = self.relabel_configs.clone();
        j.metric_relabel_configs = self.metric_relabel_configs.clone();
        j.probe_module = Some(self.module.clone());
        j
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_converts() {
        let y = "- job_name: web\n  module: http_2xx\n  interval: 1s\n  static_configs:\n    - targets: ['https://example.com/health']\n      labels: {team: a}\n";
        let p: Vec<ProbeConfig> = serde_yaml_ng::from_str(y).unwrap();
        p[0].validate().unwrap();
        let j = p[0].to_scrape();
        assert_eq!(j.probe_module.as_deref(), Some("http_2xx"));
        let (i, t) = j.resolve(&Default::default());
        assert_eq!((i.as_secs(), t.as_secs()), (1, 1));
        let bad: Vec<ProbeConfig> =
            serde_yaml_ng::from_str("- job_name: x\n  module: m\n  interval: 500ms\n").unwrap();
        assert!(bad[0].validate().unwrap_err().contains("minimum of 1s"));
        assert!(
            serde_yaml_ng::from_str::<Vec<ProbeConfig>>("- job_name: x\n  modul: m\n").is_err()
        );
    }
}
