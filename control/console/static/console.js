// The console's behaviour: live updates, and every action as a call to the JSON API.
// Data reaches the page only through textContent or server-rendered, escaped HTML parsed
// with DOMParser (which runs no scripts): never innerHTML with data.
"use strict";

const STRINGS = JSON.parse(document.getElementById("i18n").textContent);

function T(key) {
  return Object.prototype.hasOwnProperty.call(STRINGS, key) ? STRINGS[key] : key;
}

// A call to the API with the session cookie. X-Requested-With is the CSRF proof the API
// asks of cookie-authenticated changes (control/api/deps.py).
async function api(method, url, body) {
  const init = { method, credentials: "same-origin", headers: { "X-Requested-With": "console" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (err) {
    return { ok: false, status: 0, data: null, message: T("js.network_error") };
  }
  let data = null;
  try {
    data = await response.json();
  } catch (err) {
    data = null;
  }
  return { ok: response.ok, status: response.status, data, message: describe(response.status, data) };
}

function describe(status, data) {
  if (status === 401) return T("js.signed_out");
  if (status === 403) return T("js.forbidden") + detailOf(data);
  if (data && data.detail !== undefined) return T("js.refused") + detailOf(data);
  return T("js.failed") + " (" + status + ")";
}

function detailOf(data) {
  if (!data || data.detail === undefined) return "";
  if (typeof data.detail === "string") return ": " + data.detail;
  if (Array.isArray(data.detail)) {
    return ": " + data.detail.map((e) => (e.loc || []).slice(1).join(".") + " " + e.msg).join("; ");
  }
  return "";
}

function showError(id, message) {
  const el = document.getElementById(id);
  if (!el) return;
  el.textContent = message || "";
  el.hidden = !message;
}

function status(message) {
  const el = document.getElementById("status");
  el.textContent = message;
  el.hidden = !message;
}

// -- live updates ------------------------------------------------------------------------

let refreshing = null;

// Fetch this page's live region again and swap it in: the server renders it, as on load.
async function refreshLive() {
  if (refreshing) return refreshing;
  refreshing = (async () => {
    try {
      const response = await fetch(location.href, {
        credentials: "same-origin",
        headers: { "X-Console-Partial": "1" },
      });
      if (response.redirected || response.status === 401) {
        location.assign("/console/login");
        return;
      }
      if (!response.ok) return;
      const doc = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = doc.getElementById("live");
      const current = document.getElementById("live");
      if (fresh && current) {
        current.replaceWith(document.adoptNode(fresh));
        document.dispatchEvent(new CustomEvent("console:refreshed"));
      }
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

function startEvents() {
  const wants = (document.body.dataset.live || "").split(" ").filter(Boolean);
  if (!wants.length || !window.EventSource) return;
  const source = new EventSource("/console/events");
  const only = document.body.dataset.activation;
  source.addEventListener("alerts", () => {
    if (wants.includes("alerts")) refreshLive();
  });
  source.addEventListener("activation", (event) => {
    if (!wants.includes("activation")) return;
    const id = JSON.parse(event.data).id;
    if (!only || only === id) refreshLive();
  });
  source.addEventListener("conversion", () => {
    if (wants.includes("conversion")) refreshLive();
  });
  source.addEventListener("signed_out", () => {
    source.close();
    location.assign("/console/login");
  });
  source.addEventListener("open", () => {
    document.body.dataset.stream = "open";
  });
}

// -- shared controls ---------------------------------------------------------------------

function bindCommon() {
  const logout = document.getElementById("logout");
  if (logout) {
    logout.addEventListener("click", async () => {
      await api("POST", "/api/v1/auth/logout");
      location.assign("/console/login");
    });
  }
  // Filter forms submit when a select changes; the button stays for use without scripts.
  document.querySelectorAll("form[data-autosubmit] select").forEach((select) => {
    select.addEventListener("change", () => select.form.submit());
  });
  document.querySelectorAll("dialog [data-close]").forEach((button) => {
    button.addEventListener("click", () => button.closest("dialog").close());
  });
}

// -- alerts ------------------------------------------------------------------------------

function bindAlerts() {
  const dialog = document.getElementById("ack-dialog");
  if (!dialog) return;
  let alertId = null;
  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-ack]");
    if (!button) return;
    alertId = button.dataset.ack;
    document.getElementById("ack-target").textContent = button.dataset.label;
    document.getElementById("ack-comment").value = "";
    showError("ack-error", "");
    dialog.showModal();
  });
  document.getElementById("ack-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const comment = document.getElementById("ack-comment").value.trim();
    if (!comment) {
      showError("ack-error", T("js.comment_required"));
      return;
    }
    const result = await api("POST", "/api/v1/alerts/" + encodeURIComponent(alertId) + "/ack", { comment });
    if (!result.ok) {
      showError("ack-error", result.message);
      return;
    }
    dialog.close();
    status(T("js.acknowledged"));
    await refreshLive();
  });
}

// -- sirens ------------------------------------------------------------------------------

function activationBody() {
  const form = document.getElementById("activation-form");
  const kind = form.elements.kind.value;
  const body = {
    kind,
    sirens: Array.from(form.querySelectorAll("input[name=siren]:checked")).map((c) => c.value),
    groups: form.elements.group.value ? [form.elements.group.value] : [],
    reason: form.elements.reason.value.trim(),
  };
  const signal = form.elements.signal.value;
  if (kind !== "silent_test" && signal) body.signal = signal;
  return body;
}

function bindSirens() {
  const form = document.getElementById("activation-form");
  if (!form || !form.elements.kind) return;
  const dialog = document.getElementById("confirm-dialog");
  const signalField = document.getElementById("signal-field");
  const syncKind = () => {
    signalField.hidden = form.elements.kind.value === "silent_test";
  };
  form.elements.kind.addEventListener("change", syncKind);
  syncKind();
  const all = document.getElementById("select-all");
  if (all) {
    all.addEventListener("change", () => {
      form.querySelectorAll("input[name=siren]").forEach((c) => {
        c.checked = all.checked;
      });
    });
  }
  let pending = null;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError("act-error", "");
    const body = activationBody();
    if (!body.sirens.length && !body.groups.length) {
      showError("act-error", T("js.choose_targets"));
      return;
    }
    if (!body.reason) {
      showError("act-error", T("js.reason_required"));
      return;
    }
    const result = await api("POST", "/api/v1/activation-previews", body);
    if (!result.ok) {
      showError("act-error", result.message);
      return;
    }
    pending = body;
    fillConfirmation(result.data);
    showError("confirm-error", "");
    dialog.showModal();
  });
  document.getElementById("confirm-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const send = document.getElementById("confirm-send");
    send.disabled = true;
    const result = await api("POST", "/api/v1/activations", pending);
    send.disabled = false;
    if (!result.ok) {
      showError("confirm-error", result.message);
      return;
    }
    location.assign("/console/activations/" + encodeURIComponent(result.data.id));
  });
}

