"""`vigil backup FILE`: a consistent copy of Vigil's database, also while the bot runs."""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
from pathlib import Path
from typing import Any, TextIO


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "backup",
        help="copy the database to a file (safe while the bot runs)",
        description="Write a consistent copy of Vigil's database to FILE. SQLite: the online backup, then "
        "the copy's integrity is checked; safe while the bot runs (its writes wait a moment). PostgreSQL "
        "([database] url): pg_dump's custom format (restore with pg_restore); needs pg_dump installed. The "
        "copy holds what the database holds (settings, hash lists, audit records): keep it as private as the "
        "data folder.",
    )
    p.add_argument("file", type=Path, metavar="FILE", help="where to write the copy (replaced if it exists)")
    p.add_argument("--config", type=Path, metavar="FILE", help="the bot's config file (to find its data_dir)")
    p.set_defaults(func=run)


def integrity(path: Path) -> str:
    """SQLite's integrity_check of a file: "ok", or the first problems it found."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conn.execute("PRAGMA integrity_check").fetchall()
    finally:
        conn.close()
    return "; ".join(str(r[0]) for r in rows[:5])


async def backup(config: Any, dest: Path) -> tuple[Path, str, str]:
    """The copy's path, the backend, and where the data came from."""
    from bot.store.factory import open_store

    # check=False: the copy is checked instead, which does not hold up the running bot
    store = await open_store(config, must_exist=True, check=False)
    try:
        return await store.backup(dest), store.backend, store.location
    finally:
        await store.close()


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    from bot.config import load_config
    from bot.errors import StoreError

    config = load_config(args.config)
    dest, backend, source = asyncio.run(backup(config, args.file.expanduser()))
    if backend != "sqlite":
        print(
            f"backup of {source} written to {dest} by pg_dump ({dest.stat().st_size} bytes, custom format: "
            f"restore it with pg_restore)",
            file=out,
        )
        return 0
    state = integrity(dest)
    if state != "ok":
        raise StoreError(f"the copy at {dest} failed SQLite's integrity check ({state}); run the backup again")
    print(f"backup of {source} written to {dest} ({dest.stat().st_size} bytes, integrity ok)", file=out)
    return 0
