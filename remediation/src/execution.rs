//! The execution record: one per run (or refused run), with its alert, parameters, policy
//! decisions, every host call, the guest's logs, the outcome and its timestamps; kept in an
//! append-only JSON-lines file (each record fsynced before it counts) and in memory for the API.

use std::collections::VecDeque;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How an execution ended (or where it stands).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Waiting for an approval.
    Pending,
    Running,
    /// The runbook returned 0; verification not (yet) done.
    Succeeded,
    Failed,
    TimedOut,
    /// The policy or an operator refused it.
    Denied,
    /// It did not fix the alert (or could not run), and on-call was told.
    Escalated,
    /// The alert cleared within `verify_within`.
    Verified,
}

/// One step of the record: a policy decision, a capability call, a log line, a verification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Unix milliseconds.
    pub at: i64,
    /// `policy`, `call`, `log`, `approval`, `verify`, `escalate`.
    pub kind: String,
    pub detail: Value,
}

/// Unix-millisecond timestamps of the phases (detect: the alert's start; act: the first action
/// performed; recover: the alert seen cleared).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timestamps {
    pub detected: Option<i64>,
    pub created: i64,
    pub started: Option<i64>,
    pub acted: Option<i64>,
    pub finished: Option<i64>,
    pub recovered: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Execution {
    pub id: String,
    /// The binding that started it (`receiver/runbook`), or `manual`.
    pub binding: String,
    pub runbook: String,
    pub version: String,
    pub alert: Value,
    pub params: Value,
    pub dry_run: bool,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    #[serde(default)]
    pub steps: Vec<Step>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// What the runbook wrote with `alert.annotate`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    pub times: Timestamps,
    /// The binding as it stood when the execution was created (templated parameters, grants,
    /// flags): what an approval after a restart runs under, and what the audit shows it ran with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<crate::engine::Binding>,
}

impl Execution {
    pub fn step(&mut self, kind: &str, detail: Value) {
        self.steps.push(Step {
            at: vigil_model::now_ms(),
            kind: kind.to_string(),
            detail,
        });
    }
}

/// Executions by id: the latest version of each in memory (at most `keep`), every version on disk.
pub struct ExecutionStore {
    path: Option<PathBuf>,
    keep: usize,
    recent: Mutex<VecDeque<Execution>>,
    /// Serialises appends.
    file: Mutex<Option<std::fs::File>>,
}

impl ExecutionStore {
    /// Opens (or creates) `dir/executions.jsonl` and reads back what it holds; a torn last line
    /// (power loss mid-append) is skipped. `None`: memory only.
    pub fn open(dir: Option<&Path>, keep: usize) -> std::io::Result<ExecutionStore> {
        let mut recent: VecDeque<Execution> = VecDeque::new();
        let (path, file) = match dir {
            None => (None, None),
            Some(d) => {
                std::fs::create_dir_all(d)?;
                let p = d.join("executions.jsonl");
                if let Ok(bytes) = std::fs::read(&p) {
                    // A torn last line (power loss mid-append) is cut off, so the next record
                    // starts on a line of its own.
                    let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
                    if whole < bytes.len() {
                        tracing::warn!(file = %p.display(), dropped = bytes.len() - whole,
                            "cut a torn last record off the execution log");
                        let f = std::fs::OpenOptions::new().write(true).open(&p)?;
                        f.set_len(whole as u64)?;
                        f.sync_all()?;
                    }
                    for line in bytes[..whole].lines() {
                        let Ok(line) = line else { break };
                        if let Ok(e) = serde_json::from_str::<Execution>(&line) {
                            upsert(&mut recent, e, keep);
                        }
                    }
                }
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&p)?;
                std::fs::File::open(d)?.sync_all()?;
                (Some(p), Some(f))
            }
        };
        Ok(ExecutionStore {
            path,
            keep,
            recent: Mutex::new(recent),
            file: Mutex::new(file),
        })
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Records (a new version of) an execution: appended and fsynced before it is visible.
    /// Blocking: call from a blocking thread.
    pub fn put(&self, e: &Execution) -> std::io::Result<()> {
        if let Some(f) = self.file.lock().as_mut() {
            let mut line = serde_json::to_vec(e).map_err(std::io::Error::other)?;
            line.push(b'\n');
            f.write_all(&line)?;
            f.sync_data()?;
        }
        upsert(&mut self.recent.lock(), e.clone(), self.keep);
        Ok(())
    }

    pub fn get(&self, id: &str) -> Option<Execution> {
        self.recent.lock().iter().find(|e| e.id == id).cloned()
    }

    /// Newest first.
    pub fn list(&self) -> Vec<Execution> {
        self.recent.lock().iter().rev().cloned().collect()
    }
}

fn upsert(q: &mut VecDeque<Execution>, e: Execution, keep: usize) {
    if let Some(i) = q.iter().position(|x| x.id == e.id) {
        q[i] = e;
    } else {
        q.push_back(e);
        while q.len() > keep {
            q.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn exec(id: &str, outcome: Outcome) -> Execution {
        Execution {
            id: id.into(),
            binding: "web/restart".into(),
            runbook: "restart-container".into(),
            version: "1.0.0".into(),
            alert: json!({"labels": {"alertname": "WebDown"}}),
            params: json!({"container": "web-1"}),
            dry_run: false,
            outcome,
            reason: None,
            approved_by: None,
            steps: vec![],
            output: None,
            notes: vec![],
            times: Timestamps::default(),
            config: None,
        }
    }

    #[test]
    fn records_survive_a_restart_and_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = ExecutionStore::open(Some(dir.path()), 100).unwrap();
            s.put(&exec("a", Outcome::Running)).unwrap();
            s.put(&exec("b", Outcome::Failed)).unwrap();
            s.put(&exec("a", Outcome::Verified)).unwrap();
        }
        // A power loss mid-append leaves half a line.
        let p = dir.path().join("executions.jsonl");
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(br#"{"id":"c","binding":"#).unwrap();
        drop(f);
        let s = ExecutionStore::open(Some(dir.path()), 100).unwrap();
        // The next record after the repair is read back too.
        s.put(&exec("d", Outcome::Denied)).unwrap();
        let s = ExecutionStore::open(Some(dir.path()), 100).unwrap();
        assert_eq!(s.list()[0].id, "d");
        assert_eq!(s.list().len(), 3);
        let ids: Vec<(String, Outcome)> = s.list().into_iter().map(|e| (e.id, e.outcome)).collect();
        assert_eq!(
            ids,
            vec![
                ("d".into(), Outcome::Denied),
                ("b".into(), Outcome::Failed),
                ("a".into(), Outcome::Verified)
            ]
        );
        assert_eq!(s.get("a").unwrap().outcome, Outcome::Verified);
        let s = ExecutionStore::open(Some(dir.path()), 1).unwrap();
        assert_eq!(s.list().len(), 1, "only `keep` in memory");
    }
}
