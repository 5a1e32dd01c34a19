//! PagerDuty (`pagerduty_configs`): Events API v2 with `routing_key` (trigger while the group
//! fires, resolve when it no longer does, one `dedup_key` per group, the SHA-256 of its key as
//! Alertmanager computes it), or the older Events API v1 with `service_key`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use vigil_model::Secret;

use super::{BoxFuture, BuildContext, Integration, Message, Notifier, NotifyError, Tmpl};

fn yes() -> bool {
    true
}

/// `images:` entry.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Image {
    pub src: String,
    pub alt: String,
    pub href: String,
}

/// `links:` entry.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Link {
    pub href: String,
    pub text: String,
}

/// One `pagerduty_configs` entry.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PagerDutyConfig {
    #[serde(default = "yes")]
    pub send_resolved: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_config: Option<vigil_http::HttpClientConfig>,
    #[serde(skip_serializing_if = "Secret::is_empty")]
    pub routing_key: Secret,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub routing_key_file: String,
    #[serde(skip_serializing_if = "Secret::is_empty")]
    pub service_key: Secret,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub service_key_file: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub url: String,
    pub client: String,
    pub client_url: String,
    pub description: String,
    pub details: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<Image>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub source: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub severity: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub class: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub component: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub group: String,
}

impl Default for PagerDutyConfig {
    fn default() -> Self {
        PagerDutyConfig {
            send_resolved: true,
            http_config: None,
            routing_key: Secret::default(),
            routing_key_file: String::new(),
            service_key: Secret::default(),
            service_key_file: String::new(),
            url: String::new(),
            client: r#"{{ template "pagerduty.default.client" . }}"#.into(),
            client_url: r#"{{ template "pagerduty.default.clientURL" . }}"#.into(),
            description: r#"{{ template "pagerduty.default.description" .}}"#.into(),
            details: BTreeMap::new(),
            images: Vec::new(),
            links: Vec::new(),
            source: String::new(),
            severity: String::new(),
            class: String::new(),
            component: String::new(),
            group: String::new(),
        }
    }
}

/// The details every event carries unless the configuration sets them.
const DEFAULT_DETAILS: &[(&str, &str)] = &[
    (
        "firing",
        r#"{{ template "pagerduty.default.instances" .Alerts.Firing }}"#,
    ),
    (
        "resolved",
        r#"{{ template "pagerduty.default.instances" .Alerts.Resolved }}"#,
    ),
    ("num_firing", "{{ .Alerts.Firing | len }}"),
    ("num_resolved", "{{ .Alerts.Resolved | len }}"),
];

/// Events API v1's fixed endpoint.
const V1_URL: &str = "https://events.pagerduty.com/generic/2010-04-15/create_event.json";
/// PagerDuty refuses events larger than this.
const MAX_EVENT_BYTES: usize = 512_000;

