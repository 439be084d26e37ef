"""Getting into an account: creating one with a passkey, signing in with a passkey or with the
recovery code, adding a passkey, and the signed-in sessions.

Each ceremony is two requests: options (a fresh challenge, kept sealed in Redis under a
handle the page sends back) and the browser's answer, verified against the challenge taken
from Redis (GETDEL: used once, whatever the outcome). A session is a random handle in an
HttpOnly cookie; Redis holds its digest and the account id, for `Retention.account_session`.

Every change is audited: a new account or passkey once its row is written (and undone if the
audit row cannot be), the use of a recovery code before the code is erased.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sharelock.accounts.ceremonies import CEREMONY, SESSION, AccountSession, Ceremony, Purpose
from sharelock.accounts.context import AccountParts, SignedIn
from sharelock.accounts.errors import (
    CeremonyExpired,
    CeremonyRefused,
    InvalidRecoveryCode,
    PasskeysUnavailable,
    UnknownPasskey,
)
from sharelock.accounts.holdings import Holdings
from sharelock.accounts.passkeys import (
    NewPasskey,
    Options,
    RelyingParty,
    authentication_options,
    parse_assertion,
    registration_options,
    verify_assertion,
    verify_registration,
)
from sharelock.accounts.recovery import code_hash, new_recovery_code
from sharelock.accounts.rows import (
    PasskeyToKeep,
    account_for_recovery,
    add_passkey,
    create_account,
    delete_account,
    find_passkey,
    get_account,
    new_account_id,
    passkeys_of,
    record_use,
    remove_passkey,
    use_recovery,
)
from sharelock.audit import EventType
from sharelock.blocking import run_blocking
from sharelock.oauth import digest, new_handle

MAX_HANDLE_LENGTH = 128
MAX_LABEL_LENGTH = 60


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def clean_label(label: str | None, default: str) -> str:
    """A passkey's name as the person gave it: one line, at most 60 characters."""
    text = " ".join((label or "").split())[:MAX_LABEL_LENGTH]
    return "".join(c for c in text if c.isprintable()) or default


@dataclass(frozen=True, slots=True, repr=False)
class Started:
    """A ceremony begun: the handle the page sends back, and the options for the browser."""

    ceremony: str
    public_key: dict[str, Any]

    def __repr__(self) -> str:
        return "Started()"


@dataclass(frozen=True, slots=True, repr=False)
class Created:
    """A new account: its session (the cookie's value) and its recovery code, shown once."""

    session: str
    recovery_code: str

    def __repr__(self) -> str:
        return "Created()"


