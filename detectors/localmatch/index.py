"""The index of known images' fingerprints (``LocalIndex``): which ones may share a region with a query.

An inverted file over the descriptors of the known images, needing no training: in each of
``TABLES`` tables a descriptor is keyed by a 24-bit "word" (3 of its bytes) and carries a
16-bit "signature" (2 more bytes); tables use disjoint bytes. A query descriptor looks up its
word in each table and keeps postings whose signature differs in at most ``SIGNATURE_BITS``
bits, which drops nearly all chance collisions while keeping most true correspondences (a
copy's descriptors differ from the original's by a few to a few tens of 256 bits over the
transform families, so a 40-bit slice is often intact). Each known image gets one vote per
query descriptor that hits it, in any table and either orientation; the ``SHORTLIST``
best-voted images are verified geometrically (``verification``), most votes first. ORB's 256
tests were chosen for variance and low correlation, so plain byte slices are well-filled
keys. A posting list longer than ``MAX_BUCKET`` (a corner found everywhere, or many copies
of one image in a list) is read at an even stride: the cost stays bounded, chance votes
spread thin, and copies present in every list of the image keep getting votes (skipping
long lists instead would make an image listed many times unfindable).
faiss's binary IVF was not used: it needs centroids trained on a corpus Vigil does not
ship, and cannot remove entries; its binary hash indexes keep each 32-byte code a second
time.

Updates are log-structured, with the merge and compaction rules of ``detectors.segments``
(shared with ``detectors.hashindex``): each add makes a small sorted segment and segments
of similar size are merged, so an entry is re-sorted O(log n) times (``add_many`` builds
one segment at once). Removal forgets the key (its postings are skipped) and a segment
with a quarter of its postings dead is rebuilt. Known fingerprints are kept as their
``to_bytes`` form (38 bytes a point) and decoded for verification. Speed and memory at
100,000 known images: bench/bench_localmatch.py, and the README's "Speed and memory".

Threads: searches never lock. All index state is in an immutable snapshot that writers
(one lock) replace with one assignment; a search sees the index after some complete add
or remove.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from detectors.errors import BadEntryIds
from detectors.localmatch.fingerprints import HEADER_BYTES, KNOWN_POINT_BYTES, Fingerprint, check_fingerprint
from detectors.localmatch.verification import RegionMatch, mirrored_points, one_omp_thread, verify_one
from detectors.segments import Snapshots, compaction_due, merge_tail

# --- index parameters --------------------------------------------------------------

TABLES = 3  # a 24-bit word and a 16-bit signature per table, from disjoint bytes of the descriptor
SIGNATURE_BITS = 2  # a posting counts if its signature differs in at most this many bits
MAX_BUCKET = 32  # postings read from one list at most (longer ones are read at a stride)
SHORTLIST = 8  # best-voted known images (or their mirror images) verified per search
MIN_VOTES = 4

MIN_FRACTION = 0.25  # search default: the shared region must cover this much of the query or the known image
_TABLE_BYTES = 5  # descriptor bytes per table: a 3-byte word, a 2-byte signature
_WORDS = 1 << 24
# Segments with this many postings per table get a direct word table (64 MiB, under 8
# bytes a posting); smaller ones binary-search their sorted words.
_DIRECTORY_MIN = 1 << 23
_NO_KEY = -1


def _words(desc: np.ndarray, table: int) -> tuple[np.ndarray, np.ndarray]:
    """The 24-bit word and 16-bit signature of each descriptor in one table."""
    d = desc[:, _TABLE_BYTES * table : _TABLE_BYTES * (table + 1)].astype(np.uint32)
    word = d[:, 0] | (d[:, 1] << 8) | (d[:, 2] << 16)
    return word, (d[:, 3] | (d[:, 4] << 8)).astype(np.uint16)


@dataclass(frozen=True, eq=False)
class _Segment:
    """Postings of a run of slots [first, last), sorted by word in each table."""

    first: int
    last: int
    words: tuple[np.ndarray, ...]  # per table, sorted uint32 (24-bit words)
    slots: tuple[np.ndarray, ...]  # per table, uint32, in the words' order
    sigs: tuple[np.ndarray, ...]  # per table, uint16
    directory: tuple[np.ndarray, ...] | None  # per table, 2**24 + 1 offsets (large segments only)

    @property
    def postings(self) -> int:
        return int(self.words[0].shape[0]) if self.words else 0

    @property
    def nbytes(self) -> int:
        arrays = [*self.words, *self.slots, *self.sigs, *(self.directory or ())]
        return sum(a.nbytes for a in arrays)

    @classmethod
    def build(
        cls, first: int, last: int, words: list[np.ndarray], slots: list[np.ndarray], sigs: list[np.ndarray]
    ) -> _Segment:
        ws, ss, gs, ds = [], [], [], []
        for w, s, g in zip(words, slots, sigs, strict=False):
            order = np.argsort(w, kind="stable")
            ws.append(w[order])
            ss.append(s[order])
            gs.append(g[order])
            if len(w) >= _DIRECTORY_MIN:  # large: a direct table of where each word starts
                ds.append(np.searchsorted(ws[-1], np.arange(_WORDS + 1, dtype=np.uint32), "left").astype(np.uint32))
        return cls(first, last, tuple(ws), tuple(ss), tuple(gs), tuple(ds) if ds else None)

    @classmethod
    def merge(cls, parts: list[_Segment], alive: np.ndarray | None = None) -> _Segment:
        """One segment holding the parts' postings (of live slots only, if ``alive``)."""
        words, slots, sigs = [], [], []
        for t in range(TABLES):
            w = np.concatenate([p.words[t] for p in parts])
            s = np.concatenate([p.slots[t] for p in parts])
            g = np.concatenate([p.sigs[t] for p in parts])
            if alive is not None:
                keep = alive[s]
                w, s, g = w[keep], s[keep], g[keep]
            words.append(w)
            slots.append(s)
            sigs.append(g)
        return cls.build(parts[0].first, parts[-1].last, words, slots, sigs)

    def lookup(self, table: int, qwords: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where each (sorted) query word's postings start and end."""
        if self.directory is not None:
            d = self.directory[table]
            return d[qwords].astype(np.int64), d[qwords + 1].astype(np.int64)
        w = self.words[table]
        return np.searchsorted(w, qwords, "left"), np.searchsorted(w, qwords, "right")


@dataclass(frozen=True, eq=False)
class LocalState:
    """A ``LocalIndex`` as plain arrays (``LocalIndex.state``): per segment (first slot, end slot,
    per-table words, slots, signatures); the slot table; the known fingerprints' bytes, one
    after another (``fp_ends``: where each ends); dead postings per segment (first slot, count)."""

    segments: tuple[tuple[int, int, tuple[np.ndarray, ...], tuple[np.ndarray, ...], tuple[np.ndarray, ...]], ...]
    slot_keys: np.ndarray
    fp_keys: np.ndarray
    fp_ends: np.ndarray
    fp_data: np.ndarray
    dead: np.ndarray


@dataclass(frozen=True, eq=False)
class _Snapshot:
    segments: tuple[_Segment, ...]
    slot_keys: np.ndarray  # int64, slot -> key or _NO_KEY; removal writes into it in place
    slots: int  # slots handed out so far


def _postings_of(desc: np.ndarray, slot: int) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    words, slots, sigs = [], [], []
    for t in range(TABLES):
        w, g = _words(desc, t)
        words.append(w)
        sigs.append(g)
        slots.append(np.full(len(w), slot, np.uint32))
    return words, slots, sigs


class LocalIndex:
    """Known images' local fingerprints; finds the ones a query shares a region with.

    ``add`` keeps ``fp.as_known()`` (``KNOWN_KEYPOINTS`` points, no mirror descriptors)
    in its compact byte form; ``search`` votes through the inverted file, verifies the
    best-voted candidates with ``verify``'s checks and returns the verified matches, best
    (most inliers) first. Safe for concurrent searches with occasional adds and removes.
    """

    def __init__(self) -> None:
        self._snapshots = Snapshots(_Snapshot((), np.full(1024, _NO_KEY, np.int64), 0))
        self._fps: dict[int, bytes] = {}  # key -> known fingerprint bytes
        self._slot_of: dict[int, int] = {}  # key -> slot (writers only)
        self._dead: dict[int, int] = {}  # segment first slot -> dead postings (writers only)

    # -- updates --------------------------------------------------------------------

    def add(self, key: int, fp: Fingerprint) -> None:
        """Adds (or replaces) the known image ``key``."""
        self.add_many([(key, fp)])

    def add_many(self, items: Iterable[tuple[int, Fingerprint]]) -> None:
        """Adds many known images at once (one segment: much faster than one by one)."""
        checked = []
        for key, fp in items:
            checked.append((_check_key(key), check_fingerprint(fp).as_known()))
        if not checked:
            return
        with self._snapshots.lock:
            for key, _ in checked:
                if key in self._slot_of:
                    self._remove_locked(key)
            snap = self._snapshots.current
            first = snap.slots
            slot_keys = snap.slot_keys
            need = first + len(checked)
            if need > len(slot_keys):
                grown = np.full(max(need, 2 * len(slot_keys)), _NO_KEY, np.int64)
                grown[: len(slot_keys)] = slot_keys
                slot_keys = grown
            words: list[list[np.ndarray]] = [[] for _ in range(TABLES)]
            slots: list[list[np.ndarray]] = [[] for _ in range(TABLES)]
            sigs: list[list[np.ndarray]] = [[] for _ in range(TABLES)]
            last_by_key: dict[int, int] = {}
            for i, (key, _fp) in enumerate(checked):
                last_by_key[key] = i  # the same key twice in one call: the last one wins
            for i, (key, fp) in enumerate(checked):
                slot = first + i
                if last_by_key[key] != i:
                    continue
                w, s, g = _postings_of(fp.descriptors, slot)
                for t in range(TABLES):
                    words[t].append(w[t])
                    slots[t].append(s[t])
                    sigs[t].append(g[t])
                self._fps[key] = fp.to_bytes()
                self._slot_of[key] = slot
                slot_keys[slot] = key
            seg = _Segment.build(
                first,
                need,
                [np.concatenate(x) for x in words],
                [np.concatenate(x) for x in slots],
                [np.concatenate(x) for x in sigs],
            )

            def merge(older: _Segment, newer: _Segment) -> _Segment:
                dead = self._dead.pop(older.first, 0) + self._dead.pop(newer.first, 0)
                return _Segment.merge([older, newer], slot_keys != _NO_KEY if dead else None)

            # each posting is re-sorted O(log n) times (detectors.segments.merge_tail)
            segments = merge_tail([*snap.segments, seg], lambda g: g.postings, merge)
            self._snapshots.publish(_Snapshot(tuple(segments), slot_keys, need))

    def remove(self, key: int) -> bool:
        """Forgets the known image ``key``; False if it was not there."""
        key = _check_key(key)
        with self._snapshots.lock:
            return self._remove_locked(key)

    def _remove_locked(self, key: int) -> bool:
        slot = self._slot_of.pop(key, None)
        if slot is None:
            return False
        snap = self._snapshots.current
        snap.slot_keys[slot] = _NO_KEY
        data = self._fps.pop(key, b"")
        removed_points = max(0, len(data) - HEADER_BYTES) // KNOWN_POINT_BYTES
        segments = list(snap.segments)
        for i, seg in enumerate(segments):
            if seg.first <= slot < seg.last:
                dead = self._dead.get(seg.first, 0) + removed_points * TABLES
                if compaction_due(dead, seg.postings):  # rebuild it from its live slots
                    self._dead.pop(seg.first, None)
                    segments[i] = _Segment.merge([seg], snap.slot_keys != _NO_KEY)
                    self._snapshots.publish(_Snapshot(tuple(segments), snap.slot_keys, snap.slots))
                else:
                    self._dead[seg.first] = dead
                break
        return True

    # -- snapshots (detectors/index_snapshot.py) ---------------------------------------

    def state(self) -> LocalState:
        """The built index as plain arrays, consistent with some complete add or remove: what a
        snapshot keeps so a new process skips the build. Cheap (segments are immutable)."""
        with self._snapshots.lock:
            snap = self._snapshots.current
            keys = np.fromiter(self._fps, np.int64, len(self._fps))
            blobs = [self._fps[int(k)] for k in keys]
            dead = sorted(self._dead.items())
            slot_keys = snap.slot_keys[: snap.slots].copy()  # removals write into it in place
            segments = snap.segments
        sizes = np.fromiter((len(b) for b in blobs), np.int64, len(blobs))
        return LocalState(
            segments=tuple((g.first, g.last, g.words, g.slots, g.sigs) for g in segments),
            slot_keys=slot_keys,
            fp_keys=keys,
            fp_ends=np.cumsum(sizes),
            fp_data=np.frombuffer(b"".join(blobs), np.uint8),
            dead=np.array(dead, np.int64).reshape(-1, 2),
        )

    @classmethod
    def from_state(cls, st: LocalState) -> LocalIndex:
        """The index ``state`` gave, without building it again. Raises ``ValueError`` when the
        arrays do not fit together (a damaged snapshot)."""
        slots = int(st.slot_keys.shape[0])
        n = int(st.fp_keys.shape[0])
        if st.fp_ends.shape != (n,) or (n and (int(st.fp_ends[-1]) != st.fp_data.shape[0])):
            raise ValueError("the fingerprint table does not match its data")
        sizes = np.diff(st.fp_ends, prepend=0)
        # every known fingerprint is a header and whole points (``as_known``: no mirror descriptors)
        if n and (np.any(sizes < HEADER_BYTES) or np.any((sizes - HEADER_BYTES) % KNOWN_POINT_BYTES)):
            raise ValueError("a fingerprint's length is not a header and whole points")
        live = st.slot_keys[st.slot_keys != _NO_KEY]
        if len(live) != n or set(live.tolist()) != set(st.fp_keys.tolist()):
            raise ValueError("the slot table and the fingerprints name different keys")
        segments = []
        at = 0
        for first, last, words, seg_slots, sigs in st.segments:
            if first != at or not first < last <= slots or not len(words) == len(seg_slots) == len(sigs) == TABLES:
                raise ValueError("the segments do not cover the slots in order")
            for w, s, g in zip(words, seg_slots, sigs, strict=True):
                if not w.shape == s.shape == g.shape or w.ndim != 1:
                    raise ValueError("a segment's postings have unequal lengths")
                if len(s) and (int(s.min()) < first or int(s.max()) >= last):
                    raise ValueError("a segment points outside its slots")
                if len(w) > 1 and bool(np.any(w[1:] < w[:-1])):
                    raise ValueError("a segment's words are not sorted")
            big = len(words[0]) >= _DIRECTORY_MIN
            ds = (
                tuple(
                    np.searchsorted(w, np.arange(_WORDS + 1, dtype=np.uint32), "left").astype(np.uint32) for w in words
                )
                if big
                else None
            )
            segments.append(
                _Segment(
                    int(first),
                    int(last),
                    tuple(w.astype(np.uint32, copy=False) for w in words),
                    tuple(s.astype(np.uint32, copy=False) for s in seg_slots),
                    tuple(g.astype(np.uint16, copy=False) for g in sigs),
                    ds,
                )
            )
            at = last
        if at != slots:
            raise ValueError("the segments do not cover every slot")
        index = cls()
        table = np.full(max(1024, slots), _NO_KEY, np.int64)
        table[:slots] = st.slot_keys
        data = st.fp_data.tobytes()
        starts = np.concatenate([[0], st.fp_ends[:-1]]) if n else st.fp_ends
        index._fps = {
            int(k): data[int(a) : int(b)]
            for k, a, b in zip(st.fp_keys.tolist(), starts.tolist(), st.fp_ends.tolist(), strict=True)
        }
        index._slot_of = {int(k): int(i) for i, k in enumerate(st.slot_keys.tolist()) if k != _NO_KEY}
        index._dead = {int(a): int(b) for a, b in st.dead.tolist()}
        index._snapshots.publish(_Snapshot(tuple(segments), table, slots))
        return index

    # -- queries ----------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._fps)

    def __contains__(self, key: object) -> bool:
        return key in self._fps

    @property
    def memory_bytes(self) -> int:
        """Bytes held: fingerprints, postings, slot table and per-key bookkeeping (estimated)."""
        snap = self._snapshots.current
        fps = sum(len(b) + 33 for b in list(self._fps.values()))
        return fps + sum(s.nbytes for s in snap.segments) + snap.slot_keys.nbytes + 200 * len(self._fps)

    def fingerprint_of(self, key: int) -> Fingerprint | None:
        data = self._fps.get(key)
        return None if data is None else Fingerprint.from_bytes(data)

    def candidates(self, query: Fingerprint, *, shortlist: int = SHORTLIST) -> list[tuple[int, bool, int]]:
        """The best-voted known images as (key, mirrored, votes), most votes first; unverified."""
        check_fingerprint(query)
        snap = self._snapshots.current
        slots, mirrored, votes = _votes(snap, query)
        keep = votes >= MIN_VOTES
        slots, mirrored, votes = slots[keep], mirrored[keep], votes[keep]
        if len(slots) > shortlist:
            top = np.argpartition(-votes, shortlist - 1)[:shortlist]
            slots, mirrored, votes = slots[top], mirrored[top], votes[top]
        out = []
        for slot, m, v in zip(slots.tolist(), mirrored.tolist(), votes.tolist(), strict=False):
            key = int(snap.slot_keys[slot])
            if key != _NO_KEY:
                out.append((key, bool(m), int(v)))
        out.sort(key=lambda c: (-c[2], c[0], c[1]))
        return out

    def search(self, query: Fingerprint, *, min_fraction: float = MIN_FRACTION, limit: int = 5) -> list[RegionMatch]:
        """Verified matches of the query, most inliers first, at most ``limit``.

        A match counts if its region covers at least ``min_fraction`` of the query or of
        the known image (``RegionMatch.fraction``): a crop fills much of the query, a
        screenshot or collage holds much of the known image. The ``SHORTLIST`` best-voted
        known images are verified, most votes first, until ``limit`` are found.
        """
        check_fingerprint(query)
        number = isinstance(min_fraction, (int, float)) and not isinstance(min_fraction, bool)
        if not number or not 0.0 <= min_fraction <= 1.0:
            raise ValueError(f"min_fraction must be a number from 0 to 1, not {min_fraction!r}")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a whole number of at least 1, not {limit!r}")
        if not len(query) or not self._fps:
            return []
        found: dict[int, RegionMatch] = {}
        with one_omp_thread():
            mirrored_pts = None
            for key, mirrored, _ in self.candidates(query):
                if len(found) >= limit:
                    break
                data = self._fps.get(key)
                if data is None:  # removed meanwhile
                    continue
                cand = Fingerprint.from_bytes(data)
                if mirrored:
                    if query.mirror_descriptors is None:  # never: mirrored votes come from them
                        continue
                    if mirrored_pts is None:
                        mirrored_pts = mirrored_points(query)
                    match = verify_one(mirrored_pts[0], query.mirror_descriptors, mirrored_pts[1], query, cand, True)
                else:
                    match = verify_one(query.keypoints, query.descriptors, query.angles, query, cand, False)
                if match is None or match.fraction < min_fraction:
                    continue
                old = found.get(key)
                if old is None or match.inliers > old.inliers:
                    found[key] = RegionMatch(
                        key, match.inliers, match.match_fraction, match.source_fraction, match.transform, match.mirrored
                    )
        return sorted(found.values(), key=lambda m: (-m.inliers, -m.fraction, m.key))[:limit]


_EMPTY = np.zeros(0, np.int64)


def _votes(snap: _Snapshot, query: Fingerprint) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slots hit by the query's descriptors, whether through the mirror descriptors, and
    their votes: one per query descriptor that hits the slot in any table."""
    desc = query.descriptors
    if query.mirror_descriptors is not None:
        desc = np.concatenate([desc, query.mirror_descriptors])
    n, direct = len(desc), len(query)
    if not n or not snap.segments:
        return _EMPTY, _EMPTY.astype(bool), _EMPTY
    hits = []
    for t in range(TABLES):
        qw, qs = _words(desc, t)
        order = np.argsort(qw)  # sorted keys make searchsorted walk memory in order
        qw, qs = qw[order], qs[order]
        for seg in snap.segments:
            lo, hi = seg.lookup(t, qw)
            size = hi - lo
            # a long list (a common corner, or many copies of one image) is read at an
            # even stride: at most MAX_BUCKET postings, spread over the whole list
            step = np.maximum(1, -(-size // MAX_BUCKET))
            cnt = -(-size // step)
            total = int(cnt.sum())
            if not total:
                continue
            qrow = np.repeat(np.arange(n), cnt)
            pos = np.repeat(lo, cnt) + (np.arange(total) - np.repeat(np.cumsum(cnt) - cnt, cnt)) * np.repeat(step, cnt)
            ok = np.bitwise_count(seg.sigs[t][pos] ^ qs[qrow]) <= SIGNATURE_BITS
            if ok.any():
                hits.append(seg.slots[t][pos[ok]].astype(np.int64) * n + order[qrow[ok]])
    if not hits:
        return _EMPTY, _EMPTY.astype(bool), _EMPTY
    pairs = np.unique(np.concatenate(hits))  # one vote per (slot, query descriptor)
    ids, votes = np.unique((pairs // n) * 2 + (pairs % n >= direct), return_counts=True)
    return ids // 2, (ids % 2).astype(bool), votes


def _check_key(key: object) -> int:
    if isinstance(key, bool) or not isinstance(key, (int, np.integer)):
        raise BadEntryIds(f"a key must be an integer, not {type(key).__name__}")
    key = int(key)
    if not 0 <= key < (1 << 63):
        raise BadEntryIds(f"key {key} is out of range: keys are 0 to 2**63 - 1")
    return key
