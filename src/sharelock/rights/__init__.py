"""A person's rights without an account (seed 003, chapter 10): `RightsService` (access,
erasure, export), `RightsDesk` (who answers for the data, and the rights only a partner can
fully honour: rectification, objection, restriction, erasure of what it received, withdrawal
of consent, forwarding to another controller; tracked in `rights_requests` with a reference
and a one-month deadline), and `ProofService` for the proof of control of a data-source
account."""

from sharelock.rights.desk import RightsDesk, overdue
from sharelock.rights.errors import (
    AlreadyAnswered,
    RequestNotFound,
    RightsError,
    RightsUnavailable,
    UnknownRecipient,
)
from sharelock.rights.proofs import PROOF_LIFETIME, ProofNotFound, ProofService
from sharelock.rights.requests import (
    KINDS,
    STATUSES,
    RightsRequest,
    one_month_after,
    subject_ref,
)
from sharelock.rights.requests import listed as list_requests
from sharelock.rights.service import (
    RightsService,
    Subject,
    UnknownDataSource,
    person_rows,
)

__all__ = [
    "KINDS",
    "PROOF_LIFETIME",
    "STATUSES",
    "AlreadyAnswered",
    "ProofNotFound",
    "ProofService",
    "RequestNotFound",
    "RightsDesk",
    "RightsError",
    "RightsRequest",
    "RightsService",
    "RightsUnavailable",
    "Subject",
    "UnknownDataSource",
    "UnknownRecipient",
    "list_requests",
    "one_month_after",
    "overdue",
    "person_rows",
    "subject_ref",
]
