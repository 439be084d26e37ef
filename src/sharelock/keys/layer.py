"""The key layer: Sharelock's keys, kept in a PKCS#11 token, and what the broker does with them.

It knows nothing of HTTP, JWE or Redis (Vault's "barrier" idea): it decrypts an RSA-OAEP block
with a key chosen by `kid`, computes keyed hashes, and wraps data keys. Key material never leaves
the token; what this class holds in memory is labels, public keys and the algorithm probe.

Keys in the token, by label:
- `sharelock-enc-<UTC creation time>`: RSA-4096 encryption pairs. The newest is active; each older
  one retired when its successor was created and keeps decrypting for the grace period, after
  which `rotate` destroys it. This state is derived from the labels alone, so every broker
  process agrees on it without any other store.
- `sharelock-audit-hmac`: HMAC-SHA256 key for pseudonymised logins.
- `sharelock-storage`: AES-256 key that wraps the data keys of values kept in Redis.
- `sharelock-sign-<UTC creation time>` (or `sharelock-audit-sign`, from earlier releases): EC
  P-256 pairs that sign (ES256) checkpoints, receipts, responses and deliveries; the private
  half may only sign. Rotated like the encryption keys (`sharelock.keys.signing`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Literal, TypeVar

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from sharelock.config import Settings
from sharelock.keys._token import HsmToken, OaepHash, RsaPublicNumbers
from sharelock.keys.errors import (
    AmbiguousKey,
    DecryptionFailed,
    KeyLayerError,
    KeyNotFound,
    UnsupportedAlgorithm,
)
from sharelock.keys.jwk import public_jwk, thumbprint
from sharelock.keys.signing import (
    LEGACY_SIGN_LABEL,
    SIGN_PREFIX,
    SigningKey,
    load_signing_keys,
    new_label,
)
from sharelock.keys.softhsm import export_softhsm_conf

T = TypeVar("T")
log = logging.getLogger("sharelock.keys")

ENC_PREFIX = "sharelock-enc-"
HMAC_LABEL = "sharelock-audit-hmac"
STORAGE_LABEL = "sharelock-storage"
_NO_SIGNING_KEY = "no signing key in the token: run 'sharelock keys generate'"
_TIME_FORMAT = "%Y%m%dT%H%M%S%fZ"
_DEK_AAD = b"sharelock-data-key-v1"
_DEK_VERSION = b"\x01"

# JWE `alg` -> OAEP hash, in order of preference for the JWKS.
OAEP_ALGORITHMS: dict[str, OaepHash] = {"RSA-OAEP-256": "sha256", "RSA-OAEP": "sha1"}
_SOFTWARE_OAEP = {
    "sha1": padding.OAEP(padding.MGF1(hashes.SHA1()), hashes.SHA1(), None),  # noqa: S303
    "sha256": padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None),
}

KeyStatus = Literal["active", "retiring", "expired"]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _status(
    retired_at: datetime | None, destroy_after: datetime | None, now: datetime
) -> KeyStatus:
    if retired_at is None:
        return "active"
    if destroy_after is not None and now < destroy_after:
        return "retiring"
    return "expired"


@dataclass(frozen=True, slots=True)
class EncryptionKey:
    """What the broker knows of one encryption key pair: public facts only."""

    kid: str
    label: str
    created_at: datetime
    status: KeyStatus
    retired_at: datetime | None
    destroy_after: datetime | None
    public: RsaPublicNumbers

    @property
    def usable(self) -> bool:
        return self.status != "expired"

    @property
    def modulus_bits(self) -> int:
        return len(self.public.modulus) * 8


@dataclass(frozen=True, slots=True)
class EnsureReport:
    created: tuple[str, ...]
    existing: tuple[str, ...]


class KeyLayer:
    """Sharelock's keys in one PKCS#11 token. Thread-safe; every call is serialised in
    `HsmToken`. The `*_async` methods run on one dedicated HSM thread, off the event loop."""

    def __init__(self, settings: Settings, token: HsmToken | None = None) -> None:
        self._settings = settings
        if token is None:
            settings.check_module()
            export_softhsm_conf(settings)
            token = HsmToken(settings.pkcs11_module, settings.hsm_token_label, settings.user_pin())
        self.token = token
        self._grace = settings.key_grace_period
        self._keys: dict[str, EncryptionKey] | None = None
        self._algorithms: tuple[str, ...] | None = None
        self._signing: list[SigningKey] | None = None
        self._state_lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._executor_pid = -1

    def __repr__(self) -> str:
        return f"KeyLayer(token={self.token!r})"

    @property
    def grace_period(self) -> timedelta:
        """How long a rotated-out key keeps working (decrypting; published, for signing)."""
        return self._grace

    # -- lifecycle ----------------------------------------------------------------------

    def check(self) -> None:
        """Raise `HsmUnavailable` unless the token answers (readiness)."""
        self.token.check()

    def close(self) -> None:
        if self._executor is not None and self._executor_pid == os.getpid():
            self._executor.shutdown(wait=True)
        self._executor = None
        self.token.close()

    async def run_async(self, fn: Callable[..., T], *args: Any) -> T:
        """Await a key-layer call on the process's single HSM thread."""
        if self._executor is None or self._executor_pid != os.getpid():
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hsm")
            self._executor_pid = os.getpid()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(fn, *args))

    # -- inventory ----------------------------------------------------------------------

    def _load_keys(self, now: datetime | None = None) -> dict[str, EncryptionKey]:
        now = now or datetime.now(UTC)
        objects = self.token.list_objects(ENC_PREFIX)
        labels = sorted({o.label for o in objects})
        for label in labels:
            kinds = [o.object_class for o in objects if o.label == label]
            if kinds.count("private") != 1 or kinds.count("public") != 1:
                raise AmbiguousKey(
                    f"key {label!r} has {kinds.count('private')} private and "
                    f"{kinds.count('public')} public objects; expected exactly one of each"
                )
        created = [
            datetime.strptime(label[len(ENC_PREFIX) :], _TIME_FORMAT).replace(tzinfo=UTC)
            for label in labels
        ]
        keys: dict[str, EncryptionKey] = {}
        for index, label in enumerate(labels):
            retired_at = created[index + 1] if index + 1 < len(labels) else None
            destroy_after = retired_at + self._grace if retired_at else None
            status = _status(retired_at, destroy_after, now)
            public = self.token.public_numbers(label)
            kid = thumbprint(public_jwk(public))
            if kid in keys:
                raise AmbiguousKey(f"two keys in the token share kid {kid}")
            keys[kid] = EncryptionKey(
                kid, label, created[index], status, retired_at, destroy_after, public
            )
        return keys

    def encryption_keys(self, refresh: bool = False) -> list[EncryptionKey]:
        """Every encryption key in the token, oldest first."""
        with self._state_lock:
            if self._keys is None or refresh:
                self._keys = self._load_keys()
            keys = list(self._keys.values())
        # States move with the clock, not only when the token is listed: a key whose grace
        # period ends while the process runs stops decrypting then.
        now = datetime.now(UTC)
        return [
            replace(k, status=_status(k.retired_at, k.destroy_after, now))
            if k.status != _status(k.retired_at, k.destroy_after, now)
            else k
            for k in keys
        ]

    def active_key(self) -> EncryptionKey:
        active = [k for k in self.encryption_keys() if k.status == "active"]
        if not active:
            raise KeyNotFound(
                f"no encryption key in token {self._settings.hsm_token_label!r}: "
                "run 'sharelock keys generate'"
            )
        return active[0]

    def key_for_kid(self, kid: str) -> EncryptionKey:
        """Exactly the key with this `kid`, if it may still decrypt; otherwise `KeyNotFound`.

        An unknown kid does not trigger a fresh token listing: rotation is announced to
        running brokers by `refresh()` (or a restart), so that attackers cannot make each
        request cost a token scan."""
        for key in self.encryption_keys():
            if key.kid == kid and key.usable:
                return key
        raise KeyNotFound("no usable encryption key with that kid")

    def refresh(self) -> None:
        self.encryption_keys(refresh=True)
        self._algorithms = None
        with self._state_lock:
            self._signing = None

    # -- key management -----------------------------------------------------------------

    def _new_encryption_key(self) -> None:
        label = ENC_PREFIX + datetime.now(UTC).strftime(_TIME_FORMAT)
        self.token.generate_rsa_keypair(label, label.encode()[len(ENC_PREFIX) :], bits=4096)

    def ensure_keys(self) -> EnsureReport:
        """Create whichever of Sharelock's keys the token lacks; idempotent."""
        created: list[str] = []
        existing: list[str] = []
        labels = {o.label for o in self.token.list_objects("sharelock-")}
        for label, kind in ((HMAC_LABEL, "hmac"), (STORAGE_LABEL, "aes")):
            if label in labels:
                existing.append(label)
            else:
                self.token.generate_secret(label, kind)  # type: ignore[arg-type]
                created.append(label)
        if any(label == LEGACY_SIGN_LABEL or label.startswith(SIGN_PREFIX) for label in labels):
            existing.append("signing key")
        else:
            self.token.generate_p256_keypair(new_label(datetime.now(UTC)))
            created.append("signing key")
        if any(label.startswith(ENC_PREFIX) for label in labels):
            existing.append("encryption key")
        else:
            self._new_encryption_key()
            created.append("encryption key")
        self.refresh()
        return EnsureReport(tuple(created), tuple(existing))

    def rotate(self) -> tuple[EncryptionKey, list[EncryptionKey]]:
        """Make a new active key, then destroy keys whose grace period is over."""
        self._new_encryption_key()
        self.refresh()
        destroyed = self.prune()
        return self.active_key(), destroyed

    def prune(self) -> list[EncryptionKey]:
        expired = [k for k in self.encryption_keys(refresh=True) if k.status == "expired"]
        for key in expired:
            self.token.destroy(key.label)
        if expired:
            self.refresh()
        return expired

    def rotate_signing(self) -> tuple[SigningKey, list[SigningKey]]:
        """Make a new active signing key (the previous one stops signing at once and stays
        published for the grace period), then destroy the private halves of keys whose
        grace period is over. Returns the new key and the keys retired for good."""
        self.token.generate_p256_keypair(new_label(datetime.now(UTC)))
        self.refresh()
        retired = self.prune_signing()
        return self.active_signing_key(), retired

    def prune_signing(self) -> list[SigningKey]:
        """Destroy the private half of every signing key past its grace period; the public
        half stays in the token to verify what it signed."""
        keys = self.signing_keys(refresh=True)
        done = [k for k in keys if k.status == "retired" and k.has_private]
        for key in done:
            self.token.destroy_private(key.label)
        if done:
            self.refresh()
        return done

    def key_protection(self, key: EncryptionKey) -> dict[str, bool]:
        return self.token.key_attributes(key.label, "private")

    # -- algorithms and publication -----------------------------------------------------

    def algorithms(self) -> tuple[str, ...]:
        """The JWE `alg` values this token can decrypt, probed once per process: SoftHSM 2.6
        has OAEP with SHA-1 only, so it gets `RSA-OAEP`; a token with SHA-256 also gets
        `RSA-OAEP-256`."""
        if self._algorithms is None:
            key = self.active_key()
            public = rsa.RSAPublicNumbers(
                int.from_bytes(key.public.public_exponent, "big"),
                int.from_bytes(key.public.modulus, "big"),
            ).public_key()
            supported = []
            for alg, oaep_hash in OAEP_ALGORITHMS.items():
                probe = secrets.token_bytes(32)
                try:
                    clear = self.token.rsa_oaep_decrypt(
                        key.label, public.encrypt(probe, _SOFTWARE_OAEP[oaep_hash]), oaep_hash
                    )
                except (UnsupportedAlgorithm, DecryptionFailed):
                    continue
                if secrets.compare_digest(clear, probe):
                    supported.append(alg)
            self._algorithms = tuple(supported)
        return self._algorithms

    def preferred_algorithm(self) -> str:
        algs = self.algorithms()
        if not algs:
            raise UnsupportedAlgorithm("the token supports no RSA-OAEP variant")
        return algs[0]

    def jwks(self) -> dict[str, Any]:
        """The public encryption keys that may still be used, active first."""
        alg = self.preferred_algorithm()
        keys = sorted(
            (k for k in self.encryption_keys() if k.usable),
            key=lambda k: (k.status != "active", -k.created_at.timestamp()),
        )
        return {
            "keys": [{**public_jwk(k.public), "kid": k.kid, "use": "enc", "alg": alg} for k in keys]
        }

    def signing_keys(self, refresh: bool = False) -> list[SigningKey]:
        """Every signing key in the token, oldest first (the newest signs)."""
        with self._state_lock:
            if self._signing is None or refresh:
                self._signing = load_signing_keys(self.token, self._grace, datetime.now(UTC))
            keys = list(self._signing)
        now = datetime.now(UTC)
        # As for the encryption keys, a grace period ending while the process runs ends then.
        return [
            replace(k, status="retired")
            if k.retired_at is not None and now >= k.retired_at + self._grace
            else k
            for k in keys
        ]

    def active_signing_key(self) -> SigningKey:
        keys = self.signing_keys()
        if not keys:
            raise KeyNotFound(_NO_SIGNING_KEY)
        return keys[-1]

    def signing_jwk(self) -> dict[str, Any]:
        """The public JWK of the active signing key (`use: sig`, `alg: ES256`, RFC 7638
        `kid`); `KeyNotFound` if the token has none yet."""
        return dict(self.active_signing_key().jwk)

    def signature_keyring(self) -> dict[str, dict[str, Any]]:
        """kid -> public JWK of every signing key the token holds, retired ones included:
        what verifies a checkpoint or a receipt signed at any time."""
        return {k.kid: dict(k.jwk) for k in self.signing_keys()}

    def published_jwks(self) -> dict[str, Any]:
        """What `/.well-known/jwks.json` serves: the encryption keys (`jwks()`, active first),
        then the active signing key and those still in their grace period, newest first."""
        published = self.jwks()
        with suppress(KeyNotFound):
            signing = [k for k in self.signing_keys() if k.published]
            published["keys"].extend(dict(k.jwk) for k in reversed(signing))
        return published

    # -- operations ---------------------------------------------------------------------

    def sign(self, message: bytes) -> bytes:
        """ES256 signature of `message` (raw r || s, as JWS wants it): SHA-256 here, ECDSA in
        the token with the active signing key. `sign_compact` asks `signing_jwk()` for the
        kid first: both run on the HSM thread (`run_async`), as does the refresh that could
        change the active key, so the two agree."""
        label = self.active_signing_key().label
        return self.token.ecdsa_sign(label, hashlib.sha256(message).digest())

    def decrypt_key_block(self, kid: str, alg: str, block: bytes) -> bytes:
        """RSA-OAEP-decrypt a JWE encrypted-key block inside the token. Any refusal is the same
        `DecryptionFailed`; an unknown kid is `KeyNotFound`."""
        oaep_hash = OAEP_ALGORITHMS.get(alg)
        if oaep_hash is None or alg not in self.algorithms():
            raise UnsupportedAlgorithm("algorithm not supported by this token")
        key = self.key_for_kid(kid)
        return self.token.rsa_oaep_decrypt(key.label, block, oaep_hash)

    def keyed_hash(self, message: bytes) -> str:
        """`hmac-sha256:<hex>` of the message under the token's audit HMAC key (the format of
        Vault's audit device, so auditors' tooling can read it)."""
        return "hmac-sha256:" + self.token.hmac_sha256(HMAC_LABEL, message).hex()

    def new_data_key(self) -> tuple[bytearray, bytes]:
        """A fresh AES-256 data key, and the same key wrapped (AES-GCM) by the token's storage
        key. The caller keeps only the wrapped form beside the data, and wipes the clear key."""
        data_key = bytearray(secrets.token_bytes(32))
        iv = secrets.token_bytes(12)
        wrapped = self.token.aes_gcm(STORAGE_LABEL, "encrypt", iv, _DEK_AAD, bytes(data_key))
        return data_key, _DEK_VERSION + iv + wrapped

    def unwrap_data_key(self, wrapped: bytes) -> bytearray:
        if len(wrapped) != 1 + 12 + 32 + 16 or wrapped[:1] != _DEK_VERSION:
            raise DecryptionFailed()
        iv, body = wrapped[1:13], wrapped[13:]
        return bytearray(self.token.aes_gcm(STORAGE_LABEL, "decrypt", iv, _DEK_AAD, body))

    def seal_in_token(self, plaintext: bytes, aad: bytes) -> bytes:
        """AES-GCM inside the token, one HSM call per value (measured against data keys in
        `tests/bench`; see docs/architecture.md for the choice)."""
        iv = secrets.token_bytes(12)
        return iv + self.token.aes_gcm(STORAGE_LABEL, "encrypt", iv, aad, plaintext)

    def open_in_token(self, sealed: bytes, aad: bytes) -> bytes:
        if len(sealed) < 12 + 16:
            raise DecryptionFailed()
        return self.token.aes_gcm(STORAGE_LABEL, "decrypt", sealed[:12], aad, sealed[12:])


async def refresh_forever(layer: KeyLayer, every_s: float) -> None:
    """Re-read the token's keys on a timer, so a rotation made by `sharelock keys rotate` in
    another process reaches a running broker without a restart."""
    while True:
        await asyncio.sleep(every_s)
        try:
            await layer.run_async(layer.refresh)
        except KeyLayerError:
            log.warning("key refresh postponed: the HSM did not answer")
