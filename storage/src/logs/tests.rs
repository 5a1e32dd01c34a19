use super::*;
use vigil_model::LogEntry;

fn cfg() -> LogsConfig {
    LogsConfig {
        retention_period: vigil_model::PromDuration::from_secs(0),
        ..LogsConfig::default()
    }
}

fn open(dir: &Path) -> Arc<LogStore> {
    LogStore::open(dir, cfg(), LogsMetrics::default()).unwrap()
}

fn stream(app: &str, entries: Vec<(i64, &str)>) -> LogStream {
    LogStream {
        labels: Labels::from_pairs([("app", app), ("env", "prod")]),
        entries: entries
            .into_iter()
            .map(|(ts, l)| LogEntry::new(ts, l))
            .collect(),
    }
}

fn sel(app: &str) -> LogSelect {
    LogSelect {
        matchers: vec![Matcher::equal("app", app)],
        start: 0,
        end: i64::MAX,
        contains: Vec::new(),
    }
}

fn collect(s: &LogStore, sel: &LogSelect, dir: Direction, limit: usize) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    s.scan(sel, dir, &mut |r| {
        out.push((r.ts, r.line.to_string()));
        out.len() < limit
    })
    .unwrap();
    out
}

/// Entries spread over the head and two splits (the cuts in between) come back in time order in
/// both directions, across scan rounds (more than the first round's 256 candidates).
#[test]
fn ordered_scan_over_head_and_splits() {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path());
    let mut want = Vec::new();
    for part in 0..3i64 {
        let mut a = Vec::new();
        let mut b = Vec::new();
        for i in 0..300i64 {
            // Interleaved times across streams and parts; parts overlap in time.
            let ts = 1_000_000 + (i * 3 + part) * 1000;
            a.push((ts, format!("a{part}-{i}")));
            b.push((ts + 1, format!("b{part}-{i}")));
        }
        want.extend(a.iter().cloned());
        s.append(vec![
            stream("a", a.iter().map(|(t, l)| (*t, l.as_str())).collect()),
            stream("b", b.iter().map(|(t, l)| (*t, l.as_str())).collect()),
        ])
        .unwrap();
        if part < 2 {
            s.cut().unwrap();
        }
    }
    want.sort();
    let fwd = collect(&s, &sel("a"), Direction::Forward, usize::MAX);
    assert_eq!(fwd, want);
    let mut back = collect(&s, &sel("a"), Direction::Backward, usize::MAX);
    back.reverse();
    assert_eq!(back, want);
    let first = collect(&s, &sel("a"), Direction::Backward, 10);
    let mut last10: Vec<_> = want[want.len() - 10..].to_vec();
    last10.reverse();
    assert_eq!(first, last10);
    // Both streams: 1800 entries, in time order.
    let all = LogSelect {
        matchers: vec![Matcher::equal("env", "prod")],
        ..sel("a")
    };
    let got = collect(&s, &all, Direction::Forward, usize::MAX);
    assert_eq!(got.len(), 1800);
    assert!(got.windows(2).all(|w| w[0].0 <= w[1].0));
}

/// Splits of disjoint time ranges: a scan takes the nearest splits first and skips those beyond the
/// round's k-th entry, and still returns every entry in order.
#[test]
fn ordered_scan_skips_splits_beyond_the_round() {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path());
    let mut want = Vec::new();
    // Appended newest part first, so split order on disk is not time order.
    for part in (0..4i64).rev() {
        let rows: Vec<(i64, String)> = (0..300i64)
            .map(|i| (part * 10_000_000 + i * 1000, format!("p{part}-{i}")))
            .collect();
        want.extend(rows.iter().cloned());
        s.append(vec![stream(
            "a",
            rows.iter().map(|(t, l)| (*t, l.as_str())).collect(),
        )])
        .unwrap();
        s.cut().unwrap();
    }
    want.sort();
    assert_eq!(collect(&s, &sel("a"), Direction::Forward, usize::MAX), want);
    let mut back = collect(&s, &sel("a"), Direction::Backward, usize::MAX);
    back.reverse();
    assert_eq!(back, want);
    let mut last = want[want.len() - 10..].to_vec();
    last.reverse();
    assert_eq!(collect(&s, &sel("a"), Direction::Backward, 10), last);
    assert_eq!(
        collect(&s, &sel("a"), Direction::Forward, 500),
        want[..500].to_vec()
    );
}

