// A partner's back end written with panva's oauth4webapi (pinned in package-lock.json), driven
// step by step by tests/integration/test_interop_oauth4webapi.py, which plays the person in
// between (the consent screen) with the Python test helpers.
//
//   node oauth4webapi_client.mjs init STATE      < {"issuer", "auth", "client_alg"?, "dpop"?,
//                                                   "dpop_alg"?, "enc_alg"?, "eddsa"?}
//        generates the client's private_key_jwt key (if auth is private_key_jwt) and a key to
//        receive encrypted deliveries (if enc_alg: ECDH-ES or RSA-OAEP-256) -> {"jwks"}
//   node oauth4webapi_client.mjs par STATE       < {"client_id", "client_secret"?, "redirect_uri",
//                                                   "scope", "response_mode"?, "jar"?}
//        discovery, a new DPoP key, PKCE S256, PAR (with a signed request object if jar)
//        -> {"authorization_url", "state", "code_verifier", "request_uri", "expires_in"}
//   node oauth4webapi_client.mjs callback STATE URL
//        validates the authorization response (plain or JARM), exchanges the code
//        -> {"token_type", "expires_in", "scope", "iss", "access_token_sha256"}
//   node oauth4webapi_client.mjs fetch STATE [--other-dpop-key | --no-dpop]
//        GET /v1/share with the access token (and a DPoP proof) -> {"status", "content_type",
//        "body"}: a JSON object, or the compact JWS / JWE of a signed or encrypted delivery
//   node oauth4webapi_client.mjs revoke STATE   -> {"revoked": true, "status"}
//
// STATE is a JSON file holding the client's keys (private JWKs: test keys only) and the share in
// progress. Every answer is one JSON object on stdout, exit code 0; an error the library raised
// (an OAuth error, a WWW-Authenticate challenge, a failed check) is {"error": {...}}, exit code 3.
// Each run discovers the metadata again and, with server nonces, starts without one: the
// library's `use_dpop_nonce` retry is exercised on every DPoP request (counted in `nonce_retries`).

import { webcrypto } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'

// oauth4webapi uses the Web Crypto globals, which Node.js has from version 19 (20 is the
// library's baseline); Debian 12's `nodejs` (18) has them only in node:crypto.
globalThis.crypto ??= webcrypto
globalThis.CryptoKey ??= webcrypto.CryptoKey
const oauth = await import('oauth4webapi')

const ALGORITHMS = {
  ES256: { name: 'ECDSA', namedCurve: 'P-256' },
  PS256: { name: 'RSA-PSS', hash: 'SHA-256' },
  EdDSA: { name: 'Ed25519' },
}

// The broker under test listens on http://127.0.0.1 (loopback): the library refuses plain HTTP
// unless told otherwise. A partner in production talks to an https issuer and leaves this out.
const HTTP = { [oauth.allowInsecureRequests]: true }

let nonceRetries = 0

function readState(path) {
  return JSON.parse(readFileSync(path, 'utf8'))
}

function writeState(path, state) {
  writeFileSync(path, JSON.stringify(state, null, 2))
}

async function readStdin() {
  const chunks = []
  for await (const chunk of process.stdin) chunks.push(chunk)
  const text = Buffer.concat(chunks).toString('utf8').trim()
  return text ? JSON.parse(text) : {}
}

async function newKeyPair(alg) {
  const pair = await oauth.generateKeyPair(alg, { extractable: true })
  const priv = await crypto.subtle.exportKey('jwk', pair.privateKey)
  const pub = await crypto.subtle.exportKey('jwk', pair.publicKey)
  return { alg, private: priv, public: pub }
}

async function importKeyPair(stored) {
  const algorithm = ALGORITHMS[stored.alg]
  return {
    privateKey: await crypto.subtle.importKey('jwk', stored.private, algorithm, false, ['sign']),
    publicKey: await crypto.subtle.importKey('jwk', stored.public, algorithm, true, ['verify']),
  }
}

/** Retry once with the nonce the server just sent (the handle cached it), as the library's
 * FAPI 2.0 example does. */
async function withNonceRetry(attempt) {
  try {
    return await attempt()
  } catch (err) {
    if (!oauth.isDPoPNonceError(err)) throw err
    nonceRetries += 1
    return attempt()
  }
}

async function discover(state) {
  const issuer = new URL(state.issuer)
  const response = await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...HTTP })
  return oauth.processDiscoveryResponse(issuer, response)
}

async function clientSigningKey(state) {
  const { privateKey } = await importKeyPair(state.client_key)
  return { key: privateKey, kid: state.client_key.public.kid }
}

/** oauth4webapi 3 signs with an Ed25519 key as `alg: "Ed25519"` (RFC 9864); FAPI 2.0 and the
 * broker name it `EdDSA`. With `"eddsa": true` every JWT the client signs says `EdDSA` (the
 * same signature). */
