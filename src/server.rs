//! `vigil serve`: opens storage, starts scraping and maintenance, serves HTTP, shuts down cleanly.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use axum::Router;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use parking_lot::Mutex;
use prometheus_client::registry::Registry;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};
use vigil_ingest::scrape::{ScrapeContext, ScrapeManager};
use vigil_ingest::{IngestMetrics, PushState};
use vigil_query::{ApiOptions, BuildInfo};
use vigil_storage::{StorageConfig, StorageMetrics, Tsdb};

use crate::config::Config;

/// Options of `vigil serve`.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub listen: String,
    pub data_dir: PathBuf,
    pub config_file: Option<PathBuf>,
    /// Prometheus's web configuration file: TLS, basic auth, response headers.
    pub web_config_file: Option<PathBuf>,
    /// Allow `POST /-/reload` and `/-/quit` over HTTP (Prometheus's `--web.enable-lifecycle`).
    pub enable_lifecycle: bool,
    /// Longest time to read and answer one request (Prometheus's `--web.read-timeout`).
    pub read_timeout: std::time::Duration,
    /// Prometheus's `--web.external-url`: where links in notifications and alerts point.
    pub external_url: Option<String>,
}

impl ServeOptions {
    /// The directory relative paths of the configuration are resolved against.
    pub fn config_dir(&self) -> PathBuf {
        self.config_file
            .as_ref()
            .and_then(|p| p.parent().map(|d| d.to_path_buf()))
            .unwrap_or_else(|| PathBuf::from("."))
    }
}

type Rules = Arc<vigil_alerting::rules::RuleManager<Tsdb>>;

struct AppState {
    registry: Registry,
    rules: Rules,
    router: Arc<vigil_alerting::router::AlertRouter>,
    ready: AtomicBool,
    scrape: Arc<ScrapeManager>,
    config: Mutex<Config>,
    opts: ServeOptions,
    reload_lock: tokio::sync::Mutex<()>,
    self_scrape: SelfScrape,
    stop: CancellationToken,
    external_url: String,
    /// What `/api/v1/status/config` shows.
    config_yaml: Arc<std::sync::RwLock<String>>,
    probes: Arc<vigil_ingest::probe::api::ProbeService>,
    /// The runbook engine (the `runbooks:` section), if there is one.
    runbooks: Option<Arc<vigil_remediation::engine::Engine>>,
    /// The log store, for LogQL rules.
    logs: Arc<vigil_storage::logs::LogStore>,
}

