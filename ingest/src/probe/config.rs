//! blackbox_exporter 0.23's `blackbox.yml`, loaded unchanged: modules with `prober: http | tcp |
//! dns | icmp` (and `grpc`, accepted so the Debian default file loads), plus Vigil's own module
//! types `postgres` and `docker` in the same file. Defaults and validation follow blackbox_exporter
//! (unknown keys are errors; regular expressions compile at load).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

/// The whole file.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BlackboxConfig {
    #[serde(default)]
    pub modules: BTreeMap<String, Module>,
}

/// The modules Vigil has without a `blackbox_config` file: blackbox_exporter's usual ones.
pub const DEFAULT_MODULES: &str = r#"modules:
  http_2xx:
    prober: http
  http_post_2xx:
    prober: http
    http:
      method: POST
  tcp_connect:
    prober: tcp
  icmp:
    prober: icmp
"#;

impl BlackboxConfig {
    /// The built-in modules ([`DEFAULT_MODULES`]).
    pub fn builtin() -> BlackboxConfig {
        Self::parse(DEFAULT_MODULES).expect("the built-in modules are valid")
    }

    pub fn parse(text: &str) -> Result<BlackboxConfig, String> {
        let c: BlackboxConfig =
            serde_yaml_ng::from_str(text).map_err(|e| format!("error parsing config file: {e}"))?;
        for (name, m) in &c.modules {
            m.validate().map_err(|e| format!("module {name:?}: {e}"))?;
        }
        Ok(c)
    }

    /// Reads the file; relative TLS and credential files inside it are taken from its directory.
    pub fn load(path: &Path) -> Result<BlackboxConfig, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("error reading config file: {e}"))?;
        let mut c = Self::parse(&text)?;
        if let Some(dir) = path.parent() {
            for m in c.modules.values_mut() {
                m.set_directory(dir);
            }
        }
        Ok(c)
    }
}

/// The probers a module can name.
pub const PROBERS: &[&str] = &["http", "tcp", "dns", "icmp", "grpc", "postgres", "docker"];

/// One module.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Module {
    #[serde(default)]
    pub prober: String,
    /// 0: the scrape's timeout (less the offset) decides.
    #[serde(default, skip_serializing_if = "GoDuration::is_zero")]
    pub timeout: GoDuration,
    #[serde(default)]
    pub http: HttpProbe,
    #[serde(default)]
    pub tcp: TcpProbe,
    #[serde(default)]
    pub icmp: IcmpProbe,
    #[serde(default)]
    pub dns: DnsProbe,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<GrpcProbe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<PostgresProbe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker: Option<DockerProbe>,
}

