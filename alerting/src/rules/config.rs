//! Prometheus rule files: `groups[]` of recording and alerting rules, validated as `promtool check
//! rules` validates them, with line numbers in errors.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};
use vigil_model::{PromDuration, is_valid_label_name, is_valid_metric_name};

use super::template;

/// One rule file.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    #[serde(default)]
    pub groups: Vec<RuleGroupConfig>,
}

/// `groups[]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuleGroupConfig {
    pub name: String,
    /// Evaluation interval; `global.evaluation_interval` when absent.
    #[serde(default)]
    pub interval: Option<PromDuration>,
    /// Most series an alerting rule may produce or a recording rule may write (0 = no limit).
    #[serde(default)]
    pub limit: usize,
    /// Evaluate at `now - query_offset`, for data that arrives late.
    #[serde(default)]
    pub query_offset: Option<PromDuration>,
    /// Labels added to every rule's output.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
}

/// `rules[]`: a recording rule (`record`) or an alerting rule (`alert`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    pub expr: String,
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<PromDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_firing_for: Option<PromDuration>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A problem in a rule file, with the line it is on when known.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}{message}", line.map(|l| format!("line {l}: ")).unwrap_or_default())]
pub struct RuleFileError {
    pub line: Option<usize>,
    pub message: String,
}

impl RuleFile {
    /// Reads and validates a rule file.
    pub fn load(path: &Path) -> Result<RuleFile, RuleFileError> {
        let text = std::fs::read_to_string(path).map_err(|e| RuleFileError {
            line: None,
            message: format!("cannot read {}: {e}", path.display()),
        })?;
        RuleFile::parse(&text)
    }

    /// Parses and validates a rule file's text.
    pub fn parse(text: &str) -> Result<RuleFile, RuleFileError> {
        if text.trim().is_empty() {
            return Ok(RuleFile { groups: Vec::new() });
        }
        let f: RuleFile = serde_yaml_ng::from_str(text).map_err(|e| {
            let mut message = e.to_string();
            if let Some(i) = message.rfind(" at line ") {
                message.truncate(i);
            }
            RuleFileError {
                line: e.location().map(|l| l.line()),
                message,
            }
        })?;
        let mut names = HashSet::new();
        for (gi, g) in f.groups.iter().enumerate() {
            let gline = nth_line(text, "- name:", gi);
            let err = |line: Option<usize>, m: String| RuleFileError { line, message: m };
            if g.name.is_empty() {
                return Err(err(gline, "rule group name must not be empty".into()));
            }
            if !names.insert(g.name.as_str()) {
                return Err(err(
                    gline,
                    format!("{:?}: repeated in the same file", g.name),
                ));
            }
            if g.interval.is_some_and(|i| i.0.is_zero()) {
                return Err(err(
                    gline,
                    format!("group {:?}: interval must be greater than 0", g.name),
                ));
            }
            for (k, _) in g.labels.iter() {
                if !is_valid_label_name(k) {
                    return Err(err(
                        gline,
                        format!("group {:?}: invalid label name {k:?}", g.name),
                    ));
                }
            }
            for (ri, r) in g.rules.iter().enumerate() {
                let rline = rule_line(text, gline, ri);
                let what = r.record.as_deref().or(r.alert.as_deref()).unwrap_or("");
                let rerr = |m: String| {
                    err(
                        rline,
                        format!("group {:?}, rule {}, {what:?}: {m}", g.name, ri + 1),
                    )
                };
                match (&r.record, &r.alert) {
                    (Some(_), Some(_)) => {
                        return Err(rerr("only one of 'record' and 'alert' must be set".into()));
                    }
                    (None, None) => {
                        return Err(rerr("one of 'record' or 'alert' must be set".into()));
                    }
                    (Some(rec), None) => {
                        if !is_valid_metric_name(rec) {
                            return Err(rerr(format!("invalid recording rule name: {rec}")));
                        }
                        if !r.annotations.is_empty() {
                            return Err(rerr(
                                "invalid field 'annotations' in recording rule".into(),
                            ));
                        }
                        if r.for_.is_some() {
                            return Err(rerr("invalid field 'for' in recording rule".into()));
                        }
                        if r.keep_firing_for.is_some() {
                            return Err(rerr(
                                "invalid field 'keep_firing_for' in recording rule".into(),
                            ));
                        }
                    }
                    (None, Some(a)) => {
                        if !is_valid_label_name(a)
                            && !a
                                .chars()
                                .all(|c| c.is_alphanumeric() || c == '_' || c == ':')
                        {
                            return Err(rerr(format!("invalid alert name: {a}")));
                        }
                    }
                }
                if r.expr.trim().is_empty() {
                    return Err(rerr("field 'expr' must be set in rule".into()));
                }
                super::expr::parse(&r.expr)
                    .map_err(|e| rerr(format!("could not parse expression: {e}")))?;
                for (k, v) in &r.labels {
                    if !is_valid_label_name(k) || k == "__name__" {
                        return Err(rerr(format!("invalid label name: {k}")));
                    }
                    template::check(v).map_err(|e| rerr(format!("label {k:?}: {e}")))?;
                }
                for (k, v) in &r.annotations {
                    if !is_valid_label_name(k) {
                        return Err(rerr(format!("invalid annotation name: {k}")));
                    }
                    template::check(v).map_err(|e| rerr(format!("annotation {k:?}: {e}")))?;
                }
            }
        }
        Ok(f)
    }
}

