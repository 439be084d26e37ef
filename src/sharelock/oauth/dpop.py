"""DPoP proof verification on the server side (RFC 9449 §4.3), built on joserfc.

No maintained Python library verifies DPoP proofs for a server: Authlib, joserfc and jwcrypto
give the JOSE primitives, and the few DPoP packages on PyPI are client-side or unmaintained.
This module does the checks of RFC 9449 §4.3 with joserfc for the signature and nothing else
of the flow: the caller gives the clock, the nonce policy (`NonceIssuer`) and the `jti` replay
cache (Redis `SET NX` with an expiry), and binds the returned `jkt` to what it issues
(`dpop_jkt` at PAR, `cnf.jkt` of the token) or checks it against what was bound.

Every refusal is a `DPoPError`: `invalid_dpop_proof`, or `use_dpop_nonce` with a fresh nonce
for the `DPoP-Nonce` header. Its description is fixed text, never an echo of the proof.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import re
import warnings
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeGuard

from joserfc import jws
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import ECKey, OKPKey, RSAKey
from joserfc.jws import JWSRegistry

from sharelock.oauth.dpop_nonce import NonceCheck
from sharelock.oauth.dpop_uri import normalise_htu
from sharelock.oauth.errors import OAuthError

# FAPI 2.0 §5.4.1's algorithms. Never `none`, HS* (a shared secret proves no key possession)
# or RS256 (PKCS#1 v1.5, excluded by FAPI 2.0). Each allows one key type (and curve):
# joserfc's EdDSA would also verify with an Ed448 key, which FAPI 2.0 does not allow.
DPOP_ALGORITHMS = ("ES256", "PS256", "EdDSA", "Ed25519")  # Ed25519: RFC 9864's name
_KEY_TYPES: dict[str, tuple[str, str | None]] = {
    "ES256": ("EC", "P-256"),
    "PS256": ("RSA", None),
    "EdDSA": ("OKP", "Ed25519"),
    "Ed25519": ("OKP", "Ed25519"),
}
MIN_RSA_BITS = 2048
PROOF_TYPE = "dpop+jwt"
# A proof with a 4096-bit RSA key, `ath` and a nonce is about 2 KB; 8 KiB leaves room and
# still stops an oversized header before any decoding.
MAX_PROOF_CHARS = 8192
MAX_JTI_CHARS = 256
MAX_NONCE_CHARS = 256
NONCE_HEADER = "DPoP-Nonce"
PROOF_HEADER = "DPoP"
# RFC 7517/7518 private members: a proof carrying one leaks the client's key, and a server
# that accepted it would accept keys the client may not even hold privately.
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_THUMBPRINT_MEMBERS = {
    "EC": ("crv", "kty", "x", "y"),
    "RSA": ("e", "kty", "n"),
    "OKP": ("crv", "kty", "x"),
}
_COMPACT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_NQCHARS = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


class _ProofRegistry(JWSRegistry):
    # joserfc's default 512-byte header limit is below a PS256 proof's, whose jwk holds a
    # modulus of 2048 bits or more; the whole proof is bounded by MAX_PROOF_CHARS first.
    max_header_length = MAX_PROOF_CHARS
    max_payload_length = MAX_PROOF_CHARS


# joserfc warns on every EdDSA verification that RFC 9864 deprecates the name; FAPI 2.0 and
# the partners' libraries use it, so it is accepted on purpose (as in client_auth).
warnings.filterwarnings("ignore", message="EdDSA is deprecated", category=SecurityWarning)

Reason = Literal[
    "malformed", "too_large", "header_count", "typ", "alg", "crit", "jwk", "private_key",
    "signature", "jti", "htm", "htu", "iat", "ath", "nonce", "replay", "missing", "binding",
]  # fmt: skip

# Remembers a key until the given time (epoch seconds); False when it was already there.
RememberJti = Callable[[str, float], Awaitable[bool]]


class DPoPError(OAuthError):
    """A refused DPoP proof. `error` is `invalid_dpop_proof` or `use_dpop_nonce`; `reason`
    names the failed check (for tests and metrics, never shown to the client); `nonce` is the
    fresh nonce to send in `DPoP-Nonce`, when the server requires nonces.

    The token and PAR endpoints answer it with 400 (`status`), the share endpoint with 401 and
    a `WWW-Authenticate: DPoP` challenge (RFC 9449 §7.1, §8): `response_headers` gives both."""

    status = 400
    resource_status = 401

    def __init__(
        self,
        reason: Reason,
        description: str,
        *,
        error: Literal["invalid_dpop_proof", "use_dpop_nonce"] = "invalid_dpop_proof",
        nonce: str | None = None,
    ) -> None:
        super().__init__(description)
        self.error = error
        self.reason = reason
        self.nonce = nonce

    def response_headers(self, *, resource: bool) -> dict[str, str]:
        headers = {NONCE_HEADER: self.nonce} if self.nonce else {}
        if resource:
            headers["WWW-Authenticate"] = challenge(self.error, self.description)
        return headers


@dataclass(frozen=True)
class ProofWindow:
    """How far `iat` may be from the broker's clock. 60 s back: a proof is made just before
    the request it goes with, and the `jti` cache must hold every proof still acceptable, so
    the window is also the cache's lifetime. 10 s ahead: FAPI 2.0 §5.3.2.1 asks servers to
    accept up to 10 s of client clock skew into the future."""

    max_age_s: float = 60.0
    max_ahead_s: float = 10.0


DEFAULT_WINDOW = ProofWindow()


@dataclass(frozen=True)
class DPoPProof:
    """A verified proof: `jkt` (RFC 7638 SHA-256 thumbprint of `jwk`, base64url) is what the
    caller binds or compares; `claims` are the proof's claims as sent."""

    jkt: str
    alg: str
    jwk: Mapping[str, Any]
    jti: str
    htm: str
    htu: str
    iat: float
    claims: Mapping[str, Any]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jkt(jwk: Mapping[str, Any]) -> str:
    """The JWK SHA-256 thumbprint (RFC 7638, as RFC 9449 §6.1 uses it) of a public key:
    the required members only, sorted, without whitespace. ValueError for a private or
    unsupported key."""
    if _PRIVATE_MEMBERS & set(jwk):
        raise ValueError("a private key has no place here")
    members = _THUMBPRINT_MEMBERS.get(str(jwk.get("kty")))
    if members is None or not all(isinstance(jwk.get(m), str) and jwk[m] for m in members):
        raise ValueError("unsupported or incomplete public key")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return _b64url(hashlib.sha256(canonical.encode("utf-8")).digest())