impl Module {
    fn validate(&self) -> Result<(), String> {
        // blackbox_exporter checks the prober only when a probe runs (400 "Unknown prober"); Vigil
        // says so at load as well, since such a module can never succeed.
        if !PROBERS.contains(&self.prober.as_str()) {
            return Err(format!(
                "unknown prober {:?} (one of {})",
                self.prober,
                PROBERS.join(", ")
            ));
        }
        let mut hc = self.http.http_client_config.clone();
        hc.validate().map_err(|e| e.to_string())?;
        if !hc.proxy_url.is_empty() {
            return Err("proxy_url in an http module is not supported by Vigil's prober".into());
        }
        if let Some(c) = &self.http.compression {
            let enc = c.to_ascii_lowercase();
            if let Some((k, v)) = self
                .http
                .headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("accept-encoding"))
                && !accepts(v, &enc)
            {
                return Err(format!(
                    "invalid configuration \"{k}: {v}\", \"compression: {c}\""
                ));
            }
        }
        for m in self
            .http
            .fail_if_header_matches
            .iter()
            .chain(&self.http.fail_if_header_not_matches)
        {
            if m.header.is_empty() {
                return Err("header name must be set for HTTP header matchers".into());
            }
        }
        self.tcp.tls_config.validate().map_err(|e| e.to_string())?;
        self.dns.tls_config.validate().map_err(|e| e.to_string())?;
        if let Some(g) = &self.grpc {
            g.tls_config.validate().map_err(|e| e.to_string())?;
        }
        if self.prober == "dns" && self.dns.query_name.is_empty() {
            return Err("query name must be set for DNS module".into());
        }
        if !self.dns.query_type.is_empty()
            && super::dns::record_type(&self.dns.query_type).is_none()
        {
            return Err(format!("query type '{}' is not valid", self.dns.query_type));
        }
        if !self.dns.query_class.is_empty()
            && super::dns::record_class(&self.dns.query_class).is_none()
        {
            return Err(format!(
                "query class '{}' is not valid",
                self.dns.query_class
            ));
        }
        if self.icmp.ttl < 0 {
            return Err("\"ttl\" cannot be negative".into());
        }
        if self.icmp.ttl > 255 {
            return Err("\"ttl\" cannot exceed 255".into());
        }
        if self.prober == "postgres" && self.postgres.as_ref().is_none_or(|p| p.user.is_empty()) {
            return Err("a postgres module needs postgres.user".into());
        }
        if let Some(p) = &self.postgres
            && let Some(k) = p
                .params
                .keys()
                .find(|k| !matches!(k.as_str(), "application_name" | "options"))
        {
            return Err(format!(
                "postgres.params: {k:?} is not supported (application_name, options)"
            ));
        }
        if let Some(t) = self.postgres.as_ref().and_then(|p| p.tls_config.as_ref()) {
            t.validate()
                .map_err(|e| format!("postgres.tls_config: {e}"))?;
        }
        if self.prober == "docker" {
            let Some(d) = &self.docker else {
                return Err("a docker module needs a docker: section".into());
            };
            d.validate()?;
        }
        Ok(())
    }

    fn set_directory(&mut self, dir: &Path) {
        self.http.http_client_config.set_directory(dir);
        self.tcp.tls_config.set_directory(dir);
        self.dns.tls_config.set_directory(dir);
        if let Some(g) = &mut self.grpc {
            g.tls_config.set_directory(dir);
        }
        if let Some(tls) = self.postgres.as_mut().and_then(|p| p.tls_config.as_mut()) {
            tls.set_directory(dir);
        }
    }
}

/// Whether an `Accept-Encoding` value lets `enc` through (quality above 0), as blackbox_exporter
/// decides it.
fn accepts(header: &str, enc: &str) -> bool {
    let mut entries: Vec<(String, f64)> = header
        .split(',')
        .map(|part| {
            let part = part.trim();
            match part.rsplit_once(';') {
                Some((e, q)) => {
                    let q = q.trim().trim_start_matches("q=");
                    (
                        e.trim().to_ascii_lowercase(),
                        q.parse::<f64>()
                            .map(|q| (q * 1000.0).round() / 1000.0)
                            .unwrap_or(0.0),
                    )
                }
                None => (part.to_ascii_lowercase(), 1.0),
            }
        })
        .collect();
    entries.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap_or(std::cmp::Ordering::Equal));
    entries
        .iter()
        .find(|(e, _)| e == enc || e == "*")
        .is_some_and(|(_, q)| *q > 0.0)
}

fn yes() -> bool {
    true
}

/// A section as an empty mapping reads: blackbox_exporter's defaults are the serde defaults.
fn defaults<T: serde::de::DeserializeOwned>() -> T {
    serde_yaml_ng::from_str("{}").expect("an empty section takes the defaults")
}

/// `http:`.
#[derive(Clone, Debug, Serialize)]
pub struct HttpProbe {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub valid_status_codes: Vec<u16>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub valid_http_versions: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub preferred_ip_protocol: String,
    pub ip_protocol_fallback: bool,
    pub skip_resolve_phase_with_proxy: bool,
    /// Deprecated spelling of `follow_redirects: false`; wins when present.
    #[serde(skip_serializing)]
    pub no_follow_redirects: Option<bool>,
    pub fail_if_ssl: bool,
    pub fail_if_not_ssl: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub method: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fail_if_body_matches_regexp: Vec<GoRegex>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fail_if_body_not_matches_regexp: Vec<GoRegex>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fail_if_header_matches: Vec<HeaderMatch>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fail_if_header_not_matches: Vec<HeaderMatch>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub body: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_size_limit: Option<vigil_storage::config::ByteSize>,
    /// prometheus/common's `http_config`, inline as in blackbox.yml.
    #[serde(flatten)]
    pub http_client_config: vigil_http::HttpClientConfig,
}

