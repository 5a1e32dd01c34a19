//! The front door: Prometheus's web configuration file (`--web.config.file`, the exporter-toolkit
//! format that Prometheus, Alertmanager and node_exporter read), so the same file guards Vigil.
//!
//! - `tls_server_config`: certificate and key (re-read when they change, so a renewed certificate
//!   is served by the next connection), optional client certificates checked against a CA, TLS
//!   versions, cipher suites and curves.
//! - `basic_auth_users`: user name to bcrypt hash; every route answers 401 without valid
//!   credentials. Verifications are cached (bcrypt is slow on purpose) and unknown users cost a
//!   full comparison too, so timing does not tell which users exist.
//! - `http_server_config`: the response headers Prometheus allows, and HTTP/2 on or off.
//!
//! The file is re-read when it changes (checked at every request and handshake), as
//! exporter-toolkit re-reads it, so users and certificates change without a restart.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use parking_lot::Mutex;
use serde::Deserialize;
use sha2::Digest;
use tracing::warn;
use vigil_model::Secret;

use crate::HttpConfigError;
use crate::tls;

/// `tls_server_config:`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsServerConfig {
    pub cert_file: String,
    pub key_file: String,
    pub client_auth_type: String,
    pub client_ca_file: String,
    pub cipher_suites: Vec<String>,
    pub curve_preferences: Vec<String>,
    pub min_version: String,
    pub max_version: String,
    pub prefer_server_cipher_suites: bool,
}

impl Default for TlsServerConfig {
    fn default() -> Self {
        TlsServerConfig {
            cert_file: String::new(),
            key_file: String::new(),
            client_auth_type: String::new(),
            client_ca_file: String::new(),
            cipher_suites: Vec::new(),
            curve_preferences: Vec::new(),
            min_version: "TLS12".into(),
            max_version: "TLS13".into(),
            prefer_server_cipher_suites: true,
        }
    }
}

/// `http_server_config:`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpServerConfig {
    pub http2: bool,
    pub headers: BTreeMap<String, String>,
}

impl Default for HttpServerConfig {
    fn default() -> Self {
        HttpServerConfig {
            http2: true,
            headers: BTreeMap::new(),
        }
    }
}

/// A whole web configuration file.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfigFile {
    pub tls_server_config: TlsServerConfig,
    pub http_server_config: HttpServerConfig,
    pub basic_auth_users: BTreeMap<String, Secret>,
}

/// The response headers a web configuration may set, with the values allowed (`None`: any).
const ALLOWED_HEADERS: &[(&str, Option<&[&str]>)] = &[
    ("Strict-Transport-Security", None),
    ("X-Content-Type-Options", Some(&["nosniff"])),
    ("X-Frame-Options", Some(&["deny", "sameorigin"])),
    ("X-XSS-Protection", None),
    ("Content-Security-Policy", None),
];

/// Client certificate policies, by Go's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClientAuth {
    None,
    Request,
    RequireAny,
    VerifyIfGiven,
    RequireAndVerify,
}

impl TlsServerConfig {
    /// TLS is on when a certificate, key, client policy or client CA is named.
    pub fn enabled(&self) -> bool {
        !(self.cert_file.is_empty()
            && self.key_file.is_empty()
            && self.client_auth_type.is_empty()
            && self.client_ca_file.is_empty())
    }

    fn client_auth(&self) -> Result<ClientAuth, HttpConfigError> {
        Ok(match self.client_auth_type.as_str() {
            "" | "NoClientCert" => ClientAuth::None,
            "RequestClientCert" => ClientAuth::Request,
            "RequireAnyClientCert" | "RequireClientCert" => ClientAuth::RequireAny,
            "VerifyClientCertIfGiven" => ClientAuth::VerifyIfGiven,
            "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerify,
            other => {
                return Err(HttpConfigError::Invalid(format!(
                    "Invalid ClientAuth: {other}"
                )));
            }
        })
    }

