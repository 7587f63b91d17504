"""Matrix latency under a burst: 200 images over 20 rooms on a real Synapse (loopback).

Vigil runs in-process with its real models (NudeNet and Open-NSFW) and the Matrix adapter;
Synapse runs beside it (``scripts/install-synapse``). Every image in the burst is a
recompressed, resized copy of one a room's owner blocked beforehand (`!vigil block` as a reply),
so every image is a hit that goes through the whole pipeline (download, decode, hashes, both
models, list match, decision, redaction, alerts). The member uploads the files first; the burst
is the 200 m.image events, sent interleaved across the rooms.

Latency is what the adapter records per event: from the moment the sync that carried the
event returned to Vigil, to the moment the homeserver accepted the redaction. Of that, the share
Synapse takes is the time the adapter waited on it for that message (its download, the
redaction); the rest is Vigil's (queue, scan, decision, and the event loop's other work). Every
request Vigil sent to Synapse during the burst is counted by kind, per image. As peers measured
in the same run: one scan of the same images on their own (no queue, no network), and a plain
client's redaction round trip to the same Synapse. ``--rate`` spreads the burst over time.

    scripts/install-synapse && .venv/bin/python bench/bench_matrix.py [--rooms 20] [--images 200] [--rate 0]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import os
import secrets
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
from tests.support.matrix_client import HumanClient  # noqa: E402
from tests.support.matrix_harness import running_matrix_vigil, wait_joined  # noqa: E402
from tests.support.synapse import Synapse  # noqa: E402


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


def write_config(tmp: Path, synapse: Synapse, bot_id: str, workers: int) -> Path:
    path = tmp / "config.toml"
    path.write_text(
        f"""
