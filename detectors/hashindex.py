"""Exact Hamming radius search over perceptual hashes (256-bit PDQ, 64-bit pHash).

``HammingIndex`` answers "every entry within distance d of this hash" exactly: no
approximate misses. It holds block/allow lists from a few entries to tens of millions
and takes adds and removes by entry id without rebuilding everything.

How it searches (chosen by measuring with bench/bench_index.py, one core, shared
machine, so compared within one run; the figures are in the README's "Speed and memory"):

* Lists below ``mih_threshold`` (64 K) entries, and recent additions, are scanned
  flat with faiss's popcount kernel (``faiss.hamming_range_search``) straight over
  the index's own arrays, several times faster than the same scan in numpy.
* Larger lists use multi-index hashing (``detectors.multiindex``), written in numpy: the
  tables find the rows that share a near substring with the query, and each is checked
  here with a full popcount (faiss's ``hammings``); when the tables would gather more rows
  than a flat scan reads, the segment is scanned flat instead.
* faiss's own binary indexes were measured and not used: ``IndexBinaryFlat`` is the flat
  scan at every size; ``IndexBinaryMultiHash`` took more memory and time to load than these
  tables, searched slower than the flat scan and cannot remove entries; ``IndexBinaryHash``
  is not exact at 31; and all faiss binary range searches keep distances strictly below
  the radius.

Updates follow the log-structured scheme of ``detectors.segments`` (shared with the
local-feature index): new entries go to a small flat buffer; a full buffer becomes an
immutable indexed segment, and segments of similar size are merged, so each entry is
re-indexed O(log n) times. Removal marks rows dead in their segment (filtered from
results); a segment that is a quarter dead is rebuilt from its live rows. Adding an id that
is already present replaces its code.

Thread safety: readers never lock. All state lives in an immutable snapshot that
writers (serialised by one lock) replace with a single attribute assignment, so a
search sees exactly the index after some complete ``add``/``remove``, and many
searches run at once. Writers wait for each other, never for readers; a merge or
compaction makes that one write slow (seconds for millions of entries).

Codes are packed bytes, most significant bit first, as ``bytes.fromhex`` of the
hash's hex form gives them; only their equality of convention matters for distances.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

import faiss
import numpy as np

from detectors.errors import BadEntryIds, BadHash, BadRadius
from detectors.multiindex import COST_PER_CANDIDATE, Tables, choose_widths, flat_cost
from detectors.segments import Snapshots, compaction_due, merge_tail

# The radius a list is usually searched at; the table layout is tuned for it.
DEFAULT_TARGET_RADIUS = {256: 31, 64: 10}


_INT32 = np.iinfo(np.int32)


@dataclass(frozen=True, slots=True)  # slots: a third cheaper to make, for big result sets
class IndexMatch:
    entry_id: int
    distance: int


# --- input checks -------------------------------------------------------------


def _check_radius(radius: object) -> int:
    if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or radius < 0:
        raise BadRadius(radius)
    return int(radius)


def _hex_to_bytes(hex_hash: object, nbytes: int) -> bytes:
    if not isinstance(hex_hash, str):
        raise BadHash(f"expected a hex string, got {type(hex_hash).__name__}")
    try:
        raw = bytes.fromhex(hex_hash) if len(hex_hash) == 2 * nbytes else None
    except ValueError:
        raw = None
    if raw is None or len(raw) != nbytes:
        shown = hex_hash if len(hex_hash) <= 80 else hex_hash[:77] + "..."
        raise BadHash(
            f"{shown!r} is not {2 * nbytes} hex digits ({8 * nbytes}-bit hash); "
            f"check that the list holds hashes of this kind"
        )
    return raw


def _check_codes(codes: object, nbytes: int) -> np.ndarray:
    """``codes`` as a C-contiguous (n, nbytes) uint8 array."""
    if not isinstance(codes, np.ndarray):
        raise BadHash(f"expected a numpy uint8 array, got {type(codes).__name__}")
    if codes.dtype != np.uint8:
        raise BadHash(f"expected dtype uint8 (packed bytes), got {codes.dtype}; pack bit arrays with np.packbits")
    if codes.ndim != 2 or codes.shape[1] != nbytes:
        raise BadHash(f"expected shape (n, {nbytes}) for {8 * nbytes}-bit codes, got {codes.shape}")
    return np.ascontiguousarray(codes)


def _check_query(code: object, nbytes: int) -> bytes:
    if isinstance(code, str):
        return _hex_to_bytes(code, nbytes)
    if isinstance(code, np.ndarray):
        if code.ndim != 1:
            raise BadHash(f"expected one code of shape ({nbytes},), got shape {code.shape}")
        return _check_codes(code[None, :], nbytes).tobytes()
    raise BadHash(f"expected a hex string or a uint8 array, got {type(code).__name__}")


def _check_ids(entry_ids: object, n: int | None = None) -> np.ndarray:
    ids = np.asarray(entry_ids)
    if ids.ndim != 1 or (ids.size and ids.dtype.kind not in "iu"):
        raise BadEntryIds(f"expected a 1-d array of integers, got {ids.dtype} with shape {ids.shape}")
    if ids.dtype == np.uint64 and ids.size and int(ids.max()) > np.iinfo(np.int64).max:
        raise BadEntryIds("ids above 2**63 - 1 do not fit in int64")
    if n is not None and len(ids) != n:
        raise BadEntryIds(f"{len(ids)} ids for {n} codes; give one id per code")
    return ids.astype(np.int64, copy=False)


# --- substrings and popcounts -----------------------------------------------------


def _as_words(codes: np.ndarray) -> np.ndarray:
    """(n, nbytes) uint8 -> (n, nbytes // 8) little-endian uint64 view."""
    return codes.view("<u8")


def _distances(codes: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Bit distances (int32) of C-contiguous (k, nbytes) uint8 codes to one query.

    faiss's popcount kernel, about 10x faster than the same in numpy passes.
    """
    out = np.empty(len(codes), np.int32)
    if len(codes):
        faiss.hammings(  # type: ignore[attr-defined]  # SWIG functions come through a loader mypy cannot follow
            faiss.swig_ptr(query), faiss.swig_ptr(codes), 1, len(codes), codes.shape[1], faiss.swig_ptr(out)
        )
    return out


def _scan(codes: np.ndarray, query: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, distances) of C-contiguous (n, nbytes) uint8 codes within ``radius`` of ``query``."""
    found = faiss.RangeSearchResult(1)
    # faiss keeps distances strictly below its radius
    faiss.hamming_range_search(  # type: ignore[attr-defined]  # as in _distances
        faiss.swig_ptr(query), faiss.swig_ptr(codes), 1, len(codes), radius + 1, codes.shape[1], found
    )
    k = int(faiss.rev_swig_ptr(found.lims, 2)[1])
    if not k:
        return np.empty(0, np.int64), np.empty(0, np.int32)
    rows = faiss.rev_swig_ptr(found.labels, k).astype(np.int64)
    dist = faiss.rev_swig_ptr(found.distances, k).astype(np.int32)
    return rows, dist


# --- segments --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Segment:
    """Codes that are searched together; immutable once published."""

    ids: np.ndarray  # int64, or int32 when all fit; ascending when ``tables`` is set
    words: np.ndarray  # (n, nwords) uint64
    tables: Tables | None = None
    dead: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # sorted rows

    @staticmethod
    def build(ids: np.ndarray, words: np.ndarray, target_radius: int) -> _Segment:
        """An indexed segment; rows are put in id order so removal can binary-search."""
        if not _is_ascending(ids):
            order = np.argsort(ids, kind="stable")
            ids = ids[order]
            words = _take_rows(words, order).view("<u8")
        if len(ids) and _INT32.min <= ids[0] and ids[-1] <= _INT32.max:
            ids = ids.astype(np.int32)  # list ids are usually small: half the memory
        ids = np.ascontiguousarray(ids)
        words = np.ascontiguousarray(words)
        widths = choose_widths(len(ids), 64 * words.shape[1], target_radius)
        tables = Tables.build(words, widths)
        tables.plan(len(ids), words.shape[1], target_radius)  # ready for the usual radius
        return _Segment(ids, words, tables)

    @property
    def alive(self) -> int:
        return len(self.ids) - len(self.dead)

    def rows_of(self, ids: np.ndarray) -> np.ndarray:
        """Live rows holding any of ``ids`` (sorted unique), ascending."""
        if self.tables is not None:
            if self.ids.dtype == np.int32:  # search in int32: no int64 copy of self.ids
                ids = ids[(ids >= _INT32.min) & (ids <= _INT32.max)].astype(np.int32)
            pos = np.searchsorted(self.ids, ids)
            inside = pos < len(self.ids)
            pos = pos[inside]
            rows = pos[self.ids[pos] == ids[inside]]
        else:
            rows = np.flatnonzero(np.isin(self.ids, ids))
        if len(self.dead):
            rows = rows[~np.isin(rows, self.dead)]
        return np.asarray(rows, np.int64)

    def search(self, query: int, qbytes: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, distances) of live codes within ``radius``."""
        n, nwords = self.words.shape
        rows = None
        if self.tables is not None and n:
            plan = self.tables.plan(n, nwords, radius)
            if not plan.flat:
                # clustered data can fill buckets: past the flat scan's cost, scan flat
                limit = flat_cost(n, nwords) / COST_PER_CANDIDATE
                rows = self.tables.candidates(query, plan, limit)
        if rows is None:
            return self._live(*_scan(self.words.view(np.uint8), qbytes, radius))
        dist = _distances(_take_rows(self.words, rows), qbytes)
        keep = dist <= radius
        rows, dist = rows[keep], dist[keep]
        rows, first = np.unique(rows, return_index=True)  # a row can sit in several buckets
        return self._live(rows.astype(np.int64), dist[first])

    def _live(self, rows: np.ndarray, dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if len(self.dead) and len(rows):
            keep = ~np.isin(rows, self.dead)
            rows, dist = rows[keep], dist[keep]
        return rows, dist

    def live_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, words) of the live rows (shared, not copied, when none are dead)."""
        if not len(self.dead):
            return self.ids, self.words
        keep = np.ones(len(self.ids), bool)
        keep[self.dead] = False
        return self.ids[keep], self.words[keep]

    @property
    def nbytes(self) -> int:
        tables = self.tables.nbytes if self.tables is not None else 0
        return self.ids.nbytes + self.words.nbytes + self.dead.nbytes + tables


def _is_ascending(ids: np.ndarray) -> bool:
    """Strictly ascending: the usual order of ids read from a database, and unique."""
    return len(ids) < 2 or bool(np.all(ids[1:] > ids[:-1]))


def _take_rows(words: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The rows as a C-contiguous (k, nbytes) uint8 array."""
    # Gathering whole rows through a void view is ~10x faster than words[rows].
    nbytes = 8 * words.shape[1]
    whole = words.view(np.dtype((np.void, nbytes))).reshape(-1)
    return np.take(whole, rows).view(np.uint8).reshape(-1, nbytes)


class _Buffer:
    """Recent additions, scanned flat; grows in place (readers see only their prefix)."""

    def __init__(self, nwords: int, capacity: int = 64) -> None:
        self.ids = np.empty(capacity, np.int64)
        self.words = np.empty((capacity, nwords), np.uint64)
        self.used = 0

    def append(self, ids: np.ndarray, words: np.ndarray) -> None:
        need = self.used + len(ids)
        if need > len(self.ids):
            # New arrays: snapshots keep reading the old ones.
            cap = max(need, 2 * len(self.ids))
            new_ids = np.empty(cap, np.int64)
            new_words = np.empty((cap, self.words.shape[1]), np.uint64)
            new_ids[: self.used] = self.ids[: self.used]
            new_words[: self.used] = self.words[: self.used]
            self.ids, self.words = new_ids, new_words
        self.ids[self.used : need] = ids
        self.words[self.used : need] = words
        self.used = need

    def view(self) -> _Segment:
        return _Segment(self.ids[: self.used], self.words[: self.used])

    @property
    def nbytes(self) -> int:
        return self.ids.nbytes + self.words.nbytes


@dataclass(frozen=True)
class _State:
    segments: tuple[_Segment, ...]  # largest first
    buffer: _Segment  # prefix view of the live buffer
    size: int


# --- the index ----------------------------------------------------------------------------


class HammingIndex:
    """Exact radius search over ``bits``-bit codes with add and remove by entry id.

    ``mih_threshold``: lists smaller than this are only scanned flat; a buffer of
    new entries this full becomes an indexed segment (tests set it low to index
    small data). ``target_radius``: the radius searches usually use (31 for PDQ,
    10 for pHash); tables are laid out for it, and any radius stays exact.
    Entry ids that all fit in int32 are stored in 4 bytes.
    """

    def __init__(
        self,
        bits: int = 256,
        *,
        mih_threshold: int = 65536,
        target_radius: int | None = None,
    ) -> None:
        if isinstance(bits, bool) or not isinstance(bits, int) or bits <= 0 or bits % 64:
            raise BadHash(f"bits must be a positive multiple of 64 (256 for PDQ, 64 for pHash), got {bits!r}")
        if mih_threshold < 1:
            raise ValueError(f"mih_threshold must be at least 1, got {mih_threshold}")
        self.bits = bits
        self.nbytes = bits // 8
        self.nwords = bits // 64
        self.mih_threshold = mih_threshold
        self.target_radius = _check_radius(
            DEFAULT_TARGET_RADIUS.get(bits, bits // 8) if target_radius is None else target_radius
        )
        self._buffer = _Buffer(self.nwords)
        self._snapshots = Snapshots(_State((), self._buffer.view(), 0))

    # -- reading ---------------------------------------------------------------

    def __len__(self) -> int:
        return self._snapshots.current.size

    @property
    def memory_bytes(self) -> int:
        """Approximate resident size of the index's arrays."""
        state = self._snapshots.current
        return sum(s.nbytes for s in state.segments) + self._buffer.nbytes

    def search(self, code: np.ndarray | str, radius: int) -> list[IndexMatch]:
        """Every entry within ``radius`` bits of ``code``, nearest first, then by id."""
        radius = _check_radius(radius)
        raw = _check_query(code, self.nbytes)
        return self._search(self._snapshots.current, raw, radius)

    def search_many(self, codes: np.ndarray | Sequence[str], radius: int) -> list[list[IndexMatch]]:
        """``search`` for each code (rows of an (n, bits//8) uint8 array, or hex strings)."""
        radius = _check_radius(radius)
        if isinstance(codes, np.ndarray):
            raws = [row.tobytes() for row in _check_codes(codes, self.nbytes)]
        else:
            raws = [_check_query(c, self.nbytes) for c in codes]
        state = self._snapshots.current  # one snapshot for the whole batch
        return [self._search(state, raw, radius) for raw in raws]

    def _search(self, state: _State, raw: bytes, radius: int) -> list[IndexMatch]:
        radius = min(radius, self.bits)  # beyond that everything matches; bounds plan caches
        query = int.from_bytes(raw, "little")  # bit i is bit i % 64 of little-endian word i // 64
        qbytes = np.frombuffer(raw, np.uint8)
        found_ids, found_dist = [], []
        for segment in (*state.segments, state.buffer):
            if not len(segment.ids):
                continue
            rows, dist = segment.search(query, qbytes, radius)
            if len(rows):
                found_ids.append(segment.ids[rows])
                found_dist.append(dist)
        if not found_ids:
            return []
        ids = np.concatenate(found_ids)
        dist = np.concatenate(found_dist)
        order = np.lexsort((ids, dist))
        return [IndexMatch(int(i), int(d)) for i, d in zip(ids[order], dist[order], strict=False)]

    # -- writing ---------------------------------------------------------------

    def add(self, entry_ids: np.ndarray, codes: np.ndarray) -> None:
        """Add codes under entry ids (one per row); an id already present gets the new code."""
        codes = _check_codes(codes, self.nbytes)
        ids = _check_ids(entry_ids, len(codes))
        if not len(ids):
            return
        ascending = ids if _is_ascending(ids) else np.sort(ids)
        if len(ascending) > 1 and bool(np.any(ascending[1:] == ascending[:-1])):
            raise BadEntryIds("the same id appears twice in one add; give each entry one code")
        words = _as_words(codes)
        with self._snapshots.lock:
            state = self._snapshots.current
            segments = self._drop(ascending) if state.size else state.segments
            if self._buffer.used + len(ids) < self.mih_threshold:
                self._buffer.append(ids, words)
            else:
                # A big batch or a full buffer becomes an indexed segment.
                pending = self._buffer.view()
                ids = np.concatenate([pending.ids, ids])
                words = np.concatenate([pending.words, words])
                self._buffer = _Buffer(self.nwords)
                segments = self._merge((*segments, _Segment.build(ids, words, self.target_radius)))
            self._publish(segments)

    def add_hex(self, entry_id: int, hex_hash: str) -> None:
        raw = _hex_to_bytes(hex_hash, self.nbytes)
        if isinstance(entry_id, bool) or not isinstance(entry_id, (int, np.integer)):
            raise BadEntryIds(f"expected an integer id, got {entry_id!r}")
        if not np.iinfo(np.int64).min <= entry_id <= np.iinfo(np.int64).max:
            raise BadEntryIds(f"id {entry_id} does not fit in int64")
        self.add(np.array([entry_id], np.int64), np.frombuffer(raw, np.uint8)[None, :])

    def remove(self, entry_ids: Iterable[int]) -> int:
        """Remove entries by id; unknown ids are ignored. Returns how many were removed."""
        try:
            ids = _check_ids(entry_ids if isinstance(entry_ids, np.ndarray) else list(entry_ids))
        except TypeError:
            raise BadEntryIds(f"expected an iterable of integer ids, got {type(entry_ids).__name__}") from None
        if not len(ids):
            return 0
        with self._snapshots.lock:
            state = self._snapshots.current
            before = state.size
            ids = np.sort(ids)
            ids = ids[np.concatenate(([True], ids[1:] != ids[:-1]))]
            return before - self._publish(self._drop(ids)).size

    def live(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, codes as an (n, bits//8) uint8 array) of every entry held: what a snapshot keeps
        (detectors/index_snapshot.py); ``add`` of them builds the index again in one batch."""
        with self._snapshots.lock:
            parts = [s.live_rows() for s in (*self._snapshots.current.segments, self._buffer.view())]
        ids = np.concatenate([np.asarray(i, np.int64) for i, _ in parts]) if parts else np.zeros(0, np.int64)
        words = np.concatenate([w for _, w in parts]) if parts else np.zeros((0, self.nwords), np.uint64)
        return ids, np.ascontiguousarray(words).view(np.uint8).reshape(-1, self.nbytes)

    def _drop(self, ids: np.ndarray) -> tuple[_Segment, ...]:
        """The segments without the live entries whose ids are in ``ids`` (sorted unique).

        Also drops them from the writer's buffer (a new one, so published snapshots
        keep theirs); the caller publishes the result.
        """
        segments = []
        for segment in self._snapshots.current.segments:
            rows = segment.rows_of(ids)
            kept: _Segment | None = segment
            if len(rows):
                kept = replace(segment, dead=np.union1d(segment.dead, rows))
                if compaction_due(len(kept.dead), len(kept.ids)):
                    kept = self._compact(kept)
            if kept is not None:
                segments.append(kept)
        pending = self._buffer.view()
        rows = pending.rows_of(ids)
        if len(rows):
            keep = np.ones(len(pending.ids), bool)
            keep[rows] = False
            fresh = _Buffer(self.nwords, max(64, len(self._buffer.ids)))
            fresh.append(pending.ids[keep], pending.words[keep])
            self._buffer = fresh
        return tuple(sorted(segments, key=lambda s: -s.alive))

    def _publish(self, segments: tuple[_Segment, ...]) -> _State:
        return self._snapshots.publish(
            _State(segments, self._buffer.view(), sum(s.alive for s in segments) + self._buffer.used)
        )

    def _compact(self, segment: _Segment) -> _Segment | None:
        ids, words = segment.live_rows()
        if not len(ids):
            return None
        return _Segment.build(ids, words, self.target_radius)

    def _merge(self, segments: tuple[_Segment, ...]) -> tuple[_Segment, ...]:
        """Merge the newest segment into older ones of similar size (``detectors.segments.merge_tail``)."""

        def merge(older: _Segment, newer: _Segment) -> _Segment:
            ids_a, words_a = older.live_rows()
            ids_b, words_b = newer.live_rows()
            ids, words = np.concatenate([ids_a, ids_b]), np.concatenate([words_a, words_b])
            return _Segment.build(ids, words, self.target_radius)

        merged = merge_tail(sorted(segments, key=lambda s: -s.alive), lambda s: s.alive, merge)
        return tuple(sorted(merged, key=lambda s: -s.alive))
