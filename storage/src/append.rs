//! The write interface ingest uses: [`MetricsAppender`] and what it reports back.

use std::fmt;

use vigil_model::{Labels, Sample};

/// Samples for one series, in time order as far as the sender knows.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesBatch {
    pub labels: Labels,
    pub samples: Vec<Sample>,
}

/// Why one sample was not stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// Older than the newest sample of its series (and outside the out-of-order window).
    OutOfOrder,
    /// Same timestamp as a stored sample but a different value.
    Duplicate,
    /// Older than anything the head still accepts: that time range is already in a block.
    OutOfBounds,
}

impl RejectReason {
    /// The reason as a metric label value.
    pub fn as_label(&self) -> &'static str {
        match self {
            RejectReason::OutOfOrder => "out_of_order",
            RejectReason::Duplicate => "duplicate",
            RejectReason::OutOfBounds => "out_of_bounds",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Prometheus's words, so users searching for them find the same explanations.
        f.write_str(match self {
            RejectReason::OutOfOrder => "out of order sample",
            RejectReason::Duplicate => "duplicate sample for timestamp",
            RejectReason::OutOfBounds => {
                "out of bounds (too old: that time range is already persisted)"
            }
        })
    }
}

/// One refused sample, reported with enough detail for an error message.
#[derive(Clone, Debug, PartialEq)]
pub struct Rejection {
    pub labels: Labels,
    pub t: i64,
    pub reason: RejectReason,
}

/// Result of an append.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AppendOutcome {
    /// Samples stored (and durable when `append` returned).
    pub appended: u64,
    /// Samples identical to one already stored (same timestamp and value): ignored, not an error.
    pub duplicates_ignored: u64,
    /// Series seen for the first time.
    pub series_created: u64,
    /// Number of refused samples.
    pub rejected: u64,
    /// The first few refusals, for error messages.
    pub rejections: Vec<Rejection>,
}

/// How many rejections an outcome keeps in detail.
pub const MAX_REPORTED_REJECTIONS: usize = 10;

impl AppendOutcome {
    pub(crate) fn reject(&mut self, labels: &Labels, t: i64, reason: RejectReason) {
        self.rejected += 1;
        if self.rejections.len() < MAX_REPORTED_REJECTIONS {
            self.rejections.push(Rejection {
                labels: labels.clone(),
                t,
                reason,
            });
        }
    }

    /// A one-line summary of the refusals, e.g. for a 400 body.
    pub fn rejection_summary(&self) -> Option<String> {
        let first = self.rejections.first()?;
        let more = if self.rejected > 1 {
            format!(" (and {} more refused samples)", self.rejected - 1)
        } else {
            String::new()
        };
        Some(format!(
            "{}: series {} at timestamp {}{more}",
            first.reason, first.labels, first.t
        ))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("writing the WAL failed, nothing of this batch is durable: {0}")]
    Wal(#[from] crate::wal::WalError),
    #[error("storage is shutting down")]
    Closed,
}

/// Where ingest writes samples. `append` blocks until the accepted samples are durable (WAL fsync):
/// call it from a blocking thread (`tokio::task::spawn_blocking`), never from an async task.
///
/// Samples are validated one by one: refused samples are counted and reported in the outcome while the
/// rest of the batch is stored.
pub trait MetricsAppender: Send + Sync {
    fn append(&self, batch: &[SeriesBatch]) -> Result<AppendOutcome, AppendError>;

    /// The labels of a series the store already holds, looked up by their packed form
    /// ([`Labels::packed`]): a receiver whose request names a known series can skip validating and
    /// building its labels (they were validated when the series was created).
    fn known(&self, _packed: &[u8]) -> Option<Labels> {
        None
    }
}
