"""Matching an image's hashes against the block and allow lists a group uses.

Entries are held in memory (loaded from the store at start-up, updated as admins add and
remove them); the store stays the source of truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from detectors.hashing import ImageHashes, hamming_hex

# pHash stands in where PDQ's quality is too low to trust (flat or tiny images).
PHASH_DISTANCE = 8


@dataclass(frozen=True)
class Entry:
    entry_id: int
    list_id: int
    pdq: str | None
    pdq_quality: int | None
    phash: str | None
    sha256: str | None


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
    algorithm: str  # "sha256" | "pdq" | "phash"
    distance: int


def match_entry(e: Entry, h: ImageHashes, distance: int, min_quality: int) -> tuple[str, int] | None:
    """The best way ``h`` matches entry ``e``, or None."""
    if e.sha256 and e.sha256 == h.sha256:
        return "sha256", 0
    pdq_usable = e.pdq and h.pdq and h.pdq_quality >= min_quality and (e.pdq_quality or 0) >= min_quality
    if pdq_usable:
        d = hamming_hex(e.pdq, h.pdq)  # type: ignore[arg-type]
        if d <= distance:
            return "pdq", d
        return None
    if e.phash and h.phash:
        d = hamming_hex(e.phash, h.phash)
        if d <= PHASH_DISTANCE:
            return "phash", d
    return None


class HashLists:
    def __init__(self) -> None:
        self._entries: dict[int, dict[int, Entry]] = {}
        self._lists: dict[int, ListInfo] = {}

    def set_list(self, info: ListInfo) -> None:
        self._lists[info.list_id] = info
        self._entries.setdefault(info.list_id, {})

    def drop_list(self, list_id: int) -> None:
        self._lists.pop(list_id, None)
        self._entries.pop(list_id, None)

    def add(self, entry: Entry) -> None:
        self._entries.setdefault(entry.list_id, {})[entry.entry_id] = entry

    def remove(self, entry_id: int) -> bool:
        for entries in self._entries.values():
            if entries.pop(entry_id, None) is not None:
                return True
        return False

    def size(self, list_id: int) -> int:
        return len(self._entries.get(list_id, {}))

    def match(
        self, list_ids: Iterable[int], frames: Sequence[ImageHashes], *, distance: int, min_quality: int
    ) -> list[ListMatch]:
        """Every list (of those given) with an entry that one of the frames matches; closest first."""
        found: dict[int, ListMatch] = {}
        for list_id in list_ids:
            info = self._lists.get(list_id)
            if info is None:
                continue
            for e in self._entries.get(list_id, {}).values():
                for h in frames:
                    m = match_entry(e, h, distance, min_quality)
                    if m and (list_id not in found or m[1] < found[list_id].distance):
                        found[list_id] = ListMatch(list_id, info.name, info.kind, info.action, e.entry_id, m[0], m[1])
        return sorted(found.values(), key=lambda m: m.distance)
