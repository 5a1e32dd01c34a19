//! One target's scrape loop: fetch, parse, label, store, and write staleness markers for series that
//! went away, with Prometheus's report series (`up`, `scrape_duration_seconds`, …).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use vigil_model::{
    LabelLimits, Labels, LabelsBuilder, METRIC_NAME, Sample, is_valid_label_name,
    is_valid_metric_name, now_ms, stale_nan,
};
use vigil_storage::{Exemplar, ExemplarStore, MetricsAppender, SeriesBatch};

use super::relabel::{self, RelabelConfig};
use super::target::Target;
use crate::exposition::{Entry, Format, Parser};
use crate::metrics::{IngestMetrics, JobLabel};

/// What the scrape loop of one target needs from its job.
#[derive(Clone, Debug)]
pub struct JobSettings {
    pub job_name: String,
    pub honor_labels: bool,
    pub honor_timestamps: bool,
    pub metric_relabel: Vec<RelabelConfig>,
    pub limits: LabelLimits,
    pub sample_limit: usize,
    pub body_size_limit: u64,
    /// Where the pages come from.
    pub source: Source,
}

/// How a job's targets are fetched.
#[derive(Clone, Debug)]
pub enum Source {
    /// Over HTTP with the job's client (its `http_config`: TLS, credentials, proxy).
    Http(vigil_http::HttpClient),
    /// By running a probe module in-process (a `probe_configs` job).
    Probe(ProbeRun),
}

impl JobSettings {
    fn probe(&self) -> Option<&ProbeRun> {
        match &self.source {
            Source::Probe(p) => Some(p),
            Source::Http(_) => None,
        }
    }
}

/// How a probe job's targets are "fetched": by running a module in-process.
#[derive(Clone)]
pub struct ProbeRun {
    pub service: Arc<crate::probe::api::ProbeService>,
    pub module: String,
}

impl std::fmt::Debug for ProbeRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProbeRun({})", self.module)
    }
}

/// Health of a target, for the targets API and UI.
#[derive(Clone, Debug, Default)]
pub struct TargetStatus {
    pub health: &'static str,
    pub last_error: String,
    pub last_scrape: Option<SystemTime>,
    pub last_duration: Duration,
    pub last_samples: usize,
}

/// Shared services for scrape loops.
#[derive(Clone)]
pub struct ScrapeContext {
    pub appender: Arc<dyn MetricsAppender>,
    pub exemplars: Option<Arc<ExemplarStore>>,
    /// Where `# TYPE`, `# HELP` and `# UNIT` of scraped families go.
    pub metadata: Option<Arc<vigil_storage::MetadataStore>>,
    pub metrics: IngestMetrics,
    pub user_agent: String,
    /// The probes, for the jobs of `probe_configs`.
    pub probes: Option<Arc<crate::probe::api::ProbeService>>,
}

/// How a scrape loop ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The target went away: mark its series stale.
    TargetRemoved,
    /// Shutdown or reload: leave series as they are.
    Shutdown,
}

/// Prometheus 2.42's Accept header.
pub const ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

struct CacheEntry {
    /// None when metric relabeling dropped the series.
    labels: Option<Labels>,
    last_seen: u64,
}

/// State kept across scrapes of one target.
pub struct ScrapeLoop {
    target: Target,
    job: Arc<JobSettings>,
    ctx: ScrapeContext,
    status: Arc<Mutex<TargetStatus>>,
    cache: HashMap<String, CacheEntry>,
    /// Series (without explicit timestamps) stored by the previous successful scrape.
    previous: HashMap<Labels, ()>,
    iteration: u64,
}

/// Result of one page.
struct Page {
    batch: Vec<SeriesBatch>,
    exemplars: Vec<(Labels, Vec<Exemplar>)>,
    scraped: usize,
    post_relabel: usize,
    added: usize,
    current: HashMap<Labels, ()>,
}

impl ScrapeLoop {
    pub fn new(
        target: Target,
        job: Arc<JobSettings>,
        ctx: ScrapeContext,
        status: Arc<Mutex<TargetStatus>>,
    ) -> Self {
        ScrapeLoop {
            target,
            job,
            ctx,
            status,
            cache: HashMap::new(),
            previous: HashMap::new(),
            iteration: 0,
        }
    }

