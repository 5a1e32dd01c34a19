//! Email (`email_configs`), sent with lettre over SMTP: STARTTLS when `require_tls` (the default),
//! implicit TLS on port 465, `tls_config` for a private CA or a client certificate, PLAIN/LOGIN
//! authentication; subject and HTML body from the templates, as Alertmanager writes them.

use std::collections::BTreeMap;
use std::time::Duration;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{
    Certificate, CertificateStore, Identity, Tls, TlsParameters,
};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message as Mail, Tokio1Executor};
use serde::{Deserialize, Serialize};
use vigil_model::Secret;

use super::{BoxFuture, BuildContext, Integration, Message, Notifier, NotifyError, Tmpl};
use crate::router::config::GlobalConfig;

/// One `email_configs` entry.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EmailConfig {
    pub send_resolved: bool,
    pub to: String,
    pub from: String,
    pub hello: String,
    pub smarthost: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub auth_username: String,
    #[serde(skip_serializing_if = "Secret::is_empty")]
    pub auth_password: Secret,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub auth_password_file: String,
    #[serde(skip_serializing_if = "Secret::is_empty")]
    pub auth_secret: Secret,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub auth_identity: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    pub html: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub require_tls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_config: Option<vigil_http::TlsConfig>,
}

impl Default for EmailConfig {
    fn default() -> Self {
        EmailConfig {
            send_resolved: false,
            to: String::new(),
            from: String::new(),
            hello: String::new(),
            smarthost: String::new(),
            auth_username: String::new(),
            auth_password: Secret::default(),
            auth_password_file: String::new(),
            auth_secret: Secret::default(),
            auth_identity: String::new(),
            headers: BTreeMap::new(),
            html: r#"{{ template "email.default.html" . }}"#.into(),
            text: String::new(),
            require_tls: None,
            tls_config: None,
        }
    }
}

/// `host:port` checked as Go's `net.SplitHostPort` checks it.
fn check_smarthost(s: &str) -> Result<(), String> {
    match s.rsplit_once(':') {
        None => Err(format!("address {s}: missing port in address")),
        Some((_, "")) => Err(format!("address {s:?}: port cannot be empty")),
        Some(_) => Ok(()),
    }
}

