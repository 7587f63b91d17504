"""Benchmark of list matching under evasion (detectors/matching.py).

Builds transformed copies of benign photos (scikit-image's bundled samples and
tests/images; nothing is downloaded), puts each original in a list, and matches every
copy against all of them with three matchers measured in the same run:

* ``pdq``: plain PDQ of the whole image (distance <= 31, quality >= 50), pHash where
  PDQ quality is low, SHA-256: what a simple matcher does;
* ``pdq+trim+dihedral``: the same over the trimmed views (uniform borders, screenshot
  chrome) and the eight rotations and mirrors of each;
* ``full``: that plus local features with a verified geometric transform
  (detectors/localmatch/) and the hue-free PDQ of the value channel.

It prints recall per transform and overall, the false matches (a copy matched to an
entry of another photo, and each original matched against the others), and the time
per image of each matcher as a ratio to ``pdq`` (the machine is shared: compare
within a run). ``--dihedral-side`` also measures rotations and mirrors held on the
list side (8 codes per entry, one search) against the query side (one code per entry,
8 searches) for a list of N random PDQ codes.

Photos: ``--set held-out`` (the default; bench/common.py ``photo_set``: synthetic scenes of
seeds no parameter was chosen on, and scikit-image's immunohistochemistry slide) or
``--set tuning`` (the photos of tests/support/transforms.py and scenes of the tuning seeds).
The families of issue 15 (``transforms.EVASION_FAMILIES``: rotations of 3-5 degrees, crops
from one side, phone screenshots at JPEG 70, hue shifts, mirror + crop + JPEG 60) are part of
the target line: 99 % of the copies of every family, no false match.

    .venv/bin/python bench/bench_lists.py --matchers full
    .venv/bin/python bench/bench_lists.py --matchers pdq,pdq+trim+dihedral --families crop_small,border
    .venv/bin/python bench/bench_lists.py --scale 1000000 --dihedral-side 250000
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import photo_set  # noqa: E402
from detectors.matching import EntryHashes, FrameSignals, ListIndex, media_signals  # noqa: E402

# --- photos and edits ----------------------------------------------------------------------
# The shared transform families (tests/support/transforms.py), plus one screenshot of a
# chat where the picture sits in a message bubble with a caption (frames inside frames).

FAMILIES = (
    "jpeg",
    "resize",
    "mirror",
    "rotate90",
    "small_rotation",
    "crop_small",
    "border",
    "screenshot",
    "overlay",
    "colour",
    "webp",
    "rotation_3_5",
    "crop_one_side",
    "screenshot_jpeg",
    "hue",
    "mirror_crop_jpeg",
)
TARGET_RECALL = 0.99  # issue 15: of altered copies, per family, with no false match
EXTRA_FAMILIES = ("crop_large",)  # reported, not part of the overall target
CODEC_FAMILIES = ("jpeg", "webp", "screenshot")  # their edits already went through a lossy codec


def jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def bubble_screenshot(rgb: np.ndarray, *, dark: bool) -> np.ndarray:
    """A phone screenshot of a chat: the picture in a rounded message bubble with a caption."""
    W, H = 720, 1560
    bg = (17, 27, 33) if dark else (236, 229, 221)
    bar = (31, 44, 52) if dark else (0, 128, 105)
    im = Image.new("RGB", (W, H), bg)
    d = ImageDraw.Draw(im)
    d.rectangle((0, 0, W, 160), fill=bar)
    d.text((24, 10), "9:41", font=_font(26), fill="white")
    d.rectangle((W - 80, 14, W - 32, 36), outline="white", width=3)
    d.ellipse((64, 76, 120, 132), fill=(180, 190, 200))
    d.text((136, 78), "Year 9 parents", font=_font(32), fill="white")
    margin = 40 if dark else 12
    bw = W - 2 * margin - 16
    h, w = rgb.shape[:2]
    ph = min(round(h * bw / w), 1000)
    pw = round(w * ph / h)
    pic = Image.fromarray(rgb).resize((pw, ph), Image.Resampling.LANCZOS)
    top = 200
    bubble = (0, 92, 75) if dark else (248, 248, 248)
    d.rounded_rectangle((margin, top, margin + pw + 16, top + ph + 70), radius=18, fill=bubble)
    im.paste(pic, (margin + 8, top + 8))
    d.text((margin + 16, top + ph + 20), "look at this", font=_font(28), fill=(233, 237, 239) if dark else (17, 27, 33))
    d.rounded_rectangle((12, H - 190, W - 100, H - 110), radius=40, fill=(31, 44, 52) if dark else "white")
    d.text((90, H - 168), "Message", font=_font(30), fill=(140, 150, 150))
    d.ellipse((W - 88, H - 190, W - 12, H - 114), fill=(0, 168, 132))
    return np.asarray(im)


def edits(families: tuple[str, ...]) -> list[tuple[str, str, Callable[[np.ndarray], bytes]]]:
    """(family, name, edit returning encoded bytes) for the chosen families."""
    from tests.support import transforms

    out = []
    for family, variants in transforms.variants().items():
        if family not in families:
            continue
        encode = png if family in CODEC_FAMILIES else jpeg
        for v in variants:
            out.append((family, v.name, lambda rgb, v=v, encode=encode: encode(v(rgb))))
    if "screenshot" in families:
        for dark in (False, True):
            out.append(
                (
                    "screenshot",
                    "chat_bubble" + ("_dark" if dark else ""),
                    lambda rgb, dark=dark: jpeg(bubble_screenshot(rgb, dark=dark), 85),
                )
            )
    return out


# --- matchers --------------------------------------------------------------------------------

MATCHERS: dict[str, dict[str, bool]] = {
    "pdq": {"dihedral": False, "trim": False, "local": False, "hue": False},
    "pdq+trim+dihedral": {"dihedral": True, "trim": True, "local": False, "hue": False},
    "full": {"dihedral": True, "trim": True, "local": True},
}


def entry_of(entry_id: int, list_id: int, frame: FrameSignals) -> EntryHashes:
    h = frame.hashes
    views = tuple((v.crop, v.pdq[0], v.quality, v.phash) for v in frame.views[1:])
    return EntryHashes(entry_id, list_id, h.pdq, h.pdq_quality, h.phash, h.sha256, views)


@dataclass
class Run:
    hits: dict[str, list[bool]] = field(default_factory=lambda: defaultdict(list))  # per edit name
    family_of: dict[str, str] = field(default_factory=dict)
    false: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # false matches per edit name
    false_negatives: int = 0  # originals and hard negatives matched to another picture
    missed: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    wrong: list[str] = field(default_factory=list)
    ms_signals: float = 0.0
    ms_match: float = 0.0
    bytes_per_entry: float = 0.0  # the index's memory over its entries (hash indexes and local features)


def run_matcher(
    name: str,
    pictures: list[tuple[str, bytes]],
    n_photos: int,
    copies: list[tuple[int, str, str, bytes]],
    negatives: list[tuple[str, bytes]],
) -> Run:
    """Entries: every picture (photos first, then hard negatives). Copies must find their photo only."""
    options = MATCHERS[name]
    index = ListIndex(local=options["local"])
    for i, (_, data) in enumerate(pictures, start=1):
        frame = media_signals(data, **options)[0]
        index.add(entry_of(i, 1, frame), frame.fingerprint)
    run = Run(bytes_per_entry=index_bytes(index) / max(1, len(index)))
    t_signals = t_match = 0.0
    for owner, family, edit, data in copies:
        t0 = time.perf_counter()
        frames = media_signals(data, **options)
        t1 = time.perf_counter()
        found = {c.entry_id for c in index.candidates(frames, local=options["local"])}
        t_match += time.perf_counter() - t1
        t_signals += t1 - t0
        run.family_of[edit] = family
        run.hits[edit].append(owner in found)
        if owner not in found:
            run.missed[edit].append(pictures[owner - 1][0])
        for other in found - {owner}:
            run.false[edit] += 1
            run.wrong.append(f"{edit} of {pictures[owner - 1][0]} matched {pictures[other - 1][0]}")
    # every picture against the others, and pictures that are not in the list at all
    for i, (pname, data) in enumerate(pictures + negatives, start=1):
        found = {c.entry_id for c in index.candidates(media_signals(data, **options), local=options["local"])}
        for other in found - {i}:
            run.false_negatives += 1
            run.wrong.append(f"{pname} matched {pictures[other - 1][0]}")
    n = max(1, len(copies))
    run.ms_signals, run.ms_match = 1000 * t_signals / n, 1000 * t_match / n
    return run


def index_bytes(index: ListIndex) -> int:
    """Memory of a ListIndex's hash indexes and local-feature index (its private parts: a bench only)."""
    parts = [index._pdq, index._phash, getattr(index, "_value", None), index._local]
    return sum(p.memory_bytes for p in parts if p is not None)


