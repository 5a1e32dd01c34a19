//! The log store's cut alone: lines of a file appended to a store (16 streams, batches of 4,000
//! lines, as `bench/logs.py` pushes them), then one cut writes them as splits; prints the cut's
//! speed and the splits' bytes per raw byte by Tantivy file kind. No HTTP, no JSON: what indexing
//! itself costs, for profiling (`perf record -g`).
//!
//! `cargo run --release -p vigil-storage --example log_cut -- FILE [zstd-level]`

use std::collections::BTreeMap;
use std::time::Instant;

use tikv_jemallocator::Jemalloc;
use vigil_model::{Labels, LogEntry, LogStream};
use vigil_storage::LogsConfig;
use vigil_storage::logs::{LogStore, LogsMetrics};

#[global_allocator]
static GLOBAL: Jemalloc = Jemalloc;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).expect("usage: log_cut FILE [zstd-level]");
    let text = std::fs::read_to_string(path).expect("read the lines");
    let mut cfg = LogsConfig::default();
    if let Some(l) = args.get(2) {
        cfg.docstore_zstd_level = l.parse().expect("a zstd level");
    }
    cfg.max_unindexed_bytes.0 = 0;
    cfg.head_max_bytes.0 = u64::MAX;
    let dir = tempfile::tempdir().expect("temp dir");
    let store = LogStore::open(dir.path(), cfg, LogsMetrics::default()).expect("open");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let mut ts = now - 3_600_000_000_000;
    let lines: Vec<&str> = text.lines().collect();
    let raw: usize = lines.iter().map(|l| l.len()).sum();
    let t0 = Instant::now();
    for (k, batch) in lines.chunks(4000).enumerate() {
        let labels = Labels::from_pairs([
            ("job", "nginx".to_string()),
            ("host", format!("web-{}", k % 16)),
            ("env", "prod".to_string()),
        ]);
        let entries = batch
            .iter()
            .map(|l| {
                ts += 1000;
                LogEntry {
                    ts,
                    line: l.to_string(),
                    metadata: Vec::new(),
                }
            })
            .collect();
        store
            .append(vec![LogStream { labels, entries }])
            .expect("append");
    }
    let appended = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    store.cut().expect("cut");
    let cut = t1.elapsed().as_secs_f64();
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    let mut stack = vec![dir.path().join("splits")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let name = e.file_name().to_string_lossy().into_owned();
                let kind = name
                    .rsplit_once('.')
                    .map_or("other", |(_, k)| k)
                    .to_string();
                *kinds.entry(kind).or_default() += e.metadata().unwrap().len();
            }
        }
    }
    let total: u64 = kinds.values().sum();
    println!(
        "{} lines, {:.1} MB: appended in {appended:.2} s ({:.1} MB/s), cut in {cut:.2} s ({:.1} MB/s)",
        lines.len(),
        raw as f64 / 1e6,
        raw as f64 / appended / 1e6,
        raw as f64 / cut / 1e6
    );
    print!("disk per raw byte {:.4}:", total as f64 / raw as f64);
    for (k, v) in &kinds {
        print!(" {k} {:.4}", *v as f64 / raw as f64);
    }
    println!();
}
