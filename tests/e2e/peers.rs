//! Peers for the delivery and front-door tests: a private CA with server certificates, an
//! HTTP(S) recorder that stands in for the endpoints Alertmanager and Vigil notify (PagerDuty,
//! Slack, OpsGenie, webhooks) and can be taken down, a real Alertmanager 0.25, and the port a
//! child process listens on (so Go peers can bind port 0 too).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use parking_lot::Mutex;
use serde_json::Value;
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

use crate::harness::*;

/// A private CA and a server certificate it signed for 127.0.0.1 and localhost, as PEM files.
pub struct TestCa {
    pub dir: TempDir,
}

impl TestCa {
    pub fn new() -> TestCa {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "Vigil test CA");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let mut leaf =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        leaf.distinguished_name
            .push(rcgen::DnType::CommonName, "localhost");
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
        std::fs::write(dir.path().join("cert.pem"), leaf_cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), leaf_key.serialize_pem()).unwrap();
        TestCa { dir }
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }
    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }
    pub fn key(&self) -> PathBuf {
        self.dir.path().join("key.pem")
    }

    /// A web configuration file serving this certificate (Prometheus's format), plus `extra` YAML.
    pub fn web_config(&self, extra: &str) -> PathBuf {
        let p = self.dir.path().join(format!(
            "web-{}.yml",
            self.dir.path().read_dir().unwrap().count()
        ));
        std::fs::write(
            &p,
            format!(
                "tls_server_config:\n  cert_file: {}\n  key_file: {}\n{extra}",
                self.cert().display(),
                self.key().display()
            ),
        )
        .unwrap();
        p
    }
}

/// One request a [`Recorder`] received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    /// Path and query.
    pub path: String,
    pub agent: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// What the recorder answered.
    pub status: u16,
}

impl Recorded {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

#[derive(Default)]
struct RecorderState {
    got: Vec<Recorded>,
    /// Path prefixes that answer 503 (a receiver outage).
    down: Vec<String>,
}

/// An HTTPS (or HTTP) server that records every request and answers 200 (`{"status":"success"}`,
/// enough for PagerDuty, Slack and OpsGenie clients), or 503 for paths taken down.
pub struct Recorder {
    pub url: String,
    state: Arc<Mutex<RecorderState>>,
    stop: CancellationToken,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Recorder {
    pub async fn start(tls: Option<&TestCa>) -> Recorder {
        let state: Arc<Mutex<RecorderState>> = Default::default();
        let st = state.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let st = st.clone();
                async move {
                    let path = uri
                        .path_and_query()
                        .map(|p| p.to_string())
                        .unwrap_or_default();
                    let mut s = st.lock();
                    let status = if s.down.iter().any(|d| path.starts_with(d.as_str())) {
                        503
                    } else {
                        200
                    };
                    s.got.push(Recorded {
                        method: method.to_string(),
                        agent: headers
                            .get("user-agent")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string(),
                        path,
                        headers,
                        body: body.to_vec(),
                        status,
                    });
                    (
                        StatusCode::from_u16(status).unwrap(),
                        [("content-type", "application/json")],
                        r#"{"status":"success","message":"Event processed","ok":true}"#,
                    )
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let web = tls.map(|ca| vigil_http::WebGuard::load(&ca.web_config("")).unwrap());
        let scheme = if tls.is_some() { "https" } else { "http" };
        let stop = CancellationToken::new();
        let opts = vigil_http::ServeOptions::default();
        let app = vigil_http::guarded(app, web.clone(), &opts);
        tokio::spawn(vigil_http::serve(listener, app, web, opts, stop.clone()));
        Recorder {
            url: format!("{scheme}://127.0.0.1:{port}"),
            state,
            stop,
        }
    }

    /// Takes the endpoints under `prefix` down (503) or back up.
    pub fn set_down(&self, prefix: &str, down: bool) {
        let mut s = self.state.lock();
        s.down.retain(|d| d != prefix);
        if down {
            s.down.push(prefix.to_string());
        }
    }

    /// Requests under `prefix` from a client whose User-Agent starts with `agent` that were
    /// answered 2xx: what was delivered.
    pub fn delivered(&self, agent: &str, prefix: &str) -> Vec<Recorded> {
        self.state
            .lock()
            .got
            .iter()
            .filter(|r| r.agent.starts_with(agent) && r.path.starts_with(prefix) && r.status < 300)
            .cloned()
            .collect()
    }

    /// Requests (delivered or not) under `prefix` from `agent`.
    pub fn attempts(&self, agent: &str, prefix: &str) -> usize {
        self.state
            .lock()
            .got
            .iter()
            .filter(|r| r.agent.starts_with(agent) && r.path.starts_with(prefix))
            .count()
    }
}

/// The TCP ports process `pid` listens on (read from /proc), for peers started on port 0.
pub fn listening_ports(pid: u32) -> Vec<u16> {
    let mut inodes = Vec::new();
    if let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for fd in fds.flatten() {
            if let Ok(t) = std::fs::read_link(fd.path()) {
                let t = t.to_string_lossy().into_owned();
                if let Some(i) = t.strip_prefix("socket:[").and_then(|x| x.strip_suffix(']')) {
                    inodes.push(i.to_string());
                }
            }
        }
    }
    let mut ports = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address, st (0A = LISTEN), ..., inode at index 9.
            if f.len() > 9
                && f[3] == "0A"
                && inodes.iter().any(|i| i == f[9])
                && let Some(p) = f[1]
                    .rsplit(':')
                    .next()
                    .and_then(|h| u16::from_str_radix(h, 16).ok())
            {
                ports.push(p);
            }
        }
    }
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// Waits for `proc` to listen, and answers its (first) port.
pub async fn port_of(proc: &mut Proc, limit: Duration) -> u16 {
    let pid = proc.pid();
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(st) = proc.exited() {
            panic!(
                "{} exited with {st} before listening\n{}",
                proc.name,
                tail(&proc.log, 40)
            );
        }
        if let Some(p) = listening_ports(pid).first() {
            return *p;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} did not listen within {limit:?}",
            proc.name
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A real Alertmanager 0.25 (Debian's `prometheus-alertmanager`), clustering off, on port 0.
pub struct Alertmanager {
    pub port: u16,
    _proc: Proc,
    _dir: TempDir,
}

pub fn alertmanager_bin() -> Option<PathBuf> {
    tool("prometheus-alertmanager").or_else(|| tool("alertmanager"))
}

impl Alertmanager {
    /// Starts Alertmanager with `config` written as alertmanager.yml; `extra` flags appended.
    pub async fn start(bin: &Path, config: &str, extra: &[&str]) -> Alertmanager {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("alertmanager.yml");
        std::fs::write(&cfg, config).unwrap();
        let mut cmd = Command::new(bin);
        cmd.arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg("--web.listen-address=127.0.0.1:0")
            .arg("--cluster.listen-address=")
            .arg("--log.level=debug")
            .args(extra);
        let mut proc = Proc::spawn("alertmanager", &mut cmd, &dir.path().join("am.log"));
        let port = port_of(&mut proc, Duration::from_secs(30)).await;
        wait_ready(
            &mut proc,
            &format!("http://127.0.0.1:{port}/-/ready"),
            Duration::from_secs(30),
        )
        .await;
        Alertmanager {
            port,
            _proc: proc,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}
