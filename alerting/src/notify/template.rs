//! Notification templates, as Alertmanager renders them: Go `text/template` (the `gotmpl` crate)
//! over Alertmanager's data model (`.Receiver`, `.Status`, `.Alerts`, `.GroupLabels`,
//! `.CommonLabels`, `.CommonAnnotations`, `.ExternalURL`), its methods (`.Alerts.Firing`,
//! `.Labels.SortedPairs`, `.CommonLabels.Remove .GroupLabels.Names`, `.StartsAt.Format …`), its
//! functions (`toUpper`, `join`, `reReplaceAll`, …) and its default named templates
//! (`__subject`, `slack.default.title`, `pagerduty.default.instances`, …), plus the user's
//! `templates:` files, whose `define`s override the defaults.
//!
//! Go templates call methods on typed values; `gotmpl` has maps and lists only. So every parsed
//! tree is rewritten once, at load: a field chain `.A.B` becomes calls of `__get`, and a method
//! call with arguments (`.X.Remove .Y`) a call of `__call`; both dispatch on the value's shape the
//! way Go dispatches on its type (a label map answers a missing key with "", as Go's
//! `map[string]string` does under `missingkey=zero`; a struct answers an unknown field with an error).
//!
//! Every template string of the configuration is parsed when the configuration loads, so
//! `vigil check config` reports template errors, and rendering a notification parses nothing.

use std::collections::BTreeMap;
use std::sync::Arc;

use gotmpl::parse::{CommandNode, Expr, ListNode, Node, Parser, PipeNode, Pos};
use gotmpl::{TemplateError, Value};

/// The key that marks a map as a struct of Alertmanager's data model (its value names the type),
/// so that field lookups can tell a struct (unknown field: error) from a label map (missing key: "").
const STRUCT: &str = "\u{1}type";

/// Alertmanager's default named templates, written for Vigil to render what Alertmanager 0.25
/// renders: the same subjects, links, alert lists and integration defaults.
pub const DEFAULT_TEMPLATES: &str = include_str!("default.tmpl");

/// A set of parsed templates: the defaults, the user's files, and every template string of the
/// configuration, each under its own name.
pub struct TemplateSet {
    tmpl: gotmpl::Template,
    /// Names given to configuration strings so far (for unique names).
    next: usize,
}

/// A template string of the configuration, parsed into a [`TemplateSet`].
#[derive(Clone, Debug, PartialEq)]
pub struct Tmpl {
    /// The text as written (empty: renders empty without running anything).
    pub text: String,
    /// What it is (`slack_configs[0].title`), for error messages: never the text, which can be a
    /// secret (a templated routing key).
    pub what: String,
    name: String,
}

impl Tmpl {
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }
}

fn parse_tree(name: &str, src: &str) -> Result<(ListNode, Vec<(String, ListNode)>), String> {
    let parser = Parser::with_name(Some(name), src, "{{", "}}").map_err(|e| e.to_string())?;
    let (mut tree, defines) = parser.parse().map_err(|e| e.to_string())?;
    rewrite_list(&mut tree);
    let defines = defines
        .into_iter()
        .map(|mut d| {
            rewrite_list(&mut d.body);
            (d.name.to_string(), d.body)
        })
        .collect();
    Ok((tree, defines))
}

impl TemplateSet {
    /// The defaults, then each file's defines in order (a later define replaces an earlier one).
    pub fn new(files: &[(String, String)]) -> Result<TemplateSet, String> {
        let tmpl = gotmpl::Template::new("vigil")
            .missing_key(gotmpl::MissingKey::ZeroValue)
            .funcs(
                functions()
                    .into_iter()
                    .map(|(k, f)| (k.to_string(), f))
                    .collect(),
            );
        let mut set = TemplateSet { tmpl, next: 0 };
        set.add_defines("default.tmpl", DEFAULT_TEMPLATES)?;
        for (name, text) in files {
            set.add_defines(name, text)?;
        }
        Ok(set)
    }

