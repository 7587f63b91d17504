"""Exact Hamming radius search over perceptual hashes (256-bit PDQ, 64-bit pHash).

``HammingIndex`` answers "every entry within distance d of this hash" exactly: no
approximate misses. It holds block/allow lists from a few entries to tens of millions
and takes adds and removes by entry id without rebuilding everything.

How it searches (chosen by measuring with bench/bench_index.py, one core, shared
machine, so compared within one run):

* Lists below ``mih_threshold`` (64 K) entries, and recent additions, are scanned
  flat with faiss's popcount kernel (``faiss.hamming_range_search``) straight over
  the index's own arrays: about 1.3 ns per 256-bit code, 8-9x faster than the same
  scan in numpy (``np.bitwise_count``); a search of a few hundred entries takes 10-20 us.
* Larger lists use multi-index hashing (Norouzi et al.), written here in numpy:
  the code is cut into ``m`` substrings of ``b`` bits, and one table per substring
  maps each ``b``-bit value to the rows having it (a counting-sort directory of
  bucket offsets plus a 4-byte posting per row). If every substring of a code
  differed from the query's by more than ``r_j`` bits, the codes would differ by at
  least ``sum(r_j + 1)`` bits; so with ``sum(r_j + 1) > d`` every code within ``d``
  shares at least one substring within ``r_j`` of the query's. The search
  enumerates those neighbours, gathers the rows in their buckets and checks each
  with a full popcount (faiss's ``hammings``): exact by construction. A cost model
  picks ``b`` and ``m`` for the list's size within a memory budget (11 tables of 21
  bits for 10 M codes), spreads the ``r_j`` greedily per query radius, and falls
  back to a flat scan when that is cheaper: for large radii, or when near-duplicate
  clusters overfill the buckets.
* Measured (one core, radius 31, 10 M random PDQ codes): load 10 s, RSS +910 MB
  (peak +1.27 GB while building), median 0.56 ms, p99 0.9 ms, 100 % of planted
  neighbours and none beyond 31; faiss ``IndexBinaryFlat`` in the same run: 16.6 ms
  (30x slower). faiss ``IndexBinaryMultiHash`` (16 tables x 16 bits, ``nflip=1``,
  exact at 31) needed 2.8 GB and 31 s to load, was slower than the flat scan
  (32 ms), cannot remove entries, and like all faiss binary range searches keeps
  distances strictly below the radius. ``IndexBinaryHash`` is fast but not exact
  at 31 (67 % recall).

Updates are log-structured: new entries go to a small flat buffer; a full buffer
becomes an immutable indexed segment, and segments of similar size are merged, so
each entry is re-indexed O(log n) times. Removal marks rows dead in their segment
(filtered from results); a segment that is a quarter dead is rebuilt from its live
rows. Adding an id that is already present replaces its code.

Thread safety: readers never lock. All state lives in an immutable snapshot that
writers (serialised by one lock) replace with a single attribute assignment, so a
search sees exactly the index after some complete ``add``/``remove``, and many
searches run at once. Writers wait for each other, never for readers; a merge or
compaction makes that one write slow (seconds for millions of entries).

Codes are packed bytes, most significant bit first, as ``bytes.fromhex`` of the
hash's hex form gives them; only their equality of convention matters for distances.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from itertools import combinations
from math import comb

import faiss
import numpy as np

from detectors.errors import BadEntryIds, BadHash, BadRadius
from detectors.segments import Snapshots, compaction_due, merge_tail

# Rough per-item costs in nanoseconds on one core, measured with bench/bench_index.py;
# they only steer choices (table layout, index or flat scan), never correctness.
COST_PER_KEY = 12.0  # one directory lookup
COST_PER_CANDIDATE = 40.0  # one posting read, code gather and popcount (cache misses)
COST_PER_FLAT_ROW = 1.5  # one row of a flat scan (faiss), per 256 bits

# Index memory beyond the codes and ids, in bytes per entry (directories + postings).
TABLE_BYTES_PER_ENTRY = 56
MAX_SUBSTRING_BITS = 24  # _group_rows sorts keys of at most 24 bits

# The radius a list is usually searched at; the table layout is tuned for it.
DEFAULT_TARGET_RADIUS = {256: 31, 64: 10}

BUILD_CHUNK_ROWS = 1 << 16

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


def _substrings(words: np.ndarray, start: int, width: int) -> np.ndarray:
    """Bits [start, start + width) of each code as uint32; bit i is bit i % 64 of word i // 64."""
    out = np.empty(len(words), np.uint32)
    # In chunks that stay in cache: about 5x faster than whole-column passes.
    for lo in range(0, len(words), BUILD_CHUNK_ROWS):
        part = words[lo : lo + BUILD_CHUNK_ROWS]
        k, off = divmod(start, 64)
        value = part[:, k] >> np.uint64(off)
        if off + width > 64:
            value |= part[:, k + 1] << np.uint64(64 - off)
        value &= np.uint64((1 << width) - 1)
        out[lo : lo + BUILD_CHUNK_ROWS] = value
    return out


