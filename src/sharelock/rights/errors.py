"""Errors of the person's rights, each with the HTTP answer it gets (`sharelock.web.errors`).
Messages are fixed text: never a login, a receipt, a proof or a value the person typed."""

from __future__ import annotations

from sharelock.errors import ServiceUnavailable, SharelockError


class RightsError(SharelockError):
    """A rights request refused; `status`, `error` and the message are the JSON answer."""

    status = 400
    error = "invalid_request"


class UnknownRecipient(RightsError):
    """The online service named is not one this person's traces show a share with."""

    error = "unknown_partner"


class RequestNotFound(RightsError):
    """No rights request of this partner under this reference."""

    status = 404
    error = "not_found"


class AlreadyAnswered(RightsError):
    """The request was answered already; an answer is final."""

    status = 409
    error = "already_answered"


class RightsUnavailable(RightsError, ServiceUnavailable):
    """The rights requests cannot be read or written (database down, read-only, …)."""

    status = 503
    error = "temporarily_unavailable"
