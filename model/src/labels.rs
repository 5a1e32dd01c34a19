//! Label sets.
//!
//! A [`Labels`] value is always sorted by name with unique names and no empty values, the invariants
//! Prometheus keeps, so equality, hashing and printing need no normalisation at the call site.

use std::fmt;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

/// The reserved label holding the metric name.
pub const METRIC_NAME: &str = "__name__";
/// Target label added to every scraped series.
pub const JOB_LABEL: &str = "job";
/// Target label added to every scraped series.
pub const INSTANCE_LABEL: &str = "instance";
/// Upper bound label of a classic histogram bucket.
pub const BUCKET_LABEL: &str = "le";
/// Quantile label of a summary.
pub const QUANTILE_LABEL: &str = "quantile";

/// One name/value pair.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label {
    pub name: String,
    pub value: String,
}

impl Label {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Label {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// A label set sorted by name, with unique names and without empty values.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Labels(Vec<Label>);

impl Labels {
    /// The empty label set.
    pub fn empty() -> Self {
        Labels(Vec::new())
    }

    /// Builds a label set from pairs in any order. Empty values are dropped (an empty value means "no
    /// such label" in Prometheus); for a repeated name the last pair wins.
    pub fn from_pairs<N: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Self {
        let mut b = LabelsBuilder::new();
        for (n, v) in pairs {
            b.set(n, v);
        }
        b.build()
    }

    /// Wraps labels that the caller guarantees are sorted, unique and without empty values (for
    /// example, read back from our own storage). Checked in debug builds.
    pub fn from_sorted_unchecked(labels: Vec<Label>) -> Self {
        debug_assert!(
            labels.windows(2).all(|w| w[0].name < w[1].name),
            "labels not sorted/unique"
        );
        debug_assert!(
            labels.iter().all(|l| !l.value.is_empty()),
            "empty label value"
        );
        Labels(labels)
    }

    /// Value of a label, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|l| l.name.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].value.as_str())
    }

    /// The metric name (`__name__`), if present.
    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_slice(&self) -> &[Label] {
        &self.0
    }

    pub fn into_vec(self) -> Vec<Label> {
        self.0
    }

    /// A stable 64-bit hash of the label set (xxh3 over `name 0xff value 0xff`), the identity of a
    /// series across the process. Stable across versions: it is persisted nowhere, but tests rely on it
    /// being deterministic.
    pub fn stable_hash(&self) -> u64 {
        // One-shot xxh3 over the bytes laid out in a stack buffer: the same value as feeding them
        // to the streaming hasher, several times faster for the short label sets of real series.
        let len: usize = self
            .0
            .iter()
            .map(|l| l.name.len() + l.value.len() + 2)
            .sum();
        if len <= 1024 {
            let mut buf = [0u8; 1024];
            let mut at = 0;
            for l in &self.0 {
                for part in [l.name.as_bytes(), l.value.as_bytes()] {
                    buf[at..at + part.len()].copy_from_slice(part);
                    buf[at + part.len()] = 0xff;
                    at += part.len() + 1;
                }
            }
            return xxhash_rust::xxh3::xxh3_64(&buf[..at]);
        }
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        for l in &self.0 {
            h.update(l.name.as_bytes());
            h.update(&[0xff]);
            h.update(l.value.as_bytes());
            h.update(&[0xff]);
        }
        h.digest()
    }

    /// Total bytes of names and values, as Prometheus counts them for size limits.
    pub fn byte_size(&self) -> usize {
        self.0.iter().map(|l| l.name.len() + l.value.len()).sum()
    }

    /// A builder seeded with these labels.
    pub fn to_builder(&self) -> LabelsBuilder {
        LabelsBuilder {
            labels: self.0.clone(),
        }
    }

