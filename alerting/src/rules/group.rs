//! A rule group and its rules: evaluation with Prometheus's semantics (recording rules written back
//! through the appender; alerting rules with `for`, `keep_firing_for`, templated labels and annotations,
//! and the synthetic `ALERTS` and `ALERTS_FOR_STATE` series).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use vigil_model::{Labels, Sample, stale_nan};
use vigil_query::eval::{self, EvalOptions, Value};
use vigil_storage::{MetricsAppender, MetricsReader, SeriesBatch};

use super::config::{RuleConfig, RuleGroupConfig};
pub use super::expr::LogQuerier;
use super::expr::RuleExpr;
use super::template;

/// How long a resolved alert is still reported (Prometheus: 15m), so notifiers see it resolve.
const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;

/// State of an alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlertState {
    Inactive,
    Pending,
    Firing,
}

impl AlertState {
    pub fn as_str(&self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

/// One alert of an alerting rule.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    pub labels: Labels,
    pub annotations: BTreeMap<String, String>,
    pub state: AlertState,
    pub value: f64,
    /// When the condition first held (ms).
    pub active_at: i64,
    pub fired_at: Option<i64>,
    pub resolved_at: Option<i64>,
    keep_firing_since: Option<i64>,
}

/// Health of a rule after its last evaluation.
#[derive(Clone, Debug, Default)]
pub struct RuleStatus {
    pub health: &'static str,
    pub last_error: String,
    pub last_evaluation: Option<i64>,
    pub evaluation_seconds: f64,
}

/// A rule of a group.
pub struct Rule {
    pub config: RuleConfig,
    /// The expression, parsed once when the rule is loaded (not at every evaluation).
    expr: Result<RuleExpr, String>,
    /// Labels of the rule (group labels overridden by the rule's own).
    pub labels: BTreeMap<String, String>,
    pub status: Mutex<RuleStatus>,
    /// Active alerts by label set (alerting rules).
    pub active: Mutex<HashMap<Labels, Alert>>,
    /// `ALERTS_FOR_STATE` values found at start-up: `activeAt` to restore (alerting rules).
    restore: Mutex<Option<HashMap<Labels, i64>>>,
}

impl Rule {
    pub fn name(&self) -> &str {
        self.config
            .record
            .as_deref()
            .or(self.config.alert.as_deref())
            .unwrap_or("")
    }

    pub fn is_alerting(&self) -> bool {
        self.config.alert.is_some()
    }
}

/// Settings shared by every group.
#[derive(Clone, Debug, Default)]
pub struct GroupOptions {
    pub default_interval: Duration,
    pub external_labels: BTreeMap<String, String>,
    pub external_url: String,
    pub eval: EvalOptions,
    /// The log store, for LogQL rules (none: they fail with an error saying so).
    pub logs: Option<LogQuerier>,
}

/// A rule group, as loaded from a file.
pub struct Group {
    pub file: String,
    pub config: RuleGroupConfig,
    pub interval: Duration,
    pub rules: Vec<Rule>,
    pub last_evaluation: Mutex<Option<i64>>,
    pub evaluation_seconds: Mutex<f64>,
    /// Series written by the last evaluation, to mark stale the ones that disappear.
    written: Mutex<HashSet<Labels>>,
}

impl Group {
    pub fn new(file: &str, config: RuleGroupConfig, opts: &GroupOptions) -> Group {
        let interval = config
            .interval
            .map(|d| d.0)
            .unwrap_or(opts.default_interval);
        let rules = config
            .rules
            .iter()
            .map(|r| {
                let mut labels = config.labels.clone();
                labels.extend(r.labels.clone());
                Rule {
                    expr: super::expr::parse(&r.expr),
                    config: r.clone(),
                    labels,
                    status: Mutex::new(RuleStatus {
                        health: "unknown",
                        ..Default::default()
                    }),
                    active: Mutex::new(HashMap::new()),
                    restore: Mutex::new(None),
                }
            })
            .collect();
        Group {
            file: file.to_string(),
            config,
            interval,
            rules,
            last_evaluation: Mutex::new(None),
            evaluation_seconds: Mutex::new(0.0),
            written: Mutex::new(HashSet::new()),
        }
    }

