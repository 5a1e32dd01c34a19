//! Alertmanager's configuration format: `global`, the `route` tree, `receivers`, `inhibit_rules`,
//! `time_intervals`; an existing alertmanager.yml loads unchanged.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use vigil_model::{PromDuration, Secret};

use super::matchers::{MatchType, Matcher, Matchers};

fn d(s: u64) -> PromDuration {
    PromDuration::from_secs(s)
}

/// `global:`: defaults every receiver inherits.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GlobalConfig {
    pub resolve_timeout: PromDuration,
    pub http_config: vigil_http::HttpClientConfig,
    pub smtp_from: String,
    pub smtp_hello: String,
    pub smtp_smarthost: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub smtp_auth_username: String,
    #[serde(skip_serializing_if = "Secret::is_empty")]
    pub smtp_auth_password: Secret,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub smtp_auth_password_file: String,
    #[serde(skip_serializing_if = "Secret::is_empty")]
    pub smtp_auth_secret: Secret,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub smtp_auth_identity: String,
    pub smtp_require_tls: bool,
    #[serde(skip_serializing_if = "Secret::is_empty")]
    pub slack_api_url: Secret,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub slack_api_url_file: String,
    pub pagerduty_url: String,
    pub opsgenie_api_url: String,
    #[serde(skip_serializing_if = "Secret::is_empty")]
    pub opsgenie_api_key: Secret,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub opsgenie_api_key_file: String,
    /// Defaults of Alertmanager integrations Vigil does not send to: accepted so an
    /// alertmanager.yml loads; a receiver that uses one of them is refused by name.
    #[serde(skip_serializing)]
    pub wechat_api_url: Option<serde_yaml_ng::Value>,
    #[serde(skip_serializing)]
    pub wechat_api_secret: Option<serde_yaml_ng::Value>,
    #[serde(skip_serializing)]
    pub wechat_api_corp_id: Option<serde_yaml_ng::Value>,
    #[serde(skip_serializing)]
    pub victorops_api_url: Option<serde_yaml_ng::Value>,
    #[serde(skip_serializing)]
    pub victorops_api_key: Option<serde_yaml_ng::Value>,
    #[serde(skip_serializing)]
    pub victorops_api_key_file: Option<serde_yaml_ng::Value>,
    #[serde(skip_serializing)]
    pub telegram_api_url: Option<serde_yaml_ng::Value>,
    #[serde(skip_serializing)]
    pub webex_api_url: Option<serde_yaml_ng::Value>,
}

impl Default for GlobalConfig {
    fn default() -> Self {
        GlobalConfig {
            resolve_timeout: d(300),
            http_config: vigil_http::HttpClientConfig::default(),
            smtp_from: String::new(),
            smtp_hello: "localhost".into(),
            smtp_smarthost: String::new(),
            smtp_auth_username: String::new(),
            smtp_auth_password: Secret::default(),
            smtp_auth_password_file: String::new(),
            smtp_auth_secret: Secret::default(),
            smtp_auth_identity: String::new(),
            smtp_require_tls: true,
            slack_api_url: Secret::default(),
            slack_api_url_file: String::new(),
            pagerduty_url: "https://events.pagerduty.com/v2/enqueue".into(),
            opsgenie_api_url: "https://api.opsgenie.com/".into(),
            opsgenie_api_key: Secret::default(),
            opsgenie_api_key_file: String::new(),
            wechat_api_url: None,
            wechat_api_secret: None,
            wechat_api_corp_id: None,
            victorops_api_url: None,
            victorops_api_key: None,
            victorops_api_key_file: None,
            telegram_api_url: None,
            webex_api_url: None,
        }
    }
}

