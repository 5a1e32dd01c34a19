//! `series`, `labels`, `label/<name>/values`, `metadata`, `format_query`.

use super::*;

pub(super) fn collect_selectors(
    e: &promql_parser::parser::Expr,
    out: &mut Vec<Vec<Matcher>>,
) -> Result<(), ApiError> {
    use promql_parser::parser::Expr;
    match e {
        Expr::VectorSelector(vs) => out.push(eval::selector_matchers(vs)?),
        Expr::MatrixSelector(ms) => out.push(eval::selector_matchers(&ms.vs)?),
        Expr::Paren(p) => collect_selectors(&p.expr, out)?,
        Expr::Aggregate(a) => collect_selectors(&a.expr, out)?,
        Expr::Unary(u) => collect_selectors(&u.expr, out)?,
        Expr::Binary(b) => {
            collect_selectors(&b.lhs, out)?;
            collect_selectors(&b.rhs, out)?;
        }
        Expr::Subquery(s) => collect_selectors(&s.expr, out)?,
        Expr::Call(c) => {
            for a in &c.args.args {
                collect_selectors(a, out)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// A list answer of the metadata endpoints: the items, plus Prometheus's warning when `limit` cut it.
pub(super) fn list_response<T: serde::Serialize>(
    res: Result<(Vec<T>, usize), ApiError>,
) -> Response {
    match res {
        Ok((items, limit)) => {
            let warnings: Vec<String> = if limit > 0 && items.len() >= limit {
                vec!["results truncated due to limit".into()]
            } else {
                Vec::new()
            };
            success_raw(
                serde_json::to_string(&items).unwrap_or_else(|_| "[]".into()),
                &warnings,
            )
        }
        Err(e) => e.into_response(),
    }
}

pub(super) async fn series<R: MetricsReader>(
    State(st): State<ApiState<R>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::from(q, &headers, &body);
    list_response(
        async {
            let m = p.matches()?;
            if m.is_empty() {
                return Err(ApiError::bad_data("no match[] parameter provided"));
            }
            let (start, end, limit) = p.span_and_limit()?;
            Ok((st.reader.series(&m, start, end, limit).await?, limit))
        }
        .await,
    )
}

pub(super) async fn labels<R: MetricsReader>(
    State(st): State<ApiState<R>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::from(q, &headers, &body);
    list_response(
        async {
            let m = p.matches()?;
            let (start, end, limit) = p.span_and_limit()?;
            Ok((st.reader.label_names(&m, start, end, limit).await?, limit))
        }
        .await,
    )
}

pub(super) async fn label_values<R: MetricsReader>(
    State(st): State<ApiState<R>>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::from(q, &headers, &body);
    list_response(
        async {
            if name != "__name__" && !is_valid_label_name(&name) {
                return Err(ApiError::bad_data(format!("invalid label name: {name:?}")));
            }
            let m = p.matches()?;
            let (start, end, limit) = p.span_and_limit()?;
            Ok((
                st.reader.label_values(&name, &m, start, end, limit).await?,
                limit,
            ))
        }
        .await,
    )
}
