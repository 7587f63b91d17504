"""Writing hash-list entries from the running bot: in the store and in the bot's memory at once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bot.events import ChatRef
from bot.lists import HashLists, ListInfo, entry_from_records, stored_fingerprint, stored_views
from bot.store.protocol import ListsStore
from bot.store.records import ListRecord
from detectors.localmatch import Fingerprint
from detectors.scanner import Scan


class ListEntries:
    def __init__(self, store: ListsStore, lists: HashLists) -> None:
        self.store = store
        self.lists = lists

    async def add_hashes(
        self,
        lst: ListRecord,
        hashes: Mapping[str, Any],
        *,
        added_by: str,
        chat: ChatRef,
        note: str | None = None,
        views: Sequence[Any] = (),
        fingerprint: Fingerprint | None = None,
    ) -> int:
        """Adds one entry to a list. ``views``/``fingerprint``: the trimmed views and local
        fingerprint of the entry's image (``FrameScan.views``/``.fingerprint``), when the scan computed them."""
        entry = await self.store.add_entry(
            lst.id,
            pdq=hashes.get("pdq"),
            pdq_quality=hashes.get("pdq_quality"),
            phash=hashes.get("phash"),
            sha256=hashes.get("sha256"),
            added_by=added_by,
            source_platform=chat.platform,
            source_chat=chat.chat_id,
            note=note,
        )
        kept = stored_views(views)
        known = stored_fingerprint(fingerprint)
        features = None
        if kept or known is not None:
            features = await self.store.set_entry_features(entry.id, views=kept, fingerprint=known)
        self.lists.set_list(ListInfo(lst.id, lst.name, lst.kind, lst.action, lst.label))
        self.lists.add(entry_from_records(entry, features), None if fingerprint is None else fingerprint.as_known())
        return entry.id

    async def add_scan(
        self, lst: ListRecord, scan: Scan, *, added_by: str, chat: ChatRef, note: str | None = None
    ) -> list[int]:
        """One entry per distinct sampled frame (an animation is blocked by any of its frames)."""
        ids: list[int] = []
        seen: set[str] = set()
        for frame in scan.frames:
            h = frame.hashes
            if h.pdq in seen:
                continue
            seen.add(h.pdq)
            ids.append(
                await self.add_hashes(
                    lst,
                    {"pdq": h.pdq, "pdq_quality": h.pdq_quality, "phash": h.phash, "sha256": h.sha256},
                    added_by=added_by,
                    chat=chat,
                    note=note,
                    views=frame.views,
                    fingerprint=frame.fingerprint,
                )
            )
        return ids

    async def remove(self, entry_id: int) -> bool:
        """Removes an entry from the store and from memory; True if it existed."""
        removed = await self.store.remove_entry(entry_id)
        self.lists.remove(entry_id)
        return removed
