//! `line_format` and `label_format` templates: Go text/template over the entry's labels, with
//! `__line__` and `__timestamp__` and the string functions of Loki's template library.

use std::collections::{BTreeMap, HashMap};

use gtmpl::{Context, Template};
use gtmpl_value::{FuncError, Value};

fn arg(args: &[Value], i: usize, name: &str) -> Result<String, FuncError> {
    match args.get(i) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::NoValue) | Some(Value::Nil) => Ok(String::new()),
        Some(v) => Ok(v.to_string()),
        None => Err(FuncError::AtLeastXArgs(name.into(), i + 1)),
    }
}

fn int(args: &[Value], i: usize, name: &str) -> Result<i64, FuncError> {
    let s = arg(args, i, name)?;
    s.trim()
        .parse::<f64>()
        .map(|f| f as i64)
        .map_err(|_| FuncError::Generic(format!("{name}: {s:?} is not a number")))
}

fn last(args: &[Value], name: &str) -> Result<String, FuncError> {
    if args.is_empty() {
        return Err(FuncError::AtLeastXArgs(name.into(), 1));
    }
    arg(args, args.len() - 1, name)
}

macro_rules! f {
    ($name:ident, |$a:ident| $body:expr) => {
        fn $name($a: &[Value]) -> Result<Value, FuncError> {
            Ok(Value::from($body))
        }
    };
}