function fillConfirmation(preview) {
  const kindName = Array.from(document.getElementById("kind").options).find(
    (option) => option.value === preview.kind
  );
  const parts = [kindName ? kindName.textContent : preview.kind];
  if (preview.signal) parts.push(T("js.signal") + " " + preview.signal);
  parts.push(T("js.target_count").replace("{n}", String(preview.targets.length)));
  parts.push(T("js.gateway_count").replace("{n}", String(preview.gateways.length)));
  document.getElementById("confirm-summary").textContent = parts.join(" · ");
  document.getElementById("confirm-approval").hidden = !preview.needs_approval;
  const list = document.getElementById("confirm-targets");
  list.replaceChildren(
    ...preview.targets.map((target) => {
      const li = document.createElement("li");
      li.dataset.siren = target.siren;
      li.textContent = target.siren + " · " + target.name + " · " + target.site + " · " + target.gateway;
      if (target.flags) {
        const flag = document.createElement("span");
        flag.classList.add("badge", "s-major");
        flag.textContent = target.flags;
        li.append(" ", flag);
      }
      return li;
    })
  );
  const warnings = document.getElementById("confirm-warnings");
  warnings.replaceChildren(
    ...preview.warnings.map((text) => {
      const li = document.createElement("li");
      li.textContent = text;
      return li;
    })
  );
}

// -- an activation -----------------------------------------------------------------------

function bindActivation() {
  document.addEventListener("click", async (event) => {
    const button = event.target.closest("[data-decide]");
    if (!button) return;
    const action = button.dataset.decide;
    const question = {
      approve: T("js.confirm_approve"),
      reject: T("js.confirm_reject"),
      cancel: T("js.confirm_cancel"),
    }[action];
    if (!question || !window.confirm(question)) return;
    const input = document.getElementById("decision-comment");
    const comment = input ? input.value.trim() : "";
    const url = "/api/v1/activations/" + encodeURIComponent(button.dataset.id) + "/" + action;
    const result = await api("POST", url, { comment });
    if (!result.ok) {
      showError("decide-error", result.message);
      return;
    }
    await refreshLive();
  });
}

// -- audit -------------------------------------------------------------------------------

function bindAudit() {
  const button = document.getElementById("audit-verify");
  if (!button) return;
  button.addEventListener("click", async () => {
    const out = document.getElementById("verify-result");
    out.textContent = T("js.verifying");
    const result = await api("GET", "/api/v1/audit/verify");
    if (!result.ok) {
      out.textContent = result.message;
      return;
    }
    const report = result.data;
    out.dataset.ok = String(report.ok);
    out.textContent = report.ok
      ? T("js.chain_ok").replace("{n}", String(report.checked))
      : T("js.chain_broken").replace("{seq}", String(report.first_bad_seq)) + ": " + report.reason;
  });
}

