//! Outgoing HTTP, the Prometheus way: [`HttpClientConfig`] is Prometheus's `http_config` block
//! (authentication, TLS, proxy, redirects), validated with Prometheus's rules and messages, and
//! [`HttpClientConfig::build`] turns it into the [`HttpClient`] every part of Vigil sends with:
//! scrapes, webhooks, PagerDuty, Slack, OpsGenie and every later integration.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde::{Deserialize, Serialize};
use vigil_model::Secret;

use crate::HttpConfigError;
use crate::tls;

fn is_false(b: &bool) -> bool {
    !*b
}
fn yes() -> bool {
    true
}
fn is_true(b: &bool) -> bool {
    *b
}

/// `basic_auth:`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BasicAuth {
    pub username: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub username_file: String,
    #[serde(skip_serializing_if = "Secret::is_empty")]
    pub password: Secret,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub password_file: String,
}

/// `authorization:` (`type` defaults to `Bearer`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Authorization {
    #[serde(rename = "type", skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(skip_serializing_if = "Secret::is_empty")]
    pub credentials: Secret,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub credentials_file: String,
}

/// `tls_config:` of a client.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ca: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cert: String,
    #[serde(skip_serializing_if = "Secret::is_empty")]
    pub key: Secret,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ca_file: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cert_file: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub key_file: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub server_name: String,
    pub insecure_skip_verify: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub min_version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub max_version: String,
}

impl TlsConfig {
    fn using_client_cert(&self) -> bool {
        !self.cert.is_empty() || !self.cert_file.is_empty()
    }
    fn using_client_key(&self) -> bool {
        !self.key.is_empty() || !self.key_file.is_empty()
    }

    /// Prometheus's checks of a `tls_config`.
    pub fn validate(&self) -> Result<(), HttpConfigError> {
        let bad = |m: &str| Err(HttpConfigError::Invalid(m.to_string()));
        if !self.ca.is_empty() && !self.ca_file.is_empty() {
            return bad("at most one of ca and ca_file must be configured");
        }
        if !self.cert.is_empty() && !self.cert_file.is_empty() {
            return bad("at most one of cert and cert_file must be configured");
        }
        if !self.key.is_empty() && !self.key_file.is_empty() {
            return bad("at most one of key and key_file must be configured");
        }
        if self.using_client_cert() && !self.using_client_key() {
            return bad(
                "exactly one of key or key_file must be configured when a client certificate is configured",
            );
        }
        if self.using_client_key() && !self.using_client_cert() {
            return bad(
                "exactly one of cert or cert_file must be configured when a client key is configured",
            );
        }
        tls::versions(&self.min_version, &self.max_version)?;
        Ok(())
    }

    /// Resolves relative file names against `dir` (the directory of the file that names them).
    pub fn set_directory(&mut self, dir: &Path) {
        for f in [&mut self.ca_file, &mut self.cert_file, &mut self.key_file] {
            join_dir(f, dir);
        }
    }

    /// The rustls client configuration; files are read now.
    pub fn client_config(&self, http2: bool) -> Result<rustls::ClientConfig, HttpConfigError> {
        let provider = tls::provider();
        let versions = tls::versions(&self.min_version, &self.max_version)?;
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .map_err(|e| HttpConfigError::Invalid(format!("TLS versions: {e}")))?;
        let roots = if !self.ca_file.is_empty() || !self.ca.is_empty() {
            tls::roots_of(tls::load_certs(&self.ca_file, &self.ca, "CA certificate")?)?
        } else {
            tls::system_roots()
        };
        let verifier: Arc<dyn rustls::client::danger::ServerCertVerifier> =
            if self.insecure_skip_verify {
                Arc::new(tls::NoVerification(provider.clone()))
            } else {
                let v = rustls::client::WebPkiServerVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider.clone(),
                )
                .build()
                .map_err(|e| HttpConfigError::Invalid(format!("TLS roots: {e}")))?;
                if self.server_name.is_empty() {
                    v
                } else {
                    let name = rustls::pki_types::ServerName::try_from(self.server_name.clone())
                        .map_err(|e| {
                            HttpConfigError::Invalid(format!(
                                "invalid server_name {:?}: {e}",
                                self.server_name
                            ))
                        })?;
                    Arc::new(tls::FixedName { inner: v, name })
                }
            };
        let builder = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut cfg = if self.using_client_cert() {
            let certs = tls::load_certs(&self.cert_file, &self.cert, "client certificate")?;
            let key = tls::load_key(&self.key_file, self.key.expose(), "client key")?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| HttpConfigError::Invalid(format!("client certificate: {e}")))?
        } else {
            builder.with_no_client_auth()
        };
        cfg.alpn_protocols = if http2 {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        Ok(cfg)
    }
}

