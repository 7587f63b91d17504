"""The SQLite connection: WAL, foreign keys, busy timeout, numbered migrations, online backup.

One aiosqlite connection serves the whole bot. A lock keeps each operation (and each
multi-statement transaction) whole, because coroutines share that one connection.
"""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiosqlite

from bot.errors import StoreError
from bot.store.checks import timestamp

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
BUSY_TIMEOUT_MS = 5000
_MIGRATION_FILE = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")

Clock = Callable[[], datetime]


def found(row: sqlite3.Row | None) -> sqlite3.Row:
    """The row a statement must return (one just written, or an aggregate over a table)."""
    if row is None:
        raise StoreError("store: a row written or counted in this transaction is missing; the database may be damaged")
    return row


async def fetch_all(c: aiosqlite.Connection, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]:
    """Every row of a query, as a list."""
    return list(await c.execute_fetchall(sql, params))


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path


def find_migrations(directory: Path) -> tuple[Migration, ...]:
    """The ``NNNN_name.sql`` files of a directory, in version order."""
    found: dict[int, Migration] = {}
    try:
        files = sorted(directory.iterdir())
    except OSError as exc:
        raise StoreError(f"cannot read the migrations folder {directory}: {exc}") from None
    for f in files:
        if f.suffix != ".sql":
            continue
        m = _MIGRATION_FILE.fullmatch(f.name)
        if m is None:
            raise StoreError(
                f"migration file {f} is misnamed: name it NNNN_name.sql (four digits, then "
                f"lowercase letters, digits or '_')"
            )
        version = int(m.group(1))
        if version == 0 or version in found:
            raise StoreError(f"migration file {f}: version {version} is 0 or used twice in {directory}")
        found[version] = Migration(version, m.group(2), f)
    if not found:
        raise StoreError(f"no migrations in {directory}: the installation is incomplete (reinstall Vigil)")
    return tuple(found[v] for v in sorted(found))


def _create_private(path: Path) -> None:
    """Creates a new database file readable by its owner only (it names people); SQLite's
    -wal and -shm files take the same permissions."""
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def _damaged(path: Path, exc: BaseException) -> StoreError:
    return StoreError(
        f"{path} is not a Vigil database or it is damaged ({exc}). Fix: if it is Vigil's "
        f"database, stop Vigil and put the latest backup in its place; if it is some other "
        f"file, move it away (Vigil then starts with a new, empty database) or point "
        f"data_dir to another folder"
    )


