"""DPoP proof verification (`sharelock.oauth.dpop`, RFC 9449 §4.3), vector style.

Proofs are signed here with `cryptography` directly (not with joserfc, which the module
verifies with), by real keys generated once, over fixed claims. Each case changes one thing
of a proof that passes and names the check that must refuse it, so a case cannot pass by
failing for another reason. The RFC 9449 example proof is checked as published.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc.jwk import ECKey, OKPKey, RSAKey

from sharelock.oauth import DPoPError, NonceIssuer, ProofWindow, dpop_ath, verify_dpop_proof

NOW = 1_767_225_600  # 2026-01-01T00:00:00Z
URL = "https://broker.example/token"
TOKEN = "an-access-token-0123456789"
NONCE_KEY = bytes(range(32))
DATA = Path(__file__).parent / "data" / "dpop_rfc_examples.json"
DROP = object()  # a header member or claim to leave out


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64u_int(value: int, size: int | None = None) -> str:
    return b64u(value.to_bytes(size or (value.bit_length() + 7) // 8, "big"))


@dataclass
class Signer:
    alg: str
    private: Any
    jwk: dict[str, Any]

    def sign(self, data: bytes, alg: str | None = None) -> bytes:
        alg = alg or self.alg
        if alg == "ES256":
            r, s = decode_dss_signature(self.private.sign(data, ec.ECDSA(hashes.SHA256())))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        if alg == "PS256":
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
            return bytes(self.private.sign(data, pss, hashes.SHA256()))
        if alg == "RS256":
            return bytes(self.private.sign(data, padding.PKCS1v15(), hashes.SHA256()))
        return bytes(self.private.sign(data))  # EdDSA


def ec_signer() -> Signer:
    key = ec.generate_private_key(ec.SECP256R1())
    numbers = key.public_key().public_numbers()
    jwk = {"kty": "EC", "crv": "P-256", "x": b64u_int(numbers.x, 32), "y": b64u_int(numbers.y, 32)}
    return Signer("ES256", key, jwk)


def rsa_signer(bits: int = 2048, alg: str = "PS256") -> Signer:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    numbers = key.public_key().public_numbers()
    return Signer(alg, key, {"kty": "RSA", "n": b64u_int(numbers.n), "e": b64u_int(numbers.e)})


def ed25519_signer() -> Signer:
    key = ed25519.Ed25519PrivateKey.generate()
    x = key.public_key().public_bytes_raw()
    return Signer("EdDSA", key, {"kty": "OKP", "crv": "Ed25519", "x": b64u(x)})


@dataclass
class Keys:
    es256: Signer = field(default_factory=ec_signer)
    ps256: Signer = field(default_factory=rsa_signer)
    eddsa: Signer = field(default_factory=ed25519_signer)
    other_ec: Signer = field(default_factory=ec_signer)
    rs256: Signer = field(default_factory=lambda: rsa_signer(alg="RS256"))
    rsa1024: Signer = field(default_factory=lambda: rsa_signer(1024))
    rsa4096: Signer = field(default_factory=lambda: rsa_signer(4096))


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


def claims(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"jti": "e1j3V_bKic8-LAEB", "htm": "POST", "htu": URL, "iat": NOW}
    base.update(changes)
    return {name: value for name, value in base.items() if value is not DROP}


def proof(
    signer: Signer,
    *,
    header: dict[str, Any] | None = None,
    payload: dict[str, Any] | None = None,
    raw_header: str | None = None,
    raw_payload: str | None = None,
    sign: Callable[[bytes], bytes] | None = None,
) -> str:
    """A compact JWS: header and claims as given (JSON-encoded unless raw), signed by
    `sign` or by the signer."""
    fields: dict[str, Any] = {"typ": "dpop+jwt", "alg": signer.alg, "jwk": signer.jwk}
    fields.update(header or {})
    fields = {name: value for name, value in fields.items() if value is not DROP}
    head = b64u((raw_header or json.dumps(fields)).encode())
    body = b64u((raw_payload or json.dumps(claims() if payload is None else payload)).encode())
    signing_input = f"{head}.{body}".encode()
    signature = (sign or signer.sign)(signing_input)
    return f"{head}.{body}.{b64u(signature)}"


class JtiCache:
    """The replay cache as the broker keeps it in Redis (SET NX with an expiry)."""

    def __init__(self) -> None:
        self.entries: dict[str, float] = {}

    async def __call__(self, key: str, until: float) -> bool:
        if key in self.entries:
            return False
        self.entries[key] = until
        return True


async def verify(token: str, **options: Any) -> Any:
    arguments: dict[str, Any] = {
        "method": "POST",
        "url": URL,
        "now": NOW,
        "nonce": None,
        "remember_jti": JtiCache(),
    }
    arguments.update(options)
    return await verify_dpop_proof(token, **arguments)


def hs256_with_public_key(keys: Keys) -> str:
    # The classic confusion: an HMAC keyed with the public key the proof itself carries.
    secret = json.dumps(keys.es256.jwk).encode()
    return proof(
        keys.es256,
        header={"alg": "HS256"},
        sign=lambda data: hmac.new(secret, data, hashlib.sha256).digest(),
    )


def ed448_proof() -> str:
    key = ed448.Ed448PrivateKey.generate()
    jwk = {"kty": "OKP", "crv": "Ed448", "x": b64u(key.public_key().public_bytes_raw())}
    return proof(Signer("EdDSA", key, jwk))


def off_curve(keys: Keys) -> str:
    jwk = dict(keys.es256.jwk, y=b64u_int(1, 32))
    return proof(keys.es256, header={"jwk": jwk})


def swap_payload(token: str, payload: dict[str, Any]) -> str:
    head, _, signature = token.split(".")
    return f"{head}.{b64u(json.dumps(payload).encode())}.{signature}"


Build = Callable[[Keys], str]

# (id, proof, extra verify options, the reason it must be refused: None when it must pass)
CASES: list[tuple[str, Build, dict[str, Any], str | None]] = [
    # valid proofs, one per algorithm, and the RFC's tolerances
    ("es256", lambda k: proof(k.es256), {}, None),
    ("ps256", lambda k: proof(k.ps256), {}, None),
    ("eddsa-ed25519", lambda k: proof(k.eddsa), {}, None),
    (
        "ps256-rsa4096-with-ath-and-nonce",
        lambda k: proof(
            k.rsa4096, payload=claims(ath=dpop_ath(TOKEN), nonce=NonceIssuer(NONCE_KEY).issue(NOW))
        ),
        {"access_token": TOKEN, "nonce": NonceIssuer(NONCE_KEY)},
        None,
    ),
    ("extra-header-kid-ignored", lambda k: proof(k.es256, header={"kid": "k1"}), {}, None),
    ("htu-query-ignored", lambda k: proof(k.es256, payload=claims(htu=URL + "?a=1")), {}, None),
    ("htu-fragment-ignored", lambda k: proof(k.es256, payload=claims(htu=URL + "#f")), {}, None),
    ("request-query-ignored", lambda k: proof(k.es256), {"url": URL + "?x=y"}, None),
    (
        "htu-normalised",
        lambda k: proof(k.es256, payload=claims(htu="HTTPS://Broker.EXAMPLE:443/%74oken")),
        {},
        None,
    ),
    ("iat-60s-old", lambda k: proof(k.es256, payload=claims(iat=NOW - 60)), {}, None),
    ("iat-10s-ahead", lambda k: proof(k.es256, payload=claims(iat=NOW + 10)), {}, None),
    ("ath-ignored-without-token", lambda k: proof(k.es256, payload=claims(ath="x")), {}, None),
    (
        "ath-matches",
        lambda k: proof(k.es256, payload=claims(ath=dpop_ath(TOKEN))),
        {"access_token": TOKEN},
        None,
    ),
    # typ
    ("typ-jwt", lambda k: proof(k.es256, header={"typ": "JWT"}), {}, "typ"),
    ("typ-missing", lambda k: proof(k.es256, header={"typ": DROP}), {}, "typ"),
    ("typ-other-case", lambda k: proof(k.es256, header={"typ": "DPoP+JWT"}), {}, "typ"),
    # alg
    ("alg-none", lambda k: proof(k.es256, header={"alg": "none"}), {}, "alg"),
    (
        "alg-none-empty-signature",
        lambda k: proof(k.es256, header={"alg": "none"}, sign=lambda _: b""),
        {},
        "malformed",
    ),
    ("alg-hs256", hs256_with_public_key, {}, "alg"),
    ("alg-rs256", lambda k: proof(k.rs256), {}, "alg"),
    ("alg-missing", lambda k: proof(k.es256, header={"alg": DROP}), {}, "alg"),
    ("alg-not-a-string", lambda k: proof(k.es256, header={"alg": ["ES256"]}), {}, "alg"),
    ("crit", lambda k: proof(k.es256, header={"crit": ["exp"], "exp": 1}), {}, "crit"),
    # jwk
    ("jwk-missing", lambda k: proof(k.es256, header={"jwk": DROP}), {}, "jwk"),
    ("jwk-not-an-object", lambda k: proof(k.es256, header={"jwk": "key"}), {}, "jwk"),
    (
        "jwk-private-ec",
        lambda k: proof(k.es256, header={"jwk": dict(k.es256.jwk, d=b64u_int(7, 32))}),
        {},
        "private_key",
    ),
    (
        "jwk-private-rsa-p",
        lambda k: proof(k.ps256, header={"jwk": dict(k.ps256.jwk, p="AQAB")}),
        {},
        "private_key",
    ),
    (
        "jwk-symmetric",
        lambda k: proof(k.es256, header={"jwk": {"kty": "oct", "k": "c2VjcmV0"}}),
        {},
        "private_key",
    ),
    ("jwk-rsa-for-es256", lambda k: proof(k.es256, header={"jwk": k.ps256.jwk}), {}, "jwk"),
    ("jwk-ed448", lambda k: ed448_proof(), {}, "jwk"),
    ("jwk-rsa-1024", lambda k: proof(k.rsa1024), {}, "jwk"),
    ("jwk-off-curve", off_curve, {}, "jwk"),
    (
        "jwk-alg-mismatch",
        lambda k: proof(k.es256, header={"jwk": dict(k.es256.jwk, alg="ES384")}),
        {},
        "jwk",
    ),
    # signature
    (
        "signed-by-another-key",
        lambda k: proof(k.es256, sign=k.other_ec.sign),
        {},
        "signature",
    ),
    (
        "payload-swapped",
        lambda k: swap_payload(proof(k.es256), claims(htm="GET")),
        {},
        "signature",
    ),
    # structure
    ("two-parts", lambda k: proof(k.es256).rsplit(".", 1)[0], {}, "malformed"),
    ("four-parts", lambda k: proof(k.es256) + ".AAAA", {}, "malformed"),
    ("padded-base64", lambda k: proof(k.es256) + "=", {}, "malformed"),
    ("whitespace", lambda k: " " + proof(k.es256), {}, "malformed"),
    ("json-serialization", lambda k: json.dumps({"payload": "e30"}), {}, "malformed"),
    ("header-not-json", lambda k: proof(k.es256, raw_header="not json"), {}, "malformed"),
    ("header-not-an-object", lambda k: proof(k.es256, raw_header="[1]"), {}, "malformed"),
    (
        "header-duplicate-alg",
        lambda k: proof(
            k.es256,
            raw_header='{"typ":"dpop+jwt","alg":"ES256","alg":"none","jwk":'
            + json.dumps(k.es256.jwk)
            + "}",
        ),
        {},
        "malformed",
    ),
    ("payload-not-json", lambda k: proof(k.es256, raw_payload="{"), {}, "malformed"),
    ("oversized", lambda k: proof(k.es256, payload=claims(pad="x" * 8192)), {}, "too_large"),
    # jti
    ("jti-missing", lambda k: proof(k.es256, payload=claims(jti=DROP)), {}, "jti"),
    ("jti-empty", lambda k: proof(k.es256, payload=claims(jti="")), {}, "jti"),
    ("jti-257-chars", lambda k: proof(k.es256, payload=claims(jti="j" * 257)), {}, "jti"),
    ("jti-number", lambda k: proof(k.es256, payload=claims(jti=12345)), {}, "jti"),
    # htm
    ("htm-other-method", lambda k: proof(k.es256, payload=claims(htm="GET")), {}, "htm"),
    ("htm-lowercase", lambda k: proof(k.es256, payload=claims(htm="post")), {}, "htm"),
    ("htm-missing", lambda k: proof(k.es256, payload=claims(htm=DROP)), {}, "htm"),
    ("request-method-differs", lambda k: proof(k.es256), {"method": "GET"}, "htm"),
    # htu
    ("htu-other-path", lambda k: proof(k.es256, payload=claims(htu=URL + "2")), {}, "htu"),
    ("htu-trailing-slash", lambda k: proof(k.es256, payload=claims(htu=URL + "/")), {}, "htu"),
    (
        "htu-other-host",
        lambda k: proof(k.es256, payload=claims(htu="https://evil.example/token")),
        {},
        "htu",
    ),
    (
        "htu-http",
        lambda k: proof(k.es256, payload=claims(htu="http://broker.example/token")),
        {},
        "htu",
    ),
    (
        "htu-other-port",
        lambda k: proof(k.es256, payload=claims(htu="https://broker.example:8443/token")),
        {},
        "htu",
    ),
    ("htu-relative", lambda k: proof(k.es256, payload=claims(htu="/token")), {}, "htu"),
    ("htu-missing", lambda k: proof(k.es256, payload=claims(htu=DROP)), {}, "htu"),
    (
        "htu-userinfo",
        lambda k: proof(k.es256, payload=claims(htu="https://broker.example@evil.example/token")),
        {},
        "htu",
    ),
    ("request-url-differs", lambda k: proof(k.es256), {"url": URL + "/x"}, "htu"),
    # iat
    ("iat-61s-old", lambda k: proof(k.es256, payload=claims(iat=NOW - 61)), {}, "iat"),
    ("iat-11s-ahead", lambda k: proof(k.es256, payload=claims(iat=NOW + 11)), {}, "iat"),
    ("iat-missing", lambda k: proof(k.es256, payload=claims(iat=DROP)), {}, "iat"),
    ("iat-string", lambda k: proof(k.es256, payload=claims(iat=str(NOW))), {}, "iat"),
    ("iat-true", lambda k: proof(k.es256, payload=claims(iat=True)), {}, "iat"),
    ("iat-nan", lambda k: proof(k.es256, payload=claims(iat=float("nan"))), {}, "iat"),
    (
        "iat-window-narrowed",
        lambda k: proof(k.es256, payload=claims(iat=NOW - 31)),
        {"window": ProofWindow(max_age_s=30)},
        "iat",
    ),
    # ath
    ("ath-missing", lambda k: proof(k.es256), {"access_token": TOKEN}, "ath"),
    (
        "ath-of-another-token",
        lambda k: proof(k.es256, payload=claims(ath=dpop_ath(TOKEN + "x"))),
        {"access_token": TOKEN},
        "ath",
    ),
    (
        "access-token-not-ascii",
        lambda k: proof(k.es256, payload=claims(ath=dpop_ath(TOKEN))),
        {"access_token": "tök\u00e9n"},
        "ath",
    ),
    (
        "ath-not-base64url-digest",
        lambda k: proof(k.es256, payload=claims(ath=TOKEN)),
        {"access_token": TOKEN},
        "ath",
    ),
]


@pytest.mark.parametrize(
    ("build", "options", "reason"),
    [pytest.param(build, options, reason, id=name) for name, build, options, reason in CASES],
)
async def test_proof_vectors(
    keys: Keys, build: Build, options: dict[str, Any], reason: str | None
) -> None:
    token = build(keys)
    cache = JtiCache()
    if reason is None:
        result = await verify(token, remember_jti=cache, **options)
        assert result.jkt in {
            jkt_of(s.jwk) for s in (keys.es256, keys.ps256, keys.eddsa, keys.rsa4096)
        }
        assert list(cache.entries) == [f"dpop:{result.jkt}:{result.jti}"]
        return
    with pytest.raises(DPoPError) as refused:
        await verify(token, remember_jti=cache, **options)
    assert refused.value.reason == reason
    assert refused.value.error == "invalid_dpop_proof"
    assert refused.value.status == 400
    assert refused.value.nonce is None
    # Fixed text: neither the proof nor any part of it comes back.
    for part in filter(None, token.split(".")):
        assert part[:12] not in refused.value.description
    # Only a proof that passed every other check reaches the replay cache.
    assert cache.entries == {}


def jkt_of(jwk: dict[str, Any]) -> str:
    """The thumbprint by joserfc, independent of the module's own computation."""
    importer = {"EC": ECKey, "RSA": RSAKey, "OKP": OKPKey}[jwk["kty"]]
    return str(importer.import_key(jwk).thumbprint())  # type: ignore[attr-defined]


