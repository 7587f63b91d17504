"""Between the platforms and the detectors: bounded lanes, per-chat order, CPU work off the event loop.

Each chat hashes to one lane (a bounded queue with one consumer), so a chat's images are
handled in the order they came while different chats proceed in parallel. A full lane makes
``submit`` wait (backpressure): nothing is ever dropped. Scans run in a thread pool with a
timeout, so the event loop keeps serving the platforms.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Awaitable, Callable, Generic, TypeVar

T = TypeVar("T")
log = logging.getLogger("vigil.pipeline")


class Pipeline(Generic[T]):
    def __init__(
        self,
        handler: Callable[[T], Awaitable[None]],
        *,
        lanes: int,
        lane_size: int,
        workers: int,
    ) -> None:
        self._handler = handler
        self._queues: list[asyncio.Queue[T]] = [asyncio.Queue(max(1, lane_size)) for _ in range(max(1, lanes))]
        self._tasks: list[asyncio.Task[None]] = []
        self.executor = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="vigil-scan")

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._consume(q), name=f"vigil-lane-{i}") for i, q in enumerate(self._queues)]

    def lane_of(self, key: str) -> int:
        return zlib.crc32(key.encode()) % len(self._queues)

    async def submit(self, key: str, item: T) -> None:
        """Queue an item in its chat's lane; waits while the lane is full."""
        await self._queues[self.lane_of(key)].put(item)

    @property
    def depth(self) -> int:
        return sum(q.qsize() for q in self._queues)

    async def drain(self) -> None:
        await asyncio.gather(*(q.join() for q in self._queues))

    async def run_cpu(self, fn: Callable[..., T], *args: object, timeout: float) -> T:
        """Run CPU-bound work in the pool; raises TimeoutError after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        return await asyncio.wait_for(loop.run_in_executor(self.executor, fn, *args), timeout)

    async def _consume(self, queue: asyncio.Queue[T]) -> None:
        while True:
            item = await queue.get()
            try:
                await self._handler(item)
            except asyncio.CancelledError:
                raise
            except Exception:  # one bad item must not stop the lane; the store keeps it pending
                log.exception("handling a queued item failed; it stays pending and is retried on restart")
            finally:
                queue.task_done()

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        self.executor.shutdown(wait=False, cancel_futures=True)
