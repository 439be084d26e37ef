"""The partner registry and `sharelock partners`, on SQLite and (when configured) PostgreSQL.

Client secrets must exist only in the caller's hands: the database, its files and the
registry's objects hold an Argon2id hash at most.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, func, inspect, select, text

from sharelock.db import (
    AuditChainHead,
    Base,
    DatabaseUnavailable,
    create_engine_for,
    current_revision,
    head_revision,
    migrate,
)
from sharelock.errors import ConfigError, SharelockError
from sharelock.registry import InvalidPartner, Partner, PartnerRegistry
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


def test_unknown_client_costs_an_argon2_verification(tmp_path: Path) -> None:
    """Response time must not reveal which client ids exist."""
    engine = create_engine_for(f"sqlite:///{tmp_path / 'timing.db'}")
    migrate(engine)
    registry = PartnerRegistry(engine)
    partner, _ = _add(registry)
    registry.authenticate("sl_warmup", "x")  # the dummy hash is made once, lazily

    def timed(client_id: str) -> float:
        samples = []
        for _ in range(3):
            started = time.perf_counter()
            registry.authenticate(client_id, "wrong-secret")
            samples.append(time.perf_counter() - started)
        return statistics.median(samples)

    known, unknown = timed(partner.client_id), timed("sl_doesnotexist0000000000")
    engine.dispose()
    assert unknown > known * 0.5, (known, unknown)


def test_secret_is_stored_only_as_argon2id(
    registry: PartnerRegistry, engine: Engine, database_url: str, all_logs: pytest.LogCaptureFixture
) -> None:
    partner, secret = _add(registry)
    registry.authenticate(partner.client_id, secret)
    assert secret not in repr(partner) and "argon2" not in repr(partner)
    assert not hasattr(partner, "client_secret_hash")

    dumped: list[str] = []
    with engine.connect() as connection:
        for table in inspect(connection).get_table_names():
            rows = connection.execute(text(f"SELECT * FROM {table}")).all()
            dumped.extend(repr(tuple(row)) for row in rows)
        stored = connection.scalar(text("SELECT client_secret_hash FROM partners"))
    assert all(secret not in line for line in dumped)
    assert stored.startswith("$argon2id$")
    assert secret not in all_logs.text

    if database_url.startswith("sqlite"):
        engine.dispose()  # checkpoint the WAL; then read every file SQLite wrote
        path = Path(database_url.removeprefix("sqlite:///"))
        files = [p for p in path.parent.iterdir() if p.name.startswith(path.name)]
        assert files
        for file in files:
            assert secret.encode() not in file.read_bytes(), file


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
    assert secret not in listed.stdout and "argon2" not in listed.stdout
    assert "client_secret" not in partners[0]

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
