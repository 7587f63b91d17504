"""What the durable inbox costs per image: synchronous=FULL (an fsync of the WAL at commit) for the
inbox write, against synchronous=NORMAL for every write.

Each image in the bot writes: enqueue_work (durable), upsert_group, start_work, the
audit record, finish_work. This runs that sequence on a real SQLite file in a folder on the same
disk as the data (--dir, default: a temporary folder), interleaved FULL / NORMAL rounds, and
prints the median per image of each and the difference.

    .venv/bin/python -m bench.bench_inbox_sync [--images 300] [--rounds 5] [--dir PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from contextlib import asynccontextmanager
from pathlib import Path

from bot.store import Store
from bot.store.db import Database


async def one_round(folder: Path, images: int, durable: bool, tag: str) -> float:
    path = folder / f"bench-{tag}.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    store = await Store.open(path)
    if not durable:  # every write as before: synchronous=NORMAL throughout
        plain = Database.write

        @asynccontextmanager
        async def write(self, *, durable: bool = False):
            async with plain(self) as c:
                yield c

        store._db.write = write.__get__(store._db)  # type: ignore[method-assign]
    started = time.perf_counter()
    for i in range(images):
        wid = await store.enqueue_work("telegram", "-100123", str(i), {"variant": "", "media": {"file_id": "x" * 40}})
        await store.upsert_group("telegram", "-100123", "Group")
        await store.start_work(wid)
        await store.set_state(f"work:{wid}:audit", "1")
        await store.finish_work(wid)
        await store.delete_state(f"work:{wid}:audit")
    elapsed = time.perf_counter() - started
    await store.close()
    return elapsed / images * 1000


async def main_async(images: int, rounds: int, folder: Path) -> None:
    full, normal = [], []
    for r in range(rounds):
        full.append(await one_round(folder, images, True, f"full{r}"))
        normal.append(await one_round(folder, images, False, f"normal{r}"))
    f, n = statistics.median(full), statistics.median(normal)
    print(f"{images} images x {rounds} rounds in {folder}")
    print(f"synchronous=FULL for the inbox writes: {f:.2f} ms per image (median)")
    print(f"synchronous=NORMAL throughout:          {n:.2f} ms per image (median)")
    print(f"cost of the durable inbox:              {f - n:+.2f} ms per image")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=300)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--dir", type=Path, help="a folder on the disk that holds Vigil's data")
    args = p.parse_args()
    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
        asyncio.run(main_async(args.images, args.rounds, args.dir))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(main_async(args.images, args.rounds, Path(tmp)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