[vigil]
data_dir = "{tmp / "data"}"
log_level = "WARNING"
[matrix]
homeserver = "{synapse.base_url}"
user_id = "{bot_id}"
sync_timeout = 5
[telegram]
enabled = false
[pipeline]
workers = {workers}
[ops]
listen = ""
"""
    )
    return path


def cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU time of a process so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def quantiles(values: list[float]) -> str:
    q = statistics.quantiles(values, n=100)
    return f"p50 {q[49]:.0f} ms, p90 {q[89]:.0f} ms, p99 {q[98]:.0f} ms, max {max(values):.0f} ms"


async def main(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("nio").setLevel(logging.ERROR)
    per_room = args.images // args.rooms
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        synapse = Synapse(tmp / "synapse")
        synapse.start()
        try:
            password = secrets.token_hex(8)
            bot = synapse.register("vigil", password)
            owner_user = synapse.register("owner", secrets.token_hex(8))
            member_user = synapse.register("member", secrets.token_hex(8))
            images = originals(args.rooms)
            copies = [
                [jpeg(images[r].resize((960 - 8 * k, 720 - 6 * k)), 60 + k) for k in range(per_room)]
                for r in range(args.rooms)
            ]
            async with HumanClient(synapse, owner_user) as owner, HumanClient(synapse, member_user) as member:
                async with running_matrix_vigil(
                    write_config(tmp, synapse, bot.user_id, args.workers), {"VIGIL_MATRIX_PASSWORD": password}
                ) as app:
                    core = app.core
                    assert core is not None and synapse.process is not None, "vigil and synapse are running"
                    synapse_pid = synapse.process.pid
                    platform = core.platforms["matrix"]
                    platform.offer_reactions = not args.no_reactions
                    say("vigil started; making rooms")
                    rooms = []
                    for r in range(args.rooms):
                        room_id = await owner.create_room(
                            f"Room {r}", invite=[bot.user_id, member.user_id], power_levels={bot.user_id: 50}
                        )
                        await member.join(room_id)
                        rooms.append(room_id)
                    for room_id in rooms:
                        await wait_joined(owner, room_id, bot.user_id, timeout=60)
                    say("rooms ready; blocking one image per room")
                    # each room's owner blocks one image (not timed)
                    for r, room_id in enumerate(rooms):
                        original = await member.send_image(room_id, jpeg(images[r], 90), "image/jpeg")
                        while original not in platform.timings:
                            await asyncio.sleep(0.05)
                        await owner.reply(room_id, original, "!vigil block")
                    while sum(1 for t in platform.timings.values() if t.redacted is not None) < args.rooms:
                        await asyncio.sleep(0.1)
                    await asyncio.sleep(1)
                    say("blocked; uploading the burst's files")
                    # the files are uploaded before the burst: the burst is the events
                    contents = [
                        [await member.media_content("m.image", c, "image/jpeg", "photo.jpg") for c in row]
                        for row in copies
                    ]
                    await member.sync()
                    sent: list[str] = []
                    gap = 1.0 / args.rate if args.rate else 0.0
                    limit = asyncio.Semaphore(16)

                    async def post(room_id: str, content: dict) -> None:
                        async with limit:
                            response = await member.nio.room_send(room_id, "m.room.message", content)
                            sent.append(response.event_id)

                    say("burst")
                    cpu_before = (cpu_seconds(), cpu_seconds(synapse_pid))
                    calls_before = platform.calls.snapshot()
                    started = time.perf_counter()
                    tasks = []
                    for k in range(per_room):  # interleaved across rooms, as a burst would be
                        for r, room_id in enumerate(rooms):
                            tasks.append(asyncio.create_task(post(room_id, contents[r][k])))
                            if gap:
                                await asyncio.sleep(gap)
                    await asyncio.gather(*tasks)
                    deadline = time.monotonic() + 900
                    while not all(platform.timings.get(e) and platform.timings[e].redacted is not None for e in sent):
                        if time.monotonic() > deadline:
                            break
                        await asyncio.sleep(0.05)
                    elapsed = time.perf_counter() - started
                    # the alerts' reactions may still be on their way: they are part of each hit's cost
                    quiet = time.monotonic() + 120
                    while (not platform._offers.empty() or platform._offering) and time.monotonic() < quiet:
                        await asyncio.sleep(0.1)
                    calls_after = platform.calls.snapshot()
                    cpu_vigil = cpu_seconds() - cpu_before[0]
                    cpu_synapse = cpu_seconds(synapse_pid) - cpu_before[1]
                    clocks = [c for e in sent if (c := platform.timings.get(e)) and c.latency is not None]
                    latencies = sorted(c.latency * 1000 for c in clocks)
                    waited = sorted(c.waited * 1000 for c in clocks)
                    vigil_share = sorted((c.latency - c.waited) * 1000 for c in clocks)
                    stages: dict[str, list[float]] = {}
                    for c in clocks:
                        for stage, seconds in (c.stages() or {}).items():
                            stages.setdefault(stage, []).append(seconds * 1000)
                    rss = rss_mb()
                    # peers in the same run: one scan alone, and a plain redaction round trip
                    scanner = core.scanner
                    scans = []
                    for row in copies[:4]:
                        for data in row[:5]:
                            t0 = time.perf_counter()
                            await asyncio.to_thread(scanner.scan, data)
                            scans.append((time.perf_counter() - t0) * 1000)
                    redacts = []
                    for _ in range(20):
                        event_id = await owner.send_text(rooms[0], "x")
                        t0 = time.perf_counter()
                        await owner.redact(rooms[0], event_id)
                        redacts.append((time.perf_counter() - t0) * 1000)
        finally:
            synapse.stop()
    total = len(sent)
    arrival = f"arriving at {args.rate:g} images/s" if args.rate else "all sent at once"
    print(f"{len(latencies)}/{total} images redacted, over {args.rooms} rooms, {arrival}, {args.workers} scan workers")
    print(f"latency from the bot's sync to the redaction: {quantiles(latencies)}")
    print(f"of which waiting on Synapse (download, redaction): {quantiles(waited)}")
    print(f"of which Vigil (queue, scan, decision, event loop): {quantiles(vigil_share)}")
    for stage, values in stages.items():
        print(f"  stage {stage}: {quantiles(sorted(values))}")
    print(f"Synapse's share of the total latency: {100 * sum(waited) / sum(latencies):.0f}%")
    count = calls_after[0] - calls_before[0]
    seconds = {k: v - calls_before[1].get(k, 0.0) for k, v in calls_after[1].items()}
    per_kind = ", ".join(
        f"{kind} {n / total:.2f} ({1000 * seconds[kind] / n:.0f} ms each)" for kind, n in count.most_common()
    )
    print(f"requests to Synapse per image over the burst: {sum(count.values()) / total:.2f} ({per_kind})")
    print(f"throughput: {total / elapsed:.1f} images/s over the burst ({elapsed:.1f} s)")
    scan_ms, redact_ms = statistics.median(scans), statistics.median(redacts)
    q = statistics.quantiles(latencies, n=100)
    print(
        f"peers in this run: one scan alone {scan_ms:.0f} ms (median), a client's redaction round trip "
        f"{redact_ms:.0f} ms (median)"
    )
    print(
        f"ratios: p50 / (scan + redaction) = {q[49] / (scan_ms + redact_ms):.1f}x; p99 / (scan + redaction) = "
        f"{q[98] / (scan_ms + redact_ms):.1f}x"
    )
    print(
        f"CPU time over the burst: this process (Vigil and the test clients) {1000 * cpu_vigil / total:.0f} ms per "
        "image, "
        f"Synapse {1000 * cpu_synapse / total:.0f} ms per image (2 cores shared by both, and by other work)"
    )
    print(f"resident memory of the process (bot, models, test clients; Synapse apart): {rss:.0f} MB")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rooms", type=int, default=20)
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rate", type=float, default=0, help="images sent per second (0: all at once)")
    ap.add_argument("--no-reactions", action="store_true", help="alerts without the choice reactions Vigil adds")
    asyncio.run(main(ap.parse_args()))
