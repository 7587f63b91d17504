"""How a running process follows the store: one follower per change log, for hash lists and
protected photos alike.

The store logs every change to lists, entries, protected photos and their owners (ids only,
numbered in commit order; bot/store/changes.py), whoever makes it: this process, `vigil hash`,
`vigil protect`, a purge, another worker on the same database. A ``ChangeFollower`` keeps the
number of the last change it applied, reads the ones after it every ``every`` seconds and hands
them to its view (``HashLists``, ``Protector``). Reading consumes nothing, so any number of
processes follow one database.

Starting, a follower loads the newest index snapshot of its log (bot/snapshots.py) when its view
can read one, then applies the changes after the snapshot's seq; an unreadable or old-format
snapshot is logged and the view loads everything instead.

Pruning: each follower records in the store (its process id and role) the change it applied last,
at most every ``BEAT_SECONDS`` and whenever it prunes. The log keeps every change after the oldest
one applied by a process seen within ``LIVE_SECONDS``, and after the newest snapshot's seq (a
process starting now loads that snapshot and needs what follows it). A process that died stops
holding the log once its heartbeat is older than the bound; one that was only slow and finds the
log pruned past it is told so by the store and loads again rather than miss a change.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from bot.store.changes import CHANGE_CHUNK, ChangesPruned
from bot.store.protocol import ChangesStore, SnapshotsStore
from bot.store.records import Change, ChangeKind, ChangeOp
from detectors.index_snapshot import BadSnapshot

log = logging.getLogger("vigil.follow")

LIVE_SECONDS = 600.0  # a process seen this recently holds the log from the change it applied last
BEAT_SECONDS = 60.0  # how often a follower records its heartbeat (and the change it applied last)
FORGET_SECONDS = 86400.0  # heartbeats older than this are deleted (processes that stopped or died)


@dataclass(frozen=True)
class Process:
    """This process as the store's follower table names it."""

    id: str
    role: str = "all"


def this_process(role: str = "all") -> Process:
    """A fresh id for this process: host, pid and a random part (a restarted process is a new one)."""
    host = socket.gethostname()[:60] or "host"
    return Process(f"{host}:{os.getpid()}:{uuid.uuid4().hex[:12]}", role[:32] or "all")


class FollowStore(ChangesStore, SnapshotsStore, Protocol):
    """What a follower needs of the store: the change logs, snapshots and the follower table."""


class View(Protocol):
    """What a follower keeps in step with the store: an in-memory view of one change log."""

    async def reload(self) -> None:
        """Everything from the store, replacing what is held (matching may go on meanwhile)."""
        ...

    async def apply(self, changes: Sequence[Change]) -> None:
        """These changes, oldest first, as the store logged them."""
        ...


@runtime_checkable
class SnapshotView(View, Protocol):
    """A view that can be saved as an index snapshot and loaded from one (bot/snapshots.py)."""

    snapshot_format: int

    async def dump(self) -> bytes:
        """What is held now, as a snapshot (called with the follower's lock held: nothing is applied meanwhile)."""
        ...

    async def restore(self, data: bytes) -> None:
        """What a snapshot holds, replacing what is held; raises ``BadSnapshot``."""
        ...


