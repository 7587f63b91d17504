"""The seen-images window (bot/store/seen.py and its PostgreSQL twin), on both backends: what is
kept of a scanned image, paging for a sweep, the look-up by message, pruning by age and by the
bounds, purging one person's rows, and the checks on values."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.errors import BadStoreValue
from bot.store.seen import SeenFrame

T = "telegram"
PDQ = "f" * 64
SHA = "a" * 64


def frames(n: int = 1, fp: bytes | None = b"VLF-fingerprint") -> list[SeenFrame]:
    return [SeenFrame(i, f"{i:x}" * 64 if i < 16 else PDQ, 90, "0f" * 8, fp) for i in range(n)]


async def add(store, backend, chat: str, message: int, *, sender: str = "7", variant: str = "", n: int = 1) -> int:
    return await store.add_seen(
        T,
        chat,
        message,
        variant=variant,
        sender_id=sender,
        posted_at=backend.clock.now,
        sha256=SHA,
        frames=frames(n),
        event={"message_id": str(message), "variant": variant},
    )


async def test_an_image_is_kept_with_its_frames_and_read_back_in_pages(store, backend):
    first = await add(store, backend, "-1", 10, n=2)
    assert await add(store, backend, "-1", 10, n=2) == first  # a replay keeps the first row
    await add(store, backend, "-2", 11)
    await add(store, backend, "-1", 12)
    since = backend.clock.now - timedelta(hours=1)
    page = await store.seen_batch(since=since, limit=2)
    assert [(s.chat_id, s.message_id) for s in page] == [("-1", "10"), ("-2", "11")]
    assert [f.frame for f in page[0].frames] == [0, 1]
    assert page[0].frames[0].pdq == "0" * 64 and page[0].frames[0].fingerprint is None  # not asked for
    assert page[0].sha256 == SHA and page[0].sender_id == "7" and page[0].event["message_id"] == "10"
    rest = await store.seen_batch(since=since, after_id=page[-1].id, fingerprints=True)
    assert [s.message_id for s in rest] == ["12"]
    assert rest[0].frames[0].fingerprint == b"VLF-fingerprint"
    mine = await store.seen_batch(since=since, chats=[(T, "-1")])
    assert [s.message_id for s in mine] == ["10", "12"]
    assert await store.seen_count() == (3, 4)


async def test_the_window_starts_at_since(store, backend):
    await add(store, backend, "-1", 1)
    backend.clock.now += timedelta(hours=3)
    await add(store, backend, "-1", 2)
    since = backend.clock.now - timedelta(hours=1)
    assert [s.message_id for s in await store.seen_batch(since=since)] == ["2"]


async def test_seen_image_prefers_the_main_picture(store, backend):
    await add(store, backend, "-1", 5, variant="thumb")
    main = await add(store, backend, "-1", 5)
    got = await store.seen_image(T, "-1", 5)
    assert got is not None and got.id == main and got.frames[0].pdq == "0" * 64
    assert await store.seen_image(T, "-1", 6) is None


async def test_pruning_by_age_and_by_bounds(store, backend):
    for m in range(1, 4):
        await add(store, backend, "-1", m)
    backend.clock.now += timedelta(hours=2)
    for m in range(4, 8):
        await add(store, backend, "-1", m)
    for m in range(1, 3):
        await add(store, backend, "-2", m)
    since = backend.clock.now - timedelta(days=1)
    assert await store.prune_seen(backend.clock.now - timedelta(hours=1)) == 3
    assert await store.prune_seen(backend.clock.now - timedelta(hours=1), per_chat=2) == 2  # chat -1: 4, 5
    assert [(s.chat_id, s.message_id) for s in await store.seen_batch(since=since)] == [
        ("-1", "6"),
        ("-1", "7"),
        ("-2", "1"),
        ("-2", "2"),
    ]
    assert await store.prune_seen(backend.clock.now - timedelta(hours=1), total=3) == 1
    assert [s.message_id for s in await store.seen_batch(since=since)] == ["7", "1", "2"]
    assert (await store.seen_count())[1] == 3  # the frames went with their images
    assert backend.count("seen_frames") == 3
    assert backend.count("seen_prints") == 3  # and their fingerprints


async def test_purge_removes_one_persons_rows(store, backend):
    await add(store, backend, "-1", 1, sender="7")
    await add(store, backend, "-1", 2, sender="8")
    assert await store.purge_seen_user(T, "7") == 1
    assert await store.seen_image(T, "-1", 1) is None
    assert await store.seen_image(T, "-1", 2) is not None


async def test_bad_values_are_refused(store, backend):
    with pytest.raises(BadStoreValue):
        await store.add_seen(
            T, "-1", 1, variant="", sender_id="7", posted_at=backend.clock.now, sha256="zz", frames=[], event={}
        )
    with pytest.raises(BadStoreValue):
        await store.add_seen(
            T,
            "-1",
            1,
            variant="",
            sender_id="7",
            posted_at=backend.clock.now,
            sha256=None,
            frames=[SeenFrame(0, None, None, None, b"x" * 70_000)],
            event={},
        )
    with pytest.raises(BadStoreValue):
        await store.prune_seen(backend.clock.now, per_chat=-1)
    assert await store.seen_count() == (0, 0)


async def test_deleted_messages_are_those_with_a_settled_delete(store):
    done = await store.record_action(T, "-1", "1", "delete", {})
    await store.action_done(done.id)
    await store.record_action(T, "-1", "2", "delete", {})  # pending: not deleted yet
    await store.record_action(T, "-1", "3", "alert", {})
    assert await store.deleted_messages(T, "-1", ["1", "2", "3", "4"]) == {"1"}
    assert await store.deleted_messages(T, "-2", ["1"]) == set()
    assert await store.deleted_messages(T, "-1", []) == set()
