// Pressroom's few lines of glue around htmx: errors shown in one place, the tab title, the
// connection state while polling, the print panel (preview, counts) and one submit per click.
// Everything here is an enhancement: every page works with plain forms and links.
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

  // --- the print panel -----------------------------------------------------------------------
  const printPanel = () => {
    const form = document.getElementById("print-form");
    if (!form) return;
    const lots = Number(form.dataset.lots || 0);
    const { layout, start_position: start, copies } = form.elements;
    const img = document.getElementById("label-preview");
    const count = form.querySelector("[data-print-count]");
    const what = document.getElementById("print-what");
    const whatOne = what?.textContent;

    const limitStart = () => {
      const perPage = Number(layout.selectedOptions[0]?.dataset.perPage || 1);
      start.max = perPage;
      start.disabled = perPage <= 1;
      if (Number(start.value) > perPage || start.disabled) start.value = 1;
    };
    const updateCount = () => {
      const n = Math.min(Math.max(parseInt(copies.value, 10) || 1, 1), 100);
      if (count) count.textContent = fmt(lots * n);
      if (what) {
        what.textContent = n === 1 ? whatOne : what.dataset.manyCopies
          .replace("{labels}", fmt(lots * n)).replace("{copies}", fmt(n));
      }
    };
    let timer = null;
    const refreshPreview = () => {
      if (!img) return;
      clearTimeout(timer);
      timer = setTimeout(() => {
        const [path, query] = img.dataset.base.split("?");
        const params = new URLSearchParams(query || "");
        for (const name of ["layout", "offset_x", "offset_y"]) {
          const field = form.elements[name];
          if (field && field.value) params.set(name, field.value);
        }
        const src = path + "?" + params.toString();
        if (img.getAttribute("src") !== src) { img.classList.add("loading"); img.src = src; }
      }, 250);
    };
    img?.addEventListener("load", () => img.classList.remove("loading"));
    img?.addEventListener("error", () => img.classList.remove("loading"));
    layout.addEventListener("change", limitStart);
    copies.addEventListener("input", updateCount);
    form.addEventListener("change", refreshPreview);
    form.addEventListener("input", (e) => { if (e.target.name?.startsWith("offset_")) refreshPreview(); });
    limitStart();
    updateCount();

    // Ticked rows: a count on the reprint button, a "tick all" box for the page.
    const boxes = [...document.querySelectorAll("input[type=checkbox][name=lot_id]")];
    const all = document.getElementById("select-all");
    const reprint = document.querySelector("[data-reprint-selected]");
    const selected = reprint?.querySelector("[data-selected-count]");
    const updateSelected = () => {
      const n = boxes.filter((b) => b.checked).length;
      if (selected) selected.textContent = fmt(n);
      if (reprint) reprint.disabled = n === 0;
      if (all) { all.checked = n > 0 && n === boxes.length; all.indeterminate = n > 0 && n < boxes.length; }
    };
    boxes.forEach((b) => b.addEventListener("change", updateSelected));
    if (all) {
      all.hidden = false;
      all.addEventListener("change", () => { boxes.forEach((b) => { b.checked = all.checked; }); updateSelected(); });
    }
    updateSelected();

    // A row's own "Reprint" uses the same print settings as the panel.
    const one = document.getElementById("reprint-one");
    one?.addEventListener("submit", () => {
      for (const name of ["layout", "copies", "start_position", "offset_x", "offset_y"]) {
        const source = form.elements[name];
        if (!source || source.disabled) continue;
        let field = one.elements[name];
        if (!field) {
          field = Object.assign(document.createElement("input"), { type: "hidden", name });
          one.append(field);
        }
        field.value = source.value;
      }
    });
  };

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
    printPanel();
    guardSubmits();
  });
})();
