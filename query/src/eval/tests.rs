//! Engine tests over an in-memory reader.

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
