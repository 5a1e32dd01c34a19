//! Silences (Alertmanager's): matchers over a time range that mute matching alerts; persisted to a
//! JSON file so they survive restarts; expired silences are kept for a retention period, as the
//! Alertmanager API shows them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use vigil_model::Labels;

use super::matchers::{MatchType, Matcher};

/// A matcher as the v2 API writes it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApiMatcher {
    pub name: String,
    pub value: String,
    pub is_regex: bool,
    #[serde(default = "yes")]
    pub is_equal: bool,
}

fn yes() -> bool {
    true
}

impl ApiMatcher {
    pub fn to_matcher(&self) -> Result<Matcher, String> {
        let kind = match (self.is_regex, self.is_equal) {
            (false, true) => MatchType::Equal,
            (false, false) => MatchType::NotEqual,
            (true, true) => MatchType::Regexp,
            (true, false) => MatchType::NotRegexp,
        };
        if self.name.is_empty() {
            return Err("matcher has no label name".into());
        }
        Matcher::new(kind, &self.name, &self.value)
    }
}

/// A silence.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Silence {
    pub id: String,
    pub matchers: Vec<ApiMatcher>,
    /// ms
    pub starts_at: i64,
    /// ms
    pub ends_at: i64,
    /// ms
    pub updated_at: i64,
    pub created_by: String,
    pub comment: String,
}

/// Where a silence is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SilenceState {
    Pending,
    Active,
    Expired,
}

impl SilenceState {
    pub fn as_str(&self) -> &'static str {
        match self {
            SilenceState::Pending => "pending",
            SilenceState::Active => "active",
            SilenceState::Expired => "expired",
        }
    }
}

impl Silence {
    pub fn state(&self, now: i64) -> SilenceState {
        if now < self.starts_at {
            SilenceState::Pending
        } else if now < self.ends_at {
            SilenceState::Active
        } else {
            SilenceState::Expired
        }
    }

    /// Whether the silence's matchers all match `labels` (its time range aside).
    pub fn matches(&self, labels: &Labels) -> bool {
        self.matchers.iter().all(|m| match m.to_matcher() {
            Ok(x) => x.matches(labels.get(&x.name).unwrap_or("")),
            Err(_) => false,
        })
    }
}

/// How long expired silences are kept (Alertmanager's `--data.retention`, 120h).
pub const RETENTION_MS: i64 = 120 * 3600 * 1000;

/// All silences, optionally persisted to a file.
pub struct SilenceStore {
    silences: BTreeMap<String, Silence>,
    path: Option<PathBuf>,
}

impl SilenceStore {
    /// Opens the store, loading `path` when it exists.
    pub fn open(path: Option<PathBuf>) -> Result<SilenceStore, String> {
        let mut silences = BTreeMap::new();
        if let Some(p) = &path
            && p.exists()
        {
            let text = std::fs::read_to_string(p)
                .map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            let v: Vec<Silence> =
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?;
            for s in v {
                silences.insert(s.id.clone(), s);
            }
        }
        Ok(SilenceStore { silences, path })
    }

    /// Writes the silences durably (fsync of the file and its directory) before a change is
    /// acknowledged. Blocking: the API calls it from a blocking thread.
    fn persist(&self) -> Result<(), String> {
        let Some(p) = &self.path else { return Ok(()) };
        let v: Vec<&Silence> = self.silences.values().collect();
        let text = serde_json::to_vec(&v).map_err(|e| e.to_string())?;
        crate::persist::write_durably(p, &text)
            .map_err(|e| format!("cannot write {}: {e}", p.display()))
    }

    /// Creates a silence (empty id) or updates one; returns its id. An update that changes an active
    /// silence's matchers or start expires it and creates a new one, as Alertmanager does.
    pub fn set(&mut self, mut s: Silence, now: i64) -> Result<String, String> {
        if s.matchers.is_empty() {
            return Err("silence has no matchers".into());
        }
        for m in &s.matchers {
            m.to_matcher()?;
        }
        if s.ends_at <= s.starts_at {
            return Err("end time must not be before start time".into());
        }
        if s.ends_at <= now {
            return Err("end time can't be in the past".into());
        }
        if !s.id.is_empty() {
            let Some(old) = self.silences.get(&s.id).cloned() else {
                return Err(format!("silence {} not found", s.id));
            };
            let replace_in_place = old.state(now) == SilenceState::Pending
                || (old.matchers == s.matchers && old.starts_at == s.starts_at);
            if replace_in_place {
                s.updated_at = now;
                self.silences.insert(s.id.clone(), s.clone());
                self.persist()?;
                return Ok(s.id);
            }
            self.expire(&old.id, now)?;
        }
        s.id = new_id(now, self.silences.len());
        s.starts_at = s.starts_at.max(now);
        s.updated_at = now;
        self.silences.insert(s.id.clone(), s.clone());
        self.persist()?;
        Ok(s.id)
    }

