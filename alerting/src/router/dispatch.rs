//! Grouping and timing, as Alertmanager's dispatcher does it: alerts go to every matching route, are
//! grouped by the route's `group_by` labels, a new group waits `group_wait`, later changes go out at
//! `group_interval`, and an unchanged group is re-sent after `repeat_interval`.
//!
//! Time is an argument (`now`, ms) rather than a clock the dispatcher reads: the server calls
//! [`Dispatcher::tick`] with the wall clock, tests with whatever time they need.

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

impl Alert {
    pub fn fingerprint(&self) -> u64 {
        self.labels.stable_hash()
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

/// A notification for one receiver about one alert group.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    pub receiver: String,
    /// `route id + group labels`, stable across restarts (the notification log's key).
    pub group_key: String,
    pub group_labels: Labels,
    /// Firing and resolved alerts of the group at flush time, sorted by labels.
    pub alerts: Vec<Alert>,
    /// When the notification was decided (ms).
    pub at: i64,
}

impl Notification {
    pub fn firing(&self) -> impl Iterator<Item = &Alert> {
        self.alerts.iter().filter(move |a| !a.resolved_at(self.at))
    }
}

/// What was last sent for a group to a receiver (Alertmanager's notification log entry).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LogEntry {
    pub firing: BTreeSet<u64>,
    pub resolved: BTreeSet<u64>,
    /// ms
    pub at: i64,
}

struct Group {
    route: Route,
    labels: Labels,
    alerts: HashMap<u64, Alert>,
    /// Next flush time (ms).
    next: i64,
    flushed: bool,
}

/// The dispatcher: routing tree, alert groups, notification log.
pub struct Dispatcher {
    root: Route,
    groups: BTreeMap<String, Group>,
    log: HashMap<(String, String), LogEntry>,
    /// Group flushes so far (with or without a notification), for metrics and tests.
    pub flushes: u64,
    send_resolved: Box<dyn Fn(&str) -> bool + Send + Sync>,
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

impl Dispatcher {
    /// `send_resolved(receiver)` says whether a receiver wants resolved notifications.
    pub fn new(root: Route, send_resolved: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        Dispatcher {
            root,
            groups: BTreeMap::new(),
            log: HashMap::new(),
            flushes: 0,
            send_resolved: Box::new(send_resolved),
        }
    }

    /// Restores notification-log entries (after a restart) so nothing is sent twice.
    pub fn restore_log(&mut self, entries: impl IntoIterator<Item = ((String, String), LogEntry)>) {
        self.log.extend(entries);
    }

    /// The notification log, to persist.
    pub fn log(&self) -> &HashMap<(String, String), LogEntry> {
        &self.log
    }

