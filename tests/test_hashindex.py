"""HammingIndex against a brute-force scan, plus updates, input checks and threads."""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest

import detectors.hashindex as hashindex
import detectors.multiindex as multiindex
from detectors.errors import BadEntryIds, BadHash, BadRadius, VigilError
from detectors.hashindex import HammingIndex, IndexMatch


def random_codes(rng: np.random.Generator, n: int, nbytes: int = 32) -> np.ndarray:
    return rng.integers(0, 256, (n, nbytes), dtype=np.uint8)


def flipped(code: np.ndarray, nbits: int, rng: np.random.Generator) -> np.ndarray:
    out = code.copy()
    for bit in rng.choice(8 * len(code), nbits, replace=False):
        out[bit // 8] ^= np.uint8(1 << (bit % 8))
    return out


def brute_force(ids: np.ndarray, codes: np.ndarray, query: np.ndarray, radius: int) -> list[IndexMatch]:
    dist = np.unpackbits(codes ^ query, axis=1).sum(axis=1)
    hits = np.flatnonzero(dist <= radius)
    return sorted((IndexMatch(int(ids[i]), int(dist[i])) for i in hits), key=lambda m: (m.distance, m.entry_id))


def planted_data(rng: np.random.Generator, n: int, nbytes: int, queries: int, max_flip: int):
    """Random codes with, around each query, one planted code at every distance 0..max_flip."""
    codes = random_codes(rng, n, nbytes)
    qs = random_codes(rng, queries, nbytes)
    rows = rng.choice(n, queries * (max_flip + 1), replace=False).reshape(queries, -1)
    for q in range(queries):
        for d, row in enumerate(rows[q]):
            codes[row] = flipped(qs[q], d, rng)
    ids = rng.choice(10 * n, n, replace=False).astype(np.int64)  # unordered, sparse ids
    return ids, codes, qs


@pytest.fixture
def index_only(monkeypatch):
    """Make flat scans look ruinous, so indexed segments always search through their tables."""
    monkeypatch.setattr(multiindex, "COST_PER_FLAT_ROW", 1e12)


def check_against_brute_force(index, ids, codes, qs, radii):
    for q in qs:
        for radius in radii:
            assert index.search(q, radius) == brute_force(ids, codes, q, radius), radius


# --- exactness -----------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 40, 600])
def test_small_list_is_scanned_flat_and_exact(n):
    rng = np.random.default_rng(n)
    ids, codes, qs = planted_data(rng, max(n, 40), 32, 1, 39)
    ids, codes = ids[:n], codes[:n]
    index = HammingIndex()
    index.add(ids, codes)
    assert index._snapshots.current.segments == ()  # below the threshold: the flat buffer only
    check_against_brute_force(index, ids, codes, [*qs, codes[0]], [0, 1, 7, 30, 31, 32, 33, 256])


@pytest.mark.parametrize("n, threshold", [(150, 1), (700, 64), (6000, 1000)])
def test_indexed_segments_agree_with_brute_force(index_only, n, threshold):
    rng = np.random.default_rng(n)
    ids, codes, qs = planted_data(rng, n, 32, 3, 40)
    index = HammingIndex(mih_threshold=threshold)
    index.add(ids, codes)
    assert index._snapshots.current.segments and all(s.tables is not None for s in index._snapshots.current.segments)
    check_against_brute_force(index, ids, codes, [*qs, codes[5]], [0, 1, 2, 15, 30, 31, 32, 40, 90])


def test_planted_neighbours_are_found_exactly_at_the_pdq_threshold(index_only):
    rng = np.random.default_rng(31)
    ids, codes, qs = planted_data(rng, 20000, 32, 5, 36)
    index = HammingIndex(mih_threshold=1000)
    index.add(ids, codes)
    for q in qs:
        got = index.search(q, 31)
        assert [m.distance for m in got] == list(range(32))  # 0..31 in, 32..36 out
        assert got == brute_force(ids, codes, q, 31)


def test_overfull_buckets_fall_back_to_an_exact_flat_scan(monkeypatch):
    """Near-duplicates crowd the buckets the uniform cost model expects to be small."""
    monkeypatch.setattr(multiindex, "COST_PER_FLAT_ROW", 100.0)  # tables planned, scan bounded
    scans = []
    real_scan = hashindex._scan
    monkeypatch.setattr(hashindex, "_scan", lambda *a: scans.append(1) or real_scan(*a))
    rng = np.random.default_rng(5)
    centre = random_codes(rng, 1)[0]
    codes = np.stack([flipped(centre, int(d), rng) for d in rng.integers(0, 40, 3000)])
    ids = np.arange(3000, dtype=np.int64)
    index = HammingIndex(mih_threshold=100)
    index.add(ids, codes)
    far = random_codes(rng, 1)[0]
    check_against_brute_force(index, ids, codes, [far], [0, 31])
    assert scans == []  # a query away from the cluster uses the tables
    check_against_brute_force(index, ids, codes, [centre, codes[7]], [0, 12, 31])
    assert scans  # the cluster's buckets overflowed into flat scans


def test_incremental_adds_build_segments_that_stay_exact(index_only):
    rng = np.random.default_rng(9)
    ids, codes, qs = planted_data(rng, 1500, 32, 2, 35)
    index = HammingIndex(mih_threshold=32)
    for lo in range(0, 1500, 100):  # batches, then single entries
        index.add(ids[lo : lo + 100], codes[lo : lo + 100]) if lo < 1000 else [
            index.add_hex(int(i), c.tobytes().hex())
            for i, c in zip(ids[lo : lo + 100], codes[lo : lo + 100], strict=False)
        ]
    assert len(index) == 1500
    # merged binary-counter style: far fewer segments than flushes
    assert 1 <= len(index._snapshots.current.segments) <= 8
    check_against_brute_force(index, ids, codes, [*qs, codes[1234]], [0, 10, 31, 33])


def test_64_bit_codes(index_only):
    rng = np.random.default_rng(64)
    ids, codes, qs = planted_data(rng, 3000, 8, 3, 14)
    index = HammingIndex(bits=64, mih_threshold=500)
    index.add(ids, codes)
    check_against_brute_force(index, ids, codes, qs, [0, 4, 8, 10, 12, 20])
    phash = codes[3].tobytes().hex()
    assert len(phash) == 16
    assert index.search(phash, 0) == [IndexMatch(int(ids[3]), 0)]


def test_results_are_sorted_by_distance_then_id():
    rng = np.random.default_rng(1)
    base = random_codes(rng, 1)[0]
    codes = np.stack([flipped(base, d, rng) for d in (3, 0, 3, 1, 3)])
    index = HammingIndex()
    index.add(np.array([50, 40, 10, 30, 20]), codes)
    got = index.search(base, 31)
    assert [(m.distance, m.entry_id) for m in got] == [(0, 40), (1, 30), (3, 10), (3, 20), (3, 50)]


def test_empty_index_and_whole_space_radius():
    index = HammingIndex()
    assert len(index) == 0 and index.search("0" * 64, 256) == []
    rng = np.random.default_rng(2)
    index.add(np.arange(10), random_codes(rng, 10))
    assert sorted(m.entry_id for m in index.search("f" * 64, 256)) == list(range(10))


def test_search_many_matches_single_searches():
    rng = np.random.default_rng(3)
    ids, codes, qs = planted_data(rng, 2000, 32, 4, 33)
    index = HammingIndex(mih_threshold=500)
    index.add(ids, codes)
    expected = [index.search(q, 31) for q in qs]
    assert index.search_many(qs, 31) == expected
    assert index.search_many([q.tobytes().hex() for q in qs], 31) == expected
    assert all(len(e) == 32 for e in expected)


# --- updates -------------------------------------------------------------------------------------


@pytest.mark.parametrize("threshold", [1, 100, 8192])
def test_remove_makes_entries_unfindable_and_readding_works(index_only, threshold):
    rng = np.random.default_rng(threshold)
    ids, codes, qs = planted_data(rng, 1200, 32, 1, 31)
    index = HammingIndex(mih_threshold=threshold)
    index.add(ids, codes)
    near = index.search(qs[0], 31)
    gone = [m.entry_id for m in near[::2]]
    assert index.remove(gone + gone[:3] + [-1, 10**12]) == len(gone)  # duplicates and unknown ids ignored
    assert len(index) == 1200 - len(gone)
    assert index.search(qs[0], 31) == near[1::2]
    assert index.remove(gone) == 0
    # re-add the same ids with the same codes: back where we started
    rows = [int(np.flatnonzero(ids == g)[0]) for g in gone]
    index.add(ids[rows], codes[rows])
    assert index.search(qs[0], 31) == near
    assert len(index) == 1200


def test_heavy_removal_compacts_and_stays_exact(index_only):
    rng = np.random.default_rng(4)
    ids, codes, qs = planted_data(rng, 4000, 32, 2, 35)
    index = HammingIndex(mih_threshold=1000)
    index.add(ids, codes)
    before = index.memory_bytes
    keep = rng.random(4000) < 0.4
    assert index.remove(ids[~keep]) == int((~keep).sum())
    assert index.memory_bytes < before  # dead rows were compacted away
    check_against_brute_force(index, ids[keep], codes[keep], qs, [0, 20, 31, 32])
    assert index.remove(iter(ids[keep].tolist())) == int(keep.sum())
    assert len(index) == 0 and index.search(qs[0], 256) == []


def test_adding_an_existing_id_replaces_its_code():
    rng = np.random.default_rng(6)
    old, new = random_codes(rng, 2)
    index = HammingIndex(mih_threshold=1)
    index.add(np.array([7]), old[None, :])
    index.add(np.array([7, 8]), np.stack([new, old]))
    assert len(index) == 2
    assert index.search(old, 0) == [IndexMatch(8, 0)]
    assert index.search(new, 0) == [IndexMatch(7, 0)]


def test_hex_input_matches_array_input():
    rng = np.random.default_rng(8)
    code = random_codes(rng, 1)[0]
    index = HammingIndex()
    index.add_hex(11, code.tobytes().hex().upper())
    assert index.search(code, 0) == [IndexMatch(11, 0)]
    near = flipped(code, 5, rng)
    assert index.search(near.tobytes().hex(), 5) == [IndexMatch(11, 5)]
    assert index.search(near.tobytes().hex(), 4) == []


def test_memory_grows_with_entries():
    rng = np.random.default_rng(10)
    index = HammingIndex(mih_threshold=100)
    empty = index.memory_bytes
    index.add(np.arange(5000), random_codes(rng, 5000))
    assert index.memory_bytes >= empty + 5000 * 32


# --- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "hex_hash",
    ["", "abc", "0" * 63, "0" * 65, "g" * 64, "0" * 62 + " 0", "0x" + "0" * 62, "0" * 16],
)
def test_bad_hex_is_refused(hex_hash):
    index = HammingIndex()
    with pytest.raises(BadHash) as err:
        index.add_hex(1, hex_hash)
    assert "64 hex digits" in str(err.value)
    with pytest.raises(BadHash):
        index.search(hex_hash, 3)
    assert len(index) == 0