impl EmailConfig {
    /// Alertmanager's checks; fills in the `global` SMTP settings.
    pub fn validate(&mut self, g: &GlobalConfig) -> Result<(), String> {
        if self.to.is_empty() {
            return Err("missing to address in email config".into());
        }
        let mut seen = std::collections::HashSet::new();
        let mut headers = BTreeMap::new();
        for (k, v) in &self.headers {
            let canon = canonical_header(k);
            if !seen.insert(canon.clone()) {
                return Err(format!("duplicate header {canon:?} in email config"));
            }
            headers.insert(canon, v.clone());
        }
        self.headers = headers;
        if self.smarthost.is_empty() {
            if g.smtp_smarthost.is_empty() {
                return Err("no global SMTP smarthost set".into());
            }
            self.smarthost = g.smtp_smarthost.clone();
        }
        check_smarthost(&self.smarthost)?;
        if self.from.is_empty() {
            if g.smtp_from.is_empty() {
                return Err("no global SMTP from set".into());
            }
            self.from = g.smtp_from.clone();
        }
        if self.hello.is_empty() {
            self.hello = g.smtp_hello.clone();
        }
        if self.auth_username.is_empty() {
            self.auth_username = g.smtp_auth_username.clone();
        }
        if self.auth_password.is_empty() && self.auth_password_file.is_empty() {
            self.auth_password = g.smtp_auth_password.clone();
            self.auth_password_file = g.smtp_auth_password_file.clone();
        }
        if self.auth_secret.is_empty() {
            self.auth_secret = g.smtp_auth_secret.clone();
        }
        if self.auth_identity.is_empty() {
            self.auth_identity = g.smtp_auth_identity.clone();
        }
        if self.require_tls.is_none() {
            self.require_tls = Some(g.smtp_require_tls);
        }
        if let Some(t) = &self.tls_config {
            t.validate().map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    pub fn build(&self, index: usize, ctx: &mut BuildContext<'_>) -> Result<Integration, String> {
        let mut headers = Vec::new();
        let has = |n: &str| self.headers.contains_key(n);
        let mut defaults = Vec::new();
        if !has("Subject") {
            defaults.push((
                "Subject",
                r#"{{ template "email.default.subject" . }}"#.to_string(),
            ));
        }
        if !has("To") {
            defaults.push(("To", self.to.clone()));
        }
        if !has("From") {
            defaults.push(("From", self.from.clone()));
        }
        for (k, v) in self
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .chain(defaults)
        {
            headers.push((k.to_string(), ctx.tmpl(&format!("headers.{k}"), &v)?));
        }
        let (host, port) = self
            .smarthost
            .rsplit_once(':')
            .map(|(h, p)| (h.to_string(), p.parse::<u16>().unwrap_or(25)))
            .unwrap_or((self.smarthost.clone(), 25));
        let tls = match &self.tls_config {
            None => None,
            Some(t) => Some(tls_parameters(t, &host)?),
        };
        Ok(Integration {
            kind: "email",
            index,
            send_resolved: self.send_resolved,
            notifier: Box::new(Email {
                host,
                port,
                hello: self.hello.clone(),
                username: self.auth_username.clone(),
                password: self.auth_password.clone(),
                password_file: self.auth_password_file.clone(),
                require_tls: self.require_tls.unwrap_or(true),
                tls,
                headers,
                html: ctx.tmpl("html", &self.html)?,
                text: ctx.tmpl("text", &self.text)?,
            }),
        })
    }
}

/// lettre's TLS settings from a `tls_config` (a private CA replaces the system roots).
fn tls_parameters(t: &vigil_http::TlsConfig, host: &str) -> Result<TlsParameters, String> {
    let name = if t.server_name.is_empty() {
        host.to_string()
    } else {
        t.server_name.clone()
    };
    let mut b = TlsParameters::builder(name);
    let read = |f: &str, inline: &str| -> Result<Vec<u8>, String> {
        if f.is_empty() {
            Ok(inline.as_bytes().to_vec())
        } else {
            std::fs::read(f).map_err(|e| format!("tls_config: cannot read {f}: {e}"))
        }
    };
    if !t.ca_file.is_empty() || !t.ca.is_empty() {
        let pem = read(&t.ca_file, &t.ca)?;
        let cert = Certificate::from_pem(&pem).map_err(|e| format!("tls_config: CA: {e}"))?;
        b = b
            .certificate_store(CertificateStore::None)
            .add_root_certificate(cert);
    }
    if !t.cert_file.is_empty() || !t.cert.is_empty() {
        let cert = read(&t.cert_file, &t.cert)?;
        let key = read(&t.key_file, t.key.expose())?;
        let id = Identity::from_pem(&cert, &key)
            .map_err(|e| format!("tls_config: client certificate: {e}"))?;
        b = b.identify_with(id);
    }
    if t.insecure_skip_verify {
        b = b
            .dangerous_accept_invalid_certs(true)
            .dangerous_accept_invalid_hostnames(true);
    }
    b.build_rustls().map_err(|e| format!("tls_config: {e}"))
}

/// Go's `textproto.CanonicalMIMEHeaderKey`: `content-type` → `Content-Type`.
fn canonical_header(k: &str) -> String {
    let mut out = String::with_capacity(k.len());
    let mut upper = true;
    for c in k.chars() {
        if upper {
            out.extend(c.to_uppercase());
        } else {
            out.extend(c.to_lowercase());
        }
        upper = c == '-';
    }
    out
}

struct Email {
    host: String,
    port: u16,
    hello: String,
    username: String,
    password: Secret,
    password_file: String,
    require_tls: bool,
    tls: Option<TlsParameters>,
    headers: Vec<(String, Tmpl)>,
    html: Tmpl,
    text: Tmpl,
}

impl Email {
    fn message(&self, m: &Message<'_>) -> Result<Mail, NotifyError> {
        let data = m.data();
        let mut b = Mail::builder();
        let bad = |what: &str, e: &dyn std::fmt::Display| {
            NotifyError::fatal(format!("invalid {what}: {e}"))
        };
        for (k, t) in &self.headers {
            let v = m.render(&data, t)?;
            match k.as_str() {
                "To" => {
                    for to in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                        b = b.to(to.parse::<Mailbox>().map_err(|e| bad("to address", &e))?);
                    }
                }
                "From" => b = b.from(v.parse::<Mailbox>().map_err(|e| bad("from address", &e))?),
                "Subject" => b = b.subject(v),
                _ => {
                    let name = HeaderName::new_from_ascii(k.clone())
                        .map_err(|e| bad("header name", &e))?;
                    b = b.raw_header(HeaderValue::new(name, v));
                }
            }
        }
        let text = m.render(&data, &self.text)?;
        let html = m.render(&data, &self.html)?;
        let r = match (text.is_empty(), html.is_empty()) {
            (false, false) => b.multipart(MultiPart::alternative_plain_html(text, html)),
            (false, true) => b.singlepart(SinglePart::plain(text)),
            _ => b.singlepart(SinglePart::html(html)),
        };
        r.map_err(|e| NotifyError::fatal(format!("cannot build the message: {e}")))
    }
}

impl Notifier for Email {
    fn notify<'a>(&'a self, m: &'a Message<'a>) -> BoxFuture<'a, Result<(), NotifyError>> {
        Box::pin(async move {
            let msg = self.message(m)?;
            let params = match &self.tls {
                Some(p) => p.clone(),
                None => TlsParameters::new(self.host.clone())
                    .map_err(|e| NotifyError::fatal(format!("TLS: {e}")))?,
            };
            let tls = if self.port == 465 {
                Tls::Wrapper(params)
            } else if self.require_tls {
                Tls::Required(params)
            } else {
                Tls::None
            };
            let mut t = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(self.host.clone())
                .port(self.port)
                .tls(tls)
                .timeout(Some(Duration::from_secs(10)));
            if !self.hello.is_empty() {
                t = t.hello_name(lettre::transport::smtp::extension::ClientId::Domain(
                    self.hello.clone(),
                ));
            }
            if !self.username.is_empty() {
                let password = if self.password_file.is_empty() {
                    self.password.expose().to_string()
                } else {
                    std::fs::read_to_string(&self.password_file)
                        .map(|s| s.trim().to_string())
                        .map_err(|e| {
                            NotifyError::fatal(format!("reading auth_password_file: {e}"))
                        })?
                };
                t = t.credentials(Credentials::new(self.username.clone(), password));
            }
            t.build().send(msg).await.map(|_| ()).map_err(|e| {
                // Permanent SMTP refusals (5xx) will not change on retry; everything else might.
                NotifyError {
                    retry: !e.is_permanent(),
                    message: format!("SMTP {}:{}: {e}", self.host, self.port),
                }
            })
        })
    }
}
