// The dashboard's shared script: JSON requests, page data, sign-in/out, messages.
// Pages never run inline script (the Content-Security-Policy forbids it): data comes in
// <script type="application/json"> blocks and behaviour is bound to data-* attributes.
"use strict";
window.ratchet = (function () {
  function data(id) {
    const el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  }
  async function postJSON(url, body) {
    const answer = await fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "Accept": "application/json"},
      body: JSON.stringify(body === undefined ? {} : body),
    });
    const text = await answer.text();
    let parsed = null;
    try { parsed = text ? JSON.parse(text) : null; } catch (e) { parsed = null; }
    if (!answer.ok) {
      const message = parsed && parsed.error ? parsed.error.message : answer.status + " " + answer.statusText;
      throw new Error(message);
    }
    return parsed;
  }
  async function getJSON(url) {
    const answer = await fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}});
    const parsed = await answer.json();
    if (!answer.ok) throw new Error(parsed && parsed.error ? parsed.error.message : String(answer.status));
    return parsed;
  }
  function toast(message, isError) {
    const box = document.querySelector(".toast");
    if (!box) return;
    box.textContent = message;
    box.classList.toggle("bad", !!isError);
    box.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(function () { box.hidden = true; }, 6000);
  }
  document.addEventListener("DOMContentLoaded", function () {
    const form = document.querySelector("form[data-sign-in]");
    if (form) {
      form.addEventListener("submit", async function (event) {
        event.preventDefault();
        const error = form.querySelector(".error");
        error.hidden = true;
        try {
          await postJSON("/ui/api/session", {token: form.querySelector("#token").value});
          window.location.assign(form.dataset.next || "/ui/");
        } catch (e) {
          error.textContent = e.message;
          error.hidden = false;
        }
      });
    }
    document.querySelectorAll("[data-sign-out]").forEach(function (button) {
      button.addEventListener("click", async function () {
        await postJSON("/ui/api/session/end");
        window.location.assign("/ui/login");
      });
    });
  });
  return {data: data, postJSON: postJSON, getJSON: getJSON, toast: toast};
})();
