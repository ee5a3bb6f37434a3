// Metric charts (uPlot): every [data-metric-chart] element becomes a zoomable chart of
// one run's metric, fed by GET /ui/api/runs/{run}/metric, which downsamples on the
// server to about one bucket per pixel (min/max band + mean line). Drag to zoom: the
// finer window of the zoomed steps is fetched; double-click zooms back out.
// window.ratchetCharts.lines(el, {...}) draws any other series (drift, latency...).
// Every label goes through textContent (uPlot's too): user strings are never markup.
"use strict";
window.ratchetCharts = (function () {
  const HEIGHT = 240;
  const MIN_POINTS = 50, MAX_POINTS = 4000;
  const COLORS = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#db2777",
    "#0891b2", "#65a30d", "#9333ea", "#ea580c", "#0f766e", "#4f46e5"];

  function color(i) { return COLORS[i % COLORS.length]; }

  function widthOf(el) { return Math.max(200, Math.floor(el.clientWidth || 600)); }

  function parts(el) {
    // [note, plot area]: the note says what is (not) drawn, in words.
    el.replaceChildren();
    const note = document.createElement("p");
    note.className = "chart-note";
    note.hidden = true;
    const area = document.createElement("div");
    area.className = "chart-area";
    el.append(area, note);
    return {note: note, area: area};
  }

  function say(note, text) {
    note.textContent = text;
    note.hidden = !text;
  }

  function resizing(el, plot) {
    if (!window.ResizeObserver) return;
    let last = widthOf(el);
    new ResizeObserver(function () {
      const w = widthOf(el);
      if (w !== last) { last = w; plot().setSize({width: w, height: HEIGHT}); }
    }).observe(el);
  }

  function count(n) { return Number(n).toLocaleString("en-US"); }

  // ------------------------------------------------------------------ metric charts
  function metricURL(run, key, points, start, end) {
    let url = "/ui/api/runs/" + encodeURIComponent(run) + "/metric?key=" +
      encodeURIComponent(key) + "&points=" + points;
    if (start !== undefined && start !== null) url += "&start=" + start;
    if (end !== undefined && end !== null) url += "&end=" + end;
    return url;
  }

  function describe(data) {
    const words = [];
    if (data.downsampled) {
      words.push(count(data.count) + " points in " + count(data.step.length) +
        " buckets of " + count(data.width) + " steps (band: min–max, line: mean); drag to zoom");
    }
    if (data.window && data.extent &&
        (data.window[0] !== data.extent[0] || data.window[1] !== data.extent[1])) {
      words.push("steps " + count(data.window[0]) + "–" + count(data.window[1]) + " of " +
        count(data.extent[0]) + "–" + count(data.extent[1]) + "; double-click to zoom out");
    }
    if (data.nan) words.push(count(data.nan) + " NaN values not drawn");
    if (data.infinite) words.push(count(data.infinite) + (data.downsampled ? " buckets hold" : " points are") +
      " ±∞ (not drawn)");
    return words.join(" · ");
  }

  function metric(el, run, key) {
    const ui = parts(el);
    const title = el.dataset.title || "";
    let plot = null;
    let extent = null;
    let busy = 0;

    async function load(start, end) {
      const ticket = ++busy;
      el.dataset.state = "loading";
      let data;
      try {
        data = await window.ratchet.getJSON(metricURL(run, key, points(), start, end));
      } catch (e) {
        if (ticket === busy) { say(ui.note, "Could not load " + key + ": " + e.message); el.dataset.state = "error"; }
        return;
      }
      if (ticket !== busy) return;  // a newer zoom superseded this answer
      extent = data.extent;
      el.dataset.points = String(data.step.length);
      el.dataset.count = String(data.count);
      el.dataset.window = data.window ? data.window.join(":") : "";
      el.dataset.width = String(data.width);
      if (!data.extent) {
        if (plot) { plot.destroy(); plot = null; }
        say(ui.note, "No values of " + key + " logged yet: they appear once the run calls " +
          "ratchet.log_metric(\"" + key + "\", value, step=...).");
        el.dataset.state = "empty";
        return;
      }
      const drawable = data.value.some(function (v) { return v !== null; }) ||
        data.max.some(function (v) { return v !== null; });
      if (!data.count) {
        say(ui.note, "No points between steps " + count(data.window[0]) + " and " +
          count(data.window[1]) + "; double-click to zoom out.");
      } else if (!drawable) {
        say(ui.note, count(data.count) + " values in this window, none finite (NaN or ±∞): nothing to draw.");
      } else {
        say(ui.note, describe(data));
      }
      const columns = [data.step, data.min, data.max, data.value];
      if (plot) {
        plot.setData(columns);
      } else {
        plot = draw(columns, title);
        resizing(el, function () { return plot; });
      }
      el.dataset.state = "ready";
    }

    function points() { return Math.min(MAX_POINTS, Math.max(MIN_POINTS, widthOf(el))); }

    function draw(columns, label) {
      const line = color(0);
      const opts = {
        width: widthOf(el), height: HEIGHT, title: label || undefined,
        cursor: {drag: {x: true, y: false, setScale: false}},
        scales: {x: {time: false}},
        series: [
          {label: "step"},
          {label: "min", stroke: "rgba(37,99,235,0.35)", width: 1, spanGaps: false},
          {label: "max", stroke: "rgba(37,99,235,0.35)", width: 1, spanGaps: false},
          {label: key, stroke: line, width: 1.5, spanGaps: false},
        ],
        bands: [{series: [2, 1], fill: "rgba(37,99,235,0.15)"}],
        hooks: {
          setSelect: [function (u) {
            if (u.select.width < 2) return;
            const lo = Math.floor(u.posToVal(u.select.left, "x"));
            const hi = Math.ceil(u.posToVal(u.select.left + u.select.width, "x"));
            u.setSelect({left: 0, top: 0, width: 0, height: 0}, false);
            if (hi > lo) load(lo, hi);
          }],
        },
      };
      const made = new uPlot(opts, columns, ui.area);
      made.over.addEventListener("dblclick", function () { if (extent) load(); });
      return made;
    }

    load();
    return {reload: load};
  }

  // ------------------------------------------------------------------ other series
  // lines(el, {x: [...], series: [{label, values}], title, xTime, legend}): x in epoch
  // seconds when xTime, else steps; values aligned with x (null = gap).
  function lines(el, spec) {
    const ui = parts(el);
    const series = (spec && spec.series) || [];
    const x = (spec && spec.x) || [];
    if (!x.length || !series.length) {
      say(ui.note, spec && spec.empty ? spec.empty : "No data to draw yet.");
      el.dataset.state = "empty";
      return null;
    }
    const opts = {
      width: widthOf(el), height: HEIGHT, title: spec.title || undefined,
      scales: {x: {time: !!spec.xTime}},
      legend: {show: spec.legend !== false},
      series: [{label: spec.xTime ? "time" : (spec.xLabel || "step")}].concat(series.map(function (s, i) {
        return {label: String(s.label), stroke: s.color || color(i), width: 1.5,
          spanGaps: s.spanGaps !== false, points: {show: x.length < 60}};
      })),
    };
    const made = new uPlot(opts, [x].concat(series.map(function (s) { return s.values; })), ui.area);
    resizing(el, function () { return made; });
    if (spec.note) say(ui.note, spec.note);
    el.dataset.state = "ready";
    return made;
  }

  function init() {
    if (typeof uPlot === "undefined") return;
    document.querySelectorAll("[data-metric-chart]").forEach(function (el) {
      if (el.dataset.state) return;
      metric(el, el.dataset.run, el.dataset.key);
    });
  }
  document.addEventListener("DOMContentLoaded", init);
  return {metric: metric, lines: lines, color: color, init: init};
})();
