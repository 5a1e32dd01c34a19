//! Notifiers: where a notification about an alert group goes. One file per integration (webhook,
//! email, PagerDuty, Slack, OpsGenie), each a typed configuration validated when the
//! alertmanager.yml loads (so `vigil check config` and a reload refuse what delivery would fail
//! on) and a [`Notifier`] that makes one delivery attempt. Retries, deduplication and the
//! notification log are the router's; a notifier only says whether a failure is worth retrying.
//!
//! Adding an integration is adding a file here, a field in
//! [`ReceiverConfig`](crate::router::config::ReceiverConfig) and a line in [`build`].

pub mod email;
pub mod opsgenie;
pub mod pagerduty;
pub mod runbook;
pub mod slack;
pub mod template;
pub mod webhook;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use gotmpl::Value;
use serde::Serialize;
use vigil_model::Labels;

use crate::router::config::{AlertmanagerConfig, GlobalConfig, ReceiverConfig};
use crate::router::dispatch::Alert;
pub use template::{TemplateSet, Tmpl};

/// Why one delivery attempt failed, and whether trying again can help (a 5xx or a connection
/// error can; a 4xx that says the request is wrong cannot, until the next flush).
#[derive(Clone, Debug, PartialEq)]
pub struct NotifyError {
    pub retry: bool,
    pub message: String,
}

impl NotifyError {
    pub fn retry(m: impl Into<String>) -> NotifyError {
        NotifyError {
            retry: true,
            message: m.into(),
        }
    }
    pub fn fatal(m: impl Into<String>) -> NotifyError {
        NotifyError {
            retry: false,
            message: m.into(),
        }
    }
}

impl std::fmt::Display for NotifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// One notification as a notifier sees it: the group, the alerts to announce (already filtered by
/// the integration's `send_resolved`), and the templates to render with.
pub struct Message<'a> {
    pub receiver: &'a str,
    /// Alertmanager's group key (`{}/{team="a"}:{alertname="X"}`).
    pub group_key: &'a str,
    pub group_labels: &'a Labels,
    pub alerts: &'a [Alert],
    /// ms; what "firing" and "resolved" are judged against.
    pub now: i64,
    pub external_url: &'a str,
    pub templates: &'a TemplateSet,
}

/// Labels (or annotations) every alert shares.
pub fn common(
    maps: impl IntoIterator<Item = BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let mut it = maps.into_iter();
    let Some(mut acc) = it.next() else {
        return BTreeMap::new();
    };
    for m in it {
        acc.retain(|k, v| m.get(k) == Some(v));
    }
    acc
}

fn label_map(l: &Labels) -> BTreeMap<String, String> {
    l.iter()
        .map(|l| (l.name.to_string(), l.value.to_string()))
        .collect()
}

/// Go's `regexp.QuoteMeta`: Alertmanager shows receiver names to templates escaped so.
pub fn quote_meta(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if r"\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl Message<'_> {
    pub fn firing(&self) -> impl Iterator<Item = &Alert> {
        self.alerts.iter().filter(|a| !a.resolved_at(self.now))
    }

    pub fn resolved(&self) -> impl Iterator<Item = &Alert> {
        self.alerts.iter().filter(|a| a.resolved_at(self.now))
    }

    /// `firing` when any alert still fires, `resolved` otherwise.
    pub fn status(&self) -> &'static str {
        if self.firing().next().is_some() {
            "firing"
        } else {
            "resolved"
        }
    }

    pub fn common_labels(&self) -> BTreeMap<String, String> {
        common(self.alerts.iter().map(|a| label_map(&a.labels)))
    }

    pub fn common_annotations(&self) -> BTreeMap<String, String> {
        common(self.alerts.iter().map(|a| a.annotations.clone()))
    }

    /// SHA-256 of the group key, in hex: PagerDuty's `dedup_key` and OpsGenie's `alias`, as
    /// Alertmanager computes them (so a move from Alertmanager keeps the same incidents).
    pub fn key_hash(&self) -> String {
        use sha2::Digest;
        let d = sha2::Sha256::digest(self.group_key.as_bytes());
        d.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The template data (Alertmanager's `template.Data`).
    pub fn data(&self) -> Value {
        let kv = |m: &BTreeMap<String, String>| {
            template::kv(m.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        };
        let alerts = self
            .alerts
            .iter()
            .map(|a| {
                let resolved = a.resolved_at(self.now);
                template::alert(template::AlertData {
                    status: if resolved { "resolved" } else { "firing" },
                    labels: kv(&label_map(&a.labels)),
                    annotations: kv(&a.annotations),
                    starts_at: a.starts_at,
                    ends_at: resolved.then_some(a.ends_at),
                    generator_url: &a.generator_url,
                    fingerprint: format!("{:016x}", a.fingerprint()),
                })
            })
            .collect();
        template::Data {
            receiver: quote_meta(self.receiver),
            status: self.status().into(),
            alerts,
            group_labels: kv(&label_map(self.group_labels)),
            common_labels: kv(&self.common_labels()),
            common_annotations: kv(&self.common_annotations()),
            external_url: self.external_url.into(),
        }
        .value()
    }

    /// Renders a configuration template against this message.
    pub fn render(&self, data: &Value, t: &Tmpl) -> Result<String, NotifyError> {
        self.templates.render(t, data).map_err(NotifyError::fatal)
    }
}

/// A boxed future, so notifiers can be trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One integration of a receiver: makes one delivery attempt.
pub trait Notifier: Send + Sync {
    fn notify<'a>(&'a self, m: &'a Message<'a>) -> BoxFuture<'a, Result<(), NotifyError>>;
}

/// An integration of a receiver (`webhook[0]`, `slack[1]`, …).
pub struct Integration {
    pub kind: &'static str,
    pub index: usize,
    pub send_resolved: bool,
    pub notifier: Box<dyn Notifier>,
}

impl Integration {
    /// `webhook[0]`: the name of this integration in logs, metrics and the notification log.
    pub fn name(&self) -> String {
        format!("{}[{}]", self.kind, self.index)
    }
}

/// What building an integration needs: the templates (its strings are parsed into them) and the
/// shared options of outgoing HTTP.
pub struct BuildContext<'a> {
    pub templates: &'a mut TemplateSet,
    pub global: &'a GlobalConfig,
    pub client: vigil_http::ClientOptions,
    /// Builds `runbook_configs` entries; None when no runbooks are configured.
    pub runbooks: Option<&'a dyn runbook::RunbookFactory>,
}

