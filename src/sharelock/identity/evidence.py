"""The outcome of a verification, as OpenID Identity Assurance evidence.

`IdentityEvidence.to_claims()` is one entry of `verified_claims.verification.evidence`:

    {"type": "document",
     "document_details": {"type": "passport", "issuer": {"country_code": "FRA"}},
     "check_details": [{"check_method": "vri", "check": "mrz_check_digits", "result": "pass"},
                       …],
     "time": "2026-05-01T10:00:00Z"}

`check_method` takes the IA values: `vri` (the document inspected from an image taken
remotely), `data` (its data compared with the data source's), `bvr` (biometric verification,
remote). `check` and `result` (and for the face match its `score` and `threshold`) say which
check ran and how it came out. Never in it: the images, the embedding, the landmarks, a value
read from the document (names, number, dates).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sharelock.identity.mrz import DocumentType


class CheckName(StrEnum):
    MRZ_CHECK_DIGITS = "mrz_check_digits"
    DOCUMENT_EXPIRY = "document_expiry"
    NAME_MATCH = "name_match"
    BIRTHDATE_MATCH = "birthdate_match"
    FACE_MATCH = "face_match"
    LIVENESS = "liveness_head_turn"


_METHOD = {
    CheckName.MRZ_CHECK_DIGITS: "vri",
    CheckName.DOCUMENT_EXPIRY: "vri",
    CheckName.NAME_MATCH: "data",
    CheckName.BIRTHDATE_MATCH: "data",
    CheckName.FACE_MATCH: "bvr",
    CheckName.LIVENESS: "bvr",
}


@dataclass(frozen=True)
class CheckOutcome:
    check: CheckName
    passed: bool
    result: str  # "pass", "fail", or the check's own answer ("close_match", "expired", "no_turn")
    score: float | None = None  # the face match's distance (lower is closer)
    threshold: float | None = None

    def to_claims(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "check_method": _METHOD[self.check],
            "check": self.check.value,
            "result": self.result,
            "passed": self.passed,
        }
        if self.score is not None:
            entry["score"] = round(self.score, 3)
        if self.threshold is not None:
            entry["threshold"] = self.threshold
        return entry


@dataclass(frozen=True)
class IdentityEvidence:
    document_type: DocumentType
    issuing_country: str
    checks: tuple[CheckOutcome, ...]
    time: datetime  # aware, UTC

    @property
    def verified(self) -> bool:
        return bool(self.checks) and all(check.passed for check in self.checks)

    def outcome(self, check: CheckName) -> CheckOutcome:
        return next(outcome for outcome in self.checks if outcome.check is check)

    def to_claims(self) -> dict[str, Any]:
        return {
            "type": "document",
            "document_details": {
                "type": self.document_type.value,
                "issuer": {"country_code": self.issuing_country},
            },
            "check_details": [check.to_claims() for check in self.checks],
            "time": self.time.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
