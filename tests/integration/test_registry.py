"""The partner registry and `sharelock partners`, on SQLite and (when configured) PostgreSQL.

Client secrets must exist only in the caller's hands: the database, its files and the
registry's objects hold a SHA-256 digest at most (or, for partners registered before that form,
an Argon2id hash until their next successful authentication). What a refusal costs is checked
by counting the work done, never by timing it; `tests/bench/bench_client_auth.py` measures it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from argon2 import PasswordHasher
from sqlalchemy import JSON, Engine, column, func, insert, inspect, select, table, text, update

from sharelock.db import (
    AuditChainHead,
    Base,
    DatabaseUnavailable,
    PartnerRow,
    create_engine_for,
    current_revision,
    head_revision,
    migrate,
)
from sharelock.db.schema import alembic_config
from sharelock.db.types import UTCDateTime
from sharelock.errors import ConfigError, SharelockError
from sharelock.registry import InvalidPartner, Partner, PartnerRegistry, UnknownPartner
from sharelock.registry import partners as partners_module
from tests.support.databases import unreachable_postgres_url

REDIRECT = "https://partner.example/callback"
CLIENT_ID = re.compile(r"sl_[A-Za-z0-9_-]{22}")


@pytest.fixture
def registry(engine: Engine) -> PartnerRegistry:
    return PartnerRegistry(engine)


@pytest.fixture(scope="module")
def sqlite_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PartnerRegistry]:
    """For checks that are refused before the database is touched."""
    engine = create_engine_for(f"sqlite:///{tmp_path_factory.mktemp('reg') / 'r.db'}")
    migrate(engine)
    yield PartnerRegistry(engine)
    engine.dispose()


def _stored(engine: Engine, client_id: str) -> str:
    """The stored form of a partner's client secret, read from the table itself."""
    with engine.connect() as connection:
        value = connection.scalar(
            text("SELECT client_secret_hash FROM partners WHERE client_id = :id"), {"id": client_id}
        )
    assert isinstance(value, str)
    return value


def _set_column(engine: Engine, client_id: str, name: str, value: object) -> None:
    """Write one column of a partner row directly, as an older version (or an operator's SQL)
    would have left it."""
    with engine.begin() as connection:
        changed = connection.execute(
            text(f"UPDATE partners SET {name} = :value WHERE client_id = :id"),
            {"value": value, "id": client_id},
        ).rowcount
    assert changed == 1


def _sha256_form(secret: str) -> str:
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()


def _add(registry: PartnerRegistry, **overrides: Any) -> tuple[Partner, str]:
    arguments: dict[str, Any] = {
        "name": "Acme Bank Onboarding",
        "redirect_uris": [REDIRECT, "http://127.0.0.1:8200/cb"],
        "scopes": ["identity", "address"],
        "purpose": "Open an account",
    }
    arguments.update(overrides)
    return registry.add(**arguments)


# -- migrations ---------------------------------------------------------------------------


def test_migrate_is_idempotent(database_url: str) -> None:
    engine = create_engine_for(database_url)
    try:
        assert current_revision(engine) is None
        migrate(engine)
        migrate(engine)
        migrate(database_url)  # from a URL too
        assert current_revision(engine) == head_revision()
        with engine.connect() as connection:
            assert connection.scalar(select(func.count()).select_from(AuditChainHead)) == 1
            tables = set(inspect(connection).get_table_names())
        assert {"partners", "audit_events", "audit_chain_head", "alembic_version"} <= tables
    finally:
        engine.dispose()