function signingOptions(state) {
  if (!state.eddsa) return undefined
  return {
    [oauth.modifyAssertion]: (header) => {
      if (header.alg === 'Ed25519') header.alg = 'EdDSA'
    },
  }
}

async function clientOf(state) {
  const client = { client_id: state.client_id }
  let clientAuth
  if (state.auth === 'private_key_jwt') {
    clientAuth = oauth.PrivateKeyJwt(await clientSigningKey(state), signingOptions(state))
  } else if (state.auth === 'client_secret_basic') {
    clientAuth = oauth.ClientSecretBasic(state.client_secret)
  } else {
    throw new Error(`unknown client authentication ${state.auth}`)
  }
  return { client, clientAuth }
}

async function dpopOf(client, share, state) {
  if (!share.dpop_key) return undefined
  return oauth.DPoP(client, await importKeyPair(share.dpop_key), signingOptions(state))
}

/** The RFC 7638 thumbprint of a public JWK, used as its `kid`. */
async function thumbprint(jwk) {
  const members = { EC: ['crv', 'kty', 'x', 'y'], RSA: ['e', 'kty', 'n'], OKP: ['crv', 'kty', 'x'] }[jwk.kty]
  const canonical = JSON.stringify(Object.fromEntries(members.map((name) => [name, jwk[name]])))
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(canonical))
  return Buffer.from(digest).toString('base64url')
}

// -- commands ---------------------------------------------------------------------------------

async function init(path) {
  const config = await readStdin()
  const state = { dpop: true, client_alg: 'ES256', ...config }
  const keys = []
  if (state.auth === 'private_key_jwt') {
    state.client_key = await newKeyPair(state.client_alg)
    // The JWK's `alg` is the name the client's JWTs carry (see signingOptions).
    const named = state.client_alg === 'EdDSA' && !state.eddsa ? 'Ed25519' : state.client_alg
    state.client_key.public = await publish(state.client_key, 'sig', named)
    keys.push(state.client_key.public)
  }
  if (state.enc_alg) {
    // A key the broker encrypts the delivery to (`jwe` delivery); the partner decrypts with
    // the private half (here, the test does, from this state file).
    state.enc_key = await newEncryptionKeyPair(state.enc_alg)
    state.enc_key.public = await publish(state.enc_key, 'enc', state.enc_alg)
    keys.push(state.enc_key.public)
  }
  writeState(path, state)
  return keys.length ? { jwks: { keys } } : {}
}

/** The public JWK as registered with the broker: no WebCrypto members, a kid, use and alg. */
async function publish(pair, use, alg) {
  const { key_ops, ext, ...pub } = pair.public
  pub.kid = await thumbprint(pub)
  pair.private.kid = pub.kid
  return { ...pub, use, alg }
}

async function newEncryptionKeyPair(alg) {
  const algorithm =
    alg === 'ECDH-ES'
      ? { name: 'ECDH', namedCurve: 'P-256' }
      : {
          name: 'RSA-OAEP',
          hash: 'SHA-256',
          modulusLength: 2048,
          publicExponent: new Uint8Array([1, 0, 1]),
        }
  const usages = alg === 'ECDH-ES' ? ['deriveBits'] : ['encrypt', 'decrypt']
  const pair = await crypto.subtle.generateKey(algorithm, true, usages)
  return {
    alg,
    private: await crypto.subtle.exportKey('jwk', pair.privateKey),
    public: await crypto.subtle.exportKey('jwk', pair.publicKey),
  }
}

async function par(path) {
  const state = { ...readState(path), ...(await readStdin()) }
  const as = await discover(state)
  const { client, clientAuth } = await clientOf(state)

  const share = {}
  if (state.dpop) share.dpop_key = await newKeyPair(state.dpop_alg ?? state.client_alg ?? 'ES256')
  const DPoP = await dpopOf(client, share, state)

  share.code_verifier = oauth.generateRandomCodeVerifier()
  share.state = oauth.generateRandomState()
  const params = new URLSearchParams({
    response_type: 'code',
    redirect_uri: state.redirect_uri,
    scope: state.scope,
    state: share.state,
    code_challenge: await oauth.calculatePKCECodeChallenge(share.code_verifier),
    code_challenge_method: 'S256',
  })
  if (state.response_mode) params.set('response_mode', state.response_mode)
  let pushedParams = params
  if (state.jar) {
    // JAR (RFC 9101): the parameters travel only inside a request object signed with the
    // client's key (FAPI 2.0 Message Signing), pushed as `request`.
    const key = await clientSigningKey(state)
    pushedParams = new URLSearchParams({
      request: await oauth.issueRequestObject(as, client, params, key, signingOptions(state)),
    })
  }

  const pushed = await withNonceRetry(async () => {
    const response = await oauth.pushedAuthorizationRequest(as, client, clientAuth, pushedParams, {
      DPoP,
      ...HTTP,
    })
    return oauth.processPushedAuthorizationResponse(as, client, response)
  })

  const authorizationUrl = new URL(as.authorization_endpoint)
  authorizationUrl.searchParams.set('client_id', client.client_id)
  authorizationUrl.searchParams.set('request_uri', pushed.request_uri)
  state.share = share
  writeState(path, state)
  return {
    authorization_url: authorizationUrl.href,
    state: share.state,
    code_verifier: share.code_verifier,
    request_uri: pushed.request_uri,
    expires_in: pushed.expires_in,
  }
}

