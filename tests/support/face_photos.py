"""Real face photographs for the identity tests, from package registries (never drawn, never
fetched from an arbitrary address):

- `face_recognition` 1.3.0's source distribution on PyPI ships its test photographs: four
  different photographs of Barack Obama (two of them cropped) and one of Joe Biden;
- `@vladmandic/face-api` 1.7.15 on npm ships six group photographs (`demo/sample*.jpg`): the
  people in one photograph are different people; whether someone appears in two of them is not
  known, so pairs across photographs are never used;
- scikit-image ships `astronaut()` (Eileen Collins), loaded by the tests themselves.

`ensure()` fetches both packages once with pip and npm into `var/test-material/face-photos/`
(git ignores `var/`), under a file lock for parallel workers, and returns the directory.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "var" / "test-material" / "face-photos"
PYPI_PACKAGE = "face_recognition==1.3.0"
NPM_PACKAGE = "@vladmandic/face-api@1.7.15"

# Person -> their photographs (file names in the cache).
PERSONS = {
    "obama": (
        "obama.jpg",
        "obama2.jpg",
        "obama3.jpg",
        "obama_partial_face.jpg",
        "obama_partial_face2.jpg",
    ),
    "biden": ("biden.jpg",),
}
GROUP_PHOTOS = tuple(f"sample{number}.jpg" for number in range(1, 7))


def _extract(archive: Path, member_dir: str, names: tuple[str, ...], target: Path) -> None:
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            name = Path(member.name).name
            if member.isfile() and name in names and member_dir in member.name:
                source = tar.extractfile(member)
                assert source is not None
                (target / name).write_bytes(source.read())


def _fetch(target: Path) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary",
             "face_recognition", "--dest", scratch, PYPI_PACKAGE],
            check=True,
        )  # fmt: skip
        sdist = next(Path(scratch).glob("face_recognition-*.tar.gz"))
        _extract(sdist, "tests/test_images", PERSONS["obama"] + PERSONS["biden"], target)
        subprocess.run(
            ["npm", "pack", "--silent", "--pack-destination", scratch, NPM_PACKAGE],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        tarball = next(Path(scratch).glob("vladmandic-face-api-*.tgz"))
        _extract(tarball, "demo/", GROUP_PHOTOS, target)


def ensure() -> Path:
    done = CACHE / ".complete"
    if done.exists():
        return CACHE
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    with (CACHE.parent / ".face-photos.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(CACHE, ignore_errors=True)
            CACHE.mkdir()
            _fetch(CACHE)
            missing = [
                name
                for name in (*PERSONS["obama"], *PERSONS["biden"], *GROUP_PHOTOS)
                if not (CACHE / name).is_file()
            ]
            if missing:
                raise RuntimeError(f"face photographs missing from the packages: {missing}")
            done.touch()
    return CACHE


if __name__ == "__main__":
    print(ensure())
