"""Protected photos, the pure part: the in-memory index of their fingerprints and what a match
with one of them means. No storage, no platform, no people beyond the ids and names handed in;
the service that fills the index from the store and decides who is told is ``bot.protect``.

A scanned frame that shares a large, geometrically consistent region with a protected photo
was very likely made from it (``detectors.localmatch`` finds and verifies the region); a whole
picture within ``NEAR_COPY_DISTANCE`` PDQ bits of the photo is the photo re-posted unchanged.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from detectors.errors import BadFingerprint
from detectors.hashing import hamming_hex, pdq_hash, working_copy
from detectors.localmatch import Fingerprint, LocalIndex, fingerprint
from detectors.localmatch.index import LocalState
from detectors.media import decode
from detectors.settings import MediaLimits

if TYPE_CHECKING:
    from detectors.scanner import Scan

DECODE_MIN_SIDE = 320  # decode protected photos as the scanner decodes posted ones
NEAR_COPY_DISTANCE = 31  # PDQ bits: within this, the whole picture is the same photo
SEARCH_LIMIT = 5  # known photos reported per scanned frame


@dataclass(frozen=True)
class KnownPhoto:
    """What the index knows of one protected photo besides its fingerprint."""

    id: int
    owner_id: int
    owner: str  # display name: shown only to the admins of a group where a fake appears
    source: str  # "private" | "group" | "operator"
    member: tuple[str, str] | None  # (platform, user id) of a member owner
    notify_to: tuple[str, str] | None  # (platform, user id) to tell, when the owner opted in
    group: tuple[str, str] | None  # (platform, chat id) of a group photo
    label: str | None
    pdq: str | None


@dataclass(frozen=True)
class DerivedMatch:
    """A scanned frame shares a large, consistent region with a protected photo."""

    photo: KnownPhoto
    frame: int  # index of the scanned frame in its file
    match_fraction: float  # share of the scanned image covered by the matched region
    source_fraction: float  # share of the protected photo covered
    inliers: int
    transform: tuple[float, ...]  # 2x3 similarity, scanned image frame -> protected photo frame
    mirrored: bool
    near_copy: bool  # the whole picture is (almost) the same as the photo: re-posted unchanged

    @property
    def owner(self) -> str:
        return self.photo.owner

    def as_json(self) -> dict[str, object]:
        return {
            "owner": self.photo.owner,
            "photo": self.photo.id,
            "match_fraction": round(self.match_fraction, 4),
            "source_fraction": round(self.source_fraction, 4),
            "transform": [round(v, 5) for v in self.transform],
            "mirrored": self.mirrored,
            "near_copy": self.near_copy,
        }


class ProtectedIndex:
    """Fingerprints of protected photos in a ``LocalIndex``, and who each one belongs to.

    Safe for searches from worker threads while the event loop adds and removes.
    """

    def __init__(self) -> None:
        self._local: LocalIndex | None = None  # made at the first add
        self._photos: dict[int, KnownPhoto] = {}
        self._by_owner: dict[int, set[int]] = {}  # owner id -> photo ids
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._photos)

    def ids(self) -> set[int]:
        with self._lock:
            return set(self._photos)

    def get(self, photo_id: int) -> KnownPhoto | None:
        return self._photos.get(photo_id)

    @property
    def memory_bytes(self) -> int:
        """The local index's memory (fingerprints and postings); the metadata adds ~0.5 kB a photo."""
        return int(self._local.memory_bytes) if self._local is not None else 0

    def add(self, photo: KnownPhoto, fp: Fingerprint) -> None:
        self.add_many([(photo, fp)])

    def add_many(self, items: Sequence[tuple[KnownPhoto, Fingerprint]]) -> None:
        """Adds (or replaces) photos; many at once is much faster (one index segment)."""
        if not items:
            return
        with self._lock:
            if self._local is None:
                self._local = LocalIndex()
            self._local.add_many([(photo.id, fp) for photo, fp in items])
            for photo, _ in items:
                self._photos[photo.id] = photo
                self._by_owner.setdefault(photo.owner_id, set()).add(photo.id)

    def owner_details(self, owner_id: int) -> tuple[str, tuple[str, str] | None] | None:
        """(name, notify_to) of an owner as the index holds them; None if none of theirs is held."""
        for pid in self._by_owner.get(owner_id, ()):
            photo = self._photos.get(pid)
            if photo is not None:
                return photo.owner, photo.notify_to
        return None

    def update_owner(self, owner_id: int, name: str, notify_to: tuple[str, str] | None) -> None:
        """New owner details (a name or notice choice changed) for all their photos."""
        with self._lock:
            for pid in self._by_owner.get(owner_id, ()):
                photo = self._photos.get(pid)
                if photo is not None:
                    self._photos[pid] = replace(photo, owner=name, notify_to=notify_to)

    def remove(self, photo_id: int) -> bool:
        with self._lock:
            photo = self._photos.pop(photo_id, None)
            if photo is None:
                return False
            mine = self._by_owner.get(photo.owner_id)
            if mine is not None:
                mine.discard(photo_id)
                if not mine:
                    del self._by_owner[photo.owner_id]
            if self._local is not None:
                self._local.remove(photo_id)
            return True

    def state(self) -> tuple[tuple[KnownPhoto, ...], LocalState | None]:
        """What the index holds, for a snapshot (detectors/index_snapshot.py): the photos and the
        built local index, taken together under the lock (an add or remove is in both or neither)."""
        with self._lock:
            return tuple(self._photos.values()), None if self._local is None else self._local.state()

    @classmethod
    def from_state(cls, photos: Sequence[KnownPhoto], local: LocalState | None) -> ProtectedIndex:
        """The index ``state`` gave, without building it. Raises ``ValueError`` when the photos
        and the local index disagree (a damaged snapshot)."""
        index = cls()
        if local is not None:
            index._local = LocalIndex.from_state(local)
        keys = set() if local is None else set(local.fp_keys.tolist())
        if keys != {p.id for p in photos} or len(keys) != len(photos):
            raise ValueError("the photos and the local index name different photos")
        for photo in photos:
            index._photos[photo.id] = photo
            index._by_owner.setdefault(photo.owner_id, set()).add(photo.id)
        return index

    def search(
        self, frames: Sequence[tuple[int, Fingerprint, str | None]], *, min_fraction: float, limit: int = SEARCH_LIMIT
    ) -> list[DerivedMatch]:
        """Protected photos that scanned frames ``(index, fingerprint, pdq)`` were made from,
        the best match per photo, largest shared region first."""
        if not self._photos or self._local is None:
            return []
        best: dict[int, DerivedMatch] = {}
        for index, fp, pdq in frames:
            if fp is None or not len(fp):
                continue
            for m in self._local.search(fp, min_fraction=min_fraction, limit=limit):
                photo = self._photos.get(m.key)
                if photo is None:  # removed while we searched
                    continue
                near = bool(pdq and photo.pdq and hamming_hex(pdq, photo.pdq) <= NEAR_COPY_DISTANCE)
                found = DerivedMatch(
                    photo, index, m.match_fraction, m.source_fraction, m.inliers, tuple(m.transform), m.mirrored, near
                )
                old = best.get(photo.id)
                if old is None or found.match_fraction > old.match_fraction:
                    best[photo.id] = found
        return sorted(best.values(), key=lambda d: (-d.match_fraction, d.photo.id))


