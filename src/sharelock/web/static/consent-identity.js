/*
 * Sharelock consent screen, identity verification (docs/identity-verification.md, "In a
 * share"). Loaded by the consent page before `consent.js` (no inline code: `script-src
 * 'self'`); it only defines `SharelockConsentIdentity(shared)`, which `consent.js` calls with
 * the few things of the screen it may use (`shared`, built there) and which answers:
 *   route(identity)   opens the consent or capture step if the verification waits for one;
 *                     true if it did (the review waits);
 *   review(identity)  the verification's outcome for the review, as a node.
 *
 * First the biometric consent, on its own screen (GDPR Art. 9); then the document (a file, or
 * the camera) and a short live capture. Each image is re-drawn on a canvas (which drops its
 * metadata and bounds its size), encrypted here to the broker's key like credentials, and
 * sent; the broker opens them only to verify, then erases them.
 */
"use strict";

function SharelockConsentIdentity(shared) {
  const { byId, t, element, partner, flowPath, api, ApiError } = shared;

  const LIVE_PHASES = ["identity.live.look", "identity.live.left", "identity.live.right"];
  const FRAMES_PER_PHASE = 2;
  const FRAME_INTERVAL_MS = 700;
  const DOCUMENT_SIDE = 2000;
  const FRAME_SIDE = 960;

  /** The verification's outcome for the review: document type and each check; no image. */
  function review(identity) {
    const group = element("fieldset", "review-group review-identity");
    group.appendChild(element("legend", "", t("identity.review.heading", { partner })));
    const list = element("ul", "review-list");
    if (identity.status === "declined") {
      list.appendChild(identityRow(t("identity.review.declined", { partner }), "", ""));
    } else {
      const kind = t("identity.document." + (identity.document_type || "unknown"));
      const verdict = identity.status === "verified" ? "identity.review.verified" : "identity.review.failed";
      list.appendChild(identityRow(t(verdict, { document: kind, partner }), "", ""));
      for (const check of Array.isArray(identity.checks) ? identity.checks : []) {
        const outcome = t(check.passed ? "identity.check.passed" : "identity.check.failed");
        const row = identityRow(t("identity.check." + check.check), outcome, check.passed ? "passed" : "failed");
        row.dataset.check = check.check;
        list.appendChild(row);
      }
    }
    group.appendChild(list);
    return group;
  }

  /** One line of the verification's outcome, laid out like a required value. */
  function identityRow(label, outcome, kind) {
    const row = element("li", "review-row identity-check" + (kind ? " " + kind : ""));
    const text = element("span", "review-text");
    text.appendChild(element("span", "review-label", label));
    row.append(element("span", "review-lock"), text);
    if (outcome) {
      row.appendChild(element("span", "tag " + (kind === "passed" ? "tag-required" : "tag-optional"), outcome));
    }
    return row;
  }

  function route(identity) {
    if (identity.asked && identity.status === "awaiting_consent") {
      openIdentityConsent();
      return true;
    }
    if (identity.asked && identity.status === "awaiting_capture") {
      openIdentityCapture("");
      return true;
    }
    return false;
  }

  function openIdentityConsent() {
    shared.setNotice(byId("identity-consent-error"), "");
    shared.show("identityConsent");
  }

  function openIdentityCapture(errorText) {
    shared.setNotice(byId("identity-error"), errorText);
    byId("identity-instruction").textContent = "";
    byId("identity-start").disabled = false;
    shared.show("identityCapture", errorText ? byId("identity-error") : undefined);
  }

  async function answerIdentityConsent(agree) {
    if (shared.isBusy()) {
      return;
    }
    shared.setBusy(true);
    try {
      await api("POST", flowPath + "/identity/consent", { agree });
    } catch (error) {
      shared.setBusy(false);
      if (!shared.isExpired() && !shared.fatal(error)) {
        shared.setNotice(byId("identity-consent-error"), shared.problemText(error));
      }
      return;
    }
    shared.setBusy(false);
    shared.loadReview();
  }

  /** An image (file, bitmap or video) as JPEG bytes, at most `side` pixels a side. */
  async function jpegOf(picture, width, height, side) {
    const scale = Math.min(1, side / Math.max(width, height));
    const canvas = document.createElement("canvas");
    canvas.width = Math.round(width * scale);
    canvas.height = Math.round(height * scale);
    canvas.getContext("2d").drawImage(picture, 0, 0, canvas.width, canvas.height);
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.9));
    if (!blob) {
      throw new ApiError("identity_image", 0);
    }
    return new Uint8Array(await blob.arrayBuffer());
  }

  function wait(ms) {
    return new Promise((resolve) => window.setTimeout(resolve, ms));
  }

  async function cameraStream() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw new ApiError("identity_camera", 0);
    }
    try {
      return await navigator.mediaDevices.getUserMedia({ video: { facingMode: "user" }, audio: false });
    } catch (_) {
      throw new ApiError("identity_camera", 0);
    }
  }

  async function documentImage(video) {
    const input = byId("identity-document");
    const file = input.files && input.files[0];
    if (file) {
      const bitmap = await createImageBitmap(file).catch(() => null);
      input.value = "";
      if (!bitmap) {
        throw new ApiError("identity_image", 0);
      }
      return jpegOf(bitmap, bitmap.width, bitmap.height, DOCUMENT_SIDE);
    }
    // No file chosen: the document held up to the camera.
    byId("identity-instruction").textContent = t("identity.live.document");
    await wait(2 * FRAME_INTERVAL_MS);
    return jpegOf(video, video.videoWidth, video.videoHeight, DOCUMENT_SIDE);
  }

  async function liveFrames(video) {
    const frames = [];
    for (const phase of LIVE_PHASES) {
      byId("identity-instruction").textContent = t(phase);
      shared.announce(t(phase));
      for (let i = 0; i < FRAMES_PER_PHASE; i += 1) {
        await wait(FRAME_INTERVAL_MS);
        frames.push(await jpegOf(video, video.videoWidth, video.videoHeight, FRAME_SIDE));
      }
    }
    return frames;
  }

  async function captureIdentity() {
    if (shared.isBusy()) {
      return;
    }
    shared.setBusy(true);
    byId("identity-start").disabled = true;
    shared.setNotice(byId("identity-error"), "");
    const video = byId("identity-video");
    let stream = null;
    try {
      stream = await cameraStream();
      video.srcObject = stream;
      video.hidden = false;
      await video.play();
      const jwks = await api("GET", "/.well-known/jwks.json");
      const image = await documentImage(video);
      await api("POST", flowPath + "/identity/document", { image: await shared.encryptBytes(jwks, image) });
      const sealed = [];
      for (const frame of await liveFrames(video)) {
        sealed.push(await shared.encryptBytes(jwks, frame));
      }
      await api("POST", flowPath + "/identity/frames", { frames: sealed });
      byId("identity-instruction").textContent = t("identity.live.checking");
      shared.announce(t("identity.live.checking"));
      await api("POST", flowPath + "/identity/verify");
    } catch (error) {
      shared.setBusy(false);
      if (!shared.isExpired() && !shared.fatal(error)) {
        // A refused image (unreadable, no zone, no face): the broker kept nothing; try again.
        const rejected = error instanceof ApiError && error.code === "invalid_request";
        openIdentityCapture(rejected ? t("error.identity_rejected") : shared.problemText(error));
      }
      return;
    } finally {
      if (stream) {
        for (const track of stream.getTracks()) {
          track.stop();
        }
      }
      video.srcObject = null;
      video.hidden = true;
    }
    shared.setBusy(false);
    shared.loadReview();
  }

  byId("identity-agree").addEventListener("click", () => answerIdentityConsent(true));
  byId("identity-decline").addEventListener("click", () => answerIdentityConsent(false));
  byId("identity-start").addEventListener("click", captureIdentity);

  return Object.freeze({ route, review });
}
