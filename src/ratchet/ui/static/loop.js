// The loop pages: approve or reject the challenger that waits, as the signed-in user.
// The server records the answer (ratchet.ct.approval.request, as `ratchet ct approve`
// does); the page then reloads to show it in the timeline.
"use strict";
(function () {
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-answer]").forEach(function (form) {
      const error = form.querySelector(".error");
      const buttons = form.querySelectorAll("button[data-kind]");
      form.addEventListener("submit", function (event) { event.preventDefault(); });
      buttons.forEach(function (button) {
        button.addEventListener("click", async function () {
          const kind = button.dataset.kind;
          const url = kind === "approve" ? form.dataset.approveUrl : form.dataset.rejectUrl;
          const reason = form.querySelector("input[name=reason]").value.trim();
          error.hidden = true;
          buttons.forEach(function (b) { b.disabled = true; });
          try {
            await ratchet.postJSON(url, {reason: reason || null});
            ratchet.toast(kind + " recorded; the controller acts on its next tick");
            window.location.reload();
          } catch (e) {
            error.textContent = e.message;
            error.hidden = false;
            buttons.forEach(function (b) { b.disabled = false; });
          }
        });
      });
    });
  });
})();
