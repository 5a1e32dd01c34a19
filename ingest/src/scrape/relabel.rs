//! Relabeling with Prometheus's semantics (`relabel_configs`, `metric_relabel_configs`).

use std::fmt;

use md5::{Digest, Md5};
use regex::Regex;
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};
use vigil_model::{LabelsBuilder, is_valid_label_name};

/// Relabel actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    #[default]
    Replace,
    Keep,
    Drop,
    KeepEqual,
    DropEqual,
    HashMod,
    LabelMap,
    LabelDrop,
    LabelKeep,
    Lowercase,
    Uppercase,
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        // Action names are case-insensitive, as in Prometheus.
        Ok(match s.to_ascii_lowercase().as_str() {
            "replace" => Action::Replace,
            "keep" => Action::Keep,
            "drop" => Action::Drop,
            "keepequal" => Action::KeepEqual,
            "dropequal" => Action::DropEqual,
            "hashmod" => Action::HashMod,
            "labelmap" => Action::LabelMap,
            "labeldrop" => Action::LabelDrop,
            "labelkeep" => Action::LabelKeep,
            "lowercase" => Action::Lowercase,
            "uppercase" => Action::Uppercase,
            _ => {
                return Err(de::Error::custom(format!(
                    "unknown relabel action {s:?} (expected replace, keep, drop, keepequal, dropequal, hashmod, labelmap, labeldrop, labelkeep, lowercase or uppercase)"
                )));
            }
        })
    }
}

/// A regex compiled fully anchored (`^(?:re)$`), remembering its source text.
#[derive(Clone)]
pub struct RelabelRegex {
    pub source: String,
    pub re: Regex,
}

impl RelabelRegex {
    pub fn new(source: &str) -> Result<Self, regex::Error> {
        Ok(RelabelRegex {
            source: source.to_string(),
            re: Regex::new(&format!("^(?s:{source})$"))?,
        })
    }
}

impl Default for RelabelRegex {
    fn default() -> Self {
        RelabelRegex::new("(.*)").expect("the default regex compiles")
    }
}

impl fmt::Debug for RelabelRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.source)
    }
}

impl PartialEq for RelabelRegex {
    fn eq(&self, o: &Self) -> bool {
        self.source == o.source
    }
}

impl<'de> Deserialize<'de> for RelabelRegex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        RelabelRegex::new(&s).map_err(|e| de::Error::custom(format!("invalid regex {s:?}: {e}")))
    }
}

impl Serialize for RelabelRegex {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

fn default_separator() -> String {
    ";".into()
}

fn default_replacement() -> String {
    "$1".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRelabel {
    #[serde(default)]
    source_labels: Vec<String>,
    #[serde(default = "default_separator")]
    separator: String,
    #[serde(default)]
    target_label: Option<String>,
    #[serde(default)]
    regex: Option<RelabelRegex>,
    #[serde(default)]
    modulus: u64,
    #[serde(default)]
    replacement: Option<String>,
    #[serde(default)]
    action: Action,
}

/// One relabel step.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RelabelConfig {
    pub source_labels: Vec<String>,
    pub separator: String,
    pub target_label: String,
    pub regex: RelabelRegex,
    pub modulus: u64,
    pub replacement: String,
    pub action: Action,
}

impl<'de> Deserialize<'de> for RelabelConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let r = RawRelabel::deserialize(d)?;
        let target = r.target_label.clone().unwrap_or_default();
        let err = |m: String| Err(de::Error::custom(m));
        match r.action {
            Action::Replace
            | Action::HashMod
            | Action::Lowercase
            | Action::Uppercase
            | Action::KeepEqual
            | Action::DropEqual
                if target.is_empty() =>
            {
                return err(format!(
                    "relabel configuration for {:?} action requires 'target_label'",
                    action_name(r.action)
                ));
            }
            _ => {}
        }
        if r.action == Action::Replace && !target.contains('$') && !is_valid_label_name(&target) {
            return err(format!(
                "{target:?} is invalid 'target_label' for replace action"
            ));
        }
        if matches!(
            r.action,
            Action::Lowercase
                | Action::Uppercase
                | Action::HashMod
                | Action::KeepEqual
                | Action::DropEqual
        ) && !is_valid_label_name(&target)
        {
            return err(format!(
                "{target:?} is invalid 'target_label' for {} action",
                action_name(r.action)
            ));
        }
        if matches!(r.action, Action::Lowercase | Action::Uppercase) && r.replacement.is_some() {
            return err(format!(
                "'replacement' can not be set for {} action",
                action_name(r.action)
            ));
        }
        if r.action == Action::HashMod && r.modulus == 0 {
            return err("relabel configuration for hashmod requires non-zero modulus".into());
        }
        if matches!(r.action, Action::LabelDrop | Action::LabelKeep)
            && (!r.source_labels.is_empty()
                || r.target_label.is_some()
                || r.modulus != 0
                || r.replacement.is_some())
        {
            return err(format!(
                "{} action requires only 'regex', and no other fields",
                action_name(r.action)
            ));
        }
        if matches!(r.action, Action::KeepEqual | Action::DropEqual)
            && (r.regex.is_some() || r.modulus != 0 || r.replacement.is_some())
        {
            return err(format!(
                "{} action requires only 'source_labels' and 'target_label', and no other fields",
                action_name(r.action)
            ));
        }
        if r.action == Action::LabelMap {
            let repl = r.replacement.clone().unwrap_or_else(default_replacement);
            if !repl.contains('$') && !is_valid_label_name(&repl) {
                return err(format!(
                    "{repl:?} is invalid 'replacement' for labelmap action"
                ));
            }
        }
        Ok(RelabelConfig {
            source_labels: r.source_labels,
            separator: r.separator,
            target_label: target,
            regex: r.regex.unwrap_or_default(),
            modulus: r.modulus,
            replacement: r.replacement.unwrap_or_else(default_replacement),
            action: r.action,
        })
    }
}

