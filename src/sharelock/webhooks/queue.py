"""The webhook queue in Redis: a stream read by a consumer group, with retries and dead letters.

Keys (one fixed hash tag, `{wh}`, so that every script below runs on one Redis Cluster slot;
a prefix of their own, like the rate limiter's, since nothing here expires by itself):

| key | type | holds |
|---|---|---|
| `sl-webhooks:{wh}:cursor` | string | the id of the last audit row relayed |
| `sl-webhooks:{wh}:events` | stream (group `senders`) | events to send now |
| `sl-webhooks:{wh}:waiting` | hash, event id -> event | events waiting for their next attempt |
| `sl-webhooks:{wh}:retry` | sorted set, event id -> time | when each waiting event is due |
| `sl-webhooks:{wh}:dead` | hash, event id -> event | dead letters, until replayed |

Each value is an `Event` (JSON): ids, codes and times, nothing personal.

Every move between them is one Lua script, so nothing is lost or doubled halfway:
- `hand_over`: the relay appends events and moves the cursor, only if the cursor still holds
  what the relay read (two relays racing: one wins, the other appends nothing);
- `finish` / `reschedule` / `bury`: a sender acknowledges an entry and erases it, or moves it
  to the waiting set, or to the dead letters, only if the entry was still pending (when two
  senders held one entry, after a claim, the first to finish decides);
- `release_due`: due waiting events go back into the stream;
- `revive`: the operator's replay of a dead letter.

A sender reads new entries with XREADGROUP; an entry read by a worker that died before
finishing it stays pending, and XAUTOCLAIM hands it to another worker once it has been idle
longer than a push can take. Delivery is therefore at least once; the `jti` makes it
idempotent for the receiver.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError, ResponseError

from sharelock.store import RedisClient, StoreUnavailable
from sharelock.webhooks.events import Event

log = logging.getLogger("sharelock.webhooks")

PREFIX = "sl-webhooks"
TAG = "{wh}"
CURSOR = f"{PREFIX}:{TAG}:cursor"
STREAM = f"{PREFIX}:{TAG}:events"
WAITING = f"{PREFIX}:{TAG}:waiting"
RETRY = f"{PREFIX}:{TAG}:retry"
DEAD = f"{PREFIX}:{TAG}:dead"
KEYS = (CURSOR, STREAM, WAITING, RETRY, DEAD)
GROUP = "senders"
FIELD = b"event"
MAX_LISTED = 1000

# KEYS: cursor, stream. ARGV: the cursor read, the new cursor, then the events. -1: the
# cursor moved meanwhile (another relay), nothing appended; else how many were.
_HAND_OVER = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
for i = 3, #ARGV do redis.call('XADD', KEYS[2], '*', 'event', ARGV[i]) end
redis.call('SET', KEYS[1], ARGV[2])
return #ARGV - 2
"""
# KEYS: stream. ARGV: group, entry id. 1: acknowledged and erased; 0: no longer pending.
_FINISH = """
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
"""
# KEYS: stream, waiting, retry. ARGV: group, entry id, event id, event, due time.
_RESCHEDULE = """
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[3])
return 1
"""
# KEYS: stream, dead. ARGV: group, entry id, event id, event.
_BURY = """
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
return 1
"""
# KEYS: retry, waiting, stream. ARGV: now, limit. How many went back into the stream.
_RELEASE_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, id in ipairs(due) do
  local event = redis.call('HGET', KEYS[2], id)
  if event then redis.call('XADD', KEYS[3], '*', 'event', event) end
  redis.call('HDEL', KEYS[2], id)
  redis.call('ZREM', KEYS[1], id)
end
return #due
"""
# KEYS: dead, stream. ARGV: event id, the dead letter as read, the event to queue. 1: queued.
_REVIVE = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('XADD', KEYS[2], '*', 'event', ARGV[3])
return 1
"""


