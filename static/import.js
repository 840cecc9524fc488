// The potting-lot import (templates/nursery/import*.html). Plain forms work without it; this adds:
// a size check before uploading (the server's limit, said at once instead of after the upload),
// the first value of a newly chosen column, a note that the dry run is out of date once the
// columns change, and the focus on the error summary so keyboard and screen-reader users land
// on it. Bound by data- attributes: no inline script under the CSP.
(function () {
  "use strict";

  // Before the upload: a file over the limit is refused here, with the server's own wording.
  // Capturing on the document runs before app.js's one-submit guard, which would otherwise
  // disable the button of a form that never left.
  document.addEventListener("submit", (event) => {
    const form = event.target.closest?.("[data-import-upload]");
    if (!form) return;
    const input = form.querySelector("input[type=file]");
    const max = Number(form.dataset.maxBytes || 0);
    const file = input?.files?.[0];
    if (!file || !max || file.size <= max) return;
    event.preventDefault();
    event.stopPropagation();
    const message = form.querySelector("#file-error");
    if (message) {
      message.textContent = form.dataset.tooLarge || "";
      message.hidden = false;
    }
    input.setAttribute("aria-invalid", "true");
    input.closest(".field")?.classList.add("field-invalid");
    input.focus();
  }, true);

  document.addEventListener("change", (event) => {
    const input = event.target;
    const upload = input.closest?.("[data-import-upload]");
    if (upload && input.type === "file") { // a new file: the old message no longer applies
      const message = upload.querySelector("#file-error");
      if (message) message.hidden = true;
      input.removeAttribute("aria-invalid");
      input.closest(".field")?.classList.remove("field-invalid");
      return;
    }
    const mapping = input.closest?.("[data-import-mapping]");
    if (!mapping) return;
    const target = input.dataset.sampleTarget && document.getElementById(input.dataset.sampleTarget);
    if (target) target.textContent = input.selectedOptions[0]?.dataset.sample || "";
    mapping.querySelector("[data-mapping-changed]")?.removeAttribute("hidden");
    // The import button imports what the dry run showed; after a change, check again first.
    document.querySelectorAll("[data-commit]").forEach((b) => { b.disabled = true; });
  });

  document.addEventListener("DOMContentLoaded", () => {
    const summary = document.getElementById("import-errors");
    if (summary && !location.hash) summary.focus();
  });
})();