/// A line filter pushed down to the index finds substrings inside tokens, respects case, and keeps
/// lines whose tokens are too long to index.
#[test]
fn contains_pushdown_is_exact() {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path());
    let long = format!("blob={}", "x".repeat(300));
    let lines = vec![
        (1, "GET /api/users 200 12ms"),
        (2, "POST /api/orders 500 error: timeout"),
        (3, "ERROR disk full on /dev/sda1"),
        (4, "user=alice request_id=7f3a9c01 status=200"),
        (5, long.as_str()),
        (6, "nothing here"),
        (7, "GET /x HTTP/1.1 5 12 123 1234 Größe=9 東京"),
        // Id-like tokens (indexed as chunks): a trace id, a UUID, a long number, a hex word, an
        // id glued to letters (not an id: a whole token), and ids whose length is not a multiple of
        // the chunk.
        (
            8,
            "trace=4BF92F3577B34DA6A3CE929D0E0E4736 span=00f067aa0ba902b7",
        ),
        (
            9,
            "id=550e8400-e29b-41d4-a716-446655440000 at 1733500000123",
        ),
        (
            10,
            "deadbeefcafe x4bf92f3577b34da6 sha 9fceb02d0ae598e95dc970b74767f19372d61af8a",
        ),
    ];
    // A stream per line, so that each line is a document of its own in a split: a needle's index
    // query must find each line that holds it by itself (the long line's flag would otherwise make
    // its document, and every line in it, a candidate of every needle).
    s.append(lines.iter().map(|&(t, l)| line_stream(t, l)).collect())
        .unwrap();
    let check = |s: &LogStore, needle: &str| {
        let want: Vec<i64> = lines
            .iter()
            .filter(|(_, l)| l.contains(needle))
            .map(|(t, _)| *t)
            .collect();
        let q = LogSelect {
            contains: vec![needle.to_string()],
            ..sel("web")
        };
        let got: Vec<i64> = collect(s, &q, Direction::Forward, usize::MAX)
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        assert_eq!(got, want, "needle {needle:?}");
        let mut n = 0;
        s.scan_all(&q, false, &mut |_, _, _, _| n += 1).unwrap();
        assert_eq!(n, want.len(), "scan_all, needle {needle:?}");
    };
    let needles = [
        "error",
        "ERROR",
        "rror",
        "api/",
        "/api/orders 5",
        "ders 500 err",
        "9c0",
        "7f3a9c01",
        "xxxx",
        "=x",
        "200",
        " 200",
        "sda",
        "",
        "zzz",
        "status=200",
        // Open at both ends with a whole token inside; open at both ends without one.
        "r=alice request_id=7f",
        "d=7f3a",
        "ce req",
        // Short numbers are not indexed: needles made of them or ending in them still find lines.
        "1",
        "12",
        "/1.1",
        " 5 ",
        "5 12 1",
        "123",
        "23 12",
        "HTTP/1.1",
        "größe",
        "Größe=9",
        "京",
        // Ids whole, as prefixes and suffixes, and parts of them at each of the four alignments.
        "4BF92F3577B34DA6A3CE929D0E0E4736",
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "=4BF92F3577B34DA6A3CE929D0E0E4736 ",
        "trace=4BF92F35",
        "trace=4BF",
        "3577B34DA6",
        "577B34DA6A",
        "77B34DA6A3",
        "7B34DA6A3C",
        "7B34DA6",
        "0E4736 span",
        "E0E4736",
        "span=00f067aa0ba902b7",
        "00f067aa0ba902b7",
        "0ba902b",
        "0ba9",
        "02b7",
        "a902",
        "b7",
        "550e8400-e29b-41d4-a716-446655440000",
        "e29b-41d4",
        "446655440000",
        "6554400",
        "440000 at",
        "1733500000123",
        "35000001",
        "at 1733",
        "deadbeefcafe",
        "beefca",
        "deadbeef",
        "x4bf92f3577b34da6",
        "4bf92f3577b34da6 sha",
        "9fceb02d0ae598e95dc970b74767f19372d61af8a",
        "72d61af8a",
        "2d61af8",
        "d61af8a",
        "cafe x4b",
    ];
    for n in needles {
        check(&s, n);
    }
    s.cut().unwrap();
    for n in needles {
        check(&s, n);
    }
}

/// A stream of app `web` holding the one line `line` at `t` (its own label `n`).
fn line_stream(t: i64, line: &str) -> LogStream {
    LogStream {
        labels: Labels::from_pairs([
            ("app", "web".to_string()),
            ("env", "prod".to_string()),
            ("n", t.to_string()),
        ]),
        entries: vec![LogEntry::new(t, line)],
    }
}

/// Any substring of a line, as a needle, finds every line that holds it and no other, from a split
/// where each line is a document of its own: random lines heavy in hex digits (ids of every length,
/// both cases, glued to other letters or not), needles cut from them at random.
#[test]
fn needles_cut_from_lines_find_exactly_their_lines() {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path());
    let mut rng = xorshift(0x243f_6a88_85a3_08d3u64);
    let mut next = move |n: u64| rng() % n;
    let alphabet: Vec<char> = "0123456789abcdefABCDEF0123456789abcdef".chars().collect();
    let seps: Vec<char> = " =-/:g.éx".chars().collect();
    let lines: Vec<String> = (0..400)
        .map(|_| {
            let mut l = String::new();
            for _ in 0..1 + next(6) {
                for _ in 0..1 + next(20) {
                    l.push(alphabet[next(alphabet.len() as u64) as usize]);
                }
                l.push(seps[next(seps.len() as u64) as usize]);
            }
            l
        })
        .collect();
    s.append(
        lines
            .iter()
            .enumerate()
            .map(|(i, l)| line_stream(1000 + i as i64, l))
            .collect(),
    )
    .unwrap();
    s.cut().unwrap();
    for _ in 0..600 {
        let l: Vec<char> = lines[next(lines.len() as u64) as usize].chars().collect();
        let a = next(l.len() as u64) as usize;
        let b = a + 1 + next((l.len() - a).min(24) as u64) as usize;
        let needle: String = l[a..b].iter().collect();
        let want: Vec<i64> = lines
            .iter()
            .enumerate()
            .filter(|(_, x)| x.contains(&needle))
            .map(|(i, _)| 1000 + i as i64)
            .collect();
        let q = LogSelect {
            contains: vec![needle.clone()],
            ..sel("web")
        };
        let got: Vec<i64> = collect(&s, &q, Direction::Forward, usize::MAX)
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        assert_eq!(got, want, "needle {needle:?}");
    }
}

/// A split of a format newer than the binary reads is left in place and skipped, not read with
/// queries that could miss its lines.
#[test]
fn splits_of_a_newer_format_are_skipped() {
    let d = tempfile::tempdir().unwrap();
    {
        let s = open(d.path());
        s.append(vec![stream("a", vec![(1000, "first")])]).unwrap();
        s.cut().unwrap();
        s.close().unwrap();
    }
    let dirs = split_paths(d.path());
    assert_eq!(dirs.len(), 1);
    let meta = dirs[0].join("vigil-split.json");
    let text = fs::read_to_string(&meta).unwrap();
    let newer = text.replace(
        &format!("\"format\": {}", split::FORMAT),
        &format!("\"format\": {}", split::FORMAT + 1),
    );
    assert_ne!(newer, text);
    fs::write(&meta, newer).unwrap();
    let s = open(d.path());
    assert!(s.sources.read().splits.is_empty());
    assert!(collect(&s, &sel("a"), Direction::Forward, 10).is_empty());
    assert!(dirs[0].exists());
}

