"""Judging by the indexes as they were when an image was recorded, whatever process judges it.

Each process holds the hash lists and protected photos in memory and follows the store's change
logs (bot/follow.py). When the core records a work item it writes the head of each log into the
item (``IndexVersions``, read from the database: another process may have made the change); a
worker does not judge the item before its followers applied at least those changes. It asks for
a catch-up at once rather than waiting for the next poll, and gives up waiting after a bound
(logged, counted; the item is judged anyway, and the hit re-check of bot/recheck.py still holds).

Catch-ups are coalesced: any number of waiting items and store notices (PostgreSQL LISTEN/NOTIFY,
``listen``) cause one catch-up in flight plus at most one queued behind it per log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

from bot.events import IndexVersions
from bot.follow import ChangeFollower
from bot.store.records import ChangeKind

log = logging.getLogger("vigil.index_versions")

INDEX_WAIT_SECONDS = 10.0  # the longest an item waits for its followers before it is judged anyway
LISTEN_RETRY_SECONDS = 5.0  # a lost notice connection is opened again after this (the polls go on meanwhile)


class HeadsStore(Protocol):
    """What reading the logs' heads needs of the store."""

    async def last_change(self, kind: ChangeKind) -> int: ...


class NoticeStore(Protocol):
    """A store that can tell when a change log grew (PostgreSQL); SQLite's iterator ends at once."""

    def change_notices(self) -> AsyncIterator[ChangeKind]: ...


async def heads(store: HeadsStore, *, protected: bool = True) -> IndexVersions:
    """The database's current head of each change log (0 for protected photos when they are off)."""
    lists = await store.last_change(ChangeKind.LISTS)
    return IndexVersions(lists, await store.last_change(ChangeKind.PROTECTED) if protected else 0)


class Catcher:
    """Coalesced catch-ups of one follower: one in flight, at most one more asked for behind it."""

    def __init__(self, follower: ChangeFollower) -> None:
        self.follower = follower
        self._task: asyncio.Task[None] | None = None
        self._again = False

    @property
    def seen(self) -> int:
        return self.follower.seen

    def kick(self) -> asyncio.Task[None]:
        """A catch-up that starts now or after the one in flight; the task to await for it."""
        if self._task is not None and not self._task.done():
            self._again = True  # the running one may have read the log before the change: once more after it
            return self._task
        self._task = asyncio.create_task(self._run(), name=f"vigil-catch-up-{self.follower.kind}")
        return self._task

    async def _run(self) -> None:
        while True:
            self._again = False
            try:
                await self.follower.catch_up()
            except asyncio.CancelledError:
                raise
            except Exception:  # a locked database, a lost connection: the poll tries again
                log.exception("%s: catching up with the store failed", self.follower.kind)
            if not self._again:
                return

    async def reach(self, version: int) -> bool:
        """Whether the follower has applied change ``version``, after one catch-up if needed. A
        catch-up started after this call reads every committed change, so if it falls short the
        log does not hold that change (a restored database): waiting longer would not help."""
        if self.follower.seen >= version:
            return True
        # asyncio.wait: a waiter that gives up does not cancel the catch-up others wait for, and a
        # catch-up cancelled by a stop does not fail the item (it is judged with what is held)
        await asyncio.wait({self.kick()})
        return self.follower.seen >= version

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None


@dataclass(frozen=True)
class IndexLag:
    """How far one in-memory index is behind the store's change log."""

    kind: ChangeKind
    head: int  # the log's last change in the database
    applied: int  # the last change applied here (-1: not loaded yet)
    since_catch_up: float | None  # seconds since the last complete catch-up (None: none yet)

    @property
    def behind(self) -> int:
        return max(0, self.head - max(self.applied, 0)) if self.applied >= 0 else self.head


class IndexGate:
    """Holds an item back until the indexes applied the changes it was recorded after."""

    def __init__(
        self,
        lists: ChangeFollower,
        protected: ChangeFollower | None = None,
        *,
        wait: float = INDEX_WAIT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.catchers: dict[ChangeKind, Catcher] = {ChangeKind.LISTS: Catcher(lists)}
        if protected is not None:
            self.catchers[ChangeKind.PROTECTED] = Catcher(protected)
        self.wait = wait
        self.gave_up = 0  # items judged before their versions were applied
        self.stale_hits = 0  # hits the store no longer held (bot/recheck.py)
        self._clock = clock
        self._listener: asyncio.Task[None] | None = None

    @property
    def protected(self) -> bool:
        return ChangeKind.PROTECTED in self.catchers

    def _needed(self, versions: IndexVersions) -> list[tuple[Catcher, int]]:
        wanted = {ChangeKind.LISTS: versions.lists, ChangeKind.PROTECTED: versions.protected}
        # an index still loading (protected photos load in the background at start, a minute or two at
        # 100,000) is partial by design: items are matched against what is loaded so far, not held
        return [(c, wanted[kind]) for kind, c in self.catchers.items() if c.follower.loaded and c.seen < wanted[kind]]

    async def ready(self, versions: IndexVersions | None, what: str = "an item") -> bool:
        """Waits (at most ``wait`` s) until every followed index applied ``versions``; True when
        it has, False when the wait gave up (logged: the item is judged with what is held)."""
        if versions is None:
            return True
        needed = self._needed(versions)
        if not needed:
            return True
        if self.wait <= 0:  # [pipeline] index_wait = 0: judged by what is held, the hits still confirmed
            self.gave_up += 1
            return False
        try:
            async with asyncio.timeout(self.wait):
                reached = await asyncio.gather(*(c.reach(v) for c, v in needed))
        except TimeoutError:
            reached = [False]
        if all(reached):
            return True
        self.gave_up += 1
        behind = ", ".join(f"{c.follower.kind} {c.seen} of {v}" for c, v in needed if c.seen < v)
        log.warning(
            "%s: the indexes had not applied the changes it was recorded after within %.0f s (%s); judged anyway",
            what,
            self.wait,
            behind,
        )
        return False

    def kick(self, kind: ChangeKind) -> None:
        """A log grew (a store notice, or a hit the re-check found stale): catch up now."""
        if (c := self.catchers.get(kind)) is not None:
            c.kick()

    def stale(self, kind: ChangeKind, count: int) -> None:
        """The re-check found ``count`` hits the store no longer holds: the index lags; catch up now."""
        self.stale_hits += count
        self.kick(kind)

    # --- store notices ------------------------------------------------------------------

    def start(self, store: NoticeStore) -> None:
        """Listens for the store's change notices until ``stop`` (PostgreSQL; the polls stay as fallback)."""
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen(store), name="vigil-change-notices")

    async def _listen(self, store: NoticeStore) -> None:
        again = False
        while True:
            if again:  # changes made while no one listened: read now rather than at the next poll
                for c in self.catchers.values():
                    c.kick()
            again = True
            try:
                async for kind in store.change_notices():
                    self.kick(kind)
                return  # this store sends no notices (SQLite): the polls alone
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "change notices: %s; listening again in %.0f s (the polls go on)", exc, LISTEN_RETRY_SECONDS
                )
            await asyncio.sleep(LISTEN_RETRY_SECONDS)

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
            self._listener = None
        for c in self.catchers.values():
            await c.stop()

    # --- lag ------------------------------------------------------------------------------

    async def lag(self, store: HeadsStore) -> list[IndexLag]:
        """Each followed index against the database's head (one read per log)."""
        now = self._clock()
        out = []
        for kind, c in self.catchers.items():
            at = c.follower.caught_up_at
            out.append(IndexLag(kind, await store.last_change(kind), c.seen, None if at is None else now - at))
        return out
