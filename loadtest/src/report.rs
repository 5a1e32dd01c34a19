//! The report of a run: requests, errors and latency percentiles (HDR histograms) before, during
//! and after the incident; when the service recovered; and, from Vigil, when the alert fired and
//! when the runbook acted, as times from the fault.

use std::time::Duration;

use serde::Serialize;

use crate::fault::FaultEvent;
use crate::load::{Outcome, Sample, histogram};
use crate::scenario::{RecoveryConfig, Scenario};

/// Requests and latency over a stretch of the run (by scheduled start).
#[derive(Debug, Clone, Serialize)]
pub struct Stretch {
    pub name: String,
    pub from_s: f64,
    pub to_s: f64,
    pub requests: u64,
    pub ok: u64,
    pub errors: u64,
    pub error_rate: f64,
    /// Requests a second answered, over the stretch.
    pub rate: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// The errors by kind: `status` (with each HTTP status), `error` (no answer), `timeout`.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub error_kinds: std::collections::BTreeMap<String, u64>,
}

/// Percentiles and counts of `samples` scheduled in [from, to) microseconds.
pub fn stretch(name: &str, samples: &[Sample], from_us: u64, to_us: u64) -> Stretch {
    let mut h = histogram();
    let (mut requests, mut ok) = (0, 0);
    let mut kinds = std::collections::BTreeMap::new();
    for s in samples
        .iter()
        .filter(|s| s.start_us >= from_us && s.start_us < to_us)
    {
        requests += 1;
        match s.outcome {
            Outcome::Ok => ok += 1,
            Outcome::Status => *kinds.entry(format!("status {}", s.status)).or_insert(0) += 1,
            o => *kinds.entry(o.name().to_string()).or_insert(0) += 1,
        }
        let _ = h.record(s.latency_us.max(1));
    }
    let ms = |q: f64| {
        if requests == 0 {
            0.0
        } else {
            h.value_at_quantile(q) as f64 / 1000.0
        }
    };
    let secs = (to_us.saturating_sub(from_us)) as f64 / 1e6;
    Stretch {
        name: name.to_string(),
        from_s: from_us as f64 / 1e6,
        to_s: to_us as f64 / 1e6,
        requests,
        ok,
        errors: requests - ok,
        error_rate: if requests == 0 {
            0.0
        } else {
            (requests - ok) as f64 / requests as f64
        },
        rate: if secs > 0.0 { ok as f64 / secs } else { 0.0 },
        p50_ms: ms(0.5),
        p90_ms: ms(0.9),
        p99_ms: ms(0.99),
        max_ms: if requests == 0 {
            0.0
        } else {
            h.max() as f64 / 1000.0
        },
        error_kinds: kinds,
    }
}

/// When the service recovered after a fault at `fault_us`: the start of the first run of requests
/// lasting `stable` in which every one succeeded within `slow`, after the first request the fault
/// hurt. `impact_us` is that first hurt request (None: none was, recovery is immediate).
#[derive(Debug, Clone, Serialize)]
pub struct Recovery {
    pub fault_s: f64,
    pub first_impact_s: Option<f64>,
    pub recovered_s: Option<f64>,
    /// Recovered minus fault, seconds; None when it did not recover within the run.
    pub time_to_recover_s: Option<f64>,
    pub slow_ms: f64,
    pub stable_s: f64,
}

pub fn recovery(samples: &[Sample], fault_us: u64, cfg: &RecoveryConfig) -> Recovery {
    let mut sorted: Vec<&Sample> = samples.iter().collect();
    sorted.sort_by_key(|s| s.start_us);
    let before = stretch("before", samples, 0, fault_us);
    let slow = cfg.slow.unwrap_or_else(|| {
        Duration::from_micros(((before.p99_ms * 1000.0) as u64 * 5).max(100_000))
    });
    let slow_us = slow.as_micros() as u64;
    let stable_us = cfg.stable.as_micros() as u64;
    let hurt = |s: &Sample| s.outcome != Outcome::Ok || s.latency_us > slow_us;
    let after: Vec<&&Sample> = sorted.iter().filter(|s| s.start_us >= fault_us).collect();
    let first_impact = after.iter().position(|s| hurt(s));
    let mut recovered = None;
    match first_impact {
        None => recovered = Some(fault_us),
        Some(i) => {
            let mut streak: Option<u64> = None;
            for s in &after[i..] {
                if hurt(s) {
                    streak = None;
                    continue;
                }
                let from = *streak.get_or_insert(s.start_us);
                if s.start_us - from >= stable_us {
                    recovered = Some(from);
                    break;
                }
            }
        }
    }
    Recovery {
        fault_s: fault_us as f64 / 1e6,
        first_impact_s: first_impact.map(|i| after[i].start_us as f64 / 1e6),
        recovered_s: recovered.map(|r| r as f64 / 1e6),
        time_to_recover_s: recovered.map(|r| (r - fault_us) as f64 / 1e6),
        slow_ms: slow.as_secs_f64() * 1000.0,
        stable_s: cfg.stable.as_secs_f64(),
    }
}