// -- conversions -------------------------------------------------------------------------

function formatLeft(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const d = Math.floor(s / 86400);
  const hms = [Math.floor((s % 86400) / 3600), Math.floor((s % 3600) / 60), s % 60]
    .map((n) => String(n).padStart(2, "0"))
    .join(":");
  return (d ? d + "d " : "") + hms;
}

// The countdown ticks in the browser; the server's numbers come back with every refresh.
function tickCountdowns() {
  const now = Date.now();
  document.querySelectorAll("[data-deadline]").forEach((el) => {
    const deadline = Number(el.dataset.deadline);
    const warn = Number(el.dataset.warn);
    const out = el.querySelector("[data-countdown]");
    if (!out) return;
    out.textContent = now > deadline ? T("js.conv_overdue") : T("js.conv_left") + " " + formatLeft(deadline - now);
    el.dataset.phase = now > deadline ? "late" : now >= warn ? "warn" : "ok";
  });
}

function bindConversions() {
  const form = document.getElementById("conversion-form");
  if (form) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      showError("conv-error", "");
      const sites = form.elements.sites.value.split(/[\s,]+/).filter(Boolean);
      const reason = form.elements.reason.value.trim();
      if (!sites.length) return showError("conv-error", T("js.conv_sites_required"));
      if (!reason) return showError("conv-error", T("js.reason_required"));
      const body = {
        direction: form.elements.direction.value,
        kind: form.elements.kind.value,
        level: form.elements.level.value,
        shelters: sites.map((site) => ({ site })),
        reason,
      };
      const result = await api("POST", "/api/v1/conversions", body);
      if (!result.ok) return showError("conv-error", result.message);
      status(T("js.conv_ordered"));
      form.reset();
      await refreshLive();
    });
  }
  const dialog = document.getElementById("confirm-step-dialog");
  let pending = null;
  document.addEventListener("click", async (event) => {
    const confirmStep = event.target.closest("[data-confirm-step]");
    if (confirmStep && dialog) {
      pending = confirmStep.dataset;
      document.getElementById("confirm-step-target").textContent = pending.label;
      document.getElementById("confirm-step-note").value = "";
      showError("confirm-step-error", "");
      dialog.showModal();
      return;
    }
    const button = event.target.closest("[data-conv]");
    if (!button) return;
    const action = button.dataset.conv;
    const question = { approve: T("js.confirm_conv_approve"), cancel: T("js.confirm_conv_cancel") }[action];
    if (!question || !window.confirm(question)) return;
    const url = "/api/v1/conversions/" + encodeURIComponent(button.dataset.id) + "/" + action;
    const result = await api("POST", url, { comment: "" });
    if (!result.ok) return showError("decide-error", result.message);
    await refreshLive();
  });
  const stepForm = document.getElementById("confirm-step-form");
  if (stepForm) {
    stepForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const note = document.getElementById("confirm-step-note").value.trim();
      if (!note) return showError("confirm-step-error", T("js.conv_note_required"));
      const url = "/api/v1/conversions/" + encodeURIComponent(pending.order) + "/confirm";
      const result = await api("POST", url, { site: pending.site, step: pending.confirmStep, note });
      if (!result.ok) return showError("confirm-step-error", result.message);
      dialog.close();
      await refreshLive();
    });
  }
  if (document.querySelector("[data-deadline]") || document.body.dataset.page === "conversions") {
    tickCountdowns();
    setInterval(tickCountdowns, 1000);
    document.addEventListener("console:refreshed", tickCountdowns);
  }
}

// -- work orders -------------------------------------------------------------------------

function bindWorkOrders() {
  // The form lives in the live region, which a refresh replaces: listen on the document.
  document.addEventListener("submit", async (event) => {
    const form = event.target.closest("#wo-close-form");
    if (!form) return;
    event.preventDefault();
    const note = document.getElementById("wo-note").value.trim();
    if (!note) return showError("wo-error", T("js.note_required"));
    const button = document.getElementById("wo-close");
    button.disabled = true;
    const url = "/api/v1/work-orders/" + encodeURIComponent(form.dataset.order) + "/close";
    const result = await api("POST", url, { note });
    button.disabled = false;
    if (!result.ok) return showError("wo-error", result.message);
    status(T("js.wo_closed"));
    await refreshLive();
  });
}

bindCommon();
bindAlerts();
bindWorkOrders();
bindSirens();
bindActivation();
bindAudit();
bindConversions();
startEvents();
