"""Index snapshots and the followers of the change logs, on every backend: a snapshot comes back
whole (however many parts), only the latest two of a kind are kept, the live floor counts only
processes seen within the bound, and one process at a time holds the writer's turn."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from bot.errors import BadStoreValue
from bot.store import snapshots as snapshots_module
from bot.store.records import ChangeKind
from tests.store_contract.conftest import Backend

P = ChangeKind.PROTECTED
L = ChangeKind.LISTS


async def test_a_snapshot_comes_back_whole_from_its_parts_and_only_the_latest_two_are_kept(
    store: Any, backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(snapshots_module, "PART_BYTES", 1000)
    data = bytes(range(256)) * 17  # 4352 bytes: five parts
    assert await store.latest_index_snapshot(P) is None
    first = await store.save_index_snapshot(P, 10, 1, data)
    assert backend.count("index_snapshot_parts", "snapshot_id = ?", (first.id,)) == 5
    latest = await store.latest_index_snapshot(P)
    assert latest is not None and (latest.id, latest.seq, latest.format, latest.size) == (first.id, 10, 1, len(data))
    other = await backend.open()  # as another process reads it
    assert await other.index_snapshot_data(first.id) == data
    backend.clock.now += timedelta(minutes=1)
    second = await store.save_index_snapshot(P, 20, 1, b"two")
    lists = await store.save_index_snapshot(L, 5, 1, b"lists")
    third = await store.save_index_snapshot(P, 30, 1, b"three")
    got = await other.latest_index_snapshot(P)
    assert got is not None and got.id == third.id and got.created_at == backend.clock.now
    # the first went with its parts; the lists' snapshot is apart
    assert await other.index_snapshot_data(first.id) is None
    assert backend.count("index_snapshot_parts", "snapshot_id = ?", (first.id,)) == 0
    assert await other.index_snapshot_data(second.id) == b"two"
    assert (await other.latest_index_snapshot(L)).id == lists.id
    assert backend.count("index_snapshots", "kind = ?", ("protected",)) == 2


async def test_the_live_floor_counts_only_processes_seen_within_the_bound(store: Any, backend: Backend) -> None:
    assert await store.live_floor(P, 600) is None
    await store.record_follower("host:1:aa", "worker", P, 40)
    await store.record_follower("host:2:bb", "worker", P, 55)
    await store.record_follower("host:2:bb", "worker", L, 7)
    assert await store.live_floor(P, 600) == 40 and await store.live_floor(L, 600) == 7
    backend.clock.now += timedelta(minutes=5)
    await store.record_follower("host:2:bb", "worker", P, 60)  # b is seen again; a is silent
    assert await store.live_floor(P, 600) == 40  # a is still within the bound: it holds the log
    backend.clock.now += timedelta(minutes=6)
    assert await store.live_floor(P, 600) == 60  # a is past it: dead, it holds nothing
    await store.record_follower("host:1:aa", "worker", P, 45)  # a was only slow: it holds again
    assert await store.live_floor(P, 600) == 45
    backend.clock.now += timedelta(hours=2)
    await store.record_follower("host:3:cc", "all", P, 90)
    assert await store.forget_followers(3600) == 3  # a and b, both logs, forgotten; c stays
    assert backend.count("change_followers") == 1


async def test_one_process_at_a_time_holds_the_writer_turn_until_its_lease_runs_out(
    store: Any, backend: Backend
) -> None:
    other = await backend.open()
    assert await store.take_snapshot_turn(P, "host:1:aa", 180)
    assert not await other.take_snapshot_turn(P, "host:2:bb", 180)
    assert await other.take_snapshot_turn(L, "host:2:bb", 180)  # each kind has its own turn
    backend.clock.now += timedelta(seconds=100)
    assert await store.take_snapshot_turn(P, "host:1:aa", 180)  # kept: renewed to 100 + 180 s
    backend.clock.now += timedelta(seconds=179)
    assert not await other.take_snapshot_turn(P, "host:2:bb", 180)
    backend.clock.now += timedelta(seconds=2)  # the holder stopped renewing: its lease ran out
    assert await other.take_snapshot_turn(P, "host:2:bb", 180)
    assert not await store.take_snapshot_turn(P, "host:1:aa", 180)


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.save_index_snapshot("photos", 1, 1, b"x"),
        lambda s: s.save_index_snapshot(P, -1, 1, b"x"),
        lambda s: s.save_index_snapshot(P, 1, 0, b"x"),
        lambda s: s.save_index_snapshot(P, 1, 1, "text"),
        lambda s: s.record_follower("", "worker", P, 1),
        lambda s: s.record_follower("p" * 129, "worker", P, 1),
        lambda s: s.record_follower("p", "", P, 1),
        lambda s: s.record_follower("p", "worker", P, True),
        lambda s: s.live_floor(P, 0),
        lambda s: s.take_snapshot_turn(P, "p", float("nan")),
    ],
)
async def test_bad_values_are_refused_and_change_nothing(store: Any, backend: Backend, call: Any) -> None:
    with pytest.raises(BadStoreValue):
        await call(store)
    assert backend.count("index_snapshots") == 0 and backend.count("change_followers") == 0
