"""Key layer: Sharelock's keys live in a PKCS#11 token and never leave it.

Public surface: `KeyLayer`, `EncryptionKey`, `SigningKey`, `refresh_forever` (the periodic
key refresh), the errors, and `init_token` for the embedded SoftHSM2 setup. Only
`sharelock.keys._token` imports `pkcs11`.
"""

from sharelock.keys.errors import (
    AmbiguousKey,
    DecryptionFailed,
    HsmUnavailable,
    KeyLayerError,
    KeyNotFound,
    UnsupportedAlgorithm,
)
from sharelock.keys.layer import (
    OAEP_ALGORITHMS,
    EncryptionKey,
    EnsureReport,
    KeyLayer,
    refresh_forever,
)
from sharelock.keys.signing import SigningKey
from sharelock.keys.softhsm import InitReport, init_token, is_softhsm

__all__ = [
    "OAEP_ALGORITHMS",
    "AmbiguousKey",
    "DecryptionFailed",
    "EncryptionKey",
    "EnsureReport",
    "HsmUnavailable",
    "InitReport",
    "KeyLayer",
    "KeyLayerError",
    "KeyNotFound",
    "SigningKey",
    "UnsupportedAlgorithm",
    "init_token",
    "is_softhsm",
    "refresh_forever",
]
