//! Scrape configuration in Prometheus's own syntax (`global`, `scrape_configs`), so a prometheus.yml
//! scrape section can be pasted unchanged.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use vigil_model::{PromDuration, is_valid_label_name};

use super::relabel::RelabelConfig;

fn d(secs: u64) -> PromDuration {
    PromDuration::from_secs(secs)
}

/// `global:`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields, from = "RawGlobal")]
pub struct GlobalConfig {
    pub scrape_interval: PromDuration,
    pub scrape_timeout: PromDuration,
    pub evaluation_interval: PromDuration,
    pub external_labels: BTreeMap<String, String>,
    /// Accepted for compatibility with prometheus.yml; Vigil keeps its own query log settings.
    pub query_log_file: Option<String>,
}

impl Default for GlobalConfig {
    fn default() -> Self {
        // Prometheus defaults: 1m scrape and evaluation interval, 10s timeout.
        GlobalConfig {
            scrape_interval: d(60),
            scrape_timeout: d(10),
            evaluation_interval: d(60),
            external_labels: BTreeMap::new(),
            query_log_file: None,
        }
    }
}

/// `global:` as written: an unset `scrape_timeout` becomes the default 10s, or the scrape
/// interval when that is shorter, as Prometheus decides.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawGlobal {
    scrape_interval: PromDuration,
    scrape_timeout: Option<PromDuration>,
    evaluation_interval: PromDuration,
    external_labels: BTreeMap<String, String>,
    query_log_file: Option<String>,
}

impl Default for RawGlobal {
    fn default() -> Self {
        let g = GlobalConfig::default();
        RawGlobal {
            scrape_interval: g.scrape_interval,
            scrape_timeout: None,
            evaluation_interval: g.evaluation_interval,
            external_labels: g.external_labels,
            query_log_file: g.query_log_file,
        }
    }
}

impl From<RawGlobal> for GlobalConfig {
    fn from(r: RawGlobal) -> Self {
        GlobalConfig {
            scrape_timeout: r.scrape_timeout.unwrap_or(
                GlobalConfig::default()
                    .scrape_timeout
                    .min(r.scrape_interval),
            ),
            scrape_interval: r.scrape_interval,
            evaluation_interval: r.evaluation_interval,
            external_labels: r.external_labels,
            query_log_file: r.query_log_file,
        }
    }
}

/// `static_configs:` entry.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `file_sd_configs:` entry.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileSdConfig {
    pub files: Vec<String>,
    #[serde(default = "default_refresh")]
    pub refresh_interval: PromDuration,
}

