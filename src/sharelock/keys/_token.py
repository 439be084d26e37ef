"""The PKCS#11 boundary: the only module of Sharelock that imports `pkcs11`.

Why every call goes through one process-wide lock: python-pkcs11 calls `C_Initialize` without
`CKF_OS_LOCKING_OK`, so SoftHSM 2.6 disables its own locking, while python-pkcs11 releases the
GIL during every call. Eight threads decrypting at once crashed the process (double free,
segfault) in 8 runs of 10 (`shared/vectors/softhsm_threading_probe_log.txt`); one lock around
every call made it clean. Parallelism therefore comes from processes (server workers), and each
process initialises the module itself: after a fork the child re-initialises before its first
call (PKCS#11 handles do not survive `fork`).

PKCS#11 exceptions are translated here, once, into the key layer's typed errors; nothing above
this module sees a `pkcs11` type.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import pkcs11
from pkcs11 import MGF, Attribute, KeyType, Mechanism, ObjectClass
from pkcs11 import exceptions as p11e
from pkcs11.mechanisms import GCMParams

from sharelock.keys.errors import (
    AmbiguousKey,
    DecryptionFailed,
    HsmUnavailable,
    KeyNotFound,
    UnsupportedAlgorithm,
)

T = TypeVar("T")
OaepHash = Literal["sha1", "sha256"]

_OAEP_PARAMS: dict[str, tuple[Any, Any, None]] = {
    "sha1": (Mechanism.SHA_1, MGF.SHA1, None),
    "sha256": (Mechanism.SHA256, MGF.SHA256, None),
}

# One lock for every PKCS#11 call of the process (see the module docstring).
_LOCK = threading.Lock()


def _reset_lock_in_child() -> None:
    # A thread of the parent may have held the lock at fork time; the child has no such thread.
    global _LOCK
    _LOCK = threading.Lock()


os.register_at_fork(after_in_child=_reset_lock_in_child)

# Errors that mean "the token is gone or refuses us", as opposed to "this input is bad".
_UNAVAILABLE = (
    p11e.DeviceError,
    p11e.DeviceMemory,
    p11e.DeviceRemoved,
    p11e.TokenNotPresent,
    p11e.TokenNotRecognised,
    p11e.SessionClosed,
    p11e.SessionHandleInvalid,
    p11e.UserNotLoggedIn,
    p11e.HostMemory,
)


# Finding the token is retried this many times, sleeping DELAY x attempt in between (0.3 s in
# all), before the broker reports the HSM unavailable (see `HsmToken._connect`).
_CONNECT_ATTEMPTS = 4
_CONNECT_RETRY_DELAY_S = 0.05

# Every HsmToken of the process. python-pkcs11 loads a module once per process, so
# re-initialising it for one token closes the sessions of all the others.
_INSTANCES: weakref.WeakSet[HsmToken] = weakref.WeakSet()


class _TokenNotReady(HsmUnavailable):
    """The module answers but cannot show or open the token, perhaps only for a moment."""


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What Sharelock reads of a token object: its label and id, never its value."""

    label: str
    id: bytes
    object_class: Literal["private", "public", "secret"]


@dataclass(frozen=True, slots=True)
class RsaPublicNumbers:
    modulus: bytes
    public_exponent: bytes


# DER of the named curve P-256 (secp256r1, OID 1.2.840.10045.3.1.7), the EC_PARAMS attribute.
_P256_PARAMS = bytes.fromhex("06082a8648ce3d030107")


