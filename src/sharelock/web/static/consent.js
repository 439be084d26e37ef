/*
 * Sharelock consent screen: the page's one script (no framework, no external resource, no
 * inline code; it runs under `script-src 'self'`).
 *
 * Part 1 encrypts a small JSON payload (the person's credentials, or a one-time code) for the
 * broker with the Web Crypto API, into a compact JWE (RFC 7516 §7.1):
 *   alg  RSA-OAEP (SHA-1) or RSA-OAEP-256 (SHA-256), as the broker's JWKS says;
 *   enc  A256GCM: a fresh 256-bit content key, a 96-bit random IV, a 128-bit tag, and the
 *        ASCII of the base64url protected header as additional data (RFC 7518 §5.3).
 * The interoperability tests (tests/integration/test_webcrypto_interop.py) load this very file
 * in Chromium and prove the broker opens what it makes through the HSM.
 *
 * Part 2 runs the steps of the screen. Two parts live in their own files, loaded before this
 * one on the consent page (and absent where this file runs alone, as on the rights page):
 * `consent-account.js` (one click from a remembered source, the offer after a share) and
 * `consent-identity.js` (the identity verification's steps and outcome). Each defines one
 * function that this file calls with `shared`, the few things of the screen it may use, and
 * that answers the hooks this file calls (see `shared` below).
 */
"use strict";

/** JWE `alg` -> Web Crypto RSA-OAEP hash. */
const JWE_OAEP_HASH = Object.freeze({ "RSA-OAEP": "SHA-1", "RSA-OAEP-256": "SHA-256" });
const JWE_ENC = "A256GCM";
const GCM_IV_BYTES = 12;
const GCM_TAG_BYTES = 16;

/** Unpadded base64url of bytes. */
function base64url(bytes) {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 1) {
    binary += String.fromCharCode(bytes[i]);
  }
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** The broker's key to encrypt for: the first RSA encryption key with a known alg and a kid
 * (the broker lists its active key first). */
function selectEncryptionKey(jwks) {
  const keys = jwks && Array.isArray(jwks.keys) ? jwks.keys : [];
  const key = keys.find(
    (k) =>
      k &&
      k.kty === "RSA" &&
      k.use === "enc" &&
      Object.prototype.hasOwnProperty.call(JWE_OAEP_HASH, k.alg) &&
      typeof k.kid === "string" &&
      k.kid.length > 0,
  );
  if (!key) {
    throw new Error("the broker publishes no usable encryption key");
  }
  return key;
}

/**
 * Encrypt `payload` (any JSON value, e.g. {login, password}) into a compact JWE for the first
 * usable key of `jwks` (the parsed /.well-known/jwks.json). Resolves to the compact string.
 */
async function encryptCredentials(jwks, payload) {
  return encryptBytes(jwks, new TextEncoder().encode(JSON.stringify(payload)));
}

/**
 * Encrypt `plaintext` (a Uint8Array: an identity-verification image) the same way, into a
 * compact JWE; the array is zeroed once encrypted.
 */
async function encryptBytes(jwks, plaintext) {
  const jwk = selectEncryptionKey(jwks);
  const oaep = { name: "RSA-OAEP", hash: JWE_OAEP_HASH[jwk.alg] };
  const publicKey = await crypto.subtle.importKey(
    "jwk",
    { kty: "RSA", n: jwk.n, e: jwk.e, alg: jwk.alg, ext: true },
    oaep,
    false,
    ["wrapKey"],
  );

  // Extractable only so that wrapKey may export it, encrypted, to the RSA key.
  const cek = await crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, true, [
    "encrypt",
  ]);
  const encryptedKey = new Uint8Array(await crypto.subtle.wrapKey("raw", cek, publicKey, oaep));

  const encoder = new TextEncoder();
  const header = { alg: jwk.alg, enc: JWE_ENC, kid: jwk.kid };
  const protectedHeader = base64url(encoder.encode(JSON.stringify(header)));
  const iv = crypto.getRandomValues(new Uint8Array(GCM_IV_BYTES));

  let sealed;
  try {
    sealed = new Uint8Array(
      await crypto.subtle.encrypt(
        {
          name: "AES-GCM",
          iv,
          additionalData: encoder.encode(protectedHeader), // ASCII: base64url is ASCII
          tagLength: GCM_TAG_BYTES * 8,
        },
        cek,
        plaintext,
      ),
    );
  } finally {
    plaintext.fill(0);
  }
  const ciphertext = sealed.subarray(0, sealed.length - GCM_TAG_BYTES);
  const tag = sealed.subarray(sealed.length - GCM_TAG_BYTES);

  return [
    protectedHeader,
    base64url(encryptedKey),
    base64url(iv),
    base64url(ciphertext),
    base64url(tag),
  ].join(".");
}

