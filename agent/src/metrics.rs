//! The agent's own metrics (`--metrics.listen` serves them at `/metrics`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    pub reason: String,
}

impl Reason {
    pub fn status(code: u16) -> Reason {
        Reason {
            reason: code.to_string(),
        }
    }
    pub fn error() -> Reason {
        Reason {
            reason: "connection".into(),
        }
    }
}

pub struct AgentMetrics {
    pub registry: Registry,
    pub lines_read: Counter,
    pub bytes_read: Counter,
    pub rotations: Counter,
    pub truncations: Counter,
    pub files_watched: Gauge,
    pub batches_buffered: Counter,
    pub batches_sent: Counter,
    pub batches_dropped: Counter,
    pub send_failures: Family<Reason, Counter>,
    pub send_seconds: Histogram,
    pub buffer_pending_bytes: Gauge,
    pub buffer_pending_batches: Gauge,
}

impl Default for AgentMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl AgentMetrics {
    pub fn new() -> AgentMetrics {
        let mut m = AgentMetrics {
            registry: Registry::with_prefix("vigil_agent"),
            lines_read: Counter::default(),
            bytes_read: Counter::default(),
            rotations: Counter::default(),
            truncations: Counter::default(),
            files_watched: Gauge::default(),
            batches_buffered: Counter::default(),
            batches_sent: Counter::default(),
            batches_dropped: Counter::default(),
            send_failures: Family::default(),
            send_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            buffer_pending_bytes: Gauge::default(),
            buffer_pending_batches: Gauge::default(),
        };
        let r = &mut m.registry;
        r.register(
            "lines_read",
            "Lines read from all sources.",
            m.lines_read.clone(),
        );
        r.register("bytes_read", "Bytes of lines read.", m.bytes_read.clone());
        r.register(
            "file_rotations",
            "Files renamed away or deleted while being read.",
            m.rotations.clone(),
        );
        r.register(
            "file_truncations",
            "Files found truncated and read again from the start.",
            m.truncations.clone(),
        );
        r.register(
            "files_watched",
            "Files being read.",
            m.files_watched.clone(),
        );
        r.register(
            "batches_buffered",
            "Batches written to the disk buffer.",
            m.batches_buffered.clone(),
        );
        r.register(
            "batches_sent",
            "Batches the server acknowledged.",
            m.batches_sent.clone(),
        );
        r.register(
            "batches_dropped",
            "Batches the server refused as bad input (4xx other than 429), not retried.",
            m.batches_dropped.clone(),
        );
        r.register(
            "send_failures",
            "Pushes that failed and are retried, by status code or connection.",
            m.send_failures.clone(),
        );
        r.register(
            "send_duration_seconds",
            "Time of one push request.",
            m.send_seconds.clone(),
        );
        r.register(
            "buffer_pending_bytes",
            "Bytes of batches in the disk buffer not acknowledged yet.",
            m.buffer_pending_bytes.clone(),
        );
        r.register(
            "buffer_pending_batches",
            "Batches in the disk buffer not acknowledged yet.",
            m.buffer_pending_batches.clone(),
        );
        m
    }

    pub fn encode(&self) -> String {
        let mut s = String::new();
        prometheus_client::encoding::text::encode(&mut s, &self.registry).expect("encode");
        s
    }
}
