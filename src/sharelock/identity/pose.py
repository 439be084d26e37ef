"""Head pose from 68 facial landmarks: the yaw (left-right turn) in degrees.

Six landmarks (nose tip, chin, the outer eye corners, the mouth corners) are matched to the
same points of a generic 3-D head with OpenCV's `solvePnP`, for a camera whose focal length is
the image width (a phone's or a webcam's, near enough: the yaw's sign and rough size are what
the challenge needs, not a calibrated angle).

Sign: positive when the face turns towards the image's left (the person's right, on a selfie
that is not mirrored), negative towards the image's right.

A flat photo turned in front of the camera also changes the yaw this finds (foreshortening
looks like a turn), so the challenge asks for parallax too: the landmarks of a flat picture
seen from two angles are related by a homography (a plane's perspective), those of a real head
are not (the nose moves against the cheeks). `planar_residual` is how far they are from one,
as a fraction of the distance between the eyes.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from numpy.typing import NDArray

# Nose tip, chin, left eye outer corner, right eye outer corner, mouth corners: the 68-point
# indices, and a generic head in millimetres-ish (the usual model of the OpenCV examples).
_INDICES = (30, 8, 36, 45, 48, 54)
_HEAD = np.array(
    [
        (0.0, 0.0, 0.0),
        (0.0, -330.0, -65.0),
        (-225.0, 170.0, -135.0),
        (225.0, 170.0, -135.0),
        (-150.0, -150.0, -125.0),
        (150.0, -150.0, -125.0),
    ],
    dtype=np.float64,
)


def yaw_degrees(landmarks: NDArray[np.float64], width: int, height: int) -> float | None:
    """The yaw of a face from its 68 landmarks (x, y) in an image of `width` x `height`."""
    if landmarks.shape != (68, 2):
        return None
    points = landmarks[list(_INDICES)]
    camera = np.array(
        [[width, 0.0, width / 2], [0.0, width, height / 2], [0.0, 0.0, 1.0]], dtype=np.float64
    )
    solved, rotation_vector, _ = cv2.solvePnP(
        _HEAD, points, camera, np.zeros(4), flags=cv2.SOLVEPNP_ITERATIVE
    )
    if not solved:
        return None
    rotation, _ = cv2.Rodrigues(rotation_vector)
    return math.degrees(math.atan2(-rotation[2, 0], math.hypot(rotation[0, 0], rotation[1, 0])))


def planar_residual(first: NDArray[np.float64], second: NDArray[np.float64]) -> float:
    """RMS distance between `second`'s landmarks and `first`'s carried by the best homography
    between them, over the outer eye-corner distance: near 0 for a flat picture (measured:
    0.04 at most), 0.08 and more for a head turned by 10 to 25 degrees."""
    homography, _ = cv2.findHomography(first, second, 0)
    if homography is None:
        return 0.0
    carried = cv2.perspectiveTransform(first.reshape(-1, 1, 2), homography).reshape(-1, 2)
    eyes = float(np.linalg.norm(second[36] - second[45])) or 1.0
    return float(np.sqrt(((carried - second) ** 2).sum(axis=1).mean()) / eyes)