    fn add_defines(&mut self, name: &str, text: &str) -> Result<(), String> {
        let (_, defines) = parse_tree(name, text)?;
        for (n, body) in defines {
            self.take(|t| t.add_parse_tree(&n, body));
        }
        Ok(())
    }

    fn take(&mut self, f: impl FnOnce(gotmpl::Template) -> gotmpl::Template) {
        let t = std::mem::replace(&mut self.tmpl, gotmpl::Template::new("vigil"));
        self.tmpl = f(t);
    }

    /// Parses a configuration string (e.g. a Slack `title`); errors say what is wrong and where.
    pub fn add(&mut self, what: &str, text: &str) -> Result<Tmpl, String> {
        self.next += 1;
        let name = format!("\u{1}{}", self.next);
        if !text.is_empty() {
            let (tree, defines) = parse_tree(what, text)?;
            for (n, body) in defines {
                self.take(|t| t.add_parse_tree(&n, body));
            }
            self.take(|t| t.add_parse_tree(&name, tree));
        }
        Ok(Tmpl {
            text: text.to_string(),
            what: what.to_string(),
            name,
        })
    }

    /// Renders `t` with `data`.
    pub fn render(&self, t: &Tmpl, data: &Value) -> Result<String, String> {
        if t.text.is_empty() {
            return Ok(String::new());
        }
        self.tmpl
            .execute_template_to_string(&t.name, data)
            .map_err(|e| format!("{}: {e}", t.what))
    }

    /// Renders a named template (`{{ template "name" . }}`), for tests and defaults.
    pub fn render_named(&self, name: &str, data: &Value) -> Result<String, String> {
        self.tmpl
            .execute_template_to_string(name, data)
            .map_err(|e| e.to_string())
    }
}

// ---- the rewrite: field chains and method calls into __get / __call ----

fn ident(pos: Pos, name: &str) -> Expr {
    Expr::Identifier(pos, name.into())
}

fn call(pos: Pos, args: Vec<Expr>) -> Expr {
    Expr::Pipe(
        pos,
        PipeNode {
            pos,
            decl: Vec::new(),
            commands: vec![CommandNode { pos, args }],
            is_assign: false,
        },
    )
}

/// `recv.f1.f2…` as nested `__get` calls.
fn chain(pos: Pos, mut recv: Expr, fields: &[smol_str::SmolStr]) -> Expr {
    for f in fields {
        recv = call(
            pos,
            vec![
                ident(pos, "__get"),
                recv,
                Expr::String(pos, f.as_str().into()),
            ],
        );
    }
    recv
}

/// Splits a field-ish expression into (receiver, field chain) when it has fields.
fn split(e: &Expr) -> Option<(Pos, Expr, Vec<smol_str::SmolStr>)> {
    match e {
        Expr::Field(p, fields) if !fields.is_empty() => Some((*p, Expr::Dot(*p), fields.clone())),
        Expr::Variable(p, name, fields) if !fields.is_empty() => Some((
            *p,
            Expr::Variable(*p, name.clone(), Vec::new()),
            fields.clone(),
        )),
        Expr::Chain(p, inner, fields) if !fields.is_empty() => {
            let mut inner = (**inner).clone();
            rewrite_expr(&mut inner);
            Some((*p, inner, fields.clone()))
        }
        _ => None,
    }
}

fn rewrite_expr(e: &mut Expr) {
    if let Some((p, recv, fields)) = split(e) {
        *e = chain(p, recv, &fields);
        return;
    }
    if let Expr::Pipe(_, pipe) = e {
        rewrite_pipe(pipe);
    }
}

