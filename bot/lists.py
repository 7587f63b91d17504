"""The block and allow lists a group uses, in memory, matched with ``detectors.matching``.

One ``ListIndex`` holds every entry of every list (PDQ and pHash in exact Hamming indexes,
SHA-256 in a dict, local-feature fingerprints in a ``LocalIndex``); a group's match
searches it once and keeps the lists the group uses: its own and the instance lists it
follows. The store stays the source of truth: ``load`` fills the index at start-up and a
``ChangeFollower`` (bot/follow.py) applies the store's list change log, so entries added or
removed by ``vigil hash``, a purge or another worker reach the running bot within seconds; a
starting process loads the newest index snapshot (bot/snapshots.py) when there is one.

Allow lists win over block lists (in ``bot.policy``), so an allow match must show the
query's whole picture: a match through a view that dropped more than flat borders, or a
local-feature match covering only part of the query, counts for block lists only.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bot.cpu import RunCpu, in_thread
from bot.follow import ChangeFollower, net_changes
from bot.store.protocol import ChangesStore, ListsStore, SnapshotsStore
from bot.store.records import Change, ChangeKind, ChangeOp, EntryFeatures, EntryRecord, ListRecord
from detectors.hashing import ImageHashes
from detectors.index_snapshot import FORMAT as SNAPSHOT_FORMAT
from detectors.index_snapshot import BadSnapshot, dump_lists, load_lists
from detectors.localmatch import Fingerprint
from detectors.matching import (
    ALGORITHMS,
    FULL,
    LOCAL_MIN_FRACTION,
    PHASH_DISTANCE,
    EntryHashes,
    FrameSignals,
    ListIndex,
)

log = logging.getLogger("vigil.lists")

SYNC_CHUNK = 5000  # log rows applied per step


@dataclass(frozen=True)
class ListInfo:
    list_id: int
    name: str
    kind: str  # "block" | "allow"
    action: str  # "delete" | "review"
    label: str = "local"


@dataclass(frozen=True)
class ListMatch:
    list_id: int
    list_name: str
    kind: str
    action: str
    entry_id: int
    algorithm: str  # "sha256" | "pdq" | "phash" | "local"
    distance: int  # bits; for "local", 100 minus the percent of the listed image found
    view: str = ""  # which view of the image matched, e.g. "content, mirrored"


def entry_from_records(entry: EntryRecord, features: EntryFeatures | None = None) -> EntryHashes:
    """What the index holds of an entry, from the store's EntryRecord and (optional) EntryFeatures."""
    views: tuple[tuple[str, str | None, int | None, str | None], ...] = ()
    if features is not None:
        views = tuple((v["crop"], v.get("pdq"), v.get("quality"), v.get("phash")) for v in features.views)
    return EntryHashes(entry.id, entry.list_id, entry.pdq, entry.pdq_quality, entry.phash, entry.sha256, views)


def fingerprint_from_bytes(data: bytes | None) -> Fingerprint | None:
    return None if data is None else Fingerprint.from_bytes(data)


def list_info(lst: ListRecord) -> ListInfo:
    return ListInfo(lst.id, lst.name, lst.kind, lst.action, lst.label)


def as_signals(frame: Any) -> FrameSignals:
    """``FrameSignals`` from a scan's ``FrameScan`` (or bare ``ImageHashes``)."""
    if isinstance(frame, FrameSignals):
        return frame
    if isinstance(frame, ImageHashes):
        return FrameSignals(frame, ())
    return FrameSignals(frame.hashes, tuple(getattr(frame, "views", ())), getattr(frame, "fingerprint", None))


def stored_views(views: Sequence[Any]) -> list[dict[str, Any]]:
    """The extra views of an entry's image as the store keeps them (the whole view is the entry itself)."""
    keep = [v for v in views if v.crop != FULL]
    return [{"crop": v.crop, "pdq": v.pdq[0], "quality": v.quality, "phash": v.phash or None} for v in keep]


def stored_fingerprint(fingerprint: Fingerprint | None) -> bytes | None:
    """What the store keeps of an entry's fingerprint: the known-image subset, as bytes."""
    return None if fingerprint is None else fingerprint.as_known().to_bytes()


