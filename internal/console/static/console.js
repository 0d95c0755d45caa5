// sagabox console: live refresh of [data-live] parts, the trace panel, and
// the confirmation dialog of operator actions. No framework, no build step.
"use strict";

function refresh(el) {
  const every = Number(el.dataset.every || 3000);
  let busy = false;
  const tick = async () => {
    if (el.dataset.done === "true" || el.querySelector("[data-done]")) {
      document.dispatchEvent(new Event("saga-done"));
      return;
    }
    if (!document.hidden && !busy) {
      busy = true;
      try {
        const resp = await fetch(el.dataset.live, { headers: { "Accept": "text/html" } });
        if (resp.ok) {
          el.innerHTML = await resp.text();
        }
      } catch (e) { /* the console or a service is restarting: try again */ }
      busy = false;
    }
    setTimeout(tick, every);
  };
  setTimeout(tick, every);
}

// The trace panel loads its waterfall; Jaeger gets spans a little after the
// fact, so it loads again while the saga runs and a few times after.
function traceLoader(el) {
  let after = 0;
  let pending = 0;
  let done = false;
  const load = async () => {
    try {
      const resp = await fetch(el.dataset.load);
      el.innerHTML = await resp.text();
      applyDBToggle();
    } catch (e) { /* try again */ }
    const isPending = !!el.querySelector("[data-pending]");
    if (isPending && ++pending > 60) return;
    if (done && !isPending && ++after > 4) return;
    setTimeout(load, isPending ? 1000 : 2500);
  };
  document.addEventListener("saga-done", () => { done = true; }, { once: true });
  load();
}

function dialogs() {
  const dlg = document.getElementById("confirm");
  if (!dlg) return;
  const form = document.getElementById("confirm-form");
  const token = document.getElementById("confirm-token");
  const reason = document.getElementById("confirm-reason");
  document.addEventListener("click", (ev) => {
    const b = ev.target.closest("[data-confirm]");
    if (!b) return;
    form.action = b.dataset.action;
    document.getElementById("confirm-text").textContent = b.dataset.confirm;
    document.getElementById("confirm-title").textContent = b.dataset.label || "Confirm";
    document.getElementById("confirm-ok").textContent = b.dataset.label || "Confirm";
    document.getElementById("confirm-step").value = b.dataset.step || "";
    reason.required = b.dataset.reason === "required";
    reason.value = "";
    token.value = sessionStorage.getItem("sagabox-token") || "";
    dlg.showModal();
    (token.value ? reason : token).focus();
  });
  document.getElementById("confirm-cancel").addEventListener("click", () => dlg.close());
  form.addEventListener("submit", () => sessionStorage.setItem("sagabox-token", token.value));
}

// The waterfall hides the database queries' spans unless asked for; the
// choice survives the panel's reloads.
document.addEventListener("change", (ev) => {
  if (!ev.target.matches(".toggle-db")) return;
  sessionStorage.setItem("sagabox-db-spans", ev.target.checked ? "1" : "");
  applyDBToggle();
});
function applyDBToggle() {
  const on = sessionStorage.getItem("sagabox-db-spans") === "1";
  document.querySelectorAll(".waterfall").forEach((w) => w.classList.toggle("hide-db", !on));
  document.querySelectorAll(".toggle-db").forEach((c) => { c.checked = on; });
}

// A form that asks first (an order's cancellation): it is sent only when
// the user says yes.
document.addEventListener("submit", (ev) => {
  const ask = ev.target.dataset && ev.target.dataset.ask;
  if (ask && !window.confirm(ask)) ev.preventDefault();
});

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-live]").forEach(refresh);
  document.querySelectorAll("[data-load]").forEach(traceLoader);
  dialogs();
});
