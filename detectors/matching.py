"""Matching images against hash lists in a way that survives the usual evasions.

Two halves:

* Signals of one decoded frame (``frame_signals``), computed while its pixels are in
  memory: the views of the frame (the whole frame, and the picture found inside uniform
  borders or screenshot chrome, see ``detectors.trimming``), each with the eight PDQ
  hashes of its rotations and mirrors, its PDQ quality and its pHash; and the frame's
  local-feature fingerprint (``detectors.localmatch``) for crops and overlays that
  whole-image hashes cannot follow. ``media_signals`` decodes a file and computes them
  without the detection models (the ``vigil hash`` command line and the benchmark).
* ``ListIndex``: every entry of every list in memory, answering "which entries does this
  image match" exactly: PDQ and pHash through ``HammingIndex`` (every entry within the
  radius, never an approximate miss), SHA-256 through a dict, local features through
  ``LocalIndex`` with a verified geometric transform. Results are filtered by list id
  after the search, so a group only sees the lists it uses.

Rotations and mirrors are tried on the query side: the eight hashes of each query view
are searched, and each entry is held once. Holding the eight variants of every entry
instead would make each search one lookup, but multiplies the index's memory by eight
(measured in bench/bench_lists.py; see the README section "Hash lists").

Entries keep the views of their own image too (an image blocked with a border matches a
copy without it). Views that drop more than flat bars (``content``) never make an
allow-list match, see ``Candidate.whole``.

A hue shift (greens turned purple) changes each pixel's brightness, so the luma PDQ of
the copy lands 45-50 bits away and its descriptors too far for verification on some
pictures. The ``value`` view is the PDQ of the frame's HSV value channel (max of R, G,
B), which a hue rotation in HSV or HSL leaves as it is; entries keep it as one more view
(searched as is, in an index of its own) and it matches like any PDQ: near-certain within
``PDQ_SURE``, confirmed by local features beyond.

The query's fingerprint also holds the frame's points at half an ORB pyramid step
(``HALF_STEP_SIDE``): a crop of 5-10 % or a trimmed rotation of 3-5 degrees shows the
picture ~1.1 times larger, halfway between ORB's scales, and on fine repeated detail (a
street of identical windows) no 24-bit word of its descriptors stayed intact for the
index to vote on, though verification lined the pair up at once.

A picture shown small inside screenshot chrome or wide borders is fingerprinted apart
too, and its points join the frame's (``fingerprint_of``): otherwise it gets few points,
all coarse, and a screenshot recompressed at JPEG 70 keeps too little of them (bench:
screenshot copies 59-76 % before on the tuning photos). Entries whose PDQ is near
(``PDQ_NEAR``, the whole frame as is) but past the threshold are verified by local
features: a strong hue shift moves both PDQ and the descriptors just out of reach, not
the geometry.

A PDQ match that is not near-certain (beyond ``PDQ_SURE`` bits, or through a rotation or
mirror) is confirmed by local features when both images have enough keypoints: pictures
with one layout (the quarters of a round photograph, two portraits on plain backgrounds)
are close in PDQ once turned, but share no verified region. In bench/bench_lists.py this
removed every false match of PDQ with rotations (156 copies) for 0.6 % of the copies found.

Why one file of about 700 lines: the two halves share the view vocabulary (crop names, the eight
dihedral PDQ codes, the value view) and change together whenever a new evasion family is closed;
the heavy parts they build on are modules of their own (``trimming``, ``localmatch``,
``hashindex``, ``perceptual``).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from detectors import localmatch, perceptual
from detectors.hashindex import HammingIndex
from detectors.hashing import ImageHashes, pdq_dihedral, pdq_hash, perceptual_hashes, working_copy
from detectors.localmatch import WORK_SIDE, Fingerprint, LocalIndex, RegionMatch, one_omp_thread, verify
from detectors.localmatch.index import LocalState
from detectors.media import decode
from detectors.settings import MediaLimits
from detectors.trimming import Box, border_box, content_box, crop

# Names of the eight orientations, in pdqhash.compute_dihedral's order.
DIHEDRAL = ("as is", "rot90", "rot180", "rot270", "flipped", "mirrored", "transposed", "transversed")
FULL, BORDER, CONTENT = "full", "border", "content"
# The whole frame's HSV value channel (max of R, G, B): a hue rotation (HSV or HSL) changes
# only the middle channel of each pixel, never the largest, so this view's PDQ stays put
# where the luma PDQ moves past any threshold (greens turned purple change brightness).
VALUE = "value"
# Algorithms from the most to the least exact: results list matches in this order, each
# by distance (bits, or for local features 100 minus the percent matched: not comparable).
ALGORITHMS = ("sha256", "pdq", "phash", "local")

PDQ_DISTANCE = 31  # PDQ's published match threshold
PDQ_MIN_QUALITY = 50  # below this PDQ is unreliable (flat or tiny pictures)
PHASH_DISTANCE = 8  # of 64 bits; pHash stands in only where PDQ quality is too low
LOCAL_MIN_FRACTION = 0.5  # share of a list image a local-feature match must cover
# An allow-list match must show the query's whole picture: a listed image pasted beside
# another must not let the other through.
ALLOW_MIN_COVER = 0.8

PDQ_SURE = 8  # PDQ matches this close, as is, need no confirmation by local features
# entries this near in PDQ (the whole frame, as is) but past the threshold are checked by local
# features; one search at 40 bits costs about 3 at 31 (1,000,000 random entries: 17.5 ms against
# 5.8), at 44 bits or more 25 times as much (130-150 ms): the radius is kept at 40
PDQ_NEAR = 40
NEAR_VERIFY = 8  # of those, at most this many per frame
CONFIRM_POINTS = 64  # keypoints each side needs for local features to confirm (or refuse) a PDQ match
PHASH_MIN_BITS = 12  # a pHash with fewer set (or clear) bits comes from a degenerate picture: not matched
LOCAL_SHORTLIST = 64  # best-voted entries considered for local verification, before the list filter
LOCAL_VERIFY = 32  # of those, entries of the group's lists verified geometrically

# Slots of an entry's keys in the hash indexes: key = entry_id * SLOTS + slot.
SLOTS = 4
_SLOT_OF = {FULL: 0, BORDER: 1, CONTENT: 2, VALUE: 3}
_UNKNOWN_QUALITY = -1


# --- signals of one frame ----------------------------------------------------------


@dataclass(frozen=True)
class View:
    """Hashes of one view of a frame: the whole frame, or the picture inside its borders."""

    crop: str  # "full" | "border" | "content" | "value"
    box: Box  # x, y, width, height in the frame's pixels
    pdq: tuple[str, ...]  # the view's PDQ as is first, then its rotations and mirrors (DIHEDRAL order; "value": as is)
    quality: int
    phash: str

    @property
    def whole(self) -> bool:
        """True when the view drops nothing but flat bars: it shows all the frame shows."""
        return self.crop != CONTENT


@dataclass(frozen=True)
class FrameSignals:
    """What list matching needs from one frame, kept after its pixels are dropped."""

    hashes: ImageHashes  # of the whole frame, as the scanner stores them
    views: tuple[View, ...]  # the whole frame first, then trimmed views that differ from it, then "value"
    fingerprint: Fingerprint | None = None


def _view(crop_name: str, box: Box, rgb: np.ndarray, dihedral: bool) -> View:
    work = working_copy(rgb)
    if dihedral:
        pdqs, quality = pdq_dihedral(work)
    else:
        pdq, quality = pdq_hash(work)
        pdqs = (pdq,)
    gray = Image.fromarray(np.ascontiguousarray(work)).convert("L")
    return View(crop_name, box, pdqs, quality, perceptual.phash(gray))


def _value_view(rgb: np.ndarray) -> View:
    """The whole frame's value channel (``VALUE``): one PDQ, as is, and no pHash."""
    h, w = rgb.shape[:2]
    value = working_copy(rgb).max(axis=2)
    pdq, quality = pdq_hash(np.repeat(value[:, :, None], 3, axis=2))
    return View(VALUE, (0, 0, w, h), (pdq,), quality, "")


