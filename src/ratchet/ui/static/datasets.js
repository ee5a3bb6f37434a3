// The dataset diff page: the row comparison reads both snapshots (seconds on large data),
// so the page shows the profile-based changes at once and fills the row counts in from
// /ui/api/datasets/{name}/diff when they are ready.
"use strict";
document.addEventListener("DOMContentLoaded", async function () {
  const rows = document.getElementById("diff-rows");
  if (!rows) return;
  const fields = rows.querySelectorAll("[data-field]");
  try {
    const result = await ratchet.getJSON(rows.dataset.rowsUrl);
    fields.forEach(function (field) {
      const value = result[field.dataset.field];
      field.textContent = value === null || value === undefined ? "—" : value.toLocaleString("en-US");
      field.removeAttribute("aria-busy");
    });
    document.querySelector(".identical").hidden = !result.identical;
  } catch (e) {
    fields.forEach(function (field) { field.textContent = "—"; field.removeAttribute("aria-busy"); });
    const error = document.querySelector(".rows-error");
    error.textContent = "The rows could not be compared: " + e.message;
    error.hidden = false;
  }
});
