//! Faults on a schedule: a Docker container killed, stopped, paused or restarted (the Engine API,
//! bollard); a PostgreSQL primary's postmaster killed (`kill -9` of the pid in its
//! `postmaster.pid`); a signal to a process; added latency on a network device (`tc qdisc ...
//! netem delay`, which needs CAP_NET_ADMIN); a command; a surge of the load's own rate (an
//! overload). Each is undone after its `duration` when it can be (unpause, start, qdisc removed,
//! the rate back).

use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::{
    KillContainerOptions, RestartContainerOptions, StartContainerOptions, StopContainerOptions,
};
use serde::Serialize;

use crate::scenario::{FaultConfig, FaultKind};

/// What happened to one fault.
#[derive(Debug, Clone, Serialize)]
pub struct FaultEvent {
    pub index: usize,
    pub kind: FaultKind,
    /// What was done, in words.
    pub what: String,
    /// When it was injected: milliseconds since the Unix epoch, and since the load started.
    pub at_ms: i64,
    pub offset_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub undone_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The number of a signal by name (`KILL`, `SIGKILL`, `9`).
pub fn signal_number(name: &str) -> Option<i32> {
    let n = name.trim_start_matches("SIG");
    Some(match n {
        "KILL" => libc::SIGKILL,
        "TERM" => libc::SIGTERM,
        "STOP" => libc::SIGSTOP,
        "CONT" => libc::SIGCONT,
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        n => n.parse().ok().filter(|s| (1..=64).contains(s))?,
    })
}

fn send_signal(pid: i32, sig: i32) -> Result<(), String> {
    if pid <= 0 {
        return Err(format!("{pid} is not a process id"));
    }
    // SAFETY: kill(2) takes two integers and touches no memory of ours.
    let r = unsafe { libc::kill(pid, sig) };
    if r == 0 {
        Ok(())
    } else {
        Err(format!(
            "kill -{sig} {pid}: {}",
            std::io::Error::last_os_error()
        ))
    }
}

fn pid_from(path: &std::path::Path) -> Result<i32, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| format!("{}: no process id on its first line", path.display()))
}

fn docker_err(container: &str, e: bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError {
            status_code,
            message,
        } => format!("container {container}: {message} (HTTP {status_code})"),
        e => format!("container {container}: {e}"),
    }
}

/// A lazy client for the local Docker Engine.
pub fn docker() -> Result<Docker, String> {
    Docker::connect_with_local_defaults().map_err(|e| format!("Docker: {e}"))
}