class AccountService:
    def __init__(self, parts: AccountParts) -> None:
        self.parts = parts
        settings = parts.settings
        self.relying_party = RelyingParty.from_issuer(settings.issuer, settings.controller_name)
        self.holdings = Holdings(parts)

    def __repr__(self) -> str:
        return f"AccountService({self.relying_party!r})"

    @property
    def available(self) -> bool:
        """Whether passkeys can work here (the issuer's host is a name, not an address)."""
        return self.relying_party is not None

    @property
    def session_seconds(self) -> int:
        return int(self.parts.lifetime(SESSION).total_seconds())

    def _rp(self) -> RelyingParty:
        if self.relying_party is None:
            raise PasskeysUnavailable("passkeys need the broker's issuer to be a domain name")
        return self.relying_party

    def _user_name(self) -> str:
        return f"{self.parts.settings.controller_name} ({self.parts.now():%Y-%m-%d})"

    # -- ceremonies ------------------------------------------------------------------------

    async def _begin(
        self, purpose: Purpose, options: Options, account_id: str | None, label: str
    ) -> Started:
        handle = new_handle(32)
        ceremony = Ceremony(purpose, b64url(options.challenge), account_id, label)
        await self.parts.records.put(
            CEREMONY, digest(handle), ceremony, until=self.parts.until(CEREMONY)
        )
        return Started(handle, options.public_key)

    async def _take(self, handle: str, purpose: Purpose) -> tuple[Ceremony, bytes]:
        if not handle or len(handle) > MAX_HANDLE_LENGTH:
            raise CeremonyExpired("no passkey ceremony under this handle")
        ceremony = await self.parts.records.take(CEREMONY, digest(handle))
        if ceremony is None or ceremony.purpose != purpose:
            raise CeremonyExpired("no passkey ceremony under this handle")
        return ceremony, unb64url(ceremony.challenge)

    def _keep(self, new: NewPasskey, label: str) -> PasskeyToKeep:
        return PasskeyToKeep(
            b64url(new.credential_id), new.public_key, new.sign_count, new.transports, label
        )

    # -- creating an account -----------------------------------------------------------------

    async def start_creation(self, label: str | None = None) -> Started:
        account_id = new_account_id()
        options = registration_options(
            self._rp(), user_id=account_id.encode("ascii"), user_name=self._user_name()
        )
        return await self._begin("create", options, account_id, clean_label(label, "Passkey"))

    async def finish_creation(self, handle: str, credential: Mapping[str, Any]) -> Created:
        ceremony, challenge = await self._take(handle, "create")
        assert ceremony.account_id is not None
        new = verify_registration(self._rp(), credential, challenge)
        code = new_recovery_code()
        hashed = code_hash(code)
        assert hashed is not None
        account_id, now = ceremony.account_id, self.parts.now()
        keep = self._keep(new, ceremony.label)
        await run_blocking(create_account, self.parts.engine, account_id, keep, hashed, now)
        try:
            await self.parts.audit_change(EventType.ACCOUNT_CREATED, account_id)
        except BaseException:
            await run_blocking(delete_account, self.parts.engine, account_id)
            raise
        return Created(await self._open_session(account_id), code)

    # -- signing in ----------------------------------------------------------------------------

    async def start_sign_in(self) -> Started:
        return await self._begin("sign_in", authentication_options(self._rp()), None, "")

    async def finish_sign_in(self, handle: str, credential: Mapping[str, Any]) -> str:
        """A session handle for the account whose passkey answered."""
        _, challenge = await self._take(handle, "sign_in")
        assertion = parse_assertion(credential)
        engine = self.parts.engine
        passkey = await run_blocking(find_passkey, engine, b64url(assertion.credential_id))
        if passkey is None:
            raise UnknownPasskey("this passkey belongs to no account here")
        new_count = verify_assertion(
            self._rp(),
            assertion,
            challenge,
            public_key=passkey.public_key,
            sign_count=passkey.sign_count,
            user_handle=passkey.account_id.encode("ascii"),
        )
        if not await run_blocking(record_use, engine, passkey, new_count, self.parts.now()):
            # Another sign-in moved the counter meanwhile: the same answer twice, or a clone.
            raise CeremonyRefused("sign_count")
        return await self._open_session(passkey.account_id)

    async def recover(self, code: str) -> str:
        """Sign in with the recovery code, which is used up: the session may only add a
        passkey (which gives a new code)."""
        hashed = code_hash(code)
        engine = self.parts.engine
        account_id = (
            None if hashed is None else await run_blocking(account_for_recovery, engine, hashed)
        )
        if hashed is None or account_id is None:
            raise InvalidRecoveryCode("this recovery code is not one this broker holds")
        await self.parts.audit_change(EventType.ACCOUNT_RECOVERED, account_id)
        if not await run_blocking(use_recovery, engine, account_id, hashed, self.parts.now()):
            raise InvalidRecoveryCode("this recovery code is not one this broker holds")
        return await self._open_session(account_id, recovery=True)

    # -- sessions ----------------------------------------------------------------------------

    async def _open_session(self, account_id: str, recovery: bool = False) -> str:
        handle = new_handle(32)
        await self.parts.records.put(
            SESSION,
            digest(handle),
            AccountSession(account_id, recovery),
            until=self.parts.until(SESSION),
        )
        return handle

    async def signed_in(self, handle: str | None) -> SignedIn | None:
        """The account this browser is signed in to, if its session is live and the account
        still exists."""
        if not handle or len(handle) > MAX_HANDLE_LENGTH:
            return None
        session = await self.parts.records.get(SESSION, digest(handle))
        if session is None:
            return None
        if await run_blocking(get_account, self.parts.engine, session.account_id) is None:
            await self.parts.records.delete(SESSION, digest(handle))
            return None
        return SignedIn(handle, session.account_id, session.recovery)

    async def sign_out(self, signed: SignedIn) -> None:
        await self.end_session(signed.handle)

    async def end_session(self, handle: str | None) -> None:
        """Forget a session (the one a browser held before signing in again, say)."""
        if handle and len(handle) <= MAX_HANDLE_LENGTH:
            await self.parts.records.delete(SESSION, digest(handle))

    # -- another passkey ---------------------------------------------------------------------

    async def start_adding(self, signed: SignedIn, label: str | None = None) -> Started:
        known = await run_blocking(passkeys_of, self.parts.engine, signed.account_id)
        options = registration_options(
            self._rp(),
            user_id=signed.account_id.encode("ascii"),
            user_name=self._user_name(),
            exclude=[unb64url(p.credential_id) for p in known],
        )
        default = f"Passkey {len(known) + 1}"
        return await self._begin("add", options, signed.account_id, clean_label(label, default))

    async def finish_adding(
        self, signed: SignedIn, handle: str, credential: Mapping[str, Any]
    ) -> str | None:
        """Register the new passkey; a new recovery code (shown once) when the session came in
        with the old one, or the account has none left."""
        ceremony, challenge = await self._take(handle, "add")
        if ceremony.account_id != signed.account_id:
            raise CeremonyExpired("no passkey ceremony under this handle")
        new = verify_registration(self._rp(), credential, challenge)
        engine, now = self.parts.engine, self.parts.now()
        account = await run_blocking(get_account, engine, signed.account_id)
        if account is None:
            raise CeremonyExpired("the account is gone")
        code = new_recovery_code() if signed.recovery or not account.has_recovery else None
        hashed = code_hash(code) if code is not None else None
        keep = self._keep(new, ceremony.label)
        passkey_id = await run_blocking(add_passkey, engine, account.id, keep, now, hashed)
        try:
            await self.parts.audit_change(EventType.ACCOUNT_PASSKEY_ADDED, account.id)
        except BaseException:
            await run_blocking(remove_passkey, engine, account.id, passkey_id)
            raise
        if signed.recovery:
            # A full session now, ending when the recovery session would have.
            ends = await self.parts.records.expires(SESSION, digest(signed.handle))
            if ends is not None:
                await self.parts.records.put(
                    SESSION,
                    digest(signed.handle),
                    AccountSession(account.id),
                    until=ends.timestamp(),
                )
        return code
