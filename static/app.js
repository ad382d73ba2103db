// Tether's own behaviour that HTML cannot express, kept in this file so the
// Content-Security-Policy can forbid inline script (script-src 'self').
// Pages opt in with data-* attributes; the listeners sit on the document,
// so content htmx swaps in later behaves the same.
(() => {
  "use strict";

  // <select data-submit-on-change>: choosing an option submits its form.
  document.addEventListener("change", (event) => {
    const select = event.target.closest("select[data-submit-on-change]");
    if (select && select.form) {
      select.form.submit();
    }
  });

  // <form data-no-submit>: pressing Enter in it does not submit it; its
  // fields act through their htmx attributes.
  document.addEventListener("submit", (event) => {
    if (event.target.matches("form[data-no-submit]")) {
      event.preventDefault();
    }
  });

  // <input data-select-on-focus>: focusing it selects all of it.
  document.addEventListener("focusin", (event) => {
    if (event.target.matches("input[data-select-on-focus]")) {
      event.target.select();
    }
  });

  // <button data-copy="#field">: copies the field's value, and says on the
  // button whether it worked; where the clipboard is not available the
  // value is selected for the person to copy.
  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-copy]");
    if (!button) {
      return;
    }
    const field = document.querySelector(button.dataset.copy);
    if (!field) {
      return;
    }
    const label = button.dataset.label || button.textContent;
    button.dataset.label = label;
    try {
      await navigator.clipboard.writeText(field.value);
      button.textContent = "Copied ✓";
    } catch {
      field.focus();
      field.select();
      button.textContent = "Press Ctrl+C to copy";
    }
    setTimeout(() => { button.textContent = label; }, 3000);
  });
})();
