// Overview: health at a glance, refreshed every few seconds.
"use strict";
(() => {
  const {el, $, fill, labels, badge, ago, fmtNum, fmtTime} = V;
  async function ingest() {
    const d = await V.query("sum(rate(vigil_storage_samples_appended_total[1m]))");
    const v = d.result.length ? parseFloat(d.result[0].value[1]) : 0;
    $("ingest-rate").textContent = fmtNum(v);
  }
  async function alerts() {
    const b = await V.api("/api/v1/alerts");
    const all = b.data.alerts || [];
    const firing = all.filter(a => a.state === "firing");
    $("firing").textContent = firing.length;
    $("firing").parentElement.classList.toggle("bad", firing.length > 0);
    const pending = all.length - firing.length;
    $("pending").textContent = pending ? `${pending} pending` : "none pending";
    fill("firing-list", firing.map(a => el("tr", {},
      el("td", {}, el("a", {href: "/alerts"}, a.labels.alertname)),
      el("td", {}, labels(a.labels, ["alertname"])),
      el("td", {title: a.activeAt}, ago(Date.parse(a.activeAt))))), "Nothing is firing.");
  }
  async function runbooks() {
    let list;
    try { list = (await V.api("/api/v1/runbooks/executions?limit=10")).data; }
    catch (e) { if (e.status === 404) { $("running").textContent = "–"; $("pending-approval").textContent = "runbooks not configured"; fill("executions", [], "Runbooks are not configured."); return; } throw e; }
    const running = list.filter(e => e.outcome === "running").length;
    const pending = list.filter(e => e.outcome === "pending").length;
    $("running").textContent = running;
    $("pending-approval").textContent = pending ? `${pending} waiting for approval` : "";
    fill("executions", list.map(e => el("tr", {},
      el("td", {}, el("a", {href: "/runbooks/executions/" + encodeURIComponent(e.id)}, e.runbook)),
      el("td", {}, (e.alert && e.alert.labels && e.alert.labels.alertname) || "by hand"),
      el("td", {}, badge(e.outcome)),
      el("td", {}, fmtTime(e.times.created)))), "No executions yet.");
  }
  async function probes() {
    const p = (await V.api("/api/v1/probes")).data.probes || [];
    const failing = p.filter(x => !x.success).length;
    $("failing-probes").textContent = failing;
    $("failing-probes").parentElement.classList.toggle("bad", failing > 0);
    $("probes-total").textContent = `of ${p.length}`;
  }
  async function targets() {
    const t = (await V.api("/api/v1/targets")).data.activeTargets || [];
    const down = t.filter(x => x.health === "down").length;
    $("targets-down").textContent = down;
    $("targets-down").parentElement.classList.toggle("bad", down > 0);
    $("targets-total").textContent = `of ${t.length}`;
  }
  async function refresh() {
    for (const f of [ingest, alerts, runbooks, probes, targets]) {
      try { await f(); } catch (e) { console.warn(f.name, e); }
    }
  }
  refresh();
  setInterval(refresh, 5000);
})();
