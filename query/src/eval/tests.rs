//! Engine tests over an in-memory reader.

use super::parse::{position_by, rename_functions};
use super::*;

#[test]
fn renames_2x_functions_outside_strings() {
    assert_eq!(
        rename_functions("holt_winters(x[5m], 0.5, 0.5)"),
        "double_exponential_smoothing(x[5m], 0.5, 0.5)"
    );
    assert_eq!(
        rename_functions("x{a=\"holt_winters(\"}"),
        "x{a=\"holt_winters(\"}"
    );
    assert_eq!(rename_functions("my_holt_winters(x)"), "my_holt_winters(x)");
    assert!(parse("holt_winters(x[5m], 0.5, 0.5)").is_ok());
    // Non-ASCII inside string literals survives the rewrite.
    assert_eq!(
        rename_functions("holt_winters(x{city=\"Zürich\", s='日本'}[5m], 0.5, 0.5)"),
        "double_exponential_smoothing(x{city=\"Zürich\", s='日本'}[5m], 0.5, 0.5)"
    );
    assert_eq!(
        rename_functions("x{a=\"é\\\"holt_winters(\"} + holt_winters (y[1m], 0.1, 0.2)"),
        "x{a=\"é\\\"holt_winters(\"} + double_exponential_smoothing (y[1m], 0.1, 0.2)"
    );
}

#[test]
fn error_positions_of_long_queries_take_few_parses() {
    // Thousands of tokens: the position is found with a handful of parses, not one per token.
    let long = format!("{} +", vec!["up"; 4000].join(" + "));
    let mut n = 0;
    let (line, col) = position_by(&long, "unexpected end of input", &mut |p| {
        n += 1;
        promql_parser::parser::parse(p).is_ok()
    });
    assert_eq!(line, 1);
    assert!(col > 1);
    let mut n = 0;
    position_by(&long, "something else", &mut |p| {
        n += 1;
        promql_parser::parser::parse(p).is_ok()
    });
    assert!(n < 40, "{n} parses for a 4000-token query");
}

#[test]
fn matchers_from_selector() {
    let Expr::VectorSelector(vs) = parse("up{job=~\"a|b\", x!=\"\"}").unwrap() else {
        panic!()
    };
    let m = selector_matchers(&vs).unwrap();
    assert_eq!(m.len(), 3);
    assert_eq!(m[0], Matcher::equal("__name__", "up"));
    assert!(matches!(parse("{job=~\".*\"}"), Err(EvalError::BadData(_))));
}

#[test]
fn parse_errors_carry_positions() {
    let msg = |q: &str| match parse(q) {
        Err(EvalError::BadData(m)) => m,
        other => panic!("{q}: {other:?}"),
    };
    assert!(
        msg("foo bar").contains(": 1:5: parse error"),
        "{}",
        msg("foo bar")
    );
    assert!(
        msg("sum(rate(x[5m])").contains(": 1:16: parse error: unclosed left parenthesis"),
        "{}",
        msg("sum(rate(x[5m])")
    );
    assert!(
        msg("rate(x[5m]) +\n  nope(x)").contains(": 2:3: parse error"),
        "{}",
        msg("rate(x[5m]) +\n  nope(x)")
    );
    assert!(
        msg("x{a=~\"(\"}").contains(": 1:6: parse error"),
        "{}",
        msg("x{a=~\"(\"}")
    );
}
