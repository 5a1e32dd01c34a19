// Explore: a PromQL expression with completion of metric names, label names and functions; a graph
// (range query) or a table (instant query); the state lives in the address, so a link shares it.
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
  let metrics = [], labelNames = [], tab = "graph";
  const expr = $("expr"), suggest = $("suggest");

  function state() {
    const p = new URLSearchParams(location.search);
    if (p.get("q")) expr.value = p.get("q");
    if (p.get("range")) $("range").value = p.get("range");
    if (p.get("end")) $("end").value = p.get("end");
    if (p.get("step")) $("step").value = p.get("step");
    if (p.get("tab") === "table") setTab("table", false);
  }
  function address() {
    const o = {q: expr.value.trim(), range: $("range").value, end: $("end").value, step: $("step").value,
               tab: tab === "table" ? "table" : ""};
    return location.pathname + "?" + V.form(o);
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
    try {
      if (tab === "graph") {
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
    const pool = w.labelsOnly ? labelNames.map(n => [n, "label"]) :
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
  V.api("/api/v1/label/__name__/values").then(b => { metrics = b.data || []; }).catch(() => {});
  V.api("/api/v1/labels").then(b => { labelNames = b.data || []; }).catch(() => {});
  state();
  $("share").href = address();
  if (expr.value.trim()) execute();
})();
