"""Faces: detection, landmarks and embeddings with dlib's models as the
`face-recognition-models` package ships them (the `dlib-bin` wheel runs them; nothing is
downloaded at run time).

- detection: dlib's HOG frontal-face detector;
- landmarks: the 68-point shape predictor (the 6 points the pose needs, and the alignment of
  the embedding);
- embedding: dlib's ResNet face-recognition model (128 numbers; two photos of one person are
  usually within 0.6 of each other in Euclidean distance, dlib's own threshold: Sharelock uses
  a stricter one, `VerificationPolicy.face_match_threshold`, measured in
  docs/identity-verification.md).

A `Face` holds its embedding and landmarks privately: they are compared, never shown (`repr`
gives the box and the yaw only), never serialised, and go when the `Face` does. The models are
loaded once per `DlibFaceEngine` (about a second); calls are not made from several threads at
once.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cv2
import dlib
import numpy as np
from numpy.typing import NDArray

from sharelock.identity.errors import EngineUnavailable
from sharelock.identity.images import RgbImage
from sharelock.identity.pose import planar_residual, yaw_degrees

_MODEL_FILES = {
    "landmarks": "shape_predictor_68_face_landmarks.dat",
    "embedding": "dlib_face_recognition_resnet_model_v1.dat",
}
_DETECT_SIDE = 800  # detection runs on the image scaled to this longest side at most


@dataclass(frozen=True, eq=False, repr=False)
class Face:
    box: tuple[int, int, int, int]  # left, top, right, bottom in the image given
    yaw: float | None  # degrees, see `pose.yaw_degrees`; None when the pose cannot be solved
    _embedding: NDArray[np.float64] = field(repr=False)
    _landmarks: NDArray[np.float64] = field(repr=False)  # 68 x 2, for the parallax test

    def distance(self, other: Face) -> float:
        """Euclidean distance between the two embeddings: lower is likelier the same person."""
        return float(np.linalg.norm(self._embedding - other._embedding))

    def parallax(self, other: Face) -> float:
        """How far the two faces' landmarks are from views of one flat picture
        (`pose.planar_residual`)."""
        return planar_residual(self._landmarks, other._landmarks)

    def __repr__(self) -> str:
        yaw = "None" if self.yaw is None else f"{self.yaw:.0f}"
        return f"Face(box={self.box}, yaw={yaw})"


class FaceEngine(Protocol):
    def faces(self, image: RgbImage) -> list[Face]:
        """Every face found in `image`, largest first."""
        ...


def models_directory() -> Path:
    """Where `face-recognition-models` keeps its files, found without importing it (its
    `__init__` imports `pkg_resources`, which new setuptools no longer ship)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise EngineUnavailable("the face-recognition-models package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


class DlibFaceEngine:
    """`FaceEngine` on dlib."""

    def __init__(self, models: Path | None = None) -> None:
        directory = models or models_directory()
        paths = {name: directory / file for name, file in _MODEL_FILES.items()}
        missing = [name for name, path in paths.items() if not path.is_file()]
        if missing:
            raise EngineUnavailable(f"face model files missing: {', '.join(missing)}")
        self._detector = dlib.get_frontal_face_detector()
        self._landmarks = dlib.shape_predictor(str(paths["landmarks"]))
        self._embedder = dlib.face_recognition_model_v1(str(paths["embedding"]))

    def faces(self, image: RgbImage) -> list[Face]:
        scale = min(1.0, _DETECT_SIDE / max(image.shape[:2]))
        small: NDArray[Any] = image
        if scale < 1.0:
            small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        # One upsampling: faces down to about 40 pixels (a card's photo, a distant selfie).
        found = sorted(self._detector(small, 1), key=lambda box: box.area(), reverse=True)
        faces = []
        for small_box in found:
            box = dlib.rectangle(
                int(small_box.left() / scale),
                int(small_box.top() / scale),
                int(small_box.right() / scale),
                int(small_box.bottom() / scale),
            )
            shape = self._landmarks(image, box)
            points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
            embedding = np.array(self._embedder.compute_face_descriptor(image, shape))
            faces.append(
                Face(
                    box=(box.left(), box.top(), box.right(), box.bottom()),
                    yaw=yaw_degrees(points, image.shape[1], image.shape[0]),
                    _embedding=embedding,
                    _landmarks=points,
                )
            )
        return faces

    def __repr__(self) -> str:
        return "DlibFaceEngine()"
