"""The webhook queue on a Redis Cluster started from the shipped templates (TLS, ACL users
only): every key carries the one hash tag `{wh}`, so each of the queue's scripts runs on one
slot, under the broker's ACL user (`~sl-webhooks:*` in `deploy/redis/redis.conf`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from redis.crc import key_slot

from sharelock.config import Settings
from sharelock.keys import KeyLayer
from sharelock.store import SealedStore
from sharelock.webhooks import KEYS, Event, WebhookQueue
from tests.support.redis_cluster import RedisCluster
from tests.support.redis_ha import RedisPki, keys_and_values, store_for


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    pki = RedisPki.create(tmp_path_factory.mktemp("wh-cluster-pki"))
    with RedisCluster(tmp_path_factory.mktemp("wh-cluster"), pki=pki) as running:
        yield running


@pytest.fixture
async def store(
    settings: Settings, cluster: RedisCluster, key_layer: KeyLayer
) -> AsyncIterator[SealedStore]:
    sealed = store_for(cluster.settings(settings), key_layer)
    try:
        yield sealed
    finally:
        await sealed.aclose()


def event(row: int) -> Event:
    return Event(
        id=row,
        type="share.expired",
        client_id="sl_cluster",
        jti=f"{row:032x}",
        occurred_at="2027-01-15T08:00:00Z",
        queued_at=100.0,
    )


def test_every_webhook_key_is_in_one_slot() -> None:
    assert len({key_slot(key.encode()) for key in KEYS}) == 1


async def test_the_queue_and_its_scripts_work_on_the_cluster(
    cluster: RedisCluster, store: SealedStore
) -> None:
    queue = WebhookQueue(store.client)
    await queue.start_at(10)
    await queue.start_at(99)  # only the first start counts
    assert await queue.cursor() == 10
    assert await queue.hand_over(10, 12, [event(11), event(12)])
    assert not await queue.hand_over(10, 12, [event(11), event(12)])  # a late relay

    first, second = await queue.read_new("worker-a", 10)
    assert [first.event.id, second.event.id] == [11, 12]
    assert await queue.read_new("worker-b", 10) == []
    assert await queue.finish(first)
    assert await queue.reschedule(second, second.event.attempted(100.0, "http_503"), 130.0)
    assert not await queue.finish(second)  # no longer pending: the first decision stands
    assert await queue.release_due(120.0) == 0
    assert await queue.release_due(130.0) == 1
    (again,) = await queue.read_new("worker-b", 10)  # back in the stream, as a new entry
    assert (again.event.id, again.event.attempts) == (12, 1)
    assert await queue.bury(again, again.event.attempted(131.0, "http_503"))
    listing = await queue.listing()
    assert (listing.queued, listing.waiting, [e.id for e in listing.dead]) == ([], [], [12])
    assert await queue.replay([12, 13], now=200.0) == [12]
    (revived,) = (await queue.listing()).queued
    assert (revived.id, revived.queued_at, revived.attempts) == (12, 200.0, 0)
    assert revived.jti == event(12).jti

    # All of it on the one primary that owns the `{wh}` slot, nothing anywhere else.
    owner = cluster.primary_of(key_slot(KEYS[0].encode()))
    for primary in cluster.primaries():
        held = {key for key, _ in keys_and_values(cluster, primary) if b"sl-webhooks" in key}
        assert bool(held) == (primary.port == owner.port), primary.port