@contextmanager
def redis_errors(operation: str) -> Iterator[None]:
    """Redis failures as `StoreUnavailable`, naming the operation and the error class only."""
    try:
        yield
    except (RedisError, OSError) as exc:
        raise StoreUnavailable(
            f"redis unavailable during webhook {operation} ({type(exc).__name__})"
        ) from None


@dataclass(frozen=True, slots=True)
class Entry:
    """A stream entry held by a sender: its id in the stream, and the event."""

    entry_id: bytes
    event: Event


@dataclass(frozen=True, slots=True)
class Listing:
    """What the queue holds: events to send now (some maybe being sent), events waiting for
    their next attempt (with when), and dead letters."""

    queued: list[Event]
    waiting: list[tuple[Event, float]]
    dead: list[Event]


def _text(value: bytes | str) -> str:
    return value.decode("ascii") if isinstance(value, bytes) else value


class WebhookQueue:
    """The queue's operations on one Redis client (the broker's, or an operator command's).
    Every failure is `StoreUnavailable`."""

    def __init__(self, client: RedisClient) -> None:
        self._client = client
        self._hand_over = client.register_script(_HAND_OVER)
        self._finish = client.register_script(_FINISH)
        self._reschedule = client.register_script(_RESCHEDULE)
        self._bury = client.register_script(_BURY)
        self._release_due = client.register_script(_RELEASE_DUE)
        self._revive = client.register_script(_REVIVE)
        self._group_ready = False

    def __repr__(self) -> str:
        return "WebhookQueue()"

    @property
    def client(self) -> RedisClient:
        return self._client

    # -- the relay's side -----------------------------------------------------------------

    async def cursor(self) -> int | None:
        with redis_errors("cursor read"):
            raw = await self._client.get(CURSOR)
        return None if raw is None else int(raw)

    async def start_at(self, row_id: int) -> None:
        """Set the cursor, if none is set: the first relay starts at the trail's head."""
        with redis_errors("cursor start"):
            await self._client.set(CURSOR, str(row_id), nx=True)

    async def hand_over(self, read: int, upto: int, events: Sequence[Event]) -> bool:
        """Append `events` and move the cursor from `read` to `upto`, atomically; False if
        another relay moved the cursor first (nothing is appended)."""
        args: list[str | bytes] = [str(read), str(upto), *(e.to_json() for e in events)]
        with redis_errors("relay"):
            appended = await self._hand_over(keys=[CURSOR, STREAM], args=args)
        return int(appended) >= 0

    # -- the senders' side ----------------------------------------------------------------

    async def ensure_group(self) -> None:
        """The consumer group, created with the stream if need be (from the stream's start:
        entries appended before it existed are delivered too)."""
        if self._group_ready:
            return
        with redis_errors("group creation"):
            try:
                await self._client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        self._group_ready = True

    @contextmanager
    def _group_errors(self, operation: str) -> Iterator[None]:
        try:
            with redis_errors(operation):
                yield
        except StoreUnavailable:
            # A Redis restarted without persistence has lost the group: make it again next time.
            self._group_ready = False
            raise

    async def read_new(self, consumer: str, count: int) -> list[Entry]:
        """Entries no sender has read yet, now this consumer's (pending until finished)."""
        await self.ensure_group()
        with self._group_errors("read"):
            reply: Any = await self._client.xreadgroup(GROUP, consumer, {STREAM: ">"}, count=count)
        return self._entries([item for _, items in reply or [] for item in items])

    async def claim_stalled(self, consumer: str, min_idle_ms: int, count: int) -> list[Entry]:
        """Entries read by a sender that has held them longer than `min_idle_ms` (it died,
        or its process was restarted): now this consumer's."""
        await self.ensure_group()
        with self._group_errors("claim"):
            reply: Any = await self._client.xautoclaim(
                STREAM, GROUP, consumer, min_idle_time=min_idle_ms, start_id="0-0", count=count
            )
        return self._entries(reply[1] if reply else [])

    def _entries(self, items: Sequence[Any]) -> list[Entry]:
        entries = []
        for entry_id, fields in items:
            raw = (fields or {}).get(FIELD)
            try:
                if raw is None:
                    raise ValueError("no event field")
                entries.append(Entry(entry_id, Event.from_json(raw)))
            except ValueError:
                # Not ours to send (a damaged or foreign entry): dropped, said once.
                log.warning("a webhook queue entry that is not an event was dropped")
                entries.append(Entry(entry_id, _DROPPED))
        return entries

    async def finish(self, entry: Entry) -> bool:
        with redis_errors("acknowledgement"):
            return bool(await self._finish(keys=[STREAM], args=[GROUP, entry.entry_id]))

    async def reschedule(self, entry: Entry, event: Event, due: float) -> bool:
        with redis_errors("reschedule"):
            done = await self._reschedule(
                keys=[STREAM, WAITING, RETRY],
                args=[GROUP, entry.entry_id, str(event.id), event.to_json(), repr(due)],
            )
        return bool(done)

    async def bury(self, entry: Entry, event: Event) -> bool:
        with redis_errors("dead letter"):
            done = await self._bury(
                keys=[STREAM, DEAD], args=[GROUP, entry.entry_id, str(event.id), event.to_json()]
            )
        return bool(done)

    async def release_due(self, now: float, limit: int = 500) -> int:
        with redis_errors("release of due retries"):
            return int(
                await self._release_due(keys=[RETRY, WAITING, STREAM], args=[repr(now), limit])
            )

    # -- the operator's side --------------------------------------------------------------

    async def listing(self, limit: int = MAX_LISTED) -> Listing:
        with redis_errors("listing"):
            stream: Any = await self._client.xrange(STREAM, count=limit)
            waiting: Any = await self._client.hgetall(WAITING)
            scored: Any = await self._client.zrange(RETRY, 0, -1, withscores=True)
            dead: Any = await self._client.hgetall(DEAD)
        due = {key: float(score) for key, score in scored}
        queued = [entry.event for entry in self._entries(stream) if not is_dropped(entry)]
        return Listing(
            queued=queued,
            waiting=sorted(
                ((event, due.get(key, 0.0)) for key, event in _readable(waiting, limit)),
                key=lambda pair: pair[1],
            ),
            dead=sorted((event for _, event in _readable(dead, limit)), key=lambda e: e.id),
        )

    async def replay(self, ids: Sequence[int] | None, now: float) -> list[int]:
        """Queue dead letters again (all of them when `ids` is None), with a fresh retry
        horizon; returns the ids queued (an id that is not a dead letter is skipped)."""
        with redis_errors("replay"):
            if ids is None:
                dead = await self._client.hgetall(DEAD)
            else:
                values = await self._client.hmget(DEAD, [str(i) for i in ids])
                dead = {str(i): v for i, v in zip(ids, values, strict=True) if v is not None}
            revived = []
            for key, raw in dead.items():
                event = Event.from_json(raw).requeued(now)
                if await self._revive(keys=[DEAD, STREAM], args=[_text(key), raw, event.to_json()]):
                    revived.append(event.id)
        return sorted(revived)


# What `_entries` gives for an entry that holds no event: finished (erased) without a push.
_DROPPED = Event(id=0, type="", client_id="", jti="", occurred_at="", queued_at=0.0)


def is_dropped(entry: Entry) -> bool:
    return entry.event is _DROPPED


def _readable(values: dict[bytes, bytes], limit: int) -> list[tuple[bytes, Event]]:
    """The events of a hash, a damaged value skipped (and said)."""
    found = []
    for key, raw in list(values.items())[:limit]:
        try:
            found.append((key, Event.from_json(raw)))
        except ValueError:
            log.warning("a webhook queue value that is not an event was skipped")
    return found
