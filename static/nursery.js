// The potting-lot table's print panel: a printer profile fills the fields, the counts and the
// batch limit follow the copies as they are typed, ticks are kept by the server (so they survive
// paging) and the preview shows the first label (rolls) or the whole first sheet (sheets).
// An enhancement like app.js: without it the forms still post, the server checks everything.
(function () {
  "use strict";
  const lang = () => document.documentElement.lang || "en";
  const fmt = (n) => new Intl.NumberFormat(lang()).format(n);
  const plural = (el, n) => {
    if (!el) return;
    const text = n === 1 ? el.dataset.one : el.dataset.many;
    if (text) el.textContent = text.replace("{num}", fmt(n));
  };
  const say = (text) => { // the page's one message box (base.html)
    const box = document.getElementById("toast");
    if (!box) return;
    box.querySelector(".toast-text").textContent = text;
    box.hidden = false;
  };

  const init = () => {
    const form = document.getElementById("print-form");
    if (!form) return;
    document.documentElement.classList.add("js-print");
    const lots = Number(form.dataset.lots || 0);
    let ticked = Number(form.dataset.ticked || 0);
    const maxLabels = Number(form.dataset.maxLabels || Infinity);
    const maxCopies = Number(form.dataset.maxCopies || Infinity);
    const { layout, copies, start_position: start, profile_id: profile, offset_x: ox, offset_y: oy } = form.elements;
    const csrf = form.elements.csrf_token.value;
    const tickedButton = document.getElementById("print-ticked");
    const filteredButton = document.getElementById("print-filtered");
    const over = form.querySelector("[data-print-over]");
    const copiesOver = form.querySelector("[data-copies-over]");
    const bar = document.querySelector("[data-selection-bar]");
    const img = document.getElementById("label-preview");
    const figure = img?.closest("figure");
    const caption = figure?.querySelector("figcaption");
    const customOption = layout.querySelector("option[data-custom]");
    const edit = document.getElementById("p-profile-edit");

    const copiesValue = () => Math.max(parseInt(copies.value, 10) || 1, 1);
    const perPage = () => Number(layout.selectedOptions[0]?.dataset.perPage || 1);

    // --- counts, the main action and the batch limit ----------------------------------------
    const label = (button, count, n) => {
      if (!button) return;
      const spans = button.querySelectorAll("[data-count-lots], [data-count-labels]");
      if (!spans.length) return; // "Nothing to print"
      plural(spans[0], count);
      plural(spans[1], count * n);
      button.disabled = count === 0 || count * n > maxLabels;
    };
    const updateCounts = () => {
      const n = copiesValue();
      const hasTicks = ticked > 0;
      label(tickedButton, ticked, n);
      label(filteredButton, lots, n);
      if (tickedButton) {
        tickedButton.hidden = !hasTicks;
        tickedButton.classList.toggle("primary", hasTicks);
        tickedButton.classList.toggle("big", hasTicks);
      }
      if (filteredButton) {
        filteredButton.classList.toggle("primary", !hasTicks);
        filteredButton.classList.toggle("big", !hasTicks);
      }
      const labels = (hasTicks ? ticked : lots) * n;
      if (over) {
        over.hidden = labels <= maxLabels;
        over.textContent = over.dataset.text.replace("{labels}", fmt(labels));
      }
      const tooMany = (parseInt(copies.value, 10) || 1) > maxCopies;
      if (copiesOver) copiesOver.hidden = !tooMany;
      if (tooMany) copies.setAttribute("aria-invalid", "true");
      else if (!form.querySelector("#err-copies")) copies.removeAttribute("aria-invalid");
      if (bar) {
        const text = bar.querySelector("[data-ticked-text]");
        if (text) { if (ticked) plural(text, ticked); else text.textContent = text.dataset.none; }
        bar.classList.toggle("has-ticks", hasTicks);
        const clear = bar.querySelector("[data-clear-ticks]");
        if (clear) clear.hidden = !hasTicks;
      }
    };

    const chip = form.querySelector("[data-offset-chip]");
    const showOffset = () => {
      if (!chip) return;
      const x = Number(ox.value.replace(",", ".")) || 0;
      const y = Number(oy.value.replace(",", ".")) || 0;
      chip.hidden = !x && !y;
      chip.textContent = `${fmt(x)} → · ${fmt(y)} ↓ mm`;
    };

    const limitStart = () => {
      const pages = perPage();
      start.max = pages;
      start.disabled = pages <= 1;
      if (start.disabled || Number(start.value) > pages || Number(start.value) < 1) start.value = 1;
    };

    // --- the preview: one label on a roll, the whole first sheet on sheets -------------------
    let timer = null;
    const refreshPreview = () => {
      if (!img) return;
      clearTimeout(timer);
      timer = setTimeout(() => {
        const sheet = perPage() > 1;
        const [path, query] = (sheet ? form.dataset.sheetUrl : form.dataset.labelUrl).split("?");
        const params = new URLSearchParams(query || "");
        // A sheet shows the start position and the copies; a roll's one label neither.
        for (const field of sheet ? [layout, ox, oy, profile, start, copies] : [layout, ox, oy, profile]) {
          if (field && !field.disabled && field.value) params.set(field.name, field.value);
        }
        if (ticked > 0) { params.set("ticked", "1"); params.set("n", String(ticked)); }
        const src = path + "?" + params.toString();
        figure.classList.toggle("sheet", sheet);
        img.alt = sheet ? img.dataset.altSheet : img.dataset.altLabel;
        if (caption) caption.textContent = sheet ? caption.dataset.captionSheet : caption.dataset.captionLabel;
        if (img.getAttribute("src") !== src) { img.classList.add("loading"); img.src = src; }
      }, 250);
    };
    img?.addEventListener("load", () => img.classList.remove("loading"));
    img?.addEventListener("error", () => img.classList.remove("loading"));

    // --- printer profiles fill the fields ----------------------------------------------------
    const applyProfile = () => {
      const data = profile.selectedOptions[0]?.dataset || {};
      const custom = data.layout === "custom";
      if (customOption) {
        customOption.hidden = customOption.disabled = !custom;
        if (custom) { customOption.textContent = data.layoutName; customOption.dataset.perPage = data.perPage; }
      }
      if (data.layout) {
        layout.value = data.layout;
        copies.value = data.copies;
        start.value = data.start;
        ox.value = data.offsetX;
        oy.value = data.offsetY;
      } else if (layout.value === "custom") {
        layout.selectedIndex = 0;
      }
      if (edit) {
        edit.href = data.edit || edit.dataset.new;
        edit.textContent = data.edit ? edit.dataset.editText : edit.dataset.newText;
      }
      limitStart();
      updateCounts();
      showOffset();
      refreshPreview();
    };

    profile?.addEventListener("change", applyProfile);
    layout.addEventListener("change", () => { limitStart(); updateCounts(); });
    copies.addEventListener("input", updateCounts);
    form.addEventListener("change", refreshPreview);
    form.addEventListener("input", (e) => {
      if (["offset_x", "offset_y", "start_position", "copies"].includes(e.target.name)) refreshPreview();
      if (e.target.name?.startsWith("offset_")) showOffset();
    });
    limitStart();
    updateCounts();

    // --- ticks, kept by the server across pages ----------------------------------------------
    const boxes = [...document.querySelectorAll("input[type=checkbox][name=lot_id]")];
    const all = document.getElementById("select-all");
    let sent = 0;
    const send = (action, ids) => {
      const body = new URLSearchParams({ action, csrf_token: csrf });
      ids.forEach((id) => body.append("lot_id", id));
      const mine = ++sent;
      form.dataset.syncing = "1";
      fetch(form.dataset.selectionUrl, {
        method: "POST",
        body,
        credentials: "same-origin",
        headers: { Accept: "application/json", "X-CSRFToken": csrf },
      })
        .then((response) => response.json().then((data) => ({ ok: response.ok, data })))
        .then(({ ok, data }) => {
          window.dispatchEvent(new Event("pressroom:online"));
          if (mine !== sent) return; // a newer change is on its way
          delete form.dataset.syncing;
          ticked = data.count;
          if (!ok && data.error) say(data.error);
          updateCounts();
          refreshPreview();
        })
        .catch(() => { // offline: this page's ticks still go with the form
          window.dispatchEvent(new Event("pressroom:offline"));
          if (mine === sent) delete form.dataset.syncing;
        });
    };
    const syncAll = () => {
      if (!all) return;
      const n = boxes.filter((b) => b.checked).length;
      all.checked = n > 0 && n === boxes.length;
      all.indeterminate = n > 0 && n < boxes.length;
    };
    boxes.forEach((box) => box.addEventListener("change", () => {
      ticked = Math.max(0, ticked + (box.checked ? 1 : -1));
      syncAll();
      updateCounts();
      send(box.checked ? "tick" : "untick", [box.value]);
    }));
    if (all) {
      all.hidden = false;
      all.addEventListener("change", () => {
        const changed = boxes.filter((b) => b.checked !== all.checked);
        changed.forEach((b) => { b.checked = all.checked; });
        ticked = Math.max(0, ticked + (all.checked ? 1 : -1) * changed.length);
        updateCounts();
        if (changed.length) send(all.checked ? "tick" : "untick", changed.map((b) => b.value));
      });
    }
    syncAll();

    // A row's own "Reprint" uses the same print settings as the panel.
    const one = document.getElementById("reprint-one");
    one?.addEventListener("submit", () => {
      for (const name of ["profile_id", "layout", "copies", "start_position", "offset_x", "offset_y"]) {
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

  // --- the printer profile form: the custom sizes show for a custom layout -----------------
  const profileForm = () => {
    const form = document.getElementById("profile-form");
    if (!form) return;
    const choice = form.elements.layout;
    const show = () => {
      const value = choice.value;
      form.querySelectorAll("[data-for-layout]").forEach((box) => {
        const wanted = box.dataset.forLayout.split(" ");
        box.hidden = !wanted.includes(value);
        box.querySelectorAll("input").forEach((input) => { input.disabled = box.hidden; });
      });
      const start = form.elements.start_position;
      const perPage = Number(choice.selectedOptions[0]?.dataset.perPage || 0);
      if (start && perPage) start.max = perPage;
    };
    // The first sheet as these sizes print it, redrawn as they are typed.
    const img = document.getElementById("profile-preview");
    let timer = null;
    const redraw = () => {
      if (!img) return;
      clearTimeout(timer);
      timer = setTimeout(() => {
        const params = new URLSearchParams();
        for (const field of form.elements) {
          if (field.name && field.name !== "csrf_token" && field.name !== "name" && !field.disabled && field.value) {
            params.set(field.name, field.value);
          }
        }
        const src = img.closest("figure").dataset.url + "?" + params.toString();
        if (img.getAttribute("src") !== src) { img.classList.add("loading"); img.src = src; }
      }, 300);
    };
    const caption = img?.closest("figure").querySelector("figcaption");
    const settle = (field) => { // a message the server gave is stale once the field changes
      field.removeAttribute("aria-invalid");
      document.getElementById("err-" + field.name)?.remove();
    };
    const shown = (ok) => { // a 204 (sizes that do not fit) draws nothing: say why instead
      img.classList.remove("loading");
      img.hidden = !ok;
      if (caption) caption.textContent = ok ? caption.dataset.shown : caption.dataset.none;
      if (ok && img.dataset.drawn) ["cols", "rows"].forEach((n) => form.elements[n] && settle(form.elements[n]));
      img.dataset.drawn = "1";
    };
    form.addEventListener("input", (event) => { if (event.target.name) settle(event.target); });
    img?.addEventListener("load", () => shown(img.naturalWidth > 0));
    img?.addEventListener("error", () => shown(false));
    if (img?.complete) shown(img.naturalWidth > 0);
    choice.addEventListener("change", show);
    form.addEventListener("input", redraw);
    form.addEventListener("change", redraw);
    show();
  };

  // A form that deletes asks first (capturing: a "no" stops it before app.js's guard sees it).
  document.addEventListener("submit", (event) => {
    const ask = event.target.dataset?.confirm;
    if (ask && !window.confirm(ask)) { event.preventDefault(); event.stopPropagation(); }
  }, true);

  document.addEventListener("DOMContentLoaded", () => { init(); profileForm(); });
})();