fn action_name(a: Action) -> &'static str {
    match a {
        Action::Replace => "replace",
        Action::Keep => "keep",
        Action::Drop => "drop",
        Action::KeepEqual => "keepequal",
        Action::DropEqual => "dropequal",
        Action::HashMod => "hashmod",
        Action::LabelMap => "labelmap",
        Action::LabelDrop => "labeldrop",
        Action::LabelKeep => "labelkeep",
        Action::Lowercase => "lowercase",
        Action::Uppercase => "uppercase",
    }
}

/// Applies the steps in order. Returns false when the label set is dropped.
pub fn process(lb: &mut LabelsBuilder, configs: &[RelabelConfig]) -> bool {
    for c in configs {
        if !apply(lb, c) {
            return false;
        }
    }
    true
}

fn apply(lb: &mut LabelsBuilder, c: &RelabelConfig) -> bool {
    let val = c
        .source_labels
        .iter()
        .map(|n| lb.get(n).unwrap_or(""))
        .collect::<Vec<_>>()
        .join(&c.separator);
    match c.action {
        Action::Drop => {
            if c.regex.re.is_match(&val) {
                return false;
            }
        }
        Action::Keep => {
            if !c.regex.re.is_match(&val) {
                return false;
            }
        }
        Action::DropEqual => {
            if lb.get(&c.target_label).unwrap_or("") == val {
                return false;
            }
        }
        Action::KeepEqual => {
            if lb.get(&c.target_label).unwrap_or("") != val {
                return false;
            }
        }
        Action::Replace => {
            let Some(caps) = c.regex.re.captures(&val) else {
                return true;
            };
            let mut target = String::new();
            caps.expand(&c.target_label, &mut target);
            if !is_valid_label_name(&target) {
                return true;
            }
            let mut res = String::new();
            caps.expand(&c.replacement, &mut res);
            if res.is_empty() {
                lb.del(&target);
            } else {
                lb.set(target, res);
            }
        }
        Action::Lowercase => {
            lb.set(c.target_label.clone(), val.to_lowercase());
        }
        Action::Uppercase => {
            lb.set(c.target_label.clone(), val.to_uppercase());
        }
        Action::HashMod => {
            let sum = Md5::digest(val.as_bytes());
            let mut b = [0u8; 8];
            b.copy_from_slice(&sum[8..16]);
            let m = u64::from_be_bytes(b) % c.modulus;
            lb.set(c.target_label.clone(), m.to_string());
        }
        Action::LabelMap => {
            let current: Vec<(String, String)> = lb
                .iter()
                .map(|l| (l.name.to_string(), l.value.to_string()))
                .collect();
            for (n, v) in current {
                if c.regex.re.is_match(&n) {
                    let res = c
                        .regex
                        .re
                        .replace_all(&n, c.replacement.as_str())
                        .into_owned();
                    lb.set(res, v);
                }
            }
        }
        Action::LabelDrop => {
            lb.retain(|l| !c.regex.re.is_match(&l.name));
        }
        Action::LabelKeep => {
            lb.retain(|l| c.regex.re.is_match(&l.name));
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_model::Labels;

    fn cfgs(yaml: &str) -> Vec<RelabelConfig> {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn run(labels: &[(&str, &str)], yaml: &str) -> Option<Labels> {
        let mut lb = Labels::from_pairs(labels.iter().copied()).to_builder();
        process(&mut lb, &cfgs(yaml)).then(|| lb.build())
    }

    #[test]
    fn replace_defaults_and_captures() {
        let out = run(
            &[("__address__", "host:9100")],
            "- source_labels: [__address__]\n  regex: '(.*):\\d+'\n  target_label: host\n",
        )
        .unwrap();
        assert_eq!(out.get("host"), Some("host"));
        // No match: unchanged.
        let out = run(
            &[("a", "x")],
            "- source_labels: [a]\n  regex: 'y'\n  target_label: b\n  replacement: z\n",
        )
        .unwrap();
        assert_eq!(out.get("b"), None);
        // Empty result deletes the target.
        let out = run(
            &[("a", "x"), ("b", "1")],
            "- source_labels: [c]\n  target_label: b\n",
        )
        .unwrap();
        assert_eq!(out.get("b"), None);
        // Joined with the separator, missing labels as empty.
        let out = run(
            &[("a", "x"), ("b", "y")],
            "- source_labels: [a, zz, b]\n  target_label: j\n",
        )
        .unwrap();
        assert_eq!(out.get("j"), Some("x;;y"));
        // Target from capture group.
        let out = run(&[("a", "k=v")], "- source_labels: [a]\n  regex: '(.+)=(.+)'\n  target_label: '${1}'\n  replacement: '$2'\n").unwrap();
        assert_eq!(out.get("k"), Some("v"));
    }

    #[test]
    fn keep_drop_and_equal() {
        assert!(
            run(
                &[("job", "a")],
                "- source_labels: [job]\n  regex: b\n  action: keep\n"
            )
            .is_none()
        );
        assert!(
            run(
                &[("job", "a")],
                "- source_labels: [job]\n  regex: a\n  action: Drop\n"
            )
            .is_none()
        );
        assert!(
            run(
                &[("job", "ab")],
                "- source_labels: [job]\n  regex: a\n  action: drop\n"
            )
            .is_some(),
            "anchored"
        );
        assert!(
            run(
                &[("a", "1"), ("b", "1")],
                "- source_labels: [a]\n  target_label: b\n  action: dropequal\n"
            )
            .is_none()
        );
        assert!(
            run(
                &[("a", "1"), ("b", "2")],
                "- source_labels: [a]\n  target_label: b\n  action: keepequal\n"
            )
            .is_none()
        );
    }

    #[test]
    fn label_actions() {
        let out = run(
            &[("__meta_x_foo", "1"), ("keep", "2")],
            "- regex: __meta_x_(.+)\n  action: labelmap\n",
        )
        .unwrap();
        assert_eq!(out.get("foo"), Some("1"));
        assert_eq!(out.get("__meta_x_foo"), Some("1"));
        let out = run(
            &[("a1", "1"), ("a2", "2"), ("b", "3")],
            "- regex: a.\n  action: labeldrop\n",
        )
        .unwrap();
        assert_eq!(out.len(), 1);
        let out = run(
            &[("a1", "1"), ("a2", "2"), ("b", "3")],
            "- regex: a.\n  action: labelkeep\n",
        )
        .unwrap();
        assert_eq!(out.len(), 2);
        let out = run(&[("a", "MiXed")], "- source_labels: [a]\n  target_label: l\n  action: lowercase\n- source_labels: [a]\n  target_label: u\n  action: uppercase\n").unwrap();
        assert_eq!((out.get("l"), out.get("u")), (Some("mixed"), Some("MIXED")));
    }

    #[test]
    fn hashmod_matches_prometheus() {
        // From Prometheus's relabel tests: hashmod of "baz" with modulus 1000 is 976 (md5 bytes 8..16, big endian).
        let out = run(
            &[("a", "baz")],
            "- source_labels: [a]\n  target_label: h\n  modulus: 1000\n  action: hashmod\n",
        )
        .unwrap();
        assert_eq!(out.get("h"), Some("976"));
    }

    #[test]
    fn validation_errors() {
        for (y, want) in [
            ("- action: replace\n", "requires 'target_label'"),
            ("- action: hashmod\n  target_label: x\n", "non-zero modulus"),
            (
                "- action: labeldrop\n  source_labels: [a]\n",
                "only 'regex'",
            ),
            ("- action: frobnicate\n", "unknown relabel action"),
            ("- regex: '('\n  target_label: x\n", "invalid regex"),
            ("- target_label: '1x'\n", "invalid 'target_label'"),
            ("- target_label: x\n  bogus: 1\n", "unknown field"),
        ] {
            let e = serde_yaml_ng::from_str::<Vec<RelabelConfig>>(y)
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{y:?}: {e}");
        }
    }
}
