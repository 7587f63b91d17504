"""How a running process follows the store: one follower per change log, for hash lists and
protected photos alike.

The store logs every change to lists, entries, protected photos and their owners (ids only,
numbered in commit order; bot/store/changes.py), whoever makes it: this process, `vigil hash`,
`vigil protect`, a purge, another worker on the same database. A ``ChangeFollower`` keeps the
number of the last change it applied, reads the ones after it every ``every`` seconds and hands
them to its view (``HashLists``, ``Protector``). Reading consumes nothing, so any number of
processes follow one database. Rows are pruned once every live process must be past them (seen
``keep`` seconds ago here); a follower that fell behind the pruning is told so by the store and
loads everything again rather than miss a change.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from bot.store.changes import CHANGE_CHUNK, ChangesPruned
from bot.store.protocol import ChangesStore
from bot.store.records import Change, ChangeKind, ChangeOp

log = logging.getLogger("vigil.follow")

KEEP_SECONDS = 3600.0  # a change stays in the log this long after this process saw it


class View(Protocol):
    """What a follower keeps in step with the store: an in-memory view of one change log."""

    async def reload(self) -> None:
        """Everything from the store, replacing what is held (matching may go on meanwhile)."""
        ...

    async def apply(self, changes: Sequence[Change]) -> None:
        """These changes, oldest first, as the store logged them."""
        ...


class ChangeFollower:
    """Keeps one view in step with one change log of the store."""

    def __init__(
        self,
        store: ChangesStore,
        kind: ChangeKind,
        view: View,
        *,
        keep: float = KEEP_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.kind = kind
        self.view = view
        self.seen = -1  # the last change applied; -1: nothing loaded yet
        self._keep = keep
        self._clock = clock
        self._marks: deque[tuple[float, int]] = deque()  # (when, seen then): what may be pruned later
        self._lock = asyncio.Lock()
        self.caught_up_at: float | None = None  # ``clock`` time of the last catch-up that read the whole log

    @property
    def loaded(self) -> bool:
        return self.seen >= 0

    async def load(self) -> None:
        """Everything from the store, then the changes made meanwhile at the next ``catch_up``."""
        async with self._lock:
            await self._load()

    async def _load(self) -> None:
        # read first: a change made while loading is applied (again, harmlessly) by the next catch_up
        seen = await self.store.last_change(self.kind)
        await self.view.reload()
        self.seen = seen

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
                    log.warning("%s: %s; loading everything again", self.kind, exc)
                    await self._load()
                    continue
                if not changes:
                    break
                await self.view.apply(changes)
                self.seen = changes[-1].seq
                applied += len(changes)
            self.caught_up_at = self._clock()
            self._mark()
            return applied

    def _mark(self) -> None:
        now = self._clock()
        if not self._marks or self._marks[-1][1] != self.seen:
            self._marks.append((now, self.seen))

    async def prune(self) -> int:
        """Prunes the changes this process applied ``keep`` seconds ago or earlier (every live
        process has applied them by then); returns how many rows went."""
        horizon = self._clock() - self._keep
        upto = 0
        while self._marks and self._marks[0][0] <= horizon:
            upto = self._marks.popleft()[1]
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
