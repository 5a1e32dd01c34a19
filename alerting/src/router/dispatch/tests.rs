use super::*;
use crate::router::AlertmanagerConfig;

const S: i64 = 1000;
const FAR: i64 = i64::MAX / 2;

fn dispatcher(yaml: &str) -> Dispatcher {
    let c = AlertmanagerConfig::parse(yaml).unwrap();
    Dispatcher::new(c.root_route().unwrap())
}

fn alert(name: &str, instance: &str, start: i64, end: i64) -> Alert {
    Alert {
        labels: Labels::from_pairs([("alertname", name), ("instance", instance)]),
        annotations: BTreeMap::new(),
        starts_at: start,
        ends_at: end,
        generator_url: String::new(),
        updated_at: start.max(0),
    }
}

/// One delivery per integration name in `integrations` (send_resolved on), `ok(t, name)` saying
/// whether it succeeds. Returns `(second, integration, firing instances, resolved instances)` for
/// every notification actually sent.
type Sent = (i64, String, Vec<String>, Vec<String>);

fn run_with(
    d: &mut Dispatcher,
    from: i64,
    to: i64,
    integrations: &[&str],
    ok: &dyn Fn(i64, &str) -> bool,
    keep: &dyn Fn(&Alert) -> bool,
) -> Vec<Sent> {
    let mut out = Vec::new();
    let mut t = from;
    while t <= to {
        for f in d.tick(t, keep, &|_| false) {
            let mut all_ok = true;
            for i in integrations {
                let key = (f.group_id.clone(), f.receiver.clone(), i.to_string());
                if !needs_update(d.log_entry(&key), &f, true) {
                    continue;
                }
                if ok(t, i) {
                    let inst = |resolved: bool| {
                        f.alerts
                            .iter()
                            .filter(|a| a.resolved_at(f.at) == resolved)
                            .map(|a| a.labels.get("instance").unwrap_or("").to_string())
                            .collect()
                    };
                    out.push((t / S, i.to_string(), inst(false), inst(true)));
                    d.sent(&f, i);
                } else {
                    all_ok = false;
                }
            }
            d.finished(&f, all_ok);
        }
        t += S;
    }
    out
}

fn run(d: &mut Dispatcher, from: i64, to: i64) -> Vec<Sent> {
    run_with(d, from, to, &["webhook[0]"], &|_, _| true, &|_| true)
}

const CFG: &str = "route:\n  receiver: r\n  group_by: [alertname]\n  group_wait: 30s\n  group_interval: 5m\n  repeat_interval: 1h\nreceivers: [{name: r}]\n";

fn sent(t: i64, firing: &[&str], resolved: &[&str]) -> Sent {
    (
        t,
        "webhook[0]".into(),
        firing.iter().map(|s| s.to_string()).collect(),
        resolved.iter().map(|s| s.to_string()).collect(),
    )
}

#[test]
fn group_wait_then_group_interval_then_repeat() {
    let mut d = dispatcher(CFG);
    d.insert(alert("A", "1", 0, FAR), 0);
    assert_eq!(run(&mut d, 0, 29 * S), vec![]);
    assert_eq!(run(&mut d, 30 * S, 30 * S), vec![sent(30, &["1"], &[])]);
    // A second alert of the same group joins: sent at the next group_interval (30s + 5m).
    d.insert(alert("A", "2", 40 * S, FAR), 40 * S);
    assert_eq!(run(&mut d, 31 * S, 329 * S), vec![]);
    assert_eq!(
        run(&mut d, 330 * S, 330 * S),
        vec![sent(330, &["1", "2"], &[])]
    );
    // Nothing changes: nothing until repeat_interval (1h after the last one).
    assert_eq!(run(&mut d, 331 * S, 330 * S + 3600 * S - S), vec![]);
    let repeat = run(&mut d, 330 * S + 3600 * S, 330 * S + 3600 * S + 300 * S);
    assert_eq!(repeat.len(), 1, "{repeat:?}");
}

#[test]
fn resolution_then_group_forgotten() {
    let mut d = dispatcher(CFG);
    d.insert(alert("A", "1", 0, FAR), 0);
    d.insert(alert("B", "1", 0, FAR), 0);
    assert_eq!(
        run(&mut d, 0, 30 * S).len(),
        2,
        "one notification per group"
    );
    d.insert(alert("A", "1", 0, 100 * S), 100 * S);
    assert_eq!(run(&mut d, 31 * S, 330 * S), vec![sent(330, &[], &["1"])]);
    assert!(
        run(&mut d, 331 * S, 5000 * S)
            .iter()
            .all(|x| !x.3.is_empty() || x.2 == ["1"])
    );
    assert_eq!(d.groups().len(), 1, "the resolved group is gone");
}

#[test]
fn old_alert_does_not_wait_and_resolved_only_groups_are_quiet() {
    let mut d = dispatcher(CFG);
    d.insert(alert("A", "1", -600 * S, FAR), 0);
    assert_eq!(run(&mut d, 0, 0).len(), 1);
    // Fired and resolved before the new group's first flush: never sent.
    d.insert(alert("C", "1", 10 * S, 20 * S), 10 * S);
    assert!(run(&mut d, 10 * S, 100 * S).is_empty());
}