class HsmToken:
    """A logged-in session on one PKCS#11 token, serialised and fork-aware."""

    def __init__(self, module: Path, token_label: str, pin: str) -> None:
        self._module = module
        self._token_label = token_label
        self._pin = pin
        self._pid = -1
        self._lib: Any = None
        self._session: Any = None
        self._handles: dict[tuple[str, str], Any] = {}
        self.calls = 0  # PKCS#11 operations performed; tests use it to prove "no HSM call"
        _INSTANCES.add(self)

    def __repr__(self) -> str:
        return f"HsmToken(module={str(self._module)!r}, token={self._token_label!r})"

    # -- session management -------------------------------------------------------------

    def _connect(self) -> None:
        """Initialise the module, find the token and log in, retrying briefly while the token
        is not ready: SoftHSM rewrites its token file at every login, and a process that
        initialises the module or logs in during that write misses the token (`NoSuchToken`)
        or gets `GeneralError`. Workers starting together hit this (4 processes at once: 12 of
        60 failed). A refused PIN is never retried: each try counts towards locking it."""
        for attempt in range(1, _CONNECT_ATTEMPTS + 1):
            try:
                self._connect_once()
                return
            except _TokenNotReady:
                if attempt == _CONNECT_ATTEMPTS:
                    raise
                time.sleep(_CONNECT_RETRY_DELAY_S * attempt)

    def _module_in_use_by_others(self) -> bool:
        """Whether another HsmToken of this process has a session on the module."""
        pid = os.getpid()
        return any(
            other is not self and other._session is not None and other._pid == pid
            for other in _INSTANCES
        )

    def _connect_once(self) -> None:
        try:
            if self._lib is None:
                self._lib = pkcs11.lib(str(self._module))
            elif not self._module_in_use_by_others():
                # Start afresh: a forked child inherits the parent's initialised library, and
                # a token that went away is only found again by a new C_Initialize. Never
                # while another HsmToken of this process has a session: the module is loaded
                # once per process, and C_Finalize would close that session too.
                # With `library.reset_on_fork` SoftHSM has already reset itself in the child
                # and answers C_Finalize with CKR_CRYPTOKI_NOT_INITIALIZED (which made every
                # forked worker's first HSM call fail); python-pkcs11 marks the library
                # uninitialised whatever C_Finalize answers, so only C_Initialize matters.
                with suppress(p11e.PKCS11Error):
                    self._lib.finalize()
                self._lib.initialize()
        except p11e.PKCS11Error as exc:
            raise HsmUnavailable(
                f"cannot load the PKCS#11 module {self._module}: {type(exc).__name__}"
            ) from None
        try:
            token = self._lib.get_token(token_label=self._token_label)
        except p11e.NoSuchToken:
            raise _TokenNotReady(
                f"no token labelled {self._token_label!r} in {self._module} "
                "(run 'sharelock hsm init', or check SHARELOCK_HSM_TOKEN_LABEL)"
            ) from None
        except p11e.MultipleTokensReturned:
            raise HsmUnavailable(
                f"more than one token labelled {self._token_label!r}: refusing to guess"
            ) from None
        except p11e.PKCS11Error as exc:
            raise _TokenNotReady(f"cannot list the HSM's tokens: {type(exc).__name__}") from None
        try:
            self._session = token.open(user_pin=self._pin, rw=True)
        except (p11e.PinIncorrect, p11e.PinInvalid, p11e.PinLenRange):
            raise HsmUnavailable(
                f"the HSM refused the PIN for token {self._token_label!r} "
                "(check SHARELOCK_HSM_PIN or SHARELOCK_HSM_PIN_FILE)"
            ) from None
        except p11e.PinLocked:
            raise HsmUnavailable(f"the PIN of token {self._token_label!r} is locked") from None
        except p11e.PKCS11Error as exc:
            raise _TokenNotReady(
                f"cannot open a session on token {self._token_label!r}: {type(exc).__name__}"
            ) from None
        self._handles.clear()
        self._pid = os.getpid()

    @contextmanager
    def _serialised(self) -> Iterator[Any]:
        """Hold the process lock, (re)connect if needed, and translate token failures."""
        with _LOCK:
            if self._pid != os.getpid() or self._session is None:
                self._connect()
            self.calls += 1
            try:
                yield self._session
            except _UNAVAILABLE as exc:
                self._session = None
                raise HsmUnavailable(f"the HSM stopped answering: {type(exc).__name__}") from None

    def run(self, operation: Callable[[Any], T]) -> T:
        with self._serialised() as session:
            return operation(session)

    def check(self) -> None:
        """Prove the token answers (readiness probe)."""

        def probe(session: Any) -> None:
            session.token.slot.get_token()

        try:
            self.run(probe)
        except HsmUnavailable:
            raise
        except p11e.PKCS11Error as exc:
            self._session = None
            raise HsmUnavailable(f"the HSM does not answer: {type(exc).__name__}") from None

    def close(self) -> None:
        with _LOCK:
            if self._session is not None and self._pid == os.getpid():
                with suppress(p11e.PKCS11Error):
                    self._session.close()
            self._session = None
            self._handles.clear()

    # -- object inventory ---------------------------------------------------------------

    def list_objects(self, label_prefix: str) -> list[ObjectInfo]:
        classes = {
            ObjectClass.PRIVATE_KEY: "private",
            ObjectClass.PUBLIC_KEY: "public",
            ObjectClass.SECRET_KEY: "secret",
        }

        def inventory(session: Any) -> list[ObjectInfo]:
            found = []
            for object_class, name in classes.items():
                for obj in session.get_objects({Attribute.CLASS: object_class}):
                    label = obj[Attribute.LABEL]
                    if label.startswith(label_prefix):
                        found.append(ObjectInfo(label, bytes(obj[Attribute.ID]), name))  # type: ignore[arg-type]
            return found

        return self.run(inventory)

    def _find(self, session: Any, object_class: Any, label: str) -> Any:
        cache_key = (str(object_class), label)
        cached = self._handles.get(cache_key)
        if cached is not None:
            return cached
        matches = list(session.get_objects({Attribute.CLASS: object_class, Attribute.LABEL: label}))
        if not matches:
            raise KeyNotFound(f"no key labelled {label!r} in the token")
        if len(matches) > 1:
            raise AmbiguousKey(f"{len(matches)} keys are labelled {label!r}: refusing to guess")
        self._handles[cache_key] = matches[0]
        return matches[0]

    def public_numbers(self, label: str) -> RsaPublicNumbers:
        def read(session: Any) -> RsaPublicNumbers:
            key = self._find(session, ObjectClass.PUBLIC_KEY, label)
            return RsaPublicNumbers(
                bytes(key[Attribute.MODULUS]), bytes(key[Attribute.PUBLIC_EXPONENT])
            )

        return self.run(read)

    def destroy(self, label: str) -> int:
        """Destroy every object with this label; returns how many."""

        def destroy_all(session: Any) -> int:
            objs = list(session.get_objects({Attribute.LABEL: label}))
            for obj in objs:
                obj.destroy()
            self._handles = {k: v for k, v in self._handles.items() if k[1] != label}
            return len(objs)

        return self.run(destroy_all)

    def destroy_private(self, label: str) -> int:
        """Destroy the private half of the pair with this label, keeping its public half
        (a retired signing key: its signatures stay verifiable, it can sign no more)."""

        def destroy(session: Any) -> int:
            template = {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: label}
            objs = list(session.get_objects(template))
            for obj in objs:
                obj.destroy()
            self._handles.pop((str(ObjectClass.PRIVATE_KEY), label), None)
            return len(objs)

        return self.run(destroy)

    # -- key generation and import ------------------------------------------------------

    def generate_rsa_keypair(self, label: str, key_id: bytes, bits: int = 4096) -> None:
        """An RSA pair in the token; the private half is sensitive, never extractable, and may
        only decrypt or unwrap."""

        def generate(session: Any) -> None:
            session.generate_keypair(
                KeyType.RSA,
                bits,
                store=True,
                label=label,
                id=key_id,
                public_template={
                    Attribute.ENCRYPT: True,
                    Attribute.WRAP: True,
                    Attribute.VERIFY: False,
                    Attribute.VERIFY_RECOVER: False,
                },
                private_template={
                    Attribute.DECRYPT: True,
                    Attribute.UNWRAP: True,
                    Attribute.SIGN: False,
                    Attribute.SIGN_RECOVER: False,
                    Attribute.DERIVE: False,
                    Attribute.SENSITIVE: True,
                    Attribute.EXTRACTABLE: False,
                    Attribute.PRIVATE: True,
                },
            )

        self.run(generate)

    def generate_secret(self, label: str, kind: Literal["hmac", "aes"]) -> None:
        """A 256-bit secret key in the token, sensitive and never extractable."""
        usage = (
            {Attribute.SIGN: True, Attribute.VERIFY: True}
            if kind == "hmac"
            else {Attribute.ENCRYPT: True, Attribute.DECRYPT: True}
        )
        key_type = KeyType.GENERIC_SECRET if kind == "hmac" else KeyType.AES

        def generate(session: Any) -> None:
            session.generate_key(
                key_type,
                256,
                store=True,
                label=label,
                id=label.encode(),
                template={
                    **usage,
                    Attribute.SENSITIVE: True,
                    Attribute.EXTRACTABLE: False,
                    Attribute.PRIVATE: True,
                    Attribute.WRAP: False,
                    Attribute.UNWRAP: False,
                    Attribute.DERIVE: False,
                },
            )

        self.run(generate)

    def generate_p256_keypair(self, label: str) -> None:
        """An EC P-256 pair in the token; the private half is sensitive, never extractable,
        and may only sign (ECDSA)."""

        def generate(session: Any) -> None:
            params = session.create_domain_parameters(
                KeyType.EC, {Attribute.EC_PARAMS: _P256_PARAMS}, local=True
            )
            params.generate_keypair(
                store=True,
                label=label,
                id=label.encode(),
                public_template={
                    Attribute.VERIFY: True,
                    Attribute.ENCRYPT: False,
                    Attribute.WRAP: False,
                    Attribute.DERIVE: False,
                },
                private_template={
                    Attribute.SIGN: True,
                    Attribute.SIGN_RECOVER: False,
                    Attribute.DECRYPT: False,
                    Attribute.UNWRAP: False,
                    Attribute.DERIVE: False,
                    Attribute.SENSITIVE: True,
                    Attribute.EXTRACTABLE: False,
                    Attribute.PRIVATE: True,
                },
            )

        self.run(generate)

    def ec_public_point(self, label: str) -> bytes:
        """The uncompressed point (0x04 || X || Y) of an EC public key."""

        def read(session: Any) -> bytes:
            point = bytes(self._find(session, ObjectClass.PUBLIC_KEY, label)[Attribute.EC_POINT])
            # PKCS#11 stores the point DER-wrapped in an OCTET STRING (tag 4, short length).
            if len(point) > 2 and point[0] == 0x04 and point[1] == len(point) - 2:
                return point[2:]
            return point

        return self.run(read)

    def key_attributes(
        self, label: str, object_class: Literal["private", "secret"]
    ) -> dict[str, bool]:
        """The protection flags of a key, for `keys list` and the tests."""
        cls = ObjectClass.PRIVATE_KEY if object_class == "private" else ObjectClass.SECRET_KEY

        def read(session: Any) -> dict[str, bool]:
            key = self._find(session, cls, label)
            return {
                "sensitive": bool(key[Attribute.SENSITIVE]),
                "extractable": bool(key[Attribute.EXTRACTABLE]),
                "always_sensitive": bool(key[Attribute.ALWAYS_SENSITIVE]),
                "never_extractable": bool(key[Attribute.NEVER_EXTRACTABLE]),
            }

        return self.run(read)

    def import_session_rsa_private_key(self, label: str, numbers: dict[str, bytes]) -> None:
        """Load an RSA private key as a *session* object (gone when the session closes).

        Only for known-answer tests with public vectors: production keys are generated in the
        token and never imported."""

        def load(session: Any) -> None:
            session.create_object(
                {
                    Attribute.CLASS: ObjectClass.PRIVATE_KEY,
                    Attribute.KEY_TYPE: KeyType.RSA,
                    Attribute.TOKEN: False,
                    Attribute.LABEL: label,
                    Attribute.ID: label.encode(),
                    Attribute.DECRYPT: True,
                    Attribute.SENSITIVE: True,
                    Attribute.MODULUS: numbers["modulus"],
                    Attribute.PUBLIC_EXPONENT: numbers["public_exponent"],
                    Attribute.PRIVATE_EXPONENT: numbers["private_exponent"],
                    Attribute.PRIME_1: numbers["prime1"],
                    Attribute.PRIME_2: numbers["prime2"],
                    Attribute.EXPONENT_1: numbers["exponent1"],
                    Attribute.EXPONENT_2: numbers["exponent2"],
                    Attribute.COEFFICIENT: numbers["coefficient"],
                }
            )

        self.run(load)

    def import_session_rsa_public_key(
        self, label: str, modulus: bytes, public_exponent: bytes
    ) -> None:
        """Load an RSA public key as a *session* object (gone when the session closes), the
        public half of a pair loaded with `import_session_rsa_private_key`.

        Only for known-answer tests with public vectors: production keys are generated in the
        token and never imported."""

        def load(session: Any) -> None:
            session.create_object(
                {
                    Attribute.CLASS: ObjectClass.PUBLIC_KEY,
                    Attribute.KEY_TYPE: KeyType.RSA,
                    Attribute.TOKEN: False,
                    Attribute.LABEL: label,
                    Attribute.ID: label.encode(),
                    Attribute.ENCRYPT: True,
                    Attribute.WRAP: True,
                    Attribute.MODULUS: modulus,
                    Attribute.PUBLIC_EXPONENT: public_exponent,
                }
            )

        self.run(load)

    def import_session_secret(self, label: str, value: bytes, kind: Literal["hmac", "aes"]) -> None:
        """Load a secret key as a session object; only for known-answer tests."""
        usage = (
            {Attribute.SIGN: True, Attribute.VERIFY: True}
            if kind == "hmac"
            else {Attribute.ENCRYPT: True, Attribute.DECRYPT: True}
        )

        def load(session: Any) -> None:
            session.create_object(
                {
                    Attribute.CLASS: ObjectClass.SECRET_KEY,
                    Attribute.KEY_TYPE: KeyType.GENERIC_SECRET if kind == "hmac" else KeyType.AES,
                    Attribute.TOKEN: False,
                    Attribute.LABEL: label,
                    Attribute.VALUE: value,
                    Attribute.SENSITIVE: True,
                    **usage,
                }
            )

        self.run(load)

    # -- operations ---------------------------------------------------------------------

    def rsa_oaep_decrypt(self, label: str, ciphertext: bytes, oaep_hash: OaepHash) -> bytes:
        """RSAES-OAEP decryption inside the token (empty label, MGF1 with the same hash).

        Every refusal of the token for this input, whatever its cause, is the same
        `DecryptionFailed`, so that callers cannot tell padding errors from length errors."""

        def decrypt(session: Any) -> bytes:
            key = self._find(session, ObjectClass.PRIVATE_KEY, label)
            try:
                return bytes(
                    key.decrypt(
                        ciphertext,
                        mechanism=Mechanism.RSA_PKCS_OAEP,
                        mechanism_param=_OAEP_PARAMS[oaep_hash],
                    )
                )
            except _UNAVAILABLE:
                raise
            except (p11e.ArgumentsBad, p11e.MechanismParamInvalid, p11e.MechanismInvalid):
                # SoftHSM 2.6 answers CKR_ARGUMENTS_BAD to any OAEP hash but SHA-1.
                raise UnsupportedAlgorithm(f"the token has no RSA-OAEP with {oaep_hash}") from None
            except p11e.PKCS11Error:
                raise DecryptionFailed() from None

        return self.run(decrypt)

    def hmac_sha256(self, label: str, message: bytes) -> bytes:
        def sign(session: Any) -> bytes:
            key = self._find(session, ObjectClass.SECRET_KEY, label)
            try:
                return bytes(key.sign(message, mechanism=Mechanism.SHA256_HMAC))
            except _UNAVAILABLE:
                raise
            except p11e.PKCS11Error as exc:
                raise DecryptionFailed() from exc

        return self.run(sign)

    def ecdsa_sign(self, label: str, digest: bytes) -> bytes:
        """ECDSA over a digest computed by the caller; the raw r || s the token returns."""

        def sign(session: Any) -> bytes:
            key = self._find(session, ObjectClass.PRIVATE_KEY, label)
            try:
                return bytes(key.sign(digest, mechanism=Mechanism.ECDSA))
            except _UNAVAILABLE:
                raise
            except p11e.PKCS11Error as exc:
                raise UnsupportedAlgorithm(
                    f"the token refused to sign with ECDSA: {type(exc).__name__}"
                ) from None

        return self.run(sign)

    def aes_gcm(
        self,
        label: str,
        direction: Literal["encrypt", "decrypt"],
        iv: bytes,
        aad: bytes,
        data: bytes,
    ) -> bytes:
        """AES-256-GCM (128-bit tag) inside the token; `data` carries the tag on decrypt."""

        def crypt(session: Any) -> bytes:
            key = self._find(session, ObjectClass.SECRET_KEY, label)
            params = GCMParams(iv, aad, 128)
            try:
                if direction == "encrypt":
                    return bytes(
                        key.encrypt(data, mechanism=Mechanism.AES_GCM, mechanism_param=params)
                    )
                return bytes(key.decrypt(data, mechanism=Mechanism.AES_GCM, mechanism_param=params))
            except _UNAVAILABLE:
                raise
            except p11e.PKCS11Error:
                raise DecryptionFailed() from None

        return self.run(crypt)
