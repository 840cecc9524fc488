// Pressroom's few lines of glue around htmx: errors shown in one place, the tab title, the
// connection state while polling, and the label preview.
(function () {
  "use strict";
  const i18n = () => document.getElementById("i18n")?.dataset || {};
  const toast = (text) => {
    const box = document.getElementById("toast");
    if (!box) return;
    box.textContent = text;
    box.hidden = false;
    clearTimeout(box._timer);
    box._timer = setTimeout(() => { box.hidden = true; }, 8000);
  };
  const netStatus = (offline) => {
    const bar = document.getElementById("net-status");
    if (bar) bar.hidden = !offline;
  };
  const syncTitle = () => {
    const status = document.querySelector("[data-job-status][data-title]");
    if (status) document.title = status.dataset.title + " · Pressroom";
  };

  // htmx does not swap 4xx/5xx answers: say what happened instead of failing silently.
  document.addEventListener("htmx:responseError", (event) => {
    const xhr = event.detail.xhr;
    if (xhr.status === 401) return; // HX-Redirect to the login page is on its way
    toast((i18n().errorGeneric || "Error {status}").replace("{status}", xhr.status));
  });
  document.addEventListener("htmx:sendError", () => { netStatus(true); });
  document.addEventListener("htmx:afterRequest", (event) => {
    if (event.detail.successful || event.detail.xhr?.status) netStatus(false);
  });
  document.addEventListener("htmx:afterSwap", syncTitle);
  window.addEventListener("offline", () => netStatus(true));
  window.addEventListener("online", () => netStatus(false));
  document.addEventListener("DOMContentLoaded", () => {
    syncTitle();
    const form = document.getElementById("print-form");
    const img = document.getElementById("label-preview");
    if (form && img) {
      const refresh = () => {
        const params = new URLSearchParams(img.dataset.base.split("?")[1] || "");
        for (const name of ["layout", "offset_x", "offset_y"]) {
          const field = form.elements[name];
          if (field && field.value) params.set(name, field.value);
        }
        img.src = img.dataset.base.split("?")[0] + "?" + params.toString();
      };
      form.addEventListener("change", refresh);
      const layout = form.elements.layout, start = form.elements.start_position;
      const limitStart = () => {
        const perPage = Number(layout.selectedOptions[0]?.dataset.perPage || 1);
        start.max = perPage; start.disabled = perPage <= 1;
        if (Number(start.value) > perPage) start.value = 1;
      };
      layout.addEventListener("change", limitStart);
      limitStart();
      refresh();
    }
    // One submit per click: a double click must not start two jobs.
    for (const f of document.querySelectorAll("form[method=post]")) {
      f.addEventListener("submit", () => {
        setTimeout(() => f.querySelectorAll("button[type=submit], button:not([type])").forEach((b) => { b.disabled = true; }), 0);
      });
    }
  });
})();
