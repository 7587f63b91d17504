"""Members at the door: the PostgreSQL twin of bot/store/members.py."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.store import checks
from bot.store.members import MemberRecord, as_utc, avatar_key
from bot.store.postgres.db import PgDatabase, fetchone, rowcount
from bot.store.postgres.rows import Row

_ONE = "SELECT * FROM members WHERE platform = %s AND chat_id = %s AND user_id = %s"


def _member(r: Row) -> MemberRecord:
    return MemberRecord(
        r["platform"], r["chat_id"], r["user_id"], as_utc(r["joined_at"]), r["avatar"], bool(r["avatar_hit"])
    )


class PgMembersMixin:
    _db: PgDatabase

    async def record_join(self, platform: str, chat_id: str | int, user_id: str | int, at: datetime) -> MemberRecord:
        p, cid, uid = checks.platform(platform), checks.ident("chat_id", chat_id), checks.ident("user_id", user_id)
        when = checks.timestamp(at)
        async with self._db.write() as c:
            await c.execute(
                "INSERT INTO members (platform, chat_id, user_id, joined_at, seen_at) VALUES (%s, %s, %s, %s, %s)"
                " ON CONFLICT (platform, chat_id, user_id) DO UPDATE SET joined_at = excluded.joined_at,"
                " seen_at = excluded.seen_at",
                (p, cid, uid, when, self._db.now()),
            )
            row = await fetchone(c, _ONE, (p, cid, uid))
        assert row is not None
        return _member(row)

    async def member(self, platform: str, chat_id: str | int, user_id: str | int) -> MemberRecord | None:
        p, cid, uid = checks.platform(platform), checks.ident("chat_id", chat_id), checks.ident("user_id", user_id)
        async with self._db.read() as c:
            row = await fetchone(c, _ONE, (p, cid, uid))
        return None if row is None else _member(row)

    async def claim_avatar(
        self, platform: str, chat_id: str | int, user_id: str | int, avatar: str, *, hit: bool = False
    ) -> bool:
        p, cid, uid = checks.platform(platform), checks.ident("chat_id", chat_id), checks.ident("user_id", user_id)
        key = avatar_key(avatar)
        now = self._db.now()
        async with self._db.write() as c:
            await c.execute(
                "INSERT INTO members (platform, chat_id, user_id, joined_at, seen_at) VALUES (%s, %s, %s, %s, %s)"
                " ON CONFLICT DO NOTHING",
                (p, cid, uid, checks.timestamp(datetime(2000, 1, 1, tzinfo=UTC)), now),
            )
            changed = await rowcount(
                c,
                "UPDATE members SET avatar = %s, avatar_hit = %s, seen_at = %s WHERE platform = %s AND chat_id = %s"
                " AND user_id = %s AND (avatar != %s OR avatar_hit != %s)",
                (key, hit, now, p, cid, uid, key, hit),
            )
        return changed > 0

    async def prune_members_before(self, cutoff: datetime) -> int:
        async with self._db.write() as c:
            return await rowcount(c, "DELETE FROM members WHERE seen_at < %s", (checks.timestamp(cutoff),))

    async def forget_member(self, platform: str, user_id: str | int) -> int:
        p, uid = checks.platform(platform), checks.ident("user_id", user_id)
        async with self._db.write() as c:
            return await rowcount(c, "DELETE FROM members WHERE platform = %s AND user_id = %s", (p, uid))