def frame_views(rgb: np.ndarray, *, dihedral: bool = True, trim: bool = True, hue: bool = True) -> tuple[View, ...]:
    """The whole frame's view, then its border and content views when they differ, then
    (``hue``) the frame's value view."""
    h, w = rgb.shape[:2]
    views = [_view(FULL, (0, 0, w, h), rgb, dihedral)]
    if trim:
        seen = {(0, 0, w, h)}
        for name, find in ((BORDER, border_box), (CONTENT, content_box)):
            box = find(rgb)
            if box is not None and box not in seen:
                seen.add(box)
                views.append(_view(name, box, crop(rgb, box), dihedral))
    if hue:
        views.append(_value_view(rgb))
    return tuple(views)


INSET_MAX_AREA = 0.8  # a picture inside chrome or borders taking less of the frame is fingerprinted apart too
# The working copy's long side for the query's second set of points: half an ORB pyramid
# step (1.2) below the usual one (localmatch.WORK_SIDE / 1.2 ** 0.5).
HALF_STEP_SIDE = round(WORK_SIDE / 1.2**0.5)


def fingerprint_of(rgb: np.ndarray, views: Sequence[View] | None = None) -> Fingerprint:
    """The frame's local-feature fingerprint (a query fingerprint: with mirrored descriptors).

    The points of the frame at half a pyramid step smaller (``HALF_STEP_SIDE``) follow the
    frame's own: ORB finds corners on scales 1.2 apart, and a copy cropped by 5-10 %, or
    rotated by 3-5 degrees and trimmed, shows the picture about 1.1 times larger, halfway
    between two scales. Its descriptors then differ from the original's by a median of
    ~48 of 256 bits instead of 2-17, too many for the index's exact 24-bit words (a city
    street cropped by 8 %: 1 vote, 19 at the half step), though verification still lines
    them up. The known image keeps its own points only (``as_known`` takes a prefix).

    When the frame holds a picture inside screenshot chrome or borders (the content or
    border view: ``views`` if given, else found here), the picture's own points are added
    (``localmatch.with_inset``): shown small, it would otherwise get few points and only
    coarse ones. Most photos have no such view and cost nothing more.
    """
    fp = localmatch.fingerprint(rgb)
    h, w = rgb.shape[:2]
    fp = localmatch.with_inset(fp, localmatch.fingerprint(rgb, work_side=HALF_STEP_SIDE), (0, 0, w, h), (w, h))
    if views is None:
        boxes = [b for b in (content_box(rgb), border_box(rgb)) if b is not None]
    else:
        boxes = [v.box for v in views if v.crop == CONTENT] + [v.box for v in views if v.crop == BORDER]
    for box in boxes[:1]:  # the tightest: content first
        if box[2] * box[3] <= INSET_MAX_AREA * w * h:
            fp = localmatch.with_inset(fp, localmatch.fingerprint(crop(rgb, box)), box, (w, h))
    return fp


