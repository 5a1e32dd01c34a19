//! The head is cut into Parquet blocks that any Parquet reader opens; a range spanning head and blocks
//! answers the same before the cut, after it, and after a restart.

use std::collections::BTreeMap;
use std::fs::File;
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float64Type, Int8Type, Int32Type, Int64Type, TimestampMillisecondType, UInt32Type,
};
use arrow_array::{Array, MapArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::harness::*;
use crate::push::*;

fn config(maintenance: &str) -> String {
    format!(
        "scrape_configs: []\nstorage:\n  tsdb:\n    block_duration: 1m\n    maintenance_interval: {maintenance}\n"
    )
}

fn value(s: usize, i: i64) -> f64 {
    match s % 4 {
        0 => i as f64 * 0.25,                   // decimal, exact
        1 => 1e9 + i as f64 * 12345.0,          // large counter
        2 => (i as f64 * 0.1 + s as f64).sin(), // arbitrary floats
        _ => {
            if i % 7 == 0 {
                f64::NAN
            } else {
                -3.5
            }
        } // NaN values are stored and read back
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn blocks_are_parquet_and_queries_agree_across_cut_and_restart() {
    // Maintenance effectively off until we want the cut.
    let mut v = Vigil::start(&config("1h")).await;
    let now = (now_secs() * 1000.0) as i64;
    let step = 15_000;
    let t0 = now - 20 * 60_000;
    let steps = (now - t0) / step;
    let mut written: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    let mut req = Vec::new();
    for s in 0..40usize {
        let id = format!("{s:02}");
        let samples: Vec<(i64, f64)> = (0..steps).map(|i| (t0 + i * step, value(s, i))).collect();
        written.insert(id.clone(), samples.clone());
        req.push(series(
            &[("__name__", "blk_metric"), ("id", &id), ("job", "blocks")],
            samples,
        ));
    }
    let (status, body) = write_v1(&v.url("/api/v1/write"), &req).await;
    assert_eq!(status, 204, "{body}");
    let base = format!("http://{}", v.addr());
    let (qs, qe) = (t0 as f64 / 1000.0, now as f64 / 1000.0);
    let answers = || {
        let base = base.clone();
        async move {
            (
                sorted(&query_range(&base, "blk_metric", qs, qe, 15.0).await),
                sorted(
                    &query_range(&base, "blk_metric{id=~\"0.\"}", qs - 300.0, qe + 300.0, 7.0)
                        .await,
                ),
                sorted(&query(&base, "blk_metric[25m]", qe).await),
            )
        }
    };
    let before = answers().await;
    assert_eq!(before.2.len(), 40);
    assert_eq!(
        before.2[0]["values"].as_array().unwrap().len() as i64,
        steps
    );
    assert_eq!(v.self_metric("vigil_storage_blocks").await, Some(0.0));

    // Restart with maintenance every 200ms: the head spans 20 blocks of 1m and is cut down to 1.5.
    v.terminate();
    std::fs::write(v.config_path(), config("200ms")).unwrap();
    v.launch().await;
    eventually(Duration::from_secs(60), "blocks to be cut", || async {
        let blocks = v.self_metric("vigil_storage_blocks").await.unwrap_or(0.0);
        let samples = v
            .self_metric("vigil_storage_block_samples")
            .await
            .unwrap_or(0.0);
        // Cut down to 1.5 block durations: at least 17 of the 20 minutes are in blocks.
        (blocks >= 1.0 && samples >= (40 * 17 * 4) as f64).then_some(())
    })
    .await;
    let after = answers().await;
    assert_eq!(
        before, after,
        "answers changed after the head was cut into blocks"
    );
    let bytes = v.self_metric("vigil_storage_block_bytes").await.unwrap();
    assert!(bytes > 0.0);

    v.terminate();
    v.launch().await;
    assert_eq!(before, answers().await, "answers changed after a restart");
    v.terminate();

    // Read every block with the parquet crate: the samples are there, with the documented columns.
    let mut found: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    let mut blocks = 0;
    for dir in std::fs::read_dir(v.data_dir().join("blocks")).unwrap() {
        let dir = dir.unwrap().path();
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("meta.json")).unwrap()).unwrap();
        blocks += 1;
        // series.parquet: series_id -> labels.
        let mut ids: BTreeMap<u32, String> = BTreeMap::new();
        let r = ParquetRecordBatchReaderBuilder::try_new(
            File::open(dir.join("series.parquet")).unwrap(),
        )
        .unwrap()
        .build()
        .unwrap();
        for batch in r {
            let batch = batch.unwrap();
            let sid = batch
                .column_by_name("series_id")
                .unwrap()
                .as_primitive::<UInt32Type>()
                .clone();
            let labels = batch
                .column_by_name("labels")
                .unwrap()
                .as_any()
                .downcast_ref::<MapArray>()
                .unwrap()
                .clone();
            for row in 0..batch.num_rows() {
                let entries = labels.value(row);
                let keys = entries.column(0).as_string::<i32>();
                let vals = entries.column(1).as_string::<i32>();
                let id = (0..keys.len())
                    .find(|&i| keys.value(i) == "id")
                    .map(|i| vals.value(i).to_string())
                    .unwrap();
                ids.insert(sid.value(row), id);
            }
        }
        let file = File::open(dir.join("samples.parquet")).unwrap();
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
        let kv = builder
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .cloned()
            .unwrap_or_default();
        assert!(
            kv.iter().any(|k| k.key == "vigil.value_expression"),
            "value expression in the file metadata"
        );
        let mut rows = 0u64;
        for batch in builder.build().unwrap() {
            let batch = batch.unwrap();
            let sid = batch
                .column_by_name("series_id")
                .unwrap()
                .as_primitive::<UInt32Type>()
                .clone();
            let ts = batch
                .column_by_name("timestamp")
                .unwrap()
                .as_primitive::<TimestampMillisecondType>()
                .clone();
            let m = batch
                .column_by_name("m")
                .unwrap()
                .as_primitive::<Int32Type>()
                .clone();
            let mb = batch
                .column_by_name("m_base")
                .unwrap()
                .as_primitive::<Int64Type>()
                .clone();
            let e = batch
                .column_by_name("e")
                .unwrap()
                .as_primitive::<Int8Type>()
                .clone();
            let vf = batch
                .column_by_name("value_float")
                .unwrap()
                .as_primitive::<Float64Type>()
                .clone();
            for i in 0..batch.num_rows() {
                // The documented expression: (m + m_base) * 10^e, else value_float.
                let val = if m.is_null(i) {
                    vf.value(i)
                } else {
                    let mant = (m.value(i) as i64 + mb.value(i)) as f64;
                    let ex = e.value(i) as i32;
                    if ex >= 0 {
                        mant * 10f64.powi(ex)
                    } else {
                        mant / 10f64.powi(-ex)
                    }
                };
                found
                    .entry(ids[&sid.value(i)].clone())
                    .or_default()
                    .push((ts.value(i), val));
                rows += 1;
            }
        }
        assert_eq!(
            rows,
            meta["stats"]["num_samples"].as_u64().unwrap(),
            "{}",
            dir.display()
        );
    }
    assert!(blocks >= 1);
    // Every sample found in blocks is exactly one that was written (NaN compared by bits).
    let mut in_blocks = 0;
    for (id, samples) in &found {
        let want: BTreeMap<i64, f64> = written[id].iter().copied().collect();
        for (t, val) in samples {
            let w = want[t];
            assert!(
                w.to_bits() == val.to_bits() || (w.is_nan() && val.is_nan()),
                "{id}@{t}: block holds {val}, written {w}"
            );
            in_blocks += 1;
        }
    }
    assert!(
        in_blocks >= 40 * 17 * 4,
        "only {in_blocks} samples in blocks"
    );
}

/// Blocks read by other tools: DuckDB with the SQL of docs/storage.md, and pyarrow with its snippet,
/// find exactly the samples the query API answers for the blocks' time range.
#[tokio::test(flavor = "multi_thread")]
async fn duckdb_and_pyarrow_read_what_the_query_api_answers() {
    let Some(py) = tool("python3") else { return };
    let ok = std::process::Command::new(&py)
        .args(["-c", "import duckdb, pyarrow, numpy"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            !in_ci(),
            "duckdb and pyarrow are not installed; ./scripts/test installs them"
        );
        eprintln!("SKIPPED: duckdb/pyarrow not installed");
        return;
    }
    let v = Vigil::start(&config("1s")).await;
    let now = (now_secs() * 1000.0) as i64;
    let t0 = now - 20 * 60_000;
    let req: Vec<_> = (0..12usize)
        .map(|s| {
            series(
                &[
                    ("__name__", "blk_read"),
                    ("id", &format!("{s:02}")),
                    ("job", "blocks"),
                ],
                (0..80).map(|i| (t0 + i * 15_000, value(s, i))).collect(),
            )
        })
        .collect();
    let (status, body) = write_v1(&v.url("/api/v1/write"), &req).await;
    assert_eq!(status, 204, "{body}");
    // The head spans 20 minutes with 1-minute blocks: it is cut at the next maintenance.
    let max_t = eventually(Duration::from_secs(60), "blocks", || async {
        let metas: Vec<serde_json::Value> = std::fs::read_dir(v.data_dir().join("blocks"))
            .ok()?
            .flatten()
            .filter_map(|d| std::fs::read_to_string(d.path().join("meta.json")).ok())
            .filter_map(|t| serde_json::from_str(&t).ok())
            .collect();
        let max_t = metas
            .iter()
            .filter_map(|m| m["max_time"].as_i64())
            .max()
            .unwrap_or(0);
        // Cut down to 1.5 block durations: everything but the last few minutes is in blocks.
        (max_t >= now - 180_000).then_some(max_t)
    })
    .await;
    let out = std::process::Command::new(&py)
        .arg(fixtures_dir().parent().unwrap().join("blocks/read-blocks"))
        .arg(v.data_dir())
        .arg("blk_read")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "read-blocks: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = |tool: &str| -> Vec<(String, i64, u64)> {
        read[tool]
            .as_array()
            .unwrap()
            .iter()
            // A block cut after `max_t` was read (maintenance runs every second) holds later
            // samples only; the comparison covers what the blocks held at `max_t`.
            .filter(|r| r[1].as_i64().unwrap() <= max_t)
            .map(|r| {
                let v: f64 = match r[2].as_str().unwrap() {
                    "nan" => f64::NAN,
                    "inf" => f64::INFINITY,
                    "-inf" => f64::NEG_INFINITY,
                    x => x.parse().unwrap(),
                };
                (
                    r[0].as_str().unwrap().to_string(),
                    r[1].as_i64().unwrap(),
                    v.to_bits(),
                )
            })
            .collect()
    };
    // What the API answers for the same range, raw.
    let api = query(
        &format!("http://{}", v.addr()),
        "blk_read[30m]",
        now as f64 / 1000.0,
    )
    .await;
    let mut want: Vec<(String, i64, u64)> = Vec::new();
    for s in api.as_array().unwrap() {
        let id = s["metric"]["id"].as_str().unwrap().to_string();
        for p in s["values"].as_array().unwrap() {
            let t = (p[0].as_f64().unwrap() * 1000.0).round() as i64;
            let v: f64 = match p[1].as_str().unwrap() {
                "NaN" => f64::NAN,
                x => x.parse().unwrap(),
            };
            if t <= max_t {
                want.push((id.clone(), t, v.to_bits()));
            }
        }
    }
    want.sort();
    // NaN payloads differ between writers: compare NaN as NaN.
    let norm = |v: Vec<(String, i64, u64)>| -> Vec<(String, i64, u64)> {
        v.into_iter()
            .map(|(a, b, c)| {
                (
                    a,
                    b,
                    if f64::from_bits(c).is_nan() {
                        0x7ff8_0000_0000_0000
                    } else {
                        c
                    },
                )
            })
            .collect()
    };
    let want = norm(want);
    assert!(want.len() > 12 * 40, "{} samples in blocks", want.len());
    assert_eq!(
        norm(rows("duckdb")),
        want,
        "DuckDB reads the blocks as the API answers"
    );
    assert_eq!(
        norm(rows("pyarrow")),
        want,
        "pyarrow reads the blocks as the API answers"
    );
}
