"""Cost of circles and floods per image (bot/circles.py, bot/flood.py).

* flood counter: memory of a full counter (``tracked`` pictures, each with ``count`` copies in
  its window, the worst case) by tracemalloc, and the time of one ``note`` against the time of
  one SHA-256 of a 200 kB file (the cheapest step every image already pays), as a ratio;
* circles: the one extra store query per image (``circle_block_lists``) on a real SQLite file
  with ``--groups`` groups in circles of ``--size``, against ``lists_for_group`` (the query every
  image already makes), as a ratio.

    .venv/bin/python -m bench.bench_circles_flood
    .venv/bin/python -m bench.bench_circles_flood --tracked 100000 --count 50 --groups 2000
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import tempfile
import time
import tracemalloc
from pathlib import Path

from bot.config import FloodConfig
from bot.flood import FloodCounter
from bot.store import Store


def flood(tracked: int, count: int) -> None:
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    counter = FloodCounter(FloodConfig(count=count, window=10**6, hold=60, tracked=tracked))
    for i in range(tracked):
        keys = [f"sha256:{i:064x}", f"pdq:{i:064x}"]
        for c in range(count - 1):  # one short of a flood: every slot full, nothing held
            counter.note(keys, ("telegram", f"-{c}"), f"{i}:{c}")
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    print(f"flood counter: {tracked} pictures x {count} copies (2 keys each): {used / 2**20:.1f} MiB")
    n = 20000
    data = os.urandom(200_000)
    t0 = time.perf_counter()
    for i in range(n):
        counter.note([f"sha256:{i % tracked:064x}"], ("telegram", "-1"), f"x{i}")
    note = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    for _ in range(200):
        hashlib.sha256(data).digest()
    sha = (time.perf_counter() - t0) / 200
    print(f"flood note: {note * 1e6:.1f} us per image, {note / sha:.3f} x a SHA-256 of 200 kB")


async def circles(groups: int, size: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = await Store.open(Path(tmp) / "vigil.sqlite3")
        try:
            members = [("telegram", f"-{100000 + i}") for i in range(groups)]
            for p, c in members:
                await store.group_list(p, c, "block")
                await store.group_list(p, c, "allow")
            for k in range(0, groups, size):
                await store.add_to_circle(f"c{k}", members[k : k + size])
            n = 2000
            t0 = time.perf_counter()
            for i in range(n):
                await store.lists_for_group(*members[i % groups])
            base = (time.perf_counter() - t0) / n
            t0 = time.perf_counter()
            for i in range(n):
                await store.circle_block_lists(*members[i % groups])
            extra = (time.perf_counter() - t0) / n
        finally:
            await store.close()
    print(
        f"circles: {groups} groups in circles of {size}: circle_block_lists {extra * 1e6:.0f} us per image, "
        f"{extra / base:.2f} x lists_for_group"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracked", type=int, default=FloodConfig.tracked)
    ap.add_argument("--count", type=int, default=20)
    ap.add_argument("--groups", type=int, default=500)
    ap.add_argument("--size", type=int, default=10)
    args = ap.parse_args()
    flood(args.tracked, args.count)
    asyncio.run(circles(args.groups, args.size))


if __name__ == "__main__":
    main()