    /// Identity of the group across reloads.
    pub fn key(&self) -> String {
        format!("{};{}", self.file, self.config.name)
    }

    /// The evaluation time of the interval containing `now`, at a fixed per-group phase, as Prometheus
    /// spreads groups over their interval.
    pub fn eval_timestamp(&self, now: i64) -> i64 {
        let iv = (self.interval.as_millis() as i64).max(1);
        let phase = (xxhash_rust::xxh3::xxh3_64(self.key().as_bytes()) % iv as u64) as i64;
        let adjusted = now - phase;
        adjusted - adjusted.rem_euclid(iv) + phase
    }

    /// Takes over the state of a group of the previous configuration (reload keeps alerts).
    pub fn inherit(&self, old: &Group) {
        for r in &self.rules {
            if let Some(o) = old
                .rules
                .iter()
                .find(|o| o.config == r.config && o.labels == r.labels)
            {
                *r.active.lock() = o.active.lock().clone();
                *r.status.lock() = o.status.lock().clone();
            }
        }
        *self.written.lock() = old.written.lock().clone();
        *self.last_evaluation.lock() = *old.last_evaluation.lock();
    }

    /// Hands each alerting rule the `activeAt` times found for its alerts (by alert name) at start-up,
    /// for its first evaluation to restore.
    pub fn restore_from(&self, found: &HashMap<String, HashMap<Labels, i64>>) {
        for r in self.rules.iter().filter(|r| r.is_alerting()) {
            *r.restore.lock() = Some(found.get(r.name()).cloned().unwrap_or_default());
        }
    }

    /// Evaluates every rule at `ts` (ms) and writes the results.
    pub async fn evaluate<R: MetricsReader>(
        &self,
        reader: &R,
        appender: &Arc<dyn MetricsAppender>,
        ts: i64,
        opts: &GroupOptions,
    ) {
        let started = std::time::Instant::now();
        let query_ts = ts - self.config.query_offset.map(|d| d.as_millis()).unwrap_or(0);
        let mut batch: Vec<SeriesBatch> = Vec::new();
        for rule in &self.rules {
            let t0 = std::time::Instant::now();
            let res = if rule.is_alerting() {
                self.eval_alerting(rule, reader, ts, query_ts, opts, &mut batch)
                    .await
            } else {
                self.eval_recording(rule, reader, ts, query_ts, opts, &mut batch)
                    .await
            };
            let mut st = rule.status.lock();
            st.last_evaluation = Some(ts);
            st.evaluation_seconds = t0.elapsed().as_secs_f64();
            match res {
                Ok(()) => {
                    st.health = "ok";
                    st.last_error.clear();
                }
                Err(e) => {
                    tracing::warn!(group = %self.config.name, rule = rule.name(), error = %e, "rule evaluation failed");
                    st.health = "err";
                    st.last_error = e;
                }
            }
        }
        // Series written last time and not now end with a staleness marker.
        let now_written: HashSet<Labels> = batch.iter().map(|b| b.labels.clone()).collect();
        {
            let mut w = self.written.lock();
            for gone in w.difference(&now_written) {
                batch.push(SeriesBatch {
                    labels: gone.clone(),
                    samples: vec![Sample {
                        t: ts,
                        v: stale_nan(),
                    }],
                });
            }
            *w = now_written;
        }
        if !batch.is_empty() {
            let app = appender.clone();
            let res = tokio::task::spawn_blocking(move || app.append(&batch)).await;
            match res {
                Ok(Ok(o)) if o.rejected > 0 => {
                    tracing::warn!(group = %self.config.name, rejected = o.rejected, "rule results partly refused by storage")
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::error!(group = %self.config.name, error = %e, "cannot store rule results")
                }
                Err(e) => {
                    tracing::error!(group = %self.config.name, error = %e, "rule result write failed")
                }
            }
        }
        *self.last_evaluation.lock() = Some(ts);
        *self.evaluation_seconds.lock() = started.elapsed().as_secs_f64();
    }

