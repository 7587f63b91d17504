"""The store contract for private reports, on both backends: one report per message, every member
who reported it, the counts the rate limits read, one decision, ignored reporters, retention."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from bot.errors import BadStoreValue
from bot.store.reports import ReportSource, ReportState
from tests.store_contract.conftest import Backend

T = "telegram"


async def test_a_message_is_reported_once_and_every_reporter_is_counted(store: Any, backend: Backend) -> None:
    start = backend.clock.now
    first = await store.add_report(T, "-100", "7", "41", "reply")
    assert first.new_report and first.new_reporter
    r = first.report
    assert (r.platform, r.chat_id, r.message_id, r.reporter_id) == (T, "-100", "7", "41")
    assert (r.source, r.state, r.alerted_at, r.decided_by) == (ReportSource.REPLY, ReportState.OPEN, None, None)
    again = await store.add_report(T, "-100", "7", "41", "link")  # the same member again: nothing new
    assert (again.new_report, again.new_reporter, again.report.id) == (False, False, r.id)
    other = await store.add_report(T, "-100", "7", "42", "reply")  # another member: no second report
    assert (other.new_report, other.new_reporter, other.report.id) == (False, True, r.id)
    assert other.report.reporter_id == "41"
    backend.clock.now = start + timedelta(minutes=5)
    await store.add_report(T, "-100", "8", "41", "reply")
    await store.add_report(T, "-200", "8", "41", "reply")  # another chat is counted apart
    assert await store.report_counts(T, "-100", "41", start) == (2, 2)
    assert await store.report_counts(T, "-100", "42", start) == (1, 2)
    assert await store.report_counts(T, "-100", "41", start + timedelta(minutes=1)) == (1, 1)
    assert await store.report_counts(T, "-100", "43", start) == (0, 2)
    assert (await store.get_report(r.id)) == r
    assert await store.get_report(r.id + 1000) is None
    with pytest.raises(BadStoreValue, match="source"):
        await store.add_report(T, "-100", "9", "41", "carrier-pigeon")
    with pytest.raises(BadStoreValue, match="message_id"):
        await store.add_report(T, "-100", "", "41", "reply")


async def test_alerted_once_and_decided_once(store: Any) -> None:
    r = (await store.add_report("matrix", "!room:hs", "$event", "@ana:hs", "homeserver")).report
    assert await store.mark_report_alerted(r.id) is True
    assert await store.mark_report_alerted(r.id) is False
    assert (await store.get_report(r.id)).alerted_at is not None
    assert await store.decide_report(r.id, "dismissed", "@admin:hs") is True
    assert await store.decide_report(r.id, "deleted", "@other:hs") is False  # only the first counts
    decided = await store.get_report(r.id)
    assert (decided.state, decided.decided_by) == (ReportState.DISMISSED, "@admin:hs")
    assert decided.decided_at is not None
    with pytest.raises(BadStoreValue, match="state"):
        await store.decide_report(r.id, "open", "@admin:hs")


async def test_ignored_reporters(store: Any) -> None:
    assert await store.is_ignored_reporter(T, "-100", "41") is False
    assert await store.ignore_reporter(T, "-100", "41", "1") is True
    assert await store.ignore_reporter(T, "-100", "41", "2") is False
    assert await store.is_ignored_reporter(T, "-100", "41") is True
    assert await store.is_ignored_reporter(T, "-200", "41") is False  # per chat
    assert await store.unignore_reporter(T, "-100", "41") is True
    assert await store.unignore_reporter(T, "-100", "41") is False
    assert await store.is_ignored_reporter(T, "-100", "41") is False


async def test_retention_removes_old_reports_with_their_reporters(store: Any, backend: Backend) -> None:
    old = (await store.add_report(T, "-100", "1", "41", "reply")).report
    backend.clock.now += timedelta(days=40)
    new = (await store.add_report(T, "-100", "2", "41", "reply")).report
    assert await store.delete_reports_before(backend.clock.now - timedelta(days=30)) == 1
    assert await store.get_report(old.id) is None and await store.get_report(new.id) is not None
    assert backend.count("report_reporters") == 1


async def test_purge_reporter_leaves_no_trace_of_them(store: Any, backend: Backend) -> None:
    mine = (await store.add_report(T, "-100", "1", "41", "reply")).report
    await store.add_report(T, "-100", "1", "42", "reply")
    theirs = (await store.add_report(T, "-100", "2", "42", "reply")).report
    await store.ignore_reporter(T, "-200", "41", "1")
    await store.decide_report(theirs.id, "dismissed", "41")
    assert await store.purge_reporter(T, "41") == 4
    assert (await store.get_report(mine.id)).reporter_id == "purged"
    assert (await store.get_report(theirs.id)).decided_by == "purged"
    assert await store.is_ignored_reporter(T, "-200", "41") is False
    assert backend.count("report_reporters", "reporter_id = ?", ("41",)) == 0
    assert backend.count("report_reporters", "reporter_id = ?", ("42",)) == 2
    assert await store.purge_reporter(T, "41") == 0


async def test_each_admin_told_of_a_report_is_remembered_and_unalerted_reports_are_found(
    store: Any, backend: Backend
) -> None:
    start = backend.clock.now
    old = (await store.add_report(T, "-100", "1", "41", "reply")).report
    backend.clock.now = start + timedelta(hours=1)
    new = (await store.add_report(T, "-100", "2", "41", "reply")).report
    done = (await store.add_report(T, "-100", "3", "41", "reply")).report
    assert await store.mark_report_alerted(done.id)
    assert [r.id for r in await store.unalerted_reports(start, 10)] == [old.id, new.id]
    assert [r.id for r in await store.unalerted_reports(start + timedelta(minutes=30), 10)] == [new.id]
    assert [r.id for r in await store.unalerted_reports(start, 1)] == [old.id]
    assert await store.report_alerted_to(new.id) == set()
    assert await store.record_report_alert(new.id, T, "7")
    assert not await store.record_report_alert(new.id, T, "7")  # told once
    assert await store.record_report_alert(new.id, T, "8")
    assert await store.report_alerted_to(new.id) == {"7", "8"}
    assert await store.purge_reporter(T, "7") >= 1  # a data-protection request removes the admin's row too
    assert await store.report_alerted_to(new.id) == {"8"}
