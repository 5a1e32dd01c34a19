//! PagerDuty Events API v2 (Alertmanager's `pagerduty_configs` with `routing_key`): `trigger` while a
//! group has firing alerts, `resolve` when none is left, one stable `dedup_key` per group.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use serde_yaml_ng::Value as Yaml;

use super::config::GlobalConfig;
use super::dispatch::Notification;
use super::email::subject;

/// One `pagerduty_configs` entry with defaults applied.
#[derive(Clone, Debug)]
pub struct PagerDutyConfig {
    pub routing_key: String,
    pub url: String,
    pub client: String,
    pub client_url: String,
    pub severity: String,
    pub source: Option<String>,
    pub component: Option<String>,
    pub group: Option<String>,
    pub class: Option<String>,
    pub details: BTreeMap<String, String>,
    pub send_resolved: bool,
}

impl PagerDutyConfig {
    pub fn from_yaml(
        v: &Yaml,
        g: &GlobalConfig,
        external_url: &str,
    ) -> Result<PagerDutyConfig, String> {
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
        let routing_key =
            s("routing_key").ok_or("pagerduty_configs: missing 'routing_key' (Events API v2)")?;
        let severity = s("severity").unwrap_or_else(|| "error".into());
        if !["critical", "error", "warning", "info"].contains(&severity.as_str()) {
            return Err(format!(
                "pagerduty_configs: severity must be critical, error, warning or info, got {severity:?}"
            ));
        }
        let details = v
            .get("details")
            .and_then(|d| d.as_mapping())
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        Ok(PagerDutyConfig {
            routing_key,
            url: s("url").unwrap_or_else(|| g.pagerduty_url.clone()),
            client: s("client").unwrap_or_else(|| "Vigil".into()),
            client_url: s("client_url").unwrap_or_else(|| external_url.to_string()),
            severity,
            source: s("source"),
            component: s("component"),
            group: s("group"),
            class: s("class"),
            details,
            send_resolved: v
                .get("send_resolved")
                .and_then(|x| x.as_bool())
                .unwrap_or(true),
        })
    }
}

/// A stable key for a group: 32 hex digits from the group key (the same group always pages the same
/// incident; a restart does not change it).
pub fn dedup_key(group_key: &str) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(group_key.as_bytes()))
}

/// The Events API v2 body for `n`.
pub fn event(cfg: &PagerDutyConfig, n: &Notification) -> Value {
    let firing: Vec<_> = n.firing().collect();
    let action = if firing.is_empty() {
        "resolve"
    } else {
        "trigger"
    };
    let mut summary = subject(n);
    if summary.len() > 1024 {
        let mut cut = 1021;
        while !summary.is_char_boundary(cut) {
            cut -= 1;
        }
        summary.truncate(cut);
        summary.push_str("...");
    }
    let list = |resolved: bool| -> String {
        n.alerts
            .iter()
            .filter(|a| a.resolved_at(n.at) == resolved)
            .map(|a| {
                let ann = a
                    .annotations
                    .get("summary")
                    .or_else(|| a.annotations.get("description"));
                format!(
                    "{}{}",
                    a.labels,
                    ann.map(|s| format!(": {s}")).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mut details: BTreeMap<String, String> = BTreeMap::new();
    details.insert("firing".into(), list(false));
    details.insert("resolved".into(), list(true));
    details.insert("num_firing".into(), firing.len().to_string());
    details.insert(
        "num_resolved".into(),
        (n.alerts.len() - firing.len()).to_string(),
    );
    details.extend(cfg.details.clone());
    let mut payload = json!({
        "summary": summary,
        "source": cfg.source.clone().unwrap_or_else(|| cfg.client.clone()),
        "severity": cfg.severity,
        "timestamp": vigil_query::format::rfc3339(std::time::Duration::from_millis(n.at.max(0) as u64)),
        "custom_details": details,
    });
    for (k, v) in [
        ("component", &cfg.component),
        ("group", &cfg.group),
        ("class", &cfg.class),
    ] {
        if let Some(v) = v {
            payload[k] = json!(v);
        }
    }
    let mut ev = json!({
        "routing_key": cfg.routing_key,
        "event_action": action,
        "dedup_key": dedup_key(&n.group_key),
        "client": cfg.client,
        "client_url": cfg.client_url,
    });
    if action == "trigger" {
        ev["payload"] = payload;
    }
    ev
}
