//! Slack (`slack_configs`): one message with one attachment per notification, POSTed to an
//! incoming-webhook URL (`api_url`, a secret: it carries the token) with Alertmanager's default
//! title, link, fallback and colour.

use serde::{Deserialize, Serialize};
use vigil_model::Secret;

use super::{BoxFuture, BuildContext, Integration, Message, Notifier, NotifyError, Tmpl};

/// `fields:` entry.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SlackField {
    pub title: String,
    pub value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub short: Option<bool>,
}

/// `confirm:` of an action.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SlackConfirm {
    pub text: String,
    pub title: String,
    pub ok_text: String,
    pub dismiss_text: String,
}

/// `actions:` entry (a link button or a message button).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SlackAction {
    #[serde(rename = "type")]
    pub kind: String,
    pub text: String,
    pub url: String,
    pub style: String,
    pub name: String,
    pub value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirm: Option<SlackConfirm>,
}

/// One `slack_configs` entry.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SlackConfig {
    pub send_resolved: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_config: Option<vigil_http::HttpClientConfig>,
    #[serde(skip_serializing_if = "Secret::is_empty")]
    pub api_url: Secret,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_url_file: String,
    pub channel: String,
    pub username: String,
    pub color: String,
    pub title: String,
    pub title_link: String,
    pub pretext: String,
    pub text: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<SlackField>,
    pub short_fields: bool,
    pub footer: String,
    pub fallback: String,
    pub callback_id: String,
    pub icon_emoji: String,
    pub icon_url: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub image_url: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub thumb_url: String,
    pub link_names: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mrkdwn_in: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<SlackAction>,
}

