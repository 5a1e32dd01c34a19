// A time-series chart in SVG: lines per series, time and value axes with round ticks, a legend that
// hides and shows series, a hover line with every series' value at that time, and markers (a fault,
// an alert, an action) on the same time axis.
"use strict";
V.chart = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const PALETTE = ["#2f6fdf", "#e8590c", "#2b8a3e", "#c2255c", "#7048e8", "#0b7285", "#e67700",
                   "#5c940d", "#a61e4d", "#364fc7", "#d9480f", "#087f5b"];
  const MARK = {fault: "#c53030", alert: "#b7791f", act: "#5a67d8", ok: "#1a8754"};
  function s(tag, attrs, parent) {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (parent) parent.appendChild(e);
    return e;
  }
  function niceStep(span, n) {
    const raw = span / Math.max(1, n);
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 2.5, 5, 10]) if (raw <= m * p) return m * p;
    return 10 * p;
  }
  const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
  function timeLabel(t, span) {
    const d = new Date(t * 1000), p = (n) => String(n).padStart(2, "0");
    const hm = `${p(d.getHours())}:${p(d.getMinutes())}`;
    if (span <= 600) return hm + ":" + p(d.getSeconds());
    if (span <= 86400 * 2) return hm;
    return `${p(d.getMonth() + 1)}-${p(d.getDate())} ${hm}`;
  }
  function fmtValue(v, unit) {
    if (unit === "s") return V.fmtDur(v);
    if (unit === "%") return (v * 100).toFixed(v < 0.1 ? 2 : 1) + "%";
    return V.fmtNum(v);
  }
  // series: [{name, points: [[t_seconds, value], ...]}]; opts: {from, to, unit, markers, min0}
  function draw(box, series, opts) {
    opts = opts || {};
    box.replaceChildren();
    const width = Math.max(280, box.clientWidth - 16);
    const small = box.classList.contains("small");
    const height = small ? 180 : (width < 500 ? 240 : 320);
    const m = {l: 62, r: 12, t: 10, b: 24};
    const hidden = box._hidden || (box._hidden = new Set());
    const shown = series.filter(x => !hidden.has(x.name));
    let from = opts.from, to = opts.to;
    if (from === undefined || to === undefined) {
      const ts = series.flatMap(x => x.points.map(p => p[0]));
      from = Math.min(...ts); to = Math.max(...ts);
    }
    if (!(to > from)) to = from + 1;
    const vals = shown.flatMap(x => x.points.map(p => p[1])).filter(v => isFinite(v));
    let lo = vals.length ? Math.min(...vals) : 0, hi = vals.length ? Math.max(...vals) : 1;
    if (opts.min0 !== false && lo > 0) lo = 0;
    if (hi === lo) { hi = lo + (lo === 0 ? 1 : Math.abs(lo) * 0.1); }
    const vstep = niceStep(hi - lo, small ? 3 : 5);
    lo = Math.floor(lo / vstep) * vstep; hi = Math.ceil(hi / vstep) * vstep;
    const X = (t) => m.l + (t - from) / (to - from) * (width - m.l - m.r);
    const Y = (v) => m.t + (1 - (v - lo) / (hi - lo)) * (height - m.t - m.b);
    const svg = s("svg", {viewBox: `0 0 ${width} ${height}`, height, role: "img", "aria-label": opts.title || "chart"});
    const axis = s("g", {"font-size": "10", fill: "currentColor", opacity: ".75"}, svg);
    for (let v = lo; v <= hi + vstep / 2; v += vstep) {
      s("line", {x1: m.l, x2: width - m.r, y1: Y(v), y2: Y(v), stroke: "currentColor", "stroke-opacity": ".12"}, axis);
      s("text", {x: m.l - 6, y: Y(v) + 3, "text-anchor": "end"}, axis).textContent = fmtValue(v, opts.unit);
    }
    const span = to - from;
    const tstep = TIME_STEPS.find(x => span / x <= (width < 500 ? 4 : 8)) || 86400 * 7;
    const off = new Date().getTimezoneOffset() * 60;
    for (let t = Math.ceil((from - off) / tstep) * tstep + off; t <= to; t += tstep) {
      s("line", {x1: X(t), x2: X(t), y1: m.t, y2: height - m.b, stroke: "currentColor", "stroke-opacity": ".08"}, axis);
      s("text", {x: X(t), y: height - 6, "text-anchor": "middle"}, axis).textContent = timeLabel(t, span);
    }
    (opts.markers || []).forEach((mk, i) => { mk.row = i % 4; });
    for (const mk of opts.markers || []) {
      if (mk.t < from || mk.t > to) continue;
      const c = MARK[mk.kind] || "#888";
      s("line", {x1: X(mk.t), x2: X(mk.t), y1: m.t, y2: height - m.b, stroke: c, "stroke-width": 1.5, "stroke-dasharray": "4 3"}, svg);
      const right = X(mk.t) > width - 110;
      const label = s("text", {x: X(mk.t) + (right ? -3 : 3), y: m.t + 10 + 11 * (mk.row || 0), fill: c,
        "font-size": "10", "text-anchor": right ? "end" : "start"}, svg);
      label.textContent = mk.label;
    }
    series.forEach((x, i) => { x.color = x.color || PALETTE[i % PALETTE.length]; });
    const maxGap = opts.step ? opts.step * 1.5 : Infinity;
    for (const x of shown) {
      let d = "", prev = null;
      for (const [t, v] of x.points) {
        if (!isFinite(v)) { prev = null; continue; }
        d += (prev === null || t - prev > maxGap ? "M" : "L") + X(t).toFixed(1) + "," + Y(v).toFixed(1);
        prev = t;
      }
      if (x.points.length === 1) {
        s("circle", {cx: X(x.points[0][0]), cy: Y(x.points[0][1]), r: 2.5, fill: x.color}, svg);
      }
      s("path", {d, fill: "none", stroke: x.color, "stroke-width": 1.6, "stroke-linejoin": "round"}, svg);
    }
    // Hover: the nearest time of any series, each series' value there.
    const hover = s("line", {y1: m.t, y2: height - m.b, stroke: "currentColor", "stroke-opacity": ".4", visibility: "hidden"}, svg);
    const tip = V.el("div", {class: "chart-tip", hidden: true});
    svg.addEventListener("mousemove", (ev) => {
      const r = svg.getBoundingClientRect();
      const px = (ev.clientX - r.left) * width / r.width;
      const t = from + (px - m.l) / (width - m.l - m.r) * (to - from);
      let best = null;
      for (const x of shown) for (const p of x.points) if (best === null || Math.abs(p[0] - t) < Math.abs(best - t)) best = p[0];
      if (best === null) return;
      hover.setAttribute("x1", X(best)); hover.setAttribute("x2", X(best)); hover.setAttribute("visibility", "visible");
      const rows = shown.map(x => [x, (x.points.find(p => p[0] === best) || [])[1]]).filter(([, v]) => v !== undefined)
        .sort((a, b) => b[1] - a[1]).slice(0, 12);
      tip.replaceChildren(V.el("div", {class: "muted"}, V.fmtTime(best * 1000)),
        ...rows.map(([x, v]) => V.el("div", {}, V.el("span", {style: `color:${x.color}`}, "■ "), `${x.name}: ${fmtValue(v, opts.unit)}`)));
      tip.hidden = false;
      const bx = box.getBoundingClientRect();
      tip.style.left = Math.min(ev.clientX - bx.left + 12, bx.width - 220) + "px";
      tip.style.top = (ev.clientY - bx.top + 12) + "px";
    });
    svg.addEventListener("mouseleave", () => { hover.setAttribute("visibility", "hidden"); tip.hidden = true; });
    box.append(svg, tip);
    if (series.length > 1 || opts.legend) {
      box.append(V.el("div", {class: "chart-legend"}, series.map(x => V.el("span", {
        class: hidden.has(x.name) ? "off" : "", title: "show or hide",
        onclick: () => { hidden.has(x.name) ? hidden.delete(x.name) : hidden.add(x.name); draw(box, series, opts); }
      }, V.el("i", {style: `background:${x.color}`}), x.name))));
    }
    if (!series.length) box.append(V.el("p", {class: "muted"}, opts.empty || "No data in this range."));
    box._redraw = () => draw(box, series, opts);
  }
  let resizeTimer;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => document.querySelectorAll(".chart-box").forEach(b => b._redraw && b._redraw()), 150);
  });
  // A matrix result to chart series.
  function fromMatrix(result, nameOf) {
    return (result || []).map(r => ({name: nameOf ? nameOf(r.metric) : V.seriesName(r.metric), metric: r.metric,
      points: r.values.map(([t, v]) => [t, parseFloat(v)])}));
  }
  return Object.assign(draw, {fromMatrix});
})();
