// Recovery: one incident on one time axis. The load test's request rate, error ratio and latency,
// the probes, the alerts, and the runbook's steps, with the fault and the detect / remediate /
// recover times marked; while live, redrawn at each event of /ui/events.
"use strict";
(() => {
  const {el, $, fmtDur, fmtTime, badge} = V;
  const p = new URLSearchParams(location.search);
  let scenario = p.get("scenario") || "";
  let fixedFrom = p.get("from") ? parseInt(p.get("from"), 10) : null;
  let fixedTo = p.get("to") ? parseInt(p.get("to"), 10) : null;
  if (p.get("window")) $("window").value = p.get("window");
  $("scenario-input").value = scenario;
  $("live").checked = !fixedTo;
  const sel = (extra) => {
    const parts = [];
    if (scenario) parts.push(`scenario=${JSON.stringify(scenario)}`);
    if (extra) parts.push(extra);
    return "{" + parts.join(",") + "}";
  };
  function range() {
    const now = Date.now();
    const to = (fixedTo && !$("live").checked) ? fixedTo : now;
    const from = fixedFrom && (!$("live").checked || now - fixedFrom < 6 * 3600e3) ? fixedFrom
      : to - (V.parseDuration($("window").value) || 900) * 1000;
    return {from: from / 1000, to: to / 1000};
  }
  async function matrix(q, r, step) {
    try {
      const d = await V.queryRange(q, r.from.toFixed(3), r.to.toFixed(3), step);
      return d.resultType === "matrix" ? d.result : [];
    } catch (e) { console.warn(q, e); return []; }
  }
  function card(id, value, what) {
    $(id).textContent = value;
    $(id + "-what").textContent = what || "";
  }
  let busy = false, last = 0;
  async function refresh() {
    if (busy) return;
    busy = true;
    try { await draw(); } finally { busy = false; last = Date.now(); }
  }
  async function draw() {
    const r = range();
    const step = Math.max(1, Math.round((r.to - r.from) / 300));
    const req = `vigil_loadtest_requests_total${sel()}`;
    const [rate, errs, lat, probes, alerts, faults] = await Promise.all([
      matrix(`sum by (outcome) (rate(${req}[5s]))`, r, step),
      matrix(`(sum(rate(vigil_loadtest_requests_total${sel('outcome!="ok"')}[5s])) or vector(0)) / sum(rate(${req}[5s]))`, r, step),
      matrix(`max by (quantile) (vigil_loadtest_latency_seconds${sel()})`, r, step),
      matrix("probe_success", r, step),
      matrix('max by (alertname) (ALERTS{alertstate="firing"})', r, step),
      matrix(`max by (fault, kind) (vigil_loadtest_fault_time_seconds${sel()})`, r, step),
    ]);
    let execs = [];
    try {
      execs = (await V.api("/api/v1/runbooks/executions?limit=200")).data
        .filter(e => e.times.created / 1000 >= r.from - 60 && e.times.created / 1000 <= r.to);
    } catch (e) { /* runbooks not configured */ }
    // The incident: the latest fault in range; detection, action and recovery after it.
    const faultTimes = faults.map(f => ({t: parseFloat(f.values[f.values.length - 1][1]), kind: f.metric.kind, fault: f.metric.fault}))
      .filter(f => f.t >= r.from && f.t <= r.to).sort((a, b) => a.t - b.t);
    const fault = faultTimes.length ? faultTimes[faultTimes.length - 1] : null;
    const since = fault ? fault.t : r.from;
    // Detection: an alert that starts firing after the fault (one already firing does not count).
    let fired = null;
    for (const a of alerts) {
      let prev = null;
      for (const [t, v] of a.values) {
        const on = parseFloat(v) > 0;
        const rising = on && (prev === null || t - prev[0] > step * 1.5 || !(parseFloat(prev[1]) > 0));
        if (rising && t >= since && (!fired || t < fired.t)) fired = {t, name: a.metric.alertname};
        prev = [t, v];
      }
    }
    const exec = execs.filter(e => e.times.created / 1000 >= since - 5).sort((a, b) => a.times.created - b.times.created)[0];
    const acted = exec && exec.times.acted ? exec.times.acted / 1000 : null;
    let recovered = exec && exec.times.recovered ? exec.times.recovered / 1000 : null;
    if (!recovered && fault && errs.length) {
      // No verified execution: the error ratio back at 0 for 5 s after it rose.
      const pts = errs[0].values.map(([t, v]) => [t, parseFloat(v)]).filter(([t]) => t >= fault.t);
      const firstBad = pts.findIndex(([, v]) => v > 0);
      if (firstBad >= 0) {
        let run = null;
        for (const [t, v] of pts.slice(firstBad)) {
          if (v > 0) { run = null; continue; }
          if (run === null) run = t;
          if (t - run >= 5) { recovered = run; break; }
        }
      }
    }
    const rel = (t) => fault && t ? "+" + fmtDur(t - fault.t) : "–";
    card("t-fault", fault ? fmtTime(fault.t * 1000).slice(11) : "–", fault ? fault.kind : "no fault in range");
    card("t-detect", rel(fired && fired.t), fired ? fired.name : "");
    card("t-remediate", rel(acted), exec ? `${exec.runbook}: ${exec.outcome}` : "");
    card("t-recover", rel(recovered), recovered ? (exec && exec.times.recovered ? "alert cleared" : "errors stopped") : "");
    const markers = [];
    for (const f of faultTimes) markers.push({t: f.t, label: "fault " + f.kind, kind: "fault"});
    if (fired) markers.push({t: fired.t, label: "alert " + fired.name, kind: "alert"});
    if (acted) markers.push({t: acted, label: "runbook acted", kind: "act"});
    if (recovered) markers.push({t: recovered, label: "recovered", kind: "ok"});
    const o = {from: r.from, to: r.to, step, markers};
    V.chart($("c-rate"), V.chart.fromMatrix(rate, m => m.outcome || "requests"), Object.assign({legend: true, empty: "No load test metrics in this range (vigil loadtest pushes them)."}, o));
    V.chart($("c-errors"), V.chart.fromMatrix(errs, () => "error ratio"), Object.assign({unit: "%"}, o));
    V.chart($("c-latency"), V.chart.fromMatrix(lat, m => "p" + (parseFloat(m.quantile) * 100)), Object.assign({unit: "s", legend: true}, o));
    V.chart($("c-probes"), V.chart.fromMatrix(probes, m => `${m.job} ${m.instance}`), Object.assign({legend: true, empty: "No probes."}, o));
    V.chart($("c-alerts"), V.chart.fromMatrix(alerts, m => m.alertname), Object.assign({legend: true, empty: "No alert fired."}, o));
    // The timeline: faults, alerts, the executions' steps.
    const items = [];
    for (const f of faultTimes) items.push({t: f.t, cls: "fault", text: [el("strong", {}, "fault"), ` ${f.kind} (#${f.fault})`]});
    for (const a of alerts) {
      const first = a.values.find(([t, v]) => parseFloat(v) > 0 && t >= r.from);
      if (first) items.push({t: first[0], cls: "alert", text: [el("strong", {}, "alert firing"), " " + a.metric.alertname]});
    }
    for (const e of execs) {
      items.push({t: e.times.created / 1000, cls: "act", text: [el("strong", {}, "runbook "),
        el("a", {href: "/runbooks/executions/" + encodeURIComponent(e.id)}, e.runbook), " ", badge(e.outcome)]});
      for (const s of e.steps || []) {
        if (s.kind === "call") items.push({t: s.at / 1000, cls: s.detail.status === "ok" ? "act" : "fault",
          text: [s.detail.capability, " ", badge(s.detail.status === "ok" ? "ok" : s.detail.status, s.detail.status === "ok" ? "ok" : "bad")]});
        else if (s.kind === "verify" || s.kind === "escalate") items.push({t: s.at / 1000, cls: s.kind === "verify" && s.detail.cleared ? "ok" : "fault",
          text: [el("strong", {}, s.kind), " ", JSON.stringify(s.detail)]});
      }
      if (e.times.recovered) items.push({t: e.times.recovered / 1000, cls: "ok", text: [el("strong", {}, "recovered"), " the alert cleared"]});
    }
    items.sort((a, b) => a.t - b.t);
    $("timeline").replaceChildren(...(items.length ? items.map(i => el("li", {class: i.cls},
      el("time", {}, fault ? rel(i.t).replace("+-", "-") : fmtTime(i.t * 1000)), ...i.text)) : [el("li", {class: "muted"}, "Nothing happened in this range.")]));
    $("scenario").textContent = scenario ? `· ${scenario}` : "";
  }
  $("recovery-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    scenario = $("scenario-input").value.trim();
    fixedFrom = null; fixedTo = null;
    history.replaceState(null, "", "/recovery?" + V.form({scenario, window: $("window").value}));
    refresh();
  });
  $("live").addEventListener("change", refresh);
  V.events(() => { if ($("live").checked && Date.now() - last > 1500) refresh(); },
           (s) => { $("live-state").textContent = s; $("live-state").className = "badge " + (s === "live" ? "ok" : "pending"); });
  refresh();
})();