fn rewrite_command(c: &mut CommandNode) {
    // `.X.Method arg…`: a method call with arguments.
    if c.args.len() > 1
        && let Some((p, recv, fields)) = split(&c.args[0])
    {
        let (last, init) = fields.split_last().expect("split returns non-empty chains");
        let mut args = vec![
            ident(p, "__call"),
            chain(p, recv, init),
            Expr::String(p, last.as_str().into()),
        ];
        for a in c.args.drain(1..) {
            let mut a = a;
            rewrite_expr(&mut a);
            args.push(a);
        }
        c.args = args;
        return;
    }
    for a in &mut c.args {
        rewrite_expr(a);
    }
}

fn rewrite_pipe(p: &mut PipeNode) {
    for c in &mut p.commands {
        rewrite_command(c);
    }
}

fn rewrite_list(l: &mut ListNode) {
    for n in &mut l.nodes {
        match n {
            Node::List(l) => rewrite_list(l),
            Node::Action(a) => rewrite_pipe(&mut a.pipe),
            Node::If(b) | Node::Range(b) | Node::With(b) => {
                rewrite_pipe(&mut b.pipe);
                rewrite_list(&mut b.body);
                if let Some(e) = &mut b.else_body {
                    rewrite_list(e);
                }
            }
            Node::Template(t) => {
                if let Some(p) = &mut t.pipe {
                    rewrite_pipe(p);
                }
            }
            Node::Define(d) => rewrite_list(&mut d.body),
            Node::Text(_) | Node::Break(_) | Node::Continue(_) => {}
        }
    }
}

// ---- the data model ----

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn err(m: impl Into<String>) -> TemplateError {
    TemplateError::Exec(m.into())
}

fn struct_of(kind: &str, fields: Vec<(&str, Value)>) -> Value {
    let mut m: BTreeMap<String, Value> = fields
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    m.insert(STRUCT.into(), s(kind));
    Value::from(m)
}

fn kind_of(v: &Value) -> Option<&str> {
    v.field(STRUCT).and_then(Value::as_str)
}

/// A label or annotation map (`template.KV`).
pub fn kv<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Value {
    let m: BTreeMap<String, Value> = pairs
        .into_iter()
        .map(|(k, v)| (k.to_string(), s(v)))
        .collect();
    Value::from(m)
}

/// One alert of a notification (`template.Alert`). Times in ms; `ends_at` None for a firing alert
/// (Alertmanager zeroes it).
pub struct AlertData<'a> {
    pub status: &'a str,
    pub labels: Value,
    pub annotations: Value,
    pub starts_at: i64,
    pub ends_at: Option<i64>,
    pub generator_url: &'a str,
    pub fingerprint: String,
}

pub fn alert(a: AlertData<'_>) -> Value {
    struct_of(
        "Alert",
        vec![
            ("Status", s(a.status)),
            ("Labels", a.labels),
            ("Annotations", a.annotations),
            ("StartsAt", s(&go_time(Some(a.starts_at)))),
            ("EndsAt", s(&go_time(a.ends_at))),
            ("GeneratorURL", s(a.generator_url)),
            ("Fingerprint", s(&a.fingerprint)),
        ],
    )
}

/// The root of a notification template (`template.Data`).
pub struct Data {
    pub receiver: String,
    pub status: String,
    pub alerts: Vec<Value>,
    pub group_labels: Value,
    pub common_labels: Value,
    pub common_annotations: Value,
    pub external_url: String,
}

impl Data {
    pub fn value(self) -> Value {
        struct_of(
            "Data",
            vec![
                ("Receiver", s(&self.receiver)),
                ("Status", s(&self.status)),
                ("Alerts", Value::from(self.alerts)),
                ("GroupLabels", self.group_labels),
                ("CommonLabels", self.common_labels),
                ("CommonAnnotations", self.common_annotations),
                ("ExternalURL", s(&self.external_url)),
            ],
        )
    }
}

/// `KV.SortedPairs`: names sorted, `alertname` first.
fn sorted_pairs(m: &Value) -> Vec<(String, Value)> {
    let Value::Map(m) = m else {
        return Vec::new();
    };
    let mut out: Vec<(String, Value)> = m
        .iter()
        .filter(|(k, _)| &***k != STRUCT)
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    out.sort_by(|a, b| {
        (a.0 != "alertname")
            .cmp(&(b.0 != "alertname"))
            .then_with(|| a.0.cmp(&b.0))
    });
    out
}

