//! Test harness: starts the real `vigil` binary and real peers (Prometheus, node_exporter, the fixture
//! server) on port 0 (or, for a peer that cannot report a port-0 bind, a port from `reserved_port`) in
//! temporary directories, and stops them when dropped, even when a test fails.
//!
//! A peer that is not installed skips the test with a message on a developer machine, and fails it under
//! CI (`CI=true`), where `scripts/test` has installed every peer.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Finds an external program. Outside CI a missing program skips the test (returns None after saying
/// so); in CI it fails the test.
pub fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in
        std::env::split_paths(&path).chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
    {
        let p = dir.join(name);
        if p.is_file() {
            return Some(p);
        }
    }
    if in_ci() {
        panic!(
            "{name} is not installed; ./scripts/test installs the test peers (prometheus, prometheus-node-exporter, prometheus-alertmanager, python3)"
        );
    }
    eprintln!("SKIPPED: {name} is not installed (run ./scripts/test to install the test peers)");
    None
}

/// A port for a peer that cannot bind port 0 and report it (aiosmtpd, dnsmasq, PostgreSQL), or that
/// must be known before the peer starts (a receiver that is down at first, a server that scrapes
/// itself). It is taken from below the kernel's ephemeral range, where no port-0 bind of another test
/// ever lands, and each call in this test process gets a different one, so parallel tests cannot
/// collide; a port some other program holds is skipped (UDP too, for DNS).
pub fn reserved_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static CALLS: AtomicU32 = AtomicU32::new(0);
    let low: u32 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    // Below the ephemeral range, above the well-known ports; the process id spreads concurrently
    // running test binaries apart.
    let span = low.saturating_sub(10_000).max(1_000);
    let offset = std::process::id() % 64 * (span / 64);
    for _ in 0..span {
        let n = CALLS.fetch_add(1, Ordering::SeqCst);
        let port = (10_000 + (offset + n) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
        {
            return port;
        }
    }
    panic!("no free port below the ephemeral range");
}

/// A child process killed (and reaped) on drop; prints its log's tail when the test is failing.
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &str, cmd: &mut Command, log: &Path) -> Proc {
        let out = File::create(log).unwrap();
        let err = out.try_clone().unwrap();
        // Its own process group, so that dropping it also ends whatever it started (strace's tracee).
        use std::os::unix::process::CommandExt;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc {
            name: name.into(),
            child: Some(child),
            log: log.to_path_buf(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Sends a signal by name (TERM, KILL, HUP).
    /// Signals the process and everything it started (its own process group).
    pub fn signal_group(&self, sig: &str) {
        let st = Command::new("kill")
            .args([&format!("-{sig}"), "--", &format!("-{}", self.pid())])
            .status()
            .unwrap();
        assert!(st.success(), "kill -{sig} -{} failed", self.pid());
    }

    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(st.success(), "kill -{sig} {} failed", self.pid());
    }

    /// Waits for the process to exit, at most `limit`.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        let child = self.child.as_mut().unwrap();
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                self.child = None;
                return st;
            }
            if Instant::now() > deadline {
                panic!(
                    "{} did not exit within {limit:?}\n{}",
                    self.name,
                    tail(&self.log, 40)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().unwrap())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", c.id())])
                .status();
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- last lines of {} ({}) ----\n{}",
                self.name,
                self.log.display(),
                tail(&self.log, 40)
            );
        }
    }
}

pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

