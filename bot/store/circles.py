"""Circles: an operator's groups that share blocks (and bans, when the circle says so).

A circle keeps no entries of its own: its block list is the union of its members' own block
lists, so ``circle_block_lists`` gives each member the ids of the others' lists to match with,
as following an instance list does. Taking a group out of a circle stops that at once.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from bot.errors import BadStoreValue
from bot.store import checks
from bot.store.db import Database, found
from bot.store.groups import ensure_group

MAX_CIRCLE_GROUPS = 100  # groups in one circle: a fan-out bound, not a storage one
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


@dataclass(frozen=True)
class CircleRecord:
    id: int
    name: str
    shared_bans: bool
    members: tuple[tuple[str, str], ...]  # (platform, chat_id), in a stable order
    created_at: str


def circle_name(value: object) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise BadStoreValue("name", value, "1 to 64 letters, digits, '.', '_' or '-'")
    return value


def circle_groups(groups: Iterable[tuple[str, str | int]]) -> list[tuple[str, str]]:
    """The (platform, chat_id) pairs, checked, without repeats, in the order given."""
    out = [(checks.platform(p), checks.ident("chat_id", c)) for p, c in groups]
    unique = list(dict.fromkeys(out))
    if len(unique) > MAX_CIRCLE_GROUPS:
        raise BadStoreValue("groups", len(unique), f"at most {MAX_CIRCLE_GROUPS} groups in one circle")
    return unique


def _records(circles: list[sqlite3.Row], members: list[sqlite3.Row]) -> list[CircleRecord]:
    by_circle: dict[int, list[tuple[str, str]]] = {}
    for m in members:
        by_circle.setdefault(m["circle_id"], []).append((m["platform"], m["chat_id"]))
    return [
        CircleRecord(
            c["id"], c["name"], bool(c["shared_bans"]), tuple(sorted(by_circle.get(c["id"], ()))), c["created_at"]
        )
        for c in circles
    ]


class CirclesMixin:
    _db: Database

    async def add_to_circle(
        self, name: str, groups: Iterable[tuple[str, str | int]], *, shared_bans: bool | None = None
    ) -> CircleRecord:
        """Creates the circle if it is new and adds the groups (already there: unchanged);
        ``shared_bans`` None leaves the setting as it is (off for a new circle)."""
        n, wanted = circle_name(name), circle_groups(groups)
        if shared_bans is not None and not isinstance(shared_bans, bool):
            raise BadStoreValue("shared_bans", shared_bans, "True, False or None")
        now = self._db.now()
        async with self._db.write() as c:
            await c.execute(
                "INSERT INTO circles (name, shared_bans, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING",
                (n, int(bool(shared_bans)), now),
            )
            if shared_bans is not None:
                await c.execute("UPDATE circles SET shared_bans = ? WHERE name = ?", (int(shared_bans), n))
            row = await (await c.execute("SELECT id FROM circles WHERE name = ?", (n,))).fetchone()
            cid = int(found(row)["id"])
            for p, chat in wanted:
                await ensure_group(c, p, chat, now)
                await c.execute(
                    "INSERT INTO circle_members (circle_id, platform, chat_id, added_at) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT DO NOTHING",
                    (cid, p, chat, now),
                )
            count = await (
                await c.execute("SELECT count(*) FROM circle_members WHERE circle_id = ?", (cid,))
            ).fetchone()
            if int(found(count)[0]) > MAX_CIRCLE_GROUPS:  # the transaction is rolled back: nothing written
                raise BadStoreValue("groups", int(found(count)[0]), f"at most {MAX_CIRCLE_GROUPS} groups in one circle")
        return (await self._circles_where("c.name = ?", (n,)))[0]

    async def remove_from_circle(self, name: str, groups: Iterable[tuple[str, str | int]]) -> int:
        """Takes the groups out of the circle; returns how many were in it."""
        n, gone = circle_name(name), circle_groups(groups)
        removed = 0
        async with self._db.write() as c:
            for p, chat in gone:
                cur = await c.execute(
                    "DELETE FROM circle_members WHERE circle_id = (SELECT id FROM circles WHERE name = ?)"
                    " AND platform = ? AND chat_id = ?",
                    (n, p, chat),
                )
                removed += cur.rowcount
        return removed

    async def delete_circle(self, name: str) -> bool:
        """Removes the circle (its groups stay, with their own lists); True if it existed."""
        n = circle_name(name)
        async with self._db.write() as c:
            cur = await c.execute("DELETE FROM circles WHERE name = ?", (n,))
            return cur.rowcount == 1

    async def circles(self) -> list[CircleRecord]:
        """Every circle with its groups, by name."""
        return await self._circles_where("1 = 1", ())

    async def circles_of(self, platform: str, chat_id: str | int) -> list[CircleRecord]:
        """The circles the group is in, by name."""
        key = (checks.platform(platform), checks.ident("chat_id", chat_id))
        return await self._circles_where(
            "c.id IN (SELECT circle_id FROM circle_members WHERE platform = ? AND chat_id = ?)", key
        )

    async def circle_block_lists(self, platform: str, chat_id: str | int) -> list[int]:
        """The own block lists of the other groups in this group's circles: matched here too."""
        key = (checks.platform(platform), checks.ident("chat_id", chat_id))
        async with self._db.read() as c:
            ids = await c.execute_fetchall(
                "SELECT DISTINCT l.id FROM circle_members me"
                " JOIN circle_members peer ON peer.circle_id = me.circle_id"
                " JOIN lists l ON l.scope = 'group' AND l.kind = 'block'"
                "  AND l.platform = peer.platform AND l.chat_id = peer.chat_id"
                " WHERE me.platform = ? AND me.chat_id = ?"
                "  AND NOT (peer.platform = me.platform AND peer.chat_id = me.chat_id)"
                " ORDER BY l.id",
                key,
            )
        return [int(r[0]) for r in ids]

    async def _circles_where(self, where: str, params: tuple[str, ...]) -> list[CircleRecord]:
        async with self._db.read() as c:
            circles = list(
                await c.execute_fetchall(f"SELECT c.* FROM circles c WHERE {where} ORDER BY c.name", params)  # fixed
            )
            members = list(
                await c.execute_fetchall(
                    f"SELECT m.* FROM circle_members m JOIN circles c ON c.id = m.circle_id WHERE {where}", params
                )
            )
        return _records(circles, members)
