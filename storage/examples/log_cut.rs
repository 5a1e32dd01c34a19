//! The log store's cut alone: lines of a file appended to a store (16 streams, batches of 4,000
//! lines, as `bench/logs.py` pushes them), then one cut writes them as splits; prints the cut's
//! speed and the splits' bytes per raw byte by Tantivy file kind. No HTTP, no JSON: what indexing
//! itself costs, for profiling (`perf record -g`). With `LOG_CUT_TERMS=1`, postings and term
//! dictionary bytes of the `line` field by token class (letters, numbers by digits, mixed, id
//! pieces) and by document frequency.
//!
//! `cargo run --release -p vigil-storage --example log_cut -- FILE [zstd-level]`, or
//! `… -- SPLITS-DIR RAW-BYTES` for the breakdown of a store's splits alone.

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
    if let Some(bytes) = args.get(2).filter(|_| std::path::Path::new(path).is_dir()) {
        // A log store's `splits` directory and the raw bytes it holds: only the breakdown by token.
        terms(
            std::path::Path::new(path),
            bytes.parse().expect("raw bytes"),
        );
        return;
    }
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
    if std::env::var_os("LOG_CUT_TERMS").is_some() {
        terms(&dir.path().join("splits"), raw);
    }
}

/// Postings and term dictionary bytes of the `line` field by token class (`LOG_CUT_TERMS=1`).
fn terms(splits: &std::path::Path, raw: usize) {
    // class -> (terms, doc_freq sum, postings bytes, key bytes)
    let mut classes: BTreeMap<String, (u64, u64, u64, u64)> = BTreeMap::new();
    let mut stack = vec![splits.to_path_buf()];
    while let Some(d) = stack.pop() {
        if d.join("meta.json").exists() {
            let index = tantivy::Index::open_in_dir(&d).expect("open split");
            let field = index.schema().get_field("line").expect("line field");
            let searcher = index.reader().expect("reader").searcher();
            for seg in searcher.segment_readers() {
                let inv = seg.inverted_index(field).expect("inverted index");
                let mut s = inv.terms().stream().expect("stream");
                while s.advance() {
                    let key = s.key();
                    let ti = s.value();
                    let digits = key.iter().filter(|b| b.is_ascii_digit()).count();
                    let class = if key.first() == Some(&b'_') {
                        // The id marker and the 4-digit pieces of id-like tokens.
                        "id-piece".into()
                    } else if digits == key.len() {
                        format!("num{}", key.len().min(9))
                    } else if digits == 0 {
                        if ti.doc_freq == 1 {
                            "alpha-df1".into()
                        } else {
                            "alpha".into()
                        }
                    } else {
                        "mixed".into()
                    };
                    let df = match ti.doc_freq {
                        1 => "df1",
                        2..=16 => "df<=16",
                        17..=1024 => "df<=1k",
                        _ => "df>1k",
                    };
                    for c in [class, format!("~{df}")] {
                        let e = classes.entry(c).or_default();
                        e.0 += 1;
                        e.1 += ti.doc_freq as u64;
                        e.2 += ti.postings_range.len() as u64;
                        e.3 += key.len() as u64;
                    }
                }
            }
        } else if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                if e.path().is_dir() {
                    stack.push(e.path());
                }
            }
        }
    }
    println!(
        "{:<12} {:>10} {:>12} {:>10} {:>10}",
        "class", "terms", "occurrences", "postings", "keys"
    );
    for (c, (n, df, pb, kb)) in &classes {
        println!(
            "{c:<12} {n:>10} {df:>12} {:>10.4} {:>10.4}",
            *pb as f64 / raw as f64,
            *kb as f64 / raw as f64
        );
    }
}