impl PagerDutyConfig {
    /// Alertmanager's checks; fills in the global URL and the default details and source.
    pub fn validate(&mut self, global_url: &str) -> Result<(), String> {
        if self.routing_key.is_empty()
            && self.routing_key_file.is_empty()
            && self.service_key.is_empty()
            && self.service_key_file.is_empty()
        {
            return Err("missing service or routing key in PagerDuty config".into());
        }
        if !self.routing_key.is_empty() && !self.routing_key_file.is_empty() {
            return Err("at most one of routing_key & routing_key_file must be configured".into());
        }
        if !self.service_key.is_empty() && !self.service_key_file.is_empty() {
            return Err("at most one of service_key & service_key_file must be configured".into());
        }
        if self.url.is_empty() {
            if global_url.is_empty() {
                return Err("no global PagerDuty URL set".into());
            }
            self.url = global_url.to_string();
        }
        super::check_url(&self.url)?;
        for (k, v) in DEFAULT_DETAILS {
            self.details
                .entry(k.to_string())
                .or_insert_with(|| v.to_string());
        }
        if self.source.is_empty() {
            self.source = self.client.clone();
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
        let mut images = Vec::new();
        for i in &self.images {
            images.push([
                ctx.tmpl("images.src", &i.src)?,
                ctx.tmpl("images.alt", &i.alt)?,
                ctx.tmpl("images.href", &i.href)?,
            ]);
        }
        let mut links = Vec::new();
        for l in &self.links {
            links.push([
                ctx.tmpl("links.href", &l.href)?,
                ctx.tmpl("links.text", &l.text)?,
            ]);
        }
        let v1 = !self.service_key.is_empty() || !self.service_key_file.is_empty();
        let (key, key_file) = if v1 {
            (&self.service_key, &self.service_key_file)
        } else {
            (&self.routing_key, &self.routing_key_file)
        };
        Ok(Integration {
            kind: "pagerduty",
            index,
            send_resolved: self.send_resolved,
            notifier: Box::new(PagerDuty {
                client: ctx.http(&self.http_config)?,
                v1,
                url: if v1 { V1_URL.into() } else { self.url.clone() },
                key: ctx.tmpl("routing_key", key.expose())?,
                key_file: key_file.clone(),
                client_name: ctx.tmpl("client", &self.client)?,
                client_url: ctx.tmpl("client_url", &self.client_url)?,
                description: ctx.tmpl("description", &self.description)?,
                source: ctx.tmpl("source", &self.source)?,
                severity: ctx.tmpl("severity", &self.severity)?,
                class: ctx.tmpl("class", &self.class)?,
                component: ctx.tmpl("component", &self.component)?,
                group: ctx.tmpl("group", &self.group)?,
                details,
                images,
                links,
            }),
        })
    }
}

struct PagerDuty {
    client: vigil_http::HttpClient,
    v1: bool,
    url: String,
    key: Tmpl,
    key_file: String,
    client_name: Tmpl,
    client_url: Tmpl,
    description: Tmpl,
    source: Tmpl,
    severity: Tmpl,
    class: Tmpl,
    component: Tmpl,
    group: Tmpl,
    details: Vec<(String, Tmpl)>,
    images: Vec<[Tmpl; 3]>,
    links: Vec<[Tmpl; 2]>,
}

fn empty(s: &str) -> bool {
    s.is_empty()
}

#[derive(Serialize)]
struct Payload {
    summary: String,
    source: String,
    severity: String,
    #[serde(skip_serializing_if = "empty")]
    class: String,
    #[serde(skip_serializing_if = "empty")]
    component: String,
    #[serde(skip_serializing_if = "empty")]
    group: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    custom_details: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct ImageJson {
    src: String,
    alt: String,
    href: String,
}

#[derive(Serialize)]
struct LinkJson {
    href: String,
    text: String,
}

#[derive(Serialize)]
struct EventV2 {
    routing_key: String,
    dedup_key: String,
    event_action: &'static str,
    payload: Payload,
    #[serde(skip_serializing_if = "empty")]
    client: String,
    #[serde(skip_serializing_if = "empty")]
    client_url: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    images: Vec<ImageJson>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    links: Vec<LinkJson>,
}

#[derive(Serialize)]
struct EventV1 {
    service_key: String,
    incident_key: String,
    event_type: &'static str,
    description: String,
    #[serde(skip_serializing_if = "empty")]
    client: String,
    #[serde(skip_serializing_if = "empty")]
    client_url: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    details: BTreeMap<String, String>,
    event_action: &'static str,
    payload: Option<()>,
}

/// PagerDuty's error body for a 400: `{"status", "message", "errors": [...]}`.
fn error_details(code: u16, body: &str) -> String {
    if code != 400 {
        return String::new();
    }
    #[derive(Deserialize)]
    struct E {
        #[serde(default)]
        message: String,
        #[serde(default)]
        errors: Vec<String>,
    }
    match serde_json::from_str::<E>(body) {
        Ok(e) => format!("{}: {}", e.message, e.errors.join(",")),
        Err(_) => String::new(),
    }
}

impl PagerDuty {
    fn body(&self, m: &Message<'_>) -> Result<Vec<u8>, NotifyError> {
        let data = m.data();
        let r = |t: &Tmpl| m.render(&data, t);
        let key = if self.key_file.is_empty() {
            r(&self.key)?
        } else {
            std::fs::read_to_string(&self.key_file)
                .map(|s| s.trim().to_string())
                .map_err(|e| {
                    NotifyError::fatal(format!("failed to read routing key from file: {e}"))
                })?
        };
        if key.is_empty() {
            return Err(NotifyError::fatal(if self.v1 {
                "service key cannot be empty"
            } else {
                "routing key cannot be empty"
            }));
        }
        let mut details = BTreeMap::new();
        for (k, t) in &self.details {
            let v = m
                .templates
                .render(t, &data)
                .map_err(|e| NotifyError::fatal(format!("{k:?}: failed to template: {e}")))?;
            details.insert(k.clone(), v);
        }
        let resolved = m.status() == "resolved";
        let summary = super::truncate_runes(&r(&self.description)?, 1024);
        if self.v1 {
            return Ok(super::go_json(&EventV1 {
                service_key: key,
                incident_key: m.key_hash(),
                event_type: if resolved { "resolve" } else { "trigger" },
                description: summary,
                client: if resolved {
                    String::new()
                } else {
                    r(&self.client_name)?
                },
                client_url: if resolved {
                    String::new()
                } else {
                    r(&self.client_url)?
                },
                details,
                event_action: "",
                payload: None,
            }));
        }
        let severity = r(&self.severity)?;
        let mut images = Vec::new();
        for [src, alt, href] in &self.images {
            let src = r(src)?;
            if !src.is_empty() {
                images.push(ImageJson {
                    src,
                    alt: r(alt)?,
                    href: r(href)?,
                });
            }
        }
        let mut links = Vec::new();
        for [href, text] in &self.links {
            let href = r(href)?;
            if !href.is_empty() {
                links.push(LinkJson {
                    href,
                    text: r(text)?,
                });
            }
        }
        let mut ev = EventV2 {
            routing_key: key,
            dedup_key: m.key_hash(),
            event_action: if resolved { "resolve" } else { "trigger" },
            payload: Payload {
                summary,
                source: r(&self.source)?,
                severity: if severity.is_empty() {
                    "error".into()
                } else {
                    severity
                },
                class: r(&self.class)?,
                component: r(&self.component)?,
                group: r(&self.group)?,
                custom_details: details,
            },
            client: r(&self.client_name)?,
            client_url: r(&self.client_url)?,
            images,
            links,
        };
        let mut body = super::go_json(&ev);
        if body.len() > MAX_EVENT_BYTES {
            tracing::warn!(
                bytes = body.len(),
                "PagerDuty event over 512KB: custom details removed"
            );
            ev.payload.custom_details = BTreeMap::from([(
                "error".to_string(),
                "Custom details have been removed because the original event exceeds the maximum size of 512KB".to_string(),
            )]);
            body = super::go_json(&ev);
        }
        Ok(body)
    }
}

impl Notifier for PagerDuty {
    fn notify<'a>(&'a self, m: &'a Message<'a>) -> BoxFuture<'a, Result<(), NotifyError>> {
        Box::pin(async move {
            let body = self.body(m)?;
            let (code, text) = super::post_json(&self.client, &self.url, body, &[])
                .await
                .map_err(|e| {
                    NotifyError::retry(format!("failed to post message to PagerDuty: {e}"))
                })?;
            let retry_codes: &[u16] = if self.v1 { &[403] } else { &[429] };
            super::check_status(code, retry_codes, &error_details(code, &text))
        })
    }
}