/// What Vigil saw of the incident.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VigilView {
    /// The alert that fired first after the fault, and when (seconds after the fault).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_to_detect_s: Option<f64>,
    /// The first runbook execution after the fault: its first action, and its end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runbook: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_to_remediate_s: Option<f64>,
    /// The execution's own record: detected, acted, recovered (seconds after the fault).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<serde_json::Value>,
    /// The Recovery view of this run.
    pub link: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    /// Unix milliseconds when the load started and ended.
    pub started_ms: i64,
    pub ended_ms: i64,
    pub duration_s: f64,
    pub rate: f64,
    pub total: Stretch,
    pub faults: Vec<FaultEvent>,
    /// before, during and after the incident (only `total` without a fault).
    pub stretches: Vec<Stretch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery: Option<Recovery>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vigil: Option<VigilView>,
    /// Metrics pushes that failed (the first few reasons).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub push_errors: Vec<String>,
}

impl Report {
    pub fn build(
        s: &Scenario,
        samples: &[Sample],
        faults: Vec<FaultEvent>,
        started_ms: i64,
        ended_ms: i64,
    ) -> Report {
        let end_us = samples
            .iter()
            .map(|x| x.start_us + 1)
            .max()
            .unwrap_or(0)
            .max(s.load.duration.as_micros() as u64);
        let total = stretch("total", samples, 0, end_us);
        let fault = faults
            .iter()
            .filter(|f| f.error.is_none())
            .map(|f| f.offset_ms * 1000)
            .min();
        let (stretches, recovery) = match fault {
            None => (vec![], None),
            Some(f) => {
                let r = recovery(samples, f, &s.recovery);
                let until = r.recovered_s.map(|x| (x * 1e6) as u64).unwrap_or(end_us);
                (
                    vec![
                        stretch("before", samples, 0, f),
                        stretch("during", samples, f, until),
                        stretch("after", samples, until, end_us),
                    ],
                    Some(r),
                )
            }
        };
        Report {
            scenario: s.name.clone(),
            started_ms,
            ended_ms,
            duration_s: (ended_ms - started_ms) as f64 / 1e3,
            rate: s.load.rate,
            total,
            faults,
            stretches,
            recovery,
            vigil: None,
            push_errors: Vec::new(),
        }
    }