    fn set_directory(&mut self, dir: &Path) {
        for f in [
            &mut self.cert_file,
            &mut self.key_file,
            &mut self.client_ca_file,
        ] {
            if !f.is_empty() && Path::new(f.as_str()).is_relative() {
                *f = dir.join(&*f).to_string_lossy().into_owned();
            }
        }
    }

    /// The rustls server configuration (files read now).
    fn server_config(&self, http2: bool) -> Result<rustls::ServerConfig, HttpConfigError> {
        if self.cert_file.is_empty() {
            return Err(HttpConfigError::Invalid("missing cert_file".into()));
        }
        if self.key_file.is_empty() {
            return Err(HttpConfigError::Invalid("missing key_file".into()));
        }
        let certs = tls::load_certs(&self.cert_file, "", "certificate")
            .map_err(|e| HttpConfigError::Invalid(format!("failed to load X509KeyPair: {e}")))?;
        let key = tls::load_key(&self.key_file, "", "key")
            .map_err(|e| HttpConfigError::Invalid(format!("failed to load X509KeyPair: {e}")))?;
        let auth = self.client_auth()?;
        if !self.client_ca_file.is_empty() && auth == ClientAuth::None {
            return Err(HttpConfigError::Invalid(
                "Client CA's have been configured without a Client Auth Policy".into(),
            ));
        }
        let mut provider = rustls::crypto::ring::default_provider();
        if !self.cipher_suites.is_empty() {
            let mut chosen = Vec::new();
            for name in &self.cipher_suites {
                let suite = provider
                    .cipher_suites
                    .iter()
                    .find(|s| go_cipher_name(s.suite()) == Some(name.as_str()))
                    .ok_or_else(|| HttpConfigError::Invalid(format!("unknown cipher: {name}")))?;
                chosen.push(*suite);
            }
            // TLS 1.3 suites cannot be configured (as in Go): keep all of them.
            chosen.extend(
                provider
                    .cipher_suites
                    .iter()
                    .filter(|s| s.tls13().is_some())
                    .copied(),
            );
            provider.cipher_suites = chosen;
        }
        if !self.curve_preferences.is_empty() {
            let mut groups = Vec::new();
            for c in &self.curve_preferences {
                let want = match c.as_str() {
                    "X25519" => rustls::NamedGroup::X25519,
                    "CurveP256" => rustls::NamedGroup::secp256r1,
                    "CurveP384" => rustls::NamedGroup::secp384r1,
                    "CurveP521" => {
                        return Err(HttpConfigError::Invalid(
                            "curve CurveP521 is not supported by Vigil's TLS library".into(),
                        ));
                    }
                    other => {
                        return Err(HttpConfigError::Invalid(format!("unknown curve: {other}")));
                    }
                };
                if let Some(g) = provider.kx_groups.iter().find(|g| g.name() == want) {
                    groups.push(*g);
                }
            }
            provider.kx_groups = groups;
        }
        let provider = Arc::new(provider);
        let versions = tls::versions(&self.min_version, &self.max_version)?;
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .map_err(|e| HttpConfigError::Invalid(format!("TLS versions: {e}")))?;
        let builder = match auth {
            ClientAuth::None => builder.with_no_client_auth(),
            ClientAuth::Request | ClientAuth::RequireAny => {
                // A certificate is asked for (and, for RequireAny, required) but not verified.
                builder.with_client_cert_verifier(Arc::new(AnyClientCert {
                    required: auth == ClientAuth::RequireAny,
                    provider: provider.clone(),
                }))
            }
            ClientAuth::VerifyIfGiven | ClientAuth::RequireAndVerify => {
                let roots = if self.client_ca_file.is_empty() {
                    tls::system_roots()
                } else {
                    let pem = std::fs::read(&self.client_ca_file).map_err(|e| {
                        HttpConfigError::Invalid(format!("open {}: {e}", self.client_ca_file))
                    })?;
                    tls::roots_of(tls::certs_from_pem(&pem, &self.client_ca_file)?)?
                };
                let mut v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider.clone(),
                );
                if auth == ClientAuth::VerifyIfGiven {
                    v = v.allow_unauthenticated();
                }
                let v = v
                    .build()
                    .map_err(|e| HttpConfigError::Invalid(format!("client CA: {e}")))?;
                builder.with_client_cert_verifier(v)
            }
        };
        let mut cfg = builder
            .with_single_cert(certs, key)
            .map_err(|e| HttpConfigError::Invalid(format!("failed to load X509KeyPair: {e}")))?;
        cfg.alpn_protocols = if http2 {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        Ok(cfg)
    }
}

