"""A person's rights without an account (access, erasure, portability): `RightsService`, and
`ProofService` for the proof of control of a data-source account."""

from sharelock.rights.proofs import PROOF_LIFETIME, ProofNotFound, ProofService
from sharelock.rights.service import (
    RightsService,
    Subject,
    UnknownDataSource,
    person_rows,
)

__all__ = [
    "PROOF_LIFETIME",
    "ProofNotFound",
    "ProofService",
    "RightsService",
    "Subject",
    "UnknownDataSource",
    "person_rows",
]
