//! `vigil loadtest SCENARIO.yaml`: an open-model HTTP load at one or more targets, faults injected
//! on a schedule, the load test's own metrics pushed into Vigil every second, a progress line, and
//! a report of what the incident did: errors and latency before, during and after it, time to
//! recover, and (from Vigil) time to detect and to remediate.
//!
//! The crate owns the scenario format ([`scenario`]), the load ([`load`]), the faults ([`fault`]),
//! the metrics push ([`push`]) and the report ([`report`]). It never acts on anything a scenario
//! does not name.

pub mod fault;
pub mod load;
pub mod push;
pub mod report;
pub mod scenario;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::Value;

use crate::fault::FaultEvent;
use crate::load::{Outcome, Running};
use crate::push::Point;
use crate::report::{Report, VigilView};
use crate::scenario::Scenario;

/// A server base URL with the basic-auth credentials its userinfo carries.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub base: String,
    auth: Option<(String, String)>,
}

impl Endpoint {
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let mut u = url::Url::parse(url).map_err(|e| format!("{url:?}: {e}"))?;
        let auth = (!u.username().is_empty()).then(|| {
            (
                u.username().to_string(),
                u.password().unwrap_or_default().to_string(),
            )
        });
        let _ = u.set_username("");
        let _ = u.set_password(None);
        Ok(Endpoint {
            base: u.as_str().trim_end_matches('/').to_string(),
            auth,
        })
    }

    pub fn request(
        &self,
        client: &reqwest::Client,
        method: reqwest::Method,
        path: &str,
    ) -> reqwest::RequestBuilder {
        let r = client.request(method, format!("{}{path}", self.base));
        match &self.auth {
            Some((u, p)) => r.basic_auth(u, Some(p)),
            None => r,
        }
    }

    async fn get_json(&self, client: &reqwest::Client, path: &str) -> Result<Value, String> {
        let r = self
            .request(client, reqwest::Method::GET, path)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| format!("{}{path}: {e}", self.base))?;
        let st = r.status();
        let body = r
            .bytes()
            .await
            .map_err(|e| format!("{}{path}: {e}", self.base))?;
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| format!("{}{path}: not JSON: {e}", self.base))?;
        if st.is_success() {
            Ok(v)
        } else {
            Err(format!("{}{path}: {st}: {v}", self.base))
        }
    }
}

/// How a run reports while it goes.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Overrides the scenario's `vigil.url`.
    pub vigil: Option<String>,
    /// Print the progress line (a line a second, rewritten in place on a terminal).
    pub progress: bool,
}

