//! The `vigil` binary: `vigil serve` runs the server, `vigil check config FILE` validates a configuration.

mod alloc;
mod config;
mod process_metrics;
mod server;

#[global_allocator]
// jemalloc; its options are compiled in from .cargo/config.toml (see docs/ARCHITECTURE.md, "Memory
// settings").
static GLOBAL: alloc::VigilAllocator = alloc::VigilAllocator;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "vigil",
    version,
    about = "Observability and self-healing in one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (metrics ingest, storage and query API).
    Serve {
        /// Address to listen on for HTTP (API, push receivers, /metrics).
        #[arg(long, env = "VIGIL_LISTEN", default_value = "127.0.0.1:9201")]
        listen: String,
        /// Directory holding the WAL and blocks.
        #[arg(long, env = "VIGIL_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
        /// YAML configuration file (prometheus.yml syntax for `global` and `scrape_configs`).
        #[arg(long, env = "VIGIL_CONFIG")]
        config: Option<PathBuf>,
        /// Log filter, e.g. `info` or `vigil_storage=debug,info` (also RUST_LOG).
        #[arg(long, env = "VIGIL_LOG", default_value = "info")]
        log: String,
        /// Prometheus's web configuration file (TLS, basic auth, headers); the same file Prometheus,
        /// Alertmanager and node_exporter read.
        #[arg(long = "web.config.file", env = "VIGIL_WEB_CONFIG_FILE")]
        web_config_file: Option<PathBuf>,
        /// Allow shutdown and reload over HTTP (POST /-/quit, POST /-/reload).
        #[arg(long = "web.enable-lifecycle")]
        web_enable_lifecycle: bool,
        /// Longest time to read and answer one request.
        #[arg(long = "web.read-timeout", default_value = "5m")]
        web_read_timeout: vigil_model::PromDuration,
        /// The URL Vigil is reached at (links in notifications and alerts); default: its own address.
        #[arg(long = "web.external-url", env = "VIGIL_EXTERNAL_URL")]
        web_external_url: Option<String>,
    },
    /// Validate files without starting the server.
    Check {
        #[command(subcommand)]
        what: CheckWhat,
    },
    /// Run tests (rule unit tests in promtool's format).
    Test {
        #[command(subcommand)]
        what: TestWhat,
    },
    /// Work with runbooks (WebAssembly modules with a manifest beside them; see sdk/README.md).
    Runbook {
        #[command(subcommand)]
        what: RunbookWhat,
    },
    /// Ship log files, the journal or stdin to a Vigil (or Loki) server through a disk buffer
    /// (docs/agent.md). Either --config FILE, or --server with sources given as flags.
    Agent {
        /// The agent's YAML configuration.
        #[arg(long, short = 'c', env = "VIGIL_AGENT_CONFIG")]
        config: Option<PathBuf>,
        /// Push endpoint, e.g. http://127.0.0.1:9201/loki/api/v1/push (without --config).
        #[arg(long, env = "VIGIL_AGENT_SERVER")]
        server: Option<String>,
        /// Disk buffer and positions (without --config).
        #[arg(long, default_value = "./agent-data")]
        data_dir: PathBuf,
        /// A file glob to tail (repeatable; without --config).
        #[arg(long = "file")]
        files: Vec<String>,
        /// Read stdin: `lines` or `journald_export` (without --config).
        #[arg(long)]
        stdin: Option<String>,
        /// A label `name=value` for every stream (repeatable; without --config).
        #[arg(long = "label")]
        labels: Vec<String>,
        /// Serve the agent's own metrics at http://ADDR/metrics.
        #[arg(long = "metrics.listen")]
        metrics_listen: Option<String>,
        /// How long to keep sending buffered batches after SIGTERM before exiting.
        #[arg(long, default_value = "5s")]
        shutdown_grace: vigil_model::PromDuration,
        #[arg(long, env = "VIGIL_LOG", default_value = "info")]
        log: String,
    },
    /// Drive HTTP load at a service, inject the scenario's faults, and report the time to detect,
    /// to remediate and to recover (docs/loadtest.md).
    Loadtest {
        scenario: PathBuf,
        /// The Vigil server to push metrics to and read alerts and executions from (overrides the
        /// scenario's `vigil.url`).
        #[arg(long, env = "VIGIL_SERVER")]
        vigil: Option<String>,
        /// Also write the report as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
        /// No progress line.
        #[arg(long)]
        quiet: bool,
    },
}

