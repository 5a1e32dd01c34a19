//! Label sets.
//!
//! A [`Labels`] value is always sorted by name with unique names and no empty values, the invariants
//! Prometheus keeps, so equality, hashing and printing need no normalisation at the call site.

use std::fmt;
use std::sync::Arc;

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

/// One name/value pair, owned (what a [`LabelsBuilder`] holds).
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

/// One name/value pair of a [`Labels`], borrowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LabelRef<'a> {
    pub name: &'a str,
    pub value: &'a str,
}

impl LabelRef<'_> {
    pub fn to_owned(&self) -> Label {
        Label::new(self.name, self.value)
    }
}

/// The byte that ends every name and every value in a packed label set. It never occurs in UTF-8.
const SEP: u8 = 0xff;

/// A label set sorted by name, with unique names and without empty values.
///
/// Stored packed in one shared buffer, `name 0xff value 0xff …` in name order: one allocation per
/// series instead of two per label (the head keeps one of these per series, so this is most of a
/// series' memory), cloning is a reference-count increment, and hashing and equality work on one
/// byte slice.
#[derive(Clone)]
pub struct Labels(Arc<[u8]>);

/// Iterates the pairs of a packed buffer.
#[derive(Clone)]
pub struct Iter<'a> {
    rest: &'a [u8],
}

fn as_str(b: &[u8]) -> &str {
    // SAFETY: every packed buffer is built by `pack` from `&str` parts, each followed by SEP (0xff).
    // 0xff never occurs in UTF-8, so the bytes between two separators are exactly one of those
    // parts, which was valid UTF-8 when copied. No other code writes into a packed buffer (it is
    // private and immutable behind the Arc), and `Iter` only yields slices between separators.
    unsafe { std::str::from_utf8_unchecked(b) }
}

impl<'a> Iterator for Iter<'a> {
    type Item = LabelRef<'a>;
    fn next(&mut self) -> Option<LabelRef<'a>> {
        if self.rest.is_empty() {
            return None;
        }
        let n = self.rest.iter().position(|b| *b == SEP)?;
        let name = &self.rest[..n];
        let rest = &self.rest[n + 1..];
        let v = rest.iter().position(|b| *b == SEP)?;
        let value = &rest[..v];
        self.rest = &rest[v + 1..];
        Some(LabelRef {
            name: as_str(name),
            value: as_str(value),
        })
    }
}

/// Packs sorted, unique, non-empty pairs.
fn pack<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> Arc<[u8]> {
    let mut buf = Vec::new();
    for (n, v) in pairs {
        buf.extend_from_slice(n.as_bytes());
        buf.push(SEP);
        buf.extend_from_slice(v.as_bytes());
        buf.push(SEP);
    }
    Arc::from(buf)
}

impl Default for Labels {
    fn default() -> Self {
        Labels::empty()
    }
}

impl PartialEq for Labels {
    fn eq(&self, o: &Self) -> bool {
        self.0 == o.0
    }
}

impl Eq for Labels {}

impl std::hash::Hash for Labels {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.0.hash(h)
    }
}

/// Pair by pair (name, then value), as Prometheus orders label sets; a prefix sorts first.
///
/// Compared on the packed bytes without decoding: up to the first differing byte both sets agree,
/// so both are at the same offset of the same name or value; a separator there means that side's
/// string ended first (the shorter string sorts first, though SEP is the larger byte), otherwise
/// the bytes decide. (Series are ordered in every query and block read, so this is a hot path.)
impl Ord for Labels {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        let (a, b) = (&*self.0, &*o.0);
        let n = a.len().min(b.len());
        match a[..n].iter().zip(&b[..n]).position(|(x, y)| x != y) {
            Some(i) if a[i] == SEP => Ordering::Less,
            Some(i) if b[i] == SEP => Ordering::Greater,
            Some(i) => a[i].cmp(&b[i]),
            None => a.len().cmp(&b.len()),
        }
    }
}

impl PartialOrd for Labels {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|l| (l.name, l.value)))
            .finish()
    }
}

impl Labels {
    /// The empty label set.
    pub fn empty() -> Self {
        static EMPTY: std::sync::OnceLock<Arc<[u8]>> = std::sync::OnceLock::new();
        Labels(EMPTY.get_or_init(|| Arc::from(Vec::new())).clone())
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
        Labels::from_sorted_refs(labels.iter().map(|l| (l.name.as_str(), l.value.as_str())))
    }

