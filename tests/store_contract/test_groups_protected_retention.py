"""More of the store contract, on both backends: a group that changed its id, protected photos
and their owners, retention of audit hashes, and writers on two connections at once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.config import RetentionConfig
from bot.errors import BadStoreValue, UnknownRecord
from bot.retention import apply_retention
from bot.store.protected import PhotoLimitReached
from bot.store.records import ChangeKind
from tests.store_contract.conftest import Backend

T = "telegram"
FP = "QUJD" * 8  # a fingerprint's stored form: base64 text
PDQ = "a" * 64


async def test_migrate_group_moves_everything_once_and_keeps_what_the_new_id_has(store: Any) -> None:
    await store.update_settings(T, "-41", {"action": "ban", "group_photos": True, "language": "es"})
    await store.upsert_group(T, "-41", "Parents", bot_rights={"delete": True})
    await store.mark_owner_hint_sent(T, "-41")
    await store.add_exemption(T, "-41", "7")
    own = await store.create_list("parents-block", kind="block", scope="group", platform=T, chat_id="-41")
    shared = await store.create_list("shared", kind="block")
    await store.follow(T, "-41", shared.id)
    owner = await store.member_owner(T, "7", name="Tess", create=True)
    photo = await store.add_protected_photo(
        owner.id, FP, source="group", platform=T, chat_id="-41", expires_at=datetime(2030, 1, 1, tzinfo=UTC)
    )
    await store.update_settings(T, "-99", {"logchat": "-41"})  # a group whose log chat it is
    await store.update_settings(T, "-10042", {"language": "en"})  # the new id already has a row
    await store.add_exemption(T, "-10042", "7")

    assert await store.migrate_group(T, "-41", "-10042") is True
    assert await store.migrate_group(T, "-41", "-10042") is False  # the second service message
    group = await store.get_group(T, "-10042")
    assert group.settings == {"action": "ban", "group_photos": True, "language": "en"}
    assert (group.title, group.bot_rights) == ("Parents", {"delete": True}) and group.owner_hint_sent_at is not None
    assert await store.get_group(T, "-41") is None
    assert [e.user_id for e in await store.exemptions(T, "-10042")] == ["7"]
    assert {lst.id for lst in await store.lists_for_group(T, "-10042")} == {own.id, shared.id}
    assert (await store.get_group(T, "-99")).settings["logchat"] == "-10042"
    assert (await store.get_protected_photo(photo.id)).chat_id == "-10042"
    with pytest.raises(BadStoreValue, match="new_chat_id"):
        await store.migrate_group(T, "-5", "-5")


async def test_owners_photos_notices_and_the_change_log(store: Any) -> None:
    assert await store.last_change(ChangeKind.PROTECTED) == 0
    assert await store.member_owner(T, "7") is None
    ana = await store.member_owner(T, "7", name="Ana", create=True)
    assert (ana.kind, ana.platform, ana.user_id, ana.name, ana.notify) == ("member", T, "7", "Ana", False)
    renamed = await store.member_owner(T, "7", name="Ana B\u202e", create=True)
    assert renamed.id == ana.id and renamed.name == "Ana B"
    assert (await store.set_owner_notify(ana.id, True)).notify_user == "7"
    op = await store.operator_owner("Bea", create=True, notify_platform="matrix", notify_user="@bea:example.org")
    assert (op.kind, op.notify, op.notify_platform, op.notify_user) == ("operator", True, "matrix", "@bea:example.org")
    assert (await store.operator_owner("Bea")).id == op.id and await store.operator_owner("Cleo") is None
    cleo = await store.operator_owner("Cleo", create=True)
    with pytest.raises(BadStoreValue, match="notify"):
        await store.set_owner_notify(cleo.id, True)
    g0 = await store.last_change(ChangeKind.PROTECTED)
    p1 = await store.add_protected_photo(ana.id, FP, source="private", pdq=PDQ)
    p2 = await store.add_protected_photo(op.id, FP, source="operator", label="bea.jpg")
    p3 = await store.add_protected_photo(
        ana.id, FP, source="group", platform=T, chat_id="-100", expires_at=datetime(2024, 5, 2, tzinfo=UTC)
    )
    logged = await store.changes_since(ChangeKind.PROTECTED, g0)
    assert [(c.op, c.parent, c.item) for c in logged] == [
        ("add", ana.id, p1.id),
        ("add", op.id, p2.id),
        ("add", ana.id, p3.id),
    ]
    assert (p1.source, p1.pdq, p1.fingerprint) == ("private", PDQ, None)
    assert [p.id for p in await store.protected_photos(ana.id)] == [p1.id, p3.id]
    assert await store.protected_photo_ids() == {p1.id, p2.id, p3.id}
    full = [p async for p in store.iter_protected_photos(chunk_size=2)]
    assert [p.id for p in full] == [p1.id, p2.id, p3.id] and {p.fingerprint for p in full} == {FP}
    assert [p.id async for p in store.iter_protected_photos(after=p1.id)] == [p2.id, p3.id]
    assert [p.id async for p in store.iter_protected_photos(ids=[p3.id, p1.id, 999])] == [p1.id, p3.id]
    assert await store.protected_counts() == {"private": 1, "group": 1, "operator": 1, "owners": 3}
    with pytest.raises(UnknownRecord):
        await store.add_protected_photo(9999, FP, source="private")
    with pytest.raises(BadStoreValue, match="fingerprint"):
        await store.add_protected_photo(ana.id, "not base64!" * 3, source="private")
    with pytest.raises(BadStoreValue, match="chat_id"):
        await store.add_protected_photo(ana.id, FP, source="private", platform=T, chat_id="-1")
    # expiry: the group photo goes, Ana stays (she has a private one); groups' photos go at once
    assert await store.expire_protected_photos(datetime(2024, 5, 3, tzinfo=UTC)) == 1
    assert await store.get_protected_photo(p3.id) is None
    assert await store.remove_group_photos(T, "-100") == 0
    # an owner left without photos goes with the last one
    assert await store.remove_protected_photo(p2.id) is True
    assert await store.get_protected_owner(op.id) is None and await store.remove_protected_photo(p2.id) is False
    assert await store.remove_protected_owner(ana.id) == 1
    assert await store.protected_counts() == {"private": 0, "group": 0, "operator": 0, "owners": 1}  # Cleo


async def test_a_members_limit_holds_for_photos_arriving_at_once_through_two_connections(
    store: Any, backend: Backend
) -> None:
    other = await backend.open()  # as a second process would
    tries = [s.add_member_photo(T, "9", "Ana", FP, max_photos=5) for s in (store, other) for _ in range(12)]
    results = await asyncio.gather(*tries, return_exceptions=True)
    added = [r for r in results if not isinstance(r, BaseException)]
    assert len(added) == 5 and all(isinstance(r, PhotoLimitReached) for r in results if isinstance(r, BaseException))
    assert sorted(before for _, _, before, _ in added) == [0, 1, 2, 3, 4]
    assert (await store.protected_counts())["private"] == 5


async def test_settings_merged_through_two_connections_lose_nothing(store: Any, backend: Backend) -> None:
    other = await backend.open()
    await asyncio.gather(
        *(s.update_settings(T, "-100", {f"k{i}{n}": i}) for i in range(15) for n, s in enumerate((store, other)))
    )
    assert dict((await store.get_group(T, "-100")).settings) == {f"k{i}{n}": i for i in range(15) for n in (0, 1)}


async def test_one_image_added_twice_at_once_is_one_entry(store: Any, backend: Backend) -> None:
    other = await backend.open()
    lst = await store.create_list("l", kind="block")
    entries = await asyncio.gather(*(s.add_entry(lst.id, sha256="c" * 64) for s in (store, other) for _ in range(5)))
    assert len({e.id for e in entries}) == 1 and len(await store.entries(lst.id)) == 1


async def test_retention_clears_old_hashes_and_deletes_old_records(store: Any, backend: Backend) -> None:
    start = backend.clock.now
    ids = []
    for day in range(6):
        backend.clock.now = start + timedelta(days=day)
        ids.append(await store.add_audit(platform=T, chat_id="-1", kind="scan", label="clean", hashes={"pdq": PDQ}))
    now = start + timedelta(days=6)
    result = await apply_retention(store, RetentionConfig(audit_days=5, fingerprint_days=3, work_days=0), now)
    assert (result.audit, result.fingerprints) == (1, 2)  # day 0 deleted; days 1 and 2 lose their hashes
    assert [(r.id, dict(r.hashes)) for r in await store.audit_for_group(T, "-1")] == [
        (ids[1], {}),
        (ids[2], {}),
        (ids[3], {"pdq": PDQ}),
        (ids[4], {"pdq": PDQ}),
        (ids[5], {"pdq": PDQ}),
    ]
    assert await store.clear_audit_hashes_before(now) == 3
    assert await store.clear_audit_hashes_before(now) == 0