impl GlobalConfig {
    fn validate(&mut self) -> Result<(), String> {
        if !self.slack_api_url.is_empty() && !self.slack_api_url_file.is_empty() {
            return Err(
                "at most one of slack_api_url & slack_api_url_file must be configured".into(),
            );
        }
        if !self.opsgenie_api_key.is_empty() && !self.opsgenie_api_key_file.is_empty() {
            return Err(
                "at most one of opsgenie_api_key & opsgenie_api_key_file must be configured".into(),
            );
        }
        if !self.smtp_auth_password.is_empty() && !self.smtp_auth_password_file.is_empty() {
            return Err(
                "at most one of smtp_auth_password & smtp_auth_password_file must be configured"
                    .into(),
            );
        }
        self.http_config.validate().map_err(|e| e.to_string())
    }
}

/// A node of the routing tree as written.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub receiver: Option<String>,
    pub group_by: Option<Vec<String>>,
    #[serde(default, rename = "continue")]
    pub continue_: bool,
    #[serde(default)]
    pub matchers: Matchers,
    /// Deprecated equality matchers (`match:`).
    #[serde(default, rename = "match")]
    pub match_eq: BTreeMap<String, String>,
    /// Deprecated regex matchers (`match_re:`).
    #[serde(default)]
    pub match_re: BTreeMap<String, String>,
    pub group_wait: Option<PromDuration>,
    pub group_interval: Option<PromDuration>,
    pub repeat_interval: Option<PromDuration>,
    #[serde(default)]
    pub mute_time_intervals: Vec<String>,
    #[serde(default)]
    pub active_time_intervals: Vec<String>,
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
}

/// A receiver: where notifications go, through any number of integrations.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReceiverConfig {
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub email_configs: Vec<crate::notify::email::EmailConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pagerduty_configs: Vec<crate::notify::pagerduty::PagerDutyConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slack_configs: Vec<crate::notify::slack::SlackConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhook_configs: Vec<crate::notify::webhook::WebhookConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub opsgenie_configs: Vec<crate::notify::opsgenie::OpsGenieConfig>,
    /// Integrations Alertmanager has and Vigil does not send to: parsed so that the error can
    /// name them instead of a vague "unknown field".
    #[serde(default, skip_serializing)]
    pub wechat_configs: Option<serde_yaml_ng::Value>,
    #[serde(default, skip_serializing)]
    pub pushover_configs: Option<serde_yaml_ng::Value>,
    #[serde(default, skip_serializing)]
    pub victorops_configs: Option<serde_yaml_ng::Value>,
    #[serde(default, skip_serializing)]
    pub sns_configs: Option<serde_yaml_ng::Value>,
    #[serde(default, skip_serializing)]
    pub telegram_configs: Option<serde_yaml_ng::Value>,
    #[serde(default, skip_serializing)]
    pub discord_configs: Option<serde_yaml_ng::Value>,
    #[serde(default, skip_serializing)]
    pub webex_configs: Option<serde_yaml_ng::Value>,
    /// Runbook receivers: each entry is checked and built by the remediation part
    /// ([`crate::notify::runbook::RunbookFactory`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runbook_configs: Vec<serde_yaml_ng::Value>,
}

impl ReceiverConfig {
    /// Alertmanager's checks of each integration, in its order, with the `global` defaults
    /// filled in; an integration type Vigil does not implement is refused by name.
    fn validate(&mut self, g: &GlobalConfig) -> Result<(), String> {
        let unsupported = [
            ("wechat_configs", &self.wechat_configs),
            ("pushover_configs", &self.pushover_configs),
            ("victorops_configs", &self.victorops_configs),
            ("sns_configs", &self.sns_configs),
            ("telegram_configs", &self.telegram_configs),
            ("discord_configs", &self.discord_configs),
            ("webex_configs", &self.webex_configs),
        ];
        for (key, v) in unsupported {
            if v.as_ref().is_some_and(|v| !v.is_null()) {
                return Err(format!(
                    "receiver {:?}: {key} are not supported by Vigil (it sends to email_configs, pagerduty_configs, slack_configs, opsgenie_configs, webhook_configs and runbook_configs)",
                    self.name
                ));
            }
        }
        for c in &mut self.webhook_configs {
            c.validate()?;
        }
        for c in &mut self.email_configs {
            c.validate(g)?;
        }
        for c in &mut self.slack_configs {
            c.validate(&g.slack_api_url, &g.slack_api_url_file)?;
        }
        for c in &mut self.pagerduty_configs {
            c.validate(&g.pagerduty_url)?;
        }
        for c in &mut self.opsgenie_configs {
            c.validate(g)?;
        }
        Ok(())
    }