/// Go's name of a TLS 1.2 cipher suite.
fn go_cipher_name(s: rustls::CipherSuite) -> Option<&'static str> {
    use rustls::CipherSuite as C;
    Some(match s {
        C::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        C::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        C::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => {
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"
        }
        C::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        C::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        C::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => {
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"
        }
        _ => return None,
    })
}

/// Accepts any client certificate (Go's `RequestClientCert` / `RequireAnyClientCert`).
#[derive(Debug)]
struct AnyClientCert {
    required: bool,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::server::danger::ClientCertVerifier for AnyClientCert {
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }
    fn client_auth_mandatory(&self) -> bool {
        self.required
    }
    fn verify_client_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        Ok(rustls::server::danger::ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

impl WebConfigFile {
    /// Parses and validates a web configuration file, with Prometheus's checks and messages.
    pub fn load(path: &Path) -> Result<WebConfigFile, HttpConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| HttpConfigError::Invalid(format!("open {}: {e}", path.display())))?;
        let mut c: WebConfigFile = if text.trim().is_empty() {
            WebConfigFile::default()
        } else {
            serde_yaml_ng::from_str(&text)
                .map_err(|e| HttpConfigError::Invalid(format!("{}: {e}", path.display())))?
        };
        if let Some(dir) = path.parent() {
            c.tls_server_config.set_directory(dir);
        }
        c.validate()?;
        Ok(c)
    }

    fn validate(&self) -> Result<(), HttpConfigError> {
        for (name, value) in &self.http_server_config.headers {
            match ALLOWED_HEADERS.iter().find(|(n, _)| n == name) {
                None => {
                    return Err(HttpConfigError::Invalid(format!(
                        "HTTP header {name:?} can not be configured"
                    )));
                }
                Some((_, Some(allowed))) if !allowed.contains(&value.as_str()) => {
                    return Err(HttpConfigError::Invalid(format!(
                        "invalid value for {name}. Expected one of: {allowed:?}, but got: {value:?}"
                    )));
                }
                _ => {}
            }
        }
        for (user, hash) in &self.basic_auth_users {
            check_bcrypt(hash.expose())
                .map_err(|e| HttpConfigError::Invalid(format!("user {user:?}: {e}")))?;
        }
        self.tls_server_config.client_auth()?;
        if self.tls_server_config.enabled() {
            self.tls_server_config
                .server_config(self.http_server_config.http2)?;
        }
        Ok(())
    }

    fn headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        self.http_server_config
            .headers
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    HeaderName::try_from(k.as_str()).ok()?,
                    HeaderValue::from_str(v).ok()?,
                ))
            })
            .collect()
    }
}

