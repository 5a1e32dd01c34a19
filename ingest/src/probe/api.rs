//! `GET /probe?module=M&target=T[&debug=true][&hostname=H]`, answered as blackbox_exporter 0.23
//! answers it: the probe's series as text (HTTP 200 even when the probe fails), or with
//! `debug=true` the probe's log, the series and the module's configuration.

use std::sync::Arc;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use parking_lot::RwLock;

use super::{Prober, effective_timeout};

/// The last result of one target of a probe job, for `/api/v1/probes`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LastProbe {
    pub job: String,
    pub target: String,
    pub module: String,
    pub success: bool,
    #[serde(rename = "durationSeconds")]
    pub duration_seconds: f64,
    /// The last error the probe logged (empty on success).
    #[serde(rename = "lastError")]
    pub last_error: String,
    /// RFC 3339 time the probe finished.
    #[serde(rename = "lastProbe")]
    pub last_probe: String,
}

/// The probes' shared state: the loaded `blackbox.yml` (replaced on reload) and the timeout offset.
pub struct ProbeService {
    prober: RwLock<Arc<Prober>>,
    last: parking_lot::Mutex<std::collections::BTreeMap<(String, String), LastProbe>>,
    /// blackbox_exporter's `--timeout-offset`: taken off the scrape's timeout.
    pub timeout_offset: f64,
    pub metrics: crate::IngestMetrics,
}

impl ProbeService {
    pub fn new(prober: Prober, metrics: crate::IngestMetrics) -> Arc<ProbeService> {
        Arc::new(ProbeService {
            prober: RwLock::new(Arc::new(prober)),
            last: Default::default(),
            timeout_offset: 0.5,
            metrics,
        })
    }

    pub fn prober(&self) -> Arc<Prober> {
        self.prober.read().clone()
    }

    pub fn replace(&self, p: Prober) {
        *self.prober.write() = Arc::new(p);
    }

    /// Keeps the result of a probe job's probe for `/api/v1/probes`.
    pub fn record(&self, job: &str, target: &str, module: &str, r: &super::ProbeResult) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        self.last.lock().insert(
            (job.to_string(), target.to_string()),
            LastProbe {
                job: job.to_string(),
                target: target.to_string(),
                module: module.to_string(),
                success: r.success,
                duration_seconds: r.duration.as_secs_f64(),
                last_error: if r.success {
                    String::new()
                } else {
                    r.log.last_error().unwrap_or_default().to_string()
                },
                last_probe: vigil_model::rfc3339(now),
            },
        );
    }

    /// Forgets a target that is no longer probed (its job or its discovery dropped it).
    pub fn forget(&self, job: &str, target: &str) {
        self.last
            .lock()
            .remove(&(job.to_string(), target.to_string()));
    }

    /// The last result of every probe job target.
    pub fn last_results(&self) -> Vec<LastProbe> {
        self.last.lock().values().cloned().collect()
    }
}

/// The routes: `/probe` and `/api/v1/probes`.
pub fn router(svc: Arc<ProbeService>) -> Router {
    Router::new()
        .route("/probe", get(probe).post(probe))
        .route("/api/v1/probes", get(probes_api))
        .with_state(svc)
}

/// `GET /api/v1/probes`: the last result of each target of the `probe_configs` jobs.
async fn probes_api(State(svc): State<Arc<ProbeService>>) -> Response {
    axum::Json(serde_json::json!({
        "status": "success",
        "data": {"probes": svc.last_results()},
    }))
    .into_response()
}

fn text_error(code: StatusCode, msg: String) -> Response {
    (
        code,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        format!("{msg}\n"),
    )
        .into_response()
}

async fn probe(
    State(svc): State<Arc<ProbeService>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let params: Vec<(String, String)> = q
        .as_deref()
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    let get = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let prober = svc.prober();
    let mut module_name = get("module");
    if module_name.is_empty() {
        module_name = "http_2xx".into();
    }
    let Some(module) = prober.module(&module_name) else {
        svc.metrics.probe_module_unknown.inc();
        return text_error(
            StatusCode::BAD_REQUEST,
            format!("Unknown module {module_name:?}"),
        );
    };
    let scrape_timeout = match headers
        .get("X-Prometheus-Scrape-Timeout-Seconds")
        .and_then(|v| v.to_str().ok())
    {
        Some(v) => match v.trim().parse::<f64>() {
            Ok(t) => Some(t),
            Err(_) => {
                return text_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!(
                        "Failed to parse timeout from Prometheus header: strconv.ParseFloat: parsing {v:?}: invalid syntax"
                    ),
                );
            }
        },
        None => None,
    };
    let timeout = effective_timeout(module, scrape_timeout, svc.timeout_offset);
    let target = get("target");
    if target.is_empty() {
        return text_error(
            StatusCode::BAD_REQUEST,
            "Target parameter is missing".into(),
        );
    }
    let hostname = get("hostname");
    let mut one_off: Option<Prober> = None;
    if module.prober == "http" && !hostname.is_empty() {
        if let Some((_, h)) = module
            .http
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("host"))
            && *h != hostname
        {
            return text_error(
                StatusCode::BAD_REQUEST,
                format!(
                    "host header defined both in module configuration ({h}) and with URL-parameter 'hostname' ({hostname})"
                ),
            );
        }
        let mut m = module.clone();
        m.http
            .headers
            .retain(|k, _| !k.eq_ignore_ascii_case("host"));
        m.http.headers.insert("Host".into(), hostname.clone());
        let mut cfg = super::BlackboxConfig::default();
        cfg.modules.insert(module_name.clone(), m);
        one_off = Some(Prober::new(cfg));
    }
    let runner = one_off.as_ref().unwrap_or(&prober);
    let Some(result) = runner.run(&module_name, &target, timeout).await else {
        return text_error(
            StatusCode::BAD_REQUEST,
            format!("Unknown module {module_name:?}"),
        );
    };
    svc.metrics.probes_served.inc();
    if get("debug") == "true" {
        let module_yaml = runner
            .module(&module_name)
            .and_then(|m| serde_yaml_ng::to_string(m).ok())
            .unwrap_or_default();
        let body = format!(
            "Logs for the probe:\n{}\n\n\nMetrics that would have been returned:\n{}\n\n\nModule configuration:\n{}",
            result.log.text(),
            result.metrics.to_text(),
            module_yaml
        );
        return ([(header::CONTENT_TYPE, "text/plain")], body).into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        result.metrics.to_text(),
    )
        .into_response()
}
