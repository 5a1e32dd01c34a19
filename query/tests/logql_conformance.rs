//! The LogQL conformance suite: every case of `tests/logql/cases.txt` run over the corpus of
//! `tests/logql/corpus.txt` (nginx access logs, JSON application logs, logfmt, a multi-line stack
//! trace, ANSI colours, packed lines, structured metadata), stored in a real log store with part of it
//! in splits and part in the head.
//!
//! Case format: `=== name`, then `query:`, optional `range: S E` (seconds after T0; default 0 60),
//! `time: T` (an instant metric query), `step: N` (a range metric query), `limit:`, `direction:`, and
//! one or more `expect:` lines:
//! - `ts 3 2 1`: the entries' times in answer order (newest first unless forward);
//! - `line TEXT` (repeated): the entries' lines in answer order;
//! - `lines N`, `streams N`: counts; `labels {…}` (repeated): the set of the streams' label sets;
//! - `vector {…} V` (repeated), `matrix {…} t:v t:v …` (repeated), `scalar V`;
//! - `error SUBSTRING`: the query must fail saying so.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use vigil_model::{Labels, LogEntry, LogStream};
use vigil_query::eval::Value;
use vigil_query::logql::ast::Query;
use vigil_query::logql::eval::{self, LogqlLimits, LogqlStats};
use vigil_storage::LogsConfig;
use vigil_storage::logs::{Direction, LogStore, LogsMetrics};

const T0: i64 = 1_700_000_000;

fn ns(off: f64) -> i64 {
    ((T0 as f64 + off) * 1e9) as i64
}

type LabelMap = BTreeMap<String, String>;

fn parse_labels(s: &str) -> LabelMap {
    let inner = s
        .trim()
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .unwrap_or_else(|| panic!("bad label set {s:?}"));
    let mut out = BTreeMap::new();
    let mut rest = inner.trim();
    while !rest.is_empty() {
        let eq = rest
            .find('=')
            .unwrap_or_else(|| panic!("bad label set {s:?}"));
        let name = rest[..eq].trim().to_string();
        let (value, used) = vigil_model::unquote_prefix(&rest[eq + 1..], &['"'])
            .unwrap_or_else(|e| panic!("bad label set {s:?}: {e}"));
        out.insert(name, value);
        rest = rest[eq + 1 + used..]
            .trim_start()
            .trim_start_matches(',')
            .trim_start();
    }
    out
}

/// Splits `{…} rest` into the label set and the rest.
fn split_labels(s: &str) -> (LabelMap, &str) {
    let end = s
        .find('}')
        .unwrap_or_else(|| panic!("no label set in {s:?}"))
        + 1;
    (parse_labels(&s[..end]), s[end..].trim())
}

