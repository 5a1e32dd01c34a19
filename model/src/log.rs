//! Log entries and streams: what Loki push, OTLP logs and the agent deliver and the log store keeps.

use crate::Labels;

/// One log line of a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    /// Nanoseconds since the Unix epoch.
    pub ts: i64,
    pub line: String,
    /// Loki's structured metadata: name/value pairs kept beside the line, not part of the stream.
    pub metadata: Vec<(String, String)>,
}

impl LogEntry {
    pub fn new(ts: i64, line: impl Into<String>) -> Self {
        LogEntry {
            ts,
            line: line.into(),
            metadata: Vec::new(),
        }
    }
}

/// Entries of one stream (one label set).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogStream {
    pub labels: Labels,
    pub entries: Vec<LogEntry>,
}