/// Acknowledged entries survive a crash (the store dropped without close), and a reopened store after
/// a cut holds every entry exactly once.
#[test]
fn durable_and_exactly_once_across_restarts() {
    let d = tempfile::tempdir().unwrap();
    {
        let s = open(d.path());
        s.append(vec![stream("a", vec![(1, "one"), (2, "two")])])
            .unwrap();
        s.cut().unwrap();
        s.append(vec![stream("a", vec![(3, "three")])]).unwrap();
        // No close: what a kill -9 leaves.
    }
    let s = open(d.path());
    let got = collect(&s, &sel("a"), Direction::Forward, usize::MAX);
    assert_eq!(
        got,
        vec![(1, "one".into()), (2, "two".into()), (3, "three".into())]
    );
    s.cut().unwrap();
    drop(s);
    let s = open(d.path());
    assert_eq!(
        collect(&s, &sel("a"), Direction::Forward, usize::MAX).len(),
        3
    );
    assert_eq!(
        s.stats(&[Matcher::equal("app", "a")], 0, i64::MAX),
        LogStats {
            streams: 1,
            chunks: 2,
            bytes: 11,
            entries: 3
        }
    );
}

/// A split written by a cut that died before recording its WAL coverage is dropped at start-up and its
/// entries come back from the WAL: nothing lost, nothing doubled.
#[test]
fn unfinished_cut_is_replayed_not_doubled() {
    let d = tempfile::tempdir().unwrap();
    {
        let s = open(d.path());
        s.append(vec![stream("a", vec![(1, "one"), (2, "two")])])
            .unwrap();
        s.cut().unwrap();
        s.append(vec![stream("a", vec![(3, "three")])]).unwrap();
        // The first half of a cut: WAL rotated, split written and renamed into place; then the crash.
        let seg = s.wal.rotate().unwrap();
        let h = s.head.read();
        let written = s.write_head(&h, seg).unwrap();
        assert_eq!(written.len(), 1);
    }
    let s = open(d.path());
    let got = collect(&s, &sel("a"), Direction::Forward, usize::MAX);
    assert_eq!(
        got,
        vec![(1, "one".into()), (2, "two".into()), (3, "three".into())]
    );
    assert_eq!(s.sources.read().splits.len(), 1);
}

