"""`vigil scan PATH...`: check image files on this machine and report what Vigil finds."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Iterator, Sequence, TextIO

from detectors.errors import MediaError
from detectors.scanner import Scan, Scanner
from detectors.settings import DetectorSettings

# In folders, only files that look like media are taken (sidecar .xmp/.json files
# would only add noise); a file named on the command line is always scanned, since
# decoding sniffs the content and does not trust the extension.
MEDIA_SUFFIXES = {
    ".jpg", ".jpeg", ".jpe", ".png", ".webp", ".gif", ".bmp", ".dib", ".tif", ".tiff",
    ".heic", ".heif", ".avif", ".mp4", ".webm", ".mov", ".m4v", ".mkv",
}
CHUNK = 1  # files scanned per model call: batches gained nothing on 2 cores and cost memory


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "scan",
        help="scan image files and folders on this machine",
        description="Scan images (files, or folders recursively). With no path, scans the sample images "
        "that ship with Vigil. Nothing is uploaded, stored or changed.",
    )
    p.add_argument("paths", nargs="*", type=Path, metavar="PATH")
    p.add_argument("--json", action="store_true", help="one JSON object per image per line on stdout")
    p.add_argument("--config", type=Path, metavar="FILE", help="take thresholds, limits and models from this config")
    p.set_defaults(func=run)


def sample_dir() -> Path:
    return Path(str(resources.files("bot").joinpath("samples")))


def collect(paths: Sequence[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(
                sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in MEDIA_SUFFIXES)
            )
        else:
            files.append(path)
    return files


@dataclass(frozen=True)
class Outcome:
    path: Path
    scan: Scan | None
    error: str | None


def scan_files(scanner: Scanner, files: Sequence[Path], workers: int | None = None) -> Iterator[Outcome]:
    """Outcomes in the order of ``files``; chunks are scanned in parallel, one per core."""
    chunks = [files[start : start + CHUNK] for start in range(0, len(files), CHUNK)]
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        for outcomes in pool.map(lambda chunk: scan_chunk(scanner, chunk), chunks):
            yield from outcomes


def scan_chunk(scanner: Scanner, chunk: Sequence[Path]) -> list[Outcome]:
    out: list[Outcome] = []
    datas: list[bytes | None] = []
    errors: dict[int, str] = {}
    for i, path in enumerate(chunk):
        try:
            datas.append(path.read_bytes())
        except OSError as exc:
            datas.append(None)
            errors[i] = f"cannot read the file: {exc.strerror or exc}"
    readable = [(i, d) for i, d in enumerate(datas) if d is not None]
    results = scanner.scan_many([d for _, d in readable])
    by_index = {i: r for (i, _), r in zip(readable, results)}
    for i, path in enumerate(chunk):
        result = by_index.get(i)
        if isinstance(result, MediaError):
            out.append(Outcome(path, None, str(result)))
        elif result is None:
            out.append(Outcome(path, None, errors[i]))
        else:
            out.append(Outcome(path, result, None))
    return out


def as_json(o: Outcome) -> dict:
    if o.scan is None:
        return {"path": str(o.path), "error": o.error}
    s = o.scan
    h = s.hashes
    return {
        "path": str(o.path),
        "label": s.label,
        "nudity": [{"class": d.label, "score": round(d.score, 4), "box": list(d.box)} for d in s.detections],
        "nsfw": None if s.nsfw is None else round(s.nsfw, 4),
        "hashes": {"pdq": h.pdq, "pdq_quality": h.pdq_quality, "phash": h.phash, "dhash": h.dhash, "sha256": h.sha256},
        "manipulation": manipulation_json(s),
        "ms": round(s.timings_ms.get("total", 0.0), 1),
    }


def manipulation_json(s: Scan) -> dict:
    """Evidence of manipulation; an empty list means nothing was found, never that the image is authentic."""
    out: dict = {
        "provenance": [{"source": f.source, "signal": f.signal, "detail": f.detail, "generator": f.generator} for f in s.provenance],
        "derived_from": [],
    }
    if s.synthetic is not None:
        out["synthetic"] = round(s.synthetic, 4)
    return out


def as_text(o: Outcome) -> str:
    if o.scan is None:
        return f"error    {o.path}: {o.error}"
    s = o.scan
    why = ", ".join(f"{h.label} {h.score:.2f}" for h in s.hits)
    if s.nsfw is not None:
        why = f"{why}; nsfw {s.nsfw:.2f}" if why else f"nsfw {s.nsfw:.2f}"
    return f"{s.label:<8} {o.path}  ({why})"


def run(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    from bot.config import load_config  # config is only needed here

    settings = load_config(args.config).detectors if args.config else DetectorSettings()
    paths = args.paths or [sample_dir()]
    missing = [p for p in paths if not p.exists()]
    if missing:
        print(f"vigil scan: no such file or folder: {missing[0]}", file=err)
        return 2
    files = collect(paths)
    scanner = Scanner(settings)
    labels: Counter[str] = Counter()
    progress = None
    if err.isatty() and len(files) > 1:
        from tqdm import tqdm

        progress = tqdm(total=len(files), unit="img", file=err, leave=False)
    started = time.perf_counter()
    for outcome in scan_files(scanner, files):
        labels[outcome.scan.label if outcome.scan else "error"] += 1
        line = json.dumps(as_json(outcome), ensure_ascii=False) if args.json else as_text(outcome)
        if progress is not None:
            progress.write(line, file=out)
            progress.update()
        else:
            print(line, file=out, flush=args.json)
    if progress is not None:
        progress.close()
    elapsed = time.perf_counter() - started
    rate = len(files) / elapsed if elapsed > 0 else 0.0
    counts = ", ".join(f"{labels[k]} {k}" for k in ("clean", "review", "nudity", "error"))
    print(f"scanned {len(files)} files in {elapsed:.1f} s ({rate:.1f} images/s): {counts}", file=err if args.json else out)
    return 0
