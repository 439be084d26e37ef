"""The active challenge: the person turns the head one way, then the other, in front of the
camera, and the frames must show it.

From each frame's face (`faces.Face`, its yaw from the landmarks): the challenge passes when
some frame shows a turn of at least `min_turn` degrees to one side and a later frame at least
as much to the other side, every frame with a face shows one face only, and every face is the
same person as the best-matching one (embedding distance within `continuity_threshold`), and
the two turned frames show parallax (`pose.planar_residual` at least `min_parallax`). A still
photo held up or replayed shows one yaw throughout and fails; a printed photo turned in front
of the camera fakes a yaw but shows no parallax, and fails too.

What it proves, and what not (docs/identity-verification.md): a flat photo cannot turn, so the
challenge defeats a printed or replayed still; it does not defeat a video of the person turning
their head, a 3-D mask, two photos of the person turned each way shown in turn, or an injected
camera stream. It is one signal, not presentation-attack detection in the ISO 30107 sense.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from sharelock.identity.faces import Face


class LivenessOutcome(StrEnum):
    PASSED = "passed"
    NO_TURN = "no_turn"  # no turn both ways: a still, or the person did not turn
    FLAT = "flat"  # turned both ways, but as a flat picture does: no parallax
    TOO_FEW_FACES = "too_few_faces"
    SEVERAL_FACES = "several_faces"  # someone else in view: refused rather than guessed
    OTHER_PERSON = "other_person"  # the faces are not all of one person


@dataclass(frozen=True)
class LivenessResult:
    outcome: LivenessOutcome
    widest_turns: tuple[float, float] | None  # the most negative and most positive yaw seen

    @property
    def passed(self) -> bool:
        return self.outcome is LivenessOutcome.PASSED


def turn_both_ways(yaws: Sequence[float], min_turn: float) -> tuple[int, int] | None:
    """The indices of the widest turn to one side and a later one to the other side (at least
    `min_turn` degrees each), or None."""
    best: tuple[int, int] | None = None
    widest = 0.0
    for late, late_yaw in enumerate(yaws):
        for early in range(late):
            early_yaw = yaws[early]
            opposite = (early_yaw <= -min_turn and late_yaw >= min_turn) or (
                early_yaw >= min_turn and late_yaw <= -min_turn
            )
            if opposite and abs(late_yaw - early_yaw) > widest:
                best, widest = (early, late), abs(late_yaw - early_yaw)
    return best


def head_turn(
    frames: Sequence[Sequence[Face]],
    reference: Face,
    *,
    min_turn: float,
    min_parallax: float,
    continuity_threshold: float,
) -> LivenessResult:
    """The challenge over the faces found in each frame, in capture order."""
    if any(len(faces) > 1 for faces in frames):
        return LivenessResult(LivenessOutcome.SEVERAL_FACES, None)
    faces = [found[0] for found in frames if found and found[0].yaw is not None]
    yaws = [face.yaw for face in faces if face.yaw is not None]
    if len(faces) < 2:
        return LivenessResult(LivenessOutcome.TOO_FEW_FACES, None)
    widest = (min(yaws), max(yaws))
    anchor = min(faces, key=reference.distance)
    if any(face.distance(anchor) > continuity_threshold for face in faces):
        return LivenessResult(LivenessOutcome.OTHER_PERSON, widest)
    turn = turn_both_ways(yaws, min_turn)
    if turn is None:
        return LivenessResult(LivenessOutcome.NO_TURN, widest)
    if faces[turn[0]].parallax(faces[turn[1]]) < min_parallax:
        return LivenessResult(LivenessOutcome.FLAT, widest)
    return LivenessResult(LivenessOutcome.PASSED, widest)