def _pct(values: list[bool]) -> str:
    return f"{100 * sum(values) / max(1, len(values)):6.1f}%"


def report(runs: dict[str, Run], n_photos: int, verbose: bool) -> None:
    names = list(runs)
    first = runs[names[0]]
    edits_by_family: dict[str, list[str]] = defaultdict(list)
    for edit, family in first.family_of.items():
        edits_by_family[family].append(edit)
    rows = [(f, edits_by_family[f]) for f in (*FAMILIES, *EXTRA_FAMILIES) if f in edits_by_family]
    if verbose:
        rows = [(f"{f}/{e}", [e]) for f, es in rows for e in es]
    width = max(len(r) for r, _ in rows) + 2
    print(f"\nrecall ({n_photos} photos; [n]: false matches)")
    print(" " * width + "".join(f"{n:>22}" for n in names))
    for label, edits in rows:
        cells = []
        for n in names:
            hits = [h for e in edits for h in runs[n].hits[e]]
            false = sum(runs[n].false[e] for e in edits)
            cells.append(_pct(hits) + (f" [{false}]" if false else "    "))
        print(f"{label:<{width}}" + "".join(f"{c:>22}" for c in cells))

    def overall(run: Run) -> list[bool]:
        return [h for e, hs in run.hits.items() if run.family_of[e] in FAMILIES for h in hs]

    print(f"{'overall':<{width}}" + "".join(f"{_pct(overall(runs[n])):>18}    " for n in names))
    best = runs[names[-1]]
    short = []
    for family in FAMILIES:
        hits = [h for e in edits_by_family.get(family, ()) for h in best.hits[e]]
        if hits and sum(hits) / len(hits) < TARGET_RECALL:
            short.append(f"{family} {_pct(hits).strip()}")
    print(
        f"target ({names[-1]}): {TARGET_RECALL:.0%} of the copies of every family: "
        + ("met" if not short else "BELOW in " + ", ".join(short))
    )
    print(f"{'false (copies)':<{width}}" + "".join(f"{sum(runs[n].false.values()):>18}    " for n in names))
    print(f"{'false (pictures)':<{width}}" + "".join(f"{runs[n].false_negatives:>18}    " for n in names))
    print(f"{'index KB/entry':<{width}}" + "".join(f"{runs[n].bytes_per_entry / 1024:>18.1f}    " for n in names))
    for key, label in (("ms_signals", "signals ms/image"), ("ms_match", "match ms/image")):
        base = getattr(first, key)
        print(
            f"{label:<{width}}"
            + "".join(
                f"{getattr(runs[n], key):>12.2f} ({getattr(runs[n], key) / max(base, 1e-9):4.1f}x)" for n in names
            )
        )
    if verbose:
        for n in names:
            for edit, who in runs[n].missed.items():
                print(f"  {n}: {edit} missed {', '.join(who)}")
            for line in runs[n].wrong:
                print(f"  {n}: FALSE {line}")


