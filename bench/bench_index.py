"""Benchmark of exact Hamming radius search over PDQ hashes (detectors/hashindex.py).

Every (implementation, size, data set) runs in its own child process pinned to one
CPU with OMP_NUM_THREADS=1 and faiss limited to one thread, so the memory figure is
that process's RSS growth while loading and the latencies are single-core.

Data: uniformly random 256-bit codes, or clustered codes (groups of near-duplicates
around shared centres, as real lists of re-encoded images have). Into both, each
query gets planted entries at distances 0..radius and a few just above it; recall
counts the planted entries found (must be 100%) and "leaks" counts planted entries
beyond the radius that were returned (must be 0). The machine is shared, so compare
implementations through the ratios printed against faiss-flat from the same run.

    .venv/bin/python bench/bench_index.py --sizes 1000000
    .venv/bin/python bench/bench_index.py --sizes 100000 --impls vigil,faiss-flat
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

# this checkout's detectors/, not whichever one the environment has installed
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BITS = 256
NBYTES = BITS // 8
ABOVE = (32, 33, 36, 48)  # planted just beyond radius 31: must not be returned
# vigil: HammingIndex as configured by default; vigil-flat: the same with no tables (its
# flat path, faiss's popcount kernel over the index's own arrays); numpy-flat: brute
# force with np.bitwise_count; faiss-*: faiss binary indexes.
IMPLS = ("vigil", "vigil-flat", "numpy-flat", "faiss-flat", "faiss-mih", "faiss-hash")


# --- data ---------------------------------------------------------------------------


def flip(code: np.ndarray, nbits: int, rng: np.random.Generator) -> np.ndarray:
    out = code.copy()
    for bit in rng.choice(BITS, nbits, replace=False):
        out[bit // 8] ^= np.uint8(1 << (bit % 8))
    return out


def make_data(n: int, kind: str, queries: int, radius: int, seed: int = 7):
    """(ids, codes, query codes, planted {query: (inside ids, outside ids)})."""
    rng = np.random.default_rng(seed)
    if kind == "random":
        codes = rng.integers(0, 256, (n, NBYTES), dtype=np.uint8)
    else:
        # "clustered": groups of ~100 around n/100 centres, each byte of a member with one
        # bit flipped with probability 2/5 (~13 bits in all); "dense": groups of ~1000,
        # probability 1/8 (~4 bits). Members share most substrings, as re-encoded copies do.
        size, flip_in_8 = {"clustered": (100, 3.2), "dense": (1000, 1.0)}[kind]
        centres = rng.integers(0, 256, (max(1, n // size), NBYTES), dtype=np.uint8)
        codes = np.empty((n, NBYTES), np.uint8)
        for lo in range(0, n, 1 << 20):
            hi = min(n, lo + (1 << 20))
            chunk = centres[rng.integers(0, len(centres), hi - lo)]
            bit = rng.integers(0, 8, chunk.shape, dtype=np.uint8)
            hit = rng.integers(0, 80, chunk.shape, dtype=np.uint8) < int(flip_in_8 * 10)
            codes[lo:hi] = chunk ^ np.where(hit, np.left_shift(np.uint8(1), bit), np.uint8(0))
    ids = np.arange(n, dtype=np.int64)
    # Queries: half near a stored code (hot: its cluster if clustered), half fresh.
    qcodes = np.empty((queries, NBYTES), np.uint8)
    planted: dict[int, tuple[list[int], list[int]]] = {}
    slots = rng.choice(n, queries * (radius + 1 + len(ABOVE)), replace=False)
    s = 0
    for q in range(queries):
        if kind != "random" and q % 2 == 0:
            qcodes[q] = flip(codes[rng.integers(n)], 8, rng)
        else:
            qcodes[q] = rng.integers(0, 256, NBYTES, dtype=np.uint8)
        inside, outside = [], []
        for d in (*range(radius + 1), *ABOVE):
            row = int(slots[s])
            s += 1
            codes[row] = flip(qcodes[q], d, rng)
            (inside if d <= radius else outside).append(row)
        planted[q] = (inside, outside)
    return ids, codes, qcodes, planted


# --- implementations ----------------------------------------------------------------


class Vigil:
    def __init__(self, flat: bool = False) -> None:
        from detectors.hashindex import HammingIndex

        self.index = HammingIndex(BITS, mih_threshold=10**12) if flat else HammingIndex(BITS)

    def load(self, ids, codes):
        self.index.add(ids, codes)

    def query(self, code, radius):
        return [m.entry_id for m in self.index.search(code, radius)]

    def stats(self):
        segs = self.index._snapshots.current.segments
        return {
            "memory_bytes": self.index.memory_bytes,
            "tables": [list(s.tables.widths) for s in segs if s.tables is not None],
        }


class NumpyFlat:
    """Brute force in numpy: XOR, np.bitwise_count and a sum per row, in cache-sized chunks."""

    def load(self, ids, codes):
        self.ids = ids.copy()
        self.words = codes.view("<u8").copy()

    def query(self, code, radius):
        q = code.view("<u8")
        out = []
        for lo in range(0, len(self.words), 16384):
            part = self.words[lo : lo + 16384]
            counts = np.bitwise_count(part ^ q)
            dist = counts[:, 0].astype(np.uint16)
            for w in range(1, counts.shape[1]):
                dist += counts[:, w]
            out.extend(self.ids[lo + np.flatnonzero(dist <= radius)].tolist())
        return out

    def stats(self):
        return {}


class FaissRange:
    """faiss binary index; range_search keeps distances < radius, hence radius + 1."""

    def __init__(self, kind: str) -> None:
        import faiss

        faiss.omp_set_num_threads(1)
        if kind == "faiss-flat":
            self.index = faiss.IndexBinaryIDMap2(faiss.IndexBinaryFlat(BITS))
        elif kind == "faiss-mih":
            # 16 tables x 16 bits, one flip each: sum(nflip + 1) = 32 > 31, so exact at 31
            inner = faiss.IndexBinaryMultiHash(BITS, 16, 16)
            inner.nflip = 1
            self.index = inner  # cannot remove ids: rows are the ids here
        else:
            # one 32-bit table with up to 2 flips: fast but NOT exact at radius 31
            inner = faiss.IndexBinaryHash(BITS, 32)
            inner.nflip = 2
            self.index = inner
        self.kind = kind

    def load(self, ids, codes):
        if isinstance(self.index, __import__("faiss").IndexBinaryIDMap2) or self.kind == "faiss-hash":
            self.index.add_with_ids(codes, ids)
        else:
            self.index.add(codes)

    def query(self, code, radius):
        _, _, labels = self.index.range_search(code[None, :], radius + 1)
        return labels.tolist()

    def stats(self):
        return {}


def make_impl(name: str):
    if name == "vigil":
        return Vigil()
    if name == "vigil-flat":
        return Vigil(flat=True)
    if name == "numpy-flat":
        return NumpyFlat()
    return FaissRange(name)


# --- one run (child process) ---------------------------------------------------------------


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def run_one(impl: str, n: int, kind: str, queries: int, radius: int) -> dict:
    ids, codes, qcodes, planted = make_data(n, kind, queries, radius)
    index = make_impl(impl)
    gc.collect()
    rss0 = rss_bytes()
    peak = [rss0]
    loading = threading.Event()

    def sample():  # peak RSS while loading, every 20 ms
        while not loading.wait(0.02):
            peak.append(rss_bytes())

    sampler = threading.Thread(target=sample)
    sampler.start()
    t0 = time.perf_counter()
    index.load(ids, codes)
    load_s = time.perf_counter() - t0
    loading.set()
    sampler.join()
    gc.collect()
    rss1 = rss_bytes()
    # the first query pays one-off costs (query plans, page faults); time it apart
    t = time.perf_counter()
    index.query(np.zeros(NBYTES, np.uint8), radius)
    first_ms = (time.perf_counter() - t) * 1e3
    found = wanted = leaks = results = 0
    lat = []
    for q in range(queries):
        t = time.perf_counter()
        got = index.query(qcodes[q], radius)
        lat.append(time.perf_counter() - t)
        got = set(got)
        inside, outside = planted[q]
        wanted += len(inside)
        found += len(got.intersection(inside))
        leaks += len(got.intersection(outside))
        results += len(got)
    lat_ms = np.array(lat) * 1e3
    return {
        "impl": impl,
        "n": n,
        "data": kind,
        "queries": queries,
        "radius": radius,
        "load_s": round(load_s, 2),
        "rss_delta_mb": round((rss1 - rss0) / 1e6, 1),
        "peak_delta_mb": round((max(peak + [rss1]) - rss0) / 1e6, 1),
        "p50_ms": round(float(np.median(lat_ms)), 3),
        "p99_ms": round(float(np.percentile(lat_ms, 99)), 3),
        "first_ms": round(first_ms, 3),
        "recall": found / wanted,
        "leaks": leaks,
        "mean_results": results / queries,
        **index.stats(),
    }


def child(spec: str) -> None:
    args = json.loads(spec)
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})  # one core
    print(json.dumps(run_one(**args)))


# --- driver ---------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000000,10000000", help="comma-separated list sizes")
    ap.add_argument(
        "--impls", default="vigil,faiss-flat,vigil-flat,numpy-flat,faiss-mih,faiss-hash", help=", ".join(IMPLS)
    )
    ap.add_argument("--data", default="random,clustered,dense", help="random, clustered, dense")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--radius", type=int, default=31)
    ap.add_argument("--json", help="also write the rows to this file")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child)
        return
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        for kind in args.data.split(","):
            for impl in args.impls.split(","):
                if impl not in IMPLS:
                    sys.exit(f"unknown implementation {impl!r}; choose from {', '.join(IMPLS)}")
                # flat scans of 10 M codes take 10-200 ms: fewer queries keep the run short
                slow = impl in ("vigil-flat", "numpy-flat", "faiss-flat", "faiss-mih") and n > 10**6
                queries = min(args.queries, 40) if slow else args.queries
                spec = json.dumps({"impl": impl, "n": n, "kind": kind, "queries": queries, "radius": args.radius})
                proc = subprocess.run(
                    [sys.executable, __file__, "--child", spec], env=env, capture_output=True, text=True
                )
                if proc.returncode:
                    row = {"impl": impl, "n": n, "data": kind, "error": proc.stderr.strip().splitlines()[-1:]}
                else:
                    row = json.loads(proc.stdout.strip().splitlines()[-1])
                rows.append(row)
                print(json.dumps(row), flush=True)
    print_table(rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


def print_table(rows: list[dict]) -> None:
    print(
        f"\n{'impl':<11} {'n':>9} {'data':<9} {'load s':>7} {'RSS MB':>7} {'peak MB':>7} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'recall':>7} {'leaks':>5} {'p50 vs faiss-flat':>18}"
    )
    peers = {(r["n"], r["data"]): r["p50_ms"] for r in rows if r.get("impl") == "faiss-flat" and "p50_ms" in r}
    for r in rows:
        if "error" in r:
            print(f"{r['impl']:<11} {r['n']:>9} {r['data']:<9} error: {r['error']}")
            continue
        peer = peers.get((r["n"], r["data"]))
        ratio = f"{peer / r['p50_ms']:.1f}x faster" if peer and r["p50_ms"] else "-"
        print(
            f"{r['impl']:<11} {r['n']:>9} {r['data']:<9} {r['load_s']:>7} {r['rss_delta_mb']:>7} "
            f"{r['peak_delta_mb']:>7} {r['p50_ms']:>8} {r['p99_ms']:>8} {r['recall']:>7.1%} {r['leaks']:>5} "
            f"{ratio:>18}"
        )


if __name__ == "__main__":
    main()
