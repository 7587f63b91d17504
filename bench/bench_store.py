"""Benchmark of the store's cost per image: SQLite against PostgreSQL.

What the bot writes for every image it checks, done N times: the inbox record (``enqueue_work``),
the scan's audit record (``add_audit``) and the finish (``finish_work``): three short write
transactions. Run with 1 writer (one image at a time) and with C concurrent writers (images of
many groups at once, as the pipeline's workers do). SQLite: a file in a temp folder (WAL,
synchronous=NORMAL, as the bot runs it). PostgreSQL: a throwaway local server started with the
test harness (tests/support/postgres.py), with fsync on by default so the figure is a real
commit's (``--fsync off`` for the tests' setting), over TCP on 127.0.0.1 with a pool of C connections.

    .venv/bin/python bench/bench_store.py            # 2000 images, 1 and 8 writers
    .venv/bin/python bench/bench_store.py --images 5000 --concurrency 1,4,16

Prints images/s and ms per image for each backend and concurrency (the machine is shared:
compare within a run).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.store import Store  # noqa: E402
from bot.store.postgres import PostgresStore  # noqa: E402

FINDINGS = {"nudity": [{"class": "FEMALE_BREAST_EXPOSED", "score": 0.12}], "nsfw": 0.08}
HASHES = {"pdq": "f" * 64, "sha256": "0123456789abcdef" * 4}


async def one_image(store, i: int) -> None:
    chat = str(-1000 - i % 50)
    payload = {
        "chat": {"id": chat},
        "message_id": str(i),
        "sender": {"id": str(7 + i % 300)},
        "media": {"kind": "photo", "file_id": f"F{i}"},
        "variant": "",
    }
    wid = await store.enqueue_work("telegram", chat, str(i), payload)
    await store.add_audit(
        platform="telegram",
        chat_id=chat,
        message_id=str(i),
        sender_id=str(7 + i % 300),
        kind="scan",
        label="clean",
        findings=FINDINGS,
        hashes=HASHES,
        decision="keep",
    )
    await store.finish_work(wid)


async def run(store, images: int, concurrency: int, offset: int) -> float:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(images):
        queue.put_nowait(offset + i)

    async def worker() -> None:
        while not queue.empty():
            await one_image(store, queue.get_nowait())

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - start


def report(name: str, images: int, concurrency: int, seconds: float) -> None:
    print(
        f"{name:<10} writers {concurrency:>3}: {images / seconds:8.0f} images/s  "
        f"{seconds / images * 1000:6.2f} ms per image",
        flush=True,
    )


async def main(args: argparse.Namespace) -> None:
    levels = [int(x) for x in args.concurrency.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        store = await Store.open(Path(tmp) / "vigil.sqlite3")
        try:
            offset = 0
            for c in levels:
                report("sqlite", args.images, c, await run(store, args.images, c, offset))
                offset += args.images
        finally:
            await store.close()
    from tests.support.postgres import PostgresServer

    server = PostgresServer.start(fsync=args.fsync == "on")
    try:
        url = server.create_schema()
        store = await PostgresStore.open(url, pool_size=(1, max(levels)))
        try:
            offset = 0
            for c in levels:
                report("postgresql", args.images, c, await run(store, args.images, c, offset))
                offset += args.images
        finally:
            await store.close()
    finally:
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--concurrency", default="1,8", help="writers at once, comma-separated (default 1,8)")
    parser.add_argument("--fsync", choices=("on", "off"), default="on", help="PostgreSQL's fsync (default on)")
    asyncio.run(main(parser.parse_args()))
