//! `vigil agent`: reads log files, the journal and standard input and ships the lines to a Vigil
//! (or any Loki) push endpoint, each line once.
//!
//! One reader thread turns new lines into batches; each batch is written to the disk buffer with the
//! read positions it reached, fsynced, and only then do the positions count: a crash loses no read
//! line and a restart starts after the last buffered one. The sender posts buffered batches in
//! order and forgets one only when the server acknowledged it; after a crash between the server's
//! acknowledgement and the agent's record of it, the batch is sent again with the same timestamps
//! and the server drops the repeats (same stream, time and line). While the server is away the
//! buffer grows, up to `buffer.max_size`, then reading pauses (files stay on disk).

pub mod buffer;
pub mod config;
pub mod files;
pub mod journal;
mod metrics;

use std::collections::HashMap;
use std::io::BufRead;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use prost::Message;
use serde::{Deserialize, Serialize};
use vigil_ingest::loki::decode::{EntryAdapter, PushRequest, StreamAdapter, Timestamp};

pub use config::AgentConfig;
use config::{StdinFormat, StdinSource};
use files::{FilePosition, FileSource, Sink, Tailer};
pub use metrics::AgentMetrics;

/// What a buffered batch records about where reading stood.
#[derive(Default, Serialize, Deserialize)]
struct Positions {
    #[serde(default)]
    files: Vec<FilePosition>,
    /// The journal cursor of the last entry read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    journal_cursor: Option<String>,
}

/// Lines gathered for the next buffer record.
struct Batch {
    streams: HashMap<String, Vec<EntryAdapter>>,
    order: Vec<String>,
    bytes: usize,
    lines: usize,
    since: Option<Instant>,
    max_bytes: usize,
    /// Timestamps are unique and increasing within the agent, so a resent batch is an exact repeat.
    last_ts: i64,
}

impl Batch {
    fn new(max_bytes: usize) -> Batch {
        Batch {
            streams: HashMap::new(),
            order: Vec::new(),
            bytes: 0,
            lines: 0,
            since: None,
            max_bytes,
            last_ts: 0,
        }
    }