def _group_rows(keys: np.ndarray, width: int) -> np.ndarray:
    """Row numbers ordered by key: a stable LSD radix sort in 8- and 16-bit passes.

    numpy's stable argsort is a radix sort only for 8- and 16-bit keys; on uint32
    keys it falls back to timsort, about twice as slow for 10 M rows.
    """
    if width <= 16:
        return np.argsort(keys.astype(np.uint16), kind="stable")
    low_bits = width - 16  # <= 8 since widths are at most 24
    order = np.argsort((keys & ((1 << low_bits) - 1)).astype(np.uint8), kind="stable")
    order = order.astype(np.uint32 if len(keys) < 2**32 else np.int64)  # halves the build's peak
    high = (keys >> low_bits).astype(np.uint16)[order]
    return order[np.argsort(high, kind="stable")]


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


@lru_cache(maxsize=256)
def _flip_masks(width: int, radius: int) -> np.ndarray:
    """Every ``width``-bit mask with at most ``radius`` bits set, fewest bits first."""
    masks = [0]
    for k in range(1, radius + 1):
        masks.extend(sum(1 << i for i in c) for c in combinations(range(width), k))
    out = np.array(masks, dtype=np.int64)
    out.setflags(write=False)
    return out


# --- table layout and query plans ----------------------------------------------------


def _spread_radii(widths: Sequence[int], n: int, radius: int) -> tuple[list[int], float] | None:
    """Per-table radii with sum(r_j + 1) = radius + 1 at the least estimated cost.

    Each step adds one to the table whose next radius costs least; a table's step
    costs grow with its radius, so this greedy choice is optimal. None if the
    tables cannot cover the radius (it exceeds what they index).
    """
    radii = [-1] * len(widths)
    per_key = [COST_PER_KEY + COST_PER_CANDIDATE * n / (1 << b) for b in widths]
    heap = [(per_key[j], j) for j in range(len(widths))]
    heapq.heapify(heap)
    total = 0.0
    for _ in range(radius + 1):
        if not heap:
            return None
        cost, j = heapq.heappop(heap)
        total += cost
        radii[j] += 1
        if radii[j] < widths[j]:
            heapq.heappush(heap, (comb(widths[j], radii[j] + 1) * per_key[j], j))
    return radii, total


def _flat_cost(n: int, nwords: int) -> float:
    return COST_PER_FLAT_ROW * n * nwords / 4


