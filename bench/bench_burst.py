"""A burst in one chat: 40 copies of a blocked image posted at once, the chat under flood control.

Vigil runs in-process with its real models against the Bot API emulator. An admin blocks one
image; then a member posts 40 recompressed, resized copies of it in the same group at once. The
emulator answers 429 (``retry_after``) to the first delete call naming each message, as a group
under flood control does. Latency runs from the moment the emulator has the update to the
successful delete call that removed that message. Runs in the same conditions: deletes one
by one, each image waiting for its own ([pipeline] batch_deletes = false, the behaviour before
batching); batched per chat behind one rate-limit gate with one image of the chat in flight (the
scheduling before a chat's images overlapped); then the default (batched, as many of the chat's
images in flight as scan threads). Each line also says where the CPU went: the process's CPU
seconds from the first post to the last delete, and how much of it was inside Scanner.scan (the
rest: the event loop, the emulator, SQLite, list matching). Target: every hit deleted within 5 s
of its arrival.

    .venv/bin/python bench/bench_burst.py [--images 40] [--retry-after 1] [--workers 2] [--runs 1]
                                          [--batched-only] [--per-chat 1 2 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_telegram import jpeg, originals  # noqa: E402
from bench.common import telegram_config  # noqa: E402
from tests.support.botapi import BotApiEmulator, full_rights  # noqa: E402
from tests.support.vigil_harness import TOKEN, running_vigil  # noqa: E402

TARGET_S = 5.0


def write_config(tmp: Path, url: str, workers: int, batch: bool) -> Path:
    return telegram_config(tmp, url, workers, f"batch_deletes = {'true' if batch else 'false'}")


def deleted_at(emu: BotApiEmulator, chat: int) -> dict[int, float]:
    """Message id -> time of the successful delete call that removed it."""
    out: dict[int, float] = {}
    for c in emu.calls:
        if not c.ok or int(c.params.get("chat_id", 0)) != chat:
            continue
        if c.method == "deleteMessage":
            out.setdefault(int(c.params["message_id"]), c.time)
        elif c.method == "deleteMessages":
            for mid in c.params["message_ids"]:
                out.setdefault(int(mid), c.time)
    return out


class ScanClock:
    """CPU seconds spent inside Scanner.scan (each call on its own thread: thread time)."""

    def __init__(self, scanner) -> None:
        self.cpu = 0.0
        self.calls = 0
        self._lock = threading.Lock()
        real = scanner.scan

        def timed(*a, **k):
            start = time.thread_time()
            try:
                return real(*a, **k)
            finally:
                with self._lock:
                    self.cpu += time.thread_time() - start
                    self.calls += 1

        scanner.scan = timed


async def one_run(args: argparse.Namespace, batch: bool, per_chat: int | None) -> dict:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        async with BotApiEmulator(token=TOKEN) as emu:
            owner = emu.add_user("Owner", username="owner")
            emu.start_private(owner)
            member = emu.add_user("Raider")
            chat = emu.add_group("Group", creator=owner, members=[member], bot_rights=full_rights())
            image = originals(1)[0]
            copies = [jpeg(image.resize((960 - 8 * k, 720 - 6 * k)), 60 + k % 30) for k in range(args.images)]
            # the emulator makes the smaller photo sizes in this process: done before the burst
            elsewhere = emu.add_group("Elsewhere", creator=owner, bot_present=False)
            refs = [emu.upload(c, kind="photo", mime="image/jpeg") for c in copies]
            for ref in refs:
                emu.post_photo(elsewhere, owner, ref)
            async with running_vigil(write_config(tmp, emu.url, args.workers, batch)) as app:
                core = app.core
                assert core is not None
                if per_chat is not None:  # 1: one image of a chat in flight, as before the chat's images overlapped
                    core.pipeline.per_chat = per_chat
                scans = ScanClock(core.scanner)
                mid = emu.post_photo(chat, member, jpeg(image, 90))
                emu.post_text(chat, owner, "/block", reply_to=mid)
                await emu.wait_for(lambda: mid in deleted_at(emu, chat), timeout=300)
                await asyncio.sleep(1)
                emu.flood_new_deletes(args.retry_after)
                posted: dict[int, float] = {}
                cpu, scan_cpu, started = time.process_time(), scans.cpu, time.time()
                for ref in refs:
                    posted[emu.post_photo(chat, member, ref)] = time.time()
                await emu.wait_for(lambda: set(posted) <= set(deleted_at(emu, chat)), timeout=900)
                cpu, scan_cpu, wall = time.process_time() - cpu, scans.cpu - scan_cpu, time.time() - started
                done = deleted_at(emu, chat)
                calls = [
                    c
                    for c in emu.calls
                    if c.method in ("deleteMessage", "deleteMessages") and c.time >= min(posted.values())
                ]
    lat = sorted(done[m] - t for m, t in posted.items())
    q = statistics.quantiles(lat, n=100)
    return {
        "p50": q[49],
        "p99": q[98],
        "max": lat[-1],
        "within": sum(v <= TARGET_S for v in lat),
        "n": len(lat),
        "calls": len(calls),
        "limited": sum(c.status == 429 for c in calls),
        "cpu": cpu,
        "scan_cpu": scan_cpu,
        "wall": wall,
    }


async def main(args: argparse.Namespace) -> None:
    print(
        f"{args.images} copies of a blocked image posted at once in one group; the first delete call naming "
        f"each message is answered 429 retry_after={args.retry_after}; {args.workers} scan workers"
    )
    # before: one delete per image, one image of the chat in flight; then batched deletes with one
    # image of the chat in flight (main before its images overlapped), then the default
    modes = [("one by one (before)", False, 1), ("batched, 1 in flight", True, 1), ("batched (default)", True, None)]
    if args.per_chat:
        modes = [(f"batched, {n} in flight", True, n) for n in args.per_chat]
    p99s: dict[str, list[float]] = {}
    for _ in range(args.runs):
        for name, batch, per_chat in modes[1:] if args.batched_only else modes:
            r = await one_run(args, batch, per_chat)
            p99s.setdefault(name, []).append(r["p99"])
            print(
                f"{name:>22}: arrival -> delete p50 {r['p50']:.2f} s, p99 {r['p99']:.2f} s, max {r['max']:.2f} s; "
                f"{r['within']}/{r['n']} within {TARGET_S:.0f} s (target: all); "
                f"{r['calls']} delete calls, {r['limited']} answered 429; CPU {r['cpu']:.1f} s in "
                f"{r['wall']:.1f} s, {r['scan_cpu']:.1f} s of it in scans; load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    if args.runs > 1:
        for name, values in p99s.items():
            v = sorted(values)
            print(
                f"{name:>22}: p99 over {len(v)} runs: min {v[0]:.2f} s, median {statistics.median(v):.2f} s, "
                f"max {v[-1]:.2f} s"
            )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=40)
    ap.add_argument("--retry-after", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--runs", type=int, default=1, help="runs of each mode, one after the other")
    ap.add_argument("--batched-only", action="store_true", help="only the batched modes")
    ap.add_argument(
        "--per-chat", type=int, nargs="*", help="images of the chat in flight to compare (batched), e.g. 1 2 3"
    )
    asyncio.run(main(ap.parse_args()))
