"""The store contract: every test here runs against both backends, a real SQLite file and a
real PostgreSQL server (tests/support/postgres.py), through the ``store`` fixture.

``backend`` gives what a test needs beside the store: the clock the store was opened with, a
second store on the same data (as another process would open it), and ``peek``/``insert`` for
looking at what was really written (SQL with ``?`` placeholders, on a connection of its own).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.store import Store

BACKENDS = ("sqlite", "postgresql")


class Clock:
    """A clock tests move by hand; the store stamps rows with its time."""

    def __init__(self) -> None:
        self.now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Backend:
    name: str
    clock: Clock
    opener: Callable[[Clock], Awaitable[Any]]
    raw: Callable[[], Any]  # a plain DB-API connection to the same data
    opened: list[Any] = field(default_factory=list)

    async def open(self) -> Any:
        """Another store on the same data, closed after the test."""
        s = await self.opener(self.clock)
        self.opened.append(s)
        return s

    def _sql(self, sql: str) -> str:
        return sql if self.name == "sqlite" else sql.replace("?", "%s")

    def peek(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.raw() as c:
            return [tuple(r) for r in c.execute(self._sql(sql), params).fetchall()]

    def count(self, table: str, where: str = "TRUE", params: Sequence[Any] = ()) -> int:
        return int(self.peek(f"SELECT count(*) FROM {table} WHERE {where}", params)[0][0])

    def insert(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Many rows straight into the database in one transaction, as a bulk tool would."""
        with self.raw() as c:
            if self.name == "sqlite":
                c.executemany(sql, rows)
            else:  # COPY: row by row inserts through the list-change trigger take far longer
                m = re.fullmatch(r"INSERT INTO (\w+) \(([\w, ]+)\) VALUES \([?, ]+\)", sql)
                assert m, f"insert() takes INSERT INTO table (columns) VALUES (?, ...), not {sql!r}"
                with c.cursor() as cur, cur.copy(f"COPY {m.group(1)} ({m.group(2)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)


@pytest.fixture(params=BACKENDS)
async def backend(request, tmp_path: Path):
    clock = Clock()
    if request.param == "sqlite":
        path = tmp_path / "data" / "vigil.sqlite3"

        async def opener(c: Clock) -> Any:
            return await Store.open(path, clock=c)

        b = Backend("sqlite", clock, opener, lambda: sqlite3.connect(path))
    else:
        import psycopg

        from bot.store.postgres import PostgresStore

        url = request.getfixturevalue("postgres_url")

        async def opener(c: Clock) -> Any:
            return await PostgresStore.open(url, clock=c, pool_size=(1, 4))

        b = Backend("postgresql", clock, opener, lambda: psycopg.connect(url))
    yield b
    for s in b.opened:
        await s.close()


@pytest.fixture
async def store(backend: Backend):
    """A store on an empty database, its clock at 2024-05-01 12:00 UTC (move ``backend.clock.now``)."""
    return await backend.open()