f!(to_upper, |a| arg(a, 0, "ToUpper")?.to_uppercase());
f!(to_lower, |a| arg(a, 0, "ToLower")?.to_lowercase());
f!(upper, |a| last(a, "upper")?.to_uppercase());
f!(lower, |a| last(a, "lower")?.to_lowercase());
f!(trim_space, |a| last(a, "TrimSpace")?.trim().to_string());
// Go's strings functions take the string first; sprig's take it last (for pipelines).
f!(go_replace, |a| {
    let (s, old, new) = (
        arg(a, 0, "Replace")?,
        arg(a, 1, "Replace")?,
        arg(a, 2, "Replace")?,
    );
    let n = int(a, 3, "Replace").unwrap_or(-1);
    if n < 0 {
        s.replace(&old, &new)
    } else {
        s.replacen(&old, &new, n as usize)
    }
});
f!(sprig_replace, |a| {
    let (old, new, s) = (
        arg(a, 0, "replace")?,
        arg(a, 1, "replace")?,
        arg(a, 2, "replace")?,
    );
    s.replace(&old, &new)
});
f!(go_trim, |a| {
    let (s, cut) = (arg(a, 0, "Trim")?, arg(a, 1, "Trim")?);
    s.trim_matches(|c| cut.contains(c)).to_string()
});
f!(go_trim_left, |a| {
    let (s, cut) = (arg(a, 0, "TrimLeft")?, arg(a, 1, "TrimLeft")?);
    s.trim_start_matches(|c| cut.contains(c)).to_string()
});
f!(go_trim_right, |a| {
    let (s, cut) = (arg(a, 0, "TrimRight")?, arg(a, 1, "TrimRight")?);
    s.trim_end_matches(|c| cut.contains(c)).to_string()
});
f!(go_trim_prefix, |a| {
    let (s, p) = (arg(a, 0, "TrimPrefix")?, arg(a, 1, "TrimPrefix")?);
    s.strip_prefix(p.as_str())
        .map(str::to_string)
        .unwrap_or(s.clone())
});
f!(go_trim_suffix, |a| {
    let (s, p) = (arg(a, 0, "TrimSuffix")?, arg(a, 1, "TrimSuffix")?);
    s.strip_suffix(p.as_str())
        .map(str::to_string)
        .unwrap_or(s.clone())
});
f!(sprig_trim, |a| last(a, "trim")?.trim().to_string());
f!(sprig_trim_prefix, |a| {
    let (p, s) = (arg(a, 0, "trimPrefix")?, arg(a, 1, "trimPrefix")?);
    s.strip_prefix(p.as_str())
        .map(str::to_string)
        .unwrap_or(s.clone())
});
f!(sprig_trim_suffix, |a| {
    let (p, s) = (arg(a, 0, "trimSuffix")?, arg(a, 1, "trimSuffix")?);
    s.strip_suffix(p.as_str())
        .map(str::to_string)
        .unwrap_or(s.clone())
});
f!(title, |a| {
    let s = last(a, "title")?;
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = !c.is_alphanumeric();
    }
    out
});
f!(trunc, |a| {
    let n = int(a, 0, "trunc")?;
    let s = arg(a, 1, "trunc")?;
    let chars: Vec<char> = s.chars().collect();
    if n >= 0 {
        chars.iter().take(n as usize).collect::<String>()
    } else {
        let k = (-n) as usize;
        chars[chars.len().saturating_sub(k)..]
            .iter()
            .collect::<String>()
    }
});
f!(substr, |a| {
    let (start, end) = (int(a, 0, "substr")?, int(a, 1, "substr")?);
    let s: Vec<char> = arg(a, 2, "substr")?.chars().collect();
    let st = (start.max(0) as usize).min(s.len());
    let en = if end < 0 {
        s.len()
    } else {
        (end as usize).min(s.len())
    };
    s[st..en.max(st)].iter().collect::<String>()
});
f!(contains, |a| {
    let (sub, s) = (arg(a, 0, "contains")?, arg(a, 1, "contains")?);
    s.contains(&sub)
});
f!(has_prefix, |a| {
    let (p, s) = (arg(a, 0, "hasPrefix")?, arg(a, 1, "hasPrefix")?);
    s.starts_with(&p)
});
f!(has_suffix, |a| {
    let (p, s) = (arg(a, 0, "hasSuffix")?, arg(a, 1, "hasSuffix")?);
    s.ends_with(&p)
});
f!(repeat, |a| {
    let n = int(a, 0, "repeat")?.max(0) as usize;
    arg(a, 1, "repeat")?.repeat(n.min(1 << 16))
});
f!(default, |a| {
    let d = arg(a, 0, "default")?;
    let v = arg(a, 1, "default").unwrap_or_default();
    if v.is_empty() { d } else { v }
});
f!(regex_replace_all, |a| {
    let (re, s, rep) = (
        arg(a, 0, "regexReplaceAll")?,
        arg(a, 1, "regexReplaceAll")?,
        arg(a, 2, "regexReplaceAll")?,
    );
    let re = regex::Regex::new(&re).map_err(|e| FuncError::Generic(e.to_string()))?;
    // Go's expansion syntax ($1, ${name}) is the regex crate's.
    re.replace_all(&s, rep.as_str()).into_owned()
});
f!(regex_replace_all_literal, |a| {
    let (re, s, rep) = (
        arg(a, 0, "regexReplaceAllLiteral")?,
        arg(a, 1, "regexReplaceAllLiteral")?,
        arg(a, 2, "regexReplaceAllLiteral")?,
    );
    let re = regex::Regex::new(&re).map_err(|e| FuncError::Generic(e.to_string()))?;
    re.replace_all(&s, regex::NoExpand(&rep)).into_owned()
});
f!(count, |a| {
    let (re, s) = (arg(a, 0, "count")?, arg(a, 1, "count")?);
    let re = regex::Regex::new(&re).map_err(|e| FuncError::Generic(e.to_string()))?;
    re.find_iter(&s).count() as i64
});
f!(align_left, |a| {
    let n = int(a, 0, "alignLeft")?.max(0) as usize;
    let s = arg(a, 1, "alignLeft")?;
    let mut out: String = s.chars().take(n).collect();
    while out.chars().count() < n {
        out.push(' ');
    }
    out
});
f!(align_right, |a| {
    let n = int(a, 0, "alignRight")?.max(0) as usize;
    let s: Vec<char> = arg(a, 1, "alignRight")?.chars().collect();
    let tail: String = s[s.len().saturating_sub(n)..].iter().collect();
    format!("{tail:>n$}")
});
f!(add, |a| {
    let mut t = 0i64;
    for i in 0..a.len() {
        t += int(a, i, "add")?;
    }
    t
});
f!(sub, |a| int(a, 0, "sub")? - int(a, 1, "sub")?);
f!(mul, |a| {
    let mut t = 1i64;
    for i in 0..a.len() {
        t *= int(a, i, "mul")?;
    }
    t
});
f!(div, |a| {
    let d = int(a, 1, "div")?;
    if d == 0 {
        return Err(FuncError::Generic("div: division by zero".into()));
    }
    int(a, 0, "div")? / d
});
f!(modulo, |a| {
    let d = int(a, 1, "mod")?;
    if d == 0 {
        return Err(FuncError::Generic("mod: division by zero".into()));
    }
    int(a, 0, "mod")? % d
});

