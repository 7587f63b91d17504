"""The scheduler (bot/pipeline.py) over the inbox, on both backends: chats in turn, order within a
chat, one item per chat in flight, retries when due, attempts counted at start; and the store
methods it stands on (next_work, start_work, defer_work, release_work, give_up_work, pending_chats)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from bot.pipeline import Pipeline
from bot.store.checks import timestamp
from bot.store.records import WorkItem

T = "telegram"
M = "matrix"


async def enqueue(store, chat: str, message: int) -> int:
    return await store.enqueue_work(T, chat, message, {"variant": ""})


class Recorder:
    """A handler that records what it handles and finishes it; ``gate`` holds chosen chats."""

    def __init__(self, store) -> None:
        self.store = store
        self.order: list[tuple[str, str]] = []
        self.running: dict[str, int] = {}
        self.most_at_once: dict[str, int] = {}
        self.gates: dict[str, asyncio.Event] = {}

    async def __call__(self, item) -> None:
        self.running[item.chat_id] = self.running.get(item.chat_id, 0) + 1
        self.most_at_once[item.chat_id] = max(self.most_at_once.get(item.chat_id, 0), self.running[item.chat_id])
        try:
            assert await self.store.start_work(item.id) is not None
            if item.chat_id in self.gates:
                await self.gates[item.chat_id].wait()
            self.order.append((item.chat_id, item.message_id))
            await self.store.finish_work(item.id)
        finally:
            self.running[item.chat_id] -= 1


async def test_chats_take_turns_and_each_keeps_its_order(store):
    rec = Recorder(store)
    pipeline = Pipeline(store, rec, in_flight=1, workers=1)
    for m in range(1, 6):
        await enqueue(store, "flood", m)
    await enqueue(store, "quiet", 1)
    pipeline.wake(T, "flood")
    pipeline.wake(T, "quiet")
    pipeline.start()
    await asyncio.wait_for(pipeline.drain(), 10)
    await pipeline.stop()
    # one worker: the quiet chat's image comes after one image of the flood, not after all five
    assert rec.order.index(("quiet", "1")) == 1
    assert [m for c, m in rec.order if c == "flood"] == ["1", "2", "3", "4", "5"]
    assert await store.pending_work() == []


async def test_a_held_chat_has_one_item_in_flight_and_holds_only_itself(store):
    rec = Recorder(store)
    rec.gates["stuck"] = asyncio.Event()
    pipeline = Pipeline(store, rec, in_flight=4, workers=1)
    for m in range(1, 4):
        await enqueue(store, "stuck", m)
    for chat in ("a", "b", "c"):
        await enqueue(store, chat, 1)
    pipeline.start()
    assert await pipeline.wake_pending() == 4
    for _ in range(200):
        if {("a", "1"), ("b", "1"), ("c", "1")} <= set(rec.order):
            break
        await asyncio.sleep(0.01)
    assert {c for c, _ in rec.order} == {"a", "b", "c"}  # all done while "stuck" is held
    assert rec.running["stuck"] == 1
    rec.gates["stuck"].set()
    await asyncio.wait_for(pipeline.drain(), 10)
    await pipeline.stop()
    assert rec.most_at_once["stuck"] == 1
    assert [m for c, m in rec.order if c == "stuck"] == ["1", "2", "3"]


async def test_waking_a_chat_twice_or_while_it_runs_never_handles_an_item_twice(store):
    rec = Recorder(store)
    pipeline = Pipeline(store, rec, in_flight=4, workers=1)
    first = await enqueue(store, "g", 1)
    pipeline.start()
    for _ in range(5):
        pipeline.wake(T, "g")
    await pipeline.wake_pending()
    await asyncio.wait_for(pipeline.drain(), 10)
    await enqueue(store, "g", 1)  # a replayed update: the same item, finished
    pipeline.wake(T, "g")
    await asyncio.wait_for(pipeline.drain(), 10)
    await pipeline.stop()
    assert rec.order == [("g", "1")]
    assert (await store.work_item(first)).attempts == 1


async def test_a_deferred_item_waits_for_its_time_and_later_items_go_first(store):
    calls: list[str] = []
    done = asyncio.Event()

    async def handler(item) -> None:
        attempts = await store.start_work(item.id)
        calls.append(f"{item.message_id}#{attempts}")
        if item.message_id == "1" and attempts == 1:
            await store.defer_work(item.id, "Transient: try later", datetime.now(UTC) + timedelta(seconds=0.3))
            return
        await store.finish_work(item.id)
        if item.message_id == "1":
            done.set()

    pipeline = Pipeline(store, handler, in_flight=1, workers=1)
    await enqueue(store, "g", 1)
    await enqueue(store, "g", 2)
    pipeline.start()
    pipeline.wake(T, "g")
    await asyncio.wait_for(done.wait(), 10)  # the timer woke the chat again
    await pipeline.stop()
    assert calls == ["1#1", "2#1", "1#2"]
    item = (await store.pending_work()) or None
    assert item is None


# --- the store methods ---------------------------------------------------------------------


async def test_start_work_counts_before_the_work_and_refuses_finished_items(store):
    wid = await enqueue(store, "g", 1)
    assert await store.start_work(wid) == 1
    await store.release_work(wid)  # a clean stop cut it short
    assert (await store.work_item(wid)).attempts == 0
    assert await store.start_work(wid) == 1
    assert await store.start_work(wid) == 2  # the process died in between: it still counts
    assert await store.give_up_work(wid, "killed") is True
    assert await store.give_up_work(wid, "killed") is False
    item = await store.work_item(wid)
    assert item.finished and item.gave_up and item.payload == {}
    assert await store.start_work(wid) is None
    assert await store.next_work(T, "g", datetime.now(UTC)) == (None, None)


async def test_next_work_is_the_chats_oldest_due_item_and_says_when_a_deferred_one_is_due(store, backend):
    now = backend.clock.now
    due = timestamp(now + timedelta(seconds=30))  # the store's time text
    first, second = await enqueue(store, "g", 1), await enqueue(store, "g", 2)
    other = await enqueue(store, "h", 1)
    item, later = await store.next_work(T, "g", now)
    assert (item.id, later) == (first, None)
    assert await store.start_work(first) == 1
    await store.defer_work(first, "Transient: " + "x" * 3000, now + timedelta(seconds=30))
    waiting = await store.work_item(first)
    assert waiting.not_before == due and len(waiting.last_error) == 2000
    assert waiting.attempts == 1 and not waiting.finished
    # the deferred item steps aside: the next one goes first, and the retry time is reported
    item, later = await store.next_work(T, "g", now)
    assert (item.id, later) == (second, due)
    await store.start_work(second)
    assert await store.finish_work(second) is True
    assert await store.next_work(T, "g", now) == (None, due)
    item, later = await store.next_work(T, "g", now + timedelta(seconds=30))  # due at its time
    assert (item.id, later) == (first, None)
    assert await store.start_work(first) == 2  # the retry time is cleared as the attempt starts
    assert (await store.work_item(first)).not_before is None
    assert (await store.next_work(T, "h", now))[0].id == other  # another chat's items are its own
    assert await store.next_work(M, "g", now) == (None, None)  # and so are another platform's


async def test_pending_chats_lists_each_chat_with_work_oldest_first(store):
    await enqueue(store, "b", 1)
    await enqueue(store, "a", 1)
    await enqueue(store, "b", 2)
    done = await store.enqueue_work(M, "!room:x", "$e", {"variant": ""})
    assert await store.pending_chats() == [(T, "b"), (T, "a"), (M, "!room:x")]
    await store.finish_work(done)
    gone = (await store.next_work(T, "b", datetime.now(UTC)))[0]
    await store.give_up_work(gone.id, "too many attempts")
    assert await store.pending_chats() == [(T, "a"), (T, "b")]  # b's oldest pending item is now 3


async def test_release_takes_back_only_the_attempt_it_counted(store):
    wid = await enqueue(store, "g", 1)
    await store.release_work(wid)  # never started: stays at 0, never below
    assert (await store.work_item(wid)).attempts == 0
    assert await store.start_work(wid) == 1
    assert await store.start_work(wid) == 2
    await store.release_work(wid)
    item = await store.work_item(wid)
    assert isinstance(item, WorkItem) and item.attempts == 1 and not item.gave_up
    await store.finish_work(wid)
    await store.release_work(wid)  # finished: nothing changes
    assert (await store.work_item(wid)).attempts == 1


async def test_a_given_up_item_is_finished_with_its_reason_and_a_replay_is_not_redone(store):
    wid = await enqueue(store, "g", 1)
    await store.start_work(wid)
    await store.defer_work(wid, "first failure", datetime(2024, 5, 1, 13, tzinfo=UTC))
    assert await store.give_up_work(wid, "ScanTimeout: 30 s") is True
    item = await store.work_item(wid)
    assert item.gave_up and item.finished and item.last_error == "ScanTimeout: 30 s" and item.payload == {}
    assert await enqueue(store, "g", 1) == wid  # the same update again: the finished item
    assert await store.pending_work() == [] and await store.pending_chats() == []
    await store.defer_work(wid, "late", datetime(2024, 5, 2, tzinfo=UTC))  # after the end: no change
    assert (await store.work_item(wid)).last_error == "ScanTimeout: 30 s"


async def test_next_work_skips_the_items_it_is_told_to(store, backend):
    """Items whose deletes are still going out (detached by the pipeline) are passed over."""
    now = backend.clock.now
    first, second = await enqueue(store, "g", 1), await enqueue(store, "g", 2)
    assert (await store.next_work(T, "g", now, exclude=[first]))[0].id == second
    assert (await store.next_work(T, "g", now, exclude=[first, second]))[0] is None
    assert (await store.next_work(T, "g", now, exclude=()))[0].id == first


class HeldTakes:
    """The store with its ``next_work`` watched: ``held`` calls (by number, from 1) wait for ``release``,
    and ``most_at_once`` counts the takes of one chat running at the same time (the pipeline allows one)."""

    def __init__(self, store, held: int) -> None:
        self._store = store
        self._held = held
        self.calls = 0
        self.taking = 0
        self.most_at_once = 0
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    def __getattr__(self, name: str):
        return getattr(self._store, name)

    async def next_work(self, *args, **kwargs):
        self.calls += 1
        self.taking += 1
        self.most_at_once = max(self.most_at_once, self.taking)
        try:
            if self.calls == self._held:
                self.entered.set()
                await self.release.wait()
            return await self._store.next_work(*args, **kwargs)
        finally:
            self.taking -= 1


async def test_an_item_ending_while_the_chats_next_one_is_being_taken_never_lets_a_second_worker_take_it(store):
    """Two images of one chat in flight: the first ends while a worker is still taking the second
    from the store. The worker that handled the first must not clear the other's claim on the
    chat's take, or a third worker takes the same item and it is handled (deleted, alerted) twice."""
    watched = HeldTakes(store, held=2)
    handled: list[int] = []

    async def handle(item) -> None:
        handled.append(item.id)
        if await store.start_work(item.id) is None:
            return  # as bot/core.py does: finished by the other taker already
        if item.id == first:
            await watched.entered.wait()  # the chat's next item is being taken right now
            await store.finish_work(item.id)
            watched.release.set()
        else:
            await store.finish_work(item.id)

    pipeline = Pipeline(watched, handle, in_flight=3, workers=2)
    assert pipeline.per_chat == 2
    first, second = await enqueue(store, "g", 1), await enqueue(store, "g", 2)
    pipeline.start()
    pipeline.wake(T, "g")
    await asyncio.wait_for(pipeline.drain(), 10)
    await pipeline.stop()
    assert sorted(handled) == [first, second]
    assert watched.most_at_once == 1
    assert [(await store.work_item(i)).attempts for i in (first, second)] == [1, 1]
