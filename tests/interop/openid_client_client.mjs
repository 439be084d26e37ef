// A partner's back end written with panva's openid-client (v6, pinned in package-lock.json) and
// its own configuration API, as its README shows for FAPI 2.0: discovery(), PrivateKeyJwt, a
// DPoP handle (getDPoPHandle), PAR (buildAuthorizationUrlWithPAR), JAR
// (buildAuthorizationUrlWithJAR), JARM (useJwtResponseMode), authorizationCodeGrant,
// fetchProtectedResource. Driven step by step by tests/integration/test_interop_openid_client.py,
// which plays the person in between (the consent screen) and opens the deliveries.
//
//   node openid_client_client.mjs init STATE       < {"issuer", "auth", "client_alg"?,
//                                                     "discovery"?, "dpop"?, "jar"?, "jarm"?}
//        auth: private_key_jwt (a new client key, returned as {"jwks"}), client_secret_basic,
//        or "default" (the library's own default: client_secret_post with the secret)
//   node openid_client_client.mjs authorize STATE  < {"client_id", "client_secret"?,
//                                                     "redirect_uri", "scope"}
//        discovery, a new DPoP key, PKCE S256, state, JAR if asked, PAR
//        -> {"authorization_url"}
//   node openid_client_client.mjs callback STATE URL
//        authorizationCodeGrant (the JARM response checked if jarm) -> {"token_type", "scope",
//        "expires_in"}
//   node openid_client_client.mjs fetch STATE
//        GET /v1/share -> {"status", "content_type", "body"}: a JSON object, or the compact
//        JWS / JWE of a signed or encrypted delivery (the test verifies and decrypts it)
//   node openid_client_client.mjs revoke STATE     -> {"revoked": true}
//
// Every answer is one JSON object on stdout, exit code 0, with "requests": what the library
// sent (method, path, status, and `use_dpop_nonce` when the broker asked for a nonce). An error
// the library raised is {"error": {...}}, exit code 3. STATE is a JSON file holding the
// client's keys (private JWKs: test keys only) and the share in progress.

import { readFileSync, writeFileSync } from 'node:fs'
import * as client from 'openid-client'

const ALGORITHMS = {
  ES256: { name: 'ECDSA', namedCurve: 'P-256' },
  PS256: { name: 'RSA-PSS', hash: 'SHA-256' },
}
const GENERATE = {
  ES256: ALGORITHMS.ES256,
  PS256: { ...ALGORITHMS.PS256, modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]) },
}

/** Every request the library makes, as (method, path, status, nonce asked): the test checks
 * which discovery document was read and that the library's own use_dpop_nonce retry ran. */
const requests = []

async function recordingFetch(url, options) {
  const response = await fetch(url, options)
  const entry = { method: options.method, path: new URL(url).pathname, status: response.status }
  if (response.headers.has('dpop-nonce') && [400, 401].includes(response.status)) {
    const challenge = response.headers.get('www-authenticate') ?? ''
    const body = await response.clone().text()
    entry.use_dpop_nonce = challenge.includes('use_dpop_nonce') || body.includes('use_dpop_nonce')
  }
  requests.push(entry)
  return response
}

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

async function exportPair(alg, pair) {
  return {
    alg,
    private: await crypto.subtle.exportKey('jwk', pair.privateKey),
    public: await crypto.subtle.exportKey('jwk', pair.publicKey),
  }
}

async function importPair(stored) {
  const algorithm = ALGORITHMS[stored.alg]
  return {
    privateKey: await crypto.subtle.importKey('jwk', stored.private, algorithm, false, ['sign']),
    publicKey: await crypto.subtle.importKey('jwk', stored.public, algorithm, true, ['verify']),
  }
}

/** The RFC 7638 thumbprint of a public JWK, used as its `kid`. */
async function thumbprint(jwk) {
  const members = { EC: ['crv', 'kty', 'x', 'y'], RSA: ['e', 'kty', 'n'] }[jwk.kty]
  const canonical = JSON.stringify(Object.fromEntries(members.map((name) => [name, jwk[name]])))
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(canonical))
  return Buffer.from(digest).toString('base64url')
}

/** The client's signing key as openid-client takes it: a CryptoKey and the kid registered. */
async function clientSigningKey(state) {
  const { privateKey } = await importPair(state.client_key)
  return { key: privateKey, kid: state.client_key.public.kid }
}

async function clientAuthentication(state) {
  switch (state.auth) {
    case 'private_key_jwt':
      return client.PrivateKeyJwt(await clientSigningKey(state))
    case 'client_secret_basic':
      return client.ClientSecretBasic(state.client_secret)
    case 'default':
      return undefined // the library's default: ClientSecretPost with the client_secret
    default:
      throw new Error(`unknown client authentication ${state.auth}`)
  }
}

/** discovery() against the issuer, as a partner configures the library. `http://` is allowed
 * because the broker under test listens on loopback: a partner in production leaves
 * `allowInsecureRequests` out. */
async function configure(state) {
  const options = { execute: [client.allowInsecureRequests], [client.customFetch]: recordingFetch }
  if (state.discovery) options.algorithm = state.discovery // 'oidc' (the default) or 'oauth2'
  const config = await client.discovery(
    new URL(state.issuer),
    state.client_id,
    state.client_secret,
    await clientAuthentication(state),
    options,
  )
  if (state.jarm) client.useJwtResponseMode(config)
  return config
}

