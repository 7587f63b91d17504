"""The PostgreSQL connection pool: numbered migrations, short transactions, clear errors.

psycopg 3 (async) with psycopg-pool. Reads run in autocommit (each statement sees committed
data); writes run in one transaction each, committed at the end and rolled back on any error,
like ``bot.store.db.Database`` for SQLite. Times go in and come out as the store's ISO-8601 UTC
text (``checks.timestamp``), so records are the same on both backends.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import AsyncConnection, AsyncCursor
from psycopg_pool import AsyncConnectionPool

from bot.errors import StoreError
from bot.store.checks import timestamp
from bot.store.db import Migration, find_migrations, utc_now
from bot.store.urls import redacted

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
MIGRATION_LOCK = 7367447965300000  # advisory lock: one process migrates at a time
CLAIM_LOCK = 73674479  # advisory lock (CLAIM_LOCK, token): the token's claims on work items count
CONNECT_TIMEOUT = 10  # seconds
DEFAULT_POOL = (1, 10)  # connections kept open, at most

Clock = Callable[[], datetime]
Row = dict[str, Any]
log = logging.getLogger("vigil.store")


def _row_factory(cursor: AsyncCursor[Any]) -> Callable[[Sequence[Any]], Row]:
    """Rows as dicts, with timestamptz values as the store's ISO text."""
    names = [d.name for d in cursor.description or ()]

    def make(values: Sequence[Any]) -> Row:
        return {n: (timestamp(v) if isinstance(v, datetime) else v) for n, v in zip(names, values, strict=False)}

    return make


async def fetchall(c: AsyncConnection[Any], sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Row]:
    cur = await c.execute(sql, params)
    return await cur.fetchall() if cur.description else []


async def fetchone(c: AsyncConnection[Any], sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Row | None:
    cur = await c.execute(sql, params)
    return await cur.fetchone()


async def rowcount(c: AsyncConnection[Any], sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> int:
    return (await c.execute(sql, params)).rowcount


class PgDatabase:
    """An open pool on one PostgreSQL database; the store's mixins build on ``read`` and ``write``."""

    def __init__(self, pool: AsyncConnectionPool, url: str, clock: Clock) -> None:
        self.pool = pool
        self.url = url
        self.shown = redacted(url)  # what messages and logs may show
        self._clock = clock
        self._closed = False
        self._claims: AsyncConnection[Any] | None = None  # holds this process's claim lock
        self._claim_token = 0
        self._claim_guard = asyncio.Lock()

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        migrations_dir: Path | None = None,
        clock: Clock = utc_now,
        pool_size: tuple[int, int] = DEFAULT_POOL,
    ) -> PgDatabase:
        migrations = find_migrations(migrations_dir or MIGRATIONS_DIR)
        shown = redacted(url)
        try:
            conn = await AsyncConnection.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT)
        except psycopg.Error as exc:
            raise StoreError(
                f"cannot connect to PostgreSQL at {shown}: {_first_line(exc)}. Check [database] url (or "
                f"VIGIL_DATABASE_URL), that the server runs and that this user may log in"
            ) from None
        try:
            await _migrate(conn, migrations, shown, clock)
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL at {shown}: {_first_line(exc)}") from None
        finally:
            await conn.close()
        pool = AsyncConnectionPool(
            url,
            min_size=pool_size[0],
            max_size=pool_size[1],
            open=False,
            name="vigil-store",
            kwargs={"autocommit": True, "row_factory": _row_factory, "connect_timeout": CONNECT_TIMEOUT},
        )
        try:
            await pool.open(wait=True, timeout=CONNECT_TIMEOUT)
        except Exception as exc:
            await pool.close()
            raise StoreError(f"cannot open connections to PostgreSQL at {shown}: {_first_line(exc)}") from None
        return cls(pool, url, clock)

    def now(self) -> str:
        return timestamp(self._clock())

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection[Any]]:
        """A connection in autocommit: each statement sees committed data only."""
        try:
            async with self.pool.connection() as conn:
                yield conn
        except psycopg.Error as exc:
            raise self._failed(exc) from exc

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection[Any]]:
        """One transaction: committed at the end, rolled back on any error."""
        try:
            async with self.pool.connection() as conn, conn.transaction():
                yield conn
        except psycopg.Error as exc:
            raise self._failed(exc) from exc

    async def claim_token(self) -> int:
        """This process's token for claiming work items (``work.taken_by``). It counts while this
        process holds the session advisory lock (CLAIM_LOCK, token) on a connection of its own,
        opened at first use: when the process dies the connection goes, and with it the claims.
        A broken connection is replaced, with a new token (the old one's claims lapse)."""
        async with self._claim_guard:
            conn = self._claims
            if conn is not None:
                try:
                    await conn.execute("SELECT 1")  # alive: our lock, and so our claims, still hold
                    return self._claim_token
                except psycopg.Error:
                    await conn.close()
                    self._claims = None
                    log.warning("store: the connection holding this process's work claims broke; new token")
            conn = None
            try:
                conn = await AsyncConnection.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT)
                while True:  # random tokens: another process may hold the one drawn
                    token = secrets.randbelow(2**31 - 1) + 1
                    cur = await conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (CLAIM_LOCK, token))
                    got = await cur.fetchone()
                    if got is not None and got[0]:
                        break
            except psycopg.Error as exc:
                if conn is not None:
                    await conn.close()
                raise self._failed(exc) from exc
            self._claims, self._claim_token = conn, token
            return token

    def _failed(self, exc: psycopg.Error) -> StoreError:
        return StoreError(
            f"PostgreSQL at {self.shown}: {_first_line(exc)}. If it repeats, check that the server runs "
            f"and has room, and that this user may write to Vigil's tables"
        )

    async def close(self) -> None:
        """Waits for the connections in use, then closes the pool; closing twice is harmless."""
        if not self._closed:
            self._closed = True
            if self._claims is not None:
                await self._claims.close()  # the claims lapse with it
            await self.pool.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


async def _migrate(conn: AsyncConnection[Any], migrations: tuple[Migration, ...], shown: str, clock: Clock) -> None:
    await conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY,"
            " name text NOT NULL CHECK (length(name) <= 200),"
            " applied_at timestamptz NOT NULL)"
        )
        applied = {r[0] for r in await (await conn.execute("SELECT version FROM schema_migrations")).fetchall()}
        known = {m.version for m in migrations}
        if applied - known:
            newest = max(applied - known)
            raise StoreError(
                f"the database at {shown} was written by a newer Vigil (schema version {newest}; this "
                f"Vigil knows up to {max(known)}). Fix: run the newer Vigil again, or restore a backup "
                f"made with this version; Vigil never downgrades a database"
            )
        for m in migrations:
            if m.version in applied:
                continue
            try:
                sql = m.path.read_text(encoding="utf-8")
            except (OSError, UnicodeError) as exc:
                raise StoreError(f"cannot read migration {m.path}: {exc}") from None
            try:
                async with conn.transaction():
                    await conn.execute(sql.encode("utf-8"))  # several statements: no parameters
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (%s, %s, %s)",
                        (m.version, m.name, timestamp(clock())),
                    )
            except psycopg.Error as exc:
                raise StoreError(
                    f"PostgreSQL at {shown}: migration {m.path.name} failed and was rolled back "
                    f"({_first_line(exc)}); the database is unchanged. Fix: report this with the Vigil version"
                ) from None
            log.info("store: applied PostgreSQL migration %s", m.path.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