/// Prometheus's `http_config`: how an outgoing connection authenticates and is secured.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpClientConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization: Option<Authorization>,
    /// Accepted so a file written for Prometheus parses; refused by [`HttpClientConfig::validate`]
    /// (Vigil does not fetch OAuth 2.0 tokens yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oauth2: Option<serde_yaml_ng::Value>,
    #[serde(skip_serializing_if = "Secret::is_empty")]
    pub bearer_token: Secret,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub bearer_token_file: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub proxy_url: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub no_proxy: String,
    #[serde(skip_serializing_if = "is_false")]
    pub proxy_from_environment: bool,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub proxy_connect_header: std::collections::BTreeMap<String, Vec<Secret>>,
    pub tls_config: TlsConfig,
    #[serde(default = "yes")]
    pub follow_redirects: bool,
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub enable_http2: bool,
}

impl Default for HttpClientConfig {
    fn default() -> Self {
        HttpClientConfig {
            basic_auth: None,
            authorization: None,
            oauth2: None,
            bearer_token: Secret::default(),
            bearer_token_file: String::new(),
            proxy_url: String::new(),
            no_proxy: String::new(),
            proxy_from_environment: false,
            proxy_connect_header: Default::default(),
            tls_config: TlsConfig::default(),
            follow_redirects: true,
            enable_http2: true,
        }
    }
}

fn join_dir(f: &mut String, dir: &Path) {
    if !f.is_empty() && Path::new(f.as_str()).is_relative() {
        *f = dir.join(&*f).to_string_lossy().into_owned();
    }
}

impl HttpClientConfig {
    /// Prometheus's checks, with its messages. Also folds `bearer_token(_file)` into
    /// `authorization`, as Prometheus does, so there is one way credentials are sent.
    pub fn validate(&mut self) -> Result<(), HttpConfigError> {
        let bad = |m: &str| Err(HttpConfigError::Invalid(m.to_string()));
        if !self.bearer_token.is_empty() && !self.bearer_token_file.is_empty() {
            return bad("at most one of bearer_token & bearer_token_file must be configured");
        }
        let bearer = !self.bearer_token.is_empty() || !self.bearer_token_file.is_empty();
        if (self.basic_auth.is_some() || self.oauth2.is_some()) && bearer {
            return bad(
                "at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured",
            );
        }
        if let Some(b) = &self.basic_auth {
            if !b.username.is_empty() && !b.username_file.is_empty() {
                return bad(
                    "at most one of basic_auth username & username_file must be configured",
                );
            }
            if !b.password.is_empty() && !b.password_file.is_empty() {
                return bad(
                    "at most one of basic_auth password & password_file must be configured",
                );
            }
        }
        if let Some(a) = &mut self.authorization {
            if bearer {
                return bad(
                    "authorization is not compatible with bearer_token & bearer_token_file",
                );
            }
            if !a.credentials.is_empty() && !a.credentials_file.is_empty() {
                return bad(
                    "at most one of authorization credentials & credentials_file must be configured",
                );
            }
            a.kind = a.kind.trim().to_string();
            if a.kind.is_empty() {
                a.kind = "Bearer".into();
            }
            if a.kind.eq_ignore_ascii_case("basic") {
                return bad(
                    r#"authorization type cannot be set to "basic", use "basic_auth" instead"#,
                );
            }
            if self.basic_auth.is_some() || self.oauth2.is_some() {
                return bad("at most one of basic_auth, oauth2 & authorization must be configured");
            }
        } else if bearer {
            self.authorization = Some(Authorization {
                kind: "Bearer".into(),
                credentials: std::mem::take(&mut self.bearer_token),
                credentials_file: std::mem::take(&mut self.bearer_token_file),
            });
        }
        if self.oauth2.is_some() {
            if self.basic_auth.is_some() {
                return bad("at most one of basic_auth, oauth2 & authorization must be configured");
            }
            return bad("oauth2 is not supported by Vigil yet: use authorization or basic_auth");
        }
        if !self.proxy_url.is_empty() {
            if self.proxy_from_environment {
                return bad(
                    "if proxy_from_environment is configured, proxy_url must not be configured",
                );
            }
            url::Url::parse(&self.proxy_url).map_err(|e| {
                HttpConfigError::Invalid(format!("invalid proxy_url {:?}: {e}", self.proxy_url))
            })?;
        } else {
            if !self.no_proxy.is_empty() {
                return bad("if no_proxy is configured, proxy_url must also be configured");
            }
            if !self.proxy_connect_header.is_empty() && !self.proxy_from_environment {
                return bad(
                    "if proxy_connect_header is configured, proxy_url or proxy_from_environment must also be configured",
                );
            }
        }
        self.tls_config.validate()
    }

