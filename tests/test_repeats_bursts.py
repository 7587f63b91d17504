"""Repeats and bursts through the real python-telegram-bot and the Bot API emulator.

A file posted again is known before any download (Telegram's file_unique_id) and matched against
today's lists; a burst's deletes of one chat go out in batches behind one rate-limit wait.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from tests.support.botapi import BotApiEmulator
from tests.support.marker_model import add_marker
from tests.support.vigil_harness import jpeg, running_vigil, write_config
from tests.test_telegram import Group, wait_deleted


async def settled(app, emu: BotApiEmulator) -> None:
    """Until Vigil has taken every update and finished every image it recorded."""
    await emu.wait_for(lambda: emu.pending_updates() == 0, timeout=30)
    for _ in range(600):
        if not await app.core.store.pending_chats() and app.core.pipeline.depth == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("Vigil did not finish its images within 30 s")


async def test_a_forwarded_hit_is_not_downloaded_again_and_is_deleted_in_another_group(
    emu, tmp_path, marker_model, photo
):
    first, second = Group(emu), Group(emu)
    fake = emu.upload(jpeg(add_marker(photo)), kind="photo", mime="image/jpeg")
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)):
        mid = emu.post_photo(first.chat, first.member, fake)
        await wait_deleted(first, mid)
        fetched = len(emu.calls_to("getFile"))
        again = emu.post_photo(second.chat, second.member, fake)  # the same file, passed to another group
        await wait_deleted(second, again)
        assert len(emu.calls_to("getFile")) == fetched  # known by its file_unique_id: no download


async def test_a_block_made_after_the_first_sighting_still_deletes_the_repeat(
    emu, tmp_path, marker_model, photo, other_photo
):
    g = Group(emu)
    clean = emu.upload(jpeg(other_photo), kind="photo", mime="image/jpeg")
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)) as app:
        seen = emu.post_photo(g.chat, g.member, clean)
        await settled(app, emu)
        assert g.present(seen)  # nothing against it yet
        emu.post_text(g.chat, g.owner, "/block", reply_to=seen)
        await wait_deleted(g, seen)
        fetched = len(emu.calls_to("getFile"))
        repeat = emu.post_photo(g.chat, g.member, clean)
        await wait_deleted(g, repeat)  # matched against today's list
        assert len(emu.calls_to("getFile")) == fetched


async def test_the_same_bytes_uploaded_again_are_downloaded_but_not_scanned_again(emu, tmp_path, marker_model, photo):
    g = Group(emu)
    data = jpeg(add_marker(photo))
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)) as app:
        scans = []
        real = app.core.scanner.scan
        app.core.scanner.scan = lambda *a, **k: scans.append(1) or real(*a, **k)
        first = emu.post_photo(g.chat, g.member, data)
        await wait_deleted(g, first)
        again = emu.post_photo(g.chat, g.member, data)  # uploaded anew: another file_unique_id
        await wait_deleted(g, again)
        assert len(scans) == 1


async def test_copies_posted_while_the_first_is_scanned_wait_for_its_verdict_instead_of_a_second_scan(
    emu, tmp_path, marker_model, photo
):
    g = Group(emu)
    data = jpeg(add_marker(photo))
    copies = [emu.upload(data, kind="photo", mime="image/jpeg") for _ in range(3)]  # each its own file id
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)) as app:
        scans: list[int] = []
        overlapped = threading.Event()
        real = app.core.scanner.scan

        def scan(*a, **k):
            scans.append(1)
            # the first scan lasts until the next copy is downloaded: both are in flight at once
            overlapped.wait(10)
            return real(*a, **k)

        app.core.scanner.scan = scan
        ids = [emu.post_photo(g.chat, g.member, ref) for ref in copies]
        await emu.wait_for(lambda: len(emu.calls_to("getFile")) >= 2, timeout=10)
        overlapped.set()
        for mid in ids:
            await wait_deleted(g, mid)
        await settled(app, emu)
        assert len(scans) == 1
        assert app.core.repeats.hits_before_models == 2


async def test_an_unscannable_file_is_checked_again_when_it_comes_back(emu, tmp_path, marker_model):
    g = Group(emu)
    broken = emu.upload(b"\xff\xd8\xff\xe0" + b"\x00" * 300, kind="photo", mime="image/jpeg")
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)) as app:
        emu.post_photo(g.chat, g.member, broken)
        await settled(app, emu)
        fetched = len(emu.calls_to("getFile"))
        emu.post_photo(g.chat, g.member, broken)
        await settled(app, emu)
        assert len(emu.calls_to("getFile")) == fetched + 1


async def test_a_rate_limit_on_the_first_delete_of_a_burst_is_waited_once_then_one_batched_call(
    emu, tmp_path, marker_model, photo
):
    g = Group(emu)
    copies = [emu.upload(jpeg(add_marker(photo), 70 + k), kind="photo", mime="image/jpeg") for k in range(8)]
    emu.hold("deleteMessage")  # the first delete is on its way while the burst is decided
    emu.fail_next("deleteMessage", times=1, status=429, retry_after=1)
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)) as app:
        ids = [emu.post_photo(g.chat, g.member, ref) for ref in copies]

        async def decided() -> int:  # deletes Vigil recorded before trying them
            return len([a for a in await app.core.store.pending_actions("telegram") if a.action == "delete"])

        for _ in range(600):  # every hit decided while the first delete is still out
            if await decided() == len(ids):
                break
            await asyncio.sleep(0.05)
        assert await decided() == len(ids), "the chat's next images waited for the first image's delete"
        emu.release("deleteMessage")
        await settled(app, emu)
        assert not any(g.present(m) for m in ids)
        singles = emu.calls_to("deleteMessage")
        batches = emu.calls_to("deleteMessages")
        # one wait for the chat, not one per message: the first delete again, then every hit
        # decided meanwhile in one call
        assert [c.status for c in singles] == [429, 200] and int(singles[1].params["message_id"]) == ids[0]
        assert len(batches) == 1 and batches[0].ok and sorted(batches[0].params["message_ids"]) == sorted(ids[1:])


# --- a burst in one chat: its images scanned side by side, decided in order ------------------


class Staged:
    """A handler in two parts, as the moderator's: a "scan" that a test holds per message, then
    the decision after ``Pipeline.turn``; records when each happened."""

    def __init__(self, store, pipeline_of) -> None:
        self.store = store
        self.pipeline_of = pipeline_of
        self.scanning: dict[tuple[str, str], int] = {}
        self.most_scanning: dict[str, int] = {}
        self.scans: dict[tuple[str, str], asyncio.Event] = {}
        self.started: list[tuple[str, str]] = []
        self.decided: list[tuple[str, str]] = []

    def hold(self, chat: str, message: int) -> asyncio.Event:
        return self.scans.setdefault((chat, str(message)), asyncio.Event())

    async def __call__(self, item) -> None:
        key = (item.chat_id, item.message_id)
        assert await self.store.start_work(item.id) is not None
        self.started.append(key)
        now = sum(1 for c, _ in self.scanning if c == item.chat_id) + 1
        self.scanning[key] = 1
        self.most_scanning[item.chat_id] = max(self.most_scanning.get(item.chat_id, 0), now)
        try:
            if key in self.scans:
                await self.scans[key].wait()
        finally:
            del self.scanning[key]
        await self.pipeline_of().turn(item.platform, item.chat_id, item.id)
        self.decided.append(key)
        await self.store.finish_work(item.id)


@pytest.fixture
async def inbox(tmp_path):
    from bot.store import Store

    store = await Store.open(tmp_path / "vigil.db")
    yield store
    await store.close()


async def until(condition, what: str) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not within 10 s: {what}")


async def test_a_burst_has_two_images_scanned_at_once_and_decided_in_the_order_they_came(inbox):
    from bot.pipeline import Pipeline

    pipeline: Pipeline | None = None
    handler = Staged(inbox, lambda: pipeline)
    pipeline = Pipeline(inbox, handler, in_flight=8, workers=2)
    assert pipeline.per_chat == 2
    for m in range(1, 7):
        await inbox.enqueue_work("telegram", "burst", m, {"variant": ""})
    first = handler.hold("burst", 1)  # the first image's scan is slow: the second one's ends first
    pipeline.start()
    pipeline.wake("telegram", "burst")
    await until(lambda: ("burst", "2") in handler.started, "the second image taken while the first is scanned")
    assert ("burst", "3") not in handler.started  # two in flight at most
    await until(lambda: handler.most_scanning.get("burst") == 2, "both scans running")
    assert handler.decided == []  # the second one waits for the first one's decision
    first.set()
    await asyncio.wait_for(pipeline.drain(), 10)
    await pipeline.stop()
    assert handler.most_scanning["burst"] == 2
    assert handler.decided == [("burst", str(m)) for m in range(1, 7)]
    assert await inbox.pending_work() == []


async def test_a_burst_holding_its_two_workers_stalls_no_other_chat(inbox):
    from bot.pipeline import Pipeline

    pipeline: Pipeline | None = None
    handler = Staged(inbox, lambda: pipeline)
    pipeline = Pipeline(inbox, handler, in_flight=3, workers=2)
    for m in range(1, 11):
        await inbox.enqueue_work("telegram", "flood", m, {"variant": ""})
        handler.hold("flood", m)  # every scan of the flood hangs
    await inbox.enqueue_work("telegram", "quiet", 1, {"variant": ""})
    pipeline.start()
    pipeline.wake("telegram", "flood")
    await until(lambda: len(handler.started) == 2, "the flood's two images in flight")
    pipeline.wake("telegram", "quiet")
    await until(lambda: ("quiet", "1") in handler.decided, "the quiet chat's image decided")
    assert handler.started[:2] == [("flood", "1"), ("flood", "2")] and handler.decided == [("quiet", "1")]
    for event in handler.scans.values():
        event.set()
    await asyncio.wait_for(pipeline.drain(), 10)
    await pipeline.stop()
    assert [m for c, m in handler.decided if c == "flood"] == [str(m) for m in range(1, 11)]
    assert handler.most_scanning["flood"] == 2


async def test_one_scan_thread_keeps_one_image_of_a_chat_in_flight(inbox):
    from bot.pipeline import Pipeline

    pipeline: Pipeline | None = None
    handler = Staged(inbox, lambda: pipeline)
    pipeline = Pipeline(inbox, handler, in_flight=8, workers=1)
    for m in range(1, 5):
        await inbox.enqueue_work("telegram", "g", m, {"variant": ""})
    pipeline.start()
    pipeline.wake("telegram", "g")
    await asyncio.wait_for(pipeline.drain(), 10)
    await pipeline.stop()
    assert handler.most_scanning["g"] == 1 and handler.decided == [("g", str(m)) for m in range(1, 5)]


async def test_a_copy_waiting_on_a_check_that_failed_is_checked_itself():
    from bot.repeats import RepeatCache

    cache = RepeatCache(entries=16, max_bytes=1 << 20)
    sha = "ab" * 32
    started, failing = asyncio.Event(), asyncio.Event()

    async def leader() -> None:
        with cache.scanning(sha):
            started.set()
            await failing.wait()
            raise RuntimeError("the scan timed out")

    first = asyncio.create_task(leader())
    await started.wait()
    waiter = asyncio.create_task(cache.settled(sha))
    failing.set()
    await asyncio.wait_for(waiter, 5)  # the failed check ends the wait
    with pytest.raises(RuntimeError):
        await first
    assert cache.by_sha(sha, None, signals=False) is None  # nothing remembered: the copy is checked itself
    await asyncio.wait_for(cache.settled(sha), 1)  # and the mark is gone


async def test_a_bursts_extra_image_takes_only_a_scan_thread_no_other_chat_needs(inbox):
    from bot.pipeline import Pipeline

    pipeline: Pipeline | None = None
    handler = Staged(inbox, lambda: pipeline)
    pipeline = Pipeline(inbox, handler, in_flight=8, workers=2)
    quiet = handler.hold("quiet", 1)
    await inbox.enqueue_work("telegram", "quiet", 1, {"variant": ""})
    for m in range(1, 5):
        await inbox.enqueue_work("telegram", "burst", m, {"variant": ""})
    first = handler.hold("burst", 1)
    pipeline.start()
    pipeline.wake("telegram", "quiet")
    await until(lambda: ("quiet", "1") in handler.started, "the quiet chat's image in flight")
    pipeline.wake("telegram", "burst")
    # two images in flight (one per chat) fill the two scan threads: the burst's next one waits
    await until(lambda: ("telegram", "burst") in pipeline.waiting_for_a_thread, "the burst waiting for a thread")
    assert handler.started == [("quiet", "1"), ("burst", "1")]
    quiet.set()  # the quiet chat's image is done: a thread is spare, the burst takes its second image
    await until(lambda: ("burst", "2") in handler.started, "the burst's second image in flight")
    assert handler.decided == [("quiet", "1")]
    first.set()
    await asyncio.wait_for(pipeline.drain(), 10)
    await pipeline.stop()
    assert handler.decided[1:] == [("burst", str(m)) for m in range(1, 5)]
    assert handler.most_scanning["burst"] == 2


async def test_a_burst_in_one_chat_is_scanned_two_at_a_time_and_decided_in_the_order_it_came(
    emu, tmp_path, marker_model, photo
):
    g = Group(emu)
    copies = [emu.upload(jpeg(add_marker(photo), 70 + k), kind="photo", mime="image/jpeg") for k in range(6)]
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)) as app:
        lock, second = threading.Lock(), threading.Event()
        state = {"calls": 0, "running": 0, "most": 0}
        real = app.core.scanner.scan

        def scan(*a, **k):
            with lock:
                state["calls"] += 1
                state["running"] += 1
                state["most"] = max(state["most"], state["running"])
                first = state["calls"] == 1
                if state["running"] >= 2:
                    second.set()
            try:
                if first:  # the first scan lasts until another one has started beside it
                    second.wait(10)
                return real(*a, **k)
            finally:
                with lock:
                    state["running"] -= 1

        app.core.scanner.scan = scan
        ids = [emu.post_photo(g.chat, g.member, ref) for ref in copies]
        for mid in ids:
            await wait_deleted(g, mid)
        await settled(app, emu)
        assert state["most"] == 2 and state["calls"] == len(ids)
        records = [r for r in await app.core.store.audit_for_group("telegram", g.chat) if r.kind == "scan"]
        assert [int(r.message_id) for r in records] == ids  # decided in the order the images came
