"""`vigil scan PATH...`: check image files on this machine and report what Vigil finds."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from detectors.errors import MediaError
from detectors.scanner import Scan, Scanner
from detectors.settings import DetectorSettings

if TYPE_CHECKING:
    from bot.config import Config
    from bot.protect import Protector
    from detectors.protected import DerivedMatch

# In folders, only files that look like media are taken (sidecar .xmp/.json files
# would only add noise); a file named on the command line is always scanned, since
# decoding sniffs the content and does not trust the extension.
MEDIA_SUFFIXES = {
    ".jpg",
    ".jpeg",
    ".jpe",
    ".png",
    ".webp",
    ".gif",
    ".bmp",
    ".dib",
    ".tif",
    ".tiff",
    ".heic",
    ".heif",
    ".avif",
    ".mp4",
    ".webm",
    ".mov",
    ".m4v",
    ".mkv",
}
CHUNK = 1  # files scanned per model call: batches gained nothing on 2 cores and cost memory


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "scan",
        help="scan image files and folders on this machine",
        description="Scan images (files, or folders recursively). With no path, scans the sample images "
        "that ship with Vigil. Nothing is uploaded, stored or changed.",
    )
    p.add_argument("paths", nargs="*", type=Path, metavar="PATH")
    p.add_argument("--json", action="store_true", help="one JSON object per image per line on stdout")
    p.add_argument("--config", type=Path, metavar="FILE", help="take thresholds, limits and models from this config")
    p.add_argument("--workers", type=int, metavar="N", help="files scanned at once (default: one per core)")
    p.add_argument(
        "--protected",
        action="store_true",
        help="also look each image up among the protected photos in the store (the config's data_dir): "
        "manipulation.derived_from names the photos it was made from",
    )
    p.set_defaults(func=run)


def sample_dir() -> Path:
    return Path(str(resources.files("bot").joinpath("samples")))


def collect(paths: Sequence[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in MEDIA_SUFFIXES))
        else:
            files.append(path)
    return files


@dataclass(frozen=True)
class Outcome:
    path: Path
    scan: Scan | None
    error: str | None


def scan_files(
    scanner: Scanner, files: Sequence[Path], workers: int | None = None, *, signals: bool = False
) -> Iterator[Outcome]:
    """Outcomes in the order of ``files``; chunks are scanned in parallel, one per core.
    ``signals``: also compute each frame's local fingerprint (for ``--protected``)."""
    chunks = [files[start : start + CHUNK] for start in range(0, len(files), CHUNK)]
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        for outcomes in pool.map(lambda chunk: scan_chunk(scanner, chunk, signals=signals), chunks):
            yield from outcomes


def scan_chunk(scanner: Scanner, chunk: Sequence[Path], *, signals: bool = False) -> list[Outcome]:
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
    batch = [d for _, d in readable]
    results = scanner.scan_many(batch, list_signals=True) if signals else scanner.scan_many(batch)
    by_index = {i: r for (i, _), r in zip(readable, results, strict=False)}
    for i, path in enumerate(chunk):
        result = by_index.get(i)
        if isinstance(result, MediaError):
            out.append(Outcome(path, None, str(result)))
        elif result is None:
            out.append(Outcome(path, None, errors[i]))
        else:
            out.append(Outcome(path, result, None))
    return out


def as_json(o: Outcome, derived: Sequence[DerivedMatch] = ()) -> dict[str, Any]:
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
        "manipulation": manipulation_json(s, derived),
        "ms": round(s.timings_ms.get("total", 0.0), 1),
    }


def manipulation_json(s: Scan, derived: Sequence[DerivedMatch] = ()) -> dict[str, Any]:
    """Evidence of manipulation; an empty list means nothing was found, never that the image is authentic.

    ``derived``: ``bot.protect.DerivedMatch`` values (with ``--protected``): the protected
    photos the image was made from, with the share of the image that matches and the transform.
    """
    out: dict[str, Any] = {
        "provenance": [
            {"source": f.source, "signal": f.signal, "detail": f.detail, "generator": f.generator} for f in s.provenance
        ],
        "derived_from": [d.as_json() for d in derived],
    }
    if s.synthetic is not None:
        out["synthetic"] = round(s.synthetic, 4)
    return out


def as_text(o: Outcome, derived: Sequence[DerivedMatch] = ()) -> str:
    if o.scan is None:
        return f"error    {o.path}: {o.error}"
    s = o.scan
    why = ", ".join(f"{h.label} {h.score:.2f}" for h in s.hits)
    if s.nsfw is not None:
        why = f"{why}; nsfw {s.nsfw:.2f}" if why else f"nsfw {s.nsfw:.2f}"
    for d in derived:
        made = f"made from a photo of {d.owner} (#{d.photo.id}, {d.match_fraction:.0%} of the image)"
        why = f"{why}; {made}" if why else made
    return f"{s.label:<8} {o.path}  ({why})"


def load_protected(config: Config) -> Protector:
    """The protected photos of the store in the config's data_dir, in memory (read only)."""
    import asyncio

    from bot.errors import StoreError
    from bot.protect import Protector
    from bot.store.factory import open_store

    if not config.database_url and not config.database.exists():
        raise StoreError(
            f"--protected: no database at {config.database}; pass the bot's --config (its data_dir holds the store)"
        )

    async def load() -> Protector:
        store = await open_store(config)
        try:
            protector = Protector(store, config.protect, config.detectors.limits)
            await protector.load()
            return protector  # matching needs only the index in memory: the store may close
        finally:
            await store.close()

    return asyncio.run(load())


def derived_of(protector: Protector, scan: Scan) -> tuple[DerivedMatch, ...]:
    """The protected photos a scanned image was made from, as the bot would count them."""
    from bot.protect import derived_evidence, scan_frames

    return derived_evidence(protector.match(scan_frames(scan)), label=scan.label, sender=None)


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    from bot.config import load_config  # config is only needed here

    config = load_config(args.config) if args.config or args.protected else None
    settings = config.detectors if config is not None and args.config else DetectorSettings()
    paths = args.paths or [sample_dir()]
    missing = [p for p in paths if not p.exists()]
    if missing:
        print(f"vigil scan: no such file or folder: {missing[0]}", file=err)
        return 2
    files = collect(paths)
    protector = None
    if args.protected:
        assert config is not None
        protector = load_protected(config)
    from detectors.memory import return_large_buffers

    return_large_buffers()  # decodes in parallel threads must not each keep their peak
    scanner = Scanner(settings)
    labels: Counter[str] = Counter()
    progress = None
    if err.isatty() and len(files) > 1:
        from tqdm import tqdm

        progress = tqdm(total=len(files), unit="img", file=err, leave=False)
    started = time.perf_counter()
    for outcome in scan_files(scanner, files, args.workers, signals=protector is not None):
        labels[outcome.scan.label if outcome.scan else "error"] += 1
        derived = derived_of(protector, outcome.scan) if protector is not None and outcome.scan else ()
        line = json.dumps(as_json(outcome, derived), ensure_ascii=False) if args.json else as_text(outcome, derived)
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
    print(
        f"scanned {len(files)} files in {elapsed:.1f} s ({rate:.1f} images/s): {counts}", file=err if args.json else out
    )
    return 0
