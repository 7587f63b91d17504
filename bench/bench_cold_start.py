"""Benchmark: how long a worker takes to start judging (a cold start of the in-memory indexes), and
what the index versions cost per image.

A store (a temp SQLite file, or ``--database-url`` PostgreSQL) is filled with ``--hashes`` list
entries (random PDQ, pHash and SHA-256; hashes only) and ``--photos`` protected photos (synthetic
known fingerprints of ``--points`` points, as the store keeps them). Then, each in a fresh
process state:

* lists: ``HashLists.load`` (read every entry, decode, index);
* protected: ``Protector.load`` (read every fingerprint, decode, index), split into the read and
  decode part and the indexing part;
* snapshots: both indexes written as index snapshots (bot/snapshots.py), then loaded into fresh
  views from them (what a worker started later does) against the full rebuild above, in the same run;
* a catch-up of 1,000 new entries logged after the load (what a worker does after a snapshot);
* ``heads``: the two reads ``Core.submit`` adds to each image (the change logs' heads), and a
  catch-up that finds nothing (what a worker does per image when the versions are already met).

Memory is the process's RSS after each step. Run by hand:

    .venv/bin/python bench/bench_cold_start.py
    .venv/bin/python bench/bench_cold_start.py --hashes 20000 --photos 2000     # quick
    .venv/bin/python bench/bench_cold_start.py --database-url postgresql://…     # PostgreSQL
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import rss_mb  # noqa: E402
from bot.config import ProtectConfig  # noqa: E402
from bot.index_versions import heads  # noqa: E402
from bot.lists import HashLists  # noqa: E402
from bot.protect import Protector, decode_fingerprint, encode_fingerprint  # noqa: E402
from bot.snapshots import SnapshotWriter  # noqa: E402
from bot.store.records import ChangeKind  # noqa: E402
from detectors.localmatch import Fingerprint  # noqa: E402


def hashes(rng: np.random.Generator, n: int) -> list[dict[str, object]]:
    raw = rng.integers(0, 256, (n, 32 + 8 + 32), dtype=np.uint8)
    return [
        {
            "pdq": r[:32].tobytes().hex(),
            "pdq_quality": 100,
            "phash": r[32:40].tobytes().hex(),
            "sha256": r[40:].tobytes().hex(),
        }
        for r in raw
    ]


def fingerprint(rng: np.random.Generator, points: int) -> Fingerprint:
    pts = np.round(rng.uniform(0, [1000, 750], (points, 2)) * 32) / 32
    return Fingerprint(
        pts.astype(np.float32),
        rng.integers(0, 256, (points, 32), dtype=np.uint8),
        1000,
        750,
        (rng.integers(0, 256, points) * (360 / 256)).astype(np.float32),
        rng.integers(0, 8, points).astype(np.uint8),
        1000,
        None,
    )


async def open_store(url: str | None, folder: Path):
    if url:
        from bot.store.postgres import PostgresStore

        return await PostgresStore.open(url)
    from bot.store import Store

    return await Store.open(folder / "vigil.sqlite3")


async def fill(store, rng: np.random.Generator, args: argparse.Namespace) -> None:
    t = time.perf_counter()
    lst = await store.create_list("bench", kind="block")
    counts = await store.add_entries_bulk(lst.id, hashes(rng, args.hashes), added_by="bench")
    owner = await store.operator_owner("bench crowd", create=True)
    for _ in range(args.photos):
        await store.add_protected_photo(owner.id, encode_fingerprint(fingerprint(rng, args.points)), source="operator")
    print(f"filled: {counts.added} entries, {args.photos} protected photos in {time.perf_counter() - t:.0f} s")


async def run(args: argparse.Namespace) -> None:
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as folder:
        store = await open_store(args.database_url, Path(folder))
        try:
            await fill(store, rng, args)
            base = rss_mb()
            lists = HashLists()
            follower = lists.follower(store)
            t = time.perf_counter()
            await follower.load()
            lists_s = time.perf_counter() - t
            lists_mb = rss_mb() - base
            t = time.perf_counter()
            rows = [e async for e in store.iter_all_entries()]
            rows_s = time.perf_counter() - t
            del rows
            print(
                f"lists: {len(lists.index)} entries loaded in {lists_s:.1f} s "
                f"(reading the rows alone {rows_s:.1f} s), +{lists_mb:.0f} MB"
            )

            base = rss_mb()
            protector = Protector(store, ProtectConfig())
            t = time.perf_counter()
            await protector.load()
            protect_s = time.perf_counter() - t
            protect_mb = rss_mb() - base
            t = time.perf_counter()
            read = [p async for p in store.iter_protected_photos()]
            decoded = [decode_fingerprint(p.fingerprint) for p in read if p.fingerprint]
            read_s = time.perf_counter() - t
            del read, decoded
            print(
                f"protected: {len(protector.index)} photos loaded in {protect_s:.1f} s "
                f"(reading and decoding {read_s:.1f} s of it, indexing the rest), +{protect_mb:.0f} MB"
            )

            # index snapshots: written once, then a process started later loads them
            writer = SnapshotWriter(store, [follower, protector.follower])
            t = time.perf_counter()
            lists_snap = await writer.write(follower)
            protect_snap = await writer.write(protector.follower)
            write_s = time.perf_counter() - t
            assert lists_snap is not None and protect_snap is not None
            base = rss_mb()
            later_lists = HashLists()
            later_follower = later_lists.follower(store)
            t = time.perf_counter()
            await later_follower.load()
            snap_lists_s = time.perf_counter() - t
            later_protector = Protector(store, ProtectConfig())
            t = time.perf_counter()
            await later_protector.load()
            snap_protect_s = time.perf_counter() - t
            assert later_follower.loaded_from is not None and later_protector.follower.loaded_from is not None
            assert len(later_lists.index) == len(lists.index) and len(later_protector.index) == len(protector.index)
            full_s, snap_s = lists_s + protect_s, snap_lists_s + snap_protect_s
            print(
                f"snapshots: written in {write_s:.1f} s (lists {lists_snap.size / 2**20:.0f} MB, "
                f"protected {protect_snap.size / 2**20:.0f} MB); loaded: lists {snap_lists_s:.1f} s "
                f"(full {lists_s:.1f} s), protected {snap_protect_s:.1f} s (full {protect_s:.1f} s), "
                f"+{rss_mb() - base:.0f} MB"
            )
            print(
                f"cold start from a snapshot: {snap_s:.1f} s against the full rebuild {full_s:.1f} s "
                f"({full_s / max(snap_s, 1e-9):.1f}x faster)"
            )
            del later_lists, later_follower, later_protector

            lst = await store.list_by_name("bench")
            await store.add_entries_bulk(lst.id, hashes(rng, 1000), added_by="bench")
            t = time.perf_counter()
            applied = await follower.catch_up()
            print(f"catch-up: {applied} changes applied in {(time.perf_counter() - t) * 1000:.0f} ms")

            times = []
            for _ in range(args.rounds):
                t = time.perf_counter()
                await heads(store)
                times.append(time.perf_counter() - t)
            idle = []
            for _ in range(args.rounds):
                t = time.perf_counter()
                await follower.catch_up()
                idle.append(time.perf_counter() - t)
            print(
                f"per image: heads {statistics.median(times) * 1e3:.2f} ms (median of {args.rounds}), "
                f"a catch-up that finds nothing {statistics.median(idle) * 1e3:.2f} ms; "
                f"log heads lists={await store.last_change(ChangeKind.LISTS)} "
                f"protected={await store.last_change(ChangeKind.PROTECTED)}"
            )
            print(f"cold start total (full rebuild): {lists_s + protect_s:.1f} s")
        finally:
            await store.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hashes", type=int, default=100_000)
    p.add_argument("--photos", type=int, default=10_000)
    p.add_argument("--points", type=int, default=500, help="keypoints per protected fingerprint")
    p.add_argument("--rounds", type=int, default=200)
    p.add_argument("--database-url", default=None, help="PostgreSQL instead of a temp SQLite file")
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()
