// Pipeline run page: selecting a DAG node (click, Enter, or a #step-<node> link) marks
// it and its edges, and brings its step panel (log, error, outputs) into view.
"use strict";
(function () {
  function select(node, scroll) {
    document.querySelectorAll("svg.dag .node.selected, section.step.selected").forEach(function (el) {
      el.classList.remove("selected");
    });
    document.querySelectorAll("svg.dag .edge.lit").forEach(function (el) { el.classList.remove("lit"); });
    if (!node) return;
    const box = document.querySelector('svg.dag .node[data-node="' + CSS.escape(node) + '"]');
    const panel = document.getElementById("step-" + node);
    if (box) box.classList.add("selected");
    document.querySelectorAll("svg.dag .edge").forEach(function (edge) {
      if (edge.dataset.from === node || edge.dataset.to === node) edge.classList.add("lit");
    });
    if (panel) {
      panel.classList.add("selected");
      if (scroll) {
        panel.scrollIntoView({block: "start"});
        panel.focus({preventScroll: true});
      }
    }
  }
  function fromHash() {
    const hash = decodeURIComponent(window.location.hash || "");
    return hash.indexOf("#step-") === 0 ? hash.slice(6) : null;
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("svg.dag .node, [data-node-link]").forEach(function (link) {
      link.addEventListener("click", function (event) {
        const node = link.dataset.node || link.dataset.nodeLink;
        event.preventDefault();
        history.replaceState(null, "", "#step-" + node);
        select(node, true);
      });
    });
    select(fromHash(), false);
    // A running pipeline's page follows it: reloaded until the run ends (the server
    // renders each state; the selected step is kept in the URL's hash).
    const refresh = document.querySelector("[data-refresh]");
    if (refresh) {
      setTimeout(function () { window.location.reload(); }, 1000 * Number(refresh.dataset.refresh));
    }
    window.addEventListener("hashchange", function () { select(fromHash(), true); });
  });
})();
