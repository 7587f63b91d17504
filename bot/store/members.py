"""Members at the door (bot/door.py): when each joined a group, and which of their profile photos
was last checked there. Ids and times only, never a picture.

``avatar`` is the platform's stable key of the photo (Telegram's ``file_unique_id``, Matrix's mxc
URI): a member who leaves and joins again with the same photo is not downloaded and checked twice.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.errors import BadStoreValue
from bot.store import checks
from bot.store.db import Database

MAX_AVATAR_KEY = 255


@dataclass(frozen=True)
class MemberRecord:
    platform: str
    chat_id: str
    user_id: str
    joined_at: datetime  # UTC
    avatar: str  # the key of the profile photo last checked in this group; "" none yet
    avatar_hit: bool = False  # that photo was a hit


def as_utc(value: datetime | str) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def avatar_key(value: object) -> str:
    if not isinstance(value, str) or len(value) > MAX_AVATAR_KEY:
        raise BadStoreValue("avatar", value, f"text of at most {MAX_AVATAR_KEY} characters")
    return value


def _member(row: sqlite3.Row) -> MemberRecord:
    return MemberRecord(
        row["platform"],
        row["chat_id"],
        row["user_id"],
        as_utc(row["joined_at"]),
        row["avatar"],
        bool(row["avatar_hit"]),
    )


class MembersMixin:
    _db: Database

    async def record_join(self, platform: str, chat_id: str | int, user_id: str | int, at: datetime) -> MemberRecord:
        """The member joined at ``at`` (a new join moves the time on); the avatar checked is kept."""
        p, cid, uid = checks.platform(platform), checks.ident("chat_id", chat_id), checks.ident("user_id", user_id)
        when = checks.timestamp(at)
        async with self._db.write() as c:
            await c.execute(
                "INSERT INTO members (platform, chat_id, user_id, joined_at, seen_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (platform, chat_id, user_id) DO UPDATE SET joined_at = excluded.joined_at,"
                " seen_at = excluded.seen_at",
                (p, cid, uid, when, self._db.now()),
            )
            row = await (
                await c.execute(
                    "SELECT * FROM members WHERE platform = ? AND chat_id = ? AND user_id = ?", (p, cid, uid)
                )
            ).fetchone()
        assert row is not None
        return _member(row)

    async def member(self, platform: str, chat_id: str | int, user_id: str | int) -> MemberRecord | None:
        p, cid, uid = checks.platform(platform), checks.ident("chat_id", chat_id), checks.ident("user_id", user_id)
        async with self._db.read() as c:
            row = await (
                await c.execute(
                    "SELECT * FROM members WHERE platform = ? AND chat_id = ? AND user_id = ?", (p, cid, uid)
                )
            ).fetchone()
        return None if row is None else _member(row)

    async def claim_avatar(
        self, platform: str, chat_id: str | int, user_id: str | int, avatar: str, *, hit: bool = False
    ) -> bool:
        """Notes ``avatar`` as the member's photo checked in the group, and whether it was a hit;
        True when that is news there, False when it was noted so before. A member Vigil did not
        see join (there before Vigil) is recorded as joined long ago."""
        p, cid, uid = checks.platform(platform), checks.ident("chat_id", chat_id), checks.ident("user_id", user_id)
        key = avatar_key(avatar)
        now = self._db.now()
        async with self._db.write() as c:
            await c.execute(
                "INSERT INTO members (platform, chat_id, user_id, joined_at, seen_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                (p, cid, uid, checks.timestamp(datetime(2000, 1, 1, tzinfo=UTC)), now),
            )
            cur = await c.execute(
                "UPDATE members SET avatar = ?, avatar_hit = ?, seen_at = ? WHERE platform = ? AND chat_id = ?"
                " AND user_id = ? AND (avatar != ? OR avatar_hit != ?)",
                (key, int(hit), now, p, cid, uid, key, int(hit)),
            )
            return cur.rowcount > 0

    async def prune_members_before(self, cutoff: datetime) -> int:
        """Forgets members last seen (joined, or a photo checked) before ``cutoff``."""
        async with self._db.write() as c:
            cur = await c.execute("DELETE FROM members WHERE seen_at < ?", (checks.timestamp(cutoff),))
            return cur.rowcount

    async def forget_member(self, platform: str, user_id: str | int) -> int:
        """`vigil purge --user`: the person's join times and checked photos in every group."""
        p, uid = checks.platform(platform), checks.ident("user_id", user_id)
        async with self._db.write() as c:
            cur = await c.execute("DELETE FROM members WHERE platform = ? AND user_id = ?", (p, uid))
            return cur.rowcount