fn default_refresh() -> PromDuration {
    d(300)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScrapeConfig {
    job_name: String,
    #[serde(default)]
    scrape_interval: Option<PromDuration>,
    #[serde(default)]
    scrape_timeout: Option<PromDuration>,
    #[serde(default = "default_path")]
    metrics_path: String,
    #[serde(default = "default_scheme")]
    scheme: String,
    #[serde(default)]
    params: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    honor_labels: bool,
    #[serde(default = "yes")]
    honor_timestamps: bool,
    #[serde(default)]
    static_configs: Vec<StaticConfig>,
    #[serde(default)]
    file_sd_configs: Vec<FileSdConfig>,
    #[serde(default)]
    relabel_configs: Vec<RelabelConfig>,
    #[serde(default)]
    metric_relabel_configs: Vec<RelabelConfig>,
    #[serde(default)]
    sample_limit: usize,
    #[serde(default)]
    label_limit: usize,
    #[serde(default)]
    label_name_length_limit: usize,
    #[serde(default)]
    label_value_length_limit: usize,
    #[serde(default)]
    body_size_limit: Option<vigil_storage::config::ByteSize>,
    // Prometheus's `http_config`, inlined in a scrape job (listed here because a flattened struct
    // cannot refuse unknown keys).
    #[serde(default)]
    basic_auth: Option<vigil_http::client::BasicAuth>,
    #[serde(default)]
    authorization: Option<vigil_http::client::Authorization>,
    #[serde(default)]
    oauth2: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    bearer_token: vigil_model::Secret,
    #[serde(default)]
    bearer_token_file: String,
    #[serde(default)]
    tls_config: vigil_http::TlsConfig,
    #[serde(default)]
    proxy_url: String,
    #[serde(default)]
    no_proxy: String,
    #[serde(default)]
    proxy_from_environment: bool,
    #[serde(default)]
    proxy_connect_header: BTreeMap<String, Vec<vigil_model::Secret>>,
    #[serde(default = "yes")]
    follow_redirects: bool,
    #[serde(default = "yes")]
    enable_http2: bool,
}

fn default_path() -> String {
    "/metrics".into()
}

fn default_scheme() -> String {
    "http".into()
}

fn yes() -> bool {
    true
}

/// One `scrape_configs:` entry, validated; interval and timeout are resolved against `global` by
/// [`ScrapeConfig::resolve`].
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ScrapeConfig {
    pub job_name: String,
    pub scrape_interval: Option<PromDuration>,
    pub scrape_timeout: Option<PromDuration>,
    pub metrics_path: String,
    pub scheme: String,
    pub params: BTreeMap<String, Vec<String>>,
    pub honor_labels: bool,
    pub honor_timestamps: bool,
    pub static_configs: Vec<StaticConfig>,
    pub file_sd_configs: Vec<FileSdConfig>,
    pub relabel_configs: Vec<RelabelConfig>,
    pub metric_relabel_configs: Vec<RelabelConfig>,
    pub sample_limit: usize,
    pub label_limit: usize,
    pub label_name_length_limit: usize,
    pub label_value_length_limit: usize,
    pub body_size_limit: u64,
    /// Authentication, TLS and proxy of the scrapes (secrets print as `<secret>`).
    #[serde(flatten)]
    pub http_config: vigil_http::HttpClientConfig,
    /// Set for the jobs of `probe_configs`: each target is probed in-process with this module
    /// instead of being fetched over HTTP (see [`crate::probe::job`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe_module: Option<String>,
}

impl<'de> Deserialize<'de> for ScrapeConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let r = RawScrapeConfig::deserialize(d)?;
        let err = |m: String| -> Result<Self, D::Error> { Err(de::Error::custom(m)) };
        if r.job_name.is_empty() {
            return err("job_name is empty".into());
        }
        if r.scheme != "http" && r.scheme != "https" {
            return err(format!(
                "job {:?}: scheme must be http or https, got {:?}",
                r.job_name, r.scheme
            ));
        }
        if !r.metrics_path.starts_with('/') {
            return err(format!(
                "job {:?}: metrics_path must start with '/', got {:?}",
                r.job_name, r.metrics_path
            ));
        }
        if let (Some(i), Some(t)) = (r.scrape_interval, r.scrape_timeout)
            && t > i
        {
            return err(format!(
                "job {:?}: scrape timeout {t} greater than scrape interval {i}",
                r.job_name
            ));
        }
        if r.scrape_interval.is_some_and(|i| i.0.is_zero()) {
            return err(format!(
                "job {:?}: scrape_interval must be greater than 0",
                r.job_name
            ));
        }
        for s in &r.static_configs {
            for k in s.labels.keys() {
                if !is_valid_label_name(k) {
                    return err(format!(
                        "job {:?}: {k:?} is not a valid label name",
                        r.job_name
                    ));
                }
            }
            for t in &s.targets {
                if t.contains('/') {
                    return err(format!(
                        "job {:?}: {t:?} is not a valid target address (host:port, without scheme or path)",
                        r.job_name
                    ));
                }
            }
        }
        let mut http_config = vigil_http::HttpClientConfig {
            basic_auth: r.basic_auth,
            authorization: r.authorization,
            oauth2: r.oauth2,
            bearer_token: r.bearer_token,
            bearer_token_file: r.bearer_token_file,
            tls_config: r.tls_config,
            proxy_url: r.proxy_url,
            no_proxy: r.no_proxy,
            proxy_from_environment: r.proxy_from_environment,
            proxy_connect_header: r.proxy_connect_header,
            follow_redirects: r.follow_redirects,
            enable_http2: r.enable_http2,
        };
        if let Err(e) = http_config.validate() {
            return err(format!("job {:?}: {e}", r.job_name));
        }
        Ok(ScrapeConfig {
            job_name: r.job_name,
            scrape_interval: r.scrape_interval,
            scrape_timeout: r.scrape_timeout,
            metrics_path: r.metrics_path,
            scheme: r.scheme,
            params: r.params,
            honor_labels: r.honor_labels,
            honor_timestamps: r.honor_timestamps,
            static_configs: r.static_configs,
            file_sd_configs: r.file_sd_configs,
            relabel_configs: r.relabel_configs,
            metric_relabel_configs: r.metric_relabel_configs,
            sample_limit: r.sample_limit,
            label_limit: r.label_limit,
            label_name_length_limit: r.label_name_length_limit,
            label_value_length_limit: r.label_value_length_limit,
            body_size_limit: r.body_size_limit.map(|b| b.0).unwrap_or(0),
            http_config,
            probe_module: None,
        })
    }
}

