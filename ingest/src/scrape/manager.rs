//! The scrape manager: one task per job watches discovery and keeps one scrape loop per target.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};
use vigil_model::{LabelLimits, Labels};

use super::config::{GlobalConfig, ScrapeConfig};
use super::discovery::{self, TargetGroup};
use super::scraper::{
    JobSettings, ProbeRun, ScrapeContext, ScrapeLoop, Source, StopReason, TargetStatus,
};
use super::target::{Target, populate};
use crate::metrics::JobLabel;

/// A target as the targets API shows it.
#[derive(Clone, Debug)]
pub struct TargetInfo {
    pub job: String,
    pub target: Target,
    pub status: TargetStatus,
}

struct RunningTarget {
    target: Target,
    status: Arc<Mutex<TargetStatus>>,
    cancel: CancellationToken,
    reason: Arc<Mutex<StopReason>>,
    task: JoinHandle<()>,
}

struct JobRun {
    cancel: CancellationToken,
    task: JoinHandle<()>,
    targets: Arc<Mutex<HashMap<u64, RunningTarget>>>,
    dropped: Arc<Mutex<Vec<Labels>>>,
    config: ScrapeConfig,
    global: GlobalConfig,
}

impl JobRun {
    /// Stops discovery (waiting for it, so it cannot start loops afterwards) and hands back the
    /// running loops, still running: the caller decides how each one ends.
    async fn shut(self) -> HashMap<u64, RunningTarget> {
        self.cancel.cancel();
        let _ = self.task.await;
        let mut t = self.targets.lock();
        t.drain().collect()
    }
}

/// Runs every scrape job.
pub struct ScrapeManager {
    ctx: ScrapeContext,
    jobs: Mutex<HashMap<String, JobRun>>,
    jitter_seed: u64,
}

fn settings(job: &ScrapeConfig, ctx: &ScrapeContext) -> Result<JobSettings, String> {
    let source = match &job.probe_module {
        // A probe job fetches nothing over HTTP: no client to build.
        Some(m) => Source::Probe(ProbeRun {
            service: ctx
                .probes
                .clone()
                .ok_or("probe jobs need the probe service")?,
            module: m.clone(),
        }),
        None => Source::Http(
            job.http_config
                .build(&vigil_http::ClientOptions {
                    user_agent: ctx.user_agent.clone(),
                    gzip: true,
                    ..Default::default()
                })
                .map_err(|e| e.to_string())?,
        ),
    };
    Ok(JobSettings {
        job_name: job.job_name.clone(),
        honor_labels: job.honor_labels,
        honor_timestamps: job.honor_timestamps,
        metric_relabel: job.metric_relabel_configs.clone(),
        limits: LabelLimits {
            label_limit: job.label_limit,
            label_name_length_limit: job.label_name_length_limit,
            label_value_length_limit: job.label_value_length_limit,
        },
        sample_limit: job.sample_limit,
        body_size_limit: job.body_size_limit,
        source,
    })
}

/// Phase of a target within its interval: fixed per target and per server, like Prometheus, so that
/// scrapes spread over the interval instead of all starting together.
pub fn offset(target: &Target, seed: u64) -> Duration {
    let ms = target.interval.as_millis().max(1) as u64;
    let phase = (target.key() ^ seed) % ms;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    let into = now % ms;
    Duration::from_millis((phase + ms - into) % ms)
}

impl ScrapeManager {
    pub fn new(ctx: ScrapeContext, jitter_seed: u64) -> Self {
        ScrapeManager {
            ctx,
            jobs: Mutex::new(HashMap::new()),
            jitter_seed,
        }
    }

    /// Replaces the running jobs with `jobs`, as a Prometheus reload does: jobs whose configuration is
    /// unchanged keep running untouched; targets of changed jobs restart with the new settings; targets
    /// that are gone (with their job or from its discovery) get staleness markers for their series.
    pub async fn apply(&self, global: &GlobalConfig, jobs: &[ScrapeConfig]) {
        let mut old: HashMap<String, JobRun> = self.jobs.lock().drain().collect();
        let mut next: HashMap<String, JobRun> = HashMap::new();
        for job in jobs {
            match old.remove(&job.job_name) {
                Some(run) if run.config == *job && run.global == *global => {
                    next.insert(job.job_name.clone(), run);
                }
                previous => {
                    let inherited = match previous {
                        Some(run) => run.shut().await,
                        None => HashMap::new(),
                    };
                    let run = self.start_job(global.clone(), job.clone(), inherited);
                    next.insert(job.job_name.clone(), run);
                }
            }
        }
        for (name, run) in old {
            info!(job = %name, "scrape job removed; marking its series stale");
            for (_, t) in run.shut().await {
                *t.reason.lock() = StopReason::TargetRemoved;
                t.cancel.cancel();
            }
        }
        *self.jobs.lock() = next;
    }