fn corpus() -> Vec<LogStream> {
    let text = include_str!("logql/corpus.txt");
    let mut out: Vec<LogStream> = Vec::new();
    for line in text.lines() {
        if let Some(sel) = line.strip_prefix("### ") {
            out.push(LogStream {
                labels: Labels::from_pairs(parse_labels(sel)),
                entries: Vec::new(),
            });
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (off, rest) = line.split_once(' ').expect("offset and line");
        let (body, meta) = match rest.split_once(" @@") {
            Some((b, m)) => (
                b,
                m.split_whitespace()
                    .map(|kv| {
                        let (k, v) = kv.split_once('=').expect("k=v");
                        (k.to_string(), v.to_string())
                    })
                    .collect(),
            ),
            None => (rest, Vec::new()),
        };
        out.last_mut()
            .expect("a stream header first")
            .entries
            .push(LogEntry {
                ts: ns(off.parse().expect("offset")),
                line: body.replace("\\x1b", "\x1b"),
                metadata: meta,
            });
    }
    out
}

#[derive(Default, Debug)]
struct Case {
    name: String,
    query: String,
    range: (f64, f64),
    time: Option<f64>,
    step: Option<f64>,
    limit: usize,
    forward: bool,
    expect: Vec<String>,
}

fn cases() -> Vec<Case> {
    let mut out: Vec<Case> = Vec::new();
    for line in include_str!("logql/cases.txt").lines() {
        if let Some(name) = line.strip_prefix("=== ") {
            out.push(Case {
                name: name.to_string(),
                range: (0.0, 60.0),
                limit: 100,
                ..Case::default()
            });
            continue;
        }
        let Some(c) = out.last_mut() else { continue };
        if let Some(v) = line.strip_prefix("query: ") {
            c.query = v.to_string();
        } else if let Some(v) = line.strip_prefix("range: ") {
            let (a, b) = v.split_once(' ').expect("range: S E");
            c.range = (a.parse().unwrap(), b.parse().unwrap());
        } else if let Some(v) = line.strip_prefix("time: ") {
            c.time = Some(v.parse().unwrap());
        } else if let Some(v) = line.strip_prefix("step: ") {
            c.step = Some(v.parse().unwrap());
        } else if let Some(v) = line.strip_prefix("limit: ") {
            c.limit = v.parse().unwrap();
        } else if let Some(v) = line.strip_prefix("direction: ") {
            c.forward = v == "forward";
        } else if let Some(v) = line.strip_prefix("expect: ") {
            c.expect.push(v.to_string());
        }
    }
    out
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// What a query answered, in a comparable form.
enum Answer {
    Streams(Vec<(LabelMap, Vec<(i64, String)>)>),
    Value(Value),
}

async fn run(store: &Arc<LogStore>, c: &Case) -> Result<Answer, String> {
    let q = vigil_query::logql::parse(&c.query).map_err(|e| e.to_string())?;
    match q {
        Query::Logs(e) => {
            let mut stats = LogqlStats::default();
            let streams = eval::logs(
                &**store,
                &e,
                ns(c.range.0),
                ns(c.range.1),
                c.limit,
                if c.forward {
                    Direction::Forward
                } else {
                    Direction::Backward
                },
                false,
                Instant::now() + Duration::from_secs(30),
                &mut stats,
            )
            .map_err(|e| e.to_string())?;
            Ok(Answer::Streams(
                streams
                    .into_iter()
                    .map(|s| {
                        (
                            s.labels,
                            s.entries.into_iter().map(|e| (e.ts, e.line)).collect(),
                        )
                    })
                    .collect(),
            ))
        }
        Query::Metric { promql, aggs } => {
            let limits = LogqlLimits::default();
            let (start, end, step, instant) = match (c.time, c.step) {
                (Some(t), _) => (ns(t), ns(t), 1_000_000_000, true),
                (None, Some(s)) => (ns(c.range.0), ns(c.range.1), (s * 1e9) as i64, false),
                (None, None) => return Err("a metric case needs time: or step:".into()),
            };
            eval::metric(
                store.clone(),
                promql,
                aggs,
                start,
                end,
                step,
                instant,
                &limits,
            )
            .await
            .map(|(v, _)| Answer::Value(v))
            .map_err(|e| e.to_string())
        }
    }
}

fn check(c: &Case, got: Result<Answer, String>) -> Result<(), String> {
    if let Some(want) = c.expect.iter().find_map(|e| e.strip_prefix("error ")) {
        return match got {
            Err(e) if e.contains(want) => Ok(()),
            Err(e) => Err(format!("error {e:?} does not say {want:?}")),
            Ok(_) => Err(format!("expected an error saying {want:?}, got an answer")),
        };
    }
    let got = got.map_err(|e| format!("failed: {e}"))?;
    match got {
        Answer::Streams(streams) => {
            let mut entries: Vec<(i64, String)> = streams
                .iter()
                .flat_map(|(_, e)| e.iter().cloned())
                .collect();
            entries.sort_by_key(|(t, _)| *t);
            if !c.forward {
                entries.reverse();
            }
            let mut want_labels: Vec<LabelMap> = Vec::new();
            let mut want_lines: Vec<String> = Vec::new();
            for e in &c.expect {
                let (kind, arg) = e.split_once(' ').unwrap_or((e.as_str(), ""));
                match kind {
                    "ts" => {
                        let want: Vec<i64> = arg
                            .split_whitespace()
                            .map(|t| ns(t.parse().unwrap()))
                            .collect();
                        let have: Vec<i64> = entries.iter().map(|(t, _)| *t).collect();
                        if want != have {
                            let off = |v: &[i64]| -> Vec<i64> {
                                v.iter().map(|t| t / 1_000_000_000 - T0).collect()
                            };
                            return Err(format!("ts: want {:?}, got {:?}", off(&want), off(&have)));
                        }
                    }
                    "lines" => {
                        let n: usize = arg.parse().unwrap();
                        if entries.len() != n {
                            return Err(format!("lines: want {n}, got {}", entries.len()));
                        }
                    }
                    "streams" => {
                        let n: usize = arg.parse().unwrap();
                        if streams.len() != n {
                            return Err(format!("streams: want {n}, got {}", streams.len()));
                        }
                    }
                    "labels" => want_labels.push(parse_labels(arg)),
                    "line" => want_lines.push(arg.to_string()),
                    other => {
                        return Err(format!("expectation {other:?} does not apply to streams"));
                    }
                }
            }
            if !want_labels.is_empty() {
                let mut have: Vec<LabelMap> = streams.iter().map(|(l, _)| l.clone()).collect();
                have.sort();
                want_labels.sort();
                if have != want_labels {
                    return Err(format!("labels: want {want_labels:?}, got {have:?}"));
                }
            }
            if !want_lines.is_empty() {
                let have: Vec<&String> = entries.iter().map(|(_, l)| l).collect();
                if have.len() != want_lines.len()
                    || have.iter().zip(&want_lines).any(|(a, b)| *a != b)
                {
                    return Err(format!("lines: want {want_lines:?}, got {have:?}"));
                }
            }
            Ok(())
        }
        Answer::Value(v) => {
            let mut want_vec: Vec<(LabelMap, f64)> = Vec::new();
            let mut want_mat: Vec<(LabelMap, Vec<(i64, f64)>)> = Vec::new();
            let mut want_scalar = None;
            let mut want_empty = false;
            for e in &c.expect {
                let (kind, arg) = e.split_once(' ').unwrap_or((e.as_str(), ""));
                match kind {
                    "vector" => {
                        let (l, v) = split_labels(arg);
                        want_vec.push((l, v.parse().unwrap()));
                    }
                    "matrix" => {
                        let (l, pts) = split_labels(arg);
                        want_mat.push((
                            l,
                            pts.split_whitespace()
                                .map(|p| {
                                    let (t, v) = p.split_once(':').unwrap();
                                    (ns(t.parse().unwrap()) / 1_000_000, v.parse().unwrap())
                                })
                                .collect(),
                        ));
                    }
                    "scalar" => want_scalar = Some(arg.parse::<f64>().unwrap()),
                    "lines" if arg == "0" => want_empty = true,
                    other => {
                        return Err(format!(
                            "expectation {other:?} does not apply to a metric answer"
                        ));
                    }
                }
            }
            let map = |l: &Labels| -> LabelMap { l.to_map() };
            match v {
                Value::Vector(items) => {
                    let mut have: Vec<(LabelMap, f64)> =
                        items.iter().map(|(l, _, x)| (map(l), *x)).collect();
                    have.sort_by(|a, b| a.0.cmp(&b.0));
                    want_vec.sort_by(|a, b| a.0.cmp(&b.0));
                    if want_empty && have.is_empty() {
                        return Ok(());
                    }
                    if have.len() != want_vec.len()
                        || have
                            .iter()
                            .zip(&want_vec)
                            .any(|(a, b)| a.0 != b.0 || !close(a.1, b.1))
                    {
                        return Err(format!("vector: want {want_vec:?}, got {have:?}"));
                    }
                    Ok(())
                }
                Value::Matrix(items) => {
                    let mut have: Vec<(LabelMap, Vec<(i64, f64)>)> =
                        items.iter().map(|(l, p)| (map(l), p.clone())).collect();
                    have.sort_by(|a, b| a.0.cmp(&b.0));
                    want_mat.sort_by(|a, b| a.0.cmp(&b.0));
                    let same = have.len() == want_mat.len()
                        && have.iter().zip(&want_mat).all(|(a, b)| {
                            a.0 == b.0
                                && a.1.len() == b.1.len()
                                && a.1
                                    .iter()
                                    .zip(&b.1)
                                    .all(|(x, y)| x.0 == y.0 && close(x.1, y.1))
                        });
                    if !same {
                        return Err(format!("matrix: want {want_mat:?}, got {have:?}"));
                    }
                    Ok(())
                }
                Value::Scalar(_, x) => match want_scalar {
                    Some(w) if close(w, x) => Ok(()),
                    _ => Err(format!("scalar: want {want_scalar:?}, got {x}")),
                },
                Value::String(..) => Err("a string answer".into()),
            }
        }
    }
}

/// A store in `dir` without retention (the corpus lies in the past).
fn open_store(dir: &std::path::Path) -> Arc<LogStore> {
    LogStore::open(
        dir,
        LogsConfig {
            retention_period: vigil_model::PromDuration::from_secs(0),
            ..LogsConfig::default()
        },
        LogsMetrics::default(),
    )
    .unwrap()
}

#[tokio::test]
async fn logql_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let streams = corpus();
    // The nginx and application streams go to splits, the rest stays in the head: both are read.
    let (split, head): (Vec<LogStream>, Vec<LogStream>) = streams
        .into_iter()
        .partition(|s| matches!(s.labels.get("job"), Some("nginx") | Some("app")));
    store.append(split).unwrap();
    store.cut().unwrap();
    store.append(head).unwrap();

    let cases = cases();
    assert!(cases.len() >= 150, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for c in &cases {
        assert!(!c.expect.is_empty(), "case {:?} expects nothing", c.name);
        let got = run(&store, c).await;
        if let Err(e) = check(c, got) {
            failures.push(format!("{}\n    {}\n    {e}", c.name, c.query));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} LogQL cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Counting and byte range aggregations (added up per step bucket when the range is a whole
/// number of steps, from every entry otherwise) agree with a brute-force count of each window over
/// pseudo-random entries in splits and the head, for ranges of one, several and a fraction of
/// steps, with and without offsets.
#[tokio::test]
async fn counts_agree_with_a_brute_force_count() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    // (host, ts ns, line length) of every entry; times within T0 + 0..600 s, in any order across
    // pushes.
    let mut all: Vec<(String, i64, usize)> = Vec::new();
    for part in 0..4 {
        let mut batch = Vec::new();
        for h in 0..3 {
            let host = format!("h{h}");
            let mut entries: Vec<LogEntry> = (0..400)
                .map(|_| {
                    let ts = ns(0.0) + rnd(600_000) as i64 * 1_000_000 + rnd(1000) as i64;
                    let line = "x".repeat(1 + rnd(40) as usize);
                    all.push((host.clone(), ts, line.len()));
                    LogEntry::new(ts, &line)
                })
                .collect();
            entries.sort_by_key(|e| e.ts);
            batch.push(LogStream {
                labels: Labels::from_pairs([("job", "rnd"), ("host", host.as_str())]),
                entries,
            });
        }
        store.append(batch).unwrap();
        if part < 3 {
            store.cut().unwrap();
        }
    }
    let ops = ["count_over_time", "rate", "bytes_over_time", "bytes_rate"];
    // (range s, step s, offset s)
    let shapes = [
        (10, 10, 0),
        (30, 10, 0),
        (60, 15, 5),
        (25, 10, 0),
        (7, 3, 2),
        (120, 120, 0),
    ];
    for op in ops {
        for &(range, step, offset) in &shapes {
            let text = if offset > 0 {
                format!("sum by (host) ({op}({{job=\"rnd\"}}[{range}s] offset {offset}s))")
            } else {
                format!("sum by (host) ({op}({{job=\"rnd\"}}[{range}s]))")
            };
            let Query::Metric { promql, aggs } = vigil_query::logql::parse(&text).unwrap() else {
                panic!("not a metric query: {text}");
            };
            let (start, end, step_ns) = (ns(20.0), ns(640.0), step as i64 * 1_000_000_000);
            let (v, _) = eval::metric(
                store.clone(),
                promql,
                aggs,
                start,
                end,
                step_ns,
                false,
                &LogqlLimits::default(),
            )
            .await
            .unwrap();
            let Value::Matrix(series) = v else {
                panic!("{text}: not a matrix");
            };
            // Times in ms, as the engine answers.
            let mut got: BTreeMap<(String, i64), f64> = BTreeMap::new();
            for (l, pts) in &series {
                for (t, x) in pts {
                    got.insert((l.get("host").unwrap().to_string(), *t), *x);
                }
            }
            let mut want: BTreeMap<(String, i64), f64> = BTreeMap::new();
            let mut t = start;
            while t <= end {
                let hi = t - offset as i64 * 1_000_000_000;
                let lo = hi - range as i64 * 1_000_000_000;
                for h in 0..3 {
                    let host = format!("h{h}");
                    let w: Vec<usize> = all
                        .iter()
                        .filter(|e| e.0 == host && e.1 > lo && e.1 <= hi)
                        .map(|e| e.2)
                        .collect();
                    if w.is_empty() {
                        continue;
                    }
                    let (n, bytes) = (w.len() as f64, w.iter().sum::<usize>() as f64);
                    let x = match op {
                        "count_over_time" => n,
                        "rate" => n / range as f64,
                        "bytes_over_time" => bytes,
                        _ => bytes / range as f64,
                    };
                    want.insert((host, t / 1_000_000), x);
                }
                t += step_ns;
            }
            assert_eq!(
                got.keys().collect::<Vec<_>>(),
                want.keys().collect::<Vec<_>>(),
                "{text}"
            );
            for (k, w) in &want {
                let g = got[k];
                assert!(
                    (g - w).abs() <= 1e-9 * w.abs(),
                    "{text} at {k:?}: {g} != {w}"
                );
            }
        }
    }
}
