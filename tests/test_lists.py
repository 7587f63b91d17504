"""Hash lists in the bot: HashLists loaded from and following the store, group isolation and
allow-over-block. The store's own list-matching methods (entry features, bulk import, change log)
are in the store contract, tests/store_contract/test_list_matching.py."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bot.entries import EntrySource, EntryWriter
from bot.follow import ChangeFollower
from bot.lists import HashLists, ListInfo, stored_fingerprint, stored_views
from bot.policy import Evidence, GroupSettings, decide
from bot.store import Store
from bot.store.records import ChangeKind
from detectors.matching import media_signals
from tests.support import transforms as T


def jpeg(rgb: np.ndarray, quality: int = 92) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


@cache
def signals(name: str, edit: str | None = None, quality: int = 92):
    rgb = T.photos()[name]
    if edit is not None:
        rgb = next(v for v in T.all_variants() if v.name == edit)(rgb)
    return media_signals(jpeg(rgb, quality))


@pytest.fixture
async def store(tmp_path: Path):
    s = await Store.open(tmp_path / "data" / "vigil.sqlite3")
    yield s
    await s.close()


async def add_image(store: Store, list_id: int, name: str, **kw) -> int:
    """An entry with the image's hashes, views and fingerprint, as /block and `vigil hash add` store them."""
    frame = signals(name)[0]
    h = frame.hashes
    entry = await store.add_entry(list_id, pdq=h.pdq, pdq_quality=h.pdq_quality, phash=h.phash, sha256=h.sha256, **kw)
    await store.set_entry_features(
        entry.id, views=stored_views(frame.views), fingerprint=stored_fingerprint(frame.fingerprint)
    )
    return entry.id


async def loaded(store: Store) -> HashLists:
    lists = HashLists()
    await lists.load(store)
    return lists


async def following(store: Store, **kw) -> tuple[HashLists, ChangeFollower]:
    """Lists loaded and following ``store`` as a running bot's do."""
    lists = HashLists()
    follower = ChangeFollower(store, ChangeKind.LISTS, lists.follower(store).view, **kw)
    await follower.load()
    return lists, follower


def match(lists: HashLists, list_ids, frames):
    return lists.match(list_ids, frames, distance=31, min_quality=50)


# --- HashLists from the store ------------------------------------------------------------------


async def test_load_then_match_copies_by_every_signal(store):
    lst = await store.create_list("blocked", kind="block")
    ids = {n: await add_image(store, lst.id, n) for n in ("coffee", "chelsea")}
    lists = await loaded(store)
    assert lists.size(lst.id) == 2 and lists.index.local_size == 2
    for edit in ("mirror_jpeg70", "crop10_3", "border20_white", "phone"):
        found = match(lists, [lst.id], signals("coffee", edit))
        assert [m.entry_id for m in found] == [ids["coffee"]], edit
    assert match(lists, [lst.id], signals("rocket")) == []


async def test_a_group_sees_its_own_lists_and_followed_ones_only(store):
    mine = await store.group_list("telegram", "-100", "block")
    theirs = await store.group_list("telegram", "-200", "block")
    shared = await store.create_list("ncii-partner", kind="block", label="ncii")
    await add_image(store, theirs.id, "coffee")
    await add_image(store, shared.id, "chelsea")
    lists = await loaded(store)
    own_ids = [lst.id for lst in await store.lists_for_group("telegram", "-100")]
    assert own_ids == [mine.id]
    assert match(lists, own_ids, signals("coffee", "jpeg50")) == []  # another group's list
    assert match(lists, own_ids, signals("chelsea", "jpeg50")) == []  # not followed yet
    await store.follow("telegram", "-100", shared.id)
    own_ids = [lst.id for lst in await store.lists_for_group("telegram", "-100")]
    found = match(lists, own_ids, signals("chelsea", "jpeg50"))
    assert [m.list_name for m in found] == ["ncii-partner"]
    assert match(lists, own_ids, signals("coffee", "jpeg50")) == []


