"""Credential envelopes as the flow handles them: each one used once, opened in the HSM only at
the moment a connector needs what it holds.

Shared by the consent flow and the rights proofs (`sharelock.rights`): one envelope, one use,
whichever API it is sent to.
"""

from __future__ import annotations

from sharelock.config import Settings
from sharelock.envelope import EnvelopeRejected, OpenedSecret, open_envelope
from sharelock.flow.records import ENVELOPE_SEEN, Records
from sharelock.keys import KeyLayer
from sharelock.oauth import digest

# What a credential envelope may hold, member by member with its longest length: the same
# shape for the consent screen, the maintenance offer and the rights proofs.
CREDENTIAL_MEMBERS = {"login": 256, "password": 1024}
OTP_MEMBERS = {"otp": 32}


class Envelopes:
    def __init__(self, settings: Settings, records: Records, keys: KeyLayer) -> None:
        self.settings = settings
        self.records = records
        self.keys = keys

    async def remember(
        self, envelope: str, until: float | None = None, *, max_bytes: int | None = None
    ) -> None:
        """Refuse a JWE seen before (checklist A.17), before it is opened: its digest is kept
        (a marker, no content) for as long as a credential JWE may itself be kept, the
        session (or `until`, the end of the flow it came to). `max_bytes`: an image's larger
        limit (`Settings.max_image_envelope_bytes`), credentials' otherwise."""
        limit = self.settings.max_envelope_bytes if max_bytes is None else max_bytes
        if not envelope or len(envelope) > limit:
            raise EnvelopeRejected()
        if not await self.records.put_new(ENVELOPE_SEEN, digest(envelope), b"1", until=until):
            raise EnvelopeRejected()

    async def open(self, envelope: bytes, *, max_bytes: int | None = None) -> OpenedSecret:
        """The envelope's plaintext, opened in the HSM on the key layer's thread. Use it in a
        `with` block: it is wiped when the block ends. `max_bytes` as for `remember`."""
        limit = self.settings.max_envelope_bytes if max_bytes is None else max_bytes
        return await self.keys.run_async(
            lambda: open_envelope(envelope, self.keys, max_bytes=limit)
        )