def _choose_widths(n: int, bits: int, target_radius: int) -> tuple[int, ...]:
    """Substring widths for ``n`` codes: cheapest at the target radius within the memory budget."""
    budget = TABLE_BYTES_PER_ENTRY * max(n, 1)
    best: tuple[float, tuple[int, ...]] | None = None
    for b in range(4, min(MAX_SUBSTRING_BITS, bits) + 1):
        for m in range(1, min(bits // b, target_radius + 1) + 1):
            if m * (4 * n + 4 * (1 << b)) > budget:
                break
            spread = _spread_radii([b] * m, n, target_radius)
            if spread is not None and (best is None or spread[1] < best[0]):
                best = (spread[1], (b,) * m)
    return best[1] if best else (min(bits, 8),)


@dataclass(frozen=True)
class _Plan:
    """How one segment searches at one radius: flat, or these neighbour keys."""

    flat: bool
    tables: np.ndarray | None = None  # table of each neighbour key
    masks: np.ndarray | None = None  # flip mask of each neighbour key


@dataclass(frozen=True)
class _Tables:
    starts: tuple[int, ...]  # first bit of each substring
    widths: tuple[int, ...]
    stride: int  # directory slots per table (2 ** max width)
    directory: np.ndarray  # bucket start offsets into postings; slot j*stride + key
    postings: np.ndarray  # row numbers, bucket by bucket, table by table
    plans: dict[int, _Plan] = field(default_factory=dict, compare=False)

    @staticmethod
    def build(words: np.ndarray, widths: tuple[int, ...]) -> _Tables:
        n = len(words)
        starts = tuple(int(s) for s in np.cumsum((0,) + widths[:-1]))
        stride = 1 << max(widths)
        m = len(widths)
        directory = np.empty(m * stride + 1, np.uint32 if m * n < 2**32 else np.int64)
        postings = np.empty(m * n, np.uint32 if n < 2**32 else np.int64)
        directory[0] = 0
        for j, (start, width) in enumerate(zip(starts, widths, strict=False)):
            keys = _substrings(words, start, width)
            counts = np.bincount(keys, minlength=stride)
            # Slots past 2**width stay at the table's end: empty buckets.
            directory[j * stride + 1 : (j + 1) * stride + 1] = np.cumsum(counts) + j * n
            postings[j * n : (j + 1) * n] = _group_rows(keys, width)
            del keys, counts
        return _Tables(starts, widths, stride, directory, postings)

    def plan(self, n: int, nwords: int, radius: int) -> _Plan:
        plan = self.plans.get(radius)
        if plan is None:  # a race computes it twice, harmlessly
            plan = self._make_plan(n, nwords, radius)
            self.plans[radius] = plan
        return plan

    def _make_plan(self, n: int, nwords: int, radius: int) -> _Plan:
        spread = _spread_radii(self.widths, n, radius)
        if spread is None or spread[1] >= _flat_cost(n, nwords):
            return _Plan(flat=True)
        used = [(j, r) for j, r in enumerate(spread[0]) if r >= 0]
        masks = [_flip_masks(self.widths[j], r) for j, r in used]
        tables = [np.full(len(mk), j, np.int64) for (j, _), mk in zip(used, masks, strict=False)]
        return _Plan(flat=False, tables=np.concatenate(tables), masks=np.concatenate(masks))

    def candidates(self, query: int, plan: _Plan, limit: float) -> np.ndarray | None:
        """Rows sharing a near substring with ``query``; None if over ``limit`` (scan flat)."""
        assert plan.tables is not None and plan.masks is not None
        base = np.array(
            [
                j * self.stride + ((query >> s) & ((1 << b) - 1))
                for j, (s, b) in enumerate(zip(self.starts, self.widths, strict=False))
            ],
            dtype=np.int64,
        )
        slots = base[plan.tables] ^ plan.masks  # masks only touch a table's own key bits
        begin = self.directory[slots].astype(np.int64)
        sizes = self.directory[slots + 1].astype(np.int64) - begin
        ends = np.cumsum(sizes)
        total = int(ends[-1]) if len(ends) else 0
        if total > limit:
            return None
        # positions begin[i] .. begin[i] + sizes[i] of every bucket, in one array
        positions = np.repeat(begin - (ends - sizes), sizes) + np.arange(total)
        return self.postings[positions].astype(np.intp)  # take() is fastest with intp

    @property
    def nbytes(self) -> int:
        return self.directory.nbytes + self.postings.nbytes


# --- segments --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Segment:
    """Codes that are searched together; immutable once published."""

    ids: np.ndarray  # int64, or int32 when all fit; ascending when ``tables`` is set
    words: np.ndarray  # (n, nwords) uint64
    tables: _Tables | None = None
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
        widths = _choose_widths(len(ids), 64 * words.shape[1], target_radius)
        tables = _Tables.build(words, widths)
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
                limit = _flat_cost(n, nwords) / COST_PER_CANDIDATE
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
        with self._snapshots.writing() as state:
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
        with self._snapshots.writing() as state:
            before = state.size
            ids = np.sort(ids)
            ids = ids[np.concatenate(([True], ids[1:] != ids[:-1]))]
            return before - self._publish(self._drop(ids)).size

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
