//! Loki push bodies: protobuf (snappy block) and JSON, and the stream selector strings of protobuf
//! pushes (`{app="api", env="prod"}`).

use serde::Deserialize;

/// Loki's `PushRequest` (pkg/push/push.proto): only the fields a client sends.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PushRequest {
    #[prost(message, repeated, tag = "1")]
    pub streams: Vec<StreamAdapter>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamAdapter {
    /// The stream's labels as a selector string.
    #[prost(string, tag = "1")]
    pub labels: String,
    #[prost(message, repeated, tag = "2")]
    pub entries: Vec<EntryAdapter>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct EntryAdapter {
    #[prost(message, optional, tag = "1")]
    pub timestamp: Option<Timestamp>,
    #[prost(string, tag = "2")]
    pub line: String,
    #[prost(message, repeated, tag = "3")]
    pub structured_metadata: Vec<LabelPair>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LabelPair {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `google.protobuf.Timestamp`.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// A decoded push, before validation.
#[derive(Debug, Default)]
pub struct RawPush {
    pub streams: Vec<RawStream>,
}

#[derive(Debug)]
pub struct RawStream {
    /// Label pairs as sent (unvalidated, possibly unsorted).
    pub labels: Vec<(String, String)>,
    /// What the client sent, for error messages.
    pub selector: String,
    pub entries: Vec<RawEntry>,
}

#[derive(Debug)]
pub struct RawEntry {
    pub ts: i64,
    pub line: String,
    pub metadata: Vec<(String, String)>,
}

/// Decodes a snappy-compressed protobuf push.
pub fn protobuf(body: &[u8], max_decoded: usize) -> Result<RawPush, String> {
    let len = snap::raw::decompress_len(body).map_err(|e| format!("snappy: {e}"))?;
    if len > max_decoded {
        return Err(format!(
            "the decompressed body would be {len} bytes, over the {max_decoded} byte limit"
        ));
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| format!("snappy: {e}"))?;
    let req =
        <PushRequest as prost::Message>::decode(&raw[..]).map_err(|e| format!("protobuf: {e}"))?;
    let mut out = RawPush::default();
    for s in req.streams {
        let labels =
            parse_selector(&s.labels).map_err(|e| format!("stream labels {:?}: {e}", s.labels))?;
        let entries = s
            .entries
            .into_iter()
            .map(|e| {
                let ts = e
                    .timestamp
                    .map(|t| t.seconds.saturating_mul(1_000_000_000) + t.nanos as i64)
                    .unwrap_or(0);
                RawEntry {
                    ts,
                    line: e.line,
                    metadata: e
                        .structured_metadata
                        .into_iter()
                        .map(|p| (p.name, p.value))
                        .collect(),
                }
            })
            .collect();
        out.streams.push(RawStream {
            labels,
            selector: s.labels,
            entries,
        });
    }
    Ok(out)
}

#[derive(Deserialize)]
struct JsonPush {
    streams: Vec<JsonStream>,
}

#[derive(Deserialize)]
struct JsonStream {
    #[serde(default)]
    stream: Option<std::collections::BTreeMap<String, String>>,
    /// Loki's legacy JSON (`/api/prom/push`) names the selector `labels` and the entries `entries`.
    #[serde(default)]
    labels: Option<String>,
    #[serde(default)]
    values: Vec<JsonValue>,
    #[serde(default)]
    entries: Vec<LegacyEntry>,
}

/// One element of `values`, decoded in place (the line moved, not copied): `["<ns>", "line"]` or
/// `["<ns>", "line", {metadata}]`. A well-formed element of the wrong shape keeps its reason, which
/// is reported with its position; JSON syntax errors fail the whole body.
struct JsonValue(Result<RawEntry, String>);

impl<'de> Deserialize<'de> for JsonValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

/// What a `values` element must look like, for error messages.
const VALUE_SHAPE: &str = r#"["<ns>", "line"] or ["<ns>", "line", {metadata}]"#;

/// An element of the wrong shape: kept as the reason (its position is added by [`json`]).
fn wrong_shape(got: impl std::fmt::Display) -> JsonValue {
    JsonValue(Err(format!("expected {VALUE_SHAPE}, got {got}")))
}

struct ValueVisitor;

impl<'de> serde::de::Visitor<'de> for ValueVisitor {
    type Value = JsonValue;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(VALUE_SHAPE)
    }

    fn visit_bool<E>(self, v: bool) -> Result<JsonValue, E> {
        Ok(wrong_shape(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<JsonValue, E> {
        Ok(wrong_shape(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<JsonValue, E> {
        Ok(wrong_shape(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<JsonValue, E> {
        Ok(wrong_shape(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<JsonValue, E> {
        Ok(wrong_shape(format_args!("{v:?}")))
    }

    fn visit_unit<E>(self) -> Result<JsonValue, E> {
        Ok(wrong_shape("null"))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<JsonValue, A::Error> {
        while map
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        Ok(wrong_shape("an object"))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<JsonValue, A::Error> {
        let ts: Option<serde_json::Value> = seq.next_element()?;
        let line: Option<serde_json::Value> = seq.next_element()?;
        let meta: Option<serde_json::Value> = seq.next_element()?;
        let mut extra = 0;
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
            extra += 1;
        }
        match (ts, line) {
            (Some(ts), Some(line)) if extra == 0 => Ok(JsonValue(entry(ts, line, meta))),
            (ts, line) => {
                let n = usize::from(ts.is_some()) + usize::from(line.is_some());
                let n = n + usize::from(meta.is_some()) + extra;
                Ok(wrong_shape(format_args!("{n} elements")))
            }
        }
    }
}

fn entry(
    ts: serde_json::Value,
    line: serde_json::Value,
    meta: Option<serde_json::Value>,
) -> Result<RawEntry, String> {
    let ts = json_ts(&ts)?;
    let line = match line {
        serde_json::Value::String(s) => s,
        other => return Err(format!("the line must be a string, got {other}")),
    };
    let mut metadata = Vec::new();
    if let Some(m) = meta {
        let serde_json::Value::Object(obj) = m else {
            return Err("structured metadata must be an object".into());
        };
        for (k, v) in obj {
            let serde_json::Value::String(v) = v else {
                return Err(format!("structured metadata {k:?} must be a string"));
            };
            metadata.push((k, v));
        }
    }
    Ok(RawEntry { ts, line, metadata })
}

#[derive(Deserialize)]
struct LegacyEntry {
    #[serde(alias = "timestamp")]
    ts: String,
    line: String,
}

/// Parses a timestamp as Loki's JSON push takes it: nanoseconds as a string (or a number); the legacy
/// format's RFC 3339 strings are accepted too.
fn json_ts(v: &serde_json::Value) -> Result<i64, String> {
    match v {
        serde_json::Value::String(s) => {
            if let Ok(n) = s.parse::<i64>() {
                return Ok(n);
            }
            rfc3339_ns(s).ok_or_else(|| {
                format!("timestamp {s:?} is neither nanoseconds since the epoch nor RFC 3339")
            })
        }
        serde_json::Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| format!("timestamp {n} is not an integer number of nanoseconds")),
        other => Err(format!(
            "timestamp must be a string of nanoseconds, got {other}"
        )),
    }
}

pub(crate) fn rfc3339_ns(s: &str) -> Option<i64> {
    let ms = vigil_model::parse_api_time(s).ok()?;
    // parse_api_time keeps milliseconds; recover the sub-millisecond digits for exact nanoseconds.
    let frac_ns = s
        .split_once('.')
        .map(|(_, rest)| {
            let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
            let mut d = digits.chars().take(9).collect::<String>();
            while d.len() < 9 {
                d.push('0');
            }
            d.parse::<i64>().unwrap_or(0) % 1_000_000
        })
        .unwrap_or(0);
    Some(ms * 1_000_000 + frac_ns)
}

/// Decodes a JSON push: `{"streams":[{"stream":{…},"values":[["<ns>","line",{metadata}]]}]}`.
pub fn json(body: &[u8]) -> Result<RawPush, String> {
    let p: JsonPush = serde_json::from_slice(body).map_err(|e| format!("JSON: {e}"))?;
    let mut out = RawPush::default();
    for (i, s) in p.streams.into_iter().enumerate() {
        let (labels, selector) = match (s.stream, s.labels) {
            (Some(m), _) => {
                let sel = format!(
                    "{{{}}}",
                    m.iter()
                        .map(|(k, v)| format!("{k}={v:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                (m.into_iter().collect::<Vec<_>>(), sel)
            }
            (None, Some(l)) => (
                parse_selector(&l).map_err(|e| format!("streams[{i}].labels {l:?}: {e}"))?,
                l,
            ),
            (None, None) => {
                return Err(format!("streams[{i}]: no \"stream\" labels"));
            }
        };
        let mut entries = Vec::with_capacity(s.values.len() + s.entries.len());
        for (j, v) in s.values.into_iter().enumerate() {
            entries.push(v.0.map_err(|e| format!("streams[{i}].values[{j}]: {e}"))?);
        }
        for (j, e) in s.entries.into_iter().enumerate() {
            let ts = json_ts(&serde_json::Value::String(e.ts))
                .map_err(|err| format!("streams[{i}].entries[{j}]: {err}"))?;
            entries.push(RawEntry {
                ts,
                line: e.line,
                metadata: Vec::new(),
            });
        }
        out.streams.push(RawStream {
            labels,
            selector,
            entries,
        });
    }
    Ok(out)
}

/// Parses `{name="value", …}` (only `=`; values quoted with `"`, `'` or backticks, Go escapes). Runs
/// for every stream of every protobuf push, so it works on the bytes without copying them.
pub fn parse_selector(s: &str) -> Result<Vec<(String, String)>, String> {
    let inner = s
        .trim()
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .ok_or_else(|| "expected {name=\"value\", …}".to_string())?;
    let b = inner.as_bytes();
    let ws = |i: &mut usize| {
        while *i < b.len() && b[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    let mut i = 0;
    let mut out = Vec::new();
    loop {
        ws(&mut i);
        if i >= b.len() {
            break;
        }
        let start = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'.') {
            i += 1;
        }
        let name = &inner[start..i];
        if name.is_empty() {
            return Err(format!("expected a label name at offset {start}"));
        }
        ws(&mut i);
        if b.get(i) != Some(&b'=') {
            return Err(format!("expected = after label {name:?}"));
        }
        i += 1;
        if b.get(i) == Some(&b'~') {
            return Err(format!("label {name:?}: a stream's labels use =, not =~"));
        }
        ws(&mut i);
        let (value, used) = vigil_model::unquote_prefix(&inner[i..], &['"', '\'', '`'])
            .map_err(|e| format!("label {name:?}: {e}"))?;
        i += used;
        out.push((name.to_string(), value));
        ws(&mut i);
        if i < b.len() {
            if b[i] != b',' {
                return Err(format!("expected , or }} at offset {i}"));
            }
            i += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn selectors() {
        assert_eq!(
            parse_selector(r#"{app="api", env='prod', msg="a\"b\n"}"#).unwrap(),
            vec![
                ("app".into(), "api".into()),
                ("env".into(), "prod".into()),
                ("msg".into(), "a\"b\n".into())
            ]
        );
        assert_eq!(parse_selector("{}").unwrap(), vec![]);
        assert!(parse_selector(r#"{app=~"x"}"#).is_err());
        assert!(parse_selector(r#"app="x""#).is_err());
        assert!(parse_selector(r#"{app="x}"#).is_err());
        assert!(parse_selector(r#"{1app="x" x}"#).is_err());
    }

    #[test]
    fn json_push() {
        let p = json(br#"{"streams":[{"stream":{"app":"api"},"values":[["1700000000000000001","hello"],["1700000000000000002","with meta",{"trace_id":"abc"}]]}]}"#).unwrap();
        assert_eq!(p.streams.len(), 1);
        let s = &p.streams[0];
        assert_eq!(s.labels, vec![("app".into(), "api".into())]);
        assert_eq!(s.entries[0].ts, 1_700_000_000_000_000_001);
        assert_eq!(
            s.entries[1].metadata,
            vec![("trace_id".into(), "abc".into())]
        );
        for bad in [
            &br#"{"streams":[{"stream":{"app":"api"},"values":[["x","hello"]]}]}"#[..],
            br#"{"streams":[{"stream":{"app":"api"},"values":[["1"]]}]}"#,
            br#"{"streams":[{"stream":{"app":"api"},"values":[["1", 5]]}]}"#,
            br#"{"streams":[{"values":[["1","x"]]}]}"#,
            br#"{"streams":[{"stream":{"app":"api"},"values":[["1","x"]]}"#,
        ] {
            assert!(json(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        // A wrong shape is reported with the element's position.
        for (bad, why) in [
            (r#"["1","ok"],["x","hello"]"#, "timestamp \"x\""),
            (r#"["1","ok"],["1"]"#, "got 1 elements"),
            (r#"["1","ok"],["1","x",{},4]"#, "got 4 elements"),
            (r#"["1","ok"],["1",5]"#, "the line must be a string, got 5"),
            (r#"["1","ok"],["1","x",[]]"#, "must be an object"),
            (
                r#"["1","ok"],["1","x",{"k":1}]"#,
                "metadata \"k\" must be a string",
            ),
            (r#"["1","ok"],[1.5,"x"]"#, "not an integer"),
            (r#"["1","ok"],"x""#, "got \"x\""),
            (r#"["1","ok"],null"#, "got null"),
            (r#"["1","ok"],{"ts":"1","line":"x"}"#, "got an object"),
            (r#"["1","ok"],17"#, "got 17"),
        ] {
            let body = format!(r#"{{"streams":[{{"stream":{{"app":"api"}},"values":[{bad}]}}]}}"#);
            let e = json(body.as_bytes()).unwrap_err();
            assert!(
                e.starts_with("streams[0].values[1]: ") && e.contains(why),
                "{bad}: {e}"
            );
        }
        // Numbers as timestamps, escapes in lines, metadata (sorted by name, as serde_json's
        // objects are).
        let p = json(br#"{"streams":[{"stream":{"app":"api"},"values":[[1700000000000000003,"a\"b\u00e9\n",{"z":"1","a":"2"}]]}]}"#).unwrap();
        let e = &p.streams[0].entries[0];
        assert_eq!(
            (e.ts, e.line.as_str()),
            (1_700_000_000_000_000_003, "a\"b\u{e9}\n")
        );
        assert_eq!(
            e.metadata,
            vec![("a".into(), "2".into()), ("z".into(), "1".into())]
        );
        let legacy = json(br#"{"streams":[{"labels":"{app=\"old\"}","entries":[{"ts":"2024-01-02T03:04:05.123456789Z","line":"x"}]}]}"#).unwrap();
        assert_eq!(legacy.streams[0].entries[0].ts, 1_704_164_645_123_456_789);
    }

    #[test]
    fn protobuf_push() {
        let req = PushRequest {
            streams: vec![StreamAdapter {
                labels: r#"{app="api"}"#.into(),
                entries: vec![EntryAdapter {
                    timestamp: Some(Timestamp {
                        seconds: 1_700_000_000,
                        nanos: 5,
                    }),
                    line: "hello".into(),
                    structured_metadata: vec![LabelPair {
                        name: "trace_id".into(),
                        value: "t1".into(),
                    }],
                }],
            }],
        };
        let body = snap::raw::Encoder::new()
            .compress_vec(&req.encode_to_vec())
            .unwrap();
        let p = protobuf(&body, 1 << 20).unwrap();
        assert_eq!(p.streams[0].entries[0].ts, 1_700_000_000_000_000_005);
        assert_eq!(p.streams[0].entries[0].line, "hello");
        assert!(protobuf(b"not snappy at all", 1 << 20).is_err());
        let not_proto = snap::raw::Encoder::new()
            .compress_vec(b"\xff\xff\xff")
            .unwrap();
        assert!(protobuf(&not_proto, 1 << 20).is_err());
    }
}