async function callback(path, url) {
  const state = readState(path)
  const share = state.share
  const as = await discover(state)
  const { client, clientAuth } = await clientOf(state)
  const DPoP = await dpopOf(client, share, state)

  const currentUrl = new URL(url)
  const params = state.response_mode
    ? await oauth.validateJwtAuthResponse(as, client, currentUrl, share.state, HTTP)
    : oauth.validateAuthResponse(as, client, currentUrl, share.state)

  const tokens = await withNonceRetry(async () => {
    const response = await oauth.authorizationCodeGrantRequest(
      as,
      client,
      clientAuth,
      params,
      state.redirect_uri,
      share.code_verifier,
      { DPoP, ...HTTP },
    )
    return oauth.processAuthorizationCodeResponse(as, client, response)
  })
  share.access_token = tokens.access_token
  share.token_type = tokens.token_type
  writeState(path, state)
  return {
    token_type: tokens.token_type,
    expires_in: tokens.expires_in,
    scope: tokens.scope,
    iss: params.get('iss'),
    access_token_sha256: Buffer.from(
      await crypto.subtle.digest('SHA-256', new TextEncoder().encode(tokens.access_token)),
    ).toString('hex'),
  }
}

async function fetchShare(path, flag) {
  const state = readState(path)
  const share = state.share
  const { client } = await clientOf(state)
  let DPoP
  if (flag === '--other-dpop-key') {
    DPoP = oauth.DPoP(client, await oauth.generateKeyPair('ES256', { extractable: true }))
  } else if (flag !== '--no-dpop') {
    DPoP = await dpopOf(client, share, state)
  }
  const url = new URL('/v1/share', state.issuer)
  const response = await withNonceRetry(() =>
    oauth.protectedResourceRequest(share.access_token, 'GET', url, undefined, undefined, {
      DPoP,
      ...HTTP,
    }),
  )
  // `json` delivery: a JSON object; `jws` and `jwe`: a compact JWT (`application/jwt`), which
  // the caller verifies (and decrypts) against the broker's JWKS.
  const contentType = response.headers.get('content-type') ?? ''
  const json = contentType.startsWith('application/json')
  const body = json ? await response.json() : await response.text()
  return { status: response.status, content_type: contentType, body }
}

async function revoke(path) {
  const state = readState(path)
  const as = await discover(state)
  const { client, clientAuth } = await clientOf(state)
  const response = await oauth.revocationRequest(as, client, clientAuth, state.share.access_token, {
    additionalParameters: { token_type_hint: 'access_token' },
    ...HTTP,
  })
  await oauth.processRevocationResponse(response)
  return { revoked: true, status: response.status }
}

// -- errors as JSON ---------------------------------------------------------------------------

function describe(err) {
  const out = { name: err?.name, code: err?.code, message: err?.message }
  if (err instanceof oauth.ResponseBodyError) {
    Object.assign(out, {
      status: err.status,
      error: err.error,
      error_description: err.error_description,
    })
  } else if (err instanceof oauth.WWWAuthenticateChallengeError) {
    out.status = err.status
    out.challenges = err.cause
  } else if (err instanceof oauth.AuthorizationResponseError) {
    Object.assign(out, { error: err.error, error_description: err.error_description })
  }
  return out
}

const COMMANDS = { init, par, callback, fetch: fetchShare, revoke }
const [command, path, ...rest] = process.argv.slice(2)
if (!COMMANDS[command] || !path) {
  console.error(`usage: oauth4webapi_client.mjs {${Object.keys(COMMANDS).join('|')}} STATE …`)
  process.exit(2)
}
try {
  const result = await COMMANDS[command](path, ...rest)
  console.log(JSON.stringify({ ...result, nonce_retries: nonceRetries }))
} catch (err) {
  const known =
    err instanceof oauth.ResponseBodyError ||
    err instanceof oauth.WWWAuthenticateChallengeError ||
    err instanceof oauth.AuthorizationResponseError ||
    err instanceof oauth.OperationProcessingError
  if (!known) throw err
  console.log(JSON.stringify({ error: describe(err), nonce_retries: nonceRetries }))
  process.exitCode = 3
}
