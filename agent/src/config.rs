//! The agent's configuration file (docs/agent.md).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use vigil_http::HttpClientConfig;
use vigil_model::PromDuration;
use vigil_storage::ByteSize;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    pub server: ServerConfig,
    /// Where the disk buffer and the read positions live.
    pub data_dir: PathBuf,
    /// Labels added to every stream.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub sources: Vec<Source>,
    /// How often files are checked for new lines, new files, rotation and truncation.
    #[serde(default = "default_poll")]
    pub poll_interval: PromDuration,
    /// How long a file that was renamed or deleted is still read (a writer may still hold it).
    #[serde(default = "default_rotate_wait")]
    pub rotate_wait: PromDuration,
    #[serde(default)]
    pub buffer: BufferConfig,
    /// Longer lines are cut to this size (the server refuses lines over its `max_line_size`).
    #[serde(default = "default_max_line")]
    pub max_line_size: ByteSize,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// The push endpoint: `https://vigil:9201/loki/api/v1/push` (or any Loki).
    pub url: String,
    /// TLS, basic auth, bearer tokens, proxy: Prometheus's `http_config`.
    #[serde(default)]
    pub http_config: HttpClientConfig,
    /// Sent as `X-Scope-OrgID` when set.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// A batch is written to the buffer (and sent) once it holds this many bytes of lines...
    #[serde(default = "default_batch_size")]
    pub batch_size: ByteSize,
    /// ... or once its first line waited this long.
    #[serde(default = "default_batch_wait")]
    pub batch_wait: PromDuration,
    #[serde(default = "default_timeout")]
    pub timeout: PromDuration,
    /// Retries back off from `min_backoff` doubling up to `max_backoff`, for as long as it takes
    /// (the disk buffer holds what is read meanwhile).
    #[serde(default = "default_min_backoff")]
    pub min_backoff: PromDuration,
    #[serde(default = "default_max_backoff")]
    pub max_backoff: PromDuration,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BufferConfig {
    /// When unsent batches take this much, the agent stops reading until the server catches up.
    pub max_size: ByteSize,
    pub segment_size: ByteSize,
}

impl Default for BufferConfig {
    fn default() -> Self {
        BufferConfig {
            max_size: ByteSize(1 << 30),
            segment_size: ByteSize(8 << 20),
        }
    }
}

/// One source: files, a journal, or standard input, with labels of its own.
#[derive(Clone, Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// Glob patterns (`/var/log/*.log`, `/var/log/**/app.log`).
    #[serde(default)]
    pub files: Vec<String>,
    /// Globs of files not to read.
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub journald: Option<JournaldSource>,
    #[serde(default)]
    pub stdin: Option<StdinSource>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournaldSource {
    /// The command printing the journal in export format; `--after-cursor=` is added on restart.
    #[serde(default = "default_journal_command")]
    pub command: Vec<String>,
}

#[derive(Clone, Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct StdinSource {
    #[serde(default)]
    pub format: StdinFormat,
}

#[derive(Clone, Copy, Debug, Deserialize, Default, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum StdinFormat {
    /// One entry per line.
    #[default]
    Lines,
    /// `journalctl -o export` output.
    JournaldExport,
}

fn default_poll() -> PromDuration {
    Duration::from_millis(250).into()
}
fn default_rotate_wait() -> PromDuration {
    Duration::from_secs(5).into()
}
fn default_max_line() -> ByteSize {
    ByteSize(256 << 10)
}
fn default_batch_size() -> ByteSize {
    ByteSize(1 << 20)
}
fn default_batch_wait() -> PromDuration {
    Duration::from_secs(1).into()
}
fn default_timeout() -> PromDuration {
    Duration::from_secs(10).into()
}
fn default_min_backoff() -> PromDuration {
    Duration::from_millis(500).into()
}
fn default_max_backoff() -> PromDuration {
    Duration::from_secs(30).into()
}
fn default_journal_command() -> Vec<String> {
    ["journalctl", "-o", "export", "--follow", "--no-pager"]
        .map(String::from)
        .to_vec()
}

impl AgentConfig {
    pub fn load(path: &Path) -> Result<AgentConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut c: AgentConfig =
            serde_yaml_ng::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if let Some(dir) = path.parent() {
            c.server.http_config.set_directory(dir);
        }
        c.validate()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(c)
    }

    pub fn validate(&mut self) -> Result<(), String> {
        if !(self.server.url.starts_with("http://") || self.server.url.starts_with("https://")) {
            return Err(format!(
                "server.url {:?} must be an http:// or https:// URL",
                self.server.url
            ));
        }
        self.server
            .http_config
            .validate()
            .map_err(|e| format!("server.http_config: {e}"))?;
        if self.sources.is_empty() {
            return Err("no sources: add `files`, `journald` or `stdin` under `sources`".into());
        }
        let mut stdin = 0;
        for (i, s) in self.sources.iter().enumerate() {
            let kinds =
                (!s.files.is_empty()) as u8 + s.journald.is_some() as u8 + s.stdin.is_some() as u8;
            if kinds != 1 {
                return Err(format!(
                    "sources[{i}]: give exactly one of `files`, `journald`, `stdin`"
                ));
            }
            stdin += s.stdin.is_some() as u8;
            for g in s.files.iter().chain(&s.exclude) {
                glob::Pattern::new(g).map_err(|e| format!("sources[{i}]: glob {g:?}: {e}"))?;
                if !g.starts_with('/') {
                    return Err(format!("sources[{i}]: glob {g:?} must be an absolute path"));
                }
            }
            if let Some(j) = &s.journald
                && j.command.is_empty()
            {
                return Err(format!("sources[{i}]: journald.command is empty"));
            }
            for k in s.labels.keys().chain(self.labels.keys()) {
                if !vigil_model::is_valid_label_name(k) || k.starts_with("__") {
                    return Err(format!("invalid label name {k:?}"));
                }
            }
        }
        if stdin > 1 {
            return Err("only one source can read stdin".into());
        }
        if self.server.batch_size.0 == 0 || self.buffer.max_size.0 < self.server.batch_size.0 {
            return Err("buffer.max_size must hold at least one batch (server.batch_size)".into());
        }
        Ok(())
    }
}
