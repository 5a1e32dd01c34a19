use super::*;

const TEXT: &str = include_str!("../../../tests/fixtures/exposition/text-0.0.4.prom");
const OM: &str = include_str!("../../../tests/fixtures/exposition/openmetrics-1.0.om");
const EXPECTED: &str = include_str!("../../../tests/fixtures/exposition/expected-series.json");

/// Formats a value the way the Prometheus API prints it (Go's 'f' -1 / 'e' formatting).
fn prom_value(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if v == 0.0 && v.is_sign_negative() {
        return "-0".into();
    }
    let a = v.abs();
    if a != 0.0 && !(1e-4..1e21).contains(&a) {
        let s = format!("{v:e}");
        // Go prints exponents with a sign and at least two digits: 1e+308.
        let (m, e) = s.split_once('e').unwrap();
        let (sign, digits) = if let Some(d) = e.strip_prefix('-') {
            ("-", d)
        } else {
            ("+", e)
        };
        return format!("{m}e{sign}{digits:0>2}");
    }
    format!("{v}")
}

fn parse_all(src: &str, f: Format) -> Vec<(std::collections::BTreeMap<String, String>, String)> {
    let mut out = Vec::new();
    for e in Parser::new(src, f) {
        if let Entry::Sample(s) = e.unwrap() {
            let mut m = std::collections::BTreeMap::new();
            m.insert("__name__".to_string(), s.name.to_string());
            for (n, v) in s.labels {
                if !v.is_empty() {
                    m.insert(n.to_string(), v.into_owned());
                }
            }
            out.push((m, prom_value(s.value)));
        }
    }
    out.sort();
    out
}

fn expected(key: &str) -> Vec<(std::collections::BTreeMap<String, String>, String)> {
    let v: serde_json::Value = serde_json::from_str(EXPECTED).unwrap();
    let mut out: Vec<_> = v[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let labels = s["labels"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect();
            (labels, s["value"].as_str().unwrap().to_string())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn text_fixture_matches_what_prometheus_stores() {
    assert_eq!(parse_all(TEXT, Format::PrometheusText), expected("text"));
}

#[test]
fn openmetrics_fixture_matches_what_prometheus_stores() {
    assert_eq!(parse_all(OM, Format::OpenMetrics), expected("om"));
}

#[test]
fn openmetrics_metadata_and_exemplars() {
    let entries: Vec<Entry> = Parser::new(OM, Format::OpenMetrics)
        .map(|e| e.unwrap())
        .collect();
    assert!(entries.contains(&Entry::Type {
        name: "fx_feature",
        kind: MetricType::StateSet
    }));
    assert!(entries.contains(&Entry::Unit {
        name: "fx_queue_wait_seconds",
        unit: "seconds"
    }));
    assert!(entries.contains(&Entry::Help {
        name: "fx_jobs",
        text: Cow::Borrowed("Jobs processed, with an escaped quote \" in help.")
    }));
    let ex: Vec<&Exemplar> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Sample(s) => s.exemplar.as_ref(),
            _ => None,
        })
        .collect();
    assert_eq!(ex.len(), 3);
    assert_eq!(
        ex[0].labels,
        vec![("trace_id", Cow::Borrowed("4bf92f3577b34da6"))]
    );
    assert_eq!(ex[2].value, 3.2);
}

#[test]
fn help_unescaping_in_text() {
    let e: Vec<Entry> = Parser::new(TEXT, Format::PrometheusText)
        .map(|e| e.unwrap())
        .collect();
    assert!(e.contains(&Entry::Help {
        name: "fx_requests_total",
        text: Cow::Owned("Requests served, with a backslash \\ and a newline \n in help.".into())
    }));
}

#[test]
fn timestamps() {
    fn s(src: &str, f: Format) -> ParsedSample<'_> {
        match Parser::new(src, f).next().unwrap().unwrap() {
            Entry::Sample(s) => s,
            o => panic!("{o:?}"),
        }
    }
    assert_eq!(
        s("a 1 1700000000123\n", Format::PrometheusText).timestamp_ms,
        Some(1_700_000_000_123)
    );
    assert_eq!(
        s("a 1 1700000000.1234\n# EOF\n", Format::OpenMetrics).timestamp_ms,
        Some(1_700_000_000_123)
    );
    assert_eq!(
        s("a{b=\"c\"} 1\n", Format::PrometheusText).series,
        "a{b=\"c\"}"
    );
}

