"""Index snapshots and change-log pruning by live processes (issue #12), on real SQLite files with
real fingerprints of the test photos: a process started after a snapshot matches what was added
before and after it, a damaged or old snapshot falls back to loading everything, and pruning waits
for a live process that lags, stops waiting once it is dead, and never goes past the newest snapshot.
(The store methods under this are in the contract suite, tests/store_contract/test_index_snapshots.py,
on both backends.)"""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from bot.config import ProtectConfig, SnapshotsConfig
from bot.lists import HashLists
from bot.protect import Protector, print_of_bytes, query_of_bytes
from bot.snapshots import SnapshotWriter
from bot.store import Store
from bot.store.changes import ChangesPruned
from bot.store.postgres import PostgresStore
from bot.store.records import ChangeKind
from detectors import index_snapshot
from detectors.protected import KnownPhoto, ProtectedIndex
from detectors.settings import MediaLimits
from tests.support import transforms as tf
from tests.test_lists import add_image, signals

P = ChangeKind.PROTECTED


def jpeg(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    return tf.photos()


class Offset:
    """A store clock that runs with real time, moved on by hand: another process's view of now."""

    def __init__(self) -> None:
        self.ahead = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.ahead


@pytest.fixture(params=["sqlite", "postgresql"])
async def stores(request: pytest.FixtureRequest, tmp_path: Path):
    """Opens stores on one database (a SQLite file, or a PostgreSQL schema of the test's own), as
    separate processes would; closes them after the test."""
    opened: list[Any] = []
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None

    async def open_store(clock: Offset | None = None) -> Any:
        if url is not None:
            s = await PostgresStore.open(url, clock=clock or Offset(), pool_size=(1, 4))
        else:
            s = await Store.open(tmp_path / "data" / "vigil.sqlite3", clock=clock or Offset())
        opened.append(s)
        return s

    yield open_store
    for s in opened:
        await s.close()


def traced_ids(protector: Protector, data: bytes) -> set[int]:
    return {m.photo.id for m in protector.match(query_of_bytes(data))}


def fake_of(photos: dict[str, np.ndarray], name: str) -> bytes:
    return jpeg(tf.undress_like(photos[name], region="centre", share=0.3))


async def test_a_process_started_after_a_snapshot_matches_photos_added_before_and_after_it(stores, photos) -> None:
    a_store, cli_store, b_store = await stores(), await stores(), await stores()
    a, cli = Protector(a_store, ProtectConfig()), Protector(cli_store, ProtectConfig())
    gone = await cli.add_operator_photo("Ana", jpeg(photos["faces"]))
    before = await cli.add_operator_photo("Bea", jpeg(photos["rocket"]))
    await a.load()
    info = await SnapshotWriter(a_store, [a.follower]).write(a.follower)
    assert info is not None and info.seq == a.follower.seen > 0
    # after the snapshot: one photo added, one removed
    after = await cli.add_operator_photo("Cris", jpeg(photos["coffee"]))
    await cli.remove_photo(gone)

    b = Protector(b_store, ProtectConfig())
    await b.load()
    assert b.follower.loaded_from == info.seq  # from the snapshot, not built from every row
    assert b.index.ids() == {gone, before}  # exactly what the snapshot covers
    await b.refresh()  # then the changes after it
    assert b.index.ids() == {before, after}
    assert traced_ids(b, fake_of(photos, "rocket")) == {before}
    assert traced_ids(b, fake_of(photos, "coffee")) == {after}
    assert traced_ids(b, fake_of(photos, "faces")) == set()  # removed after the snapshot: not named


async def _snapshot_then_load(stores, photos, data: bytes, fmt: int) -> tuple[Protector, set[int]]:
    store = await stores()
    cli = Protector(store, ProtectConfig())
    ids = {
        await cli.add_operator_photo("Ana", jpeg(photos["faces"])),
        await cli.add_operator_photo("Bea", jpeg(photos["rocket"])),
    }
    await store.save_index_snapshot(P, await store.last_change(P), fmt, data)
    b = Protector(await stores(), ProtectConfig())
    await b.load()
    return b, ids


@pytest.mark.parametrize(
    "damage",
    ["garbage", "truncated", "flipped", "other format inside", "newer format on the row", "photos disagree"],
)
async def test_a_damaged_or_other_format_snapshot_falls_back_to_loading_everything(
    stores, photos, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    # a good snapshot of an index holding one photo, made apart, then damaged
    good_store = await stores()
    one = Protector(good_store, ProtectConfig())
    await one.add_operator_photo("Ana", jpeg(photos["faces"]))
    good = await one.dump()
    fmt = index_snapshot.FORMAT
    if damage == "garbage":
        data = b"not a snapshot at all"
    elif damage == "truncated":
        data = good[: len(good) // 2]
    elif damage == "flipped":
        data = bytearray(good)
        data[len(good) // 2] ^= 0xFF
        data = bytes(data)
    elif damage == "other format inside":
        arrays = index_snapshot.unpack(good, index_snapshot.PROTECTED)
        buf = io.BytesIO()
        np.savez(buf, **{**arrays, "_format": np.array([index_snapshot.FORMAT + 1], np.int64)})
        data = buf.getvalue()
    elif damage == "newer format on the row":
        data, fmt = good, index_snapshot.FORMAT + 1
    else:  # the photo table names a photo the local index does not hold
        arrays = index_snapshot.unpack(good, index_snapshot.PROTECTED)
        arrays["photos"] = np.frombuffer(b'[[999, 1, "X", "operator", null, null, null, null, null]]', np.uint8)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        data = buf.getvalue()
    await good_store.close()
    b, ids = await _snapshot_then_load(stores, photos, data, fmt)
    assert b.follower.loaded_from is None  # built from the store instead
    assert b.index.ids() >= ids
    assert traced_ids(b, fake_of(photos, "rocket")) & ids
    assert any("snapshot" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")


async def test_pruning_waits_for_a_live_lagging_process_and_stops_waiting_once_it_is_dead(stores, photos) -> None:
    a_clock = Offset()
    a_store, b_store = await stores(a_clock), await stores()
    a, b = Protector(a_store, ProtectConfig()), Protector(b_store, ProtectConfig())
    first = await a.add_operator_photo("Ana", jpeg(photos["faces"]))
    await a.load()
    await b.load()  # b is at the head now, and lags from here on
    b_seen = b.follower.seen
    second = await a.add_operator_photo("Bea", jpeg(photos["rocket"]))
    await a.remove_photo(first)
    await a.refresh()
    assert a.follower.seen > b_seen
    assert await a.follower.prune() == 1  # only the change both applied: b is live and lags
    assert len(await a_store.changes_since(P, b_seen)) == 2
    # b falls silent past the bound (its last heartbeat is 11 minutes old in a's eyes): dead
    a_clock.ahead = timedelta(minutes=11)
    assert await a.follower.prune() == 2  # everything a applied goes
    with pytest.raises(ChangesPruned):
        await b_store.changes_since(P, b_seen)
    # b was only slow: it finds out and loads again, and misses nothing
    await b.refresh()
    assert b.index.ids() == {second}
    assert traced_ids(b, fake_of(photos, "faces")) == set()


async def test_pruning_never_goes_past_the_newest_snapshot(stores, photos) -> None:
    store = await stores()
    a = Protector(store, ProtectConfig())
    await a.add_operator_photo("Ana", jpeg(photos["faces"]))
    await a.load()
    info = await SnapshotWriter(store, [a.follower]).write(a.follower)
    assert info is not None
    later = await a.add_operator_photo("Bea", jpeg(photos["rocket"]))
    await a.refresh()
    assert a.follower.seen > info.seq
    await a.follower.prune()  # a alone is live and at its head; the snapshot holds the rest
    after_snapshot = await store.changes_since(P, info.seq)
    assert [c.item for c in after_snapshot] == [later]  # a process loading the snapshot still finds them
    fresh = Protector(await stores(), ProtectConfig())
    await fresh.load()
    await fresh.refresh()
    assert fresh.follower.loaded_from == info.seq and later in fresh.index.ids()
    # snapshots turned off ([snapshots] enabled = false): an old one no longer holds the log
    for follower in (a.follower, fresh.follower):
        follower.snapshots = False
    assert await fresh.follower.prune() == 1  # both processes are at the head: the change after the snapshot goes
    assert await store.changes_since(P, a.follower.seen) == []


async def test_the_writer_writes_when_due_and_only_while_it_holds_the_turn(stores, photos) -> None:
    a_store, b_store = await stores(), await stores()
    a, b = Protector(a_store, ProtectConfig()), Protector(b_store, ProtectConfig())
    await a.add_operator_photo("Ana", jpeg(photos["faces"]))
    await a.load()
    await b.load()
    policy = SnapshotsConfig(changes=2, minutes=60)
    wa, wb = SnapshotWriter(a_store, [a.follower], policy), SnapshotWriter(b_store, [b.follower], policy)
    assert await wa.tick() == 1  # none yet: due; a takes the turn
    assert await wb.tick() == 0 and await wa.tick() == 0  # b has no turn; a's is not due again
    await a.add_operator_photo("Bea", jpeg(photos["rocket"]))
    await a.refresh()
    assert await wa.tick() == 0  # one change: fewer than ``changes``
    await a.add_operator_photo("Cris", jpeg(photos["coffee"]))
    await a.refresh()
    assert await wa.tick() == 1
    latest = await a_store.latest_index_snapshot(P)
    assert latest is not None and latest.seq == a.follower.seen


# --- hash lists ---------------------------------------------------------------------------------


async def test_a_process_started_after_a_list_snapshot_matches_entries_added_before_and_after_it(stores) -> None:
    a_store, b_store = await stores(), await stores()
    block = await a_store.create_list("instance", kind="block")
    allow = await a_store.create_list("friends", kind="allow")
    gone = await add_image(a_store, block.id, "coffee")
    before = await add_image(a_store, block.id, "rocket")
    allowed = await add_image(a_store, allow.id, "astronaut")
    a = HashLists()
    a_follower = a.follower(a_store)
    await a_follower.load()
    info = await SnapshotWriter(a_store, [a_follower]).write(a_follower)
    assert info is not None and info.seq == a_follower.seen
    after = await add_image(a_store, block.id, "chelsea")
    await a_store.remove_entry(gone)

    b = HashLists()
    b_follower = b.follower(b_store)
    await b_follower.load()
    assert b_follower.loaded_from == info.seq  # from the snapshot
    assert {gone, before, allowed} <= set(_held(b)) and after not in b
    await b_follower.catch_up()
    assert gone not in b and before in b and after in b
    assert b.size(block.id) == 2 and b.size(allow.id) == 1 and b.info(allow.id).kind == "allow"

    def found(name: str, list_ids: list[int]) -> list[int]:
        return [m.entry_id for m in b.match(list_ids, signals(name), distance=31, min_quality=50)]

    assert found("rocket", [block.id]) == [before]
    assert found("chelsea", [block.id]) == [after]
    assert found("coffee", [block.id]) == []
    assert found("astronaut", [allow.id]) == [allowed]
    assert found("rocket", [allow.id]) == []  # the list filter holds after a snapshot too


def _held(lists: HashLists) -> list[int]:
    return [i for i in range(1, 100) if i in lists]


async def test_a_damaged_list_snapshot_falls_back_to_loading_everything(stores) -> None:
    store = await stores()
    block = await store.create_list("instance", kind="block")
    entry = await add_image(store, block.id, "rocket")
    a = HashLists()
    await a.follower(store).load()
    good = a.snapshot()
    await store.save_index_snapshot(ChangeKind.LISTS, await store.last_change(ChangeKind.LISTS), 1, good[:-100])
    b = HashLists()
    follower = b.follower(await stores())
    await follower.load()
    assert follower.loaded_from is None and entry in b and b.size(block.id) == 1


# --- the index arrays alone (detectors/index_snapshot.py) ----------------------------------------


def test_a_protected_index_loaded_from_its_snapshot_finds_what_the_built_one_finds(photos) -> None:
    index = ProtectedIndex()
    names = ["faces", "rocket", "coffee", "astronaut", "chelsea"]
    prints = {n: print_of_bytes(jpeg(photos[n]), MediaLimits()) for n in names}
    for i, n in enumerate(names, 1):  # one at a time: several segments
        index.add(KnownPhoto(i, i, n, "operator", None, None, None, None, prints[n].pdq), prints[n].fingerprint)
    index.remove(2)  # dead postings travel too
    loaded = index_snapshot.load_protected(index_snapshot.dump_protected(index))
    assert loaded.ids() == index.ids() == {1, 3, 4, 5}
    for n in names:
        frames = query_of_bytes(fake_of(photos, n))
        got = [(m.photo, m.inliers) for m in loaded.search(frames, min_fraction=0.1)]
        assert got == [(m.photo, m.inliers) for m in index.search(frames, min_fraction=0.1)]
    loaded.add(KnownPhoto(2, 2, "rocket", "operator", None, None, None, None, None), prints["rocket"].fingerprint)
    assert [m.photo.id for m in loaded.search(query_of_bytes(fake_of(photos, "rocket")), min_fraction=0.1)] == [2]


def test_snapshot_bytes_of_another_kind_are_refused() -> None:
    lists_bytes = index_snapshot.dump_lists(HashLists().index, [])
    with pytest.raises(index_snapshot.BadSnapshot, match="of 'lists', not of 'protected'"):
        index_snapshot.load_protected(lists_bytes)


async def test_the_running_writer_stores_a_snapshot_a_later_process_starts_from(stores, photos) -> None:
    store = await stores()
    a = Protector(store, ProtectConfig())
    photo = await a.add_operator_photo("Ana", jpeg(photos["faces"]))
    await a.load()
    writer = SnapshotWriter(store, [a.follower], SnapshotsConfig(check_seconds=0.05))
    writer.start()
    try:
        async with asyncio.timeout(30):  # the writer's own record: the snapshot row
            while (latest := await store.latest_index_snapshot(P)) is None:
                await asyncio.sleep(0.05)
    finally:
        await writer.stop()
    assert latest.seq == a.follower.seen
    b = Protector(await stores(), ProtectConfig())
    await b.load()
    assert b.follower.loaded_from == latest.seq and traced_ids(b, fake_of(photos, "faces")) == {photo}