fn pairs_value(p: Vec<(String, Value)>) -> Value {
    Value::from(
        p.into_iter()
            .map(|(k, v)| struct_of("Pair", vec![("Name", s(&k)), ("Value", v)]))
            .collect::<Vec<_>>(),
    )
}

fn strings(v: impl IntoIterator<Item = Value>) -> Value {
    Value::from(v.into_iter().collect::<Vec<_>>())
}

/// `recv.name` with Go's method-then-field dispatch.
fn get(recv: &Value, name: &str) -> Result<Value, TemplateError> {
    match recv {
        Value::Nil => Ok(Value::Nil),
        Value::Map(m) => match kind_of(recv) {
            Some(kind) => match m.get(name) {
                Some(v) => Ok(v.clone()),
                None => Err(err(format!(
                    "can't evaluate field {name} in type template.{kind}"
                ))),
            },
            None => Ok(match name {
                "SortedPairs" => pairs_value(sorted_pairs(recv)),
                "Names" => strings(sorted_pairs(recv).into_iter().map(|(k, _)| s(&k))),
                "Values" => strings(sorted_pairs(recv).into_iter().map(|(_, v)| v)),
                "Remove" => {
                    return Err(err(
                        "wrong number of args for Remove: want 1 got 0".to_string()
                    ));
                }
                _ => m.get(name).cloned().unwrap_or_else(|| s("")),
            }),
        },
        Value::List(items) => match name {
            "Firing" | "Resolved" => {
                let want = if name == "Firing" {
                    "firing"
                } else {
                    "resolved"
                };
                Ok(Value::from(
                    items
                        .iter()
                        .filter(|a| a.field("Status").and_then(Value::as_str) == Some(want))
                        .cloned()
                        .collect::<Vec<_>>(),
                ))
            }
            "Names" | "Values" => {
                let f = if name == "Names" { "Name" } else { "Value" };
                Ok(strings(
                    items
                        .iter()
                        .map(|p| p.field(f).cloned().unwrap_or(Value::Nil)),
                ))
            }
            _ => Err(err(format!("can't evaluate field {name} in type list"))),
        },
        Value::String(t) => time_method(t, name, &[]),
        other => Err(err(format!(
            "can't evaluate field {name} in type {}",
            other.type_name()
        ))),
    }
}

