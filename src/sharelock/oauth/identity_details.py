"""Identity verification asked in RFC 9396 `authorization_details` (docs/identity-verification.md,
"In a share"): one entry `{"type": "sharelock_identity_verification", "document_types":
["passport", "id_card"]}` beside any `sharelock_check` entries.

`split_details` takes the parameter apart: the identity entry, checked and made canonical
(document types in a fixed order, no other member), and the remaining entries for
`sharelock.checks`. Errors are fixed text and positions, never a value the partner sent.
"""

from __future__ import annotations

import json
from typing import Any

from sharelock.oauth.errors import InvalidAuthorizationDetails

IDENTITY_VERIFICATION_TYPE = "sharelock_identity_verification"
DOCUMENT_TYPES = ("passport", "id_card")  # the order of the canonical entry
# The scope whose values the verification compares with the document (names, birthdate).
IDENTITY_SCOPE = "identity"
MAX_RAW_LENGTH = 16_384  # characters of the JSON text, as `sharelock.checks` reads it


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if len({key for key, _ in pairs}) != len(pairs):
        raise InvalidAuthorizationDetails("authorization_details: an object has a member twice")
    return dict(pairs)


def _load(raw: str | list[Any]) -> list[Any]:
    if isinstance(raw, list):
        return raw
    if len(raw) > MAX_RAW_LENGTH:
        raise InvalidAuthorizationDetails("authorization_details: too long")
    value: Any = None
    try:
        value = json.loads(raw, object_pairs_hook=_unique, parse_constant=_not_json)
    except InvalidAuthorizationDetails:
        raise
    except (ValueError, RecursionError):
        pass  # refused below, outside the handler: the decoder's message quotes the input
    if not isinstance(value, list):
        raise InvalidAuthorizationDetails("authorization_details: not a JSON array")
    return value


def _not_json(_name: str) -> Any:
    raise InvalidAuthorizationDetails("authorization_details: not JSON")


def _entry(entry: dict[str, Any], where: str) -> dict[str, Any]:
    if set(entry) - {"type", "document_types"}:
        raise InvalidAuthorizationDetails(f"{where}: unknown field")
    types = entry.get("document_types")
    if not isinstance(types, list) or not types:
        raise InvalidAuthorizationDetails(f"{where}: document_types must be a non-empty array")
    if not all(isinstance(kind, str) and kind in DOCUMENT_TYPES for kind in types):
        raise InvalidAuthorizationDetails(
            f"{where}: document_types may hold {', '.join(DOCUMENT_TYPES)}"
        )
    if len(set(types)) != len(types):
        raise InvalidAuthorizationDetails(f"{where}: document_types has a type twice")
    return {
        "type": IDENTITY_VERIFICATION_TYPE,
        "document_types": [kind for kind in DOCUMENT_TYPES if kind in types],
    }


def split_details(raw: str | list[Any]) -> tuple[dict[str, Any] | None, list[Any]]:
    """The canonical identity-verification entry (None if not asked) and the other entries,
    in their order, for `sharelock.checks.parse_authorization_details`."""
    entries = _load(raw)
    identity: dict[str, Any] | None = None
    others: list[Any] = []
    for index, entry in enumerate(entries):
        if isinstance(entry, dict) and entry.get("type") == IDENTITY_VERIFICATION_TYPE:
            where = f"authorization_details[{index}]"
            if identity is not None:
                raise InvalidAuthorizationDetails(f"{where}: identity verification asked twice")
            identity = _entry(entry, where)
        else:
            others.append(entry)
    return identity, others
