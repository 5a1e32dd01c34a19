//! Validation of series identities, shared by every ingest path so that scrape, remote write and
//! OTLP reject the same things with the same words.

use crate::{Label, METRIC_NAME};

/// Metric names: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_valid_metric_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_' || b[0] == b':')
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b':')
}

/// Label names: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_valid_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// Limits on one series' labels (0 = unlimited), as Prometheus's `label_limit`,
/// `label_name_length_limit` and `label_value_length_limit`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LabelLimits {
    pub label_limit: usize,
    pub label_name_length_limit: usize,
    pub label_value_length_limit: usize,
}

/// Why a label set was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    #[error("series has no metric name (__name__ label missing or empty)")]
    MissingName,
    #[error("invalid metric name {0:?}")]
    InvalidMetricName(String),
    #[error("invalid label name {0:?}")]
    InvalidLabelName(String),
    #[error("label value of {name:?} is not valid UTF-8")]
    InvalidUtf8 { name: String },
    #[error("labels are not sorted: {prev:?} comes before {next:?}")]
    Unsorted { prev: String, next: String },
    #[error("duplicate label name {0:?}")]
    Duplicate(String),
    #[error("series has {count} labels, over the limit of {limit}")]
    TooManyLabels { count: usize, limit: usize },
    #[error("label name {name:?} is {len} bytes long, over the limit of {limit}")]
    NameTooLong {
        name: String,
        len: usize,
        limit: usize,
    },
    #[error("value of label {name:?} is {len} bytes long, over the limit of {limit}")]
    ValueTooLong {
        name: String,
        len: usize,
        limit: usize,
    },
}

impl LabelLimits {
    /// Checks labels as received on the wire (possibly unsorted, possibly with empty values).
    /// `require_sorted` is what the remote-write specification demands of senders.
    pub fn check(&self, labels: &[Label], require_sorted: bool) -> Result<(), LabelError> {
        let mut name_seen = false;
        let mut count = 0usize;
        for (i, l) in labels.iter().enumerate() {
            if i > 0 {
                let prev = &labels[i - 1].name;
                if *prev == l.name {
                    return Err(LabelError::Duplicate(l.name.clone()));
                }
                if require_sorted && *prev > l.name {
                    return Err(LabelError::Unsorted {
                        prev: prev.clone(),
                        next: l.name.clone(),
                    });
                }
            }
            if l.name == METRIC_NAME {
                if !l.value.is_empty() {
                    if !is_valid_metric_name(&l.value) {
                        return Err(LabelError::InvalidMetricName(l.value.clone()));
                    }
                    name_seen = true;
                }
            } else if !is_valid_label_name(&l.name) {
                return Err(LabelError::InvalidLabelName(l.name.clone()));
            }
            if l.value.is_empty() {
                continue;
            }
            count += 1;
            if self.label_name_length_limit > 0 && l.name.len() > self.label_name_length_limit {
                return Err(LabelError::NameTooLong {
                    name: l.name.clone(),
                    len: l.name.len(),
                    limit: self.label_name_length_limit,
                });
            }
            if self.label_value_length_limit > 0 && l.value.len() > self.label_value_length_limit {
                return Err(LabelError::ValueTooLong {
                    name: l.name.clone(),
                    len: l.value.len(),
                    limit: self.label_value_length_limit,
                });
            }
        }
        if !name_seen {
            return Err(LabelError::MissingName);
        }
        if self.label_limit > 0 && count > self.label_limit {
            return Err(LabelError::TooManyLabels {
                count,
                limit: self.label_limit,
            });
        }
        if !require_sorted {
            let mut names: Vec<&str> = labels.iter().map(|l| l.name.as_str()).collect();
            names.sort_unstable();
            if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
                return Err(LabelError::Duplicate(w[0].to_string()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ls(p: &[(&str, &str)]) -> Vec<Label> {
        p.iter().map(|(n, v)| Label::new(*n, *v)).collect()
    }

    #[test]
    fn names() {
        assert!(is_valid_metric_name("job:fx_requests:rate5m"));
        assert!(!is_valid_metric_name("1abc"));
        assert!(!is_valid_metric_name("a-b"));
        assert!(is_valid_label_name("_leading"));
        assert!(!is_valid_label_name("a:b"));
        assert!(!is_valid_label_name(""));
    }

    #[test]
    fn checks() {
        let lim = LabelLimits {
            label_limit: 2,
            label_name_length_limit: 8,
            label_value_length_limit: 3,
        };
        assert_eq!(
            lim.check(&ls(&[("__name__", "up"), ("a", "1")]), true),
            Ok(())
        );
        assert!(matches!(
            lim.check(&ls(&[("b", "1"), ("a", "1")]), true),
            Err(LabelError::Unsorted { .. })
        ));
        assert!(matches!(
            lim.check(&ls(&[("__name__", "up"), ("a", "1"), ("a", "2")]), true),
            Err(LabelError::Duplicate(_))
        ));
        assert!(matches!(
            lim.check(&ls(&[("a", "1")]), true),
            Err(LabelError::MissingName)
        ));
        assert!(matches!(
            lim.check(&ls(&[("__name__", "up"), ("a", "1234")]), true),
            Err(LabelError::ValueTooLong { .. })
        ));
        assert!(matches!(
            lim.check(&ls(&[("__name__", "up"), ("abcdefghi", "1")]), true),
            Err(LabelError::NameTooLong { .. })
        ));
        assert!(matches!(
            lim.check(&ls(&[("__name__", "up"), ("a", "1"), ("b", "1")]), true),
            Err(LabelError::TooManyLabels { .. })
        ));
        assert!(matches!(
            lim.check(&ls(&[("__name__", "1up")]), true),
            Err(LabelError::InvalidMetricName(_))
        ));
        // Empty values are not labels: they neither count nor get validated for length.
        assert_eq!(
            lim.check(&ls(&[("__name__", "up"), ("a", "1"), ("zz", "")]), true),
            Ok(())
        );
        assert!(matches!(
            LabelLimits::default().check(&ls(&[("__name__", "up"), ("b", "1"), ("b", "2")]), false),
            Err(LabelError::Duplicate(_))
        ));
    }
}
