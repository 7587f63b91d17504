"""`vigil migrate-store --from sqlite:PATH --to postgresql://...`: move an SQLite install to PostgreSQL."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TextIO


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "migrate-store",
        help="copy an SQLite database into an empty PostgreSQL database",
        description="Copy everything of Vigil's SQLite database (settings, hash lists, audit records, the inbox, "
        "protected photos) into an empty PostgreSQL database, in one transaction: the copy is whole or "
        "nothing is written. Stop the bot first, run this, then set [database] url (or VIGIL_DATABASE_URL) "
        "and start it again. The SQLite file is only read. Give the password in VIGIL_DATABASE_URL rather "
        "than on the command line, where other users of the machine can see it.",
    )
    p.add_argument(
        "--from",
        dest="source",
        metavar="sqlite:PATH",
        help="the SQLite file (default: the one in the config's data_dir)",
    )
    p.add_argument(
        "--to",
        dest="target",
        metavar="postgresql://...",
        help="the PostgreSQL database (default: [database] url or VIGIL_DATABASE_URL)",
    )
    p.add_argument("--config", type=Path, metavar="FILE", help="the bot's config file")
    p.set_defaults(func=run)


def _source(text: str | None, default: Path) -> Path:
    if text is None:
        return default
    if not text.startswith("sqlite:") or len(text) == len("sqlite:"):
        raise ValueError(f"--from {text!r}: write sqlite:PATH, e.g. sqlite:data/vigil.sqlite3")
    return Path(text.removeprefix("sqlite:")).expanduser()


async def migrate(source: Path, target: str, out: TextIO) -> dict[str, int]:
    from bot.store import Store
    from bot.store.postgres import PostgresStore
    from bot.store.postgres.copy import copy_from_sqlite

    # opening brings the file to this Vigil's schema (as the bot would at its next start)
    async with await Store.open(source) as sqlite_store:
        version = await sqlite_store.schema_version()
    async with await PostgresStore.open(target) as pg:
        print(f"copying {source} (schema {version}) into {pg.location}", file=out)
        return await copy_from_sqlite(source, pg)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    from bot.config import load_config
    from bot.errors import StoreError
    from bot.store.urls import is_postgres, redacted

    config = load_config(args.config)
    try:
        source = _source(args.source, config.database)
    except ValueError as exc:
        print(f"vigil migrate-store: {exc}", file=sys.stderr)
        return 2
    target = args.target or config.database_url
    if not target or not is_postgres(target):
        print(
            "vigil migrate-store: give --to postgresql://USER@HOST/DATABASE (or set VIGIL_DATABASE_URL)"
            + (f"; {redacted(target)!r} is not a PostgreSQL URL" if target else ""),
            file=sys.stderr,
        )
        return 2
    if not source.is_file():
        raise StoreError(f"no SQLite database at {source}; check --from (or data_dir in the config)")
    counts = asyncio.run(migrate(source, target, out))
    detail = ", ".join(f"{table} {n}" for table, n in counts.items() if n)
    print(
        f"copied {sum(counts.values())} rows ({detail or 'an empty database'}). Now set [database] url or "
        f"VIGIL_DATABASE_URL and start Vigil; keep "
        f"{source} as a backup until the new setup has run for a while",
        file=out,
    )
    return 0