def scan_frames(scan: Scan) -> list[tuple[int, Fingerprint, str | None]]:
    """The frames of a ``detectors.scanner.Scan`` that carry a local fingerprint."""
    out = []
    for f in scan.frames:
        fp = getattr(f, "fingerprint", None)
        if fp is not None:
            out.append((f.index, fp, f.hashes.pdq if f.hashes.pdq_quality >= 50 else None))
    return out


def derived_evidence(
    matches: Iterable[DerivedMatch], *, label: str, sender: tuple[str, str] | None
) -> tuple[DerivedMatch, ...]:
    """The matches that count as a manipulated copy of someone's photo.

    Left out: the owner posting their own photo, and a photo re-posted unchanged (a near
    copy by whole-image PDQ) when the scan found nothing else in it (``label`` clean).
    With nudity, a near copy still counts: the protected photos are ordinary photos.
    """
    out = []
    for m in matches:
        if sender is not None and m.photo.member == sender:
            continue
        if m.near_copy and label == "clean":
            continue
        out.append(m)
    return tuple(out)


# --- fingerprints of protected photos ------------------------------------------------------


@dataclass(frozen=True)
class PhotoPrint:
    """What Vigil keeps of a photo: its fingerprint (for the index) and whole-image PDQ; with
    ``query``, also the fingerprint to look the photo itself up with (not kept)."""

    fingerprint: Fingerprint
    pdq: str | None
    points: int
    query: Fingerprint | None = None


def encode_fingerprint(fp: Fingerprint) -> str:
    return base64.b64encode(fp.to_bytes()).decode("ascii")


def decode_fingerprint(text: str) -> Fingerprint:
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeError) as exc:
        raise BadFingerprint(f"the stored text is not base64 ({exc})") from None
    return Fingerprint.from_bytes(raw)


def print_of_pixels(rgb: np.ndarray, query: bool = False) -> PhotoPrint:
    """The fingerprint to keep of a known photo (``query=False``: a spread prefix, no mirror);
    ``query``: also the query fingerprint, to check whose photo it already is."""
    fp = fingerprint(rgb, query=False)
    pdq, quality = pdq_hash(working_copy(rgb))
    return PhotoPrint(fp, pdq if quality >= 50 else None, len(fp), fingerprint(rgb) if query else None)


def query_of_bytes(data: bytes, limits: MediaLimits = MediaLimits()) -> list[tuple[int, Fingerprint, str | None]]:
    """What a scan gives ``Protector.match`` for a file, without the detection models: each
    decoded frame's query fingerprint and PDQ (the ``vigil scan``-free path of the bench and tests)."""
    media = decode(data, limits, min_side=DECODE_MIN_SIDE)
    out = []
    for frame in media.frames:
        pdq, quality = pdq_hash(working_copy(frame.rgb))
        out.append((frame.index, fingerprint(frame.rgb), pdq if quality >= 50 else None))
    return out