    /// Adds or updates an alert at `now`.
    pub fn insert(&mut self, alert: Alert, now: i64) {
        let labels = alert.labels.clone();
        let get = |n: &str| labels.get(n);
        let routes: Vec<Route> = self.root.matching(&get).into_iter().cloned().collect();
        for route in routes {
            let gl = group_labels(&route, &alert.labels);
            let key = format!("{}:{}", route.id, gl);
            let group = self.groups.entry(key).or_insert_with(|| Group {
                next: now + route.group_wait.as_millis() as i64,
                route: route.clone(),
                labels: gl,
                alerts: HashMap::new(),
                flushed: false,
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

    /// Every alert currently held, once each.
    pub fn alerts(&self) -> Vec<(Alert, Vec<String>)> {
        let mut by_fp: BTreeMap<u64, (Alert, Vec<String>)> = BTreeMap::new();
        for g in self.groups.values() {
            for (fp, a) in &g.alerts {
                by_fp
                    .entry(*fp)
                    .or_insert_with(|| (a.clone(), Vec::new()))
                    .1
                    .push(g.route.receiver.clone());
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
                a.sort_by(|x, y| x.labels.cmp(&y.labels));
                (g.labels.clone(), g.route.receiver.clone(), a)
            })
            .collect()
    }

    /// Flushes every group due at `now`; `keep(alert)` filters out silenced or inhibited alerts.
    /// Returns the notifications to send; the caller reports success with [`Dispatcher::sent`].
    pub fn tick(&mut self, now: i64, keep: &dyn Fn(&Alert) -> bool) -> Vec<Notification> {
        self.tick_with(now, keep, &|_, _| false)
    }

    /// [`Dispatcher::tick`] with time-based muting: `muted(route, now)` true (a mute time interval is
    /// active, or no active time interval is) holds the route's notifications back; the alerts stay.
    pub fn tick_with(
        &mut self,
        now: i64,
        keep: &dyn Fn(&Alert) -> bool,
        muted: &dyn Fn(&Route, i64) -> bool,
    ) -> Vec<Notification> {
        let mut out = Vec::new();
        let mut empty = Vec::new();
        for (key, g) in self.groups.iter_mut() {
            if g.next > now {
                continue;
            }
            g.flushed = true;
            self.flushes += 1;
            g.next = now + g.route.group_interval.as_millis() as i64;
            if muted(&g.route, now) {
                continue;
            }
            // Resolved alerts that were announced (or never needed announcing) leave the group.
            let mut alerts: Vec<Alert> = g.alerts.values().filter(|a| keep(a)).cloned().collect();
            alerts.sort_by(|x, y| x.labels.cmp(&y.labels));
            if g.alerts.is_empty() {
                empty.push(key.clone());
                continue;
            }
            let firing: BTreeSet<u64> = alerts
                .iter()
                .filter(|a| !a.resolved_at(now))
                .map(|a| a.fingerprint())
                .collect();
            let resolved: BTreeSet<u64> = alerts
                .iter()
                .filter(|a| a.resolved_at(now))
                .map(|a| a.fingerprint())
                .collect();
            let receiver = g.route.receiver.clone();
            let send_resolved = (self.send_resolved)(&receiver);
            let entry = self.log.get(&(receiver.clone(), key.clone()));
            let needs = match entry {
                None => !firing.is_empty(),
                Some(e) => {
                    if !firing.is_subset(&e.firing) {
                        true
                    } else if firing.is_empty() {
                        !e.firing.is_empty()
                    } else if send_resolved && !resolved.is_subset(&e.resolved) {
                        true
                    } else {
                        e.at + (g.route.repeat_interval.as_millis() as i64) <= now
                    }
                }
            };
            if needs {
                let alerts = if send_resolved {
                    alerts
                } else {
                    alerts.into_iter().filter(|a| !a.resolved_at(now)).collect()
                };
                out.push(Notification {
                    receiver,
                    group_key: key.clone(),
                    group_labels: g.labels.clone(),
                    alerts,
                    at: now,
                });
            }
            // Resolved alerts are dropped once this flush has considered them.
            g.alerts.retain(|_, a| !a.resolved_at(now));
            if g.alerts.is_empty() && !needs {
                empty.push(key.clone());
            }
        }
        for k in empty {
            self.groups.remove(&k);
        }
        out
    }

    /// Records that `n` was delivered (the notification log entry that dedups later flushes).
    pub fn sent(&mut self, n: &Notification) {
        let firing = n
            .alerts
            .iter()
            .filter(|a| !a.resolved_at(n.at))
            .map(|a| a.fingerprint())
            .collect();
        let resolved = n
            .alerts
            .iter()
            .filter(|a| a.resolved_at(n.at))
            .map(|a| a.fingerprint())
            .collect();
        self.log.insert(
            (n.receiver.clone(), n.group_key.clone()),
            LogEntry {
                firing,
                resolved,
                at: n.at,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::AlertmanagerConfig;

    const S: i64 = 1000;

    fn dispatcher(yaml: &str) -> Dispatcher {
        let c = AlertmanagerConfig::parse(yaml).unwrap();
        Dispatcher::new(c.root_route().unwrap(), |_| true)
    }

    fn alert(name: &str, instance: &str, start: i64, end: i64) -> Alert {
        Alert {
            labels: Labels::from_pairs([("alertname", name), ("instance", instance)]),
            annotations: BTreeMap::new(),
            starts_at: start,
            ends_at: end,
            generator_url: String::new(),
            updated_at: start,
        }
    }

    const FAR: i64 = i64::MAX / 2;

    /// Runs the dispatcher every second from `from` to `to`, delivering everything; returns
    /// `(time, receiver, firing instances)` per notification.
    fn run(d: &mut Dispatcher, from: i64, to: i64) -> Vec<(i64, String, Vec<String>)> {
        let mut out = Vec::new();
        let mut t = from;
        while t <= to {
            for n in d.tick(t, &|_| true) {
                let inst = n
                    .firing()
                    .map(|a| a.labels.get("instance").unwrap_or("").to_string())
                    .collect();
                out.push((t / S, n.receiver.clone(), inst));
                d.sent(&n);
            }
            t += S;
        }
        out
    }

    const CFG: &str = "route:\n  receiver: r\n  group_by: [alertname]\n  group_wait: 30s\n  group_interval: 5m\n  repeat_interval: 1h\nreceivers: [{name: r}]\n";

    #[test]
    fn group_wait_then_group_interval_then_repeat() {
        let mut d = dispatcher(CFG);
        d.insert(alert("A", "1", 0, FAR), 0);
        // group_wait: the first notification at 30s, not before.
        assert_eq!(run(&mut d, 0, 29 * S), vec![]);
        assert_eq!(
            run(&mut d, 30 * S, 30 * S),
            vec![(30, "r".into(), vec!["1".into()])]
        );
        // A second alert of the same group joins: sent at the next group_interval (30s + 5m).
        d.insert(alert("A", "2", 40 * S, FAR), 40 * S);
        assert_eq!(run(&mut d, 31 * S, 329 * S), vec![]);
        assert_eq!(
            run(&mut d, 330 * S, 330 * S),
            vec![(330, "r".into(), vec!["1".into(), "2".into()])]
        );
        // Nothing changes: no notification until repeat_interval (1h after the last one).
        assert_eq!(run(&mut d, 331 * S, 330 * S + 3600 * S - S), vec![]);
        let repeat = run(&mut d, 330 * S + 3600 * S, 330 * S + 3600 * S + 300 * S);
        assert_eq!(repeat.len(), 1, "{repeat:?}");
        assert!(
            repeat[0].0 >= 3930 && repeat[0].0 <= 3930 + 300,
            "{repeat:?}"
        );
    }

    #[test]
    fn separate_groups_and_resolution() {
        let mut d = dispatcher(CFG);
        d.insert(alert("A", "1", 0, FAR), 0);
        d.insert(alert("B", "1", 0, FAR), 0);
        let first = run(&mut d, 0, 30 * S);
        assert_eq!(first.len(), 2, "one notification per group: {first:?}");
        // A resolves: with send_resolved, the next group_interval flush announces it.
        d.insert(alert("A", "1", 0, 100 * S), 100 * S);
        let n = run(&mut d, 31 * S, 330 * S);
        assert_eq!(
            n,
            vec![(330, "r".into(), vec![])],
            "resolved notification for A"
        );
        // Resolved and announced: the group is gone; nothing more is sent.
        assert_eq!(
            run(&mut d, 331 * S, 5000 * S)
                .iter()
                .filter(|x| x.2.is_empty())
                .count(),
            0
        );
    }

    #[test]
    fn old_alert_does_not_wait_and_resolved_only_groups_are_quiet() {
        let mut d = dispatcher(CFG);
        // Started long ago: the new group flushes at once.
        d.insert(alert("A", "1", -600 * S, FAR), 0);
        assert_eq!(run(&mut d, 0, 0).len(), 1);
        // An alert that fired and resolved between flushes of a new group is never sent.
        d.insert(alert("C", "1", 10 * S, 20 * S), 10 * S);
        assert!(run(&mut d, 10 * S, 100 * S).iter().all(|x| x.1 != "C"));
    }

    #[test]
    fn routes_and_group_by_all() {
        let mut d = dispatcher(
            "route:\n  receiver: a\n  group_wait: 0s\n  routes:\n    - matchers: ['instance=\"1\"']\n      receiver: b\n      group_by: ['...']\n      continue: true\n    - matchers: ['alertname=\"A\"']\n      receiver: c\nreceivers: [{name: a}, {name: b}, {name: c}]\n",
        );
        d.insert(alert("A", "1", 0, FAR), 0);
        d.insert(alert("A", "2", 0, FAR), 0);
        let mut n = run(&mut d, 0, 0);
        n.sort();
        assert_eq!(
            n,
            vec![
                (0, "b".into(), vec!["1".into()]),
                (0, "c".into(), vec!["1".into(), "2".into()])
            ],
            "instance 1 to b (its own group, continue) and c; instance 2 only to c"
        );
    }
}

#[cfg(test)]
mod time_tests {
    use super::*;
    use crate::router::AlertmanagerConfig;

    #[test]
    fn muted_routes_hold_notifications_until_unmuted() {
        let c = AlertmanagerConfig::parse("route:\n  receiver: r\n  group_wait: 0s\n  group_interval: 1s\nreceivers: [{name: r}]\n").unwrap();
        let mut d = Dispatcher::new(c.root_route().unwrap(), |_| true);
        let a = Alert {
            labels: Labels::from_pairs([("alertname", "A")]),
            annotations: BTreeMap::new(),
            starts_at: 0,
            ends_at: i64::MAX / 2,
            generator_url: String::new(),
            updated_at: 0,
        };
        d.insert(a, 0);
        // Muted until t = 5 s.
        let muted = |_: &Route, now: i64| now < 5000;
        for t in 0..5 {
            assert!(
                d.tick_with(t * 1000, &|_| true, &muted).is_empty(),
                "muted at {t}s"
            );
        }
        let n = d.tick_with(5000, &|_| true, &muted);
        assert_eq!(n.len(), 1, "sent once the mute ends");
    }
}
