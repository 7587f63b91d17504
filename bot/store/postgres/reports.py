"""Private reports and ignored reporters: the PostgreSQL twin of bot/store/reports.py (migration 0005)."""

from __future__ import annotations

from datetime import datetime

from bot.store import checks
from bot.store.postgres.db import PgDatabase, fetchall, fetchone, rowcount
from bot.store.reports import PURGED, REPORT_COLUMNS, ReportAdded, ReportRecord, decision_of, report_of, source_of


class PgReportsMixin:
    _db: PgDatabase

    async def add_report(
        self, platform: str, chat_id: str | int, message_id: str | int, reporter_id: str | int, source: str
    ) -> ReportAdded:
        """Records ``reporter_id``'s report of a message; see ``bot.store.reports.ReportsMixin.add_report``."""
        p, cid = checks.platform(platform), checks.ident("chat_id", chat_id)
        mid, uid = checks.ident("message_id", message_id), checks.ident("reporter_id", reporter_id)
        src = source_of(source)
        now = self._db.now()
        async with self._db.write() as c:
            new_report = (
                await rowcount(
                    c,
                    "INSERT INTO reports (platform, chat_id, message_id, reporter_id, source, reported_at)"
                    " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    (p, cid, mid, uid, str(src), now),
                )
                == 1
            )
            row = await fetchone(
                c,
                f"SELECT {REPORT_COLUMNS} FROM reports WHERE platform = %s AND chat_id = %s AND message_id = %s",
                (p, cid, mid),
            )
            assert row is not None
            report = report_of(row)
            new_reporter = (
                await rowcount(
                    c,
                    "INSERT INTO report_reporters (report_id, platform, chat_id, reporter_id, reported_at)"
                    " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    (report.id, p, cid, uid, now),
                )
                == 1
            )
            return ReportAdded(report, new_report, new_reporter)

    async def get_report(self, report_id: int) -> ReportRecord | None:
        rid = checks.record_id("report_id", report_id)
        async with self._db.read() as c:
            row = await fetchone(c, f"SELECT {REPORT_COLUMNS} FROM reports WHERE id = %s", (rid,))
        return report_of(row) if row is not None else None

    async def report_counts(
        self, platform: str, chat_id: str | int, reporter_id: str | int, since: datetime
    ) -> tuple[int, int]:
        """Since ``since``: the messages this member reported in the chat, and the chat's reports."""
        p, cid, uid = (
            checks.platform(platform),
            checks.ident("chat_id", chat_id),
            checks.ident("reporter_id", reporter_id),
        )
        after = checks.timestamp(since)
        async with self._db.read() as c:
            mine = await fetchone(
                c,
                "SELECT count(*) AS n FROM report_reporters WHERE platform = %s AND chat_id = %s AND reporter_id = %s"
                " AND reported_at >= %s",
                (p, cid, uid, after),
            )
            chat = await fetchone(
                c,
                "SELECT count(*) AS n FROM reports WHERE platform = %s AND chat_id = %s AND reported_at >= %s",
                (p, cid, after),
            )
        return (int(mine["n"]) if mine else 0, int(chat["n"]) if chat else 0)

    async def mark_report_alerted(self, report_id: int) -> bool:
        """The admins were told; True the first time."""
        rid = checks.record_id("report_id", report_id)
        async with self._db.write() as c:
            return (
                await rowcount(
                    c, "UPDATE reports SET alerted_at = %s WHERE id = %s AND alerted_at IS NULL", (self._db.now(), rid)
                )
                == 1
            )

    async def record_report_alert(self, report_id: int, platform: str, user_id: str | int) -> bool:
        rid, p, uid = (
            checks.record_id("report_id", report_id),
            checks.platform(platform),
            checks.ident("user_id", user_id),
        )
        async with self._db.write() as c:
            return (
                await rowcount(
                    c,
                    "INSERT INTO report_alerts (report_id, platform, user_id, sent_at) VALUES (%s, %s, %s, %s)"
                    " ON CONFLICT DO NOTHING",
                    (rid, p, uid, self._db.now()),
                )
                == 1
            )

    async def report_alerted_to(self, report_id: int) -> set[str]:
        rid = checks.record_id("report_id", report_id)
        async with self._db.read() as c:
            rows = await fetchall(c, "SELECT user_id FROM report_alerts WHERE report_id = %s", (rid,))
        return {str(r["user_id"]) for r in rows}

    async def unalerted_reports(self, since: datetime, limit: int) -> list[ReportRecord]:
        after, most = checks.timestamp(since), checks.record_id("limit", limit)
        async with self._db.read() as c:
            rows = await fetchall(
                c,
                f"SELECT {REPORT_COLUMNS} FROM reports WHERE alerted_at IS NULL AND reported_at >= %s"
                " ORDER BY reported_at, id LIMIT %s",
                (after, most),
            )
        return [report_of(r) for r in rows]

    async def decide_report(self, report_id: int, state: str, by: str | int) -> bool:
        """An admin's choice on an open report; only the first one counts."""
        rid, decision = checks.record_id("report_id", report_id), decision_of(state)
        who = checks.ident("by", by)
        async with self._db.write() as c:
            return (
                await rowcount(
                    c,
                    "UPDATE reports SET state = %s, decided_by = %s, decided_at = %s WHERE id = %s AND state = 'open'",
                    (str(decision), who, self._db.now(), rid),
                )
                == 1
            )

    async def delete_reports_before(self, cutoff: datetime) -> int:
        """Retention: removes reports made before ``cutoff``."""
        before = checks.timestamp(cutoff)
        async with self._db.write() as c:
            return await rowcount(c, "DELETE FROM reports WHERE reported_at < %s", (before,))

    async def ignore_reporter(self, platform: str, chat_id: str | int, user_id: str | int, by: str | int) -> bool:
        """The member's reports in the chat are dropped from now on; True if they were not already."""
        p, cid, uid = checks.platform(platform), checks.ident("chat_id", chat_id), checks.ident("user_id", user_id)
        who = checks.ident("by", by)
        async with self._db.write() as c:
            return (
                await rowcount(
                    c,
                    "INSERT INTO ignored_reporters (platform, chat_id, user_id, added_by, added_at)"
                    " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    (p, cid, uid, who, self._db.now()),
                )
                == 1
            )

    async def unignore_reporter(self, platform: str, chat_id: str | int, user_id: str | int) -> bool:
        """True if the member's reports were ignored."""
        key = (checks.platform(platform), checks.ident("chat_id", chat_id), checks.ident("user_id", user_id))
        async with self._db.write() as c:
            return (
                await rowcount(
                    c, "DELETE FROM ignored_reporters WHERE platform = %s AND chat_id = %s AND user_id = %s", key
                )
                == 1
            )

    async def is_ignored_reporter(self, platform: str, chat_id: str | int, user_id: str | int) -> bool:
        key = (checks.platform(platform), checks.ident("chat_id", chat_id), checks.ident("user_id", user_id))
        async with self._db.read() as c:
            row = await fetchone(
                c, "SELECT 1 AS x FROM ignored_reporters WHERE platform = %s AND chat_id = %s AND user_id = %s", key
            )
        return row is not None

    async def purge_reporter(self, platform: str, user_id: str | int) -> int:
        """A data-protection request: the member's reports leave no trace of them."""
        key = (checks.platform(platform), checks.ident("user_id", user_id))
        async with self._db.write() as c:
            changed = 0
            for sql in (
                "DELETE FROM report_reporters WHERE platform = %s AND reporter_id = %s",
                "DELETE FROM ignored_reporters WHERE platform = %s AND user_id = %s",
                "DELETE FROM report_alerts WHERE platform = %s AND user_id = %s",
                f"UPDATE reports SET reporter_id = '{PURGED}' WHERE platform = %s AND reporter_id = %s",
                f"UPDATE reports SET decided_by = '{PURGED}' WHERE platform = %s AND decided_by = %s",
            ):
                changed += await rowcount(c, sql, key)
            return changed