async def test_result_carries_the_thumbprint_and_claims(keys: Keys) -> None:
    for signer in (keys.es256, keys.ps256, keys.eddsa):
        result = await verify(proof(signer))
        assert result.jkt == jkt_of(signer.jwk)
        assert result.alg == signer.alg
        assert result.jwk == signer.jwk
        assert (result.jti, result.htm, result.htu, result.iat) == (
            "e1j3V_bKic8-LAEB",
            "POST",
            URL,
            NOW,
        )
        assert result.claims == claims()


async def test_replayed_jti_is_refused(keys: Keys) -> None:
    cache = JtiCache()
    token = proof(keys.es256)
    first = await verify(token, remember_jti=cache)
    # Remembered while any node could still accept it: iat + 60 s back + 10 s ahead.
    assert cache.entries == {f"dpop:{first.jkt}:e1j3V_bKic8-LAEB": NOW + 70}
    with pytest.raises(DPoPError) as replayed:
        await verify(token, remember_jti=cache)
    assert (replayed.value.error, replayed.value.reason) == ("invalid_dpop_proof", "replay")
    # A new proof with the same jti (another endpoint, say) is a replay too.
    with pytest.raises(DPoPError) as same_jti:
        await verify(proof(keys.es256, payload=claims(htm="GET")), method="GET", remember_jti=cache)
    assert same_jti.value.reason == "replay"
    # The same jti under another key is another client's: not a replay.
    await verify(proof(keys.other_ec), remember_jti=cache)


