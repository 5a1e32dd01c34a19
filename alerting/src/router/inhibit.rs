//! Inhibition rules: a firing source alert mutes target alerts that agree with it on the `equal`
//! labels, as Alertmanager's inhibitor does.

use vigil_model::Labels;

use super::config::InhibitRuleConfig;
use super::dispatch::Alert;
use super::matchers::{MatchType, Matcher};

/// A resolved inhibition rule.
#[derive(Clone, Debug)]
pub struct InhibitRule {
    pub source: Vec<Matcher>,
    pub target: Vec<Matcher>,
    pub equal: Vec<String>,
}

fn all(ms: &[Matcher], l: &Labels) -> bool {
    ms.iter().all(|m| m.matches(l.get(&m.name).unwrap_or("")))
}

impl InhibitRule {
    pub fn from_config(c: &InhibitRuleConfig) -> Result<InhibitRule, String> {
        let mut source = c.source_matchers.0.clone();
        let mut target = c.target_matchers.0.clone();
        for (k, v) in &c.source_match {
            source.push(Matcher::new(MatchType::Equal, k, v)?);
        }
        for (k, v) in &c.source_match_re {
            source.push(Matcher::new(MatchType::Regexp, k, v)?);
        }
        for (k, v) in &c.target_match {
            target.push(Matcher::new(MatchType::Equal, k, v)?);
        }
        for (k, v) in &c.target_match_re {
            target.push(Matcher::new(MatchType::Regexp, k, v)?);
        }
        Ok(InhibitRule {
            source,
            target,
            equal: c.equal.clone(),
        })
    }
}

/// Whether `alert` is muted at `now` by a firing alert among `alerts` under `rules`.
pub fn inhibited(rules: &[InhibitRule], alert: &Alert, alerts: &[Alert], now: i64) -> bool {
    rules.iter().any(|r| {
        all(&r.target, &alert.labels)
            && alerts.iter().any(|s| {
                !s.resolved_at(now)
                    && s.fingerprint() != alert.fingerprint()
                    && all(&r.source, &s.labels)
                    // An alert that matches both sides does not inhibit others that also match both.
                    && !(all(&r.target, &s.labels) && all(&r.source, &alert.labels))
                    && r.equal.iter().all(|n| s.labels.get(n).unwrap_or("") == alert.labels.get(n).unwrap_or(""))
            })
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::router::AlertmanagerConfig;

    fn alert(pairs: &[(&str, &str)], end: i64) -> Alert {
        Alert {
            labels: Labels::from_pairs(pairs.iter().copied()),
            annotations: BTreeMap::new(),
            starts_at: 0,
            ends_at: end,
            generator_url: String::new(),
            updated_at: 0,
        }
    }

    #[test]
    fn critical_inhibits_warning_of_the_same_alertname() {
        let c = AlertmanagerConfig::parse(
            "route: {receiver: a}\nreceivers: [{name: a}]\ninhibit_rules:\n  - source_matchers: ['severity=\"critical\"']\n    target_matchers: ['severity=\"warning\"']\n    equal: ['alertname']\n",
        )
        .unwrap();
        let rules: Vec<InhibitRule> = c
            .inhibit_rules
            .iter()
            .map(|r| InhibitRule::from_config(r).unwrap())
            .collect();
        let crit = alert(&[("alertname", "Disk"), ("severity", "critical")], 1000);
        let warn = alert(&[("alertname", "Disk"), ("severity", "warning")], 1000);
        let other = alert(&[("alertname", "Cpu"), ("severity", "warning")], 1000);
        let all = vec![crit.clone(), warn.clone(), other.clone()];
        assert!(inhibited(&rules, &warn, &all, 10));
        assert!(
            !inhibited(&rules, &other, &all, 10),
            "equal: alertname differs"
        );
        assert!(!inhibited(&rules, &crit, &all, 10));
        assert!(
            !inhibited(&rules, &warn, &all, 1000),
            "a resolved source inhibits nothing"
        );
    }
}
