/*
 * Sharelock consent screen, the optional account (docs/accounts.md, "In a share"). Loaded by
 * the consent page after `passkeys.js` and before `consent.js` (no inline code: `script-src
 * 'self'`); it only defines `SharelockConsentAccount(shared)`, which `consent.js` calls with
 * the few things of the screen it may use (`shared`, built there) and which answers:
 *   start()                     on the source choice: the signed-in account's remembered
 *                               sources, one click each, or a way to sign in;
 *   offer(remember, leaveTo)    after an approval: the offer to remember the source, if the
 *                               broker made one; true if shown (the way on waits for it).
 *
 * Shown only where passkeys can work (the flow's description says `available`). The passkey
 * ceremonies use `SharelockPasskeys` (`passkeys.js`); without it nothing is offered.
 */
"use strict";

function SharelockConsentAccount(shared) {
  const { byId, t, element, flowPath, api, ApiError } = shared;
  const passkeys = typeof SharelockPasskeys === "undefined" ? null : SharelockPasskeys;
  const accountError = byId("account-error");
  let offer = null; // {name, signedIn, signIn} while the offer after a share is unanswered
  let leaveTo = null; // the partner's way on, once the share is approved

  const post = (path, body) => api("POST", path, body);

  /** An account or passkey problem in words: the browser's refusal, the API's error code. */
  function accountProblem(error) {
    const code = (passkeys && passkeys.refusal(error)) || (error instanceof ApiError ? error.code : "generic");
    const source = shared.getSource();
    for (const key of ["account.error." + code, "error." + code]) {
      if (shared.hasMessage(key)) {
        return t(key, { source: source ? source.name : "" });
      }
    }
    return t("error.generic");
  }

  // -- on the source choice: one click from a remembered source -------------------------

  /** The flow's description says whether an account is signed in in this browser, and which
   * of its sources can give this flow's data. The usual choice stays whatever happens. */
  async function start() {
    let described;
    try {
      described = await api("GET", flowPath);
    } catch (_) {
      return;
    }
    renderAccount(described.account);
  }

  function renderAccount(state) {
    if (!byId("one-click")) {
      return; // no source can give this data: nothing to offer either
    }
    const available = Boolean(state && state.available === true);
    const signedIn = available && state.signed_in === true;
    const sources = signedIn && Array.isArray(state.sources) ? state.sources : [];
    byId("one-click-sources").replaceChildren(...sources.map(oneClickItem));
    byId("one-click").hidden = sources.length === 0;
    byId("account-signed-in").hidden = !signedIn || sources.length > 0;
    byId("account-sign-in-box").hidden = !available || signedIn || !passkeys || !passkeys.supported();
  }

  function oneClickItem(item) {
    const row = element("li", "one-click-source");
    const name = String(item.name || item.data_source || "");
    if (item.status === "connected") {
      const button = element("button", "button primary", t("oneclick.share", { source: name }));
      button.type = "button";
      button.dataset.source = String(item.id);
      button.addEventListener("click", () => shareInOneClick(item, name));
      row.appendChild(button);
    } else {
      // A source that stopped working: the usual sign-in below, not a click that would fail.
      row.appendChild(element("p", "notice warning", t("oneclick.failing", { source: name })));
    }
    return row;
  }

  /** Collect from a remembered source: no password typed; then as after a password (the
   * one-time code if the source asks, the review). */
  async function shareInOneClick(item, name) {
    if (shared.isBusy()) {
      return;
    }
    shared.setBusy(true);
    shared.setNotice(accountError, "");
    shared.setSource({ ...shared.sourceById(item.data_source), name });
    shared.showProgress();
    let result;
    try {
      result = await post(flowPath + "/one-click", { source: item.id });
    } catch (error) {
      shared.setBusy(false);
      // An account's "not found" (the source revoked meanwhile) is not the flow's end.
      const gone = error instanceof ApiError && error.code === "not_found";
      if (shared.isExpired() || (!gone && shared.fatal(error))) {
        return;
      }
      shared.setNotice(accountError, accountProblem(error));
      shared.show("request", accountError);
      start(); // signed out meanwhile, or the source revoked: show what is left
      return;
    }
    shared.setBusy(false);
    if (!shared.isExpired()) {
      shared.afterCollection(result);
    }
  }

  /** Sign in with a passkey on this page, then show what the account offers here. */
  async function signInHere() {
    if (shared.isBusy()) {
      return;
    }
    shared.setNotice(accountError, "");
    shared.setBusy(true);
    try {
      const answer = await passkeys.get(post, "/api/account/sign-in/options", () =>
        shared.announce(t("account.working")),
      );
      await post("/api/account/sign-in", answer);
    } catch (error) {
      shared.setBusy(false);
      if (!shared.isExpired()) {
        shared.setNotice(accountError, accountProblem(error));
        accountError.focus();
      }
      return;
    }
    await start();
    shared.setBusy(false);
    const oneClick = byId("one-click");
    (oneClick.hidden ? byId("account-signed-in") : byId("one-click-title")).focus();
    shared.announce(t("account.done.signed_in"));
  }

  if (byId("account-sign-in")) {
    byId("account-sign-in").addEventListener("click", signInHere);
  }

  // -- after an approval: the offer to remember the source ------------------------------

  function offerButtons(disabled) {
    byId("offer-remember").disabled = disabled;
    byId("offer-decline").disabled = disabled;
  }

  /** The offer after a share, if the broker made one; true if shown. A browser without
   * passkeys cannot take it up when no account is signed in: it is declined at once. */
  function openOffer(remember, destination) {
    leaveTo = destination;
    byId("offer").hidden = true;
    if (!remember || typeof remember !== "object") {
      return false;
    }
    const name = String(remember.name || remember.data_source || "");
    offer = { name, signedIn: remember.signed_in === true };
    if (!offer.signedIn && !(passkeys && passkeys.supported())) {
      offer = null;
      post(flowPath + "/remember", { remember: false }).catch(() => undefined);
      return false;
    }
    byId("offer-text").textContent = t(offer.signedIn ? "offer.text_signed_in" : "offer.text", { source: name });
    byId("offer-remember").textContent = t(offer.signedIn ? "offer.add" : "offer.remember");
    shared.setNotice(byId("offer-error"), "");
    offerButtons(false);
    byId("offer").hidden = false;
    byId("done-link").hidden = true;
    return true;
  }

  function offerProblem(error) {
    const notice = byId("offer-error");
    shared.setNotice(notice, accountProblem(error));
    notice.focus();
  }

  /** No thanks: the broker forgets what it held for the offer; on to the partner. */
  async function declineOffer() {
    if (shared.isBusy() || !offer) {
      return;
    }
    shared.setBusy(true);
    offerButtons(true);
    try {
      await post(flowPath + "/remember", { remember: false });
    } catch (error) {
      shared.setBusy(false);
      offerButtons(false);
      if (!shared.isExpired() && !shared.fatal(error)) {
        offerProblem(error);
        byId("done-link").hidden = false; // the way on stays open
      }
      return;
    }
    window.location.assign(leaveTo);
  }

  /** Remember: an account made with a passkey if none is signed in (its recovery code shown
   * once), then the source kept in it; then the way on to the partner. */
  async function acceptOffer() {
    if (shared.isBusy() || !offer) {
      return;
    }
    shared.setBusy(true);
    offerButtons(true);
    shared.setNotice(byId("offer-error"), "");
    let code = null;
    const working = () => shared.announce(t("account.working"));
    try {
      if (offer.signIn) {
        const answer = await passkeys.get(post, "/api/account/sign-in/options", working);
        await post("/api/account/sign-in", answer);
        offer.signIn = false;
      } else if (!offer.signedIn) {
        const answer = await passkeys.create(post, "/api/account/new/options", { label: null }, working);
        const created = await post("/api/account/new", answer);
        // The account exists from here on: its code is shown whatever follows, and a retry
        // only adds the source.
        offer.signedIn = true;
        byId("offer-remember").textContent = t("offer.add");
        if (typeof created.recovery_code === "string") {
          code = created.recovery_code;
          byId("offer-recovery-code").textContent = code;
          byId("offer-code").hidden = false;
        }
      }
      await post(flowPath + "/remember", { remember: true });
    } catch (error) {
      shared.setBusy(false);
      offerButtons(false);
      if (error instanceof ApiError && error.code === "not_signed_in" && passkeys && passkeys.supported()) {
        // The account's session ended since the decision: sign in again, then remember.
        offer.signIn = true;
        byId("offer-remember").textContent = t("account.sign_in");
      }
      if (!shared.isExpired()) {
        offerProblem(error);
      }
      return;
    }
    shared.setBusy(false);
    const name = offer.name;
    offer = null;
    byId("offer-actions").hidden = true;
    byId("offer-text").hidden = true;
    const remembered = byId("offer-remembered");
    remembered.textContent = t("offer.remembered", { source: name });
    remembered.hidden = false;
    byId("done-link").hidden = false;
    (code ? byId("offer-code-title") : remembered).focus();
    shared.announce(remembered.textContent);
  }

  byId("offer-remember").addEventListener("click", acceptOffer);
  byId("offer-decline").addEventListener("click", declineOffer);

  return Object.freeze({ start, offer: openOffer });
}