    /// Expires a silence now.
    pub fn expire(&mut self, id: &str, now: i64) -> Result<(), String> {
        let s = self
            .silences
            .get_mut(id)
            .ok_or_else(|| format!("silence {id} not found"))?;
        if s.state(now) == SilenceState::Expired {
            return Err(format!("silence {id} already expired"));
        }
        if s.state(now) == SilenceState::Pending {
            s.starts_at = now;
        }
        s.ends_at = now;
        s.updated_at = now;
        self.persist()
    }

    pub fn get(&self, id: &str) -> Option<&Silence> {
        self.silences.get(id)
    }

    /// Every silence, dropping those expired for longer than the retention.
    pub fn list(&mut self, now: i64) -> Vec<Silence> {
        let before = self.silences.len();
        self.silences.retain(|_, s| s.ends_at + RETENTION_MS > now);
        if self.silences.len() != before {
            let _ = self.persist();
        }
        self.silences.values().cloned().collect()
    }

    /// Ids of the active silences that mute `labels` at `now`.
    pub fn muting(&self, labels: &Labels, now: i64) -> Vec<String> {
        self.silences
            .values()
            .filter(|s| s.state(now) == SilenceState::Active && s.matches(labels))
            .map(|s| s.id.clone())
            .collect()
    }
}

/// A UUID-shaped id (version 4 layout) from time, a counter and randomness.
fn new_id(now: i64, n: usize) -> String {
    let r: u128 = rand_u128() ^ ((now as u128) << 64) ^ n as u128;
    let b = r.to_be_bytes();
    format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-4{:01x}{:02x}-{:01x}{:01x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        b[0],
        b[1],
        b[2],
        b[3],
        b[4],
        b[5],
        b[6] & 0x0f,
        b[7],
        8 | (b[8] & 0x3),
        b[8] >> 4,
        b[9],
        b[10],
        b[11],
        b[12],
        b[13],
        b[14],
        b[15]
    )
}

fn rand_u128() -> u128 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    );
    let a = h.finish();
    let mut h2 = std::collections::hash_map::RandomState::new().build_hasher();
    h2.write_u64(a);
    ((a as u128) << 64) | h2.finish() as u128
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, value: &str, re: bool) -> ApiMatcher {
        ApiMatcher {
            name: name.into(),
            value: value.into(),
            is_regex: re,
            is_equal: true,
        }
    }

    fn silence(ms: Vec<ApiMatcher>, start: i64, end: i64) -> Silence {
        Silence {
            id: String::new(),
            matchers: ms,
            starts_at: start,
            ends_at: end,
            updated_at: 0,
            created_by: "t".into(),
            comment: "c".into(),
        }
    }

    #[test]
    fn mute_expire_and_persist() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("silences.json");
        let mut st = SilenceStore::open(Some(path.clone())).unwrap();
        let id = st
            .set(silence(vec![m("alertname", "Disk.*", true)], 0, 1000), 0)
            .unwrap();
        let l = Labels::from_pairs([("alertname", "DiskFull"), ("instance", "a")]);
        assert_eq!(st.muting(&l, 10), vec![id.clone()]);
        assert!(
            st.muting(&Labels::from_pairs([("alertname", "Other")]), 10)
                .is_empty()
        );
        assert!(st.muting(&l, 1000).is_empty(), "ends_at is exclusive");
        // Survives a restart.
        let mut st2 = SilenceStore::open(Some(path.clone())).unwrap();
        assert_eq!(st2.muting(&l, 10), vec![id.clone()]);
        st2.expire(&id, 20).unwrap();
        assert!(st2.muting(&l, 21).is_empty());
        assert_eq!(st2.get(&id).unwrap().state(21), SilenceState::Expired);
        assert!(st2.expire(&id, 22).is_err());
        // Bad silences are refused.
        assert!(st2.set(silence(vec![], 0, 100), 0).is_err());
        assert!(
            st2.set(silence(vec![m("a", "(", true)], 0, 100), 0)
                .is_err()
        );
        assert!(
            st2.set(silence(vec![m("a", "b", false)], 0, 10), 50)
                .is_err()
        );
        // Changing an active silence's matchers expires it and makes a new one.
        let id2 = st2
            .set(silence(vec![m("a", "b", false)], 0, 1000), 0)
            .unwrap();
        let mut upd = st2.get(&id2).unwrap().clone();
        upd.matchers = vec![m("a", "c", false)];
        let id3 = st2.set(upd, 5).unwrap();
        assert_ne!(id2, id3);
        assert_eq!(st2.get(&id2).unwrap().state(6), SilenceState::Expired);
        assert_eq!(id3.len(), 36);
    }
}
