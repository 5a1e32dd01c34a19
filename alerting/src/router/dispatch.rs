//! Grouping, timing and deduplication, as Alertmanager 0.25's dispatcher and notification
//! pipeline do them:
//!
//! - alerts go to every matching route and are grouped by the route's `group_by` labels; a new
//!   group waits `group_wait`, later flushes come every `group_interval`;
//! - a flush hands the group's alerts, minus the silenced and inhibited ones, to delivery; when
//!   nothing is left (everything muted), nothing is sent;
//! - each integration of the receiver decides on its own, from its own notification-log entry,
//!   whether the flush is news (new firing alerts, newly resolved ones, or `repeat_interval`
//!   passed), so a partial failure never repeats a page to the integrations that succeeded;
//! - resolved alerts leave the group only when a flush carrying them succeeded on every
//!   integration: a receiver outage delays the resolve, it never loses it;
//! - a group is not flushed again while its previous delivery is still retrying (delivery gives up
//!   at the next flush time, as Alertmanager's per-flush deadline does).
//!
//! Time is an argument (`now`, ms) rather than a clock the dispatcher reads: the router calls it
//! with the wall clock, tests with whatever time they need.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use vigil_model::Labels;

use super::config::Route;

/// An alert as the router sees it (from the rule engine or `POST /api/v2/alerts`).
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    pub labels: Labels,
    pub annotations: BTreeMap<String, String>,
    /// ms
    pub starts_at: i64,
    /// ms; when the alert resolves (or resolved)
    pub ends_at: i64,
    pub generator_url: String,
    /// ms; last time a sender updated the alert
    pub updated_at: i64,
}

/// Alertmanager's fingerprint of a label set: FNV-1a 64 over `name 0xff value 0xff` in name
/// order. The v2 API and notifications print it as 16 hex digits, as Alertmanager does.
pub fn fingerprint(l: &Labels) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: &[u8]| {
        for x in b {
            h ^= *x as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for l in l.iter() {
        eat(l.name.as_bytes());
        eat(&[0xff]);
        eat(l.value.as_bytes());
        eat(&[0xff]);
    }
    h
}

impl Alert {
    pub fn fingerprint(&self) -> u64 {
        fingerprint(&self.labels)
    }

    pub fn resolved_at(&self, now: i64) -> bool {
        self.ends_at <= now
    }

    /// Merges a newer report of the same alert, as Alertmanager does: the earliest start is kept.
    fn merge(&mut self, newer: Alert) {
        let starts_at = self.starts_at.min(newer.starts_at);
        *self = newer;
        self.starts_at = starts_at;
    }
}

/// Alertmanager's order of alerts in a notification: by `job`, then `instance` (an alert with the
/// label first), then fewer labels first, then label by label.
pub fn alert_order(a: &Alert, b: &Alert) -> Ordering {
    for key in ["job", "instance"] {
        match (a.labels.get(key), b.labels.get(key)) {
            (None, None) => continue,
            (Some(_), None) => return Ordering::Less,
            (None, Some(_)) => return Ordering::Greater,
            (Some(x), Some(y)) if x != y => return x.cmp(y),
            _ => continue,
        }
    }
    let (la, lb) = (a.labels.len(), b.labels.len());
    if la != lb {
        return la.cmp(&lb);
    }
    let names: BTreeSet<&str> = a
        .labels
        .iter()
        .chain(b.labels.iter())
        .map(|l| l.name)
        .collect();
    for n in names {
        match (a.labels.get(n), b.labels.get(n)) {
            (None, _) => return Ordering::Less,
            (_, None) => return Ordering::Greater,
            (Some(x), Some(y)) if x != y => return x.cmp(y),
            _ => {}
        }
    }
    Ordering::Equal
}

/// A group flush handed to delivery: the group's alerts at `at`, muted ones removed, sorted.
#[derive(Clone, Debug, PartialEq)]
pub struct Flush {
    pub receiver: String,
    /// Unique id of the group (route position + group labels): the notification log's key.
    pub group_id: String,
    /// Alertmanager's group key (`{}/{team="a"}:{alertname="X"}`), shown in payloads and hashed
    /// into PagerDuty's dedup key and OpsGenie's alias.
    pub group_key: String,
    pub group_labels: Labels,
    pub alerts: Vec<Alert>,
    pub repeat_interval_ms: i64,
    /// When delivery should give up retrying: the group's next flush, at least 10 s away.
    pub deadline: i64,
    /// ms
    pub at: i64,
    /// The resolved alerts of the group at flush time with their `updated_at`, deleted once the
    /// flush succeeded everywhere (unless updated meanwhile).
    resolved: Vec<(u64, i64)>,
}

impl Flush {
    pub fn firing_set(&self) -> BTreeSet<u64> {
        self.alerts
            .iter()
            .filter(|a| !a.resolved_at(self.at))
            .map(|a| a.fingerprint())
            .collect()
    }

    pub fn resolved_set(&self) -> BTreeSet<u64> {
        self.alerts
            .iter()
            .filter(|a| a.resolved_at(self.at))
            .map(|a| a.fingerprint())
            .collect()
    }
}

/// What was last sent for a group to one integration (Alertmanager's notification log entry).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LogEntry {
    pub firing: BTreeSet<u64>,
    pub resolved: BTreeSet<u64>,
    /// ms
    pub at: i64,
    /// ms; the entry is forgotten after this (2 × repeat_interval, as Alertmanager keeps it).
    #[serde(default)]
    pub expires: i64,
}

