//! Crash safety: every acknowledged sample survives `kill -9`; a torn or corrupt WAL tail is repaired on
//! start, saying what was dropped, without losing what came before it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use crate::harness::*;
use crate::push::*;

/// Deterministic values with fractional parts and large magnitudes, so any encoding slip shows.
fn value(series: usize, step: i64) -> f64 {
    match series % 3 {
        0 => (step as f64) * 1.5 + series as f64,
        1 => ((series as f64) * 0.37 + step as f64 * 0.011).sin() * 1e6,
        _ => (step * 1000 + series as i64) as f64 / 7.0,
    }
}

/// Writes `batches` batches of `n_series` series × `steps` samples, concurrently from 4 senders; every
/// request must be acknowledged. Returns what was written: `series -> [(t, v)]`.
async fn write_batches(
    url: &str,
    metric: &str,
    t0: i64,
    batches: usize,
    n_series: usize,
    steps: i64,
) -> BTreeMap<String, Vec<(i64, f64)>> {
    let mut written: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    // Each sender owns a disjoint set of series, so per-series order is preserved.
    let mut tasks = Vec::new();
    for sender in 0..4 {
        let url = url.to_string();
        let metric = metric.to_string();
        tasks.push(tokio::spawn(async move {
            let mut mine: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
            for b in 0..batches {
                let mut req = Vec::new();
                for s in (sender..n_series).step_by(4) {
                    let samples: Vec<(i64, f64)> = (0..steps)
                        .map(|i| {
                            let step = b as i64 * steps + i;
                            (t0 + step * 1000, value(s, step))
                        })
                        .collect();
                    let id = format!("s{s:04}");
                    mine.entry(id.clone())
                        .or_default()
                        .extend(samples.iter().copied());
                    req.push(series(
                        &[("__name__", &metric), ("id", &id), ("job", "crash")],
                        samples,
                    ));
                }
                let (status, body) = write_v1(&url, &req).await;
                assert!((200..300).contains(&status), "batch {b}: {status} {body}");
            }
            mine
        }));
    }
    for t in tasks {
        written.extend(t.await.unwrap());
    }
    written
}

/// Everything Vigil holds for `metric`, read as raw samples.
async fn read_back(
    v: &Vigil,
    metric: &str,
    t0: i64,
    end: i64,
) -> BTreeMap<String, Vec<(i64, f64)>> {
    let window = (end - t0) / 1000 + 10;
    let r = v
        .query(&format!("{metric}[{window}s]"), end as f64 / 1000.0)
        .await;
    r.as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let id = e["metric"]["id"].as_str().unwrap().to_string();
            let vals = e["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    (
                        (p[0].as_f64().unwrap() * 1000.0).round() as i64,
                        p[1].as_str().unwrap().parse::<f64>().unwrap(),
                    )
                })
                .collect();
            (id, vals)
        })
        .collect()
}

fn last_wal_segment(data: &std::path::Path) -> PathBuf {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(data.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .chars()
                    .all(|c| c.is_ascii_digit())
        })
        .collect();
    segs.sort();
    segs.pop().expect("a WAL segment")
}