def frame_signals(
    rgb: np.ndarray, sha256: str, *, dihedral: bool = True, trim: bool = True, local: bool = True, hue: bool = True
) -> FrameSignals:
    """Hashes, views and local fingerprint of one RGB frame; ``sha256`` is of the file's bytes.

    ``dihedral``, ``trim``, ``hue``, ``local``: rotations and mirrors, trimmed views, the
    value view and the fingerprint (all on; the benchmark turns them off to compare)."""
    pdq, quality, phash, dhash = perceptual_hashes(rgb)
    views = frame_views(rgb, dihedral=dihedral, trim=trim, hue=hue)
    return FrameSignals(
        ImageHashes(pdq, quality, phash, dhash, sha256),
        views,
        fingerprint_of(rgb, views if trim else None) if local else None,
    )


def media_signals(
    data: bytes, limits: MediaLimits = MediaLimits(), *, min_side: int | None = 320, **options: bool
) -> tuple[FrameSignals, ...]:
    """Decode a file in memory and compute every frame's list signals (no detection model).

    Raises the ``MediaError`` of a file Vigil refuses. ``options``: see ``frame_signals``.
    """
    media = decode(data, limits, min_side=min_side)
    sha = hashlib.sha256(data).hexdigest()
    return tuple(frame_signals(f.rgb, sha, **options) for f in media.frames)


# --- the index ----------------------------------------------------------------------


@dataclass(frozen=True)
class EntryHashes:
    """What the index holds for one list entry (hashes only, never pixels)."""

    entry_id: int
    list_id: int
    pdq: str | None = None
    pdq_quality: int | None = None  # None: unknown (imported hashes), trusted
    phash: str | None = None
    sha256: str | None = None
    # trimmed views of the entry's own image: (crop, pdq, quality, phash)
    views: tuple[tuple[str, str | None, int | None, str | None], ...] = ()


