"""Hash lists in the bot: HashLists loaded from and following the store, group isolation and
allow-over-block. The store's own list-matching methods (entry features, bulk import, change log)
are in the store contract, tests/store_contract/test_list_matching.py."""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bot.lists import HashLists, ListInfo, stored_fingerprint, stored_views
from bot.policy import Evidence, GroupSettings, decide
from bot.store import Store
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


async def test_sync_follows_changes_made_by_another_process(store, tmp_path):
    lst = await store.create_list("instance", kind="block")
    first = await add_image(store, lst.id, "coffee")
    lists = await loaded(store)
    async with await Store.open(tmp_path / "data" / "vigil.sqlite3") as other:  # as `vigil hash` does
        second = await add_image(other, lst.id, "chelsea")
        await other.remove_entry(first)
        added = await other.create_list("later", kind="block", label="spam")
        third = await add_image(other, added.id, "rocket")
    assert await lists.sync(store) > 0
    assert match(lists, [lst.id], signals("coffee", "jpeg50")) == []
    assert [m.entry_id for m in match(lists, [lst.id], signals("chelsea", "crop10_3"))] == [second]
    assert [m.entry_id for m in match(lists, [added.id], signals("rocket", "mirror"))] == [third]
    assert lists.info(added.id) == ListInfo(added.id, "later", "block", "delete", "spam")
    assert await store.list_changes_since(0) == []  # applied, then forgotten
    await store.delete_list(added.id)
    await lists.sync(store)
    assert lists.info(added.id) is None and third not in lists
    assert match(lists, [added.id], signals("rocket", "mirror")) == []
    assert await lists.sync(store) == 0


async def test_a_purged_persons_entries_leave_the_index(store):
    lst = await store.group_list("telegram", "-100", "block")
    entry = await add_image(store, lst.id, "coffee", added_by="42", source_platform="telegram")
    lists = await loaded(store)
    assert entry in lists
    await store.purge_user("telegram", "42")
    await lists.sync(store)
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
