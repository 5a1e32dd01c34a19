//! The read interface the query layer uses: series as Arrow arrays.

use std::future::Future;

use arrow_array::{Float64Array, Int64Array};
use vigil_model::{Labels, Matcher};

use crate::exemplars::Exemplar;

/// One series' samples in a time range, as Arrow arrays (timestamps in ms, ascending, unique).
#[derive(Clone, Debug)]
pub struct SeriesData {
    pub labels: Labels,
    pub timestamps: Int64Array,
    pub values: Float64Array,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("query would load more than {limit} samples; narrow the selectors or the time range")]
    TooManySamples { limit: usize },
    #[error("storage read failed: {0}")]
    Storage(String),
}

/// Reads from the metrics store. Time bounds are inclusive milliseconds; a `limit` or `max_samples`
/// of 0 means unlimited. Matcher lists in `series`, `label_names` and `label_values` are ORed (each is
/// one `match[]`).
pub trait MetricsReader: Send + Sync + 'static {
    /// Series matching all `matchers` with their samples in `[mint, maxt]`, sorted by labels.
    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        max_samples: usize,
    ) -> impl Future<Output = Result<Vec<SeriesData>, ReadError>> + Send;

    /// Label sets of series with samples in `[mint, maxt]`, sorted.
    fn series(
        &self,
        matchers: &[Vec<Matcher>],
        mint: i64,
        maxt: i64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Labels>, ReadError>> + Send;

    /// Label names, sorted.
    fn label_names(
        &self,
        matchers: &[Vec<Matcher>],
        mint: i64,
        maxt: i64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<String>, ReadError>> + Send;

    /// Values of one label, sorted.
    fn label_values(
        &self,
        name: &str,
        matchers: &[Vec<Matcher>],
        mint: i64,
        maxt: i64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<String>, ReadError>> + Send;

    /// Metadata (type, help, unit) of `metric`, or of every family, at most `limit` families (0 = all).
    fn metadata(
        &self,
        _metric: Option<&str>,
        _limit: usize,
    ) -> Vec<(String, Vec<crate::MetricMetadata>)> {
        Vec::new()
    }

    /// Exemplars of matching series in `[mint, maxt]`.
    fn exemplars(
        &self,
        matchers: &[Vec<Matcher>],
        mint: i64,
        maxt: i64,
    ) -> impl Future<Output = Result<Vec<(Labels, Vec<Exemplar>)>, ReadError>> + Send;
}
