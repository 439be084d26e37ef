"""The optional account below the HTTP layer, on the real parts: SoftHSM (sealing), Redis
(challenges, sessions), SQL (SQLite, and PostgreSQL when configured), with an authenticator
in software (`tests/support/passkeys.py`) whose signatures are real.

Every refusal of a ceremony is proven against an answer that is right in every other respect:
a replayed challenge, another origin, another relying party id, a counter going back, no user
verification, a passkey no account holds. Then the account's life: the recovery code (once),
removing a passkey, revoking a source (its material erased), the export, and the deletion
(audited first; refused, with nothing erased, when the audit row cannot be written; the same
passkey refused after).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text, update

from sharelock.accounts import (
    AccountParts,
    AccountService,
    CeremonyExpired,
    CeremonyRefused,
    InvalidRecoveryCode,
    LastPasskey,
    MaterialUnreadable,
    RecoveryOnly,
    SignedIn,
    SourceBinding,
    UnknownPasskey,
    account_ref,
    open_material,
)
from sharelock.accounts.rows import Passkey, record_use
from sharelock.audit import AuditTrail, AuditUnavailable, EventType
from sharelock.clock import FrozenClock
from sharelock.config import Retention, Settings
from sharelock.db import AccountPasskeyRow, AccountRow, AccountSourceRow, AuditEventRow
from sharelock.flow import AsyncAudit, AsyncPartners, Records
from sharelock.keys import KeyLayer
from sharelock.registry import PartnerRegistry
from sharelock.retention import run_retention
from sharelock.store import SealedStore
from tests.support.passkeys import SoftAuthenticator, b64
from tests.support.redis_server import RedisServer

ISSUER = "http://localhost:8765"
ORIGIN = ISSUER
LOGIN_HASH = "hmac-sha256:" + "ab" * 32
PLANTED = b'{"session_token":"Plant-resync-7f3a-token"}'


@pytest.fixture
async def service(
    settings: Settings, key_layer: KeyLayer, redis_server: RedisServer, engine: Engine
) -> AsyncIterator[AccountService]:
    configured = settings.model_copy(update={"issuer": ISSUER})
    store = SealedStore.from_url(
        redis_server.url, key_layer, configured.retention, namespace="accounts"
    )
    parts = AccountParts(
        configured,
        key_layer,
        Records(store, configured.retention, FrozenClock()),
        engine,
        AsyncAudit(AuditTrail(engine)),
        AsyncPartners(PartnerRegistry(engine)),
        {"sandbox-bank": "Banque Sandbox"},
        FrozenClock(),
    )
    try:
        yield AccountService(parts)
    finally:
        await store.aclose()


async def create(service: AccountService, passkey: SoftAuthenticator) -> tuple[SignedIn, str]:
    started = await service.start_creation("My phone")
    created = await service.finish_creation(
        started.ceremony, passkey.create(started.public_key, ORIGIN)
    )
    signed = await service.signed_in(created.session)
    assert signed is not None and not signed.recovery
    return signed, created.recovery_code


async def sign_in(service: AccountService, passkey: SoftAuthenticator, **lie: Any) -> str:
    started = await service.start_sign_in()
    return await service.finish_sign_in(
        started.ceremony, passkey.get(started.public_key, lie.pop("origin", ORIGIN), **lie)
    )


def rows(engine: Engine, table: Any, **where: Any) -> list[Any]:
    query = select(table)
    for name, value in where.items():
        query = query.where(getattr(table, name) == value)
    with engine.connect() as connection:
        return list(connection.execute(query).all())


def passkey_row(row: Any) -> Passkey:
    return Passkey(
        row.id,
        row.account_id,
        row.credential_id,
        row.public_key,
        row.sign_count,
        tuple(row.transports),
        row.label,
        row.created_at,
        row.last_used_at,
    )


def audit_events(engine: Engine, account_id: str) -> list[str]:
    query = (
        select(AuditEventRow.event)
        .where(AuditEventRow.flow_ref == account_ref(account_id))
        .order_by(AuditEventRow.id)
    )
    with engine.connect() as connection:
        return list(connection.scalars(query))


# -- the ceremonies --------------------------------------------------------------------------


async def test_a_new_account_signs_in_with_its_passkey(
    service: AccountService, engine: Engine
) -> None:
    passkey = SoftAuthenticator()
    started = await service.start_creation("My phone")
    options = started.public_key
    assert options["rp"] == {"id": "localhost", "name": "Sharelock"}
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert options["authenticatorSelection"]["residentKey"] == "preferred"
    assert options["attestation"] == "none"
    signed, code = await create(service, passkey)
    assert re.fullmatch(r"([A-Z2-7]{4}-){7}[A-Z2-7]{4}", code)

    (account,) = rows(engine, AccountRow)
    assert account.id == signed.account_id and account.recovery_hash != code
    (stored,) = rows(engine, AccountPasskeyRow, account_id=account.id)
    assert (stored.label, stored.sign_count, stored.transports) == ("My phone", 0, ["internal"])

    session = await sign_in(service, passkey)
    assert (await service.signed_in(session)) == SignedIn(session, account.id, False)
    assert rows(engine, AccountPasskeyRow)[0].sign_count == 1
    # The audit trail names the account by a digest, never by its id.
    assert audit_events(engine, account.id) == ["account_created"]
    with engine.connect() as connection:
        dumped = repr(connection.execute(select(AuditEventRow.__table__)).all())
    assert account.id not in dumped


async def test_a_challenge_serves_once(service: AccountService) -> None:
    passkey = SoftAuthenticator()
    await create(service, passkey)
    started = await service.start_sign_in()
    answer = passkey.get(started.public_key, ORIGIN)
    assert await service.finish_sign_in(started.ceremony, answer)
    with pytest.raises(CeremonyExpired):
        await service.finish_sign_in(started.ceremony, answer)
    # The same answer under a fresh ceremony: the signed challenge is not the new one.
    fresh = await service.start_sign_in()
    with pytest.raises(CeremonyRefused) as refused:
        await service.finish_sign_in(fresh.ceremony, answer)
    assert refused.value.reason == "challenge"
    # A registration ceremony cannot be finished as a sign-in, nor the other way round.
    creation = await service.start_creation()
    with pytest.raises(CeremonyExpired):
        await service.finish_sign_in(creation.ceremony, answer)


@pytest.mark.parametrize(
    ("lie", "reason"),
    [
        ({"origin": "http://evil.example"}, "origin"),
        ({"origin": "http://localhost:8766"}, "origin"),
        ({"rp_id": "evil.example"}, "rp_id"),
        ({"verified": False}, "user_verification"),
    ],
)
async def test_a_lying_sign_in_is_refused(
    service: AccountService, lie: dict[str, Any], reason: str
) -> None:
    passkey = SoftAuthenticator()
    await create(service, passkey)
    with pytest.raises(CeremonyRefused) as refused:
        await sign_in(service, passkey, **lie)
    assert refused.value.reason == reason
    assert "evil" not in str(refused.value)  # what the browser sent is not echoed
    assert await sign_in(service, passkey)  # the honest answer passes


@pytest.mark.parametrize(
    ("lie", "reason"),
    [
        ({"origin": "http://evil.example"}, "origin"),
        ({"rp_id": "evil.example"}, "rp_id"),
        ({"verified": False}, "user_verification"),
    ],
)
async def test_a_lying_registration_creates_nothing(
    service: AccountService, engine: Engine, lie: dict[str, Any], reason: str
) -> None:
    lie = dict(lie)  # the parametrised dict is shared by every database's run
    started = await service.start_creation()
    answer = SoftAuthenticator().create(started.public_key, lie.pop("origin", ORIGIN), **lie)
    with pytest.raises(CeremonyRefused) as refused:
        await service.finish_creation(started.ceremony, answer)
    assert refused.value.reason == reason
    assert rows(engine, AccountRow) == [] and rows(engine, AccountPasskeyRow) == []


async def test_a_counter_going_back_is_a_cloned_passkey(
    service: AccountService, engine: Engine
) -> None:
    passkey = SoftAuthenticator()
    await create(service, passkey)
    assert await sign_in(service, passkey, counter=5)
    with pytest.raises(CeremonyRefused) as refused:
        await sign_in(service, passkey, counter=3)
    assert refused.value.reason == "sign_count"
    with pytest.raises(CeremonyRefused):
        await sign_in(service, passkey, counter=5)  # not moving is refused too
    assert rows(engine, AccountPasskeyRow)[0].sign_count == 5
    assert await sign_in(service, passkey, counter=6)


async def test_a_passkey_no_account_holds_is_refused(service: AccountService) -> None:
    await create(service, SoftAuthenticator())
    stranger = SoftAuthenticator(user_handle=b"ac_" + b"0" * 32)
    with pytest.raises(UnknownPasskey):
        await sign_in(service, stranger)


async def test_one_authenticator_registers_once(service: AccountService) -> None:
    passkey = SoftAuthenticator()
    signed, _ = await create(service, passkey)
    started = await service.start_adding(signed)
    excluded = [item["id"] for item in started.public_key["excludeCredentials"]]
    assert excluded == [b64(passkey.credential_id)]
    with pytest.raises(CeremonyRefused) as refused:
        await service.finish_adding(
            signed, started.ceremony, passkey.create(started.public_key, ORIGIN)
        )
    assert refused.value.reason == "already_registered"


# -- the recovery code ---------------------------------------------------------------------


async def test_the_recovery_code_serves_once_and_only_to_add_a_passkey(
    service: AccountService, engine: Engine
) -> None:
    lost = SoftAuthenticator()
    signed, code = await create(service, lost)
    with pytest.raises(InvalidRecoveryCode):
        await service.recover("AAAA-" * 7 + "AAAA")
    session = await service.recover(code.lower().replace("-", " "))
    recovering = await service.signed_in(session)
    assert recovering is not None and recovering.recovery
    assert rows(engine, AccountRow)[0].recovery_hash is None
    with pytest.raises(InvalidRecoveryCode):
        await service.recover(code)
    with pytest.raises(RecoveryOnly):
        await service.holdings.export(recovering)

    replacement = SoftAuthenticator()
    started = await service.start_adding(recovering, "New laptop")
    new_code = await service.finish_adding(
        recovering, started.ceremony, replacement.create(started.public_key, ORIGIN)
    )
    assert new_code is not None and new_code != code
    now_full = await service.signed_in(session)
    assert now_full is not None and not now_full.recovery
    assert await sign_in(service, replacement)
    assert await service.recover(new_code)
    assert audit_events(engine, signed.account_id) == [
        "account_created",
        "account_recovered",
        "account_passkey_added",
        "account_recovered",
    ]


async def test_the_last_passkey_stays_while_no_recovery_code_is_left(
    service: AccountService, engine: Engine
) -> None:
    first = SoftAuthenticator()
    signed, _ = await create(service, first)
    started = await service.start_adding(signed, "Second")
    second = SoftAuthenticator()
    assert (
        await service.finish_adding(
            signed, started.ceremony, second.create(started.public_key, ORIGIN)
        )
        is None  # the account still has its code: none is issued
    )
    view = await service.holdings.overview(signed)
    ids = [p["id"] for p in view["passkeys"]]
    await service.holdings.remove_passkey(signed, ids[0])
    with pytest.raises(UnknownPasskey):
        await sign_in(service, first)
    with engine.begin() as connection:  # the code used up, no new passkey yet
        connection.execute(update(AccountRow).values(recovery_hash=None))
    with pytest.raises(LastPasskey):
        await service.holdings.remove_passkey(signed, ids[1])
    assert await sign_in(service, second)
    assert audit_events(engine, signed.account_id)[-1] == "account_passkey_removed"


# -- sources, export, deletion ----------------------------------------------------------------


async def test_a_revoked_source_loses_its_material_at_once(
    service: AccountService, engine: Engine, key_layer: KeyLayer
) -> None:
    signed, _ = await create(service, SoftAuthenticator())
    source_id = await service.holdings.connect_source(
        signed.account_id, "sandbox-bank", LOGIN_HASH, PLANTED
    )
    (row,) = rows(engine, AccountSourceRow)
    assert PLANTED not in row.sealed_material and b"Plant-resync" not in row.sealed_material
    binding = SourceBinding(source_id, signed.account_id, "sandbox-bank", LOGIN_HASH)
    with open_material(key_layer, row.sealed_material, binding) as opened:
        assert bytes(opened._buffer) == PLANTED  # the honest binding opens it
    # A stolen row moved to another account, or another login, does not open.
    for moved in (
        SourceBinding(source_id, "ac_" + "1" * 32, "sandbox-bank", LOGIN_HASH),
        SourceBinding(source_id, signed.account_id, "sandbox-bank", "hmac-sha256:" + "cd" * 32),
        SourceBinding("as_" + "2" * 32, signed.account_id, "sandbox-bank", LOGIN_HASH),
    ):
        with pytest.raises(MaterialUnreadable):
            open_material(key_layer, row.sealed_material, moved)

    view = await service.holdings.overview(signed)
    (shown,) = view["sources"]
    assert shown["data_source"] == {"id": "sandbox-bank", "name": "Banque Sandbox"}
    assert shown["last_sync_at"] is None and shown["sync_consent"] is False
    assert "login_hash" not in repr(view) and LOGIN_HASH not in repr(view)
    await service.holdings.revoke_source(signed, source_id)
    assert rows(engine, AccountSourceRow) == []
    with engine.connect() as connection:
        revoked = connection.execute(
            select(AuditEventRow.data_source, AuditEventRow.login_hash).where(
                AuditEventRow.event == EventType.ACCOUNT_SOURCE_REVOKED.value
            )
        ).one()
    assert tuple(revoked) == ("sandbox-bank", LOGIN_HASH)


async def test_the_export_holds_everything_but_the_material(
    service: AccountService, engine: Engine
) -> None:
    signed, _ = await create(service, SoftAuthenticator())
    await service.holdings.connect_source(signed.account_id, "sandbox-bank", LOGIN_HASH, PLANTED)
    source_id = (await service.holdings.overview(signed))["sources"][0]["id"]
    assert await service.holdings.set_sync(signed, source_id, True)
    document = await service.holdings.export(signed)
    assert document["format"] == "sharelock-account-export/1"
    assert [p["label"] for p in document["passkeys"]] == ["My phone"]
    assert document["passkeys"][0]["credential_id"]
    assert [(c["purpose"], c["data_source"]) for c in document["consents"]] == [
        ("account", None),
        ("source", "sandbox-bank"),
        ("sync", "sandbox-bank"),
    ]
    assert document["sources"][0]["material"] == "sealed in the HSM"
    assert "Plant-resync" not in repr(document) and LOGIN_HASH not in repr(document)
    assert audit_events(engine, signed.account_id)[-1] == "account_exported"


async def test_a_deleted_account_is_audited_first_and_its_passkey_refused(
    service: AccountService, engine: Engine
) -> None:
    passkey = SoftAuthenticator()
    signed, code = await create(service, passkey)
    await service.holdings.connect_source(signed.account_id, "sandbox-bank", LOGIN_HASH, PLANTED)

    _refuse_audit_rows(engine)
    with pytest.raises(AuditUnavailable):
        await service.holdings.delete(signed)
    assert len(rows(engine, AccountRow)) == 1  # nothing erased without its audit row
    _accept_audit_rows(engine)

    await service.holdings.delete(signed)
    for table in (AccountRow, AccountPasskeyRow, AccountSourceRow):
        assert rows(engine, table) == []
    with engine.connect() as connection:
        consents = connection.scalar(text("SELECT count(*) FROM account_consents"))
        assert consents == 0
        assert connection.scalar(select(func.count()).select_from(AccountRow)) == 0
    assert audit_events(engine, signed.account_id) == ["account_created", "account_deleted"]
    assert await service.signed_in(signed.handle) is None
    with pytest.raises(UnknownPasskey):
        await sign_in(service, passkey)
    with pytest.raises(InvalidRecoveryCode):
        await service.recover(code)


def _refuse_audit_rows(engine: Engine) -> None:
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            connection.execute(
                text(
                    "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events "
                    "BEGIN SELECT RAISE(ABORT, 'refused'); END"
                )
            )
        else:
            connection.execute(
                text(
                    "CREATE FUNCTION refuse_audit() RETURNS trigger AS "
                    "$$ BEGIN RAISE EXCEPTION 'refused'; END $$ LANGUAGE plpgsql"
                )
            )
            connection.execute(
                text(
                    "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_audit()"
                )
            )


def _accept_audit_rows(engine: Engine) -> None:
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            connection.execute(text("DROP TRIGGER refuse_audit"))
        else:
            connection.execute(text("DROP TRIGGER refuse_audit ON audit_events"))


# -- retention ---------------------------------------------------------------------------------


async def test_an_unused_account_expires_with_everything_it_holds(
    service: AccountService, engine: Engine, key_layer: KeyLayer
) -> None:
    """Time is the retention run's `now` (injected); the audit trace is kept longer than the
    account here, so that the run's own audit rows stay to be read."""
    passkey = SoftAuthenticator()
    signed, _ = await create(service, passkey)
    other, _ = await create(service, SoftAuthenticator())
    await service.holdings.connect_source(signed.account_id, "sandbox-bank", LOGIN_HASH, PLANTED)
    created = service.parts.now()
    retention = Retention(audit_trace=timedelta(days=800))
    assert retention.account == timedelta(days=396)  # 13 months, the default

    # The other account is used 200 days later (as a sign-in moves it): its 13 months
    # start again from there.
    (other_key,) = [p for p in rows(engine, AccountPasskeyRow) if p.account_id == other.account_id]
    used = passkey_row(other_key)
    assert record_use(engine, used, 7, created + timedelta(days=200))

    def run(days: float) -> int:
        report = run_retention(
            engine,
            key_layer,
            retention=retention,
            issuer=ISSUER,
            now=created + timedelta(days=days),
        )
        limits = {limit["name"]: limit for limit in report.limits}
        assert limits["account"]["limit_seconds"] == 396 * 86400
        assert report.to_json()["accounts"]["unused_deleted"] == report.accounts_purged
        return report.accounts_purged

    assert run(395) == 0
    assert len(rows(engine, AccountRow)) == 2
    assert run(396.01) == 1
    assert [a.id for a in rows(engine, AccountRow)] == [other.account_id]
    for table in (AccountPasskeyRow, AccountSourceRow):
        assert all(r.account_id == other.account_id for r in rows(engine, table))
    with engine.connect() as connection:
        deleted = connection.execute(
            select(AuditEventRow.actor, AuditEventRow.outcome).where(
                AuditEventRow.event == EventType.ACCOUNT_DELETED.value,
                AuditEventRow.flow_ref == account_ref(signed.account_id),
            )
        ).one()
    assert tuple(deleted) == ("operator", "unused")
    with pytest.raises(UnknownPasskey):
        await sign_in(service, passkey)
    assert run(500) == 0  # idempotent; the other account's 13 months are not over
    assert run(200 + 396.01) == 1
    assert rows(engine, AccountRow) == []
