// Small touches for the pages; every page works without it (plain forms, POST-redirect-GET).
// A form marked data-once submits once: a double tap on a tablet sends one request. The
// server's idempotency keys are the real guard; this only spares a needless round trip.
"use strict";

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement)) return;
  if (form.dataset.sent) {
    event.preventDefault();
    return;
  }
  if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    event.preventDefault();
    return;
  }
  if (form.hasAttribute("data-once")) {
    form.dataset.sent = "1";
    form.classList.add("is-busy");
  }
});

// Coming back with the browser's Back button restores the page as it was: make its forms usable again.
window.addEventListener("pageshow", () => {
  for (const form of document.querySelectorAll("form[data-sent]")) {
    delete form.dataset.sent;
    form.classList.remove("is-busy");
  }
});
