"""Between the platforms and the detectors: the inbox as the queue, chats taken in turn, CPU work off the loop.

Intake never waits: an adapter's ``Core.submit`` records the image in the store's inbox and
wakes its chat here. Memory holds only the keys of chats that have work (one entry per chat,
however long its backlog); the backlog itself stays in the store. ``in_flight`` workers take
chats in turn, round robin: a worker takes the chat's oldest due item from the store, handles
it, and puts the chat back at the end of the line. So:

- a chat has at most one image in flight, and its images are handled in the order they came;
- a chat that floods, or whose downloads hang, holds one worker at most: the others serve the
  other chats (a flood delays only the flooding chat, by one turn per image of the others);
- one item is handled by one worker at a time, since a chat is never held by two workers.

Scans run in one thread pool of ``workers`` threads with a timeout, so the event loop keeps
serving the platforms; at most ``in_flight`` images wait for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable, Iterable, TypeVar

T = TypeVar("T")
ChatKey = tuple[str, str]  # (platform, chat id)
log = logging.getLogger("vigil.pipeline")

RETRY_BROKEN = 5.0  # seconds before a chat whose turn failed outside its item's handling (the store) is tried again


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Pipeline:
    def __init__(
        self,
        store: Any,
        handler: Callable[[Any], Awaitable[None]],
        *,
        in_flight: int,
        workers: int,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        """``handler`` gets each due ``WorkItem``; it must finish, defer or give up the item."""
        self._store = store
        self._handler = handler
        self._clock = clock
        self._in_flight = max(1, in_flight)
        self._ready: deque[ChatKey] = deque()  # chats waiting for a worker, each once
        self._waiting: set[ChatKey] = set()
        self._busy: set[ChatKey] = set()  # chats a worker holds
        self._again: set[ChatKey] = set()  # woken while held: look again after the current item
        self._timers: dict[ChatKey, tuple[datetime, asyncio.TimerHandle]] = {}
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
        if key in self._busy:
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
        return len(self._waiting) + len(self._busy)

    async def drain(self) -> None:
        """Until no chat has due work left (tests, and a stop that may finish what is due)."""
        while self._ready or self._busy:
            self._idle.clear()
            await self._idle.wait()

    async def run_cpu(self, fn: Callable[..., T], *args: object, timeout: float) -> T:
        """Run CPU-bound work in the pool; raises TimeoutError after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        return await asyncio.wait_for(loop.run_in_executor(self.executor, fn, *args), timeout)

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
            self._busy.add(key)
            handled = broken = False
            try:
                item, later = await self._store.next_work(key[0], key[1], self._clock())
                if item is not None:
                    handled = True
                    await self._handler(item)
                elif later is not None:
                    self._wake_at(key, datetime.fromisoformat(later))
            except asyncio.CancelledError:
                raise
            except Exception:  # the item stays in the store; the chat is tried again a little later
                broken = True
                log.exception("chat %s: handling work from the inbox failed; trying again in %.0f s",
                              key[1], RETRY_BROKEN)
            finally:
                self._busy.discard(key)
                if broken:
                    self._wake_at(key, self._clock() + timedelta(seconds=RETRY_BROKEN))
                elif handled or key in self._again:
                    self._again.discard(key)
                    self.wake(*key)  # to the end of the line: the other chats go first
                if not self._ready and not self._busy:
                    self._idle.set()

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
        if self._busy and timeout > 0:
            try:
                await asyncio.wait_for(self._until_no_busy(), timeout)
            except asyncio.TimeoutError:
                clean = False
        elif self._busy:
            clean = False
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        self.executor.shutdown(wait=False, cancel_futures=True)
        return clean

    async def _until_no_busy(self) -> None:
        while self._busy:
            await asyncio.sleep(0.05)