    /// Whether any integration wants resolved notifications.
    pub fn integrations(&self) -> usize {
        self.webhook_configs.len()
            + self.email_configs.len()
            + self.slack_configs.len()
            + self.pagerduty_configs.len()
            + self.opsgenie_configs.len()
            + self.runbook_configs.len()
    }
}

/// `inhibit_rules[]`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InhibitRuleConfig {
    #[serde(default)]
    pub source_matchers: Matchers,
    #[serde(default)]
    pub target_matchers: Matchers,
    #[serde(default)]
    pub source_match: BTreeMap<String, String>,
    #[serde(default)]
    pub source_match_re: BTreeMap<String, String>,
    #[serde(default)]
    pub target_match: BTreeMap<String, String>,
    #[serde(default)]
    pub target_match_re: BTreeMap<String, String>,
    #[serde(default)]
    pub equal: Vec<String>,
}

/// `time_intervals[]` (and the older `mute_time_intervals[]`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TimeIntervalConfig {
    pub name: String,
    #[serde(default)]
    pub time_intervals: Vec<serde_yaml_ng::Value>,
}

/// A whole alertmanager.yml.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    #[serde(default)]
    pub global: GlobalConfig,
    pub route: Option<RouteConfig>,
    #[serde(default)]
    pub receivers: Vec<ReceiverConfig>,
    #[serde(default)]
    pub inhibit_rules: Vec<InhibitRuleConfig>,
    #[serde(default)]
    pub time_intervals: Vec<TimeIntervalConfig>,
    #[serde(default)]
    pub mute_time_intervals: Vec<TimeIntervalConfig>,
    #[serde(default)]
    pub templates: Vec<String>,
}

/// A resolved routing-tree node: inherited settings filled in, matchers merged.
#[derive(Clone, Debug, PartialEq)]
pub struct Route {
    pub receiver: String,
    /// `None` groups by all labels (`group_by: ['...']`).
    pub group_by: Option<Vec<String>>,
    pub continue_: bool,
    pub matchers: Vec<Matcher>,
    pub group_wait: Duration,
    pub group_interval: Duration,
    pub repeat_interval: Duration,
    pub mute_time_intervals: Vec<String>,
    pub active_time_intervals: Vec<String>,
    pub routes: Vec<Route>,
    /// Position in the tree (`{}/{severity="page"}/0`): unique, even for siblings with the same
    /// matchers.
    pub id: String,
    /// Alertmanager 0.25's route key (`{}/{severity="page"}`): part of the group key that
    /// notifications show and PagerDuty/OpsGenie deduplicate on.
    pub key: String,
}

impl Route {
    /// The routes an alert with these labels goes to: depth first, the deepest matching node of each
    /// branch, siblings after a match only when the match had `continue`.
    pub fn matching<'a>(&'a self, get: &dyn Fn(&str) -> Option<&'a str>) -> Vec<&'a Route> {
        if !self
            .matchers
            .iter()
            .all(|m| m.matches(get(&m.name).unwrap_or("")))
        {
            return Vec::new();
        }
        let mut out = Vec::new();
        for child in &self.routes {
            let found = child.matching(get);
            let matched = !found.is_empty();
            out.extend(found);
            if matched && !child.continue_ {
                break;
            }
        }
        if out.is_empty() {
            out.push(self);
        }
        out
    }
}

fn legacy(
    eq: &BTreeMap<String, String>,
    re: &BTreeMap<String, String>,
) -> Result<Vec<Matcher>, String> {
    let mut out = Vec::new();
    for (k, v) in eq {
        out.push(Matcher::new(MatchType::Equal, k, v)?);
    }
    for (k, v) in re {
        out.push(Matcher::new(MatchType::Regexp, k, v)?);
    }
    Ok(out)
}

