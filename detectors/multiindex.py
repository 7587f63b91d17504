"""Multi-index hashing tables (Norouzi et al.): the part of exact Hamming search that finds candidates.

Apart from ``detectors.hashindex`` because it is a self-contained algorithm with its own cost
model and tests of exactness: the index decides what to keep and when to rebuild (segments,
ids, removals), these tables decide how one immutable array of codes is searched.

The code is cut into ``m`` substrings of ``b`` bits, and one table per substring maps each
``b``-bit value to the rows having it (a counting-sort directory of bucket offsets plus a
4-byte posting per row). If every substring of a code differed from the query's by more than
``r_j`` bits, the codes would differ by at least ``sum(r_j + 1)`` bits; so with
``sum(r_j + 1) > d`` every code within ``d`` shares at least one substring within ``r_j`` of
the query's. The search enumerates those neighbours and gathers the rows in their buckets;
the caller checks each with a full popcount, so the search is exact by construction. A cost
model picks ``b`` and ``m`` for the list's size within a memory budget (11 tables of 21 bits
for 10 M codes), spreads the ``r_j`` greedily per query radius (``Tables.plan``), and tells
the caller to scan flat when that is cheaper: for large radii, or when near-duplicate
clusters overfill the buckets.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import combinations
from math import comb

import numpy as np

# Rough per-item costs in nanoseconds on one core, measured with bench/bench_index.py;
# they only steer choices (table layout, index or flat scan), never correctness.
COST_PER_KEY = 12.0  # one directory lookup
COST_PER_CANDIDATE = 40.0  # one posting read, code gather and popcount (cache misses)
COST_PER_FLAT_ROW = 1.5  # one row of a flat scan (faiss), per 256 bits

# Index memory beyond the codes and ids, in bytes per entry (directories + postings).
TABLE_BYTES_PER_ENTRY = 56
MAX_SUBSTRING_BITS = 24  # group_rows sorts keys of at most 24 bits

BUILD_CHUNK_ROWS = 1 << 16


def substrings(words: np.ndarray, start: int, width: int) -> np.ndarray:
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


def group_rows(keys: np.ndarray, width: int) -> np.ndarray:
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


def flat_cost(n: int, nwords: int) -> float:
    return COST_PER_FLAT_ROW * n * nwords / 4


def choose_widths(n: int, bits: int, target_radius: int) -> tuple[int, ...]:
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
class Plan:
    """How one segment searches at one radius: flat, or these neighbour keys."""

    flat: bool
    tables: np.ndarray | None = None  # table of each neighbour key
    masks: np.ndarray | None = None  # flip mask of each neighbour key


@dataclass(frozen=True)
class Tables:
    starts: tuple[int, ...]  # first bit of each substring
    widths: tuple[int, ...]
    stride: int  # directory slots per table (2 ** max width)
    directory: np.ndarray  # bucket start offsets into postings; slot j*stride + key
    postings: np.ndarray  # row numbers, bucket by bucket, table by table
    plans: dict[int, Plan] = field(default_factory=dict, compare=False)

    @staticmethod
    def build(words: np.ndarray, widths: tuple[int, ...]) -> Tables:
        n = len(words)
        starts = tuple(int(s) for s in np.cumsum((0,) + widths[:-1]))
        stride = 1 << max(widths)
        m = len(widths)
        directory = np.empty(m * stride + 1, np.uint32 if m * n < 2**32 else np.int64)
        postings = np.empty(m * n, np.uint32 if n < 2**32 else np.int64)
        directory[0] = 0
        for j, (start, width) in enumerate(zip(starts, widths, strict=False)):
            keys = substrings(words, start, width)
            counts = np.bincount(keys, minlength=stride)
            # Slots past 2**width stay at the table's end: empty buckets.
            directory[j * stride + 1 : (j + 1) * stride + 1] = np.cumsum(counts) + j * n
            postings[j * n : (j + 1) * n] = group_rows(keys, width)
            del keys, counts
        return Tables(starts, widths, stride, directory, postings)

    def plan(self, n: int, nwords: int, radius: int) -> Plan:
        plan = self.plans.get(radius)
        if plan is None:  # a race computes it twice, harmlessly
            plan = self._make_plan(n, nwords, radius)
            self.plans[radius] = plan
        return plan

    def _make_plan(self, n: int, nwords: int, radius: int) -> Plan:
        spread = _spread_radii(self.widths, n, radius)
        if spread is None or spread[1] >= flat_cost(n, nwords):
            return Plan(flat=True)
        used = [(j, r) for j, r in enumerate(spread[0]) if r >= 0]
        masks = [_flip_masks(self.widths[j], r) for j, r in used]
        tables = [np.full(len(mk), j, np.int64) for (j, _), mk in zip(used, masks, strict=False)]
        return Plan(flat=False, tables=np.concatenate(tables), masks=np.concatenate(masks))

    def candidates(self, query: int, plan: Plan, limit: float) -> np.ndarray | None:
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
