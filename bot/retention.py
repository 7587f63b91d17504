"""Retention: what Vigil keeps is deleted once it is older than the configured periods.

- audit records (with their reviews and alerts) after ``audit_days``;
- the image fingerprints (PDQ, pHash, SHA-256) inside audit records after ``fingerprint_days``:
  the record stays, without the hashes; hash-list entries are not touched (admins put them
  there on purpose and remove them by hand or with ``vigil purge``);
- finished inbox items and settled platform actions after ``work_days``;
- the seen-images window (bot/seen_window.py) after ``[sweep] window_hours``, and its oldest rows
  beyond its bounds per chat and in total.
- members' join times and checked profile photos (bot/door.py) once not seen for ``work_days``,
  but never before ``MEMBER_DAYS`` (the longest media hold for new members reads the join time).

A period of 0 keeps that kind of record. ``apply_retention`` does one pass (tests call it
directly); ``RetentionJob`` runs it at start-up and then every hour from the app.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

from bot.config import RetentionConfig, SweepConfig
from bot.metrics import NO_METRICS, Metrics
from bot.store.protocol import Store

log = logging.getLogger("vigil.retention")

INTERVAL = 3600.0  # seconds between passes
MEMBER_DAYS = 31  # members' join times are kept at least this long: the media hold is at most 30 days


@dataclass(frozen=True)
class RetentionResult:
    """Rows one pass removed (``fingerprints``: audit records whose hashes were cleared)."""

    audit: int = 0
    fingerprints: int = 0
    work: int = 0
    actions: int = 0
    seen: int = 0  # images of the seen-images window
    members: int = 0  # members' join times and checked profile photos

    @property
    def total(self) -> int:
        return self.audit + self.fingerprints + self.work + self.actions + self.seen + self.members


def _utc_now() -> datetime:
    return datetime.now(UTC)


async def clear_fingerprints_before(store: Store, cutoff: datetime) -> int:
    """Empties the ``hashes`` of audit records older than ``cutoff``; returns how many changed."""
    return int(await store.clear_audit_hashes_before(cutoff))


async def apply_retention(
    store: Store, settings: RetentionConfig, now: datetime | None = None, sweep: SweepConfig | None = None
) -> RetentionResult:
    """One retention pass as of ``now`` (default: the current time); ``sweep``: the seen-images
    window's period and bounds (window 0: everything in it goes)."""
    now = now or _utc_now()
    audit = fingerprints = work = actions = 0
    if settings.audit_days:
        audit = await store.delete_audit_before(now - timedelta(days=settings.audit_days))
        await store.delete_reports_before(now - timedelta(days=settings.audit_days))  # members' reports, as long
    if settings.fingerprint_days:
        fingerprints = await clear_fingerprints_before(store, now - timedelta(days=settings.fingerprint_days))
    if settings.work_days:
        pruned = await store.prune_work_before(now - timedelta(days=settings.work_days))
        work, actions = pruned.work, pruned.actions
    seen = 0
    if sweep is not None:
        seen = await store.prune_seen(
            now - timedelta(hours=sweep.window_hours), per_chat=sweep.max_per_chat, total=sweep.max_total
        )
    members = 0
    if settings.work_days:
        members = await store.prune_members_before(now - timedelta(days=max(settings.work_days, MEMBER_DAYS)))
    return RetentionResult(
        audit=audit, fingerprints=fingerprints, work=work, actions=actions, seen=seen, members=members
    )


class RetentionJob:
    """Runs ``apply_retention`` now and then every ``interval`` seconds until stopped."""

    def __init__(
        self,
        store: Store,
        settings: RetentionConfig,
        *,
        metrics: Metrics = NO_METRICS,
        interval: float = INTERVAL,
        clock: Callable[[], datetime] = _utc_now,
        sweep: SweepConfig | None = None,
    ) -> None:
        self.store, self.settings, self.metrics = store, settings, metrics
        self.sweep = sweep
        self.interval, self.clock = interval, clock
        self.last: RetentionResult | None = None
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> RetentionResult:
        try:
            result = await apply_retention(self.store, self.settings, self.clock(), self.sweep)
        except Exception:
            self.metrics.retention({}, ok=False)
            raise
        self.metrics.retention(asdict(result))
        self.last = result
        if result.total:
            log.info(
                "retention: removed %d audit records, cleared hashes of %d, removed %d finished work items and %d "
                "actions, %d seen images",
                result.audit,
                result.fingerprints,
                result.work,
                result.actions,
                result.seen,
            )
        return result

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="vigil-retention")

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # a failed pass (disk full, locked file) is retried at the next one
                log.exception("retention: the pass failed; it runs again in %.0f s", self.interval)
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
