"""CPU time of one identity verification (document + N live frames), on real photographs and
a rendered specimen passport: `python tests/bench/bench_identity.py [--frames 4] [--runs 5]`.

Prints the CPU time (this process and its Tesseract children) per verification (median and
worst of the runs), split into the document's zone reading and the faces, and the model loading
once. Single-threaded: dlib and
Tesseract each use one core here (OMP_THREAD_LIMIT=1 for Tesseract).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from datetime import date
from pathlib import Path

os.environ.setdefault("OMP_THREAD_LIMIT", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.identity.conftest import _load, frozen_today, mirrored, portrait
from tests.support import face_photos
from tests.support.specimens import Holder, jpeg, passport_zone, photographed, render

from sharelock.identity import (
    DOCUMENT_LIMITS,
    FRAME_LIMITS,
    DlibFaceEngine,
    HeldIdentity,
    IdentityVerifier,
    TesseractMrzReader,
    decode_image,
    read_zone,
)


def cpu() -> float:
    """This process's CPU seconds and its finished children's (each Tesseract run is one)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    directory = face_photos.ensure()
    obama, obama2, obama3 = (_load(directory / f"{n}.jpg") for n in ("obama", "obama2", "obama3"))

    start = cpu()
    engine, reader = DlibFaceEngine(), TesseractMrzReader()
    loading = cpu() - start

    holder = Holder("MARTIN", "ALICE MARIE", date(1990, 2, 15))
    zone = passport_zone(holder, "12AB34567", date(2032, 1, 1))
    box = engine.faces(obama3)[0].box
    document = jpeg(photographed(render(zone, portrait(obama3, box), "PASSPORT"), angle=2.0), 85)
    cycle = [obama, obama2, obama, mirrored(obama2)]
    frames = [jpeg(cycle[i % len(cycle)]) for i in range(args.frames)]
    held = HeldIdentity("Alice Marie", "Martin", date(1990, 2, 15))
    verifier = IdentityVerifier(reader, engine, clock=frozen_today())

    totals, zones, faces = [], [], []
    for _ in range(args.runs):
        start = cpu()
        result = verifier.verify(document, frames, held)
        totals.append(cpu() - start)
        assert result.evidence.verified, result.evidence.to_claims()
        image = decode_image(document, DOCUMENT_LIMITS, "document")
        start = cpu()
        read_zone(reader, image, date(2026, 5, 1))
        zones.append(cpu() - start)
        decoded = [decode_image(frame, FRAME_LIMITS, "frame") for frame in frames]
        start = cpu()
        for frame in [image, *decoded]:
            engine.faces(frame)
        faces.append(cpu() - start)

    def ms(values: list[float]) -> str:
        return (
            f"median {statistics.median(values) * 1000:.0f} ms, worst {max(values) * 1000:.0f} ms"
        )

    print(f"model loading (once per process): {loading * 1000:.0f} ms CPU")
    print(f"verification, document + {args.frames} frames: {ms(totals)} CPU")
    print(f"  of which zone reading (OpenCV and Tesseract): {ms(zones)}")
    print(f"  of which faces (document + frames): {ms(faces)}")


if __name__ == "__main__":
    main()