@pytest.mark.parametrize(
    "codes",
    [
        np.zeros((3, 32), np.int64),
        np.zeros((3, 256), np.uint8),  # unpacked bits
        np.zeros((3, 256), bool),
        np.zeros((3, 31), np.uint8),
        np.zeros(32, np.uint8),  # one code without the batch axis
        [[0] * 32] * 3,
    ],
)
def test_bad_code_arrays_are_refused_and_change_nothing(codes):
    index = HammingIndex()
    index.add(np.array([1]), np.zeros((1, 32), np.uint8))
    with pytest.raises(BadHash):
        index.add(np.arange(3), codes)
    assert len(index) == 1 and index.search("0" * 64, 0) == [IndexMatch(1, 0)]


@pytest.mark.parametrize(
    "query", [np.zeros((1, 32), np.uint8), np.zeros(31, np.uint8), np.zeros(32, np.int8), b"\0" * 32, 5]
)
def test_bad_queries_are_refused(query):
    with pytest.raises(BadHash):
        HammingIndex().search(query, 3)


@pytest.mark.parametrize(
    "ids",
    [
        np.array([1, 2]),
        np.array([1.0, 2.0, 3.0]),
        np.array([1, 2, 2]),
        np.array([[1, 2, 3]]),
        np.array(["a", "b", "c"]),
        np.array([2**63, 1, 2], np.uint64),
    ],
)
def test_bad_ids_are_refused_and_change_nothing(ids):
    index = HammingIndex()
    with pytest.raises(BadEntryIds):
        index.add(ids, np.zeros((3, 32), np.uint8))
    assert len(index) == 0