fn functions() -> Vec<(&'static str, gotmpl::ValueFunc)> {
    fn f(
        x: impl Fn(&[Value]) -> Result<Value, TemplateError> + Send + Sync + 'static,
    ) -> gotmpl::ValueFunc {
        Arc::new(x)
    }
    fn str_arg(args: &[Value], i: usize) -> String {
        args.get(i).map(|v| v.to_string()).unwrap_or_default()
    }
    vec![
        (
            "__get",
            f(|a| get(a.first().unwrap_or(&Value::Nil), &str_arg(a, 1))),
        ),
        (
            "__call",
            f(|a| {
                let recv = a.first().unwrap_or(&Value::Nil);
                let name = str_arg(a, 1);
                let rest = a.get(2..).unwrap_or(&[]);
                match (recv, name.as_str()) {
                    (Value::Map(m), "Remove") if kind_of(recv).is_none() => {
                        let drop: Vec<String> = match rest.first() {
                            Some(Value::List(l)) => l.iter().map(|v| v.to_string()).collect(),
                            _ => Vec::new(),
                        };
                        let kept: BTreeMap<String, Value> = m
                            .iter()
                            .filter(|(k, _)| !drop.iter().any(|d| d == &***k))
                            .map(|(k, v)| (k.to_string(), v.clone()))
                            .collect();
                        Ok(Value::from(kept))
                    }
                    (Value::String(t), _) => time_method(t, &name, rest),
                    _ => Err(err(format!("{name} is not a method but has arguments"))),
                }
            }),
        ),
        (
            "index",
            f(|a| {
                let mut v = a.first().cloned().unwrap_or(Value::Nil);
                for k in a.get(1..).unwrap_or(&[]) {
                    v = match (&v, k) {
                        // A label map answers a missing key with "", as Go's map[string]string.
                        (Value::Map(m), Value::String(key)) if kind_of(&v).is_none() => {
                            m.get(&**key).cloned().unwrap_or_else(|| s(""))
                        }
                        _ => v.index(k)?,
                    };
                }
                Ok(v)
            }),
        ),
        ("toUpper", f(|a| Ok(s(&str_arg(a, 0).to_uppercase())))),
        ("toLower", f(|a| Ok(s(&str_arg(a, 0).to_lowercase())))),
        ("title", f(|a| Ok(s(&title(&str_arg(a, 0)))))),
        (
            "join",
            f(|a| {
                let sep = str_arg(a, 0);
                let items: Vec<String> = match a.get(1) {
                    Some(Value::List(l)) => l.iter().map(|v| v.to_string()).collect(),
                    _ => Vec::new(),
                };
                Ok(s(&items.join(&sep)))
            }),
        ),
        (
            "match",
            f(|a| {
                let re =
                    regex::Regex::new(&str_arg(a, 0)).map_err(|e| err(format!("match: {e}")))?;
                Ok(Value::Bool(re.is_match(&str_arg(a, 1))))
            }),
        ),
        (
            "reReplaceAll",
            f(|a| {
                let re = regex::Regex::new(&str_arg(a, 0))
                    .map_err(|e| err(format!("reReplaceAll: {e}")))?;
                Ok(s(&re.replace_all(&str_arg(a, 2), str_arg(a, 1).as_str())))
            }),
        ),
        ("safeHtml", f(|a| Ok(s(&str_arg(a, 0))))),
        (
            "stringSlice",
            f(|a| Ok(strings(a.iter().map(|v| s(&v.to_string()))))),
        ),
    ]
}

/// golang.org/x/text's title casing: first letter of each word upper, the rest lower.
fn title(t: &str) -> String {
    let mut out = String::with_capacity(t.len());
    let mut start = true;
    for c in t.chars() {
        if c.is_alphanumeric() || c == '\'' {
            if start {
                out.extend(c.to_uppercase());
            } else {
                out.extend(c.to_lowercase());
            }
            start = false;
        } else {
            out.push(c);
            start = true;
        }
    }
    out
}

// ---- time values: Go's time.Time as its String() text, with its common methods ----

/// Go's `time.Time.String()` of a UTC instant (ms); the zero time for None.
pub fn go_time(ms: Option<i64>) -> String {
    let Some(ms) = ms else {
        return "0001-01-01 00:00:00 +0000 UTC".into();
    };
    let (y, mo, d, h, mi, sec, milli) = civil(ms);
    let frac = if milli == 0 {
        String::new()
    } else {
        format!(".{milli:03}").trim_end_matches('0').to_string()
    };
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{sec:02}{frac} +0000 UTC")
}

fn civil(ms: i64) -> (i64, u32, u32, u32, u32, u32, u32) {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000) as u32;
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400) as u32;
    let (y, mo, d) = vigil_model::civil_from_days(days);
    (y, mo, d, rem / 3600, rem / 60 % 60, rem % 60, milli)
}

