//! `vigil agent`: files tailed through rename rotation (while running and while stopped), copy-and-
//! truncate, `kill -9` of the agent mid-stream and a server outage longer than the retry window;
//! every line written arrives exactly once. Also stdin in journald export format.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use vigil_model::now_ns;

use crate::harness::*;

fn write_lines(path: &Path, range: std::ops::Range<u32>) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for i in range {
        writeln!(f, "line {i:06} GET /api/items/{} 200 {}ms", i % 97, i % 13).unwrap();
    }
}

/// Writes lines in small chunks over about `secs` seconds, like a service would.
async fn write_slowly(path: &Path, range: std::ops::Range<u32>, secs: f64) {
    let chunks = 10u32;
    let per = range.len() as u32 / chunks;
    for c in 0..chunks {
        let lo = range.start + c * per;
        let hi = if c + 1 == chunks { range.end } else { lo + per };
        write_lines(path, lo..hi);
        tokio::time::sleep(Duration::from_secs_f64(secs / chunks as f64)).await;
    }
}

struct AgentProc {
    dir: PathBuf,
    config: PathBuf,
    starts: u32,
    proc: Option<Proc>,
}

impl AgentProc {
    fn start(&mut self) {
        self.starts += 1;
        let log = self.dir.join(format!("agent.{}.log", self.starts));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
        cmd.args(["agent", "--config"])
            .arg(&self.config)
            .env("VIGIL_LOG", "info,vigil_agent=debug");
        self.proc = Some(Proc::spawn("vigil agent", &mut cmd, &log));
    }

    fn kill9(&mut self) {
        let mut p = self.proc.take().unwrap();
        p.signal("KILL");
        p.wait(Duration::from_secs(10));
    }

    fn logs(&self) -> String {
        (1..=self.starts)
            .map(|i| tail(&self.dir.join(format!("agent.{i}.log")), 30))
            .collect::<Vec<_>>()
            .join("\n---\n")
    }
}