/// Checks that a hash is a well-formed bcrypt hash with a cost in 4..=31 (Go's `bcrypt.Cost`).
fn check_bcrypt(h: &str) -> Result<(), String> {
    if h.len() < 59 {
        return Err("crypto/bcrypt: hashedSecret too short to be a bcrypted password".into());
    }
    if !h.starts_with('$') {
        return Err(format!(
            "crypto/bcrypt: bcrypt hashes must start with '$', but hashedSecret started with '{}'",
            h.chars().next().unwrap_or(' ')
        ));
    }
    let parts: Vec<&str> = h.splitn(4, '$').collect();
    let version = parts.get(1).copied().unwrap_or("");
    if version.chars().next().is_some_and(|c| c > '2') {
        return Err(format!(
            "crypto/bcrypt: bcrypt algorithm version '{}' requested is newer than current version '2'",
            &version[..1]
        ));
    }
    let cost: u32 = parts
        .get(2)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("crypto/bcrypt: invalid cost in {:?}", &h[..7.min(h.len())]))?;
    if !(4..=31).contains(&cost) {
        return Err(format!(
            "crypto/bcrypt: cost {cost} is outside allowed range (4,31)"
        ));
    }
    Ok(())
}

/// The hash an unknown user is compared against, so a wrong user name costs as much as a wrong
/// password (the bcrypt of an arbitrary word, cost 10).
const DUMMY_HASH: &str = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";
const AUTH_CACHE_SIZE: usize = 100;

/// Modification stamps of the files a configuration was built from.
type Stamps = Vec<Option<(SystemTime, u64)>>;

fn stamps(paths: &[&str]) -> Stamps {
    paths
        .iter()
        .map(|p| {
            if p.is_empty() {
                return None;
            }
            let m = std::fs::metadata(p).ok()?;
            Some((m.modified().ok()?, m.len()))
        })
        .collect()
}

struct Current {
    file: WebConfigFile,
    headers: Vec<(HeaderName, HeaderValue)>,
    stamp: Stamps,
}

struct TlsCurrent {
    config: Arc<rustls::ServerConfig>,
    stamp: Stamps,
}

/// A loaded web configuration, guarding a listener. Cheap to share (`Arc`).
pub struct WebGuard {
    path: PathBuf,
    /// Decided at start, as Prometheus does: whether the listener speaks TLS, and HTTP/2.
    tls: bool,
    http2: bool,
    current: Mutex<Arc<Current>>,
    tls_current: Mutex<Option<TlsCurrent>>,
    /// sha256(user, hash, password) to verdict.
    auth_cache: Mutex<HashMap<[u8; 32], bool>>,
    /// One bcrypt comparison at a time: each takes tens of milliseconds of CPU on purpose.
    bcrypt: Arc<tokio::sync::Mutex<()>>,
    /// A random bearer token accepted in place of a user's password, for the process's own
    /// requests (its self-scrape): it never leaves the process.
    internal: Secret,
}

impl WebGuard {
    /// Loads and validates `path`.
    pub fn load(path: &Path) -> Result<Arc<WebGuard>, HttpConfigError> {
        let file = WebConfigFile::load(path)?;
        let current = Current {
            headers: file.headers(),
            stamp: stamps(&[&path.to_string_lossy()]),
            file,
        };
        let guard = WebGuard {
            path: path.to_path_buf(),
            tls: current.file.tls_server_config.enabled(),
            http2: current.file.http_server_config.http2,
            current: Mutex::new(Arc::new(current)),
            tls_current: Mutex::new(None),
            auth_cache: Mutex::new(HashMap::new()),
            bcrypt: Arc::new(tokio::sync::Mutex::new(())),
            internal: Secret::new(random_token()),
        };
        if guard.tls {
            guard.tls_config()?;
        }
        Ok(Arc::new(guard))
    }

    /// Whether connections are TLS.
    pub fn tls_enabled(&self) -> bool {
        self.tls
    }

    /// The process's own credential (see the field's comment).
    pub fn internal_token(&self) -> Secret {
        self.internal.clone()
    }

    /// Whether HTTP/2 is offered (over TLS).
    pub fn http2_enabled(&self) -> bool {
        self.http2
    }

    /// The user names of `basic_auth_users` right now.
    pub fn users(&self) -> Vec<String> {
        self.config()
            .file
            .basic_auth_users
            .keys()
            .cloned()
            .collect()
    }