# --- rotations and mirrors: list side or query side -------------------------------------------------


def dihedral_side(n: int, queries: int = 200) -> None:
    """One search of 8n codes (list side) against 8 searches of n codes (query side), same run."""
    from detectors.hashindex import HammingIndex

    rng = np.random.default_rng(5)
    codes = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    qs = rng.integers(0, 256, (queries * 8, 32), dtype=np.uint8)
    out = {}
    for side, rows in (("query side", n), ("list side", 8 * n)):
        data = codes if rows == n else rng.integers(0, 256, (rows, 32), dtype=np.uint8)
        index = HammingIndex()
        t0 = time.perf_counter()
        index.add(np.arange(rows, dtype=np.int64), data)
        load = time.perf_counter() - t0
        t0 = time.perf_counter()
        if side == "query side":
            for q in qs:
                index.search(q, 31)
        else:
            for q in qs[::8]:
                index.search(q, 31)
        per_image = (time.perf_counter() - t0) / queries * 1000
        out[side] = (index.memory_bytes / 2**20, load, per_image)
        del index, data
    base = out["query side"]
    print(f"\nrotations and mirrors for {n} entries (one process, same run; ratios to the query side)")
    for side, (mb, load, ms) in out.items():
        print(
            f"  {side:<11} index {mb:8.1f} MB ({mb / base[0]:.1f}x), load {load:6.2f} s, "
            f"{ms:7.3f} ms per image ({ms / base[2]:.2f}x)"
        )


