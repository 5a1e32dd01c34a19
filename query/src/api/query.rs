//! `query`, `query_range`, `query_exemplars`: parameters, limits, evaluation, answers.

use super::*;

/// Evaluation options of one request: the `timeout` parameter can only shorten the server's timeout.
pub(super) fn eval_options(st_opts: &ApiOptions, p: &Params) -> Result<EvalOptions, ApiError> {
    let mut o = st_opts.eval.clone();
    if let Some(t) = p.get("timeout") {
        let ms = parse_api_duration(t).map_err(|_| {
            ApiError::bad_data(format!(
                "invalid parameter \"timeout\": cannot parse \"{t}\" to a valid duration"
            ))
        })?;
        if ms > 0 {
            o.timeout = o.timeout.min(std::time::Duration::from_millis(ms as u64));
        }
    }
    Ok(o)
}

/// The `stats` object Prometheus adds to `data` when asked with `stats=all`.
pub(super) fn stats_json(s: &QueryStats, total: f64) -> String {
    json!({
        "timings": {
            "evalTotalTime": total,
            "resultSortTime": 0.0,
            "queryPreparationTime": s.load_seconds,
            "innerEvalTime": s.eval_seconds,
            "execQueueTime": 0.0,
            "execTotalTime": total,
        },
        "samples": {
            "totalQueryableSamples": s.samples_loaded,
            "peakSamples": s.peak_points,
        },
    })
    .to_string()
}

/// Answers a query: the result, its stats when asked, and a log line when it was slow.
pub(super) fn answer(
    opts: &ApiOptions,
    p: &Params,
    q: &str,
    v: &Value,
    stats: &QueryStats,
    started: Instant,
) -> Response {
    let total = started.elapsed();
    if total >= opts.slow_query_threshold {
        tracing::info!(
            query = q,
            seconds = total.as_secs_f64(),
            series = stats.series_loaded,
            samples = stats.samples_loaded,
            "slow query"
        );
    }
    let mut data = value_json(v);
    if p.get("stats").is_some() {
        data.pop();
        data.push_str(",\"stats\":");
        data.push_str(&stats_json(stats, total.as_secs_f64()));
        data.push('}');
    }
    success_raw(data, &[])
}

pub(super) async fn query<R: MetricsReader>(
    State(st): State<ApiState<R>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::from(q, &headers, &body);
    let started = Instant::now();
    let run = async {
        let qs = p
            .get("query")
            .ok_or_else(|| ApiError::bad_data("invalid parameter \"query\": query is empty"))?;
        let t = p.time("time", now_ms())?;
        let opts = eval_options(&st.opts, &p)?;
        let expr = eval::parse(qs)?;
        let (v, stats) = eval::instant(st.reader.as_ref(), expr, t, &opts).await?;
        Ok::<_, ApiError>((qs, v, stats))
    };
    match run.await {
        Ok((qs, v, stats)) => answer(&st.opts, &p, qs, &v, &stats, started),
        Err(e) => e.into_response(),
    }
}

pub(super) async fn query_range<R: MetricsReader>(
    State(st): State<ApiState<R>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::from(q, &headers, &body);
    let started = Instant::now();
    let run = async {
        let qs = p
            .get("query")
            .ok_or_else(|| ApiError::bad_data("invalid parameter \"query\": query is empty"))?;
        let start = p
            .get("start")
            .ok_or_else(|| ApiError::bad_data("invalid parameter \"start\": missing"))?;
        let start = p.time("start", 0).map_err(|_| {
            ApiError::bad_data(format!(
                "invalid parameter \"start\": cannot parse \"{start}\" to a valid timestamp"
            ))
        })?;
        let end = p
            .get("end")
            .ok_or_else(|| ApiError::bad_data("invalid parameter \"end\": missing"))?;
        let end = p.time("end", 0).map_err(|_| {
            ApiError::bad_data(format!(
                "invalid parameter \"end\": cannot parse \"{end}\" to a valid timestamp"
            ))
        })?;
        if end < start {
            return Err(ApiError::bad_data(
                "invalid parameter \"end\": end timestamp must not be before start time",
            ));
        }
        let step_s = p
            .get("step")
            .ok_or_else(|| ApiError::bad_data("invalid parameter \"step\": missing"))?;
        let step = parse_api_duration(step_s).map_err(|_| {
            ApiError::bad_data(format!(
                "invalid parameter \"step\": cannot parse \"{step_s}\" to a valid duration"
            ))
        })?;
        if step <= 0 {
            return Err(ApiError::bad_data(
                "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer",
            ));
        }
        if (end - start) / step > st.opts.max_points_per_series {
            return Err(ApiError::bad_data(format!(
                "exceeded maximum resolution of {} points per timeseries. Try decreasing the query resolution (?step=XX)",
                st.opts.max_points_per_series
            )));
        }
        let opts = eval_options(&st.opts, &p)?;
        let expr = eval::parse(qs)?;
        let (v, stats) = eval::range(st.reader.as_ref(), expr, start, end, step, &opts).await?;
        Ok::<_, ApiError>((qs, v, stats))
    };
    match run.await {
        Ok((qs, v, stats)) => answer(&st.opts, &p, qs, &v, &stats, started),
        Err(e) => e.into_response(),
    }
}

pub(super) async fn query_exemplars<R: MetricsReader>(
    State(st): State<ApiState<R>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::from(q, &headers, &body);
    let run = async {
        let qs = p
            .get("query")
            .ok_or_else(|| ApiError::bad_data("invalid parameter \"query\": query is empty"))?;
        let start = p.time("start", MIN_TIME)?;
        let end = p.time("end", MAX_TIME)?;
        let expr = eval::parse(qs)?;
        // Exemplars of every selector in the expression.
        let mut sets = Vec::new();
        collect_selectors(&expr, &mut sets)?;
        let ex = st.reader.exemplars(&sets, start, end).await?;
        let data: Vec<serde_json::Value> = ex
            .into_iter()
            .map(|(l, e)| {
                json!({
                    "seriesLabels": l,
                    "exemplars": e.iter().map(|x| json!({
                        "labels": x.labels,
                        "value": format_value(x.value),
                        "timestamp": serde_json::Number::from_f64(x.t as f64 / 1000.0),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        Ok::<_, ApiError>(serde_json::to_string(&data).unwrap_or_else(|_| "[]".into()))
    };
    match run.await {
        Ok(s) => success_raw(s, &[]),
        Err(e) => e.into_response(),
    }
}
