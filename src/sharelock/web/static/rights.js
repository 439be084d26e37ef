/*
 * Sharelock "your rights" page: the page's one script (no framework, no external resource, no
 * inline code; it runs under `script-src 'self'`).
 *
 * The person presents the receipt of a share (a file or pasted text), or proves control of
 * their account at a data source by signing in to it again: login and password (then the
 * one-time code, if the source asks for one) are encrypted in the page into a compact JWE for
 * the broker's key, with `encryptCredentials` from consent.js (loaded before this file), and
 * only the broker's HSM and the connector's login see them in clear. A successful login gives
 * a short-lived proof handle, kept in this script's memory only (no storage, no URL).
 *
 * The script talks JSON to `/api/rights/…` (same origin, no cookie) and shows the traces, the
 * erasure's answer, and offers the export as a download made in the page (a `blob:` URL: the
 * copy travels in no further request). Text goes into the page through `textContent` only.
 */
"use strict";

document.documentElement.classList.add("js");

function rightsPage() {
  const app = document.getElementById("rights");
  if (!app) {
    return;
  }
  const byId = (id) => document.getElementById(id);
  const has = (object, key) => Object.prototype.hasOwnProperty.call(object, key);
  let messages = {};
  try {
    messages = JSON.parse(app.dataset.messages || "{}");
  } catch (_) {
    messages = {};
  }
  const lang = app.dataset.lang || "en";

  function t(key, params) {
    const text = has(messages, key) ? messages[key] : key;
    return text.replace(/\{([a-z_]+)\}/g, (whole, name) =>
      params && has(params, name) ? String(params[name]) : whole,
    );
  }

  const receiptForm = byId("receipt-form");
  const receiptFile = byId("receipt-file");
  const receiptText = byId("receipt-text");
  const proofForm = byId("proof-form");
  const loginInput = byId("login");
  const passwordInput = byId("password");
  const sourceSelect = byId("source");
  const otpForm = byId("otp-form");
  const otpInput = byId("otp");
  const problem = byId("problem");
  const result = byId("result");
  const eraseButton = byId("erase");
  const eraseResult = byId("erase-result");
  const status = byId("status");

  // Data source ids as the person knows them: the names of the page's own list.
  const sourceNames = new Map(Array.from(sourceSelect.options, (option) => [option.value, option.text]));
  let subject = null; // the body that identifies the person: {receipt} or {proof}
  let pending = null; // {handle, source}: a sign-in waiting for its one-time code
  let proofTimer = null;
  let busy = false;
  let exportUrl = null;

  function setNotice(element, text) {
    element.textContent = text || "";
    element.hidden = !text;
  }

  function announce(text) {
    status.textContent = "";
    window.setTimeout(() => {
      status.textContent = text;
    }, 50);
  }

  async function api(path, body) {
    let response;
    try {
      response = await fetch(path, {
        method: body === undefined ? "GET" : "POST",
        credentials: "omit",
        cache: "no-store",
        headers:
          body === undefined
            ? { Accept: "application/json" }
            : { Accept: "application/json", "Content-Type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (_) {
      throw new Error("network");
    }
    let data = null;
    try {
      data = await response.json();
    } catch (_) {
      data = null;
    }
    if (!response.ok || !data || typeof data !== "object") {
      throw new Error(data && typeof data.error === "string" ? data.error : "generic");
    }
    return data;
  }

  function problemText(error, params) {
    const code = error && error.message ? error.message : "generic";
    for (const key of ["rights.error." + code, "error." + code]) {
      if (has(messages, key)) {
        return t(key, params);
      }
    }
    return t("error.generic");
  }

  function when(iso) {
    const moment = new Date(iso);
    return Number.isNaN(moment.getTime())
      ? iso
      : moment.toLocaleString(lang, { dateStyle: "medium", timeStyle: "short" });
  }

  function cell(text) {
    const td = document.createElement("td");
    td.textContent = text || "";
    return td;
  }

  function showTraces(data) {
    const rows = Array.isArray(data.traces) ? data.traces : [];
    const body = byId("traces").querySelector("tbody");
    body.replaceChildren(
      ...rows
        .slice()
        .reverse()
        .map((trace) => {
          const tr = document.createElement("tr");
          const what = has(messages, "rights.event." + trace.event) ? t("rights.event." + trace.event) : trace.event;
          tr.append(
            cell(when(trace.at)),
            cell(what),
            cell(trace.partner ? trace.partner.name : ""),
            cell(trace.data_source ? sourceNames.get(trace.data_source) || trace.data_source : ""),
          );
          return tr;
        }),
    );
    byId("traces").hidden = rows.length === 0;
    const source = data.data_source && data.data_source.name ? data.data_source.name : "";
    byId("result-summary").textContent =
      rows.length === 0 ? t("rights.result.none", { source }) : t("rights.result.count", { count: rows.length, source });
    const kept = Array.isArray(data.kept) && data.kept.length ? data.kept[0] : null;
    byId("kept").textContent = kept && kept.until ? t("rights.kept", { until: when(kept.until) }) : t("rights.kept_none");
    eraseButton.hidden = !subject;
    setNotice(eraseResult, "");
    result.hidden = false;
    showRights(data);
    byId("result-title").focus();
    announce(byId("result-summary").textContent);
  }

  // -- every right: who answers, a right asked of one online service, the requests ---------

  const allRights = byId("all-rights");
  const askForm = byId("ask-form");
  const askPartner = byId("ask-partner");
  const askResult = byId("ask-result");
  const recipientInput = byId("ask-recipient");
  let partners = new Map(); // client_id -> {name, role, dpo_contact, received}
  let controller = { name: "Sharelock", dpo_contact: "" };
  let requests = [];

  function item(...lines) {
    const li = document.createElement("li");
    lines
      .filter(Boolean)
      .forEach((line, index) => {
        const p = document.createElement(index === 0 ? "strong" : "p");
        p.textContent = line;
        li.append(p);
      });
    return li;
  }

  function roleText(partner) {
    const params = { partner: partner.name, broker: controller.name };
    return has(messages, "rights.role." + partner.role) ? t("rights.role." + partner.role, params) : t("rights.role.unknown", params);
  }

  function dpoText(partner) {
    return partner.dpo_contact
      ? t("rights.dpo", { partner: partner.name, contact: partner.dpo_contact })
      : t("rights.dpo_none", { partner: partner.name });
  }

  function showRequests() {
    const table = byId("requests");
    const now = Date.now();
    table.querySelector("tbody").replaceChildren(
      ...requests.map((request) => {
        const tr = document.createElement("tr");
        const partner = partners.get(request.client_id);
        const late = request.status === "open" && new Date(request.deadline).getTime() < now;
        tr.append(
          cell(request.reference),
          cell(partner ? partner.name : request.client_id),
          cell(t("rights.kind." + request.kind)),
          cell(when(request.deadline)),
          cell(t("rights.status." + (late ? "overdue" : request.status))),
        );
        return tr;
      }),
    );
    table.hidden = requests.length === 0;
    byId("requests-none").hidden = requests.length > 0;
  }

  function showRights(data) {
    controller = data.controller || controller;
    partners = new Map((Array.isArray(data.partners) ? data.partners : []).map((p) => [p.client_id, p]));
    requests = Array.isArray(data.requests) ? data.requests.slice() : [];
    byId("who").replaceChildren(
      item(controller.name, t("rights.who.broker", { name: controller.name, contact: controller.dpo_contact })),
      ...Array.from(partners.values(), (partner) =>
        item(
          partner.name,
          roleText(partner),
          dpoText(partner),
          t(partner.received ? "rights.received" : "rights.not_received_yet"),
        ),
      ),
    );
    askPartner.replaceChildren(
      ...Array.from(partners.values(), (partner) => {
        const option = document.createElement("option");
        option.value = partner.client_id;
        option.textContent = partner.name;
        return option;
      }),
    );
    byId("ask-none").hidden = partners.size > 0;
    byId("ask-fields-all").hidden = partners.size === 0;
    setNotice(askResult, "");
    showRequests();
    allRights.hidden = false;
  }

  function chosenKind() {
    const checked = askForm.querySelector('input[name="kind"]:checked');
    return checked ? checked.value : "";
  }

  askForm.addEventListener("change", () => {
    const kind = chosenKind();
    byId("ask-scopes").hidden = kind !== "rectification";
    byId("ask-recipient-field").hidden = kind !== "portability";
  });

  askForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (busy || !subject) {
      return;
    }
    const kind = chosenKind();
    const kindProblem = byId("kind-problem");
    if (!kind) {
      setNotice(kindProblem, t("rights.ask.kind_missing"));
      askForm.querySelector('input[name="kind"]').focus();
      return;
    }
    setNotice(kindProblem, "");
    const body = { ...subject, client_id: askPartner.value, kind };
    if (kind === "rectification") {
      const fields = Array.from(byId("ask-scopes").querySelectorAll("input:checked"), (box) => box.value);
      if (!fields.length) {
        setNotice(byId("scopes-problem"), t("rights.ask.fields_missing"));
        byId("ask-scopes").querySelector("input").focus();
        return;
      }
      setNotice(byId("scopes-problem"), "");
      body.fields = fields;
    }
    if (kind === "portability") {
      const recipient = recipientInput.value.trim();
      if (!recipient) {
        fieldProblem(recipientInput, byId("recipient-problem"), t("rights.ask.recipient_missing"));
        return;
      }
      fieldProblem(recipientInput, byId("recipient-problem"), "");
      body.recipient = recipient;
    }
    busy = true;
    setNotice(problem, "");
    try {
      const data = await api("/api/rights/requests", body);
      const name = data.partner && data.partner.name ? data.partner.name : askPartner.selectedOptions[0].text;
      const done = data.done || {};
      const lines = [];
      if (done.pending_shares_cancelled) {
        lines.push(t("rights.done.cancelled", { partner: name }));
      }
      if (done.identity_data_erased || done.maintenance_credentials_erased) {
        lines.push(t("rights.done.kept", { partner: name }));
      }
      if (data.forwarded) {
        requests.unshift(data.forwarded);
        lines.push(
          t("rights.forwarded", { partner: name, reference: data.forwarded.reference, deadline: when(data.forwarded.deadline) }),
        );
      } else if (!done.pending_shares_cancelled) {
        lines.push(t("rights.not_received", { partner: name }));
      }
      showRequests();
      setNotice(askResult, lines.join(" "));
      askResult.focus();
      announce(lines.join(" "));
    } catch (error) {
      setNotice(problem, problemText(error));
      problem.focus();
    } finally {
      busy = false;
    }
  });

  async function look(body) {
    if (busy) {
      return;
    }
    busy = true;
    setNotice(problem, "");
    try {
      const data = await api("/api/rights/traces", body);
      subject = body;
      showTraces(data);
    } catch (error) {
      result.hidden = true;
      allRights.hidden = true;
      setNotice(problem, problemText(error));
      problem.focus();
    } finally {
      busy = false;
    }
  }

  receiptForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    let receipt = receiptText.value.trim();
    const file = receiptFile.files && receiptFile.files[0];
    if (!receipt && file) {
      receipt = file.size <= 8192 ? (await file.text()).trim() : "";
    }
    const problemNode = byId("receipt-problem");
    if (!/^[\w-]+\.[\w-]+\.[\w-]+$/.test(receipt)) {
      setNotice(problemNode, t("rights.receipt.missing"));
      receiptText.setAttribute("aria-invalid", "true");
      receiptText.focus();
      return;
    }
    setNotice(problemNode, "");
    receiptText.removeAttribute("aria-invalid");
    look({ receipt });
  });

  // -- proof of control of the account ----------------------------------------------------

  function sourceName(id) {
    return sourceNames.get(id) || id;
  }

  function fieldProblem(input, node, text) {
    setNotice(node, text);
    if (text) {
      input.setAttribute("aria-invalid", "true");
      input.focus();
    } else {
      input.removeAttribute("aria-invalid");
    }
  }

  /** Encrypt `payload` for the broker's current key (fetched each time: keys rotate). */
  async function seal(payload) {
    if (!window.crypto || !window.crypto.subtle || typeof encryptCredentials !== "function") {
      throw new Error("crypto");
    }
    const jwks = await api("/.well-known/jwks.json");
    try {
      return await encryptCredentials(jwks, payload);
    } catch (_) {
      throw new Error("crypto");
    }
  }

  function forgetProof() {
    if (proofTimer) {
      window.clearTimeout(proofTimer);
      proofTimer = null;
    }
    if (subject && subject.proof) {
      subject = null;
    }
  }

  /** What the broker answered to a sign-in or a code: look, ask for the code, or say why. */
  async function proved(data, source) {
    if (data.status === "verified" && typeof data.proof === "string") {
      pending = null;
      otpForm.hidden = true;
      forgetProof();
      const proof = { proof: data.proof };
      // The proof is worth nothing after its lifetime: drop it then, rather than fail later.
      const seconds = Number(data.expires_in) > 0 ? Number(data.expires_in) : 600;
      proofTimer = window.setTimeout(() => {
        if (subject === proof) {
          subject = null;
          result.hidden = true;
          allRights.hidden = true;
          setNotice(problem, t("rights.proof.expired"));
        }
      }, seconds * 1000);
      busy = false;
      await look(proof);
      return;
    }
    if (data.status === "otp_required" && typeof data.pending === "string") {
      pending = { handle: data.pending, source };
      otpInput.value = "";
      byId("otp-intro").textContent = t("rights.otp.intro", { source: sourceName(source) });
      otpForm.hidden = false;
      if (data.reason) {
        fieldProblem(otpInput, byId("otp-problem"), problemText(new Error(data.reason)));
      } else {
        setNotice(byId("otp-problem"), "");
        byId("otp-title").focus();
      }
      announce(t("rights.otp.heading"));
      return;
    }
    pending = null;
    otpForm.hidden = true;
    const reason = typeof data.reason === "string" ? data.reason : "failed";
    setNotice(problem, problemText(new Error(reason), { source: sourceName(source) }));
    problem.focus();
  }

  proofForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (busy) {
      return;
    }
    const login = loginInput.value.trim();
    const password = passwordInput.value;
    if (!login) {
      fieldProblem(loginInput, byId("login-problem"), t("rights.proof.missing_login"));
      return;
    }
    fieldProblem(loginInput, byId("login-problem"), "");
    if (!password) {
      fieldProblem(passwordInput, byId("password-problem"), t("rights.proof.missing_password"));
      return;
    }
    fieldProblem(passwordInput, byId("password-problem"), "");
    busy = true;
    setNotice(problem, "");
    result.hidden = true;
    allRights.hidden = true;
    const source = sourceSelect.value;
    try {
      const credentials = await seal({ login, password });
      // Encrypted: the clear password leaves the form now, whatever the answer.
      passwordInput.value = "";
      await proved(await api("/api/rights/proofs", { data_source: source, credentials }), source);
    } catch (error) {
      setNotice(problem, problemText(error, { source: sourceName(source) }));
      problem.focus();
    } finally {
      busy = false;
    }
  });

  otpForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (busy || !pending) {
      return;
    }
    const code = otpInput.value.trim();
    if (!code) {
      fieldProblem(otpInput, byId("otp-problem"), t("rights.otp.missing"));
      return;
    }
    fieldProblem(otpInput, byId("otp-problem"), "");
    busy = true;
    setNotice(problem, "");
    const waiting = pending;
    try {
      const otp = await seal({ otp: code });
      otpInput.value = "";
      await proved(await api("/api/rights/proofs/otp", { pending: waiting.handle, otp }), waiting.source);
    } catch (error) {
      pending = null;
      otpForm.hidden = true;
      setNotice(problem, problemText(error, { source: sourceName(waiting.source) }));
      problem.focus();
    } finally {
      busy = false;
    }
  });

  byId("otp-cancel").addEventListener("click", () => {
    pending = null;
    otpInput.value = "";
    otpForm.hidden = true;
    loginInput.focus();
  });

  byId("export").addEventListener("click", async () => {
    if (busy || !subject) {
      return;
    }
    busy = true;
    setNotice(problem, "");
    try {
      const data = await api("/api/rights/export", subject);
      if (exportUrl) {
        URL.revokeObjectURL(exportUrl);
      }
      exportUrl = URL.createObjectURL(
        new Blob([JSON.stringify(data, null, 2)], { type: "application/json" }),
      );
      const link = byId("export-link");
      link.href = exportUrl;
      link.download = "sharelock-export-" + new Date().toISOString().slice(0, 10) + ".json";
      link.click();
      announce(t("rights.exported"));
    } catch (error) {
      setNotice(problem, problemText(error));
      problem.focus();
    } finally {
      busy = false;
    }
  });

  eraseButton.addEventListener("click", async () => {
    if (busy || !subject) {
      return;
    }
    busy = true;
    setNotice(problem, "");
    try {
      const data = await api("/api/rights/erasure", subject);
      const erased = data.erased && data.erased.identity_data;
      const kept = Array.isArray(data.kept) && data.kept.length ? data.kept[0] : null;
      // One partner with a receipt; with a proof, every partner that received data.
      const recipients = data.recipient ? [data.recipient] : Array.isArray(data.recipients) ? data.recipients : [];
      const lines = [
        t(erased ? "rights.erased" : "rights.erased_none"),
        kept && kept.until ? t("rights.erase_kept", { until: when(kept.until) }) : "",
        ...recipients
          .filter((recipient) => recipient && recipient.name)
          .map((recipient) => t("rights.erase_partner", { partner: recipient.name })),
      ];
      setNotice(eraseResult, lines.filter(Boolean).join(" "));
      eraseResult.focus();
    } catch (error) {
      setNotice(problem, problemText(error));
      problem.focus();
    } finally {
      busy = false;
    }
  });

  app.hidden = false;
}

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", rightsPage);
} else {
  rightsPage();
}