async function dpopOf(config, share) {
  if (!share.dpop_key) return undefined
  return client.getDPoPHandle(config, await importPair(share.dpop_key))
}

// -- commands ---------------------------------------------------------------------------------

async function init(path) {
  const defaults = { client_alg: 'ES256', dpop: false, jar: false, jarm: false }
  const state = { ...defaults, ...(await readStdin()) }
  writeState(path, state)
  if (state.auth !== 'private_key_jwt') return {}
  const pair = await crypto.subtle.generateKey(GENERATE[state.client_alg], true, ['sign', 'verify'])
  state.client_key = await exportPair(state.client_alg, pair)
  const { key_ops, ext, ...pub } = state.client_key.public
  pub.kid = await thumbprint(pub)
  state.client_key.public = { ...pub, use: 'sig', alg: state.client_alg }
  writeState(path, state)
  return { jwks: { keys: [state.client_key.public] } }
}

async function authorize(path) {
  const state = { ...readState(path), ...(await readStdin()) }
  const config = await configure(state)

  const share = {}
  if (state.dpop) {
    // One DPoP key per share, extractable only so that this script can keep it in its state
    // file between runs (a partner's server keeps the CryptoKeyPair in its session).
    const pair = await client.randomDPoPKeyPair('ES256', { extractable: true })
    share.dpop_key = await exportPair('ES256', pair)
  }
  const DPoP = await dpopOf(config, share)

  share.code_verifier = client.randomPKCECodeVerifier()
  share.state = client.randomState()
  let parameters = {
    redirect_uri: state.redirect_uri,
    scope: state.scope,
    state: share.state,
    code_challenge: await client.calculatePKCECodeChallenge(share.code_verifier),
    code_challenge_method: 'S256',
  }
  if (state.jar) {
    // JAR then PAR, as the library's documentation combines them: the parameters travel only
    // inside the request object signed with the client's key, pushed with client_id.
    const key = await clientSigningKey(state)
    const signed = await client.buildAuthorizationUrlWithJAR(config, parameters, key)
    parameters = signed.searchParams
  }
  const authorizationUrl = await client.buildAuthorizationUrlWithPAR(config, parameters, { DPoP })
  state.share = share
  writeState(path, state)
  return { authorization_url: authorizationUrl.href }
}

async function callback(path, url) {
  const state = readState(path)
  const share = state.share
  const config = await configure(state)
  const tokens = await client.authorizationCodeGrant(
    config,
    new URL(url),
    { pkceCodeVerifier: share.code_verifier, expectedState: share.state },
    undefined,
    { DPoP: await dpopOf(config, share) },
  )
  share.access_token = tokens.access_token
  writeState(path, state)
  return { token_type: tokens.token_type, scope: tokens.scope, expires_in: tokens.expires_in }
}

async function fetchShare(path) {
  const state = readState(path)
  const share = state.share
  const config = await configure(state)
  const response = await client.fetchProtectedResource(
    config,
    share.access_token,
    new URL('/v1/share', state.issuer),
    'GET',
    undefined,
    undefined,
    { DPoP: await dpopOf(config, share) },
  )
  const contentType = response.headers.get('content-type') ?? ''
  const json = contentType.startsWith('application/json')
  const body = json ? await response.json() : await response.text()
  return { status: response.status, content_type: contentType, body }
}

async function revoke(path) {
  const state = readState(path)
  const config = await configure(state)
  await client.tokenRevocation(config, state.share.access_token, {
    token_type_hint: 'access_token',
  })
  return { revoked: true }
}

// -- errors as JSON ---------------------------------------------------------------------------

function describe(err) {
  const out = { name: err?.name, code: err?.code, message: err?.message }
  if (err instanceof client.ResponseBodyError) {
    Object.assign(out, {
      status: err.status,
      error: err.error,
      error_description: err.error_description,
    })
  } else if (err instanceof client.WWWAuthenticateChallengeError) {
    Object.assign(out, { status: err.status, challenges: err.cause })
  } else if (err instanceof client.AuthorizationResponseError) {
    Object.assign(out, { error: err.error, error_description: err.error_description })
  } else if (err instanceof client.ClientError && err.cause instanceof Response) {
    out.status = err.cause.status
  }
  return out
}

const COMMANDS = { init, authorize, callback, fetch: fetchShare, revoke }
const [command, path, ...rest] = process.argv.slice(2)
if (!COMMANDS[command] || !path) {
  console.error(`usage: openid_client_client.mjs {${Object.keys(COMMANDS).join('|')}} STATE …`)
  process.exit(2)
}
try {
  const result = await COMMANDS[command](path, ...rest)
  console.log(JSON.stringify({ ...result, requests }))
} catch (err) {
  const known =
    err instanceof client.ResponseBodyError ||
    err instanceof client.WWWAuthenticateChallengeError ||
    err instanceof client.AuthorizationResponseError ||
    err instanceof client.ClientError
  if (!known) throw err
  console.log(JSON.stringify({ error: describe(err), requests }))
  process.exitCode = 3
}
