"""Matrix timed mutes in the store (bot/store/mutes.py) on both backends: recorded by any process,
found when they run out, taken by exactly one of two racing processes, purged with the person."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.errors import BadStoreValue
from bot.store.mutes import MuteRecord

ROOM, OTHER = "!room:example.org", "!other:example.org"
ALICE, BOB = "@alice:example.org", "@bob:example.org"
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


async def test_a_mute_is_recorded_replaced_and_read_back(store: Any) -> None:
    assert await store.mute_of(ROOM, ALICE) is None
    first = MuteRecord(ROOM, ALICE, -1, None, T0 + timedelta(hours=12, microseconds=7))
    await store.record_mute(first)
    assert await store.mute_of(ROOM, ALICE) == first
    again = MuteRecord(ROOM, ALICE, -1, 50, T0 + timedelta(days=1))
    await store.record_mute(again)  # muted again: one record, the newer
    assert await store.mute_of(ROOM, ALICE) == again
    assert await store.mute_of(OTHER, ALICE) is None


async def test_run_out_mutes_are_found_oldest_first_and_bounded(store: Any) -> None:
    await store.record_mute(MuteRecord(ROOM, ALICE, -1, None, T0 + timedelta(minutes=5)))
    await store.record_mute(MuteRecord(ROOM, BOB, -1, 10, T0 - timedelta(hours=1)))
    await store.record_mute(MuteRecord(OTHER, ALICE, -1, None, T0 + timedelta(days=1)))
    assert [(m.room, m.user) for m in await store.expired_mutes(T0)] == [(ROOM, BOB)]
    later = await store.expired_mutes(T0 + timedelta(minutes=5))
    assert [(m.room, m.user) for m in later] == [(ROOM, BOB), (ROOM, ALICE)]
    assert len(await store.expired_mutes(T0 + timedelta(days=2), limit=1)) == 1
    with pytest.raises(BadStoreValue, match="limit"):
        await store.expired_mutes(T0, limit=0)
    with pytest.raises(BadStoreValue, match="limit"):
        await store.expired_mutes(T0, limit=10_000)


async def test_of_two_processes_racing_only_one_takes_the_mute(store: Any, backend: Any) -> None:
    other = await backend.open()  # another process on the same data
    mute = MuteRecord(ROOM, ALICE, -1, None, T0)
    await store.record_mute(mute)
    got = await asyncio.gather(store.take_mute(ROOM, ALICE, T0), other.take_mute(ROOM, ALICE, T0))
    assert sorted(got, key=lambda m: m is None) == [mute, None]
    assert await store.mute_of(ROOM, ALICE) is None


async def test_a_mute_made_again_meanwhile_is_not_taken_by_the_old_expiry(store: Any) -> None:
    await store.record_mute(MuteRecord(ROOM, ALICE, -1, 0, T0))
    renewed = MuteRecord(ROOM, ALICE, -1, 0, T0 + timedelta(hours=12))
    await store.record_mute(renewed)
    assert await store.take_mute(ROOM, ALICE, T0) is None  # the expiry loop saw the old one
    assert await store.mute_of(ROOM, ALICE) == renewed
    assert await store.take_mute(ROOM, ALICE) == renewed  # an admin's unmute takes whatever is there
    assert await store.take_mute(ROOM, ALICE) is None


async def test_a_failed_lift_puts_the_mute_back_unless_a_newer_one_is_there(store: Any) -> None:
    old = MuteRecord(ROOM, ALICE, -1, None, T0)
    await store.record_mute(old)
    taken = await store.take_mute(ROOM, ALICE, T0)
    assert await store.restore_mute(taken) is True
    assert await store.mute_of(ROOM, ALICE) == old
    await store.take_mute(ROOM, ALICE)
    newer = MuteRecord(ROOM, ALICE, -1, None, T0 + timedelta(hours=1))
    await store.record_mute(newer)
    assert await store.restore_mute(old) is False
    assert await store.mute_of(ROOM, ALICE) == newer


async def test_purge_forgets_the_persons_mutes_in_every_room(store: Any, backend: Any) -> None:
    await store.record_mute(MuteRecord(ROOM, ALICE, -1, None, T0))
    await store.record_mute(MuteRecord(OTHER, ALICE, -1, 20, T0))
    await store.record_mute(MuteRecord(ROOM, BOB, -1, None, T0))
    assert await store.forget_mutes(ALICE) == 2
    assert backend.count("mutes", "user_id = ?", (ALICE,)) == 0
    assert await store.mute_of(ROOM, BOB) is not None


@pytest.mark.parametrize(
    ("mute", "field"),
    [
        (MuteRecord("", ALICE, -1, None, T0), "room"),
        (MuteRecord(ROOM, "x" * 256, -1, None, T0), "user"),
        (MuteRecord(ROOM, ALICE, 2**53, None, T0), "level"),
        (MuteRecord(ROOM, ALICE, True, None, T0), "level"),
        (MuteRecord(ROOM, ALICE, -1, "50", T0), "previous"),  # type: ignore[arg-type]
        (MuteRecord(ROOM, ALICE, -1, None, "tomorrow"), "time"),  # type: ignore[arg-type]
    ],
)
async def test_bad_values_are_refused_and_nothing_is_written(store: Any, backend: Any, mute: Any, field: str) -> None:
    with pytest.raises(BadStoreValue, match=field):
        await store.record_mute(mute)
    assert backend.count("mutes") == 0
