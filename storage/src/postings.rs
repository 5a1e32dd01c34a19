//! Label postings: for each label name and value, the sorted list of series holding it. Matchers are
//! evaluated here to find candidate series without looking at every series' labels.

use std::collections::HashMap;

use vigil_model::{MatchOp, Matcher};

/// Postings of one index (the head's, or a block's). Adding ids in increasing order is O(1) per label;
/// an id smaller than one already present is inserted at its place.
#[derive(Default, Debug)]
pub struct Postings {
    /// name -> value -> sorted series ids.
    map: HashMap<String, HashMap<String, Vec<u64>>>,
    /// Every series id, sorted.
    all: Vec<u64>,
}

/// Makes room for one more id. A list grows to the next of the allocator's size classes (an
/// eighth to a quarter larger) instead of doubling: the head holds hundreds of thousands of ids,
/// and doubling leaves a quarter of that memory unused on average. The copying stays linear overall
/// (geometric growth), and series are created far less often than samples are appended.
fn reserve_one(list: &mut Vec<u64>) {
    if list.len() < list.capacity() {
        return;
    }
    let target = crate::alloc::next_size_class(list.capacity() * std::mem::size_of::<u64>());
    list.reserve_exact(target / std::mem::size_of::<u64>() - list.len());
}

fn insert_sorted(list: &mut Vec<u64>, id: u64) {
    reserve_one(list);
    match list.last() {
        None => list.push(id),
        Some(l) if *l < id => list.push(id),
        Some(_) => {
            if let Err(i) = list.binary_search(&id) {
                list.insert(i, id);
            }
        }
    }
}

fn intersect(a: &[u64], b: &[u64]) -> Vec<u64> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(a.len().min(b.len()));
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

fn subtract(a: &[u64], b: &[u64]) -> Vec<u64> {
    let mut j = 0;
    let mut out = Vec::with_capacity(a.len());
    for &x in a {
        while j < b.len() && b[j] < x {
            j += 1;
        }
        if j >= b.len() || b[j] != x {
            out.push(x);
        }
    }
    out
}

fn union_sorted(lists: Vec<&Vec<u64>>) -> Vec<u64> {
    let mut out: Vec<u64> = lists.into_iter().flatten().copied().collect();
    out.sort_unstable();
    out.dedup();
    out
}