    /// Runs until cancelled, scraping every interval at a per-target phase.
    pub async fn run(
        mut self,
        offset: Duration,
        cancel: CancellationToken,
        reason: Arc<Mutex<StopReason>>,
    ) {
        let start = tokio::time::Instant::now() + offset;
        let mut tick = tokio::time::interval_at(start, self.target.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                scheduled = tick.tick() => {
                    // A probe that starts more than half an interval after its slot is late (the
                    // runtime was starved or the previous probe overran).
                    if self.job.probe().is_some() && scheduled.elapsed() > self.target.interval / 2 {
                        self.ctx
                            .metrics
                            .probes_late
                            .get_or_create(&JobLabel { job: self.job.job_name.clone() })
                            .inc();
                    }
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = self.scrape_once() => {}
            }
        }
        if *reason.lock() == StopReason::TargetRemoved {
            self.mark_all_stale(now_ms()).await;
            if let Some(p) = self.job.probe() {
                p.service.forget(&self.job.job_name, &self.target.url);
            }
        }
    }

    /// Runs the probe of a probe job; answers its series as text.
    async fn probe(&self, p: &ProbeRun) -> Result<(Option<String>, Vec<u8>), String> {
        let prober = p.service.prober();
        let module = prober
            .module(&p.module)
            .ok_or_else(|| format!("unknown probe module {:?}", p.module))?;
        let timeout =
            crate::probe::effective_timeout(module, Some(self.target.timeout.as_secs_f64()), 0.0);
        let r = prober
            .run(&p.module, &self.target.url, timeout)
            .await
            .ok_or_else(|| format!("unknown probe module {:?}", p.module))?;
        let job = JobLabel {
            job: self.job.job_name.clone(),
        };
        self.ctx.metrics.probes_run.get_or_create(&job).inc();
        if !r.success {
            self.ctx.metrics.probes_failed.get_or_create(&job).inc();
        }
        p.service
            .record(&self.job.job_name, &self.target.url, &p.module, &r);
        Ok((
            Some("text/plain; version=0.0.4".into()),
            r.metrics.to_text().into_bytes(),
        ))
    }

