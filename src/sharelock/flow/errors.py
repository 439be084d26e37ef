"""Errors of the consent flow, each mapped to one HTTP status in `sharelock.web.errors`."""

from __future__ import annotations

from sharelock.errors import SharelockError


class FlowError(SharelockError):
    status = 400
    error = "invalid_request"

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class FlowNotFound(FlowError):
    """Unknown flow, or its session expired (Redis dropped it at the 1-hour cap)."""

    status = 404
    error = "session_expired"


class FlowForbidden(FlowError):
    """The request does not carry the session cookie this flow is bound to."""

    status = 403
    error = "forbidden"


class FlowConflict(FlowError):
    """The step does not fit the flow's status (e.g. a decision before collection)."""

    status = 409
    error = "conflict"
