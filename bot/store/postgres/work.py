"""The inbox of media not yet handled, platform actions and small state values: the PostgreSQL
twin of bot/store/work.py."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime, timedelta
from typing import Any

from bot.errors import BadStoreValue, UnknownRecord
from bot.store import checks
from bot.store.postgres import rows
from bot.store.postgres.db import CLAIM_LOCK, PgDatabase, fetchall, fetchone, rowcount
from bot.store.records import ActionRecord, PruneCounts, WorkItem
from bot.store.work import MAX_PARAMS_JSON, MAX_PAYLOAD_JSON, MAX_STATE_KEY, MAX_STATE_VALUE, MAX_VARIANT, _error_text

HELD_RECHECK = timedelta(seconds=5)  # a chat another process is handling is looked at again after this


def _alive(token: str) -> str:
    """SQL: the claim ``token`` (a column) still counts, its process holding the lock (CLAIM_LOCK, token)."""
    return (
        "EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted"
        f" AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        f" AND l.classid = {CLAIM_LOCK}::oid AND l.objid = {token}::oid AND l.objsubid = 2)"
    )


class PgWorkMixin:
    _db: PgDatabase

    # --- inbox of media events ------------------------------------------------------------

    async def enqueue_work(
        self, platform: str, chat_id: str | int, message_id: str | int, payload: Mapping[str, Any]
    ) -> int:
        """Keeps a received media event until ``finish_work``; returns its id (the first id on a replay)."""
        p, cid, mid = (
            checks.platform(platform),
            checks.ident("chat_id", chat_id),
            checks.ident("message_id", message_id),
        )
        text = checks.json_text("payload", payload, MAX_PAYLOAD_JSON)
        variant = checks.text("payload['variant']", payload.get("variant") or "", MAX_VARIANT)
        async with self._db.write() as c:
            await c.execute(
                "INSERT INTO work (platform, chat_id, message_id, variant, payload, enqueued_at)"
                " VALUES (%s, %s, %s, %s, %s::jsonb, %s) ON CONFLICT DO NOTHING",
                (p, cid, mid, variant, text, self._db.now()),
            )
            row = await fetchone(
                c,
                "SELECT id FROM work WHERE platform = %s AND chat_id = %s AND message_id = %s AND variant = %s",
                (p, cid, mid, variant),
            )
        assert row is not None
        return int(row["id"])

    async def work_item(self, work_id: int) -> WorkItem | None:
        wid = checks.record_id("work_id", work_id)
        async with self._db.read() as c:
            row = await fetchone(c, "SELECT * FROM work WHERE id = %s", (wid,))
        return None if row is None else rows.work(row)

    async def pending_work(self, platform: str | None = None, *, max_attempts: int | None = None) -> list[WorkItem]:
        """Unfinished items, oldest first; ``max_attempts`` leaves out items that failed that often."""
        where: list[str] = ["finished_at IS NULL"]
        params: list[Any] = []
        if platform is not None:
            where.append("platform = %s")
            params.append(checks.platform(platform))
        if max_attempts is not None:
            where.append("attempts < %s")
            params.append(checks.record_id("max_attempts", max_attempts))
        async with self._db.read() as c:
            found = await fetchall(c, f"SELECT * FROM work WHERE {' AND '.join(where)} ORDER BY id", params)
        return [rows.work(r) for r in found]

    async def finish_work(self, work_id: int) -> bool:
        """Marks the item handled and drops its payload; True the first time."""
        wid = checks.record_id("work_id", work_id)
        async with self._db.write() as c:
            return (
                await rowcount(
                    c,
                    "UPDATE work SET finished_at = %s, payload = '{}', taken_by = NULL"
                    " WHERE id = %s AND finished_at IS NULL",
                    (self._db.now(), wid),
                )
                == 1
            )

    # SQLite has one process, and its pipeline gives a chat to one worker at a time. Here several
    # processes may share the inbox: start_work claims the item for this process (taken_by, under a
    # row lock, skipping a row another process is claiming), the end of the attempt (finish, defer,
    # give up, release) clears the claim, and a claim lapses the moment its process dies.

    async def start_work(self, work_id: int) -> int | None:
        """Counts an attempt as it starts (a crash during it still counts); returns the attempts
        so far including this one, or None when the item is finished, unknown, or another process
        is handling it."""
        wid = checks.record_id("work_id", work_id)
        me = await self._db.claim_token()
        async with self._db.write() as c:
            row = await fetchone(
                c,
                "WITH free AS (SELECT id FROM work WHERE id = %s AND finished_at IS NULL"
                f" AND (taken_by IS NULL OR taken_by = %s OR NOT {_alive('taken_by')}) FOR UPDATE SKIP LOCKED)"
                " UPDATE work SET attempts = attempts + 1, last_attempt_at = %s, not_before = NULL, taken_by = %s"
                " FROM free WHERE work.id = free.id RETURNING attempts",
                (wid, me, self._db.now(), me),
            )
        return None if row is None else int(row["attempts"])

    async def release_work(self, work_id: int) -> None:
        """Takes back the attempt of a run that a clean stop interrupted (it is not the item's fault)."""
        wid = checks.record_id("work_id", work_id)
        async with self._db.write() as c:
            await c.execute(
                "UPDATE work SET attempts = greatest(0, attempts - 1), taken_by = NULL"
                " WHERE id = %s AND finished_at IS NULL",
                (wid,),
            )

    async def defer_work(self, work_id: int, error: object, not_before: datetime) -> None:
        """A failed attempt (already counted by ``start_work``): the item waits until ``not_before``."""
        wid = checks.record_id("work_id", work_id)
        async with self._db.write() as c:
            await c.execute(
                "UPDATE work SET last_error = %s, not_before = %s, taken_by = NULL"
                " WHERE id = %s AND finished_at IS NULL",
                (_error_text(error), checks.timestamp(not_before), wid),
            )

    async def give_up_work(self, work_id: int, error: object) -> bool:
        """Finishes an item without a check (too many attempts); True the first time."""
        wid = checks.record_id("work_id", work_id)
        async with self._db.write() as c:
            changed = await rowcount(
                c,
                "UPDATE work SET finished_at = %s, gave_up = true, payload = '{}', last_error = %s, taken_by = NULL"
                " WHERE id = %s AND finished_at IS NULL",
                (self._db.now(), _error_text(error), wid),
            )
        return changed == 1

    async def next_work(
        self, platform: str, chat_id: str | int, now: datetime, exclude: Collection[int] = ()
    ) -> tuple[WorkItem | None, str | None]:
        """The chat's oldest unfinished item that is due at ``now`` and not in ``exclude`` (items
        whose actions are still going out), and when the next deferred one is due (None: nothing
        is waiting for a retry time). While another process handles one of the chat's items: none,
        and a time to look again (the chat's order holds across processes)."""
        p, cid, at = checks.platform(platform), checks.ident("chat_id", chat_id), checks.timestamp(now)
        skip = [checks.record_id("work_id", i) for i in exclude]
        me = await self._db.claim_token()
        async with self._db.read() as c:
            held = await fetchone(
                c,
                "SELECT 1 AS held FROM work WHERE platform = %s AND chat_id = %s AND finished_at IS NULL"
                f" AND taken_by <> %s AND {_alive('taken_by')} LIMIT 1",
                (p, cid, me),
            )
            if held is not None:
                return None, checks.timestamp(now + HELD_RECHECK)
            row = await fetchone(
                c,
                "SELECT * FROM work WHERE platform = %s AND chat_id = %s AND finished_at IS NULL"
                " AND (not_before IS NULL OR not_before <= %s) AND NOT (id = ANY(%s)) ORDER BY id LIMIT 1",
                (p, cid, at, skip),
            )
            later = await fetchone(
                c,
                "SELECT min(not_before) AS later FROM work WHERE platform = %s AND chat_id = %s"
                " AND finished_at IS NULL AND not_before > %s",
                (p, cid, at),
            )
        return (None if row is None else rows.work(row)), (None if later is None else later["later"])

    async def pending_chats(self) -> list[tuple[str, str]]:
        """(platform, chat) pairs with unfinished work, the chat with the oldest item first."""
        async with self._db.read() as c:
            found = await fetchall(
                c,
                "SELECT platform, chat_id, min(id) AS first FROM work WHERE finished_at IS NULL"
                " GROUP BY platform, chat_id ORDER BY first",
            )
        return [(r["platform"], r["chat_id"]) for r in found]

    async def fail_work(self, work_id: int, error: object) -> int:
        """Counts a failed attempt (the item stays pending); returns the number of attempts so far."""
        wid = checks.record_id("work_id", work_id)
        async with self._db.write() as c:
            row = await fetchone(
                c,
                "UPDATE work SET attempts = attempts + 1, last_error = %s, last_attempt_at = %s WHERE id = %s"
                " RETURNING attempts",
                (_error_text(error), self._db.now(), wid),
            )
        if row is None:
            raise UnknownRecord("work item", wid)
        return int(row["attempts"])

    # --- platform actions ----------------------------------------------------------------------

    async def record_action(
        self,
        platform: str,
        chat_id: str | int,
        message_id: str | int,
        action: str,
        params: Mapping[str, Any] | None = None,
    ) -> ActionRecord:
        """Records an action before it is tried; a repeat returns the first record (with its state)."""
        key = (
            checks.platform(platform),
            checks.ident("chat_id", chat_id),
            checks.ident("message_id", message_id),
            checks.text("action", action, 32, optional=False),
        )
        text = checks.json_text("params", params, MAX_PARAMS_JSON)
        now = self._db.now()
        async with self._db.write() as c:
            await c.execute(
                "INSERT INTO actions (platform, chat_id, message_id, action, params, created_at, updated_at)"
                " VALUES (%s, %s, %s, %s, %s::jsonb, %s, %s) ON CONFLICT DO NOTHING",
                (*key, text, now, now),
            )
            row = await fetchone(
                c, "SELECT * FROM actions WHERE platform = %s AND chat_id = %s AND message_id = %s AND action = %s", key
            )
        assert row is not None
        return rows.action(row)

    async def _settle(self, action_id: int, state: str, error: str | None) -> None:
        aid = checks.record_id("action_id", action_id)
        async with self._db.write() as c:
            changed = await rowcount(
                c,
                "UPDATE actions SET state = %s, attempts = attempts + 1, last_error = %s, updated_at = %s"
                " WHERE id = %s",
                (state, error, self._db.now(), aid),
            )
        if changed != 1:
            raise UnknownRecord("action", aid)

    async def action_done(self, action_id: int) -> None:
        await self._settle(action_id, "done", None)

    async def action_failed(self, action_id: int, error: object) -> None:
        await self._settle(action_id, "failed", _error_text(error))

    async def get_action(self, action_id: int) -> ActionRecord | None:
        aid = checks.record_id("action_id", action_id)
        async with self._db.read() as c:
            row = await fetchone(c, "SELECT * FROM actions WHERE id = %s", (aid,))
        return None if row is None else rows.action(row)

    async def pending_actions(self, platform: str | None = None) -> list[ActionRecord]:
        """Actions recorded but never settled (Vigil stopped in between), oldest first."""
        async with self._db.read() as c:
            if platform is None:
                found = await fetchall(c, "SELECT * FROM actions WHERE state = 'pending' ORDER BY id")
            else:
                found = await fetchall(
                    c,
                    "SELECT * FROM actions WHERE state = 'pending' AND platform = %s ORDER BY id",
                    (checks.platform(platform),),
                )
        return [rows.action(r) for r in found]

    async def prune_work_before(self, cutoff: datetime) -> PruneCounts:
        """Retention for the inbox: finished items and settled actions older than ``cutoff``."""
        at = checks.timestamp(cutoff)
        async with self._db.write() as c:
            work = await rowcount(c, "DELETE FROM work WHERE finished_at < %s", (at,))
            actions = await rowcount(c, "DELETE FROM actions WHERE state != 'pending' AND updated_at < %s", (at,))
        return PruneCounts(work=work, actions=actions)

    # --- state values -------------------------------------------------------------------------

    async def get_state(self, key: str) -> str | None:
        k = checks.text("key", key, MAX_STATE_KEY, optional=False)
        async with self._db.read() as c:
            row = await fetchone(c, "SELECT value FROM state WHERE key = %s", (k,))
        return None if row is None else row["value"]

    async def set_state(self, key: str, value: str) -> None:
        k = checks.text("key", key, MAX_STATE_KEY, optional=False)
        v = checks.text("value", value, MAX_STATE_VALUE)
        if v is None:
            raise BadStoreValue("value", value, "text (use delete_state to remove a key)")
        async with self._db.write() as c:
            await c.execute(
                "INSERT INTO state (key, value, updated_at) VALUES (%s, %s, %s)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                (k, v, self._db.now()),
            )

    async def delete_state(self, key: str) -> bool:
        k = checks.text("key", key, MAX_STATE_KEY, optional=False)
        async with self._db.write() as c:
            return await rowcount(c, "DELETE FROM state WHERE key = %s", (k,)) == 1