def ath(access_token: str) -> str:
    """The `ath` claim for an access token (RFC 9449 §4.2): base64url(SHA-256(token))."""
    return _b64url(hashlib.sha256(access_token.encode("ascii")).digest())


def one_proof(values: Sequence[str]) -> str | None:
    """The request's single `DPoP` header value, None when there is none; more than one is
    refused (RFC 9449 §4.3, check 1)."""
    if not values:
        return None
    if len(values) > 1:
        raise DPoPError("header_count", "more than one DPoP header")
    return values[0]


def _quoted(text: str) -> str:
    # RFC 6750 §3's characters for error_description; anything else (quotes, backslashes,
    # control characters) is replaced, so no header can be split or forged.
    return "".join(c if c == " " or _NQCHARS.fullmatch(c) else "?" for c in text)


def challenge(
    error: str | None = None,
    description: str | None = None,
    *,
    algs: Sequence[str] = DPOP_ALGORITHMS,
    realm: str | None = "sharelock",
) -> str:
    """The `WWW-Authenticate: DPoP` challenge of RFC 9449 §7.1, e.g.
    `DPoP realm="sharelock", error="invalid_token", error_description="…", algs="ES256 …"`.
    Without `error` (a request with no credentials), no error is named (RFC 6750 §3.1)."""
    params = []
    if realm:
        params.append(f'realm="{_quoted(realm)}"')
    if error:
        params.append(f'error="{_quoted(error)}"')
        if description:
            params.append(f'error_description="{_quoted(description)}"')
    params.append(f'algs="{_quoted(" ".join(algs))}"')
    return "DPoP " + ", ".join(params)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            # Two `alg` (or `htu`) members: which one a library reads is up to it.
            raise ValueError("duplicate member")
        result[name] = value
    return result