#[test]
fn appends_wait_while_indexing_is_behind() {
    let d = tempfile::tempdir().unwrap();
    let s = LogStore::open(
        d.path(),
        LogsConfig {
            max_unindexed_bytes: crate::ByteSize(10),
            ..cfg()
        },
        LogsMetrics::default(),
    )
    .unwrap();
    s.append(vec![stream("a", vec![(1, "0123456789")])])
        .unwrap();
    let e = s.append(vec![stream("a", vec![(2, "x")])]).unwrap_err();
    assert!(
        matches!(
            e,
            LogsError::Backlog {
                pending: 10,
                limit: 10
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("max_unindexed_bytes"));
    // Once indexed, appends are taken again; the refused one was not stored.
    s.cut().unwrap();
    s.append(vec![stream("a", vec![(3, "y")])]).unwrap();
    let got = collect(&s, &sel("a"), Direction::Forward, 10);
    assert_eq!(got, vec![(1, "0123456789".into()), (3, "y".into())]);
}

#[test]
fn exact_repeats_are_dropped() {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path());
    let st = s
        .append(vec![stream(
            "a",
            vec![(1, "x"), (1, "x"), (1, "y"), (2, "x")],
        )])
        .unwrap();
    assert_eq!(st.entries, 3);
    assert_eq!(st.duplicates, 1);
    // A client resending a batch it had no answer for: every entry is a repeat of an earlier one.
    let st = s
        .append(vec![stream("a", vec![(1, "x"), (1, "y"), (2, "x")])])
        .unwrap();
    assert_eq!((st.entries, st.duplicates), (0, 3));
    // Out of order but new: kept; the same line at another time is not a repeat.
    let st = s
        .append(vec![stream("a", vec![(0, "x"), (1, "z"), (3, "x")])])
        .unwrap();
    assert_eq!((st.entries, st.duplicates), (3, 0));
    assert_eq!(collect(&s, &sel("a"), Direction::Forward, 100).len(), 6);
}

#[test]
fn labels_series_and_retention() {
    let d = tempfile::tempdir().unwrap();
    let s = LogStore::open(
        d.path(),
        LogsConfig {
            retention_period: vigil_model::PromDuration::from_secs(3600),
            ..LogsConfig::default()
        },
        LogsMetrics::default(),
    )
    .unwrap();
    let now = vigil_model::now_ns();
    s.append(vec![
        stream("old", vec![(now - 7200 * 1_000_000_000, "old line")]),
        stream("new", vec![(now, "new line")]),
    ])
    .unwrap();
    assert_eq!(s.label_values("app", &[], 0, i64::MAX), vec!["new", "old"]);
    assert_eq!(s.label_names(&[], 0, i64::MAX), vec!["app", "env"]);
    s.cut().unwrap();
    // Entries already past retention are not written at the cut.
    assert_eq!(s.label_values("app", &[], 0, i64::MAX), vec!["new"]);
    assert_eq!(s.apply_retention().unwrap(), 0);
    assert_eq!(
        s.streams(&[vec![Matcher::equal("app", "new")]], 0, i64::MAX)
            .len(),
        1
    );
}

/// Everything a query can see of a store: every row of every stream (both directions), the substring
/// pushdown, and the index statistics.
/// Rows (app, time, line, metadata), needle matches, backward rows, statistics without chunks.
type View = (
    Vec<(String, i64, String, Vec<(String, String)>)>,
    usize,
    usize,
    LogStats,
);

fn view(s: &LogStore) -> View {
    let all = LogSelect {
        matchers: vec![Matcher::equal("env", "prod")],
        start: 0,
        end: i64::MAX,
        contains: Vec::new(),
    };
    let mut rows = Vec::new();
    s.scan(&all, Direction::Forward, &mut |r| {
        rows.push((
            r.labels.get("app").unwrap_or("").to_string(),
            r.ts,
            r.line.to_string(),
            r.metadata.clone(),
        ));
        true
    })
    .unwrap();
    let mut back = 0;
    s.scan(&all, Direction::Backward, &mut |_| {
        back += 1;
        true
    })
    .unwrap();
    let mut needle = 0;
    let q = LogSelect {
        contains: vec!["needle".into()],
        ..all.clone()
    };
    s.scan_all(&q, true, &mut |_, _, _, _| needle += 1).unwrap();
    // Chunks count (stream, split) pairs: compaction changes them, nothing else.
    let stats = LogStats {
        chunks: 0,
        ..s.stats(&[Matcher::equal("env", "prod")], 0, i64::MAX)
    };
    assert_eq!(back, rows.len());
    (rows, needle, back, stats)
}

fn split_dirs(d: &Path) -> usize {
    split_paths(d).len()
}

/// The store's split directories, in name (creation) order.
fn split_paths(d: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(d.join("splits"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    out.sort();
    out
}

/// A xorshift64 generator: the tests' deterministic random numbers.
fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

/// Small splits of a closed window are merged into one; queries answer exactly as before, structured
/// metadata included; a split of another window and one over the target size are left alone; a
/// reopened store reads the merged split.
#[test]
fn compaction_merges_small_splits_without_changing_answers() {
    let d = tempfile::tempdir().unwrap();
    let c = LogsConfig {
        compaction_target_bytes: crate::ByteSize(20_000),
        ..cfg()
    };
    let s = LogStore::open(d.path(), c.clone(), LogsMetrics::default()).unwrap();
    let hour = 3_600_000_000_000i64;
    // Window 0: five cuts of ~2 KB each, plus one cut of ~25 KB (over the target); window 1: one cut.
    for part in 0..5i64 {
        let mut a = stream("a", Vec::new());
        let mut b = stream("b", Vec::new());
        for i in 0..40i64 {
            let ts = 1_000 + (i * 5 + part) * 1_000_000;
            a.entries
                .push(vec_entry(ts, format!("a part={part} i={i}"), i % 7 == 0));
            b.entries.push(vec_entry(
                ts + 1,
                format!("b part={part} i={i} needle"),
                false,
            ));
        }
        s.append(vec![a, b]).unwrap();
        s.cut().unwrap();
    }
    let big: Vec<(i64, String)> = (0..250i64)
        .map(|i| (10 * hour / 20 + i, format!("big {i} {}", "y".repeat(90))))
        .collect();
    s.append(vec![stream(
        "big",
        big.iter().map(|(t, l)| (*t, l.as_str())).collect(),
    )])
    .unwrap();
    s.cut().unwrap();
    s.append(vec![stream("c", vec![(hour + 5, "window one needle")])])
        .unwrap();
    s.cut().unwrap();
    assert_eq!(s.sources.read().splits.len(), 7);
    let before = view(&s);
    assert_eq!(before.0.len(), 5 * 80 + 250 + 1);
    assert_eq!(before.1, 5 * 40 + 1);

    assert_eq!(s.compact().unwrap(), 5);
    assert_eq!(s.sources.read().splits.len(), 3);
    assert_eq!(split_dirs(d.path()), 3);
    assert_eq!(s.metrics.compactions.get(), 1);
    assert_eq!(s.metrics.compacted_splits.get(), 5);
    assert!(view(&s) == before, "answers changed by compaction");
    // Nothing more to do.
    assert_eq!(s.compact().unwrap(), 0);
    drop(s);
    let s = LogStore::open(d.path(), c, LogsMetrics::default()).unwrap();
    assert_eq!(s.sources.read().splits.len(), 3);
    assert!(view(&s) == before, "answers changed after reopening");
}

fn vec_entry(ts: i64, line: String, meta: bool) -> LogEntry {
    let mut e = LogEntry::new(ts, &line);
    if meta {
        e.metadata = vec![("trace_id".into(), format!("t{ts}"))];
    }
    e
}

/// A window that still takes regular cuts is compacted only once it holds eight small splits.
#[test]
fn open_windows_wait_for_eight_splits() {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path());
    let now = vigil_model::now_ns();
    for i in 0..7i64 {
        s.append(vec![stream("a", vec![(now + i, "line")])])
            .unwrap();
        s.cut().unwrap();
    }
    assert_eq!(s.compact().unwrap(), 0);
    assert_eq!(s.sources.read().splits.len(), 7);
    s.append(vec![stream("a", vec![(now + 7, "line")])])
        .unwrap();
    s.cut().unwrap();
    assert_eq!(s.compact().unwrap(), 8);
    assert_eq!(s.sources.read().splits.len(), 1);
    assert_eq!(collect(&s, &sel("a"), Direction::Forward, 100).len(), 8);
}

/// A compaction that died after publishing its split but before deleting its inputs: the next start
/// deletes the inputs, so every entry is there once.
#[test]
fn compaction_interrupted_before_deleting_inputs_is_finished_at_start() {
    let d = tempfile::tempdir().unwrap();
    {
        let s = open(d.path());
        for i in 0..3i64 {
            s.append(vec![stream("a", vec![(1000 + i, "line")])])
                .unwrap();
            s.cut().unwrap();
        }
        let inputs = s.sources.read().splits.clone();
        let merged = Split::merge(&d.path().join("splits"), &inputs, 9).unwrap();
        assert_eq!(merged.meta.entries, 3);
        assert_eq!(merged.meta.replaces.len(), 3);
        assert_eq!(split_dirs(d.path()), 4);
        // The crash: neither published nor inputs deleted.
    }
    let s = open(d.path());
    assert_eq!(split_dirs(d.path()), 1);
    assert_eq!(s.sources.read().splits.len(), 1);
    assert_eq!(
        collect(&s, &sel("a"), Direction::Forward, 100),
        vec![
            (1000, "line".into()),
            (1001, "line".into()),
            (1002, "line".into())
        ]
    );
}

/// The line tokenizer: alphanumeric runs, lowercased (Unicode too), without numbers of one or two
/// digits or tokens of 256 bytes or more; offsets are byte offsets into the line. An id-like token
/// (8 or more hex digits) gives the marker term, then its whole 4-digit chunks.
#[test]
fn line_tokens() {
    let line = format!(
        "GET /api/v1?id=12345 HTTP/1.1 07 200 Größe=ÄÖ 東京 x86_64 {} req=5DEECE66da3c4f17a \
         1234567 12345678 cafe0123x end",
        "z".repeat(300)
    );
    let mut a = split::analyzer_for_tests();
    let mut ts = a.token_stream(&line);
    let mut got = Vec::new();
    while ts.advance() {
        let t = ts.token();
        let raw = line[t.offset_from..t.offset_to].to_lowercase();
        match t.text.strip_prefix(split::ID_MARK) {
            // The marker spans the whole id, a chunk its own digits.
            Some("") => assert!(raw.len() >= split::ID_MIN, "{raw}"),
            Some(chunk) => assert_eq!(raw, chunk),
            None => assert_eq!(raw, t.text),
        }
        got.push(t.text.clone());
    }
    assert_eq!(
        got,
        [
            "get",
            "api",
            "v1",
            "id",
            "12345",
            "http",
            "200",
            "größe",
            "äö",
            "東京",
            "x86",
            "req",
            "_",
            "_5dee",
            "_ce66",
            "_da3c",
            "_4f17",
            "1234567",
            "_",
            "_1234",
            "_5678",
            "cafe0123x",
            "end"
        ]
    );
}

/// Id-like tokens are indexed as chunks and still narrow a search to a few documents: a request id
/// bare, after its key, whole, as a prefix or as a part at any offset, a trace id, a UUID and a long
/// number; each finds its line, and the index hands over at most a few documents' lines.
#[test]
fn ids_narrow_searches_through_their_chunks() {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path());
    let mut next = xorshift(0x9e37_79b9_7f4a_7c15u64);
    let lines: Vec<String> = (0..6000)
        .map(|i| {
            let (a, b, c) = (next(), next(), next());
            format!(
                "GET /api/v1/items/{} 200 req={a:016x} trace={b:016x}{c:016x} \
                 session={:08x}-{:04x}-{:04x}-{:04x}-{:012x} at={}",
                i % 7,
                a >> 32,
                b & 0xffff,
                c & 0xffff,
                (a >> 16) & 0xffff,
                c >> 16,
                1_733_500_000_000u64 + (b % 1_000_000_000)
            )
        })
        .collect();
    s.append(vec![stream(
        "web",
        lines
            .iter()
            .enumerate()
            .map(|(i, l)| (1_000_000_000 + i as i64, l.as_str()))
            .collect(),
    )])
    .unwrap();
    s.cut().unwrap();
    let splits = s.sources.read().splits.clone();
    assert_eq!(splits.len(), 1);
    let sp = &splits[0];
    assert_eq!(sp.meta.format, split::FORMAT);
    let fps = sp.matching_streams(&[], i64::MIN, i64::MAX);
    let field = |l: &str, key: &str| -> String {
        let v = &l[l.find(key).unwrap() + key.len()..];
        v[..v.find(' ').unwrap_or(v.len())].to_string()
    };
    for i in (0..lines.len()).step_by(397) {
        let l = &lines[i];
        let (req, trace, session, at) = (
            field(l, "req="),
            field(l, "trace="),
            field(l, "session="),
            field(l, "at="),
        );
        // Needles holding two pieces or more at any offset they could sit at: a few documents;
        // shorter parts (one piece at some offsets, each in about 1 document in 200): a few more.
        let (few, more) = (2 * split::DOC_LINES, lines.len() / 20);
        let needles = [
            (req.clone(), few),
            (format!("req={req}"), few),
            (format!("req={req} "), few),
            (format!(" req={req} trace"), few),
            (format!("req={}", &req[..10]), few),
            (req[1..12].to_string(), few),
            (req[3..14].to_string(), few),
            (req[2..11].to_string(), more),
            (req[9..].to_string(), more),
            (trace.clone(), few),
            (trace[13..29].to_string(), few),
            (session.clone(), few),
            (session[24..].to_string(), few),
            (format!("at={at}"), few),
        ];
        for (n, limit) in needles {
            let want: Vec<(i64, String)> = lines
                .iter()
                .enumerate()
                .filter(|(_, x)| x.contains(&n))
                .map(|(j, x)| (1_000_000_000 + j as i64, x.clone()))
                .collect();
            assert!(!want.is_empty());
            let q = LogSelect {
                contains: vec![n.clone()],
                ..sel("web")
            };
            assert_eq!(collect(&s, &q, Direction::Forward, usize::MAX), want, "{n}");
            let candidates = sp
                .keys(
                    &fps,
                    &split::Needles::new(std::slice::from_ref(&n)),
                    i64::MIN,
                    i64::MAX,
                    None,
                    None,
                )
                .unwrap()
                .len();
            assert!(
                candidates <= limit,
                "needle {n:?}: {candidates} candidate lines of {}",
                lines.len()
            );
        }
    }
}

/// A row read back: time, line, structured metadata.
type Row = (i64, String, Vec<(String, String)>);

fn rows(s: &LogStore, sel: &LogSelect) -> Vec<Row> {
    let mut out = Vec::new();
    s.scan(sel, Direction::Forward, &mut |r| {
        out.push((r.ts, r.line.to_string(), r.metadata.clone()));
        true
    })
    .unwrap();
    out
}

/// The `.lines` file keeps every line byte for byte: empty lines, lines holding newlines (framed by
/// lengths), Unicode, lines over a block, metadata on a few; across several blocks and segments,
/// and after compaction copies full blocks and re-packs the others.
#[test]
fn lines_file_round_trips_every_line() {
    let d = tempfile::tempdir().unwrap();
    let c = LogsConfig {
        compaction_target_bytes: crate::ByteSize(1 << 30),
        ..cfg()
    };
    let s = LogStore::open(d.path(), c.clone(), LogsMetrics::default()).unwrap();
    let mut want = Vec::new();
    for part in 0..2i64 {
        let mut entries = Vec::new();
        for i in 0..20000i64 {
            let ts = 1_000_000 + (i * 2 + part) * 1000;
            let line = match i % 7 {
                // A segment's last block of at least half a block: copied by a merge, its line
                // count taken from the segment's `ts` column.
                _ if i == 19999 => "end ".repeat(40 << 10),
                0 => String::new(),
                1 => format!("trace {i}\n  at frame {part}\n\tat main"),
                2 => format!("ünïcödé {i} ✓"),
                // In the first split only: the second's full blocks follow each other.
                3 if i % 1400 == 3 && part == 0 => "x".repeat(300 << 10),
                _ => format!(
                    "line {i} of part {part} status={} {}",
                    200 + i % 5,
                    "pad ".repeat((i % 40) as usize)
                ),
            };
            let mut e = LogEntry::new(ts, &line);
            if i % 50 == 0 {
                e.metadata = vec![
                    ("trace_id".into(), format!("t{ts}")),
                    ("k".into(), String::new()),
                ];
            }
            want.push((ts, line, e.metadata.clone()));
            entries.push(e);
        }
        s.append(vec![LogStream {
            labels: Labels::from_pairs([("app", "a"), ("env", "prod")]),
            entries,
        }])
        .unwrap();
        s.cut().unwrap();
    }
    want.sort();
    let splits = s.sources.read().splits.clone();
    assert_eq!(splits.len(), 2);
    assert!(splits.iter().all(|sp| sp.meta.format == split::FORMAT));
    assert_eq!(rows(&s, &sel("a")), want);
    // Blocks stay within 256 KiB of raw bytes (zstd's parameters for small inputs), full but for
    // a segment's last, those of a line longer than a block and those before one.
    let mut small_inputs = 0;
    for sp in &splits {
        assert!(sp.line_blocks().len() > 4, "{:?}", sp.line_blocks());
        for blocks in sp.segment_line_blocks() {
            for (i, &(lines, raw)) in blocks.iter().enumerate() {
                assert!(
                    lines == 1 || raw as usize <= lines::BLOCK_BYTES,
                    "block {i}: {lines} lines, {raw} bytes"
                );
                let next_is_long = blocks.get(i + 1).is_some_and(|b| b.0 == 1);
                assert!(
                    i + 1 == blocks.len()
                        || next_is_long
                        || raw as usize > lines::BLOCK_BYTES * 3 / 4,
                    "block {i}: {raw} bytes"
                );
            }
            small_inputs += blocks
                .iter()
                .filter(|b| (b.1 as usize) < lines::COPY_BLOCK_BYTES)
                .count();
        }
    }
    let copied: Vec<(u32, u32)> = splits
        .iter()
        .flat_map(|sp| sp.line_frames())
        .filter(|b| b.0 as usize >= lines::COPY_BLOCK_BYTES)
        .collect();
    drop(s);
    // Reopened, then compacted: the window is long closed, so both splits merge into one.
    let s = LogStore::open(d.path(), c, LogsMetrics::default()).unwrap();
    assert_eq!(rows(&s, &sel("a")), want);
    assert_eq!(s.compact().unwrap(), 2);
    assert_eq!(s.sources.read().splits.len(), 1);
    assert_eq!(rows(&s, &sel("a")), want);
    // Compaction copies blocks of at least half the block size as they were and re-packs the
    // smaller ones (segments' last blocks) together: no more small blocks than before.
    let blocks = s.sources.read().splits[0].line_blocks();
    let small = blocks
        .iter()
        .filter(|b| (b.1 as usize) < lines::COPY_BLOCK_BYTES)
        .count();
    let big = blocks.len() - small;
    assert!(!copied.is_empty() && small_inputs > 1, "{blocks:?}");
    assert!(small <= small_inputs, "{blocks:?}");
    assert!(big >= copied.len(), "{blocks:?}");
    // Copied byte for byte, in order (re-packing would shift the later splits' blocks).
    let frames = s.sources.read().splits[0].line_frames();
    let mut rest = frames.iter();
    for b in &copied {
        assert!(
            rest.any(|x| x == b),
            "block {b:?} copied in order: {frames:?}"
        );
    }
    let mut needle = sel("a");
    needle.contains = vec!["at frame 1".into()];
    let got = rows(&s, &needle);
    assert_eq!(
        got.len(),
        want.iter().filter(|w| w.1.contains("at frame 1")).count()
    );
    assert!(got.iter().all(|r| r.1.contains("at frame 1")));
}

/// A split whose `.lines` file is damaged is reported and skipped at start-up; the rest is read.
#[test]
fn damaged_lines_file_skips_its_split() {
    let d = tempfile::tempdir().unwrap();
    {
        let s = open(d.path());
        s.append(vec![stream("a", vec![(1000, "first")])]).unwrap();
        s.cut().unwrap();
        s.append(vec![stream("a", vec![(2000, "second")])]).unwrap();
        s.cut().unwrap();
    }
    let splits = split_paths(d.path());
    let lines = fs::read_dir(&splits[0])
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "lines"))
        .expect("a .lines file");
    let len = fs::metadata(&lines).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&lines)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let s = open(d.path());
    assert_eq!(s.sources.read().splits.len(), 1);
    assert_eq!(
        collect(&s, &sel("a"), Direction::Forward, 10),
        vec![(2000, "second".to_string())]
    );
}