/// `http:` as written: every key listed, because a flattened struct cannot refuse unknown ones.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttpProbe {
    #[serde(default)]
    valid_status_codes: Vec<u16>,
    #[serde(default)]
    valid_http_versions: Vec<String>,
    #[serde(default)]
    preferred_ip_protocol: String,
    #[serde(default = "yes")]
    ip_protocol_fallback: bool,
    #[serde(default)]
    skip_resolve_phase_with_proxy: bool,
    #[serde(default)]
    no_follow_redirects: Option<bool>,
    #[serde(default)]
    fail_if_ssl: bool,
    #[serde(default)]
    fail_if_not_ssl: bool,
    #[serde(default)]
    method: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    fail_if_body_matches_regexp: Vec<GoRegex>,
    #[serde(default)]
    fail_if_body_not_matches_regexp: Vec<GoRegex>,
    #[serde(default)]
    fail_if_header_matches: Vec<HeaderMatch>,
    #[serde(default)]
    fail_if_header_not_matches: Vec<HeaderMatch>,
    #[serde(default)]
    body: String,
    #[serde(default)]
    compression: Option<String>,
    #[serde(default)]
    body_size_limit: Option<vigil_storage::config::ByteSize>,
    // prometheus/common 0.37's HTTPClientConfig, as blackbox_exporter 0.23 inlines it.
    #[serde(default)]
    basic_auth: Option<vigil_http::client::BasicAuth>,
    #[serde(default)]
    authorization: Option<vigil_http::client::Authorization>,
    #[serde(default)]
    oauth2: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    bearer_token: vigil_model::Secret,
    #[serde(default)]
    bearer_token_file: String,
    #[serde(default)]
    proxy_url: String,
    #[serde(default)]
    tls_config: vigil_http::TlsConfig,
    #[serde(default = "yes")]
    follow_redirects: bool,
    #[serde(default = "yes")]
    enable_http2: bool,
}

impl<'de> Deserialize<'de> for HttpProbe {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let r = RawHttpProbe::deserialize(d)?;
        Ok(HttpProbe {
            valid_status_codes: r.valid_status_codes,
            valid_http_versions: r.valid_http_versions,
            preferred_ip_protocol: r.preferred_ip_protocol,
            ip_protocol_fallback: r.ip_protocol_fallback,
            skip_resolve_phase_with_proxy: r.skip_resolve_phase_with_proxy,
            no_follow_redirects: r.no_follow_redirects,
            fail_if_ssl: r.fail_if_ssl,
            fail_if_not_ssl: r.fail_if_not_ssl,
            method: r.method,
            headers: r.headers,
            fail_if_body_matches_regexp: r.fail_if_body_matches_regexp,
            fail_if_body_not_matches_regexp: r.fail_if_body_not_matches_regexp,
            fail_if_header_matches: r.fail_if_header_matches,
            fail_if_header_not_matches: r.fail_if_header_not_matches,
            body: r.body,
            compression: r.compression,
            body_size_limit: r.body_size_limit,
            http_client_config: vigil_http::HttpClientConfig {
                basic_auth: r.basic_auth,
                authorization: r.authorization,
                oauth2: r.oauth2,
                bearer_token: r.bearer_token,
                bearer_token_file: r.bearer_token_file,
                proxy_url: r.proxy_url,
                tls_config: r.tls_config,
                follow_redirects: r.follow_redirects,
                enable_http2: r.enable_http2,
                ..Default::default()
            },
        })
    }
}

impl Default for HttpProbe {
    fn default() -> Self {
        defaults()
    }
}

impl HttpProbe {
    pub fn follow_redirects(&self) -> bool {
        match self.no_follow_redirects {
            Some(no) => !no,
            None => self.http_client_config.follow_redirects,
        }
    }
}