    async fn eval_recording<R: MetricsReader>(
        &self,
        rule: &Rule,
        reader: &R,
        ts: i64,
        query_ts: i64,
        opts: &GroupOptions,
        out: &mut Vec<SeriesBatch>,
    ) -> Result<(), String> {
        let v = query(reader, rule, query_ts, opts).await?;
        let mut seen = HashSet::new();
        let mut rows = Vec::with_capacity(v.len());
        for (l, x) in v {
            let mut b = l.to_builder();
            b.set("__name__", rule.name());
            // An empty rule label deletes the label (the builder's `set` does that).
            for (k, val) in &rule.labels {
                b.set(k.clone(), val.clone());
            }
            let labels = b.build();
            if !seen.insert(labels.clone()) {
                return Err(
                    "vector contains metrics with the same labelset after applying rule labels"
                        .into(),
                );
            }
            rows.push(SeriesBatch {
                labels,
                samples: vec![Sample { t: ts, v: x }],
            });
        }
        if self.config.limit > 0 && rows.len() > self.config.limit {
            return Err(format!(
                "exceeded limit of {} with {} series",
                self.config.limit,
                rows.len()
            ));
        }
        out.extend(rows);
        Ok(())
    }

    async fn eval_alerting<R: MetricsReader>(
        &self,
        rule: &Rule,
        reader: &R,
        ts: i64,
        query_ts: i64,
        opts: &GroupOptions,
        out: &mut Vec<SeriesBatch>,
    ) -> Result<(), String> {
        let v = query(reader, rule, query_ts, opts).await?;
        let hold = rule.config.for_.map(|d| d.as_millis()).unwrap_or(0);
        let keep_for = rule
            .config
            .keep_firing_for
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let mut current: HashMap<Labels, Alert> = HashMap::new();
        for (l, x) in v {
            let tmpl_labels: BTreeMap<String, String> = l
                .iter()
                .map(|lb| (lb.name.to_string(), lb.value.to_string()))
                .collect();
            let expand = |s: &str| {
                template::expand(
                    s,
                    &tmpl_labels,
                    &opts.external_labels,
                    &opts.external_url,
                    x,
                )
            };
            let mut b = l.to_builder();
            b.del("__name__");
            for (k, val) in &rule.labels {
                b.set(k.clone(), expand(val));
            }
            b.set("alertname", rule.name());
            let labels = b.build();
            let annotations = rule
                .config
                .annotations
                .iter()
                .map(|(k, a)| (k.clone(), expand(a)))
                .collect();
            if current.contains_key(&labels) {
                return Err(
                    "vector contains metrics with the same labelset after applying alert labels"
                        .into(),
                );
            }
            current.insert(
                labels.clone(),
                Alert {
                    labels,
                    annotations,
                    state: AlertState::Pending,
                    value: x,
                    active_at: ts,
                    fired_at: None,
                    resolved_at: None,
                    keep_firing_since: None,
                },
            );
        }
        let restore = rule.restore.lock().take();
        let mut active = rule.active.lock();
        for (k, a) in current.iter() {
            match active.get_mut(k) {
                Some(e) if e.state != AlertState::Inactive => {
                    e.value = a.value;
                    e.annotations = a.annotations.clone();
                }
                _ => {
                    let mut a = a.clone();
                    // After a restart, an alert that was active keeps its original activeAt.
                    if let Some(r) = restore.as_ref().and_then(|m| m.get(&a.labels))
                        && *r < a.active_at
                    {
                        a.active_at = *r;
                    }
                    active.insert(k.clone(), a);
                }
            }
        }
        let mut remove = Vec::new();
        for (k, a) in active.iter_mut() {
            if !current.contains_key(k) {
                if a.state == AlertState::Firing && keep_for > 0 {
                    let since = *a.keep_firing_since.get_or_insert(ts);
                    if ts - since < keep_for {
                        continue;
                    }
                }
                if a.state == AlertState::Pending
                    || a.resolved_at
                        .is_some_and(|r| ts - r > RESOLVED_RETENTION_MS)
                {
                    remove.push(k.clone());
                }
                if a.state != AlertState::Inactive {
                    a.state = AlertState::Inactive;
                    a.resolved_at = Some(ts);
                }
                continue;
            }
            a.keep_firing_since = None;
            if a.state == AlertState::Pending && ts - a.active_at >= hold {
                a.state = AlertState::Firing;
                a.fired_at = Some(ts);
            }
        }
        for k in remove {
            active.remove(&k);
        }
        let live = active
            .values()
            .filter(|a| a.state != AlertState::Inactive)
            .count();
        if self.config.limit > 0 && live > self.config.limit {
            active.clear();
            return Err(format!(
                "exceeded limit of {} with {live} alerts",
                self.config.limit
            ));
        }
        for a in active.values().filter(|a| a.state != AlertState::Inactive) {
            let mut b = a.labels.to_builder();
            b.set("__name__", "ALERTS")
                .set("alertstate", a.state.as_str());
            out.push(SeriesBatch {
                labels: b.build(),
                samples: vec![Sample { t: ts, v: 1.0 }],
            });
            let mut b = a.labels.to_builder();
            b.set("__name__", "ALERTS_FOR_STATE");
            out.push(SeriesBatch {
                labels: b.build(),
                samples: vec![Sample {
                    t: ts,
                    v: a.active_at as f64 / 1000.0,
                }],
            });
        }
        Ok(())
    }
}

/// Runs a rule's expression at `ts`; a scalar result is one sample without labels, as in Prometheus.
async fn query<R: MetricsReader>(
    reader: &R,
    rule: &Rule,
    ts: i64,
    opts: &GroupOptions,
) -> Result<Vec<(Labels, f64)>, String> {
    let v = match rule.expr.clone()? {
        RuleExpr::PromQL(e) => {
            eval::instant(reader, e, ts, &opts.eval)
                .await
                .map_err(|e| e.to_string())?
                .0
        }
        RuleExpr::LogQL { promql, aggs } => {
            let Some(l) = &opts.logs else {
                return Err(
                    "a LogQL rule needs the log store, which this evaluation has not".into(),
                );
            };
            let ns = ts.saturating_mul(1_000_000);
            vigil_query::logql::eval::metric(
                l.reader.clone(),
                promql,
                aggs,
                ns,
                ns,
                1_000_000_000,
                true,
                &l.limits,
            )
            .await
            .map_err(|e| e.to_string())?
            .0
        }
    };
    match v {
        Value::Vector(v) => Ok(v.into_iter().map(|(l, _, x)| (l, x)).collect()),
        Value::Scalar(_, x) => Ok(vec![(Labels::empty(), x)]),
        _ => Err("rule expression must be a scalar or an instant vector".into()),
    }
}

/// Every alert's `activeAt` (ms) from the `ALERTS_FOR_STATE` series of the last hour, by alert name:
/// one query at start-up for all rules.
pub async fn load_alert_state<R: MetricsReader>(
    reader: &R,
    now: i64,
    opts: &GroupOptions,
) -> HashMap<String, HashMap<Labels, i64>> {
    let mut out: HashMap<String, HashMap<Labels, i64>> = HashMap::new();
    let Ok(expr) = eval::parse("last_over_time(ALERTS_FOR_STATE[1h])") else {
        return out;
    };
    if let Ok((Value::Vector(v), _)) = eval::instant(reader, expr, now, &opts.eval).await {
        for (l, _, active_at_s) in v {
            // last_over_time keeps the metric name; alert labels have none.
            let l = l.without_metric_name();
            let name = l.get("alertname").unwrap_or("").to_string();
            out.entry(name)
                .or_default()
                .insert(l, (active_at_s * 1000.0) as i64);
        }
    }
    out
}
