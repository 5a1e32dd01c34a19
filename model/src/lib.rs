//! Vigil's shared vocabulary: the types every other part speaks.
//!
//! Owns [`Labels`] (a sorted, validated label set), [`Matcher`] (Prometheus label matchers with anchored
//! regexes), [`Sample`] with the staleness-marker NaN, Prometheus durations and API timestamps, [`Secret`] for configuration values that must never be shown, and the
//! validation rules for metric and label names.
//!
//! This crate must never do I/O, spawn tasks or depend on another Vigil crate: it is the bottom of the
//! dependency graph and must stay cheap to compile and easy to test.

mod duration;
mod labels;
mod log;
mod matcher;
mod quote;
mod sample;
mod secret;
mod timestamp;
mod validate;

pub use duration::{DurationParseError, PromDuration, format_duration, parse_duration};
pub use labels::{
    BUCKET_LABEL, INSTANCE_LABEL, JOB_LABEL, Label, LabelRef, Labels, LabelsBuilder, METRIC_NAME,
    QUANTILE_LABEL,
};
pub use log::{LogEntry, LogStream};
pub use matcher::{MatchOp, Matcher, MatcherError};
pub use quote::unquote_prefix;
pub use sample::{STALE_NAN_BITS, Sample, is_stale_nan, stale_nan};
pub use secret::{SECRET_MARKER, Secret};
pub use timestamp::{
    TimeParseError, civil_from_days, days_in_month, now_ms, now_ns, parse_api_duration,
    parse_api_time, rfc3339, rfc3339_ms,
};
pub use validate::{LabelError, LabelLimits, is_valid_label_name, is_valid_metric_name};
