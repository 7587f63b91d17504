"""Groups and their settings, contacts and exempt members: the PostgreSQL twin of bot/store/groups.py."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bot.errors import BadStoreValue
from bot.store import checks
from bot.store.groups import MAX_RIGHTS_JSON, MAX_SETTINGS_JSON, UNSET
from bot.store.postgres import rows
from bot.store.postgres.db import PgDatabase, fetchall, fetchone, rowcount
from bot.store.records import ContactRecord, ExemptionRecord, GroupRecord

_ONE_GROUP = "SELECT * FROM groups WHERE platform = %s AND chat_id = %s"


async def ensure_group(c: Any, platform: str, chat_id: str, now: str) -> None:
    """Inside a write transaction: the group row that other rows refer to."""
    await c.execute(
        "INSERT INTO groups (platform, chat_id, created_at, updated_at) VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
        (platform, chat_id, now, now),
    )


class PgGroupsMixin:
    _db: PgDatabase

    # --- groups ---------------------------------------------------------------------

    async def get_group(self, platform: str, chat_id: str | int) -> GroupRecord | None:
        key = (checks.platform(platform), checks.ident("chat_id", chat_id))
        async with self._db.read() as c:
            row = await fetchone(c, _ONE_GROUP, key)
        return None if row is None else rows.group(row)

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
                "INSERT INTO groups AS g (platform, chat_id, title, added_by, bot_rights, created_at, updated_at)"
                " VALUES (%s, %s, %s, %s, %s::jsonb, %s, %s)"
                " ON CONFLICT (platform, chat_id) DO UPDATE SET"
                "  title = coalesce(excluded.title, g.title),"
                "  added_by = coalesce(excluded.added_by, g.added_by),"
                "  bot_rights = coalesce(excluded.bot_rights, g.bot_rights),"
                "  updated_at = excluded.updated_at"
                " WHERE coalesce(excluded.title, g.title) IS DISTINCT FROM g.title"
                "  OR coalesce(excluded.added_by, g.added_by) IS DISTINCT FROM g.added_by"
                "  OR coalesce(excluded.bot_rights, g.bot_rights) IS DISTINCT FROM g.bot_rights",
                (p, cid, t, by, rights, now, now),
            )
            row = await fetchone(c, _ONE_GROUP, (p, cid))
        assert row is not None
        return rows.group(row)

    async def update_settings(self, platform: str, chat_id: str | int, changes: Mapping[str, Any]) -> GroupRecord:
        """Merge ``changes`` into the group's settings; a None value removes that key (the default applies)."""
        p, cid = checks.platform(platform), checks.ident("chat_id", chat_id)
        if not isinstance(changes, Mapping) or not all(isinstance(k, str) and k for k in changes):
            raise BadStoreValue("changes", changes, "a mapping from setting names (text) to JSON values")
        checks.json_text("changes", changes, MAX_SETTINGS_JSON)  # refuse bytes and the like before touching anything
        now = self._db.now()
        async with self._db.write() as c:
            await ensure_group(c, p, cid, now)
            # the row lock makes concurrent merges wait for each other instead of losing one
            row = await fetchone(
                c, "SELECT settings FROM groups WHERE platform = %s AND chat_id = %s FOR UPDATE", (p, cid)
            )
            assert row is not None
            settings = dict(row["settings"])
            for key, value in changes.items():
                if value is None:
                    settings.pop(key, None)
                else:
                    settings[key] = value
            text = checks.json_text("settings", settings, MAX_SETTINGS_JSON)
            await c.execute(
                "UPDATE groups SET settings = %s::jsonb, updated_at = %s WHERE platform = %s AND chat_id = %s",
                (text, now, p, cid),
            )
            row = await fetchone(c, _ONE_GROUP, (p, cid))
        assert row is not None
        return rows.group(row)

    async def list_groups(self, platform: str | None = None) -> list[GroupRecord]:
        async with self._db.read() as c:
            if platform is None:
                found = await fetchall(c, 'SELECT * FROM groups ORDER BY platform, chat_id COLLATE "C"')
            else:
                found = await fetchall(
                    c,
                    'SELECT * FROM groups WHERE platform = %s ORDER BY chat_id COLLATE "C"',
                    (checks.platform(platform),),
                )
        return [rows.group(r) for r in found]

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
            return (
                await rowcount(
                    c,
                    "UPDATE groups SET owner_hint_sent_at = %s WHERE platform = %s AND chat_id = %s"
                    " AND owner_hint_sent_at IS NULL",
                    (now, p, cid),
                )
                == 1
            )

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
            fields["can_dm"] = can_dm
        if language is not UNSET:
            fields["language"] = checks.text("language", language, 35)
        if dm_room is not UNSET:
            fields["dm_room"] = checks.optional_ident("dm_room", dm_room)
        if display_name is not UNSET:
            fields["display_name"] = checks.display("display_name", display_name)
        now = self._db.now()
        async with self._db.write() as c:
            await c.execute(
                "INSERT INTO contacts (platform, user_id, updated_at) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                (p, uid, now),
            )
            if fields:
                assignments = ", ".join(f"{name} = %s" for name in fields)  # names from the fixed set above
                await c.execute(
                    f"UPDATE contacts SET {assignments}, updated_at = %s WHERE platform = %s AND user_id = %s",
                    (*fields.values(), now, p, uid),
                )
            row = await fetchone(c, "SELECT * FROM contacts WHERE platform = %s AND user_id = %s", (p, uid))
        assert row is not None
        return rows.contact(row)

    async def get_contact(self, platform: str, user_id: str | int) -> ContactRecord | None:
        key = (checks.platform(platform), checks.ident("user_id", user_id))
        async with self._db.read() as c:
            row = await fetchone(c, "SELECT * FROM contacts WHERE platform = %s AND user_id = %s", key)
        return None if row is None else rows.contact(row)

    async def contacts(self, platform: str, user_ids: Iterable[str | int]) -> list[ContactRecord]:
        """The known contacts among ``user_ids``, sorted by user id; unknown ids are left out."""
        p = checks.platform(platform)
        ids = sorted({checks.ident("user_id", u) for u in user_ids})
        async with self._db.read() as c:
            found = await fetchall(c, "SELECT * FROM contacts WHERE platform = %s AND user_id = ANY(%s)", (p, ids))
        return sorted((rows.contact(r) for r in found), key=lambda r: r.user_id)

    # --- exemptions ------------------------------------------------------------------------

    async def add_exemption(self, platform: str, chat_id: str | int, user_id: str | int) -> bool:
        """True if the member was not exempt before."""
        p, cid, uid = checks.platform(platform), checks.ident("chat_id", chat_id), checks.ident("user_id", user_id)
        now = self._db.now()
        async with self._db.write() as c:
            await ensure_group(c, p, cid, now)
            return (
                await rowcount(
                    c,
                    "INSERT INTO exemptions (platform, chat_id, user_id, added_at) VALUES (%s, %s, %s, %s)"
                    " ON CONFLICT DO NOTHING",
                    (p, cid, uid, now),
                )
                == 1
            )

    async def remove_exemption(self, platform: str, chat_id: str | int, user_id: str | int) -> bool:
        """True if the member was exempt."""
        key = (checks.platform(platform), checks.ident("chat_id", chat_id), checks.ident("user_id", user_id))
        async with self._db.write() as c:
            return (
                await rowcount(c, "DELETE FROM exemptions WHERE platform = %s AND chat_id = %s AND user_id = %s", key)
                == 1
            )

    async def exemptions(self, platform: str, chat_id: str | int) -> list[ExemptionRecord]:
        key = (checks.platform(platform), checks.ident("chat_id", chat_id))
        async with self._db.read() as c:
            found = await fetchall(
                c, 'SELECT * FROM exemptions WHERE platform = %s AND chat_id = %s ORDER BY user_id COLLATE "C"', key
            )
        return [ExemptionRecord(r["platform"], r["chat_id"], r["user_id"], r["added_at"]) for r in found]

    async def is_exempt(self, platform: str, chat_id: str | int, user_id: str | int) -> bool:
        key = (checks.platform(platform), checks.ident("chat_id", chat_id), checks.ident("user_id", user_id))
        async with self._db.read() as c:
            row = await fetchone(
                c, "SELECT 1 AS x FROM exemptions WHERE platform = %s AND chat_id = %s AND user_id = %s", key
            )
        return row is not None

    # --- a group that changed its id --------------------------------------------------------

    async def migrate_group(self, platform: str, old_chat_id: str | int, new_chat_id: str | int) -> bool:
        """The group now lives at ``new_chat_id``; see ``bot.store.groups.GroupsMixin.migrate_group``."""
        p = checks.platform(platform)
        old, new = checks.ident("old_chat_id", old_chat_id), checks.ident("new_chat_id", new_chat_id)
        if old == new:
            raise BadStoreValue("new_chat_id", new_chat_id, "an id other than the old one")
        now = self._db.now()
        async with self._db.write() as c:
            # the admin log chat of other groups follows the chat too (it may itself have moved)
            await c.execute(
                "UPDATE groups SET settings = jsonb_set(settings, '{logchat}', to_jsonb(%s::text)), updated_at = %s"
                " WHERE platform = %s AND settings->>'logchat' = %s",
                (new, now, p, old),
            )
            row = await fetchone(c, _ONE_GROUP + " FOR UPDATE", (p, old))
            if row is None:
                return False
            await ensure_group(c, p, new, now)
            current = await fetchone(c, _ONE_GROUP + " FOR UPDATE", (p, new))
            assert current is not None
            settings = {**row["settings"], **current["settings"]}
            bot_rights = None if row["bot_rights"] is None else checks.json_text("bot_rights", row["bot_rights"], 10**6)
            await c.execute(
                "UPDATE groups SET settings = %s::jsonb, title = coalesce(title, %s),"
                " added_by = coalesce(added_by, %s),"
                " bot_rights = coalesce(bot_rights, %s::jsonb),"
                " owner_hint_sent_at = coalesce(owner_hint_sent_at, %s::timestamptz),"
                " updated_at = %s WHERE platform = %s AND chat_id = %s",
                (
                    checks.json_text("settings", settings, MAX_SETTINGS_JSON),
                    row["title"],
                    row["added_by"],
                    bot_rights,
                    row["owner_hint_sent_at"],
                    now,
                    p,
                    new,
                ),
            )
            for table, key in (("exemptions", "user_id"), ("follows", "list_id"), ("circle_members", "circle_id")):
                # a row the new id already has wins; the old one goes with the old group below
                await c.execute(
                    f"UPDATE {table} AS t SET chat_id = %s WHERE t.platform = %s AND t.chat_id = %s"  # fixed names
                    f" AND NOT EXISTS (SELECT 1 FROM {table} n WHERE n.platform = t.platform AND n.chat_id = %s"
                    f" AND n.{key} = t.{key})",
                    (new, p, old, new),
                )
            await c.execute(
                "UPDATE lists SET chat_id = %s WHERE scope = 'group' AND platform = %s AND chat_id = %s", (new, p, old)
            )
            await c.execute(
                "UPDATE protected_photos SET chat_id = %s WHERE source = 'group' AND platform = %s AND chat_id = %s",
                (new, p, old),
            )
            await c.execute("DELETE FROM groups WHERE platform = %s AND chat_id = %s", (p, old))
        return True
