//! Email notifications (Alertmanager's `email_configs`), sent with lettre over SMTP: STARTTLS when the
//! server offers it (required unless `require_tls: false`), implicit TLS on port 465, optional auth.

use std::collections::BTreeMap;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_yaml_ng::Value as Yaml;

use super::config::GlobalConfig;
use super::dispatch::{Alert, Notification};

/// One `email_configs` entry with the `global` defaults applied.
#[derive(Clone, Debug)]
pub struct EmailConfig {
    pub to: String,
    pub from: String,
    pub smarthost: String,
    pub hello: Option<String>,
    pub auth_username: Option<String>,
    pub auth_password: Option<String>,
    pub require_tls: bool,
    pub send_resolved: bool,
    pub headers: BTreeMap<String, String>,
}

impl EmailConfig {
    pub fn from_yaml(v: &Yaml, g: &GlobalConfig) -> Result<EmailConfig, String> {
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
        let to = s("to").ok_or("email_configs: missing 'to'")?;
        let from = s("from")
            .or_else(|| g.smtp_from.clone())
            .ok_or("email_configs: no 'from' and no global smtp_from")?;
        let smarthost = s("smarthost")
            .or_else(|| g.smtp_smarthost.clone())
            .ok_or("email_configs: no 'smarthost' and no global smtp_smarthost")?;
        let headers = v
            .get("headers")
            .and_then(|h| h.as_mapping())
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        Ok(EmailConfig {
            to,
            from,
            smarthost,
            hello: s("hello").or_else(|| g.smtp_hello.clone()),
            auth_username: s("auth_username").or_else(|| g.smtp_auth_username.clone()),
            auth_password: s("auth_password").or_else(|| g.smtp_auth_password.clone()),
            require_tls: v
                .get("require_tls")
                .and_then(|x| x.as_bool())
                .unwrap_or(g.smtp_require_tls),
            send_resolved: v
                .get("send_resolved")
                .and_then(|x| x.as_bool())
                .unwrap_or(false),
            headers,
        })
    }
}

fn pairs(l: &BTreeMap<String, String>) -> String {
    l.iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Alertmanager's default subject: `[FIRING:2] GroupLabelValues (other common label values)`.
pub fn subject(n: &Notification) -> String {
    let firing = n.firing().count();
    let status = if firing > 0 {
        format!("FIRING:{firing}")
    } else {
        "RESOLVED".into()
    };
    let group: Vec<&str> = n.group_labels.iter().map(|l| l.value.as_str()).collect();
    let mut common: Option<BTreeMap<String, String>> = None;
    for a in &n.alerts {
        let m: BTreeMap<String, String> = a
            .labels
            .iter()
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect();
        common = Some(match common {
            None => m,
            Some(mut c) => {
                c.retain(|k, v| m.get(k) == Some(v));
                c
            }
        });
    }
    let rest: Vec<String> = common
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| n.group_labels.get(k).is_none())
        .map(|(_, v)| v)
        .collect();
    let mut s = format!("[{status}] {}", group.join(" "));
    if !rest.is_empty() {
        s.push_str(&format!(" ({})", rest.join(" ")));
    }
    s
}

fn alert_text(a: &Alert, resolved: bool) -> String {
    let labels: BTreeMap<String, String> = a
        .labels
        .iter()
        .map(|l| (l.name.clone(), l.value.clone()))
        .collect();
    format!(
        "{}\nLabels:\n{}\nAnnotations:\n{}\nSource: {}\n",
        if resolved { "[RESOLVED]" } else { "[FIRING]" },
        pairs(&labels),
        pairs(&a.annotations),
        a.generator_url
    )
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The message for `n`: text and HTML bodies listing every alert with its labels and annotations.
pub fn message(cfg: &EmailConfig, n: &Notification) -> Result<Message, String> {
    let from: Mailbox = cfg
        .from
        .parse()
        .map_err(|e| format!("invalid from {:?}: {e}", cfg.from))?;
    let mut b = Message::builder().from(from).subject(
        cfg.headers
            .get("Subject")
            .cloned()
            .unwrap_or_else(|| subject(n)),
    );
    for to in cfg.to.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let m: Mailbox = to
            .parse()
            .map_err(|e| format!("invalid recipient {to:?}: {e}"))?;
        b = b.to(m);
    }
    let mut text = String::new();
    let mut html = String::from("<html><body>");
    for a in &n.alerts {
        let resolved = a.resolved_at(n.at);
        text.push_str(&alert_text(a, resolved));
        text.push('\n');
        html.push_str(&format!(
            "<h3>{}</h3><table>",
            if resolved { "Resolved" } else { "Firing" }
        ));
        for l in a.labels.iter() {
            html.push_str(&format!(
                "<tr><td>{}</td><td>{}</td></tr>",
                html_escape(&l.name),
                html_escape(&l.value)
            ));
        }
        for (k, v) in &a.annotations {
            html.push_str(&format!(
                "<tr><td><b>{}</b></td><td>{}</td></tr>",
                html_escape(k),
                html_escape(v)
            ));
        }
        html.push_str("</table>");
    }
    html.push_str("</body></html>");
    b.multipart(MultiPart::alternative_plain_html(text, html))
        .map_err(|e| format!("cannot build the message: {e}"))
}

/// Sends `n` to `cfg` once (the caller retries).
pub async fn send(cfg: &EmailConfig, n: &Notification) -> Result<(), String> {
    let msg = message(cfg, n)?;
    let (host, port) = match cfg.smarthost.rsplit_once(':') {
        Some((h, p)) => (
            h.to_string(),
            p.parse::<u16>()
                .map_err(|_| format!("invalid smarthost {:?}", cfg.smarthost))?,
        ),
        None => (cfg.smarthost.clone(), 25),
    };
    let tls_params = || TlsParameters::new(host.clone()).map_err(|e| e.to_string());
    let tls = if port == 465 {
        Tls::Wrapper(tls_params()?)
    } else if cfg.require_tls {
        Tls::Required(tls_params()?)
    } else {
        Tls::None
    };
    let mut t = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
        .port(port)
        .tls(tls)
        .timeout(Some(Duration::from_secs(10)));
    if let Some(h) = &cfg.hello {
        t = t.hello_name(lettre::transport::smtp::extension::ClientId::Domain(
            h.clone(),
        ));
    }
    if let (Some(u), Some(p)) = (&cfg.auth_username, &cfg.auth_password) {
        t = t.credentials(Credentials::new(u.clone(), p.clone()));
    }
    t.build()
        .send(msg)
        .await
        .map(|_| ())
        .map_err(|e| format!("SMTP {}: {e}", cfg.smarthost))
}