class TestNonce:
    nonces = NonceIssuer(NONCE_KEY, window_s=120)

    async def test_valid_nonce_passes(self, keys: Keys) -> None:
        current = self.nonces.issue(NOW)
        await verify(proof(keys.es256, payload=claims(nonce=current)), nonce=self.nonces)

    async def test_previous_window_nonce_passes(self, keys: Keys) -> None:
        previous = self.nonces.issue(NOW - 120)
        await verify(proof(keys.es256, payload=claims(nonce=previous)), nonce=self.nonces)

    @pytest.mark.parametrize(
        ("sent", "description"),
        [
            (DROP, "a DPoP nonce is required"),
            ("stale", "the DPoP nonce is stale"),
            ("old", "the DPoP nonce is stale"),
            ("future", "the DPoP nonce is stale"),
            ("other-key", "the DPoP nonce is stale"),
            (12345, "the DPoP nonce is stale"),
            ('a"b', "the DPoP nonce is stale"),
        ],
    )
    async def test_missing_or_stale_nonce_asks_for_a_new_one(
        self, keys: Keys, sent: Any, description: str
    ) -> None:
        value = {
            "old": self.nonces.issue(NOW - 240),
            "future": self.nonces.issue(NOW + 120),
            "other-key": NonceIssuer(bytes(32)).issue(NOW),
        }.get(sent, sent)
        cache = JtiCache()
        with pytest.raises(DPoPError) as refused:
            await verify(
                proof(keys.es256, payload=claims(nonce=value)),
                nonce=self.nonces,
                remember_jti=cache,
            )
        assert refused.value.error == "use_dpop_nonce"
        assert refused.value.reason == "nonce"
        assert refused.value.description == description
        assert refused.value.nonce == self.nonces.issue(NOW)
        assert refused.value.response_headers(resource=False) == {"DPoP-Nonce": refused.value.nonce}
        # The client retries with a new proof: this one's jti is not spent.
        assert cache.entries == {}

    async def test_nonce_ignored_when_not_required(self, keys: Keys) -> None:
        await verify(proof(keys.es256, payload=claims(nonce="anything")), nonce=None)


class TestPublishedExample:
    example = json.loads(DATA.read_text())["rfc9449_proof"]

    async def test_rfc9449_example_proof_verifies(self) -> None:
        ex = self.example
        result = await verify(ex["proof"], method=ex["method"], url=ex["url"], now=ex["iat"])
        assert result.jkt == ex["jkt"]
        assert result.jti == ex["jti"]
        assert result.jwk == ex["jwk"]

    async def test_rfc9449_example_is_stale_today(self) -> None:
        with pytest.raises(DPoPError) as refused:
            await verify(self.example["proof"], url=self.example["url"], now=NOW)
        assert refused.value.reason == "iat"

    async def test_rfc9449_example_with_one_bit_flipped(self) -> None:
        ex = self.example
        head, body, signature = ex["proof"].split(".")
        flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
        with pytest.raises(DPoPError) as refused:
            await verify(f"{head}.{body}.{flipped}", url=ex["url"], now=ex["iat"])
        assert refused.value.reason == "signature"