const FUNCS: &[(&str, gtmpl_value::Func)] = &[
    ("ToUpper", to_upper),
    ("ToLower", to_lower),
    ("upper", upper),
    ("lower", lower),
    ("TrimSpace", trim_space),
    ("Replace", go_replace),
    ("replace", sprig_replace),
    ("Trim", go_trim),
    ("TrimLeft", go_trim_left),
    ("TrimRight", go_trim_right),
    ("TrimPrefix", go_trim_prefix),
    ("TrimSuffix", go_trim_suffix),
    ("trim", sprig_trim),
    ("trimPrefix", sprig_trim_prefix),
    ("trimSuffix", sprig_trim_suffix),
    ("title", title),
    ("trunc", trunc),
    ("substr", substr),
    ("contains", contains),
    ("hasPrefix", has_prefix),
    ("hasSuffix", has_suffix),
    ("repeat", repeat),
    ("default", default),
    ("regexReplaceAll", regex_replace_all),
    ("regexReplaceAllLiteral", regex_replace_all_literal),
    ("count", count),
    ("alignLeft", align_left),
    ("alignRight", align_right),
    ("add", add),
    ("sub", sub),
    ("mul", mul),
    ("div", div),
    ("mod", modulo),
];

/// `__line__` and `__timestamp__` are functions in Loki; here they are fields of the data.
fn rewrite(text: &str) -> String {
    text.replace("__line__", ".__line__")
        .replace("__timestamp__", ".__timestamp__")
        .replace("..__", ".__")
}

/// A parsed template.
pub struct Tmpl(Template);

impl Tmpl {
    pub fn new(text: &str) -> Result<Tmpl, String> {
        check_delimiters(text)?;
        let mut t = Template::default();
        t.add_funcs(FUNCS);
        t.parse(rewrite(text)).map_err(|e| e.to_string())?;
        Ok(Tmpl(t))
    }

    /// Renders with the entry's labels, line and time (ns).
    pub fn render(
        &self,
        labels: &BTreeMap<String, String>,
        line: &str,
        ts: i64,
    ) -> Result<String, String> {
        let mut data: HashMap<String, Value> = labels
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.clone())))
            .collect();
        data.insert("__line__".into(), Value::from(line.to_string()));
        data.insert(
            "__timestamp__".into(),
            Value::from(crate::logql::rfc3339_nano(ts)),
        );
        self.0
            .render(&Context::from(Value::Map(data)))
            .map(|s| s.replace("<no value>", ""))
            .map_err(|e| e.to_string())
    }
}

fn check_delimiters(text: &str) -> Result<(), String> {
    let mut rest = text;
    while let Some(i) = rest.find("{{") {
        let after = &rest[i + 2..];
        match after.find("}}") {
            Some(j) => rest = &after[j + 2..],
            None => {
                return Err(format!(
                    "invalid template: unclosed action at byte {}",
                    text.len() - rest.len() + i
                ));
            }
        }
    }
    Ok(())
}

/// Checks a template at parse time.
pub fn check(text: &str) -> Result<(), String> {
    Tmpl::new(text)
        .map(|_| ())
        .map_err(|e| format!("invalid template {text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_labels_line_and_functions() {
        let mut l = BTreeMap::new();
        l.insert("method".to_string(), "get".to_string());
        l.insert("status".to_string(), "200".to_string());
        let t = Tmpl::new(r#"{{ .method | ToUpper }} {{.status}} {{ __line__ }} {{ .missing }}|"#)
            .unwrap();
        assert_eq!(t.render(&l, "raw", 0).unwrap(), "GET 200 raw |");
        let t =
            Tmpl::new(r#"{{ Replace .method "g" "G" -1 }}{{ if eq .status "200" }} ok{{ end }}"#)
                .unwrap();
        assert_eq!(t.render(&l, "", 0).unwrap(), "Get ok");
        assert!(Tmpl::new("{{ .a ").is_err());
    }
}