/// `(group id, receiver, integration)`, e.g. `("{}:{alertname=\"X\"}", "pager", "pagerduty[0]")`.
pub type LogKey = (String, String, String);

/// Alertmanager's DedupStage: whether an integration must be told about this flush.
pub fn needs_update(entry: Option<&LogEntry>, f: &Flush, send_resolved: bool) -> bool {
    let firing = f.firing_set();
    let Some(e) = entry else {
        return !firing.is_empty();
    };
    if !firing.is_subset(&e.firing) {
        return true;
    }
    if firing.is_empty() {
        // Everything resolved: tell those who were told it fired (even without send_resolved,
        // so that the log forgets the firing alerts).
        return !e.firing.is_empty();
    }
    if send_resolved && !f.resolved_set().is_subset(&e.resolved) {
        return true;
    }
    e.at + f.repeat_interval_ms <= f.at
}

struct Group {
    route: Route,
    labels: Labels,
    key: String,
    alerts: HashMap<u64, Alert>,
    /// Next flush time (ms).
    next: i64,
    flushed: bool,
    /// A delivery of this group is in progress.
    busy: bool,
}

/// The dispatcher: routing tree, alert groups, notification log.
pub struct Dispatcher {
    root: Route,
    groups: BTreeMap<String, Group>,
    log: HashMap<LogKey, LogEntry>,
    /// Group flushes so far (with or without a notification), for metrics and tests.
    pub flushes: u64,
}

/// The labels an alert is grouped by on `route`.
fn group_labels(route: &Route, labels: &Labels) -> Labels {
    match &route.group_by {
        None => labels.clone(),
        Some(names) => {
            let mut b = Labels::empty().to_builder();
            for n in names {
                if let Some(v) = labels.get(n) {
                    b.set(n.clone(), v.to_string());
                }
            }
            b.build()
        }
    }
}

/// Go's `%q` of a string (Alertmanager prints label values of group keys so).
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Alertmanager's `LabelSet.String()`: `name="value"` items sorted as text, joined by `", "`.
pub fn label_set_string(l: &Labels) -> String {
    let mut items: Vec<String> = l
        .iter()
        .map(|l| format!("{}={}", l.name, go_quote(l.value)))
        .collect();
    items.sort();
    format!("{{{}}}", items.join(", "))
}

impl Dispatcher {
    pub fn new(root: Route) -> Self {
        Dispatcher {
            root,
            groups: BTreeMap::new(),
            log: HashMap::new(),
            flushes: 0,
        }
    }

    /// Restores notification-log entries (after a restart) so nothing is sent twice.
    pub fn restore_log(&mut self, entries: impl IntoIterator<Item = (LogKey, LogEntry)>) {
        self.log.extend(entries);
    }

    /// The notification log, to persist.
    pub fn log(&self) -> &HashMap<LogKey, LogEntry> {
        &self.log
    }

    pub fn log_entry(&self, k: &LogKey) -> Option<&LogEntry> {
        self.log.get(k)
    }

    /// Adds or updates an alert at `now`.
    pub fn insert(&mut self, alert: Alert, now: i64) {
        let labels = alert.labels.clone();
        let get = |n: &str| labels.get(n);
        let routes: Vec<Route> = self.root.matching(&get).into_iter().cloned().collect();
        for route in routes {
            let gl = group_labels(&route, &alert.labels);
            let id = format!("{}:{}", route.id, label_set_string(&gl));
            let group = self.groups.entry(id).or_insert_with(|| Group {
                next: now + route.group_wait.as_millis() as i64,
                key: format!("{}:{}", route.key, label_set_string(&gl)),
                route: route.clone(),
                labels: gl,
                alerts: HashMap::new(),
                flushed: false,
                busy: false,
            });
            // An alert that started more than group_wait ago does not make a new group wait.
            if !group.flushed && alert.starts_at + (group.route.group_wait.as_millis() as i64) < now
            {
                group.next = group.next.min(now);
            }
            match group.alerts.get_mut(&alert.fingerprint()) {
                Some(a) => a.merge(alert.clone()),
                None => {
                    group.alerts.insert(alert.fingerprint(), alert.clone());
                }
            }
        }
    }

