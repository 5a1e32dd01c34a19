//! The configuration file: a prometheus.yml-shaped YAML document plus Vigil's own sections.
//!
//! Sections: `global`, `scrape_configs` (Prometheus syntax), `storage` and `ingest`. Prometheus keys that
//! later parts of Vigil serve (`alerting`, `remote_write`, `remote_read`, `storage` of
//! Prometheus's own shape is not accepted) are accepted and reported as not yet used, so a whole
//! prometheus.yml loads.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use vigil_ingest::IngestSection;
use vigil_ingest::scrape::{GlobalConfig, ScrapeConfig};
use vigil_query::QuerySection;
use vigil_storage::StorageSection;

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    global: GlobalConfig,
    #[serde(default)]
    scrape_configs: Option<Vec<ScrapeConfig>>,
    #[serde(default)]
    storage: StorageSection,
    #[serde(default)]
    ingest: IngestSection,
    #[serde(default)]
    query: QuerySection,
    #[serde(default = "yes")]
    builtin_rules: bool,
    #[serde(default)]
    alertmanager_config: Option<String>,
    #[serde(default)]
    blackbox_config: Option<String>,
    #[serde(default)]
    probe_configs: Vec<vigil_ingest::probe::ProbeConfig>,
    #[serde(default)]
    runbooks: Option<vigil_remediation::config::RunbooksSection>,
    // Prometheus sections served by later parts of Vigil: accepted so a prometheus.yml loads.
    #[serde(default)]
    rule_files: Vec<String>,
    #[serde(default)]
    alerting: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    remote_write: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    remote_read: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    scrape_config_files: Option<serde_yaml_ng::Value>,
}

/// A loaded, validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub global: GlobalConfig,
    /// `None` when the file has no `scrape_configs` key: the built-in self-scrape job applies.
    pub scrape_configs: Option<Vec<ScrapeConfig>>,
    pub storage: StorageSection,
    pub ingest: IngestSection,
    pub query: QuerySection,
    /// `rule_files:` patterns, relative to the configuration file's directory.
    pub rule_files: Vec<String>,
    /// Evaluate Vigil's built-in rules for its own health.
    pub builtin_rules: bool,
    /// An alertmanager.yml for the router (relative to the configuration file's directory).
    pub alertmanager_config: Option<String>,
    /// A blackbox_exporter `blackbox.yml` for `/probe` and `probe_configs` (relative to the
    /// configuration file's directory); without it, the built-in modules.
    pub blackbox_config: Option<String>,
    /// Probe jobs: targets probed with a module, results stored as series.
    pub probe_configs: Vec<vigil_ingest::probe::ProbeConfig>,
    /// Runbooks for `runbook_configs` receivers (the remediation part).
    pub runbooks: Option<vigil_remediation::config::RunbooksSection>,
    /// Keys accepted but not used yet, for a start-up warning.
    pub ignored_sections: Vec<&'static str>,
}

impl Default for Config {
    /// The embedded defaults (what `vigil serve` runs with when no file is given).
    fn default() -> Self {
        Config::parse("").expect("the empty configuration is valid")
    }
}

/// A configuration error, with the line it was found on when known.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "line {l}, column {c}: {}", self.message),
            (Some(l), None) => write!(f, "line {l}: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            line: None,
            column: None,
            message: format!("cannot read {}: {e}", path.display()),
        })?;
        Config::parse(&text)
    }

    /// Parses and validates a configuration document.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        // An empty file (or one holding only comments) is the default configuration.
        let raw: RawConfig = if text.lines().all(|l| {
            let t = l.trim();
            t.is_empty() || t.starts_with('#')
        }) {
            serde_yaml_ng::from_str("{}").expect("an empty configuration is valid")
        } else {
            serde_yaml_ng::from_str(text).map_err(|e| {
                let loc = e.location();
                // serde_yaml_ng appends " at line L column C" to the message; we print it ourselves.
                let mut message = e.to_string();
                if let Some(i) = message.rfind(" at line ") {
                    message.truncate(i);
                }
                ConfigError {
                    line: loc.as_ref().map(|l| l.line()),
                    column: loc.as_ref().map(|l| l.column()),
                    message,
                }
            })?
        };
        let at = |path: &[&str], message: String| ConfigError {
            line: line_of(text, path),
            column: None,
            message,
        };
        if let Some(jobs) = &raw.scrape_configs {
            let mut seen = HashSet::new();
            for (i, j) in jobs.iter().enumerate() {
                if !seen.insert(j.job_name.as_str()) {
                    return Err(ConfigError {
                        line: nth_job_line(text, i),
                        column: None,
                        message: format!(
                            "found multiple scrape configs with job name {:?}",
                            j.job_name
                        ),
                    });
                }
            }
        }
        {
            let mut seen: HashSet<&str> = raw
                .scrape_configs
                .iter()
                .flatten()
                .map(|j| j.job_name.as_str())
                .collect();
            for p in &raw.probe_configs {
                p.validate().map_err(|m| at(&["probe_configs"], m))?;
                if !seen.insert(p.job_name.as_str()) {
                    return Err(at(
                        &["probe_configs"],
                        format!(
                            "found multiple scrape or probe configs with job name {:?}",
                            p.job_name
                        ),
                    ));
                }
            }
        }
        if raw.global.scrape_timeout > raw.global.scrape_interval {
            return Err(at(
                &["global", "scrape_timeout"],
                format!(
                    "global scrape_timeout ({}) is greater than scrape_interval ({})",
                    raw.global.scrape_timeout, raw.global.scrape_interval
                ),
            ));
        }
        if let Err(m) = raw.storage.validate() {
            // Messages name the key as storage.tsdb.<key>: point at it.
            let first = m.split_whitespace().next().unwrap_or("storage").to_string();
            let key: Vec<&str> = first.split('.').collect();
            return Err(at(&key, m));
        }
        let mut ignored = Vec::new();
        for (present, name) in [
            (raw.alerting.is_some(), "alerting"),
            (raw.remote_write.is_some(), "remote_write"),
            (raw.remote_read.is_some(), "remote_read"),
            (raw.scrape_config_files.is_some(), "scrape_config_files"),
        ] {
            if present {
                ignored.push(name);
            }
        }
        Ok(Config {
            global: raw.global,
            scrape_configs: raw.scrape_configs,
            storage: raw.storage,
            ingest: raw.ingest,
            query: raw.query,
            rule_files: raw.rule_files,
            builtin_rules: raw.builtin_rules,
            alertmanager_config: raw.alertmanager_config,
            blackbox_config: raw.blackbox_config,
            probe_configs: raw.probe_configs,
            runbooks: raw.runbooks,
            ignored_sections: ignored,
        })
    }

    /// The scrape jobs to run: the file's, or Vigil scraping its own `/metrics` every 15s.
    pub fn scrape_jobs(&self, listen: &str) -> Vec<ScrapeConfig> {
        let mut jobs = match &self.scrape_configs {
            Some(j) => j.clone(),
            None => vec![self_scrape_job(listen)],
        };
        jobs.extend(self.probe_configs.iter().map(|p| p.to_scrape()));
        jobs
    }

    /// Engine settings of the `query` section.
    pub fn eval_options(&self) -> vigil_query::eval::EvalOptions {
        self.query.eval_options(self.global.evaluation_interval)
    }

    /// The push limits of the `ingest` section.
    pub fn push_limits(&self) -> vigil_ingest::PushLimits {
        self.ingest.limits()
    }
}