def _json_object(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError):
        raise DPoPError("malformed", "the DPoP proof is not a valid JWT") from None
    if not isinstance(value, dict):
        raise DPoPError("malformed", "the DPoP proof is not a valid JWT")
    return value


def _segment(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise DPoPError("malformed", "the DPoP proof is not a valid JWT") from None


def _public_key(jwk: object, alg: str) -> ECKey | RSAKey | OKPKey:
    if not isinstance(jwk, dict):
        raise DPoPError("jwk", "the DPoP proof must carry its public key in jwk")
    if _PRIVATE_MEMBERS & set(jwk):
        raise DPoPError("private_key", "the DPoP proof's jwk must not contain a private key")
    kty, crv = _KEY_TYPES[alg]
    if jwk.get("kty") != kty or (crv is not None and jwk.get("crv") != crv):
        raise DPoPError("jwk", "the DPoP proof's jwk does not fit its alg")
    if "alg" in jwk and jwk["alg"] != alg:
        raise DPoPError("jwk", "the DPoP proof's jwk does not fit its alg")
    try:
        key: ECKey | RSAKey | OKPKey
        if kty == "EC":
            key = ECKey.import_key(jwk)
        elif kty == "RSA":
            # FAPI 2.0 §5.4.1: RSA keys of 2048 bits at least. Checked before the import,
            # which would warn about a short key into the log.
            modulus = int.from_bytes(_segment(str(jwk.get("n", ""))), "big")
            if modulus.bit_length() < MIN_RSA_BITS:
                raise DPoPError("jwk", "the DPoP proof's RSA key is too short")
            key = RSAKey.import_key(jwk)
        else:
            key = OKPKey.import_key(jwk)
    except (JoseError, ValueError, TypeError, KeyError):
        # Also an EC point off its curve: cryptography refuses to load it.
        raise DPoPError("jwk", "the DPoP proof's jwk is not a valid public key") from None
    return key


def _header(proof: str) -> tuple[str, dict[str, Any]]:
    """The alg and jwk of the protected header, checked before any signature work."""
    header = _json_object(_segment(proof.split(".", 1)[0]))
    if header.get("typ") != PROOF_TYPE:
        raise DPoPError("typ", "the DPoP proof's typ must be dpop+jwt")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in _KEY_TYPES:
        raise DPoPError("alg", "the DPoP proof's alg is not supported")
    # No extension is understood, so none may be critical (RFC 7515 §4.1.11); `b64` would
    # change what is signed (RFC 7797).
    if "crit" in header or "b64" in header:
        raise DPoPError("crit", "the DPoP proof uses an unsupported extension")
    if "jwk" not in header:
        raise DPoPError("jwk", "the DPoP proof must carry its public key in jwk")
    return alg, header["jwk"]


def _number(value: object) -> TypeGuard[float]:
    # `true` is no time, and Python's JSON reads NaN and Infinity, which compare as anything.
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_claims(
    claims: Mapping[str, Any],
    method: str,
    url: str,
    now: float,
    window: ProofWindow,
    access_token: str | None,
) -> None:
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI_CHARS:
        raise DPoPError("jti", "the DPoP proof needs a jti")
    if claims.get("htm") != method:
        raise DPoPError("htm", "the DPoP proof is for another HTTP method")
    htu = claims.get("htu")
    try:
        matches = isinstance(htu, str) and normalise_htu(htu) == normalise_htu(url)
    except ValueError:
        matches = False
    if not matches:
        raise DPoPError("htu", "the DPoP proof is for another URL")
    iat = claims.get("iat")
    if not _number(iat):
        raise DPoPError("iat", "the DPoP proof needs an iat")
    if not now - window.max_age_s <= iat <= now + window.max_ahead_s:
        raise DPoPError("iat", "the DPoP proof is too old or from the future")
    if access_token is not None:
        sent = claims.get("ath")
        # A token that is not ASCII is no token of ours (and has no ath: RFC 9449 §4.2
        # hashes the ASCII encoding); refused like a mismatch, not with a 500.
        if (
            not isinstance(sent, str)
            or not access_token.isascii()
            or not hmac.compare_digest(sent.encode("utf-8"), ath(access_token).encode("ascii"))
        ):
            raise DPoPError("ath", "the DPoP proof does not match the access token")


def _check_nonce(claims: Mapping[str, Any], nonce: NonceCheck, now: float) -> None:
    sent = claims.get("nonce")
    if sent is None:
        raise DPoPError(
            "nonce", "a DPoP nonce is required", error="use_dpop_nonce", nonce=nonce.issue(now)
        )
    if (
        not isinstance(sent, str)
        or len(sent) > MAX_NONCE_CHARS
        or not _NQCHARS.fullmatch(sent)
        or not nonce.is_valid(sent, now)
    ):
        raise DPoPError(
            "nonce", "the DPoP nonce is stale", error="use_dpop_nonce", nonce=nonce.issue(now)
        )


async def verify_proof(
    proof: str,
    *,
    method: str,
    url: str,
    now: float,
    nonce: NonceCheck | None,
    remember_jti: RememberJti,
    access_token: str | None = None,
    window: ProofWindow = DEFAULT_WINDOW,
) -> DPoPProof:
    """Verify a `DPoP` header value for a request (RFC 9449 §4.3) and remember its `jti`.

    `method` is the request's method; `url` the URL the client addressed, from the issuer
    (the public base URL) and the path, not the URL a proxy passed on; `now` the broker's
    clock. `access_token` (at the share endpoint) makes `ath` required and checked. `nonce`,
    when the server requires nonces, judges the `nonce` claim. `remember_jti(key, until)`
    stores `key` until `until` if absent and says whether it was; it is called last, for
    proofs that passed every other check, so only holders of a key fill the cache."""
    if len(proof) > MAX_PROOF_CHARS:
        raise DPoPError("too_large", "the DPoP proof is too large")
    if not proof.isascii() or not _COMPACT.fullmatch(proof):
        raise DPoPError("malformed", "the DPoP proof is not a compact JWS")
    alg, jwk = _header(proof)
    key = _public_key(jwk, alg)
    try:
        # A registry of this proof's alg alone; members outside joserfc's header registry
        # (a client's own) are tolerated, as RFC 9449 does not forbid them.
        registry = _ProofRegistry(algorithms=[alg], strict_check_header=False)
        verified = jws.deserialize_compact(proof, key, registry=registry)
    except (JoseError, ValueError):
        raise DPoPError("signature", "the DPoP proof's signature is invalid") from None
    claims = _json_object(verified.payload)
    _check_claims(claims, method, url, now, window, access_token)
    if nonce is not None:
        _check_nonce(claims, nonce, now)
    thumbprint = jkt(jwk)
    iat = float(claims["iat"])
    # Kept while any node could still accept the proof: until its iat leaves the window,
    # plus the skew allowed ahead for nodes whose clocks lag.
    until = iat + window.max_age_s + window.max_ahead_s
    if not await remember_jti(f"dpop:{thumbprint}:{claims['jti']}", until):
        raise DPoPError("replay", "the DPoP proof was already used")
    public = {name: value for name, value in jwk.items() if name not in _PRIVATE_MEMBERS}
    return DPoPProof(
        jkt=thumbprint,
        alg=alg,
        jwk=public,
        jti=claims["jti"],
        htm=claims["htm"],
        htu=claims["htu"],
        iat=iat,
        claims=claims,
    )