impl ScrapeConfig {
    /// Interval and timeout after applying `global` defaults; the timeout is capped at the interval.
    pub fn resolve(&self, g: &GlobalConfig) -> (Duration, Duration) {
        let interval = self.scrape_interval.unwrap_or(g.scrape_interval).0;
        let timeout = self
            .scrape_timeout
            .unwrap_or(g.scrape_timeout)
            .0
            .min(interval);
        (interval, timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_yml_section_parses() {
        let y = r#"
- job_name: node
  scrape_interval: 15s
  static_configs:
    - targets: ['localhost:9100']
      labels: {env: prod}
  relabel_configs:
    - source_labels: [__address__]
      target_label: instance
  metric_relabel_configs:
    - source_labels: [__name__]
      regex: go_.*
      action: drop
- job_name: files
  honor_labels: true
  honor_timestamps: false
  scheme: https
  metrics_path: /probe
  params: {module: [http_2xx]}
  file_sd_configs:
    - files: ['/etc/targets/*.json']
      refresh_interval: 1m
"#;
        let jobs: Vec<ScrapeConfig> = serde_yaml_ng::from_str(y).unwrap();
        assert_eq!(jobs.len(), 2);
        let g = GlobalConfig::default();
        assert_eq!(
            jobs[0].resolve(&g),
            (Duration::from_secs(15), Duration::from_secs(10))
        );
        assert!(jobs[1].honor_labels && !jobs[1].honor_timestamps);
        assert_eq!(jobs[1].params["module"], vec!["http_2xx"]);
    }

    #[test]
    fn errors_carry_line_numbers() {
        let y = "- job_name: a\n  scrape_interval: 5s\n  scrape_timeout: 10s\n";
        let e = serde_yaml_ng::from_str::<Vec<ScrapeConfig>>(y).unwrap_err();
        assert!(
            e.to_string().contains("greater than scrape interval"),
            "{e}"
        );
        assert!(e.location().is_some(), "{e}");
        let y = "- job_name: a\n  scrape_intervl: 5s\n";
        let e = serde_yaml_ng::from_str::<Vec<ScrapeConfig>>(y).unwrap_err();
        assert_eq!(e.location().map(|l| l.line()), Some(2), "{e}");
        let y = "- job_name: a\n  scrape_interval: 5 minutes\n";
        let e = serde_yaml_ng::from_str::<Vec<ScrapeConfig>>(y).unwrap_err();
        assert_eq!(e.location().map(|l| l.line()), Some(2), "{e}");
    }
}