impl AlertmanagerConfig {
    /// Parses and validates, as `amtool check-config` does.
    pub fn parse(text: &str) -> Result<AlertmanagerConfig, String> {
        if text.trim().is_empty() {
            return Err("no route provided in config".into());
        }
        let mut c: AlertmanagerConfig = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
        c.global.validate()?;
        let Some(route) = &c.route else {
            return Err("no routes provided".into());
        };
        let Some(root_receiver) = &route.receiver else {
            return Err("root route must specify a default receiver".into());
        };
        if !route.matchers.0.is_empty() || !route.match_eq.is_empty() || !route.match_re.is_empty()
        {
            return Err("root route must not have any matchers".into());
        }
        let mut names = HashSet::new();
        for r in &c.receivers {
            if r.name.is_empty() {
                return Err("missing name in receiver".into());
            }
            if !names.insert(r.name.clone()) {
                return Err(format!(
                    "notification config name {:?} is not unique",
                    r.name
                ));
            }
        }
        let global = c.global.clone();
        for r in &mut c.receivers {
            r.validate(&global)?;
        }
        let names: HashSet<&str> = names.iter().map(String::as_str).collect();
        let mut intervals = HashSet::new();
        for t in c.time_intervals.iter().chain(c.mute_time_intervals.iter()) {
            if !intervals.insert(t.name.as_str()) {
                return Err(format!("time interval {:?} is not unique", t.name));
            }
        }
        fn check(
            r: &RouteConfig,
            names: &HashSet<&str>,
            intervals: &HashSet<&str>,
        ) -> Result<(), String> {
            if let Some(rv) = &r.receiver
                && !names.contains(rv.as_str())
            {
                return Err(format!("undefined receiver {rv:?} used in route"));
            }
            for t in r
                .mute_time_intervals
                .iter()
                .chain(r.active_time_intervals.iter())
            {
                if !intervals.contains(t.as_str()) {
                    return Err(format!("undefined time interval {t:?} used in route"));
                }
            }
            if let Some(g) = &r.group_by
                && g.iter().any(|x| x == "...")
                && g.len() > 1
            {
                return Err(
                    "cannot have wildcard group_by (`...`) and other labels at the same time"
                        .into(),
                );
            }
            if r.group_interval.is_some_and(|d| d.0.is_zero()) {
                return Err("group_interval cannot be zero".into());
            }
            if r.repeat_interval.is_some_and(|d| d.0.is_zero()) {
                return Err("repeat_interval cannot be zero".into());
            }
            for c in &r.routes {
                check(c, names, intervals)?;
            }
            Ok(())
        }
        check(route, &names, &intervals)?;
        if !names.contains(root_receiver.as_str()) {
            return Err(format!(
                "undefined receiver {root_receiver:?} used in route"
            ));
        }
        for i in &c.inhibit_rules {
            legacy(&i.source_match, &i.source_match_re)?;
            legacy(&i.target_match, &i.target_match_re)?;
        }
        c.root_route()?;
        c.intervals()?;
        Ok(c)
    }

    /// The named time intervals (`time_intervals` and the older `mute_time_intervals`).
    pub fn intervals(&self) -> Result<Vec<super::timeinterval::NamedInterval>, String> {
        self.time_intervals
            .iter()
            .chain(self.mute_time_intervals.iter())
            .map(|t| {
                let specs = t
                    .time_intervals
                    .iter()
                    .map(super::timeinterval::TimeSpec::parse)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("time interval {:?}: {e}", t.name))?;
                Ok(super::timeinterval::NamedInterval {
                    name: t.name.clone(),
                    specs,
                })
            })
            .collect()
    }

    /// The routing tree with Alertmanager's defaults (30s wait, 5m interval, 4h repeat) and inheritance.
    pub fn root_route(&self) -> Result<Route, String> {
        let rc = self.route.clone().unwrap_or_default();
        let root = Route {
            receiver: rc.receiver.clone().unwrap_or_default(),
            group_by: Some(Vec::new()),
            continue_: false,
            matchers: Vec::new(),
            group_wait: Duration::from_secs(30),
            group_interval: Duration::from_secs(300),
            repeat_interval: Duration::from_secs(4 * 3600),
            mute_time_intervals: Vec::new(),
            active_time_intervals: Vec::new(),
            routes: Vec::new(),
            id: String::new(),
            key: String::new(),
        };
        build(&rc, &root, "{}".into(), "{}".into(), true)
    }
}

