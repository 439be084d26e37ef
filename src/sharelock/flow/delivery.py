"""The partner's side of a share: pushed requests, code exchange, and the one-time delivery.

Delivery order (Vault's rule "a request fails if it cannot be audited"): the `data_delivered`
row is committed first, with the token's digest as a unique key, then the token and the data
are taken from Redis (GETDEL) and returned. Two concurrent calls with one token: the database
lets one row in; the other caller gets `invalid_token` and a `delivery_conflict` row. If the
database is down, nothing is taken: the partner gets a 503 and may retry.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sharelock.audit import AuditUnavailable, DuplicateDelivery, EventType
from sharelock.config import Settings
from sharelock.flow import expiry
from sharelock.flow.consent import flow_ref
from sharelock.flow.ports import AsyncAudit
from sharelock.oauth import pkce
from sharelock.oauth.authorization import AuthorizationRequest
from sharelock.oauth.errors import InvalidGrant, InvalidRequest, InvalidToken
from sharelock.oauth.tokens import REQUEST_URI_PREFIX, digest, new_handle
from sharelock.store import SealedStore

log = logging.getLogger("sharelock.delivery")


def _at(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


class DeliveryService:
    def __init__(self, settings: Settings, store: SealedStore, audit: AsyncAudit) -> None:
        self.settings = settings
        self.store = store
        self.audit = audit

    # -- PAR (RFC 9126) -----------------------------------------------------------------

    async def push(self, request: AuthorizationRequest) -> dict[str, Any]:
        lifetime = self.settings.retention.pushed_request.total_seconds()
        handle = new_handle(32)
        await self.store.put_json(
            "par", digest(handle), request.to_json(), expire_at=_at(time.time() + lifetime)
        )
        return {"request_uri": REQUEST_URI_PREFIX + handle, "expires_in": int(lifetime)}

    async def pull(self, request_uri: str, client_id: str) -> AuthorizationRequest | None:
        """The pushed request, once; None if unknown, used, expired or another client's."""
        if not request_uri.startswith(REQUEST_URI_PREFIX):
            return None
        stored = await self.store.take_json("par", digest(request_uri[len(REQUEST_URI_PREFIX) :]))
        if stored is None:
            return None
        request = AuthorizationRequest.from_json(stored)
        return request if request.client_id == client_id else None

    # -- token endpoint -----------------------------------------------------------------

    async def exchange(
        self, client_id: str, form: Mapping[str, str], received_at: float | None = None
    ) -> dict[str, Any]:
        """A token for a code, once. `received_at` is when the request reached the broker: a
        request already under way when the code was redeemed is a concurrent duplicate
        (refused), not a replay after a completed exchange (refused, and the token revoked)."""
        received_at = time.time() if received_at is None else received_at
        code = form.get("code", "")
        verifier = form.get("code_verifier", "")
        redirect_uri = form.get("redirect_uri", "")
        if not code or not redirect_uri:
            raise InvalidRequest("code and redirect_uri are required")
        if not verifier:
            raise InvalidRequest("code_verifier is required (PKCE)")
        code_digest = digest(code)
        # GETDEL: whatever happens next, this code cannot be tried again.
        grant = await self.store.take_json("code", code_digest)
        if grant is None:
            await self._replayed_code(code_digest, client_id, received_at)
            raise InvalidGrant("the code is invalid, expired or already used")
        if grant["client_id"] != client_id:
            raise InvalidGrant("the code was not issued to this client")
        if grant["redirect_uri"] != redirect_uri:
            raise InvalidGrant("redirect_uri does not match the authorization request")
        if not pkce.verify(verifier, grant["code_challenge"]):
            raise InvalidGrant("code_verifier does not match the code_challenge")
        token = new_handle(32)
        now = time.time()
        expires_at = min(
            now + self.settings.retention.access_token.total_seconds(),
            float(grant["release_expires_at"]),
        )
        token_digest = digest(token)
        await self.store.put_json(
            "token",
            token_digest,
            {
                "flow_id": grant["flow_id"],
                "client_id": client_id,
                "data_source": grant["data_source"],
                "login_hash": grant["login_hash"],
                "scopes": grant["scopes"],
            },
            expire_at=_at(expires_at),
        )
        await self.store.put_json(
            "code-used",
            code_digest,
            {"token": token_digest, "issued_at": time.time()},
            expire_at=_at(expires_at),
        )
        return {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": max(1, int(expires_at - now)),
            "scope": " ".join(grant["scopes"]),
        }

    async def _replayed_code(self, code_digest: str, client_id: str, received_at: float) -> None:
        """A code used again after a completed exchange: revoke what that exchange issued
        (RFC 6749 §4.1.2). Requests that were already under way when it completed (a burst of
        parallel exchanges, checklist 24) are refused without revoking the one token issued."""
        used = await self.store.get_json("code-used", code_digest)
        if used is None:
            return
        if received_at < float(used["issued_at"]):
            log.warning("authorization code sent by concurrent requests; one was served")
            return
        used = await self.store.take_json("code-used", code_digest)
        if used is None:
            return
        await self.store.delete("token", str(used["token"]))
        log.warning("authorization code replayed; the token it issued is revoked")
        await self.audit.record(
            EventType.SECURITY_ALERT, client_id=client_id, outcome="code_replayed"
        )

    async def revoke_exposed(self, token: str) -> bool:
        """Revoke an access token seen outside the Authorization header (a query string or a
        form body, RFC 6750 §2.2-2.3, §5.3): URLs and bodies end up in logs, proxies and
        browser history, so the token must be considered leaked. The data it would have
        released goes with it: nothing can fetch it any more. True if a live token was
        revoked; only then is a `security_alert` row written (garbage costs no audit row)."""
        # Revoked before the alert is written: an audit outage must not keep it alive.
        grant = await self.store.take_json("token", digest(token))
        if grant is None:
            return False
        await self.store.delete("release", grant["flow_id"])
        log.warning("an access token was sent outside the Authorization header; revoked")
        await self.audit.record(
            EventType.SECURITY_ALERT,
            client_id=grant["client_id"],
            flow_ref=flow_ref(grant["flow_id"]),
            outcome="token_exposed",
        )
        return True

    # -- delivery -----------------------------------------------------------------------

    async def deliver(self, token: str) -> dict[str, Any]:
        token_digest = digest(token)
        grant = await self.store.get_json("token", token_digest)
        if grant is None:
            await self._second_fetch(token_digest)
            raise InvalidToken("the access token is invalid, expired or already used")
        row = {
            "client_id": grant["client_id"],
            "data_source": grant["data_source"],
            "login_hash": grant["login_hash"],
            "flow_ref": flow_ref(grant["flow_id"]),
        }
        try:
            await self.audit.record(
                EventType.DATA_DELIVERED, outcome="delivered", delivery_key=token_digest, **row
            )
        except DuplicateDelivery:
            await self._conflict(row)
            raise InvalidToken("the access token was already used") from None
        if await self.store.take("token", token_digest) is None:
            # Unreachable while the unique key holds, kept as a second lock on the door.
            await self._conflict(row)
            raise InvalidToken("the access token was already used")
        release = await self.store.take_json("release", grant["flow_id"])
        await self.store.delete("flow", grant["flow_id"])
        if release is None:
            raise InvalidGrant("the shared data has expired")
        await self.store.index_remove(
            expiry.INDEX, expiry.member(flow_ref(grant["flow_id"]), grant["client_id"])
        )
        await self._keep_identity(grant["flow_id"], release)
        return {
            "client_id": grant["client_id"],
            "data_source": release["data_source"],
            "scopes": release["scopes"],
            "data": release["data"],
            "delivered_at": datetime.now(UTC).isoformat(),
        }

    async def _second_fetch(self, token_digest: str) -> None:
        """A token that already delivered: the alert "double fetch" (checklist 34), as a
        `delivery_conflict` row tied to the first delivery."""
        try:
            delivered = await self.audit.delivery(token_digest)
        except AuditUnavailable:
            log.error("could not look up a refused token's delivery")
            return
        if delivered is None:
            return
        log.warning("an access token was presented again after its delivery")
        await self._conflict(
            {
                "client_id": delivered.client_id,
                "data_source": delivered.data_source,
                "login_hash": delivered.login_hash,
                "flow_ref": delivered.flow_ref,
            }
        )

    async def _conflict(self, row: Mapping[str, Any]) -> None:
        try:
            await self.audit.record(EventType.DELIVERY_CONFLICT, outcome="refused", **row)
        except AuditUnavailable:
            log.error("could not record a delivery conflict")

    async def _keep_identity(self, flow_id: str, release: Mapping[str, Any]) -> None:
        """Identity data kept for identity verification (SPEC retention table), sealed, 72 h."""
        identity = release["data"].get("identity")
        if not identity:
            return
        expires = time.time() + self.settings.retention.identity_data.total_seconds()
        await self.store.put_json(
            "identity", flow_ref(flow_id), {"identity": identity}, expire_at=_at(expires)
        )
