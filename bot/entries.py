"""Writing hash-list entries: the one way, for admins' commands in the bot and ``vigil hash``
(add, import, remove).

An image becomes one entry per distinct frame (by PDQ: an animation is blocked by any of its
frames), with its trimmed views and the known-image part of its local fingerprint kept beside
the hashes. The store is written first; the bot also puts the entry in its lists in memory at
once (matched from the next image on), and every other process picks it up from the store's
change log (bot/follow.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.lists import HashLists, entry_from_records, list_info, stored_fingerprint, stored_views
from bot.store.protocol import ListsStore
from bot.store.records import ImportCounts, ListRecord
from detectors.localmatch import Fingerprint
from detectors.matching import FrameSignals, View


@dataclass(frozen=True)
class EntrySource:
    """Who added an entry and from where: an admin in a group, or the operator (no group)."""

    added_by: str
    platform: str | None = None
    chat_id: str | None = None
    note: str | None = None


class EntryWriter:
    """Adds and removes list entries in the store and, when given ``lists``, in memory too."""

    def __init__(self, store: ListsStore, lists: HashLists | None = None) -> None:
        self.store = store
        self.lists = lists

    async def add_hashes(
        self,
        lst: ListRecord,
        hashes: Mapping[str, Any],
        source: EntrySource,
        *,
        views: Sequence[View] = (),
        fingerprint: Fingerprint | None = None,
    ) -> int:
        """One entry from hashes (``pdq``, ``pdq_quality``, ``phash``, ``sha256``), with the trimmed
        ``views`` and local ``fingerprint`` of its image when they were computed; returns its id
        (the first entry's when the list holds the same image already)."""
        entry = await self.store.add_entry(
            lst.id,
            pdq=hashes.get("pdq"),
            pdq_quality=hashes.get("pdq_quality"),
            phash=hashes.get("phash"),
            sha256=hashes.get("sha256"),
            added_by=source.added_by,
            source_platform=source.platform,
            source_chat=source.chat_id,
            note=source.note,
        )
        kept, known = stored_views(views), stored_fingerprint(fingerprint)
        features = None
        if kept or known is not None:
            features = await self.store.set_entry_features(entry.id, views=kept, fingerprint=known)
        if self.lists is not None:
            self.lists.set_list(list_info(lst))
            self.lists.add(entry_from_records(entry, features), None if fingerprint is None else fingerprint.as_known())
        return entry.id

    async def add_frames(self, lst: ListRecord, frames: Sequence[FrameSignals], source: EntrySource) -> list[int]:
        """One entry per distinct frame of an image (by PDQ); returns their ids."""
        ids: list[int] = []
        seen: set[str | None] = set()
        for frame in frames:
            h = frame.hashes
            if h.pdq in seen:
                continue
            seen.add(h.pdq)
            hashes = {"pdq": h.pdq, "pdq_quality": h.pdq_quality, "phash": h.phash, "sha256": h.sha256}
            ids.append(await self.add_hashes(lst, hashes, source, views=frame.views, fingerprint=frame.fingerprint))
        return ids

    async def add_bulk(
        self,
        lst: ListRecord,
        hashes: Sequence[Mapping[str, Any]],
        source: EntrySource,
        progress: Callable[[int], None] | None = None,
    ) -> ImportCounts:
        """Many entries of bare hashes (an import, no image): all of them or none, duplicates
        skipped. Processes holding the lists in memory pick them up from the change log."""
        return await self.store.add_entries_bulk(
            lst.id, hashes, added_by=source.added_by, note=source.note, progress=progress
        )

    async def remove(self, entry_id: int) -> bool:
        """Removes an entry everywhere; True if it existed."""
        removed = await self.store.remove_entry(entry_id)
        if self.lists is not None:
            self.lists.remove(entry_id)
        return removed
