//! A real PostgreSQL (Debian's postgresql-15) for the tests: a primary and a streaming replica made
//! with `pg_basebackup -R`, run as the `postgres` user in a temporary directory, on free ports, and
//! killed with their process group when dropped.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::harness::*;

/// The directory of PostgreSQL's programs (the newest installed major version).
pub fn pg_bindir() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    versions.retain(|p| p.join("postgres").is_file());
    versions.sort();
    match versions.pop() {
        Some(p) => Some(p),
        None => {
            // Same policy as `tool`: skip outside CI, fail in CI.
            assert!(
                !in_ci(),
                "PostgreSQL is not installed; ./scripts/test installs postgresql-15"
            );
            eprintln!(
                "SKIPPED: PostgreSQL is not installed (run ./scripts/test to install the test peers)"
            );
            None
        }
    }
}

/// The uid and gid of the `postgres` user (PostgreSQL refuses to run as root).
pub fn postgres_ids() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let line = passwd
        .lines()
        .find(|l| l.starts_with("postgres:"))
        .expect("the postgres user exists (created by the postgresql package)");
    let f: Vec<&str> = line.split(':').collect();
    (f[2].parse().unwrap(), f[3].parse().unwrap())
}

/// One PostgreSQL server.
pub struct PgNode {
    pub port: u16,
    pub data: PathBuf,
    pub proc: Option<Proc>,
}

impl PgNode {
    pub fn target(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// A primary and its streaming replica.
pub struct PgPair {
    pub bin: PathBuf,
    pub primary: PgNode,
    pub replica: PgNode,
    sock: PathBuf,
    // Last: the directory goes after the servers.
    pub dir: TempDir,
}

pub fn as_postgres(cmd: &mut Command) -> &mut Command {
    let (uid, gid) = postgres_ids();
    cmd.uid(uid).gid(gid).env("LC_ALL", "C")
}

fn mkdir_for_postgres(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(p).unwrap();
    let (uid, gid) = postgres_ids();
    std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700)).unwrap();
}

fn run(bin: &Path, name: &str, args: &[&str], log: &Path) {
    let out = as_postgres(&mut Command::new(bin.join(name)))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    std::fs::write(log, [&out.stdout[..], &out.stderr[..]].concat()).ok();
    assert!(
        out.status.success(),
        "{name} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl PgPair {
    /// Starts a primary (with `extra` settings, `-c name=value`) and a replica streaming from it.
    pub async fn start(extra: &[&str]) -> Option<PgPair> {
        let bin = pg_bindir()?;
        let dir = tempfile::tempdir().unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let sock = dir.path().join("sock");
        mkdir_for_postgres(&sock);
        let primary_dir = dir.path().join("primary");
        mkdir_for_postgres(&primary_dir);
        run(
            &bin,
            "initdb",
            &[
                "-D",
                primary_dir.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
            &dir.path().join("initdb.log"),
        );
        let mut pair = PgPair {
            primary: PgNode {
                port: reserved_port(),
                data: primary_dir,
                proc: None,
            },
            replica: PgNode {
                port: 0,
                data: dir.path().join("replica"),
                proc: None,
            },
            bin,
            sock,
            dir,
        };
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        pair.primary.proc = Some(
            pair.launch("primary", pair.primary.port, &pair.primary.data, &extra)
                .await,
        );
        mkdir_for_postgres(&pair.replica.data);
        run(
            &pair.bin,
            "pg_basebackup",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &pair.primary.port.to_string(),
                "-U",
                "postgres",
                "-D",
                pair.replica.data.to_str().unwrap(),
                "-R",
                "-X",
                "stream",
                "--no-sync",
                "-d",
                "application_name=replica1",
            ],
            &pair.dir.path().join("basebackup.log"),
        );
        pair.replica.port = reserved_port();
        pair.replica.proc = Some(
            pair.launch(
                "replica",
                pair.replica.port,
                &pair.replica.data.clone(),
                &[],
            )
            .await,
        );
        Some(pair)
    }

    async fn launch(&self, name: &str, port: u16, data: &Path, extra: &[String]) -> Proc {
        let mut cmd = Command::new(self.bin.join("postgres"));
        as_postgres(&mut cmd)
            .arg("-D")
            .arg(data)
            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
            .arg("-k")
            .arg(&self.sock);
        for e in extra {
            cmd.args(["-c", e]);
        }
        let proc = Proc::spawn(name, &mut cmd, &self.dir.path().join(format!("{name}.log")));
        let isready = self.bin.join("pg_isready");
        eventually(
            Duration::from_secs(60),
            &format!("{name} accepting connections"),
            || {
                let isready = isready.clone();
                async move {
                    Command::new(&isready)
                        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q"])
                        .status()
                        .ok()
                        .filter(|s| s.success())
                        .map(|_| ())
                }
            },
        )
        .await;
        proc
    }

    /// `kill -9` of the primary's postmaster, as a crash would.
    pub fn kill_primary(&mut self) {
        if let Some(p) = &self.primary.proc {
            p.signal("KILL");
        }
    }

    /// Starts the (killed) primary's server again on its data directory, as a supervisor restarting
    /// it would; retried while the killed server's children still hold its shared memory.
    pub async fn restart_primary(&mut self) {
        if let Some(mut p) = self.primary.proc.take() {
            let _ = p.exited();
        }
        let data = self.primary.data.clone();
        let pid = data.join("postmaster.pid");
        // Its children exit on their own soon after the postmaster died; PostgreSQL refuses to
        // start while any of them is still attached to the old shared memory segment (the id on
        // the pid file's 7th line), so wait for none to be.
        let shmid = std::fs::read_to_string(&pid).ok().and_then(|t| {
            t.lines()
                .nth(6)
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        });
        if let Some(id) = shmid {
            eventually(
                Duration::from_secs(30),
                "the killed server's children gone",
                || {
                    let id = id.clone();
                    async move {
                        let table =
                            std::fs::read_to_string("/proc/sysvipc/shm").unwrap_or_default();
                        let attached = table.lines().skip(1).any(|l| {
                            let f: Vec<&str> = l.split_whitespace().collect();
                            f.get(1) == Some(&id.as_str()) && f.get(6).is_some_and(|n| *n != "0")
                        });
                        (!attached).then_some(())
                    }
                },
            )
            .await;
        }
        let _ = std::fs::remove_file(pid);
        let port = self.primary.port;
        self.primary.proc = Some(self.launch("primary-again", port, &data, &[]).await);
    }

    /// Promotes the replica (`pg_ctl promote`).
    pub fn promote_replica(&self) {
        run(
            &self.bin,
            "pg_ctl",
            &["promote", "-D", self.replica.data.to_str().unwrap(), "-w"],
            &self.dir.path().join("promote.log"),
        );
    }
}
