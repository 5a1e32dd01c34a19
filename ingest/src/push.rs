//! What every push receiver shares: the appender, limits, metrics, and the batch policy.
//!
//! Batch policy (all push protocols): a request that cannot be decoded is refused whole (400, nothing
//! written). Otherwise every valid series and sample is written, and anything refused (invalid labels,
//! out-of-order, duplicate or too-old samples) is reported in a 400 whose body names the first problems and
//! counts the rest. Senders do not retry a 400, and the valid part is already stored, so nothing is lost
//! twice. Storage failures answer 500 and nothing of the batch is acknowledged: senders retry.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use vigil_model::{Label, LabelLimits, Labels, Sample};
use vigil_storage::{
    AppendError, AppendOutcome, Exemplar, ExemplarStore, MetricsAppender, SeriesBatch,
};

use crate::metrics::{IngestMetrics, ProtocolLabel, ProtocolReasonLabel};

/// Limits applied to pushed data.
#[derive(Clone, Debug)]
pub struct PushLimits {
    pub labels: LabelLimits,
    /// Largest request body accepted, compressed.
    pub max_body_bytes: usize,
    /// Largest request after decompression.
    pub max_decoded_bytes: usize,
    /// Requests processed at once; more wait up to `queue_timeout`, then get 429.
    pub max_inflight: usize,
    pub queue_timeout: Duration,
}

impl Default for PushLimits {
    fn default() -> Self {
        PushLimits {
            labels: LabelLimits::default(),
            max_body_bytes: 32 << 20,
            max_decoded_bytes: 128 << 20,
            max_inflight: default_inflight(),
            queue_timeout: Duration::from_secs(10),
        }
    }
}

/// Push requests processed at once by default: twice the cores, at least 4. Decoding and appending
/// are CPU work, so more at once only adds threads; each holds decode buffers and allocator caches
/// (at 56 concurrent remote-write connections, 16 at once held ~40% more memory than 4 for the same
/// throughput). Requests beyond it wait for a slot; they are not refused unless the wait is long.
pub fn default_inflight() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    (2 * cores).max(4)
}

/// Shared state of the push receivers.
#[derive(Clone)]
pub struct PushState {
    pub appender: Arc<dyn MetricsAppender>,
    pub exemplars: Arc<ExemplarStore>,
    pub metrics: IngestMetrics,
    pub limits: PushLimits,
    pub inflight: Arc<Semaphore>,
    /// Where metric metadata sent along with samples goes (remote write 1.0 metadata).
    pub metadata: Option<Arc<vigil_storage::MetadataStore>>,
}

impl PushState {
    pub fn new(
        appender: Arc<dyn MetricsAppender>,
        exemplars: Arc<ExemplarStore>,
        metrics: IngestMetrics,
        limits: PushLimits,
    ) -> Self {
        let inflight = Arc::new(Semaphore::new(limits.max_inflight.max(1)));
        PushState {
            appender,
            exemplars,
            metrics,
            limits,
            inflight,
            metadata: None,
        }
    }
}

/// Series assembled from a request, with what was refused on the way.
#[derive(Default)]
pub struct Assembled<'a> {
    /// The store, asked for series it already holds.
    pub known: Option<&'a dyn MetricsAppender>,
    scratch: Vec<u8>,
    pub batch: Vec<SeriesBatch>,
    pub exemplars: Vec<(Labels, Vec<Exemplar>)>,
    pub samples_received: u64,
    pub invalid_series: u64,
    pub invalid_samples: u64,
    /// First few problems, for the response body.
    pub problems: Vec<String>,
}

const MAX_PROBLEMS: usize = 10;

impl<'a> Assembled<'a> {
    /// An empty batch that reuses the labels of series `store` already holds.
    pub fn new(store: &'a dyn MetricsAppender) -> Self {
        Assembled {
            known: Some(store),
            ..Default::default()
        }
    }

