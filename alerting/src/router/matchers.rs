//! Alertmanager label matchers: `name="value"`, `name!="value"`, `name=~"regex"`, `name!~"regex"`, with
//! unquoted values allowed (`severity=page`) and anchored regexes, as `matchers:` in routes and inhibition
//! rules and as silences' matchers.

use std::fmt;

use regex::Regex;
use serde::{Deserialize, Deserializer};

/// How a matcher compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchType {
    Equal,
    NotEqual,
    Regexp,
    NotRegexp,
}

/// One label matcher.
#[derive(Clone, Debug)]
pub struct Matcher {
    pub name: String,
    pub value: String,
    pub kind: MatchType,
    re: Option<Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, o: &Self) -> bool {
        self.name == o.name && self.value == o.value && self.kind == o.kind
    }
}

impl Matcher {
    pub fn new(kind: MatchType, name: &str, value: &str) -> Result<Matcher, String> {
        let re = match kind {
            MatchType::Regexp | MatchType::NotRegexp => Some(
                Regex::new(&format!("^(?:{value})$"))
                    .map_err(|e| format!("invalid regular expression {value:?}: {e}"))?,
            ),
            _ => None,
        };
        Ok(Matcher {
            name: name.to_string(),
            value: value.to_string(),
            kind,
            re,
        })
    }

    /// Whether the matcher accepts `v` (the label's value, empty when absent).
    pub fn matches(&self, v: &str) -> bool {
        match self.kind {
            MatchType::Equal => v == self.value,
            MatchType::NotEqual => v != self.value,
            MatchType::Regexp => self.re.as_ref().is_some_and(|r| r.is_match(v)),
            MatchType::NotRegexp => !self.re.as_ref().is_some_and(|r| r.is_match(v)),
        }
    }

    /// Parses one matcher, `name<op>value` with the value quoted or not.
    pub fn parse(s: &str) -> Result<Matcher, String> {
        let s = s.trim();
        let name_end = s
            .find(['=', '!'])
            .ok_or_else(|| format!("bad matcher format: {s}"))?;
        let name = s[..name_end].trim();
        if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
            return Err(format!("bad matcher format: {s}"));
        }
        let rest = &s[name_end..];
        let (kind, value) = if let Some(v) = rest.strip_prefix("=~") {
            (MatchType::Regexp, v)
        } else if let Some(v) = rest.strip_prefix("!~") {
            (MatchType::NotRegexp, v)
        } else if let Some(v) = rest.strip_prefix("!=") {
            (MatchType::NotEqual, v)
        } else if let Some(v) = rest.strip_prefix('=') {
            (MatchType::Equal, v)
        } else {
            return Err(format!("bad matcher format: {s}"));
        };
        let value = value.trim();
        let value = if value.len() >= 2 && value.starts_with('"') && value.ends_with('"') {
            unescape(&value[1..value.len() - 1])?
        } else if value.contains('"') {
            return Err(format!("bad matcher format: {s}"));
        } else {
            value.to_string()
        };
        Matcher::new(kind, name, &value)
    }
}

fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some('n') => out.push('\n'),
                Some('\\') => out.push('\\'),
                Some('"') => out.push('"'),
                Some(o) => {
                    out.push('\\');
                    out.push(o);
                }
                None => return Err(format!("dangling backslash in {s:?}")),
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.kind {
            MatchType::Equal => "=",
            MatchType::NotEqual => "!=",
            MatchType::Regexp => "=~",
            MatchType::NotRegexp => "!~",
        };
        write!(f, "{}{op}{:?}", self.name, self.value)
    }
}

/// A list of matchers as written in configuration: each entry may hold one matcher or several
/// (`'{a="b", c=~"d"}'` or `a="b",c="d"`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Matchers(pub Vec<Matcher>);

impl Matchers {
    /// True when every matcher accepts the labels (`get` returns a label's value).
    pub fn matches<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.0.iter().all(|m| m.matches(get(&m.name).unwrap_or("")))
    }

    /// Parses one configuration entry into its matchers.
    pub fn parse_entry(s: &str) -> Result<Vec<Matcher>, String> {
        let t = s.trim();
        let t = t
            .strip_prefix('{')
            .and_then(|x| x.strip_suffix('}'))
            .unwrap_or(t);
        split_top(t)
            .into_iter()
            .filter(|p| !p.trim().is_empty())
            .map(|p| Matcher::parse(&p))
            .collect()
    }
}

/// Splits on commas outside double quotes.
fn split_top(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut escaped) = (false, false);
    for c in s.chars() {
        if escaped {
            cur.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => {
                escaped = true;
                cur.push(c);
            }
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

impl serde::Serialize for Matchers {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|m| m.to_string()))
    }
}

impl<'de> Deserialize<'de> for Matchers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let entries = Vec::<String>::deserialize(d)?;
        let mut out = Vec::new();
        for e in entries {
            out.extend(Matchers::parse_entry(&e).map_err(serde::de::Error::custom)?);
        }
        Ok(Matchers(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_alertmanager_syntax() {
        let m = Matcher::parse(r#"severity="page""#).unwrap();
        assert_eq!((m.kind, m.value.as_str()), (MatchType::Equal, "page"));
        let m = Matcher::parse("severity=page").unwrap();
        assert_eq!(m.value, "page");
        let m = Matcher::parse(r#"service=~"foo|bar""#).unwrap();
        assert!(m.matches("foo") && !m.matches("foobar"), "anchored");
        let m = Matcher::parse(r#"env!~"prod.*""#).unwrap();
        assert!(m.matches("dev") && !m.matches("production"));
        let m = Matcher::parse(r#"x!="""#).unwrap();
        assert!(m.matches("a") && !m.matches(""));
        let v = Matchers::parse_entry(r#"{a="1", b=~"x,y"}"#).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].value, "x,y");
        assert!(Matcher::parse("no operator").is_err());
        assert!(Matcher::parse(r#"a=~"(""#).is_err());
    }
}
