//! Turning discovered targets into scrape targets: Prometheus's label population and relabeling order.

use std::collections::BTreeMap;
use std::time::Duration;

use vigil_model::{Labels, LabelsBuilder, format_duration, parse_duration};

use super::config::{GlobalConfig, ScrapeConfig};
use super::relabel;

/// A target ready to scrape.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// Labels attached to every series (no `__` labels).
    pub labels: Labels,
    /// Labels before relabeling, for the targets API.
    pub discovered: Labels,
    pub url: String,
    pub interval: Duration,
    pub timeout: Duration,
}

impl Target {
    /// Identity of the target across discovery refreshes.
    pub fn key(&self) -> u64 {
        let mut h = 0xcbf29ce484222325u64; // FNV-1a
        for b in self
            .labels
            .stable_hash()
            .to_le_bytes()
            .iter()
            .chain(self.url.as_bytes())
        {
            h ^= *b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
        h
    }
}

fn encode_query(params: &[(String, String)]) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                b' ' => "+".into(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    params
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Builds a target from a discovered label set, or `Ok(None)` when relabeling drops it.
pub fn populate(
    group_labels: &BTreeMap<String, String>,
    target_labels: &BTreeMap<String, String>,
    job: &ScrapeConfig,
    global: &GlobalConfig,
) -> Result<Option<Target>, String> {
    let (interval, timeout) = job.resolve(global);
    let mut lb = LabelsBuilder::new();
    for (k, v) in group_labels {
        lb.set(k.clone(), v.clone());
    }
    for (k, v) in target_labels {
        lb.set(k.clone(), v.clone());
    }
    let defaults = [
        ("job", job.job_name.clone()),
        ("__scrape_interval__", format_duration(interval)),
        ("__scrape_timeout__", format_duration(timeout)),
        ("__metrics_path__", job.metrics_path.clone()),
        ("__scheme__", job.scheme.clone()),
    ];
    for (k, v) in defaults {
        if lb.get(k).is_none() {
            lb.set(k, v);
        }
    }
    for (k, vs) in &job.params {
        if let Some(v) = vs.first() {
            lb.set(format!("__param_{k}"), v.clone());
        }
    }
    let discovered = lb.clone().build();
    if !relabel::process(&mut lb, &job.relabel_configs) {
        return Ok(None);
    }
    let addr = lb
        .get("__address__")
        .map(str::to_string)
        .ok_or("no address")?;
    // A probe job's address is the probe's target (a URL for http modules), not a host:port.
    let probe = job.probe_module.is_some();
    if addr.is_empty() || (!probe && addr.contains('/')) {
        return Err(format!("{addr:?} is not a valid hostname"));
    }
    let scheme = lb.get("__scheme__").unwrap_or("http").to_string();
    if scheme != "http" && scheme != "https" {
        return Err(format!("invalid scheme {scheme:?}"));
    }
    let interval = match lb.get("__scrape_interval__") {
        Some(s) => parse_duration(s).map_err(|e| format!("error parsing scrape interval: {e}"))?,
        None => interval,
    };
    let timeout = match lb.get("__scrape_timeout__") {
        Some(s) => parse_duration(s).map_err(|e| format!("error parsing scrape timeout: {e}"))?,
        None => timeout,
    };
    if interval.is_zero() {
        return Err("scrape interval cannot be 0".into());
    }
    if timeout.is_zero() || timeout > interval {
        return Err(format!(
            "scrape timeout {} must be above 0 and at most the scrape interval {}",
            format_duration(timeout),
            format_duration(interval)
        ));
    }
    let path = lb.get("__metrics_path__").unwrap_or("/metrics").to_string();
    let params: Vec<(String, String)> = lb
        .iter()
        .filter_map(|l| {
            l.name
                .strip_prefix("__param_")
                .map(|k| (k.to_string(), l.value.clone()))
        })
        .collect();
    let mut url = format!("{scheme}://{addr}{path}");
    if probe {
        url = addr.clone();
    } else if !params.is_empty() {
        url.push(if path.contains('?') { '&' } else { '?' });
        url.push_str(&encode_query(&params));
    }
    if lb.get("instance").is_none() {
        lb.set("instance", addr.clone());
    }
    lb.retain(|l| !l.name.starts_with("__"));
    Ok(Some(Target {
        labels: lb.build(),
        discovered,
        url,
        interval,
        timeout,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(y: &str) -> ScrapeConfig {
        serde_yaml_ng::from_str(y).unwrap()
    }

    #[test]
    fn defaults_and_url() {
        let j = job("job_name: node\nscrape_interval: 15s\nparams: {module: [a b]}\n");
        let t = populate(
            &BTreeMap::from([("env".into(), "p".into())]),
            &BTreeMap::from([("__address__".into(), "h:9100".into())]),
            &j,
            &GlobalConfig::default(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(t.url, "http://h:9100/metrics?module=a+b");
        assert_eq!(
            t.labels.to_string(),
            r#"{env="p", instance="h:9100", job="node"}"#
        );
        assert_eq!(t.interval, Duration::from_secs(15));
        assert_eq!(t.timeout, Duration::from_secs(10));
    }

    #[test]
    fn relabel_can_drop_rename_and_retime() {
        let j = job(
            "job_name: x\nrelabel_configs:\n- source_labels: [__address__]\n  regex: 'drop.*'\n  action: drop\n- target_label: __scrape_interval__\n  replacement: 30s\n- source_labels: [__address__]\n  target_label: instance\n  regex: '(.*):.*'\n",
        );
        let g = GlobalConfig::default();
        assert!(
            populate(
                &BTreeMap::new(),
                &BTreeMap::from([("__address__".into(), "drop:1".into())]),
                &j,
                &g
            )
            .unwrap()
            .is_none()
        );
        let t = populate(
            &BTreeMap::new(),
            &BTreeMap::from([("__address__".into(), "keep:1".into())]),
            &j,
            &g,
        )
        .unwrap()
        .unwrap();
        assert_eq!(t.labels.get("instance"), Some("keep"));
        assert_eq!(t.interval, Duration::from_secs(30));
        assert!(
            populate(&BTreeMap::new(), &BTreeMap::new(), &j, &g)
                .unwrap_err()
                .contains("no address")
        );
    }
}
