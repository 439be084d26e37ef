"""Re-sync material: what lets the broker sign in to a connected source again without the
person typing their password (the source's session token where it offers one, otherwise the
credentials), sealed as the maintenance vault seals kept credentials.

`KeyLayer.seal_in_token` encrypts it with AES-GCM inside the HSM under the token's storage key
(a key that rotation does not touch); the additional data binds the blob to its row (source
id, account id, data source, login hash), so a blob copied to another row, or another
account's, does not open. A copy of the database alone holds nothing usable: the key never
leaves the HSM. Only the connector opens it, at the moment of a sync (a one-click share or a
periodic re-sync, `accounts.sync`), inside a `with` block that wipes the clear copy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sharelock.accounts.errors import AccountError
from sharelock.envelope import OpenedSecret
from sharelock.keys import DecryptionFailed, KeyLayer

_AAD_VERSION = "sharelock-account-source-v1"
MAX_MATERIAL_BYTES = 16 * 1024


class MaterialUnreadable(AccountError):
    """The sealed material does not open: the row was altered or moved, or the storage key is
    not the one that sealed it."""

    status = 500
    error = "server_error"


@dataclass(frozen=True, slots=True)
class SourceBinding:
    """What a source's sealed material is bound to."""

    source_id: str
    account_id: str
    data_source: str
    login_hash: str

    def additional_data(self) -> bytes:
        return json.dumps(
            [_AAD_VERSION, self.source_id, self.account_id, self.data_source, self.login_hash],
            separators=(",", ":"),
        ).encode("ascii")


def seal_material(keys: KeyLayer, material: bytes, binding: SourceBinding) -> bytes:
    """Seal clear material in the HSM for the row `binding` names (an HSM call: run it on the
    key layer's thread)."""
    if not material or len(material) > MAX_MATERIAL_BYTES:
        raise ValueError("re-sync material must be 1 byte to 16 KiB")
    return keys.seal_in_token(material, binding.additional_data())


def open_material(keys: KeyLayer, sealed: bytes, binding: SourceBinding) -> OpenedSecret:
    """The clear material, for the connector at the moment of a sync; use it in a `with`
    block, which wipes it."""
    try:
        clear = keys.open_in_token(sealed, binding.additional_data())
    except DecryptionFailed:
        raise MaterialUnreadable("the re-sync material does not open") from None
    return OpenedSecret(bytearray(clear))