    /// Makes relative file names relative to `dir` (the configuration file's directory).
    pub fn set_directory(&mut self, dir: &Path) {
        if let Some(b) = &mut self.basic_auth {
            join_dir(&mut b.password_file, dir);
            join_dir(&mut b.username_file, dir);
        }
        if let Some(a) = &mut self.authorization {
            join_dir(&mut a.credentials_file, dir);
        }
        join_dir(&mut self.bearer_token_file, dir);
        self.tls_config.set_directory(dir);
    }

    /// True when nothing is configured.
    pub fn is_default(&self) -> bool {
        *self == HttpClientConfig::default()
    }

    /// Builds the client. Validates first (a config that was not validated is validated here); TLS
    /// files are read now, credential files at every request (as Prometheus does, so a rotated token
    /// is picked up without a reload).
    pub fn build(&self, opts: &ClientOptions) -> Result<HttpClient, HttpConfigError> {
        let mut cfg = self.clone();
        cfg.validate()?;
        let mut b = reqwest::Client::builder()
            .tls_backend_preconfigured(cfg.tls_config.client_config(cfg.enable_http2)?)
            .user_agent(&opts.user_agent)
            .connect_timeout(opts.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .redirect(if cfg.follow_redirects {
                reqwest::redirect::Policy::limited(10)
            } else {
                reqwest::redirect::Policy::none()
            });
        if opts.gzip {
            b = b.gzip(true);
        }
        if !cfg.enable_http2 {
            b = b.http1_only();
        }
        if !cfg.proxy_url.is_empty() {
            let mut p = reqwest::Proxy::all(&cfg.proxy_url).map_err(|e| {
                HttpConfigError::Invalid(format!("invalid proxy_url {:?}: {e}", cfg.proxy_url))
            })?;
            if !cfg.no_proxy.is_empty() {
                p = p.no_proxy(reqwest::NoProxy::from_string(&cfg.no_proxy));
            }
            let mut headers = reqwest::header::HeaderMap::new();
            for (k, vs) in &cfg.proxy_connect_header {
                for v in vs {
                    let name = reqwest::header::HeaderName::try_from(k.as_str()).map_err(|e| {
                        HttpConfigError::Invalid(format!("proxy_connect_header {k:?}: {e}"))
                    })?;
                    let value = HeaderValue::from_str(v.expose()).map_err(|e| {
                        HttpConfigError::Invalid(format!("proxy_connect_header {k:?}: {e}"))
                    })?;
                    headers.append(name, value);
                }
            }
            if !headers.is_empty() {
                p = p.headers(headers);
            }
            b = b.proxy(p);
        } else if !cfg.proxy_from_environment {
            b = b.no_proxy();
        }
        let client = b
            .build()
            .map_err(|e| HttpConfigError::Invalid(format!("cannot build the HTTP client: {e}")))?;
        Ok(HttpClient {
            client,
            credentials: Credentials {
                basic_auth: cfg.basic_auth,
                authorization: cfg.authorization,
            },
        })
    }

    /// The credentials alone (validated, `bearer_token` folded into `authorization`), for a
    /// caller that speaks HTTP itself (the probes) and needs only the `Authorization` header.
    pub fn credentials(&self) -> Result<Credentials, HttpConfigError> {
        let mut cfg = self.clone();
        cfg.validate()?;
        Ok(Credentials {
            basic_auth: cfg.basic_auth,
            authorization: cfg.authorization,
        })
    }
}

/// What the caller decides about a client, beyond the user's `http_config`.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    pub user_agent: String,
    pub connect_timeout: Duration,
    /// Ask for and decode gzip (scrapes do; notifiers need not).
    pub gzip: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            user_agent: format!("Vigil/{}", env!("CARGO_PKG_VERSION")),
            connect_timeout: Duration::from_secs(10),
            gzip: false,
        }
    }
}

/// An HTTP client with its credentials. Cheap to clone.
#[derive(Clone, Debug)]
pub struct HttpClient {
    client: reqwest::Client,
    credentials: Credentials,
}

/// What an `http_config` sends as `Authorization`: basic auth or a typed credential.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    basic_auth: Option<BasicAuth>,
    authorization: Option<Authorization>,
}

fn read_secret_file(path: &str, what: &str) -> Result<String, HttpConfigError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| HttpConfigError::Invalid(format!("unable to read {what} {path}: {e}")))
}

