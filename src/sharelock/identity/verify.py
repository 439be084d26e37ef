"""One verification: a document photo, a few live frames and the identity the data source
gave, in; `IdentityEvidence` (and the zone read, for the flow) out.

Every image is decoded (and refused, if it must be) before any is analysed, so a bad frame
costs no OCR. Nothing is kept: the images, faces and embeddings are local to `verify` and go
when it returns; nothing is logged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sharelock.checks import Category
from sharelock.clock import SYSTEM_CLOCK, Clock, utc
from sharelock.identity.document import (
    HeldIdentity,
    birthdate_matches,
    expiry_outcome,
    name_category,
    read_zone,
)
from sharelock.identity.errors import FaceNotFound, IdentityError
from sharelock.identity.evidence import CheckName, CheckOutcome, IdentityEvidence
from sharelock.identity.faces import FaceEngine
from sharelock.identity.images import DOCUMENT_LIMITS, FRAME_LIMITS, ImageLimits, decode_image
from sharelock.identity.liveness import head_turn
from sharelock.identity.mrz import MrzData
from sharelock.identity.mrz_reader import MrzReader


class FramesRejected(IdentityError):
    """No live frame, or more than the policy allows."""

    def __init__(self, count: int, most: int) -> None:
        super().__init__(f"expected 2 to {most} live frames, got {count}")


@dataclass(frozen=True)
class VerificationPolicy:
    """The thresholds (docs/identity-verification.md has the error rates measured at them)."""

    face_match_threshold: float = 0.5  # embedding distance, document face to the live face
    continuity_threshold: float = 0.6  # between the live frames: one person throughout
    min_turn_degrees: float = 15.0  # yaw each way for the head-turn challenge
    min_parallax: float = 0.06  # landmarks' distance from a flat picture's, turned (pose.py)
    max_frames: int = 12
    accepted_name_matches: frozenset[Category] = frozenset({Category.MATCH, Category.CLOSE_MATCH})
    document_limits: ImageLimits = DOCUMENT_LIMITS
    frame_limits: ImageLimits = FRAME_LIMITS


@dataclass(frozen=True, repr=False)
class Verification:
    evidence: IdentityEvidence
    document: MrzData  # the zone's values (personal data), for the flow to use or drop

    def __repr__(self) -> str:
        return f"Verification(verified={self.evidence.verified})"


@dataclass
class IdentityVerifier:
    reader: MrzReader
    faces: FaceEngine
    policy: VerificationPolicy = field(default_factory=VerificationPolicy)
    clock: Clock = SYSTEM_CLOCK

    def verify(self, document: bytes, frames: Sequence[bytes], held: HeldIdentity) -> Verification:
        policy = self.policy
        if not 2 <= len(frames) <= policy.max_frames:
            raise FramesRejected(len(frames), policy.max_frames)
        document_image = decode_image(document, policy.document_limits, "document")
        frame_images = [
            decode_image(frame, policy.frame_limits, f"frame {number}")
            for number, frame in enumerate(frames, start=1)
        ]
        now = utc(self.clock)
        zone = read_zone(self.reader, document_image, now.date())
        document_faces = self.faces.faces(document_image)
        if not document_faces:
            raise FaceNotFound("document", 0)
        # The largest: cards and passports often print a second, smaller "ghost" portrait.
        portrait = document_faces[0]
        frame_faces = [self.faces.faces(image) for image in frame_images]
        live = [found[0] for found in frame_faces if len(found) == 1]
        distance = min((portrait.distance(face) for face in live), default=float("inf"))
        liveness = head_turn(
            frame_faces,
            portrait,
            min_turn=policy.min_turn_degrees,
            min_parallax=policy.min_parallax,
            continuity_threshold=policy.continuity_threshold,
        )
        expiry = expiry_outcome(zone, now.date())
        names = name_category(zone, held)
        birthdate = birthdate_matches(zone, held)
        checks = (
            _outcome(CheckName.MRZ_CHECK_DIGITS, zone.check_digits_valid),
            CheckOutcome(CheckName.DOCUMENT_EXPIRY, expiry == "valid", expiry),
            CheckOutcome(CheckName.NAME_MATCH, names in policy.accepted_name_matches, names.value),
            _outcome(CheckName.BIRTHDATE_MATCH, birthdate),
            CheckOutcome(
                CheckName.FACE_MATCH,
                distance <= policy.face_match_threshold,
                "pass" if distance <= policy.face_match_threshold else "fail",
                score=distance if live else None,
                threshold=policy.face_match_threshold,
            ),
            CheckOutcome(CheckName.LIVENESS, liveness.passed, liveness.outcome.value),
        )
        evidence = IdentityEvidence(zone.document_type, zone.issuing_country, checks, now)
        return Verification(evidence, zone)


def _outcome(check: CheckName, passed: bool) -> CheckOutcome:
    return CheckOutcome(check, passed, "pass" if passed else "fail")