/// Runs a scenario to its end and answers its report.
pub async fn run(mut s: Scenario, o: RunOptions) -> Result<Report, String> {
    if let Some(url) = &o.vigil {
        match &mut s.vigil {
            Some(v) => v.url = url.clone(),
            None => {
                s.vigil = Some(scenario::VigilConfig {
                    url: url.clone(),
                    alert: String::new(),
                    push: true,
                })
            }
        }
    }
    let vigil = s
        .vigil
        .as_ref()
        .map(|v| Endpoint::parse(&v.url))
        .transpose()?;
    let client = load::client(&s)?;
    let docker = s
        .faults
        .iter()
        .any(|f| f.kind == scenario::FaultKind::Docker)
        .then(fault::docker)
        .transpose()?;
    let state = Arc::new(Running {
        started: Instant::now(),
        live: load::Live::new(s.targets.len()),
        in_flight: Arc::new(tokio::sync::Semaphore::new(s.load.max_in_flight)),
        max_in_flight: s.load.max_in_flight,
    });
    let started_ms = vigil_model::now_ms();
    let events: Arc<Mutex<Vec<FaultEvent>>> = Arc::default();
    // Faults, each at its time, undone after its duration (or at the end of the load).
    let mut undo_at_end = Vec::new();
    let mut fault_tasks = Vec::new();
    for (i, f) in s.faults.iter().enumerate() {
        let (f, st, ev, docker) = (f.clone(), state.clone(), events.clone(), docker.clone());
        let until_end = f.duration.is_none_or(|d| f.at + d >= s.load.duration);
        if f.duration.is_some() && until_end {
            undo_at_end.push(i);
        }
        fault_tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until((st.started + f.at).into()).await;
            // The fault's time is when its injection starts: a kill takes effect during the call.
            let offset = st.started.elapsed();
            let at_ms = vigil_model::now_ms();
            let r = fault::inject(&f, docker.as_ref()).await;
            let ok = r.is_ok();
            let (what, error) = match r {
                Ok(w) => (w, None),
                Err(e) => (String::new(), Some(e)),
            };
            tracing::info!(fault = i, %what, ?error, "fault injected");
            ev.lock().push(FaultEvent {
                index: i,
                kind: f.kind,
                what,
                at_ms,
                offset_ms: offset.as_millis() as u64,
                undone_ms: None,
                error,
            });
            if let (true, Some(d), false) = (ok, f.duration, until_end) {
                tokio::time::sleep(d).await;
                if let Ok(Some(_)) = fault::undo(&f, docker.as_ref()).await
                    && let Some(e) = ev.lock().iter_mut().find(|e| e.index == i)
                {
                    e.undone_ms = Some(vigil_model::now_ms());
                }
            }
        }));
    }
    // The progress line and the metrics push, once a second.
    let push_errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let ticker = {
        let (st, ev, s2, vigil, client, errs) = (
            state.clone(),
            events.clone(),
            s.clone(),
            vigil.clone(),
            client.clone(),
            push_errors.clone(),
        );
        let push = s.vigil.as_ref().is_some_and(|v| v.push);
        let progress = o.progress;
        tokio::spawn(async move {
            let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            let mut last_ok = 0u64;
            loop {
                tick.tick().await;
                let h = st.live.rotate();
                let q = |x: f64| {
                    if h.is_empty() {
                        0.0
                    } else {
                        h.value_at_quantile(x) as f64 / 1e6
                    }
                };
                let elapsed = st.started.elapsed();
                let counts: Vec<[u64; 4]> = st
                    .live
                    .counts
                    .iter()
                    .map(|c| std::array::from_fn(|i| c[i].load(Ordering::Relaxed)))
                    .collect();
                let ok: u64 = counts.iter().map(|c| c[0]).sum();
                let errors: u64 = counts.iter().map(|c| c[1] + c[2] + c[3]).sum();
                if progress {
                    let faults = ev.lock().len();
                    let line = format!(
                        "{:>6.1} s  rate {:>7.1}/s  answered {:>6}/s  errors {:>6}  p99 {:>8.2} ms  in flight {:>5}  faults {faults}/{}",
                        elapsed.as_secs_f64(),
                        s2.rate_at(elapsed),
                        ok - last_ok,
                        errors,
                        q(0.99) * 1e3,
                        st.in_flight(),
                        s2.faults.len(),
                    );
                    if tty {
                        eprint!("\r{line}");
                    } else {
                        eprintln!("{line}");
                    }
                }
                last_ok = ok;
                if push && let Some(v) = &vigil {
                    let mut points = Vec::new();
                    for (t, c) in s2.targets.iter().zip(&counts) {
                        for (i, outcome) in Outcome::ALL.iter().enumerate() {
                            points.push(Point {
                                name: "vigil_loadtest_requests_total",
                                labels: vec![
                                    ("target", t.name.clone()),
                                    ("outcome", outcome.name().into()),
                                ],
                                value: c[i] as f64,
                            });
                        }
                    }
                    for (qn, x) in [("0.5", 0.5), ("0.9", 0.9), ("0.99", 0.99), ("1", 1.0)] {
                        if !h.is_empty() {
                            points.push(Point {
                                name: "vigil_loadtest_latency_seconds",
                                labels: vec![("quantile", qn.into())],
                                value: q(x),
                            });
                        }
                    }
                    points.push(Point {
                        name: "vigil_loadtest_rate",
                        labels: vec![],
                        value: s2.rate_at(elapsed),
                    });
                    points.push(Point {
                        name: "vigil_loadtest_in_flight",
                        labels: vec![],
                        value: st.in_flight() as f64,
                    });
                    for e in ev.lock().iter().filter(|e| e.error.is_none()) {
                        points.push(Point {
                            name: "vigil_loadtest_fault_time_seconds",
                            labels: vec![
                                ("fault", e.index.to_string()),
                                ("kind", format!("{:?}", e.kind).to_lowercase()),
                            ],
                            value: e.at_ms as f64 / 1e3,
                        });
                    }
                    let body = push::request(
                        &[
                            ("job", "vigil-loadtest".into()),
                            ("scenario", s2.name.clone()),
                        ],
                        &points,
                        vigil_model::now_ms(),
                    );
                    if let Err(e) = push::send(&client, v, body).await {
                        let mut errs = errs.lock();
                        if errs.len() < 5 {
                            errs.push(e);
                        }
                    }
                }
            }
        })
    };
    let samples = load::run(&s, client.clone(), state.clone()).await;
    ticker.abort();
    if o.progress && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        eprintln!();
    }
    for t in fault_tasks {
        t.abort();
    }
    // Leave things as they were: undo what is still in place.
    for i in undo_at_end {
        let f = &s.faults[i];
        if events
            .lock()
            .iter()
            .any(|e| e.index == i && e.error.is_none())
            && let Ok(Some(_)) = fault::undo(f, docker.as_ref()).await
            && let Some(e) = events.lock().iter_mut().find(|e| e.index == i)
        {
            e.undone_ms = Some(vigil_model::now_ms());
        }
    }
    let ended_ms = vigil_model::now_ms();
    let mut faults = events.lock().clone();
    faults.sort_by_key(|f| f.index);
    let mut report = Report::build(&s, &samples, faults, started_ms, ended_ms);
    report.push_errors = push_errors.lock().clone();
    if let (Some(v), Some(cfg)) = (&vigil, &s.vigil) {
        report.vigil = Some(vigil_view(v, &client, &cfg.alert, &report).await);
    }
    Ok(report)
}

