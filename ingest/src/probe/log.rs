//! The log of one probe run: logfmt lines as blackbox_exporter's `debug=true` shows them, also
//! copied to Vigil's log at debug level.

use std::fmt::Write;

/// Lines of one probe, with the module and target every line carries.
#[derive(Clone, Debug, Default)]
pub struct ProbeLog {
    module: String,
    target: String,
    lines: Vec<String>,
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
        }
    }

    fn line(&mut self, level: &str, msg: &str, kv: &[(&str, &dyn std::fmt::Display)]) {
        let ts = vigil_model::rfc3339(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default(),
        );
        let mut l = format!(
            "ts={ts} module={} target={} level={level} msg={}",
            quote(&self.module),
            quote(&self.target),
            quote(msg)
        );
        for (k, v) in kv {
            let _ = write!(l, " {k}={}", quote(&v.to_string()));
        }
        tracing::debug!(target: "vigil_ingest::probe", "{l}");
        self.lines.push(l);
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

    pub fn error(&mut self, msg: &str, kv: &[(&str, &dyn std::fmt::Display)]) {
        self.line("error", msg, kv);
    }

    /// The last error logged, for the probes API.
    pub fn last_error(&self) -> Option<String> {
        self.lines
            .iter()
            .rev()
            .find(|l| l.contains(" level=error ") && !l.contains("msg=\"Probe failed\""))
            .map(|l| {
                let msg = l.split(" level=error ").nth(1).unwrap_or(l);
                msg.strip_prefix("msg=").unwrap_or(msg).to_string()
            })
    }

    pub fn text(&self) -> String {
        let mut s = self.lines.join("\n");
        s.push('\n');
        s
    }
}