/// `fail_if_header_matches:` / `fail_if_header_not_matches:` entry.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderMatch {
    #[serde(default)]
    pub header: String,
    pub regexp: GoRegex,
    #[serde(default)]
    pub allow_missing: bool,
}

/// `tcp:`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TcpProbe {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub preferred_ip_protocol: String,
    #[serde(default = "yes")]
    pub ip_protocol_fallback: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source_ip_address: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query_response: Vec<QueryResponse>,
    #[serde(default)]
    pub tls: bool,
    #[serde(default)]
    pub tls_config: vigil_http::TlsConfig,
}

impl Default for TcpProbe {
    fn default() -> Self {
        defaults()
    }
}

/// One step of a TCP conversation.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QueryResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<GoRegex>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub send: String,
    #[serde(default)]
    pub starttls: bool,
}

/// `icmp:`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IcmpProbe {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub preferred_ip_protocol: String,
    #[serde(default = "yes")]
    pub ip_protocol_fallback: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source_ip_address: String,
    #[serde(default)]
    pub payload_size: usize,
    #[serde(default)]
    pub dont_fragment: bool,
    #[serde(default = "default_ttl")]
    pub ttl: i64,
}

fn default_ttl() -> i64 {
    64
}

impl Default for IcmpProbe {
    fn default() -> Self {
        defaults()
    }
}

/// `dns:`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DnsProbe {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub preferred_ip_protocol: String,
    #[serde(default = "yes")]
    pub ip_protocol_fallback: bool,
    #[serde(default)]
    pub dns_over_tls: bool,
    #[serde(default)]
    pub tls_config: vigil_http::TlsConfig,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source_ip_address: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub transport_protocol: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub query_class: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub query_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub query_type: String,
    #[serde(default = "yes")]
    pub recursion_desired: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_rcodes: Option<Vec<String>>,
    #[serde(default)]
    pub validate_answer_rrs: RrValidator,
    #[serde(default)]
    pub validate_authority_rrs: RrValidator,
    #[serde(default)]
    pub validate_additional_rrs: RrValidator,
}

impl Default for DnsProbe {
    fn default() -> Self {
        defaults()
    }
}

/// Checks of one section of a DNS answer. The expressions are plain strings compiled when the
/// probe runs, as in blackbox_exporter 0.23 (a bad one fails the probe, not the load).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RrValidator {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fail_if_matches_regexp: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fail_if_all_match_regexp: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fail_if_not_matches_regexp: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fail_if_none_matches_regexp: Vec<String>,
}

/// `grpc:`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcProbe {
    /// The service whose health is asked for (empty: the server as a whole).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service: String,
    #[serde(default)]
    pub tls: bool,
    #[serde(default)]
    pub tls_config: vigil_http::TlsConfig,
    #[serde(default = "yes")]
    pub ip_protocol_fallback: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub preferred_ip_protocol: String,
}

impl Default for GrpcProbe {
    fn default() -> Self {
        defaults()
    }
}

/// `postgres:` (a Vigil module type): connects, runs `SELECT 1`, reads the role and replication.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresProbe {
    /// The role to connect as (the target gives host and port); a `password` prints as `<secret>`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(default, skip_serializing_if = "vigil_model::Secret::is_empty")]
    pub password: vigil_model::Secret,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub password_file: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub dbname: String,
    /// Extra connection parameters: `application_name` (default `vigil-probe`) and `options`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
    /// With it, the probe connects over TLS (`sslmode=require`), verified as it says; without
    /// it, in plain text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_config: Option<vigil_http::TlsConfig>,
}

/// `docker:` (a Vigil module type): the state of a container, or of every container with some
/// labels, through the Docker Engine API.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DockerProbe {
    /// The Engine API endpoint: `unix:///var/run/docker.sock` (default) or `tcp://host:port`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
    /// Instead of a container named by the target: every container with these labels
    /// (`key` or `key=value`); the target then names the group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub label_selector: Vec<String>,
}

