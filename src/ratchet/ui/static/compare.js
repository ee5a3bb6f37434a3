// Compare runs: metric overlays (one chart per metric, one line per run, downsampled by
// the server), parallel coordinates of params vs a metric in plain SVG (no plotting
// library: the CSP forbids eval and there is no WebGL), the "only differences" toggle.
// Names, keys and values are user strings: they reach the page only as textContent.
"use strict";
(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const MAX_AXES = 16;
  const LEGEND_RUNS = 12;  // more runs than this: the run list above is the legend

  function svg(name, attrs, parent) {
    const el = document.createElementNS(SVG, name);
    Object.keys(attrs || {}).forEach(function (k) { el.setAttribute(k, attrs[k]); });
    if (parent) parent.appendChild(el);
    return el;
  }

  function short(text, n) {
    text = String(text);
    return text.length > n ? text.slice(0, n - 1) + "…" : text;
  }

  // ------------------------------------------------------------------ overlays
  async function overlays(data) {
    const box = document.querySelector(".compare-charts");
    if (!box) return;
    const runs = data.runs;
    const names = {};
    runs.forEach(function (r, i) { names[r.id] = {label: r.name + " · " + r.id.slice(-6), index: i}; });
    const charts = Array.from(box.querySelectorAll("[data-compare-chart]"));
    // An overlay of hundreds of runs costs the server a window per run: fetch a chart
    // only when it comes near the viewport, so the charts below the fold do not delay
    // the ones being looked at.
    if ("IntersectionObserver" in window) {
      const watcher = new IntersectionObserver(function (entries) {
        entries.forEach(function (entry) {
          if (!entry.isIntersecting) return;
          watcher.unobserve(entry.target);
          draw(entry.target);
        });
      }, {rootMargin: "300px 0px"});
      charts.forEach(function (el) { el.dataset.state = "waiting"; watcher.observe(el); });
    } else {
      await Promise.all(charts.map(draw));
    }

    async function draw(el) {
      const key = el.dataset.key;
      el.dataset.state = "loading";
      let answer;
      try {
        answer = await window.ratchet.getJSON("/ui/api/compare/metric?key=" + encodeURIComponent(key) +
          "&points=" + box.dataset.points + "&" + box.dataset.runs);
      } catch (e) {
        el.textContent = "Could not load " + key + ": " + e.message;
        el.dataset.state = "error";
        return;
      }
      const drawn = answer.series.filter(function (s) { return s.step.length; });
      const tables = drawn.map(function (s) { return [s.step, s.value]; });
      const joined = tables.length ? uPlot.join(tables) : [[]];
      const without = runs.length - drawn.length;
      const thinned = drawn.filter(function (s) { return s.downsampled; }).length;
      const words = [];
      if (without) words.push(without + " of " + runs.length + " runs have no " + key);
      if (thinned) words.push(thinned + " downsampled to bucket means");
      window.ratchetCharts.lines(el, {
        x: joined[0],
        series: drawn.map(function (s, i) {
          return {label: names[s.run].label, values: joined[i + 1],
            color: window.ratchetCharts.color(names[s.run].index)};
        }),
        legend: drawn.length <= LEGEND_RUNS,
        xLabel: "step",
        note: words.join(" · "),
        empty: "None of these runs logged " + key + ".",
      });
      el.dataset.series = String(drawn.length);
    }
  }

  // ------------------------------------------------------------------ parallel coordinates
  function axisOf(key, values) {
    // Numeric when every present value is a finite number; otherwise categories in order.
    const present = values.filter(function (v) { return v !== undefined && v !== null && v !== ""; });
    const numbers = present.map(Number);
    if (present.length && numbers.every(function (n) { return Number.isFinite(n); })) {
      let lo = Math.min.apply(null, numbers), hi = Math.max.apply(null, numbers);
      if (lo === hi) { lo -= 1; hi += 1; }
      return {key: key, numeric: true, lo: lo, hi: hi,
        at: function (v) { return (Number(v) - lo) / (hi - lo); },
        ticks: [[lo, 0], [(lo + hi) / 2, 0.5], [hi, 1]].map(function (t) { return [fmt(t[0]), t[1]]; })};
    }
    const cats = Array.from(new Set(present.map(String))).sort();
    const place = {};
    cats.forEach(function (c, i) { place[c] = cats.length === 1 ? 0.5 : i / (cats.length - 1); });
    const every = Math.ceil(cats.length / 12);
    return {key: key, numeric: false,
      at: function (v) { return place[String(v)]; },
      ticks: cats.filter(function (_, i) { return i % every === 0; }).map(function (c) { return [c, place[c]]; })};
  }

  function fmt(n) {
    if (!Number.isFinite(n)) return String(n);
    const a = Math.abs(n);
    return (a !== 0 && (a < 1e-3 || a >= 1e6)) ? n.toExponential(2) : String(Number(n.toPrecision(4)));
  }

  function heat(t) {  // low metric: blue, high: red
    return "hsl(" + Math.round(230 - 230 * t) + ", 75%, 45%)";
  }

  function parallel(data) {
    const holder = document.querySelector("[data-parallel]");
    if (!holder) return;
    const pick = document.querySelector("[data-pc-metric]");
    const note = document.querySelector("[data-parallel-note]");
    const runs = data.runs;
    function draw() {
      const metric = pick.value;
      let params = data.params.filter(function (k) {
        return new Set(runs.map(function (r) { return r.params[k]; })).size > 1;
      });
      if (!params.length) params = data.params.slice();
      const dropped = Math.max(0, params.length - (MAX_AXES - 1));
      params = params.slice(0, MAX_AXES - 1);
      const axes = params.map(function (k) { return axisOf(k, runs.map(function (r) { return r.params[k]; })); });
      const target = axisOf(metric, runs.map(function (r) { return r.metrics[metric]; }));
      axes.push(target);
      const width = Math.max(holder.clientWidth || 800, 140 * axes.length);
      const top = 44, bottom = 40, height = 360;
      const plotH = height - top - bottom;
      const gap = axes.length > 1 ? (width - 120) / (axes.length - 1) : 0;
      const x = function (i) { return 60 + i * gap; };
      const y = function (t) { return top + (1 - t) * plotH; };
      const missingY = height - 14;
      holder.replaceChildren();
      const root = svg("svg", {width: width, height: height, viewBox: "0 0 " + width + " " + height, "data-parallel-svg": ""}, holder);
      const lines = svg("g", {"class": "pc-lines"}, root);
      runs.forEach(function (run) {
        const value = run.metrics[metric];
        const t = value === null || value === undefined ? null : target.at(value);
        const points = axes.map(function (axis, i) {
          const v = i === axes.length - 1 ? value : run.params[axis.key];
          const at = v === undefined || v === null || v === "" ? null : axis.at(v);
          return x(i).toFixed(1) + "," + (at === null || at === undefined ? missingY : y(at)).toFixed(1);
        });
        const path = svg("path", {"class": "pc-run", d: "M" + points.join("L"),
          stroke: t === null ? "#999" : heat(t), "data-run": run.id}, lines);
        const title = svg("title", {}, path);
        title.textContent = run.name + " · " + metric + " = " + (value === null || value === undefined ? "none" : fmt(value));
        path.addEventListener("mouseenter", function () { lines.appendChild(path); });
      });
      axes.forEach(function (axis, i) {
        const g = svg("g", {"class": "axis", transform: "translate(" + x(i) + ",0)"}, root);
        svg("line", {x1: 0, x2: 0, y1: top, y2: top + plotH}, g);
        const label = svg("text", {"class": "pc-label", x: 0, y: top - 24, "text-anchor": "middle", "font-weight": i === axes.length - 1 ? "700" : "600"}, g);
        label.textContent = short(axis.key, 22);
        const full = svg("title", {}, label);
        full.textContent = (i === axes.length - 1 ? "metric " : "param ") + axis.key;
        axis.ticks.forEach(function (tick) {
          svg("line", {x1: -4, x2: 0, y1: y(tick[1]), y2: y(tick[1])}, g);
          const text = svg("text", {x: -6, y: y(tick[1]) + 3, "text-anchor": "end"}, g);
          text.textContent = short(tick[0], 16);
          if (String(tick[0]).length > 16) svg("title", {}, text).textContent = String(tick[0]);
        });
        const none = svg("text", {x: -6, y: missingY + 3, "text-anchor": "end", fill: "#999"}, g);
        none.textContent = "none";
      });
      const words = [runs.length + " runs, coloured by " + metric + " (blue low, red high)"];
      if (dropped) words.push(dropped + " more params not shown (first " + params.length + " that differ)");
      note.textContent = words.join(" · ");
      note.hidden = false;
      holder.dataset.state = "ready";
    }
    pick.addEventListener("change", draw);
    draw();
  }

  // ------------------------------------------------------------------ diff table
  function differences() {
    const toggle = document.querySelector("[data-only-differences]");
    const table = document.querySelector("[data-diff]");
    if (!toggle || !table) return;
    toggle.addEventListener("change", function () {
      table.classList.toggle("only-differences", toggle.checked);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    const data = window.ratchet.data("compare-data");
    if (!data) return;
    document.querySelectorAll("[data-swatch]").forEach(function (el) {
      el.style.background = window.ratchetCharts.color(Number(el.dataset.swatch));
    });
    differences();
    parallel(data);
    overlays(data);
  });
})();