def test_concurrent_migrations_do_not_race(database_url: str) -> None:
    """Several processes starting at once on a fresh database (e.g. server workers)."""
    script = "import sys; from sharelock.db import migrate; migrate(sys.argv[1])"
    runs = [subprocess.Popen([sys.executable, "-c", script, database_url]) for _ in range(3)]
    assert [run.wait(timeout=60) for run in runs] == [0, 0, 0]
    engine = create_engine_for(database_url)
    try:
        assert current_revision(engine) == head_revision()
        with engine.connect() as connection:
            assert connection.scalar(select(func.count()).select_from(AuditChainHead)) == 1
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "not a database URL"),
        ("mysql://root@127.0.0.1/sharelock", "unsupported database 'mysql'"),
    ],
)
def test_bad_database_url_is_a_config_error(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        create_engine_for(url)


def test_unreachable_database_names_it_without_the_password() -> None:
    url = unreachable_postgres_url().replace("postgres@", "postgres:hunter2@")
    with pytest.raises(DatabaseUnavailable) as caught:
        migrate(url)
    message = str(caught.value)
    assert "hunter2" not in message and "postgres:***@127.0.0.1" in message
    assert "Connection refused" in message or "OperationalError" in message


def test_models_match_migrations(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_migration_0004_adds_par_exempt_false_to_existing_partners(database_url: str) -> None:
    engine = create_engine_for(database_url)
    try:
        config = alembic_config()
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0003")
        # A partner as revision 0003 stored it: no par_exempt column yet.
        partners_0003 = table(
            "partners",
            *(column(name) for name in ("client_id", "name", "client_secret_hash")),
            *(column(name) for name in ("purpose", "role", "disabled")),
            column("redirect_uris", JSON()),
            column("scopes", JSON()),
            column("created_at", UTCDateTime()),
        )
        with engine.begin() as connection:
            assert "par_exempt" not in {
                c["name"] for c in inspect(connection).get_columns("partners")
            }
            connection.execute(
                insert(partners_0003).values(
                    client_id="sl_before0004",
                    name="Older Partner",
                    client_secret_hash=_sha256_form("s"),
                    purpose="",
                    role="controller",
                    disabled=False,
                    redirect_uris=[REDIRECT],
                    scopes=["identity"],
                    created_at=datetime.now(UTC),
                )
            )
        migrate(engine)
        assert current_revision(engine) == head_revision()
        with engine.connect() as connection:
            assert connection.scalar(text("SELECT par_exempt FROM partners")) in (False, 0)
        partner = PartnerRegistry(engine).get("sl_before0004")
        assert partner is not None and partner.par_exempt is False
    finally:
        engine.dispose()


# -- add, get, list, authenticate ----------------------------------------------------------


def test_add_get_list(registry: PartnerRegistry) -> None:
    partner, secret = _add(registry, jwks_uri="https://partner.example/jwks.json")
    assert CLIENT_ID.fullmatch(partner.client_id)
    assert len(secret) == 43  # 32 bytes, base64url
    assert partner.name == "Acme Bank Onboarding"
    assert partner.redirect_uris == (REDIRECT, "http://127.0.0.1:8200/cb")
    assert partner.scopes == ("identity", "address")
    assert partner.role == "controller"
    assert partner.created_at.tzinfo is not None
    assert not partner.disabled

    other, other_secret = _add(registry, name="Second", role="processor", scopes=["phone"])
    assert other.client_id != partner.client_id and other_secret != secret

    assert registry.get(partner.client_id) == partner
    assert registry.get("sl_unknown") is None
    assert registry.get("") is None
    assert [p.client_id for p in registry.list()] == [partner.client_id, other.client_id]
    assert registry.list()[1].role == "processor"


def test_authenticate(registry: PartnerRegistry) -> None:
    partner, secret = _add(registry)
    other, other_secret = _add(registry, name="Other")
    assert registry.authenticate(partner.client_id, secret) == partner
    assert registry.authenticate(partner.client_id, secret + "x") is None
    assert registry.authenticate(partner.client_id, "") is None
    assert registry.authenticate(partner.client_id, other_secret) is None
    assert registry.authenticate("sl_doesnotexist0000000000", secret) is None
    assert registry.authenticate("", secret) is None
    assert registry.authenticate(partner.client_id, "x" * 100_000) is None
    assert registry.authenticate(other.client_id, other_secret) == other


def test_disabled_partner_does_not_authenticate(registry: PartnerRegistry, engine: Engine) -> None:
    partner, secret = _add(registry)
    _set_column(engine, partner.client_id, "disabled", True)
    assert registry.authenticate(partner.client_id, secret) is None
    _set_column(engine, partner.client_id, "disabled", False)
    assert registry.authenticate(partner.client_id, secret) == partner


def test_every_outcome_costs_one_digest_and_one_comparison(
    registry: PartnerRegistry, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wrong secret, an unknown client and a disabled one do exactly the work a right
    secret does: one SHA-256 and one constant-time comparison of equal lengths, and never
    Argon2. Counted, not timed, so the test means the same on any machine."""
    partner, secret = _add(registry)
    disabled, disabled_secret = _add(registry, name="Disabled")
    _set_column(engine, disabled.client_id, "disabled", True)

    work: list[object] = []
    real_digest, real_compare = partners_module.secret_digest, hmac.compare_digest

    def digest(value: str) -> str:
        work.append("sha256")
        return real_digest(value)

    def compare(a: bytes, b: bytes) -> bool:
        work.append(("compare_digest", len(a), len(b)))
        return real_compare(a, b)

    def no_argon2(*_: object) -> bool:
        raise AssertionError("Argon2 ran for a partner in the current form")

    monkeypatch.setattr(partners_module, "secret_digest", digest)
    monkeypatch.setattr(hmac, "compare_digest", compare)
    monkeypatch.setattr(PasswordHasher, "verify", no_argon2)
    one_of_each = ["sha256", ("compare_digest", 71, 71)]  # len("sha256:") + 64 hex digits
    cases = [
        (partner.client_id, secret, partner),
        (partner.client_id, secret[:-1] + ("A" if secret[-1] != "A" else "B"), None),
        (partner.client_id, "", None),
        (partner.client_id, "x" * 100_000, None),
        ("sl_doesnotexist0000000000", secret, None),
        (disabled.client_id, disabled_secret, None),
    ]
    for client_id, candidate, expected in cases:
        work.clear()
        assert registry.authenticate(client_id, candidate) == expected
        assert work == one_of_each, (client_id, candidate[:10])


def test_secret_is_stored_only_as_sha256(
    registry: PartnerRegistry, engine: Engine, database_url: str, all_logs: pytest.LogCaptureFixture
) -> None:
    partner, secret = _add(registry)
    registry.authenticate(partner.client_id, secret)
    stored = _stored(engine, partner.client_id)
    assert stored == _sha256_form(secret)
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", stored)
    assert secret not in repr(partner) and stored[7:] not in repr(partner)
    assert not hasattr(partner, "client_secret_hash")

    dumped: list[str] = []
    with engine.connect() as connection:
        for name in inspect(connection).get_table_names():
            rows = connection.execute(text(f"SELECT * FROM {name}")).all()
            dumped.extend(repr(tuple(row)) for row in rows)
    assert all(secret not in line for line in dumped)
    assert secret not in all_logs.text and stored not in all_logs.text

    if database_url.startswith("sqlite"):
        engine.dispose()  # checkpoint the WAL; then read every file SQLite wrote
        path = Path(database_url.removeprefix("sqlite:///"))
        files = [p for p in path.parent.iterdir() if p.name.startswith(path.name)]
        assert files
        for file in files:
            assert secret.encode() not in file.read_bytes(), file


# -- partners registered with an Argon2id hash (before the sha256: form) --------------------


@pytest.fixture
def legacy(registry: PartnerRegistry, engine: Engine) -> tuple[Partner, str, str]:
    """A partner whose row still holds an Argon2id hash of its secret, written into the table
    directly with argon2-cffi's defaults, as earlier versions stored it."""
    partner, _ = _add(registry)
    secret = partners_module.new_client_secret()
    argon2_hash = PasswordHasher().hash(secret)
    _set_column(engine, partner.client_id, "client_secret_hash", argon2_hash)
    return partner, secret, argon2_hash


def test_legacy_argon2_partner_is_verified_then_upgraded(
    registry: PartnerRegistry,
    engine: Engine,
    legacy: tuple[Partner, str, str],
    all_logs: pytest.LogCaptureFixture,
) -> None:
    partner, secret, argon2_hash = legacy
    assert argon2_hash.startswith("$argon2id$")

    assert registry.authenticate(partner.client_id, secret + "x") is None
    assert registry.authenticate(partner.client_id, "") is None
    assert registry.authenticate(partner.client_id, "x" * 100_000) is None
    assert _stored(engine, partner.client_id) == argon2_hash  # wrong secrets upgrade nothing

    assert registry.authenticate(partner.client_id, secret) == partner
    assert _stored(engine, partner.client_id) == _sha256_form(secret)
    assert registry.authenticate(partner.client_id, secret) == partner  # now the cheap path
    assert registry.authenticate(partner.client_id, secret + "x") is None
    assert secret not in all_logs.text


def test_legacy_verifications_run_one_at_a_time(
    registry: PartnerRegistry, engine: Engine, legacy: tuple[Partner, str, str]
) -> None:
    """While another legacy verification holds the slot, a legacy row is refused at once,
    right secret or not, and stays as it is; once the slot is free it works again."""
    partner, secret, argon2_hash = legacy
    with partners_module._LEGACY_SLOT:
        assert registry.authenticate(partner.client_id, secret) is None
    assert _stored(engine, partner.client_id) == argon2_hash
    assert registry.authenticate(partner.client_id, secret) == partner
    assert _stored(engine, partner.client_id) == _sha256_form(secret)


def test_disabled_legacy_partner_costs_no_argon2(
    registry: PartnerRegistry,
    engine: Engine,
    legacy: tuple[Partner, str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    partner, secret, argon2_hash = legacy
    _set_column(engine, partner.client_id, "disabled", True)

    def no_argon2(*_: object) -> bool:
        raise AssertionError("Argon2 ran for a disabled partner")

    monkeypatch.setattr(PasswordHasher, "verify", no_argon2)
    assert registry.authenticate(partner.client_id, secret) is None
    assert _stored(engine, partner.client_id) == argon2_hash


def test_upgrade_does_not_undo_a_rotation(
    registry: PartnerRegistry, engine: Engine, legacy: tuple[Partner, str, str]
) -> None:
    """A legacy verification that finishes after the operator rotated the secret must not
    write the old secret back."""
    partner, secret, argon2_hash = legacy
    new_secret = registry.rotate_secret(partner.client_id)
    registry._upgrade(partner.client_id, argon2_hash, secret)  # the late half of a verification
    assert _stored(engine, partner.client_id) == _sha256_form(new_secret)
    assert registry.authenticate(partner.client_id, secret) is None


# -- rotating a secret ---------------------------------------------------------------------


def test_rotate_secret(registry: PartnerRegistry, engine: Engine) -> None:
    partner, old = _add(registry)
    other, other_secret = _add(registry, name="Other")
    new = registry.rotate_secret(partner.client_id)
    assert new != old and len(new) == 43
    assert _stored(engine, partner.client_id) == _sha256_form(new)
    assert registry.authenticate(partner.client_id, old) is None
    assert registry.authenticate(partner.client_id, new) == partner
    assert registry.authenticate(other.client_id, other_secret) == other  # untouched


def test_rotate_secret_moves_a_legacy_partner_off_argon2(
    registry: PartnerRegistry, engine: Engine, legacy: tuple[Partner, str, str]
) -> None:
    partner, old, _ = legacy
    new = registry.rotate_secret(partner.client_id)
    assert _stored(engine, partner.client_id) == _sha256_form(new)
    assert registry.authenticate(partner.client_id, old) is None
    assert registry.authenticate(partner.client_id, new) == partner


@pytest.mark.parametrize("client_id", ["sl_doesnotexist0000000000", "", "sl_" + "x" * 100])
def test_rotate_secret_of_unknown_partner_is_refused(
    registry: PartnerRegistry, client_id: str
) -> None:
    _add(registry)
    with pytest.raises(UnknownPartner, match="no partner with that client id"):
        registry.rotate_secret(client_id)


# -- the PAR exception ---------------------------------------------------------------------


def test_par_exempt_is_stored_and_off_by_default(registry: PartnerRegistry) -> None:
    plain, _ = _add(registry)
    exempt, _ = _add(registry, name="Legacy Shop", par_exempt=True)
    assert plain.par_exempt is False and exempt.par_exempt is True
    assert [p.par_exempt for p in registry.list()] == [False, True]
    found = registry.get(exempt.client_id)
    assert found is not None and found.par_exempt is True


# -- refused registrations -----------------------------------------------------------------

BAD_REDIRECTS = [
    ("http://partner.example/cb", "http is allowed only for loopback"),
    ("http://127.0.0.1.nip.io/cb", "http is allowed only for loopback"),
    ("http://localhost.evil.example/cb", "http is allowed only for loopback"),
    ("https://partner.example/cb#section", "fragment"),
    ("https://partner.example/cb#", "fragment"),
    ("https://user:pw@partner.example/cb", "user information"),
    ("https://partner.example@evil.example/cb", "user information"),
    ("/callback", "absolute https"),
    ("partner.example/cb", "absolute https"),
    ("ftp://partner.example/cb", "absolute https"),
    ("javascript:alert(1)", "absolute https"),
    ("com.example.app:/cb", "absolute https"),
    ("https:///cb", "no host"),
    ("https://partner.example/a b", "spaces"),
    ("https://partner.example/cb\n", "control characters"),
    ("https://partner.example\\@evil.example/", "'\\'"),
    ("https://partner.example:99999/cb", "not a valid URL"),
    ("https://evil%2eexample/cb", "invalid host"),
    ("", "non-empty"),
    ("https://partner.example/" + "a" * 2000, "longer than"),
]


@pytest.mark.parametrize(("uri", "message"), BAD_REDIRECTS)
def test_bad_redirect_uri_is_refused(
    sqlite_registry: PartnerRegistry, uri: str, message: str
) -> None:
    with pytest.raises(InvalidPartner, match=re.escape(message)) as caught:
        _add(sqlite_registry, redirect_uris=[REDIRECT, uri])
    assert str(caught.value).startswith("redirect_uri")
    assert isinstance(caught.value, SharelockError) and isinstance(caught.value, ValueError)
    assert sqlite_registry.list() == []


GOOD_REDIRECTS = [
    "https://partner.example/cb",
    "https://partner.example/cb?tenant=1",
    "https://Partner.Example:8443/CB/",
    "http://127.0.0.1:8200/callback",
    "http://localhost/cb",
    "http://[::1]:9000/cb",
    "https://partner.example/caf%C3%A9",
]


def test_good_redirect_uris_are_stored_exactly(registry: PartnerRegistry) -> None:
    partner, _ = _add(registry, redirect_uris=[*GOOD_REDIRECTS, GOOD_REDIRECTS[0]])
    stored = registry.get(partner.client_id)
    assert stored is not None and stored.redirect_uris == tuple(GOOD_REDIRECTS)


def test_no_redirect_uri_is_refused(sqlite_registry: PartnerRegistry) -> None:
    with pytest.raises(InvalidPartner, match="redirect_uri: at least one"):
        _add(sqlite_registry, redirect_uris=[])


@pytest.mark.parametrize(
    ("scopes", "message"),
    [
        (["openid"], "scope 'openid': unknown; expected one of identity, address"),
        (["identity", "Identity"], "scope 'Identity': unknown"),
        (["identity address"], "scope 'identity address': unknown"),
        ([], "scope: at least one is required"),
    ],
)
def test_bad_scopes_are_refused(
    sqlite_registry: PartnerRegistry, scopes: list[str], message: str
) -> None:
    with pytest.raises(InvalidPartner, match=re.escape(message)):
        _add(sqlite_registry, scopes=scopes)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"name": "  "}, "name: must not be empty"),
        ({"name": "Acme\x1b[31m"}, "name: contains control characters"),
        ({"role": "owner"}, "role 'owner': expected one of controller, processor, joint"),
        ({"logo_url": "http://cdn.example/logo.png"}, "logo_url"),
        ({"jwks_uri": "https://p.example/jwks", "jwks": {"keys": []}}, "not both"),
        ({"jwks": {"keys": []}}, "at least one key"),
        ({"jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}, "private key material (k)"),
        ({"jwks": {"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB", "d": "AQ"}]}}, "(d)"),
        ({"jwks": {"keys": [{"kty": "nonsense"}]}}, "not a valid JWK Set"),
    ],
)
def test_bad_fields_are_refused(
    sqlite_registry: PartnerRegistry, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidPartner, match=re.escape(message)):
        _add(sqlite_registry, **overrides)


def test_public_jwks_is_kept(registry: PartnerRegistry) -> None:
    from joserfc.jwk import RSAKey

    public = RSAKey.generate_key(2048, private=False).as_dict(private=False)
    partner, _ = _add(registry, jwks={"keys": [public]})
    stored = registry.get(partner.client_id)
    assert stored is not None and stored.jwks == {"keys": [public]}


# -- the command line ---------------------------------------------------------------------


def _sharelock(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("sharelock")
    return subprocess.run(
        [str(script), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_cli_partners_add_and_list(database_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "SHARELOCK_STATE_DIR": str(tmp_path / "state"), "COLUMNS": "200"}
    env.pop("SHARELOCK_DATABASE_URL", None)
    if not database_url.startswith("sqlite"):
        env["SHARELOCK_DATABASE_URL"] = database_url
    added = _sharelock(
        env,
        "partners", "add",
        "--name", "Demo Shop",
        "--redirect-uri", "http://127.0.0.1:8200/callback",
        "--redirect-uri", "https://shop.example/cb",
        "--scope", "identity",
        "--scope", "address, email",
        "--purpose", "Deliver orders",
        "--profile", "basic",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    shown = json.loads(added.stdout)
    secret = shown["client_secret"]
    assert CLIENT_ID.fullmatch(shown["client_id"])
    assert shown["name"] == "Demo Shop"
    assert shown["redirect_uris"] == ["http://127.0.0.1:8200/callback", "https://shop.example/cb"]
    assert shown["scopes"] == ["identity", "address", "email"]

    listed = _sharelock(env, "partners", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    partners = json.loads(listed.stdout)
    assert [p["client_id"] for p in partners] == [shown["client_id"]]
    assert secret not in listed.stdout and "sha256:" not in listed.stdout
    assert "client_secret" not in partners[0]
    assert partners[0]["par_exempt"] is False

    table = _sharelock(env, "partners", "list")
    assert table.returncode == 0, table.stderr
    assert shown["client_id"] in table.stdout and "Demo Shop" in table.stdout
    assert secret not in table.stdout

    engine = create_engine_for(
        database_url
        if "SHARELOCK_DATABASE_URL" in env
        else f"sqlite:///{tmp_path}/state/sharelock.db"
    )
    try:
        found = PartnerRegistry(engine).authenticate(shown["client_id"], secret)
        assert found is not None and found.scopes == ("identity", "address", "email")
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--redirect-uri", "http://shop.example/cb", "--scope", "identity"], "redirect_uri"),
        (["--redirect-uri", "https://shop.example/cb", "--scope", "openid"], "scope 'openid'"),
    ],
)
def test_cli_bad_input_is_one_error_line(tmp_path: Path, args: list[str], message: str) -> None:
    env = {**os.environ, "SHARELOCK_STATE_DIR": str(tmp_path / "state")}
    env.pop("SHARELOCK_DATABASE_URL", None)
    result = _sharelock(env, "partners", "add", "--name", "Shop", *args)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]
    assert "Traceback" not in result.stderr


def test_a_broker_remembers_a_partner_a_few_seconds_then_sees_changes(engine: Engine) -> None:
    """The partner cache (`cache_seconds`): within its time a lookup needs no query; a change
    made by another process (here: the table itself) is seen once it has passed, and a
    rotation made through this registry is seen at once."""
    now = [1000.0]
    cached = PartnerRegistry(engine, cache_seconds=5.0, clock=lambda: now[0])
    other = PartnerRegistry(engine)
    partner, secret = other.add("Cached", ["https://cached.example/cb"], ["identity"])
    assert cached.from_cache(partner.client_id) == (False, None)  # not looked up yet
    assert cached.get(partner.client_id) is not None
    hit, seen = cached.from_cache(partner.client_id)  # what AsyncPartners answers on the loop
    assert hit and seen is not None and seen.client_id == partner.client_id
    with engine.begin() as connection:
        connection.execute(
            update(PartnerRow)
            .where(PartnerRow.client_id == partner.client_id)
            .values(disabled=True)
        )
    assert cached.get(partner.client_id) is not None  # remembered
    now[0] += 5.1
    assert cached.from_cache(partner.client_id) == (False, None)  # stale: to the database
    assert cached.get(partner.client_id) is None  # seen as disabled once the time has passed
    assert cached.from_cache(partner.client_id) == (True, None)  # remembered as disabled
    with engine.begin() as connection:
        connection.execute(
            update(PartnerRow)
            .where(PartnerRow.client_id == partner.client_id)
            .values(disabled=False)
        )
    now[0] += 5.1
    assert cached.authenticate(partner.client_id, secret) is not None
    new_secret = cached.rotate_secret(partner.client_id)
    assert cached.authenticate(partner.client_id, secret) is None  # at once, here
    assert cached.authenticate(partner.client_id, new_secret) is not None
    # Made-up client ids are never remembered.
    for n in range(50):
        assert cached.get(f"sl_unknown{n}") is None
    assert len(cached._cache) == 1


# -- profiles and delivery formats (issue 14) --------------------------------------------------

_EC_SIG = {
    "kty": "EC",
    "crv": "P-256",
    "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
    "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
}


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"profile": "fapi2"}, "--jwks-file"),  # private_key_jwt needs the partner's keys
        ({"profile": "fapi2", "jwks": {"keys": [_EC_SIG]}, "par_exempt": True}, "requires PAR"),
        ({"profile": "oidc"}, "profile 'oidc'"),
        ({"delivery_format": "jwe", "jwks": {"keys": [_EC_SIG]}}, "use: enc"),
        ({"signed_requests": True}, "--jwks-file"),
    ],
)
def test_profile_rules_are_checked_at_registration(
    sqlite_registry: PartnerRegistry, overrides: dict[str, Any], named: str
) -> None:
    with pytest.raises(InvalidPartner, match=re.escape(named)):
        _add(sqlite_registry, **overrides)


def test_a_fapi2_partner_is_stored_with_its_choices(sqlite_registry: PartnerRegistry) -> None:
    enc = {**_EC_SIG, "use": "enc", "kid": "e1"}
    partner, _ = _add(
        sqlite_registry,
        profile="fapi2",
        jwks={"keys": [_EC_SIG, enc]},
        delivery_format="jwe",
        signed_requests=True,
    )
    stored = sqlite_registry.get(partner.client_id)
    assert stored is not None
    assert (stored.profile, stored.delivery_format, stored.signed_requests) == (
        "fapi2",
        "jwe",
        True,
    )
    assert _add(sqlite_registry)[0].profile == "basic"  # the Python API's default
