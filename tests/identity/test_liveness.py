"""The head-turn challenge on real photographs.

What the frames are: no package we could find ships one person photographed turning their
head, so the "live" sequences are real photographs of one person at different poses (Obama
frontal, obama2.jpg turned about 25 degrees) and mirror images of them (a mirror image of a
real turned head is a real head turned the other way, with real parallax). They prove the
decision rule on real faces and real landmarks; they do not prove that a person in front of a
camera passes in practice (the browser tests of the capture page do that, with the lead).
Attacks: a still replayed, and a printed photo turned in front of the camera (a perspective
warp of a flat picture: a plane seen from two angles) must fail.
"""

from __future__ import annotations

import cv2
import numpy as np

from sharelock.identity import DlibFaceEngine, Face, LivenessOutcome, VerificationPolicy, head_turn
from sharelock.identity.liveness import turn_both_ways
from tests.identity.conftest import Photo, mirrored

POLICY = VerificationPolicy()


def _challenge(engine: DlibFaceEngine, frames: list[Photo], reference: Face) -> LivenessOutcome:
    return head_turn(
        [engine.faces(frame) for frame in frames],
        reference,
        min_turn=POLICY.min_turn_degrees,
        min_parallax=POLICY.min_parallax,
        continuity_threshold=POLICY.continuity_threshold,
    ).outcome


def turned_print(image: Photo, toward_left: bool, depth: float = 0.35) -> Photo:
    """`image` as a flat print turned about its vertical axis: one edge recedes."""
    h, w = image.shape[:2]
    near, far = (0.0, depth * 0.5) if toward_left else (depth * 0.5, 0.0)
    corners = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    squeezed = np.float32(
        [[w * near * 0.6, h * near], [w - w * far * 0.6, h * far],
         [w - w * far * 0.6, h - h * far], [w * near * 0.6, h - h * near]]
    )  # fmt: skip
    warp = cv2.getPerspectiveTransform(corners, squeezed)
    return np.ascontiguousarray(
        cv2.warpPerspective(image, warp, (w, h), borderMode=cv2.BORDER_REPLICATE)
    )


def test_the_rule() -> None:
    assert turn_both_ways([0, -20, 5, 22], 15) == (1, 3)
    assert turn_both_ways([0, 20, 30, -16], 15) == (2, 3)
    assert turn_both_ways([0, 20, 30, 25], 15) is None
    assert turn_both_ways([-16, -20], 15) is None
    assert turn_both_ways([3, 3, 3, 3], 15) is None


def test_real_turns_both_ways_pass(face_engine: DlibFaceEngine, photos: dict[str, Photo]) -> None:
    reference = face_engine.faces(photos["obama"])[0]
    frames = [photos["obama"], photos["obama2"], photos["obama"], mirrored(photos["obama2"])]
    assert _challenge(face_engine, frames, reference) is LivenessOutcome.PASSED
    # Turned faces from the group photographs, each with its mirror image.
    passed = 0
    for group in ("sample2", "sample5", "sample6"):
        for face in face_engine.faces(photos[group]):
            if face.yaw is not None and abs(face.yaw) >= 25:
                left, top, right, bottom = face.box
                pad = (right - left) // 2
                crop = np.ascontiguousarray(
                    photos[group][
                        max(0, top - pad) : bottom + pad, max(0, left - pad) : right + pad
                    ]
                )
                outcome = _challenge(face_engine, [crop, mirrored(crop)], face)
                passed += outcome is LivenessOutcome.PASSED
    assert passed >= 3


def test_a_replayed_still_fails(face_engine: DlibFaceEngine, photos: dict[str, Photo]) -> None:
    reference = face_engine.faces(photos["obama"])[0]
    for still in ("obama", "obama2"):
        frames = [photos[still]] * 6
        assert _challenge(face_engine, frames, reference) is LivenessOutcome.NO_TURN


def test_a_print_turned_in_front_of_the_camera_fails(
    face_engine: DlibFaceEngine, photos: dict[str, Photo]
) -> None:
    reference = face_engine.faces(photos["obama"])[0]
    for depth in (0.35, 0.5):
        frames = [
            photos["obama"],
            turned_print(photos["obama"], True, depth),
            photos["obama"],
            turned_print(photos["obama"], False, depth),
        ]
        outcome = _challenge(face_engine, frames, reference)
        assert outcome in {LivenessOutcome.FLAT, LivenessOutcome.NO_TURN}, depth


def test_another_person_in_the_frames_fails(
    face_engine: DlibFaceEngine, photos: dict[str, Photo]
) -> None:
    reference = face_engine.faces(photos["obama"])[0]
    frames = [photos["obama"], photos["obama2"], photos["biden"], mirrored(photos["obama2"])]
    assert _challenge(face_engine, frames, reference) is LivenessOutcome.OTHER_PERSON


def test_two_faces_in_a_frame_fail(face_engine: DlibFaceEngine, photos: dict[str, Photo]) -> None:
    reference = face_engine.faces(photos["obama"])[0]
    frames = [photos["obama"], photos["sample3"], mirrored(photos["obama2"])]
    assert _challenge(face_engine, frames, reference) is LivenessOutcome.SEVERAL_FACES


def test_frames_without_faces(face_engine: DlibFaceEngine, photos: dict[str, Photo]) -> None:
    reference = face_engine.faces(photos["obama"])[0]
    blank = np.full((480, 640, 3), 128, np.uint8)
    assert _challenge(face_engine, [blank, blank, photos["obama"]], reference) is (
        LivenessOutcome.TOO_FEW_FACES
    )