fn now_ms() -> i64 {
    (now_secs() * 1000.0) as i64
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_samples_survive_kill_9() {
    let mut v = Vigil::start("scrape_configs: []\n").await;
    let t0 = now_ms() - 3_600_000;
    let url = v.url("/api/v1/write");
    let written = write_batches(&url, "crash_total", t0, 30, 200, 10).await;
    // kill -9 right after the last 2xx: nothing gets a chance to flush.
    v.kill9();
    v.launch().await;
    let end = t0 + 30 * 10 * 1000;
    let got = read_back(&v, "crash_total", t0, end).await;
    assert_eq!(got.len(), written.len(), "series after restart");
    let total: usize = written.values().map(|s| s.len()).sum();
    assert_eq!(total, 200 * 30 * 10);
    for (id, want) in &written {
        assert_eq!(got.get(id), Some(want), "samples of {id} after kill -9");
    }

    // And once more after a graceful stop: exit code 0, same data.
    let st = v.terminate();
    assert!(st.success(), "SIGTERM exit status {st}");
    assert!(v.log().contains("shutdown complete"), "{}", v.log());
    v.launch().await;
    assert_eq!(read_back(&v, "crash_total", t0, end).await, got);
}

#[tokio::test(flavor = "multi_thread")]
async fn torn_or_corrupt_wal_tail_is_repaired_without_losing_earlier_data() {
    let mut v = Vigil::start("scrape_configs: []\n").await;
    let t0 = now_ms() - 3_600_000;
    let url = v.url("/api/v1/write");
    let first = write_batches(&url, "wal_a", t0, 5, 40, 10).await;
    v.kill9();

    // A torn tail: half a record header and some bytes of a payload that never completed.
    let seg = last_wal_segment(&v.data_dir());
    let before = std::fs::metadata(&seg).unwrap().len();
    let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(&[0x40, 0x00, 0x00, 0x00, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3])
        .unwrap();
    drop(f);
    v.launch().await;
    let log = v.log();
    assert!(
        log.contains("repaired the WAL"),
        "no repair log line:\n{log}"
    );
    assert!(
        log.contains(&format!("{before}")),
        "the log line should say where the tail was cut:\n{log}"
    );
    let end = t0 + 50 * 1000;
    assert_eq!(
        read_back(&v, "wal_a", t0, end).await,
        first,
        "data before the torn tail"
    );

    // New writes go on after the repaired tail; then corrupt a byte inside the last record.
    let second = write_batches(&url, "wal_b", t0, 3, 40, 10).await;
    v.kill9();
    let seg = last_wal_segment(&v.data_dir());
    let mut bytes = std::fs::read(&seg).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0xff;
    std::fs::write(&seg, &bytes).unwrap();
    v.launch().await;
    let log = v.log();
    assert!(
        log.contains("repaired the WAL"),
        "no repair log line:\n{log}"
    );
    assert!(
        log.contains("checksum") || log.contains("crc") || log.contains("corrupt"),
        "the log should say the record was corrupt:\n{log}"
    );
    // Everything of the first writer is intact; of the second, everything but the corrupted last record.
    assert_eq!(read_back(&v, "wal_a", t0, end).await, first);
    let b = read_back(&v, "wal_b", t0, t0 + 30 * 1000).await;
    let kept: usize = b.values().map(|s| s.len()).sum();
    let sent: usize = second.values().map(|s| s.len()).sum();
    assert!(
        kept < sent && kept >= sent - 10 * 40,
        "kept {kept} of {sent} samples of the damaged batch set"
    );
    for (id, s) in &b {
        assert_eq!(
            &second[id][..s.len()],
            &s[..],
            "{id}: kept samples are a prefix of what was written"
        );
    }
    // The repaired store takes writes and survives another restart.
    let (status, body) = write_v1(
        &url,
        &[series(
            &[("__name__", "wal_c"), ("job", "crash")],
            vec![(now_ms(), 1.0)],
        )],
    )
    .await;
    assert_eq!(status, 204, "{body}");
    v.kill9();
    v.launch().await;
    assert_eq!(
        v.query("wal_c", now_secs()).await.as_array().unwrap().len(),
        1
    );
    assert!(
        !v.log().contains("repaired the WAL"),
        "a clean WAL was reported as repaired:\n{}",
        v.log()
    );
}

/// Clients that send the same series at the same time (a retry overlapping the next batch, several
/// shards of one sender): what Vigil held before `kill -9` is exactly what it holds after.
#[tokio::test(flavor = "multi_thread")]
async fn overlapping_writers_then_kill_9_keep_every_acknowledged_sample() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};
    let mut v = Vigil::start("scrape_configs: []\n").await;
    let t0 = now_ms() - 3_600_000;
    let url = v.url("/api/v1/write");
    let next = Arc::new(AtomicI64::new(t0));
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let (url, next) = (url.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut acknowledged = 0;
            for _ in 0..60 {
                let t = next.fetch_add(1000, Ordering::SeqCst);
                let req: Vec<_> = (0..100)
                    .map(|s| {
                        series(
                            &[
                                ("__name__", "overlap"),
                                ("id", &format!("s{s:03}")),
                                ("job", "crash"),
                            ],
                            vec![(t, value(s, t / 1000))],
                        )
                    })
                    .collect();
                let (status, body) = write_v1(&url, &req).await;
                // 204: all stored; 400: some samples were older than what another client had
                // already stored for the series (out of order), the rest stored.
                assert!(status == 204 || status == 400, "{status} {body}");
                acknowledged += (status == 204) as usize;
            }
            acknowledged
        }));
    }
    let mut fully = 0;
    for t in tasks {
        fully += t.await.unwrap();
    }
    let end = next.load(Ordering::SeqCst);
    let before = read_back(&v, "overlap", t0, end).await;
    let held: usize = before.values().map(|s| s.len()).sum();
    assert!(
        held >= fully * 100,
        "held {held}, fully acknowledged requests {fully}"
    );
    v.kill9();
    v.launch().await;
    let after = read_back(&v, "overlap", t0, end).await;
    assert_eq!(after.len(), before.len(), "series after restart");
    for (id, want) in &before {
        assert_eq!(after.get(id), Some(want), "samples of {id} after kill -9");
    }
}

