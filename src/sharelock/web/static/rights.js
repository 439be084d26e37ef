/*
 * Sharelock "your rights" page: the page's one script (no framework, no external resource, no
 * inline code; it runs under `script-src 'self'`).
 *
 * The person presents the receipt of a share (a file or pasted text) or the data source and
 * login they used; the script talks JSON to `/api/rights/…` (same origin, no cookie) and
 * shows the traces, the erasure's answer, and offers the export as a download made in the
 * page (a `blob:` URL: the copy travels in no further request). Text goes into the page
 * through `textContent` only.
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
  const loginForm = byId("login-form");
  const loginInput = byId("login");
  const sourceSelect = byId("source");
  const problem = byId("problem");
  const result = byId("result");
  const eraseButton = byId("erase");
  const eraseResult = byId("erase-result");
  const status = byId("status");

  // Data source ids as the person knows them: the names of the page's own list.
  const sourceNames = new Map(Array.from(sourceSelect.options, (option) => [option.value, option.text]));
  let subject = null; // the body that identified the person: {receipt} or {data_source, login}
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
        method: "POST",
        credentials: "omit",
        cache: "no-store",
        headers: { Accept: "application/json", "Content-Type": "application/json" },
        body: JSON.stringify(body),
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

  function problemText(error) {
    const code = error && error.message ? error.message : "generic";
    for (const key of ["rights.error." + code, "error." + code]) {
      if (has(messages, key)) {
        return t(key);
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
    eraseButton.hidden = !(subject && subject.receipt);
    setNotice(eraseResult, "");
    result.hidden = false;
    byId("result-title").focus();
    announce(byId("result-summary").textContent);
  }

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

  loginForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const login = loginInput.value.trim();
    const problemNode = byId("login-problem");
    if (!login) {
      setNotice(problemNode, t("rights.login.missing"));
      loginInput.setAttribute("aria-invalid", "true");
      loginInput.focus();
      return;
    }
    setNotice(problemNode, "");
    loginInput.removeAttribute("aria-invalid");
    look({ data_source: sourceSelect.value, login });
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
    if (busy || !subject || !subject.receipt) {
      return;
    }
    busy = true;
    setNotice(problem, "");
    try {
      const data = await api("/api/rights/erasure", { receipt: subject.receipt });
      const erased = data.erased && data.erased.identity_data;
      const kept = Array.isArray(data.kept) && data.kept.length ? data.kept[0] : null;
      const partner = data.recipient && data.recipient.name ? data.recipient.name : "";
      const lines = [
        t(erased ? "rights.erased" : "rights.erased_none"),
        kept && kept.until ? t("rights.erase_kept", { until: when(kept.until) }) : "",
        partner ? t("rights.erase_partner", { partner }) : "",
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
