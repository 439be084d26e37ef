"""Webhooks: signed Security Event Tokens (RFC 8417) pushed to partners (RFC 8935) about
their shares and the rights people ask of them, from a durable queue in Redis.

The audit trail is the outbox (`Relay`); a Redis stream with a consumer group is the queue
(`WebhookQueue`); `Sender` signs in the HSM, pushes, retries with back-off and jitter
(`Backoff`) for `SHARELOCK_WEBHOOK_RETRY_HORIZON`, then keeps dead letters for the operator
(`sharelock webhooks list|replay`). `Webhooks` and `webhooks_forever` are what `serve` runs.

Public surface: those classes, `Event` (a queued event) and `Attempt` (one push, for
listeners), the event types and their URI namespace, `set_claims` and `SET_TYPE`, and the
HTTP media type.
"""

from sharelock.webhooks.backoff import Backoff
from sharelock.webhooks.events import (
    CONSENT_WITHDRAWN,
    ERASURE_REQUESTED,
    EVENT_TYPES,
    EVENT_URI_PREFIX,
    RIGHTS_REQUEST,
    SET_TYPE,
    SHARE_DELIVERED,
    SHARE_EXPIRED,
    SHARE_REFUSED,
    Event,
    jti_of,
    set_claims,
)
from sharelock.webhooks.push import MEDIA_TYPE
from sharelock.webhooks.queue import KEYS, Listing, WebhookQueue
from sharelock.webhooks.relay import Relay
from sharelock.webhooks.sender import Attempt, Encrypter, Sender
from sharelock.webhooks.service import Webhooks, webhooks_forever

__all__ = [
    "CONSENT_WITHDRAWN",
    "ERASURE_REQUESTED",
    "EVENT_TYPES",
    "EVENT_URI_PREFIX",
    "KEYS",
    "MEDIA_TYPE",
    "RIGHTS_REQUEST",
    "SET_TYPE",
    "SHARE_DELIVERED",
    "SHARE_EXPIRED",
    "SHARE_REFUSED",
    "Attempt",
    "Backoff",
    "Encrypter",
    "Event",
    "Listing",
    "Relay",
    "Sender",
    "WebhookQueue",
    "Webhooks",
    "jti_of",
    "set_claims",
    "webhooks_forever",
]
