/*
 * Sharelock account pages (`/account`, `/account/new`): the page's script (no framework, no
 * external resource, no inline code; it runs under `script-src 'self'`), after `passkeys.js`.
 *
 * It runs the passkey ceremonies: it asks the broker for options (`/api/account/…/options`),
 * hands them to `navigator.credentials.create()` or `.get()` and sends the browser's answer
 * back as JSON (`SharelockPasskeys`, shared with the consent screen). The
 * session cookie is HttpOnly: the script never sees it. A recovery code is shown once, in the
 * page; it travels in no URL. After a change the page reloads with `?done=` naming what was
 * done, so what is shown always comes from the server. Text goes in through `textContent` only.
 */
"use strict";

document.documentElement.classList.add("js");

function accountPage() {
  const app = document.getElementById("account");
  if (!app) {
    return;
  }
  const byId = (id) => document.getElementById(id);
  const catalogue = SharelockMessages(app); // messages.js
  const t = catalogue.t;
  const lang = app.dataset.lang || "en";
  const problem = byId("problem");
  const status = byId("status");
  let busy = false;
  let exportUrl = null;

  function announce(text) {
    status.textContent = "";
    window.setTimeout(() => {
      status.textContent = text;
    }, 50);
  }

  function showProblem(error) {
    const code = SharelockPasskeys.refusal(error) || (error && error.message ? error.message : "generic");
    let text = t("error.generic");
    for (const key of ["account.error." + code, "error." + code]) {
      if (catalogue.has(key)) {
        text = t(key);
        break;
      }
    }
    const done = byId("done");
    if (done) {
      done.hidden = true; // what was done before is not news any more
    }
    problem.textContent = text;
    problem.hidden = false;
    problem.focus();
  }

  async function api(path, body, method) {
    let response;
    try {
      response = await fetch(path, {
        method: method || "POST",
        credentials: "same-origin",
        cache: "no-store",
        headers: { Accept: "application/json", "Content-Type": "application/json" },
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

  function go(done) {
    window.location.assign("/account?lang=" + encodeURIComponent(lang) + (done ? "&done=" + done : ""));
  }

  /** Run one action at a time, with its problem shown if it fails. */
  function act(work) {
    return async (event) => {
      if (event) {
        event.preventDefault();
      }
      if (busy) {
        return;
      }
      busy = true;
      problem.hidden = true;
      try {
        await work(event);
      } catch (error) {
        showProblem(error);
      } finally {
        busy = false;
      }
    };
  }

  function passkeysSupported() {
    if (SharelockPasskeys.supported()) {
      return true;
    }
    showProblem(new Error("unsupported"));
    return false;
  }

  /** options → navigator.credentials.create() → the answer, as JSON. */
  function register(optionsPath, body) {
    return SharelockPasskeys.create(api, optionsPath, body, () => announce(t("account.working")));
  }

  function showCode(code, done) {
    byId("recovery-code").textContent = code;
    const link = byId("code-continue");
    link.href = "/account?lang=" + encodeURIComponent(lang) + "&done=" + done;
    byId("code-section").hidden = false;
    byId("code-title").focus();
    announce(t("account.code.heading"));
  }

  function label() {
    const input = byId("passkey-label");
    return input && input.value.trim() ? input.value.trim() : null;
  }

  const createForm = byId("create-form");
  if (createForm) {
    createForm.addEventListener(
      "submit",
      act(async () => {
        if (!passkeysSupported()) {
          return;
        }
        const answer = await register("/api/account/new/options", { label: label() });
        const created = await api("/api/account/new", answer);
        // The account exists now: only the code is left to show.
        byId("create-card").hidden = true;
        showCode(created.recovery_code, "created");
      }),
    );
  }

  const signIn = byId("sign-in");
  if (signIn) {
    signIn.addEventListener(
      "click",
      act(async () => {
        if (!passkeysSupported()) {
          return;
        }
        const answer = await SharelockPasskeys.get(api, "/api/account/sign-in/options", () =>
          announce(t("account.working")),
        );
        await api("/api/account/sign-in", answer);
        go("signed_in");
      }),
    );
  }

  const recoveryForm = byId("recovery-form");
  if (recoveryForm) {
    recoveryForm.addEventListener(
      "submit",
      act(async () => {
        await api("/api/account/recovery", { code: byId("recovery-input").value });
        go("");
      }),
    );
  }

  const addForm = byId("add-form");
  if (addForm) {
    addForm.addEventListener(
      "submit",
      act(async () => {
        if (!passkeysSupported()) {
          return;
        }
        const answer = await register("/api/account/passkeys/options", { label: label() });
        const added = await api("/api/account/passkeys", answer);
        if (added.recovery_code) {
          addForm.hidden = true;
          showCode(added.recovery_code, "passkey_added");
        } else {
          go("passkey_added");
        }
      }),
    );
  }

  for (const button of document.querySelectorAll(".remove-passkey")) {
    button.addEventListener(
      "click",
      act(async () => {
        await api("/api/account/passkeys/" + encodeURIComponent(button.dataset.passkey), undefined, "DELETE");
        go("passkey_removed");
      }),
    );
  }

  for (const button of document.querySelectorAll(".revoke-source")) {
    button.addEventListener(
      "click",
      act(async () => {
        await api("/api/account/sources/" + encodeURIComponent(button.dataset.source), undefined, "DELETE");
        go("source_revoked");
      }),
    );
  }

  // The periodic re-sync of a source, per source: asked of the broker at once, said in the
  // live region. The box then shows what the broker answered; on a failure, what it was.
  // Never disabled while asked: a disabled box would lose the keyboard's focus.
  for (const box of document.querySelectorAll(".sync-source")) {
    box.addEventListener("change", async () => {
      const wanted = box.checked;
      if (busy) {
        box.checked = !wanted; // one action at a time
        return;
      }
      busy = true;
      problem.hidden = true;
      try {
        const path = "/api/account/sources/" + encodeURIComponent(box.dataset.source) + "/sync";
        const answer = await api(path, { allowed: wanted });
        box.checked = answer.sync_consent === true;
        announce(t(box.checked ? "account.sync.on" : "account.sync.off", { source: box.dataset.name || "" }));
      } catch (error) {
        box.checked = !wanted;
        showProblem(error);
      } finally {
        busy = false;
      }
    });
  }

  const exportButton = byId("export");
  if (exportButton) {
    exportButton.addEventListener(
      "click",
      act(async () => {
        const data = await api("/api/account/export", {});
        if (exportUrl) {
          URL.revokeObjectURL(exportUrl);
        }
        exportUrl = URL.createObjectURL(new Blob([JSON.stringify(data, null, 2)], { type: "application/json" }));
        const link = byId("export-link");
        link.href = exportUrl;
        link.download = "sharelock-account-" + new Date().toISOString().slice(0, 10) + ".json";
        link.click();
        announce(t("account.exported"));
      }),
    );
  }

  const confirm = byId("delete-confirm");
  if (confirm) {
    byId("delete").addEventListener("click", () => {
      confirm.hidden = false;
      byId("delete-question").focus();
    });
    byId("delete-no").addEventListener("click", () => {
      confirm.hidden = true;
      byId("delete").focus();
    });
    byId("delete-yes").addEventListener(
      "click",
      act(async () => {
        await api("/api/account/delete", {});
        go("deleted");
      }),
    );
  }

  const signOut = byId("sign-out");
  if (signOut) {
    signOut.addEventListener(
      "click",
      act(async () => {
        await api("/api/account/sign-out", {});
        go("signed_out");
      }),
    );
  }

  app.hidden = false;
}

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", accountPage);
} else {
  accountPage();
}
