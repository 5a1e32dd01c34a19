use std::sync::Arc;

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float64Type, Int8Type, Int32Type, Int64Type, TimestampMillisecondType, UInt32Type,
};
use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use vigil_model::{Labels, MatchOp, Matcher, stale_nan};

use super::*;

fn series() -> Vec<(Labels, Vec<(i64, f64)>)> {
    let mut v = vec![
        (
            Labels::from_pairs([("__name__", "a_total"), ("job", "x")]),
            (0..500)
                .map(|i| (1_000 + i * 15_000, 1000.0 + i as f64 * 1.5))
                .collect::<Vec<_>>(),
        ),
        (
            Labels::from_pairs([("__name__", "b"), ("job", "x")]),
            vec![
                (1_000, f64::NAN),
                (2_000, stale_nan()),
                (3_000, -0.0),
                (4_000, 1.0 / 3.0),
                (5_000, 1e308),
                (6_000, f64::NEG_INFINITY),
                (7_000, 42.0),
            ],
        ),
        (
            Labels::from_pairs([("__name__", "c"), ("job", "y")]),
            vec![(10, 8e9), (20, 1.0), (30, 9_000_000_000_000.5)],
        ),
    ];
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

async fn write_and_open(
    data: &[(Labels, Vec<(i64, f64)>)],
) -> (tempfile::TempDir, Arc<dyn ObjectStore>, BlockMeta) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> =
        Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap());
    let staging = dir.path().join("staging");
    let mut w = BlockWriter::new(&staging, "01TEST", &WriterOptions::default(), 1, vec![]).unwrap();
    for (l, s) in data {
        w.add_series(l, s).unwrap();
    }
    let (folder, meta) = w.finish().unwrap().unwrap();
    upload(store.as_ref(), &folder, "01TEST").await.unwrap();
    (dir, store, meta)
}

fn bits(s: &[(i64, f64)]) -> Vec<(i64, u64)> {
    s.iter().map(|(t, v)| (*t, v.to_bits())).collect()
}

#[tokio::test]
async fn round_trip_is_bit_exact() {
    let data = series();
    let (_dir, store, meta) = write_and_open(&data).await;
    assert_eq!(meta.stats.num_series, 3);
    assert_eq!(meta.stats.num_samples, 510);
    assert!(meta.stats.num_float_samples >= 5, "{:?}", meta.stats);
    let b = Block::open(store, "01TEST").await.unwrap();
    let ids = b.all_ids();
    let got = b.read(&ids, i64::MIN, i64::MAX).await.unwrap();
    assert_eq!(got.len(), 3);
    for (i, (id, samples)) in got.iter().enumerate() {
        assert_eq!(b.series(*id).labels, data[i].0);
        assert_eq!(bits(samples), bits(&data[i].1), "series {}", data[i].0);
    }
}

#[tokio::test]
async fn select_and_time_range() {
    let data = series();
    let (_dir, store, _) = write_and_open(&data).await;
    let b = Block::open(store, "01TEST").await.unwrap();
    let ids = b.select(&[Matcher::new(MatchOp::Equal, "job", "x").unwrap()]);
    assert_eq!(ids.len(), 2);
    let got = b.read(&ids, 2_000, 5_000).await.unwrap();
    // a_total has its first sample at 1000 then 16000: nothing in range; b has 4 samples in range.
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].1.iter().map(|s| s.0).collect::<Vec<_>>(),
        vec![2_000, 3_000, 4_000, 5_000]
    );
}

/// Any Parquet reader finds the samples with the documented expression.
#[tokio::test]
async fn readable_with_plain_parquet_reader() {
    let data = series();
    let (dir, _store, _) = write_and_open(&data).await;
    let file = std::fs::File::open(dir.path().join("blocks/01TEST").join(SAMPLES_FILE)).unwrap();
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let kv = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .unwrap()
        .clone();
    assert!(kv.iter().any(|k| k.key == "vigil.value_expression"));
    let mut rows = Vec::new();
    for batch in builder.build().unwrap() {
        let batch = batch.unwrap();
        let sid = batch.column(0).as_primitive::<UInt32Type>();
        let ts = batch.column(1).as_primitive::<TimestampMillisecondType>();
        let m = batch.column(2).as_primitive::<Int32Type>();
        let mb = batch.column(3).as_primitive::<Int64Type>();
        let e = batch.column(4).as_primitive::<Int8Type>();
        let vf = batch.column(5).as_primitive::<Float64Type>();
        for r in 0..batch.num_rows() {
            // The expression, written out: coalesce((m + m_base) * 10^e or / 10^-e, value_float).
            let v = if m.is_valid(r) {
                let mant = (m.value(r) as i64 + mb.value(r)) as f64;
                let e = e.value(r) as i32;
                if e >= 0 {
                    mant * 10f64.powi(e)
                } else {
                    mant / 10f64.powi(-e)
                }
            } else {
                vf.value(r)
            };
            rows.push((sid.value(r), ts.value(r), v.to_bits()));
        }
    }
    let want: Vec<(u32, i64, u64)> = data
        .iter()
        .enumerate()
        .flat_map(|(i, (_, s))| s.iter().map(move |(t, v)| (i as u32, *t, v.to_bits())))
        .collect();
    assert_eq!(rows, want);
}

#[test]
fn refuses_unsorted_input() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = BlockWriter::new(dir.path(), "01X", &WriterOptions::default(), 1, vec![]).unwrap();
    let data = series();
    w.add_series(&data[1].0, &data[1].1).unwrap();
    assert!(w.add_series(&data[0].0, &data[0].1).is_err());
    assert!(w.add_series(&data[2].0, &[(5, 1.0), (5, 2.0)]).is_err());
}

#[test]
fn empty_writer_makes_no_block() {
    let dir = tempfile::tempdir().unwrap();
    let w = BlockWriter::new(dir.path(), "01Y", &WriterOptions::default(), 1, vec![]).unwrap();
    assert!(w.finish().unwrap().is_none());
}