#[test]
fn routes_and_group_by_all() {
    let mut d = dispatcher(
        "route:\n  receiver: a\n  group_wait: 0s\n  routes:\n    - matchers: ['instance=\"1\"']\n      receiver: b\n      group_by: ['...']\n      continue: true\n    - matchers: ['alertname=\"A\"']\n      receiver: c\nreceivers: [{name: a}, {name: b}, {name: c}]\n",
    );
    d.insert(alert("A", "1", 0, FAR), 0);
    d.insert(alert("A", "2", 0, FAR), 0);
    let mut got: Vec<(String, usize)> = d
        .tick(0, &|_| true, &|_| false)
        .into_iter()
        .map(|f| (f.receiver.clone(), f.alerts.len()))
        .collect();
    got.sort();
    assert_eq!(got, vec![("b".into(), 1), ("c".into(), 2)]);
}

#[test]
fn group_keys_are_alertmanagers() {
    let mut d = dispatcher(
        "route:\n  receiver: a\n  group_by: [alertname]\n  group_wait: 0s\n  routes:\n    - matchers: ['team=\"a\"']\n      receiver: a\n    - match_re: {severity: 'critical|page'}\n      receiver: a\nreceivers: [{name: a}]\n",
    );
    let mut a = alert("HighCPU", "1", 0, FAR);
    a.labels = Labels::from_pairs([("alertname", "HighCPU"), ("severity", "page")]);
    d.insert(a, 0);
    let f = d.tick(0, &|_| true, &|_| false);
    assert_eq!(
        f[0].group_key,
        r#"{}/{severity=~"^(?:critical|page)$"}:{alertname="HighCPU"}"#
    );
    assert_eq!(
        fingerprint(&Labels::from_pairs([("alertname", "HighCPU")])),
        0xb5160f6bd9249a48
    );
}

#[test]
fn partial_failure_repeats_only_the_failed_integration() {
    let cfg = "route:\n  receiver: r\n  group_wait: 0s\n  group_interval: 10s\n  repeat_interval: 1h\nreceivers: [{name: r}]\n";
    let mut d = dispatcher(cfg);
    d.insert(alert("A", "1", 0, FAR), 0);
    // slack[0] fails for the first 25 s, webhook[0] always works.
    let got = run_with(
        &mut d,
        0,
        60 * S,
        &["webhook[0]", "slack[0]"],
        &|t, i| i != "slack[0]" || t >= 25 * S,
        &|_| true,
    );
    let names: Vec<(i64, String)> = got.iter().map(|x| (x.0, x.1.clone())).collect();
    assert_eq!(
        names,
        vec![(0, "webhook[0]".into()), (30, "slack[0]".into())],
        "the webhook is paged once; slack is retried at each flush until it works"
    );
}

#[test]
fn a_resolve_survives_an_outage_longer_than_any_retry() {
    let cfg = "route:\n  receiver: r\n  group_wait: 0s\n  group_interval: 10s\n  repeat_interval: 1h\nreceivers: [{name: r}]\n";
    let mut d = dispatcher(cfg);
    d.insert(alert("A", "1", 0, FAR), 0);
    assert_eq!(run(&mut d, 0, 0).len(), 1);
    // Resolves at 5 s; the receiver is down from 1 s to 200 s.
    d.insert(alert("A", "1", 0, 5 * S), 5 * S);
    let got = run_with(
        &mut d,
        S,
        300 * S,
        &["webhook[0]"],
        &|t, _| t > 200 * S,
        &|_| true,
    );
    assert_eq!(
        got,
        vec![sent(210, &[], &["1"])],
        "the resolve arrives after the outage"
    );
    assert!(d.groups().is_empty());
}

#[test]
fn silencing_after_a_page_sends_nothing() {
    let cfg = "route:\n  receiver: r\n  group_wait: 0s\n  group_interval: 10s\n  repeat_interval: 1h\nreceivers: [{name: r}]\n";
    let mut d = dispatcher(cfg);
    d.insert(alert("A", "1", 0, FAR), 0);
    assert_eq!(run(&mut d, 0, 0).len(), 1);
    // Silenced from then on, and resolved at 50 s: no "resolved" notification, no empty one.
    d.insert(alert("A", "1", 0, 50 * S), 50 * S);
    let got = run_with(&mut d, S, 120 * S, &["webhook[0]"], &|_, _| true, &|_| {
        false
    });
    assert!(got.is_empty(), "{got:?}");
    assert!(
        d.groups().is_empty(),
        "the muted resolved alert left the group"
    );
}

#[test]
fn time_muted_routes_hold_notifications_until_unmuted() {
    let c = AlertmanagerConfig::parse(
        "route:\n  receiver: r\n  group_wait: 0s\n  group_interval: 1s\nreceivers: [{name: r}]\n",
    )
    .unwrap();
    let mut d = Dispatcher::new(c.root_route().unwrap());
    d.insert(alert("A", "1", 0, FAR), 0);
    for t in 0..5 {
        assert!(
            d.tick(t * S, &|_| true, &|_| true).is_empty(),
            "muted at {t}s"
        );
    }
    assert_eq!(
        d.tick(5 * S, &|_| true, &|_| false).len(),
        1,
        "sent once the mute ends"
    );
}

#[test]
fn busy_groups_are_not_flushed_twice() {
    let cfg =
        "route:\n  receiver: r\n  group_wait: 0s\n  group_interval: 1s\nreceivers: [{name: r}]\n";
    let mut d = dispatcher(cfg);
    d.insert(alert("A", "1", 0, FAR), 0);
    let f = d.tick(0, &|_| true, &|_| false);
    assert_eq!(f.len(), 1);
    assert!(
        d.tick(5 * S, &|_| true, &|_| false).is_empty(),
        "still delivering"
    );
    d.finished(&f[0], false);
    assert_eq!(d.tick(6 * S, &|_| true, &|_| false).len(), 1);
}