impl Postings {
    /// Adds a series.
    pub fn add<'a>(&mut self, id: u64, labels: impl IntoIterator<Item = (&'a str, &'a str)>) {
        insert_sorted(&mut self.all, id);
        for (n, v) in labels {
            let values = match self.map.get_mut(n) {
                Some(v) => v,
                None => self.map.entry(n.to_string()).or_default(),
            };
            match values.get_mut(v) {
                Some(list) => insert_sorted(list, id),
                None => {
                    // Exactly one slot: most label values belong to few series.
                    values.insert(v.to_string(), vec![id]);
                }
            }
        }
    }

    /// Removes a set of series (sorted ids).
    pub fn remove(&mut self, ids: &[u64]) {
        if ids.is_empty() {
            return;
        }
        self.all = subtract(&self.all, ids);
        self.map.retain(|_, values| {
            values.retain(|_, list| {
                *list = subtract(list, ids);
                !list.is_empty()
            });
            !values.is_empty()
        });
    }

    fn matching_values(&self, m: &Matcher) -> Vec<&Vec<u64>> {
        let Some(values) = self.map.get(&m.name) else {
            return Vec::new();
        };
        if m.op == MatchOp::Equal {
            return values.get(&m.value).into_iter().collect();
        }
        if let Some(set) = m.set_matches() {
            return set.iter().filter_map(|v| values.get(v)).collect();
        }
        values
            .iter()
            .filter(|(v, _)| m.matches(v))
            .map(|(_, l)| l)
            .collect()
    }

    /// Series ids selected by all matchers (an AND), sorted. Follows Prometheus: a matcher that matches
    /// the empty string also selects series without the label.
    pub fn select(&self, matchers: &[Matcher]) -> Vec<u64> {
        let mut result: Option<Vec<u64>> = None;
        // Positive matchers that cannot match "" narrow the set; do them first.
        let (narrowing, rest): (Vec<&Matcher>, Vec<&Matcher>) =
            matchers.iter().partition(|m| !m.matches_empty());
        for m in narrowing {
            let ids = union_sorted(self.matching_values(m));
            result = Some(match result {
                None => ids,
                Some(r) => intersect(&r, &ids),
            });
            if result.as_ref().is_some_and(|r| r.is_empty()) {
                return Vec::new();
            }
        }
        let mut result = result.unwrap_or_else(|| self.all.clone());
        for m in rest {
            // Matches "": remove the series whose value for the label does NOT match.
            let Some(values) = self.map.get(&m.name) else {
                continue;
            };
            let excluded: Vec<&Vec<u64>> = values
                .iter()
                .filter(|(v, _)| !m.matches(v))
                .map(|(_, l)| l)
                .collect();
            if !excluded.is_empty() {
                result = subtract(&result, &union_sorted(excluded));
            }
        }
        result
    }

    /// Label names present on any of `ids` (or on any series when `ids` is None).
    pub fn label_names(&self, ids: Option<&[u64]>) -> Vec<String> {
        let mut out: Vec<String> = self
            .map
            .iter()
            .filter(|(_, values)| match ids {
                None => true,
                Some(ids) => values.values().any(|l| !intersect(l, ids).is_empty()),
            })
            .map(|(n, _)| n.clone())
            .collect();
        out.sort_unstable();
        out
    }

    /// Values of `name` present on any of `ids` (or on any series).
    #[cfg(test)]
    pub fn label_values(&self, name: &str, ids: Option<&[u64]>) -> Vec<String> {
        let Some(values) = self.map.get(name) else {
            return Vec::new();
        };
        let mut out: Vec<String> = values
            .iter()
            .filter(|(_, l)| ids.is_none_or(|ids| !intersect(l, ids).is_empty()))
            .map(|(v, _)| v.clone())
            .collect();
        out.sort_unstable();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx() -> Postings {
        let mut p = Postings::default();
        p.add(1, [("__name__", "up"), ("job", "a")]);
        p.add(2, [("__name__", "up"), ("job", "b"), ("env", "prod")]);
        p.add(3, [("__name__", "down"), ("job", "a")]);
        p
    }

    #[test]
    fn out_of_order_ids_stay_sorted() {
        let mut p = Postings::default();
        p.add(5, [("a", "x")]);
        p.add(3, [("a", "x")]);
        assert_eq!(p.select(&[Matcher::equal("a", "x")]), vec![3, 5]);
    }

    fn m(op: MatchOp, n: &str, v: &str) -> Matcher {
        Matcher::new(op, n, v).unwrap()
    }

    #[test]
    fn select_semantics() {
        let p = idx();
        assert_eq!(p.select(&[m(MatchOp::Equal, "__name__", "up")]), vec![1, 2]);
        assert_eq!(
            p.select(&[
                m(MatchOp::Equal, "__name__", "up"),
                m(MatchOp::Equal, "job", "a")
            ]),
            vec![1]
        );
        // env!="prod" selects series without env too.
        assert_eq!(p.select(&[m(MatchOp::NotEqual, "env", "prod")]), vec![1, 3]);
        assert_eq!(p.select(&[m(MatchOp::Equal, "env", "")]), vec![1, 3]);
        assert_eq!(
            p.select(&[
                m(MatchOp::Regex, "job", "a|b"),
                m(MatchOp::NotRegex, "__name__", "d.*")
            ]),
            vec![1, 2]
        );
        assert_eq!(p.select(&[m(MatchOp::Regex, "env", ".+")]), vec![2]);
        assert!(p.select(&[m(MatchOp::Equal, "nope", "x")]).is_empty());
    }

    #[test]
    fn names_values_and_remove() {
        let mut p = idx();
        assert_eq!(p.label_names(None), vec!["__name__", "env", "job"]);
        assert_eq!(p.label_names(Some(&[1, 3])), vec!["__name__", "job"]);
        assert_eq!(p.label_values("job", Some(&[2])), vec!["b"]);
        p.remove(&[2]);
        assert_eq!(p.label_names(None), vec!["__name__", "job"]);
        assert_eq!(p.select(&[m(MatchOp::Equal, "__name__", "up")]), vec![1]);
    }
}
