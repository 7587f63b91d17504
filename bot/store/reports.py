"""Private reports (migration 0008): one report per reported message, every member who reported
it, and the members whose reports a group's admins ignore.

Ids and times only: never the reported message's text or image. The first member to report a
message makes the report (and its alert); a repeat, by them or by anyone else, adds the member to
``report_reporters`` (the rows the per-member rate limit counts) and no second alert.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from bot.errors import BadStoreValue
from bot.store import checks
from bot.store.db import Database, fetch_all


class ReportSource(StrEnum):
    """How a report reached Vigil."""

    REPLY = "reply"  # a command in reply to the message, in the group
    LINK = "link"  # the message's link, sent to Vigil privately
    HOMESERVER = "homeserver"  # a Matrix client's report, read from Synapse's admin API


class ReportState(StrEnum):
    OPEN = "open"
    DELETED = "deleted"
    BLOCKED = "blocked"
    DISMISSED = "dismissed"


@dataclass(frozen=True)
class ReportRecord:
    id: int
    platform: str
    chat_id: str
    message_id: str
    reporter_id: str  # the first member who reported it
    source: ReportSource
    reported_at: str
    alerted_at: str | None
    state: ReportState
    decided_by: str | None
    decided_at: str | None


@dataclass(frozen=True)
class ReportAdded:
    """What ``add_report`` did: the report (new or the existing one), and whether this member's
    report of that message is new (a repeat by the same member changes nothing)."""

    report: ReportRecord
    new_report: bool
    new_reporter: bool


REPORT_COLUMNS = (
    "id, platform, chat_id, message_id, reporter_id, source, reported_at, alerted_at, state, decided_by, decided_at"
)
PURGED = "purged"  # stands for a reporter or an admin whose data was purged
DECISIONS = (ReportState.DELETED, ReportState.BLOCKED, ReportState.DISMISSED)


class _Row(Protocol):
    def __getitem__(self, key: str) -> Any: ...


def report_of(r: _Row) -> ReportRecord:
    """A row (sqlite3.Row or a dict) as a record."""
    get = r.__getitem__
    return ReportRecord(
        id=int(get("id")),
        platform=str(get("platform")),
        chat_id=str(get("chat_id")),
        message_id=str(get("message_id")),
        reporter_id=str(get("reporter_id")),
        source=ReportSource(get("source")),
        reported_at=str(get("reported_at")),
        alerted_at=get("alerted_at"),
        state=ReportState(get("state")),
        decided_by=get("decided_by"),
        decided_at=get("decided_at"),
    )


def source_of(value: object) -> ReportSource:
    try:
        return ReportSource(value if isinstance(value, str) else "")
    except ValueError:
        raise BadStoreValue("source", value, f"one of {', '.join(ReportSource)}") from None


def decision_of(value: object) -> ReportState:
    if value not in DECISIONS:
        raise BadStoreValue("state", value, f"one of {', '.join(DECISIONS)}")
    return ReportState(str(value))


class ReportsMixin:
    """Reports and ignored reporters on SQLite."""

    _db: Database

    async def add_report(
        self, platform: str, chat_id: str | int, message_id: str | int, reporter_id: str | int, source: str
    ) -> ReportAdded:
        """Records ``reporter_id``'s report of a message: the message's report is made the first
        time (``new_report``); the member is added to its reporters once (``new_reporter``)."""
        p, cid = checks.platform(platform), checks.ident("chat_id", chat_id)
        mid, uid = checks.ident("message_id", message_id), checks.ident("reporter_id", reporter_id)
        src = source_of(source)
        now = self._db.now()
        async with self._db.write() as c:
            cur = await c.execute(
                "INSERT INTO reports (platform, chat_id, message_id, reporter_id, source, reported_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (p, cid, mid, uid, str(src), now),
            )
            new_report = cur.rowcount == 1
            row = await (
                await c.execute(
                    f"SELECT {REPORT_COLUMNS} FROM reports WHERE platform = ? AND chat_id = ? AND message_id = ?",
                    (p, cid, mid),
                )
            ).fetchone()
            assert row is not None
            report = report_of(row)
            cur = await c.execute(
                "INSERT INTO report_reporters (report_id, platform, chat_id, reporter_id, reported_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (report.id, p, cid, uid, now),
            )
            return ReportAdded(report, new_report, cur.rowcount == 1)

    async def get_report(self, report_id: int) -> ReportRecord | None:
        rid = checks.record_id("report_id", report_id)
        async with self._db.read() as c:
            row = await (await c.execute(f"SELECT {REPORT_COLUMNS} FROM reports WHERE id = ?", (rid,))).fetchone()
        return report_of(row) if row is not None else None

    async def report_counts(
        self, platform: str, chat_id: str | int, reporter_id: str | int, since: datetime
    ) -> tuple[int, int]:
        """Since ``since``: the messages this member reported in the chat, and the reports made in
        the chat (by anyone); what the rate limits count."""
        p, cid, uid = (
            checks.platform(platform),
            checks.ident("chat_id", chat_id),
            checks.ident("reporter_id", reporter_id),
        )
        after = checks.timestamp(since)
        async with self._db.read() as c:
            mine = await (
                await c.execute(
                    "SELECT count(*) FROM report_reporters WHERE platform = ? AND chat_id = ? AND reporter_id = ?"
                    " AND reported_at >= ?",
                    (p, cid, uid, after),
                )
            ).fetchone()
            chat = await (
                await c.execute(
                    "SELECT count(*) FROM reports WHERE platform = ? AND chat_id = ? AND reported_at >= ?",
                    (p, cid, after),
                )
            ).fetchone()
        return (int(mine[0]) if mine else 0, int(chat[0]) if chat else 0)

    async def mark_report_alerted(self, report_id: int) -> bool:
        """The admins were told; True the first time (a report not marked is alerted again when
        reported again, so a stop between the two loses nothing)."""
        rid = checks.record_id("report_id", report_id)
        async with self._db.write() as c:
            cur = await c.execute(
                "UPDATE reports SET alerted_at = ? WHERE id = ? AND alerted_at IS NULL", (self._db.now(), rid)
            )
            return cur.rowcount == 1

    async def record_report_alert(self, report_id: int, platform: str, user_id: str | int) -> bool:
        """``user_id`` was told of the report; False if they already were."""
        rid, p, uid = (
            checks.record_id("report_id", report_id),
            checks.platform(platform),
            checks.ident("user_id", user_id),
        )
        async with self._db.write() as c:
            cur = await c.execute(
                "INSERT INTO report_alerts (report_id, platform, user_id, sent_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                (rid, p, uid, self._db.now()),
            )
            return cur.rowcount == 1

    async def report_alerted_to(self, report_id: int) -> set[str]:
        """The admins already told of the report."""
        rid = checks.record_id("report_id", report_id)
        async with self._db.read() as c:
            rows = await fetch_all(c, "SELECT user_id FROM report_alerts WHERE report_id = ?", (rid,))
        return {str(r[0]) for r in rows}

    async def unalerted_reports(self, since: datetime, limit: int) -> list[ReportRecord]:
        """Reports made since ``since`` whose alerts were not all sent (a stop came first), oldest first."""
        after, most = checks.timestamp(since), checks.record_id("limit", limit)
        async with self._db.read() as c:
            rows = await fetch_all(
                c,
                f"SELECT {REPORT_COLUMNS} FROM reports WHERE alerted_at IS NULL AND reported_at >= ?"
                " ORDER BY reported_at, id LIMIT ?",
                (after, most),
            )
        return [report_of(r) for r in rows]

    async def decide_report(self, report_id: int, state: str, by: str | int) -> bool:
        """An admin's choice on an open report; only the first one counts (a second returns False)."""
        rid, decision = checks.record_id("report_id", report_id), decision_of(state)
        who = checks.ident("by", by)
        async with self._db.write() as c:
            cur = await c.execute(
                "UPDATE reports SET state = ?, decided_by = ?, decided_at = ? WHERE id = ? AND state = 'open'",
                (str(decision), who, self._db.now(), rid),
            )
            return cur.rowcount == 1

    async def delete_reports_before(self, cutoff: datetime) -> int:
        """Retention: removes reports made before ``cutoff`` (with who reported them)."""
        before = checks.timestamp(cutoff)
        async with self._db.write() as c:
            cur = await c.execute("DELETE FROM reports WHERE reported_at < ?", (before,))
            return int(cur.rowcount)

    async def ignore_reporter(self, platform: str, chat_id: str | int, user_id: str | int, by: str | int) -> bool:
        """The member's reports in the chat are dropped from now on; True if they were not already."""
        p, cid, uid = checks.platform(platform), checks.ident("chat_id", chat_id), checks.ident("user_id", user_id)
        who = checks.ident("by", by)
        async with self._db.write() as c:
            cur = await c.execute(
                "INSERT INTO ignored_reporters (platform, chat_id, user_id, added_by, added_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                (p, cid, uid, who, self._db.now()),
            )
            return cur.rowcount == 1

    async def unignore_reporter(self, platform: str, chat_id: str | int, user_id: str | int) -> bool:
        """True if the member's reports were ignored."""
        key = (checks.platform(platform), checks.ident("chat_id", chat_id), checks.ident("user_id", user_id))
        async with self._db.write() as c:
            cur = await c.execute(
                "DELETE FROM ignored_reporters WHERE platform = ? AND chat_id = ? AND user_id = ?", key
            )
            return cur.rowcount == 1

    async def is_ignored_reporter(self, platform: str, chat_id: str | int, user_id: str | int) -> bool:
        key = (checks.platform(platform), checks.ident("chat_id", chat_id), checks.ident("user_id", user_id))
        async with self._db.read() as c:
            row = await (
                await c.execute(
                    "SELECT 1 FROM ignored_reporters WHERE platform = ? AND chat_id = ? AND user_id = ?", key
                )
            ).fetchone()
        return row is not None

    async def purge_reporter(self, platform: str, user_id: str | int) -> int:
        """A data-protection request: the member's reports leave no trace of them (their reporter
        rows and ignore entries go; a report they made first keeps its message, without their id).
        Returns the rows removed or changed."""
        key = (checks.platform(platform), checks.ident("user_id", user_id))
        async with self._db.write() as c:
            changed = 0
            for sql in (
                "DELETE FROM report_reporters WHERE platform = ? AND reporter_id = ?",
                "DELETE FROM ignored_reporters WHERE platform = ? AND user_id = ?",
                "DELETE FROM report_alerts WHERE platform = ? AND user_id = ?",
                f"UPDATE reports SET reporter_id = '{PURGED}' WHERE platform = ? AND reporter_id = ?",
                f"UPDATE reports SET decided_by = '{PURGED}' WHERE platform = ? AND decided_by = ?",
            ):
                changed += (await c.execute(sql, key)).rowcount
            return changed
