// Vigil UI: helpers every page uses. No framework: the DOM, fetch and EventSource.
"use strict";
const V = (() => {
  async function api(path, opts) {
    const r = await fetch(path, Object.assign({headers: {"Accept": "application/json"}}, opts || {}));
    const text = await r.text();
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch (e) { body = text; }
    if (!r.ok || (body && body.status === "error")) {
      const msg = body && (body.error || body.message) ? (body.error || body.message) : (typeof body === "string" && body ? body : r.statusText);
      const err = new Error(`${r.status}: ${msg}`);
      err.status = r.status;
      throw err;
    }
    return body;
  }
  const postJSON = (path, data, method) => api(path, {method: method || "POST",
    headers: {"Content-Type": "application/json", "Accept": "application/json"}, body: JSON.stringify(data)});
  const form = (o) => Object.entries(o).filter(([, v]) => v !== undefined && v !== null && v !== "")
    .map(([k, v]) => encodeURIComponent(k) + "=" + encodeURIComponent(v)).join("&");
  const query = (q, time) => api("/api/v1/query?" + form({query: q, time})).then(b => b.data);
  const queryRange = (q, start, end, step) =>
    api("/api/v1/query_range?" + form({query: q, start, end, step})).then(b => b.data);

  // Elements, never innerHTML with data: label values come from outside.
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") e.className = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else if (k === "text") e.textContent = v;
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }
  const $ = (id) => document.getElementById(id);
  function fill(target, rows, empty) {
    const t = typeof target === "string" ? $(target) : target;
    t.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", {colspan: 20, class: "muted"}, empty || "None."))]));
  }
  function labels(obj, skip) {
    const s = new Set(skip || []);
    return el("span", {class: "labels"}, Object.entries(obj || {}).filter(([k]) => !s.has(k)).sort()
      .map(([k, v]) => el("span", {class: "lbl"}, `${k}="${v}"`)));
  }
  const badge = (text, cls) => el("span", {class: "badge " + (cls || text)}, text);
  const pad = (n) => String(n).padStart(2, "0");
  function fmtTime(ms) {
    if (ms === undefined || ms === null || isNaN(ms)) return "–";
    const d = new Date(ms);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }
  function fmtDur(s) {
    if (s === undefined || s === null || isNaN(s)) return "–";
    const a = Math.abs(s);
    if (a < 1) return (s * 1000).toFixed(0) + " ms";
    if (a < 60) return s.toFixed(a < 10 ? 2 : 1) + " s";
    if (a < 3600) return Math.floor(a / 60) + "m" + pad(Math.round(a % 60)) + "s";
    if (a < 86400) return Math.floor(a / 3600) + "h" + pad(Math.floor(a % 3600 / 60)) + "m";
    return Math.floor(a / 86400) + "d" + Math.floor(a % 86400 / 3600) + "h";
  }
  const ago = (ms) => ms ? fmtDur((Date.now() - ms) / 1000) + " ago" : "–";
  function fmtNum(v) {
    if (v === null || v === undefined || isNaN(v)) return String(v);
    const a = Math.abs(v);
    if (a === 0) return "0";
    if (a >= 1e9) return (v / 1e9).toFixed(2) + "G";
    if (a >= 1e6) return (v / 1e6).toFixed(2) + "M";
    if (a >= 1e4) return (v / 1e3).toFixed(1) + "k";
    if (a >= 100) return v.toFixed(0);
    if (a >= 1) return String(parseFloat(v.toFixed(2)));
    return String(parseFloat(v.toPrecision(3)));
  }
  // Prometheus durations: 1h30m, 15s, 2d.
  function parseDuration(s) {
    const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)/g;
    const mult = {ms: 0.001, s: 1, m: 60, h: 3600, d: 86400, w: 604800, y: 31536000};
    let total = 0, m, seen = 0;
    while ((m = re.exec(s)) !== null) { total += parseFloat(m[1]) * mult[m[2]]; seen += m[0].length; }
    return seen === s.trim().length && seen > 0 ? total : NaN;
  }
  const parseTime = (s) => s ? Date.parse(s) : NaN;
  function seriesName(metric) {
    const m = Object.assign({}, metric || {});
    const name = m.__name__ || "";
    delete m.__name__;
    const inner = Object.keys(m).sort().map(k => `${k}="${m[k]}"`).join(", ");
    return name + (inner || !name ? `{${inner}}` : "");
  }
  function showError(target, e) {
    const t = typeof target === "string" ? $(target) : target;
    if (!t) return;
    t.hidden = !e;
    t.textContent = e ? (e.message || String(e)) : "";
  }
  // The live stream: `onSnapshot(snapshot)` each second; `onState(text)` as it connects and drops.
  function events(onSnapshot, onState) {
    const es = new EventSource("/ui/events");
    es.addEventListener("snapshot", (m) => { try { onSnapshot(JSON.parse(m.data)); } catch (e) { console.warn(e); } });
    es.onopen = () => onState && onState("live");
    es.onerror = () => onState && onState("reconnecting");
    return es;
  }
  return {api, postJSON, form, query, queryRange, el, $, fill, labels, badge, fmtTime, fmtDur, ago, fmtNum,
          parseDuration, parseTime, seriesName, showError, events};
})();
