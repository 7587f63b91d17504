"""A raid: 200 posts of 5 pictures each across 10 groups, the same few fakes over and over.

Vigil runs in-process with its real models against the Bot API emulator. The raid kit is 20
pictures; each post is an album of 5 of them. Most posts forward the kit's files (Telegram keeps
their file_unique_id), one post in four uploads the same bytes anew (a new file_unique_id: the
SHA-256 finds it). Each group's admin blocked one of the kit's pictures beforehand, so list
matching runs on every picture. Two runs in the same conditions, without and with the repeat
cache ([pipeline] repeat_cache_entries = 0, then the default): images/s from the first post to
the last image finished, model runs (Scanner.scan calls) and downloads (getFile calls).

    .venv/bin/python bench/bench_raid.py [--posts 200] [--groups 10] [--kit 20]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_telegram import jpeg, originals  # noqa: E402
from bench.common import telegram_config  # noqa: E402
from tests.support.botapi import BotApiEmulator, full_rights  # noqa: E402
from tests.support.vigil_harness import TOKEN, running_vigil  # noqa: E402

PER_POST = 5


def write_config(tmp: Path, url: str, workers: int, cache: bool) -> Path:
    return telegram_config(tmp, url, workers, "" if cache else "repeat_cache_entries = 0")


async def finished(app) -> bool:
    return not await app.core.store.pending_chats() and app.core.pipeline.depth == 0


async def one_run(args: argparse.Namespace, cache: bool) -> dict:
    rng = np.random.default_rng(11)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        async with BotApiEmulator(token=TOKEN) as emu:
            owner = emu.add_user("Owner", username="owner")
            emu.start_private(owner)
            groups = []
            for g in range(args.groups):
                member = emu.add_user(f"Raider {g}")
                groups.append(
                    (emu.add_group(f"Group {g}", creator=owner, members=[member], bot_rights=full_rights()), member)
                )
            kit = [jpeg(im.resize((1024, 768)), 80) for im in originals(args.kit)]
            forwarded = [emu.upload(b, kind="photo", mime="image/jpeg") for b in kit]
            posts = []
            for p in range(args.posts):
                picks = rng.choice(args.kit, PER_POST, replace=False)
                if p % 4 == 3:  # uploaded anew: same bytes, another file_unique_id
                    posts.append([emu.upload(kit[k], kind="photo", mime="image/jpeg") for k in picks])
                else:
                    posts.append([forwarded[k] for k in picks])
            # the emulator makes the smaller photo sizes in this process: done before the raid
            elsewhere = emu.add_group("Elsewhere", creator=owner, bot_present=False)
            for refs in posts:
                emu.post_album(elsewhere, owner, refs)
            async with running_vigil(write_config(tmp, emu.url, args.workers, cache)) as app:
                for g, (chat, member) in enumerate(groups):  # each admin blocked one picture of the kit
                    mid = emu.post_photo(chat, member, kit[g % args.kit])
                    emu.post_text(chat, owner, "/block", reply_to=mid)
                await emu.wait_for(lambda: emu.pending_updates() == 0, timeout=120)
                await emu.wait_for(
                    lambda: sum(c.ok for c in emu.calls if c.method.startswith("deleteMessage")) >= args.groups,
                    timeout=300,
                )
                while not await finished(app):
                    await asyncio.sleep(0.1)
                scans = [0]
                real = app.core.scanner.scan

                def counted(*a, **k):
                    scans[0] += 1
                    return real(*a, **k)

                app.core.scanner.scan = counted
                downloads = len(emu.calls_to("getFile"))
                started = time.time()
                for p, refs in enumerate(posts):
                    chat, member = groups[p % args.groups]
                    emu.post_album(chat, member, refs)
                await emu.wait_for(lambda: emu.pending_updates() == 0, timeout=900)
                while not await finished(app):
                    await asyncio.sleep(0.05)
                elapsed = time.time() - started
                deleted = sum(
                    len(c.params.get("message_ids", [1]))
                    for c in emu.calls
                    if c.ok and c.method in ("deleteMessage", "deleteMessages") and c.time >= started
                )
                return {
                    "images": args.posts * PER_POST,
                    "elapsed": elapsed,
                    "scans": scans[0],
                    "downloads": len(emu.calls_to("getFile")) - downloads,
                    "deleted": deleted,
                }


async def main(args: argparse.Namespace) -> None:
    print(
        f"raid: {args.posts} posts of {PER_POST} pictures over {args.groups} groups, from a kit of {args.kit} "
        f"(one post in four uploaded anew); {args.workers} scan workers"
    )
    for name, cache in (("without the repeat cache", False), ("with the repeat cache", True)):
        r = await one_run(args, cache)
        print(
            f"{name:>25}: {r['images'] / r['elapsed']:.1f} images/s ({r['images']} in {r['elapsed']:.1f} s), "
            f"{r['scans']} model runs, {r['downloads']} downloads, {r['deleted']} blocked copies deleted"
        )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--posts", type=int, default=200)
    ap.add_argument("--groups", type=int, default=10)
    ap.add_argument("--kit", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    asyncio.run(main(ap.parse_args()))
