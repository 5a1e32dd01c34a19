//! Compaction planning: which blocks to merge next.
//!
//! As in Prometheus: blocks that overlap in time (out-of-order data) are merged first; then, for each
//! range of 3, 9, 27… block durations (up to a tenth of the retention time, at most 31 days), the blocks
//! that fall inside one aligned range are merged once the range is complete or newer data exists past it.

use crate::block::BlockMeta;

const MAX_RANGE_MS: i64 = 31 * 24 * 3600 * 1000;

/// The ULIDs of the next group of blocks to merge, if any. `metas` must be sorted by `min_time`.
pub fn plan(metas: &[BlockMeta], block_ms: i64, retention_ms: i64) -> Option<Vec<String>> {
    if metas.len() < 2 {
        return None;
    }
    // Overlapping blocks first.
    for i in 0..metas.len() {
        let group: Vec<String> = metas
            .iter()
            .filter(|o| {
                o.ulid != metas[i].ulid
                    && o.min_time <= metas[i].max_time
                    && o.max_time >= metas[i].min_time
            })
            .map(|o| o.ulid.clone())
            .collect();
        if !group.is_empty() {
            let mut g = group;
            g.push(metas[i].ulid.clone());
            g.sort();
            return Some(g);
        }
    }
    let cap = if retention_ms > 0 {
        (retention_ms / 10).min(MAX_RANGE_MS)
    } else {
        MAX_RANGE_MS
    };
    let newest = metas.iter().map(|m| m.max_time).max()?;
    let mut range = block_ms * 3;
    while range <= cap.max(block_ms * 3) {
        let mut i = 0;
        while i < metas.len() {
            let start = metas[i].min_time.div_euclid(range) * range;
            let end = start + range;
            let group: Vec<&BlockMeta> = metas
                .iter()
                .filter(|m| m.min_time >= start && m.max_time < end)
                .collect();
            let complete = group.iter().any(|m| m.max_time >= end - block_ms) || newest >= end;
            if group.len() > 1 && complete {
                return Some(group.iter().map(|m| m.ulid.clone()).collect());
            }
            i += group.len().max(1);
        }
        range *= 3;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{BlockStats, CompactionMeta};

    const H: i64 = 3600 * 1000;

    fn meta(ulid: &str, lo: i64, hi: i64) -> BlockMeta {
        BlockMeta {
            ulid: ulid.into(),
            version: 1,
            min_time: lo,
            max_time: hi,
            stats: BlockStats::default(),
            compaction: CompactionMeta {
                level: 1,
                sources: vec![ulid.into()],
            },
        }
    }

    #[test]
    fn merges_three_complete_two_hour_blocks() {
        let m = vec![
            meta("a", 0, 2 * H - 1),
            meta("b", 2 * H, 4 * H - 1),
            meta("c", 4 * H, 6 * H - 1),
        ];
        assert_eq!(
            plan(&m, 2 * H, 15 * 24 * H),
            Some(vec!["a".into(), "b".into(), "c".into()])
        );
    }

    #[test]
    fn waits_for_the_range_to_fill() {
        let m = vec![meta("a", 0, 2 * H - 1), meta("b", 2 * H, 4 * H - 1)];
        assert_eq!(plan(&m, 2 * H, 15 * 24 * H), None);
        // Newer data past the 6h range: merge what is there.
        let m = vec![
            meta("a", 0, 2 * H - 1),
            meta("b", 2 * H, 4 * H - 1),
            meta("d", 6 * H, 8 * H - 1),
        ];
        assert_eq!(
            plan(&m, 2 * H, 15 * 24 * H),
            Some(vec!["a".into(), "b".into()])
        );
    }

    #[test]
    fn overlapping_first() {
        let m = vec![meta("a", 0, 2 * H - 1), meta("x", H, H + 10)];
        assert_eq!(
            plan(&m, 2 * H, 15 * 24 * H),
            Some(vec!["a".into(), "x".into()])
        );
    }
}
