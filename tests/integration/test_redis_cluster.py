"""Redis Cluster, with real processes only: three primaries and three replicas started from the
shipped templates (`deploy/redis/redis.conf` + `cluster.conf`), TLS on every link, ACL users
only. Every key of one flow (its records, its code, its token, its expiry-index shard) lands in
one hash slot, so the store's scripts work unchanged; the flows spread over every primary; a
whole share works through HTTP; a primary's death is a 503 until its replica takes over, and
then the same client goes on; start-up refuses what cannot work, naming the variable and never
the password. Every wait polls with a deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import pytest
from pydantic import SecretStr
from redis.crc import key_slot

from sharelock.config import Limits, Settings
from sharelock.embedded import free_port
from sharelock.errors import ConfigError
from sharelock.flow import expiry, flow_ref
from sharelock.flow.records import CODE, FLOW, RELEASE, TOKEN, handle_in_slot_of
from sharelock.keys import KeyLayer
from sharelock.oauth import digest
from sharelock.ratelimit import RateLimited, RateLimiter
from sharelock.store import (
    SLOT_TAGS,
    RedisEndpoint,
    SealedStore,
    StoreUnavailable,
    cluster_link,
    tagged,
    verify_redis,
)
from tests.support.broker import Share, StackFactory, record_key
from tests.support.redis_cluster import RedisCluster
from tests.support.redis_ha import (
    CLIENT_TIMEOUT_S,
    RedisPki,
    keys_and_values,
    soon,
    store_for,
)
from tests.support.redis_server import RedisServer


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    pki = RedisPki.create(tmp_path_factory.mktemp("cluster-pki"))
    with RedisCluster(tmp_path_factory.mktemp("cluster"), pki=pki) as running:
        yield running


@pytest.fixture
def cluster_settings(settings: Settings, cluster: RedisCluster) -> Settings:
    return cluster.settings(settings)


@pytest.fixture
async def store(cluster_settings: Settings, key_layer: KeyLayer) -> AsyncIterator[SealedStore]:
    sealed = store_for(cluster_settings, key_layer)
    try:
        yield sealed
    finally:
        await sealed.aclose()


# -- the key scheme --------------------------------------------------------------------------


def test_the_slot_tags_spread_over_every_primary(cluster: RedisCluster) -> None:
    owners = {cluster.primary_of(key_slot(f"{{{tag}}}".encode())).port for tag in SLOT_TAGS}
    assert owners == {primary.port for primary in cluster.primaries()}
    assert len(cluster.primaries()) == 3


def test_a_flow_code_and_token_share_the_flow_slot() -> None:
    for n in range(20):
        flow_id = f"flow-{n}-{time.monotonic_ns()}"
        code, token = handle_in_slot_of(flow_id), handle_in_slot_of(flow_id)
        keys = [
            record_key(FLOW, flow_id),
            record_key(RELEASE, flow_ref(flow_id)),
            record_key(CODE, digest(code)),
            record_key(TOKEN, digest(token)),
            f"sl:index:{expiry.index_of(flow_ref(flow_id))}",
        ]
        assert len({key_slot(key.encode()) for key in keys}) == 1, keys
        assert len(code) == len(token) == 43 and code != token


# -- the store on the cluster ------------------------------------------------------------------


async def test_the_store_and_its_scripts_work_on_the_cluster(
    cluster: RedisCluster, store: SealedStore
) -> None:
    await store.ping()
    for tag in SLOT_TAGS[:8]:  # several slots, so several primaries
        record = tagged(tag, f"r{time.monotonic_ns()}")
        await store.put_json("session", record, {"step": 1}, expire_at=soon())
        assert await store.update_json("session", record, lambda d: {**d, "step": 2})
        assert await store.take_json("session", record) == {"step": 2}
        # A flow's end: records and the index entry of its slot, in one script.
        await store.put("data", record, b"v", expire_at=soon())
        index = tagged(tag, "live-flows")
        await store.index_add(index, "member", soon(-1))
        await store.delete_with_index([("data", record)], index, "member")
        assert not await store.exists("data", record)
        assert await store.index_pop_due(index, datetime.now(UTC)) == []
        await store.index_add(index, "due", soon(-1))
        assert await store.index_pop_due(index, datetime.now(UTC)) == ["due"]


async def test_the_rate_limiter_counts_on_the_cluster(
    cluster: RedisCluster, cluster_settings: Settings, store: SealedStore
) -> None:
    endpoint = RedisEndpoint.from_settings(cluster_settings)
    limiter = RateLimiter(
        store.client,
        Limits(per_address="2/minute"),
        b"k" * 32,
        cluster=cluster_link(endpoint, socket_timeout=CLIENT_TIMEOUT_S),
    )
    address = f"192.0.2.{time.monotonic_ns() % 250}"
    await limiter.hit("per_address", address)
    await limiter.hit("per_address", address)
    with pytest.raises(RateLimited):
        await limiter.hit("per_address", address)
    assert await limiter.first_refusal("per_address", address) is True
    assert await limiter.first_refusal("per_address", address) is False
    held = [
        key.decode()
        for primary in cluster.primaries()
        for key, _ in keys_and_values(cluster, primary)
        if key.startswith(b"sl-ratelimit:")
    ]
    assert held and not any(address in key for key in held)


# -- a whole share through HTTP ------------------------------------------------------------------


def test_a_whole_share_on_the_cluster_keeps_its_keys_in_one_slot(
    cluster: RedisCluster,
    cluster_settings: Settings,
    make_stack: StackFactory,
    sandbox_url: str,
) -> None:
    overrides: dict[str, Any] = {
        name: getattr(cluster_settings, name)
        for name in (
            "redis_cluster_nodes",
            "redis_username",
            "redis_password",
            "redis_tls_ca_file",
            "redis_tls_cert_file",
            "redis_tls_key_file",
        )
    }
    with make_stack(redis_url="", sandbox_url=sandbox_url, **overrides) as stack:
        share = Share(stack)
        share.collect()
        code = share.approve_and_get_code()
        exchanged = share.exchange(code)
        assert exchanged.status_code == 200, exchanged.text
        token = exchanged.json()["access_token"]
        # Before delivery: the flow's keys, its code's and its token's, all in one slot.
        held = {
            key.decode()
            for primary in cluster.primaries()
            for key, _ in keys_and_values(cluster, primary)
        }
        ours = {
            key
            for key in held
            if share.flow_id in key
            or flow_ref(share.flow_id) in key
            or digest(code) in key
            or digest(token) in key
            or key == f"sl:index:{expiry.index_of(flow_ref(share.flow_id))}"
        }
        assert record_key(RELEASE, flow_ref(share.flow_id)) in ours
        assert record_key(TOKEN, digest(token)) in ours
        assert len(ours) >= 5, ours
        assert len({key_slot(key.encode()) for key in ours}) == 1, ours

        shared = share.fetch(token)
        assert shared.status_code == 200, shared.text
        data = shared.json()["data"]
        assert data["identity"]["family_name"]
        # Delivered once; the token, release and flow are gone from the cluster.
        assert share.fetch(token).status_code == 401
        left = {
            key.decode()
            for primary in cluster.primaries()
            for key, _ in keys_and_values(cluster, primary)
        }
        assert (
            not {record_key(RELEASE, flow_ref(share.flow_id)), record_key(FLOW, share.flow_id)}
            & left
        )
        # Nothing personal in clear on any node, primaries or replicas.
        family_name = data["identity"]["family_name"].encode()
        for node in cluster.nodes:
            for key, value in keys_and_values(cluster, node):
                assert family_name not in key + value


# -- start-up checks -----------------------------------------------------------------------------


def test_start_up_check_passes_and_errors_name_nothing_secret(
    cluster: RedisCluster, cluster_settings: Settings, settings: Settings, redis_server: RedisServer
) -> None:
    verify_redis(RedisEndpoint.from_settings(cluster_settings))
    wrong = "not-the-password-" + "y" * 16
    with pytest.raises(ConfigError) as refused:
        verify_redis(
            RedisEndpoint.from_settings(cluster.settings(settings, redis_password=SecretStr(wrong)))
        )
    assert "SHARELOCK_REDIS_USERNAME/SHARELOCK_REDIS_PASSWORD" in str(refused.value)
    assert wrong not in str(refused.value) and cluster.users.broker not in str(refused.value)

    nobody = free_port()
    with pytest.raises(ConfigError) as silent:
        verify_redis(
            RedisEndpoint(cluster_nodes=(("127.0.0.1", nobody),)), timeout=CLIENT_TIMEOUT_S
        )
    assert "SHARELOCK_REDIS_CLUSTER_NODES" in str(silent.value)
    assert "no cluster node answers" in str(silent.value)

    plain = urlsplit(redis_server.url)
    assert plain.hostname and plain.port and plain.password
    with pytest.raises(ConfigError) as not_cluster:
        verify_redis(
            RedisEndpoint(
                cluster_nodes=((plain.hostname, plain.port),),
                password=SecretStr(plain.password),
            ),
            timeout=CLIENT_TIMEOUT_S,
        )
    assert "SHARELOCK_REDIS_CLUSTER_NODES" in str(not_cluster.value)
    assert "not in cluster mode" in str(not_cluster.value)


def test_cluster_nodes_exclude_a_url_and_sentinels(settings: Settings) -> None:
    base = settings.model_dump()
    with pytest.raises(ConfigError, match="SHARELOCK_REDIS_URL and SHARELOCK_REDIS_CLUSTER_NODES"):
        Settings(
            **{
                **base,
                "redis_url": "redis://127.0.0.1:1",
                "redis_cluster_nodes": "127.0.0.1:7000",
            }
        )
    nodes = Settings(**{**base, "redis_cluster_nodes": "127.0.0.1:7000,[::1]:7001"})
    assert nodes.redis_cluster_nodes == (("127.0.0.1", 7000), ("::1", 7001))
    assert nodes.redis_configured


# -- failover (last: it changes the cluster's shape) ---------------------------------------------


async def test_a_dead_primary_is_503_until_its_replica_takes_over(
    cluster: RedisCluster, store: SealedStore
) -> None:
    tag = SLOT_TAGS[5]
    record = tagged(tag, f"kept{time.monotonic_ns()}")
    await store.put("session", record, b"before the failover", expire_at=soon())
    key = store.key("session", record)
    old = cluster.primary_of(key_slot(key.encode()))
    with cluster.admin(old) as admin:
        assert admin.execute_command("WAIT", 1, 2000) >= 1  # copied to the replica

    cluster.kill(old)
    with pytest.raises(StoreUnavailable) as failed:
        await store.get("session", record)
    assert record not in str(failed.value)

    new = await asyncio.to_thread(cluster.wait_for_promotion, old)
    assert new is not old

    async def reads_again() -> bytes | None:
        try:
            return await store.get("session", record)
        except StoreUnavailable:
            return None  # the client relearns the slots at its next command

    deadline = time.monotonic() + 20
    value = await reads_again()
    while value is None and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        value = await reads_again()
    assert value == b"before the failover"
    # Slots elsewhere were never affected, and writes go on in this one.
    await store.put("session", record, b"after", expire_at=soon())
    assert await store.get("session", record) == b"after"

    await asyncio.to_thread(cluster.restart, old)
    assert old.running