def scale(n: int, queries: int = 100) -> None:
    """ListIndex with n entries (random PDQ and pHash, half with a SHA-256): load, memory,
    and the time to match one image (3 views x 8 orientations, pHash, SHA-256) against a
    brute force over the same codes in numpy, same run."""
    import resource

    from detectors.hashing import ImageHashes
    from detectors.matching import View

    rng = np.random.default_rng(11)
    pdq = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    ph = rng.integers(0, 256, (n, 8), dtype=np.uint8)
    sha = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    index = ListIndex(local=False)
    t0 = time.perf_counter()
    batch = 50_000
    for lo in range(0, n, batch):
        index.add_many(
            [
                EntryHashes(
                    i + 1,
                    1 + i % 100,
                    pdq[i].tobytes().hex(),
                    90,
                    ph[i].tobytes().hex(),
                    sha[i].tobytes().hex() if i % 2 else None,
                )
                for i in range(lo, min(n, lo + batch))
            ]
        )
    load = time.perf_counter() - t0
    rss = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    frames = []
    for _ in range(queries):
        views = tuple(
            View(
                c,
                (0, 0, 1, 1),
                tuple(rng.integers(0, 256, 32, dtype=np.uint8).tobytes().hex() for _ in range(8)),
                90,
                rng.integers(0, 256, 8, dtype=np.uint8).tobytes().hex(),
            )
            for c in ("full", "border", "content")
        )
        frames.append(FrameSignals(ImageHashes(views[0].pdq[0], 90, views[0].phash, "0" * 16, "ab" * 32), views))
    t0 = time.perf_counter()
    for f in frames:
        index.candidates([f], list_ids=set(range(1, 51)), local=False)
    ours = (time.perf_counter() - t0) / queries * 1000
    t0 = time.perf_counter()
    for f in frames[: max(1, queries // 10)]:
        for v in f.views:
            for code in v.pdq:
                q = np.frombuffer(bytes.fromhex(code), np.uint8)
                np.flatnonzero(np.bitwise_count(pdq ^ q).sum(axis=1) <= 31)
    brute = (time.perf_counter() - t0) / max(1, queries // 10) * 1000
    print(
        f"\nscale: {n} entries: load {load:.1f} s, peak RSS +{rss:.0f} MB; one image (24 PDQ codes + pHash + SHA-256): "
        f"{ours:.2f} ms; numpy brute force of the PDQ codes alone {brute:.1f} ms ({brute / ours:.0f}x slower), same run"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--matchers", default=",".join(MATCHERS), help="comma-separated: " + ", ".join(MATCHERS))
    parser.add_argument(
        "--families", default="", help="comma-separated subset of: " + ", ".join(FAMILIES + EXTRA_FAMILIES)
    )
    parser.add_argument("--photos", type=int, default=0, help="use only the first N photos")
    parser.add_argument(
        "--set",
        choices=("held-out", "tuning"),
        default="held-out",
        help="photos (bench/common.py photo_set): held-out (default; report these) or tuning",
    )
    parser.add_argument(
        "--scene-seeds",
        default="",
        metavar="S,S,...",
        help="instead of --set: the synthetic scenes of these seeds (e.g. seeds no one has looked at yet)",
    )
    parser.add_argument(
        "--dihedral-side",
        type=int,
        default=0,
        metavar="N",
        help="also compare list-side and query-side rotations for N entries",
    )
    parser.add_argument(
        "--scale", type=int, default=0, metavar="N", help="only measure the index with N random entries"
    )
    parser.add_argument("--verbose", action="store_true", help="recall per edit, each missed copy and each false match")
    args = parser.parse_args(argv)
    import faiss

    faiss.omp_set_num_threads(1)
    cv2.setNumThreads(1)
    if args.scale:
        scale(args.scale)
        if args.dihedral_side:
            dihedral_side(args.dihedral_side)
        return 0
    from tests.support import transforms

    names = [m for m in args.matchers.split(",") if m]
    families = tuple(f for f in args.families.split(",") if f) or FAMILIES + EXTRA_FAMILIES
    if args.scene_seeds:
        from tests.support import imagegen

        seeds = [int(s) for s in args.scene_seeds.split(",") if s]
        scenes = {
            f"{kind}_{seed}": imagegen.scene(kind, seed, (1600, 1200)) for seed in seeds for kind in imagegen.SCENES
        }
        pics = list(scenes.items())[: args.photos or None]
        which = f"scenes of seeds {args.scene_seeds}"
    else:
        pics = list(photo_set(args.set).items())[: args.photos or None]
        which = args.set
    print(f"photo set: {which} ({', '.join(n for n, _ in pics)})")
    hard = list(transforms.hard_negatives().items())
    pictures = [(name, jpeg(p, 95)) for name, p in pics] + [(name, png(p)) for name, p in hard]
    negatives = [("stereo right view", jpeg(transforms.stereo_pair()[1], 90))]
    copies = [
        (i, family, edit, make(p)) for i, (_, p) in enumerate(pics, start=1) for family, edit, make in edits(families)
    ]
    print(
        f"{len(pics)} photos x {len(copies) // max(1, len(pics))} edits = {len(copies)} copies; "
        f"{len(hard)} hard negatives also listed"
    )
    runs = {name: run_matcher(name, pictures, len(pics), copies, negatives) for name in names}
    report(runs, len(pics), args.verbose)
    if args.dihedral_side:
        dihedral_side(args.dihedral_side)
    return 0


if __name__ == "__main__":
    sys.exit(main())