    /// Whether basic authentication is required right now.
    pub fn auth_required(&self) -> bool {
        !self.config().file.basic_auth_users.is_empty()
    }

    /// The configuration as of now: re-read when the file changed. A file that became invalid keeps
    /// the last good configuration in force, with a warning.
    fn config(&self) -> Arc<Current> {
        let mut cur = self.current.lock();
        let now = stamps(&[&self.path.to_string_lossy()]);
        if now != cur.stamp {
            match WebConfigFile::load(&self.path) {
                Ok(file) => {
                    *cur = Arc::new(Current {
                        headers: file.headers(),
                        stamp: now,
                        file,
                    });
                }
                Err(e) => {
                    warn!(file = %self.path.display(), error = %e, "the web configuration file changed but is invalid; keeping the previous one");
                    *cur = Arc::new(Current {
                        file: cur.file.clone(),
                        headers: cur.headers.clone(),
                        stamp: now,
                    });
                }
            }
        }
        cur.clone()
    }

    /// The TLS configuration for the next handshake, rebuilt when the web configuration, the
    /// certificate, the key or the client CA changed on disk.
    pub fn tls_config(&self) -> Result<Arc<rustls::ServerConfig>, HttpConfigError> {
        let cur = self.config();
        let t = &cur.file.tls_server_config;
        let stamp = stamps(&[
            &self.path.to_string_lossy(),
            &t.cert_file,
            &t.key_file,
            &t.client_ca_file,
        ]);
        let mut g = self.tls_current.lock();
        if let Some(c) = g.as_ref()
            && c.stamp == stamp
        {
            return Ok(c.config.clone());
        }
        match t.server_config(self.http2) {
            Ok(cfg) => {
                let cfg = Arc::new(cfg);
                *g = Some(TlsCurrent {
                    config: cfg.clone(),
                    stamp,
                });
                Ok(cfg)
            }
            Err(e) => match g.as_ref() {
                // A certificate being replaced (key written before the certificate, say) must not take
                // the server down: keep serving the last good pair.
                Some(c) => {
                    warn!(error = %e, "cannot load the new TLS certificate; serving the previous one");
                    Ok(c.config.clone())
                }
                None => Err(e),
            },
        }
    }

    /// Checks `Authorization: Basic …` against the users; who is asking when access is granted.
    async fn authorized(&self, cur: &Current, header: Option<&HeaderValue>) -> Option<Principal> {
        if let Some(t) = header
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
        {
            return constant_time_eq(t.as_bytes(), self.internal.expose().as_bytes())
                .then_some(Principal::Internal);
        }
        let (user, pass) = header.and_then(parse_basic)?;
        let (hash, known) = match cur.file.basic_auth_users.get(&user) {
            Some(h) => (h.expose().to_string(), true),
            None => (DUMMY_HASH.to_string(), false),
        };
        let key: [u8; 32] = {
            let mut h = sha2::Sha256::new();
            for part in [user.as_bytes(), hash.as_bytes(), pass.as_bytes()] {
                h.update((part.len() as u64).to_le_bytes());
                h.update(part);
            }
            h.finalize().into()
        };
        let granted = |ok: bool| ok.then(|| Principal::User(user.clone()));
        if let Some(v) = self.auth_cache.lock().get(&key) {
            return granted(*v);
        }
        let ok = {
            let _one = self.bcrypt.lock().await;
            let (p, h) = (pass.clone(), hash.clone());
            tokio::task::spawn_blocking(move || bcrypt::verify(p, &h).unwrap_or(false))
                .await
                .unwrap_or(false)
        } && known;
        let mut cache = self.auth_cache.lock();
        if cache.len() >= AUTH_CACHE_SIZE {
            // Evict about a tenth, arbitrary entries (HashMap order), as exporter-toolkit does.
            let doomed: Vec<[u8; 32]> = cache
                .keys()
                .take(AUTH_CACHE_SIZE / 10 + 1)
                .copied()
                .collect();
            for k in doomed {
                cache.remove(&k);
            }
        }
        cache.insert(key, ok);
        drop(cache);
        granted(ok)
    }
}

