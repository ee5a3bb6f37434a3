// Model pages: the "move an alias" form posts JSON to /ui/api/models/alias (the server
// checks write permission on the model again) and reloads to show the recorded move.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  const form = document.querySelector("form[data-move-alias]");
  if (!form) return;
  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    const error = form.querySelector(".error");
    const button = form.querySelector("button[type=submit]");
    error.hidden = true;
    button.disabled = true;
    const reason = form.querySelector("#move-reason").value.trim();
    try {
      const moved = await ratchet.postJSON("/ui/api/models/alias", {
        name: form.dataset.model,
        alias: form.querySelector("#move-alias").value.trim(),
        version: parseInt(form.querySelector("#move-version").value, 10),
        reason: reason || null,
      });
      ratchet.toast(moved.alias + " → v" + moved.to_version);
      window.location.reload();
    } catch (e) {
      error.textContent = e.message;
      error.hidden = false;
      button.disabled = false;
    }
  });
});
