// The member pages' small touches; each page works without them.
// 1. The card page swaps in a fresh dynamic code a few seconds before the shown one expires.
// 2. The shop directory sorts by the place chosen as soon as it is chosen, or by where the phone is.
"use strict";

(() => {
  const box = document.querySelector("[data-member-code]");
  if (!box) return;
  const LEAD_S = 5; // fetch the next code this long before the shown one expires
  const RETRY_S = 3;
  const qr = box.querySelector("[data-qr]");
  const codeText = box.querySelector("[data-code]");
  const countdown = box.querySelector("[data-countdown]");
  const bar = box.querySelector("[data-bar]");
  let ttl = Number(box.dataset.ttl) || 60;
  // Deadlines on this phone's clock, from the server's "expires in": a phone set wrong still counts right.
  let expiresAt = Date.now() + Number(box.dataset.expiresIn) * 1000;
  let fetching = false;

  async function refresh() {
    if (fetching) return;
    fetching = true;
    try {
      const response = await fetch("/me/code", { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (response.status === 401 || response.status === 409) {
        window.location.reload(); // signed out, or the card stopped working: the page says why
        return;
      }
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const fresh = await response.json();
      qr.innerHTML = fresh.svg; // our own server's SVG of our own code
      codeText.textContent = fresh.code;
      ttl = Math.max(fresh.expires_in_s, 1);
      expiresAt = Date.now() + fresh.expires_in_s * 1000;
      box.classList.remove("is-expired");
    } catch (error) {
      expiresAt = Math.max(expiresAt, Date.now() - 1); // keep counting; the next tick tries again
      setTimeout(() => { fetching = false; }, RETRY_S * 1000);
      return;
    }
    fetching = false;
  }

  function tick() {
    const left = Math.max(0, Math.ceil((expiresAt - Date.now()) / 1000));
    if (left <= 0) {
      box.classList.add("is-expired");
      countdown.textContent = box.dataset.textExpired;
    } else {
      countdown.textContent = box.dataset.textCountdown.replace("{s}", String(left));
    }
    bar.style.transform = `scaleX(${Math.min(1, left / ttl)})`;
    if (left <= LEAD_S && !document.hidden) refresh();
  }

  box.querySelector("[data-refresh]")?.addEventListener("click", (event) => {
    event.preventDefault();
    refresh().then(tick);
  });
  document.addEventListener("visibilitychange", () => { if (!document.hidden) tick(); });
  tick();
  setInterval(tick, 1000);
})();

// A chosen chip (a kind, a category) may sit past the right edge of its sideways-scrolling row: show it.
for (const chip of document.querySelectorAll(".m-chips [aria-current]")) {
  const row = chip.parentElement;
  if (chip.offsetLeft + chip.offsetWidth > row.clientWidth) {
    row.scrollLeft = chip.offsetLeft - (row.clientWidth - chip.offsetWidth) / 2;
  }
}

(() => {
  const form = document.querySelector("[data-place-form]");
  if (!form) return;
  const select = form.querySelector("[data-autosubmit]");
  select?.addEventListener("change", () => form.requestSubmit());
  const locate = form.querySelector("[data-locate]");
  const status = form.querySelector("[data-locate-status]");
  if (!locate || !("geolocation" in navigator)) return;
  locate.hidden = false;
  locate.addEventListener("click", () => {
    locate.disabled = true;
    navigator.geolocation.getCurrentPosition(
      (position) => {
        form.querySelector("[data-lat]").value = position.coords.latitude.toFixed(5);
        form.querySelector("[data-lon]").value = position.coords.longitude.toFixed(5);
        let here = select.querySelector('option[value="here"]');
        if (!here) {
          here = new Option(locate.dataset.textHere, "here");
          select.add(here, 0);
        }
        select.value = "here";
        form.requestSubmit();
      },
      () => {
        locate.disabled = false;
        status.textContent = locate.dataset.textFailed;
      },
      { enableHighAccuracy: false, timeout: 10000, maximumAge: 300000 },
    );
  });
})();
