//! The log of one probe run: logfmt lines as blackbox_exporter's `debug=true` shows them, also
//! copied to Vigil's log at debug level.

use std::fmt::Write;

/// Lines of one probe, with the module and target every line carries.
#[derive(Clone, Debug, Default)]
pub struct ProbeLog {
    module: String,
    target: String,
    lines: Vec<String>,
    /// What the last error line said (`msg=… key=…`), for the probes API.
    last_error: Option<String>,
}

fn quote(v: &str) -> String {
    if !v.is_empty()
        && !v
            .chars()
            .any(|c| c == ' ' || c == '=' || c == '"' || c.is_control())
    {
        return v.to_string();
    }
    format!("{v:?}")
}

impl ProbeLog {
    pub fn new(module: &str, target: &str) -> Self {
        ProbeLog {
            module: module.to_string(),
            target: target.to_string(),
            lines: Vec::new(),
            last_error: None,
        }
    }

    /// Writes one line; answers its `msg=… key=…` part.
    fn line(&mut self, level: &str, msg: &str, kv: &[(&str, &dyn std::fmt::Display)]) -> String {
        let ts = vigil_model::rfc3339(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default(),
        );
        let mut rest = format!("msg={}", quote(msg));
        for (k, v) in kv {
            let _ = write!(rest, " {k}={}", quote(&v.to_string()));
        }
        let l = format!(
            "ts={ts} module={} target={} level={level} {rest}",
            quote(&self.module),
            quote(&self.target)
        );
        tracing::debug!(target: "vigil_ingest::probe", "{l}");
        self.lines.push(l);
        rest
    }

    pub fn info(&mut self, msg: &str, kv: &[(&str, &dyn std::fmt::Display)]) {
        self.line("info", msg, kv);
    }

    pub fn debug(&mut self, msg: &str, kv: &[(&str, &dyn std::fmt::Display)]) {
        self.line("debug", msg, kv);
    }

    pub fn warn(&mut self, msg: &str, kv: &[(&str, &dyn std::fmt::Display)]) {
        self.line("warn", msg, kv);
    }

    /// An error of the probe: logged, and kept as its last error.
    pub fn error(&mut self, msg: &str, kv: &[(&str, &dyn std::fmt::Display)]) {
        let rest = self.line("error", msg, kv);
        self.last_error = Some(rest.strip_prefix("msg=").unwrap_or(&rest).to_string());
    }

    /// The closing "Probe failed" line: an error level line that is not itself the cause.
    pub fn failed(&mut self, duration_seconds: f64) {
        self.line(
            "error",
            "Probe failed",
            &[("duration_seconds", &duration_seconds)],
        );
    }

    /// The last error logged, for the probes API.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    pub fn text(&self) -> String {
        let mut s = self.lines.join("\n");
        s.push('\n');
        s
    }
}