/// Splits written by earlier versions are still read, needles and metadata included, beside new
/// splits of the same window: format 1 (lines in Tantivy's doc store; the fixture was written by
/// 091b098), which compaction keeps apart from new splits, and format 2 (`.lines` files, a document
/// per line; written by fa1fa60), which compaction merges with new ones.
#[test]
fn format1_splits_are_still_read() {
    legacy_splits_are_still_read("logs-format1", "legacy", 1);
}

#[test]
fn format2_splits_are_still_read_and_merge_with_new_ones() {
    legacy_splits_are_still_read("logs-format2", "format2", 2);
}

/// Format 3 indexed id-like tokens whole: its lines carry a request id each, found by needles
/// before and after the split merges with one of the current format (ids as pieces).
#[test]
fn format3_splits_are_still_read_and_merge_with_new_ones() {
    legacy_splits_are_still_read("logs-format3", "format3", 3);
}

/// The request id of line `i` of the format 3 fixture.
fn fixture_id(i: i64) -> String {
    format!(
        "{:016x}",
        (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03
    )
}

fn legacy_splits_are_still_read(fixture: &str, app: &str, format: u32) {
    let d = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(fixture);
    let mut stack = vec![src.clone()];
    while let Some(p) = stack.pop() {
        for e in fs::read_dir(&p).unwrap() {
            let e = e.unwrap();
            let to = d.path().join(e.path().strip_prefix(&src).unwrap());
            if e.file_type().unwrap().is_dir() {
                fs::create_dir_all(&to).unwrap();
                stack.push(e.path());
            } else {
                fs::copy(e.path(), &to).unwrap();
            }
        }
    }
    let ids = format >= 3;
    let want: Vec<Row> = (0..3000i64)
        .map(|i| {
            let mut line = if i % 500 == 7 {
                format!("{app} line {i}\n  at frame {i}")
            } else {
                format!("{app} line {i} path=/api/v{} status={}", i % 3, 200 + i % 5)
            };
            if ids {
                line.push_str(&format!(" req={}", fixture_id(i)));
            }
            let meta = if i % 100 == 0 {
                vec![("trace_id".to_string(), format!("t{i}"))]
            } else {
                Vec::new()
            };
            (1_000_000_000 + i * 1000, line, meta)
        })
        .collect();
    let s = open(d.path());
    {
        let splits = s.sources.read().splits.clone();
        assert_eq!(splits.len(), 1);
        assert_eq!(splits[0].meta.format, format);
    }
    assert_eq!(rows(&s, &sel(app)), want);
    let mut needle = sel(app);
    needle.contains = vec!["at frame 1507".into()];
    assert_eq!(rows(&s, &needle), vec![want[1507].clone()]);
    // Ids, whole and in part, in the old split and (after the merge below) in the merged one.
    let id_needles = |i: i64| {
        let id = fixture_id(i);
        [
            id.clone(),
            format!("req={id}"),
            format!("req={}", &id[..9]),
            id[3..14].to_string(),
            id[6..].to_string(),
        ]
    };
    let check_ids = |s: &LogStore, stage: &str| {
        if !ids {
            return;
        }
        for i in [0, 1507, 2999] {
            for n in id_needles(i) {
                let mut q = sel(app);
                q.contains = vec![n.clone()];
                let want_i: Vec<Row> = want.iter().filter(|r| r.1.contains(&n)).cloned().collect();
                assert_eq!(want_i.len(), 1);
                assert_eq!(rows(s, &q), want_i, "{stage}: {n}");
            }
        }
    };
    check_ids(&s, "old split");
    let mut window = sel(app);
    (window.start, window.end) = (1_000_000_000 + 10 * 1000, 1_000_000_000 + 13 * 1000);
    assert_eq!(rows(&s, &window), want[10..13].to_vec());
    // A new split in the same window, then compaction: format 1 stays apart, format 2 merges into
    // a split of the current format; answers unchanged.
    let new_line = format!("new line req={}", fixture_id(-1));
    s.append(vec![LogStream {
        labels: Labels::from_pairs([("app", app), ("env", "prod")]),
        entries: vec![LogEntry::new(1_000_000_500, &new_line)],
    }])
    .unwrap();
    s.cut().unwrap();
    if format == 1 {
        assert_eq!(s.compact().unwrap(), 0);
    } else {
        assert_eq!(s.compact().unwrap(), 2);
        let splits = s.sources.read().splits.clone();
        assert_eq!(splits.len(), 1);
        assert_eq!(splits[0].meta.format, split::FORMAT);
    }
    let got = rows(&s, &sel(app));
    assert_eq!(got.len(), 3001);
    assert_eq!(got[1], (1_000_000_500, new_line.clone(), Vec::new()));
    let mut want_all = want.clone();
    want_all.insert(1, got[1].clone());
    assert_eq!(got, want_all);
    assert_eq!(rows(&s, &needle).len(), 1);
    check_ids(&s, "merged");
    let mut q = sel(app);
    q.contains = vec![fixture_id(-1)];
    assert_eq!(rows(&s, &q), vec![got[1].clone()]);
}

/// A document holds up to `DOC_LINES` lines of a stream: answers are still line by line, as a
/// brute-force filter over the same lines gives them. Needles found in different lines of one
/// document, time bounds inside a document, metadata on some of its lines, long lines (which end a
/// document early), tokens too long to index, several streams, both directions and limits; in the
/// head, in splits, and after compaction.
#[test]
fn documents_of_many_lines_answer_line_by_line() {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path());
    let words = [
        "red", "green", "blue", "apple", "pear", "plum", "GET", "POST",
    ];
    let mut rng = xorshift(0x2545_f491_4f6c_dd1du64);
    let mut next = move |n: u64| rng() % n;
    let mut want: Vec<(String, Row)> = Vec::new();
    for part in 0..2i64 {
        let mut streams = Vec::new();
        for app in ["a", "b", "c"] {
            let mut entries = Vec::new();
            for i in 0..700i64 {
                let ts = 1_000_000_000 + (i * 2 + part) * 1000 + app.len() as i64;
                let mut line = format!(
                    "{} {} id={} {app}",
                    words[next(8) as usize],
                    words[next(8) as usize],
                    next(50)
                );
                match next(100) {
                    0 => line.push_str(&" pad".repeat(3000)),
                    1 => line.push_str(&format!(" tok{}", "z".repeat(300))),
                    _ => {}
                }
                let mut e = LogEntry::new(ts, &line);
                if next(10) == 0 {
                    e.metadata = vec![("trace_id".into(), format!("t{ts}"))];
                }
                want.push((app.to_string(), (ts, line, e.metadata.clone())));
                entries.push(e);
            }
            streams.push(LogStream {
                labels: Labels::from_pairs([("app", app), ("env", "prod")]),
                entries,
            });
        }
        s.append(streams).unwrap();
        if part == 0 {
            s.cut().unwrap();
        }
    }
    let check = |s: &LogStore, stage: &str| {
        let t = |i: i64| 1_000_000_000 + i * 1000;
        let ranges = [
            (0, i64::MAX),
            (t(5), t(9)),
            (t(17), t(40) + 1),
            (t(700), t(701)),
        ];
        let needles: [&[&str]; 7] = [
            &[],
            &["red"],
            &["red", "pear"],
            &["apple GET"],
            &["id=7 "],
            &["zzzzz"],
            &["pad pad", "blue"],
        ];
        for app in ["a", "b"] {
            for &(start, end) in &ranges {
                for n in needles {
                    let mut q = sel(app);
                    (q.start, q.end) = (start, end);
                    q.contains = n.iter().map(|x| x.to_string()).collect();
                    let mut expect: Vec<Row> = want
                        .iter()
                        .filter(|(a, r)| a == app && r.0 >= start && r.0 < end)
                        .filter(|(_, r)| n.iter().all(|x| r.1.contains(x)))
                        .map(|(_, r)| r.clone())
                        .collect();
                    expect.sort();
                    assert_eq!(rows(s, &q), expect, "{stage}: {app} {start}..{end} {n:?}");
                    let newest: Vec<(i64, String)> = expect
                        .iter()
                        .rev()
                        .take(7)
                        .map(|r| (r.0, r.1.clone()))
                        .collect();
                    assert_eq!(
                        collect(s, &q, Direction::Backward, 7),
                        newest,
                        "{stage} backward: {app} {start}..{end} {n:?}"
                    );
                }
            }
        }
    };
    check(&s, "split and head");
    s.cut().unwrap();
    check(&s, "two splits");
    assert_eq!(s.compact().unwrap(), 2);
    check(&s, "compacted");
}

