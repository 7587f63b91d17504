"""Telegram latency under a burst: 200 images over 20 groups through the Bot API emulator.

Vigil runs in-process with its real models (NudeNet and Open-NSFW); every image in the burst
is a recompressed, resized copy of one an admin blocked beforehand, so every image is a hit
that goes through the whole pipeline (download, decode, hashes, both models, list match,
decision, delete, alerts). Latency is measured from the moment the emulator has the update
(the member "posts") to the deleteMessage call for it. Prints p50, p90, p99, the max, the
throughput and the resident memory. ``--rate`` spreads the burst over time: with every image
posted at once, latency is mostly time spent waiting in the queue behind the others.

    .venv/bin/python bench/bench_telegram.py [--groups 20] [--images 200] [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import rss_mb  # noqa: E402
from tests.support.botapi import BotApiEmulator, full_rights  # noqa: E402
from tests.support.vigil_harness import TOKEN, running_vigil  # noqa: E402


def jpeg(im: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def originals(n: int) -> list[Image.Image]:
    base = [Image.open(p).convert("RGB") for p in sorted((ROOT / "tests" / "images").glob("*.jpg"))]
    rng = np.random.default_rng(3)
    out = []
    for i in range(n):
        im = base[i % len(base)]
        w, h = im.size
        x, y = (int(v) for v in rng.integers(0, 40, 2))
        im = im.crop((x, y, w - 40 + x, h - 40 + y)).resize((1280, 960), Image.Resampling.BICUBIC)
        out.append(ImageEnhance.Color(im).enhance(float(rng.uniform(0.6, 1.4))))
    return out


def write_config(tmp: Path, url: str, workers: int, threads: int) -> Path:
    path = tmp / "config.toml"
    path.write_text(
        f"""
[vigil]
data_dir = "{tmp / "data"}"
log_level = "WARNING"
[telegram]
base_url = "{url}/bot"
base_file_url = "{url}/file/bot"
poll_timeout = 1
[pipeline]
workers = {workers}
[detectors]
threads = {threads}
"""
    )
    return path


async def main(args: argparse.Namespace) -> None:
    per_group = args.images // args.groups
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        async with BotApiEmulator(token=TOKEN) as emu:
            owner = emu.add_user("Owner", username="owner")
            emu.start_private(owner)
            groups = []
            for g in range(args.groups):
                member = emu.add_user(f"Member {g}")
                chat = emu.add_group(f"Group {g}", creator=owner, members=[member], bot_rights=full_rights())
                groups.append((chat, member))
            images = originals(args.groups)
            copies = [
                [jpeg(images[g].resize((960 - 8 * k, 720 - 6 * k)), 60 + k) for k in range(per_group)]
                for g in range(args.groups)
            ]
            # Telegram's servers make the smaller photo sizes; the emulator does it in this very
            # process, so it is done before the burst (in a chat without the bot) to keep it out
            # of the measured latency.
            elsewhere = emu.add_group("Elsewhere", creator=owner, bot_present=False)
            refs = [[emu.upload(c, kind="photo", mime="image/jpeg") for c in row] for row in copies]
            for row in refs:
                for ref in row:
                    emu.post_photo(elsewhere, owner, ref)
            async with running_vigil(write_config(tmp, emu.url, args.workers, args.threads)):
                # each group's admin blocks one image (not timed)
                for g, (chat, member) in enumerate(groups):
                    mid = emu.post_photo(chat, member, jpeg(images[g], 90))
                    emu.post_text(chat, owner, "/block", reply_to=mid)
                await emu.wait_for(lambda: len(emu.calls_to("deleteMessage")) >= args.groups, timeout=300)
                await asyncio.sleep(1)
                before = len(emu.calls_to("deleteMessage"))
                posted: dict[tuple[int, int], float] = {}
                started = time.time()
                gap = 1.0 / args.rate if args.rate else 0.0
                for k in range(per_group):  # interleaved across groups, as a burst would be
                    for g, (chat, member) in enumerate(groups):
                        mid = emu.post_photo(chat, member, refs[g][k])
                        posted[(chat, mid)] = time.time()
                        if gap:
                            await asyncio.sleep(gap)
                total = len(posted)
                await emu.wait_for(lambda: len(emu.calls_to("deleteMessage")) >= before + total, timeout=900)
                elapsed = time.time() - started
                deleted = {
                    (int(c.params["chat_id"]), int(c.params["message_id"])): c.time
                    for c in emu.calls_to("deleteMessage")
                    if c.ok
                }
                latencies = sorted((deleted[key] - t) * 1000 for key, t in posted.items() if key in deleted)
                rss = rss_mb()
    q = statistics.quantiles(latencies, n=100)
    arrival = f"arriving at {args.rate:g} images/s" if args.rate else "all posted at once"
    print(f"{len(latencies)}/{total} images deleted, over {args.groups} groups, {arrival}, {args.workers} scan workers")
    print(
        f"latency from the update to deleteMessage: p50 {q[49]:.0f} ms, p90 {q[89]:.0f} ms, p99 {q[98]:.0f} ms, "
        f"max {latencies[-1]:.0f} ms"
    )
    print(f"throughput: {total / elapsed:.1f} images/s over the burst ({elapsed:.1f} s)")
    print(f"resident memory of the process (bot, models, emulator): {rss:.0f} MB")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--groups", type=int, default=20)
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rate", type=float, default=0, help="images posted per second (0: all at once)")
    ap.add_argument("--threads", type=int, default=0, help="onnxruntime threads per model (0: its default)")
    asyncio.run(main(ap.parse_args()))
