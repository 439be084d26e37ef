"""Errors of the key layer. Their messages name keys and tokens, never key material or data."""

from __future__ import annotations

from sharelock.errors import ServiceUnavailable, SharelockError


class KeyLayerError(SharelockError):
    """Base of the key layer's errors."""


class HsmUnavailable(KeyLayerError, ServiceUnavailable):
    """The PKCS#11 module cannot be loaded, the token is absent, the PIN is refused, or the
    token stopped answering. The broker fails closed: it never falls back to a software key."""


class KeyNotFound(KeyLayerError):
    """No key matches the lookup."""


class AmbiguousKey(KeyLayerError):
    """More than one key matches a lookup that must match exactly one."""


class DecryptionFailed(KeyLayerError):
    """The HSM refused to decrypt. Deliberately says nothing about why (padding, length, key)."""

    def __init__(self) -> None:
        super().__init__("decryption failed")


class UnsupportedAlgorithm(KeyLayerError):
    """The token cannot perform the requested algorithm."""