impl DockerProbe {
    fn validate(&self) -> Result<(), String> {
        if !self.host.is_empty()
            && !self.host.starts_with("unix://")
            && !self.host.starts_with("tcp://")
            && !self.host.starts_with("http://")
        {
            return Err(format!(
                "docker.host {:?}: use unix:///path or tcp://host:port",
                self.host
            ));
        }
        Ok(())
    }
}

/// A Go `time.Duration` as YAML writes it: `500ms`, `5s`, `1m30s`, `1.5h`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GoDuration(pub Duration);

impl GoDuration {
    pub fn is_zero(&self) -> bool {
        self.0.is_zero()
    }

    pub fn parse(s: &str) -> Result<GoDuration, String> {
        let bad = || format!("time: invalid duration \"{s}\"");
        if s == "0" {
            return Ok(GoDuration(Duration::ZERO));
        }
        let mut rest = s;
        let mut total = 0f64;
        if rest.is_empty() {
            return Err(bad());
        }
        while !rest.is_empty() {
            let n = rest
                .find(|c: char| !c.is_ascii_digit() && c != '.')
                .ok_or_else(bad)?;
            if n == 0 {
                return Err(bad());
            }
            let v: f64 = rest[..n].parse().map_err(|_| bad())?;
            rest = &rest[n..];
            let u = rest
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(rest.len());
            let mult = match &rest[..u] {
                "ns" => 1e-9,
                "us" | "µs" | "μs" => 1e-6,
                "ms" => 1e-3,
                "s" => 1.0,
                "m" => 60.0,
                "h" => 3600.0,
                "" => return Err(format!("time: missing unit in duration \"{s}\"")),
                other => {
                    return Err(format!(
                        "time: unknown unit \"{other}\" in duration \"{s}\""
                    ));
                }
            };
            total += v * mult;
            rest = &rest[u..];
        }
        Ok(GoDuration(Duration::from_secs_f64(total)))
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        GoDuration::parse(&s).map_err(de::Error::custom)
    }
}

impl Serialize for GoDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{:?}", self.0))
    }
}

/// A regular expression, compiled at load, unanchored (as blackbox_exporter matches them).
#[derive(Clone, Debug)]
pub struct GoRegex {
    pub re: regex::Regex,
    pub text: String,
}

impl GoRegex {
    pub fn new(text: &str) -> Result<GoRegex, String> {
        regex::Regex::new(text)
            .map(|re| GoRegex {
                re,
                text: text.to_string(),
            })
            .map_err(|e| format!("\"Could not compile regular expression\" regexp={text:?}: {e}"))
    }
}

impl<'de> Deserialize<'de> for GoRegex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        GoRegex::new(&s).map_err(de::Error::custom)
    }
}

impl Serialize for GoRegex {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Debian's /etc/prometheus/blackbox.yml of prometheus-blackbox-exporter 0.23.0-4.
    const DEBIAN_DEFAULT: &str = r#"modules:
  http_2xx:
    prober: http
  http_post_2xx:
    prober: http
    http:
      method: POST
  tcp_connect:
    prober: tcp
  pop3s_banner:
    prober: tcp
    tcp:
      query_response:
      - expect: "^+OK"
      tls: true
      tls_config:
        insecure_skip_verify: false
  grpc:
    prober: grpc
    grpc:
      tls: true
      preferred_ip_protocol: "ip4"
  grpc_plain:
    prober: grpc
    grpc:
      tls: false
      service: "service1"
  ssh_banner:
    prober: tcp
    tcp:
      query_response:
      - expect: "^SSH-2.0-"
      - send: "SSH-2.0-blackbox-ssh-check"
  irc_banner:
    prober: tcp
    tcp:
      query_response:
      - send: "NICK prober"
      - send: "USER prober prober prober :prober"
      - expect: "PING :([^ ]+)"
        send: "PONG ${1}"
      - expect: "^:[^ ]+ 001"
  icmp:
    prober: icmp
  icmp_ttl5:
    prober: icmp
    timeout: 5s
    icmp:
      ttl: 5
"#;