/// Detection from the `ALERTS` series, remediation from the runbook executions, and the link to
/// the Recovery view; each part that cannot be read says why.
async fn vigil_view(v: &Endpoint, client: &reqwest::Client, alert: &str, r: &Report) -> VigilView {
    let fault_ms = r
        .faults
        .iter()
        .filter(|f| f.error.is_none())
        .map(|f| f.at_ms)
        .min();
    let mut view = VigilView {
        link: format!(
            "{}/recovery?from={}&to={}&scenario={}",
            v.base,
            r.started_ms,
            r.ended_ms,
            url::form_urlencoded::byte_serialize(r.scenario.as_bytes()).collect::<String>()
        ),
        ..Default::default()
    };
    let Some(fault_ms) = fault_ms else {
        return view;
    };
    let sel = if alert.is_empty() {
        "ALERTS{alertstate=\"firing\"}".to_string()
    } else {
        format!(
            "ALERTS{{alertstate=\"firing\",alertname={}}}",
            Value::String(alert.into())
        )
    };
    // The raw samples since the fault (a range selector at the end), so the time is the rule
    // evaluation's own, not a step's.
    let secs = ((r.ended_ms - fault_ms) / 1000 + 2).max(2);
    let expr = format!("{sel}[{secs}s]");
    let q: String = url::form_urlencoded::byte_serialize(expr.as_bytes()).collect();
    let path = format!(
        "/api/v1/query?query={q}&time={:.3}",
        r.ended_ms as f64 / 1e3
    );
    match v.get_json(client, &path).await {
        Ok(j) => {
            let mut first: Option<(f64, String)> = None;
            for s in j["data"]["result"].as_array().into_iter().flatten() {
                // The first sample after the fault that follows a gap: the alert started firing
                // (one that fired all along does not count).
                let mut prev: Option<f64> = None;
                for p in s["values"].as_array().into_iter().flatten() {
                    let Some(t) = p[0].as_f64() else { continue };
                    let rising = prev.is_none_or(|x| t - x > 5.0);
                    prev = Some(t);
                    if !rising || t * 1e3 < fault_ms as f64 {
                        continue;
                    }
                    if first.as_ref().is_none_or(|f| t < f.0) {
                        first = Some((
                            t,
                            s["metric"]["alertname"].as_str().unwrap_or("").to_string(),
                        ));
                    }
                    break;
                }
            }
            if let Some((t, name)) = first {
                view.time_to_detect_s = Some(t - fault_ms as f64 / 1e3);
                view.alert = Some(name);
            }
        }
        Err(e) => view.errors.push(e),
    }
    match v.get_json(client, "/api/v1/runbooks/executions").await {
        Ok(j) => {
            // The execution for the incident's alert: the configured one, else the one that fired
            // first (other runbooks may run meanwhile for other reasons).
            let alert = if alert.is_empty() {
                view.alert.clone().unwrap_or_default()
            } else {
                alert.to_string()
            };
            let mut list: Vec<&Value> = j["data"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|e| {
                    e["times"]["created"]
                        .as_i64()
                        .is_some_and(|c| c >= fault_ms)
                })
                .filter(|e| alert.is_empty() || e["alert"]["labels"]["alertname"] == alert.as_str())
                .collect();
            list.sort_by_key(|e| e["times"]["created"].as_i64());
            if let Some(e) = list.first() {
                let rel = |k: &str| e["times"][k].as_i64().map(|t| (t - fault_ms) as f64 / 1e3);
                view.execution = e["id"].as_str().map(str::to_string);
                view.runbook = e["runbook"].as_str().map(str::to_string);
                view.outcome = e["outcome"].as_str().map(str::to_string);
                view.time_to_remediate_s = rel("acted");
                view.record = Some(serde_json::json!({
                    "detected_s": rel("detected"),
                    "acted_s": rel("acted"),
                    "recovered_s": rel("recovered"),
                }));
                if view.time_to_detect_s.is_none() {
                    view.time_to_detect_s = rel("detected");
                }
            }
        }
        Err(e) => view.errors.push(e),
    }
    view
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_carry_basic_auth_apart_from_the_url() {
        let e = Endpoint::parse("http://ops:s3cret@127.0.0.1:9201/").unwrap();
        assert_eq!(e.base, "http://127.0.0.1:9201");
        assert_eq!(e.auth, Some(("ops".into(), "s3cret".into())));
        assert!(Endpoint::parse("not a url").is_err());
    }
}
