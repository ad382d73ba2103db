// Tether's own behaviour, bound by data attributes (no inline script, so a
// strict Content-Security-Policy holds):
//
//   data-dismiss         a button that removes the notice it sits in;
//   data-sticky="<s>"    a notice reporting what the person just did. The
//                        part of the page it sits in polls and re-renders
//                        itself; the notice is carried into the new content
//                        until dismissed, or until the state it reported
//                        (<s>, the part's data-status then) changes;
//   data-copy="<sel>"    a button that copies the value of the field <sel>,
//                        says so next to it, and when the browser refuses
//                        (no clipboard outside https or localhost) selects
//                        the text and says how to copy it by hand.
(function () {
  "use strict";

  document.addEventListener("click", function (e) {
    var dismiss = e.target.closest("[data-dismiss]");
    if (dismiss) {
      var notice = dismiss.closest(".notice");
      if (notice) notice.remove();
      return;
    }
    var copy = e.target.closest("[data-copy]");
    if (copy) copyField(copy);
  });

  function say(button, text) {
    var out = document.getElementById(button.getAttribute("aria-describedby") || "");
    if (out) out.textContent = text;
  }

  function copyField(button) {
    var field = document.querySelector(button.getAttribute("data-copy"));
    if (!field) return;
    var fallback = function () {
      field.focus();
      field.select();
      var done = false;
      try {
        done = document.execCommand("copy");
      } catch (err) {
        done = false;
      }
      say(button, done ? "Copied." : "Your browser did not allow copying: the link is selected, press Ctrl+C (⌘C on a Mac).");
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(function () {
        say(button, "Copied.");
      }, fallback);
    } else {
      fallback();
    }
  }

  // Sticky notices: remember them before a swap replaces their container,
  // put them back after it unless the state changed or the new content
  // brings a notice of its own.
  document.addEventListener("htmx:before:swap", function (e) {
    var ctx = e.detail && e.detail.ctx;
    var target = ctx && ctx.target;
    if (!target || !target.querySelectorAll || !target.id) return;
    var kept = target.querySelectorAll("[data-sticky]");
    if (kept.length) ctx.tetherSticky = { id: target.id, notices: Array.prototype.slice.call(kept) };
  });

  document.addEventListener("htmx:after:swap", function (e) {
    var ctx = e.detail && e.detail.ctx;
    var kept = ctx && ctx.tetherSticky;
    if (!kept) return;
    var box = document.getElementById(kept.id);
    if (!box || box.querySelector("[data-sticky]")) return;
    var status = box.querySelector("[data-status]");
    kept.notices.forEach(function (n) {
      if (status && status.getAttribute("data-status") !== n.getAttribute("data-sticky")) return;
      var anchor = box.querySelector("[data-notices]");
      if (anchor) anchor.appendChild(n);
    });
  });
})();
