"""Waiting for Vigil's own record that it decided, instead of sleeping before a "nothing happened" assert.

A benign photo that stays, an admin alerted once, an allowed copy kept: each is only worth
asserting once Vigil has finished with the message. Its record of that is in the store: a scan
record in the audit (what it decided) and no work item for the message still pending (acting,
alerting and finishing come after the decision, in that order). A sleep cannot know either; on a
busy machine it ends before Vigil decides and the test passes without having checked anything.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Protocol

from bot.store.records import AuditRecord, WorkItem
from tests.support.botapi import BotApiEmulator


class DecisionRecords(Protocol):
    """The part of the store these waits read."""

    async def audit_for_group(self, platform: str, chat_id: str | int) -> list[AuditRecord]: ...

    async def pending_work(self, platform: str | None = None) -> list[WorkItem]: ...


class HasStore(Protocol):
    """A running Vigil (bot.app.App)."""

    @property
    def store(self) -> DecisionRecords: ...


async def decided(
    store: DecisionRecords,
    platform: str,
    chat_id: str | int,
    message_ids: Iterable[str | int],
    *,
    scans: int = 1,
    timeout: float = 60,
) -> list[AuditRecord]:
    """Until each message has at least ``scans`` scan records and none of its work items is pending.

    Returns the scan records of these messages, oldest first, so that a test can also assert
    what was decided (``record.decision``)."""
    wanted = {str(m) for m in message_ids}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        records = [
            r for r in await store.audit_for_group(platform, chat_id) if r.kind == "scan" and r.message_id in wanted
        ]
        pending = {w.message_id for w in await store.pending_work(platform) if w.chat_id == str(chat_id)}
        counts = {m: sum(r.message_id == m for r in records) for m in wanted}
        if all(n >= scans for n in counts.values()) and not wanted & pending:
            return records
        if loop.time() > deadline:
            raise AssertionError(
                f"Vigil has not finished with {sorted(wanted)} in {platform} chat {chat_id} after {timeout} s: "
                f"scan records {counts}, still pending {sorted(wanted & pending)}"
            )
        await asyncio.sleep(0.05)


async def telegram_decided(
    app: HasStore, emu: BotApiEmulator, chat: int, *message_ids: int, scans: int = 1, timeout: float = 60
) -> list[AuditRecord]:
    """``decided`` for messages posted through the emulator; first until Vigil confirmed their updates
    (it confirms an update only after recording all its work)."""
    await emu.wait_for(lambda: emu.pending_updates() == 0, timeout=timeout)
    return await decided(app.store, "telegram", chat, message_ids, scans=scans, timeout=timeout)


def verdicts(records: Sequence[AuditRecord]) -> list[str | None]:
    """What was decided, record by record."""
    return [r.decision for r in records]