/// Alertmanager's `Matchers.String()` of a route: `match` (anchored, as Go prints a compiled
/// regex) and `matchers`, sorted by name, value and type.
fn route_matchers_string(rc: &RouteConfig) -> Result<String, String> {
    let mut ms: Vec<(String, String, u8, String)> = Vec::new();
    let quote = |v: &str| {
        v.replace('\\', "\\\\")
            .replace('\n', "\\n")
            .replace('"', "\\\"")
    };
    for (k, v) in &rc.match_eq {
        ms.push((k.clone(), v.clone(), 0, format!("{k}=\"{}\"", quote(v))));
    }
    for (k, v) in &rc.match_re {
        let anchored = format!("^(?:{v})$");
        ms.push((
            k.clone(),
            anchored.clone(),
            2,
            format!("{k}=~\"{}\"", quote(&anchored)),
        ));
    }
    for m in &rc.matchers.0 {
        let (op, t) = match m.kind {
            MatchType::Equal => ("=", 0),
            MatchType::NotEqual => ("!=", 1),
            MatchType::Regexp => ("=~", 2),
            MatchType::NotRegexp => ("!~", 3),
        };
        ms.push((
            m.name.clone(),
            m.value.clone(),
            t,
            format!("{}{op}\"{}\"", m.name, quote(&m.value)),
        ));
    }
    ms.sort_by(|a, b| (&a.0, &a.1, a.2).cmp(&(&b.0, &b.1, b.2)));
    Ok(format!(
        "{{{}}}",
        ms.into_iter().map(|m| m.3).collect::<Vec<_>>().join(",")
    ))
}