/// The built-in job: Vigil scrapes its own `/metrics` every 15s.
pub fn self_scrape_job(listen: &str) -> ScrapeConfig {
    let yaml = format!(
        "job_name: vigil\nscrape_interval: 15s\nscrape_timeout: 10s\nstatic_configs:\n  - targets: ['{listen}']\n"
    );
    serde_yaml_ng::from_str(&yaml).expect("built-in self-scrape job is valid")
}

/// Line (1-based) of the key at `path` (nested mapping keys), found by indentation.
fn line_of(text: &str, path: &[&str]) -> Option<usize> {
    let mut depth_indent: Option<usize> = None;
    let mut want = 0;
    let mut found = None;
    for (n, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let indent = line.len() - t.len();
        if let Some(d) = depth_indent
            && indent <= d
            && want > 0
        {
            // Left the mapping we were inside without finding the next key.
            if found.is_some() {
                break;
            }
        }
        if want < path.len()
            && depth_indent.is_none_or(|d| indent > d)
            && (t.starts_with(&format!("{}:", path[want])))
        {
            found = Some(n + 1);
            depth_indent = Some(indent);
            want += 1;
            if want == path.len() {
                return found;
            }
        }
    }
    found
}

/// Line of the `i`-th entry of `scrape_configs`.
fn nth_job_line(text: &str, i: usize) -> Option<usize> {
    let start = line_of(text, &["scrape_configs"])?;
    text.lines()
        .enumerate()
        .skip(start)
        .filter(|(_, l)| {
            l.trim_start().starts_with("- job_name:") || l.trim_start().starts_with("-   job_name:")
        })
        .nth(i)
        .map(|(n, _)| n + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_default_and_self_scrapes() {
        let c = Config::parse("# nothing\n").unwrap();
        let jobs = c.scrape_jobs("127.0.0.1:9201");
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].job_name, "vigil");
        assert_eq!(c.storage, StorageSection::default());
    }

    #[test]
    fn whole_prometheus_yml_loads() {
        let y = r#"
global:
  scrape_interval: 15s
  evaluation_interval: 15s
rule_files: ["rules/*.yml"]
alerting:
  alertmanagers:
    - static_configs: [{targets: ['localhost:9093']}]
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ['localhost:9090']
storage:
  tsdb:
    block_duration: 1h
    retention_time: 30d
"#;
        let c = Config::parse(y).unwrap();
        assert_eq!(c.ignored_sections, vec!["alerting"]);
        assert_eq!(c.rule_files, vec!["rules/*.yml"]);
        assert_eq!(c.scrape_jobs("x:1")[0].job_name, "prometheus");
        assert_eq!(c.storage.tsdb.block_duration.to_string(), "1h");
    }

    #[test]
    fn errors_name_the_line() {
        let y = "global:\n  scrape_interval: 15s\nscrape_configs:\n  - job_name: a\n    static_config: []\n";
        let e = Config::parse(y).unwrap_err();
        assert_eq!(e.line, Some(5), "{e}");
        assert!(e.message.contains("static_config"), "{e}");

        let y = "scrape_configs:\n  - job_name: a\n  - job_name: b\n  - job_name: a\n";
        let e = Config::parse(y).unwrap_err();
        assert_eq!(e.line, Some(4), "{e}");
        assert!(e.message.contains("multiple scrape configs"), "{e}");

        let y = "storage:\n  tsdb:\n    retention_time: 1d\n    block_duration: 10s\n";
        let e = Config::parse(y).unwrap_err();
        assert_eq!(e.line, Some(4), "{e}");
        assert!(e.message.contains("block_duration"), "{e}");

        let y = "global:\n  scrape_interval: 5s\n  scrape_timeout: 10s\n";
        let e = Config::parse(y).unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");

        let y = "scrape_configs:\n  - job_name: a\n    scrape_interval: soon\n";
        let e = Config::parse(y).unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.message.contains("soon"), "{e}");
    }
}
