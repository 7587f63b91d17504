"""The block and allow lists a group uses, in memory, matched with ``detectors.matching``.

One ``ListIndex`` holds every entry of every list (PDQ and pHash in exact Hamming indexes,
SHA-256 in a dict, local-feature fingerprints in a ``LocalIndex``); a group's match
searches it once and keeps the lists the group uses: its own and the instance lists it
follows. The store stays the source of truth: ``load`` fills the index at start-up and
``sync`` applies the store's list change log, so entries added or removed by
``vigil hash`` in another process (or by a purge) reach the running bot within seconds.

Allow lists win over block lists (in ``bot.policy``), so an allow match must show the
query's whole picture: a match through a view that dropped more than flat borders, or a
local-feature match covering only part of the query, counts for block lists only.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from detectors.hashing import ImageHashes
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
class Entry:
    entry_id: int
    list_id: int
    pdq: str | None
    pdq_quality: int | None
    phash: str | None
    sha256: str | None
    # trimmed views of the entry's image: (crop, pdq, quality, phash)
    views: tuple[tuple[str, str | None, int | None, str | None], ...] = ()

    def hashes(self) -> EntryHashes:
        return EntryHashes(self.entry_id, self.list_id, self.pdq, self.pdq_quality, self.phash, self.sha256, self.views)


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


def entry_from_records(entry: Any, features: Any | None = None) -> Entry:
    """An ``Entry`` from the store's EntryRecord and (optional) EntryFeatures."""
    views: tuple = ()
    if features is not None:
        views = tuple((v["crop"], v.get("pdq"), v.get("quality"), v.get("phash")) for v in features.views)
    return Entry(entry.id, entry.list_id, entry.pdq, entry.pdq_quality, entry.phash, entry.sha256, views)


def fingerprint_from_bytes(data: bytes | None) -> Any | None:
    if data is None:
        return None
    from detectors.localmatch import Fingerprint

    return Fingerprint.from_bytes(data)


def as_signals(frame: Any) -> FrameSignals:
    """``FrameSignals`` from a scan's ``FrameScan`` (or bare ``ImageHashes``)."""
    if isinstance(frame, FrameSignals):
        return frame
    if isinstance(frame, ImageHashes):
        return FrameSignals(frame, ())
    return FrameSignals(frame.hashes, tuple(getattr(frame, "views", ())), getattr(frame, "fingerprint", None))


def stored_views(views: Sequence[Any]) -> list[dict[str, Any]]:
    """The trimmed views of an entry's image as the store keeps them (the whole view is the entry itself)."""
    return [{"crop": v.crop, "pdq": v.pdq[0], "quality": v.quality, "phash": v.phash} for v in views if v.crop != FULL]


def stored_fingerprint(fingerprint: Any | None) -> bytes | None:
    """What the store keeps of an entry's fingerprint: the known-image subset, as bytes."""
    return None if fingerprint is None else fingerprint.as_known().to_bytes()


class HashLists:
    def __init__(self, *, local: bool = True, mih_threshold: int = 65536) -> None:
        self.index = ListIndex(local=local, mih_threshold=mih_threshold)
        self._lists: dict[int, ListInfo] = {}
        self._sizes: Counter[int] = Counter()
        self.seen_change = 0  # the last change-log row applied

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

    def add(self, entry: Entry, fingerprint: Any | None = None) -> None:
        self.add_many([entry], [fingerprint])

    def add_many(self, entries: Sequence[Entry], fingerprints: Sequence[Any | None] | None = None) -> None:
        for e in entries:
            old = self.index.list_of(e.entry_id)
            if old:
                self._sizes[old] -= 1
        self.index.add_many([e.hashes() for e in entries], fingerprints)
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

    async def load(self, store: Any) -> None:
        """Fills the index from the store: every list, entry, view and fingerprint."""
        self.seen_change = await store.last_list_change()  # changes from here on are applied by sync
        for lst in await store.all_lists():
            self.set_list(ListInfo(lst.id, lst.name, lst.kind, lst.action, lst.label))
        features = store.iter_all_features().__aiter__()
        pending = await anext(features, None)
        batch: list[tuple[Any, Any | None]] = []
        async for record in store.iter_all_entries():
            # both streams are in id order: a merge join
            while pending is not None and pending.entry_id < record.id:
                pending = await anext(features, None)
            batch.append((record, pending if pending is not None and pending.entry_id == record.id else None))
            if len(batch) >= SYNC_CHUNK:
                await asyncio.to_thread(self._add_batch, batch)
                batch = []
        await asyncio.to_thread(self._add_batch, batch)
        await store.forget_list_changes(self.seen_change)
        log.info(
            "hash lists loaded: %d lists, %d entries (%d with local features)",
            len(self._lists),
            len(self.index),
            self.index.local_size,
        )

    async def sync(self, store: Any) -> int:
        """Applies the store's change log since the last call; returns how many changes."""
        applied = 0
        while True:
            changes = await store.list_changes_since(self.seen_change, SYNC_CHUNK)
            if not changes:
                return applied
            added: set[int] = set()
            removed: list[int] = []
            dropped: list[int] = []
            for ch in changes:
                if ch.op == "add":
                    added.add(ch.entry_id)
                elif ch.op == "remove":
                    added.discard(ch.entry_id)
                    removed.append(ch.entry_id)
                elif ch.op == "list":
                    lst = await store.get_list(ch.list_id)
                    if lst is not None:
                        self.set_list(ListInfo(lst.id, lst.name, lst.kind, lst.action, lst.label))
                elif ch.op == "unlist":
                    dropped.append(ch.list_id)
            # ids are never reused, so removals and additions of one batch commute
            if removed or dropped:
                await asyncio.to_thread(self._forget, removed, dropped)
            if added:
                records = await store.entries_by_id(sorted(added))
                features = await store.entry_features(sorted(records))
                await asyncio.to_thread(self._add_batch, [(r, features.get(i)) for i, r in sorted(records.items())])
            self.seen_change = changes[-1].seq
            await store.forget_list_changes(self.seen_change)
            applied += len(changes)

    def _forget(self, entry_ids: list[int], list_ids: list[int]) -> None:
        self.remove_many(entry_ids)
        for list_id in list_ids:
            self.drop_list(list_id)

    def _decoded(self, record: Any, features: Any | None) -> tuple[Entry, Any | None]:
        entry = entry_from_records(record, features)
        try:
            return entry, fingerprint_from_bytes(None if features is None else features.fingerprint)
        except Exception as exc:  # a damaged fingerprint must not keep the hashes out
            log.warning(
                "entry %d: its local fingerprint cannot be read (%s); matching it by hashes only", record.id, exc
            )
            return entry, None

    def _add_batch(self, batch: list[tuple[Any, Any | None]]) -> None:
        """Adds store records (entry, features): decoding and indexing off the event loop."""
        if batch:
            decoded = [self._decoded(record, features) for record, features in batch]
            self.add_many([e for e, _ in decoded], [fp for _, fp in decoded])
