// Alerts as the router groups them, marked when silenced or inhibited; silences listed, created
// (from an alert with its labels as matchers), edited and expired through the v2 API.
"use strict";
(() => {
  const {el, $, labels, badge, ago, fmtTime} = V;
  const dialog = $("silence-dialog");

  function matcherRow(m) {
    const op = m.isRegex ? (m.isEqual === false ? "!~" : "=~") : (m.isEqual === false ? "!=" : "=");
    const row = el("div", {class: "matcher"},
      el("input", {class: "m-name", value: m.name || "", placeholder: "label", "aria-label": "label name"}),
      el("select", {class: "m-op", "aria-label": "operator"}, ["=", "!=", "=~", "!~"].map(o => el("option", {selected: o === op}, o))),
      el("input", {class: "m-value", value: m.value || "", placeholder: "value", "aria-label": "label value"}),
      el("button", {type: "button", class: "secondary", onclick: () => row.remove(), title: "remove"}, "×"));
    return row;
  }
  function openSilence(s) {
    $("silence-form-title").textContent = s && s.id ? "Edit silence" : "New silence";
    $("silence-id").value = (s && s.id) || "";
    $("matchers").replaceChildren(...((s && s.matchers) || [{}]).map(matcherRow));
    $("silence-comment").value = (s && s.comment) || "";
    $("silence-author").value = (s && s.createdBy) || localStorage.getItem("vigil.author") || "";
    if (s && s.endsAt && s.id) {
      const left = (Date.parse(s.endsAt) - Date.now()) / 1000;
      $("silence-duration").value = left > 60 ? Math.round(left / 60) + "m" : "2h";
    } else {
      $("silence-duration").value = "2h";
    }
    V.showError("silence-error", null);
    dialog.showModal();
  }
  async function saveSilence(ev) {
    ev.preventDefault();
    const matchers = [...$("matchers").children].map(r => {
      const op = r.querySelector(".m-op").value;
      return {name: r.querySelector(".m-name").value.trim(), value: r.querySelector(".m-value").value,
              isRegex: op.includes("~"), isEqual: !op.startsWith("!")};
    }).filter(m => m.name);
    const secs = V.parseDuration($("silence-duration").value.trim());
    if (!matchers.length) { V.showError("silence-error", new Error("at least one matcher")); return; }
    if (!(secs > 0)) { V.showError("silence-error", new Error("the duration is not like 2h or 30m")); return; }
    const now = new Date();
    const body = {matchers, startsAt: now.toISOString(), endsAt: new Date(now.getTime() + secs * 1000).toISOString(),
                  createdBy: $("silence-author").value.trim(), comment: $("silence-comment").value.trim()};
    if ($("silence-id").value) body.id = $("silence-id").value;
    try {
      await V.postJSON("/api/v2/silences", body);
      localStorage.setItem("vigil.author", body.createdBy);
      dialog.close();
      refresh();
    } catch (e) { V.showError("silence-error", e); }
  }
  async function expire(id) {
    if (!confirm("Expire this silence now?")) return;
    try { await V.api("/api/v2/silence/" + encodeURIComponent(id), {method: "DELETE"}); refresh(); }
    catch (e) { alert(e.message); }
  }
  function fromAlert(a) {
    const skip = new Set(["__name__"]);
    return {matchers: Object.entries(a.labels).filter(([k]) => !skip.has(k)).sort()
      .map(([name, value]) => ({name, value, isRegex: false, isEqual: true})),
      comment: `Silenced from the UI: ${a.labels.alertname || ""}`};
  }
  async function groups() {
    const list = await V.api("/api/v2/alerts/groups");
    const showSil = $("show-silenced").checked, showInh = $("show-inhibited").checked;
    const boxes = list.map(g => {
      const alerts = g.alerts.filter(a => (showSil || !a.status.silencedBy.length) && (showInh || !a.status.inhibitedBy.length));
      if (!alerts.length) return null;
      return el("section", {class: "group"},
        el("header", {}, el("strong", {}, g.receiver.name), labels(g.labels), el("span", {class: "muted"}, `${alerts.length} alert${alerts.length > 1 ? "s" : ""}`)),
        alerts.map(a => el("div", {class: "alert-row", "data-fingerprint": a.fingerprint},
          el("div", {class: "grow"}, el("strong", {}, a.labels.alertname || ""), " ", labels(a.labels, ["alertname"]),
            a.annotations && a.annotations.summary ? el("div", {class: "muted"}, a.annotations.summary) : null),
          a.status.silencedBy.length ? badge("silenced", "silenced") : null,
          a.status.inhibitedBy.length ? badge("inhibited", "inhibited") : null,
          a.status.state === "active" ? badge("firing", "firing") : null,
          el("span", {class: "muted", title: a.startsAt}, "since " + ago(Date.parse(a.startsAt))),
          el("button", {type: "button", class: "secondary silence-btn", onclick: () => openSilence(fromAlert(a))}, "Silence"))));
    }).filter(Boolean);
    $("groups").replaceChildren(...(boxes.length ? boxes : [el("p", {class: "muted"}, "No alerts.")]));
  }
  function matcherText(m) {
    return `${m.name}${m.isRegex ? (m.isEqual === false ? "!~" : "=~") : (m.isEqual === false ? "!=" : "=")}"${m.value}"`;
  }
  async function silences() {
    const list = await V.api("/api/v2/silences");
    const showExpired = $("show-expired").checked;
    const rows = list.filter(s => showExpired || s.status.state !== "expired")
      .sort((a, b) => Date.parse(b.updatedAt || b.startsAt) - Date.parse(a.updatedAt || a.startsAt))
      .map(s => el("tr", {"data-silence": s.id},
        el("td", {}, el("span", {class: "labels"}, s.matchers.map(m => el("span", {class: "lbl"}, matcherText(m))))),
        el("td", {}, badge(s.status.state, s.status.state === "active" ? "active-silence" : s.status.state)),
        el("td", {title: s.endsAt}, fmtTime(Date.parse(s.endsAt))),
        el("td", {}, s.createdBy), el("td", {}, s.comment),
        el("td", {}, s.status.state === "expired" ? null : el("span", {class: "toolbar"},
          el("button", {type: "button", class: "secondary", onclick: () => openSilence(s)}, "Edit"),
          el("button", {type: "button", class: "danger", onclick: () => expire(s.id)}, "Expire")))));
    V.fill("silences", rows, "No silences.");
  }
  async function refresh() {
    try { await groups(); } catch (e) { $("groups").replaceChildren(el("p", {class: "error"}, e.message)); }
    try { await silences(); } catch (e) { V.fill("silences", [], e.message); }
  }
  $("new-silence").addEventListener("click", () => openSilence(null));
  $("add-matcher").addEventListener("click", () => $("matchers").append(matcherRow({})));
  $("silence-cancel").addEventListener("click", () => dialog.close());
  $("silence-form").addEventListener("submit", saveSilence);
  for (const id of ["show-silenced", "show-inhibited", "show-expired"]) $(id).addEventListener("change", refresh);
  refresh();
  setInterval(() => { if (!dialog.open) refresh(); }, 5000);
})();
