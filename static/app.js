// Pressroom's few lines of glue around htmx: errors shown in one place, the tab title, the
// connection state on every page and one submit per click (the print panel: nursery.js).
// Everything here is an enhancement: every page works with plain forms and links. The pages run
// under a strict CSP (webapp/http.py): behaviour lives here, bound by data- attributes, never in
// inline scripts or on*= attributes of the templates.
(function () {
  "use strict";
  const i18n = () => document.getElementById("i18n")?.dataset || {};
  const lang = () => document.documentElement.lang || "en";
  const fmt = (n) => new Intl.NumberFormat(lang()).format(n);

  // --- one place for messages -------------------------------------------------------------
  const toast = (text) => {
    const box = document.getElementById("toast");
    if (!box) return;
    box.querySelector(".toast-text").textContent = text;
    box.hidden = false;
    clearTimeout(box._timer);
    box._timer = setTimeout(() => { box.hidden = true; }, 10000);
  };
  const netStatus = (problem) => { // problem: null | "offline" | "server"
    const bar = document.getElementById("net-status");
    if (!bar) return;
    const text = bar.querySelector(".net-status-text");
    if (problem && text) text.textContent = text.dataset[problem] || text.textContent;
    bar.hidden = !problem;
  };
  // A poll is a request the page makes by itself; its failures are shown as the banner, not as
  // a toast every second. A click's failure is a toast.
  const isPoll = (elt) => !!elt?.matches?.("[hx-trigger^='every']");

  document.addEventListener("htmx:responseError", (event) => {
    const xhr = event.detail.xhr;
    if (xhr.status === 401) return; // HX-Redirect to the login page is on its way
    if (isPoll(event.detail.elt)) { netStatus("server"); return; }
    toast((i18n().errorGeneric || "Error {status}").replace("{status}", xhr.status));
  });
  document.addEventListener("htmx:sendError", (event) => {
    netStatus("offline");
    if (!isPoll(event.detail.elt)) toast(i18n().errorNetwork || "Network error");
  });
  document.addEventListener("htmx:afterRequest", (event) => {
    if (event.detail.successful) netStatus(null);
  });
  window.addEventListener("offline", () => netStatus("offline"));
  // Back online, or any request of a page's own (nursery.js) answered: the banner goes, on every
  // page, polling or not.
  window.addEventListener("online", () => netStatus(null));
  window.addEventListener("pressroom:online", () => netStatus(null));
  window.addEventListener("pressroom:offline", () => netStatus("offline"));
  // A filter form (GET) sends only the fields that filter: no "?q=&week=" in the address.
  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || form.method.toLowerCase() !== "get") return;
    const empty = [...form.elements].filter((el) => el.name && !el.disabled && el.value === "" && el.type !== "submit");
    empty.forEach((el) => { el.disabled = true; });
    setTimeout(() => empty.forEach((el) => { el.disabled = false; }), 0);
  });
  // A poll that only matters while the tab is seen (the admin panel): skipped while hidden. In
  // here, not as an hx-trigger filter: htmx runs without eval under the page's CSP.
  document.addEventListener("htmx:beforeRequest", (event) => {
    if (document.visibilityState !== "visible" && event.detail.elt?.matches?.("[data-poll-visible]")) {
      event.preventDefault();
    }
  });
  // A select that submits its form when changed (no inline onchange under the CSP).
  document.addEventListener("change", (event) => {
    const field = event.target.closest?.("[data-submit-on-change]");
    if (field?.form) field.form.requestSubmit();
  });
  document.addEventListener("click", (event) => {
    if (event.target.closest(".toast-close")) document.getElementById("toast").hidden = true;
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") { const box = document.getElementById("toast"); if (box) box.hidden = true; }
  });

  // --- the tab title follows the job's state ----------------------------------------------
  const syncTitle = () => {
    const status = document.querySelector("[data-job-status][data-title]");
    if (status) document.title = status.dataset.title + (i18n().titleSuffix || " · Pressroom");
  };
  // Keep keyboard focus when the status box it was in is replaced by a poll or a click.
  let refocus = null;
  document.addEventListener("htmx:beforeSwap", (event) => {
    const active = document.activeElement;
    refocus = active && event.detail.target?.contains(active) ? active.textContent.trim() : null;
  });
  document.addEventListener("htmx:afterSwap", () => {
    syncTitle();
    if (refocus === null) return;
    const box = document.querySelector("[data-job-status]");
    const same = [...(box?.querySelectorAll("a, button") || [])].find((el) => el.textContent.trim() === refocus);
    (same || box?.querySelector("a.download, button, a"))?.focus();
    refocus = null;
  });

  // The potting-lot table's print panel: static/nursery.js.

  // --- one submit per click: a double click must not start two jobs -------------------------
  const guardSubmits = () => {
    for (const form of document.querySelectorAll("form[method=post]:not([hx-post])")) {
      form.addEventListener("submit", () => {
        // After the submit event, or the clicked button's name/value would be left out.
        setTimeout(() => {
          for (const b of form.elements) {
            if (b.type === "submit" && !b.disabled) { b.disabled = true; b.dataset.guarded = "1"; }
          }
        }, 0);
      });
    }
  };
  // Coming back with the Back button shows the page from the cache: make its buttons work again.
  window.addEventListener("pageshow", (event) => {
    if (!event.persisted) return;
    document.querySelectorAll("[data-guarded]").forEach((b) => { b.disabled = false; delete b.dataset.guarded; });
  });

  document.addEventListener("DOMContentLoaded", () => {
    syncTitle();
    guardSubmits();
  });
})();
