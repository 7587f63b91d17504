"""Benchmark of the two in-memory indexes' updates and searches, as the segment scheme shapes them.

``HammingIndex`` (detectors/hashindex.py, list hashes) and ``LocalIndex``
(detectors/localmatch/index.py, known images' local features) share one log-structured
update scheme (detectors/segments.py). This measures what that scheme decides, one thread,
each (index, source tree) in its own child process:

* load: a whole list in one add (Hamming: 1,000,000 random 256-bit codes; local: 20,000
  synthetic known fingerprints of 300 points in one ``add_many``);
* grow: many small adds on top (Hamming: 200 adds of 1,000 codes; local: 1,000 single
  adds), which make new segments and merge them;
* remove: entries removed here and there (Hamming: 200 removes of 100 ids; local: 500 single
  removes), which mark rows dead and rebuild segments a quarter dead;
* search after all that (Hamming: 400 searches at radius 31 over ~1.2 M codes in several
  segments; local: 200 searches for copies of known fingerprints, which vote and verify).

``--trees`` runs the same measurements against other source trees (a checkout of the code
before a change, say) in the same run, alternating, so that their figures compare on a
shared machine: look at the ratios, not at the absolute times.

    .venv/bin/python bench/bench_index_updates.py
    .venv/bin/python bench/bench_index_updates.py --trees /path/to/old/checkout,. --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
HAMMING_LOAD, HAMMING_ADDS, HAMMING_ADD_SIZE = 1_000_000, 200, 1_000
HAMMING_REMOVES, HAMMING_REMOVE_SIZE, HAMMING_QUERIES = 200, 100, 400
LOCAL_LOAD, LOCAL_ADDS, LOCAL_REMOVES, LOCAL_QUERIES, LOCAL_POINTS = 20_000, 1_000, 500, 200, 300


def hamming(rng: np.random.Generator) -> dict[str, float]:
    from detectors.hashindex import HammingIndex

    codes = rng.integers(0, 256, (HAMMING_LOAD + HAMMING_ADDS * HAMMING_ADD_SIZE, 32), dtype=np.uint8)
    ids = np.arange(len(codes), dtype=np.int64)
    index = HammingIndex(256)
    t = time.perf_counter()
    index.add(ids[:HAMMING_LOAD], codes[:HAMMING_LOAD])
    load = time.perf_counter() - t
    t = time.perf_counter()
    for k in range(HAMMING_ADDS):
        lo = HAMMING_LOAD + k * HAMMING_ADD_SIZE
        index.add(ids[lo : lo + HAMMING_ADD_SIZE], codes[lo : lo + HAMMING_ADD_SIZE])
    grow = (time.perf_counter() - t) / HAMMING_ADDS
    gone = rng.choice(len(ids), HAMMING_REMOVES * HAMMING_REMOVE_SIZE, replace=False)
    t = time.perf_counter()
    for k in range(HAMMING_REMOVES):
        index.remove(gone[k * HAMMING_REMOVE_SIZE : (k + 1) * HAMMING_REMOVE_SIZE].tolist())
    remove = (time.perf_counter() - t) / HAMMING_REMOVES
    kept = np.setdiff1d(ids, gone)
    queries = codes[rng.choice(kept, HAMMING_QUERIES, replace=False)].copy()
    queries[:, :4] ^= rng.integers(0, 256, (HAMMING_QUERIES, 4), dtype=np.uint8)  # up to 32 bits away
    index.search(queries[0], 31)  # plans made once
    times = []
    for q in queries:
        t = time.perf_counter()
        index.search(q, 31)
        times.append(time.perf_counter() - t)
    assert len(index) == len(kept)
    return {
        "load_s": load,
        "add_ms": 1000 * grow,
        "remove_ms": 1000 * remove,
        "search_median_ms": 1000 * statistics.median(times),
        "search_p95_ms": 1000 * float(np.percentile(times, 95)),
    }


def local(rng: np.random.Generator) -> dict[str, float]:
    from detectors.localmatch import Fingerprint, LocalIndex

    def made(mirror: bool = False) -> Fingerprint:
        n = LOCAL_POINTS
        pts = np.round(rng.uniform(0, [1000, 750], (n, 2)) * 32) / 32
        return Fingerprint(
            pts.astype(np.float32),
            rng.integers(0, 256, (n, 32), dtype=np.uint8),
            1000,
            750,
            (rng.integers(0, 256, n) * (360 / 256)).astype(np.float32),
            rng.integers(0, 8, n).astype(np.uint8),
            1000,
            rng.integers(0, 256, (n, 32), dtype=np.uint8) if mirror else None,
        )

    known = [made() for _ in range(LOCAL_LOAD + LOCAL_ADDS)]
    index = LocalIndex()
    t = time.perf_counter()
    index.add_many(list(enumerate(known[:LOCAL_LOAD])))
    load = time.perf_counter() - t
    t = time.perf_counter()
    for key in range(LOCAL_LOAD, LOCAL_LOAD + LOCAL_ADDS):
        index.add(key, known[key])
    grow = (time.perf_counter() - t) / LOCAL_ADDS
    gone = rng.choice(len(known), LOCAL_REMOVES, replace=False)
    t = time.perf_counter()
    for key in gone.tolist():
        index.remove(key)
    remove = (time.perf_counter() - t) / LOCAL_REMOVES
    kept = np.setdiff1d(np.arange(len(known)), gone)
    picks = rng.choice(kept, LOCAL_QUERIES, replace=False).tolist()
    mirror = rng.integers(0, 256, (LOCAL_POINTS, 32), dtype=np.uint8)
    queries = [
        Fingerprint(fp.keypoints, fp.descriptors, fp.width, fp.height, fp.angles, fp.octaves, fp.source_side, mirror)
        for fp in (known[k] for k in picks)
    ]
    found, times = 0, []
    for key, q in zip(picks, queries, strict=True):
        t = time.perf_counter()
        matches = index.search(q)
        times.append(time.perf_counter() - t)
        found += bool(matches) and matches[0].key == key
    return {
        "load_s": load,
        "add_ms": 1000 * grow,
        "remove_ms": 1000 * remove,
        "search_median_ms": 1000 * statistics.median(times),
        "search_p95_ms": 1000 * float(np.percentile(times, 95)),
        "found": found / LOCAL_QUERIES,
    }


def child(which: str, tree: str) -> None:
    sys.path.insert(0, tree)  # this tree's detectors/, not the installed one
    import faiss

    faiss.omp_set_num_threads(1)
    rng = np.random.default_rng(11)
    figures = hamming(rng) if which == "hamming" else local(rng)
    import detectors

    figures["tree"] = str(Path(detectors.__file__).resolve().parent.parent)  # type: ignore[assignment]
    print(json.dumps(figures))


def run(which: str, tree: Path) -> dict[str, float]:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", PYTHONPATH=str(tree))
    out = subprocess.run(
        [sys.executable, __file__, "--child", which, "--tree", str(tree)],
        env=env,
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    figures: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    if Path(str(figures.pop("tree"))) != tree:
        raise SystemExit(f"the child imported detectors/ from somewhere else than {tree}")
    return figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trees", default=".", help="comma-separated source trees to compare (default: this one)")
    ap.add_argument("--rounds", type=int, default=2, help="runs per tree and index, alternating trees")
    ap.add_argument("--indexes", default="hamming,local")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--tree", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.tree)
        return
    trees = [Path(t).resolve() for t in args.trees.split(",")]
    for which in args.indexes.split(","):
        runs: dict[Path, list[dict[str, float]]] = {t: [] for t in trees}
        for r in range(args.rounds):
            for tree in trees if r % 2 == 0 else trees[::-1]:
                runs[tree].append(run(which, tree))
        print(f"\n== {which} index: median of {args.rounds} runs, one thread")
        keys = list(runs[trees[0]][0])
        print(f"  {'':40s}" + "".join(f"{k:>18s}" for k in keys))
        medians = {t: {k: statistics.median(x[k] for x in runs[t]) for k in keys} for t in trees}
        for tree in trees:
            print(f"  {str(tree)[-40:]:40s}" + "".join(f"{medians[tree][k]:18.3f}" for k in keys))
        for tree in trees[1:]:
            ratio = "".join(f"{medians[tree][k] / max(medians[trees[0]][k], 1e-12):17.2f}x" for k in keys)
            print(f"  {'ratio to ' + str(trees[0])[-31:]:40s}" + ratio)


if __name__ == "__main__":
    main()
