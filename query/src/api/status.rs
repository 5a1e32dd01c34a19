//! `status/buildinfo`, `status/config`, `status/flags`, `status/runtimeinfo`, `status/tsdb`.

use super::*;

pub(super) async fn buildinfo<R: MetricsReader>(State(st): State<ApiState<R>>) -> Response {
    // No "features" key: Grafana would take the server for Mimir.
    let b = &st.opts.build;
    let data = json!({
        "version": b.version,
        "revision": b.revision,
        "branch": "main",
        "buildUser": "vigil",
        "buildDate": "unknown",
        "goVersion": "n/a (Rust)",
    });
    success_raw(data.to_string(), &[])
}

pub(super) async fn format_query(
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::from(q, &headers, &body);
    let run = || {
        let qs = p
            .get("query")
            .ok_or_else(|| ApiError::bad_data("invalid parameter \"query\": query is empty"))?;
        let expr = eval::parse(qs)?;
        Ok::<_, ApiError>(expr.prettify())
    };
    match run() {
        Ok(s) => success_raw(json_str(&s), &[]),
        Err(e) => e.into_response(),
    }
}

pub(super) async fn metadata<R: MetricsReader>(
    State(st): State<ApiState<R>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::from(q, &headers, &body);
    let limit = match p.get("limit") {
        None => 0,
        Some(s) => match s.parse::<i64>() {
            Ok(n) if n >= 0 => n as usize,
            // Prometheus treats a negative limit as "no limit".
            Ok(_) => 0,
            Err(_) => return ApiError::bad_data("limit must be a number").into_response(),
        },
    };
    let m = st.reader.metadata(p.get("metric"), limit);
    let mut data = serde_json::Map::new();
    for (name, recs) in m {
        data.insert(name, serde_json::to_value(recs).unwrap_or_default());
    }
    success_raw(serde_json::Value::Object(data).to_string(), &[])
}

pub(super) async fn status_config<R: MetricsReader>(State(st): State<ApiState<R>>) -> Response {
    let yaml = st
        .opts
        .config_yaml
        .read()
        .map(|y| y.clone())
        .unwrap_or_default();
    success_raw(json!({ "yaml": yaml }).to_string(), &[])
}

pub(super) async fn status_flags<R: MetricsReader>(State(st): State<ApiState<R>>) -> Response {
    let mut m = serde_json::Map::new();
    for (k, v) in &st.opts.flags {
        m.insert(k.clone(), serde_json::Value::String(v.clone()));
    }
    success_raw(serde_json::Value::Object(m).to_string(), &[])
}

pub(super) async fn status_runtimeinfo<R: MetricsReader>(
    State(st): State<ApiState<R>>,
) -> Response {
    let started = st
        .opts
        .started
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let data = json!({
        "startTime": crate::format::rfc3339(started),
        "CWD": cwd,
        "reloadConfigSuccess": true,
        "lastConfigTime": crate::format::rfc3339(started),
        "corruptionCount": 0,
        "goroutineCount": 0,
        "GOMAXPROCS": threads,
        "GOMEMLIMIT": 0,
        "GOGC": "",
        "GODEBUG": "",
        "storageRetention": st.opts.retention,
    });
    success_raw(data.to_string(), &[])
}

/// Cardinality statistics over the series of the last 2h (Prometheus reports its head block).
pub(super) async fn status_tsdb<R: MetricsReader>(
    State(st): State<ApiState<R>>,
    RawQuery(q): RawQuery,
) -> Response {
    let p = Params::from(q, &HeaderMap::new(), &Bytes::new());
    let limit = p
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0)
        .unwrap_or(10);
    let now = now_ms();
    let all = match Matcher::new(vigil_model::MatchOp::Regex, "__name__", ".+") {
        Ok(m) => vec![vec![m]],
        Err(e) => return ApiError::internal(e.to_string()).into_response(),
    };
    let series = match st.reader.series(&all, now - 2 * 3600 * 1000, now, 0).await {
        Ok(s) => s,
        Err(e) => return ApiError::from(e).into_response(),
    };
    use std::collections::HashMap;
    let mut by_name: HashMap<&str, u64> = HashMap::new();
    let mut values_by_label: HashMap<&str, std::collections::HashSet<&str>> = HashMap::new();
    let mut bytes_by_label: HashMap<&str, u64> = HashMap::new();
    let mut by_pair: HashMap<String, u64> = HashMap::new();
    let mut pairs = 0u64;
    for l in &series {
        if let Some(n) = l.metric_name() {
            *by_name.entry(n).or_default() += 1;
        }
        for lb in l.iter() {
            pairs += 1;
            if values_by_label.entry(lb.name).or_default().insert(lb.value) {
                *bytes_by_label.entry(lb.name).or_default() += lb.value.len() as u64;
            }
            *by_pair
                .entry(format!("{}={}", lb.name, lb.value))
                .or_default() += 1;
        }
    }
    fn top<K: ToString>(
        m: impl IntoIterator<Item = (K, u64)>,
        limit: usize,
    ) -> Vec<serde_json::Value> {
        let mut v: Vec<(String, u64)> = m.into_iter().map(|(k, n)| (k.to_string(), n)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v.into_iter()
            .take(limit)
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect()
    }
    let data = json!({
        "headStats": {
            "numSeries": series.len(),
            "numLabelPairs": pairs,
            "chunkCount": 0,
            "minTime": now - 2 * 3600 * 1000,
            "maxTime": now,
        },
        "seriesCountByMetricName": top(by_name, limit),
        "labelValueCountByLabelName": top(values_by_label.iter().map(|(k, v)| (*k, v.len() as u64)), limit),
        "memoryInBytesByLabelName": top(bytes_by_label, limit),
        "seriesCountByLabelValuePair": top(by_pair, limit),
    });
    success_raw(data.to_string(), &[])
}