proptest::proptest! {
    /// The line tokenizer gives Tantivy's simple tokenizer's tokens, lowercased, less numbers of
    /// one or two digits, on any mix of ASCII, punctuation and non-ASCII letters and marks; each
    /// token of 8 or more hex digits replaced by the id marker and its whole 4-digit chunks.
    #[test]
    fn line_tokens_match_tantivys_simple_tokenizer(
        line in proptest::prop_oneof![
            "[a-zA-Z0-9 ./:=_\\-\"\\[\\]éÄß東京\u{301}İ]{0,80}",
            "([0-9a-fA-F]{1,20}[g =é-]){0,8}",
        ]
    ) {
        use tantivy::tokenizer::{LowerCaser, SimpleTokenizer, TextAnalyzer};
        let mut ours = split::analyzer_for_tests();
        let mut got = Vec::new();
        let mut ts = ours.token_stream(&line);
        while ts.advance() {
            got.push(ts.token().text.clone());
        }
        let mut theirs = TextAnalyzer::builder(SimpleTokenizer::default())
            .filter(LowerCaser)
            .build();
        let mut want = Vec::new();
        let mut ts = theirs.token_stream(&line);
        while ts.advance() {
            let t = ts.token();
            let raw = &line[t.offset_from..t.offset_to];
            if raw.len() <= 2 && raw.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            if raw.len() >= 8 && raw.bytes().all(|b| b.is_ascii_hexdigit()) {
                want.push("_".to_string());
                let digits: Vec<char> = t.text.chars().collect();
                for c in digits.chunks_exact(4) {
                    want.push(format!("_{}", c.iter().collect::<String>()));
                }
            } else {
                want.push(t.text.clone());
            }
        }
        proptest::prop_assert_eq!(got, want);
    }
}
