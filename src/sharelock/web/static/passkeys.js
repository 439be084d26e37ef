/*
 * Sharelock passkeys: the WebAuthn JSON helpers shared by the account pages (`account.js`) and
 * the consent screen (`consent.js`). No framework, no external resource, no inline code.
 *
 * The broker's options arrive as JSON with binary members in base64url; they are decoded for
 * `navigator.credentials.create()` / `.get()`, and the browser's answer is sent back as
 * `PublicKeyCredential` JSON (binary members in base64url), as py_webauthn reads it.
 * One global, `SharelockPasskeys`, so that the pages' own names never collide with these.
 */
"use strict";

const SharelockPasskeys = (() => {
  /** Unpadded base64url of an ArrayBuffer or a view. */
  function base64url(buffer) {
    const bytes =
      buffer instanceof ArrayBuffer
        ? new Uint8Array(buffer)
        : new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
    let binary = "";
    for (let i = 0; i < bytes.length; i += 1) {
      binary += String.fromCharCode(bytes[i]);
    }
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  /** The bytes of unpadded base64url text. */
  function bytes(text) {
    const base64 = String(text).replace(/-/g, "+").replace(/_/g, "/");
    const binary = atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4));
    const out = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i += 1) {
      out[i] = binary.charCodeAt(i);
    }
    return out;
  }

  function descriptors(list) {
    return (Array.isArray(list) ? list : []).map((item) => ({ ...item, id: bytes(item.id) }));
  }

  /** `PublicKeyCredentialCreationOptions` from the broker's JSON. */
  function creationOptions(json) {
    return {
      ...json,
      challenge: bytes(json.challenge),
      user: { ...json.user, id: bytes(json.user.id) },
      excludeCredentials: descriptors(json.excludeCredentials),
    };
  }

  /** `PublicKeyCredentialRequestOptions` from the broker's JSON. */
  function requestOptions(json) {
    return { ...json, challenge: bytes(json.challenge), allowCredentials: descriptors(json.allowCredentials) };
  }

  function credentialJSON(credential) {
    const response = credential.response;
    const json = {
      id: credential.id,
      rawId: base64url(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || undefined,
      clientExtensionResults: credential.getClientExtensionResults ? credential.getClientExtensionResults() : {},
      response: { clientDataJSON: base64url(response.clientDataJSON) },
    };
    if (response.attestationObject) {
      json.response.attestationObject = base64url(response.attestationObject);
      json.response.transports = response.getTransports ? response.getTransports() : [];
    } else {
      json.response.authenticatorData = base64url(response.authenticatorData);
      json.response.signature = base64url(response.signature);
      json.response.userHandle = response.userHandle ? base64url(response.userHandle) : null;
    }
    return json;
  }

  function supported() {
    return Boolean(window.PublicKeyCredential && navigator.credentials);
  }

  /**
   * A registration: `post(optionsPath, body)` gives `{ceremony, publicKey}`; `waiting()` (if
   * any) is called as the authenticator is asked; resolves to `{ceremony, credential}`, the
   * body the page then posts to finish (`/api/account/new`, `/api/account/passkeys`).
   */
  async function create(post, optionsPath, body, waiting) {
    const started = await post(optionsPath, body);
    if (waiting) {
      waiting();
    }
    const credential = await navigator.credentials.create({ publicKey: creationOptions(started.publicKey) });
    return { ceremony: started.ceremony, credential: credentialJSON(credential) };
  }

  /** A sign-in: the same with `navigator.credentials.get()` (discoverable: nothing typed). */
  async function get(post, optionsPath, waiting) {
    const started = await post(optionsPath, {});
    if (waiting) {
      waiting();
    }
    const credential = await navigator.credentials.get({ publicKey: requestOptions(started.publicKey) });
    return { ceremony: started.ceremony, credential: credentialJSON(credential) };
  }

  /** What went wrong in a ceremony, as an `account.error.*` code when the browser said it
   * (cancelled or timed out; an authenticator already registered), else null. */
  function refusal(error) {
    if (error && error.name === "NotAllowedError") {
      return "cancelled";
    }
    if (error && error.name === "InvalidStateError") {
      return "passkey_refused";
    }
    return null;
  }

  return Object.freeze({ base64url, bytes, creationOptions, requestOptions, credentialJSON, supported, create, get, refusal });
})();