@dataclass(frozen=True)
class Candidate:
    """One entry an image matches, and how."""

    entry_id: int
    list_id: int
    algorithm: str  # "sha256" | "pdq" | "phash" | "local"
    distance: int  # bits for hashes; for "local", 100 minus the percent of the list image matched
    view: str  # which query view and orientation matched, e.g. "content, mirrored"
    whole: bool  # the match shows the query's whole picture (may count for an allow list)


@dataclass(frozen=True, eq=False)
class ListState:
    """A ``ListIndex`` as plain arrays (``ListIndex.state``): each hash index's (keys, codes), the
    per-entry tables (SHA-256 key, list id, per-key PDQ quality), the entry count, and the local
    index with its keys."""

    pdq: tuple[np.ndarray, np.ndarray]
    value: tuple[np.ndarray, np.ndarray]
    phash: tuple[np.ndarray, np.ndarray]
    sha_key: np.ndarray
    list_of: np.ndarray
    quality: np.ndarray
    count: int
    local: LocalState | None
    local_keys: np.ndarray


class ListIndex:
    """Every list entry in memory; exact hash search, then local features, then a list filter.

    Updates (``add``/``remove``) and searches may run in different threads: the hash
    indexes publish complete snapshots, and per-entry facts live in arrays that are
    replaced, never resized in place.
    """

    def __init__(self, *, mih_threshold: int = 65536, local: bool = True) -> None:
        self._pdq = HammingIndex(256, mih_threshold=mih_threshold)
        self._value = HammingIndex(256, mih_threshold=mih_threshold)  # VALUE views' PDQ, apart from the luma ones
        self._phash = HammingIndex(64, mih_threshold=mih_threshold)
        # SHA-256: a dict from the digest's first 64 bits (an int: compact) to the entry
        # id, or a tuple of ids when several entries share it; the same 64 bits sit in an
        # array by entry id so a removal finds its key. Two different files agree on 64
        # bits with a chance of 1 in 2**64 per entry: exact for any list size.
        self._sha: dict[int, int | tuple[int, ...]] = {}
        self._sha_key = np.zeros(1024, np.uint64)
        # per entry id: its list id (0: no such entry); per key: PDQ quality (-1 unknown)
        self._list_of = np.zeros(1024, np.int32)
        self._quality = np.full(1024 * SLOTS, _UNKNOWN_QUALITY, np.int8)
        self._count = 0
        self._local: LocalIndex | None = None
        self._local_enabled = local
        self._local_keys: set[int] = set()
        self._write = threading.Lock()

    # -- reading -----------------------------------------------------------------

    def __len__(self) -> int:
        return self._count

    def __contains__(self, entry_id: int) -> bool:
        return self.list_of(entry_id) != 0

    def list_of(self, entry_id: int) -> int:
        table = self._list_of
        return int(table[entry_id]) if 0 <= entry_id < len(table) else 0

    def entries_of(self, list_id: int) -> list[int]:
        """Ids of the entries of one list (a scan of the id table: for dropping a list)."""
        return [int(i) for i in np.flatnonzero(self._list_of == list_id)] if list_id > 0 else []

    @property
    def local_size(self) -> int:
        """Entries with a local-feature fingerprint."""
        return len(self._local_keys)

    def candidates(
        self,
        frames: Sequence[FrameSignals],
        *,
        list_ids: Collection[int] | None = None,
        distance: int = PDQ_DISTANCE,
        min_quality: int = PDQ_MIN_QUALITY,
        phash_distance: int = PHASH_DISTANCE,
        local: bool = True,
        local_min_fraction: float = LOCAL_MIN_FRACTION,
    ) -> list[Candidate]:
        """Every (entry, algorithm, whole) the frames match; only ``list_ids`` if given.

        Ordered by algorithm (``ALGORITHMS``, the most exact first), then distance.
        """
        with one_omp_thread():
            return self._candidates(
                frames,
                None if list_ids is None else frozenset(list_ids),
                distance,
                min_quality,
                phash_distance,
                local,
                local_min_fraction,
            )

    def _candidates(
        self,
        frames: Sequence[FrameSignals],
        keep: frozenset[int] | None,
        distance: int,
        min_quality: int,
        phash_distance: int,
        local: bool,
        local_min_fraction: float,
    ) -> list[Candidate]:
        best: dict[tuple[int, str, bool], Candidate] = {}

        def offer(c: Candidate) -> None:
            if keep is not None and c.list_id not in keep:
                return
            key = (c.entry_id, c.algorithm, c.whole)
            if key not in best or c.distance < best[key].distance:
                best[key] = c

        list_of, quality = self._list_of, self._quality
        for frame in frames:
            found: list[tuple[Candidate, int, View | None]] = []  # candidate, orientation, view
            for entry_id in self._sha_lookup(frame.hashes.sha256):
                found.append((Candidate(entry_id, self._list(list_of, entry_id), "sha256", 0, "file", True), 0, None))
            views = frame.views or (
                View(FULL, (0, 0, 0, 0), (frame.hashes.pdq,), frame.hashes.pdq_quality, frame.hashes.phash),
            )
            for view in views:
                pdq_usable = view.quality >= min_quality
                pdq_index = self._value if view.crop == VALUE else self._pdq
                if pdq_usable:
                    for k, code in enumerate(view.pdq):
                        for m in pdq_index.search(code, distance):
                            entry_id, _ = divmod(m.entry_id, SLOTS)
                            if self._quality_ok(quality, m.entry_id, min_quality):
                                found.append(
                                    (
                                        Candidate(
                                            entry_id,
                                            self._list(list_of, entry_id),
                                            "pdq",
                                            m.distance,
                                            _describe(view.crop, k),
                                            view.whole,
                                        ),
                                        k,
                                        view,
                                    )
                                )
                if phash_usable(view.phash):
                    for m in self._phash.search(view.phash, phash_distance):
                        # pHash only where PDQ cannot be trusted, on either side
                        if pdq_usable and self._quality_ok(quality, m.entry_id, min_quality, has_pdq=True):
                            continue
                        entry_id, _ = divmod(m.entry_id, SLOTS)
                        found.append(
                            (
                                Candidate(
                                    entry_id,
                                    self._list(list_of, entry_id),
                                    "phash",
                                    m.distance,
                                    _describe(view.crop, 0),
                                    view.whole,
                                ),
                                0,
                                None,
                            )
                        )
            found = [f for f in found if keep is None or f[0].list_id in keep]
            fp = frame.fingerprint if local and self._local is not None and self._local_keys else None
            verified: dict[int, bool] = {}
            if fp is not None:
                for c in self._local_candidates(fp, keep, local_min_fraction):
                    verified[c.entry_id] = True
                    offer(c)
                for c in self._near_pdq_candidates(
                    frame, fp, verified, keep, distance, min_quality, local_min_fraction
                ):
                    verified[c.entry_id] = True
                    offer(c)
            for c, orientation, seen_in in found:
                if fp is not None and seen_in is not None and self._needs_confirmation(c, orientation, seen_in, fp):
                    if c.entry_id not in verified:
                        verified[c.entry_id] = self._verified(fp, c.entry_id, local_min_fraction)
                    if not verified[c.entry_id]:
                        continue  # the picture only looks alike at a glance (same layout, other content)
                offer(c)
        matched = [c for c in best.values() if c.list_id != 0]  # 0: removed while searching
        return sorted(matched, key=lambda c: (ALGORITHMS.index(c.algorithm), c.distance, c.entry_id))

    def _needs_confirmation(self, c: Candidate, orientation: int, view: View, fp: Fingerprint) -> bool:
        """A PDQ match that local features must confirm, when both sides have enough of them.

        Whole views only (the frame's fingerprint describes the same picture) and only
        matches that are not near-certain: beyond PDQ_SURE bits, or through a rotation or
        mirror (pictures with one layout, such as quarters of a round object, look alike
        to PDQ once turned). Entries without a fingerprint (imported hashes) are matched
        by PDQ alone, as everywhere.
        """
        if not view.whole or (c.distance <= PDQ_SURE and orientation == 0):
            return False
        if len(fp) < CONFIRM_POINTS or c.entry_id not in self._local_keys or self._local is None:
            return False
        known = self._local.fingerprint_of(c.entry_id)
        return known is not None and len(known) >= CONFIRM_POINTS

    def _verified(self, fp: Fingerprint, entry_id: int, min_fraction: float) -> bool:
        m = self._verify(fp, entry_id)
        return m is not None and m.fraction >= min_fraction

    def _near_pdq_candidates(
        self,
        frame: FrameSignals,
        fp: Fingerprint,
        verified: dict[int, bool],
        keep: frozenset[int] | None,
        distance: int,
        min_quality: int,
        min_fraction: float,
    ) -> list[Candidate]:
        """Entries whose PDQ is near but beyond ``distance`` (up to ``PDQ_NEAR``), verified by local features.

        A strong colour edit (a hue shift turns greens to purples) moves the luminance PDQ
        reads and the local descriptors: PDQ lands just past its threshold, and the
        descriptors too far apart for the index's votes, but the geometric check on the
        pair still finds the shared picture. Only the few entries this near are verified.
        """
        out: list[Candidate] = []
        tried = 0
        for view in frame.views[:1]:  # the whole frame only: one more search per frame
            if not view.whole or view.quality < min_quality:
                continue
            for m in self._pdq.search(view.pdq[0], PDQ_NEAR):
                entry_id, _ = divmod(m.entry_id, SLOTS)
                list_id = self.list_of(entry_id)
                if (
                    m.distance <= distance
                    or entry_id in verified
                    or list_id == 0
                    or (keep is not None and list_id not in keep)
                    or entry_id not in self._local_keys
                    or not self._quality_ok(self._quality, m.entry_id, min_quality)
                ):
                    continue
                if tried >= NEAR_VERIFY:
                    return out
                tried += 1
                match = self._verify(fp, entry_id)
                verified[entry_id] = match is not None and match.fraction >= min_fraction
                if match is not None and verified[entry_id]:
                    out.append(
                        Candidate(
                            entry_id,
                            list_id,
                            "local",
                            int(round(100 * (1 - match.fraction))),
                            "local features" + (", mirrored" if match.mirrored else ""),
                            match.match_fraction >= ALLOW_MIN_COVER,
                        )
                    )
        return out

    def _verify(self, fp: Fingerprint, entry_id: int) -> RegionMatch | None:
        known = None if self._local is None else self._local.fingerprint_of(entry_id)
        return None if known is None else verify(fp, known)

    def _sha_lookup(self, sha256: str) -> tuple[int, ...]:
        try:
            held = self._sha.get(_sha_key(sha256))
        except ValueError:
            return ()
        return () if held is None else _ids(held)

    @staticmethod
    def _list(list_of: np.ndarray, entry_id: int) -> int:
        return int(list_of[entry_id]) if entry_id < len(list_of) else 0

    @staticmethod
    def _quality_ok(quality: np.ndarray, key: int, min_quality: int, *, has_pdq: bool = False) -> bool:
        """The entry's hash under ``key`` has a usable PDQ (unknown quality counts as usable).

        ``has_pdq``: also require that the key holds a PDQ at all (pHash-only entries do not).
        """
        q = int(quality[key]) if key < len(quality) else _UNKNOWN_QUALITY
        if has_pdq and q == _NO_PDQ:
            return False
        return q == _UNKNOWN_QUALITY or q >= min_quality

    def _local_candidates(self, fp: Fingerprint, keep: frozenset[int] | None, min_fraction: float) -> list[Candidate]:
        """Entries sharing a verified region with the query, among the lists kept.

        The vote shortlist is filtered by list BEFORE verification: the same image listed
        by many groups must not crowd this group's entry out of the verified few.
        """
        index = self._local
        out: list[Candidate] = []
        if index is None:
            return out
        shortlist = index.candidates(fp, shortlist=LOCAL_SHORTLIST)
        verified = 0
        for key, _mirrored, _votes in shortlist:
            list_id = self.list_of(key)
            if list_id == 0 or (keep is not None and list_id not in keep):
                continue
            known = index.fingerprint_of(key)
            if known is None:
                continue  # removed meanwhile
            verified += 1
            m = verify(fp, known)
            if m is not None and m.fraction >= min_fraction:
                out.append(
                    Candidate(
                        key,
                        list_id,
                        "local",
                        int(round(100 * (1 - m.fraction))),
                        "local features" + (", mirrored" if m.mirrored else ""),
                        m.match_fraction >= ALLOW_MIN_COVER,
                    )
                )
            if verified >= LOCAL_VERIFY:
                break
        return out

    # -- writing -----------------------------------------------------------------

    def add(self, entry: EntryHashes, fingerprint: Fingerprint | None = None) -> None:
        self.add_many([entry], [fingerprint])

    def add_many(
        self, entries: Sequence[EntryHashes], fingerprints: Sequence[Fingerprint | None] | None = None
    ) -> None:
        """Add entries (an id already present is replaced); one batch per hash index."""
        if not entries:
            return
        if fingerprints is not None and len(fingerprints) != len(entries):
            raise ValueError(
                f"{len(fingerprints)} fingerprints for {len(entries)} entries; give one (or None) per entry"
            )
        for e in entries:
            if e.entry_id < 1 or e.list_id < 1:
                raise ValueError(f"entry {e.entry_id} of list {e.list_id}: ids are positive record ids")
        with self._write:
            self._remove_locked([e.entry_id for e in entries if self.list_of(e.entry_id)])
            top = max(e.entry_id for e in entries)
            self._grow(top)
            pdq_keys: list[int] = []
            pdq_codes: list[bytes] = []
            ph_keys: list[int] = []
            ph_codes: list[bytes] = []
            value_keys: list[int] = []
            value_codes: list[bytes] = []
            quality = self._quality
            for e in entries:
                hashes = [(FULL, e.pdq, e.pdq_quality, e.phash), *e.views]
                for crop_name, pdq, q, phash in hashes:
                    slot = _SLOT_OF.get(crop_name)
                    if slot is None:
                        continue  # a view a later Vigil stored: ignored here
                    key = e.entry_id * SLOTS + slot
                    if pdq:
                        (value_keys if crop_name == VALUE else pdq_keys).append(key)
                        (value_codes if crop_name == VALUE else pdq_codes).append(bytes.fromhex(pdq))
                        quality[key] = _UNKNOWN_QUALITY if q is None else q
                    else:
                        quality[key] = _NO_PDQ
                    if phash and phash_usable(phash):  # 64-bit pHash (imagehash's) with information
                        ph_keys.append(key)
                        ph_codes.append(bytes.fromhex(phash.rjust(16, "0")))
                if e.sha256:
                    key = _sha_key(e.sha256)
                    self._sha_key[e.entry_id] = key
                    held = self._sha.get(key)
                    self._sha[key] = e.entry_id if held is None else (*_ids(held), e.entry_id)
            for index, keys, codes in ((self._pdq, pdq_keys, pdq_codes), (self._value, value_keys, value_codes)):
                if keys:
                    index.add(np.array(keys, np.int64), np.frombuffer(b"".join(codes), np.uint8).reshape(-1, 32))
            if ph_keys:
                self._phash.add(np.array(ph_keys, np.int64), np.frombuffer(b"".join(ph_codes), np.uint8).reshape(-1, 8))
            if fingerprints is not None and self._local_enabled:
                pairs = [
                    (e.entry_id, fp) for e, fp in zip(entries, fingerprints, strict=False) if fp is not None and len(fp)
                ]
                if pairs:
                    self._local_index().add_many(pairs)
                    self._local_keys.update(k for k, _ in pairs)
            list_of = self._list_of
            for e in entries:
                list_of[e.entry_id] = e.list_id  # last: the entry is visible once complete
            self._count += len(entries)

    def remove(self, entry_ids: Iterable[int]) -> int:
        """Remove entries from every index; unknown ids are ignored. Returns how many were removed."""
        with self._write:
            return self._remove_locked([int(i) for i in entry_ids if self.list_of(int(i))])

    def _remove_locked(self, entry_ids: list[int]) -> int:
        if not entry_ids:
            return 0
        for entry_id in entry_ids:
            self._list_of[entry_id] = 0  # first: searches stop reporting it at once
        keys = [e * SLOTS + s for e in entry_ids for s in range(SLOTS)]
        self._pdq.remove(keys)
        self._value.remove(keys)
        self._phash.remove(keys)
        for entry_id in entry_ids:
            key = int(self._sha_key[entry_id])
            if key:
                rest = tuple(i for i in _ids(self._sha.get(key, ())) if i != entry_id)
                if rest:
                    self._sha[key] = rest[0] if len(rest) == 1 else rest
                else:
                    self._sha.pop(key, None)
                self._sha_key[entry_id] = 0
        if self._local is not None:
            for entry_id in entry_ids:
                if entry_id in self._local_keys:
                    self._local.remove(entry_id)
                    self._local_keys.discard(entry_id)
        self._count -= len(entry_ids)
        return len(entry_ids)

    def list_sizes(self) -> dict[int, int]:
        """Entries held per list id."""
        table = self._list_of
        lists, counts = np.unique(table[table != 0], return_counts=True)
        return {int(k): int(c) for k, c in zip(lists.tolist(), counts.tolist(), strict=True)}

    # -- snapshots (detectors/index_snapshot.py) -----------------------------------

    def state(self) -> ListState:
        """Everything held, as plain arrays, consistent with some complete add or remove."""
        with self._write:
            return ListState(
                self._pdq.live(),
                self._value.live(),
                self._phash.live(),
                self._sha_key.copy(),
                self._list_of.copy(),
                self._quality.copy(),
                self._count,
                None if self._local is None else self._local.state(),
                np.array(sorted(self._local_keys), np.int64),
            )

    @classmethod
    def from_state(cls, st: ListState, *, mih_threshold: int = 65536, local: bool = True) -> ListIndex:
        """The index ``state`` gave: the hash indexes built in one batch each, the tables taken as
        they are. Raises ``ValueError`` when the arrays do not fit together (a damaged snapshot)."""
        n = len(st.list_of)
        if st.list_of.ndim != 1 or st.sha_key.shape != (n,) or st.quality.shape != (n * SLOTS,):
            raise ValueError("the entry tables have unequal lengths")
        if st.count != int(np.count_nonzero(st.list_of)):
            raise ValueError("the entry count does not match the entry table")
        index = cls(mih_threshold=mih_threshold, local=local)
        index._list_of = st.list_of.astype(np.int32)
        index._quality = st.quality.astype(np.int8)
        index._sha_key = st.sha_key.astype(np.uint64)
        index._count = st.count
        for target, (ids, codes) in ((index._pdq, st.pdq), (index._value, st.value), (index._phash, st.phash)):
            if len(ids) and (int(ids.min()) < SLOTS or int(ids.max()) >= n * SLOTS):
                raise ValueError("a hash index names an entry the entry table does not hold")
            target.add(ids, codes)
        alive = np.flatnonzero((index._list_of != 0) & (index._sha_key != 0))
        sha: dict[int, int | tuple[int, ...]] = {}
        for entry_id, key in zip(alive.tolist(), index._sha_key[alive].tolist(), strict=True):
            held = sha.get(key)
            sha[key] = entry_id if held is None else (*_ids(held), entry_id)
        index._sha = sha
        if local and st.local is not None:
            index._local = LocalIndex.from_state(st.local)
            index._local_keys = set(st.local_keys.tolist())
            if index._local_keys != set(st.local.fp_keys.tolist()):
                raise ValueError("the local index and its key set disagree")
        return index

    def _grow(self, top: int) -> None:
        if top < len(self._list_of):
            return
        size = max(top + 1, 2 * len(self._list_of))
        list_of = np.zeros(size, np.int32)
        list_of[: len(self._list_of)] = self._list_of
        quality = np.full(size * SLOTS, _UNKNOWN_QUALITY, np.int8)
        quality[: len(self._quality)] = self._quality
        sha = np.zeros(size, np.uint64)
        sha[: len(self._sha_key)] = self._sha_key
        self._sha_key = sha
        # quality first: a reader that sees the new list table also sees its qualities
        self._quality = quality
        self._list_of = list_of

    def _local_index(self) -> LocalIndex:
        if self._local is None:
            self._local = LocalIndex()
        return self._local


_NO_PDQ = -2  # quality mark of a key that holds a pHash but no PDQ


def _sha_key(sha256: str) -> int:
    """The first 64 bits of a hex SHA-256 (ValueError if it is not hex)."""
    if len(sha256) != 64:
        raise ValueError(f"a SHA-256 has 64 hex digits, not {len(sha256)}")
    return int(sha256[:16], 16)


def _ids(held: int | tuple[int, ...]) -> tuple[int, ...]:
    return held if isinstance(held, tuple) else (held,)


def phash_usable(phash: str | None) -> bool:
    """A 64-bit pHash that carries information: gradients, stripes and checkerboards give
    hashes of nearly all zeros or ones, equal to each other, so they are never matched."""
    if not phash or len(phash) > 16:
        return False
    ones = int(phash, 16).bit_count()
    return PHASH_MIN_BITS <= ones <= 64 - PHASH_MIN_BITS


def _describe(crop_name: str, orientation: int) -> str:
    return crop_name if orientation == 0 else f"{crop_name}, {DIHEDRAL[orientation]}"