async def test_the_allow_list_wins_over_the_block_list(store):
    block = await store.group_list("telegram", "-100", "block")
    allow = await store.group_list("telegram", "-100", "allow")
    await add_image(store, block.id, "astronaut")
    await add_image(store, allow.id, "astronaut")
    lists = await loaded(store)
    found = match(lists, [block.id, allow.id], signals("astronaut", "jpeg75"))
    assert {m.kind for m in found} == {"block", "allow"}
    evidence = Evidence(severity="clean", block_action="delete", allowed=any(m.kind == "allow" for m in found))
    assert decide(evidence, GroupSettings(), exempt=False).verdict == "allow"


async def test_an_allow_match_must_show_the_whole_picture(store):
    # A screenshot shows the allowed picture AND chrome that could hold anything: an allow
    # entry found only inside it (trimmed view, or local features covering part of it)
    # does not allow the screenshot; a block entry found the same way blocks it.
    allow = await store.group_list("telegram", "-100", "allow")
    block = await store.group_list("telegram", "-100", "block")
    await add_image(store, allow.id, "chelsea")
    await add_image(store, block.id, "coffee")
    lists = await loaded(store)
    ids = [allow.id, block.id]
    assert [m.kind for m in match(lists, ids, signals("chelsea", "jpeg50"))] == ["allow"]
    assert match(lists, ids, signals("chelsea", "phone")) == []
    assert [m.kind for m in match(lists, ids, signals("coffee", "phone"))] == ["block"]


async def test_the_follower_applies_changes_made_by_another_process(store, tmp_path):
    lst = await store.create_list("instance", kind="block")
    first = await add_image(store, lst.id, "coffee")
    lists, follower = await following(store)
    async with await Store.open(tmp_path / "data" / "vigil.sqlite3") as other:  # as `vigil hash` does
        second = await add_image(other, lst.id, "chelsea")
        await other.remove_entry(first)
        added = await other.create_list("later", kind="block", label="spam")
        third = await add_image(other, added.id, "rocket")
    assert await follower.catch_up() > 0
    assert match(lists, [lst.id], signals("coffee", "jpeg50")) == []
    assert [m.entry_id for m in match(lists, [lst.id], signals("chelsea", "crop10_3"))] == [second]
    assert [m.entry_id for m in match(lists, [added.id], signals("rocket", "mirror"))] == [third]
    assert lists.info(added.id) == ListInfo(added.id, "later", "block", "delete", "spam")
    # applying consumed nothing: another process following the same database still sees them
    assert len(await store.changes_since(ChangeKind.LISTS, 0)) >= 5
    await store.delete_list(added.id)
    await follower.catch_up()
    assert lists.info(added.id) is None and third not in lists
    assert match(lists, [added.id], signals("rocket", "mirror")) == []
    assert await follower.catch_up() == 0


async def test_a_purged_persons_entries_leave_the_index(store):
    lst = await store.group_list("telegram", "-100", "block")
    entry = await add_image(store, lst.id, "coffee", added_by="42", source_platform="telegram")
    lists, follower = await following(store)
    assert entry in lists
    await store.purge_user("telegram", "42")
    await follower.catch_up()
    assert entry not in lists and lists.size(lst.id) == 0


async def test_a_damaged_fingerprint_keeps_the_hashes_matching(store):
    lst = await store.create_list("l", kind="block")
    frame = signals("coffee")[0]
    h = frame.hashes
    entry = await store.add_entry(lst.id, pdq=h.pdq, pdq_quality=h.pdq_quality, phash=h.phash, sha256=h.sha256)
    await store.set_entry_features(entry.id, views=[], fingerprint=b"garbage that is not a fingerprint")
    lists = await loaded(store)
    assert entry.id in lists and lists.index.local_size == 0
    assert [m.entry_id for m in match(lists, [lst.id], signals("coffee", "jpeg50"))] == [entry.id]


# --- several processes on one database ---------------------------------------------------------