/* ------------------------------------------------------------------------------------------
 * The consent screen's steps. The page is rendered by the server in the person's language;
 * this part shows one step at a time, encrypts what the person types, and talks JSON to the
 * broker (`/api/flows/{flow_id}/...`, bound to the session cookie). Every text comes from the
 * catalogue the server embedded in `#app[data-messages]`. No value is ever put into the page
 * as HTML: text goes through `textContent` only.
 * ---------------------------------------------------------------------------------------- */
// Loaded in <head> (before the body is drawn): hides the "JavaScript is needed" message.
document.documentElement.classList.add("js");

function consentScreen() {
  const app = document.getElementById("app");
  if (!app) {
    return;
  }
  const byId = (id) => document.getElementById(id);
  const has = (object, key) => Object.prototype.hasOwnProperty.call(object, key);

  const catalogue = SharelockMessages(app); // messages.js
  const t = catalogue.t;

  const flowPath = "/api/flows/" + encodeURIComponent(app.dataset.flowId || "");
  const partner = app.dataset.partner || "";
  const steps = {
    request: byId("step-request"),
    login: byId("step-login"),
    progress: byId("step-progress"),
    otp: byId("step-otp"),
    review: byId("step-review"),
    done: byId("step-done"),
    expired: byId("step-expired"),
    failure: byId("step-failure"),
    maintenance: byId("step-maintenance"),
    identityConsent: byId("step-identity-consent"),
    identityCapture: byId("step-identity-capture"),
  };
  // Which item of the step indicator each screen belongs to (none for the last screens).
  const indicator = {
    request: "request",
    login: "signin",
    progress: "signin",
    otp: "signin",
    maintenance: "signin",
    identityConsent: "review",
    identityCapture: "review",
    review: "review",
  };
  const indicatorOrder = ["request", "signin", "review"];

  const status = byId("status");
  const countdown = byId("countdown");
  const countdownValue = byId("countdown-value");
  const sourceForm = byId("source-form");
  const loginForm = byId("login-form");
  const loginInput = byId("login");
  const passwordInput = byId("password");
  const otpForm = byId("otp-form");
  const otpInput = byId("otp");
  const reviewForm = byId("review-form");
  const reviewFields = byId("review-fields");

  let source = null; // {id, name, label, pattern}
  let busy = false;
  let expired = false;
  let timer = null;

  class ApiError extends Error {
    constructor(code, httpStatus) {
      super(code);
      this.code = code;
      this.httpStatus = httpStatus;
    }
  }

  // -- small helpers ------------------------------------------------------------------

  function announce(text) {
    // Emptied first so that the same text said twice is announced twice.
    status.textContent = "";
    window.setTimeout(() => {
      status.textContent = text;
    }, 50);
  }

  function setNotice(element, text) {
    element.textContent = text || "";
    element.hidden = !text;
  }

  function setProblem(input, element, text) {
    setNotice(element, text);
    if (text) {
      input.setAttribute("aria-invalid", "true");
    } else {
      input.removeAttribute("aria-invalid");
    }
  }

  function clearProblems() {
    setProblem(loginInput, byId("login-problem"), "");
    setProblem(passwordInput, byId("password-problem"), "");
    setProblem(otpInput, byId("otp-problem"), "");
  }

  function clearSecrets() {
    loginInput.value = "";
    passwordInput.value = "";
    otpInput.value = "";
  }

  function show(name, focusTarget) {
    if (expired && name !== "expired") {
      return;
    }
    for (const key of Object.keys(steps)) {
      if (steps[key]) {
        steps[key].hidden = key !== name;
      }
    }
    const list = byId("steps");
    const active = has(indicator, name) ? indicator[name] : null;
    list.hidden = active === null;
    for (const item of list.querySelectorAll("[data-step]")) {
      const position = indicatorOrder.indexOf(item.dataset.step);
      if (item.dataset.step === active) {
        item.setAttribute("aria-current", "step");
      } else {
        item.removeAttribute("aria-current");
      }
      item.classList.toggle("done", active !== null && position < indicatorOrder.indexOf(active));
    }
    const heading = steps[name].querySelector("h1");
    document.title = (heading && heading.textContent ? heading.textContent + " · " : "") + "Sharelock";
    if (focusTarget !== false) {
      (focusTarget || heading).focus();
    }
  }

  function sourceFromInput(input) {
    return {
      id: input.value,
      name: input.dataset.name || input.value,
      label: input.dataset.loginLabel || "",
      pattern: input.dataset.loginPattern || "",
    };
  }

  function sourceById(id) {
    const inputs = sourceForm ? sourceForm.querySelectorAll('input[name="source"]') : [];
    for (const input of inputs) {
      if (input.value === id) {
        return sourceFromInput(input);
      }
    }
    return { id, name: id, label: "", pattern: "" };
  }

  function reasonText(reason) {
    const key = "error." + reason;
    return catalogue.has(key) ? t(key, { source: source.name }) : t("error.failed");
  }

  function problemText(error) {
    const code = error instanceof ApiError ? error.code : "generic";
    const key = "error." + code;
    return catalogue.has(key) ? t(key, { source: source ? source.name : "" }) : t("error.generic");
  }

  // -- the JSON API -------------------------------------------------------------------

  async function api(method, path, body) {
    const init = {
      method,
      credentials: "same-origin",
      cache: "no-store",
      headers: { Accept: "application/json" },
    };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (_) {
      throw new ApiError("network", 0);
    }
    let data = null;
    try {
      data = await response.json();
    } catch (_) {
      data = null;
    }
    if (!response.ok) {
      const code = data && typeof data.error === "string" ? data.error : "generic";
      throw new ApiError(code, response.status);
    }
    if (!data || typeof data !== "object") {
      throw new ApiError("generic", response.status);
    }
    return data;
  }

  /** Errors no step can fix: an expired session, another tab, another browser. */
  function fatal(error) {
    if (error instanceof ApiError && (error.code === "session_expired" || error.httpStatus === 404)) {
      expire();
      return true;
    }
    if (error instanceof ApiError && (error.code === "conflict" || error.code === "forbidden")) {
      setNotice(byId("failure-text"), problemText(error));
      show("failure");
      return true;
    }
    return false;
  }

  // -- step 1: the request and the choice of a source ------------------------------------

  function chooseSource() {
    clearSecrets();
    clearProblems();
    setNotice(byId("source-problem"), "");
    const checked = sourceForm && sourceForm.querySelector('input[name="source"]:checked');
    show("request", checked || undefined);
  }

  if (sourceForm) {
    sourceForm.addEventListener("submit", (event) => {
      event.preventDefault();
      const picked = sourceForm.querySelector('input[name="source"]:checked');
      if (!picked) {
        setNotice(byId("source-problem"), t("source.missing"));
        sourceForm.querySelector('input[name="source"]').focus();
        return;
      }
      setNotice(byId("source-problem"), "");
      source = sourceFromInput(picked);
      openLogin("");
    });
  }

  for (const button of document.querySelectorAll('[data-action="choose-source"]')) {
    button.addEventListener("click", chooseSource);
  }

  // -- step 2: sign in, progress, one-time code ---------------------------------------

  function openLogin(errorText, infoText) {
    const params = { source: source.name };
    byId("login-title").textContent = t("login.heading", params);
    byId("login-intro").textContent = t("login.intro", params);
    byId("login-label").textContent = source.label;
    clearSecrets();
    clearProblems();
    setNotice(byId("login-info"), infoText || "");
    const error = byId("login-error");
    setNotice(error, errorText);
    show("login", errorText ? error : undefined);
  }

  function openOtp(errorText) {
    byId("otp-intro").textContent = t("otp.intro", { source: source.name });
    clearSecrets();
    clearProblems();
    const error = byId("otp-error");
    setNotice(error, errorText);
    show("otp", errorText ? error : undefined);
  }

  /**
   * Encrypt `payload` for the broker's current key and hand the compact JWE to `send`.
   * The caller has already emptied the form fields; the payload's members are dropped here
   * as soon as the JWE exists (JavaScript strings cannot be zeroed, only let go of).
   */
  async function collect(payload, send, backTo) {
    busy = true;
    showProgress();
    let result;
    try {
      const jwks = await api("GET", "/.well-known/jwks.json");
      let envelope;
      try {
        envelope = await encryptCredentials(jwks, payload);
      } catch (_) {
        throw new ApiError("crypto", 0);
      } finally {
        for (const key of Object.keys(payload)) {
          payload[key] = "";
        }
      }
      result = await send(envelope);
    } catch (error) {
      busy = false;
      if (expired || fatal(error)) {
        return;
      }
      if (backTo === "otp") {
        openOtp(problemText(error));
      } else {
        openLogin(problemText(error));
      }
      return;
    }
    busy = false;
    if (!expired) {
      afterCollection(result);
    }
  }

  function showProgress() {
    const params = { source: source.name };
    byId("progress-title").textContent = t("progress.heading", params);
    byId("progress-text").textContent = t("progress.text", params);
    show("progress");
    announce(t("progress.announce", params));
  }

  function afterCollection(result) {
    if (result.status === "collected") {
      loadReview();
    } else if (result.status === "otp_required") {
      openOtp(result.reason ? reasonText(result.reason) : "");
    } else if (result.maintenance_offer === true) {
      openMaintenance(result.reason || "failed");
    } else {
      openLogin(reasonText(result.reason || "failed"));
    }
  }

  // -- after a failure the engineers could fix: keep the credentials for them? -------------

  let maintenanceReason = "failed";

  function dateText(iso) {
    const when = new Date(iso);
    if (Number.isNaN(when.getTime())) {
      return String(iso);
    }
    try {
      const lang = document.documentElement.lang || undefined;
      return new Intl.DateTimeFormat(lang, { dateStyle: "long" }).format(when);
    } catch (_) {
      return when.toISOString().slice(0, 10);
    }
  }

  function maintenanceButtons(disabled) {
    byId("maintenance-yes").disabled = disabled;
    byId("maintenance-no").disabled = disabled;
  }

  function openMaintenance(reason) {
    maintenanceReason = reason;
    clearSecrets();
    clearProblems();
    const why = reasonText(reason);
    byId("maintenance-reason").textContent = why;
    byId("maintenance-intro").textContent = t("maintenance.intro", { source: source.name });
    setNotice(byId("maintenance-error"), "");
    maintenanceButtons(false);
    show("maintenance");
    announce(why);
  }

  /** The person's answer; either way, back to signing in (try again, or another service). */
  async function answerMaintenance(keep) {
    if (busy) {
      return;
    }
    busy = true;
    maintenanceButtons(true);
    let answer;
    try {
      answer = await api("POST", flowPath + "/maintenance", { keep });
    } catch (error) {
      busy = false;
      maintenanceButtons(false);
      if (expired) {
        return;
      }
      if (error instanceof ApiError && error.code === "conflict") {
        // Already answered or moved on in another tab: the offer is gone, nothing is kept.
        openLogin(reasonText(maintenanceReason));
        return;
      }
      if (!fatal(error)) {
        const notice = byId("maintenance-error");
        setNotice(notice, problemText(error));
        notice.focus();
      }
      return;
    }
    busy = false;
    if (expired) {
      return;
    }
    const info =
      answer.kept === true
        ? t("maintenance.kept", { date: dateText(answer.expires_at), source: source.name })
        : t("maintenance.erased");
    openLogin(reasonText(maintenanceReason), info);
    announce(info);
  }

  byId("maintenance-yes").addEventListener("click", () => answerMaintenance(true));
  byId("maintenance-no").addEventListener("click", () => answerMaintenance(false));

  function patternMatches(pattern, value) {
    try {
      return new RegExp("^(?:" + pattern + ")$").test(value);
    } catch (_) {
      return true; // a pattern the browser cannot read is the server's to check
    }
  }

  loginForm.addEventListener("submit", (event) => {
    event.preventDefault();
    if (busy || !source) {
      return;
    }
    const login = loginInput.value.trim();
    const password = passwordInput.value;
    clearProblems();
    let firstProblem = null;
    if (!login) {
      setProblem(loginInput, byId("login-problem"), t("login.missing_login", { label: source.label }));
      firstProblem = loginInput;
    } else if (source.pattern && !patternMatches(source.pattern, login.replace(/\s+/g, ""))) {
      setProblem(loginInput, byId("login-problem"), t("login.bad_format", { label: source.label }));
      firstProblem = loginInput;
    }
    if (!password) {
      setProblem(passwordInput, byId("password-problem"), t("login.missing_password"));
      firstProblem = firstProblem || passwordInput;
    }
    if (firstProblem) {
      firstProblem.focus();
      return;
    }
    // The clear values leave the form before anything is sent.
    clearSecrets();
    const chosen = source;
    collect(
      { login, password },
      (credentials) => api("POST", flowPath + "/credentials", { data_source: chosen.id, credentials }),
      "login",
    );
  });

  otpForm.addEventListener("submit", (event) => {
    event.preventDefault();
    if (busy || !source) {
      return;
    }
    const code = otpInput.value.replace(/\s+/g, "");
    clearProblems();
    if (!code) {
      setProblem(otpInput, byId("otp-problem"), t("otp.missing"));
      otpInput.focus();
      return;
    }
    clearSecrets();
    collect({ otp: code }, (otp) => api("POST", flowPath + "/otp", { otp }), "otp");
  });

  // -- step 3: review and decision ----------------------------------------------------

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text !== undefined) {
      node.textContent = text;
    }
    return node;
  }

  /** How a value is shown: an IBAN in groups of four (its print format); the value sent is
   * unchanged. */
  function shown(item) {
    if (typeof item.display === "string") {
      return item.display; // the value in the page's language, made by the broker
    }
    const value = String(item.value);
    return item.field === "iban" ? value.replace(/\s+/g, "").replace(/(.{4})(?!$)/g, "$1 ") : value;
  }

  /** The review's first words: the values a source provided; or, when the share holds no
   * value (docs/checks.md, docs/identity-verification.md), only what is there. */
  function reviewIntro(fields, checks, identity) {
    const params = { source: source ? source.name : "", partner };
    if (fields.length === 0 && identity.asked) {
      return t(checks.length ? "review.intro_verification_checks" : "review.intro_verification", params);
    }
    if (fields.length === 0 && checks.length) {
      return t("review.intro_checks", params);
    }
    return t("review.intro", params);
  }

  function renderReview(data) {
    if (!source && data.data_source) {
      source = sourceById(data.data_source);
    }
    const fields = Array.isArray(data.fields) ? data.fields : [];
    const checks = Array.isArray(data.checks) ? data.checks : [];
    const identity = data.identity_verification || { asked: false };
    byId("review-intro").textContent = reviewIntro(fields, checks, identity);
    const groups = new Map();
    for (const item of fields) {
      if (!groups.has(item.scope)) {
        groups.set(item.scope, []);
      }
      groups.get(item.scope).push(item);
    }
    const nodes = [];
    for (const [scope, items] of groups) {
      const group = element("fieldset", "review-group");
      group.appendChild(element("legend", "", catalogue.has("scope." + scope) ? t("scope." + scope) : scope));
      const list = element("ul", "review-list");
      for (const item of items) {
        const label = catalogue.has("field." + item.field) ? t("field." + item.field) : item.label;
        if (Array.isArray(item.pages)) {
          list.appendChild(documentRow(item, label, scope));
          continue;
        }
        const row = element("li", "review-row" + (item.optional ? " optional" : ""));
        row.dataset.field = item.field;
        const tag = element(
          "span",
          "tag " + (item.optional ? "tag-optional" : "tag-required"),
          t(item.optional ? "field.optional" : "field.required"),
        );
        if (item.optional) {
          const id = "share-" + item.scope + "-" + item.field;
          const box = element("input", "");
          box.type = "checkbox";
          box.id = id;
          box.checked = true;
          box.dataset.field = item.field;
          const text = element("label", "review-text");
          text.htmlFor = id;
          text.appendChild(element("span", "visually-hidden", t("review.share") + " "));
          text.appendChild(element("span", "review-label", label));
          text.appendChild(element("span", "review-value", shown(item)));
          row.append(box, text, tag);
        } else {
          const text = element("span", "review-text");
          text.appendChild(element("span", "review-label", label));
          text.appendChild(element("span", "review-value", shown(item)));
          row.append(element("span", "review-lock"), text, tag);
        }
        list.appendChild(row);
      }
      group.appendChild(list);
      nodes.push(group);
    }
    if (checks.length) {
      nodes.unshift(renderChecks(checks));
    }
    if (identity.asked) {
      nodes.unshift(identityPart.review(identity));
    }
    reviewFields.replaceChildren(...nodes);
  }

  /** A document, as the images of its pages (drawn by the broker from the sealed copy: no
   * PDF reader, nothing but same-origin images under the page's CSP). */
  function documentRow(item, label, scope) {
    const row = element("li", "review-row review-document");
    row.dataset.field = item.field;
    const text = element("div", "review-text");
    text.appendChild(element("span", "review-label", label));
    const pages = element("div", "document-pages");
    const name = catalogue.has("scope." + scope) ? t("scope." + scope) : scope;
    const prefix = flowPath + "/documents/";
    item.pages.forEach((url, index) => {
      if (typeof url !== "string" || !url.startsWith(prefix)) {
        return;
      }
      const figure = element("figure", "document-page");
      const image = element("img", "");
      const where = { page: index + 1, pages: item.pages.length, document: name };
      image.alt = t("review.document_page", where);
      image.decoding = "async";
      image.addEventListener("error", () => {
        figure.replaceChildren(element("p", "notice error", t("review.document_unavailable", where)));
      });
      image.src = url;
      figure.append(image, element("figcaption", "", t("review.page_number", where)));
      pages.appendChild(figure);
    });
    text.appendChild(pages);
    row.append(
      element("span", "review-lock"),
      text,
      element("span", "tag tag-required", t("field.required")),
    );
    return row;
  }

  /** The partner's questions with the answer each would get (docs/checks.md): one box per
   * answer, ticked (untick: the partner learns only that you declined); for a name that is
   * close but not the same, a second box, unticked, to send it as the source has it. */
  function renderChecks(checks) {
    const group = element("fieldset", "review-group review-checks");
    group.appendChild(element("legend", "", t("checks.review_heading", { partner })));
    const list = element("ul", "review-list");
    for (const item of checks) {
      const row = element("li", "review-row optional");
      const id = "answer-" + item.index;
      const box = element("input", "");
      box.type = "checkbox";
      box.id = id;
      box.checked = true;
      box.dataset.check = String(item.index);
      const text = element("label", "review-text");
      text.htmlFor = id;
      text.appendChild(element("span", "visually-hidden", t("checks.send") + " "));
      text.appendChild(element("span", "review-label", item.question));
      text.appendChild(element("span", "review-value", item.answer));
      row.append(box, text, element("span", "tag tag-optional", t("field.optional")));
      list.appendChild(row);
      if (item.close_match_name) {
        const nameRow = element("li", "review-row optional");
        const nameBox = element("input", "");
        nameBox.type = "checkbox";
        nameBox.id = "reveal-name";
        nameBox.checked = false;
        const nameText = element("label", "review-text", t("checks.reveal_name", { partner }));
        nameText.htmlFor = "reveal-name";
        nameRow.append(nameBox, nameText);
        list.appendChild(nameRow);
      }
    }
    group.appendChild(list);
    return group;
  }

  async function loadReview() {
    let data;
    try {
      const lang = encodeURIComponent(document.documentElement.lang || "en");
      data = await api("GET", flowPath + "/data?lang=" + lang);
    } catch (error) {
      if (!fatal(error)) {
        setNotice(byId("failure-text"), problemText(error));
        show("failure");
      }
      return;
    }
    if (expired) {
      return;
    }
    const identity = data.identity_verification || { asked: false };
    if (identity.asked && !identityPart) {
      // Never shown without the verification's outcome: the page is missing its part.
      setNotice(byId("failure-text"), t("error.generic"));
      show("failure");
      return;
    }
    if (identity.asked && identityPart.route(identity)) {
      return;
    }
    renderReview(data);
    setNotice(byId("review-error"), "");
    show("review");
    announce(t("review.announce"));
  }

  function safeDestination(url) {
    try {
      const parsed = new URL(url, window.location.href);
      return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.href : null;
    } catch (_) {
      return null;
    }
  }

  async function decide(approve) {
    if (busy) {
      return;
    }
    busy = true;
    const buttons = reviewForm.querySelectorAll("button");
    for (const button of buttons) {
      button.disabled = true;
    }
    const omit = approve
      ? Array.from(reviewForm.querySelectorAll("input[type=checkbox][data-field]"))
          .filter((box) => !box.checked)
          .map((box) => box.dataset.field)
      : [];
    const body = { approve, omit };
    const answerBoxes = Array.from(reviewForm.querySelectorAll("input[type=checkbox][data-check]"));
    if (approve && answerBoxes.length) {
      // The partner asked checks: the answers declined, and the close-match name's fate.
      body.decline_checks = answerBoxes.filter((box) => !box.checked).map((box) => Number(box.dataset.check));
      const revealBox = byId("reveal-name");
      body.reveal_actual_name = revealBox !== null && revealBox.checked;
    }
    let answer;
    try {
      answer = await api("POST", flowPath + "/decision", body);
    } catch (error) {
      busy = false;
      for (const button of buttons) {
        button.disabled = false;
      }
      if (!expired && !fatal(error)) {
        const notice = byId("review-error");
        setNotice(notice, problemText(error));
        notice.focus();
      }
      return;
    }
    const destination = safeDestination(answer.redirect_to);
    if (!destination) {
      setNotice(byId("failure-text"), t("error.generic"));
      show("failure");
      return;
    }
    stopCountdown();
    countdown.hidden = true;
    reviewFields.replaceChildren();
    byId("done-title").textContent = t(approve ? "done.approved" : "done.refused", { partner });
    byId("done-link").href = destination;
    if (!approve) {
      show("done");
      window.location.assign(destination);
      return;
    }
    // Approved: the receipt to keep, then the person goes on when they choose; first, when
    // the broker may remember the source, the offer of an account, answered either way.
    offerReceipt(answer.receipt);
    const offered = accountPart !== null && accountPart.offer(answer.remember_offer, destination);
    busy = !offered; // the decision is made; only the offer's answer is left to send
    byId("done-hurry").hidden = offered;
    byId("done-rights").hidden = false;
    show("done");
    announce(t("done.approved", { partner }));
  }

  /** The signed receipt (a compact JWS) as a download made in the page: a blob: URL, so the
   * receipt travels in no further request. */
  function offerReceipt(receipt) {
    const box = byId("done-receipt");
    if (typeof receipt !== "string" || !/^[\w-]+\.[\w-]+\.[\w-]+$/.test(receipt)) {
      box.hidden = true;
      return;
    }
    const link = byId("receipt-download");
    link.href = URL.createObjectURL(new Blob([receipt], { type: "application/jose" }));
    link.download = "sharelock-receipt-" + new Date().toISOString().slice(0, 10) + ".jws";
    box.hidden = false;
  }

  byId("approve").addEventListener("click", () => decide(true));
  byId("refuse").addEventListener("click", () => decide(false));

  // -- the parts in their own files -------------------------------------------------------
  // What `consent-account.js` and `consent-identity.js` may use of the screen: no more. The
  // shared state (one action at a time, the session's end, the chosen source) is read and
  // set through functions, so that it stays this file's.

  const shared = Object.freeze({
    byId,
    t,
    hasMessage: (key) => catalogue.has(key),
    element,
    flowPath,
    partner,
    api,
    ApiError,
    encryptBytes,
    announce,
    setNotice,
    show,
    fatal,
    problemText,
    isBusy: () => busy,
    setBusy: (value) => {
      busy = value;
    },
    isExpired: () => expired,
    getSource: () => source,
    setSource: (value) => {
      source = value;
    },
    sourceById,
    showProgress,
    afterCollection,
    loadReview,
  });
  const accountPart = typeof SharelockConsentAccount === "function" ? SharelockConsentAccount(shared) : null;
  const identityPart = typeof SharelockConsentIdentity === "function" ? SharelockConsentIdentity(shared) : null;

  // -- the session's countdown --------------------------------------------------------

  const expiresIn = Math.max(0, Number(app.dataset.expiresInMs) || 0) / 1000;
  const deadline = performance.now() + expiresIn * 1000;
  let warnedFive = expiresIn <= 300;
  let warnedOne = expiresIn <= 60;

  function clock(seconds) {
    const hours = Math.floor(seconds / 3600);
    const minutes = Math.floor((seconds % 3600) / 60);
    const rest = String(seconds % 60).padStart(2, "0");
    return hours > 0 ? hours + ":" + String(minutes).padStart(2, "0") + ":" + rest : minutes + ":" + rest;
  }

  function stopCountdown() {
    if (timer !== null) {
      window.clearInterval(timer);
      timer = null;
    }
  }

  function tick() {
    const left = Math.max(0, Math.ceil((deadline - performance.now()) / 1000));
    countdownValue.textContent = clock(left);
    if (left <= 300) {
      countdown.classList.add("low");
    }
    if (!warnedFive && left <= 300) {
      warnedFive = true;
      announce(t("countdown.minutes_left", { count: 5 }));
    }
    if (!warnedOne && left <= 60) {
      warnedOne = true;
      announce(t("countdown.last_minute"));
    }
    if (left <= 0) {
      expire();
    }
  }

  function expire() {
    if (expired) {
      return;
    }
    show("expired");
    expired = true;
    stopCountdown();
    countdownValue.textContent = clock(0);
    countdown.classList.add("low");
    clearSecrets();
    reviewFields.replaceChildren();
  }

  // -- start ----------------------------------------------------------------------------

  app.hidden = false;
  countdown.hidden = false;
  tick();
  timer = window.setInterval(tick, 1000);
  if (expired) {
    return;
  }
  if (!window.crypto || !window.crypto.subtle) {
    setNotice(byId("failure-text"), t("error.crypto"));
    show("failure", false);
    return;
  }
  const resumed = app.dataset.dataSource;
  switch (app.dataset.status) {
    case "otp_required":
      source = sourceById(resumed);
      openOtp("");
      break;
    case "collected":
      source = resumed ? sourceById(resumed) : null;
      loadReview();
      break;
    case "awaiting_credentials":
      if (app.dataset.maintenanceOffer === "true" && resumed) {
        // Reloaded while the offer made after a failure was unanswered: ask again.
        source = sourceById(resumed);
        openMaintenance(app.dataset.lastOutcome || "failed");
      } else {
        show("request", false);
        if (accountPart) {
          accountPart.start();
        }
      }
      break;
    default:
      setNotice(byId("failure-text"), t("error.conflict"));
      show("failure", false);
  }
}

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", consentScreen);
} else {
  consentScreen();
}