/// A head cut writes a block and then deletes the WAL segments it replaces: the block's files and
/// directories are fsynced before the first segment is unlinked (traced on the real binary).
#[tokio::test(flavor = "multi_thread")]
async fn block_files_are_fsynced_before_wal_segments_are_unlinked() {
    let Some(strace) = tool("strace") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let trace = tmp.path().join("trace");
    let trace_s = trace.display().to_string();
    let v = Vigil::start_wrapped(
        "scrape_configs: []\nbuiltin_rules: false\nstorage:\n  tsdb:\n    block_duration: 1m\n    maintenance_interval: 1s\n",
        &[],
        &[],
        &[
            strace.to_str().unwrap(),
            "-f",
            "-y",
            "-qq",
            "-e",
            "trace=fsync,fdatasync,unlink,unlinkat,rename,renameat,renameat2",
            "-o",
            &trace_s,
        ],
    )
    .await;
    // Ten minutes of samples: the head spans more than 1.5 block durations and is cut.
    let now = now_ms();
    let req: Vec<_> = (0..5)
        .map(|s| {
            series(
                &[
                    ("__name__", "cut"),
                    ("id", &format!("{s}")),
                    ("job", "crash"),
                ],
                (0..600)
                    .map(|i| (now - 600_000 + i * 1000, i as f64))
                    .collect(),
            )
        })
        .collect();
    let (status, body) = write_v1(&v.url("/api/v1/write"), &req).await;
    assert_eq!(status, 204, "{body}");
    let wal_unlink = |line: &str| {
        (line.contains("unlink") || line.contains("unlinkat"))
            && line.split('"').nth(1).is_some_and(|p| {
                p.contains("/wal/")
                    && p.rsplit('/')
                        .next()
                        .is_some_and(|f| f.len() == 8 && f.chars().all(|c| c.is_ascii_digit()))
            })
    };
    let lines = eventually(
        Duration::from_secs(60),
        "a WAL segment deleted after a cut",
        || async {
            let text = std::fs::read_to_string(&trace).unwrap_or_default();
            let lines: Vec<String> = text.lines().map(str::to_string).collect();
            lines.iter().any(|l| wal_unlink(l)).then_some(lines)
        },
    )
    .await;
    let first_unlink = lines.iter().position(|l| wal_unlink(l)).unwrap();
    let before = &lines[..first_unlink];
    let fsynced = |suffix: &str| {
        before.iter().any(|l| {
            (l.contains("fsync(") || l.contains("fdatasync("))
                && l.contains(suffix)
                && l.contains("= 0")
        })
    };
    for f in ["/samples.parquet>", "/series.parquet>", "/meta.json>"] {
        assert!(
            fsynced(f),
            "{f} not fsynced before the WAL segment was unlinked:\n{}",
            before.join("\n")
        );
    }
    assert!(
        fsynced("/blocks>"),
        "blocks/ not fsynced:\n{}",
        before.join("\n")
    );
    // The trace saw the cut: the block is there and queries answer from it.
    let blocks = std::fs::read_dir(v.data_dir().join("blocks"))
        .unwrap()
        .count();
    assert!(blocks > 0);
}

/// A WAL fsync that fails (EIO injected by strace into the real binary's fdatasync of the live
/// segment) makes that write answer 503 with the reason, logs it, sets `vigil_storage_wal_failed`, and
/// every later write is refused without touching the log again, until a restart (without the fault)
/// accepts writes again.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_wal_fsync_refuses_every_later_write_until_restart() {
    let Some(strace) = tool("strace") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let trace = tmp.path().join("trace");
    let trace_s = trace.display().to_string();
    // A fresh WAL opens segment 1; only syscalls on that file are traced and tampered with.
    let mut v = Vigil::prepare("scrape_configs: []\nbuiltin_rules: false\n", &[], &[]);
    let segment = v.data_dir().join("wal/00000001").display().to_string();
    v.wrapper = [
        strace.to_str().unwrap(),
        "-f",
        "-qq",
        "-P",
        &segment,
        "-e",
        "trace=write,pwrite64,writev,fdatasync",
        "-e",
        "inject=fdatasync:error=EIO",
        "-o",
        &trace_s,
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    v.launch().await;
    let url = v.url("/api/v1/write");
    let now = now_ms();
    let req = |i: i64| {
        vec![series(
            &[("__name__", "walfail"), ("job", "crash")],
            vec![(now + i * 1000, i as f64)],
        )]
    };
    let (status, body) = write_v1(&url, &req(0)).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("WAL") || body.contains("wal"), "{body}");
    assert!(
        body.contains("Input/output error") || body.contains("EIO") || body.contains("os error 5"),
        "the 503 says why: {body}"
    );
    let fdatasyncs = || {
        std::fs::read_to_string(&trace)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("fdatasync("))
            .count()
    };
    let attempts = fdatasyncs();
    assert!(attempts >= 1, "no fdatasync traced on {segment}");
    for i in 1..4 {
        let (status, body) = write_v1(&url, &req(i)).await;
        assert_eq!(status, 503, "write {i} after the failure: {body}");
        assert!(body.contains("until restart"), "{body}");
    }
    assert_eq!(
        fdatasyncs(),
        attempts,
        "the failed WAL was synced again instead of refusing at once"
    );
    let metrics = v.metrics_text().await;
    assert!(
        metrics.lines().any(|l| l == "vigil_storage_wal_failed 1"),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("wal_failed"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let log = std::fs::read_to_string(&v.proc.as_ref().unwrap().log).unwrap();
    assert!(
        log.contains("refusing every write until restart"),
        "the reason is logged:\n{log}"
    );
    // A restart without the fault replays the log and accepts writes again.
    v.kill9();
    v.wrapper.clear();
    v.launch().await;
    let (status, body) = write_v1(&url, &req(10)).await;
    assert_eq!(status, 204, "{body}");
    let metrics = v.metrics_text().await;
    assert!(metrics.lines().any(|l| l == "vigil_storage_wal_failed 0"));
}