impl Credentials {
    /// The `Authorization` header this client sends, if any (files read now).
    pub fn header(&self) -> Result<Option<HeaderValue>, HttpConfigError> {
        let value = if let Some(b) = &self.basic_auth {
            let user = if b.username_file.is_empty() {
                b.username.clone()
            } else {
                read_secret_file(&b.username_file, "basic auth username file")?
            };
            let pass = if b.password_file.is_empty() {
                b.password.expose().to_string()
            } else {
                read_secret_file(&b.password_file, "basic auth password file")?
            };
            let enc = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
            format!("Basic {enc}")
        } else if let Some(a) = &self.authorization {
            let cred = if a.credentials_file.is_empty() {
                a.credentials.expose().to_string()
            } else {
                read_secret_file(&a.credentials_file, "authorization credentials file")?
            };
            format!("{} {cred}", a.kind)
        } else {
            return Ok(None);
        };
        let mut v = HeaderValue::from_str(&value).map_err(|_| {
            HttpConfigError::Invalid(
                "credentials contain characters not allowed in a header".into(),
            )
        })?;
        v.set_sensitive(true);
        Ok(Some(v))
    }
}

impl HttpClient {
    /// A client with no `http_config` (system roots, no credentials).
    pub fn plain(opts: &ClientOptions) -> Result<HttpClient, HttpConfigError> {
        HttpClientConfig::default().build(opts)
    }

    /// The `Authorization` header this client sends, if any (files read now).
    pub fn authorization_header(&self) -> Result<Option<HeaderValue>, HttpConfigError> {
        self.credentials.header()
    }

    /// A request with this client's credentials.
    pub fn request(
        &self,
        method: reqwest::Method,
        url: &str,
    ) -> Result<reqwest::RequestBuilder, HttpConfigError> {
        let mut r = self.client.request(method, url);
        if let Some(v) = self.authorization_header()? {
            r = r.header(AUTHORIZATION, v);
        }
        Ok(r)
    }

    pub fn get(&self, url: &str) -> Result<reqwest::RequestBuilder, HttpConfigError> {
        self.request(reqwest::Method::GET, url)
    }

    pub fn post(&self, url: &str) -> Result<reqwest::RequestBuilder, HttpConfigError> {
        self.request(reqwest::Method::POST, url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(y: &str) -> Result<HttpClientConfig, String> {
        let mut c: HttpClientConfig = serde_yaml_ng::from_str(y).map_err(|e| e.to_string())?;
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    }

    #[test]
    fn prometheus_rules() {
        for (y, err) in [
            (
                "bearer_token: a\nbearer_token_file: f\n",
                "at most one of bearer_token & bearer_token_file must be configured",
            ),
            (
                "basic_auth: {username: u}\nbearer_token: a\n",
                "at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured",
            ),
            (
                "basic_auth: {username: u, password: p, password_file: f}\n",
                "at most one of basic_auth password & password_file must be configured",
            ),
            (
                "authorization: {type: Basic, credentials: x}\n",
                r#"authorization type cannot be set to "basic", use "basic_auth" instead"#,
            ),
            (
                "authorization: {credentials: x}\nbasic_auth: {username: u}\n",
                "at most one of basic_auth, oauth2 & authorization must be configured",
            ),
            (
                "tls_config: {cert_file: c}\n",
                "exactly one of key or key_file must be configured when a client certificate is configured",
            ),
            (
                "tls_config: {ca: x, ca_file: y}\n",
                "at most one of ca and ca_file must be configured",
            ),
        ] {
            assert_eq!(parse(y).unwrap_err(), err, "{y}");
        }
        assert!(
            parse("tls_config: {insecure: true}\n").is_err(),
            "unknown keys are refused"
        );
        let c = parse("bearer_token: tok\n").unwrap();
        let a = c.authorization.as_ref().unwrap();
        assert_eq!((a.kind.as_str(), a.credentials.expose()), ("Bearer", "tok"));
    }

    #[test]
    fn secrets_never_serialize() {
        let c =
            parse("basic_auth: {username: u, password: hunter2}\ntls_config: {cert: c, key: k}\n")
                .unwrap();
        let y = serde_yaml_ng::to_string(&c).unwrap();
        assert!(!y.contains("hunter2") && y.contains("<secret>"), "{y}");
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn credentials_header() {
        let c = parse("basic_auth: {username: user, password: pass}\n").unwrap();
        let h = c.build(&ClientOptions::default()).unwrap();
        assert_eq!(
            h.authorization_header().unwrap().unwrap(),
            "Basic dXNlcjpwYXNz"
        );
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("tok");
        std::fs::write(&f, "t1\n").unwrap();
        let mut c = parse("authorization: {type: Token, credentials_file: tok}\n").unwrap();
        c.set_directory(dir.path());
        let h = c.build(&ClientOptions::default()).unwrap();
        assert_eq!(h.authorization_header().unwrap().unwrap(), "Token t1");
        std::fs::write(&f, "t2").unwrap();
        assert_eq!(
            h.authorization_header().unwrap().unwrap(),
            "Token t2",
            "credential files are read per request"
        );
    }
}