pub fn client() -> reqwest::Client {
    vigil_http::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The port Vigil reports it bound (`Vigil is serving listen=127.0.0.1:PORT` in its log).
pub async fn reported_port(p: &mut Proc, limit: Duration) -> u16 {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(st) = p.exited() {
            panic!(
                "vigil exited with {st} before listening\n{}",
                tail(&p.log, 60)
            );
        }
        let log = std::fs::read_to_string(&p.log).unwrap_or_default();
        if let Some(port) = log
            .lines()
            .find(|l| l.contains("Vigil is serving"))
            .and_then(|l| l.split("listen=").nth(1))
            .and_then(|a| a.split_whitespace().next())
            .and_then(|a| a.rsplit(':').next())
            .and_then(|p| p.parse().ok())
        {
            return port;
        }
        assert!(
            Instant::now() < deadline,
            "vigil did not report its port\n{}",
            tail(&p.log, 60)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `port` accepts connections.
async fn wait_listening(p: &mut Proc, port: u16, limit: Duration) {
    let deadline = Instant::now() + limit;
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if let Some(st) = p.exited() {
            panic!("{} exited with {st}\n{}", p.name, tail(&p.log, 60));
        }
        assert!(
            Instant::now() < deadline,
            "{} is not listening on {port}",
            p.name
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `url` until it answers 200, the process dies, or `limit` passes.
pub async fn wait_ready(proc: &mut Proc, url: &str, limit: Duration) {
    let c = client();
    let deadline = Instant::now() + limit;
    loop {
        if let Some(st) = proc.exited() {
            panic!(
                "{} exited with {st} before becoming ready\n{}",
                proc.name,
                tail(&proc.log, 60)
            );
        }
        if let Ok(r) = c.get(url).send().await
            && r.status().is_success()
        {
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "{} not ready at {url} within {limit:?}\n{}",
                proc.name,
                tail(&proc.log, 60)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A running Vigil with its own data directory and configuration.
pub struct Vigil {
    // Fields drop in order: the process stops before its directory is removed.
    pub proc: Option<Proc>,
    pub dir: TempDir,
    pub port: u16,
    starts: usize,
    /// Extra `vigil serve` flags.
    pub args: Vec<String>,
    /// A command Vigil runs under (`strace -f -o …`), when not empty.
    pub wrapper: Vec<String>,
}

impl Vigil {
    /// Starts Vigil with `config` (YAML) in a fresh directory.
    pub async fn start(config: &str) -> Vigil {
        Vigil::start_with_files(config, &[]).await
    }

    /// Starts Vigil with `config` and extra files (name, content) beside the configuration file.
    pub async fn start_with_files(config: &str, files: &[(&str, &str)]) -> Vigil {
        Vigil::start_with_args(config, files, &[]).await
    }

    /// [`Vigil::start_with_files`] with extra `vigil serve` flags.
    pub async fn start_with_args(config: &str, files: &[(&str, &str)], args: &[&str]) -> Vigil {
        Vigil::start_wrapped(config, files, args, &[]).await
    }

    /// Starts Vigil under `wrapper` (a tracer, say).
    pub async fn start_wrapped(
        config: &str,
        files: &[(&str, &str)],
        args: &[&str],
        wrapper: &[&str],
    ) -> Vigil {
        let mut v = Vigil::prepare(config, files, args);
        v.wrapper = wrapper.iter().map(|a| a.to_string()).collect();
        v.launch().await;
        v
    }

    /// Writes the configuration and files into a fresh directory without starting Vigil, so a test
    /// can use its paths (the data directory) in the wrapper before [`Vigil::launch`].
    pub fn prepare(config: &str, files: &[(&str, &str)], args: &[&str]) -> Vigil {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("vigil.yml"), config).unwrap();
        for (name, content) in files {
            let p = dir.path().join(name);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).unwrap();
            }
            std::fs::write(p, content).unwrap();
        }
        Vigil {
            dir,
            port: 0,
            proc: None,
            starts: 0,
            args: args.iter().map(|a| a.to_string()).collect(),
            wrapper: Vec::new(),
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("vigil.yml")
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Starts (again) on the same port and data directory. The first start binds port 0 and reads
    /// the port Vigil reports, so parallel tests never race for a port.
    pub async fn launch(&mut self) {
        assert!(self.proc.is_none(), "already running");
        self.starts += 1;
        let listen = format!("127.0.0.1:{}", self.port);
        let log = self.dir.path().join(format!("vigil.{}.log", self.starts));
        let mut cmd = match self.wrapper.split_first() {
            None => Command::new(env!("CARGO_BIN_EXE_vigil")),
            Some((prog, args)) => {
                let mut c = Command::new(prog);
                c.args(args).arg(env!("CARGO_BIN_EXE_vigil"));
                c
            }
        };
        cmd.arg("serve")
            .arg("--listen")
            .arg(&listen)
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--config")
            .arg(self.config_path())
            .arg("--web.enable-lifecycle")
            .args(&self.args)
            .env("VIGIL_LOG", "info")
            .env_remove("RUST_LOG");
        let mut p = Proc::spawn("vigil", &mut cmd, &log);
        if self.port == 0 {
            self.port = reported_port(&mut p, Duration::from_secs(60)).await;
        }
        // Behind a web configuration readiness needs credentials: listening is enough here.
        if self.args.iter().any(|a| a == "--web.config.file") {
            wait_listening(&mut p, self.port, Duration::from_secs(60)).await;
        } else {
            wait_ready(&mut p, &self.url("/-/ready"), Duration::from_secs(60)).await;
        }
        self.proc = Some(p);
    }

    /// `kill -9`, no chance to flush anything.
    pub fn kill9(&mut self) {
        let mut p = self.proc.take().expect("running");
        // The whole process group: under a wrapper (strace) the server is the wrapper's child.
        p.signal_group("KILL");
        let pgid = p.pid();
        p.wait(Duration::from_secs(10));
        // The group's other members (a wrapped server) are gone too before anything restarts.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Command::new("kill")
            .args(["-0", "--", &format!("-{pgid}")])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            assert!(
                Instant::now() < deadline,
                "process group {pgid} outlived SIGKILL"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM and wait for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut p = self.proc.take().expect("running");
        p.signal("TERM");
        p.wait(Duration::from_secs(60))
    }

    /// The log of the current (or last) run.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("vigil.{}.log", self.starts)))
            .unwrap_or_default()
    }

    pub async fn get_json(&self, path_and_query: &str) -> Value {
        get_json(&self.url(path_and_query)).await
    }

    /// Instant query; returns `data.result`.
    pub async fn query(&self, q: &str, time: f64) -> Value {
        query(&format!("http://{}", self.addr()), q, time).await
    }

    /// The text of `/metrics`, if Vigil answers.
    async fn try_metrics_text(&self) -> Option<String> {
        client()
            .get(self.url("/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()
    }

    /// The text of `/metrics`.
    pub async fn metrics_text(&self) -> String {
        self.try_metrics_text().await.expect("GET /metrics")
    }

    /// The value of an unlabelled self-metric from `/metrics`.
    pub async fn self_metric(&self, name: &str) -> Option<f64> {
        let body = self.try_metrics_text().await?;
        body.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    }
}

pub async fn get_json(url: &str) -> Value {
    let r = client()
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = r.status();
    let text = r.text().await.unwrap();
    assert!(status.is_success(), "GET {url}: {status}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {url}: not JSON ({e}): {text}"))
}

/// Instant query against a Prometheus-API base URL; returns `data.result`.
pub async fn query(base: &str, q: &str, time: f64) -> Value {
    let r = client()
        .post(format!("{base}/api/v1/query"))
        .form(&[("query", q), ("time", &format!("{time:.3}"))])
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert!(
        status.is_success(),
        "query {q:?} on {base}: {status}: {text}"
    );
    let v: Value = serde_json::from_str(&text).unwrap();
    v["data"]["result"].clone()
}

/// Range query; returns `data.result`.
pub async fn query_range(base: &str, q: &str, start: f64, end: f64, step: f64) -> Value {
    let r = client()
        .post(format!("{base}/api/v1/query_range"))
        .form(&[
            ("query", q),
            ("start", &format!("{start:.3}")),
            ("end", &format!("{end:.3}")),
            ("step", &format!("{step}")),
        ])
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert!(
        status.is_success(),
        "query_range {q:?} on {base}: {status}: {text}"
    );
    let v: Value = serde_json::from_str(&text).unwrap();
    v["data"]["result"].clone()
}

/// Sorts a `result` array by its metric labels so two answers compare regardless of order.
pub fn sorted(result: &Value) -> Vec<Value> {
    let mut v = result.as_array().cloned().unwrap_or_default();
    v.sort_by_key(|e| e["metric"].to_string());
    v
}

/// A running Prometheus 2.42 (Debian package) with its own TSDB directory.
pub struct Prometheus {
    pub port: u16,
    // Dropped after the process (fields drop in order): the process stops before its directory goes.
    _proc: Proc,
    _dir: TempDir,
}

impl Prometheus {
    /// Starts Prometheus with `config`; `extra` are additional flags.
    pub async fn start(bin: &Path, config: &str, extra: &[&str]) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("prometheus.yml");
        std::fs::write(&cfg, config).unwrap();
        let mut cmd = Command::new(bin);
        cmd.arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg("--web.listen-address=127.0.0.1:0")
            .arg("--log.level=warn")
            .args(extra);
        let mut proc = Proc::spawn("prometheus", &mut cmd, &dir.path().join("prometheus.log"));
        let port = crate::peers::port_of(&mut proc, Duration::from_secs(60)).await;
        wait_ready(
            &mut proc,
            &format!("http://127.0.0.1:{port}/-/ready"),
            Duration::from_secs(60),
        )
        .await;
        Prometheus {
            port,
            _proc: proc,
            _dir: dir,
        }
    }

    pub fn from_parts(port: u16, proc: Proc, dir: TempDir) -> Prometheus {
        Prometheus {
            port,
            _proc: proc,
            _dir: dir,
        }
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// Polls `f` until it returns Some, or fails after `limit` with `what`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/exposition")
}

/// An HTTP receiver (a webhook, a PagerDuty stand-in): records the JSON body of every request and
/// answers with `reply(body)`'s status line and body. Returns its port and the recorded bodies.
pub async fn http_receiver(
    reply: fn(&Value) -> (&'static str, String),
) -> (u16, std::sync::Arc<parking_lot::Mutex<Vec<Value>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
    let g = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let g = g.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut tmp = [0u8; 8192];
                // Read the head, then as much body as Content-Length says.
                let (head, len) = loop {
                    let Ok(n) = s.read(&mut tmp).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&tmp[..n]);
                    let Some(h) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let len = String::from_utf8_lossy(&buf[..h])
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0usize);
                    if buf.len() >= h + 4 + len {
                        break (h + 4, len);
                    }
                };
                let body: Value =
                    serde_json::from_slice(&buf[head..head + len]).unwrap_or(Value::Null);
                let (status, answer) = reply(&body);
                g.lock().push(body);
                let resp = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    (port, got)
}

/// Runs the docker CLI; its trimmed stdout (the test fails when the command does).
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "docker {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The first alert a webhook receiver got with a `runbook_summary` annotation: a runbook's
/// escalation.
pub async fn escalation_page(pages: &parking_lot::Mutex<Vec<Value>>) -> Value {
    eventually(Duration::from_secs(20), "the escalation's page", || async {
        pages
            .lock()
            .iter()
            .flat_map(|p| p["alerts"].as_array().cloned().unwrap_or_default())
            .find(|a| a["annotations"]["runbook_summary"].is_string())
    })
    .await
}