impl BuildContext<'_> {
    /// Parses a template string of the configuration; errors name the receiver and the field.
    pub fn tmpl(&mut self, what: &str, text: &str) -> Result<Tmpl, String> {
        self.templates
            .add(what, text)
            .map_err(|e| format!("{what}: {e}"))
    }

    /// The HTTP client of an integration: its own `http_config`, else the global one.
    pub fn http(
        &self,
        own: &Option<vigil_http::HttpClientConfig>,
    ) -> Result<vigil_http::HttpClient, String> {
        own.as_ref()
            .unwrap_or(&self.global.http_config)
            .build(&self.client)
            .map_err(|e| e.to_string())
    }
}

/// The integrations of every receiver, and the templates they render with.
pub struct Receivers {
    pub by_name: HashMap<String, Arc<Vec<Integration>>>,
    pub templates: Arc<TemplateSet>,
}

/// Reads the `templates:` files (globs, relative to `base_dir`) of a configuration.
fn template_files(
    c: &AlertmanagerConfig,
    base_dir: &Path,
) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for pattern in &c.templates {
        let full = if Path::new(pattern).is_relative() {
            base_dir.join(pattern)
        } else {
            pattern.into()
        };
        let full = full.to_string_lossy().into_owned();
        let paths = glob::glob(&full).map_err(|e| format!("templates: {pattern:?}: {e}"))?;
        for p in paths {
            let p = p.map_err(|e| format!("templates: {e}"))?;
            let text = std::fs::read_to_string(&p)
                .map_err(|e| format!("templates: cannot read {}: {e}", p.display()))?;
            out.push((p.display().to_string(), text));
        }
    }
    Ok(out)
}

fn build_receiver(
    r: &ReceiverConfig,
    ctx: &mut BuildContext<'_>,
) -> Result<Vec<Integration>, String> {
    let mut out = Vec::new();
    let at = |kind: &str, i: usize| format!("receiver {:?}: {kind}_configs[{i}]", r.name);
    for (i, c) in r.webhook_configs.iter().enumerate() {
        out.push(
            c.build(i, ctx)
                .map_err(|e| format!("{}: {e}", at("webhook", i)))?,
        );
    }
    for (i, c) in r.email_configs.iter().enumerate() {
        out.push(
            c.build(i, ctx)
                .map_err(|e| format!("{}: {e}", at("email", i)))?,
        );
    }
    for (i, c) in r.pagerduty_configs.iter().enumerate() {
        out.push(
            c.build(i, ctx)
                .map_err(|e| format!("{}: {e}", at("pagerduty", i)))?,
        );
    }
    for (i, c) in r.opsgenie_configs.iter().enumerate() {
        out.push(
            c.build(i, ctx)
                .map_err(|e| format!("{}: {e}", at("opsgenie", i)))?,
        );
    }
    for (i, c) in r.slack_configs.iter().enumerate() {
        out.push(
            c.build(i, ctx)
                .map_err(|e| format!("{}: {e}", at("slack", i)))?,
        );
    }
    for (i, c) in r.runbook_configs.iter().enumerate() {
        let Some(f) = ctx.runbooks else {
            return Err(format!(
                "{}: runbook receivers need the `runbooks` section of vigil.yml (its `dir`)",
                at("runbook", i)
            ));
        };
        let notifier = f
            .build(&r.name, i, c)
            .map_err(|e| format!("{}: {e}", at("runbook", i)))?;
        out.push(Integration {
            kind: "runbook",
            index: i,
            // A resolved alert starts nothing: verification watches it instead.
            send_resolved: false,
            notifier,
        });
    }
    Ok(out)
}

