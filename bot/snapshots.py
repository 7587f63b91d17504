"""Index snapshots: when to write one, and by whom.

Building the in-memory indexes from every row is most of a cold start (100,000 protected photos:
sorting millions of descriptors into the local index). So one process now and then stores the
built index as a snapshot (detectors/index_snapshot.py: arrays of ids, codes and descriptors,
never pixels) with the change-log seq it covers, and a process starting loads the newest one and
applies the changes after it (bot/follow.py).

A follower's snapshot is due when its log moved ``changes`` past the newest snapshot, or moved
at all and the newest is ``minutes`` old (or there is none, or it has an older format). One
process writes them: on SQLite the only one; on PostgreSQL the one holding the store's lease
(``take_snapshot_turn``; a dead holder's lease runs out and another takes it). The snapshot is
taken under the follower's lock, so it is exactly the log applied up to its seq, plus at most
changes this process made itself and the log holds after that seq (applying them again is
harmless).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from bot.config import SnapshotsConfig
from bot.follow import ChangeFollower, SnapshotView
from bot.store.protocol import SnapshotsStore
from bot.store.snapshots import SnapshotInfo

log = logging.getLogger("vigil.snapshots")


class SnapshotWriter:
    """Writes the followers' snapshots when due, while this process holds the writer's turn."""

    def __init__(
        self,
        store: SnapshotsStore,
        followers: Sequence[ChangeFollower],
        policy: SnapshotsConfig = SnapshotsConfig(),
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.followers_all = list(followers)
        self.followers = [f for f in followers if isinstance(f.view, SnapshotView)]
        self.policy = policy
        self._now = now
        self._task: asyncio.Task[None] | None = None

    async def due(self, follower: ChangeFollower) -> bool:
        view = follower.view
        if not follower.loaded or follower.seen <= 0 or not isinstance(view, SnapshotView):
            return False
        latest = await self.store.latest_index_snapshot(follower.kind)
        if latest is None or latest.format != view.snapshot_format:
            return True
        moved = follower.seen - latest.seq
        age = (self._now() - latest.created_at).total_seconds()
        return moved >= self.policy.changes or (moved > 0 and age >= self.policy.minutes * 60)

    async def write(self, follower: ChangeFollower) -> SnapshotInfo | None:
        """A snapshot of the follower's view now; None when its view cannot make one."""
        view = follower.view
        if not isinstance(view, SnapshotView) or not follower.loaded:
            return None
        started = time.monotonic()
        async with follower.lock:  # nothing is applied while the index is taken
            seq = follower.seen
            data = await view.dump()
        info = await self.store.save_index_snapshot(follower.kind, seq, view.snapshot_format, data)
        log.info(
            "%s: index snapshot %d written (change %d, %d MB) in %.1f s",
            follower.kind,
            info.id,
            seq,
            len(data) // 2**20,
            time.monotonic() - started,
        )
        return info

    async def tick(self) -> int:
        """Writes the snapshots due, if this process has the writer's turn; returns how many."""
        written = 0
        for follower in self.followers:
            if not await self.due(follower):
                continue
            if not await self.store.take_snapshot_turn(follower.kind, follower.process.id, self.policy.lease):
                continue  # another process writes them
            if await self.write(follower) is not None:
                written += 1
        return written

    def start(self) -> None:
        if self.policy.enabled and self.followers and self._task is None:
            self._task = asyncio.create_task(self._run(), name="vigil-index-snapshots")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.policy.check_seconds)
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # a full disk, a lost connection: the next check tries again
                log.exception("writing an index snapshot failed; retrying in %.0f s", self.policy.check_seconds)
