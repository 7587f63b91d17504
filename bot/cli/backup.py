"""`vigil backup FILE`: a consistent copy of Vigil's database, also while the bot runs."""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
from pathlib import Path
from typing import TextIO


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "backup",
        help="copy the database to a file (safe while the bot runs)",
        description="Write a consistent copy of Vigil's database (SQLite online backup) to FILE, then check "
        "the copy's integrity. Safe while the bot runs: its writes wait a moment. The copy holds what the "
        "database holds (settings, hash lists, audit records): keep it as private as the data folder.",
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


async def backup(database: Path, dest: Path) -> Path:
    from bot.store import Store

    # check=False: the copy is checked instead, which does not hold up the running bot
    store = await Store.open(database, check=False)
    try:
        return await store.backup(dest)
    finally:
        await store.close()


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    from bot.config import load_config
    from bot.errors import StoreError

    config = load_config(args.config)
    if not config.database.exists():
        raise StoreError(f"no database at {config.database}; check data_dir in the config (or pass --config)")
    dest = asyncio.run(backup(config.database, args.file.expanduser()))
    state = integrity(dest)
    if state != "ok":
        raise StoreError(f"the copy at {dest} failed SQLite's integrity check ({state}); run the backup again")
    print(f"backup of {config.database} written to {dest} ({dest.stat().st_size} bytes, integrity ok)", file=out)
    return 0
