//! Label matchers (`=`, `!=`, `=~`, `!~`) with Prometheus semantics: regexes are fully anchored, and a
//! missing label matches as the empty string.

use std::fmt;

use regex::Regex;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatchOp {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

impl fmt::Display for MatchOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid regular expression {pattern:?} for label {name:?}: {source}")]
pub struct MatcherError {
    pub name: String,
    pub pattern: String,
    #[source]
    pub source: regex::Error,
}

/// One label matcher.
#[derive(Clone, Debug)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    re: Option<Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, o: &Self) -> bool {
        self.name == o.name && self.op == o.op && self.value == o.value
    }
}

impl Matcher {
    /// Builds a matcher; regex values are compiled anchored (`^(?:value)$`), as Prometheus does.
    pub fn new(
        op: MatchOp,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Self, MatcherError> {
        let name = name.into();
        let value = value.into();
        let re = match op {
            MatchOp::Regex | MatchOp::NotRegex => Some(
                Regex::new(&format!("^(?s:{value})$")).map_err(|source| MatcherError {
                    name: name.clone(),
                    pattern: value.clone(),
                    source,
                })?,
            ),
            _ => None,
        };
        Ok(Matcher {
            name,
            op,
            value,
            re,
        })
    }

    /// Equality matcher; never fails.
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Matcher {
            name: name.into(),
            op: MatchOp::Equal,
            value: value.into(),
            re: None,
        }
    }

    /// Does a label value (empty when the label is absent) match?
    pub fn matches(&self, v: &str) -> bool {
        match self.op {
            MatchOp::Equal => v == self.value,
            MatchOp::NotEqual => v != self.value,
            MatchOp::Regex => self.re.as_ref().is_some_and(|r| r.is_match(v)),
            MatchOp::NotRegex => !self.re.as_ref().is_some_and(|r| r.is_match(v)),
        }
    }

    /// True when the empty string matches, i.e. series without the label are selected too.
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }

    /// For a regex that is a plain alternation of literals (`a|b|c`), the literals; lets an index
    /// look values up instead of scanning them all.
    pub fn set_matches(&self) -> Option<Vec<String>> {
        if !matches!(self.op, MatchOp::Regex) {
            return None;
        }
        let special = |c: char| "\\.+*?()[]{}^$".contains(c);
        if self.value.chars().any(special) {
            return None;
        }
        Some(self.value.split('|').map(str::to_string).collect())
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.op, self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_is_anchored() {
        let m = Matcher::new(MatchOp::Regex, "job", "nod").unwrap();
        assert!(!m.matches("node"));
        assert!(m.matches("nod"));
        let m = Matcher::new(MatchOp::Regex, "job", "no.*|api").unwrap();
        assert!(m.matches("node") && m.matches("api") && !m.matches("xapi"));
    }

    #[test]
    fn absent_label_is_empty() {
        assert!(
            Matcher::new(MatchOp::NotEqual, "x", "a")
                .unwrap()
                .matches_empty()
        );
        assert!(
            Matcher::new(MatchOp::Regex, "x", ".*")
                .unwrap()
                .matches_empty()
        );
        assert!(
            !Matcher::new(MatchOp::Regex, "x", ".+")
                .unwrap()
                .matches_empty()
        );
    }

    #[test]
    fn dot_matches_newline_like_go() {
        // Go's RE2 in Prometheus is compiled with (?s) so `.` crosses newlines.
        assert!(
            Matcher::new(MatchOp::Regex, "p", "a.b")
                .unwrap()
                .matches("a\nb")
        );
    }

    #[test]
    fn set_matches_only_for_literals() {
        let m = Matcher::new(MatchOp::Regex, "m", "GET|POST").unwrap();
        assert_eq!(m.set_matches().unwrap(), vec!["GET", "POST"]);
        assert!(
            Matcher::new(MatchOp::Regex, "m", "G.*")
                .unwrap()
                .set_matches()
                .is_none()
        );
    }

    #[test]
    fn bad_regex_names_label() {
        let e = Matcher::new(MatchOp::Regex, "job", "(").unwrap_err();
        assert!(e.to_string().contains("job"), "{e}");
    }
}
