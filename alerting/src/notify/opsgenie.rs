//! OpsGenie (`opsgenie_configs`): Alert API v2. A firing group creates (or updates) one alert whose
//! alias is the SHA-256 of the group key; a resolved group closes it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use vigil_model::Secret;

use super::{BoxFuture, BuildContext, Integration, Message, Notifier, NotifyError, Tmpl};

fn yes() -> bool {
    true
}

/// `responders:` entry.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Responder {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// One `opsgenie_configs` entry.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OpsGenieConfig {
    #[serde(default = "yes")]
    pub send_resolved: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_config: Option<vigil_http::HttpClientConfig>,
    #[serde(skip_serializing_if = "Secret::is_empty")]
    pub api_key: Secret,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_key_file: String,
    pub api_url: String,
    pub message: String,
    pub description: String,
    pub source: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub entity: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub responders: Vec<Responder>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub actions: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub tags: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub note: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub priority: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub update_alerts: bool,
}

impl Default for OpsGenieConfig {
    fn default() -> Self {
        let t = |name: &str| format!(r#"{{{{ template "opsgenie.default.{name}" . }}}}"#);
        OpsGenieConfig {
            send_resolved: true,
            http_config: None,
            api_key: Secret::default(),
            api_key_file: String::new(),
            api_url: String::new(),
            message: t("message"),
            description: t("description"),
            source: t("source"),
            details: BTreeMap::new(),
            entity: String::new(),
            responders: Vec::new(),
            actions: String::new(),
            tags: String::new(),
            note: String::new(),
            priority: String::new(),
            update_alerts: false,
        }
    }
}

impl OpsGenieConfig {
    /// Alertmanager's checks; fills in the global key and URL.
    pub fn validate(&mut self, g: &crate::router::config::GlobalConfig) -> Result<(), String> {
        if self.api_key.is_empty() && self.api_key_file.is_empty() {
            self.api_key = g.opsgenie_api_key.clone();
            self.api_key_file = g.opsgenie_api_key_file.clone();
        }
        if self.api_key.is_empty() && self.api_key_file.is_empty() {
            return Err("no global OpsGenie API Key set either inline or in a file".into());
        }
        if !self.api_key.is_empty() && !self.api_key_file.is_empty() {
            return Err("at most one of api_key & api_key_file must be configured".into());
        }
        if self.api_url.is_empty() {
            if g.opsgenie_api_url.is_empty() {
                return Err("no global OpsGenie URL set".into());
            }
            self.api_url = g.opsgenie_api_url.clone();
        }
        super::check_url(&self.api_url)?;
        if !self.api_url.ends_with('/') {
            self.api_url.push('/');
        }
        for r in &self.responders {
            let show = format!("{{{} {} {} {}}}", r.id, r.name, r.username, r.kind);
            if r.id.is_empty() && r.name.is_empty() && r.username.is_empty() {
                return Err(format!(
                    "opsGenieConfig responder {show} has to have at least one of id, username or name specified"
                ));
            }
            if !r.kind.contains("{{") {
                let t = r.kind.to_lowercase();
                if !["team", "teams", "user", "escalation", "schedule"].contains(&t.as_str()) {
                    return Err(format!(
                        "opsGenieConfig responder {show} type does not match valid options ^(team|teams|user|escalation|schedule)$"
                    ));
                }
            }
        }
        if let Some(h) = &mut self.http_config {
            h.validate().map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    pub fn build(&self, index: usize, ctx: &mut BuildContext<'_>) -> Result<Integration, String> {
        let mut details = Vec::new();
        for (k, v) in &self.details {
            details.push((k.clone(), ctx.tmpl(&format!("details.{k}"), v)?));
        }
        let mut responders = Vec::new();
        for r in &self.responders {
            responders.push([
                ctx.tmpl("responders.id", &r.id)?,
                ctx.tmpl("responders.name", &r.name)?,
                ctx.tmpl("responders.username", &r.username)?,
                ctx.tmpl("responders.type", &r.kind)?,
            ]);
        }
        Ok(Integration {
            kind: "opsgenie",
            index,
            send_resolved: self.send_resolved,
            notifier: Box::new(OpsGenie {
                client: ctx.http(&self.http_config)?,
                api_url: self.api_url.clone(),
                key: ctx.tmpl("api_key", self.api_key.expose())?,
                key_file: self.api_key_file.clone(),
                message: ctx.tmpl("message", &self.message)?,
                description: ctx.tmpl("description", &self.description)?,
                source: ctx.tmpl("source", &self.source)?,
                entity: ctx.tmpl("entity", &self.entity)?,
                actions: ctx.tmpl("actions", &self.actions)?,
                tags: ctx.tmpl("tags", &self.tags)?,
                note: ctx.tmpl("note", &self.note)?,
                priority: ctx.tmpl("priority", &self.priority)?,
                update_alerts: self.update_alerts,
                details,
                responders,
            }),
        })
    }
}

struct OpsGenie {
    client: vigil_http::HttpClient,
    api_url: String,
    key: Tmpl,
    key_file: String,
    message: Tmpl,
    description: Tmpl,
    source: Tmpl,
    entity: Tmpl,
    actions: Tmpl,
    tags: Tmpl,
    note: Tmpl,
    priority: Tmpl,
    update_alerts: bool,
    details: Vec<(String, Tmpl)>,
    responders: Vec<[Tmpl; 4]>,
}

fn empty(s: &str) -> bool {
    s.is_empty()
}

#[derive(Serialize)]
struct ResponderJson {
    #[serde(skip_serializing_if = "empty")]
    id: String,
    #[serde(skip_serializing_if = "empty")]
    name: String,
    #[serde(skip_serializing_if = "empty")]
    username: String,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Serialize)]
struct Create {
    alias: String,
    message: String,
    #[serde(skip_serializing_if = "empty")]
    description: String,
    details: BTreeMap<String, String>,
    source: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    responders: Vec<ResponderJson>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<String>,
    #[serde(skip_serializing_if = "empty")]
    note: String,
    #[serde(skip_serializing_if = "empty")]
    priority: String,
    #[serde(skip_serializing_if = "empty")]
    entity: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    actions: Vec<String>,
}

/// `a, b` as Alertmanager splits tags and actions: trimmed as a whole, split on commas, empty
/// parts dropped (parts themselves not trimmed).
fn split_list(s: &str) -> Vec<String> {
    s.trim()
        .split(',')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

/// The requests one notification makes: (method, URL path after `api_url`, body).
type Requests = Vec<(reqwest::Method, String, Vec<u8>)>;

impl OpsGenie {
    fn requests(&self, m: &Message<'_>) -> Result<(String, Requests), NotifyError> {
        let data = m.data();
        let r = |t: &Tmpl| {
            m.render(&data, t)
                .map_err(|e| NotifyError::fatal(format!("templating error: {e}")))
        };
        let key = if self.key_file.is_empty() {
            r(&self.key)?
        } else {
            std::fs::read_to_string(&self.key_file)
                .map_err(|e| NotifyError::fatal(format!("read key_file error: {e}")))?
        };
        let alias = m.key_hash();
        if m.status() == "resolved" {
            #[derive(Serialize)]
            struct Close {
                source: String,
            }
            let body = super::go_json(&Close {
                source: r(&self.source)?,
            });
            return Ok((
                key,
                vec![(
                    reqwest::Method::POST,
                    format!("v2/alerts/{alias}/close?identifierType=alias"),
                    body,
                )],
            ));
        }
        let mut details = m.common_labels();
        for (k, t) in &self.details {
            details.insert(k.clone(), r(t)?);
        }
        let mut responders = Vec::new();
        for [id, name, username, kind] in &self.responders {
            let (id, name, username, kind) = (r(id)?, r(name)?, r(username)?, r(kind)?);
            if id.is_empty() && name.is_empty() && username.is_empty() && kind.is_empty() {
                continue;
            }
            if kind == "teams" {
                for team in split_list(&name) {
                    responders.push(ResponderJson {
                        id: String::new(),
                        name: team,
                        username: String::new(),
                        kind: "team".into(),
                    });
                }
                continue;
            }
            responders.push(ResponderJson {
                id,
                name,
                username,
                kind,
            });
        }
        let message = super::truncate_runes(&r(&self.message)?, 130);
        let description = r(&self.description)?;
        let create = Create {
            alias: alias.clone(),
            message: message.clone(),
            description: description.clone(),
            details,
            source: r(&self.source)?,
            responders,
            tags: split_list(&r(&self.tags)?),
            note: r(&self.note)?,
            priority: r(&self.priority)?,
            entity: r(&self.entity)?,
            actions: split_list(&r(&self.actions)?),
        };
        let mut out = vec![(
            reqwest::Method::POST,
            "v2/alerts".to_string(),
            super::go_json(&create),
        )];
        if self.update_alerts {
            #[derive(Serialize)]
            struct Msg {
                #[serde(skip_serializing_if = "empty")]
                message: String,
            }
            #[derive(Serialize)]
            struct Desc {
                #[serde(skip_serializing_if = "empty")]
                description: String,
            }
            out.push((
                reqwest::Method::PUT,
                format!("v2/alerts/{alias}/message?identifierType=alias"),
                super::go_json(&Msg { message }),
            ));
            out.push((
                reqwest::Method::PUT,
                format!("v2/alerts/{alias}/description?identifierType=alias"),
                super::go_json(&Desc { description }),
            ));
        }
        Ok((key, out))
    }
}

impl Notifier for OpsGenie {
    fn notify<'a>(&'a self, m: &'a Message<'a>) -> BoxFuture<'a, Result<(), NotifyError>> {
        Box::pin(async move {
            let (key, requests) = self.requests(m)?;
            for (method, path, body) in requests {
                let url = format!("{}{path}", self.api_url);
                let resp = self
                    .client
                    .request(method, &url)
                    .map_err(|e| NotifyError::fatal(e.to_string()))?
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .header(reqwest::header::AUTHORIZATION, format!("GenieKey {key}"))
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| NotifyError::retry(super::transport_error(e)))?;
                let code = resp.status().as_u16();
                let text = resp.text().await.unwrap_or_default();
                super::check_status(code, &[429], &text)?;
            }
            Ok(())
        })
    }
}