/// Runs the server until SIGTERM or SIGINT.
pub async fn serve(opts: ServeOptions) -> anyhow::Result<()> {
    let config = match &opts.config_file {
        Some(p) => Config::load(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?,
        None => Config::default(),
    };
    for s in &config.ignored_sections {
        warn!(
            section = s,
            "configuration section accepted but not used by this version of Vigil"
        );
    }

    let web = match &opts.web_config_file {
        Some(p) => Some(
            vigil_http::WebGuard::load(p)
                .map_err(|e| anyhow::anyhow!("web configuration {}: {e}", p.display()))?,
        ),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(&opts.listen)
        .await
        .with_context(|| format!("cannot listen on {}", opts.listen))?;
    let local: SocketAddr = listener.local_addr()?;
    // With port 0 the self-scrape job must name the port actually bound.
    let self_addr = local.to_string();

    let mut registry = Registry::default();
    registry.register_collector(Box::new(crate::process_metrics::ProcessCollector));
    let storage_metrics = Arc::new(StorageMetrics::default());
    storage_metrics.register(&mut registry);
    let ingest_metrics = IngestMetrics::default();
    ingest_metrics.register(&mut registry);

    let tsdb = Tsdb::open(
        StorageConfig {
            data_dir: opts.data_dir.clone(),
            section: config.storage.clone(),
        },
        storage_metrics,
    )
    .await
    .with_context(|| format!("cannot open metrics storage in {}", opts.data_dir.display()))?;

    let logs_metrics = vigil_storage::logs::LogsMetrics::default();
    logs_metrics.register(&mut registry);
    let logs = {
        let dir = opts.data_dir.join("logs");
        let cfg = config.storage.logs.clone();
        let m = logs_metrics.clone();
        tokio::task::spawn_blocking(move || vigil_storage::logs::LogStore::open(&dir, cfg, m))
            .await
            .context("opening the log store")?
            .with_context(|| {
                format!(
                    "cannot open the log store in {}",
                    opts.data_dir.join("logs").display()
                )
            })?
    };

    let blackbox = load_blackbox(&opts, &config).map_err(|e| anyhow::anyhow!("{e}"))?;
    check_probe_modules(&config, &blackbox).map_err(|e| anyhow::anyhow!("{e}"))?;
    let probes = vigil_ingest::probe::api::ProbeService::new(
        vigil_ingest::probe::Prober::new(blackbox),
        ingest_metrics.clone(),
    );
    let scrape = Arc::new(ScrapeManager::new(
        ScrapeContext {
            appender: tsdb.clone(),
            exemplars: Some(tsdb.exemplars()),
            metadata: Some(tsdb.metadata()),
            metrics: ingest_metrics.clone(),
            user_agent: format!("Vigil/{}", env!("CARGO_PKG_VERSION")),
            probes: Some(probes.clone()),
        },
        rand::random(),
    ));
    let self_scrape = SelfScrape::new(web.as_deref());
    scrape
        .apply(&config.global, &self_scrape.jobs(&config, &self_addr))
        .await;

    let ext_url = external_url(&opts, &web, &self_addr);
    let group_opts = group_options(&config, &ext_url, &logs);
    let rules: Rules =
        vigil_alerting::rules::RuleManager::new(tsdb.clone(), tsdb.clone(), group_opts.clone());
    rules.metrics().register(&mut registry);
    let am_text = alertmanager_text(&opts, &config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let runbooks = build_runbooks(
        &opts,
        &config,
        Some(&opts.data_dir),
        tsdb.clone(),
        Some(logs.clone()),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let router = vigil_alerting::router::AlertRouter::new(
        &am_text,
        vigil_alerting::router::RouterOptions {
            data_dir: Some(opts.data_dir.join("alerting")),
            external_url: ext_url.clone(),
            base_dir: alertmanager_dir(&opts, &config),
            runbooks: runbook_factory(&runbooks),
        },
    )
    .map_err(|e| anyhow::anyhow!("alertmanager configuration: {e}"))?;
    if let Some(b) = &runbooks {
        b.escalator.set_router(&router);
        b.engine.metrics.register(&mut registry);
        info!(runbooks = b.engine.runbooks.len(), "runbooks loaded");
        warn_unknown_admins(&b.engine, web.as_deref());
        // Approvals still waiting wait again; runs a stop interrupted are failed and escalated.
        b.engine.recover().await;
    }
    std::fs::create_dir_all(opts.data_dir.join("alerting")).ok();
    rules.set_router(router.clone());
    router.metrics.register(&mut registry);
    let groups = load_rules(&opts, &config, &group_opts).map_err(|e| anyhow::anyhow!("{e}"))?;
    rules.apply(groups, group_opts).await;

    let push = PushState::new(
        tsdb.clone(),
        tsdb.exemplars(),
        ingest_metrics,
        config.push_limits(),
    );
    let mut push = push;
    push.metadata = Some(tsdb.metadata());
    let body_limit = push.limits.max_body_bytes;

    let stop = CancellationToken::new();
    let every = config.storage.tsdb.maintenance_interval.0;
    let maintenance = tokio::spawn(tsdb.clone().run_maintenance(every, stop.clone()));

    let status_yaml = config_yaml(&config, &self_scrape.jobs(&config, &self_addr));
    let opts_for_state = ServeOptions {
        listen: self_addr.clone(),
        ..opts.clone()
    };
    let app_state = Arc::new(AppState {
        registry,
        rules: rules.clone(),
        router: router.clone(),
        ready: AtomicBool::new(true),
        scrape: scrape.clone(),
        config: Mutex::new(config),
        opts: opts_for_state,
        reload_lock: tokio::sync::Mutex::new(()),
        config_yaml: Arc::new(std::sync::RwLock::new(status_yaml)),
        self_scrape,
        stop: stop.clone(),
        external_url: ext_url.clone(),
        probes: probes.clone(),
        runbooks: runbooks.as_ref().map(|b| b.engine.clone()),
        logs: logs.clone(),
    });

    let loki_push = vigil_ingest::loki::LokiPush::new(
        logs.clone(),
        app_state.config.lock().ingest.logs.clone(),
        push.metrics.clone(),
        push.limits.max_decoded_bytes,
        push.limits.max_inflight,
    );
    let push_routes = Router::new()
        .route("/api/v1/write", post(vigil_ingest::remote_write::handle))
        .route("/v1/metrics", post(vigil_ingest::otlp::handle))
        .route("/api/v1/otlp/v1/metrics", post(vigil_ingest::otlp::handle))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(push);
    use vigil_ingest::loki::elastic as es;
    let log_push_routes = Router::new()
        .route("/loki/api/v1/push", post(vigil_ingest::loki::handle))
        .route("/api/prom/push", post(vigil_ingest::loki::handle))
        .route("/v1/logs", post(vigil_ingest::loki::handle_otlp))
        .route("/otlp/v1/logs", post(vigil_ingest::loki::handle_otlp))
        // Elasticsearch shippers (Filebeat, Fluent Bit, Vector) point at http://vigil:9201/elastic.
        .route("/elastic/", get(es::info).head(es::info))
        .nest(
            "/elastic",
            Router::new()
                .route("/", get(es::info).head(es::info))
                .route("/_cluster/health", get(es::health))
                .route("/_license", get(es::license))
                .route("/_bulk", post(es::bulk).put(es::bulk))
                .route("/{index}/_bulk", post(es::bulk_index).put(es::bulk_index))
                .fallback(es::unsupported),
        )
        .route("/_bulk", post(es::bulk).put(es::bulk))
        .route("/{index}/_bulk", post(es::bulk_index).put(es::bulk_index))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(loki_push);
    let logs_maintenance = tokio::spawn(logs.clone().run_maintenance(stop.clone()));
    let cfg_now = app_state.config.lock().clone();
    let api_opts = ApiOptions {
        build: BuildInfo {
            version: env!("CARGO_PKG_VERSION").into(),
            revision: option_env!("VIGIL_REVISION").unwrap_or("unknown").into(),
        },
        config_yaml: app_state.config_yaml.clone(),
        flags: vec![
            ("listen".into(), opts.listen.clone()),
            ("data-dir".into(), opts.data_dir.display().to_string()),
            (
                "config".into(),
                opts.config_file
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            ),
        ],
        retention: app_state
            .config
            .lock()
            .storage
            .tsdb
            .retention_time
            .to_string(),
        eval: cfg_now.eval_options(),
        slow_query_threshold: cfg_now.query.slow_query_threshold.0,
        ..ApiOptions::default()
    };
    let own_routes = Router::new()
        .route("/metrics", get(metrics))
        .route(
            "/debug/allocator",
            get(|| async { crate::process_metrics::stats_text() }),
        )
        .route("/-/healthy", get(healthy).head(healthy))
        .route("/-/ready", get(ready).head(ready))
        .route(
            "/-/reload",
            post(reload_handler).put(reload_handler).get(lifecycle_get),
        )
        .route(
            "/-/quit",
            post(quit_handler).put(quit_handler).get(lifecycle_get),
        )
        .route("/api/v1/targets", get(targets))
        .route("/api/v1/rules", get(rules_api))
        .route("/api/v1/alerts", get(alerts_api))
        .with_state(app_state.clone());
    let router_task = tokio::spawn(router.clone().run(stop.clone()));
    let loki_api = vigil_query::logql::api::router(vigil_query::logql::api::LokiApi {
        reader: logs.clone(),
        limits: logql_limits(&cfg_now),
        version: option_env!("VIGIL_REVISION").unwrap_or("unknown").into(),
    });
    let app = Router::new()
        .merge(push_routes)
        .merge(log_push_routes)
        .merge(loki_api)
        .merge(vigil_alerting::router::api::router(router.clone()))
        .merge(vigil_query::router(tsdb.clone(), api_opts))
        .merge(vigil_ingest::probe::api::router(probes))
        .merge(match &runbooks {
            Some(b) => vigil_remediation::api::router(b.engine.clone()),
            None => Router::new(),
        })
        .merge(own_routes)
        .merge(vigil_ui::router(Arc::new(UiLive(app_state.clone()))));

    info!(listen = %local, data_dir = %opts.data_dir.display(), "Vigil is serving");

    let shutdown = stop.clone();
    let signals = tokio::spawn(watch_signals(app_state.clone(), shutdown));
    let serve_opts = vigil_http::ServeOptions {
        request_timeout: opts.read_timeout,
        ..Default::default()
    };
    let app = vigil_http::guarded(app, web.clone(), &serve_opts);
    vigil_http::serve(listener, app, web, serve_opts, stop.clone())
        .await
        .context("HTTP server failed")?;
    signals.abort();

    info!("shutting down: stopping scrapes, flushing storage");
    app_state.ready.store(false, Ordering::SeqCst);
    scrape.stop().await;
    rules.stop().await;
    stop.cancel();
    let _ = router_task.await;
    let _ = maintenance.await;
    let _ = logs_maintenance.await;
    tsdb.close().await.context("closing metrics storage")?;
    logs.close().context("closing the log store")?;
    info!("shutdown complete");
    Ok(())
}

/// The configuration as `/api/v1/status/config` shows it: the loaded configuration written back
/// as YAML, defaults filled in and every secret shown as `<secret>` (as Prometheus does), never
/// the file's text.
fn config_yaml(c: &Config, jobs: &[vigil_ingest::scrape::ScrapeConfig]) -> String {
    #[derive(serde::Serialize)]
    struct View<'a> {
        global: &'a vigil_ingest::scrape::GlobalConfig,
        scrape_configs: &'a [vigil_ingest::scrape::ScrapeConfig],
        rule_files: &'a [String],
        #[serde(skip_serializing_if = "Option::is_none")]
        alertmanager_config: &'a Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        blackbox_config: &'a Option<String>,
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        probe_configs: &'a [vigil_ingest::probe::ProbeConfig],
        builtin_rules: bool,
        storage: &'a vigil_storage::StorageSection,
        ingest: &'a vigil_ingest::IngestSection,
        query: &'a vigil_query::QuerySection,
    }
    serde_yaml_ng::to_string(&View {
        global: &c.global,
        scrape_configs: jobs,
        rule_files: &c.rule_files,
        alertmanager_config: &c.alertmanager_config,
        blackbox_config: &c.blackbox_config,
        probe_configs: &c.probe_configs,
        builtin_rules: c.builtin_rules,
        storage: &c.storage,
        ingest: &c.ingest,
        query: &c.query,
    })
    .unwrap_or_default()
}

/// The router's alertmanager.yml text: the file `alertmanager_config` names, or the built-in default.
pub fn alertmanager_text(opts: &ServeOptions, c: &Config) -> Result<String, String> {
    let Some(f) = &c.alertmanager_config else {
        return Ok(vigil_alerting::router::service::DEFAULT_CONFIG.to_string());
    };
    let p = opts.config_dir().join(f);
    std::fs::read_to_string(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))
}

/// The probe modules: the `blackbox_config` file (relative to the configuration file's directory),
/// or the built-in ones.
pub fn load_blackbox(
    opts: &ServeOptions,
    c: &Config,
) -> Result<vigil_ingest::probe::BlackboxConfig, String> {
    match &c.blackbox_config {
        None => Ok(vigil_ingest::probe::BlackboxConfig::builtin()),
        Some(f) => {
            let p = opts.config_dir().join(f);
            vigil_ingest::probe::BlackboxConfig::load(&p)
                .map_err(|e| format!("{}: {e}", p.display()))
        }
    }
}

/// Every probe job names a module the blackbox configuration has.
pub fn check_probe_modules(
    c: &Config,
    b: &vigil_ingest::probe::BlackboxConfig,
) -> Result<(), String> {
    for p in &c.probe_configs {
        if !b.modules.contains_key(&p.module) {
            return Err(format!(
                "probe job {:?}: unknown module {:?} (modules: {})",
                p.job_name,
                p.module,
                b.modules.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    Ok(())
}

/// The directory of the alertmanager.yml (where its relative `templates:` start).
pub fn alertmanager_dir(opts: &ServeOptions, c: &Config) -> PathBuf {
    let dir = opts.config_dir();
    match &c.alertmanager_config {
        Some(f) => dir.join(f).parent().map(|p| p.to_path_buf()).unwrap_or(dir),
        None => dir,
    }
}

/// The URL notifications link to: `--web.external-url` (trailing `/` trimmed, as Alertmanager
/// does), or this server's own address.
fn external_url(
    opts: &ServeOptions,
    web: &Option<Arc<vigil_http::WebGuard>>,
    addr: &str,
) -> String {
    if let Some(u) = &opts.external_url {
        return u.trim_end_matches('/').to_string();
    }
    let scheme = if web.as_ref().is_some_and(|w| w.tls_enabled()) {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{addr}")
}

/// The built-in job that scrapes Vigil's own `/metrics`. Behind a web configuration it speaks TLS
/// (the certificate is Vigil's own, so it is not verified) and, with basic auth on, presents a
/// random bearer token that exists only in this process and that the guard accepts in place of a
/// password (bcrypt hashes cannot be reversed into a password to send).
pub struct SelfScrape {
    tls: bool,
    token: Option<vigil_model::Secret>,
}

impl SelfScrape {
    fn new(web: Option<&vigil_http::WebGuard>) -> SelfScrape {
        SelfScrape {
            tls: web.is_some_and(|w| w.tls_enabled()),
            token: web.map(|w| w.internal_token()),
        }
    }

    /// The scrape jobs to run: the file's, or the built-in one.
    fn jobs(&self, c: &Config, listen: &str) -> Vec<vigil_ingest::scrape::ScrapeConfig> {
        let mut jobs = c.scrape_jobs(listen);
        if c.scrape_configs.is_none()
            && let Some(j) = jobs.first_mut()
        {
            if self.tls {
                j.scheme = "https".into();
                j.http_config.tls_config.insecure_skip_verify = true;
            }
            if let Some(t) = &self.token {
                j.http_config.authorization = Some(vigil_http::client::Authorization {
                    kind: "Bearer".into(),
                    credentials: t.clone(),
                    credentials_file: String::new(),
                });
            }
        }
        jobs
    }
}

/// Settings of rule evaluation from the configuration.
/// LogQL's limits: the query section's evaluation options, Loki's defaults for the rest (the Loki
/// API and LogQL rules use the same).
fn logql_limits(c: &Config) -> vigil_query::logql::eval::LogqlLimits {
    vigil_query::logql::eval::LogqlLimits {
        eval: c.eval_options(),
        ..Default::default()
    }
}

fn group_options(
    c: &Config,
    external_url: &str,
    logs: &Arc<vigil_storage::logs::LogStore>,
) -> vigil_alerting::rules::GroupOptions {
    vigil_alerting::rules::GroupOptions {
        default_interval: c.global.evaluation_interval.0,
        external_labels: c.global.external_labels.clone(),
        external_url: external_url.to_string(),
        eval: c.eval_options(),
        logs: Some(vigil_alerting::rules::group::LogQuerier {
            reader: logs.clone(),
            limits: logql_limits(c),
        }),
    }
}

/// Loads the rule groups of `rule_files` (patterns relative to the configuration file's directory).
pub fn load_rules(
    opts: &ServeOptions,
    c: &Config,
    group_opts: &vigil_alerting::rules::GroupOptions,
) -> Result<Vec<vigil_alerting::rules::Group>, String> {
    let base = opts
        .config_file
        .as_ref()
        .and_then(|p| p.parent().map(|d| d.to_path_buf()))
        .unwrap_or_else(|| std::path::PathBuf::from("."));
    let files = vigil_alerting::rules::expand_globs(&c.rule_files, &base)?;
    let mut groups =
        vigil_alerting::rules::load_groups(&files, group_opts).map_err(|e| e.to_string())?;
    if c.builtin_rules {
        groups.extend(vigil_alerting::rules::builtin_groups(group_opts));
    }
    Ok(groups)
}

/// `GET /api/v1/rules` (`type=alert|record` filters).
async fn rules_api(State(st): State<Arc<AppState>>, RawQuery(q): RawQuery) -> Response {
    let kind = q.as_deref().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "type")
            .map(|(_, v)| v.into_owned())
    });
    let data = vigil_alerting::rules::api::rules_json(&st.rules.groups(), kind.as_deref());
    axum::Json(json!({"status": "success", "data": data})).into_response()
}

/// `GET /api/v1/alerts`.
/// What the UI's event stream sends each second: the rules' alerts and the latest runbook
/// executions.
struct UiLive(Arc<AppState>);

impl vigil_ui::Live for UiLive {
    fn snapshot(&self) -> serde_json::Value {
        let alerts = vigil_alerting::rules::api::alerts_json(&self.0.rules.groups());
        let executions: Vec<serde_json::Value> = self
            .0
            .runbooks
            .as_ref()
            .map(|e| {
                e.store
                    .list()
                    .into_iter()
                    .take(20)
                    .map(|x| {
                        json!({"id": x.id, "runbook": x.runbook, "outcome": x.outcome,
                               "times": x.times, "steps": x.steps.len()})
                    })
                    .collect()
            })
            .unwrap_or_default();
        json!({"now": vigil_model::now_ms(), "alerts": alerts["alerts"], "executions": executions})
    }
}

async fn alerts_api(State(st): State<Arc<AppState>>) -> Response {
    let data = vigil_alerting::rules::api::alerts_json(&st.rules.groups());
    axum::Json(json!({"status": "success", "data": data})).into_response()
}

async fn watch_signals(st: Arc<AppState>, stop: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        error!("cannot install signal handlers");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => { info!("SIGTERM received"); break; }
            _ = int.recv() => { info!("SIGINT received"); break; }
            _ = hup.recv() => {
                info!("SIGHUP received: reloading configuration");
                if let Err(e) = reload(&st).await {
                    error!(error = %e, "configuration reload failed; keeping the running configuration");
                }
            }
        }
    }
    st.ready.store(false, Ordering::SeqCst);
    stop.cancel();
}

/// Re-reads the configuration file and applies what can change without a restart (scrape jobs).
async fn reload(st: &AppState) -> Result<(), String> {
    let _g = st.reload_lock.lock().await;
    let Some(path) = &st.opts.config_file else {
        info!("no configuration file: running on the embedded defaults, nothing to reload");
        return Ok(());
    };
    let new = Config::load(path).map_err(|e| format!("{}: {e}", path.display()))?;
    {
        let old = st.config.lock();
        if old.storage != new.storage || old.ingest != new.ingest {
            warn!(
                "storage and ingest settings change only on restart; scrape settings were reloaded"
            );
        }
        let without_admins = |c: &Config| {
            c.runbooks.clone().map(|mut r| {
                r.admins.clear();
                r
            })
        };
        if without_admins(&old) != without_admins(&new) {
            warn!(
                "the runbooks section (directory, policy, sandbox, capabilities) changes only on restart; its admins and the runbook_configs of alertmanager.yml were reloaded"
            );
        }
    }
    let group_opts = group_options(&new, &st.external_url, &st.logs);
    let groups = load_rules(&st.opts, &new, &group_opts)?;
    let am_text = alertmanager_text(&st.opts, &new)?;
    let blackbox = load_blackbox(&st.opts, &new)?;
    check_probe_modules(&new, &blackbox)?;
    st.router
        .reload(&am_text)
        .map_err(|e| format!("alertmanager configuration: {e}"))?;
    st.scrape
        .apply(&new.global, &st.self_scrape.jobs(&new, &st.opts.listen))
        .await;
    st.rules.apply(groups, group_opts).await;
    st.probes
        .replace(vigil_ingest::probe::Prober::new(blackbox));
    if let (Some(engine), Some(r)) = (&st.runbooks, &new.runbooks) {
        *engine.admins.write() = r.admins.clone();
    }
    if let Ok(mut y) = st.config_yaml.write() {
        *y = config_yaml(&new, &st.self_scrape.jobs(&new, &st.opts.listen));
    }
    *st.config.lock() = new;
    info!("configuration reloaded");
    Ok(())
}

/// `GET /-/reload` and `GET /-/quit`, as Prometheus answers them.
async fn lifecycle_get() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        "Only POST or PUT requests allowed",
    )
        .into_response()
}