    fn push(&mut self, stream: &str, line: &[u8], ts: Option<i64>) {
        let ts = ts.unwrap_or_else(|| {
            let t = vigil_model::now_ns().max(self.last_ts + 1);
            self.last_ts = t;
            t
        });
        let e = EntryAdapter {
            timestamp: Some(Timestamp {
                seconds: ts.div_euclid(1_000_000_000),
                nanos: ts.rem_euclid(1_000_000_000) as i32,
            }),
            line: String::from_utf8_lossy(line).into_owned(),
            structured_metadata: Vec::new(),
        };
        self.bytes += line.len();
        self.lines += 1;
        self.since.get_or_insert_with(Instant::now);
        match self.streams.get_mut(stream) {
            Some(v) => v.push(e),
            None => {
                self.order.push(stream.to_string());
                self.streams.insert(stream.to_string(), vec![e]);
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.lines == 0
    }

    /// Loki's push body: protobuf in a snappy block.
    fn take_body(&mut self) -> Vec<u8> {
        let mut req = PushRequest::default();
        for s in self.order.drain(..) {
            let entries = self.streams.remove(&s).unwrap_or_default();
            req.streams.push(StreamAdapter { labels: s, entries });
        }
        self.bytes = 0;
        self.lines = 0;
        self.since = None;
        snap::raw::Encoder::new()
            .compress_vec(&req.encode_to_vec())
            .expect("snappy")
    }
}

impl Sink for Batch {
    fn line(&mut self, stream: &str, line: &[u8]) {
        self.push(stream, line, None);
    }
    fn full(&self) -> bool {
        self.bytes >= self.max_bytes
    }
}

/// An entry from stdin or the journal.
enum Input {
    Entry {
        stream: String,
        line: Vec<u8>,
        ts: Option<i64>,
        cursor: Option<String>,
    },
    Eof,
}

fn selector(labels: &[(String, String)]) -> String {
    let body: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}={}", serde_json::to_string(v).unwrap()))
        .collect();
    format!("{{{}}}", body.join(", "))
}

fn merged(
    a: &std::collections::BTreeMap<String, String>,
    b: &std::collections::BTreeMap<String, String>,
) -> Vec<(String, String)> {
    let mut m = a.clone();
    m.extend(b.iter().map(|(k, v)| (k.clone(), v.clone())));
    m.into_iter().collect()
}

/// A journal entry as an input: `unit` and `level` labels beside the source's, the journal's time;
/// the cursor kept when the source can resume from it.
fn journal_input(base: &[(String, String)], e: journal::JournalEntry, resumable: bool) -> Input {
    let mut l = base.to_vec();
    if let Some(u) = &e.unit {
        l.push(("unit".into(), u.clone()));
    }
    if let Some(p) = e.priority {
        l.push(("level".into(), journal::priority_keyword(p).into()));
    }
    l.sort();
    l.dedup_by(|a, b| a.0 == b.0);
    Input::Entry {
        stream: selector(&l),
        line: e.message.into_bytes(),
        ts: e.ts_ns,
        cursor: if resumable { e.cursor } else { None },
    }
}

fn read_stdin(src: StdinSource, base: Vec<(String, String)>, tx: mpsc::SyncSender<Input>) {
    let stdin = std::io::stdin();
    let mut r = stdin.lock();
    let stream = selector(&base);
    match src.format {
        StdinFormat::Lines => {
            let mut line = Vec::new();
            loop {
                line.clear();
                match r.read_until(b'\n', &mut line) {
                    Ok(0) => break,
                    Ok(_) => {
                        if line.last() == Some(&b'\n') {
                            line.pop();
                        }
                        if line.last() == Some(&b'\r') {
                            line.pop();
                        }
                        let e = Input::Entry {
                            stream: stream.clone(),
                            line: line.clone(),
                            ts: None,
                            cursor: None,
                        };
                        if tx.send(e).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot read stdin");
                        break;
                    }
                }
            }
        }
        StdinFormat::JournaldExport => loop {
            match journal::next_entry(&mut r) {
                Ok(Some(e)) => {
                    if tx.send(journal_input(&base, e, false)).is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the journal export on stdin");
                    break;
                }
            }
        },
    }
    let _ = tx.send(Input::Eof);
}

fn read_journal(
    command: Vec<String>,
    mut cursor: Option<String>,
    base: Vec<(String, String)>,
    tx: mpsc::SyncSender<Input>,
    stop: Arc<AtomicBool>,
) {
    let mut backoff = Duration::from_millis(500);
    while !stop.load(Ordering::Relaxed) {
        let mut cmd = std::process::Command::new(&command[0]);
        cmd.args(&command[1..]);
        if let Some(c) = &cursor {
            cmd.arg(format!("--after-cursor={c}"));
        }
        cmd.stdout(std::process::Stdio::piped())
            .stdin(std::process::Stdio::null());
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(command = ?command, error = %e, "cannot start the journal reader");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        loop {
            match journal::next_entry(&mut out) {
                Ok(Some(e)) => {
                    backoff = Duration::from_millis(500);
                    cursor = e.cursor.clone().or(cursor);
                    if tx.send(journal_input(&base, e, true)).is_err() {
                        let _ = child.kill();
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::error!(error = %e, "bad journal export input");
                    break;
                }
            }
        }
        let _ = child.kill();
        let st = child.wait();
        tracing::warn!(status = ?st, "the journal reader ended; starting it again");
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// An error with its causes (reqwest's own message hides them).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// The agent, built from its configuration.
pub struct Agent {
    cfg: AgentConfig,
    metrics: Arc<AgentMetrics>,
}

impl Agent {
    pub fn new(cfg: AgentConfig) -> Agent {
        Agent {
            cfg,
            metrics: Arc::new(AgentMetrics::new()),
        }
    }

    pub fn metrics(&self) -> Arc<AgentMetrics> {
        self.metrics.clone()
    }

    /// Runs until `stop` is set (then flushes what it read to the buffer and sends for up to
    /// `grace`), or, when its only source is stdin, until stdin ended and everything was sent.
    pub async fn run(self, stop: Arc<AtomicBool>, grace: Duration) -> Result<(), String> {
        let cfg = self.cfg;
        let buffer_dir = cfg.data_dir.join("buffer");
        let (buffer, saved) = buffer::Buffer::open(&buffer_dir, cfg.buffer.segment_size.0)
            .map_err(|e| e.to_string())?;
        let buffer = Arc::new(buffer);
        let positions: Positions = match saved {
            Some(b) => serde_json::from_slice(&b)
                .map_err(|e| format!("{}: unreadable positions: {e}", buffer_dir.display()))?,
            None => Positions::default(),
        };
        if buffer.pending_records() > 0 {
            tracing::info!(
                batches = buffer.pending_records(),
                bytes = buffer.pending_bytes(),
                "unsent batches in the disk buffer; sending them first"
            );
        }
        let client = cfg
            .server
            .http_config
            .build(&vigil_http::ClientOptions {
                user_agent: format!("vigil-agent/{}", env!("CARGO_PKG_VERSION")),
                ..Default::default()
            })
            .map_err(|e| format!("server.http_config: {e}"))?;

        // Sources.
        let mut file_sources = Vec::new();
        let (tx, rx) = mpsc::sync_channel::<Input>(8192);
        let mut stdin_only = true;
        for s in &cfg.sources {
            let labels = merged(&cfg.labels, &s.labels);
            if !s.files.is_empty() {
                stdin_only = false;
                file_sources.push(FileSource {
                    globs: s.files.clone(),
                    excludes: s
                        .exclude
                        .iter()
                        .map(|g| glob::Pattern::new(g).expect("validated"))
                        .collect(),
                    labels,
                });
            } else if let Some(j) = &s.journald {
                stdin_only = false;
                let (cmd, cur, tx, stop) = (
                    j.command.clone(),
                    positions.journal_cursor.clone(),
                    tx.clone(),
                    stop.clone(),
                );
                std::thread::Builder::new()
                    .name("agent-journal".into())
                    .spawn(move || read_journal(cmd, cur, labels, tx, stop))
                    .map_err(|e| e.to_string())?;
            } else if let Some(si) = &s.stdin {
                let (si, tx) = (si.clone(), tx.clone());
                std::thread::Builder::new()
                    .name("agent-stdin".into())
                    .spawn(move || read_stdin(si, labels, tx))
                    .map_err(|e| e.to_string())?;
            }
        }
        drop(tx);
        let tailer = Tailer::new(
            file_sources,
            positions.files,
            cfg.max_line_size.0 as usize,
            cfg.rotate_wait.0,
        );

        let notify = Arc::new(tokio::sync::Notify::new());
        let reading_done = Arc::new(AtomicBool::new(false));
        let reader = {
            let (buffer, notify, stop, done, metrics) = (
                buffer.clone(),
                notify.clone(),
                stop.clone(),
                reading_done.clone(),
                self.metrics.clone(),
            );
            let cfg = cfg.clone();
            let cursor = positions.journal_cursor;
            std::thread::Builder::new()
                .name("agent-reader".into())
                .spawn(move || {
                    let r = read_loop(&cfg, tailer, rx, cursor, &buffer, &notify, &stop, &metrics);
                    done.store(true, Ordering::SeqCst);
                    notify.notify_one();
                    r
                })
                .map_err(|e| e.to_string())?
        };
        let url = cfg.server.url.clone();
        send_loop(
            &cfg,
            &client,
            &url,
            &buffer,
            &notify,
            &reading_done,
            &stop,
            grace,
            stdin_only,
            &self.metrics,
        )
        .await;
        match reader.join() {
            Ok(r) => r,
            Err(_) => Err("the reader thread panicked".into()),
        }
    }
}

/// Adds a stdin or journal entry to the batch.
fn take(e: Input, batch: &mut Batch, cursor: &mut Option<String>, metrics: &AgentMetrics) {
    if let Input::Entry {
        stream,
        line,
        ts,
        cursor: c,
    } = e
    {
        metrics.lines_read.inc();
        metrics.bytes_read.inc_by(line.len() as u64);
        batch.push(&stream, &line, ts);
        if c.is_some() {
            *cursor = c;
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn read_loop(
    cfg: &AgentConfig,
    mut tailer: Tailer,
    rx: mpsc::Receiver<Input>,
    mut cursor: Option<String>,
    buffer: &buffer::Buffer,
    notify: &tokio::sync::Notify,
    stop: &AtomicBool,
    metrics: &AgentMetrics,
) -> Result<(), String> {
    let mut batch = Batch::new(cfg.server.batch_size.0 as usize);
    let mut inputs_open = true;
    let mut paused = false;
    let mut last_stats = tailer.stats;
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        let pending = buffer.pending_bytes();
        metrics.buffer_pending_bytes.set(pending as i64);
        metrics
            .buffer_pending_batches
            .set(buffer.pending_records() as i64);
        if !stopping && pending >= cfg.buffer.max_size.0 {
            if !paused {
                tracing::warn!(
                    bytes = pending,
                    "the disk buffer is full (buffer.max_size); reading pauses until the server takes batches"
                );
                paused = true;
            }
            std::thread::sleep(cfg.poll_interval.0);
            continue;
        }
        paused = false;
        let mut more = if stopping {
            false
        } else {
            tailer.poll(&mut batch)
        };
        let st = tailer.stats;
        metrics.lines_read.inc_by(st.lines - last_stats.lines);
        metrics.bytes_read.inc_by(st.bytes - last_stats.bytes);
        metrics
            .rotations
            .inc_by(st.rotations - last_stats.rotations);
        metrics
            .truncations
            .inc_by(st.truncations - last_stats.truncations);
        metrics.files_watched.set(tailer.watched() as i64);
        last_stats = st;
        while inputs_open && !batch.full() {
            match rx.try_recv() {
                Ok(e @ Input::Entry { .. }) => take(e, &mut batch, &mut cursor, metrics),
                Ok(Input::Eof) | Err(mpsc::TryRecvError::Disconnected) => inputs_open = false,
                Err(mpsc::TryRecvError::Empty) => break,
            }
        }
        if batch.full() {
            more = true;
        }
        let finishing = stopping || (!inputs_open && !tailer.has_sources());
        let due = batch.full()
            || batch
                .since
                .is_some_and(|t| t.elapsed() >= cfg.server.batch_wait.0)
            || finishing;
        if due && !batch.is_empty() {
            let lines = batch.lines;
            let pos = serde_json::to_vec(&Positions {
                files: tailer.positions(),
                journal_cursor: cursor.clone(),
            })
            .expect("positions serialize");
            let body = batch.take_body();
            if let Err(e) = buffer.append(&pos, &body) {
                // Nothing was acknowledged to anyone yet: the lines are read again after a restart.
                tracing::error!(error = %e, "cannot write the disk buffer; stopping");
                return Err(e.to_string());
            }
            metrics.batches_buffered.inc();
            tracing::debug!(lines, bytes = body.len(), "batch buffered");
            notify.notify_one();
        }
        if finishing {
            return Ok(());
        }
        if !more {
            // Sleep until the next poll, waking for stdin or journal entries.
            let deadline = Instant::now() + cfg.poll_interval.0;
            if inputs_open {
                match rx.recv_timeout(cfg.poll_interval.0) {
                    Ok(e @ Input::Entry { .. }) => take(e, &mut batch, &mut cursor, metrics),
                    Ok(Input::Eof) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                        inputs_open = false
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                }
            } else {
                std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn send_loop(
    cfg: &AgentConfig,
    client: &vigil_http::HttpClient,
    url: &str,
    buffer: &buffer::Buffer,
    notify: &tokio::sync::Notify,
    reading_done: &AtomicBool,
    stop: &AtomicBool,
    grace: Duration,
    stdin_only: bool,
    metrics: &AgentMetrics,
) {
    let mut backoff = cfg.server.min_backoff.0;
    let mut stop_at: Option<Instant> = None;
    loop {
        if stop.load(Ordering::Relaxed) && stop_at.is_none() {
            stop_at = Some(Instant::now() + grace);
        }
        if stop_at.is_some_and(|t| Instant::now() >= t) {
            if buffer.pending_records() > 0 {
                tracing::warn!(
                    batches = buffer.pending_records(),
                    "stopping with unsent batches; they are sent after the next start"
                );
            }
            return;
        }
        let rec = match buffer.first_pending() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the disk buffer");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let Some(rec) = rec else {
            let done = reading_done.load(Ordering::SeqCst);
            if done && (stdin_only || stop_at.is_some()) {
                return;
            }
            let _ = tokio::time::timeout(Duration::from_millis(500), notify.notified()).await;
            continue;
        };
        let mut req = match client.post(url) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot build the push request");
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        req = req
            .header("Content-Type", "application/x-protobuf")
            .timeout(cfg.server.timeout.0)
            .body(rec.body);
        if let Some(t) = &cfg.server.tenant_id {
            req = req.header("X-Scope-OrgID", t);
        }
        let started = Instant::now();
        let outcome = req.send().await;
        metrics
            .send_seconds
            .observe(started.elapsed().as_secs_f64());
        let retry_after = match outcome {
            Ok(resp) if resp.status().is_success() => {
                metrics.batches_sent.inc();
                if let Err(e) = buffer.ack(rec.seq) {
                    tracing::error!(error = %e, "cannot record an acknowledged batch");
                }
                backoff = cfg.server.min_backoff.0;
                continue;
            }
            Ok(resp) => {
                let status = resp.status();
                let retry_after = resp
                    .headers()
                    .get("Retry-After")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let text = resp.text().await.unwrap_or_default();
                if status.as_u16() == 429 || status.is_server_error() {
                    metrics
                        .send_failures
                        .get_or_create(&metrics::Reason::status(status.as_u16()))
                        .inc();
                    tracing::warn!(%status, body = %text.trim(), "the server did not take a batch; retrying");
                    retry_after
                } else {
                    // The server refuses this batch for good (bad input): sending it again would
                    // get the same answer, and it would hold up everything behind it.
                    metrics.batches_dropped.inc();
                    tracing::error!(%status, body = %text.trim(), seq = rec.seq, "the server refused a batch; dropping it");
                    if let Err(e) = buffer.ack(rec.seq) {
                        tracing::error!(error = %e, "cannot record a dropped batch");
                    }
                    continue;
                }
            }
            Err(e) => {
                metrics
                    .send_failures
                    .get_or_create(&metrics::Reason::error())
                    .inc();
                tracing::warn!(error = %chain(&e), url, "cannot reach the server; retrying");
                None
            }
        };
        let wait = retry_after.map_or(backoff, |r| r.min(cfg.server.max_backoff.0).max(backoff));
        let sleep = tokio::time::sleep(wait);
        tokio::pin!(sleep);
        // Wake early only to stop.
        loop {
            tokio::select! {
                _ = &mut sleep => break,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {
                    if stop.load(Ordering::Relaxed) && stop_at.is_none() {
                        stop_at = Some(Instant::now() + grace);
                    }
                    if stop_at.is_some_and(|t| Instant::now() >= t) { break; }
                }
            }
        }
        backoff = (backoff * 2).min(cfg.server.max_backoff.0);
    }
}
