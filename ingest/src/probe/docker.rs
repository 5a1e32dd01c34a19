//! The `docker` prober (a Vigil module type): the state of one container (the target names it, by
//! name or id) or of every container carrying `docker.label_selector` labels (the target then only
//! names the group), through the Docker Engine API.
//!
//! Series, one per container with a `container` label (its name): `vigil_probe_container_running`,
//! `vigil_probe_container_state{state}`, `vigil_probe_container_healthy` (1 healthy, 0 unhealthy or
//! starting, absent without a healthcheck), `vigil_probe_container_health_status{status}`,
//! `vigil_probe_container_restart_count`, `vigil_probe_container_exit_code`,
//! `vigil_probe_container_oom_killed`, `vigil_probe_container_started_at_seconds`; and
//! `vigil_probe_containers` (how many matched). The probe succeeds when at least one container
//! matched and every one is running and, if it has a healthcheck, healthy.

use std::collections::HashMap;

use bollard::Docker;
use bollard::query_parameters::{InspectContainerOptions, ListContainersOptions};

use super::config::Module;
use super::log::ProbeLog;
use super::registry::ProbeMetrics;

const DEFAULT_SOCKET: &str = "unix:///var/run/docker.sock";

fn connect(host: &str, timeout_secs: u64) -> Result<Docker, String> {
    let host = if host.is_empty() {
        DEFAULT_SOCKET
    } else {
        host
    };
    let r = if host.starts_with("unix://") {
        Docker::connect_with_unix(host, timeout_secs, bollard::API_DEFAULT_VERSION)
    } else {
        Docker::connect_with_http(host, timeout_secs, bollard::API_DEFAULT_VERSION)
    };
    r.map_err(|e| format!("{host}: {e}"))
}

/// RFC 3339 (Docker's `StartedAt`) to Unix seconds; Go's zero time is "never".
fn unix_seconds(s: &str) -> Option<f64> {
    if s.is_empty() || s.starts_with("0001-") {
        return None;
    }
    // Nanosecond fractions: keep milliseconds, which is what the parser reads.
    let trimmed = match s.split_once('.') {
        Some((head, frac)) => {
            let digits: String = frac
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .take(3)
                .collect();
            let rest: String = frac.chars().skip_while(|c| c.is_ascii_digit()).collect();
            format!("{head}.{digits}{rest}")
        }
        None => s.to_string(),
    };
    vigil_model::parse_api_time(&trimmed)
        .ok()
        .map(|ms| ms as f64 / 1000.0)
}

pub async fn probe(
    target: &str,
    module: &Module,
    deadline: tokio::time::Instant,
    m: &mut ProbeMetrics,
    log: &mut ProbeLog,
) -> bool {
    let Some(cfg) = &module.docker else {
        log.error("a docker module needs a docker: section", &[]);
        return false;
    };
    m.set(
        "vigil_probe_containers",
        "Containers the probe matched",
        0.0,
    );
    let secs = deadline
        .saturating_duration_since(tokio::time::Instant::now())
        .as_secs()
        .max(1);
    let docker = match connect(&cfg.host, secs) {
        Ok(d) => d,
        Err(e) => {
            log.error("Cannot connect to the Docker Engine", &[("err", &e)]);
            return false;
        }
    };
    let names: Vec<String> = if cfg.label_selector.is_empty() {
        vec![target.to_string()]
    } else {
        let mut filters = HashMap::new();
        filters.insert("label".to_string(), cfg.label_selector.clone());
        let opts = ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        match docker.list_containers(Some(opts)).await {
            Ok(list) => list.into_iter().filter_map(|c| c.id).collect(),
            Err(e) => {
                log.error("Cannot list containers", &[("err", &e)]);
                return false;
            }
        }
    };
    log.info("Containers to inspect", &[("count", &names.len())]);
    let mut all_ok = !names.is_empty();
    let mut matched = 0;
    for n in &names {
        let c = match docker
            .inspect_container(n, None::<InspectContainerOptions>)
            .await
        {
            Ok(c) => c,
            Err(e) => {
                log.error("Cannot inspect container", &[("container", n), ("err", &e)]);
                all_ok = false;
                continue;
            }
        };
        matched += 1;
        let name = c
            .name
            .clone()
            .unwrap_or_else(|| n.clone())
            .trim_start_matches('/')
            .to_string();
        let l = [("container", name.as_str())];
        let st = c.state.clone().unwrap_or_default();
        let running = st.running.unwrap_or(false);
        let state = st.status.map(|s| s.to_string()).unwrap_or_default();
        m.set_with(
            "vigil_probe_container_running",
            "1 when the container is running",
            &l,
            if running { 1.0 } else { 0.0 },
        );
        m.set_with(
            "vigil_probe_container_state",
            "The container's state (created, running, paused, restarting, removing, exited, dead)",
            &[("container", name.as_str()), ("state", state.as_str())],
            1.0,
        );
        m.set_with(
            "vigil_probe_container_restart_count",
            "Restarts by the daemon under the container's restart policy",
            &l,
            c.restart_count.unwrap_or(0) as f64,
        );
        m.set_with(
            "vigil_probe_container_exit_code",
            "Exit code of the container's last run (0 while it runs)",
            &l,
            st.exit_code.unwrap_or(0) as f64,
        );
        m.set_with(
            "vigil_probe_container_oom_killed",
            "1 when the last run was killed for lack of memory",
            &l,
            if st.oom_killed.unwrap_or(false) {
                1.0
            } else {
                0.0
            },
        );
        if let Some(t) = st.started_at.as_deref().and_then(unix_seconds) {
            m.set_with(
                "vigil_probe_container_started_at_seconds",
                "When the container's current or last run started, in Unix seconds",
                &l,
                t,
            );
        }
        let health = st
            .health
            .as_ref()
            .and_then(|h| h.status)
            .map(|s| s.to_string())
            .filter(|s| !s.is_empty() && s != "none");
        let mut ok = running;
        if let Some(h) = &health {
            m.set_with(
                "vigil_probe_container_health_status",
                "The healthcheck's status (starting, healthy, unhealthy)",
                &[("container", name.as_str()), ("status", h.as_str())],
                1.0,
            );
            let healthy = h == "healthy";
            m.set_with(
                "vigil_probe_container_healthy",
                "1 when the healthcheck passes (absent without one)",
                &l,
                if healthy { 1.0 } else { 0.0 },
            );
            ok &= healthy;
        }
        log.info(
            "Container",
            &[
                ("container", &name),
                ("state", &state),
                ("health", &health.clone().unwrap_or_else(|| "none".into())),
                ("restarts", &c.restart_count.unwrap_or(0)),
                ("exit_code", &st.exit_code.unwrap_or(0)),
            ],
        );
        if !ok {
            log.error(
                "Container not running or not healthy",
                &[("container", &name), ("state", &state)],
            );
        }
        all_ok &= ok;
    }
    m.set(
        "vigil_probe_containers",
        "Containers the probe matched",
        matched as f64,
    );
    if names.is_empty() {
        log.error(
            "No container matched",
            &[("label_selector", &cfg.label_selector.join(","))],
        );
    }
    all_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_times() {
        assert_eq!(
            unix_seconds("2023-11-14T22:13:20.123456789Z"),
            Some(1_700_000_000.123)
        );
        assert_eq!(unix_seconds("0001-01-01T00:00:00Z"), None);
    }
}
