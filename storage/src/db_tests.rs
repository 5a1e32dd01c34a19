//! Tests of the whole store: head, WAL, blocks, compaction, retention, restart.

use std::sync::Arc;

use vigil_model::{Labels, MatchOp, Matcher, Sample};

use crate::append::{MetricsAppender, RejectReason, SeriesBatch};
use crate::config::{ByteSize, StorageConfig, StorageSection};
use crate::metrics::StorageMetrics;
use crate::reader::MetricsReader;
use crate::{SeriesData, Tsdb};

const H: i64 = 3600 * 1000;

fn cfg(dir: &std::path::Path) -> StorageConfig {
    let mut section = StorageSection::default();
    section.tsdb.block_duration = vigil_model::PromDuration::from_secs(3600);
    section.tsdb.block_zstd_level = 3;
    StorageConfig {
        data_dir: dir.to_path_buf(),
        section,
    }
}

async fn open(c: StorageConfig) -> Arc<Tsdb> {
    Tsdb::open(c, Arc::new(StorageMetrics::default()))
        .await
        .unwrap()
}

/// 10 series, one sample every 15 s from `from` to `to` (exclusive), value = f(series, t).
fn batches(from: i64, to: i64) -> Vec<Vec<SeriesBatch>> {
    let mut out = Vec::new();
    let mut t = from;
    while t < to {
        let hi = (t + 20 * 15_000).min(to);
        let batch = (0..10)
            .map(|i| SeriesBatch {
                labels: Labels::from_pairs([
                    ("__name__", "m"),
                    ("i", &i.to_string()),
                    ("job", if i % 2 == 0 { "even" } else { "odd" }),
                ]),
                samples: (t..hi)
                    .step_by(15_000)
                    .map(|ts| Sample {
                        t: ts,
                        v: (ts / 1000) as f64 * 0.25 + i as f64,
                    })
                    .collect(),
            })
            .collect();
        out.push(batch);
        t = hi;
    }
    out
}

fn flat(d: &[SeriesData]) -> Vec<(String, Vec<(i64, u64)>)> {
    d.iter()
        .map(|s| {
            (
                s.labels.to_string(),
                s.timestamps
                    .values()
                    .iter()
                    .zip(s.values.values().iter())
                    .map(|(t, v)| (*t, v.to_bits()))
                    .collect(),
            )
        })
        .collect()
}

