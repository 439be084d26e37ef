"""Credential envelope: compact JWEs made in the browser, opened with the HSM's keys.

Public surface: `open_envelope`, `OpenedSecret`, `EnvelopeRejected`; `seal_for` and
`pick_encryption_key`, the browser's side in Python (the headless demo).
"""

from sharelock.envelope.compact import ALLOWED_ENC, CompactJwe, parse_compact
from sharelock.envelope.errors import EnvelopeRejected
from sharelock.envelope.opener import OpenedSecret, decrypt_content, open_envelope, wipe
from sharelock.envelope.sealing import pick_encryption_key, seal_for

__all__ = [
    "ALLOWED_ENC",
    "CompactJwe",
    "EnvelopeRejected",
    "OpenedSecret",
    "decrypt_content",
    "open_envelope",
    "parse_compact",
    "pick_encryption_key",
    "seal_for",
    "wipe",
]
