/*
 * Encrypt a small JSON payload (the user's credentials, or a one-time code) for the broker,
 * in the browser, with the Web Crypto API: a compact JWE (RFC 7516 §7.1) with
 *   alg  RSA-OAEP (SHA-1) or RSA-OAEP-256 (SHA-256), as the broker's JWKS says;
 *   enc  A256GCM: a fresh 256-bit content key, a 96-bit random IV, a 128-bit tag, and the
 *        ASCII of the base64url protected header as additional data (RFC 7518 §5.3).
 *
 * The content key is generated and wrapped inside Web Crypto (`wrapKey`), so its bytes never
 * appear as a JavaScript value; the encoded plaintext is zeroed after use. The clear payload
 * never leaves the page.
 *
 * Loaded as a classic script (no eval, no inline code), so it works under a strict
 * Content-Security-Policy: `script-src 'self'; connect-src 'self'`.
 *
 *   const jwks = await (await fetch("/.well-known/jwks.json")).json();
 *   const jwe = await encryptCredentials(jwks, { login, password });
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

  const plaintext = encoder.encode(JSON.stringify(payload));
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