/// Who a request comes from, once the web configuration's basic authentication let it in. The
/// guard puts it in the request's extensions only while `basic_auth_users` is set, so a handler
/// that finds none knows that authentication is off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// A user of `basic_auth_users`, by name.
    User(String),
    /// Vigil itself (its own self-scrape and rule queries, with the process's token).
    Internal,
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// 32 random bytes, hex.
fn random_token() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).unwrap_or_else(|_| {
        // No entropy source: derive from the clock and address space (still unguessable from
        // outside in practice, and the token only ever travels over loopback).
        let seed = format!("{:?}{:p}", std::time::SystemTime::now(), &b);
        b.copy_from_slice(&sha2::Sha256::digest(seed.as_bytes()));
    });
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn parse_basic(v: &HeaderValue) -> Option<(String, String)> {
    let s = v.to_str().ok()?;
    let (scheme, rest) = s.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// The axum middleware: configured headers on every response, then basic authentication.
pub async fn guard(State(web): State<Arc<WebGuard>>, mut req: Request, next: Next) -> Response {
    let cur = web.config();
    let who = if cur.file.basic_auth_users.is_empty() {
        Ok(None)
    } else {
        web.authorized(&cur, req.headers().get(header::AUTHORIZATION))
            .await
            .map(Some)
            .ok_or(())
    };
    let mut resp = match who {
        Ok(p) => {
            if let Some(p) = p {
                req.extensions_mut().insert(p);
            }
            next.run(req).await
        }
        Err(()) => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic")],
            "Unauthorized\n",
        )
            .into_response(),
    };
    for (k, v) in &cur.headers {
        resp.headers_mut().insert(k.clone(), v.clone());
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(y: &str) -> Result<WebConfigFile, String> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("web.yml");
        std::fs::write(&p, y).unwrap();
        WebConfigFile::load(&p).map_err(|e| e.to_string())
    }

    #[test]
    fn validation_like_exporter_toolkit() {
        assert_eq!(load("").unwrap(), WebConfigFile::default());
        assert!(!load("").unwrap().tls_server_config.enabled());
        assert!(load("tls_server_config:\n  cert_filse: x\n").is_err());
        assert_eq!(
            load("tls_server_config:\n  key_file: k\n").unwrap_err(),
            "missing cert_file"
        );
        assert_eq!(
            load("tls_server_config:\n  client_auth_type: Maybe\n").unwrap_err(),
            "Invalid ClientAuth: Maybe"
        );
        assert_eq!(
            load("http_server_config:\n  headers:\n    Content-Type: x\n").unwrap_err(),
            "HTTP header \"Content-Type\" can not be configured"
        );
        assert_eq!(
            load("http_server_config:\n  headers:\n    X-Frame-Options: foo\n").unwrap_err(),
            "invalid value for X-Frame-Options. Expected one of: [\"deny\", \"sameorigin\"], but got: \"foo\""
        );
        assert_eq!(
            load("basic_auth_users:\n  john: doe\n").unwrap_err(),
            "user \"john\": crypto/bcrypt: hashedSecret too short to be a bcrypted password"
        );
        assert!(load(&format!("basic_auth_users:\n  alice: '{DUMMY_HASH}'\n")).is_ok());
    }

    #[test]
    fn basic_header() {
        let v = HeaderValue::from_static("Basic YWxpY2U6czNjcmV0");
        assert_eq!(
            parse_basic(&v),
            Some(("alice".to_string(), "s3cret".to_string()))
        );
        assert_eq!(parse_basic(&HeaderValue::from_static("Bearer x")), None);
    }
}
