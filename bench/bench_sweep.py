"""Benchmark of the sweep (bot/sweep.py) against a full seen-images window.

A real SQLite store is filled with N kept images (default 100,000: 48 hours of a busy instance),
spread over 20 groups, through the store's own ``add_seen``. Their fingerprints are real ORB query
fingerprints (cut to ``[sweep] fingerprint_points``, mirror descriptors kept) of generated scenes
and of crops, turns and zooms of them, reused round-robin; their PDQ and pHash are random. Two
images are planted: a recompressed copy of a photo (found by PDQ) and an undress-like edit of
another (found by local features).

Reported: the cost of recording one image; the window's size on disk (database file after a
checkpoint) per 100,000 images; then, with the store's window full, the time to sweep
1. one new entry of a group's own block list (that group's 5,000 images),
2. one new entry of an instance list every group follows (all N images),
3. one newly protected photo (all N images, local features),
with the process's memory growth and the planted copy found each time. CPU work runs in one
worker thread, as the bot's pool would give it. The machine is shared: CPU time is printed next
to wall time.

    .venv/bin/python bench/bench_sweep.py                 # 100,000 images (~10 min, ~3 GB of disk)
    .venv/bin/python bench/bench_sweep.py --images 10000  # quicker
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import random
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from bench.common import rss_mb  # noqa: E402
from bot.admins import Admins  # noqa: E402
from bot.config import GroupDefaults, ProtectConfig, SweepConfig  # noqa: E402
from bot.group_settings import SettingsLookup  # noqa: E402
from bot.i18n import Translators  # noqa: E402
from bot.lists import HashLists  # noqa: E402
from bot.protect import Protector  # noqa: E402
from bot.seen_window import SeenWindow, compact  # noqa: E402
from bot.store import Store  # noqa: E402
from bot.store.seen import SeenFrame  # noqa: E402
from bot.sweep import Sweeper  # noqa: E402
from detectors.hashing import perceptual_hashes  # noqa: E402
from detectors.localmatch import fingerprint  # noqa: E402
from tests.support import imagegen  # noqa: E402
from tests.support import transforms as tf  # noqa: E402

T = "telegram"
GROUPS = 20


def jpeg(rgb: np.ndarray, quality: int = 85) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def pool_of_fingerprints(points: int, size: int) -> list[bytes]:
    """Real query fingerprints of generated scenes and crops, turns and zooms of them."""
    out: list[bytes] = []
    seed = 200
    while len(out) < size:
        for kind in imagegen.SCENES:
            rgb = imagegen.scene(kind, seed, (1280, 960))
            for view in (rgb, rgb[100:860, 200:1100], np.rot90(rgb), rgb[::2, ::2]):
                out.append(compact(fingerprint(np.ascontiguousarray(view)), points).to_bytes())
        seed += 1
    return out[:size]


def whole_hashes(rgb: np.ndarray) -> dict[str, Any]:
    pdq, quality, phash, _ = perceptual_hashes(rgb)
    return {"pdq": pdq, "pdq_quality": quality, "phash": phash}


async def fill(store: Store, n: int, pool: list[bytes], planted: dict[int, SeenFrame]) -> float:
    """N kept images through add_seen; returns seconds per image."""
    rnd = random.Random(7)
    now = datetime.now(UTC)
    started = time.perf_counter()
    for i in range(n):
        chat = f"-100{i % GROUPS}"
        frame = planted.get(i) or SeenFrame(
            0, f"{rnd.getrandbits(256):064x}", 90, f"{rnd.getrandbits(64):016x}", pool[i % len(pool)]
        )
        await store.add_seen(
            T,
            chat,
            i + 1,
            variant="",
            sender_id=str(1000 + i % 500),
            posted_at=now,
            sha256=f"{rnd.getrandbits(256):064x}",
            frames=[frame],
            event={"chat": {"id": chat}, "message_id": str(i + 1), "variant": ""},
        )
    return (time.perf_counter() - started) / n


async def timed(label: str, job: Any) -> Any:
    rss, cpu, wall = rss_mb(), time.process_time(), time.perf_counter()
    result = await job
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    found = sum(len(v) for v in result.queued.values()) + sum(result.too_old.values())
    print(
        f"{label}: {wall:.2f} s wall, {cpu:.2f} s CPU, {result.looked} kept images looked at, "
        f"{found} found, RSS +{max(0.0, rss_mb() - rss):.0f} MB"
    )
    return result


async def main(args: argparse.Namespace) -> None:
    photos = tf.photos()
    settings = SweepConfig(fingerprint_points=args.points, max_total=max(args.images, 100), batch=args.batch)
    blocked = photos["coffee"]
    protected = photos["chelsea"]
    print(f"fingerprint pool: {args.pool} real fingerprints ...", flush=True)
    pool = pool_of_fingerprints(args.points, args.pool)
    copy = np.asarray(Image.open(io.BytesIO(jpeg(blocked[::2, ::2], 60))).convert("RGB"))
    fake = tf.undress_like(protected, region="centre", share=0.35, fill="noise")
    copy_h, fake_h = whole_hashes(copy), whole_hashes(fake)
    fake_fp = compact(fingerprint(fake), args.points).to_bytes()
    # planted in group 3 (image i is in group i % GROUPS): the copy (PDQ) and the fake (local features)
    at_copy = args.images // 2 // GROUPS * GROUPS + 3
    at_fake = args.images // 3 // GROUPS * GROUPS + 3
    planted = {
        at_copy: SeenFrame(0, copy_h["pdq"], copy_h["pdq_quality"], copy_h["phash"], pool[0]),
        at_fake: SeenFrame(0, fake_h["pdq"], fake_h["pdq_quality"], fake_h["phash"], fake_fp),
    }
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp) / "vigil.sqlite3"
        store = await Store.open(path)
        print(f"filling the window with {args.images:,} images ...", flush=True)
        per_image = await fill(store, args.images, pool, planted)
        await store._db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size = path.stat().st_size
        images, frames = await store.seen_count()
        print(f"recording: {per_image * 1000:.2f} ms per image (add_seen, one transaction each)")
        print(
            f"window on disk: {size / 2**20:.0f} MB for {images:,} images ({frames:,} frames): "
            f"{size / images * 100_000 / 2**30:.2f} GB per 100,000 images, {size / images / 1024:.1f} kB an image "
            f"({args.points} keypoints)"
        )
        executor = ThreadPoolExecutor(1, thread_name_prefix="bench-cpu")
        loop = asyncio.get_running_loop()

        async def cpu(fn: Any, *a: Any) -> Any:
            return await loop.run_in_executor(executor, fn, *a)

        lists = HashLists(cpu=cpu)
        protector = Protector(store, ProtectConfig(), cpu=cpu)
        sweeper = Sweeper(
            store=store,
            window=SeenWindow(store, settings),
            lists=lists,
            protector=protector,
            settings=SettingsLookup(store, GroupDefaults()),
            admins=Admins({}, store),
            platforms={},
            translators=Translators(),
            cpu=cpu,
            wake=lambda platform, chat: None,
        )
        own = await store.group_list(T, "-1003", "block")
        entry = await store.add_entry(own.id, **whole_hashes(blocked), added_by="bench")
        await timed("sweep, one entry of a group's own block list", sweeper.sweep_entries([entry.id]))
        shared = await store.create_list("shared", kind="block")
        for g in range(GROUPS):
            await store.follow(T, f"-100{g}", shared.id)
        entry = await store.add_entry(shared.id, **whole_hashes(blocked), added_by="bench")
        await timed("sweep, one entry of an instance list all groups follow", sweeper.sweep_entries([entry.id]))
        photo_id = await protector.add_operator_photo("bench", jpeg(protected, 92))
        await timed("sweep, one newly protected photo", sweeper.sweep_photos([photo_id]))
        executor.shutdown()
        await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=100_000, help="kept images in the window")
    parser.add_argument("--points", type=int, default=SweepConfig.fingerprint_points, help="keypoints kept")
    parser.add_argument("--batch", type=int, default=SweepConfig.batch, help="kept images per step")
    parser.add_argument("--pool", type=int, default=240, help="distinct real fingerprints reused")
    parser.add_argument("--dir", default=None, help="where the temporary database goes")
    asyncio.run(main(parser.parse_args()))