    #[test]
    fn debian_default_file_loads() {
        let c = BlackboxConfig::parse(DEBIAN_DEFAULT).unwrap();
        assert_eq!(c.modules.len(), 10);
        let h = &c.modules["http_2xx"].http;
        assert!(h.follow_redirects() && h.ip_protocol_fallback && h.valid_status_codes.is_empty());
        assert_eq!(c.modules["icmp"].icmp.ttl, 64);
        assert_eq!(c.modules["icmp_ttl5"].timeout.0, Duration::from_secs(5));
        assert!(c.modules["pop3s_banner"].tcp.tls);
        assert!(
            c.modules["irc_banner"].tcp.query_response[2]
                .expect
                .is_some()
        );
        assert!(c.modules["http_2xx"].dns.recursion_desired);
    }

    #[test]
    fn errors_are_blackbox_exporters() {
        for (y, want) in [
            (
                "modules:\n  a:\n    prober: http\n    http:\n      invalid_extra_field: 1\n",
                "invalid_extra_field",
            ),
            (
                "modules:\n  a:\n    prober: dns\n    dns:\n      query_type: A\n",
                "query name must be set for DNS module",
            ),
            (
                "modules:\n  a:\n    prober: dns\n    dns:\n      query_name: x\n      query_type: AAA\n",
                "query type 'AAA' is not valid",
            ),
            (
                "modules:\n  a:\n    prober: http\n    http:\n      fail_if_body_matches_regexp: [':[']\n",
                "Could not compile regular expression",
            ),
            (
                "modules:\n  a:\n    prober: http\n    http:\n      fail_if_header_matches: [{header: X}]\n",
                "regexp",
            ),
            (
                "modules:\n  a:\n    prober: http\n    http:\n      compression: gzip\n      headers: {accEpt-enCoding: deflate}\n",
                "invalid configuration \"accEpt-enCoding: deflate\", \"compression: gzip\"",
            ),
            (
                "modules:\n  a:\n    prober: icmp\n    icmp: {ttl: 300}\n",
                "\"ttl\" cannot exceed 255",
            ),
            (
                "modules:\n  a:\n    prober: http\n    http:\n      bearer_token: a\n      bearer_token_file: b\n",
                "at most one of bearer_token & bearer_token_file must be configured",
            ),
            (
                "modules:\n  a:\n    prober: htp\n",
                "unknown prober \"htp\"",
            ),
            (
                "modules:\n  a:\n    prober: postgres\n    postgres: {user: u, params: {sslmode: require}}\n",
                "postgres.params: \"sslmode\" is not supported",
            ),
            (
                "modules:\n  a:\n    prober: http\n    timeout: 5 seconds\n",
                "time: unknown unit \" seconds\" in duration \"5 seconds\"",
            ),
        ] {
            let e = BlackboxConfig::parse(y).unwrap_err();
            assert!(e.contains(want), "{y}: {e}");
        }
    }

    #[test]
    fn accept_encoding_rules() {
        assert!(accepts("gzip", "gzip"));
        assert!(accepts("br;q=0.5, gzip;q=0.9", "gzip"));
        assert!(!accepts("gzip;q=0", "gzip"));
        assert!(accepts("*", "deflate"));
        assert!(!accepts("deflate", "gzip"));
    }

    #[test]
    fn go_durations() {
        for (s, ms) in [
            ("5s", 5000),
            ("500ms", 500),
            ("1m30s", 90_000),
            ("1.5s", 1500),
        ] {
            assert_eq!(
                GoDuration::parse(s).unwrap().0,
                Duration::from_millis(ms),
                "{s}"
            );
        }
        assert!(GoDuration::parse("5").is_err());
        assert!(GoDuration::parse("5d").is_err());
    }

    #[test]
    fn secrets_stay_hidden_in_the_module_dump() {
        let c = BlackboxConfig::parse(
            "modules:\n  a:\n    prober: http\n    http:\n      basic_auth: {username: u, password: hunter2}\n",
        )
        .unwrap();
        let y = serde_yaml_ng::to_string(&c.modules["a"]).unwrap();
        assert!(!y.contains("hunter2") && y.contains("<secret>"), "{y}");
    }
}