    pub fn problem(&mut self, msg: String) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(msg);
        }
    }

    /// Validates a wire label set (which must be sorted, per the remote-write spec) and adds the series.
    /// Returns false (and records why) when the series was refused.
    pub fn add_series(
        &mut self,
        protocol: &'static str,
        metrics: &IngestMetrics,
        limits: &LabelLimits,
        labels: Vec<Label>,
        samples: Vec<Sample>,
        require_sorted: bool,
    ) -> Option<SeriesKey> {
        self.samples_received += samples.len() as u64;
        // A series the store already holds (nearly every series of a steady sender): no validation,
        // no new label set. Wire labels that are unsorted or repeated pack differently from any
        // stored series and take the checked path below, which reports them.
        if require_sorted
            && !samples.is_empty()
            && let Some(known) = self.known_packed(
                labels
                    .iter()
                    .map(|l| (l.name.as_bytes(), l.value.as_bytes())),
            )
        {
            self.batch.push(SeriesBatch {
                labels: known,
                samples,
            });
            return Some(SeriesKey::Batch(self.batch.len() - 1));
        }
        if let Err(e) = limits.check(&labels, require_sorted) {
            self.invalid_series += 1;
            self.invalid_samples += samples.len() as u64;
            let reason = label_error_reason(&e);
            metrics
                .series_invalid
                .get_or_create(&ProtocolReasonLabel { protocol, reason })
                .inc();
            let shown =
                Labels::from_pairs(labels.iter().map(|l| (l.name.clone(), l.value.clone())));
            self.problem(format!("invalid series {shown}: {e}"));
            return None;
        }
        let labels = if require_sorted {
            Labels::from_sorted_unchecked(
                labels.into_iter().filter(|l| !l.value.is_empty()).collect(),
            )
        } else {
            Labels::from_pairs(labels.into_iter().map(|l| (l.name, l.value)))
        };
        if samples.is_empty() {
            return Some(SeriesKey::Owned(labels));
        }
        self.batch.push(SeriesBatch { labels, samples });
        Some(SeriesKey::Batch(self.batch.len() - 1))
    }

    /// Adds samples of a series the store already holds (its labels were validated then).
    pub(crate) fn push_known(&mut self, labels: Labels, samples: Vec<Sample>) {
        self.samples_received += samples.len() as u64;
        if !samples.is_empty() {
            self.batch.push(SeriesBatch { labels, samples });
        }
    }

    pub(crate) fn scratch_mut(&mut self) -> &mut Vec<u8> {
        &mut self.scratch
    }

    /// The labels of an accepted series (cloned only by the rare callers that keep them: exemplars,
    /// problems to report).
    pub fn labels(&self, k: &SeriesKey) -> Labels {
        match k {
            SeriesKey::Batch(i) => self.batch[*i].labels.clone(),
            SeriesKey::Owned(l) => l.clone(),
        }
    }
}

/// Where [`Assembled::add_series`] put an accepted series: its labels are not copied per series.
pub enum SeriesKey {
    Batch(usize),
    Owned(Labels),
}

fn label_error_reason(e: &vigil_model::LabelError) -> &'static str {
    use vigil_model::LabelError::*;
    match e {
        MissingName => "missing_name",
        InvalidMetricName(_) => "invalid_metric_name",
        InvalidLabelName(_) => "invalid_label_name",
        InvalidUtf8 { .. } => "invalid_utf8",
        Unsorted { .. } => "unsorted",
        Duplicate(_) => "duplicate_label",
        TooManyLabels { .. } => "too_many_labels",
        NameTooLong { .. } => "label_name_too_long",
        ValueTooLong { .. } => "label_value_too_long",
    }
}

/// What a receiver answers after writing.
pub struct WriteResult {
    pub outcome: AppendOutcome,
    pub exemplars_written: u64,
    pub assembled_problems: Vec<String>,
    pub invalid_series: u64,
    pub invalid_samples: u64,
}

impl WriteResult {
    /// Samples the sender can consider stored (identical re-sends included).
    pub fn samples_written(&self) -> u64 {
        self.outcome.appended + self.outcome.duplicates_ignored
    }