/// Line of the `n`-th occurrence of a `- name:` item (rule groups).
fn nth_line(text: &str, key: &str, n: usize) -> Option<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with(key))
        .nth(n)
        .map(|(i, _)| i + 1)
}

/// Line of the `n`-th rule (an item with `record:` or `alert:`) after the group's line.
fn rule_line(text: &str, group_line: Option<usize>, n: usize) -> Option<usize> {
    let start = group_line?;
    text.lines()
        .enumerate()
        .skip(start)
        .take_while(|(_, l)| !l.trim_start().starts_with("- name:"))
        .filter(|(_, l)| {
            let t = l.trim_start().trim_start_matches("- ").trim_start();
            t.starts_with("record:")
                || t.starts_with("alert:")
                || t.starts_with("expr:") && l.trim_start().starts_with("- ")
        })
        .nth(n)
        .map(|(i, _)| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
groups:
  - name: node
    interval: 30s
    labels: {team: infra}
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
      - alert: InstanceDown
        expr: up == 0
        for: 5m
        keep_firing_for: 1m
        labels:
          severity: page
        annotations:
          summary: "{{ $labels.instance }} of {{ $labels.job }} is down"
          description: 'value {{ $value | humanize }}'
"#;

    #[test]
    fn prometheus_rule_file_loads() {
        let f = RuleFile::parse(GOOD).unwrap();
        assert_eq!(f.groups[0].rules.len(), 2);
        assert_eq!(f.groups[0].interval.unwrap().to_string(), "30s");
        assert_eq!(f.groups[0].rules[1].for_.unwrap().to_string(), "5m");
    }

    #[test]
    fn errors_name_lines_like_promtool() {
        let e = RuleFile::parse(
            "groups:\n  - name: a\n    rules:\n      - record: x\n        expr: sum(\n",
        )
        .unwrap_err();
        assert_eq!(e.line, Some(4), "{e}");
        assert!(e.message.contains("could not parse expression"), "{e}");
        let e = RuleFile::parse("groups:\n  - name: a\n    rules:\n      - alert: A\n        record: b\n        expr: up\n").unwrap_err();
        assert!(e.message.contains("only one of"), "{e}");
        let e = RuleFile::parse("groups:\n  - name: a\n  - name: a\n").unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        let e = RuleFile::parse("groups:\n  - name: a\n    rules:\n      - alert: A\n        expr: up\n        annotations:\n          s: '{{ .Foo '\n").unwrap_err();
        assert!(e.message.contains("annotation"), "{e}");
        let e = RuleFile::parse("groups:\n  - name: a\n    rulez: []\n").unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        let e = RuleFile::parse(
            "groups:\n  - name: a\n    rules:\n      - record: 'bad name'\n        expr: up\n",
        )
        .unwrap_err();
        assert!(e.message.contains("invalid recording rule name"), "{e}");
    }
}