/// Every line of `{job="<job>"}` since `since`, paged by time (the agent's timestamps are unique).
async fn all_lines(v: &Vigil, job: &str, since: i64) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut start = since;
    loop {
        let r = query_range(v, &format!(r#"{{job="{job}"}}"#), &start.to_string(), 5000).await;
        let mut page: Vec<(i64, String, String)> = Vec::new();
        for s in r["data"]["result"].as_array().unwrap() {
            let file = s["stream"]["filename"].as_str().unwrap_or("").to_string();
            for e in s["values"].as_array().unwrap() {
                let ts: i64 = e[0].as_str().unwrap().parse().unwrap();
                page.push((ts, file.clone(), e[1].as_str().unwrap().to_string()));
            }
        }
        page.sort();
        let n = page.len();
        if let Some(last) = page.last() {
            start = last.0 + 1;
        }
        out.extend(page.into_iter().map(|(_, f, l)| (f, l)));
        if n < 5000 {
            return out;
        }
    }
}

async fn wait_count(
    v: &Vigil,
    agent: &AgentProc,
    job: &str,
    since: i64,
    n: usize,
    limit: Duration,
) {
    let deadline = Instant::now() + limit;
    loop {
        let got = all_lines(v, job, since).await.len();
        if got >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{got} of {n} lines arrived\n{}",
            agent.logs()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn files_rotated_and_truncated_arrive_exactly_once_across_restarts_and_outages() {
    let mut v = Vigil::start("scrape_configs: []\n").await;
    let work = tempfile::tempdir().unwrap();
    let logs = work.path().join("logs");
    fs::create_dir(&logs).unwrap();
    let app = logs.join("app.log");
    let other = logs.join("other.log");
    let config = work.path().join("agent.yml");
    fs::write(
        &config,
        format!(
            "server:\n  url: {}\n  batch_size: 16KiB\n  batch_wait: 200ms\n  min_backoff: 100ms\n  max_backoff: 1s\n  timeout: 2s\n\
             data_dir: {}\npoll_interval: 100ms\nrotate_wait: 2s\nlabels:\n  host: test\n\
             sources:\n  - files: [\"{}/*.log\"]\n    exclude: [\"{}/ignored*\"]\n    labels:\n      job: agenttest\n",
            v.url("/loki/api/v1/push"),
            work.path().join("agent-data").display(),
            logs.display(),
            logs.display(),
        ),
    )
    .unwrap();
    let since = now_ns() - 1_000_000_000;
    let mut agent = AgentProc {
        dir: work.path().to_path_buf(),
        config,
        starts: 0,
        proc: None,
    };
    // Lines already there before the first start are read from the beginning.
    write_lines(&app, 0..500);
    write_lines(&logs.join("ignored.log"), 0..10);
    agent.start();
    write_slowly(&app, 500..2000, 1.0).await;
    write_lines(&other, 0..300);

    // logrotate's default: rename, the writer still appends to the renamed file for a moment, then
    // reopens a new file at the old path. `app.log.1` is not matched by the glob.
    fs::rename(&app, logs.join("app.log.1")).unwrap();
    write_lines(&logs.join("app.log.1"), 2000..2100);
    write_slowly(&app, 2100..3000, 0.5).await;

    // kill -9 mid-stream, lines keep coming, then the agent starts again.
    let writer = {
        let app = app.clone();
        tokio::spawn(async move { write_slowly(&app, 3000..4000, 1.5).await })
    };
    tokio::time::sleep(Duration::from_millis(600)).await;
    agent.kill9();
    writer.await.unwrap();
    agent.start();

    // Rotated while the agent is down: the rest of the old file is found beside it by inode.
    tokio::time::sleep(Duration::from_millis(500)).await;
    agent.kill9();
    write_lines(&app, 4000..4100);
    fs::rename(&app, logs.join("app.log.2")).unwrap();
    write_lines(&app, 4100..4200);
    agent.start();
    wait_count(
        &v,
        &agent,
        "agenttest",
        since,
        4200 + 300,
        Duration::from_secs(60),
    )
    .await;

    // copytruncate: copy aside (not matched), truncate in place, go on writing.
    fs::copy(&app, logs.join("app.log.3")).unwrap();
    OpenOptions::new()
        .write(true)
        .open(&app)
        .unwrap()
        .set_len(0)
        .unwrap();
    write_slowly(&app, 4200..5000, 1.0).await;

    // The server goes away for longer than the agent's retry window (backoff capped at 1 s),
    // lines keep coming, the server comes back.
    tokio::time::sleep(Duration::from_millis(500)).await;
    v.kill9();
    write_slowly(&app, 5000..6000, 4.0).await;
    v.launch().await;
    wait_count(
        &v,
        &agent,
        "agenttest",
        since,
        6000 + 300,
        Duration::from_secs(60),
    )
    .await;
    // Anything resent late would show up now.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let got = all_lines(&v, "agenttest", since).await;
    let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (f, l) in &got {
        *seen.entry((f.clone(), l.clone())).or_default() += 1;
    }
    let dups: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(
        dups.is_empty(),
        "lines arrived more than once: {dups:?}\n{}",
        agent.logs()
    );
    let app_name = app.to_string_lossy().into_owned();
    let other_name = other.to_string_lossy().into_owned();
    let mut missing = Vec::new();
    for i in 0..6000u32 {
        let l = format!("line {i:06} GET /api/items/{} 200 {}ms", i % 97, i % 13);
        if !seen.contains_key(&(app_name.clone(), l.clone())) {
            missing.push(i);
        }
    }
    assert!(
        missing.is_empty(),
        "{} app lines missing, first {:?}\n{}",
        missing.len(),
        &missing[..missing.len().min(10)],
        agent.logs()
    );
    for i in 0..300u32 {
        let l = format!("line {i:06} GET /api/items/{} 200 {}ms", i % 97, i % 13);
        assert!(
            seen.contains_key(&(other_name.clone(), l)),
            "other.log line {i} missing"
        );
    }
    assert_eq!(
        got.len(),
        6300,
        "nothing else arrived (ignored.log is excluded)"
    );

    // Lines of a stream come in the order they were written.
    let app_order: Vec<u32> = got
        .iter()
        .filter(|(f, _)| *f == app_name)
        .map(|(_, l)| l[5..11].parse().unwrap())
        .collect();
    assert!(
        app_order.windows(2).all(|w| w[0] < w[1]),
        "app.log lines out of order"
    );
    let mut p = agent.proc.take().unwrap();
    p.signal("TERM");
    let st = p.wait(Duration::from_secs(15));
    assert!(st.success(), "agent exit: {st:?}\n{}", agent.logs());
}

/// A log query_range, forward, from `start` (ns) to a minute from now, at most `limit` lines.
async fn query_range(v: &Vigil, query: &str, start: &str, limit: usize) -> Value {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("query", query)
        .append_pair("limit", &limit.to_string())
        .append_pair("direction", "forward")
        .append_pair("start", start)
        .append_pair("end", &(now_ns() + 60_000_000_000).to_string());
    client()
        .get(format!(
            "{}?{}",
            v.url("/loki/api/v1/query_range"),
            q.finish()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// `journalctl -o export | vigil agent --stdin journald_export`: the journal's own timestamps,
/// `unit` and `level` labels, binary fields; the agent exits once stdin ended and all was sent.
#[tokio::test]
async fn journald_export_on_stdin() {
    let v = Vigil::start("scrape_configs: []\n").await;
    let work = tempfile::tempdir().unwrap();
    let t0_us = (now_ns() / 1000) - 5_000_000;
    let mut export = Vec::new();
    for i in 0..50i64 {
        let unit = if i % 2 == 0 {
            "nginx.service"
        } else {
            "sshd.service"
        };
        let prio = if i % 10 == 0 { 3 } else { 6 };
        export.extend_from_slice(
            format!(
                "__CURSOR=s=abc;i={i}\n__REALTIME_TIMESTAMP={}\n_SYSTEMD_UNIT={unit}\nPRIORITY={prio}\n_HOSTNAME=box\n",
                t0_us + i * 1000
            )
            .as_bytes(),
        );
        if i == 7 {
            let msg = b"multi\nline message";
            export.extend_from_slice(b"MESSAGE\n");
            export.extend_from_slice(&(msg.len() as u64).to_le_bytes());
            export.extend_from_slice(msg);
            export.extend_from_slice(b"\n\n");
        } else {
            export.extend_from_slice(format!("MESSAGE=message {i}\n\n").as_bytes());
        }
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["agent", "--server"])
        .arg(v.url("/loki/api/v1/push"))
        .arg("--data-dir")
        .arg(work.path().join("d"))
        .args(["--stdin", "journald_export", "--label", "job=journal"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&export).unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let since = ((t0_us - 1) * 1000).to_string();
    let r = query_range(
        &v,
        r#"{job="journal", unit="nginx.service", level="error"}"#,
        &since,
        100,
    )
    .await;
    let res = r["data"]["result"].as_array().unwrap();
    assert_eq!(res.len(), 1, "{r}");
    let vals: Vec<(String, String)> = res[0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e[0].as_str().unwrap().into(), e[1].as_str().unwrap().into()))
        .collect();
    // PRIORITY 3 on even i with i % 10 == 0: 0, 10, 20, 30, 40; the journal's time kept.
    assert_eq!(
        vals,
        (0..5)
            .map(|k| (
                ((t0_us + k * 10_000) * 1000).to_string(),
                format!("message {}", k * 10)
            ))
            .collect::<Vec<_>>()
    );
    let r = query_range(&v, r#"{job="journal"} |= "multi""#, &since, 100).await;
    assert_eq!(
        r["data"]["result"][0]["values"][0][1], "multi\nline message",
        "{r}"
    );
    assert_eq!(r["data"]["result"][0]["stream"]["unit"], "sshd.service");
}
