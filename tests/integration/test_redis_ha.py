"""Redis high availability, with real processes only: a primary, a replica and three Sentinels
started from the shipped templates (`deploy/redis/`), TLS on every link (a private CA), ACL
users only. The broker's store and rate limiter reach the primary through the Sentinels, keep
working across a failover (SIGKILL of the primary, and a demotion that leaves it running), and
start-up refuses a configuration that cannot work with a one-line error naming the variable and
never the password. Every wait polls with a deadline."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from sharelock.broker import Broker
from sharelock.config import Limits, Settings
from sharelock.embedded import free_port
from sharelock.errors import ConfigError
from sharelock.keys import KeyLayer
from sharelock.ratelimit import RateLimited, RateLimiter
from sharelock.store import (
    RedisEndpoint,
    SealedStore,
    StoreUnavailable,
    verify_redis,
)
from tests.support.pki import PrivateCA
from tests.support.redis_ha import (
    CLIENT_TIMEOUT_S,
    SERVICE,
    Process,
    RedisHA,
    RedisPki,
    keys_and_values,
    soon,
    store_for,
    waited,
)

pytestmark = pytest.mark.skipif(
    not Path("/usr/bin/redis-sentinel").exists(), reason="redis-sentinel is not installed"
)

ROOT = Path(__file__).resolve().parents[2]
SHARELOCK = Path(sys.executable).parent / "sharelock"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> RedisPki:
    return RedisPki.create(tmp_path_factory.mktemp("redis-pki"))


@pytest.fixture(scope="module")
def ha(tmp_path_factory: pytest.TempPathFactory, pki: RedisPki) -> Iterator[RedisHA]:
    with RedisHA(tmp_path_factory.mktemp("redis-ha"), pki=pki) as running:
        yield running


@pytest.fixture
def ha_settings(settings: Settings, ha: RedisHA) -> Settings:
    return ha.settings(settings)


@pytest.fixture
async def store(ha_settings: Settings, key_layer: KeyLayer) -> AsyncIterator[SealedStore]:
    sealed = store_for(ha_settings, key_layer)
    try:
        yield sealed
    finally:
        await sealed.aclose()


def limiter_on(store: SealedStore, **limits: str) -> RateLimiter:
    return RateLimiter(store.client, Limits(**limits), b"k" * 32)


def replicated(ha: RedisHA, node: Process, key: str) -> bool:
    with ha.admin(node) as client:
        return bool(client.exists(key))


# -- working through Sentinel, TLS and the ACL user ---------------------------------------


async def test_the_store_works_through_sentinel_tls_and_acl(
    ha: RedisHA, store: SealedStore
) -> None:
    await store.ping()
    await store.put("session", "one", b"value one", expire_at=soon())
    assert await store.get("session", "one") == b"value one"
    assert await store.put_new("session", "one", b"again", expire_at=soon()) is False
    await store.put_json("session", "two", {"step": 1}, expire_at=soon())
    assert await store.update_json("session", "two", lambda d: {**d, "step": 2})
    assert await store.take_json("session", "two") == {"step": 2}
    assert await store.take("session", "two") is None
    # On the primary the Sentinels name, and copied to the replica.
    primary = ha.primary()
    assert ha.role(primary) == "master"
    assert replicated(ha, primary, store.key("session", "one"))
    (replica,) = ha.replicas()
    await waited(lambda: replicated(ha, replica, store.key("session", "one")), "copy")


async def test_the_rate_limiter_shares_the_sentinel_pool(ha: RedisHA, store: SealedStore) -> None:
    limiter = limiter_on(store, per_address="2/minute")
    address = f"192.0.2.{time.monotonic_ns() % 250}"
    await limiter.hit("per_address", address)
    await limiter.hit("per_address", address)
    with pytest.raises(RateLimited):
        await limiter.hit("per_address", address)
    assert await limiter.first_refusal("per_address", address) is True
    assert await limiter.first_refusal("per_address", address) is False
    # Its counters are under the prefix the shipped ACL allows, and name no address.
    with ha.admin(ha.primary()) as client:
        keys = [key.decode() for key in client.scan_iter(match="sl-ratelimit:*")]
    assert keys
    assert not any(address in key for key in keys)


def test_start_up_check_passes_and_sentinel_errors_name_nothing_secret(
    ha_settings: Settings,
) -> None:
    verify_redis(RedisEndpoint.from_settings(ha_settings))
    assert "SecretStr('**********')" in repr(ha_settings)
    for secret in (ha_settings.redis_password, ha_settings.redis_sentinel_password):
        assert secret is not None
        assert secret.get_secret_value() not in repr(ha_settings)
        assert secret.get_secret_value() not in repr(RedisEndpoint.from_settings(ha_settings))


# -- refused credentials and certificates ---------------------------------------------------


async def test_a_wrong_password_is_a_clear_error_without_the_password(
    ha: RedisHA, settings: Settings, key_layer: KeyLayer
) -> None:
    wrong = "not-the-password-" + "x" * 16
    bad = ha.settings(settings, redis_password=SecretStr(wrong))
    with pytest.raises(ConfigError) as refused:
        verify_redis(RedisEndpoint.from_settings(bad))
    message = str(refused.value)
    assert "SHARELOCK_REDIS_USERNAME/SHARELOCK_REDIS_PASSWORD" in message
    assert "refused the credentials" in message
    assert wrong not in message and ha.users.broker not in message
    # At run time (the credentials changed under a running broker): 503, nothing quoted.
    sealed = store_for(bad, key_layer)
    try:
        with pytest.raises(StoreUnavailable) as failed:
            await sealed.ping()
        assert "AuthenticationError" in str(failed.value)
        assert wrong not in str(failed.value)
    finally:
        await sealed.aclose()

    bad_sentinel = ha.settings(settings, redis_sentinel_password=SecretStr(wrong))
    with pytest.raises(ConfigError) as refused:
        verify_redis(RedisEndpoint.from_settings(bad_sentinel))
    assert "SHARELOCK_REDIS_SENTINEL_PASSWORD" in str(refused.value)
    assert wrong not in str(refused.value)


async def test_an_untrusted_certificate_is_a_clear_error(
    ha: RedisHA, settings: Settings, key_layer: KeyLayer, tmp_path: Path
) -> None:
    stranger = PrivateCA(tmp_path / "other-ca", key_size=2048)
    bad = ha.settings(settings, redis_tls_ca_file=stranger.ca_cert)
    with pytest.raises(ConfigError) as refused:
        verify_redis(RedisEndpoint.from_settings(bad))
    message = str(refused.value)
    assert "SHARELOCK_REDIS_TLS_CA_FILE" in message
    assert "certificate verify failed" in message.lower().replace("_", " ")
    assert ha.users.client not in message and ha.users.broker not in message
    sealed = store_for(bad, key_layer)
    try:
        with pytest.raises(StoreUnavailable):
            await sealed.ping()
    finally:
        await sealed.aclose()


# -- configuration that cannot work stops start-up ------------------------------------------


def test_sentinels_that_do_not_answer_stop_start_up(
    ha: RedisHA, settings: Settings, key_layer: KeyLayer
) -> None:
    nobody = ha.settings(
        settings, redis_sentinels=(("127.0.0.1", free_port()), ("127.0.0.1", free_port()))
    )
    with pytest.raises(ConfigError, match=r"^SHARELOCK_REDIS_SENTINELS: no Sentinel answers"):
        verify_redis(RedisEndpoint.from_settings(nobody))
    with pytest.raises(ConfigError, match="SHARELOCK_REDIS_SENTINELS"):
        Broker.assemble(nobody, key_layer)


def test_an_unknown_service_stops_start_up(
    ha: RedisHA, settings: Settings, key_layer: KeyLayer
) -> None:
    unknown = ha.settings(settings, redis_sentinel_service="not-monitored")
    with pytest.raises(ConfigError, match=r"^SHARELOCK_REDIS_SENTINEL_SERVICE: .*'not-monitored'"):
        verify_redis(RedisEndpoint.from_settings(unknown))
    with pytest.raises(ConfigError, match="SHARELOCK_REDIS_SENTINEL_SERVICE"):
        Broker.assemble(unknown, key_layer)


def test_serve_stops_with_one_line_naming_the_variable(
    ha: RedisHA, settings: Settings, key_layer: KeyLayer, tmp_path: Path
) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SHARELOCK_", "SOFTHSM2"))}
    env = base | {
        "SHARELOCK_STATE_DIR": str(settings.state_dir),
        "SHARELOCK_HSM_TOKEN_LABEL": settings.hsm_token_label,
        "SHARELOCK_DATABASE_URL": f"sqlite:///{tmp_path / 'sharelock.db'}",
        "SHARELOCK_PORT": str(free_port()),
        "SHARELOCK_OPERATOR_PORT": str(free_port()),
        "SHARELOCK_REDIS_SENTINELS": ",".join(
            f"{h}:{p}" for h, p in (s.address for s in ha.sentinels)
        ),
        "SHARELOCK_REDIS_SENTINEL_SERVICE": "not-monitored",
        "SHARELOCK_REDIS_USERNAME": "sharelock",
        "SHARELOCK_REDIS_PASSWORD": ha.users.broker,
        "SHARELOCK_REDIS_SENTINEL_USERNAME": "sharelock",
        "SHARELOCK_REDIS_SENTINEL_PASSWORD": ha.users.client,
        "SHARELOCK_REDIS_TLS_CA_FILE": str(ha.pki.ca.ca_cert),
        "SHARELOCK_REDIS_TLS_CERT_FILE": str(ha.pki.client.cert),
        "SHARELOCK_REDIS_TLS_KEY_FILE": str(ha.pki.client.key),
        "COLUMNS": "200",
    }
    done = subprocess.run(
        [str(SHARELOCK), "serve"], cwd=ROOT, env=env, capture_output=True, timeout=60
    )
    stderr = done.stderr.decode()
    assert done.returncode == 2, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    assert "SHARELOCK_REDIS_SENTINEL_SERVICE" in errors[0]
    assert "Traceback" not in stderr
    for secret in (ha.users.broker, ha.users.client):
        assert secret not in stderr and secret not in done.stdout.decode()


# -- nothing personal in Redis's memory ------------------------------------------------------


async def test_a_planted_secret_is_in_no_node_in_clear(ha: RedisHA, store: SealedStore) -> None:
    secret = b"FR76-3000-6000-0112-3456-7890-189-PLANTED"
    await store.put("session", "planted", secret, expire_at=soon())
    await store.put_json("session", "planted-json", {"iban": secret.decode()}, expire_at=soon())
    primary = ha.primary()
    (replica,) = ha.replicas()
    await waited(lambda: replicated(ha, replica, store.key("session", "planted-json")), "copy")
    for node in (primary, replica):
        dumped = list(keys_and_values(ha, node))
        assert any(key == store.key("session", "planted").encode() for key, _ in dumped)
        for key, value in dumped:
            assert secret not in value and secret not in key, f"{node.name} holds it in clear"
    assert await store.get("session", "planted") == secret  # sealed, not lost


# -- failover ------------------------------------------------------------------------------


async def _until_written(store: SealedStore, record_id: str, deadline_s: float) -> int:
    """Write until it works; every failure is StoreUnavailable within the socket timeout
    (plus connect), never a hang. Returns how many attempts failed."""
    failures = 0
    deadline = time.monotonic() + deadline_s
    while True:
        started = time.monotonic()
        try:
            await store.put("session", record_id, b"after", expire_at=soon())
            return failures
        except StoreUnavailable:
            failures += 1
            # One connect and one read at most, each bounded by the socket timeout.
            assert time.monotonic() - started < 2 * CLIENT_TIMEOUT_S + 1.0
        assert time.monotonic() < deadline, "the store never reached the new primary"
        await asyncio.sleep(0.05)


async def test_after_a_manual_failover_the_same_client_reaches_the_new_primary(
    ha: RedisHA, store: SealedStore
) -> None:
    """The demoted primary stays up (now a replica): the pooled connection to it must not be
    written through (READONLY or killed by Sentinel), and the next command goes to the new
    primary."""
    await store.put("session", "before-switch", b"before", expire_at=soon())
    old = ha.primary()
    with ha.sentinel_client(ha.sentinels[0]) as sentinel:
        sentinel.execute_command("SENTINEL", "FAILOVER", SERVICE)
    await _until_written(store, "after-switch", deadline_s=20)
    new = await asyncio.to_thread(ha.wait_for_new_primary, old)
    assert await store.get("session", "after-switch") == b"after"
    assert await store.get("session", "before-switch") == b"before"  # replicated, kept
    assert replicated(ha, new, store.key("session", "after-switch"))
    await waited(lambda: ha.role(old) == "slave", "the old primary demoted")
    limiter = limiter_on(store, per_address="5/minute")
    await limiter.hit("per_address", "198.51.100.7")


async def test_after_the_primary_is_killed_the_same_client_reaches_the_new_primary(
    ha: RedisHA, store: SealedStore
) -> None:
    await store.put("session", "before-crash", b"before", expire_at=soon())
    (replica,) = ha.replicas()
    await waited(lambda: replicated(ha, replica, store.key("session", "before-crash")), "copy")
    old = ha.kill_primary()
    # Sentinel needs down-after-milliseconds (1 s) before it even acts: the first writes
    # fail, each fast, until the replica is promoted.
    failures = await _until_written(store, "after-crash", deadline_s=30)
    assert failures >= 1
    new = await asyncio.to_thread(ha.wait_for_new_primary, old)
    assert new is replica
    assert await store.get("session", "after-crash") == b"after"
    assert await store.get("session", "before-crash") == b"before"
    limiter = limiter_on(store, per_address="5/minute")
    await limiter.hit("per_address", "198.51.100.8")
    # The crashed node comes back (empty: no persistence) and Sentinel makes it a replica.
    await asyncio.to_thread(ha.restart, old, as_replica_of=new)
    await waited(lambda: replicated(ha, old, store.key("session", "after-crash")), "resync")
    assert ha.role(old) == "slave"