async def test_two_processes_following_one_database_each_apply_every_change(store, tmp_path):
    # a worker that applied a change must not take it from the other: each follows from its own number
    path = tmp_path / "data" / "vigil.sqlite3"
    lst = await store.create_list("instance", kind="block")
    async with await Store.open(path) as a_store, await Store.open(path) as b_store:
        a, a_follows = await following(a_store)
        b, b_follows = await following(b_store)
        entry = (await EntryWriter(store).add_frames(lst, signals("coffee"), EntrySource("operator")))[0]
        assert await a_follows.catch_up() > 0  # the first worker applies it first
        assert await b_follows.catch_up() > 0
        for lists in (a, b):
            assert [m.entry_id for m in match(lists, [lst.id], signals("coffee", "jpeg50"))] == [entry]
        await EntryWriter(store).remove(entry)
        await b_follows.catch_up()
        await a_follows.catch_up()
        assert entry not in a and entry not in b


async def test_the_bots_own_entry_is_matched_at_once_and_the_log_applies_it_harmlessly(store):
    lst = await store.group_list("telegram", "-100", "block")
    lists, follower = await following(store)
    writer = EntryWriter(store, lists)
    ids = await writer.add_frames(lst, signals("chelsea"), EntrySource("42", "telegram", "-100", "blocked"))
    assert [m.entry_id for m in match(lists, [lst.id], signals("chelsea", "mirror"))] == ids  # before any poll
    assert (await store.entries_by_id(ids))[ids[0]].source_chat == "-100"
    await follower.catch_up()
    assert lists.size(lst.id) == 1 and [m.entry_id for m in match(lists, [lst.id], signals("chelsea"))] == ids
    assert await writer.remove(ids[0]) and ids[0] not in lists
    assert not await writer.remove(ids[0])


async def test_a_follower_left_behind_by_pruning_loads_everything_again(store, tmp_path):
    # another process pruned changes this one never applied (it was stalled): it must not miss them
    lst = await store.create_list("instance", kind="block")
    gone = await add_image(store, lst.id, "coffee")
    lists, follower = await following(store)
    stays = await add_image(store, lst.id, "rocket")
    await store.remove_entry(gone)
    newer = await add_image(store, lst.id, "chelsea")
    # the other process's clock is 11 minutes on: this one's heartbeat is past the 10-minute bound (dead)
    later = lambda: datetime.now(UTC) + timedelta(minutes=11)  # noqa: E731
    async with await Store.open(tmp_path / "data" / "vigil.sqlite3", clock=later) as other:
        _, pruner = await following(other)
        await pruner.catch_up()
        assert await pruner.prune() > 0  # no live process holds the log: every change so far goes
    assert await follower.catch_up() == 0  # nothing left to apply: it loaded everything instead
    assert gone not in lists and stays in lists and newer in lists
    assert lists.size(lst.id) == 2


class FlakyView:
    """A view (Vigil's own seam) whose first apply fails, as a lost connection would make it."""

    def __init__(self) -> None:
        self.reloads, self.applied, self.fail = 0, [], True

    async def reload(self) -> None:
        self.reloads += 1

    async def apply(self, changes) -> None:
        if self.fail:
            self.fail = False
            raise OSError("connection lost")
        self.applied.extend(c.item for c in changes)


async def test_a_change_whose_apply_failed_is_applied_at_the_next_poll(store):
    view = FlakyView()
    follower = ChangeFollower(store, ChangeKind.LISTS, view)
    lst = await store.create_list("l", kind="block")
    assert await follower.catch_up() == 0 and view.reloads == 1  # the first poll loads everything
    entry = await store.add_entry(lst.id, sha256="d" * 64)
    with pytest.raises(OSError):
        await follower.catch_up()
    assert view.applied == []
    assert await follower.catch_up() == 1 and view.applied == [entry.id]  # nothing lost, nothing twice
    assert await follower.catch_up() == 0 and view.reloads == 1