fn lifecycle_disabled() -> Response {
    (StatusCode::FORBIDDEN, "Lifecycle API is not enabled.").into_response()
}

async fn quit_handler(State(st): State<Arc<AppState>>) -> Response {
    if !st.opts.enable_lifecycle {
        return lifecycle_disabled();
    }
    info!("termination requested over HTTP (/-/quit)");
    st.ready.store(false, Ordering::SeqCst);
    st.stop.cancel();
    (StatusCode::OK, "Requesting termination... Goodbye!").into_response()
}

async fn reload_handler(State(st): State<Arc<AppState>>) -> Response {
    if !st.opts.enable_lifecycle {
        return lifecycle_disabled();
    }
    match reload(&st).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {e}\n"),
        )
            .into_response(),
    }
}

async fn metrics(State(st): State<Arc<AppState>>) -> Response {
    let mut body = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut body, &st.registry) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding metrics: {e}"),
        )
            .into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

async fn healthy() -> &'static str {
    "Vigil is Healthy.\n"
}

async fn ready(State(st): State<Arc<AppState>>) -> Response {
    if st.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "Vigil is Ready.\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Vigil is shutting down.\n").into_response()
    }
}

/// `GET /api/v1/targets` in Prometheus's shape.
async fn targets(State(st): State<Arc<AppState>>) -> Response {
    let fmt_time = |t: Option<SystemTime>| -> String {
        match t.and_then(|t| t.duration_since(UNIX_EPOCH).ok()) {
            Some(d) => vigil_model::rfc3339(d),
            None => "0001-01-01T00:00:00Z".into(),
        }
    };
    let active: Vec<_> = st
        .scrape
        .targets()
        .into_iter()
        .map(|t| {
            json!({
                "discoveredLabels": t.target.discovered,
                "labels": t.target.labels,
                "scrapePool": t.job,
                "scrapeUrl": t.target.url,
                "globalUrl": t.target.url,
                "lastError": t.status.last_error,
                "lastScrape": fmt_time(t.status.last_scrape),
                "lastScrapeDuration": t.status.last_duration.as_secs_f64(),
                "health": t.status.health,
                "scrapeInterval": vigil_model::format_duration(t.target.interval),
                "scrapeTimeout": vigil_model::format_duration(t.target.timeout),
            })
        })
        .collect();
    let dropped: Vec<_> = st
        .scrape
        .dropped_targets()
        .into_iter()
        .map(|(_, l)| json!({ "discoveredLabels": l }))
        .collect();
    axum::Json(json!({
        "status": "success",
        "data": { "activeTargets": active, "droppedTargets": dropped }
    }))
    .into_response()
}