/// Builds every receiver's integrations: templates parsed, clients built (TLS files read).
pub fn build(
    c: &AlertmanagerConfig,
    base_dir: &Path,
    runbooks: Option<&dyn runbook::RunbookFactory>,
) -> Result<Receivers, String> {
    let files = template_files(c, base_dir)?;
    let mut templates = TemplateSet::new(&files)?;
    let mut by_name = HashMap::new();
    {
        let mut ctx = BuildContext {
            templates: &mut templates,
            global: &c.global,
            client: vigil_http::ClientOptions::default(),
            runbooks,
        };
        for r in &c.receivers {
            by_name.insert(r.name.clone(), Arc::new(build_receiver(r, &mut ctx)?));
        }
    }
    Ok(Receivers {
        by_name,
        templates: Arc::new(templates),
    })
}

/// JSON as Go's `encoding/json` writes it: `<`, `>`, `&`, U+2028 and U+2029 escaped, and a
/// trailing newline. Notifier bodies are byte-for-byte what Alertmanager sends.
pub fn go_json(v: &impl Serialize) -> Vec<u8> {
    let s = serde_json::to_string(v).unwrap_or_default();
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.push('\n');
    out.into_bytes()
}

/// Go's `time.RFC3339Nano` of ms, trailing zeros trimmed; `None` is Go's zero time.
pub fn go_rfc3339(ms: Option<i64>) -> String {
    match ms {
        None => "0001-01-01T00:00:00Z".into(),
        Some(ms) => vigil_model::rfc3339_ms(ms),
    }
}

/// Cuts `s` to at most `n` characters, the last one `…` (Alertmanager's `TruncateInRunes`).
pub fn truncate_runes(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    if n <= 3 {
        return s.chars().take(n).collect();
    }
    let mut t: String = s.chars().take(n - 1).collect();
    t.push('…');
    t
}

/// Alertmanager's status check: 2xx is success; 5xx and `retry_codes` are worth retrying; other
/// codes are not. `details` is appended to the message when not empty.
pub fn check_status(code: u16, retry_codes: &[u16], details: &str) -> Result<(), NotifyError> {
    if (200..300).contains(&code) {
        return Ok(());
    }
    let message = if details.is_empty() {
        format!("unexpected status code {code}")
    } else {
        format!("unexpected status code {code}: {details}")
    };
    Err(NotifyError {
        retry: code >= 500 || retry_codes.contains(&code),
        message,
    })
}

/// POSTs a JSON body with Alertmanager's headers; answers the status and the body text.
pub async fn post_json(
    client: &vigil_http::HttpClient,
    url: &str,
    body: Vec<u8>,
    headers: &[(&str, String)],
) -> Result<(u16, String), NotifyError> {
    let mut req = client
        .post(url)
        .map_err(|e| NotifyError::fatal(e.to_string()))?
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| NotifyError::retry(transport_error(e)))?;
    let code = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    Ok((code, text))
}

/// A transport error without the URL (which may carry a secret, as Slack's does).
pub fn transport_error(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

/// Whether a URL is one Alertmanager's config accepts (http or https with a host), with its
/// messages.
pub fn check_url(u: &str) -> Result<(), String> {
    let parsed = url::Url::parse(u);
    let scheme = u
        .split_once("://")
        .map(|(s, _)| s)
        .unwrap_or_else(|| u.split_once(':').map(|(s, _)| s).unwrap_or(""));
    if scheme != "http" && scheme != "https" {
        return Err(format!("unsupported scheme {scheme:?} for URL"));
    }
    match parsed {
        Ok(p) if p.host_str().is_some_and(|h| !h.is_empty()) => Ok(()),
        Ok(_) | Err(url::ParseError::EmptyHost) => Err("missing host for URL".into()),
        Err(e) => Err(format!("parse {u:?}: {e}")),
    }
}
