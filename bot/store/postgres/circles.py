"""Circles of groups that share blocks (and bans): the PostgreSQL twin of bot/store/circles.py."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from bot.errors import BadStoreValue
from bot.store import checks
from bot.store.circles import MAX_CIRCLE_GROUPS, CircleRecord, circle_groups, circle_name
from bot.store.postgres.db import PgDatabase, fetchall, fetchone, rowcount
from bot.store.postgres.groups import ensure_group


def _records(circles: Sequence[Any], members: Sequence[Any]) -> list[CircleRecord]:
    by_circle: dict[int, list[tuple[str, str]]] = {}
    for m in members:
        by_circle.setdefault(int(m["circle_id"]), []).append((m["platform"], m["chat_id"]))
    return [
        CircleRecord(
            int(c["id"]),
            c["name"],
            bool(c["shared_bans"]),
            tuple(sorted(by_circle.get(int(c["id"]), ()))),
            c["created_at"],
        )
        for c in circles
    ]


class PgCirclesMixin:
    _db: PgDatabase

    async def add_to_circle(
        self, name: str, groups: Iterable[tuple[str, str | int]], *, shared_bans: bool | None = None
    ) -> CircleRecord:
        n, wanted = circle_name(name), circle_groups(groups)
        if shared_bans is not None and not isinstance(shared_bans, bool):
            raise BadStoreValue("shared_bans", shared_bans, "True, False or None")
        now = self._db.now()
        async with self._db.write() as c:
            await c.execute(
                "INSERT INTO circles (name, shared_bans, created_at) VALUES (%s, %s, %s) ON CONFLICT (name) DO NOTHING",
                (n, bool(shared_bans), now),
            )
            if shared_bans is not None:
                await c.execute("UPDATE circles SET shared_bans = %s WHERE name = %s", (shared_bans, n))
            row = await fetchone(c, "SELECT id FROM circles WHERE name = %s FOR UPDATE", (n,))
            assert row is not None
            cid = int(row["id"])
            for p, chat in wanted:
                await ensure_group(c, p, chat, now)
                await c.execute(
                    "INSERT INTO circle_members (circle_id, platform, chat_id, added_at) VALUES (%s, %s, %s, %s)"
                    " ON CONFLICT DO NOTHING",
                    (cid, p, chat, now),
                )
            count = await fetchone(c, "SELECT count(*) AS n FROM circle_members WHERE circle_id = %s", (cid,))
            assert count is not None
            if int(count["n"]) > MAX_CIRCLE_GROUPS:  # the transaction is rolled back: nothing written
                raise BadStoreValue("groups", int(count["n"]), f"at most {MAX_CIRCLE_GROUPS} groups in one circle")
        return (await self._circles_where("c.name = %s", (n,)))[0]

    async def remove_from_circle(self, name: str, groups: Iterable[tuple[str, str | int]]) -> int:
        n, gone = circle_name(name), circle_groups(groups)
        removed = 0
        async with self._db.write() as c:
            for p, chat in gone:
                removed += await rowcount(
                    c,
                    "DELETE FROM circle_members WHERE circle_id = (SELECT id FROM circles WHERE name = %s)"
                    " AND platform = %s AND chat_id = %s",
                    (n, p, chat),
                )
        return removed

    async def delete_circle(self, name: str) -> bool:
        n = circle_name(name)
        async with self._db.write() as c:
            return await rowcount(c, "DELETE FROM circles WHERE name = %s", (n,)) == 1

    async def circles(self) -> list[CircleRecord]:
        return await self._circles_where("TRUE", ())

    async def circles_of(self, platform: str, chat_id: str | int) -> list[CircleRecord]:
        key = (checks.platform(platform), checks.ident("chat_id", chat_id))
        return await self._circles_where(
            "c.id IN (SELECT circle_id FROM circle_members WHERE platform = %s AND chat_id = %s)", key
        )

    async def circle_block_lists(self, platform: str, chat_id: str | int) -> list[int]:
        key = (checks.platform(platform), checks.ident("chat_id", chat_id))
        async with self._db.read() as c:
            found = await fetchall(
                c,
                "SELECT DISTINCT l.id FROM circle_members me"
                " JOIN circle_members peer ON peer.circle_id = me.circle_id"
                " JOIN lists l ON l.scope = 'group' AND l.kind = 'block'"
                "  AND l.platform = peer.platform AND l.chat_id = peer.chat_id"
                " WHERE me.platform = %s AND me.chat_id = %s"
                "  AND NOT (peer.platform = me.platform AND peer.chat_id = me.chat_id)"
                " ORDER BY l.id",
                key,
            )
        return [int(r["id"]) for r in found]

    async def _circles_where(self, where: str, params: tuple[str, ...]) -> list[CircleRecord]:
        async with self._db.read() as c:
            circles = await fetchall(c, f'SELECT c.* FROM circles c WHERE {where} ORDER BY c.name COLLATE "C"', params)
            members = await fetchall(
                c, f"SELECT m.* FROM circle_members m JOIN circles c ON c.id = m.circle_id WHERE {where}", params
            )
        return _records(circles, members)