    /// Starts a job's discovery task. `inherited` are the loops of the job's previous configuration:
    /// the first discovery restarts those still wanted and marks the others stale.
    fn start_job(
        &self,
        global: GlobalConfig,
        job: ScrapeConfig,
        inherited: HashMap<u64, RunningTarget>,
    ) -> JobRun {
        let (config, global_copy) = (job.clone(), global.clone());
        let cancel = CancellationToken::new();
        let targets: Arc<Mutex<HashMap<u64, RunningTarget>>> = Arc::new(Mutex::new(HashMap::new()));
        let dropped = Arc::new(Mutex::new(Vec::new()));
        let ctx = self.ctx.clone();
        let seed = self.jitter_seed;
        let (c, t, d) = (cancel.clone(), targets.clone(), dropped.clone());
        let task = tokio::spawn(async move {
            let settings = match settings(&job, &ctx) {
                Ok(s) => Arc::new(s),
                Err(e) => {
                    error!(job = %job.job_name, error = %e, "cannot build the scrape job's HTTP client; the job does not run");
                    return;
                }
            };
            let statics = discovery::static_groups(&job.static_configs);
            let mut file_groups: Vec<TargetGroup> = Vec::new();
            let mut fingerprint = None;
            let refresh = job
                .file_sd_configs
                .iter()
                .map(|f| f.refresh_interval.0)
                .min()
                .unwrap_or(Duration::from_secs(300));
            let mut last_full = Instant::now();
            let mut inherited = Some(inherited);
            loop {
                if !job.file_sd_configs.is_empty() {
                    let fp = discovery::fingerprint(&job.file_sd_configs);
                    if fingerprint.as_ref() != Some(&fp) || last_full.elapsed() >= refresh {
                        file_groups.clear();
                        for (path, _) in &fp {
                            match discovery::read_file(path) {
                                Ok(g) => file_groups.extend(g),
                                Err(e) => {
                                    ctx.metrics.sd_file_errors.inc();
                                    warn!(job = %job.job_name, error = %e, "file_sd: cannot read targets file");
                                }
                            }
                        }
                        fingerprint = Some(fp);
                        last_full = Instant::now();
                    }
                }
                let mut wanted: HashMap<u64, Target> = HashMap::new();
                let mut dropped_now = Vec::new();
                for g in statics.iter().chain(file_groups.iter()) {
                    for tl in &g.targets {
                        match populate(&g.labels, tl, &job, &global) {
                            Ok(Some(target)) => {
                                wanted.insert(target.key(), target);
                            }
                            Ok(None) => dropped_now.push(Labels::from_pairs(
                                tl.iter().map(|(k, v)| (k.clone(), v.clone())),
                            )),
                            Err(e) => {
                                warn!(job = %job.job_name, source = %g.source, error = %e, "invalid target")
                            }
                        }
                    }
                }
                *d.lock() = dropped_now;
                if let Some(prev) = inherited.take() {
                    for (k, old) in prev {
                        if !wanted.contains_key(&k) {
                            info!(target = %old.target.url, "target removed by reload; marking its series stale");
                            *old.reason.lock() = StopReason::TargetRemoved;
                        }
                        old.cancel.cancel();
                    }
                }
                sync_targets(&t, wanted, &settings, &ctx, seed);
                ctx.metrics
                    .scrape_targets
                    .get_or_create(&JobLabel {
                        job: job.job_name.clone(),
                    })
                    .set(t.lock().len() as i64);
                if job.file_sd_configs.is_empty() {
                    c.cancelled().await;
                    return;
                }
                tokio::select! {
                    _ = c.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        });
        JobRun {
            cancel,
            task,
            targets,
            dropped,
            config,
            global: global_copy,
        }
    }

    /// Every active target with its health.
    pub fn targets(&self) -> Vec<TargetInfo> {
        let jobs = self.jobs.lock();
        let mut out = Vec::new();
        for (name, j) in jobs.iter() {
            for t in j.targets.lock().values() {
                out.push(TargetInfo {
                    job: name.clone(),
                    target: t.target.clone(),
                    status: t.status.lock().clone(),
                });
            }
        }
        out.sort_by(|a, b| (&a.job, &a.target.url).cmp(&(&b.job, &b.target.url)));
        out
    }

    /// Discovered label sets that relabeling dropped, per job.
    pub fn dropped_targets(&self) -> Vec<(String, Labels)> {
        let jobs = self.jobs.lock();
        jobs.iter()
            .flat_map(|(n, j)| {
                j.dropped
                    .lock()
                    .iter()
                    .map(|l| (n.clone(), l.clone()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Stops every loop without writing staleness markers (the data stays as it was at shutdown).
    pub async fn stop(&self) {
        let jobs: Vec<JobRun> = self.jobs.lock().drain().map(|(_, j)| j).collect();
        for j in jobs {
            j.cancel.cancel();
            let _ = j.task.await;
            let loops: Vec<RunningTarget> = j.targets.lock().drain().map(|(_, t)| t).collect();
            for t in loops {
                t.cancel.cancel();
                let _ = t.task.await;
            }
        }
        info!("scrape manager stopped");
    }
}

fn sync_targets(
    running: &Mutex<HashMap<u64, RunningTarget>>,
    wanted: HashMap<u64, Target>,
    settings: &Arc<JobSettings>,
    ctx: &ScrapeContext,
    seed: u64,
) {
    let mut r = running.lock();
    let gone: Vec<u64> = r
        .keys()
        .filter(|k| !wanted.contains_key(k))
        .copied()
        .collect();
    for k in gone {
        if let Some(t) = r.remove(&k) {
            info!(target = %t.target.url, "target removed; marking its series stale");
            *t.reason.lock() = StopReason::TargetRemoved;
            t.cancel.cancel();
        }
    }
    for (k, target) in wanted {
        if r.contains_key(&k) {
            continue;
        }
        let status = Arc::new(Mutex::new(TargetStatus {
            health: "unknown",
            ..Default::default()
        }));
        let cancel = CancellationToken::new();
        let reason = Arc::new(Mutex::new(StopReason::Shutdown));
        let lp = ScrapeLoop::new(
            target.clone(),
            settings.clone(),
            ctx.clone(),
            status.clone(),
        );
        let off = offset(&target, seed);
        let task = tokio::spawn(lp.run(off, cancel.clone(), reason.clone()));
        r.insert(
            k,
            RunningTarget {
                target,
                status,
                cancel,
                reason,
                task,
            },
        );
    }
}
