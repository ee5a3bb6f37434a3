// Deployment pages: time-series charts from the page's JSON (drawn by chart.js), and the
// traffic window selector submitting on change.
"use strict";
(function () {
  document.addEventListener("DOMContentLoaded", function () {
    const charts = window.ratchet.data("deployment-charts") || [];
    charts.forEach(function (chart) {
      const element = document.querySelector('[data-chart="' + CSS.escape(chart.id) + '"]');
      if (!element) return;
      window.ratchetCharts.lines(element, {x: chart.x, series: chart.series, title: chart.title, xTime: true});
    });
    document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
      select.addEventListener("change", function () { select.form.submit(); });
    });
  });
})();
