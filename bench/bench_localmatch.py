"""Benchmark of local-feature matching (detectors/localmatch/) against whole-image hashes.

1. Pairs. Every photo of tests/support/transforms.photos() is edited by every transform
   family (transforms.variants()). For each edit: is it traced to its source by the
   local matcher (``verify`` plus search's default ``MIN_FRACTION``), by plain PDQ
   (distance <= 31), by PDQ over the query's 8 rotations and mirrors (as Vigil searches
   lists) and by pHash (<= 8)? And PDQ (plain or over 8 orientations) then local, as
   Vigil tries them. False matches
   are counted over ALL pairs of distinct images: every edit against every other photo
   and every flat or repetitive image, every flat or repetitive image (as is and as JPEG)
   against every other known image, two views of one scene (a stereo pair) and the two
   outer thirds of wide photos. Photos are reported in two groups: scenes (people, an
   animal, objects, places) and sparse ones (a blurred clock, microscopy, a retina, a
   star field: little texture for local features).
2. Undress-like edits (the "undress" family: 25-50 % of the picture replaced by other
   content, then recompressed as a chat app would): share traced to the right photo,
   and false traces against every other photo.
3. Speed, one thread (cv2 and faiss limited to one): fingerprinting a 1280x960 photo
   (each photo scaled to 1280x960), with and without the mirror descriptors, and one
   ``verify``. CPU time of this process is printed next to wall time: the machine is
   shared, so wall time is noisy.
4. The index at scale: the scene photos are planted among N synthetic known images and
   every edit of them is searched. The synthetic images are real ORB fingerprints of
   generated pictures: crops, turns, zooms and 2x2 collages of pictures that share no
   content with the planted photos (the sparse photos, the flat and repetitive images,
   three more scikit-image samples), fingerprinted by worker processes. Reported:
   build time, index memory (its own count and the RSS growth), search latency with one
   thread and with two threads searching at once, recall (the source ranked first) and
   any other key returned.

    .venv/bin/python bench/bench_localmatch.py --quick       # under a minute
    .venv/bin/python bench/bench_localmatch.py               # 100,000 known images (~20 min)
    .venv/bin/python bench/bench_localmatch.py --index-size 20000 --skip-pairs
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from multiprocessing import Pool
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from detectors import localmatch as lm  # noqa: E402
from detectors.hashing import hamming_hex, pdq_dihedral, perceptual_hashes  # noqa: E402
from tests.support import transforms as tf  # noqa: E402

PDQ_MAX, PHASH_MAX = 31, 8
QUICK_PHOTOS = ("astronaut", "coffee", "camera", "clock")


# --- helpers ------------------------------------------------------------------------------


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class Clock:
    """Wall and CPU time of a block."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:5.1f}% ({part}/{whole})" if whole else "  n/a"


def hashes(rgb: np.ndarray) -> tuple[str, str, tuple[str, ...]]:
    pdq, _q, phash, _d = perceptual_hashes(rgb)
    dihedral, _q2 = pdq_dihedral(rgb)
    return pdq, phash, dihedral


def traced(query: lm.Fingerprint, known: lm.Fingerprint) -> bool:
    match = lm.verify(query, known)
    return match is not None and match.fraction >= lm.MIN_FRACTION


# --- 1 and 2: pairs -------------------------------------------------------------------------