    async fn fetch(&self) -> Result<(Option<String>, Vec<u8>), String> {
        let client = match &self.job.source {
            Source::Probe(p) => return self.probe(p).await,
            Source::Http(c) => c,
        };
        let req = client
            .get(&self.target.url)
            .map_err(|e| e.to_string())?
            .header(reqwest::header::ACCEPT, ACCEPT)
            .header(reqwest::header::USER_AGENT, &self.ctx.user_agent)
            .header(
                "X-Prometheus-Scrape-Timeout-Seconds",
                format!("{}", self.target.timeout.as_secs_f64()),
            )
            .timeout(self.target.timeout);
        let resp = req.send().await.map_err(|e| {
            if e.is_timeout() {
                format!(
                    "Get {:?}: context deadline exceeded (scrape timeout {:?})",
                    self.target.url, self.target.timeout
                )
            } else {
                format!("Get {:?}: {e}", self.target.url)
            }
        })?;
        if resp.status() != reqwest::StatusCode::OK {
            return Err(format!("server returned HTTP status {}", resp.status()));
        }
        let ct = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let limit = self.job.body_size_limit;
        let mut body = Vec::new();
        let mut resp = resp;
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| format!("reading body: {e}"))?
        {
            body.extend_from_slice(&chunk);
            if limit > 0 && body.len() as u64 > limit {
                return Err(format!("body size limit exceeded ({limit} bytes)"));
            }
        }
        Ok((ct, body))
    }

    fn sample_labels(
        &self,
        name: &str,
        parsed: &[(&str, std::borrow::Cow<'_, str>)],
    ) -> Result<Option<Labels>, String> {
        let mut lb = LabelsBuilder::with_capacity(parsed.len() + 4);
        lb.set(METRIC_NAME, name);
        for (n, v) in parsed {
            lb.set(*n, v.as_ref());
        }
        // Target labels: win over scraped ones unless honor_labels; clashing scraped labels are kept as
        // exported_<name>.
        for l in self.target.labels.iter() {
            if self.job.honor_labels {
                if lb.get(l.name).is_none() {
                    lb.set(l.name, l.value);
                }
            } else {
                if let Some(existing) = lb.get(l.name).map(str::to_string) {
                    let mut exported = format!("exported_{}", l.name);
                    while lb.get(&exported).is_some() {
                        exported = format!("exported_{exported}");
                    }
                    lb.set(exported, existing);
                }
                lb.set(l.name, l.value);
            }
        }
        if !relabel::process(&mut lb, &self.job.metric_relabel) {
            return Ok(None);
        }
        let labels = lb.build();
        match labels.metric_name() {
            None => return Err("missing metric name (__name__ label)".into()),
            Some(n) if !is_valid_metric_name(n) => {
                return Err(format!("invalid metric name or label names: {labels}"));
            }
            _ => {}
        }
        if let Some(bad) = labels
            .iter()
            .find(|l| l.name != METRIC_NAME && !is_valid_label_name(l.name))
        {
            return Err(format!(
                "invalid metric name or label names: label {:?} of {labels}",
                bad.name
            ));
        }
        let lim = &self.job.limits;
        if lim.label_limit > 0 && labels.len() > lim.label_limit {
            return Err(format!(
                "label_limit exceeded (metric: {:.50}, number of labels: {}, limit: {})",
                labels.to_string(),
                labels.len(),
                lim.label_limit
            ));
        }
        for l in labels.iter() {
            if lim.label_name_length_limit > 0 && l.name.len() > lim.label_name_length_limit {
                return Err(format!(
                    "label_name_length_limit exceeded (metric: {:.50}, label name: {:.50}, length: {}, limit: {})",
                    labels.to_string(),
                    l.name,
                    l.name.len(),
                    lim.label_name_length_limit
                ));
            }
            if lim.label_value_length_limit > 0 && l.value.len() > lim.label_value_length_limit {
                return Err(format!(
                    "label_value_length_limit exceeded (metric: {:.50}, label name: {:.50}, value: {:.50?}, length: {}, limit: {})",
                    labels.to_string(),
                    l.name,
                    l.value,
                    l.value.len(),
                    lim.label_value_length_limit
                ));
            }
        }
        Ok(Some(labels))
    }

    fn parse_page(&mut self, ct: Option<&str>, body: &[u8], ts: i64) -> Result<Page, String> {
        let text = std::str::from_utf8(body)
            .map_err(|e| format!("the page is not valid UTF-8 (byte {})", e.valid_up_to()))?;
        let format = Format::from_content_type(ct);
        let mut page = Page {
            batch: Vec::new(),
            exemplars: Vec::new(),
            scraped: 0,
            post_relabel: 0,
            added: 0,
            current: HashMap::new(),
        };
        let mut families: HashMap<&str, vigil_storage::MetricMetadata> = HashMap::new();
        let blank = || vigil_storage::MetricMetadata {
            kind: "unknown".into(),
            help: String::new(),
            unit: String::new(),
        };
        for entry in Parser::new(text, format) {
            let s = match entry.map_err(|e| format!("parse error: {e}"))? {
                Entry::Sample(s) => s,
                Entry::Help { name, text } => {
                    families.entry(name).or_insert_with(blank).help = text.into_owned();
                    continue;
                }
                Entry::Type { name, kind } => {
                    families.entry(name).or_insert_with(blank).kind = kind.as_str().to_string();
                    continue;
                }
                Entry::Unit { name, unit } => {
                    families.entry(name).or_insert_with(blank).unit = unit.to_string();
                    continue;
                }
            };
            page.scraped += 1;
            let labels = match self.cache.get_mut(s.series) {
                Some(c) => {
                    c.last_seen = self.iteration;
                    c.labels.clone()
                }
                None => {
                    let l = self.sample_labels(s.name, &s.labels)?;
                    self.cache.insert(
                        s.series.to_string(),
                        CacheEntry {
                            labels: l.clone(),
                            last_seen: self.iteration,
                        },
                    );
                    if l.is_some() {
                        page.added += 1;
                    }
                    l
                }
            };
            let Some(labels) = labels else { continue };
            page.post_relabel += 1;
            let t = match (self.job.honor_timestamps, s.timestamp_ms) {
                (true, Some(t)) => t,
                _ => {
                    page.current.insert(labels.clone(), ());
                    ts
                }
            };
            if let Some(ex) = s.exemplar {
                let e = Exemplar {
                    labels: Labels::from_pairs(
                        ex.labels
                            .iter()
                            .map(|(n, v)| (n.to_string(), v.to_string())),
                    ),
                    value: ex.value,
                    t: ex.timestamp_ms.unwrap_or(t),
                };
                page.exemplars.push((labels.clone(), vec![e]));
            }
            page.batch.push(SeriesBatch {
                labels,
                samples: vec![Sample { t, v: s.value }],
            });
        }
        if self.job.sample_limit > 0 && page.post_relabel > self.job.sample_limit {
            return Err(format!(
                "sample limit exceeded ({} samples, limit {})",
                page.post_relabel, self.job.sample_limit
            ));
        }
        if let Some(store) = &self.ctx.metadata {
            for (name, m) in families {
                store.record(name, m);
            }
        }
        Ok(page)
    }

    fn report(
        &self,
        ts: i64,
        up: bool,
        duration: Duration,
        scraped: usize,
        post: usize,
        added: usize,
    ) -> Vec<SeriesBatch> {
        [
            ("up", if up { 1.0 } else { 0.0 }),
            ("scrape_duration_seconds", duration.as_secs_f64()),
            ("scrape_samples_scraped", scraped as f64),
            ("scrape_samples_post_metric_relabeling", post as f64),
            ("scrape_series_added", added as f64),
        ]
        .into_iter()
        .map(|(name, v)| {
            let mut lb = self.target.labels.to_builder();
            lb.set(METRIC_NAME, name);
            SeriesBatch {
                labels: lb.build(),
                samples: vec![Sample { t: ts, v }],
            }
        })
        .collect()
    }

    async fn append(&self, batch: Vec<SeriesBatch>) -> Result<(), String> {
        let app = self.ctx.appender.clone();
        tokio::task::spawn_blocking(move || app.append(&batch))
            .await
            .map_err(|e| format!("append task failed: {e}"))?
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Scrapes once; returns whether the target was up.
    pub async fn scrape_once(&mut self) -> bool {
        self.iteration += 1;
        let ts = now_ms();
        let started = Instant::now();
        let job = JobLabel {
            job: self.job.job_name.clone(),
        };
        self.ctx.metrics.scrapes.get_or_create(&job).inc();
        let fetched = self.fetch().await;
        let result = fetched.and_then(|(ct, body)| self.parse_page(ct.as_deref(), &body, ts));
        let duration = started.elapsed();
        let (up, mut batch, scraped, post, added, err) = match result {
            Ok(page) => {
                let mut batch = page.batch;
                for (labels, _) in self.previous.iter() {
                    if !page.current.contains_key(labels) {
                        batch.push(SeriesBatch {
                            labels: labels.clone(),
                            samples: vec![Sample {
                                t: ts,
                                v: stale_nan(),
                            }],
                        });
                    }
                }
                self.previous = page.current;
                if let Some(store) = &self.ctx.exemplars {
                    for (l, e) in &page.exemplars {
                        store.add(l, e);
                    }
                }
                // Forget cache entries not seen for a while (series churn).
                let it = self.iteration;
                self.cache.retain(|_, c| it - c.last_seen < 10);
                (
                    true,
                    batch,
                    page.scraped,
                    page.post_relabel,
                    page.added,
                    None,
                )
            }
            Err(e) => {
                let batch: Vec<SeriesBatch> = self
                    .previous
                    .drain()
                    .map(|(labels, _)| SeriesBatch {
                        labels,
                        samples: vec![Sample {
                            t: ts,
                            v: stale_nan(),
                        }],
                    })
                    .collect();
                (false, batch, 0, 0, 0, Some(e))
            }
        };
        batch.extend(self.report(ts, up, duration, scraped, post, added));
        let stored = self.append(batch).await;
        let err = err.or(stored.err());
        let up = up && err.is_none();
        if !up {
            self.ctx.metrics.scrapes_failed.get_or_create(&job).inc();
        }
        {
            let mut st = self.status.lock();
            st.health = if up { "up" } else { "down" };
            st.last_error = err.clone().unwrap_or_default();
            st.last_scrape = Some(SystemTime::now());
            st.last_duration = duration;
            st.last_samples = scraped;
        }
        match err {
            Some(e) => debug!(target = %self.target.url, error = %e, "scrape failed"),
            None => debug!(target = %self.target.url, samples = scraped, "scraped"),
        }
        up
    }

    /// Marks every series of this target stale (the target went away).
    pub async fn mark_all_stale(&mut self, ts: i64) {
        let mut batch: Vec<SeriesBatch> = self
            .previous
            .drain()
            .map(|(labels, _)| SeriesBatch {
                labels,
                samples: vec![Sample {
                    t: ts,
                    v: stale_nan(),
                }],
            })
            .collect();
        for mut r in self.report(ts, false, Duration::ZERO, 0, 0, 0) {
            r.samples[0].v = stale_nan();
            batch.push(r);
        }
        if let Err(e) = self.append(batch).await {
            warn!(target = %self.target.url, error = %e, "could not write staleness markers for a removed target");
        }
    }
}
