"""Groups and their settings, admins who can receive private messages, and exempt members."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any

from bot.errors import BadStoreValue
from bot.store import checks
from bot.store.db import Database, found
from bot.store.records import ContactRecord, ExemptionRecord, GroupRecord, load_json

MAX_SETTINGS_JSON = 8192
MAX_RIGHTS_JSON = 2048
_IN_CHUNK = 500  # ids per IN (...) query, below SQLite's parameter limit


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()  # "leave this field as it is"


def _group(row: sqlite3.Row) -> GroupRecord:
    return GroupRecord(
        platform=row["platform"],
        chat_id=row["chat_id"],
        title=row["title"],
        settings=load_json(row["settings"]),
        added_by=row["added_by"],
        bot_rights=load_json(row["bot_rights"]),
        owner_hint_sent_at=row["owner_hint_sent_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _contact(row: sqlite3.Row) -> ContactRecord:
    return ContactRecord(
        platform=row["platform"],
        user_id=row["user_id"],
        can_dm=bool(row["can_dm"]),
        language=row["language"],
        dm_room=row["dm_room"],
        display_name=row["display_name"],
        updated_at=row["updated_at"],
    )


async def ensure_group(conn: Any, platform: str, chat_id: str, now: str) -> None:
    """Inside a write transaction: the group row that other rows refer to."""
    await conn.execute(
        "INSERT INTO groups (platform, chat_id, created_at, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (platform, chat_id, now, now),
    )


class GroupsMixin:
    _db: Database

    # --- groups ---------------------------------------------------------------------

    async def get_group(self, platform: str, chat_id: str | int) -> GroupRecord | None:
        key = (checks.platform(platform), checks.ident("chat_id", chat_id))
        async with self._db.read() as c:
            row = await (await c.execute("SELECT * FROM groups WHERE platform = ? AND chat_id = ?", key)).fetchone()
        return None if row is None else _group(row)

    async def upsert_group(
        self,
        platform: str,
        chat_id: str | int,
        title: str | None = None,
        *,
        added_by: str | int | None = None,
        bot_rights: Mapping[str, Any] | None = None,
    ) -> GroupRecord:
        """Create the group or refresh it; a None argument leaves the stored value as it is."""
        p, cid = checks.platform(platform), checks.ident("chat_id", chat_id)
        t = checks.display("title", title)
        by = checks.optional_ident("added_by", added_by)
        rights = None if bot_rights is None else checks.json_text("bot_rights", bot_rights, MAX_RIGHTS_JSON)
        now = self._db.now()
        async with self._db.write() as c:
            # the WHERE keeps an unchanged group from being rewritten on every image
            await c.execute(
                "INSERT INTO groups (platform, chat_id, title, added_by, bot_rights, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (platform, chat_id) DO UPDATE SET"
                "  title = coalesce(excluded.title, title),"
                "  added_by = coalesce(excluded.added_by, added_by),"
                "  bot_rights = coalesce(excluded.bot_rights, bot_rights),"
                "  updated_at = excluded.updated_at"
                " WHERE coalesce(excluded.title, title) IS NOT title"
                "  OR coalesce(excluded.added_by, added_by) IS NOT added_by"
                "  OR coalesce(excluded.bot_rights, bot_rights) IS NOT bot_rights",
                (p, cid, t, by, rights, now, now),
            )
            row = await (
                await c.execute("SELECT * FROM groups WHERE platform = ? AND chat_id = ?", (p, cid))
            ).fetchone()
        return _group(found(row))

    async def update_settings(self, platform: str, chat_id: str | int, changes: Mapping[str, Any]) -> GroupRecord:
        """Merge ``changes`` into the group's settings; a None value removes that key (the default applies)."""
        p, cid = checks.platform(platform), checks.ident("chat_id", chat_id)
        if not isinstance(changes, Mapping) or not all(isinstance(k, str) and k for k in changes):
            raise BadStoreValue("changes", changes, "a mapping from setting names (text) to JSON values")
        checks.json_text("changes", changes, MAX_SETTINGS_JSON)  # refuse bytes and the like before touching anything
        now = self._db.now()
        async with self._db.write() as c:
            await ensure_group(c, p, cid, now)
            row = await (
                await c.execute("SELECT settings FROM groups WHERE platform = ? AND chat_id = ?", (p, cid))
            ).fetchone()
            settings = json.loads(found(row)["settings"])
            for key, value in changes.items():
                if value is None:
                    settings.pop(key, None)
                else:
                    settings[key] = value
            text = checks.json_text("settings", settings, MAX_SETTINGS_JSON)
            await c.execute(
                "UPDATE groups SET settings = ?, updated_at = ? WHERE platform = ? AND chat_id = ?",
                (text, now, p, cid),
            )
            row = await (
                await c.execute("SELECT * FROM groups WHERE platform = ? AND chat_id = ?", (p, cid))
            ).fetchone()
        return _group(found(row))

    async def list_groups(self, platform: str | None = None) -> list[GroupRecord]:
        async with self._db.read() as c:
            if platform is None:
                rows = await c.execute_fetchall("SELECT * FROM groups ORDER BY platform, chat_id")
            else:
                rows = await c.execute_fetchall(
                    "SELECT * FROM groups WHERE platform = ? ORDER BY chat_id", (checks.platform(platform),)
                )
        return [_group(r) for r in rows]

    async def owner_hint_sent(self, platform: str, chat_id: str | int) -> bool:
        """Whether the group's owner was already told how to start the bot (told once only)."""
        group = await self.get_group(platform, chat_id)
        return group is not None and group.owner_hint_sent_at is not None

    async def mark_owner_hint_sent(self, platform: str, chat_id: str | int) -> bool:
        """Remember that the hint was sent; True the first time."""
        p, cid = checks.platform(platform), checks.ident("chat_id", chat_id)
        now = self._db.now()
        async with self._db.write() as c:
            await ensure_group(c, p, cid, now)
            cur = await c.execute(
                "UPDATE groups SET owner_hint_sent_at = ? WHERE platform = ? AND chat_id = ?"
                " AND owner_hint_sent_at IS NULL",
                (now, p, cid),
            )
            return cur.rowcount == 1

    # --- contacts ----------------------------------------------------------------------

    async def set_contact(
        self,
        platform: str,
        user_id: str | int,
        *,
        can_dm: bool = UNSET,
        language: str | None = UNSET,
        dm_room: str | None = UNSET,
        display_name: str | None = UNSET,
    ) -> ContactRecord:
        """Create or change a contact; fields not given keep their stored value (new contacts: cannot DM)."""
        p, uid = checks.platform(platform), checks.ident("user_id", user_id)
        fields: dict[str, Any] = {}
        if can_dm is not UNSET:
            if not isinstance(can_dm, bool):
                raise BadStoreValue("can_dm", can_dm, "True or False")
            fields["can_dm"] = int(can_dm)
        if language is not UNSET:
            fields["language"] = checks.text("language", language, 35)
        if dm_room is not UNSET:
            fields["dm_room"] = checks.optional_ident("dm_room", dm_room)
        if display_name is not UNSET:
            fields["display_name"] = checks.display("display_name", display_name)
        now = self._db.now()
        async with self._db.write() as c:
            await c.execute(
                "INSERT INTO contacts (platform, user_id, updated_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                (p, uid, now),
            )
            if fields:
                assignments = ", ".join(f"{name} = ?" for name in fields)  # names from the fixed set above
                await c.execute(
                    f"UPDATE contacts SET {assignments}, updated_at = ? WHERE platform = ? AND user_id = ?",
                    (*fields.values(), now, p, uid),
                )
            row = await (
                await c.execute("SELECT * FROM contacts WHERE platform = ? AND user_id = ?", (p, uid))
            ).fetchone()
        return _contact(found(row))

    async def get_contact(self, platform: str, user_id: str | int) -> ContactRecord | None:
        key = (checks.platform(platform), checks.ident("user_id", user_id))
        async with self._db.read() as c:
            row = await (await c.execute("SELECT * FROM contacts WHERE platform = ? AND user_id = ?", key)).fetchone()
        return None if row is None else _contact(row)

    async def contacts(self, platform: str, user_ids: Iterable[str | int]) -> list[ContactRecord]:
        """The known contacts among ``user_ids``, sorted by user id; unknown ids are left out."""
        p = checks.platform(platform)
        ids = sorted({checks.ident("user_id", u) for u in user_ids})
        out: list[ContactRecord] = []
        async with self._db.read() as c:
            for i in range(0, len(ids), _IN_CHUNK):
                part = ids[i : i + _IN_CHUNK]
                rows = await c.execute_fetchall(
                    f"SELECT * FROM contacts WHERE platform = ? AND user_id IN ({','.join('?' * len(part))})",
                    (p, *part),
                )
                out.extend(_contact(r) for r in rows)
        return sorted(out, key=lambda r: r.user_id)

    # --- exemptions ------------------------------------------------------------------------

    async def add_exemption(self, platform: str, chat_id: str | int, user_id: str | int) -> bool:
        """True if the member was not exempt before."""
        p, cid, uid = checks.platform(platform), checks.ident("chat_id", chat_id), checks.ident("user_id", user_id)
        now = self._db.now()
        async with self._db.write() as c:
            await ensure_group(c, p, cid, now)
            cur = await c.execute(
                "INSERT INTO exemptions (platform, chat_id, user_id, added_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                (p, cid, uid, now),
            )
            return cur.rowcount == 1

    async def remove_exemption(self, platform: str, chat_id: str | int, user_id: str | int) -> bool:
        """True if the member was exempt."""
        key = (checks.platform(platform), checks.ident("chat_id", chat_id), checks.ident("user_id", user_id))
        async with self._db.write() as c:
            cur = await c.execute("DELETE FROM exemptions WHERE platform = ? AND chat_id = ? AND user_id = ?", key)
            return cur.rowcount == 1

    async def exemptions(self, platform: str, chat_id: str | int) -> list[ExemptionRecord]:
        key = (checks.platform(platform), checks.ident("chat_id", chat_id))
        async with self._db.read() as c:
            rows = await c.execute_fetchall(
                "SELECT * FROM exemptions WHERE platform = ? AND chat_id = ? ORDER BY user_id", key
            )
        return [ExemptionRecord(r["platform"], r["chat_id"], r["user_id"], r["added_at"]) for r in rows]

    async def is_exempt(self, platform: str, chat_id: str | int, user_id: str | int) -> bool:
        key = (checks.platform(platform), checks.ident("chat_id", chat_id), checks.ident("user_id", user_id))
        async with self._db.read() as c:
            row = await (
                await c.execute("SELECT 1 FROM exemptions WHERE platform = ? AND chat_id = ? AND user_id = ?", key)
            ).fetchone()
        return row is not None

    # --- a group that changed its id --------------------------------------------------------

    async def migrate_group(self, platform: str, old_chat_id: str | int, new_chat_id: str | int) -> bool:
        """The group now lives at ``new_chat_id`` (a Telegram group upgraded to a supergroup):
        its settings, own lists, exemptions, followed lists and kept group photos move there in
        one transaction, and groups whose admin log chat it was now send alerts to the new id.

        Idempotent (both service messages of a migration call it: the second finds nothing left
        to move) and safe when the new id already has a row (a message in the new supergroup
        came first): the new row keeps what was set there, the old settings fill in the rest.
        History (audit, work, actions, reviews) stays under the id it happened in. Returns True
        if there was a group to move."""
        p = checks.platform(platform)
        old, new = checks.ident("old_chat_id", old_chat_id), checks.ident("new_chat_id", new_chat_id)
        if old == new:
            raise BadStoreValue("new_chat_id", new_chat_id, "an id other than the old one")
        now = self._db.now()
        async with self._db.write() as c:
            # the admin log chat of other groups follows the chat too (it may itself have moved)
            await c.execute(
                "UPDATE groups SET settings = json_set(settings, '$.logchat', ?), updated_at = ?"
                " WHERE platform = ? AND json_extract(settings, '$.logchat') = ?",
                (new, now, p, old),
            )
            one = "SELECT * FROM groups WHERE platform = ? AND chat_id = ?"
            row = await (await c.execute(one, (p, old))).fetchone()
            if row is None:
                return False
            await ensure_group(c, p, new, now)
            current = await (await c.execute(one, (p, new))).fetchone()
            settings = {**json.loads(row["settings"]), **json.loads(found(current)["settings"])}
            await c.execute(
                "UPDATE groups SET settings = ?, title = coalesce(title, ?), added_by = coalesce(added_by, ?),"
                " bot_rights = coalesce(bot_rights, ?), owner_hint_sent_at = coalesce(owner_hint_sent_at, ?),"
                " updated_at = ? WHERE platform = ? AND chat_id = ?",
                (
                    checks.json_text("settings", settings, MAX_SETTINGS_JSON),
                    row["title"],
                    row["added_by"],
                    row["bot_rights"],
                    row["owner_hint_sent_at"],
                    now,
                    p,
                    new,
                ),
            )
            for table in ("exemptions", "follows", "circle_members"):
                # a row the new id already has wins; the old one goes with the old group below
                await c.execute(
                    f"UPDATE OR IGNORE {table} SET chat_id = ? WHERE platform = ? AND chat_id = ?",  # fixed names
                    (new, p, old),
                )
            await c.execute(
                "UPDATE lists SET chat_id = ? WHERE scope = 'group' AND platform = ? AND chat_id = ?", (new, p, old)
            )
            await c.execute(
                "UPDATE protected_photos SET chat_id = ? WHERE source = 'group' AND platform = ? AND chat_id = ?",
                (new, p, old),
            )
            await c.execute("DELETE FROM groups WHERE platform = ? AND chat_id = ?", (p, old))
        return True
