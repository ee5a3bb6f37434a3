// The runs table: keyboard navigation of rows, selection for comparing, the column chooser.
// Everything works without this script (links, a GET form, a compare form); it adds keys
// and a searchable list of column keys.
"use strict";
(function () {
  const SHOWN_KEYS = 200; // the chooser lists at most this many matches at once

  function rowsOf(table) { return Array.from(table.tBodies[0].rows); }

  function focusRow(rows, index) {
    if (!rows.length) return;
    const target = rows[Math.max(0, Math.min(rows.length - 1, index))];
    rows.forEach(function (row) { row.tabIndex = row === target ? 0 : -1; });
    target.focus();
  }

  function bindTable(table) {
    const compare = document.querySelector("[data-compare]");
    function refresh() {
      const picked = table.querySelectorAll("tbody input[type=checkbox]:checked").length;
      rowsOf(table).forEach(function (row) {
        const box = row.querySelector("input[type=checkbox]");
        row.classList.toggle("selected", !!(box && box.checked));
        row.setAttribute("aria-selected", box && box.checked ? "true" : "false");
      });
      if (compare) {
        compare.disabled = picked < 2;
        compare.textContent = picked ? "Compare " + picked + " runs" : "Compare selected";
      }
    }
    table.addEventListener("keydown", function (event) {
      const row = event.target.closest ? event.target.closest("tbody tr") : null;
      if (!row || event.target !== row) return;
      const rows = rowsOf(table);
      const at = rows.indexOf(row);
      const moves = {ArrowDown: at + 1, ArrowUp: at - 1, Home: 0, End: rows.length - 1,
                     PageDown: at + 10, PageUp: at - 10};
      if (event.key in moves) {
        event.preventDefault();
        focusRow(rows, moves[event.key]);
      } else if (event.key === "Enter") {
        event.preventDefault();
        window.location.assign(row.dataset.href);
      } else if (event.key === " ") {
        event.preventDefault();
        const box = row.querySelector("input[type=checkbox]");
        if (box) { box.checked = !box.checked; refresh(); }
      }
    });
    table.addEventListener("click", function (event) {
      if (event.target.closest("a, input, label, button")) return;
      const row = event.target.closest("tbody tr");
      if (row) window.location.assign(row.dataset.href);
    });
    table.addEventListener("change", refresh);
    table.addEventListener("focusin", function (event) {
      const row = event.target.closest("tbody tr");
      if (row) rowsOf(table).forEach(function (r) { r.tabIndex = r === row ? 0 : -1; });
    });
    refresh();
  }

  function bindChooser(box) {
    const data = window.ratchet.data("runs-chooser") || {keys: [], columns: []};
    const field = document.getElementById("columns");
    const search = box.querySelector("[data-chooser-search]");
    const list = box.querySelector("[data-chooser-list]");
    const count = box.querySelector("[data-chooser-count]");
    let chosen = (field.value || "").split(",").map(function (s) { return s.trim(); })
      .filter(Boolean);
    const known = new Set(data.keys);
    chosen.forEach(function (key) { if (!known.has(key)) { known.add(key); data.keys.push(key); } });

    function write() { field.value = chosen.join(","); }
    function render() {
      const needle = search.value.trim().toLowerCase();
      const matches = data.keys.filter(function (key) {
        return !needle || key.toLowerCase().indexOf(needle) !== -1;
      });
      list.replaceChildren();
      matches.slice(0, SHOWN_KEYS).forEach(function (key, i) {
        const item = document.createElement("li");
        const input = document.createElement("input");
        input.type = "checkbox";
        input.id = "chooser-key-" + i;
        input.checked = chosen.indexOf(key) !== -1;
        input.addEventListener("change", function () {
          chosen = chosen.filter(function (k) { return k !== key; });
          if (input.checked) chosen.push(key);
          write();
        });
        const label = document.createElement("label");
        label.htmlFor = input.id;
        label.textContent = key; // text, never markup
        item.append(input, " ", label);
        list.append(item);
      });
      count.textContent = matches.length > SHOWN_KEYS
        ? matches.length + " keys match; showing the first " + SHOWN_KEYS + ": narrow the search"
        : matches.length + " of " + data.keys.length + " keys";
    }
    search.addEventListener("input", render);
    search.addEventListener("keydown", function (event) {
      if (event.key !== "Enter") return;
      event.preventDefault();
      const typed = search.value.trim();
      if (/^(metrics|params|tags)\..+/.test(typed) && chosen.indexOf(typed) === -1) {
        chosen.push(typed);
        if (!known.has(typed)) { known.add(typed); data.keys.push(typed); }
        write();
        render();
      }
    });
    box.querySelector("[data-chooser-apply]").addEventListener("click", function () {
      write();
      field.form.requestSubmit();
    });
    box.querySelector("[data-chooser-clear]").addEventListener("click", function () {
      chosen = [];
      write();
      render();
    });
    render();
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-runs-table]").forEach(bindTable);
    document.querySelectorAll("[data-chooser]").forEach(bindChooser);
  });
})();
