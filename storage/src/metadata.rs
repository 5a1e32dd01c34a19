//! Metric family metadata (type, help, unit) as scrapes and remote-write senders report it, for the
//! `/api/v1/metadata` endpoint. Kept in memory, like Prometheus keeps it in its scrape caches.

use std::collections::BTreeMap;

use parking_lot::RwLock;
use serde::Serialize;

/// One metadata record of a metric family.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MetricMetadata {
    #[serde(rename = "type")]
    pub kind: String,
    pub help: String,
    pub unit: String,
}

/// Distinct metadata per metric family name.
pub struct MetadataStore {
    inner: RwLock<BTreeMap<String, Vec<MetricMetadata>>>,
    max_families: usize,
}

/// Distinct records kept per family (targets that disagree about a family's help text, say).
const MAX_PER_FAMILY: usize = 8;

impl MetadataStore {
    pub fn new(max_families: usize) -> Self {
        MetadataStore {
            inner: RwLock::new(BTreeMap::new()),
            max_families,
        }
    }

    /// Records `m` for `family` unless it is already known.
    pub fn record(&self, family: &str, m: MetricMetadata) {
        if self
            .inner
            .read()
            .get(family)
            .is_some_and(|v| v.contains(&m))
        {
            return;
        }
        let mut w = self.inner.write();
        if !w.contains_key(family) && w.len() >= self.max_families {
            return;
        }
        let v = w.entry(family.to_string()).or_default();
        if !v.contains(&m) && v.len() < MAX_PER_FAMILY {
            v.push(m);
        }
    }

    /// Metadata of `metric` (or of every family), at most `limit` families (0 = all).
    pub fn get(&self, metric: Option<&str>, limit: usize) -> Vec<(String, Vec<MetricMetadata>)> {
        let r = self.inner.read();
        let it: Box<dyn Iterator<Item = (&String, &Vec<MetricMetadata>)>> = match metric {
            Some(m) => Box::new(r.get_key_value(m).into_iter()),
            None => Box::new(r.iter()),
        };
        let n = if limit == 0 { usize::MAX } else { limit };
        it.take(n).map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_records_and_limits() {
        let s = MetadataStore::new(2);
        let m = |h: &str| MetricMetadata {
            kind: "counter".into(),
            help: h.into(),
            unit: String::new(),
        };
        s.record("a_total", m("A"));
        s.record("a_total", m("A"));
        s.record("a_total", m("A2"));
        s.record("b", m("B"));
        s.record("c", m("C"));
        assert_eq!(s.get(None, 0).len(), 2, "family cap");
        assert_eq!(s.get(Some("a_total"), 0)[0].1.len(), 2);
        assert_eq!(s.get(None, 1).len(), 1);
        assert!(s.get(Some("zzz"), 0).is_empty());
    }
}