#[derive(Subcommand)]
enum RunbookWhat {
    /// Check that NAME.wasm fits the runbook ABI and that NAME.runbook.yml beside it is valid.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run a runbook offline against an alert: reading capabilities answer from recorded replies,
    /// acting ones as in a dry run; prints every call it makes.
    Test {
        file: PathBuf,
        /// The alert, a JSON file (`labels`, `annotations`, ... as Alertmanager's API shows an alert).
        #[arg(long)]
        alert: PathBuf,
        /// The binding's parameters, a JSON object.
        #[arg(long, default_value = "{}")]
        params: String,
        /// A capability to grant (repeatable); default: every capability the manifest declares.
        #[arg(long = "grant")]
        grants: Vec<String>,
        /// Recorded replies: a JSON file mapping capability -> result (`{"$error": "..."}` fails it).
        #[arg(long)]
        replies: Option<PathBuf>,
        /// Print the execution record as JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run a loaded runbook on a server by hand (a dry run unless --no-dry-run) and print the
    /// execution record.
    Run {
        name: String,
        /// The server's URL, e.g. http://127.0.0.1:9201 (basic auth as http://user:pass@host:port).
        #[arg(long, env = "VIGIL_SERVER")]
        server: String,
        /// The alert, a JSON file (optional for a run by hand).
        #[arg(long)]
        alert: Option<PathBuf>,
        /// The parameters, a JSON object.
        #[arg(long, default_value = "{}")]
        params: String,
        /// Act for real.
        #[arg(long = "no-dry-run")]
        no_dry_run: bool,
    },
}

#[derive(Subcommand)]
enum TestWhat {
    /// Run promtool-style rule unit-test files.
    Rules {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum CheckWhat {
    /// Validate configuration files (and the rule files they name); errors name the line.
    Config {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Validate Prometheus rule files, as `promtool check rules` does.
    Rules {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// The async runtime of `serve` and `test rules`; None (after saying why) when it cannot start.
fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("vigil: cannot start the async runtime: {e}");
            None
        }
    }
}

/// Transparent huge pages (often `always` on Linux) make every touched 4 KiB of a fresh allocator
/// page cost 2 MiB: measured at 100K series, RSS was 2.4x the live heap with them. They are turned
/// off for this process.
fn tune_memory() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) sets one flag of the calling process; it takes
    // and returns no pointers, and failure (an old kernel) only leaves THP as it was.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// Logs to stderr, filtered by RUST_LOG or else `log`.
fn init_logging(log: String) {
    let filter = std::env::var("RUST_LOG").unwrap_or(log);
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// The agent's configuration: the file, or one made of the command line's flags.
fn agent_config(
    config: Option<PathBuf>,
    server: Option<String>,
    data_dir: PathBuf,
    files: Vec<String>,
    stdin: Option<String>,
    labels: Vec<String>,
) -> Result<vigil_agent::AgentConfig, String> {
    if let Some(path) = config {
        if server.is_some() || !files.is_empty() || stdin.is_some() || !labels.is_empty() {
            return Err("give either --config or --server/--file/--stdin/--label, not both".into());
        }
        return vigil_agent::AgentConfig::load(&path);
    }
    let Some(url) = server else {
        return Err("give --config FILE, or --server URL with --file GLOB or --stdin".into());
    };
    let mut labels_yaml = serde_json::Map::new();
    for l in labels {
        let (k, v) = l
            .split_once('=')
            .ok_or_else(|| format!("--label {l:?}: expected name=value"))?;
        labels_yaml.insert(k.into(), serde_json::Value::String(v.into()));
    }
    let mut sources = Vec::new();
    if !files.is_empty() {
        let abs: Vec<String> = files
            .iter()
            .map(|f| {
                if f.starts_with('/') {
                    f.clone()
                } else {
                    std::env::current_dir()
                        .map(|d| d.join(f).to_string_lossy().into_owned())
                        .unwrap_or_else(|_| f.clone())
                }
            })
            .collect();
        sources.push(serde_json::json!({"files": abs}));
    }
    if let Some(fmt) = stdin {
        sources.push(serde_json::json!({"stdin": {"format": fmt}}));
    }
    let doc = serde_json::json!({
        "server": {"url": url},
        "data_dir": data_dir,
        "labels": labels_yaml,
        "sources": sources,
    });
    let mut c: vigil_agent::AgentConfig = serde_json::from_value(doc).map_err(|e| e.to_string())?;
    c.validate()?;
    Ok(c)
}

async fn agent_command(
    cfg: vigil_agent::AgentConfig,
    metrics_listen: Option<String>,
    grace: std::time::Duration,
) -> Result<(), String> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let agent = vigil_agent::Agent::new(cfg);
    if let Some(addr) = metrics_listen {
        let m = agent.metrics();
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|e| format!("--metrics.listen {addr}: {e}"))?;
        tracing::info!(addr = %listener.local_addr().map_err(|e| e.to_string())?, "agent metrics at /metrics");
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let m = m.clone();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        m.encode(),
                    )
                }
            }),
        );
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "agent metrics listener failed");
            }
        });
    }
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                return;
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            tracing::info!(
                "stopping: buffering what was read, sending what the grace period allows"
            );
            stop.store(true, Ordering::SeqCst);
        });
    }
    agent.run(stop, grace).await
}

