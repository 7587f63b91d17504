"""Vigil's store on PostgreSQL: the same methods, records, checks and errors as the SQLite store
(``bot.store.Store``), for installations that run on more than one machine.

    store = await PostgresStore.open("postgresql://vigil@db.example.org/vigil")
    async with store: ...

Why a parallel package rather than one mixin layer with dialect-specific SQL: the SQLite mixins
are written against aiosqlite (one connection, a lock, ``lastrowid``, JSON text, STRICT tables),
and nearly every statement differs in some detail (placeholders, jsonb, RETURNING, row locks,
COPY, ``= ANY``). Keeping each PostgreSQL module a twin of its SQLite module, method for method
and in the same order, makes a new SQLite method a mechanical addition here, and keeps both
readable; what they share (value checks, records, errors, constants) is imported, not repeated.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

from bot.errors import StoreError
from bot.store.db import Clock, utc_now
from bot.store.postgres.audit import PgAuditMixin
from bot.store.postgres.changes import PgChangesMixin
from bot.store.postgres.circles import PgCirclesMixin
from bot.store.postgres.db import DEFAULT_POOL, MIGRATIONS_DIR, PgDatabase, fetchone
from bot.store.postgres.groups import PgGroupsMixin
from bot.store.postgres.lists import PgListsMixin
from bot.store.postgres.members import PgMembersMixin
from bot.store.postgres.mutes import PgMutesMixin
from bot.store.postgres.protected import PgProtectedMixin
from bot.store.postgres.reports import PgReportsMixin
from bot.store.postgres.seen import PgSeenMixin
from bot.store.postgres.snapshots import PgSnapshotsMixin
from bot.store.postgres.work import PgWorkMixin

__all__ = ["PostgresStore", "MIGRATIONS_DIR"]

PG_DUMP_TIMEOUT = 3600  # seconds


class PostgresStore(
    PgGroupsMixin,
    PgListsMixin,
    PgAuditMixin,
    PgWorkMixin,
    PgProtectedMixin,
    PgChangesMixin,
    PgReportsMixin,
    PgCirclesMixin,
    PgSeenMixin,
    PgMembersMixin,
    PgSnapshotsMixin,
    PgMutesMixin,
):
    """All of Vigil's persistent data in one PostgreSQL database; see the mixins for each topic."""

    backend = "postgresql"

    def __init__(self, db: PgDatabase) -> None:
        self._db = db

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        migrations_dir: Path | None = None,
        clock: Clock = utc_now,
        pool_size: tuple[int, int] = DEFAULT_POOL,
    ) -> PostgresStore:
        """Connects and applies new migrations (one process at a time, under an advisory lock)."""
        return cls(await PgDatabase.open(url, migrations_dir=migrations_dir, clock=clock, pool_size=pool_size))

    @property
    def location(self) -> str:
        """Where the data lives, fit for messages: the URL without its password."""
        return self._db.shown

    async def schema_version(self) -> int:
        async with self._db.read() as c:
            row = await fetchone(c, "SELECT coalesce(max(version), 0) AS v FROM schema_migrations")
        assert row is not None
        return int(row["v"])

    async def backup(self, dest_path: str | os.PathLike[str]) -> Path:
        """A consistent dump with pg_dump (custom format, for pg_restore) at ``dest_path``.

        pg_dump must be installed (Debian: postgresql-client) and at least as new as the server.
        The password goes to pg_dump in its environment, never on its command line."""
        dest = Path(dest_path)
        tool = shutil.which("pg_dump")
        if tool is None:
            raise StoreError(
                f"backup of {self.location} needs pg_dump, which is not installed here: install the PostgreSQL "
                f"client (Debian: apt-get install postgresql-client), or run `pg_dump --format=custom` "
                f"where it is; Vigil's own backup copies SQLite files only"
            )
        if not dest.parent.is_dir():
            raise StoreError(f"backup folder {dest.parent} does not exist; create it first")
        parts = urlsplit(self._db.url)
        env = dict(os.environ)
        if parts.password is not None:
            env["PGPASSWORD"] = parts.password
            host = parts.hostname or ""
            netloc = (parts.username or "") + "@" + (f"[{host}]" if ":" in host else host)
            netloc += f":{parts.port}" if parts.port else ""
            url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
        else:
            url = self._db.url
        partial = dest.with_name(dest.name + ".partial")
        partial.unlink(missing_ok=True)
        fd = os.open(partial, os.O_CREAT | os.O_WRONLY, 0o600)  # the dump names people: owner only
        os.close(fd)
        proc = await asyncio.create_subprocess_exec(
            tool,
            "--format=custom",
            f"--file={partial}",
            f"--dbname={url}",
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(PG_DUMP_TIMEOUT):
                _, err = await proc.communicate()
        except BaseException:
            proc.kill()
            partial.unlink(missing_ok=True)
            raise
        if proc.returncode != 0:
            partial.unlink(missing_ok=True)
            text = err.decode("utf-8", "replace").strip().replace(parts.password or "\0", "***")
            raise StoreError(f"pg_dump of {self.location} failed ({proc.returncode}): {text[-1000:]}")
        os.replace(partial, dest)
        return dest

    async def close(self) -> None:
        await self._db.close()

    async def __aenter__(self) -> PostgresStore:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