def test_bad_single_ids_and_removals_are_refused():
    index = HammingIndex()
    for bad in (1.5, "7", True, 2**64):
        with pytest.raises(BadEntryIds):
            index.add_hex(bad, "0" * 64)
    index.add_hex(1, "0" * 64)
    with pytest.raises(BadEntryIds):
        index.remove(["x"])
    with pytest.raises(BadEntryIds):
        index.remove([1.5])
    with pytest.raises(BadEntryIds):
        index.remove(1)  # type: ignore[arg-type]
    assert len(index) == 1


@pytest.mark.parametrize("radius", [-1, 1.5, "31", True, None])
def test_bad_radius_is_refused(radius):
    with pytest.raises(BadRadius):
        HammingIndex().search("0" * 64, radius)


@pytest.mark.parametrize("bits", [0, 100, 255, -64])
def test_bad_bit_count_is_refused(bits):
    with pytest.raises(BadHash):
        HammingIndex(bits=bits)


def test_errors_are_value_errors_in_the_vigil_hierarchy():
    for cls in (BadHash, BadEntryIds, BadRadius):
        assert issubclass(cls, ValueError) and issubclass(cls, VigilError)


# --- threads -------------------------------------------------------------------------------------


def test_concurrent_searches_see_whole_updates(index_only):
    """Readers search while a writer adds and removes batches near the query.

    Every add puts a whole batch of codes within the radius; every remove takes one
    whole batch away. Whatever a reader sees must be exactly the union of some set of
    whole batches that existed together, never half a batch, each entry at its own
    code's distance.
    """
    rng = np.random.default_rng(12)
    query = random_codes(rng, 1)[0]
    background = random_codes(rng, 3000)
    index = HammingIndex(mih_threshold=200)  # flushes and merges happen during the reads
    index.add(np.arange(10**6, 10**6 + 3000), background)
    batch_size, batches = 7, 40
    batch_ids = [np.arange(b * batch_size, (b + 1) * batch_size) for b in range(batches)]
    batch_codes = [
        np.stack([flipped(query, int(d), rng) for d in rng.integers(0, 31, batch_size)]) for _ in range(batches)
    ]
    true_distance = {
        int(i): int(np.unpackbits(c ^ query).sum())
        for ids, codes in zip(batch_ids, batch_codes, strict=False)
        for i, c in zip(ids, codes, strict=False)
    }
    seen: list[frozenset[int]] = []
    wrong: list[IndexMatch] = []
    failures: list[BaseException] = []
    done = threading.Event()

    def reader():
        try:
            while not done.is_set():
                found = index.search(query, 31)
                wrong.extend(m for m in found if true_distance.get(m.entry_id) != m.distance)
                seen.append(frozenset(m.entry_id for m in found))
        except BaseException as exc:  # reported below
            failures.append(exc)

    def let_readers_run():
        target = len(seen) + 3
        while len(seen) < target and not failures:
            done.wait(0.0001)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often, inside the writer's updates too
    for t in threads:
        t.start()
    try:
        for b in range(batches):
            index.add(batch_ids[b], batch_codes[b])
            if b % 3 == 2:
                index.remove(batch_ids[b - 2].tolist())
            let_readers_run()
    finally:
        done.set()
        for t in threads:
            t.join()
        sys.setswitchinterval(switch)
    assert not failures and not wrong
    assert len(seen) > batches  # the readers really ran alongside the writer
    whole = {b: frozenset(batch_ids[b].tolist()) for b in range(batches)}
    for ids in seen:
        present = {b for b in range(batches) if ids & whole[b]}
        assert all(whole[b] <= ids for b in present), "a reader saw part of a batch"
        assert ids == frozenset().union(*(whole[b] for b in present))
    removed = {b - 2 for b in range(batches) if b % 3 == 2}
    final = frozenset(m.entry_id for m in index.search(query, 31))
    assert final == frozenset().union(*(whole[b] for b in range(batches) if b not in removed))
