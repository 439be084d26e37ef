"""The recovery code: the way back into an account whose passkeys are all lost.

160 random bits, shown once as 32 base32 characters in groups of four; the broker keeps only
their SHA-256 (a code this long cannot be guessed, so a plain digest is enough: no salt or slow
hash would add anything, and the digest lets the code itself find its account). A code is used
once: signing in with it erases it, and the person must register a new passkey, which gives
them a new code.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets

CODE_BYTES = 20
_GROUP = 4
_ALPHABET = re.compile(r"[A-Z2-7]{32}")
# What people mistype for base32 letters: digits that base32 leaves out.
_LOOKALIKES = str.maketrans({"0": "O", "1": "I", "8": "B"})


def new_recovery_code() -> str:
    """A fresh code, e.g. `ABCD-EFGH-…` (8 groups of 4)."""
    text = base64.b32encode(secrets.token_bytes(CODE_BYTES)).decode("ascii")
    return "-".join(text[i : i + _GROUP] for i in range(0, len(text), _GROUP))


def normalise_code(code: str) -> str | None:
    """The code as generated, whatever the case, spaces and dashes; None if it cannot be one."""
    if len(code) > 80:
        return None
    compact = re.sub(r"[\s-]", "", code).upper().translate(_LOOKALIKES)
    return compact if _ALPHABET.fullmatch(compact) else None


def code_hash(code: str) -> str | None:
    """The SHA-256 (hex) the account row keeps, or None if `code` is not a code at all."""
    compact = normalise_code(code)
    if compact is None:
        return None
    return hashlib.sha256(compact.encode("ascii")).hexdigest()
