//! Live heap per head series, counted by a counting allocator (no allocator retention, no thread
//! caches: what the head's structures themselves hold).
//!
//! `cargo run --release -p vigil-storage --example head_memory -- [instances] [samples] [threads]`
//!
//! The series are shaped like `rw-push`'s (48 per instance: CPU counters, memory and temperature
//! gauges, HTTP counters and histogram buckets, 4-6 labels each), appended the way remote write
//! delivers them: one sample per series per batch, 1,800 series per batch, each batch fsynced.

use std::alloc::{GlobalAlloc, Layout};

use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};
use tikv_jemallocator::Jemalloc;

use vigil_model::{Labels, Sample};
use vigil_storage::{MetricsAppender, SeriesBatch, StorageConfig, StorageMetrics, Tsdb};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static BLOCKS: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        BLOCKS.fetch_add(1, Ordering::Relaxed);
        unsafe { Jemalloc.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        BLOCKS.fetch_sub(1, Ordering::Relaxed);
        unsafe { Jemalloc.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { Jemalloc.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// How a series' value moves from one sample to the next, after rw-push's data set.
#[derive(Clone, Copy)]
enum Kind {
    /// A counter growing by a random rate, three decimals (CPU seconds).
    Seconds(f64),
    /// A gauge walking in whole bytes.
    Bytes,
    Constant,
    /// Around 40 with two decimals.
    Celsius,
    /// A counter of whole events growing by about `n` a step (requests, histogram buckets).
    Events(f64),
}

impl Kind {
    fn next(self, v: f64, step: i64, r: f64) -> f64 {
        match self {
            Kind::Seconds(rate) => ((v + 15.0 * rate * (0.5 + r)) * 1e3).round() / 1e3,
            Kind::Bytes => (v + (r - 0.5) * 1e8).max(1e8).trunc(),
            Kind::Constant => v,
            Kind::Celsius => {
                ((40.0 + 10.0 * (step as f64 / 17.0).sin() + 2.0 * r - 1.0) * 100.0).round() / 100.0
            }
            Kind::Events(n) => v + (n * (0.7 + 0.6 * r)).round(),
        }
    }
}

fn series_of(i: usize) -> Vec<(Labels, Kind)> {
    let inst = format!("host-{i:04}:9100");
    let zone = ["eu-west", "us-east", "ap-south"][i % 3];
    let node = |name: &str, extra: &[(&str, &str)]| {
        let mut p = vec![
            ("__name__", name),
            ("instance", inst.as_str()),
            ("job", "node"),
            ("zone", zone),
        ];
        p.extend_from_slice(extra);
        Labels::from_pairs(p)
    };
    let mut out = Vec::new();
    for (mode, rate) in [
        ("user", 0.3),
        ("system", 0.1),
        ("idle", 0.55),
        ("iowait", 0.05),
    ] {
        for cpu in ["0", "1"] {
            out.push((
                node("demo_cpu_seconds_total", &[("mode", mode), ("cpu", cpu)]),
                Kind::Seconds(rate),
            ));
        }
    }
    for (name, kind) in [
        ("demo_memory_used_bytes", Kind::Bytes),
        ("demo_memory_total_bytes", Kind::Constant),
        ("demo_temperature_celsius", Kind::Celsius),
        ("demo_up", Kind::Constant),
        ("demo_batch_items_processed", Kind::Events(1.0)),
        ("demo_sessions_active", Kind::Events(0.0)),
    ] {
        out.push((node(name, &[]), kind));
    }
    let api = |name: &str, extra: &[(&str, &str)]| {
        let mut p = vec![
            ("__name__", name),
            ("instance", inst.as_str()),
            ("job", "api"),
            ("zone", zone),
        ];
        p.extend_from_slice(extra);
        Labels::from_pairs(p)
    };
    for method in ["GET", "POST"] {
        for (status, n) in [("200", 300.0), ("404", 15.0), ("500", 3.0)] {
            out.push((
                api(
                    "demo_http_requests_total",
                    &[("method", method), ("status", status)],
                ),
                Kind::Events(n),
            ));
        }
        for (b, le) in [
            "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
        ]
        .into_iter()
        .enumerate()
        {
            out.push((
                api(
                    "demo_http_request_duration_seconds_bucket",
                    &[("method", method), ("le", le)],
                ),
                Kind::Events(300.0 * (b as f64 + 1.0) / 12.0),
            ));
        }
        out.push((
            api(
                "demo_http_request_duration_seconds_sum",
                &[("method", method)],
            ),
            Kind::Seconds(2.0),
        ));
        out.push((
            api(
                "demo_http_request_duration_seconds_count",
                &[("method", method)],
            ),
            Kind::Events(300.0),
        ));
    }
    out
}

/// Resident set size of this process, from /proc.
fn rss() -> isize {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: isize = s
        .split(' ')
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn main() {
    // As `vigil serve` does (src/main.rs): no transparent huge pages. jemalloc's options are the
    // server's, compiled in from .cargo/config.toml.
    // SAFETY: prctl sets one flag of this process.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
    let mut args = std::env::args().skip(1);
    let instances: usize = args.next().map_or(2100, |a| a.parse().expect("instances"));
    let steps: i64 = args.next().map_or(60, |a| a.parse().expect("samples"));
    let threads: usize = args.next().map_or(1, |a| a.parse().expect("threads"));
    let dir = std::env::temp_dir().join(format!("vigil-head-memory-{}", std::process::id()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let cfg = StorageConfig {
        data_dir: dir.clone(),
        section: Default::default(),
    };
    let db = rt
        .block_on(Tsdb::open(cfg, Arc::new(StorageMetrics::default())))
        .expect("open");
    let before = LIVE.load(Ordering::Relaxed);
    let rss_before = rss();
    let blocks_before = BLOCKS.load(Ordering::Relaxed);
    let all: Vec<(Labels, Kind)> = (0..instances).flat_map(series_of).collect();
    let n = all.len();
    // What the driver itself holds, taken off the figures below.
    let driver =
        (n * (std::mem::size_of::<(Labels, Kind)>() + std::mem::size_of::<f64>())) as isize;
    let t0 = 1_700_000_000_000i64;
    // Per batch of 1,800 series: their current values and a random state.
    let batches: Vec<parking_lot::Mutex<(Vec<f64>, u64)>> = all
        .chunks(1800)
        .enumerate()
        .map(|(c, chunk)| {
            let values = (0..chunk.len()).map(|i| (i % 1000) as f64 * 1e6).collect();
            parking_lot::Mutex::new((values, 0x2545_f491_4f6c_dd1d ^ c as u64))
        })
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let barrier = std::sync::Barrier::new(threads);
    let after_first = std::sync::atomic::AtomicIsize::new(0);
    // Like the server's blocking threads: every worker takes the next batch of the current step.
    std::thread::scope(|scope| {
        for w in 0..threads {
            let (all, batches, next, barrier, db) = (&all, &batches, &next, &barrier, &db);
            let after_first = &after_first;
            scope.spawn(move || {
                for step in 0..steps {
                    loop {
                        let c = next.fetch_add(1, Ordering::Relaxed);
                        let Some(state) = batches.get(c) else { break };
                        let mut state = state.lock();
                        let (values, seed) = &mut *state;
                        let chunk = &all[c * 1800..(c * 1800 + 1800).min(all.len())];
                        let batch: Vec<SeriesBatch> = chunk
                            .iter()
                            .zip(values.iter_mut())
                            .map(|((l, kind), v)| {
                                *seed ^= *seed << 13;
                                *seed ^= *seed >> 7;
                                *seed ^= *seed << 17;
                                *v = kind.next(*v, step, (*seed % 10_000) as f64 / 10_000.0);
                                SeriesBatch {
                                    labels: l.clone(),
                                    samples: vec![Sample {
                                        t: t0 + step * 15_000,
                                        v: *v,
                                    }],
                                }
                            })
                            .collect();
                        db.append(&batch).expect("append");
                    }
                    if barrier.wait().is_leader() {
                        next.store(0, Ordering::Relaxed);
                        if step == 0 {
                            after_first.store(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
                        }
                    }
                    barrier.wait();
                    let _ = w;
                }
            });
        }
    });
    let after_first = after_first.load(Ordering::Relaxed) - driver;
    let labels_bytes: usize = all.iter().map(|(l, _)| l.packed().len()).sum();
    drop(all);
    drop(batches);
    let after = LIVE.load(Ordering::Relaxed);
    let rss_after = rss();
    let per = |b: isize| b as f64 / n as f64;
    println!("series {n}, samples per series {steps}");
    println!(
        "live heap per series: {:.0} B after the first sample (series, labels, index), {:.0} B after all samples",
        per(after_first - before),
        per(after - before)
    );
    println!(
        "of which packed labels {:.0} B; allocations per series {:.1}",
        labels_bytes as f64 / n as f64,
        (BLOCKS.load(Ordering::Relaxed) - blocks_before) as f64 / n as f64
    );
    println!(
        "resident memory growth per series: {:.0} B",
        per(rss_after - rss_before)
    );
    rt.block_on(db.close()).expect("close");
    let _ = std::fs::remove_dir_all(dir);
}
