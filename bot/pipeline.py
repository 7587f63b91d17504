"""Between the platforms and the detectors: the inbox as the queue, chats taken in turn, CPU work off the loop.

Intake never waits: an adapter's ``Core.submit`` records the image in the store's inbox and
wakes its chat here. Memory holds only the keys of chats that have work (one entry per chat,
however long its backlog); the backlog itself stays in the store. ``in_flight`` workers take
chats in turn, round robin: a worker takes the chat's oldest due item from the store that is not
in flight, starts handling it, and puts the chat back at the end of the line. So:

- a chat has one image in flight, and more (up to ``per_chat``, by default as many as there are
  scan threads) only while fewer images than scan threads are in flight in all: a burst in one
  chat keeps every core busy, and its extra images use only threads no other chat needs. They
  are taken in the order they came; their downloads and scans overlap, but each item's decision
  and actions wait for its turn (``turn``): the chat's earlier items in flight have finished
  first, so decisions, actions and alerts keep the order of the images;
- a chat that floods, or whose downloads hang, holds ``per_chat`` workers at most and gets an
  extra image in flight only after the chats already waiting had their turn, and only for a
  spare scan thread: the other workers and threads serve the other chats;
- one item is handled by one worker at a time: the items in flight are excluded when the next
  one is taken, and only one worker takes from a chat at a time.

An item whose decision is made may ``detach`` the rest of its handling (its delete, which the
chat's delete batcher sends together with the chat's other deletes, then its alerts): the chat
is free for its next image while that goes out. The item stays unfinished in the store (a crash
replays it; its actions were recorded before they were tried) and is skipped by the chat's turns
until its tail ends; at most ``MAX_DETACHED`` such items per chat.

Scans run in one thread pool of ``workers`` threads with a timeout, so the event loop keeps
serving the platforms; at most ``in_flight`` images wait for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

T = TypeVar("T")
ChatKey = tuple[str, str]  # (platform, chat id)
log = logging.getLogger("vigil.pipeline")

MAX_DETACHED = 100  # items of one chat whose actions are going out while its next images are taken
RETRY_BROKEN = 5.0  # seconds before a chat whose turn failed outside its item's handling (the store) is tried again


def _now() -> datetime:
    return datetime.now(UTC)


class Pipeline:
    def __init__(
        self,
        store: Any,
        handler: Callable[[Any], Awaitable[None]],
        *,
        in_flight: int,
        workers: int,
        per_chat: int | None = None,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        """``handler`` gets each due ``WorkItem``; it must finish, defer or give up the item, and
        await ``turn`` before it decides anything. ``per_chat``: images of one chat in flight at
        once (default: ``workers``), never more than ``in_flight - 1`` when that leaves one for
        the other chats."""
        self._store = store
        self._handler = handler
        self._clock = clock
        self._in_flight = max(1, in_flight)
        wanted = max(1, workers if per_chat is None else per_chat)
        self.per_chat = min(wanted, self._in_flight - 1) if self._in_flight > 1 else 1
        self._threads = max(1, workers)
        self._spare: deque[ChatKey] = deque()  # chats that want an extra image in flight once a thread is spare
        self._ready: deque[ChatKey] = deque()  # chats waiting for a worker, each once
        self._waiting: set[ChatKey] = set()
        self._taking: set[ChatKey] = set()  # chats a worker is taking the next item of (one at a time)
        self._flight: dict[ChatKey, list[int]] = {}  # work ids being handled, per chat, in the order taken
        self._moved: dict[ChatKey, asyncio.Event] = {}  # set when an item of the chat leaves the flight
        self._again: set[ChatKey] = set()  # woken while held: look again after the current item
        self._timers: dict[ChatKey, tuple[datetime, asyncio.TimerHandle]] = {}
        self._detached: dict[ChatKey, set[int]] = {}  # work ids whose tail is running, per chat
        self._tails: set[asyncio.Task[None]] = set()
        self._signal = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self.executor = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="vigil-scan")

    def start(self) -> None:
        self._stopping = False
        self._tasks = [asyncio.create_task(self._work(), name=f"vigil-worker-{i}") for i in range(self._in_flight)]

    def wake(self, platform: str, chat_id: str) -> None:
        """The chat has (or may have) work due: give it a turn. Never waits."""
        key = (platform, str(chat_id))
        if key in self._taking or len(self._flight.get(key, ())) >= self.per_chat:
            self._again.add(key)
        elif key not in self._waiting:
            self._waiting.add(key)
            self._ready.append(key)
            self._idle.clear()
            self._signal.set()

    async def wake_pending(self, platforms: Iterable[str] | None = None) -> int:
        """Gives a turn to every chat with unfinished work in the store (at start), on ``platforms``
        only when given (a platform turned off keeps its work for a later run); returns how many."""
        wanted = None if platforms is None else set(platforms)
        chats = [c for c in await self._store.pending_chats() if wanted is None or c[0] in wanted]
        for platform, chat_id in chats:
            self.wake(platform, chat_id)
        return len(chats)

    @property
    def depth(self) -> int:
        """Chats with work waiting for a worker or in flight."""
        return len(self._waiting | self._taking | self._flight.keys())

    @property
    def waiting_for_a_thread(self) -> tuple[ChatKey, ...]:
        """Chats with an image in flight whose next one waits until a scan thread is spare."""
        return tuple(self._spare)

    def _flying(self) -> int:
        return sum(len(ids) for ids in self._flight.values())

    @property
    def _busy(self) -> bool:
        return bool(self._taking or self._flight)

    async def turn(self, platform: str, chat_id: str, work_id: int) -> None:
        """Returns when every item of the chat taken before ``work_id`` has left the flight: the
        handler awaits it between its scan and its decision, so a chat's decisions keep its order."""
        key = (platform, str(chat_id))
        while (ids := self._flight.get(key)) and work_id in ids and ids[0] != work_id:
            await self._moved.setdefault(key, asyncio.Event()).wait()

    async def drain(self) -> None:
        """Until no chat has due work left (tests, and a stop that may finish what is due)."""
        while self._ready or self._busy or self._tails:
            self._idle.clear()
            await self._idle.wait()

    def detach(self, platform: str, chat_id: str, work_id: int, tail: Awaitable[None]) -> None:
        """Runs ``tail`` (the rest of one item's handling) on its own; the chat's next item may be
        taken meanwhile, never this one again until the tail ends."""
        key = (platform, str(chat_id))
        self._detached.setdefault(key, set()).add(work_id)

        async def run() -> None:
            try:
                await tail
            finally:
                ids = self._detached.get(key)
                if ids is not None:
                    ids.discard(work_id)
                    if not ids:
                        del self._detached[key]
                self.wake(*key)  # a chat held back by MAX_DETACHED, or one that left, goes on

        task = asyncio.create_task(run(), name=f"vigil-tail-{work_id}")
        self._tails.add(task)
        task.add_done_callback(self._tail_done)

    def _tail_done(self, task: asyncio.Task[None]) -> None:
        self._tails.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("the actions of a work item failed outside its handler", exc_info=task.exception())
        if not self._ready and not self._busy and not self._tails:
            self._idle.set()

    async def run_cpu(self, fn: Callable[..., T], *args: object, timeout: float) -> T:
        """Run CPU-bound work in the pool; raises TimeoutError after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            return await loop.run_in_executor(self.executor, fn, *args)

    async def _next(self) -> ChatKey:
        while not self._ready:
            self._signal.clear()
            await self._signal.wait()
        key = self._ready.popleft()
        self._waiting.discard(key)
        return key

    async def _work(self) -> None:
        while not self._stopping:
            key = await self._next()
            if self._stopping:
                self._ready.appendleft(key)
                self._waiting.add(key)
                return
            if self._flight.get(key) and self._flying() >= self._threads:
                if key not in self._spare:  # an extra image only for a thread no other chat needs
                    self._spare.append(key)
                continue
            self._taking.add(key)
            taking = True  # this worker's claim on the chat's take, until it has its item
            item: Any = None
            handled = broken = False
            try:
                flight = self._flight.get(key, [])
                skip = tuple(self._detached.get(key, set())) + tuple(flight)
                if len(self._detached.get(key, ())) >= MAX_DETACHED:
                    later = None  # woken again when one of its tails ends
                elif skip:
                    item, later = await self._store.next_work(key[0], key[1], self._clock(), skip)
                else:
                    item, later = await self._store.next_work(key[0], key[1], self._clock())
                self._taking.discard(key)
                taking = False
                if item is not None:
                    handled = True
                    self._flight.setdefault(key, []).append(item.id)
                    self.wake(*key)  # its next image may go in flight too, after the chats waiting now
                    await self._handler(item)
                elif later is not None:
                    self._wake_at(key, datetime.fromisoformat(later))
            except asyncio.CancelledError:
                raise
            except Exception:  # the item stays in the store; the chat is tried again a little later
                broken = True
                log.exception(
                    "chat %s: handling work from the inbox failed; trying again in %.0f s", key[1], RETRY_BROKEN
                )
            finally:
                if taking:  # only its own claim: another worker may be taking the chat's next item by now
                    self._taking.discard(key)
                if item is not None:
                    self._land(key, item.id)
                if broken:
                    self._wake_at(key, self._clock() + timedelta(seconds=RETRY_BROKEN))
                elif handled or key in self._again:
                    self._again.discard(key)
                    self.wake(*key)  # to the end of the line: the other chats go first
                if not self._ready and not self._busy and not self._tails:
                    self._idle.set()

    def _land(self, key: ChatKey, work_id: int) -> None:
        """The item's handler returned: it leaves the flight, and the chat's next item has its turn."""
        ids = self._flight.get(key)
        if ids is not None and work_id in ids:
            ids.remove(work_id)
            if not ids:
                del self._flight[key]
        moved = self._moved.pop(key, None)
        if moved is not None:
            moved.set()
        if self._spare and self._flying() < self._threads:
            self.wake(*self._spare.popleft())

    def _wake_at(self, key: ChatKey, when: datetime) -> None:
        """A retry is due later: wake the chat then (one timer per chat, the earliest)."""
        current = self._timers.get(key)
        if current is not None and current[0] <= when:
            return
        if current is not None:
            current[1].cancel()
        loop = asyncio.get_running_loop()
        delay = max(0.0, (when - self._clock()).total_seconds()) + 0.01

        def fire() -> None:
            self._timers.pop(key, None)
            self.wake(*key)

        self._timers[key] = (when, loop.call_later(delay, fire))

    async def stop(self, timeout: float = 0.0) -> bool:
        """Takes no new item; waits up to ``timeout`` s for the items in flight, then cancels them
        (their handler takes the attempt back). True when nothing had to be cancelled."""
        self._stopping = True
        self._signal.set()
        for _, timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        clean = True
        if (self._busy or self._tails) and timeout > 0:
            try:
                async with asyncio.timeout(timeout):
                    await self._until_no_busy()
            except TimeoutError:
                clean = False
        elif self._busy or self._tails:
            clean = False
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        tails = list(self._tails)
        for t in tails:  # the tail takes its attempt back; the item is replayed at the next start
            t.cancel()
        await asyncio.gather(*tails, return_exceptions=True)
        self._detached.clear()
        self.executor.shutdown(wait=False, cancel_futures=True)
        return clean

    async def _until_no_busy(self) -> None:
        while self._busy or self._tails:
            await asyncio.sleep(0.05)
