// Runbooks: the catalog (manifests, capabilities, parameters, a run by hand, a dry run by default),
// executions with their outcome and times, and one execution's every step, host call and policy
// decision, with approve and deny for a pending one.
"use strict";
(() => {
  const {el, $, badge, fmtTime, fmtDur} = V;
  const json = (v) => el("pre", {class: "json"}, JSON.stringify(v, null, 2));
  const alertName = (e) => (e.alert && e.alert.labels && e.alert.labels.alertname) || "by hand";
  function times(e) {
    const t = e.times || {}, base = t.detected || t.created;
    const rel = (x) => x ? "+" + fmtDur((x - base) / 1000) : "–";
    return `${rel(t.detected)} → ${rel(t.acted)} → ${rel(t.recovered)}`;
  }
  async function decide(id, what) {
    try { await V.api(`/api/v1/runbooks/executions/${encodeURIComponent(id)}/${what}`, {method: "POST"}); }
    catch (e) { alert(e.message); }
    refresh();
  }
  function decisionButtons(e) {
    if (e.outcome !== "pending") return null;
    return el("span", {class: "toolbar"},
      el("button", {type: "button", class: "approve", onclick: () => decide(e.id, "approve")}, "Approve"),
      el("button", {type: "button", class: "danger deny", onclick: () => decide(e.id, "deny")}, "Deny"));
  }
  // The catalog and the run dialog.
  let running = null;
  async function catalog() {
    let list;
    try { list = (await V.api("/api/v1/runbooks")).data; }
    catch (e) {
      $("catalog").replaceChildren(el("p", {class: "muted"}, e.status === 404 ? "Runbooks are not configured (the runbooks: section)." : e.message));
      return;
    }
    $("catalog").replaceChildren(...list.map(m => el("article", {"data-runbook": m.name},
      el("h3", {}, m.name, " ", el("span", {class: "muted"}, m.version)),
      m.description ? el("p", {}, m.description) : null,
      el("div", {class: "labels"}, (m.capabilities || []).map(c => el("span", {class: "lbl"}, c))),
      el("details", {}, el("summary", {}, `${Object.keys(m.params || {}).length} parameters`), json(m.params || {})),
      el("button", {type: "button", class: "secondary run-btn", onclick: () => openRun(m)}, "Run…"))));
    if (!list.length) $("catalog").replaceChildren(el("p", {class: "muted"}, "No runbooks are loaded."));
  }
  function openRun(m) {
    running = m.name;
    $("run-name").textContent = m.name;
    const example = {};
    for (const [k, p] of Object.entries(m.params || {})) if (p.required) example[k] = "";
    $("run-params").value = JSON.stringify(example, null, 1);
    $("run-dry").checked = true;
    V.showError("run-error", null);
    $("run-dialog").showModal();
  }
  async function submitRun(ev) {
    ev.preventDefault();
    let params;
    try { params = JSON.parse($("run-params").value || "{}"); }
    catch (e) { V.showError("run-error", new Error("the parameters are not JSON: " + e.message)); return; }
    try {
      const r = await V.postJSON(`/api/v1/runbooks/${encodeURIComponent(running)}/run`,
        {params, dry_run: $("run-dry").checked, target: $("run-target").value.trim()});
      $("run-dialog").close();
      location.href = "/runbooks/executions/" + encodeURIComponent(r.data.id);
    } catch (e) { V.showError("run-error", e); }
  }
  async function executions() {
    const outcome = $("outcome-filter").value;
    let list;
    try { list = (await V.api("/api/v1/runbooks/executions?" + V.form({outcome, limit: 200}))).data; }
    catch (e) { V.fill("executions", [], e.status === 404 ? "Runbooks are not configured." : e.message); return; }
    V.fill("executions", list.map(e => el("tr", {"data-execution": e.id, "data-outcome": e.outcome},
      el("td", {}, el("a", {href: "/runbooks/executions/" + encodeURIComponent(e.id)}, e.id)),
      el("td", {}, e.runbook, e.dry_run ? " " : null, e.dry_run ? badge("dry run", "silenced") : null),
      el("td", {}, alertName(e)),
      el("td", {}, badge(e.outcome), e.reason ? el("div", {class: "muted"}, e.reason) : null),
      el("td", {}, fmtTime(e.times.created)), el("td", {}, times(e)), el("td", {}, decisionButtons(e)))), "No executions.");
  }
  // One execution.
  function stepRow(s, started) {
    const at = fmtDur((s.at - started) / 1000);
    const d = s.detail || {};
    if (s.kind === "call") {
      return el("li", {class: d.status === "ok" ? "act" : "fault"}, el("time", {}, "+" + at),
        el("strong", {}, d.capability), " ", badge(d.status === "ok" ? "ok" : d.status, d.status === "ok" ? "ok" : "bad"),
        el("details", {}, el("summary", {}, "arguments and result"), json({args: d.args, result: d.result, error: d.error})));
    }
    if (s.kind === "log") {
      return el("li", {class: d.level === "error" ? "fault" : ""}, el("time", {}, "+" + at), badge(d.level || "log", d.level === "error" ? "bad" : ""), " ", d.message);
    }
    return el("li", {class: s.kind === "verify" && d.cleared ? "ok" : (s.kind === "escalate" ? "fault" : "alert")},
      el("time", {}, "+" + at), el("strong", {}, s.kind), " ", el("span", {class: "muted"}, JSON.stringify(d)));
  }
  async function execution(id) {
    $("execution-id").textContent = id;
    let e;
    try { e = (await V.api("/api/v1/runbooks/executions/" + encodeURIComponent(id))).data; }
    catch (err) { $("execution").replaceChildren(el("p", {class: "error"}, err.message)); return; }
    const started = e.times.created;
    $("execution").replaceChildren(...[
      el("section", {class: "cards"},
        el("div", {class: "card"}, el("span", {class: "label"}, "Runbook"), el("span", {class: "value"}, e.runbook), el("span", {class: "unit"}, `${e.version} · ${e.binding}`)),
        el("div", {class: "card"}, el("span", {class: "label"}, "Outcome"), el("span", {class: "value", id: "outcome"}, e.outcome), el("span", {class: "unit"}, e.reason || "")),
        el("div", {class: "card"}, el("span", {class: "label"}, "Detect → act → recover"), el("span", {class: "value"}, times(e)), el("span", {class: "unit"}, e.dry_run ? "dry run" : ""))),
      decisionButtons(e),
      el("h2", {}, "Alert"), el("div", {}, V.labels((e.alert && e.alert.labels) || {})),
      el("h2", {}, "Parameters"), json(e.params),
      el("h2", {}, "Steps"), el("ol", {class: "timeline", id: "steps"}, (e.steps || []).map(s => stepRow(s, started))),
      e.output ? el("h2", {}, "Output") : null, e.output ? json(e.output) : null,
      e.notes && e.notes.length ? el("h2", {}, "Notes") : null, e.notes && e.notes.length ? el("ul", {}, e.notes.map(n => el("li", {}, n))) : null,
    ].filter(Boolean));
  }
  const m = location.pathname.match(/^\/runbooks\/executions\/(.+)$/);
  async function refresh() {
    if (m) return execution(decodeURIComponent(m[1]));
    await catalog();
    await executions();
  }
  if (!m) {
    $("outcome-filter").addEventListener("change", executions);
    $("run-form").addEventListener("submit", submitRun);
    $("run-cancel").addEventListener("click", () => $("run-dialog").close());
  }
  refresh();
  setInterval(() => { if (!document.querySelector("dialog[open]")) (m ? refresh() : executions()); }, 3000);
})();