#[test]
fn nan_is_prometheus_nan_not_stale_marker() {
    let Some(Ok(Entry::Sample(s))) = Parser::new("a NaN\n", Format::PrometheusText).next() else {
        panic!()
    };
    assert_eq!(s.value.to_bits(), NORMAL_NAN_BITS);
}

fn first_error(src: &str, f: Format) -> ParseError {
    Parser::new(src, f)
        .find_map(|e| e.err())
        .unwrap_or_else(|| panic!("no error for {src:?}"))
}

#[test]
fn errors_name_line_and_column() {
    let e = first_error("ok 1\n  leading 1\n", Format::PrometheusText);
    assert_eq!((e.line, e.column), (2, 1));
    let e = first_error("a{b=\"c} 1\n", Format::PrometheusText);
    assert!(e.message.contains("not terminated"), "{e}");
    let e = first_error("a 1 NaN\n", Format::PrometheusText);
    assert!(e.message.contains("timestamp"), "{e}");
    assert_eq!(e.column, 5);
    let e = first_error("a{b=\"1\",b=\"2\"} 1\n", Format::PrometheusText);
    assert!(e.message.contains("duplicate label"), "{e}");
    let e = first_error("a abc\n", Format::PrometheusText);
    assert!(e.message.contains("invalid value"), "{e}");
    let e = first_error("# TYPE a bogus\n", Format::PrometheusText);
    assert!(e.message.contains("invalid metric type"), "{e}");
    let e = first_error("a{1b=\"x\"} 1\n", Format::PrometheusText);
    assert!(e.message.contains("label name"), "{e}");
}

#[test]
fn openmetrics_requires_eof_and_nothing_after() {
    assert!(
        first_error("a 1\n", Format::OpenMetrics)
            .message
            .contains("# EOF")
    );
    assert!(
        first_error("a 1\n# EOF\nb 2\n", Format::OpenMetrics)
            .message
            .contains("after # EOF")
    );
    assert!(
        first_error("a 1 NaN\n# EOF\n", Format::OpenMetrics)
            .message
            .contains("timestamp")
    );
    assert!(
        first_error("# UNIT a_bytes seconds\n# EOF\n", Format::OpenMetrics)
            .message
            .contains("suffix")
    );
    assert_eq!(Parser::new("# EOF", Format::OpenMetrics).count(), 0);
}

#[test]
fn plain_comments_ignored_in_text_only() {
    assert_eq!(
        Parser::new("# hello\n#\n\na 1\n", Format::PrometheusText)
            .filter(|e| e.is_ok())
            .count(),
        1
    );
    assert!(
        first_error("# hello\n# EOF\n", Format::OpenMetrics)
            .message
            .contains("HELP")
    );
}

#[test]
fn content_type_negotiation() {
    assert_eq!(
        Format::from_content_type(Some(
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        )),
        Format::OpenMetrics
    );
    assert_eq!(
        Format::from_content_type(Some("text/plain; version=0.0.4")),
        Format::PrometheusText
    );
    assert_eq!(
        Format::from_content_type(Some("application/json")),
        Format::PrometheusText
    );
    assert_eq!(Format::from_content_type(None), Format::PrometheusText);
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    fn escape(v: &str) -> String {
        v.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    }

    proptest! {
        /// Any label value survives escaping and parsing, in both formats.
        #[test]
        fn label_values_round_trip(v in "\\PC*", val in any::<f64>().prop_filter("finite", |f| f.is_finite())) {
            for f in [Format::PrometheusText, Format::OpenMetrics] {
                let page = format!("m{{l=\"{}\"}} {val:?}\n# EOF\n", escape(&v));
                let page = if f == Format::PrometheusText { page.replace("# EOF\n", "") } else { page };
                let e: Vec<_> = Parser::new(&page, f).collect();
                prop_assert_eq!(e.len(), 1);
                let Ok(Entry::Sample(s)) = &e[0] else { panic!("{:?}", e) };
                prop_assert_eq!(s.labels[0].1.as_ref(), v.as_str());
                prop_assert_eq!(s.value.to_bits(), val.to_bits());
            }
        }

        /// The parser never panics on arbitrary input.
        #[test]
        fn never_panics(page in "\\PC{0,200}") {
            for f in [Format::PrometheusText, Format::OpenMetrics] {
                for _ in Parser::new(&page, f) {}
            }
        }
    }
}