impl Default for SlackConfig {
    fn default() -> Self {
        let t = |name: &str| format!(r#"{{{{ template "slack.default.{name}" . }}}}"#);
        SlackConfig {
            send_resolved: false,
            http_config: None,
            api_url: Secret::default(),
            api_url_file: String::new(),
            channel: String::new(),
            username: t("username"),
            color: r#"{{ if eq .Status "firing" }}danger{{ else }}good{{ end }}"#.into(),
            title: t("title"),
            title_link: t("titlelink"),
            pretext: t("pretext"),
            text: t("text"),
            fields: Vec::new(),
            short_fields: false,
            footer: t("footer"),
            fallback: t("fallback"),
            callback_id: t("callbackid"),
            icon_emoji: t("iconemoji"),
            icon_url: t("iconurl"),
            image_url: String::new(),
            thumb_url: String::new(),
            link_names: false,
            mrkdwn_in: Vec::new(),
            actions: Vec::new(),
        }
    }
}

impl SlackConfig {
    /// Alertmanager's checks; fills in the global API URL.
    pub fn validate(&mut self, global_url: &Secret, global_url_file: &str) -> Result<(), String> {
        if self.api_url.is_empty() && self.api_url_file.is_empty() {
            self.api_url = global_url.clone();
            self.api_url_file = global_url_file.to_string();
        }
        if self.api_url.is_empty() && self.api_url_file.is_empty() {
            return Err("no global Slack API URL set either inline or in a file".into());
        }
        if !self.api_url.is_empty() && !self.api_url_file.is_empty() {
            return Err("at most one of api_url & api_url_file must be configured".into());
        }
        if !self.api_url.is_empty() {
            super::check_url(self.api_url.expose())?;
        }
        for a in &mut self.actions {
            if a.kind.is_empty() {
                return Err("missing type in Slack action configuration".into());
            }
            if a.text.is_empty() {
                return Err("missing text in Slack action configuration".into());
            }
            if !a.url.is_empty() {
                a.name.clear();
                a.value.clear();
                a.confirm = None;
            } else if !a.name.is_empty() {
                a.url.clear();
            } else {
                return Err("missing name or url in Slack action configuration".into());
            }
            if let Some(c) = &a.confirm
                && c.text.is_empty()
            {
                return Err("missing text in Slack confirmation configuration".into());
            }
        }
        for f in &self.fields {
            if f.title.is_empty() {
                return Err("missing title in Slack field configuration".into());
            }
            if f.value.is_empty() {
                return Err("missing value in Slack field configuration".into());
            }
        }
        if let Some(h) = &mut self.http_config {
            h.validate().map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    pub fn build(&self, index: usize, ctx: &mut BuildContext<'_>) -> Result<Integration, String> {
        let mut fields = Vec::new();
        for f in &self.fields {
            fields.push((
                ctx.tmpl("fields.title", &f.title)?,
                ctx.tmpl("fields.value", &f.value)?,
                f.short.unwrap_or(self.short_fields),
            ));
        }
        let mut actions = Vec::new();
        for a in &self.actions {
            let confirm = match &a.confirm {
                Some(c) => Some([
                    ctx.tmpl("confirm.text", &c.text)?,
                    ctx.tmpl("confirm.title", &c.title)?,
                    ctx.tmpl("confirm.ok_text", &c.ok_text)?,
                    ctx.tmpl("confirm.dismiss_text", &c.dismiss_text)?,
                ]),
                None => None,
            };
            actions.push((
                [
                    ctx.tmpl("actions.type", &a.kind)?,
                    ctx.tmpl("actions.text", &a.text)?,
                    ctx.tmpl("actions.url", &a.url)?,
                    ctx.tmpl("actions.style", &a.style)?,
                    ctx.tmpl("actions.name", &a.name)?,
                    ctx.tmpl("actions.value", &a.value)?,
                ],
                confirm,
            ));
        }
        Ok(Integration {
            kind: "slack",
            index,
            send_resolved: self.send_resolved,
            notifier: Box::new(Slack {
                client: ctx.http(&self.http_config)?,
                url: self.api_url.clone(),
                url_file: self.api_url_file.clone(),
                channel: ctx.tmpl("channel", &self.channel)?,
                username: ctx.tmpl("username", &self.username)?,
                icon_emoji: ctx.tmpl("icon_emoji", &self.icon_emoji)?,
                icon_url: ctx.tmpl("icon_url", &self.icon_url)?,
                link_names: self.link_names,
                title: ctx.tmpl("title", &self.title)?,
                title_link: ctx.tmpl("title_link", &self.title_link)?,
                pretext: ctx.tmpl("pretext", &self.pretext)?,
                text: ctx.tmpl("text", &self.text)?,
                fallback: ctx.tmpl("fallback", &self.fallback)?,
                callback_id: ctx.tmpl("callback_id", &self.callback_id)?,
                image_url: ctx.tmpl("image_url", &self.image_url)?,
                thumb_url: ctx.tmpl("thumb_url", &self.thumb_url)?,
                footer: ctx.tmpl("footer", &self.footer)?,
                color: ctx.tmpl("color", &self.color)?,
                mrkdwn_in: if self.mrkdwn_in.is_empty() {
                    vec!["fallback".into(), "pretext".into(), "text".into()]
                } else {
                    self.mrkdwn_in.clone()
                },
                fields,
                actions,
            }),
        })
    }
}

struct Slack {
    client: vigil_http::HttpClient,
    url: Secret,
    url_file: String,
    channel: Tmpl,
    username: Tmpl,
    icon_emoji: Tmpl,
    icon_url: Tmpl,
    link_names: bool,
    title: Tmpl,
    title_link: Tmpl,
    pretext: Tmpl,
    text: Tmpl,
    fallback: Tmpl,
    callback_id: Tmpl,
    image_url: Tmpl,
    thumb_url: Tmpl,
    footer: Tmpl,
    color: Tmpl,
    mrkdwn_in: Vec<String>,
    fields: Vec<(Tmpl, Tmpl, bool)>,
    #[allow(clippy::type_complexity)]
    actions: Vec<([Tmpl; 6], Option<[Tmpl; 4]>)>,
}

fn empty(s: &str) -> bool {
    s.is_empty()
}
fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Serialize)]
struct FieldJson {
    #[serde(skip_serializing_if = "empty")]
    title: String,
    #[serde(skip_serializing_if = "empty")]
    value: String,
    short: bool,
}

#[derive(Serialize)]
struct ConfirmJson {
    #[serde(skip_serializing_if = "empty")]
    text: String,
    #[serde(skip_serializing_if = "empty")]
    title: String,
    #[serde(skip_serializing_if = "empty")]
    ok_text: String,
    #[serde(skip_serializing_if = "empty")]
    dismiss_text: String,
}

#[derive(Serialize)]
struct ActionJson {
    #[serde(rename = "type", skip_serializing_if = "empty")]
    kind: String,
    #[serde(skip_serializing_if = "empty")]
    text: String,
    #[serde(skip_serializing_if = "empty")]
    url: String,
    #[serde(skip_serializing_if = "empty")]
    style: String,
    #[serde(skip_serializing_if = "empty")]
    name: String,
    #[serde(skip_serializing_if = "empty")]
    value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    confirm: Option<ConfirmJson>,
}

#[derive(Serialize)]
struct Attachment {
    #[serde(skip_serializing_if = "empty")]
    title: String,
    #[serde(skip_serializing_if = "empty")]
    title_link: String,
    #[serde(skip_serializing_if = "empty")]
    pretext: String,
    text: String,
    fallback: String,
    callback_id: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    fields: Vec<FieldJson>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    actions: Vec<ActionJson>,
    #[serde(skip_serializing_if = "empty")]
    image_url: String,
    #[serde(skip_serializing_if = "empty")]
    thumb_url: String,
    footer: String,
    #[serde(skip_serializing_if = "empty")]
    color: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    mrkdwn_in: Vec<String>,
}

#[derive(Serialize)]
struct Request {
    #[serde(skip_serializing_if = "empty")]
    channel: String,
    #[serde(skip_serializing_if = "empty")]
    username: String,
    #[serde(skip_serializing_if = "empty")]
    icon_emoji: String,
    #[serde(skip_serializing_if = "empty")]
    icon_url: String,
    #[serde(skip_serializing_if = "is_false")]
    link_names: bool,
    attachments: Vec<Attachment>,
}

impl Slack {
    fn body(&self, m: &Message<'_>) -> Result<(String, Vec<u8>), NotifyError> {
        let data = m.data();
        let r = |t: &Tmpl| m.render(&data, t);
        let mut fields = Vec::new();
        for (title, value, short) in &self.fields {
            fields.push(FieldJson {
                title: r(title)?,
                value: r(value)?,
                short: *short,
            });
        }
        let mut actions = Vec::new();
        for (a, confirm) in &self.actions {
            actions.push(ActionJson {
                kind: r(&a[0])?,
                text: r(&a[1])?,
                url: r(&a[2])?,
                style: r(&a[3])?,
                name: r(&a[4])?,
                value: r(&a[5])?,
                confirm: match confirm {
                    Some(c) => Some(ConfirmJson {
                        text: r(&c[0])?,
                        title: r(&c[1])?,
                        ok_text: r(&c[2])?,
                        dismiss_text: r(&c[3])?,
                    }),
                    None => None,
                },
            });
        }
        let channel = r(&self.channel)?;
        let req = Request {
            channel: channel.clone(),
            username: r(&self.username)?,
            icon_emoji: r(&self.icon_emoji)?,
            icon_url: r(&self.icon_url)?,
            link_names: self.link_names,
            attachments: vec![Attachment {
                title: super::truncate_runes(&r(&self.title)?, 1024),
                title_link: r(&self.title_link)?,
                pretext: r(&self.pretext)?,
                text: r(&self.text)?,
                fallback: r(&self.fallback)?,
                callback_id: r(&self.callback_id)?,
                fields,
                actions,
                image_url: r(&self.image_url)?,
                thumb_url: r(&self.thumb_url)?,
                footer: r(&self.footer)?,
                color: r(&self.color)?,
                mrkdwn_in: self.mrkdwn_in.clone(),
            }],
        };
        Ok((channel, super::go_json(&req)))
    }
}

impl Notifier for Slack {
    fn notify<'a>(&'a self, m: &'a Message<'a>) -> BoxFuture<'a, Result<(), NotifyError>> {
        Box::pin(async move {
            let (channel, body) = self.body(m)?;
            let url = if self.url_file.is_empty() {
                self.url.expose().to_string()
            } else {
                std::fs::read_to_string(&self.url_file)
                    .map(|s| s.trim().to_string())
                    .map_err(|e| NotifyError::fatal(format!("reading api_url_file: {e}")))?
            };
            let wrap = |e: NotifyError| NotifyError {
                message: format!("channel {channel:?}: {}", e.message),
                ..e
            };
            // The URL is the credential: it never appears in an error.
            let (code, text) = super::post_json(&self.client, &url, body, &[])
                .await
                .map_err(wrap)?;
            super::check_status(code, &[], &text).map_err(wrap)
        })
    }
}
