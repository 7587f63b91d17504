"""The store's list-matching methods (entry features, bulk imports, the list change log), on
every backend. Moved from tests/test_lists.py."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from PIL import Image

from bot.errors import BadStoreValue, UnknownRecord
from bot.lists import stored_fingerprint, stored_views
from bot.store.records import ChangeKind
from detectors.matching import media_signals
from tests.support import transforms as T


def jpeg(rgb: np.ndarray, quality: int = 92) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


async def add_image(store: Any, list_id: int, name: str) -> int:
    """An entry with the image's hashes, views and fingerprint, as /block and `vigil hash add` store them."""
    frame = media_signals(jpeg(T.photos()[name]))[0]
    h = frame.hashes
    entry = await store.add_entry(list_id, pdq=h.pdq, pdq_quality=h.pdq_quality, phash=h.phash, sha256=h.sha256)
    await store.set_entry_features(
        entry.id, views=stored_views(frame.views), fingerprint=stored_fingerprint(frame.fingerprint)
    )
    return entry.id


async def test_features_are_kept_as_text_and_go_with_their_entry(store):
    lst = await store.create_list("deepfakes", kind="block", label="deepfake")
    entry_id = await add_image(store, lst.id, "coffee")
    features = (await store.entry_features([entry_id]))[entry_id]
    assert features.fingerprint is not None and len(features.fingerprint) > 100
    from detectors.localmatch import Fingerprint

    assert len(Fingerprint.from_bytes(features.fingerprint)) > 50
    assert await store.remove_entry(entry_id)
    assert await store.entry_features([entry_id]) == {}


@pytest.mark.parametrize(
    "views, fingerprint, field",
    [
        ([{"crop": "full", "pdq": "0" * 64, "quality": 90, "phash": None}], None, "crop"),
        ([{"crop": "border", "pdq": "xyz", "quality": 90, "phash": None}], None, "pdq"),
        ([{"crop": "border", "pdq": None, "quality": 90, "phash": None}], None, "views"),
        ([{"crop": "border", "pdq": "0" * 64, "quality": 90, "phash": None, "pixels": "..."}], None, "views"),
        ([], "not bytes", "fingerprint"),
        ([], b"x" * 300_000, "fingerprint"),
    ],
)
async def test_bad_features_are_refused_and_change_nothing(store, views, fingerprint, field):
    lst = await store.create_list("l", kind="block")
    entry = await store.add_entry(lst.id, sha256="a" * 64)
    before = await store.last_change(ChangeKind.LISTS)
    with pytest.raises(BadStoreValue) as err:
        await store.set_entry_features(entry.id, views=views, fingerprint=fingerprint)
    assert err.value.field == field
    assert await store.entry_features([entry.id]) == {}
    assert await store.last_change(ChangeKind.LISTS) == before


async def test_features_of_a_missing_entry_are_refused(store):
    with pytest.raises(UnknownRecord):
        await store.set_entry_features(999, views=[], fingerprint=b"x" * 40)


async def test_bulk_add_is_all_or_nothing_and_skips_duplicates(store):
    lst = await store.create_list("imported", kind="block", label="ncii")
    await store.add_entry(lst.id, pdq="1" * 64)
    rows = [{"pdq": f"{i:064x}"} for i in range(2, 50)] + [{"pdq": "1" * 64}, {"pdq": f"{2:064x}"}]
    counts = await store.add_entries_bulk(lst.id, rows, added_by="operator", note="from partner")
    assert (counts.added, counts.duplicates) == (48, 2)
    assert len(await store.entries(lst.id)) == 49
    bad = [{"pdq": f"{i:064x}"} for i in range(100, 140)] + [{"pdq": "not hex"}]
    with pytest.raises(BadStoreValue):
        await store.add_entries_bulk(lst.id, bad)
    assert len(await store.entries(lst.id)) == 49  # nothing of the bad batch
    with pytest.raises(UnknownRecord):
        await store.add_entries_bulk(12345, [{"pdq": "3" * 64}])


async def test_a_bulk_add_that_fails_midway_takes_its_rows_back(store):
    from bot.store.lists import BULK_CHUNK

    lst = await store.create_list("imported", kind="block")
    kept = await store.add_entry(lst.id, pdq="1" * 64)
    rows = [{"pdq": f"{i:064x}"} for i in range(2, 2 * BULK_CHUNK + 10)]

    def fail_after_first_chunk(done: int) -> None:
        raise OSError("disk full")  # as a write failing after the first transaction

    with pytest.raises(OSError):
        await store.add_entries_bulk(lst.id, rows, progress=fail_after_first_chunk)
    assert [e.id for e in await store.entries(lst.id)] == [kept.id]
    written = []
    counts = await store.add_entries_bulk(lst.id, rows, progress=written.append)
    assert counts.added == len(rows) and written[-1] == len(rows) and len(written) == 3


async def test_every_change_is_logged_whoever_makes_it(store):
    start = await store.last_change(ChangeKind.LISTS)
    lst = await store.create_list("x", kind="block")
    entry = await store.add_entry(lst.id, sha256="b" * 64)
    await store.set_entry_features(entry.id, views=[], fingerprint=b"\0" * 40)
    await store.add_entries_bulk(lst.id, [{"pdq": "c" * 64}])
    await store.delete_list(lst.id)  # its entries go by cascade: logged too
    changes = await store.changes_since(ChangeKind.LISTS, start)
    ops = [(c.op, c.item) for c in changes]
    assert ops[0] == ("list", None) and ops[-1] == ("unlist", None)
    assert ("add", entry.id) in ops and ("remove", entry.id) in ops
    assert sum(op == "remove" for op, _ in ops) == 2
    assert {c.parent for c in changes} == {lst.id}
    assert await store.changes_since(ChangeKind.LISTS, changes[-1].seq) == []
