"""Matrix timed mutes: the PostgreSQL twin of bot/store/mutes.py."""

from __future__ import annotations

from datetime import datetime

from bot.store import checks
from bot.store.members import as_utc
from bot.store.mutes import MuteRecord, checked, expired_limit
from bot.store.postgres.db import PgDatabase, fetchall, fetchone, rowcount
from bot.store.postgres.rows import Row


def _mute(r: Row) -> MuteRecord:
    previous = r["previous"]
    return MuteRecord(
        r["room_id"], r["user_id"], int(r["level"]), None if previous is None else int(previous), as_utc(r["until"])
    )


class PgMutesMixin:
    _db: PgDatabase

    async def record_mute(self, mute: MuteRecord) -> None:
        values = checked(mute)
        async with self._db.write() as c:
            await c.execute(
                "INSERT INTO mutes (room_id, user_id, level, previous, until) VALUES (%s, %s, %s, %s, %s)"
                " ON CONFLICT (room_id, user_id) DO UPDATE SET level = excluded.level,"
                " previous = excluded.previous, until = excluded.until",
                values,
            )

    async def restore_mute(self, mute: MuteRecord) -> bool:
        values = checked(mute)
        async with self._db.write() as c:
            return (
                await rowcount(
                    c,
                    "INSERT INTO mutes (room_id, user_id, level, previous, until) VALUES (%s, %s, %s, %s, %s)"
                    " ON CONFLICT DO NOTHING",
                    values,
                )
                > 0
            )

    async def mute_of(self, room: str, user: str) -> MuteRecord | None:
        r, u = checks.ident("room", room), checks.ident("user", user)
        async with self._db.read() as c:
            row = await fetchone(c, "SELECT * FROM mutes WHERE room_id = %s AND user_id = %s", (r, u))
        return None if row is None else _mute(row)

    async def expired_mutes(self, now: datetime, limit: int = 100) -> list[MuteRecord]:
        n = expired_limit(limit)
        async with self._db.read() as c:
            rows = await fetchall(
                c, "SELECT * FROM mutes WHERE until <= %s ORDER BY until LIMIT %s", (checks.timestamp(now), n)
            )
        return [_mute(row) for row in rows]

    async def take_mute(self, room: str, user: str, until: datetime | None = None) -> MuteRecord | None:
        r, u = checks.ident("room", room), checks.ident("user", user)
        sql, params = "DELETE FROM mutes WHERE room_id = %s AND user_id = %s", [r, u]
        if until is not None:
            sql, params = sql + " AND until = %s", [*params, checks.timestamp(until)]
        async with self._db.write() as c:
            row = await fetchone(c, sql + " RETURNING *", params)
        return None if row is None else _mute(row)

    async def forget_mutes(self, user: str) -> int:
        u = checks.ident("user", user)
        async with self._db.write() as c:
            return await rowcount(c, "DELETE FROM mutes WHERE user_id = %s", (u,))
