"""The store contract: what every store (SQLite, PostgreSQL) must do, run against both.

Moved here from tests/test_store.py (which keeps what only SQLite has: its file, WAL, migrations
and backup) and tests/test_lists.py (the store's list-matching additions).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.errors import BadStoreValue, UnknownRecord
from tests.store_contract.conftest import Backend

T, M = "telegram", "matrix"
PDQ = "f" * 64
SHA = "0123456789abcdef" * 4


def hexes(i: int) -> tuple[str, str]:
    """A distinct (pdq, sha256) pair per number."""
    return f"{i:064x}", f"{i + 1:064x}"


async def test_bytes_in_json_fields_are_refused_and_nothing_is_written(store: Any, backend: Backend) -> None:
    with pytest.raises(BadStoreValue, match="findings"):
        await store.add_audit(platform=T, chat_id="1", kind="scan", label="nudity", findings={"image": b"\xff\xd8\xff"})
    with pytest.raises(BadStoreValue, match="payload"):
        await store.enqueue_work(T, "1", "2", {"media": b"\x89PNG"})
    with pytest.raises(BadStoreValue, match="findings"):
        await store.add_audit(platform=T, chat_id="1", kind="scan", label="x", findings={"blob": "A" * 20_000})
    assert backend.count("audit") == 0 and backend.count("work") == 0


async def test_bad_values_get_specific_errors(store: Any) -> None:
    with pytest.raises(BadStoreValue, match="platform"):
        await store.upsert_group("whatsapp", "1", "x")
    with pytest.raises(BadStoreValue, match="chat_id"):
        await store.upsert_group(T, "", "x")
    with pytest.raises(BadStoreValue, match="chat_id"):
        await store.upsert_group(T, "x" * 300, "x")
    lst = await store.group_list(T, "1", "block")
    with pytest.raises(BadStoreValue, match="pdq"):
        await store.add_entry(lst.id, pdq="zz" * 32)
    with pytest.raises(BadStoreValue, match="sha256"):
        await store.add_entry(lst.id, sha256="ab")
    with pytest.raises(BadStoreValue, match="at least one"):
        await store.add_entry(lst.id, note="nothing to match")
    with pytest.raises(BadStoreValue, match="pdq_quality"):
        await store.add_entry(lst.id, pdq=PDQ, pdq_quality=101)
    with pytest.raises(UnknownRecord, match="list"):
        await store.add_entry(9999, sha256=SHA)
    with pytest.raises(BadStoreValue, match="kind"):
        await store.group_list(T, "1", "maybe")
    with pytest.raises(BadStoreValue, match="kind"):
        await store.add_audit(platform=T, chat_id="1", kind="gossip", label="x")
    with pytest.raises(UnknownRecord, match="work item"):
        await store.fail_work(12345, "boom")
    with pytest.raises(UnknownRecord, match="action"):
        await store.action_done(12345)
    with pytest.raises(UnknownRecord, match="audit record"):
        await store.record_alert(12345, T, "7", "m1")
    assert await store.entries(lst.id) == []


async def test_integer_ids_are_kept_as_text(store: Any) -> None:
    g = await store.upsert_group(T, -1001234567890, "Club")
    assert g.chat_id == "-1001234567890"
    assert (await store.get_group(T, "-1001234567890")) == g
    with pytest.raises(BadStoreValue):
        await store.upsert_group(T, True, "bool is not an id")


async def test_group_upsert_keeps_what_is_not_given(store: Any) -> None:
    g = await store.upsert_group(T, "-100", "Parents 3B", added_by="42", bot_rights={"delete": True})
    assert (g.title, g.added_by, g.bot_rights) == ("Parents 3B", "42", {"delete": True})
    g2 = await store.upsert_group(T, "-100", None)
    assert (g2.title, g2.added_by, g2.bot_rights) == ("Parents 3B", "42", {"delete": True})
    g3 = await store.upsert_group(T, "-100", "Parents 3B (2024)")
    assert g3.title == "Parents 3B (2024)" and g3.created_at == g.created_at
    await store.upsert_group(M, "!room:example.org", "Club")
    assert [x.chat_id for x in await store.list_groups(T)] == ["-100"]
    assert [(x.platform, x.chat_id) for x in await store.list_groups()] == [(M, "!room:example.org"), (T, "-100")]
    long = await store.upsert_group(M, "!long:example.org", "n" * 5000)  # a long room name is cut, not refused
    assert len(long.title) == 256


async def test_settings_merge(store: Any) -> None:
    await store.upsert_group(T, "-100", "Club")
    await store.update_settings(T, "-100", {"mode": "dryrun", "sensitivity": "high"})
    g = await store.update_settings(T, "-100", {"language": "es", "mode": "delete"})
    assert dict(g.settings) == {"mode": "delete", "sensitivity": "high", "language": "es"}
    g = await store.update_settings(T, "-100", {"sensitivity": None})  # back to the default
    assert dict(g.settings) == {"mode": "delete", "language": "es"}
    with pytest.raises(BadStoreValue):
        await store.update_settings(T, "-100", {"mode": b"bytes"})
    with pytest.raises(BadStoreValue):
        await store.update_settings(T, "-100", {1: "x"})  # type: ignore[dict-item]
    assert dict((await store.get_group(T, "-100")).settings) == {"mode": "delete", "language": "es"}
    with pytest.raises(TypeError):
        g.settings["mode"] = "off"  # type: ignore[index]
    # settings for a group not seen yet (e.g. /vigil logchat names it) create it
    g = await store.update_settings(T, "-200", {"logchat": "-300"})
    assert g.title is None and dict(g.settings) == {"logchat": "-300"}


async def test_concurrent_updates_lose_nothing(store: Any) -> None:
    await asyncio.gather(
        *(store.update_settings(T, "-100", {f"k{i}": i}) for i in range(40)),
        *(store.add_audit(platform=T, chat_id="-100", kind="scan", label="clean") for _ in range(40)),
    )
    g = await store.get_group(T, "-100")
    assert dict(g.settings) == {f"k{i}": i for i in range(40)}
    assert (await store.counts(T, "-100"))["scans"] == 40


async def test_contacts(store: Any) -> None:
    c = await store.set_contact(T, "7", can_dm=True, language="es", display_name="Ana")
    assert (c.can_dm, c.language, c.display_name) == (True, "es", "Ana")
    c = await store.set_contact(T, "7", can_dm=False)  # blocked the bot: only that changes
    assert (c.can_dm, c.language, c.display_name) == (False, "es", "Ana")
    new = await store.set_contact(M, "@bo:example.org", dm_room="!dm:example.org")
    assert new.can_dm is False and new.dm_room == "!dm:example.org"
    await store.set_contact(T, "8", can_dm=True)
    assert await store.get_contact(T, "9") is None
    got = await store.contacts(T, ["9", "8", "7", 7])
    assert [x.user_id for x in got] == ["7", "8"]
    assert await store.contacts(M, ["7"]) == []
    with pytest.raises(BadStoreValue):
        await store.set_contact(T, "7", can_dm="yes")  # type: ignore[arg-type]


async def test_owner_hint_is_sent_once(store: Any) -> None:
    assert await store.owner_hint_sent(T, "-100") is False
    assert await store.mark_owner_hint_sent(T, "-100") is True
    assert await store.mark_owner_hint_sent(T, "-100") is False
    assert await store.owner_hint_sent(T, "-100") is True
    assert await store.owner_hint_sent(T, "-101") is False


async def test_exemptions(store: Any) -> None:
    assert await store.add_exemption(T, "-100", "7") is True
    assert await store.add_exemption(T, "-100", "7") is False
    await store.add_exemption(T, "-100", "8")
    await store.add_exemption(T, "-101", "9")
    assert await store.is_exempt(T, "-100", "7") and not await store.is_exempt(T, "-101", "7")
    assert [e.user_id for e in await store.exemptions(T, "-100")] == ["7", "8"]
    assert await store.remove_exemption(T, "-100", "7") is True
    assert await store.remove_exemption(T, "-100", "7") is False
    assert not await store.is_exempt(T, "-100", "7")


async def test_group_lists_are_created_on_first_use(store: Any) -> None:
    assert await store.lists_for_group(T, "-100123") == []
    block = await store.group_list(T, "-100123", "block")
    assert (block.name, block.kind, block.scope, block.label, block.platform, block.chat_id) == (
        "group:telegram:-100123:block",
        "block",
        "group",
        "local",
        T,
        "-100123",
    )
    assert await store.group_list(T, "-100123", "block") == block
    allow = await store.group_list(T, "-100123", "allow")
    assert allow.id != block.id and allow.name == "group:telegram:-100123:allow"
    assert await store.lists_for_group(T, "-100123") == [block, allow]
    assert await store.get_group(T, "-100123") is not None  # the group row exists for the foreign key


async def test_entries_add_remove_and_repeat(store: Any) -> None:
    lst = await store.group_list(T, "-100", "block")
    e = await store.add_entry(
        lst.id,
        pdq=PDQ.upper(),
        pdq_quality=88,
        phash="abcd" * 4,
        sha256=SHA,
        added_by="7",
        source_platform=T,
        source_chat="-100",
        note="reported",
    )
    assert (e.pdq, e.pdq_quality, e.phash, e.sha256, e.added_by, e.note) == (PDQ, 88, "abcd" * 4, SHA, "7", "reported")
    assert (await store.add_entry(lst.id, sha256=SHA)).id == e.id  # same image again: same entry
    assert (await store.add_entry(lst.id, pdq=PDQ, pdq_quality=88)).id == e.id
    other = await store.add_entry(lst.id, phash="1234")
    assert [x.id for x in await store.entries(lst.id)] == [e.id, other.id]
    assert await store.get_entry(e.id) == e
    assert await store.remove_entry(e.id) is True
    assert await store.remove_entry(e.id) is False
    assert await store.list_sizes() == {lst.id: 1}
    again = await store.add_entry(lst.id, sha256=SHA)
    assert again.id > other.id  # ids are never reused


async def test_deleting_a_list_cascades_to_entries_and_follows(store: Any, backend: Backend) -> None:
    shared = await store.create_list("ncii-es", kind="block", label="ncii", action="delete")
    keep = await store.create_list("spam", kind="block", label="spam", action="review")
    for i in range(5):
        pdq, sha = hexes(i)
        await store.add_entry(shared.id, pdq=pdq, sha256=sha)
    kept_entry = await store.add_entry(keep.id, sha256=SHA)
    await store.follow(T, "-100", shared.id)
    await store.follow(T, "-100", keep.id)
    assert await store.delete_list(shared.id) is True
    assert await store.delete_list(shared.id) is False
    assert backend.count("entries", "list_id = ?", (shared.id,)) == 0
    assert backend.peek("SELECT list_id FROM follows") == [(keep.id,)]
    assert await store.entries(keep.id) == [kept_entry]
    assert [x.id for x in await store.lists_for_group(T, "-100")] == [keep.id]


async def test_groups_see_only_their_lists_and_followed_instance_lists(store: Any) -> None:
    a_block = await store.group_list(T, "-1", "block")
    b_block = await store.group_list(T, "-2", "block")
    m_block = await store.group_list(M, "-1", "block")  # same chat id on another platform
    ncii = await store.create_list("ncii", kind="block", label="ncii")
    spam = await store.create_list("spam-review", kind="block", label="spam", action="review")
    assert await store.lists_for_group(T, "-1") == [a_block]
    assert await store.follow(T, "-2", ncii.id) is True
    assert await store.follow(T, "-2", ncii.id) is False
    assert await store.lists_for_group(T, "-2") == [b_block, ncii]
    assert await store.lists_for_group(T, "-1") == [a_block]  # A still sees neither B's list nor ncii
    assert await store.lists_for_group(M, "-1") == [m_block]
    with pytest.raises(BadStoreValue, match="instance list"):
        await store.follow(T, "-1", b_block.id)  # another group's own list cannot be followed
    assert await store.lists_for_group(T, "-1") == [a_block]
    await store.follow(T, "-1", spam.id)
    assert await store.lists_for_group(T, "-1") == [a_block, spam]
    assert await store.unfollow(T, "-1", spam.id) is True
    assert await store.unfollow(T, "-1", spam.id) is False
    assert await store.lists_for_group(T, "-1") == [a_block]
    assert [x.id for x in await store.all_lists()] == [a_block.id, b_block.id, m_block.id, ncii.id, spam.id]


async def test_list_creation_rules(store: Any) -> None:
    await store.create_list("deepfakes", kind="block", label="deepfake")
    with pytest.raises(BadStoreValue, match="name"):
        await store.create_list("deepfakes", kind="block", label="deepfake")
    with pytest.raises(BadStoreValue, match="instance list"):
        await store.create_list("x", kind="block", platform=T, chat_id="1")
    with pytest.raises(BadStoreValue, match="label"):
        await store.create_list("y", kind="block", label="Not A Label")
    own = await store.create_list("club-extra", kind="allow", scope="group", platform=T, chat_id="-5")
    assert own.scope == "group" and await store.lists_for_group(T, "-5") == [own]
    assert (await store.list_by_name("deepfakes")).label == "deepfake"


async def test_iter_all_entries_over_50k_rows(store: Any, backend: Backend) -> None:
    a = await store.create_list("bulk-a", kind="block", label="spam")
    b = await store.create_list("bulk-b", kind="allow", label="local")
    # bulk rows straight into the file, as a list import would; one transaction
    rows = [((a.id if i % 3 else b.id), *hexes(i), i % 101, "2024-01-01T00:00:00.000000+00:00") for i in range(50_000)]
    backend.insert("INSERT INTO entries (list_id, pdq, sha256, pdq_quality, added_at) VALUES (?, ?, ?, ?, ?)", rows)
    seen = [e async for e in store.iter_all_entries()]
    assert len(seen) == 50_000
    ids = [e.id for e in seen]
    assert ids == sorted(set(ids))
    assert [(e.list_id, e.pdq, e.sha256, e.pdq_quality) for e in seen] == [r[:4] for r in rows]
    assert await store.list_sizes() == {a.id: 33_333, b.id: 16_667}
    # chunk edges: a size that divides the count and one that does not
    small = await store.create_list("small", kind="block", label="local")
    await store.delete_list(a.id)
    await store.delete_list(b.id)
    for i in range(12):
        pdq, sha = hexes(100_000 + i)
        await store.add_entry(small.id, pdq=pdq, sha256=sha)
    for size in (1, 4, 5, 12, 13):
        assert len([e async for e in store.iter_all_entries(chunk_size=size)]) == 12


async def _scan(store: Any, chat: str = "-100", sender: str = "7", label: str = "nudity", **kw) -> int:
    return await store.add_audit(
        platform=T,
        chat_id=chat,
        message_id=kw.pop("message_id", "55"),
        sender_id=sender,
        sender_name="Ana",
        kind="scan",
        label=label,
        findings={"nudity": [{"class": "FEMALE_BREAST_EXPOSED", "score": 0.91}]},
        hashes={"pdq": PDQ, "sha256": SHA},
        decision="delete",
        actions={"delete": True},
        **kw,
    )


async def test_audit_records_round_trip(store: Any) -> None:
    aid = await _scan(store, dry_run=True)
    r = await store.audit_record(aid)
    assert (r.platform, r.chat_id, r.message_id, r.sender_id, r.kind, r.label, r.decision, r.dry_run) == (
        T,
        "-100",
        "55",
        "7",
        "scan",
        "nudity",
        "delete",
        True,
    )
    assert r.findings == {"nudity": [{"class": "FEMALE_BREAST_EXPOSED", "score": 0.91}]}
    assert r.hashes == {"pdq": PDQ, "sha256": SHA}
    assert json.loads(json.dumps(r.findings)) == r.findings  # exportable as is
    assert await store.audit_record(aid + 1) is None
    long_id = "@" + "x" * 240 + ":example.org"  # Matrix ids run to 255 characters
    cmd = await store.add_audit(
        platform=M, chat_id="!r:example.org", kind="admin_command", label=f"exempt {long_id}", actor=long_id
    )
    assert (await store.audit_record(cmd)).label == f"exempt {long_id}"
    with pytest.raises(TypeError):
        r.findings["nudity"].append("x")  # type: ignore[union-attr]
    ordered = await store.add_audit(
        platform=T,
        chat_id="-100",
        kind="scan",
        label="x",
        findings={"b": 1, "a": {"d": 1, "c": 2}, "aa": [{"z": 0, "y": 1}]},
    )
    findings = (await store.audit_record(ordered)).findings  # keys in the same (sorted) order everywhere
    assert list(findings) == ["a", "aa", "b"] and list(findings["a"]) == ["c", "d"]
    assert list(findings["aa"][0]) == ["y", "z"]


async def test_audit_for_group_and_counts(store: Any, backend: Backend) -> None:
    clock = backend.clock
    ids = []
    for label in ("clean", "clean", "nudity", "review"):
        ids.append(await _scan(store, label=label))
        clock.now += timedelta(hours=1)
    await _scan(store, chat="-200", label="clean")
    await store.add_audit(platform=T, chat_id="-100", kind="admin_command", label="settings", actor="1")
    d = await store.record_action(T, "-100", "55", "delete")
    await store.action_done(d.id)
    failed = await store.record_action(T, "-100", "56", "delete")
    await store.action_failed(failed.id, "message too old")
    m = await store.record_action(T, "-100", "55", "mute", {"user": "7"})
    await store.action_done(m.id)
    counts = await store.counts(T, "-100")
    assert counts == {
        "scans": 4,
        "clean": 2,
        "nudity": 1,
        "review": 1,
        "deleted": 1,
        "action:delete": 1,
        "action:mute": 1,
    }
    assert (await store.counts(T, "-999")) == {"scans": 0, "deleted": 0}
    records = await store.audit_for_group(T, "-100")
    assert [r.id for r in records][:4] == ids and len(records) == 5
    since = await store.audit_for_group(T, "-100", since=datetime(2024, 5, 1, 14, 0, tzinfo=UTC))
    assert [r.id for r in since] == [ids[2], ids[3], records[-1].id]
    assert len(await store.audit_for_group(T, "-100", limit=2)) == 2


async def test_reviews_are_decided_once(store: Any) -> None:
    aid = await _scan(store, label="review")
    r = await store.open_review(aid, T, "-100", "55")
    assert r.state == "open" and (await store.open_review(aid, T, "-100", "55")).id == r.id
    assert await store.get_review(aid) == r
    assert [x.id for x in await store.open_reviews(T, "-100")] == [r.id]
    assert await store.decide_review(r.id, "kept", "1") is True
    assert await store.decide_review(r.id, "deleted", "2") is False
    done = await store.review(r.id)
    assert (done.state, done.decided_by) == ("kept", "1") and done.decided_at is not None
    assert await store.open_reviews(T, "-100") == []
    with pytest.raises(BadStoreValue, match="decision"):
        await store.decide_review(r.id, "maybe", "1")
    with pytest.raises(UnknownRecord):
        await store.open_review(aid + 100, T, "-100", "55")
    assert await store.get_review(aid + 100) is None


async def test_one_alert_per_admin(store: Any) -> None:
    aid = await _scan(store)
    assert await store.record_alert(aid, T, "1", "900") is True
    assert await store.record_alert(aid, T, "1", "901") is False
    assert await store.record_alert(aid, T, "2", None) is True
    alerts = await store.alerts_for(aid)
    assert [(a.user_id, a.message_id) for a in alerts] == [("1", "900"), ("2", None)]
    other = await _scan(store)
    assert await store.record_alert(other, T, "1", "902") is True  # another record: alerted again


async def test_retention_deletes_exactly_the_old_records(store: Any, backend: Backend) -> None:
    clock = backend.clock
    start = clock.now
    ids = []
    for day in range(10):
        clock.now = start + timedelta(days=day)
        ids.append(await _scan(store))
    await store.open_review(ids[1], T, "-100", "55")
    await store.record_alert(ids[1], T, "1", "9")
    await store.record_alert(ids[7], T, "1", "9")
    deleted = await store.delete_audit_before(start + timedelta(days=4))
    assert deleted == 4
    assert [r.id for r in await store.audit_for_group(T, "-100")] == ids[4:]
    assert await store.get_review(ids[1]) is None and await store.alerts_for(ids[1]) == []
    assert len(await store.alerts_for(ids[7])) == 1
    assert await store.delete_audit_before(start + timedelta(days=4)) == 0
    # a naive cutoff is read as UTC
    assert await store.delete_audit_before(datetime(2024, 5, 6, 12, 0)) == 1


async def test_purge_removes_that_users_data_and_nothing_else(store: Any, backend: Backend) -> None:
    lst = await store.group_list(T, "-100", "block")
    ncii = await store.create_list("ncii", kind="block", label="ncii")
    for user in ("7", "8"):
        aid = await _scan(store, sender=user, message_id=f"m{user}")
        await store.open_review(aid, T, "-100", f"m{user}")
        await store.record_alert(aid, T, "1", "900")
        await store.set_contact(T, user, can_dm=True, display_name=f"user {user}")
        await store.add_exemption(T, "-100", user)
        await store.add_entry(lst.id, sha256=hexes(int(user))[1], added_by=user, source_platform=T, source_chat="-100")
        await store.add_entry(ncii.id, pdq=hexes(int(user))[0], added_by=user)
        await store.record_action(T, "-100", f"m{user}", "ban", {"user": user})
    await store.record_alert(aid, T, "7", "901")  # 7 is an admin too, alerted about 8's image
    cmd = await store.add_audit(platform=T, chat_id="-100", kind="admin_command", label="settings", actor="7")
    await store.set_contact(M, "7", can_dm=True)  # same id on another platform is someone else
    nine = await _scan(store, sender="9")
    review = await store.open_review(nine, T, "-100", "55")
    await store.decide_review(review.id, "kept", "7")

    before = {
        t: backend.count(t) for t in ("audit", "contacts", "exemptions", "entries", "alerts", "actions", "reviews")
    }
    counts = await store.purge_user(T, "7")
    assert (
        counts.audit,
        counts.contacts,
        counts.exemptions,
        counts.entries,
        counts.alerts,
        counts.actions,
        counts.anonymised,
    ) == (1, 1, 1, 2, 1, 1, 2)
    after = {t: backend.count(t) for t in before}
    assert backend.count("audit", "sender_id = '7' OR actor = '7'") == 0
    assert backend.count("entries", "added_by = '7'") == 0
    assert backend.count("reviews", "decided_by = '7'") == 0
    # the alert to admin 1 about user 7's record went with the record
    assert after == {
        "audit": before["audit"] - 1,
        "contacts": before["contacts"] - 1,
        "exemptions": before["exemptions"] - 1,
        "entries": before["entries"] - 2,
        "alerts": before["alerts"] - 2,
        "actions": before["actions"] - 1,
        "reviews": before["reviews"] - 1,
    }
    assert (await store.audit_record(cmd)).actor is None
    assert await store.get_contact(T, "8") is not None and await store.get_contact(M, "7") is not None
    assert await store.is_exempt(T, "-100", "8")
    assert [e.added_by for e in await store.entries(lst.id)] == ["8"]
    assert [a.sender_id for a in await store.audit_for_group(T, "-100") if a.kind == "scan"] == ["8", "9"]
    assert (await store.purge_user(T, "7")).total == 0


def payload(message: str, variant: str = "") -> dict:
    return {
        "chat": {"id": "-100", "title": "Club"},
        "message_id": message,
        "sender": {"id": "7", "name": "Ana"},
        "media": {"kind": "photo", "file_id": f"F{message}", "extra": {"sizes": [90, 320]}},
        "variant": variant,
    }


async def test_enqueue_is_idempotent_per_variant(store: Any) -> None:
    w = await store.enqueue_work(T, "-100", "55", payload("55"))
    assert await store.enqueue_work(T, "-100", "55", payload("55")) == w
    edited = await store.enqueue_work(T, "-100", "55", payload("55", variant="edit:901"))
    assert edited != w
    # a second edit in the same second is another version (edits are known by their update, not their time)
    again = await store.enqueue_work(T, "-100", "55", payload("55", variant="edit:902"))
    assert again not in (w, edited)
    assert await store.enqueue_work(T, "-100", "55", payload("55", variant="edit:902")) == again
    assert await store.finish_work(again) is True
    assert [i.id for i in await store.pending_work()] == [w, edited]
    assert await store.finish_work(w) is True
    assert await store.finish_work(w) is False
    assert await store.enqueue_work(T, "-100", "55", payload("55")) == w  # a replayed update is recognised
    assert (await store.work_item(w)).finished
    assert [i.id for i in await store.pending_work()] == [edited]
    with pytest.raises(BadStoreValue, match="variant"):
        await store.enqueue_work(T, "-100", "56", {"variant": "x" * 201})


async def test_work_survives_a_restart(backend: Backend) -> None:
    s = await backend.open()
    done = await s.enqueue_work(T, "-100", "1", payload("1"))
    failing = await s.enqueue_work(T, "-100", "2", payload("2"))
    fresh = await s.enqueue_work(M, "!r:example.org", "$ev", payload("$ev"))
    await s.finish_work(done)
    assert await s.fail_work(failing, "PlatformError: timeout") == 1
    assert await s.fail_work(failing, RuntimeError("x" * 5000)) == 2  # long errors are cut, not refused
    act = await s.record_action(T, "-100", "2", "delete")
    await s.set_state("telegram:offset", "1234567")
    await s.close()

    s = await backend.open()
    try:
        pending = await s.pending_work()
        assert [i.id for i in pending] == [failing, fresh]
        assert pending[0].attempts == 2 and pending[0].last_error.endswith("...") and len(pending[0].last_error) == 2000
        assert pending[0].payload == payload("2")
        assert [i.id for i in await s.pending_work(M)] == [fresh]
        assert [i.id for i in await s.pending_work(max_attempts=2)] == [fresh]
        assert (await s.work_item(done)).payload == {}  # the ids are dropped once handled
        assert [a.id for a in await s.pending_actions()] == [act.id]
        assert await s.get_state("telegram:offset") == "1234567"
    finally:
        await s.close()


async def test_record_action_is_idempotent(store: Any) -> None:
    a = await store.record_action(T, "-100", "55", "delete", {})
    again = await store.record_action(T, "-100", "55", "delete", {})
    assert again.id == a.id and again.state == "pending"
    await store.action_done(a.id)
    after = await store.record_action(T, "-100", "55", "delete", {})
    assert (after.id, after.state, after.attempts) == (a.id, "done", 1)
    mute = await store.record_action(T, "-100", "55", "mute", {"user": "7", "until": "2024-05-02T00:00:00+00:00"})
    assert mute.id != a.id and mute.params == {"user": "7", "until": "2024-05-02T00:00:00+00:00"}
    changed = await store.record_action(T, "-100", "55", "mute", {"user": "7", "until": "later"})
    assert changed.params["until"] == "2024-05-02T00:00:00+00:00"  # the first intent stands
    await store.action_failed(mute.id, "no right")
    failed = await store.get_action(mute.id)
    assert (failed.state, failed.last_error) == ("failed", "no right")
    assert await store.pending_actions() == []


async def test_prune_work_keeps_pending_items(store: Any, backend: Backend) -> None:
    clock = backend.clock
    old = await store.enqueue_work(T, "-100", "1", payload("1"))
    stuck = await store.enqueue_work(T, "-100", "2", payload("2"))
    await store.finish_work(old)
    a = await store.record_action(T, "-100", "1", "delete")
    await store.action_done(a.id)
    pending_action = await store.record_action(T, "-100", "2", "delete")
    clock.now += timedelta(days=30)
    recent = await store.enqueue_work(T, "-100", "3", payload("3"))
    await store.finish_work(recent)
    counts = await store.prune_work_before(clock.now - timedelta(days=1))
    assert (counts.work, counts.actions) == (1, 1)
    assert await store.work_item(old) is None and await store.work_item(recent) is not None
    assert [i.id for i in await store.pending_work()] == [stuck]
    assert [x.id for x in await store.pending_actions()] == [pending_action.id]


async def test_state_values(store: Any) -> None:
    assert await store.get_state("matrix:since") is None
    await store.set_state("matrix:since", "s72594_4483_1934")
    await store.set_state("matrix:since", "s72595_4483_1934")
    assert await store.get_state("matrix:since") == "s72595_4483_1934"
    await store.set_state("empty", "")
    assert await store.get_state("empty") == ""
    assert await store.delete_state("matrix:since") is True
    assert await store.get_state("matrix:since") is None
    with pytest.raises(BadStoreValue):
        await store.set_state("k", "v" * 5000)
