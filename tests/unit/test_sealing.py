"""`Sealer`: the envelope encryption of stored values, through the real SoftHSM token."""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta

import pytest

from sharelock.keys import KeyLayer
from sharelock.store import Sealer, SealError
from sharelock.store.sealing import (
    FORMAT_VERSION,
    HEADER_BYTES,
    IV_BYTES,
    OVERHEAD_BYTES,
    TAG_BYTES,
    WRAPPED_KEY_BYTES,
)

AAD = b"sl:flow:abc"


class FakeClock:
    """A monotonic clock the test moves by hand (plain object, not a mock)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def wrapped_key_of(sealed: bytes) -> bytes:
    return sealed[1 : 1 + WRAPPED_KEY_BYTES]


async def test_round_trip_and_layout(key_layer: KeyLayer) -> None:
    sealer = Sealer(key_layer)
    plaintext = b"given_name=Alice"
    sealed = await sealer.seal(plaintext, AAD)
    assert len(sealed) == OVERHEAD_BYTES + len(plaintext)
    assert sealed[0] == FORMAT_VERSION
    assert len(sealed[1 + WRAPPED_KEY_BYTES : HEADER_BYTES]) == IV_BYTES
    assert plaintext not in sealed
    assert await sealer.open(sealed, AAD) == plaintext
    assert await sealer.open(await sealer.seal(b"", AAD), AAD) == b""


async def test_wrong_aad_does_not_open(key_layer: KeyLayer) -> None:
    sealer = Sealer(key_layer)
    sealed = await sealer.seal(b"value", AAD)
    for other in (b"sl:flow:abd", b"sl:data:abc", b"", AAD + b"x"):
        with pytest.raises(SealError):
            await sealer.open(sealed, other)


@pytest.mark.parametrize(
    "position",
    [0, 1, WRAPPED_KEY_BYTES, 1 + WRAPPED_KEY_BYTES, HEADER_BYTES, -TAG_BYTES, -1],
    ids=["version", "wrapped-start", "wrapped-end", "iv", "ciphertext", "tag-start", "tag-end"],
)
async def test_any_flipped_bit_does_not_open(key_layer: KeyLayer, position: int) -> None:
    sealer = Sealer(key_layer)
    sealed = bytearray(await sealer.seal(b"some personal value", AAD))
    sealed[position] ^= 0x01
    with pytest.raises(SealError):
        await sealer.open(bytes(sealed), AAD)


async def test_malformed_values_do_not_open(key_layer: KeyLayer) -> None:
    sealer = Sealer(key_layer)
    sealed = await sealer.seal(b"value", AAD)
    random_key = bytes([FORMAT_VERSION]) + secrets.token_bytes(len(sealed) - 1)
    for bad in (
        b"",
        b"\x01",
        sealed[: OVERHEAD_BYTES - 1],
        sealed[:-1],
        sealed + b"\0",
        random_key,
    ):
        with pytest.raises(SealError) as caught:
            await sealer.open(bad, AAD)
        assert str(caught.value) == "sealed value could not be opened"


async def test_another_sealer_opens_after_one_unwrap(key_layer: KeyLayer) -> None:
    """Another process holds another Sealer: it unwraps the data key in the HSM once."""
    first, second = Sealer(key_layer), Sealer(key_layer)
    values = [secrets.token_bytes(40) for _ in range(5)]
    sealed = [await first.seal(v, AAD) for v in values]
    assert [await second.open(s, AAD) for s in sealed] == values
    assert second.stats.unwraps == 1
    assert second.stats.data_keys_created == 0
    # The sealing side opens its own values without the HSM.
    assert [await first.open(s, AAD) for s in sealed] == values
    assert first.stats.unwraps == 0
    assert first.stats.data_keys_created == 1


async def test_data_key_rotates_after_max_uses(key_layer: KeyLayer) -> None:
    sealer = Sealer(key_layer, max_uses=3)
    sealed = [await sealer.seal(b"v%d" % i, AAD) for i in range(7)]
    wrapped = [wrapped_key_of(s) for s in sealed]
    assert wrapped[0] == wrapped[1] == wrapped[2] != wrapped[3]
    assert wrapped[3] == wrapped[4] == wrapped[5] != wrapped[6]
    assert sealer.stats.data_keys_created == 3
    # Values sealed under retired keys still open, from the cache.
    assert [await sealer.open(s, AAD) for s in sealed] == [b"v%d" % i for i in range(7)]
    assert sealer.stats.unwraps == 0


async def test_data_key_rotates_after_lifetime(key_layer: KeyLayer) -> None:
    clock = FakeClock()
    sealer = Sealer(key_layer, key_lifetime=timedelta(minutes=10), clock=clock)
    a = await sealer.seal(b"a", AAD)
    clock.now += 599
    b = await sealer.seal(b"b", AAD)
    clock.now += 1
    c = await sealer.seal(b"c", AAD)
    assert wrapped_key_of(a) == wrapped_key_of(b) != wrapped_key_of(c)
    assert sealer.stats.data_keys_created == 2


async def test_cache_is_bounded_and_evicted_keys_are_wiped(key_layer: KeyLayer) -> None:
    sealer = Sealer(key_layer, max_uses=1, cache_size=2)
    sealed = [await sealer.seal(b"v%d" % i, AAD) for i in range(4)]
    assert sealer.stats.cached_keys == 2
    # White-box: keep the oldest cached key object, push it out, and look at its buffer.
    oldest = next(iter(sealer._cache.values()))
    await sealer.seal(b"v4", AAD)
    assert oldest not in sealer._cache.values()
    assert bytes(oldest._clear) == bytes(32)
    # An evicted key is unwrapped again through the HSM when needed.
    assert await sealer.open(sealed[0], AAD) == b"v0"
    assert sealer.stats.unwraps == 1
    assert sealer.stats.cached_keys == 2


async def test_current_key_survives_eviction_by_foreign_keys(key_layer: KeyLayer) -> None:
    sealer = Sealer(key_layer, cache_size=1)
    own = await sealer.seal(b"own", AAD)
    foreign = Sealer(key_layer)
    await sealer.open(await foreign.seal(b"foreign", AAD), AAD)  # evicts the sealing key
    # Still sealing with the same (not wiped) data key, and its values still open.
    again = await sealer.seal(b"again", AAD)
    assert wrapped_key_of(again) == wrapped_key_of(own)
    assert await foreign.open(again, AAD) == b"again"
    assert sealer.stats.data_keys_created == 1


async def test_concurrent_cold_seals_make_one_data_key(key_layer: KeyLayer) -> None:
    sealer = Sealer(key_layer)
    sealed = await asyncio.gather(*(sealer.seal(b"%d" % i, AAD) for i in range(50)))
    assert len({wrapped_key_of(s) for s in sealed}) == 1
    assert sealer.stats.data_keys_created == 1


async def test_concurrent_cold_opens_unwrap_once(key_layer: KeyLayer) -> None:
    sealed = await Sealer(key_layer).seal(b"shared", AAD)
    reader = Sealer(key_layer)
    opened = await asyncio.gather(*(reader.open(sealed, AAD) for _ in range(50)))
    assert set(opened) == {b"shared"}
    assert reader.stats.unwraps == 1


async def test_concurrent_seals_with_tiny_max_uses_all_complete(key_layer: KeyLayer) -> None:
    sealer = Sealer(key_layer, max_uses=1)
    sealed = await asyncio.gather(*(sealer.seal(b"%d" % i, AAD) for i in range(20)))
    assert len({wrapped_key_of(s) for s in sealed}) == 20
    assert [await sealer.open(s, AAD) for s in sealed] == [b"%d" % i for i in range(20)]


async def test_close_wipes_and_sealer_recovers(key_layer: KeyLayer) -> None:
    sealer = Sealer(key_layer)
    sealed = await sealer.seal(b"before", AAD)
    key = next(iter(sealer._cache.values()))
    sealer.close()
    assert bytes(key._clear) == bytes(32)
    assert sealer.stats.cached_keys == 0
    assert await sealer.open(sealed, AAD) == b"before"  # unwrapped again
    assert await sealer.open(await sealer.seal(b"after", AAD), AAD) == b"after"


async def test_repr_shows_no_key_material(key_layer: KeyLayer) -> None:
    sealer = Sealer(key_layer)
    await sealer.seal(b"x", AAD)
    key = next(iter(sealer._cache.values()))
    clear = bytes(key._clear)
    for text in (repr(sealer), str(sealer), repr(key)):
        assert clear.hex() not in text
        assert repr(clear) not in text
        assert key.wrapped.hex() not in text
    assert repr(key) == "_DataKey(<redacted>)"


def test_settings_are_validated(key_layer: KeyLayer) -> None:
    with pytest.raises(ValueError):
        Sealer(key_layer, max_uses=0)
    with pytest.raises(ValueError):
        Sealer(key_layer, key_lifetime=timedelta(0))
    with pytest.raises(ValueError):
        Sealer(key_layer, cache_size=0)