class Database:
    """An open SQLite file; ``bot.store.Store`` builds its methods on ``read`` and ``write``."""

    def __init__(self, conn: aiosqlite.Connection, path: Path, clock: Clock) -> None:
        self.conn = conn
        self.path = path
        self._clock = clock
        self._lock = asyncio.Lock()
        self._closed = False

    # --- opening --------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        *,
        migrations_dir: Path | None = None,
        clock: Clock = utc_now,
        check: bool = True,
    ) -> Database:
        path = Path(path)
        migrations = find_migrations(migrations_dir or MIGRATIONS_DIR)
        if path.is_dir():
            raise StoreError(f"{path} is a folder; the database must be a file (set data_dir to its folder)")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the folder for the database {path}: {exc}; create it or change data_dir"
            ) from None
        try:
            _create_private(path)
            conn = await aiosqlite.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the database {path}: {exc}; check that the folder is writable") from None
        conn.row_factory = sqlite3.Row
        db = cls(conn, path, clock)
        try:
            await db._configure(check)
            await db._migrate(migrations)
        except sqlite3.DatabaseError as exc:
            await conn.close()
            raise _damaged(path, exc) from None
        except BaseException:
            await conn.close()
            raise
        return db

    async def _configure(self, check: bool) -> None:
        c = self.conn
        await c.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = found(await (await c.execute("PRAGMA journal_mode = WAL")).fetchone())[0]
        if str(mode).lower() != "wal":
            raise StoreError(
                f"{self.path}: SQLite could not switch to WAL mode (it reports '{mode}'); keep "
                f"the data folder on a local disk, not a network share"
            )
        await c.execute("PRAGMA foreign_keys = ON")
        await c.execute("PRAGMA synchronous = NORMAL")  # safe with WAL: a crash loses no committed data
        if check:
            result = [r[0] for r in await c.execute_fetchall("PRAGMA quick_check")]
            if result != ["ok"]:
                raise _damaged(self.path, sqlite3.DatabaseError("; ".join(map(str, result[:3]))))

    async def _migrate(self, migrations: tuple[Migration, ...]) -> None:
        c = self.conn
        await c.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY,"
            " name TEXT NOT NULL CHECK (length(name) <= 200),"
            " applied_at TEXT NOT NULL CHECK (length(applied_at) <= 40)) STRICT"
        )
        applied = {r[0] for r in await c.execute_fetchall("SELECT version FROM schema_migrations")}
        known = {m.version for m in migrations}
        if applied - known:
            newest = max(applied - known)
            raise StoreError(
                f"{self.path} was written by a newer Vigil (schema version {newest}; this "
                f"Vigil knows up to {max(known)}). Fix: run the newer Vigil again, or put back a "
                f"backup made with this version; Vigil never downgrades a database"
            )
        for m in migrations:
            if m.version not in applied:
                await self._apply(m)

    async def _apply(self, m: Migration) -> None:
        try:
            sql = m.path.read_text(encoding="utf-8")
        except (OSError, UnicodeError) as exc:
            raise StoreError(f"cannot read migration {m.path}: {exc}") from None
        # executescript commits any open transaction first, so BEGIN and COMMIT go in
        # the script itself; a failure leaves the transaction open for the ROLLBACK below.
        # The name is [a-z0-9_] and the time is ISO text, so inlining them is safe.
        script = (
            "BEGIN IMMEDIATE;\n"
            f"{sql}\n;\n"
            f"INSERT INTO schema_migrations (version, name, applied_at) "
            f"VALUES ({m.version}, '{m.name}', '{self.now()}');\n"
            f"PRAGMA user_version = {m.version};\n"
            "COMMIT;"
        )
        try:
            await self.conn.executescript(script)
        except sqlite3.Error as exc:
            if self.conn.in_transaction:
                await self.conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.DatabaseError) and "not a database" in str(exc):
                raise
            raise StoreError(
                f"{self.path}: migration {m.path.name} failed and was rolled back ({exc}); the "
                f"database is unchanged. Fix: report this with the Vigil version"
            ) from None

    # --- use ------------------------------------------------------------------------

    def now(self) -> str:
        return timestamp(self._clock())

    @asynccontextmanager
    async def read(self) -> AsyncIterator[aiosqlite.Connection]:
        """The connection for reads; each statement sees committed data only."""
        async with self._lock:
            try:
                yield self.conn
            except sqlite3.Error as exc:
                raise self._failed(exc) from exc

    @asynccontextmanager
    async def write(self, *, durable: bool = False) -> AsyncIterator[aiosqlite.Connection]:
        """One short write transaction: committed at the end, rolled back on any error.

        ``durable``: the commit is on the disk when this returns, so it survives a power loss or
        an OS crash, not only a crash of Vigil (synchronous=FULL syncs the WAL at commit). Other
        writes come after it in the WAL, so none of them can survive while it is lost.
        """
        async with self._lock:
            if durable:
                await self.conn.execute("PRAGMA synchronous = FULL")
            try:
                try:
                    await self.conn.execute("BEGIN IMMEDIATE")
                except sqlite3.Error as exc:
                    raise self._failed(exc) from exc
                try:
                    yield self.conn
                except BaseException as exc:
                    if self.conn.in_transaction:
                        await self.conn.execute("ROLLBACK")
                    if isinstance(exc, sqlite3.Error):
                        raise self._failed(exc) from exc
                    raise
                try:
                    await self.conn.execute("COMMIT")
                except sqlite3.Error as exc:
                    if self.conn.in_transaction:
                        await self.conn.execute("ROLLBACK")
                    raise self._failed(exc) from exc
            finally:
                if durable:
                    await self.conn.execute("PRAGMA synchronous = NORMAL")

    def _failed(self, exc: sqlite3.Error) -> StoreError:
        return StoreError(
            f"database {self.path}: {exc}. If it repeats, check that the disk is not full or "
            f"read-only and that no other program holds the file"
        )

    async def backup(self, dest: str | os.PathLike[str]) -> Path:
        """A consistent copy made with SQLite's online backup API; writes wait until it is done."""
        dest = Path(dest)
        if dest.exists() and dest.resolve() == self.path.resolve():
            raise StoreError(f"backup target {dest} is the database itself; choose another file")
        if not dest.parent.is_dir():
            raise StoreError(f"backup folder {dest.parent} does not exist; create it first")
        partial = dest.with_name(dest.name + ".partial")
        partial.unlink(missing_ok=True)
        _create_private(partial)
        # used from aiosqlite's worker thread, hence check_same_thread=False
        target = await asyncio.to_thread(sqlite3.connect, partial, check_same_thread=False)
        try:
            async with self._lock:
                await self.conn.backup(target)
            # a single self-contained file: no -wal beside it
            await asyncio.to_thread(target.execute, "PRAGMA journal_mode = DELETE")
        except BaseException as exc:
            await asyncio.to_thread(target.close)
            partial.unlink(missing_ok=True)
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"backup of {self.path} to {dest} failed: {exc}") from None
            raise
        await asyncio.to_thread(target.close)
        os.replace(partial, dest)  # the backup appears whole or not at all
        return dest

    async def close(self) -> None:
        """Waits for the operation in progress, then closes; closing twice is harmless."""
        async with self._lock:
            if not self._closed:
                self._closed = True
                await self.conn.close()
