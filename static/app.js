// Tether's own behaviour that HTML cannot express, kept in this file so the
// Content-Security-Policy can forbid inline script (script-src 'self').
// Pages opt in with data attributes; the listeners sit on the document, so
// content htmx swaps in later behaves the same:
//
//   data-submit-on-change  a <select> whose choice submits its form;
//   data-no-submit         a <form> that Enter does not submit (its fields
//                          act through their htmx attributes);
//   data-select-on-focus   an <input> selected whole when focused;
//   data-dismiss           a button that removes the notice it sits in;
//   data-sticky="<s>"      a notice reporting what the person just did. The
//                          part of the page it sits in polls and re-renders
//                          itself; the notice is carried into the new
//                          content until dismissed, or until the state it
//                          reported (<s>, the part's data-status then)
//                          changes;
//   data-copy="<sel>"      a button that copies the value of the field
//                          <sel>, says so in its aria-describedby element,
//                          and when the browser refuses (no clipboard
//                          outside https or localhost) selects the text and
//                          says how to copy it by hand.
(() => {
  "use strict";

  document.addEventListener("change", (event) => {
    const select = event.target.closest("select[data-submit-on-change]");
    if (select && select.form) {
      select.form.submit();
    }
  });

  document.addEventListener("submit", (event) => {
    if (event.target.matches("form[data-no-submit]")) {
      event.preventDefault();
    }
  });

  document.addEventListener("focusin", (event) => {
    if (event.target.matches("input[data-select-on-focus]")) {
      event.target.select();
    }
  });

  document.addEventListener("click", (event) => {
    const dismiss = event.target.closest("[data-dismiss]");
    if (dismiss) {
      const notice = dismiss.closest(".notice");
      if (notice) notice.remove();
      return;
    }
    const copy = event.target.closest("[data-copy]");
    if (copy) copyField(copy);
  });

  const say = (button, text) => {
    const out = document.getElementById(button.getAttribute("aria-describedby") || "");
    if (out) out.textContent = text;
  };

  const copyField = (button) => {
    const field = document.querySelector(button.getAttribute("data-copy"));
    if (!field) return;
    const fallback = () => {
      field.focus();
      field.select();
      let done = false;
      try {
        done = document.execCommand("copy");
      } catch {
        done = false;
      }
      say(button, done ? "Copied." : "Your browser did not allow copying: the link is selected, press Ctrl+C (⌘C on a Mac).");
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(() => say(button, "Copied."), fallback);
    } else {
      fallback();
    }
  };

  // Sticky notices: remember them before a swap replaces their container,
  // put them back after it unless the state changed or the new content
  // brings a notice of its own.
  document.addEventListener("htmx:before:swap", (event) => {
    const ctx = event.detail && event.detail.ctx;
    const target = ctx && ctx.target;
    if (!target || !target.querySelectorAll || !target.id) return;
    const kept = target.querySelectorAll("[data-sticky]");
    if (kept.length) ctx.tetherSticky = { id: target.id, notices: Array.from(kept) };
  });

  document.addEventListener("htmx:after:swap", (event) => {
    const ctx = event.detail && event.detail.ctx;
    const kept = ctx && ctx.tetherSticky;
    if (!kept) return;
    const box = document.getElementById(kept.id);
    if (!box || box.querySelector("[data-sticky]")) return;
    const status = box.querySelector("[data-status]");
    kept.notices.forEach((n) => {
      if (status && status.getAttribute("data-status") !== n.getAttribute("data-sticky")) return;
      const anchor = box.querySelector("[data-notices]");
      if (anchor) anchor.appendChild(n);
    });
  });
})();