    /// None when everything was stored; otherwise the 400 body.
    pub fn refusal(&self) -> Option<String> {
        if self.invalid_series == 0
            && self.invalid_samples == 0
            && self.outcome.rejected == 0
            && self.assembled_problems.is_empty()
        {
            return None;
        }
        let mut lines = vec![format!(
            "{} samples stored; refused: {} series with invalid labels, {} samples of refused series or of unsupported types, {} samples the store did not accept",
            self.samples_written(),
            self.invalid_series,
            self.invalid_samples,
            self.outcome.rejected
        )];
        lines.extend(self.assembled_problems.iter().cloned());
        for r in &self.outcome.rejections {
            lines.push(format!(
                "{}: series {} at timestamp {}",
                r.reason, r.labels, r.t
            ));
        }
        if self.outcome.rejected as usize > self.outcome.rejections.len() {
            lines.push(format!(
                "... and {} more refused samples",
                self.outcome.rejected as usize - self.outcome.rejections.len()
            ));
        }
        Some(lines.join("\n"))
    }
}

/// Writes assembled series (blocking: call from a blocking thread) and records metrics.
pub fn write_blocking(
    state: &PushState,
    protocol: &'static str,
    a: Assembled,
) -> Result<WriteResult, AppendError> {
    let p = ProtocolLabel { protocol };
    state
        .metrics
        .samples_received
        .get_or_create(&p)
        .inc_by(a.samples_received);
    let outcome = state.appender.append(&a.batch)?;
    state
        .metrics
        .samples_written
        .get_or_create(&p)
        .inc_by(outcome.appended);
    let mut exemplars_written = 0u64;
    let mut dropped = 0u64;
    for (labels, ex) in &a.exemplars {
        let kept = state.exemplars.add(labels, ex) as u64;
        exemplars_written += kept;
        dropped += ex.len() as u64 - kept;
    }
    state
        .metrics
        .exemplars_written
        .get_or_create(&p)
        .inc_by(exemplars_written);
    state
        .metrics
        .exemplars_dropped
        .get_or_create(&p)
        .inc_by(dropped);
    Ok(WriteResult {
        outcome,
        exemplars_written,
        assembled_problems: a.problems,
        invalid_series: a.invalid_series,
        invalid_samples: a.invalid_samples,
    })
}

/// `ingest:` — limits of the push receivers (remote write, OTLP).
#[derive(Clone, Debug, serde::Deserialize, serde::Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct IngestSection {
    /// Most labels per pushed series (0 = unlimited).
    pub label_limit: usize,
    /// Longest label name in bytes (0 = unlimited).
    pub label_name_length_limit: usize,
    /// Longest label value in bytes (0 = unlimited).
    pub label_value_length_limit: usize,
    /// Largest accepted request body, compressed.
    pub max_request_bytes: vigil_storage::config::ByteSize,
    /// Largest request after decompression.
    pub max_decoded_bytes: vigil_storage::config::ByteSize,
    /// Push requests processed at once; more wait, then get 429.
    pub max_inflight_requests: usize,
    /// Limits on pushed logs (Loki push).
    pub logs: crate::loki::LogLimits,
}

impl Default for IngestSection {
    fn default() -> Self {
        let l = LabelLimits::default();
        IngestSection {
            label_limit: l.label_limit,
            label_name_length_limit: l.label_name_length_limit,
            label_value_length_limit: l.label_value_length_limit,
            max_request_bytes: vigil_storage::config::ByteSize(32 << 20),
            max_decoded_bytes: vigil_storage::config::ByteSize(128 << 20),
            max_inflight_requests: default_inflight(),
            logs: crate::loki::LogLimits::default(),
        }
    }
}

impl IngestSection {
    /// The limits the receivers apply.
    pub fn limits(&self) -> PushLimits {
        PushLimits {
            labels: LabelLimits {
                label_limit: self.label_limit,
                label_name_length_limit: self.label_name_length_limit,
                label_value_length_limit: self.label_value_length_limit,
            },
            max_body_bytes: self.max_request_bytes.0 as usize,
            max_decoded_bytes: self.max_decoded_bytes.0 as usize,
            max_inflight: self.max_inflight_requests.max(1),
            ..PushLimits::default()
        }
    }
}
