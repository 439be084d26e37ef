"""The partner's side of a share: pushed requests, code exchange, and the one-time delivery.

Delivery order (Vault's rule "a request fails if it cannot be audited"): the token and the data
are read, the `data_delivered` row is committed with the token's digest as a unique key, and
only then is the data returned and erased from Redis (`DeliveryService.deliver` says why this
order releases at most once, never without a row, and what a Redis failure after the row
leaves). If the database is down, nothing is taken: the partner gets a 503 and may retry.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import replace
from typing import Any, NoReturn

from sharelock.audit import AuditUnavailable, DuplicateDelivery, EventType
from sharelock.clock import Clock, utc
from sharelock.config import Settings
from sharelock.errors import ServiceUnavailable
from sharelock.flow import expiry
from sharelock.flow.packaging import Packaged, package
from sharelock.flow.ports import AsyncAudit, AsyncPartners
from sharelock.flow.record_types import Delivering, IdentityKept, Release
from sharelock.flow.records import (
    CODE,
    CODE_USED,
    DELIVERING,
    FLOW,
    IDENTITY,
    PUSHED_REQUEST,
    RELEASE,
    TOKEN,
    Kind,
    Put,
    Records,
    handle_in_slot_of,
)
from sharelock.flow.state import flow_ref
from sharelock.keys import KeyLayer
from sharelock.oauth import (
    REQUEST_URI_PREFIX,
    AuthorizationRequest,
    CodeUse,
    InvalidGrant,
    InvalidToken,
    TokenGrant,
    TokenRequest,
    check_redemption,
    digest,
    new_handle,
)

log = logging.getLogger("sharelock.delivery")


def _row(grant: TokenGrant) -> dict[str, Any]:
    """The audit row's fields for a delivery of `grant`."""
    return {
        "client_id": grant.client_id,
        "data_source": grant.data_source,
        "login_hash": grant.login_hash,
        "flow_ref": flow_ref(grant.flow_id),
    }


def _check_binding(grant: TokenGrant, jkt: str | None) -> None:
    """`InvalidToken` unless the request presents the token as it was issued: with a DPoP
    proof by its key if it is bound (`cnf.jkt`), as a bearer token otherwise."""
    if grant.jkt is None:
        if jkt is not None:
            raise InvalidToken("a bearer token is presented with the Bearer scheme")
        return
    if jkt is None:
        raise InvalidToken(
            "this token is DPoP-bound: present it with the DPoP scheme and a proof", scheme="DPoP"
        )
    if not hmac.compare_digest(jkt, grant.jkt):
        raise InvalidToken("the DPoP proof's key is not the token's", scheme="DPoP")