def run_pairs(photo_names: list[str] | None, out: dict) -> None:
    photos = tf.photos()
    if photo_names:
        photos = {k: v for k, v in photos.items() if k in photo_names}
    negatives = tf.hard_negatives()
    families = tf.variants()
    group = {name: ("sparse" if name in tf.SPARSE_PHOTOS else "scenes") for name in photos}

    known = {name: lm.fingerprint(rgb, query=False) for name, rgb in photos.items()}
    known.update({f"neg:{n}": lm.fingerprint(rgb, query=False) for n, rgb in negatives.items()})
    known_hash = {name: hashes(rgb) for name, rgb in photos.items()}
    known_hash.update({f"neg:{n}": hashes(rgb) for n, rgb in negatives.items()})

    methods = ("local", "pdq", "pdq8", "phash", "pdq+local", "pdq8+local")
    # recall[method][(group, family)] = [hits, total]
    recall: dict[str, dict[tuple[str, str], list[int]]] = {m: {} for m in methods}
    false: dict[str, int] = {m: 0 for m in methods}
    false_undress: dict[str, int] = {m: 0 for m in methods}
    false_examples: list[str] = []
    pairs_false = pairs_false_undress = 0
    verify_time = Clock()
    verify_time.wall = verify_time.cpu = 0.0
    verifies = 0

    def decide(q_fp, q_hash, k_name) -> dict[str, bool]:
        nonlocal verifies
        with Clock() as c:
            local = traced(q_fp, known[k_name])
        verify_time.wall += c.wall
        verify_time.cpu += c.cpu
        verifies += 1
        pdq, phash, dihedral = q_hash
        kp, kph, _ = known_hash[k_name]
        d_pdq = hamming_hex(pdq, kp)
        d8 = min(hamming_hex(h, kp) for h in dihedral)
        res = {
            "local": local,
            "pdq": d_pdq <= PDQ_MAX,
            "pdq8": d8 <= PDQ_MAX,
            "phash": hamming_hex(phash, kph) <= PHASH_MAX,
        }
        res["pdq+local"] = res["pdq"] or res["local"]
        res["pdq8+local"] = res["pdq8"] or res["local"]
        return res

    t0 = time.perf_counter()
    for name, rgb in photos.items():
        for family, variants in families.items():
            for variant in variants:
                img = variant(rgb)
                q_fp, q_hash = lm.fingerprint(img), hashes(img)
                for k_name in known:
                    res = decide(q_fp, q_hash, k_name)
                    if k_name == name:
                        for m in methods:
                            cell = recall[m].setdefault((group[name], family), [0, 0])
                            cell[0] += res[m]
                            cell[1] += 1
                    else:
                        if family == "undress":
                            pairs_false_undress += 1
                        else:
                            pairs_false += 1
                        for m in methods:
                            if res[m]:
                                if family == "undress":
                                    false_undress[m] += 1
                                else:
                                    false[m] += 1
                                if m == "local":
                                    false_examples.append(f"{variant.name}({name})->{k_name}")
    # flat and repetitive images as queries, against every other known image
    neg_pairs = 0
    neg_false = {m: 0 for m in methods}
    for n, rgb in negatives.items():
        for img in (rgb, tf.jpeg(rgb, 70)):
            q_fp, q_hash = lm.fingerprint(img), hashes(img)
            for k_name in known:
                if k_name == f"neg:{n}":
                    continue
                neg_pairs += 1
                res = decide(q_fp, q_hash, k_name)
                for m in methods:
                    if res[m]:
                        neg_false[m] += 1
                        if m == "local":
                            false_examples.append(f"{n}->{k_name}")
    # one scene from elsewhere: a stereo pair, and the outer thirds of wide photos
    left, right = tf.stereo_pair()
    scene_pairs = [("stereo right vs left", right, left), ("stereo left vs right", left, right)]
    for src in ("rocket", "coffee", "motorcycle", "hubble_0", "astronaut"):
        base = tf.photos()[src]
        a, b = tf.panorama_thirds(base)
        scene_pairs += [(f"{src} left third vs right", a, b), (f"{src} right third vs left", b, a)]
    scene_false = {m: 0 for m in methods}
    for label, q, k in scene_pairs:
        q_fp, k_fp = lm.fingerprint(q), lm.fingerprint(k, query=False)
        qh, kh = hashes(q), hashes(k)
        res = {
            "local": traced(q_fp, k_fp),
            "pdq": hamming_hex(qh[0], kh[0]) <= PDQ_MAX,
            "pdq8": min(hamming_hex(h, kh[0]) for h in qh[2]) <= PDQ_MAX,
            "phash": hamming_hex(qh[1], kh[1]) <= PHASH_MAX,
        }
        res["pdq+local"] = res["pdq"] or res["local"]
        res["pdq8+local"] = res["pdq8"] or res["local"]
        for m in methods:
            scene_false[m] += res[m]
            if m == "local" and res[m]:
                false_examples.append(label)
    elapsed = time.perf_counter() - t0

    print("\n== 1. Recall per transform family (traced to the right photo)")
    header = f"{'group':7s} {'family':15s}" + "".join(f"{m:>20s}" for m in methods)
    print(header)
    rows = []
    for grp in ("scenes", "sparse"):
        for family in families:
            cells = [recall[m].get((grp, family)) for m in methods]
            if not cells[0]:
                continue
            print(f"{grp:7s} {family:15s}" + "".join(f"{pct(*c):>20s}" for c in cells))
            rows.append({"group": grp, "family": family, **{m: recall[m][(grp, family)] for m in methods}})
    summary = {}
    for grp in ("scenes", "sparse", "all"):
        for scope, fams in (("hash-list families", [f for f in families if f != "undress"]), ("undress", ["undress"])):
            line = []
            for m in methods:
                hits = sum(v[0] for (g, f), v in recall[m].items() if (grp == "all" or g == grp) and f in fams)
                tot = sum(v[1] for (g, f), v in recall[m].items() if (grp == "all" or g == grp) and f in fams)
                line.append((hits, tot))
                summary[f"{grp}/{scope}/{m}"] = [hits, tot]
            if line[0][1]:
                print(f"{grp:7s} {scope:22s}" + "".join(f"{pct(*c):>20s}" for c in line))
    print(
        f"\nFalse matches among distinct images ({pairs_false} edit x other-image pairs, "
        f"{neg_pairs} flat/repetitive query pairs, {len(scene_pairs)} same-scene pairs):"
    )
    for m in methods:
        print(f"  {m:12s} edits {false[m]:4d}   flat/repetitive {neg_false[m]:4d}   same scene {scene_false[m]:3d}")
    print("\n== 2. Undress-like edits")
    for grp in ("scenes", "sparse", "all"):
        line = "  ".join(
            f"{m} {pct(*summary[f'{grp}/undress/{m}'])}" for m in methods if f"{grp}/undress/{m}" in summary
        )
        print(f"  traced, {grp:7s}: {line}")
    print(
        f"  false traces ({pairs_false_undress} edit x unrelated photo pairs): "
        + "  ".join(f"{m} {false_undress[m]}" for m in methods)
    )
    if false_examples:
        print("  local false matches:", ", ".join(false_examples[:20]))
    print(
        f"\n  {verifies} verifies, {1000 * verify_time.wall / verifies:.2f} ms wall / "
        f"{1000 * verify_time.cpu / verifies:.2f} ms CPU each; section took {elapsed:.0f} s"
    )
    out["pairs"] = {
        "rows": rows,
        "summary": summary,
        "false": false,
        "false_flat": neg_false,
        "false_scene": scene_false,
        "false_undress": false_undress,
        "pairs": pairs_false,
        "pairs_flat": neg_pairs,
        "pairs_undress": pairs_false_undress,
        "verify_ms_wall": 1000 * verify_time.wall / verifies,
        "verify_ms_cpu": 1000 * verify_time.cpu / verifies,
        "false_examples": false_examples,
    }