fn build(
    rc: &RouteConfig,
    parent: &Route,
    id: String,
    key: String,
    is_root: bool,
) -> Result<Route, String> {
    let mut matchers = if is_root {
        Vec::new()
    } else {
        legacy(&rc.match_eq, &rc.match_re)?
    };
    matchers.extend(rc.matchers.0.iter().cloned());
    let group_by = match &rc.group_by {
        Some(g) if g.iter().any(|x| x == "...") => None,
        Some(g) => Some(g.clone()),
        None => parent.group_by.clone(),
    };
    let mut r = Route {
        receiver: rc
            .receiver
            .clone()
            .unwrap_or_else(|| parent.receiver.clone()),
        group_by,
        continue_: rc.continue_,
        matchers,
        group_wait: rc.group_wait.map(|d| d.0).unwrap_or(parent.group_wait),
        group_interval: rc
            .group_interval
            .map(|d| d.0)
            .unwrap_or(parent.group_interval),
        repeat_interval: rc
            .repeat_interval
            .map(|d| d.0)
            .unwrap_or(parent.repeat_interval),
        mute_time_intervals: rc.mute_time_intervals.clone(),
        active_time_intervals: rc.active_time_intervals.clone(),
        routes: Vec::new(),
        id: id.clone(),
        key: key.clone(),
    };
    for (i, c) in rc.routes.iter().enumerate() {
        let ms: Vec<String> = legacy(&c.match_eq, &c.match_re)?
            .iter()
            .chain(c.matchers.0.iter())
            .map(|m| m.to_string())
            .collect();
        let child_id = format!("{id}/{{{}}}/{i}", ms.join(","));
        let child_key = format!("{key}/{}", route_matchers_string(c)?);
        let child = build(c, &r, child_id, child_key, false)?;
        r.routes.push(child);
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    const AM: &str = r#"
global:
  resolve_timeout: 5m
  smtp_smarthost: 'localhost:25'
  smtp_from: 'alertmanager@example.org'
route:
  receiver: team-x
  group_by: ['alertname', 'cluster']
  group_wait: 10s
  routes:
    - matchers: ['severity="page"']
      receiver: pager
      group_wait: 1s
      routes:
        - match: {service: db}
          receiver: dba
    - matchers: ['service=~"web|api"']
      receiver: web
      continue: true
    - matchers: ['team="frontend"']
      receiver: frontend
      group_by: ['...']
receivers:
  - name: team-x
    email_configs: [{to: 'team-x@example.org'}]
  - name: pager
    pagerduty_configs: [{routing_key: abc}]
  - name: dba
  - name: web
    webhook_configs: [{url: 'http://127.0.0.1:5001/'}]
  - name: frontend
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity="warning"']
    equal: ['alertname']
"#;

    fn route_for<'a>(r: &'a Route, labels: &'a [(&'a str, &'a str)]) -> Vec<&'a str> {
        let get = |n: &str| labels.iter().find(|(k, _)| *k == n).map(|(_, v)| *v);
        r.matching(&get)
            .iter()
            .map(|x| x.receiver.as_str())
            .collect()
    }

    #[test]
    fn alertmanager_yml_loads_and_routes() {
        let c = AlertmanagerConfig::parse(AM).unwrap();
        let root = c.root_route().unwrap();
        assert_eq!(root.group_wait, Duration::from_secs(10));
        assert_eq!(root.routes[0].group_wait, Duration::from_secs(1));
        assert_eq!(
            root.routes[0].routes[0].group_wait,
            Duration::from_secs(1),
            "inherited"
        );
        assert_eq!(
            root.routes[0].repeat_interval,
            Duration::from_secs(4 * 3600),
            "default"
        );
        assert_eq!(route_for(&root, &[("severity", "page")]), vec!["pager"]);
        assert_eq!(
            route_for(&root, &[("severity", "page"), ("service", "db")]),
            vec!["dba"]
        );
        assert_eq!(
            route_for(&root, &[("service", "api"), ("team", "frontend")]),
            vec!["web", "frontend"],
            "continue"
        );
        assert_eq!(route_for(&root, &[("service", "api")]), vec!["web"]);
        assert_eq!(
            route_for(&root, &[("x", "y")]),
            vec!["team-x"],
            "root catches the rest"
        );
        assert_eq!(root.routes[2].group_by, None, "`...` groups by everything");
        assert_eq!(
            root.routes[0].group_by,
            Some(vec!["alertname".into(), "cluster".into()])
        );
        assert_eq!(root.routes[0].id, "{}/{severity=\"page\"}/0");
    }

    #[test]
    fn invalid_configs_are_refused_with_reasons() {
        let e = AlertmanagerConfig::parse("route:\n  receiver: nope\nreceivers: [{name: a}]\n")
            .unwrap_err();
        assert!(e.contains("undefined receiver"), "{e}");
        let e = AlertmanagerConfig::parse("receivers: [{name: a}]\n").unwrap_err();
        assert!(e.contains("no routes"), "{e}");
        let e =
            AlertmanagerConfig::parse("route:\n  receiver: a\nreceivers: [{name: a}, {name: a}]\n")
                .unwrap_err();
        assert!(e.contains("not unique"), "{e}");
        let e = AlertmanagerConfig::parse(
            "route:\n  receiver: a\n  routes: [{matchers: ['x=~\"(\"']}]\nreceivers: [{name: a}]\n",
        )
        .unwrap_err();
        assert!(e.contains("regular expression"), "{e}");
        let e = AlertmanagerConfig::parse("route:\n  receiver: a\n  routes: [{mute_time_intervals: [night]}]\nreceivers: [{name: a}]\n")
            .unwrap_err();
        assert!(e.contains("undefined time interval"), "{e}");
    }
}
