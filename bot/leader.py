"""One active ingest per bot account: a PostgreSQL session advisory lock.

Telegram answers a second ``getUpdates`` caller with 409 Conflict, and a Matrix device's
encryption state cannot be shared, so exactly one process reads each account. The lock is held
by a connection of its own: when the process dies, its session ends and the lock is free; a
standby trying every ``poll`` seconds takes it within that time. A lost connection means the
lock may be someone else's now: the holder stops reading (``lost`` is set) and exits.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any

import psycopg

from bot.errors import StoreError
from bot.store.postgres.db import CONNECT_TIMEOUT

log = logging.getLogger("vigil.leader")

LEADER_LOCK = 73674480  # advisory lock class (LEADER_LOCK, key of the account)
CHECK_SECONDS = 2.0  # how often the holder checks that its connection (and so its lock) still holds


def account_key(platform: str, account: str) -> int:
    """A 31-bit key for (platform, bot account id): the same on every machine."""
    digest = hashlib.sha256(f"{platform}\0{account}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


class Leadership:
    """Waits to hold every account's lock, then watches that it still does."""

    def __init__(self, url: str, shown: str, accounts: dict[str, str], poll: float) -> None:
        self.url, self.shown = url, shown
        self.keys = sorted(account_key(p, a) for p, a in accounts.items())  # always the same order
        self.poll = poll
        self.active = False
        self.lost = asyncio.Event()
        self._conn: psycopg.AsyncConnection[Any] | None = None

    async def acquire(self) -> None:
        """Returns once this process holds all the locks (standbys wait here)."""
        said = False
        while True:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = await psycopg.AsyncConnection.connect(
                        self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT
                    )
                held = []
                for key in self.keys:
                    cur = await self._conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (LEADER_LOCK, key))
                    row = await cur.fetchone()
                    if row is None or not row[0]:
                        break
                    held.append(key)
                if len(held) == len(self.keys):
                    self.active = True
                    log.info("ingest: this process is the active reader")
                    return
                for key in held:  # all or none: two standbys never hold half each
                    await self._conn.execute("SELECT pg_advisory_unlock(%s, %s)", (LEADER_LOCK, key))
            except psycopg.Error as exc:
                log.warning("ingest: cannot reach PostgreSQL at %s to take the reader's lock (%s)", self.shown, exc)
                await self._drop()
            if not said:
                log.info("ingest: standby; another process reads this bot account (trying every %.1f s)", self.poll)
                said = True
            await asyncio.sleep(self.poll)

    async def watch(self) -> None:
        """While active: returns (and sets ``lost``) when the lock's connection breaks."""
        while True:
            await asyncio.sleep(CHECK_SECONDS)
            try:
                if self._conn is None:
                    raise StoreError("no connection")
                async with asyncio.timeout(CHECK_SECONDS * 2):
                    await self._conn.execute("SELECT 1")
            except (psycopg.Error, StoreError, TimeoutError) as exc:
                log.error("ingest: the connection holding the reader's lock broke (%s); stopping to read", exc)
                self.active = False
                self.lost.set()
                await self._drop()
                return

    async def _drop(self) -> None:
        if self._conn is not None:
            try:
                await self._conn.close()
            except psycopg.Error:
                pass
            self._conn = None

    async def release(self) -> None:
        self.active = False
        await self._drop()  # the session ends, and with it the locks