    /// Every alert currently held, once each, with its receivers.
    pub fn alerts(&self) -> Vec<(Alert, Vec<String>)> {
        let mut by_fp: BTreeMap<u64, (Alert, Vec<String>)> = BTreeMap::new();
        for g in self.groups.values() {
            for (fp, a) in &g.alerts {
                let e = by_fp.entry(*fp).or_insert_with(|| (a.clone(), Vec::new()));
                if !e.1.contains(&g.route.receiver) {
                    e.1.push(g.route.receiver.clone());
                }
            }
        }
        by_fp.into_values().collect()
    }

    /// Groups with their receiver and alerts, for `/api/v2/alerts/groups`.
    pub fn groups(&self) -> Vec<(Labels, String, Vec<Alert>)> {
        self.groups
            .values()
            .map(|g| {
                let mut a: Vec<Alert> = g.alerts.values().cloned().collect();
                a.sort_by(alert_order);
                (g.labels.clone(), g.route.receiver.clone(), a)
            })
            .collect()
    }

    /// Flushes every group due at `now`. `keep(alert)` is false for silenced or inhibited alerts;
    /// `muted(route)` is true while a mute time interval holds the route (or none of its active
    /// intervals does). Returns what to deliver; report the outcome with [`Dispatcher::sent`] and
    /// [`Dispatcher::finished`].
    pub fn tick(
        &mut self,
        now: i64,
        keep: &dyn Fn(&Alert) -> bool,
        muted: &dyn Fn(&Route) -> bool,
    ) -> Vec<Flush> {
        let mut out = Vec::new();
        let mut empty = Vec::new();
        for (id, g) in self.groups.iter_mut() {
            if g.busy || g.next > now {
                continue;
            }
            if g.alerts.is_empty() {
                empty.push(id.clone());
                continue;
            }
            g.flushed = true;
            self.flushes += 1;
            let interval = g.route.group_interval.as_millis() as i64;
            g.next = now + interval;
            let resolved: Vec<(u64, i64)> = g
                .alerts
                .iter()
                .filter(|(_, a)| a.resolved_at(now))
                .map(|(fp, a)| (*fp, a.updated_at))
                .collect();
            let mut alerts: Vec<Alert> = if muted(&g.route) {
                Vec::new()
            } else {
                g.alerts.values().filter(|a| keep(a)).cloned().collect()
            };
            if alerts.is_empty() {
                // Everything muted: nothing is sent, and the flush counts as a success (resolved
                // alerts leave the group), as in Alertmanager's pipeline.
                g.alerts
                    .retain(|fp, a| !resolved.iter().any(|(f, u)| f == fp && *u == a.updated_at));
                continue;
            }
            alerts.sort_by(alert_order);
            g.busy = true;
            out.push(Flush {
                receiver: g.route.receiver.clone(),
                group_id: id.clone(),
                group_key: g.key.clone(),
                group_labels: g.labels.clone(),
                alerts,
                repeat_interval_ms: g.route.repeat_interval.as_millis() as i64,
                deadline: now + interval.max(10_000),
                at: now,
                resolved,
            });
        }
        for k in empty {
            self.groups.remove(&k);
        }
        out
    }

    /// Records that `integration` of the flush's receiver was told about `f` (or needed not be).
    pub fn sent(&mut self, f: &Flush, integration: &str) {
        let expires = f.at + (2 * f.repeat_interval_ms).min(super::silence::RETENTION_MS);
        self.log.insert(
            (
                f.group_id.clone(),
                f.receiver.clone(),
                integration.to_string(),
            ),
            LogEntry {
                firing: f.firing_set(),
                resolved: f.resolved_set(),
                at: f.at,
                expires,
            },
        );
    }

    /// Ends the delivery of `f`. When every integration succeeded, the resolved alerts it carried
    /// leave the group (unless updated since); otherwise they stay for the next flush.
    pub fn finished(&mut self, f: &Flush, all_ok: bool) {
        let Some(g) = self.groups.get_mut(&f.group_id) else {
            return;
        };
        g.busy = false;
        if all_ok {
            g.alerts.retain(|fp, a| {
                !f.resolved
                    .iter()
                    .any(|(x, u)| x == fp && *u == a.updated_at)
            });
        }
    }

    /// Forgets log entries past their expiry.
    pub fn expire_log(&mut self, now: i64) {
        self.log.retain(|_, e| e.expires == 0 || e.expires > now);
    }
}

#[cfg(test)]
mod tests;
