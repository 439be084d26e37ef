"""Identity verification in a share, the pure part: what the flow keeps of it at each step and
what the review and the delivery show (docs/identity-verification.md, "In a share").

The share's `CollectedData.identity` holds `{"consent": None | bool, "evidence": None | dict}`:
the person's answer to the biometric-consent screen (GDPR Art. 9: its own screen, its own yes)
and the verification's OpenID IA evidence. Never an image, a face or a value read from the
document: those live in `sharelock.flow.identity_check` for the duration of one call.
"""

from __future__ import annotations

from typing import Any

from sharelock.flow.record_types import Data, HeldIdentity
from sharelock.oauth import IDENTITY_SCOPE, AuthorizationRequest

DECLINED: dict[str, Any] = {"declined": True}


def asked(request: AuthorizationRequest) -> bool:
    return request.identity_verification is not None


def held_identity(request: AuthorizationRequest, data: Data) -> HeldIdentity | None:
    """What the verification compares the document with, taken from the collected data
    before what only the checks needed is dropped; None if verification was not asked."""
    if not asked(request):
        return None
    values = data.get(IDENTITY_SCOPE, {})
    return HeldIdentity(
        given_name=values.get("given_name", ""),
        family_name=values.get("family_name", ""),
        birthdate=values.get("birthdate", ""),
    )


def pending_identity(request: AuthorizationRequest) -> dict[str, Any] | None:
    """The identity part of a share just collected: nothing consented to, nothing verified."""
    return {"consent": None, "evidence": None} if asked(request) else None


def reviewed(request: AuthorizationRequest, identity: dict[str, Any] | None) -> dict[str, Any]:
    """The verification as the consent screen shows it: where it stands and, once done, the
    document type and each check's outcome (no score shown as a figure, never an image)."""
    entry = request.identity_verification
    if entry is None or identity is None:
        return {"asked": False}
    view: dict[str, Any] = {
        "asked": True,
        "document_types": list(entry["document_types"]),
        "consent": identity.get("consent"),
    }
    evidence = identity.get("evidence")
    if identity.get("consent") is False:
        view["status"] = "declined"
    elif evidence is None:
        view["status"] = "awaiting_capture" if identity.get("consent") else "awaiting_consent"
    else:
        checks = evidence["check_details"]
        view["status"] = "verified" if all(c["passed"] for c in checks) else "failed"
        view["document_type"] = evidence["document_details"]["type"]
        view["issuing_country"] = evidence["document_details"]["issuer"]["country_code"]
        view["checks"] = [
            {"check": c["check"], "passed": c["passed"], "result": c["result"]} for c in checks
        ]
    return view


def finished(identity: dict[str, Any] | None) -> bool:
    """Whether the decision may be taken: verification not asked, declined, or done."""
    return identity is None or identity.get("consent") is False or bool(identity.get("evidence"))


def released(identity: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the partner receives: the evidence, `{"declined": true}`, or None (not asked)."""
    if identity is None:
        return None
    if identity.get("consent") is False:
        return dict(DECLINED)
    evidence = identity.get("evidence")
    return dict(evidence) if isinstance(evidence, dict) else None
