"""The audit log, reviews waiting for admins, alerts sent, retention and per-person purge."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from bot.errors import BadStoreValue, UnknownRecord
from bot.store import checks
from bot.store.db import Database, found
from bot.store.records import AlertRecord, AuditRecord, PurgeCounts, ReviewRecord, load_json

AUDIT_KINDS = ("scan", "action", "admin_command", "alert", "error")
DECISIONS = ("deleted", "kept")
MAX_FINDINGS_JSON = 16384
MAX_HASHES_JSON = 1024
MAX_ACTIONS_JSON = 4096


def _audit(row: sqlite3.Row) -> AuditRecord:
    return AuditRecord(
        id=row["id"],
        at=row["at"],
        platform=row["platform"],
        chat_id=row["chat_id"],
        message_id=row["message_id"],
        sender_id=row["sender_id"],
        sender_name=row["sender_name"],
        kind=row["kind"],
        label=row["label"],
        findings=load_json(row["findings"]),
        hashes=load_json(row["hashes"]),
        decision=row["decision"],
        actions=load_json(row["actions"]),
        actor=row["actor"],
        dry_run=bool(row["dry_run"]),
    )


def _review(row: sqlite3.Row) -> ReviewRecord:
    return ReviewRecord(
        id=row["id"],
        audit_id=row["audit_id"],
        platform=row["platform"],
        chat_id=row["chat_id"],
        message_id=row["message_id"],
        state=row["state"],
        opened_at=row["opened_at"],
        decided_by=row["decided_by"],
        decided_at=row["decided_at"],
    )


def _alert(row: sqlite3.Row) -> AlertRecord:
    return AlertRecord(
        id=row["id"],
        audit_id=row["audit_id"],
        platform=row["platform"],
        user_id=row["user_id"],
        message_id=row["message_id"],
        sent_at=row["sent_at"],
    )


class AuditMixin:
    _db: Database

    # --- audit log ----------------------------------------------------------------------

    async def add_audit(
        self,
        *,
        platform: str,
        chat_id: str | int,
        kind: str,
        label: str,
        message_id: str | int | None = None,
        sender_id: str | int | None = None,
        sender_name: str | None = None,
        findings: Mapping[str, Any] | None = None,
        hashes: Mapping[str, Any] | None = None,
        decision: str | None = None,
        actions: Mapping[str, Any] | None = None,
        actor: str | int | None = None,
        dry_run: bool = False,
    ) -> int:
        """Appends one record and returns its id. Ids and hashes only: never image bytes or message text."""
        if not isinstance(dry_run, bool):
            raise BadStoreValue("dry_run", dry_run, "True or False")
        row = (
            checks.platform(platform),
            checks.ident("chat_id", chat_id),
            checks.optional_ident("message_id", message_id),
            checks.optional_ident("sender_id", sender_id),
            checks.display("sender_name", sender_name),
            checks.choice("kind", kind, AUDIT_KINDS),
            checks.text("label", label, 512, optional=False),
            checks.json_text("findings", findings, MAX_FINDINGS_JSON),
            checks.json_text("hashes", hashes, MAX_HASHES_JSON),
            checks.text("decision", decision, 64),
            checks.json_text("actions", actions, MAX_ACTIONS_JSON),
            checks.optional_ident("actor", actor),
            int(dry_run),
        )
        async with self._db.write() as c:
            cur = await c.execute(
                "INSERT INTO audit (at, platform, chat_id, message_id, sender_id, sender_name, kind, label,"
                " findings, hashes, decision, actions, actor, dry_run)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (self._db.now(), *row),
            )
            return cur.lastrowid  # type: ignore[return-value]

    async def audit_record(self, audit_id: int) -> AuditRecord | None:
        aid = checks.record_id("audit_id", audit_id)
        async with self._db.read() as c:
            row = await (await c.execute("SELECT * FROM audit WHERE id = ?", (aid,))).fetchone()
        return None if row is None else _audit(row)

    async def audit_for_group(
        self, platform: str, chat_id: str | int, since: datetime | None = None, limit: int | None = None
    ) -> list[AuditRecord]:
        """The group's records, oldest first; ``since`` keeps those at or after that moment."""
        p, cid = checks.platform(platform), checks.ident("chat_id", chat_id)
        start = "" if since is None else checks.timestamp(since)
        lim = -1 if limit is None else checks.record_id("limit", limit)
        async with self._db.read() as c:
            rows = await c.execute_fetchall(
                "SELECT * FROM audit WHERE platform = ? AND chat_id = ? AND at >= ? ORDER BY at, id LIMIT ?",
                (p, cid, start, lim),
            )
        return [_audit(r) for r in rows]

    async def counts(self, platform: str, chat_id: str | int) -> Mapping[str, int]:
        """Figures for /vigil status.

        ``scans``: images checked; one key per scan label (``clean``, ``review``, ``nudity``, ...);
        ``deleted``: messages Vigil deleted; ``action:<name>``: platform actions done, by name.
        """
        key = (checks.platform(platform), checks.ident("chat_id", chat_id))
        out: dict[str, int] = {"scans": 0, "deleted": 0}
        async with self._db.read() as c:
            for r in await c.execute_fetchall(
                "SELECT label, count(*) FROM audit WHERE platform = ? AND chat_id = ? AND kind = 'scan' GROUP BY label",
                key,
            ):
                out[r[0]] = r[1]
                out["scans"] += r[1]
            for r in await c.execute_fetchall(
                "SELECT action, count(*) FROM actions WHERE platform = ? AND chat_id = ? AND state = 'done'"
                " GROUP BY action",
                key,
            ):
                out[f"action:{r[0]}"] = r[1]
        out["deleted"] = out.get("action:delete", 0)
        return out

    async def delete_audit_before(self, cutoff: datetime) -> int:
        """Retention: removes records older than ``cutoff`` (with their reviews and alerts)."""
        at = checks.timestamp(cutoff)
        async with self._db.write() as c:
            cur = await c.execute("DELETE FROM audit WHERE at < ?", (at,))
            return cur.rowcount

    async def clear_audit_hashes_before(self, cutoff: datetime) -> int:
        """Retention: empties the image hashes of records older than ``cutoff`` (the records
        stay); returns how many changed."""
        at = checks.timestamp(cutoff)
        async with self._db.write() as c:
            cur = await c.execute("UPDATE audit SET hashes = '{}' WHERE at < ? AND hashes != '{}'", (at,))
            return cur.rowcount

    async def purge_user(self, platform: str, user_id: str | int) -> PurgeCounts:
        """A data-protection request: removes what Vigil keeps about one person.

        Deletes the records where they were the sender (with the reviews and alerts of those
        records), their contact, their exemptions, the list entries they added, alerts sent to
        them and actions aimed at them; records where they acted as an admin stay, without their id.
        """
        p, uid = checks.platform(platform), checks.ident("user_id", user_id)
        async with self._db.write() as c:

            async def run(sql: str, params: tuple[object, ...] = (p, uid)) -> int:
                return (await c.execute(sql, params)).rowcount

            return PurgeCounts(
                audit=await run("DELETE FROM audit WHERE platform = ? AND sender_id = ?"),
                contacts=await run("DELETE FROM contacts WHERE platform = ? AND user_id = ?"),
                exemptions=await run("DELETE FROM exemptions WHERE platform = ? AND user_id = ?"),
                entries=await run("DELETE FROM entries WHERE added_by = ?2 AND coalesce(source_platform, ?1) = ?1"),
                alerts=await run("DELETE FROM alerts WHERE platform = ? AND user_id = ?"),
                actions=await run("DELETE FROM actions WHERE platform = ? AND json_extract(params, '$.user') = ?"),
                anonymised=await run("UPDATE audit SET actor = NULL WHERE platform = ? AND actor = ?")
                + await run("UPDATE reviews SET decided_by = NULL WHERE platform = ? AND decided_by = ?"),
            )

    # --- reviews ------------------------------------------------------------------------

    async def open_review(
        self, audit_id: int, platform: str, chat_id: str | int, message_id: str | int
    ) -> ReviewRecord:
        """A record waiting for an admin decision; opening it again returns the same review."""
        aid = checks.record_id("audit_id", audit_id)
        values = (checks.platform(platform), checks.ident("chat_id", chat_id), checks.ident("message_id", message_id))
        async with self._db.write() as c:
            if await (await c.execute("SELECT 1 FROM audit WHERE id = ?", (aid,))).fetchone() is None:
                raise UnknownRecord("audit record", aid)
            await c.execute(
                "INSERT INTO reviews (audit_id, platform, chat_id, message_id, opened_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (audit_id) DO NOTHING",
                (aid, *values, self._db.now()),
            )
            row = await (await c.execute("SELECT * FROM reviews WHERE audit_id = ?", (aid,))).fetchone()
        return _review(found(row))

    async def get_review(self, audit_id: int) -> ReviewRecord | None:
        """The review of an audit record (buttons carry the audit id)."""
        aid = checks.record_id("audit_id", audit_id)
        async with self._db.read() as c:
            row = await (await c.execute("SELECT * FROM reviews WHERE audit_id = ?", (aid,))).fetchone()
        return None if row is None else _review(row)

    async def review(self, review_id: int) -> ReviewRecord | None:
        rid = checks.record_id("review_id", review_id)
        async with self._db.read() as c:
            row = await (await c.execute("SELECT * FROM reviews WHERE id = ?", (rid,))).fetchone()
        return None if row is None else _review(row)

    async def open_reviews(self, platform: str, chat_id: str | int) -> list[ReviewRecord]:
        key = (checks.platform(platform), checks.ident("chat_id", chat_id))
        async with self._db.read() as c:
            rows = await c.execute_fetchall(
                "SELECT * FROM reviews WHERE platform = ? AND chat_id = ? AND state = 'open' ORDER BY id", key
            )
        return [_review(r) for r in rows]

    async def decide_review(self, review_id: int, decision: str, by: str | int) -> bool:
        """Records an admin's decision; only the first one counts (a second returns False)."""
        rid = checks.record_id("review_id", review_id)
        values = (checks.choice("decision", decision, DECISIONS), checks.ident("by", by))
        async with self._db.write() as c:
            cur = await c.execute(
                "UPDATE reviews SET state = ?, decided_by = ?, decided_at = ? WHERE id = ? AND state = 'open'",
                (*values, self._db.now(), rid),
            )
            return cur.rowcount == 1

    # --- alerts -------------------------------------------------------------------------

    async def record_alert(
        self, audit_id: int, platform: str, user_id: str | int, message_id: str | int | None = None
    ) -> bool:
        """Remembers that ``user_id`` was alerted about a record; False if they already were."""
        aid = checks.record_id("audit_id", audit_id)
        values = (
            checks.platform(platform),
            checks.ident("user_id", user_id),
            checks.optional_ident("message_id", message_id),
        )
        async with self._db.write() as c:
            if await (await c.execute("SELECT 1 FROM audit WHERE id = ?", (aid,))).fetchone() is None:
                raise UnknownRecord("audit record", aid)
            cur = await c.execute(
                "INSERT INTO alerts (audit_id, platform, user_id, message_id, sent_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (audit_id, user_id) DO NOTHING",
                (aid, *values, self._db.now()),
            )
            return cur.rowcount == 1

    async def alerts_for(self, audit_id: int) -> list[AlertRecord]:
        aid = checks.record_id("audit_id", audit_id)
        async with self._db.read() as c:
            rows = await c.execute_fetchall("SELECT * FROM alerts WHERE audit_id = ? ORDER BY id", (aid,))
        return [_alert(r) for r in rows]
