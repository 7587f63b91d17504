"""The audit log, reviews, alerts, retention and per-person purge: the PostgreSQL twin of bot/store/audit.py."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from bot.errors import BadStoreValue, UnknownRecord
from bot.store import checks
from bot.store.audit import AUDIT_KINDS, DECISIONS, MAX_ACTIONS_JSON, MAX_FINDINGS_JSON, MAX_HASHES_JSON
from bot.store.postgres import rows
from bot.store.postgres.db import PgDatabase, fetchall, fetchone, rowcount
from bot.store.records import AlertRecord, AuditRecord, PurgeCounts, ReviewRecord


class PgAuditMixin:
    _db: PgDatabase

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
        values = (
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
            dry_run,
        )
        async with self._db.write() as c:
            row = await fetchone(
                c,
                "INSERT INTO audit (at, platform, chat_id, message_id, sender_id, sender_name, kind, label,"
                " findings, hashes, decision, actions, actor, dry_run)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s, %s::jsonb, %s, %s) RETURNING id",
                (self._db.now(), *values),
            )
        assert row is not None
        return int(row["id"])

    async def audit_record(self, audit_id: int) -> AuditRecord | None:
        aid = checks.record_id("audit_id", audit_id)
        async with self._db.read() as c:
            row = await fetchone(c, "SELECT * FROM audit WHERE id = %s", (aid,))
        return None if row is None else rows.audit(row)

    async def audit_for_group(
        self, platform: str, chat_id: str | int, since: datetime | None = None, limit: int | None = None
    ) -> list[AuditRecord]:
        """The group's records, oldest first; ``since`` keeps those at or after that moment."""
        p, cid = checks.platform(platform), checks.ident("chat_id", chat_id)
        start = None if since is None else checks.timestamp(since)
        lim = None if limit is None else checks.record_id("limit", limit)
        async with self._db.read() as c:
            found = await fetchall(
                c,
                "SELECT * FROM audit WHERE platform = %s AND chat_id = %s"
                " AND (%s::timestamptz IS NULL OR at >= %s::timestamptz) ORDER BY at, id LIMIT %s",
                (p, cid, start, start, lim),
            )
        return [rows.audit(r) for r in found]

    async def counts(self, platform: str, chat_id: str | int) -> Mapping[str, int]:
        """Figures for /vigil status; see ``bot.store.audit.AuditMixin.counts``."""
        key = (checks.platform(platform), checks.ident("chat_id", chat_id))
        out: dict[str, int] = {"scans": 0, "deleted": 0}
        async with self._db.read() as c:
            for r in await fetchall(
                c,
                "SELECT label, count(*) AS n FROM audit WHERE platform = %s AND chat_id = %s AND kind = 'scan'"
                " GROUP BY label",
                key,
            ):
                out[r["label"]] = r["n"]
                out["scans"] += r["n"]
            for r in await fetchall(
                c,
                "SELECT action, count(*) AS n FROM actions WHERE platform = %s AND chat_id = %s AND state = 'done'"
                " GROUP BY action",
                key,
            ):
                out[f"action:{r['action']}"] = r["n"]
        out["deleted"] = out.get("action:delete", 0)
        return out

    async def delete_audit_before(self, cutoff: datetime) -> int:
        """Retention: removes records older than ``cutoff`` (with their reviews and alerts)."""
        at = checks.timestamp(cutoff)
        async with self._db.write() as c:
            return await rowcount(c, "DELETE FROM audit WHERE at < %s", (at,))

    async def clear_audit_hashes_before(self, cutoff: datetime) -> int:
        """Retention: empties the image hashes of records older than ``cutoff``; returns how many changed."""
        at = checks.timestamp(cutoff)
        async with self._db.write() as c:
            return await rowcount(c, "UPDATE audit SET hashes = '{}' WHERE at < %s AND hashes != '{}'", (at,))

    async def purge_user(self, platform: str, user_id: str | int) -> PurgeCounts:
        """A data-protection request; see ``bot.store.audit.AuditMixin.purge_user``."""
        p, uid = checks.platform(platform), checks.ident("user_id", user_id)
        async with self._db.write() as c:

            async def run(sql: str, params: tuple[Any, ...] = (p, uid)) -> int:
                return await rowcount(c, sql, params)

            return PurgeCounts(
                audit=await run("DELETE FROM audit WHERE platform = %s AND sender_id = %s"),
                contacts=await run("DELETE FROM contacts WHERE platform = %s AND user_id = %s"),
                exemptions=await run("DELETE FROM exemptions WHERE platform = %s AND user_id = %s"),
                entries=await run(
                    "DELETE FROM entries WHERE added_by = %(u)s AND coalesce(source_platform, %(p)s) = %(p)s",
                    {"p": p, "u": uid},  # type: ignore[arg-type]
                ),
                alerts=await run("DELETE FROM alerts WHERE platform = %s AND user_id = %s"),
                actions=await run("DELETE FROM actions WHERE platform = %s AND params->>'user' = %s"),
                anonymised=await run("UPDATE audit SET actor = NULL WHERE platform = %s AND actor = %s")
                + await run("UPDATE reviews SET decided_by = NULL WHERE platform = %s AND decided_by = %s"),
            )

    # --- reviews ------------------------------------------------------------------------

    async def open_review(
        self, audit_id: int, platform: str, chat_id: str | int, message_id: str | int
    ) -> ReviewRecord:
        """A record waiting for an admin decision; opening it again returns the same review."""
        aid = checks.record_id("audit_id", audit_id)
        values = (checks.platform(platform), checks.ident("chat_id", chat_id), checks.ident("message_id", message_id))
        async with self._db.write() as c:
            if await fetchone(c, "SELECT 1 AS x FROM audit WHERE id = %s", (aid,)) is None:
                raise UnknownRecord("audit record", aid)
            await c.execute(
                "INSERT INTO reviews (audit_id, platform, chat_id, message_id, opened_at) VALUES (%s, %s, %s, %s, %s)"
                " ON CONFLICT (audit_id) DO NOTHING",
                (aid, *values, self._db.now()),
            )
            row = await fetchone(c, "SELECT * FROM reviews WHERE audit_id = %s", (aid,))
        assert row is not None
        return rows.review(row)

    async def get_review(self, audit_id: int) -> ReviewRecord | None:
        """The review of an audit record (buttons carry the audit id)."""
        aid = checks.record_id("audit_id", audit_id)
        async with self._db.read() as c:
            row = await fetchone(c, "SELECT * FROM reviews WHERE audit_id = %s", (aid,))
        return None if row is None else rows.review(row)

    async def review(self, review_id: int) -> ReviewRecord | None:
        rid = checks.record_id("review_id", review_id)
        async with self._db.read() as c:
            row = await fetchone(c, "SELECT * FROM reviews WHERE id = %s", (rid,))
        return None if row is None else rows.review(row)

    async def open_reviews(self, platform: str, chat_id: str | int) -> list[ReviewRecord]:
        key = (checks.platform(platform), checks.ident("chat_id", chat_id))
        async with self._db.read() as c:
            found = await fetchall(
                c, "SELECT * FROM reviews WHERE platform = %s AND chat_id = %s AND state = 'open' ORDER BY id", key
            )
        return [rows.review(r) for r in found]

    async def decide_review(self, review_id: int, decision: str, by: str | int) -> bool:
        """Records an admin's decision; only the first one counts (a second returns False)."""
        rid = checks.record_id("review_id", review_id)
        values = (checks.choice("decision", decision, DECISIONS), checks.ident("by", by))
        async with self._db.write() as c:
            return (
                await rowcount(
                    c,
                    "UPDATE reviews SET state = %s, decided_by = %s, decided_at = %s WHERE id = %s AND state = 'open'",
                    (*values, self._db.now(), rid),
                )
                == 1
            )

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
            if await fetchone(c, "SELECT 1 AS x FROM audit WHERE id = %s", (aid,)) is None:
                raise UnknownRecord("audit record", aid)
            return (
                await rowcount(
                    c,
                    "INSERT INTO alerts (audit_id, platform, user_id, message_id, sent_at) VALUES (%s, %s, %s, %s, %s)"
                    " ON CONFLICT (audit_id, user_id) DO NOTHING",
                    (aid, *values, self._db.now()),
                )
                == 1
            )

    async def alerts_for(self, audit_id: int) -> list[AlertRecord]:
        aid = checks.record_id("audit_id", audit_id)
        async with self._db.read() as c:
            found = await fetchall(c, "SELECT * FROM alerts WHERE audit_id = %s ORDER BY id", (aid,))
        return [rows.alert(r) for r in found]