# --- 3: speed --------------------------------------------------------------------------------


def run_speed(out: dict, repeats: int) -> None:
    photos = tf.photos()
    big = [np.ascontiguousarray(cv2.resize(rgb, (1280, 960), interpolation=cv2.INTER_CUBIC)) for rgb in photos.values()]
    modes = {
        "query (600 points + mirror)": dict(query=True),
        "query without mirror": dict(query=True, mirror=False),
        "known (300 points)": dict(query=False),
    }
    print("\n== 3. Fingerprinting a 1280x960 photo, one thread")
    res = {}
    for label, kw in modes.items():
        for rgb in big[:2]:
            lm.fingerprint(rgb, **kw)  # warm up
        walls, cpus = [], []
        for _ in range(repeats):
            for rgb in big:
                with Clock() as c:
                    lm.fingerprint(rgb, **kw)
                walls.append(c.wall)
                cpus.append(c.cpu)
        walls, cpus = np.array(walls) * 1000, np.array(cpus) * 1000
        res[label] = {
            "wall_median_ms": float(np.median(walls)),
            "wall_p95_ms": float(np.percentile(walls, 95)),
            "cpu_median_ms": float(np.median(cpus)),
        }
        print(
            f"  {label:30s} median {np.median(walls):5.1f} ms wall (p95 {np.percentile(walls, 95):5.1f}), "
            f"{np.median(cpus):5.1f} ms CPU"
        )
    fp = lm.fingerprint(big[0])
    print(
        f"  bytes: query {len(fp.to_bytes())}, known {len(fp.as_known().to_bytes())} "
        f"({len(fp)} and {len(fp.as_known())} points; 38 bytes a point, +32 with mirror descriptors)"
    )
    out["speed"] = res


# --- 4: the index at scale -------------------------------------------------------------------


_POOL: list[np.ndarray] | None = None


def _pool_images() -> list[np.ndarray]:
    """Pictures sharing no content with the planted scene photos."""
    from skimage import data

    photos = tf.photos()
    imgs = [photos[k] for k in tf.SPARSE_PHOTOS] + list(tf.hard_negatives().values())
    imgs += [
        tf._rgb(data.horse()),
        np.ascontiguousarray(data.logo()[..., :3]),
        tf._rgb((data.shepp_logan_phantom() * 255).astype(np.uint8)),
    ]
    return imgs


