"""Images/s of a Vigil cluster against the single process, on PostgreSQL and on SQLite, same run.

Every setup runs `vigil run` subprocesses (real models) against the Bot API emulator in this
process, with a fresh store each: the single process (``--role all``) on SQLite and on
PostgreSQL, then one ingest with 1 and with 2 workers on PostgreSQL (the suite's PostgreSQL
helper starts a server on 127.0.0.1). A burst of distinct benign photos over several groups is
posted at once; the time runs from the first post until the store has finished every item.
Each process gets ``--threads`` scan threads; a worker runs ``--concurrency`` jobs at once. The
machine is shared: compare the ratios of one run, not absolute figures across runs.

    .venv/bin/python bench/bench_cluster.py [--images 120] [--groups 12] [--threads 1]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_telegram import jpeg, originals  # noqa: E402
from tests.support.botapi import BotApiEmulator, full_rights  # noqa: E402
from tests.support.cluster_harness import Cluster  # noqa: E402
from tests.support.postgres import PostgresServer  # noqa: E402
from tests.support.vigil_harness import TOKEN  # noqa: E402


def config(tmp: Path, url: str, threads: int, concurrency: int, database: str) -> Path:
    path = tmp / "config.toml"
    db = f'[database]\nurl = "{database}"\n' if database else ""
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
workers = {threads}
[ops]
listen = ""
[cluster]
concurrency = {concurrency}
{db}
"""
    )
    return path


def finished(database: str, sqlite_file: Path) -> int:
    sql = "SELECT count(*) FROM work WHERE finished_at IS NOT NULL"
    if database:
        with psycopg.connect(database, autocommit=True) as c:
            row = c.execute(sql).fetchone()
    else:
        if not sqlite_file.exists():
            return 0
        with sqlite3.connect(f"file:{sqlite_file}?mode=ro", uri=True) as c:
            try:
                row = c.execute(sql).fetchone()
            except sqlite3.OperationalError:
                return 0
    return int(row[0]) if row else 0


async def run_setup(
    name: str, roles: list[str], server: PostgresServer | None, images: list[bytes], args: argparse.Namespace
) -> float:
    emu = BotApiEmulator(token=TOKEN)
    await emu.start()
    tmp = Path(tempfile.mkdtemp(prefix="vigil-bench-cluster-"))
    database = server.create_schema() if server is not None else ""
    cluster = Cluster(config(tmp, emu.url, args.threads, args.concurrency, database), database, tmp)
    try:
        owner = emu.add_user("owner")
        member = emu.add_user("member")
        chats = [
            emu.add_group(f"group {i}", creator=owner, members=[member], bot_rights=full_rights())
            for i in range(args.groups)
        ]
        for role in roles:
            cluster.start(role)
        workers = roles.count("worker")
        if workers:
            await wait(lambda: cluster.workers_ready() == workers, 120)
        await emu.wait_for(lambda: emu.polling, timeout=120, what="polling")
        sqlite_file = tmp / "data" / "vigil.sqlite3"
        start = time.perf_counter()
        for i, data in enumerate(images):
            emu.post_photo(chats[i % len(chats)], member, data)
        await wait(lambda: finished(database, sqlite_file) >= len(images), 1800)
        seconds = time.perf_counter() - start
        memory = ", ".join(f"{p.role} {p.rss_mb():.0f} MB" for p in cluster.procs)
    finally:
        cluster.stop()
        await emu.stop()
        if server is not None and database:
            server.drop_schema(database)
    rate = len(images) / seconds
    print(f"{name:<34} {len(images)} images in {seconds:6.1f} s: {rate:6.1f} images/s (RSS: {memory})", flush=True)
    return rate


async def wait(predicate, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(predicate):
        if time.monotonic() > deadline:
            raise TimeoutError("the setup did not get there in time")
        await asyncio.sleep(0.1)


async def main(args: argparse.Namespace) -> None:
    images = [jpeg(im, 85) for im in originals(args.images)]
    server = PostgresServer.start(fsync=True)
    try:
        rates = {
            "single, SQLite": await run_setup("single process, SQLite", ["all"], None, images, args),
            "single, PostgreSQL": await run_setup("single process, PostgreSQL", ["all"], server, images, args),
            "1 worker": await run_setup("ingest + 1 worker, PostgreSQL", ["ingest", "worker"], server, images, args),
            "2 workers": await run_setup(
                "ingest + 2 workers, PostgreSQL", ["ingest", "worker", "worker"], server, images, args
            ),
        }
    finally:
        server.stop()
    base_pg, base_sqlite = rates["single, PostgreSQL"], rates["single, SQLite"]
    print("\nratios (same run):")
    for name, rate in rates.items():
        print(f"  {name:<20} {rate / base_pg:5.2f}x single PostgreSQL, {rate / base_sqlite:5.2f}x single SQLite")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=120)
    p.add_argument("--groups", type=int, default=12)
    p.add_argument("--threads", type=int, default=1, help="scan threads per process")
    p.add_argument("--concurrency", type=int, default=2, help="jobs one worker runs at once")
    asyncio.run(main(p.parse_args()))
