//! Exemplars: a bounded in-memory ring, like Prometheus's circular exemplar storage.
//!
//! Exemplars are kept for the most recent `capacity` exemplars across all series and are not
//! persisted: they link to traces, which are short-lived themselves. `capacity = 0` disables storage
//! (exemplars are then counted as dropped by the callers).

use std::collections::VecDeque;

use parking_lot::Mutex;
use vigil_model::{Labels, Matcher};

/// One exemplar attached to a series.
#[derive(Clone, Debug, PartialEq)]
pub struct Exemplar {
    pub labels: Labels,
    pub value: f64,
    pub t: i64,
}

/// Bounded store of the newest exemplars.
pub struct ExemplarStore {
    capacity: usize,
    ring: Mutex<VecDeque<(Labels, Exemplar)>>,
}

impl ExemplarStore {
    pub fn new(capacity: usize) -> Self {
        ExemplarStore {
            capacity,
            ring: Mutex::new(VecDeque::with_capacity(capacity.min(1 << 16))),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Adds exemplars for a series; returns how many were kept (0 when disabled). An exemplar identical
    /// to the series' newest one (same timestamp, value and labels) is a duplicate and not added again.
    pub fn add(&self, series: &Labels, exemplars: &[Exemplar]) -> usize {
        if self.capacity == 0 {
            return 0;
        }
        let mut ring = self.ring.lock();
        let mut kept = 0;
        for e in exemplars {
            if ring
                .iter()
                .rev()
                .take(64)
                .any(|(s, x)| s == series && x == e)
            {
                kept += 1;
                continue;
            }
            if ring.len() >= self.capacity {
                ring.pop_front();
            }
            ring.push_back((series.clone(), e.clone()));
            kept += 1;
        }
        kept
    }

    /// Exemplars of series matching all matchers, with `mint <= t <= maxt`, grouped by series in the
    /// order the series were first seen.
    pub fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Vec<(Labels, Vec<Exemplar>)> {
        let ring = self.ring.lock();
        let mut out: Vec<(Labels, Vec<Exemplar>)> = Vec::new();
        for (s, e) in ring.iter() {
            if e.t < mint
                || e.t > maxt
                || !matchers
                    .iter()
                    .all(|m| m.matches(s.get(&m.name).unwrap_or("")))
            {
                continue;
            }
            match out.iter_mut().find(|(l, _)| l == s) {
                Some((_, v)) => v.push(e.clone()),
                None => out.push((s.clone(), vec![e.clone()])),
            }
        }
        for (_, v) in &mut out {
            v.sort_by_key(|e| e.t);
        }
        out
    }

    pub fn len(&self) -> usize {
        self.ring.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_selectable() {
        let s = ExemplarStore::new(2);
        let a = Labels::from_pairs([("__name__", "a")]);
        let ex = |t| Exemplar {
            labels: Labels::from_pairs([("trace_id", "x")]),
            value: 1.0,
            t,
        };
        assert_eq!(s.add(&a, &[ex(1), ex(2), ex(3)]), 3);
        assert_eq!(s.len(), 2);
        let got = s.select(&[Matcher::equal("__name__", "a")], 0, 10);
        assert_eq!(got[0].1.iter().map(|e| e.t).collect::<Vec<_>>(), vec![2, 3]);
        assert!(
            s.select(&[Matcher::equal("__name__", "b")], 0, 10)
                .is_empty()
        );
        assert_eq!(ExemplarStore::new(0).add(&a, &[ex(1)]), 0);
    }
}
