// Explore: a PromQL or LogQL expression with completion of metric names, label names and functions; a
// graph (range query) or a table (instant query); for LogQL log queries, the lines with a volume
// histogram above them and a live tail (WebSocket); the state lives in the address, so a link shares it.
"use strict";
(() => {
  const {el, $} = V;
  const FUNCTIONS = ["abs", "absent", "absent_over_time", "avg_over_time", "ceil", "changes", "clamp", "clamp_max",
    "clamp_min", "count_over_time", "day_of_month", "day_of_week", "delta", "deriv", "exp", "floor",
    "histogram_quantile", "holt_winters", "hour", "idelta", "increase", "irate", "label_join", "label_replace",
    "last_over_time", "ln", "log2", "log10", "max_over_time", "min_over_time", "minute", "month",
    "predict_linear", "present_over_time", "quantile_over_time", "rate", "resets", "round", "scalar", "sgn",
    "sort", "sort_desc", "sqrt", "stddev_over_time", "stdvar_over_time", "sum_over_time", "time", "timestamp",
    "vector", "year", "sum", "avg", "min", "max", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
    "count_values", "group", "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool"];
  const LOGQL = ["count_over_time", "rate", "bytes_over_time", "bytes_rate", "absent_over_time",
    "sum_over_time", "avg_over_time", "min_over_time", "max_over_time", "stddev_over_time", "stdvar_over_time",
    "quantile_over_time", "first_over_time", "last_over_time", "sum", "avg", "min", "max", "count", "topk",
    "bottomk", "by", "without", "json", "logfmt", "regexp", "pattern", "unpack", "line_format", "label_format",
    "drop", "keep", "decolorize", "unwrap", "duration", "bytes", "vector", "offset"];
  let metrics = [], labelNames = [], logLabels = [], tab = "graph", live = null;
  const lang = () => $("lang").value;
  // A LogQL log query starts with a stream selector (possibly in parentheses).
  const isLogQuery = (q) => /^[\s(]*\{/.test(q);
  const expr = $("expr"), suggest = $("suggest");

  function state() {
    const p = new URLSearchParams(location.search);
    if (p.get("q")) expr.value = p.get("q");
    if (p.get("lang") === "logql") $("lang").value = "logql";
    if (p.get("range")) $("range").value = p.get("range");
    if (p.get("end")) $("end").value = p.get("end");
    if (p.get("step")) $("step").value = p.get("step");
    if (p.get("tab") === "table") setTab("table", false);
  }
  function address() {
    const o = {q: expr.value.trim(), lang: lang() === "logql" ? "logql" : "", range: $("range").value,
               end: $("end").value, step: $("step").value, tab: tab === "table" ? "table" : ""};
    return location.pathname + "?" + V.form(o);
  }
  function setPanels() {
    $("graph").hidden = tab !== "graph";
    $("table").hidden = tab !== "table";
  }
  const loki = (path, params) => V.api("/loki/api/v1/" + path + "?" + V.form(params)).then(b => b.data);
  const autoStep = (range) => {
    const st = V.parseDuration($("step").value);
    return st > 0 ? st : Math.max(1, Math.round(range / 250));
  };
  function lineRow(ns, stream, line) {
    const ms = Number(BigInt(ns) / 1000000n);
    const frac = String(ms % 1000).padStart(3, "0");
    return el("tr", {}, el("td", {class: "time"}, `${V.fmtTime(ms)}.${frac}`),
      el("td", {class: "lbl"}, V.seriesName(stream)), el("td", {class: "line"}, line));
  }
  // A log query: the newest lines (up to 1000) and, above them, how many lines matched per step.
  async function logLines(q, end, range, t0) {
    // The histogram has at most about 100 bars: finer steps only show noise.
    const start = end - range, step = Math.max(autoStep(range), Math.ceil(range / 100));
    const [d, vol] = await Promise.all([
      loki("query_range", {query: q, start: start.toFixed(3), end: end.toFixed(3), limit: 1000, direction: "backward"}),
      loki("query_range", {query: `sum(count_over_time(${q} [${step}s]))`, start: start.toFixed(3),
                           end: end.toFixed(3), step}).catch(() => ({result: []})),
    ]);
    const entries = [];
    for (const s of d.result || []) for (const [ts, line] of s.values) entries.push([ts, s.stream, line]);
    entries.sort((a, b) => (BigInt(b[0]) > BigInt(a[0]) ? 1 : BigInt(b[0]) < BigInt(a[0]) ? -1 : 0));
    V.fill("log-lines", entries.slice(0, 1000).map(([ts, st, line]) => lineRow(ts, st, line)), "No lines.");
    // Steps without a line are 0, not gaps.
    const counts = new Map();
    for (const r of vol.result || []) for (const [t, v] of r.values) counts.set(Math.round(t * 1000), parseFloat(v));
    const points = [];
    for (let t = start; t <= end + 1e-6; t += step) points.push([t, counts.get(Math.round(t * 1000)) || 0]);
    const series = [{name: "lines", metric: {}, points}];
    V.chart($("volume"), series, {from: start, to: end, step, title: "lines per " + V.fmtDur(step), min0: true});
    $("query-info").textContent = `${entries.length} lines, ${Math.round(performance.now() - t0)} ms`;
  }
  // A LogQL metric query: a graph over the range or a table at its end.
  async function logMetric(q, end, range, t0) {
    if (tab === "graph") {
      const step = autoStep(range), start = end - range;
      const d = await loki("query_range", {query: q, start: start.toFixed(3), end: end.toFixed(3), step});
      const series = d.resultType === "matrix" ? V.chart.fromMatrix(d.result) : [];
      V.chart($("graph"), series, {from: start, to: end, step, title: q, legend: true});
      $("query-info").textContent = `${series.length} series, step ${V.fmtDur(step)}, ${Math.round(performance.now() - t0)} ms`;
    } else {
      const d = await loki("query", {query: q, time: end.toFixed(3)});
      const rows = d.resultType === "vector"
        ? d.result.map(r => el("tr", {}, el("td", {class: "lbl"}, V.seriesName(r.metric)), el("td", {}, r.value[1])))
        : [el("tr", {}, el("td", {}, d.resultType), el("td", {}, JSON.stringify(d.result)))];
      V.fill("table-body", rows, "Empty result.");
      $("query-info").textContent = `${rows.length} rows, ${Math.round(performance.now() - t0)} ms`;
    }
  }
  // Live tail: lines pushed from now on, sent by the server over a WebSocket, newest on top (the lines
  // shown already are not sent again).
  function stopLive() {
    if (live) { live.close(); live = null; }
    $("live").textContent = "Live";
    $("live").classList.remove("active");
    $("live-info").hidden = true;
  }
  function startLive() {
    const q = expr.value.trim();
    if (!q || !isLogQuery(q)) return;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${proto}//${location.host}/loki/api/v1/tail?` +
      V.form({query: q, limit: 100, start: String(BigInt(Date.now()) * 1000000n)}));
    let n = 0;
    live = ws;
    $("live").textContent = "Stop";
    $("live").classList.add("active");
    $("live-info").hidden = false;
    $("live-info").textContent = "Live: waiting for lines…";
    ws.onmessage = (ev) => {
      let m;
      try { m = JSON.parse(ev.data); } catch (e) { return; }
      const body = $("log-lines");
      if (body.querySelector("td.muted")) body.replaceChildren();
      for (const s of m.streams || []) {
        for (const [ts, line] of s.values) {
          body.insertBefore(lineRow(ts, s.stream, line), body.firstChild);
          n++;
        }
      }
      while (body.children.length > 1000) body.removeChild(body.lastChild);
      $("live-info").textContent = `Live: ${n} new line${n === 1 ? "" : "s"}`;
    };
    ws.onerror = () => { $("live-info").textContent = "Live tail failed."; };
    ws.onclose = () => { if (live === ws) { live = null; stopLive(); } };
  }
  function setTab(t, run) {
    tab = t;
    $("tab-graph").classList.toggle("active", t === "graph");
    $("tab-table").classList.toggle("active", t === "table");
    $("tab-graph").setAttribute("aria-selected", t === "graph");
    $("tab-table").setAttribute("aria-selected", t === "table");
    $("graph").hidden = t !== "graph";
    $("table").hidden = t !== "table";
    if (run && expr.value.trim()) execute();
  }
  function endSeconds() {
    const e = V.parseTime($("end").value);
    return isNaN(e) ? Date.now() / 1000 : e / 1000;
  }
  async function execute() {
    const q = expr.value.trim();
    history.replaceState(null, "", address());
    $("share").href = address();
    V.showError("query-error", null);
    if (!q) return;
    const end = endSeconds();
    const range = V.parseDuration($("range").value) || 3600;
    const t0 = performance.now();
    const logs = lang() === "logql" && isLogQuery(q);
    $("logs").hidden = !logs;
    $("live").hidden = !logs;
    document.querySelector(".tabs").style.display = logs ? "none" : "";
    if (logs) { $("graph").hidden = true; $("table").hidden = true; } else setPanels();
    if (!logs) stopLive();
    try {
      if (logs) {
        await logLines(q, end, range, t0);
      } else if (lang() === "logql") {
        await logMetric(q, end, range, t0);
      } else if (tab === "graph") {
        let step = V.parseDuration($("step").value);
        if (!(step > 0)) step = Math.max(1, Math.round(range / 250));
        const start = end - range;
        const d = await V.queryRange(q, start.toFixed(3), end.toFixed(3), step);
        const series = d.resultType === "matrix" ? V.chart.fromMatrix(d.result) : [];
        V.chart($("graph"), series, {from: start, to: end, step, title: q, legend: true});
        $("query-info").textContent = `${series.length} series, step ${V.fmtDur(step)}, ${Math.round(performance.now() - t0)} ms`;
      } else {
        const d = await V.query(q, end.toFixed(3));
        let rows;
        if (d.resultType === "vector") {
          rows = d.result.map(r => el("tr", {}, el("td", {class: "lbl"}, V.seriesName(r.metric)), el("td", {}, r.value[1])));
        } else if (d.resultType === "matrix") {
          rows = d.result.map(r => el("tr", {}, el("td", {class: "lbl"}, V.seriesName(r.metric)),
            el("td", {}, r.values.map(([t, v]) => `${v} @${t}`).join("\n"))));
        } else {
          rows = [el("tr", {}, el("td", {}, d.resultType), el("td", {}, String(d.result[1])))];
        }
        V.fill("table-body", rows, "Empty result.");
        $("query-info").textContent = `${rows.length} rows, ${Math.round(performance.now() - t0)} ms`;
      }
    } catch (e) {
      V.showError("query-error", e);
      $("query-info").textContent = "";
    }
  }
  // Completion: the word at the cursor, against what fits where it is.
  let items = [], sel = 0;
  function wordAt() {
    const pos = expr.selectionStart, text = expr.value;
    let s = pos;
    while (s > 0 && /[A-Za-z0-9_:]/.test(text[s - 1])) s--;
    const before = text.slice(0, s);
    const inBraces = before.lastIndexOf("{") > before.lastIndexOf("}");
    const inBy = /\b(by|without|on|ignoring)\s*\([^)]*$/.test(before);
    return {s, pos, word: text.slice(s, pos), labelsOnly: inBraces || inBy};
  }
  function complete() {
    const w = wordAt();
    if (w.word.length < 1) { suggest.hidden = true; return; }
    const lower = w.word.toLowerCase();
    const pool = lang() === "logql"
      ? (w.labelsOnly ? logLabels.map(n => [n, "label"]) : LOGQL.map(f => [f, "function"]).concat(logLabels.map(n => [n, "label"])))
      : w.labelsOnly ? labelNames.map(n => [n, "label"]) :
      metrics.map(n => [n, "metric"]).concat(FUNCTIONS.map(f => [f, "function"]));
    const prefix = pool.filter(([n]) => n.toLowerCase().startsWith(lower));
    const inner = pool.filter(([n]) => !n.toLowerCase().startsWith(lower) && n.toLowerCase().includes(lower));
    items = prefix.concat(inner).filter(([n]) => n !== w.word).slice(0, 40);
    sel = 0;
    if (!items.length) { suggest.hidden = true; return; }
    suggest.replaceChildren(...items.map(([n, kind], i) => el("li", {role: "option", class: i === 0 ? "sel" : "",
      onmousedown: (ev) => { ev.preventDefault(); accept(i); }}, n, el("small", {}, kind))));
    suggest.hidden = false;
  }
  function accept(i) {
    const w = wordAt();
    const [n] = items[i];
    expr.value = expr.value.slice(0, w.s) + n + expr.value.slice(w.pos);
    expr.selectionStart = expr.selectionEnd = w.s + n.length;
    suggest.hidden = true;
    expr.focus();
  }
  expr.addEventListener("input", complete);
  // Hide the list shortly after the field loses focus (a click on an item comes first), unless the
  // field has the focus again by then: a stale timer must not hide a list shown after refocusing.
  let blurTimer = null;
  expr.addEventListener("blur", () => { blurTimer = setTimeout(() => { blurTimer = null; suggest.hidden = true; }, 100); });
  expr.addEventListener("focus", () => { clearTimeout(blurTimer); blurTimer = null; });
  expr.addEventListener("keydown", (ev) => {
    if (!suggest.hidden && items.length) {
      if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
        ev.preventDefault();
        sel = (sel + (ev.key === "ArrowDown" ? 1 : items.length - 1)) % items.length;
        [...suggest.children].forEach((c, i) => c.classList.toggle("sel", i === sel));
        return;
      }
      if (ev.key === "Tab" || (ev.key === "Enter" && !ev.ctrlKey)) { ev.preventDefault(); accept(sel); return; }
      if (ev.key === "Escape") { suggest.hidden = true; return; }
    }
    if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); execute(); }
  });
  $("query-form").addEventListener("submit", (ev) => { ev.preventDefault(); execute(); });
  $("tab-graph").addEventListener("click", () => setTab("graph", true));
  $("tab-table").addEventListener("click", () => setTab("table", true));
  $("range").addEventListener("change", execute);
  $("lang").addEventListener("change", () => { stopLive(); execute(); });
  $("live").addEventListener("click", () => (live ? stopLive() : startLive()));
  V.api("/loki/api/v1/labels").then(b => { logLabels = b.data || []; }).catch(() => {});
  V.api("/api/v1/label/__name__/values").then(b => { metrics = b.data || []; }).catch(() => {});
  V.api("/api/v1/labels").then(b => { labelNames = b.data || []; }).catch(() => {});
  state();
  $("share").href = address();
  if (expr.value.trim()) execute();
})();
