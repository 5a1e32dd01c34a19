// Rules (health, last evaluation, errors) and targets and probes (health, last error, latency).
"use strict";
(() => {
  const {el, $, badge, ago, fmtDur} = V;
  async function rules() {
    const groups = (await V.api("/api/v1/rules")).data.groups || [];
    const boxes = groups.map(g => el("section", {class: "group"},
      el("header", {}, el("strong", {}, g.name), el("span", {class: "muted"}, g.file),
        el("span", {class: "muted"}, `every ${fmtDur(g.interval)}, last ${ago(Date.parse(g.lastEvaluation))}, took ${fmtDur(g.evaluationTime)}`)),
      el("table", {class: "list"}, el("thead", {}, el("tr", {}, ["Rule", "Type", "Health", "State", "Last evaluation", "Error"].map(h => el("th", {}, h)))),
        el("tbody", {}, g.rules.map(r => el("tr", {},
          el("td", {}, el("strong", {}, r.name), el("div", {}, el("a", {class: "lbl", href: "/explore?" + V.form({q: r.query})}, r.query))),
          el("td", {}, r.type),
          el("td", {}, badge(r.health, r.health === "ok" ? "ok" : (r.health === "err" ? "err" : "pending"))),
          el("td", {}, r.type === "alerting" ? badge(r.state || "inactive", r.state === "firing" ? "firing" : (r.state === "pending" ? "pending" : "")) : ""),
          el("td", {}, ago(Date.parse(r.lastEvaluation))),
          el("td", {class: "error"}, r.lastError || "")))))));
    $("rules").replaceChildren(...(boxes.length ? boxes : [el("p", {class: "muted"}, "No rule groups are loaded.")]));
  }
  async function targets() {
    const t = (await V.api("/api/v1/targets")).data.activeTargets || [];
    V.fill("targets", t.map(x => el("tr", {},
      el("td", {}, x.scrapePool), el("td", {}, el("a", {href: x.scrapeUrl}, x.scrapeUrl)),
      el("td", {}, badge(x.health, x.health === "up" ? "up" : (x.health === "down" ? "down" : "pending"))),
      el("td", {}, ago(Date.parse(x.lastScrape))), el("td", {}, fmtDur(x.lastScrapeDuration)),
      el("td", {class: "error"}, x.lastError || ""))), "No scrape targets.");
  }
  async function probes() {
    const p = (await V.api("/api/v1/probes")).data.probes || [];
    p.sort((a, b) => (a.job + a.target).localeCompare(b.job + b.target));
    V.fill("probes", p.map(x => el("tr", {},
      el("td", {}, x.job), el("td", {}, x.target), el("td", {}, x.module),
      el("td", {}, badge(x.success ? "up" : "down")),
      el("td", {}, ago(Date.parse(x.lastProbe))), el("td", {}, fmtDur(x.durationSeconds)),
      el("td", {class: "error"}, x.lastError || ""))), "No probe jobs (probe_configs).");
  }
  async function refresh() {
    const jobs = $("rules") ? [rules] : [targets, probes];
    for (const f of jobs) {
      try { await f(); } catch (e) { console.warn(e); }
    }
  }
  refresh();
  setInterval(refresh, 5000);
})();