fn main() -> ExitCode {
    tune_memory();
    vigil_http::install_crypto_provider();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            listen,
            data_dir,
            config,
            log,
            web_config_file,
            web_enable_lifecycle,
            web_read_timeout,
            web_external_url,
        } => {
            init_logging(log);
            alloc::init();
            let Some(rt) = runtime() else {
                return ExitCode::FAILURE;
            };
            let opts = server::ServeOptions {
                listen,
                data_dir,
                config_file: config,
                web_config_file,
                enable_lifecycle: web_enable_lifecycle,
                read_timeout: web_read_timeout.0,
                external_url: web_external_url,
            };
            match rt.block_on(server::serve(opts)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("vigil: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Test {
            what: TestWhat::Rules { files },
        } => {
            let Some(rt) = runtime() else {
                return ExitCode::FAILURE;
            };
            let mut ok = true;
            for f in files {
                println!("Unit Testing:  {}", f.display());
                match rt.block_on(vigil_alerting::rules::unittest::run_file(&f)) {
                    Ok(fails) if fails.is_empty() => println!("  SUCCESS"),
                    Ok(fails) => {
                        ok = false;
                        println!("  FAILED:");
                        for x in fails {
                            println!("    {x}");
                        }
                    }
                    Err(e) => {
                        ok = false;
                        println!("  FAILED:\n    {e}");
                    }
                }
            }
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Runbook { what } => runbook_command(what),
        Command::Loadtest {
            scenario,
            vigil,
            json,
            quiet,
        } => loadtest_command(&scenario, vigil, json, quiet),
        Command::Agent {
            config,
            server,
            data_dir,
            files,
            stdin,
            labels,
            metrics_listen,
            shutdown_grace,
            log,
        } => {
            init_logging(log);
            let cfg = match agent_config(config, server, data_dir, files, stdin, labels) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("vigil agent: {e}");
                    return ExitCode::from(2);
                }
            };
            let Some(rt) = runtime() else {
                return ExitCode::FAILURE;
            };
            match rt.block_on(agent_command(cfg, metrics_listen, shutdown_grace.0)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("vigil agent: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Check {
            what: CheckWhat::Rules { files },
        } => {
            let mut ok = true;
            for f in files {
                println!("Checking {}", f.display());
                match vigil_alerting::rules::RuleFile::load(&f) {
                    Ok(rf) => {
                        let n: usize = rf.groups.iter().map(|g| g.rules.len()).sum();
                        println!("  SUCCESS: {n} rules found");
                    }
                    Err(e) => {
                        ok = false;
                        println!("  FAILED: {}: {e}", f.display());
                    }
                }
            }
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Check {
            what: CheckWhat::Config { files },
        } => {
            let mut ok = true;
            for f in files {
                match config::Config::load(&f) {
                    Ok(c) => {
                        match &c.scrape_configs {
                            Some(j) => println!(
                                "  SUCCESS: {} is valid ({} scrape jobs)",
                                f.display(),
                                j.len()
                            ),
                            None => println!(
                                "  SUCCESS: {} is valid (no scrape_configs: the built-in job scrapes Vigil itself)",
                                f.display()
                            ),
                        }
                        for s in &c.ignored_sections {
                            println!(
                                "  NOTE: section {s:?} is accepted but not used by this version"
                            );
                        }
                        let opts = server::ServeOptions {
                            listen: String::new(),
                            data_dir: PathBuf::new(),
                            config_file: Some(f.clone()),
                            web_config_file: None,
                            enable_lifecycle: false,
                            read_timeout: std::time::Duration::ZERO,
                            external_url: None,
                        };
                        let gopts = vigil_alerting::rules::GroupOptions::default();
                        match server::load_rules(&opts, &c, &gopts) {
                            Ok(g) if !c.rule_files.is_empty() => {
                                println!("  SUCCESS: {} rule groups found", g.len());
                            }
                            Ok(_) => {}
                            Err(e) => {
                                ok = false;
                                println!("  FAILED: rule files: {e}");
                            }
                        }
                        if c.blackbox_config.is_some() || !c.probe_configs.is_empty() {
                            match server::load_blackbox(&opts, &c)
                                .and_then(|b| server::check_probe_modules(&c, &b).map(|_| b))
                            {
                                Ok(b) => println!(
                                    "  SUCCESS: blackbox configuration valid ({} modules, {} probe jobs)",
                                    b.modules.len(),
                                    c.probe_configs.len()
                                ),
                                Err(e) => {
                                    ok = false;
                                    println!("  FAILED: blackbox configuration: {e}");
                                }
                            }
                        }
                        // Runbooks are loaded and checked as the server loads them, against an
                        // empty store of their own.
                        let runbooks = match check_runbooks(&opts, &c) {
                            Ok(Some(b)) => {
                                println!(
                                    "  SUCCESS: runbooks valid ({} loaded)",
                                    b.engine.runbooks.len()
                                );
                                Some(b)
                            }
                            Ok(None) => None,
                            Err(e) => {
                                ok = false;
                                println!("  FAILED: runbooks: {e}");
                                None
                            }
                        };
                        if c.alertmanager_config.is_some() {
                            let dir = server::alertmanager_dir(&opts, &c);
                            let checked = server::alertmanager_text(&opts, &c).and_then(|t| {
                                vigil_alerting::router::service::check(
                                    &t,
                                    &dir,
                                    server::runbook_factory(&runbooks),
                                )
                            });
                            match checked {
                                Ok(am) => println!(
                                    "  SUCCESS: alertmanager configuration valid ({} receivers)",
                                    am.receivers.len()
                                ),
                                Err(e) => {
                                    ok = false;
                                    println!("  FAILED: alertmanager configuration: {e}");
                                }
                            }
                        }
                    }
                    Err(e) => {
                        ok = false;
                        println!("  FAILED: {}: {e}", f.display());
                    }
                }
            }
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn runbook_command(what: RunbookWhat) -> ExitCode {
    use vigil_remediation::offline;
    use vigil_remediation::sandbox::{RunStatus, Sandbox, SandboxConfig};
    let sandbox = match Sandbox::new(SandboxConfig::default()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("vigil: cannot start the runbook sandbox: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    match what {
        RunbookWhat::Run {
            name,
            server,
            alert,
            params,
            no_dry_run,
        } => {
            let params: serde_json::Value = match serde_json::from_str(&params) {
                Ok(p @ serde_json::Value::Object(_)) => p,
                _ => {
                    eprintln!("vigil: --params must be a JSON object");
                    return ExitCode::FAILURE;
                }
            };
            let alert = match alert.map(std::fs::read_to_string).transpose() {
                Ok(a) => a.and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok()),
                Err(e) => {
                    eprintln!("vigil: --alert: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let mut body = serde_json::json!({"params": params, "dry_run": !no_dry_run});
            if let Some(a) = alert {
                body["alert"] = a;
            }
            let Some(rt) = runtime() else {
                return ExitCode::FAILURE;
            };
            let url = format!(
                "{}/api/v1/runbooks/{name}/run",
                server.trim_end_matches('/')
            );
            let answer = rt.block_on(async {
                let client = vigil_http::HttpClient::plain(&Default::default())
                    .map_err(|e| e.to_string())?;
                let r = client
                    .post(&url)
                    .map_err(|e| e.to_string())?
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await
                    .map_err(|e| format!("{url}: {e}"))?;
                let status = r.status();
                let text = r.text().await.map_err(|e| e.to_string())?;
                Ok::<_, String>((status, text))
            });
            match answer {
                Ok((status, text)) => {
                    let v: serde_json::Value =
                        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
                    if !status.is_success() {
                        eprintln!(
                            "vigil: {url}: {status}: {}",
                            v["error"].as_str().unwrap_or(&v.to_string())
                        );
                        return ExitCode::FAILURE;
                    }
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&v["data"]).unwrap_or_default()
                    );
                    let outcome = v["data"]["outcome"].as_str().unwrap_or("");
                    if matches!(outcome, "succeeded" | "verified") {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(e) => {
                    eprintln!("vigil: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        RunbookWhat::Validate { files } => {
            let mut ok = true;
            for f in files {
                match offline::validate(&sandbox, &f) {
                    Ok(c) => println!(
                        "  SUCCESS: {} is runbook {} {} (ABI {}; capabilities: {}; parameters: {})",
                        f.display(),
                        c.manifest.name,
                        c.manifest.version,
                        c.manifest.abi,
                        if c.manifest.capabilities.is_empty() {
                            "none".to_string()
                        } else {
                            c.manifest.capabilities.join(", ")
                        },
                        if c.manifest.params.is_empty() {
                            "none".to_string()
                        } else {
                            c.manifest
                                .params
                                .keys()
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(", ")
                        }
                    ),
                    Err(e) => {
                        ok = false;
                        println!("  FAILED: {e}");
                    }
                }
            }
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        RunbookWhat::Test {
            file,
            alert,
            params,
            grants,
            replies,
            json,
        } => {
            let fail = |m: String| {
                eprintln!("vigil: {m}");
                ExitCode::FAILURE
            };
            let checked = match offline::validate(&sandbox, &file) {
                Ok(c) => c,
                Err(e) => return fail(e),
            };
            let read_json = |p: &std::path::Path| -> Result<serde_json::Value, String> {
                let t = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
                serde_json::from_str(&t).map_err(|e| format!("{}: {e}", p.display()))
            };
            let alert = match read_json(&alert) {
                Ok(a) => a,
                Err(e) => return fail(e),
            };
            let params: serde_json::Map<String, serde_json::Value> =
                match serde_json::from_str(&params) {
                    Ok(p) => p,
                    Err(e) => return fail(format!("--params must be a JSON object: {e}")),
                };
            let replies = match replies.as_deref().map(read_json).transpose() {
                Ok(Some(serde_json::Value::Object(m))) => m.into_iter().collect(),
                Ok(None) => Default::default(),
                Ok(Some(_)) => return fail("--replies must hold a JSON object".into()),
                Err(e) => return fail(e),
            };
            let input = match offline::input(&checked.manifest, &alert, &params) {
                Ok(i) => i,
                Err(e) => return fail(e),
            };
            let d =
                std::sync::Arc::new(offline::Recorded::new(&checked.manifest, &grants, replies));
            let Some(rt) = runtime() else {
                return ExitCode::FAILURE;
            };
            let report = rt.block_on(sandbox.run(&checked.runbook, &input, d));
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).unwrap_or_default()
                );
            } else {
                print!("{}", offline::render(&checked.manifest, &report));
            }
            // The sandbox's runtime must not be dropped inside the caller's.
            drop(rt);
            if report.status == RunStatus::Succeeded {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// The `runbooks:` section loaded for `vigil check config`, over an empty store in a temporary
/// directory (removed afterwards).
fn check_runbooks(
    opts: &server::ServeOptions,
    c: &config::Config,
) -> Result<Option<vigil_remediation::config::Built>, String> {
    if c.runbooks.is_none() {
        return Ok(None);
    }
    let rt = runtime().ok_or("cannot start the async runtime")?;
    let dir = std::env::temp_dir().join(format!("vigil-check-{}", std::process::id()));
    let r = rt.block_on(async {
        let db = vigil_storage::Tsdb::open(
            vigil_storage::StorageConfig {
                data_dir: dir.clone(),
                section: Default::default(),
            },
            std::sync::Arc::new(vigil_storage::StorageMetrics::default()),
        )
        .await
        .map_err(|e| e.to_string())?;
        let logs = vigil_storage::logs::LogStore::open(
            &dir.join("logs"),
            Default::default(),
            Default::default(),
        )
        .map_err(|e| e.to_string())?;
        server::build_runbooks(opts, c, None, db, Some(logs))
    });
    // The sandbox's own runtime must not be dropped inside this one.
    drop(rt);
    let _ = std::fs::remove_dir_all(&dir);
    r
}

/// `vigil loadtest`: runs the scenario, prints the report (and writes it as JSON when asked).
fn loadtest_command(
    scenario: &std::path::Path,
    vigil: Option<String>,
    json: Option<PathBuf>,
    quiet: bool,
) -> ExitCode {
    let s = match vigil_loadtest::scenario::Scenario::load(scenario) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("vigil loadtest: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Some(rt) = runtime() else {
        return ExitCode::FAILURE;
    };
    let opts = vigil_loadtest::RunOptions {
        vigil,
        progress: !quiet,
    };
    let report = match rt.block_on(vigil_loadtest::run(s, opts)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("vigil loadtest: {e}");
            return ExitCode::FAILURE;
        }
    };
    print!("{}", report.text());
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&report).unwrap_or_default();
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!("vigil loadtest: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