async fn all(db: &Tsdb, lo: i64, hi: i64) -> Vec<(String, Vec<(i64, u64)>)> {
    flat(
        &db.select(&[Matcher::equal("__name__", "m")], lo, hi, 0)
            .await
            .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_cut_compaction_and_restart_keep_answers() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(cfg(dir.path())).await;
    for b in batches(0, 5 * H) {
        let o = db.append(&b).unwrap();
        assert_eq!(o.rejected, 0);
    }
    let before = all(&db, H / 2, 4 * H + 123).await;
    assert_eq!(before.len(), 10);
    // Head spans 5h > 1.5h: cuts until it spans at most 1.5 block durations.
    db.maintain().await.unwrap();
    let metas = db.block_metas();
    assert!(!metas.is_empty(), "no block cut");
    let (lo, hi) = db.head().time_range().unwrap();
    assert!(hi - lo <= 3 * H / 2, "head still spans {}", hi - lo);
    assert_eq!(
        all(&db, H / 2, 4 * H + 123).await,
        before,
        "answer changed after cutting blocks"
    );
    // Blocks 0-1h, 1-2h, 2-3h were compacted into one 3h block.
    assert!(
        db.block_metas().iter().any(|m| m.compaction.level == 2),
        "{:?}",
        db.block_metas()
    );
    assert_eq!(
        all(&db, H / 2, 4 * H + 123).await,
        before,
        "answer changed after compaction"
    );
    // Samples in a persisted range are refused now.
    let o = db
        .append(&[SeriesBatch {
            labels: Labels::from_pairs([("__name__", "m"), ("i", "0"), ("job", "even")]),
            samples: vec![Sample { t: 60_000, v: 1.0 }],
        }])
        .unwrap();
    assert_eq!(o.rejections[0].reason, RejectReason::OutOfBounds);
    db.close().await.unwrap();
    drop(db);
    let db = open(cfg(dir.path())).await;
    assert_eq!(
        all(&db, H / 2, 4 * H + 123).await,
        before,
        "answer changed after restart"
    );
    // And it keeps accepting in-order data.
    let o = db.append(&batches(5 * H, 5 * H + 60_000)[0]).unwrap();
    assert_eq!((o.appended, o.rejected), (40, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matchers_series_and_labels() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(cfg(dir.path())).await;
    for b in batches(0, 4 * H) {
        db.append(&b).unwrap();
    }
    db.maintain().await.unwrap();
    let odd = db
        .select(
            &[
                Matcher::equal("__name__", "m"),
                Matcher::new(MatchOp::Regex, "job", "od.").unwrap(),
            ],
            0,
            4 * H,
            0,
        )
        .await
        .unwrap();
    assert_eq!(odd.len(), 5);
    let series = db
        .series(
            &[
                vec![Matcher::equal("i", "3")],
                vec![Matcher::equal("i", "4")],
            ],
            0,
            4 * H,
            0,
        )
        .await
        .unwrap();
    assert_eq!(series.len(), 2);
    assert_eq!(
        db.label_names(&[], 0, 4 * H, 0).await.unwrap(),
        vec!["__name__", "i", "job"]
    );
    assert_eq!(
        db.label_values("job", &[], 0, 4 * H, 0).await.unwrap(),
        vec!["even", "odd"]
    );
    assert_eq!(
        db.label_values("i", &[vec![Matcher::equal("job", "even")]], 0, 4 * H, 2)
            .await
            .unwrap(),
        vec!["0", "2"]
    );
    // Series with samples only outside the range are not listed.
    assert!(
        db.series(&[vec![Matcher::equal("__name__", "m")]], 10 * H, 11 * H, 0)
            .await
            .unwrap()
            .is_empty()
    );
    // The sample limit refuses big selections with an error, not an allocation.
    let e = db
        .select(&[Matcher::equal("__name__", "m")], 0, 4 * H, 100)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("100 samples"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_order_window_lands_in_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.section.tsdb.out_of_order_time_window = vigil_model::PromDuration::from_secs(3 * 3600);
    let db = open(c.clone()).await;
    let l = Labels::from_pairs([("__name__", "m"), ("i", "x")]);
    let sb = |t: i64, v: f64| SeriesBatch {
        labels: l.clone(),
        samples: vec![Sample { t, v }],
    };
    db.append(&[sb(3 * H, 3.0)]).unwrap();
    // Older than the newest sample but within the window.
    let o = db.append(&[sb(2 * H, 2.0), sb(H, 1.0)]).unwrap();
    assert_eq!((o.appended, o.rejected), (2, 0));
    db.cut_range(0, 2 * H + 1).await.unwrap();
    let got = all(&db, 0, 4 * H).await;
    assert_eq!(
        got[0].1.iter().map(|s| s.0).collect::<Vec<_>>(),
        vec![H, 2 * H, 3 * H]
    );
    db.close().await.unwrap();
    drop(db);
    let db = open(c).await;
    assert_eq!(all(&db, 0, 4 * H).await, got);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_by_time_and_size() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.section.tsdb.compaction = false;
    c.section.tsdb.retention_time = vigil_model::PromDuration::from_secs(2 * 3600);
    let db = open(c.clone()).await;
    for b in batches(0, 6 * H) {
        db.append(&b).unwrap();
    }
    db.maintain().await.unwrap();
    let metas = db.block_metas();
    let newest = metas.iter().map(|m| m.max_time).max().unwrap();
    assert!(
        metas.iter().all(|m| m.max_time >= newest - 2 * H),
        "{metas:?}"
    );
    assert!(
        all(&db, 0, H - 1).await.is_empty(),
        "expired data still answered"
    );
    db.close().await.unwrap();
    drop(db);

    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.section.tsdb.compaction = false;
    c.section.tsdb.retention_size = ByteSize(1);
    let db = open(c).await;
    for b in batches(0, 6 * H) {
        db.append(&b).unwrap();
    }
    db.maintain().await.unwrap();
    assert!(db.block_metas().is_empty(), "size retention kept blocks");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_block_write_is_cleaned_up() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(cfg(dir.path())).await;
    for b in batches(0, 3 * H) {
        db.append(&b).unwrap();
    }
    db.maintain().await.unwrap();
    db.close().await.unwrap();
    drop(db);
    // A block folder without meta.json, as a crash mid-upload leaves it.
    let junk = dir.path().join("blocks/01JUNKJUNKJUNKJUNKJUNKJUNK");
    std::fs::create_dir_all(&junk).unwrap();
    std::fs::write(junk.join("samples.parquet"), b"partial").unwrap();
    let db = open(cfg(dir.path())).await;
    assert!(!junk.join("samples.parquet").exists());
    assert_eq!(all(&db, 0, 3 * H).await.len(), 10);
}

/// Several writers append to the same series at once (a retry overlapping the next batch): the
/// WAL holds the samples in the order the head applied them, so after a crash (no close) replay
/// restores exactly what was acknowledged, refusing none of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_of_the_same_series_replay_to_what_was_acknowledged() {
    use std::sync::atomic::{AtomicI64, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let db = open(cfg(dir.path())).await;
    let next = Arc::new(AtomicI64::new(H));
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let (db, next) = (db.clone(), next.clone());
            std::thread::spawn(move || {
                let mut stored = 0u64;
                for _ in 0..400 {
                    let t = next.fetch_add(1000, Ordering::SeqCst);
                    let batch: Vec<SeriesBatch> = (0..20)
                        .map(|i| SeriesBatch {
                            labels: Labels::from_pairs([("__name__", "m"), ("i", &i.to_string())]),
                            samples: vec![Sample {
                                t,
                                v: t as f64 + i as f64,
                            }],
                        })
                        .collect();
                    stored += db.append(&batch).unwrap().appended;
                }
                stored
            })
        })
        .collect();
    let stored: u64 = writers.into_iter().map(|w| w.join().unwrap()).sum();
    let before = all(&db, 0, 10 * H).await;
    let held: usize = before.iter().map(|s| s.1.len()).sum();
    assert_eq!(held as u64, stored, "the head holds what was acknowledged");
    // No close: as after kill -9 (every append was fsynced before it returned).
    drop(db);
    let m = Arc::new(StorageMetrics::default());
    let db = Tsdb::open(cfg(dir.path()), m.clone()).await.unwrap();
    assert_eq!(
        all(&db, 0, 10 * H).await,
        before,
        "replay restored every acknowledged sample"
    );
}