    /// Removes the metric name.
    pub fn without_metric_name(&self) -> Labels {
        Labels(
            self.0
                .iter()
                .filter(|l| l.name != METRIC_NAME)
                .cloned()
                .collect(),
        )
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = &'a Label;
    type IntoIter = std::slice::Iter<'a, Label>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Prints like Prometheus: `name{a="b", c="d"}` with Go-style escaping of values.
impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.metric_name();
        if let Some(n) = name {
            f.write_str(n)?;
        }
        let mut first = true;
        let rest: Vec<&Label> = self.0.iter().filter(|l| l.name != METRIC_NAME).collect();
        if rest.is_empty() && name.is_some() {
            return Ok(());
        }
        f.write_str("{")?;
        for l in rest {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{}=\"", l.name)?;
            for c in l.value.chars() {
                match c {
                    '\\' => f.write_str("\\\\")?,
                    '"' => f.write_str("\\\"")?,
                    '\n' => f.write_str("\\n")?,
                    c => write!(f, "{c}")?,
                }
            }
            f.write_str("\"")?;
        }
        f.write_str("}")
    }
}

/// Serialises as a JSON object `{"name": "value", ...}`, the shape of the Prometheus API.
impl Serialize for Labels {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for l in &self.0 {
            m.serialize_entry(&l.name, &l.value)?;
        }
        m.end()
    }
}

/// Mutable label set used while relabeling or assembling a series.
#[derive(Clone, Debug, Default)]
pub struct LabelsBuilder {
    labels: Vec<Label>,
}

impl LabelsBuilder {
    pub fn new() -> Self {
        LabelsBuilder { labels: Vec::new() }
    }

    pub fn with_capacity(n: usize) -> Self {
        LabelsBuilder {
            labels: Vec::with_capacity(n),
        }
    }

    /// Sets a label; an empty value deletes it.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        let name = name.into();
        let value = value.into();
        match self.labels.binary_search_by(|l| l.name.as_str().cmp(&name)) {
            Ok(i) if value.is_empty() => {
                self.labels.remove(i);
            }
            Ok(i) => self.labels[i].value = value,
            Err(_) if value.is_empty() => {}
            Err(i) => self.labels.insert(i, Label { name, value }),
        }
        self
    }

    pub fn del(&mut self, name: &str) -> &mut Self {
        if let Ok(i) = self.labels.binary_search_by(|l| l.name.as_str().cmp(name)) {
            self.labels.remove(i);
        }
        self
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.labels
            .binary_search_by(|l| l.name.as_str().cmp(name))
            .ok()
            .map(|i| self.labels[i].value.as_str())
    }

    /// Keeps only labels for which `keep` returns true.
    pub fn retain(&mut self, mut keep: impl FnMut(&Label) -> bool) -> &mut Self {
        self.labels.retain(|l| keep(l));
        self
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.labels.iter()
    }

    pub fn build(self) -> Labels {
        Labels(self.labels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_unique_and_empty_dropped() {
        let l = Labels::from_pairs([("b", "2"), ("a", "1"), ("c", ""), ("a", "3")]);
        assert_eq!(l.as_slice(), &[Label::new("a", "3"), Label::new("b", "2")]);
        assert_eq!(l.get("a"), Some("3"));
        assert_eq!(l.get("c"), None);
    }

    #[test]
    fn display_escapes_like_prometheus() {
        let l = Labels::from_pairs([("__name__", "up"), ("path", "a\"b\\c\nd")]);
        assert_eq!(l.to_string(), r#"up{path="a\"b\\c\nd"}"#);
        assert_eq!(Labels::from_pairs([("__name__", "up")]).to_string(), "up");
        assert_eq!(Labels::empty().to_string(), "{}");
    }

    #[test]
    fn hash_distinguishes_boundaries() {
        let a = Labels::from_pairs([("a", "bc")]);
        let b = Labels::from_pairs([("ab", "c")]);
        assert_ne!(a.stable_hash(), b.stable_hash());
        assert_eq!(
            a.stable_hash(),
            Labels::from_pairs([("a", "bc")]).stable_hash()
        );
        // The short-set fast path and the streaming path agree.
        let long = Labels::from_pairs([("a", "x".repeat(2000))]);
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(b"a\xff");
        h.update("x".repeat(2000).as_bytes());
        h.update(b"\xff");
        assert_eq!(long.stable_hash(), h.digest());
        assert_eq!(a.stable_hash(), xxhash_rust::xxh3::xxh3_64(b"a\xffbc\xff"));
    }

    #[test]
    fn serializes_as_object() {
        let l = Labels::from_pairs([("job", "x"), ("__name__", "up")]);
        assert_eq!(
            serde_json::to_string(&l).unwrap(),
            r#"{"__name__":"up","job":"x"}"#
        );
    }
}
