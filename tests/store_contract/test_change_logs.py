"""The change logs every running process follows (hash lists and protected photos), on every
backend: what is logged, that reading never consumes a change (another process still sees it),
and pruning that a follower left behind is told about."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bot.errors import BadStoreValue
from bot.store.changes import ChangesPruned
from bot.store.records import ChangeKind, ChangeOp
from tests.store_contract.conftest import Backend

T = "telegram"
FP = "QUJDREVGR0hJSktMTU5PUA=="


async def test_protected_changes_name_each_photo_and_owner_whoever_makes_them(store: Any) -> None:
    await store.upsert_group(T, "-41", "Parents")
    start = await store.last_change(ChangeKind.PROTECTED)
    ana = await store.member_owner(T, "7", name="Ana", create=True)
    kept = await store.add_protected_photo(ana.id, FP, source="private")
    group = await store.add_protected_photo(
        ana.id, FP, source="group", platform=T, chat_id="-41", expires_at=datetime(2024, 5, 2, tzinfo=UTC)
    )
    await store.set_owner_notify(ana.id, True)
    assert await store.migrate_group(T, "-41", "-10041")  # the group photo moved with its group
    await store.expire_protected_photos(datetime(2024, 5, 3, tzinfo=UTC))
    bea = await store.operator_owner("Bea", create=True)
    gone = await store.add_protected_photo(bea.id, FP, source="operator")
    await store.remove_protected_owner(bea.id)  # the photo goes by cascade: logged too
    changes = await store.changes_since(ChangeKind.PROTECTED, start)
    got = [(c.op, c.parent, c.item) for c in changes]
    assert got == [
        (ChangeOp.ADD, ana.id, kept.id),
        (ChangeOp.ADD, ana.id, group.id),
        (ChangeOp.OWNER, ana.id, None),
        (ChangeOp.ADD, ana.id, group.id),
        (ChangeOp.REMOVE, ana.id, group.id),
        (ChangeOp.ADD, bea.id, gone.id),
        (ChangeOp.REMOVE, bea.id, gone.id),
    ]
    assert [c.seq for c in changes] == sorted(c.seq for c in changes)
    assert await store.last_change(ChangeKind.PROTECTED) == changes[-1].seq
    # the lists' log is apart: none of these is a list change
    assert await store.changes_since(ChangeKind.LISTS, 0) == []


async def test_a_change_made_through_one_handle_is_seen_by_every_other_however_often_read(
    store: Any, backend: Backend
) -> None:
    worker_a, worker_b = await backend.open(), await backend.open()  # as other processes would
    seen = {name: await s.last_change(ChangeKind.LISTS) for name, s in (("a", worker_a), ("b", worker_b))}
    lst = await store.create_list("shared", kind="block")
    entry = await store.add_entry(lst.id, sha256="e" * 64)
    first = await worker_a.changes_since(ChangeKind.LISTS, seen["a"])
    again = await worker_a.changes_since(ChangeKind.LISTS, seen["a"])
    other = await worker_b.changes_since(ChangeKind.LISTS, seen["b"])
    assert first == again == other  # reading (applying) consumes nothing
    assert [(c.op, c.item) for c in first] == [(ChangeOp.LIST, None), (ChangeOp.ADD, entry.id)]
    assert await worker_b.changes_since(ChangeKind.LISTS, first[-1].seq) == []
    # limit: oldest first, in pages
    page = await worker_b.changes_since(ChangeKind.LISTS, seen["b"], 1)
    assert page == first[:1]


@pytest.mark.parametrize("kind", list(ChangeKind))
async def test_a_follower_behind_the_pruned_log_is_told_to_load_again(store: Any, kind: ChangeKind) -> None:
    lst = await store.create_list("p", kind="block")
    owner = await store.member_owner(T, "8", name="Cleo", create=True)
    for n in range(3):
        if kind is ChangeKind.LISTS:
            await store.add_entry(lst.id, sha256=f"{n:064x}")
        else:
            await store.add_protected_photo(owner.id, FP, source="private")
    changes = await store.changes_since(kind, 0)
    assert len(changes) >= 3
    cut = changes[-2].seq
    assert await store.prune_changes(kind, cut) == len(changes) - 1
    with pytest.raises(ChangesPruned) as err:
        await store.changes_since(kind, cut - 1)  # missed the pruned rows: never a silent gap
    assert (err.value.kind, err.value.seen, err.value.pruned) == (kind, cut - 1, cut)
    assert "load everything" in str(err.value)
    assert await store.changes_since(kind, cut) == changes[-1:]  # at or past the cut: goes on
    assert await store.prune_changes(kind, 1) == 0  # the mark never goes back
    with pytest.raises(ChangesPruned):
        await store.changes_since(kind, cut - 1)
    await store.prune_changes(kind, changes[-1].seq)
    # an empty log still tells a newcomer where to start: never below what was pruned
    start = await store.last_change(kind)
    assert start == changes[-1].seq and await store.changes_since(kind, start) == []
    other = ChangeKind.PROTECTED if kind is ChangeKind.LISTS else ChangeKind.LISTS
    await store.changes_since(other, 0)  # the other log was not pruned


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda s: s.changes_since("everything", 0), "kind"),
        (lambda s: s.changes_since(ChangeKind.LISTS, -1), "seq"),
        (lambda s: s.changes_since(ChangeKind.LISTS, True), "seq"),
        (lambda s: s.changes_since(ChangeKind.LISTS, 0, 0), "limit"),
        (lambda s: s.prune_changes(ChangeKind.PROTECTED, "5"), "upto"),
        (lambda s: s.last_change(None), "kind"),
    ],
)
async def test_bad_change_log_arguments_are_refused(store: Any, call: Any, field: str) -> None:
    with pytest.raises(BadStoreValue) as err:
        await call(store)
    assert err.value.field == field