def synthetic_picture(imgs: list[np.ndarray], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)

    def piece() -> np.ndarray:
        im = imgs[rng.integers(len(imgs))]
        h, w = im.shape[:2]
        ch, cw = int(h * rng.uniform(0.3, 1)), int(w * rng.uniform(0.3, 1))
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        p = np.ascontiguousarray(im[y : y + ch, x : x + cw][:, :: rng.choice([-1, 1])])
        turn = cv2.getRotationMatrix2D((cw / 2, ch / 2), rng.uniform(-180, 180), rng.uniform(0.6, 1.6))
        return cv2.warpAffine(p, turn, (cw, ch), borderMode=cv2.BORDER_REFLECT)

    if rng.uniform() < 0.25:
        out = piece()
    else:
        side = 480
        out = np.zeros((side, side, 3), np.uint8)
        for i in range(2):
            for j in range(2):
                out[i * side // 2 : (i + 1) * side // 2, j * side // 2 : (j + 1) * side // 2] = cv2.resize(
                    piece(), (side // 2, side // 2), interpolation=cv2.INTER_AREA
                )
    return tf.colour_shift(out, brightness=rng.uniform(-0.1, 0.1), contrast=rng.uniform(0.8, 1.2))


def _bulk_worker(seeds: list[int]) -> list[bytes]:
    global _POOL
    cv2.setNumThreads(1)
    if _POOL is None:
        _POOL = _pool_images()
    return [lm.fingerprint(synthetic_picture(_POOL, s), query=False).to_bytes() for s in seeds]


def bulk_fingerprints(n: int, workers: int) -> list[bytes]:
    seeds = list(range(1_000_000, 1_000_000 + n))
    chunks = [seeds[i : i + 250] for i in range(0, n, 250)]
    out: list[bytes] = []
    with Pool(workers) as pool:
        for part in pool.imap(_bulk_worker, chunks):
            out.extend(part)
            if len(out) % 10000 < 250:
                print(f"  ... {len(out)} synthetic fingerprints", flush=True)
    return out


def run_index(size: int, workers: int, out: dict, queries_per_photo: int | None, cache: str | None) -> None:
    photos = tf.photos()
    planted = [name for name in photos if name not in tf.SPARSE_PHOTOS]
    print(f"\n== 4. Index of {size} known images: {len(planted)} scene photos planted among synthetic ones")
    want = max(0, size - len(planted))
    bulk: list[bytes] = []
    if cache and Path(cache).exists():  # fingerprints only: no pixels are cached
        blob, at = Path(cache).read_bytes(), 0
        while at < len(blob) and len(bulk) < want:
            n = int.from_bytes(blob[at : at + 4], "little")
            bulk.append(blob[at + 4 : at + 4 + n])
            at += 4 + n
        del blob
        print(f"  {len(bulk)} synthetic fingerprints read from {cache}")
    if len(bulk) < want:
        with Clock() as c:
            bulk = bulk_fingerprints(want, workers)
        print(f"  synthetic fingerprints: {c.wall:.0f} s with {workers} worker processes")
        if cache:
            Path(cache).write_bytes(b"".join(len(b).to_bytes(4, "little") + b for b in bulk))
    fps = [lm.Fingerprint.from_bytes(b) for b in bulk]
    del bulk
    idx = lm.LocalIndex()
    rss0 = rss_bytes()
    with Clock() as build:
        idx.add_many((len(planted) + i, fp) for i, fp in enumerate(fps))
        for key, name in enumerate(planted):
            idx.add(key, lm.fingerprint(photos[name], query=False))
    del fps
    rss1 = rss_bytes()
    mem = idx.memory_bytes
    print(
        f"  build {build.wall:.1f} s; memory {mem / 1e6:.0f} MB by the index's count = {mem / len(idx):.0f} bytes a "
        f"known image (RSS grew {(rss1 - rss0) / 1e6:.0f} MB, which includes freed-but-kept allocator pages)"
    )
    # a few one-by-one adds and removes, as a running bot does
    with Clock() as upd:
        for i in range(20):
            idx.add(10_000_000 + i, lm.fingerprint(photos[planted[i % len(planted)]], query=False))
        for i in range(20):
            idx.remove(10_000_000 + i)
    print(f"  20 adds + 20 removes at this size: {1000 * upd.wall / 40:.1f} ms each")

    variants = tf.all_variants()
    if queries_per_photo:
        step = max(1, len(variants) // queries_per_photo)
        variants = variants[::step]
    queries = []
    for key, name in enumerate(planted):
        for v in variants:
            queries.append((key, v.family, lm.fingerprint(v(photos[name]))))
    for _, _, q in queries[:5]:
        idx.search(q)  # warm up

    def one(item):
        key, family, q = item
        with Clock() as c:
            found = idx.search(q)
        return key, family, found, c.wall, c.cpu

    single = [one(item) for item in queries]
    bare = [one((key, fam, replace(q, mirror_descriptors=None))) for key, fam, q in queries]
    with Clock() as par_clock, ThreadPoolExecutor(2) as pool:
        paired = list(pool.map(one, queries))
    walls = np.array([r[3] for r in single]) * 1000
    cpus = np.array([r[4] for r in single]) * 1000
    pwalls = np.array([r[3] for r in paired]) * 1000
    bwalls = np.array([r[3] for r in bare]) * 1000
    bcpus = np.array([r[4] for r in bare]) * 1000
    hits = sum(1 for key, _f, found, _w, _c in single if found and found[0].key == key)
    others = [
        (key, fam, [m.key for m in found if m.key != key])
        for key, fam, found, _w, _c in single
        if any(m.key != key for m in found)
    ]
    und = [(key, found) for key, fam, found, _w, _c in single if fam == "undress"]
    und_hits = sum(1 for key, found in und if found and found[0].key == key)
    print(f"  {len(queries)} searches (every edit of every planted photo):")
    print(
        f"    one thread:  median {np.median(walls):5.1f} ms wall, p95 {np.percentile(walls, 95):5.1f}, "
        f"max {walls.max():5.1f}; median {np.median(cpus):5.1f} ms CPU"
    )
    print(
        f"    without the mirror descriptors: median {np.median(bwalls):5.1f} ms wall, {np.median(bcpus):5.1f} ms CPU "
        f"(mirrored copies are then missed)"
    )
    print(
        f"    two threads: median {np.median(pwalls):5.1f} ms wall per search, p95 {np.percentile(pwalls, 95):5.1f}; "
        f"{len(queries) / par_clock.wall:.0f} searches/s (one thread: {len(queries) / (walls.sum() / 1000):.0f}/s)"
    )
    print(f"    recall (source ranked first): {pct(hits, len(queries))}; undress-like: {pct(und_hits, len(und))}")
    print(f"    other keys returned: {len(others)} searches" + (f", e.g. {others[:5]}" if others else ""))
    out["index"] = {
        "size": len(idx),
        "memory_bytes": mem,
        "bytes_per_image": mem / len(idx),
        "rss_growth": rss1 - rss0,
        "build_s": build.wall,
        "search_ms_median": float(np.median(walls)),
        "search_ms_p95": float(np.percentile(walls, 95)),
        "search_cpu_ms_median": float(np.median(cpus)),
        "two_threads_ms_median": float(np.median(pwalls)),
        "no_mirror_ms_median": float(np.median(bwalls)),
        "no_mirror_cpu_ms_median": float(np.median(bcpus)),
        "recall": [hits, len(queries)],
        "undress_recall": [und_hits, len(und)],
        "other_keys": len(others),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a small run: 4 photos, 1,000 known images")
    ap.add_argument("--photos", help="comma-separated photo names for the pair section (default: all)")
    ap.add_argument("--index-size", type=int, default=100_000)
    ap.add_argument("--workers", type=int, default=2, help="processes fingerprinting the synthetic images")
    ap.add_argument("--repeats", type=int, default=3, help="timing repeats over the photos")
    ap.add_argument("--skip-pairs", action="store_true")
    ap.add_argument("--bulk-cache", help="file to keep the synthetic fingerprints in between runs (no pixels)")
    ap.add_argument("--skip-index", action="store_true")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    photo_names = args.photos.split(",") if args.photos else None
    size, per_photo = args.index_size, None
    if args.quick:
        photo_names = photo_names or list(QUICK_PHOTOS)
        size = min(size, 1000)
        per_photo = 8
        args.repeats = 1
    out: dict = {"args": vars(args)}
    print(
        f"localmatch bench: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start "
        "(a shared machine: compare figures within one run)"
    )
    if not args.skip_pairs:
        run_pairs(photo_names, out)
    run_speed(out, args.repeats)
    if not args.skip_index:
        run_index(size, args.workers, out, per_photo, args.bulk_cache)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