    /// The report as text, for the terminal.
    pub fn text(&self) -> String {
        use std::fmt::Write;
        let mut o = String::new();
        let t = &self.total;
        let _ = writeln!(
            o,
            "loadtest {}: {:.1} s at {}/s, {} requests, {} ok, {} errors ({:.2}%)",
            self.scenario,
            self.duration_s,
            self.rate,
            t.requests,
            t.ok,
            t.errors,
            t.error_rate * 100.0
        );
        for f in &self.faults {
            match &f.error {
                None => {
                    let _ = writeln!(
                        o,
                        "fault {}: {} at {:.2} s",
                        f.index,
                        f.what,
                        f.offset_ms as f64 / 1e3
                    );
                }
                Some(e) => {
                    let _ = writeln!(
                        o,
                        "fault {}: FAILED at {:.2} s: {e}",
                        f.index,
                        f.offset_ms as f64 / 1e3
                    );
                }
            }
        }
        let secs = |x: Option<f64>| x.map(|v| format!("{v:.2} s")).unwrap_or_else(|| "-".into());
        if let Some(v) = &self.vigil {
            let _ = writeln!(
                o,
                "time to detect     {}{}",
                secs(v.time_to_detect_s),
                v.alert
                    .as_deref()
                    .map(|a| format!("  (alert {a})"))
                    .unwrap_or_default()
            );
            let _ = writeln!(
                o,
                "time to remediate  {}{}",
                secs(v.time_to_remediate_s),
                match (&v.runbook, &v.execution, &v.outcome) {
                    (Some(r), Some(e), Some(out)) =>
                        format!("  (runbook {r}, execution {e}, {out})"),
                    _ => String::new(),
                }
            );
        }
        if let Some(r) = &self.recovery {
            let _ = writeln!(
                o,
                "time to recover    {}  ({:.1} s in a row without an error or an answer over {:.0} ms)",
                secs(r.time_to_recover_s),
                r.stable_s,
                r.slow_ms
            );
        }
        let _ = writeln!(
            o,
            "{:<24} {:>9} {:>8} {:>7} {:>9} {:>9} {:>9} {:>9}",
            "", "requests", "errors", "err %", "p50 ms", "p90 ms", "p99 ms", "max ms"
        );
        let rows: Vec<&Stretch> = if self.stretches.is_empty() {
            vec![&self.total]
        } else {
            self.stretches
                .iter()
                .chain(std::iter::once(&self.total))
                .collect()
        };
        for s in rows {
            let _ = writeln!(
                o,
                "{:<24} {:>9} {:>8} {:>7.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                format!("{} ({:.1}-{:.1} s)", s.name, s.from_s, s.to_s),
                s.requests,
                s.errors,
                s.error_rate * 100.0,
                s.p50_ms,
                s.p90_ms,
                s.p99_ms,
                s.max_ms
            );
        }
        if !self.total.error_kinds.is_empty() {
            let kinds: Vec<String> = self
                .total
                .error_kinds
                .iter()
                .map(|(k, n)| format!("{k}: {n}"))
                .collect();
            let _ = writeln!(o, "errors by kind: {}", kinds.join(", "));
        }
        if let Some(v) = &self.vigil {
            let _ = writeln!(o, "Recovery view: {}", v.link);
            for e in &v.errors {
                let _ = writeln!(o, "(from Vigil: {e})");
            }
        }
        for e in &self.push_errors {
            let _ = writeln!(o, "(metrics push: {e})");
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(start_ms: u64, latency_ms: u64, ok: bool) -> Sample {
        Sample {
            start_us: start_ms * 1000,
            latency_us: latency_ms * 1000,
            target: 0,
            outcome: if ok { Outcome::Ok } else { Outcome::Error },
            status: if ok { 200 } else { 0 },
        }
    }

    #[test]
    fn recovery_is_the_start_of_the_first_stable_run_after_the_impact() {
        // 100 ms apart: fine until 10 s, the fault at 10 s, errors from 10.5 s to 12 s, one
        // more error at 13 s, fine after.
        let mut v = Vec::new();
        for i in 0..300u64 {
            let t = i * 100;
            let bad = (10_500..12_000).contains(&t) || t == 13_000;
            v.push(s(t, 2, !bad));
        }
        let cfg = RecoveryConfig {
            stable: Duration::from_secs(5),
            slow: None,
        };
        let r = recovery(&v, 10_000_000, &cfg);
        assert_eq!(r.first_impact_s, Some(10.5));
        assert_eq!(r.recovered_s, Some(13.1));
        assert!((r.time_to_recover_s.unwrap() - 3.1).abs() < 1e-9);
        assert_eq!(r.slow_ms, 100.0, "5 x p99 (2 ms) is under the 100 ms floor");
        // Slow answers count as impact too.
        let slow: Vec<Sample> = (0..300u64)
            .map(|i| {
                s(
                    i * 100,
                    if (11_000..12_000).contains(&(i * 100)) {
                        400
                    } else {
                        2
                    },
                    true,
                )
            })
            .collect();
        let r = recovery(&slow, 10_000_000, &cfg);
        assert_eq!(r.recovered_s, Some(12.0));
        // Never stable again: not recovered.
        let bad: Vec<Sample> = (0..300u64)
            .map(|i| s(i * 100, 2, i * 100 < 10_000 || i % 10 != 0))
            .collect();
        assert_eq!(recovery(&bad, 10_000_000, &cfg).recovered_s, None);
        let st = stretch("x", &v, 0, 10_000_000);
        assert_eq!((st.requests, st.errors), (100, 0));
        assert!((st.p99_ms - 2.0).abs() < 0.01, "{st:?}");
    }
}