class ChangeFollower:
    """Keeps one view in step with one change log of the store."""

    def __init__(
        self,
        store: FollowStore,
        kind: ChangeKind,
        view: View,
        *,
        live: float = LIVE_SECONDS,
        process: Process | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.kind = kind
        self.view = view
        self.seen = -1  # the last change applied; -1: nothing loaded yet
        self.process = process if process is not None else this_process()  # one id per follower; the role: bot/core.py
        self.snapshots = True  # load from the newest snapshot when the view reads them
        self.loaded_from: int | None = None  # the seq of the snapshot the last load came from (None: the store)
        self.live = live
        self._clock = clock
        self._beat_at: float | None = None
        self._lock = asyncio.Lock()
        self.caught_up_at: float | None = None  # ``clock`` time of the last catch-up that read the whole log

    @property
    def loaded(self) -> bool:
        return self.seen >= 0

    async def load(self) -> None:
        """Everything from the store, then the changes made meanwhile at the next ``catch_up``."""
        async with self._lock:
            await self._load()

    @property
    def lock(self) -> asyncio.Lock:
        """Held while changes are applied: a snapshot is taken under it (bot/snapshots.py)."""
        return self._lock

    async def _load(self, *, after: int = 0) -> None:
        """From the newest snapshot covering at least ``after`` (when there is one the view reads),
        else everything from the store."""
        if self.snapshots and isinstance(self.view, SnapshotView) and await self._from_snapshot(self.view, after):
            return
        # read first: a change made while loading is applied (again, harmlessly) by the next catch_up
        seen = await self.store.last_change(self.kind)
        await self._beat(seen)  # hold the log from here while loading
        await self.view.reload()
        self.seen = seen
        self.loaded_from = None

    async def _from_snapshot(self, view: SnapshotView, after: int) -> bool:
        info = await self.store.latest_index_snapshot(self.kind)
        if info is None or info.seq < after:
            return False
        if info.format != view.snapshot_format:
            log.warning(
                "%s: the newest index snapshot has format %d, this version reads %d; loading everything",
                self.kind,
                info.format,
                view.snapshot_format,
            )
            return False
        await self._beat(info.seq)  # hold the log after the snapshot while it loads
        started = self._clock()
        data = await self.store.index_snapshot_data(info.id)
        if data is None or len(data) != info.size:
            log.warning("%s: index snapshot %d is gone or incomplete; loading everything", self.kind, info.id)
            return False
        try:
            await view.restore(data)
        except BadSnapshot as exc:
            log.warning("%s: index snapshot %d: %s", self.kind, info.id, exc)
            return False
        self.seen = info.seq
        self.loaded_from = info.seq
        log.info(
            "%s: loaded index snapshot %d (change %d, %d MB) in %.1f s",
            self.kind,
            info.id,
            info.seq,
            info.size // 2**20,
            self._clock() - started,
        )
        return True

    async def _beat(self, seq: int, *, force: bool = True) -> None:
        """Records in the store that this process applied the log up to ``seq``: at most every
        ``BEAT_SECONDS`` unless ``force``. A failed write is logged: the log may then be pruned past
        this process, which finds out (``ChangesPruned``) and loads again."""
        now = self._clock()
        if not force and self._beat_at is not None and now - self._beat_at < BEAT_SECONDS:
            return
        try:
            await self.store.record_follower(self.process.id, self.process.role, self.kind, max(seq, 0))
            self._beat_at = now
        except Exception as exc:  # the next beat tries again
            log.warning("%s: recording this process's heartbeat failed (%s)", self.kind, exc)

    async def catch_up(self) -> int:
        """Applies every change logged since the last call; returns how many (0: none). Loads
        everything first if nothing is loaded yet, or when the log was pruned past this point."""
        async with self._lock:
            if not self.loaded:
                await self._load()
            applied = 0
            while True:
                try:
                    changes = await self.store.changes_since(self.kind, self.seen, CHANGE_CHUNK)
                except ChangesPruned as exc:
                    log.warning("%s: %s; loading again", self.kind, exc)
                    await self._load(after=exc.pruned)
                    continue
                if not changes:
                    break
                await self.view.apply(changes)
                self.seen = changes[-1].seq
                applied += len(changes)
            self.caught_up_at = self._clock()
            await self._beat(self.seen, force=False)
            return applied

    async def prune(self) -> int:
        """Prunes the changes every live process applied: up to the oldest change applied by a
        process seen within ``live`` seconds (this one included), and no further than the newest
        snapshot's seq (when snapshots are on); forgets processes not seen for a day. Returns how many rows went."""
        if not self.loaded:
            return 0
        await self._beat(self.seen)  # this process is live, and at ``seen``
        await self.store.forget_followers(FORGET_SECONDS)
        upto = self.seen
        floor = await self.store.live_floor(self.kind, self.live)
        if floor is not None:
            upto = min(upto, floor)
        # snapshots turned off: none is loaded, so an old one must not hold the log for ever
        snapshot = await self.store.latest_index_snapshot(self.kind) if self.snapshots else None
        if snapshot is not None:
            upto = min(upto, snapshot.seq)
        return await self.store.prune_changes(self.kind, upto) if upto > 0 else 0

    async def run(self, every: float, *, prune_every: float = 300.0) -> None:
        """Follows the store until cancelled: a change is applied within ``every`` seconds. A
        failed read is logged and retried at the next poll."""
        pruned_at = self._clock()
        while True:
            try:
                if changed := await self.catch_up():
                    log.info("%s: applied %d changes from the store", self.kind, changed)
                if self._clock() - pruned_at >= prune_every:
                    pruned_at = self._clock()
                    await self.prune()
            except asyncio.CancelledError:
                raise
            except Exception:  # a locked database, a lost connection: the next poll tries again
                log.exception("%s: following the store's changes failed; retrying in %.0f s", self.kind, every)
            await asyncio.sleep(every)


@dataclass(frozen=True)
class NetChanges:
    """A batch of item changes netted: what to add (not removed later in the batch), what to remove,
    and the batch's other changes (lists, owners) in their order."""

    added: frozenset[int]
    removed: tuple[int, ...]
    other: tuple[Change, ...]


def net_changes(changes: Sequence[Change]) -> NetChanges:
    added: set[int] = set()
    removed: list[int] = []
    other: list[Change] = []
    for ch in changes:
        if ch.op is ChangeOp.ADD and ch.item is not None:
            added.add(ch.item)
        elif ch.op is ChangeOp.REMOVE and ch.item is not None:
            added.discard(ch.item)
            removed.append(ch.item)
        else:
            other.append(ch)
    return NetChanges(frozenset(added), tuple(removed), tuple(other))