class HashLists:
    """Every list and entry in memory. ``cpu`` runs decoding and indexing off the event loop (the
    bot passes its pipeline's pool, so CPU work has one bound); by default a thread."""

    def __init__(self, *, local: bool = True, mih_threshold: int = 65536, cpu: RunCpu = in_thread) -> None:
        self._local, self._mih = local, mih_threshold
        self._cpu = cpu
        # told of the entries each change-log step added, whoever added them (bot/sweep.py)
        self.added_hook: Callable[[Sequence[EntryRecord]], None] | None = None
        self._reset()

    def _reset(self) -> None:
        self.index = ListIndex(local=self._local, mih_threshold=self._mih)
        self._lists: dict[int, ListInfo] = {}
        self._sizes: Counter[int] = Counter()

    # -- lists and entries ---------------------------------------------------------

    def set_list(self, info: ListInfo) -> None:
        self._lists[info.list_id] = info

    def drop_list(self, list_id: int) -> None:
        """Forgets the list and every entry of it."""
        self._lists.pop(list_id, None)
        self.index.remove(self.index.entries_of(list_id))
        self._sizes.pop(list_id, None)

    def info(self, list_id: int) -> ListInfo | None:
        return self._lists.get(list_id)

    def add(self, entry: EntryHashes, fingerprint: Fingerprint | None = None) -> None:
        self.add_many([entry], [fingerprint])

    def add_many(
        self, entries: Sequence[EntryHashes], fingerprints: Sequence[Fingerprint | None] | None = None
    ) -> None:
        for e in entries:
            old = self.index.list_of(e.entry_id)
            if old:
                self._sizes[old] -= 1
        self.index.add_many(list(entries), fingerprints)
        self._sizes.update(e.list_id for e in entries)

    def remove(self, entry_id: int) -> bool:
        return self.remove_many([entry_id]) == 1

    def remove_many(self, entry_ids: Iterable[int]) -> int:
        ids = [i for i in entry_ids if self.index.list_of(i)]
        for i in ids:
            self._sizes[self.index.list_of(i)] -= 1
        return self.index.remove(ids)

    def size(self, list_id: int) -> int:
        return self._sizes.get(list_id, 0)

    def __contains__(self, entry_id: int) -> bool:
        return entry_id in self.index

    def wants_signals(self, list_ids: Collection[int]) -> bool:
        """Whether matching against these lists needs more than the scan's whole-image hashes."""
        return any(self.size(i) for i in list_ids)

    # -- matching ----------------------------------------------------------------------

    def match(
        self,
        list_ids: Iterable[int],
        frames: Sequence[ImageHashes | FrameSignals],
        *,
        distance: int,
        min_quality: int,
        phash_distance: int = PHASH_DISTANCE,
        local: bool = True,
        local_min_fraction: float = LOCAL_MIN_FRACTION,
    ) -> list[ListMatch]:
        """The best match in each list (of those given): by the most exact algorithm, then distance.

        ``frames``: the scan's per-frame hashes, or full ``FrameSignals`` (trimmed views,
        rotations, local fingerprint) when the scan computed them.
        """
        ids = {i for i in list_ids if i in self._lists}
        if not ids:
            return []
        candidates = self.index.candidates(
            [as_signals(f) for f in frames],
            list_ids=ids,
            distance=distance,
            min_quality=min_quality,
            phash_distance=phash_distance,
            local=local,
            local_min_fraction=local_min_fraction,
        )
        found: dict[int, ListMatch] = {}
        for c in candidates:  # the most exact algorithm first, then the closest
            info = self._lists.get(c.list_id)
            if info is None or c.list_id in found:
                continue
            if info.kind == "allow" and not c.whole:
                continue  # part of the picture is allowed; the rest may not be
            found[c.list_id] = ListMatch(
                c.list_id, info.name, info.kind, info.action, c.entry_id, c.algorithm, c.distance, c.view
            )
        return sorted(found.values(), key=lambda m: (ALGORITHMS.index(m.algorithm), m.distance, m.list_id))

    # -- following the store ------------------------------------------------------------

    def follower(self, store: ListSource) -> ChangeFollower:
        """The follower that keeps these lists in step with ``store`` (load, then catch up)."""
        return ChangeFollower(store, ChangeKind.LISTS, _Following(self, store))

    async def load(self, store: ListsStore) -> None:
        """Fills the index from the store: every list, entry, view and fingerprint."""
        for lst in await store.all_lists():
            self.set_list(list_info(lst))
        features = store.iter_all_features().__aiter__()
        pending = await anext(features, None)
        batch: list[tuple[EntryRecord, EntryFeatures | None]] = []
        async for record in store.iter_all_entries():
            # both streams are in id order: a merge join
            while pending is not None and pending.entry_id < record.id:
                pending = await anext(features, None)
            batch.append((record, pending if pending is not None and pending.entry_id == record.id else None))
            if len(batch) >= SYNC_CHUNK:
                await self._cpu(self._add_batch, batch)
                batch = []
        await self._cpu(self._add_batch, batch)
        log.info(
            "hash lists loaded: %d lists, %d entries (%d with local features)",
            len(self._lists),
            len(self.index),
            self.index.local_size,
        )

    async def reload(self, store: ListsStore) -> None:
        """Everything again from the store. Matching goes on meanwhile with what was held: the
        new index is built apart and swapped in whole."""
        if not len(self.index) and not self._lists:
            await self.load(store)
            return
        fresh = HashLists(local=self._local, mih_threshold=self._mih, cpu=self._cpu)
        await fresh.load(store)
        self.index, self._lists, self._sizes = fresh.index, fresh._lists, fresh._sizes

    async def apply(self, store: ListsStore, changes: Sequence[Change]) -> None:
        """Applies changes from the store's list change log, oldest first."""
        net = net_changes(changes)
        added, removed = net.added, list(net.removed)
        dropped: list[int] = []
        for ch in net.other:
            if ch.op is ChangeOp.LIST:
                lst = await store.get_list(ch.parent)
                if lst is not None:
                    self.set_list(list_info(lst))
            elif ch.op is ChangeOp.UNLIST:
                dropped.append(ch.parent)
        # removals first: an id added again after its removal (within this batch) stays
        if removed or dropped:
            await self._cpu(self._forget, removed, dropped)
        if added:
            records = await store.entries_by_id(sorted(added))
            features = await store.entry_features(sorted(records))
            await self._cpu(self._add_batch, [(r, features.get(i)) for i, r in sorted(records.items())])
            if self.added_hook is not None:
                self.added_hook([r for _, r in sorted(records.items())])

    # -- index snapshots (bot/snapshots.py) ------------------------------------------------

    def snapshot(self) -> bytes:
        """Everything held as an index snapshot (CPU-bound: in the pool)."""
        rows: list[list[object]] = [[i.list_id, i.name, i.kind, i.action, i.label] for i in self._lists.values()]
        return dump_lists(self.index, rows)

    def restore(self, data: bytes) -> None:
        """What a snapshot holds, replacing what is held (CPU-bound); raises ``BadSnapshot``."""
        index, rows = load_lists(data, mih_threshold=self._mih, local=self._local)
        lists: dict[int, ListInfo] = {}
        for row in rows:
            if not (
                isinstance(row, list)
                and len(row) == 5
                and isinstance(row[0], int)
                and all(isinstance(v, str) for v in row[1:])
            ):
                raise BadSnapshot("a list row is malformed")
            lists[row[0]] = ListInfo(row[0], row[1], row[2], row[3], row[4])
        self.index, self._lists, self._sizes = index, lists, Counter(index.list_sizes())

    def _forget(self, entry_ids: list[int], list_ids: list[int]) -> None:
        self.remove_many(entry_ids)
        for list_id in list_ids:
            self.drop_list(list_id)

    def _decoded(self, record: EntryRecord, features: EntryFeatures | None) -> tuple[EntryHashes, Fingerprint | None]:
        entry = entry_from_records(record, features)
        try:
            return entry, fingerprint_from_bytes(None if features is None else features.fingerprint)
        except Exception as exc:  # a damaged fingerprint must not keep the hashes out
            log.warning(
                "entry %d: its local fingerprint cannot be read (%s); matching it by hashes only", record.id, exc
            )
            return entry, None

    def _add_batch(self, batch: list[tuple[EntryRecord, EntryFeatures | None]]) -> None:
        """Adds store records (entry, features): decoding and indexing, in the CPU pool."""
        if batch:
            decoded = [self._decoded(record, features) for record, features in batch]
            self.add_many([e for e, _ in decoded], [fp for _, fp in decoded])


class ListSource(ListsStore, ChangesStore, SnapshotsStore, Protocol):
    """What following the lists needs of the store."""


class _Following:
    """``HashLists`` as the view of the store's list change log, saved and loaded as index snapshots."""

    snapshot_format = SNAPSHOT_FORMAT

    def __init__(self, lists: HashLists, store: ListSource) -> None:
        self._lists, self._store = lists, store

    async def dump(self) -> bytes:
        return bytes(await self._lists._cpu(self._lists.snapshot))

    async def restore(self, data: bytes) -> None:
        await self._lists._cpu(self._lists.restore, data)

    async def reload(self) -> None:
        await self._lists.reload(self._store)

    async def apply(self, changes: Sequence[Change]) -> None:
        await self._lists.apply(self._store, changes)