class DeliveryService:
    def __init__(
        self,
        settings: Settings,
        records: Records,
        audit: AsyncAudit,
        clock: Clock,
        *,
        keys: KeyLayer,
        partners: AsyncPartners,
    ) -> None:
        self.settings = settings
        self.records = records
        self.audit = audit
        self.clock = clock
        self.keys = keys
        self.partners = partners
        # Told of each delivery by data source id (the metrics).
        self.on_delivery: list[Callable[[str], None]] = []

    # -- PAR (RFC 9126) -----------------------------------------------------------------

    async def push(self, request: AuthorizationRequest) -> dict[str, Any]:
        lifetime = self.settings.retention.pushed_request.total_seconds()
        handle = new_handle(32)
        flow_id = new_handle(24)
        await self.records.put(PUSHED_REQUEST, digest(handle), replace(request, flow_id=flow_id))
        return {
            "request_uri": REQUEST_URI_PREFIX + handle,
            "expires_in": int(lifetime),
            # What webhook events and the audit trail call this share (docs/partner-guide.md,
            # "Webhooks"): a digest of the flow's id, which stays secret.
            "flow_ref": flow_ref(flow_id),
        }

    async def pull(self, request_uri: str, client_id: str) -> AuthorizationRequest | None:
        """The pushed request, once; None if unknown, used, expired or another client's."""
        if not request_uri.startswith(REQUEST_URI_PREFIX):
            return None
        handle = request_uri[len(REQUEST_URI_PREFIX) :]
        request = await self.records.take(PUSHED_REQUEST, digest(handle))
        if request is None:
            return None
        return request if request.client_id == client_id else None

    # -- token endpoint -----------------------------------------------------------------

    async def exchange(
        self,
        client_id: str,
        form: Mapping[str, str],
        received_at: float | None = None,
        *,
        jkt: str | None = None,
    ) -> dict[str, Any]:
        """A token for a code, once. `received_at` is when the request reached the broker: a
        request already under way when the code was redeemed is a concurrent duplicate
        (refused), not a replay after a completed exchange (refused, and the token revoked).
        `jkt` is the thumbprint of the key of the request's verified DPoP proof: the token is
        then bound to it (`token_type` DPoP), and it must be the key bound at PAR if any."""
        received_at = self.clock.now() if received_at is None else received_at
        request = TokenRequest.from_form(form)
        code_digest = digest(request.code)
        # GETDEL: whatever happens next, this code cannot be tried again.
        grant = await self.records.take(CODE, code_digest)
        if grant is None:
            await self._replayed_code(code_digest, client_id, received_at)
            raise InvalidGrant("the code is invalid, expired or already used")
        check_redemption(grant, client_id, request)
        if grant.dpop_jkt is not None and (
            jkt is None or not hmac.compare_digest(jkt, grant.dpop_jkt)
        ):
            raise InvalidGrant("the DPoP proof's key is not the one bound at the pushed request")
        token = handle_in_slot_of(grant.flow_id)
        now = self.clock.now()
        expires_at = min(
            now + self.settings.retention.access_token.total_seconds(), grant.release_expires_at
        )
        token_digest = digest(token)
        token_grant = TokenGrant(
            flow_id=grant.flow_id,
            client_id=client_id,
            data_source=grant.data_source,
            login_hash=grant.login_hash,
            scopes=grant.scopes,
            jkt=jkt,
        )
        use = CodeUse(token=token_digest, issued_at=self.clock.now())
        # Together or not at all: no token the code's replay could not find and revoke.
        await self.records.put_all(
            [
                Put(TOKEN, token_digest, token_grant, until=expires_at),
                Put(CODE_USED, code_digest, use, until=expires_at),
            ]
        )
        return {
            "access_token": token,
            "token_type": "DPoP" if jkt is not None else "Bearer",
            "expires_in": max(1, int(expires_at - now)),
            "scope": " ".join(grant.scopes),
        }

    async def _replayed_code(self, code_digest: str, client_id: str, received_at: float) -> None:
        """A code used again after a completed exchange: revoke what that exchange issued
        (RFC 6749 §4.1.2). Requests that were already under way when it completed (a burst of
        parallel exchanges, checklist 24) are refused without revoking the one token issued."""
        used = await self.records.get(CODE_USED, code_digest)
        if used is None:
            return
        if received_at < used.issued_at:
            log.warning("authorization code sent by concurrent requests; one was served")
            return
        used = await self.records.take(CODE_USED, code_digest)
        if used is None:
            return
        await self.records.delete(TOKEN, used.token)
        await self.records.delete(DELIVERING, used.token)
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
        grant = await self.records.take(TOKEN, digest(token))
        if grant is not None:
            await self.records.delete(RELEASE, flow_ref(grant.flow_id))
        else:
            # Handed over by a delivery that failed before its row: revoked all the same.
            held = await self.records.take(DELIVERING, digest(token))
            if held is None:
                return False
            grant = held.grant
        log.warning("an access token was sent outside the Authorization header; revoked")
        await self.audit.record(
            EventType.SECURITY_ALERT,
            client_id=grant.client_id,
            flow_ref=flow_ref(grant.flow_id),
            outcome="token_exposed",
        )
        return True

    async def revoke(self, client_id: str, token: str, hint: str | None = None) -> None:
        """Revocation (RFC 7009) of a code or an access token the partner will not use: it
        and the approved data it would have released are erased at once; the flow then ends
        with its expiry row, as a share never collected. Unknown or spent values are ignored
        (the answer is the same); another partner's value is refused, and left alone."""
        handle = digest(token)
        kinds: list[Kind[Any]] = [TOKEN, DELIVERING, CODE]
        if hint == "authorization_code":  # not RFC 7009's list, but where to look first
            kinds = [CODE, TOKEN, DELIVERING]
        for kind in kinds:
            held = await self.records.get(kind, handle)
            if held is None:
                continue
            grant = held.grant if isinstance(held, Delivering) else held
            if grant.client_id != client_id:
                raise InvalidGrant("this value was not issued to this client")
            if await self.records.take(kind, handle) is not None:
                await self.records.delete(RELEASE, flow_ref(grant.flow_id))
                log.info("a %s was revoked by its partner", kind.name)
            return

    # -- delivery -----------------------------------------------------------------------

    async def deliver(self, token: str, jkt: str | None = None) -> Packaged:
        """The approved data, once, for a live token. The order is what makes it safe:

        1. read the token and the release; nothing changes yet;
        2. hand them over, in one Redis script, to a `delivering` record under the token's
           digest: the token, the release and the flow are erased, and of concurrent requests
           only one wins;
        3. commit the `data_delivered` row, unique by the token's digest: the database, not
           Redis, decides the one delivery, so a Redis failover that brings back a token the
           old primary had already handed over cannot release twice (SECURITY-CHECKLIST 46);
        4. erase the `delivering` record and answer with the data.

        A failure between 2 and 3 (Redis or the database down, the node killed) leaves the
        `delivering` record: the partner's retry with the same token, within the token's
        life, finds it and goes on from step 3, so the data still leaves once. After the row
        only the answer remains: no data leaves without its row, and no row is written while
        anything but the answer could still fail.

        `jkt` is the thumbprint of the key of the request's verified DPoP proof (None for a
        Bearer request): a DPoP-bound token is delivered only with a proof by its key, and a
        bearer token only as such (RFC 9449 §7.1); a refusal leaves the token as it was."""
        token_digest = digest(token)
        grant = await self.records.get(TOKEN, token_digest)
        if grant is None:
            return await self._resume(token_digest, jkt)
        _check_binding(grant, jkt)
        ref = flow_ref(grant.flow_id)
        release = await self.records.get(RELEASE, ref)
        if release is None:
            await self._without_release(token_digest, _row(grant))
        claimed = await self.records.hand_over(
            [(TOKEN, token_digest), (RELEASE, ref), (FLOW, grant.flow_id)],
            (DELIVERING, token_digest, Delivering(grant, release)),
            expiry.index_of(ref),
            expiry.member(ref, grant.client_id),
        )
        if not claimed:
            # A concurrent request with the same token handed it over first.
            return await self._resume(token_digest, jkt)
        return await self._release(token_digest, Delivering(grant, release))

    async def _resume(self, token_digest: str, jkt: str | None) -> Packaged:
        """A token no longer live: a delivery that failed before its row is taken up again;
        anything else is refused (and a second fetch after a delivery is recorded)."""
        held = await self.records.get(DELIVERING, token_digest)
        if held is None:
            await self._second_fetch(token_digest)
            raise InvalidToken("the access token is invalid, expired or already used")
        _check_binding(held.grant, jkt)
        return await self._release(token_digest, held)

    async def _release(self, token_digest: str, held: Delivering) -> Packaged:
        grant, release = held.grant, held.release
        row = _row(grant)
        delivery: dict[str, Any] = {
            "client_id": grant.client_id,
            "data_source": release.data_source,
            "scopes": release.scopes,
            "data": release.data,
            "delivered_at": utc(self.clock).isoformat(),
            "flow_ref": flow_ref(grant.flow_id),
        }
        if release.checks:
            delivery["checks"] = release.checks  # docs/checks.md: answers, never the values
        if release.identity_verification is not None:
            # OpenID IA evidence (or the person's refusal); never an image.
            delivery["identity_verification"] = release.identity_verification
        # Signed (and encrypted) before the row: if the HSM cannot sign, nothing is released
        # and the `delivering` record waits for the partner's retry.
        packed = await package(
            delivery,
            await self.partners.get(grant.client_id),
            self.keys,
            self.settings.issuer,
            self.clock.now(),
            release.collected_at,
        )
        try:
            await self.audit.record(
                EventType.DATA_DELIVERED, outcome="delivered", delivery_key=token_digest, **row
            )
        except DuplicateDelivery:
            # Delivered already (by a concurrent request, or before a failover brought the
            # token back): nothing leaves; what is held goes.
            await self._erase_delivered(token_digest, held)
            await self._conflict(row)
            raise InvalidToken("the access token was already used") from None
        await self._erase_delivered(token_digest, held)
        with suppress(ServiceUnavailable):
            await self._keep_identity(grant.flow_id, release)
        for listener in self.on_delivery:
            listener(release.data_source or "unknown")
        return packed

    async def _erase_delivered(self, token_digest: str, held: Delivering) -> None:
        """After the row: erase the `delivering` record and the flow's expiry-index entry. A
        store failure here must not keep the data from leaving: the record expires with the
        token's life, and the unique row refuses any retry meanwhile."""
        ref = flow_ref(held.grant.flow_id)
        try:
            await self.records.end(
                [(DELIVERING, token_digest)],
                expiry.index_of(ref),
                expiry.member(ref, held.grant.client_id),
            )
        except ServiceUnavailable:
            log.warning(
                "delivered, but the store failed while erasing: the rest expires with the token"
            )

    async def _without_release(self, token_digest: str, row: Mapping[str, Any]) -> NoReturn:
        """The token is live but its release is gone (expired with the code's or token's
        life, or taken by a concurrent delivery): no `data_delivered` row, since nothing
        will leave; the token goes too."""
        if await self.records.take(TOKEN, token_digest) is None:
            # Taken meanwhile, by a delivery that also erased the release.
            await self._conflict(row)
            raise InvalidToken("the access token was already used")
        raise InvalidGrant("the shared data has expired")

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

    async def _keep_identity(self, flow_id: str, release: Release) -> None:
        """Identity data kept for identity verification (SPEC retention table), sealed, 72 h
        at most: only for a partner whose declared purpose is identity verification."""
        identity = release.data.get("identity")
        if not identity or not release.keep_identity:
            return
        await self.records.put(IDENTITY, flow_ref(flow_id), IdentityKept(identity))