/// Parses [`go_time`]'s output back to ms (None for the zero time or another string).
fn parse_go_time(t: &str) -> Option<Option<i64>> {
    let t = t.strip_suffix(" +0000 UTC")?;
    if t == "0001-01-01 00:00:00" {
        return Some(None);
    }
    let (date, clock) = t.split_once(' ')?;
    let mut dp = date.split('-').map(|x| x.parse::<i64>());
    let (y, mo, d) = (dp.next()?.ok()?, dp.next()?.ok()?, dp.next()?.ok()?);
    let (hms, frac) = clock.split_once('.').unwrap_or((clock, ""));
    let mut cp = hms.split(':').map(|x| x.parse::<i64>());
    let (h, mi, sec) = (cp.next()?.ok()?, cp.next()?.ok()?, cp.next()?.ok()?);
    let milli: i64 = format!("{frac:0<3}").get(..3)?.parse().ok()?;
    let days = days_from_civil(y, mo, d);
    Some(Some(
        ((days * 86400 + h * 3600 + mi * 60 + sec) * 1000) + milli,
    ))
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn time_method(t: &str, name: &str, args: &[Value]) -> Result<Value, TemplateError> {
    let Some(ms) = parse_go_time(t) else {
        return Err(err(format!("can't evaluate field {name} in type string")));
    };
    match name {
        "UTC" | "Local" => Ok(s(t)),
        "Unix" => Ok(Value::Int(ms.map_or(-62135596800, |m| m.div_euclid(1000)))),
        "UnixMilli" => Ok(Value::Int(ms.map_or(-62135596800000, |m| m))),
        "IsZero" => Ok(Value::Bool(ms.is_none())),
        "Format" => {
            let layout = args.first().map(|v| v.to_string()).unwrap_or_default();
            Ok(s(&go_format(ms.unwrap_or(-62135596800000), &layout)))
        }
        _ => Err(err(format!(
            "can't evaluate field {name} in type time.Time"
        ))),
    }
}

/// Go's reference-time layouts (`2006-01-02T15:04:05Z07:00`, `Jan 2 15:04`, …), in UTC.
fn go_format(ms: i64, layout: &str) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const DAYS: [&str; 7] = [
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
    ];
    let (y, mo, d, h, mi, sec, milli) = civil(ms);
    let wd = DAYS[(ms.div_euclid(86_400_000)).rem_euclid(7) as usize];
    let month = MONTHS[(mo - 1) as usize];
    let h12 = if h % 12 == 0 { 12 } else { h % 12 };
    let tokens: &[(&str, String)] = &[
        ("January", month.to_string()),
        ("Monday", wd.to_string()),
        ("2006", format!("{y:04}")),
        ("Z07:00", "Z".into()),
        ("-07:00", "+00:00".into()),
        ("Z0700", "Z".into()),
        ("-0700", "+0000".into()),
        (".000", format!(".{milli:03}")),
        (".999", {
            let f = format!(".{milli:03}");
            let t = f.trim_end_matches('0');
            if t == "." {
                String::new()
            } else {
                t.to_string()
            }
        }),
        ("Jan", month[..3].to_string()),
        ("Mon", wd[..3].to_string()),
        ("MST", "UTC".into()),
        ("01", format!("{mo:02}")),
        ("02", format!("{d:02}")),
        ("_2", format!("{d:>2}")),
        ("15", format!("{h:02}")),
        ("03", format!("{h12:02}")),
        ("04", format!("{mi:02}")),
        ("05", format!("{sec:02}")),
        ("06", format!("{:02}", y % 100)),
        ("PM", if h >= 12 { "PM" } else { "AM" }.into()),
        ("pm", if h >= 12 { "pm" } else { "am" }.into()),
        ("1", mo.to_string()),
        ("2", d.to_string()),
        ("3", h12.to_string()),
        ("4", mi.to_string()),
        ("5", sec.to_string()),
    ];
    let mut out = String::new();
    let mut rest = layout;
    'outer: while !rest.is_empty() {
        for (tok, val) in tokens {
            if let Some(r) = rest.strip_prefix(tok) {
                out.push_str(val);
                rest = r;
                continue 'outer;
            }
        }
        let c = rest.chars().next().expect("rest is not empty");
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> Value {
        let a1 = alert(AlertData {
            status: "firing",
            labels: kv([
                ("alertname", "HighCPU"),
                ("instance", "host1"),
                ("job", "node"),
                ("severity", "critical"),
            ]),
            annotations: kv([("summary", "CPU is high"), ("runbook", "http://rb")]),
            starts_at: 1_672_628_645_600,
            ends_at: None,
            generator_url: "http://prom:9090/graph?g0.expr=up",
            fingerprint: "x".into(),
        });
        Data {
            receiver: "team-X \\(prod\\)".into(),
            status: "firing".into(),
            alerts: vec![a1],
            group_labels: kv([("alertname", "HighCPU")]),
            common_labels: kv([
                ("alertname", "HighCPU"),
                ("instance", "host1"),
                ("job", "node"),
                ("severity", "critical"),
            ]),
            common_annotations: kv([("summary", "CPU is high"), ("runbook", "http://rb")]),
            external_url: "http://am.example:9093".into(),
        }
        .value()
    }

    fn render(set: &mut TemplateSet, text: &str) -> String {
        let t = set.add("test", text).unwrap();
        set.render(&t, &data()).unwrap()
    }

    #[test]
    fn alertmanager_defaults() {
        let mut set = TemplateSet::new(&[]).unwrap();
        assert_eq!(
            render(&mut set, r#"{{ template "__subject" . }}"#),
            "[FIRING:1] HighCPU (host1 node critical)"
        );
        assert_eq!(
            render(&mut set, r#"{{ template "__alertmanagerURL" . }}"#),
            "http://am.example:9093/#/alerts?receiver=team-X+%5C%28prod%5C%29"
        );
        assert_eq!(
            render(
                &mut set,
                r#"{{ template "opsgenie.default.description" . }}"#
            ),
            "http://rb CPU is high\nAlerts Firing:\nLabels:\n - alertname = HighCPU\n - instance = host1\n - job = node\n - severity = critical\nAnnotations:\n - runbook = http://rb\n - summary = CPU is high\nSource: http://prom:9090/graph?g0.expr=up\n\n"
        );
    }

    #[test]
    fn methods_fields_and_functions() {
        let mut set = TemplateSet::new(&[]).unwrap();
        assert_eq!(
            render(
                &mut set,
                "{{ range .Alerts.Firing }}{{ .Labels.instance }}|{{ .Labels.nope }}|{{ index .Labels \"job\" }}{{ end }}"
            ),
            "host1||node"
        );
        assert_eq!(
            render(
                &mut set,
                "{{ .CommonLabels.Remove .GroupLabels.Names | len }}"
            ),
            "3"
        );
        assert_eq!(
            render(&mut set, "{{ (index .Alerts 0).StartsAt }}"),
            "2023-01-02 03:04:05.6 +0000 UTC"
        );
        assert_eq!(
            render(
                &mut set,
                "{{ range .Alerts }}{{ .StartsAt.Format \"2006-01-02T15:04:05Z07:00 Mon Jan _2\" }}{{ end }}"
            ),
            "2023-01-02T03:04:05Z Mon Jan  2"
        );
        assert_eq!(
            render(
                &mut set,
                r#"{{ .Status | toUpper }} {{ title "hELLO wORLD" }} {{ reReplaceAll "(h)ost" "$1" "host1" }} {{ stringSlice "a" "b" | join "," }}"#
            ),
            "FIRING Hello World h1 a,b"
        );
        let t = set.add("t", "{{ .Nope }}").unwrap();
        assert!(
            set.render(&t, &data())
                .unwrap_err()
                .contains("can't evaluate field Nope")
        );
        assert!(
            set.add("t", "{{ .X ").is_err(),
            "parse errors surface at load"
        );
    }

    #[test]
    fn user_defines_override_defaults() {
        let files = vec![(
            "my.tmpl".to_string(),
            r#"{{ define "__subject" }}custom {{ .GroupLabels.alertname }}{{ end }}"#.to_string(),
        )];
        let mut set = TemplateSet::new(&files).unwrap();
        assert_eq!(
            render(&mut set, r#"{{ template "slack.default.title" . }}"#),
            "custom HighCPU"
        );
    }
}