async fn run_command(cmd: &[String]) -> Result<String, String> {
    let out = tokio::process::Command::new(&cmd[0])
        .args(&cmd[1..])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| format!("{}: {e}", cmd[0]))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!(
            "{} exited with {}: {}",
            cmd.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Injects `f`; answers what was done.
pub async fn inject(f: &FaultConfig, docker: Option<&Docker>) -> Result<String, String> {
    match f.kind {
        FaultKind::Docker => {
            let d = docker.ok_or("no Docker Engine")?;
            let c = f.container.as_str();
            match f.action.as_str() {
                "kill" => d
                    .kill_container(c, None::<KillContainerOptions>)
                    .await
                    .map_err(|e| docker_err(c, e))?,
                "stop" => d
                    .stop_container(
                        c,
                        Some(StopContainerOptions {
                            t: Some(10),
                            signal: None,
                        }),
                    )
                    .await
                    .map_err(|e| docker_err(c, e))?,
                "pause" => d.pause_container(c).await.map_err(|e| docker_err(c, e))?,
                _ => d
                    .restart_container(c, None::<RestartContainerOptions>)
                    .await
                    .map_err(|e| docker_err(c, e))?,
            }
            Ok(format!("docker {} {c}", f.action))
        }
        FaultKind::PostgresPrimary => {
            let dir = f.data_dir.as_deref().ok_or("no data_dir")?;
            let pid = pid_from(&dir.join("postmaster.pid"))?;
            send_signal(pid, libc::SIGKILL)?;
            Ok(format!("kill -9 {pid} (postmaster of {})", dir.display()))
        }
        FaultKind::Signal => {
            let pid = match (&f.pidfile, f.pid) {
                (Some(p), _) => pid_from(p)?,
                (None, Some(p)) => p,
                (None, None) => return Err("no pid".into()),
            };
            let name = if f.signal.is_empty() {
                "KILL"
            } else {
                &f.signal
            };
            let sig = signal_number(name).ok_or_else(|| format!("{name} is not a signal"))?;
            send_signal(pid, sig)?;
            Ok(format!("kill -{name} {pid}"))
        }
        FaultKind::Latency => {
            let ms = f.delay.unwrap_or_default().as_millis();
            let cmd: Vec<String> = [
                "tc", "qdisc", "add", "dev", &f.device, "root", "netem", "delay",
            ]
            .iter()
            .map(|s| s.to_string())
            .chain([format!("{ms}ms")])
            .collect();
            run_command(&cmd).await?;
            Ok(format!("{ms} ms added on {}", f.device))
        }
        FaultKind::Exec => {
            let out = run_command(&f.command).await?;
            Ok(format!("{} ({out})", f.command.join(" ")))
        }
        // The scheduler reads the surge's rate from the scenario; here it is only recorded.
        FaultKind::Surge => Ok(format!("load surges to {}/s", f.rate.unwrap_or_default())),
    }
}

/// Undoes `f` after its duration, when it has an undo.
pub async fn undo(f: &FaultConfig, docker: Option<&Docker>) -> Result<Option<String>, String> {
    match (f.kind, f.action.as_str()) {
        (FaultKind::Docker, "pause") => {
            let d = docker.ok_or("no Docker Engine")?;
            d.unpause_container(&f.container)
                .await
                .map_err(|e| docker_err(&f.container, e))?;
            Ok(Some(format!("docker unpause {}", f.container)))
        }
        (FaultKind::Docker, "stop") | (FaultKind::Docker, "kill") => {
            let d = docker.ok_or("no Docker Engine")?;
            d.start_container(&f.container, None::<StartContainerOptions>)
                .await
                .map_err(|e| docker_err(&f.container, e))?;
            Ok(Some(format!("docker start {}", f.container)))
        }
        (FaultKind::Latency, _) => {
            let cmd: Vec<String> = ["tc", "qdisc", "del", "dev", &f.device, "root"]
                .iter()
                .map(|s| s.to_string())
                .collect();
            run_command(&cmd).await?;
            Ok(Some(format!("latency removed from {}", f.device)))
        }
        (FaultKind::Signal, _) if signal_number(&f.signal) == Some(libc::SIGSTOP) => {
            let pid = match (&f.pidfile, f.pid) {
                (Some(p), _) => pid_from(p)?,
                (_, Some(p)) => p,
                _ => return Ok(None),
            };
            send_signal(pid, libc::SIGCONT)?;
            Ok(Some(format!("kill -CONT {pid}")))
        }
        _ => Ok(None),
    }
}

/// How long after injection a fault is undone (None: never).
pub fn undo_after(f: &FaultConfig) -> Option<Duration> {
    f.duration
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn signals_by_name_to_real_processes() {
        assert_eq!(signal_number("KILL"), Some(9));
        assert_eq!(signal_number("SIGTERM"), Some(15));
        assert_eq!(signal_number("9"), Some(9));
        assert_eq!(signal_number("SMASH"), None);
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("sleep.pid");
        std::fs::write(&pidfile, format!("{}\n/data\n", child.id())).unwrap();
        let f: FaultConfig = serde_yaml_ng::from_str(&format!(
            "{{at: 1s, kind: signal, pidfile: '{}'}}",
            pidfile.display()
        ))
        .unwrap();
        let what = inject(&f, None).await.unwrap();
        assert_eq!(what, format!("kill -KILL {}", child.id()));
        let st = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(st.signal(), Some(9));
        // The process is gone now: the error says so.
        let e = inject(&f, None).await.unwrap_err();
        assert!(e.contains("No such process"), "{e}");
        let e = inject(
            &serde_yaml_ng::from_str(
                "{at: 1s, kind: exec, command: [sh, -c, 'echo no >&2; exit 3']}",
            )
            .unwrap(),
            None,
        )
        .await
        .unwrap_err();
        assert!(e.contains("exited with exit status: 3: no"), "{e}");
    }
}
