"""What survives a restart: the inbox of media not yet handled, platform actions, and small state values."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from bot.errors import BadStoreValue, UnknownRecord
from bot.store import checks
from bot.store.db import Database, fetch_all, found
from bot.store.records import ActionRecord, PruneCounts, WorkItem, load_json

MAX_PAYLOAD_JSON = 8192
MAX_PARAMS_JSON = 2048
MAX_ERROR = 2000
MAX_STATE_KEY = 200
MAX_STATE_VALUE = 4096
MAX_VARIANT = 200  # bot.events.MAX_VARIANT


def _work(row: sqlite3.Row) -> WorkItem:
    return WorkItem(
        id=row["id"],
        platform=row["platform"],
        chat_id=row["chat_id"],
        message_id=row["message_id"],
        variant=row["variant"],
        payload=load_json(row["payload"]),
        enqueued_at=row["enqueued_at"],
        attempts=row["attempts"],
        last_error=row["last_error"],
        last_attempt_at=row["last_attempt_at"],
        finished_at=row["finished_at"],
        not_before=row["not_before"],
        gave_up=bool(row["gave_up"]),
    )


def _action(row: sqlite3.Row) -> ActionRecord:
    return ActionRecord(
        id=row["id"],
        platform=row["platform"],
        chat_id=row["chat_id"],
        message_id=row["message_id"],
        action=row["action"],
        params=load_json(row["params"]),
        state=row["state"],
        attempts=row["attempts"],
        last_error=row["last_error"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _error_text(error: object) -> str:
    # an error message must never stop the record of the failure: cut, don't refuse
    text = str(error)
    return text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 3] + "..."


class WorkMixin:
    _db: Database

    # --- inbox of media events ------------------------------------------------------------

    async def enqueue_work(
        self, platform: str, chat_id: str | int, message_id: str | int, payload: Mapping[str, Any]
    ) -> int:
        """Keeps a received media event until ``finish_work``; returns its id.

        Idempotent on (platform, chat, message, payload['variant'] or ""): a replayed update
        returns the id it got the first time (check ``work_item(id).finished`` before redoing it).
        """
        p, cid, mid = (
            checks.platform(platform),
            checks.ident("chat_id", chat_id),
            checks.ident("message_id", message_id),
        )
        text = checks.json_text("payload", payload, MAX_PAYLOAD_JSON)
        variant = checks.text("payload['variant']", payload.get("variant") or "", MAX_VARIANT)
        # durable=True: the platform's offset moves on right after this returns, so the row
        # must survive a power loss, not only a crash of Vigil (an fsync of the WAL)
        async with self._db.write(durable=True) as c:
            await c.execute(
                "INSERT INTO work (platform, chat_id, message_id, variant, payload, enqueued_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (p, cid, mid, variant, text, self._db.now()),
            )
            row = await (
                await c.execute(
                    "SELECT id FROM work WHERE platform = ? AND chat_id = ? AND message_id = ? AND variant = ?",
                    (p, cid, mid, variant),
                )
            ).fetchone()
        return int(found(row)[0])

    async def work_item(self, work_id: int) -> WorkItem | None:
        wid = checks.record_id("work_id", work_id)
        async with self._db.read() as c:
            row = await (await c.execute("SELECT * FROM work WHERE id = ?", (wid,))).fetchone()
        return None if row is None else _work(row)

    async def pending_work(self, platform: str | None = None, *, max_attempts: int | None = None) -> list[WorkItem]:
        """Unfinished items, oldest first; ``max_attempts`` leaves out items that failed that often."""
        where, params = ["finished_at IS NULL"], list[str | int]()
        if platform is not None:
            where.append("platform = ?")
            params.append(checks.platform(platform))
        if max_attempts is not None:
            where.append("attempts < ?")
            params.append(checks.record_id("max_attempts", max_attempts))
        async with self._db.read() as c:
            rows = await fetch_all(c, f"SELECT * FROM work WHERE {' AND '.join(where)} ORDER BY id", params)
        return [_work(r) for r in rows]

    async def finish_work(self, work_id: int) -> bool:
        """Marks the item handled and drops its payload; True the first time."""
        wid = checks.record_id("work_id", work_id)
        async with self._db.write() as c:
            cur = await c.execute(
                "UPDATE work SET finished_at = ?, payload = '{}' WHERE id = ? AND finished_at IS NULL",
                (self._db.now(), wid),
            )
            return cur.rowcount == 1

    async def start_work(self, work_id: int) -> int | None:
        """Counts an attempt as it starts (a crash during it still counts); returns the attempts
        so far including this one, or None when the item is finished or unknown."""
        wid = checks.record_id("work_id", work_id)
        # committed before the work starts: a process killed during it (out of memory) still
        # counts it; WAL survives the death of the process without an fsync
        async with self._db.write() as c:
            rows = await fetch_all(
                c,
                "UPDATE work SET attempts = attempts + 1, last_attempt_at = ?, not_before = NULL"
                " WHERE id = ? AND finished_at IS NULL RETURNING attempts",
                (self._db.now(), wid),
            )
        return rows[0][0] if rows else None

    async def release_work(self, work_id: int) -> None:
        """Takes back the attempt of a run that a clean stop interrupted (it is not the item's fault)."""
        wid = checks.record_id("work_id", work_id)
        async with self._db.write() as c:
            await c.execute(
                "UPDATE work SET attempts = max(0, attempts - 1) WHERE id = ? AND finished_at IS NULL", (wid,)
            )

    async def defer_work(self, work_id: int, error: object, not_before: datetime) -> None:
        """A failed attempt (already counted by ``start_work``): the item waits until ``not_before``."""
        wid = checks.record_id("work_id", work_id)
        async with self._db.write() as c:
            await c.execute(
                "UPDATE work SET last_error = ?, not_before = ? WHERE id = ? AND finished_at IS NULL",
                (_error_text(error), checks.timestamp(not_before), wid),
            )

    async def give_up_work(self, work_id: int, error: object) -> bool:
        """Finishes an item without a check (too many attempts); True the first time."""
        wid = checks.record_id("work_id", work_id)
        async with self._db.write() as c:
            cur = await c.execute(
                "UPDATE work SET finished_at = ?, gave_up = 1, payload = '{}', last_error = ?"
                " WHERE id = ? AND finished_at IS NULL",
                (self._db.now(), _error_text(error), wid),
            )
            return cur.rowcount == 1

    async def next_work(
        self, platform: str, chat_id: str | int, now: datetime, exclude: Collection[int] = ()
    ) -> tuple[WorkItem | None, str | None]:
        """The chat's oldest unfinished item that is due at ``now`` and not in ``exclude`` (items
        whose actions are still going out), and when the next deferred one is due (None: nothing
        is waiting for a retry time)."""
        p, cid, at = checks.platform(platform), checks.ident("chat_id", chat_id), checks.timestamp(now)
        skip = [checks.record_id("work_id", i) for i in exclude]
        not_in = f" AND id NOT IN ({','.join('?' * len(skip))})" if skip else ""
        async with self._db.read() as c:
            row = await (
                await c.execute(
                    "SELECT * FROM work WHERE platform = ? AND chat_id = ? AND finished_at IS NULL"
                    " AND (not_before IS NULL OR not_before <= ?)" + not_in + " ORDER BY id LIMIT 1",
                    (p, cid, at, *skip),
                )
            ).fetchone()
            later = await (
                await c.execute(
                    "SELECT min(not_before) FROM work WHERE platform = ? AND chat_id = ? AND finished_at IS NULL"
                    " AND not_before > ?",
                    (p, cid, at),
                )
            ).fetchone()
        return (None if row is None else _work(row)), found(later)[0]

    async def pending_chats(self) -> list[tuple[str, str]]:
        """(platform, chat) pairs with unfinished work, the chat with the oldest item first."""
        async with self._db.read() as c:
            rows = await fetch_all(
                c,
                "SELECT platform, chat_id, min(id) AS first FROM work WHERE finished_at IS NULL"
                " GROUP BY platform, chat_id ORDER BY first",
            )
        return [(r[0], r[1]) for r in rows]

    async def fail_work(self, work_id: int, error: object) -> int:
        """Counts a failed attempt (the item stays pending); returns the number of attempts so far."""
        wid = checks.record_id("work_id", work_id)
        async with self._db.write() as c:
            rows = await fetch_all(
                c,
                "UPDATE work SET attempts = attempts + 1, last_error = ?, last_attempt_at = ? WHERE id = ?"
                " RETURNING attempts",
                (_error_text(error), self._db.now(), wid),
            )
        if not rows:
            raise UnknownRecord("work item", wid)
        return int(rows[0][0])

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
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (*key, text, now, now),
            )
            row = await (
                await c.execute(
                    "SELECT * FROM actions WHERE platform = ? AND chat_id = ? AND message_id = ? AND action = ?", key
                )
            ).fetchone()
        return _action(found(row))

    async def _settle(self, action_id: int, state: str, error: str | None) -> None:
        aid = checks.record_id("action_id", action_id)
        async with self._db.write() as c:
            cur = await c.execute(
                "UPDATE actions SET state = ?, attempts = attempts + 1, last_error = ?, updated_at = ? WHERE id = ?",
                (state, error, self._db.now(), aid),
            )
            if cur.rowcount != 1:
                raise UnknownRecord("action", aid)

    async def action_done(self, action_id: int) -> None:
        await self._settle(action_id, "done", None)

    async def action_failed(self, action_id: int, error: object) -> None:
        await self._settle(action_id, "failed", _error_text(error))

    async def get_action(self, action_id: int) -> ActionRecord | None:
        aid = checks.record_id("action_id", action_id)
        async with self._db.read() as c:
            row = await (await c.execute("SELECT * FROM actions WHERE id = ?", (aid,))).fetchone()
        return None if row is None else _action(row)

    async def pending_actions(self, platform: str | None = None) -> list[ActionRecord]:
        """Actions recorded but never settled (Vigil stopped in between), oldest first."""
        async with self._db.read() as c:
            if platform is None:
                rows = await fetch_all(c, "SELECT * FROM actions WHERE state = 'pending' ORDER BY id")
            else:
                rows = await fetch_all(
                    c,
                    "SELECT * FROM actions WHERE state = 'pending' AND platform = ? ORDER BY id",
                    (checks.platform(platform),),
                )
        return [_action(r) for r in rows]

    async def prune_work_before(self, cutoff: datetime) -> PruneCounts:
        """Retention for the inbox: finished items and settled actions older than ``cutoff``."""
        at = checks.timestamp(cutoff)
        async with self._db.write() as c:
            work = (await c.execute("DELETE FROM work WHERE finished_at < ?", (at,))).rowcount
            actions = (
                await c.execute("DELETE FROM actions WHERE state != 'pending' AND updated_at < ?", (at,))
            ).rowcount
        return PruneCounts(work=work, actions=actions)

    # --- state values -------------------------------------------------------------------------

    async def get_state(self, key: str) -> str | None:
        k = checks.text("key", key, MAX_STATE_KEY, optional=False)
        async with self._db.read() as c:
            row = await (await c.execute("SELECT value FROM state WHERE key = ?", (k,))).fetchone()
        return None if row is None else row[0]

    async def set_state(self, key: str, value: str) -> None:
        k = checks.text("key", key, MAX_STATE_KEY, optional=False)
        v = checks.text("value", value, MAX_STATE_VALUE)
        if v is None:
            raise BadStoreValue("value", value, "text (use delete_state to remove a key)")
        async with self._db.write() as c:
            await c.execute(
                "INSERT INTO state (key, value, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                (k, v, self._db.now()),
            )

    async def delete_state(self, key: str) -> bool:
        k = checks.text("key", key, MAX_STATE_KEY, optional=False)
        async with self._db.write() as c:
            return (await c.execute("DELETE FROM state WHERE key = ?", (k,))).rowcount == 1