    /// [`Labels::from_sorted_unchecked`] from borrowed pairs, with one allocation.
    pub fn from_sorted_refs<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)> + Clone) -> Self {
        debug_assert!(
            pairs
                .clone()
                .zip(pairs.clone().skip(1))
                .all(|(a, b)| a.0 < b.0),
            "labels not sorted/unique"
        );
        debug_assert!(
            pairs.clone().all(|(_, v)| !v.is_empty()),
            "empty label value"
        );
        Labels(pack(pairs))
    }

    /// A copy in a buffer of its own (`clone` shares the buffer): for a holder that outlives the
    /// buffer's other holders and wants its own allocation.
    pub fn deep_clone(&self) -> Labels {
        Labels(Arc::from(&self.0[..]))
    }

    /// The packed form (`name 0xff value 0xff …`), what [`Labels::stable_hash`] hashes: a sender can
    /// pack wire labels into a scratch buffer and look a series up without building a label set.
    pub fn packed(&self) -> &[u8] {
        &self.0
    }

    /// Appends one pair to a packed buffer being built (see [`Labels::packed`]).
    pub fn pack_pair(buf: &mut Vec<u8>, name: &str, value: &str) {
        buf.extend_from_slice(name.as_bytes());
        buf.push(SEP);
        buf.extend_from_slice(value.as_bytes());
        buf.push(SEP);
    }

    /// The hash of a packed buffer, equal to [`Labels::stable_hash`] of the labels it packs.
    pub fn hash_packed(packed: &[u8]) -> u64 {
        xxhash_rust::xxh3::xxh3_64(packed)
    }

    /// Value of a label, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|l| l.name == name).map(|l| l.value)
    }

    /// The metric name (`__name__`), if present.
    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    pub fn iter(&self) -> Iter<'_> {
        Iter { rest: &self.0 }
    }

    pub fn len(&self) -> usize {
        self.0.iter().filter(|b| **b == SEP).count() / 2
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The pairs as a map (templates, notifications and the alert API want one).
    pub fn to_map(&self) -> std::collections::BTreeMap<String, String> {
        self.iter()
            .map(|l| (l.name.to_string(), l.value.to_string()))
            .collect()
    }

    /// The pairs, owned.
    pub fn to_vec(&self) -> Vec<Label> {
        self.iter().map(|l| l.to_owned()).collect()
    }

    /// A stable 64-bit hash of the label set (xxh3 over `name 0xff value 0xff`, which is the packed
    /// form itself), the identity of a series across the process. Stable across versions: it is
    /// persisted nowhere, but tests rely on it being deterministic.
    pub fn stable_hash(&self) -> u64 {
        Labels::hash_packed(&self.0)
    }

    /// Total bytes of names and values, as Prometheus counts them for size limits.
    pub fn byte_size(&self) -> usize {
        self.0.len() - 2 * self.len()
    }

    /// A builder seeded with these labels.
    pub fn to_builder(&self) -> LabelsBuilder {
        LabelsBuilder {
            labels: self.to_vec(),
        }
    }

    /// Removes the metric name.
    pub fn without_metric_name(&self) -> Labels {
        if self.metric_name().is_none() {
            return self.clone();
        }
        Labels(pack(
            self.iter()
                .filter(|l| l.name != METRIC_NAME)
                .map(|l| (l.name, l.value)),
        ))
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = LabelRef<'a>;
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
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
        let rest: Vec<LabelRef> = self.iter().filter(|l| l.name != METRIC_NAME).collect();
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
        let mut m = s.serialize_map(Some(self.len()))?;
        for l in self {
            m.serialize_entry(l.name, l.value)?;
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
        Labels(pack(
            self.labels
                .iter()
                .map(|l| (l.name.as_str(), l.value.as_str())),
        ))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        /// The byte comparison orders label sets exactly as comparing their pairs does.
        #[test]
        fn packed_order_is_pair_order(
            a in proptest::collection::btree_map("[a-c_]{1,3}", "[a-c\\u{e9}z]{1,3}", 0..4),
            b in proptest::collection::btree_map("[a-c_]{1,3}", "[a-c\\u{e9}z]{1,3}", 0..4),
        ) {
            let la = Labels::from_pairs(a.clone());
            let lb = Labels::from_pairs(b.clone());
            prop_assert_eq!(la.cmp(&lb), la.iter().cmp(lb.iter()));
            prop_assert_eq!(lb.cmp(&la), lb.iter().cmp(la.iter()));
        }
    }

    use super::*;

    #[test]
    fn sorted_unique_and_empty_dropped() {
        let l = Labels::from_pairs([("b", "2"), ("a", "1"), ("c", ""), ("a", "3")]);
        assert_eq!(l.to_vec(), vec![Label::new("a", "3"), Label::new("b", "2")]);
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