/// The runbook engine of the `runbooks:` section, if there is one. `data_dir`: where executions
/// are recorded (None for `vigil check config`).
pub fn build_runbooks<R: vigil_storage::MetricsReader>(
    opts: &ServeOptions,
    c: &Config,
    data_dir: Option<&std::path::Path>,
    reader: Arc<R>,
    logs: Option<Arc<dyn vigil_storage::logs::LogsReader>>,
) -> Result<Option<vigil_remediation::config::Built>, String> {
    let Some(section) = &c.runbooks else {
        return Ok(None);
    };
    section
        .build(
            &opts.config_dir(),
            data_dir.map(|d| d.join("runbooks")).as_deref(),
            reader,
            c.eval_options(),
            logs,
        )
        .map(Some)
}

/// Runbook admins that the web configuration does not know (a typo locks everyone out).
fn warn_unknown_admins(e: &vigil_remediation::engine::Engine, web: Option<&vigil_http::WebGuard>) {
    let users = web.map(|w| w.users()).unwrap_or_default();
    if users.is_empty() {
        if !e.admins.read().is_empty() {
            info!(
                "runbooks.admins is set but the web configuration defines no users: the runbook API is open to anyone who can reach it"
            );
        }
        return;
    }
    for a in e.admins.read().iter().filter(|a| !users.contains(a)) {
        warn!(admin = %a, "runbooks.admins names a user the web configuration does not define");
    }
}

/// What the router builds `runbook_configs` entries with.
pub fn runbook_factory(
    b: &Option<vigil_remediation::config::Built>,
) -> Option<Arc<dyn vigil_alerting::notify::runbook::RunbookFactory>> {
    b.as_ref().map(|b| {
        Arc::new(vigil_remediation::receiver::RunbookReceivers::new(
            b.engine.clone(),
        )) as Arc<dyn vigil_alerting::notify::runbook::RunbookFactory>
    })
}
