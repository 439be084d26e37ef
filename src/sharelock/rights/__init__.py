"""A person's rights without an account (access, erasure, portability): `RightsService`."""

from sharelock.rights.service import (
    ReceiptRequired,
    RightsService,
    Subject,
    UnknownDataSource,
    person_rows,
)

__all__ = ["ReceiptRequired", "RightsService", "Subject", "UnknownDataSource", "person_rows"]
