//! The open-model load: a scheduler sends each request at its scheduled time (catching up at once
//! when it is late, without moving the schedule), a semaphore caps the requests in flight (a
//! request waiting for a slot keeps its scheduled start), and every answer becomes a [`Sample`]
//! whose latency counts from the scheduled start: wrk2's correction of coordinated omission.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::{Semaphore, mpsc};

use crate::scenario::Scenario;

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A 1xx-3xx answer, read to its end.
    Ok,
    /// A 4xx or 5xx answer.
    Status,
    /// No answer: refused, reset, DNS, TLS.
    Error,
    /// No answer within the target's timeout.
    Timeout,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [
        Outcome::Ok,
        Outcome::Status,
        Outcome::Error,
        Outcome::Timeout,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Status => "status",
            Outcome::Error => "error",
            Outcome::Timeout => "timeout",
        }
    }
}

/// One request.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Scheduled start, microseconds after the load began.
    pub start_us: u64,
    /// From the scheduled start to the end of the answer (or the error).
    pub latency_us: u64,
    pub target: usize,
    pub outcome: Outcome,
    pub status: u16,
}

/// What the progress line and the pushed metrics show, updated as answers come.
pub struct Live {
    /// Per target, per outcome (indexed as [`Outcome::ALL`]).
    pub counts: Vec<[AtomicU64; 4]>,
    /// Latencies of the current second (all targets), microseconds.
    pub window: Mutex<Histogram<u64>>,
    pub sent: AtomicU64,
}

impl Live {
    pub fn new(targets: usize) -> Live {
        Live {
            counts: (0..targets)
                .map(|_| std::array::from_fn(|_| AtomicU64::new(0)))
                .collect(),
            window: Mutex::new(histogram()),
            sent: AtomicU64::new(0),
        }
    }

    fn record(&self, s: &Sample) {
        let i = Outcome::ALL
            .iter()
            .position(|o| *o == s.outcome)
            .unwrap_or(0);
        self.counts[s.target][i].fetch_add(1, Ordering::Relaxed);
        let _ = self.window.lock().record(s.latency_us.max(1));
    }

    /// Takes the current second's histogram, leaving an empty one.
    pub fn rotate(&self) -> Histogram<u64> {
        std::mem::replace(&mut *self.window.lock(), histogram())
    }
}

/// A histogram of microseconds from 1 µs to an hour, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// The load's running state, shared with the progress line, the pusher and the faults.
pub struct Running {
    pub started: Instant,
    pub live: Live,
    pub in_flight: Arc<Semaphore>,
    pub max_in_flight: usize,
}

impl Running {
    pub fn in_flight(&self) -> usize {
        self.max_in_flight - self.in_flight.available_permits()
    }
}

/// Builds the HTTP client: a pool as large as the in-flight cap, no redirects followed silently
/// beyond reqwest's default, Nagle off.
pub fn client(s: &Scenario) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(s.load.max_in_flight)
        .tcp_nodelay(true)
        .build()
        .map_err(|e| format!("HTTP client: {e}"))
}

/// Runs the load to its end; answers every sample, in no particular order.
pub async fn run(s: &Scenario, client: reqwest::Client, state: Arc<Running>) -> Vec<Sample> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Sample>();
    let st = state.clone();
    let collector = tokio::spawn(async move {
        let mut all = Vec::new();
        while let Some(sample) = rx.recv().await {
            st.live.record(&sample);
            all.push(sample);
        }
        all
    });
    // Targets in turn, by weight.
    let order: Vec<usize> = s
        .targets
        .iter()
        .enumerate()
        .flat_map(|(i, t)| std::iter::repeat_n(i, t.weight as usize))
        .collect();
    let targets: Arc<Vec<_>> = Arc::new(
        s.targets
            .iter()
            .map(|t| {
                (
                    reqwest::Method::from_bytes(t.method.as_bytes())
                        .unwrap_or(reqwest::Method::GET),
                    t.clone(),
                )
            })
            .collect(),
    );
    let t0 = state.started;
    let mut next = Duration::ZERO;
    let mut n: usize = 0;
    while next < s.load.duration {
        let at = t0 + next;
        if at > Instant::now() {
            tokio::time::sleep_until(at.into()).await;
        }
        let which = order[n % order.len()];
        n += 1;
        state.live.sent.fetch_add(1, Ordering::Relaxed);
        let (client, tx, targets, sem) = (
            client.clone(),
            tx.clone(),
            targets.clone(),
            state.in_flight.clone(),
        );
        let scheduled = next;
        tokio::spawn(async move {
            // Waiting for a slot counts: the latency runs from the scheduled start.
            let Ok(_permit) = sem.acquire_owned().await else {
                return;
            };
            let (method, t) = &targets[which];
            let mut req = client.request(method.clone(), &t.url);
            for (k, v) in &t.headers {
                req = req.header(k, v);
            }
            if !t.body.is_empty() {
                req = req.body(t.body.clone());
            }
            let sent = async {
                let r = req.send().await?;
                let status = r.status();
                r.bytes().await?;
                Ok::<_, reqwest::Error>(status)
            };
            let (outcome, status) = match tokio::time::timeout(t.timeout, sent).await {
                Ok(Ok(st)) if st.as_u16() < 400 => (Outcome::Ok, st.as_u16()),
                Ok(Ok(st)) => (Outcome::Status, st.as_u16()),
                Ok(Err(e)) if e.is_timeout() => (Outcome::Timeout, 0),
                Ok(Err(_)) => (Outcome::Error, 0),
                Err(_) => (Outcome::Timeout, 0),
            };
            let latency = t0.elapsed().saturating_sub(scheduled);
            let _ = tx.send(Sample {
                start_us: scheduled.as_micros() as u64,
                latency_us: latency.as_micros() as u64,
                target: which,
                outcome,
                status,
            });
        });
        let rate = s.rate_at(next).max(1e-3);
        next += Duration::from_secs_f64(1.0 / rate);
    }
    drop(tx);
    collector.await.unwrap_or_default()
}
