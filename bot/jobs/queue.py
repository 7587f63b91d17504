"""Recording work with its Procrastinate job, running the jobs, and keeping none behind.

- ``record``: the work item and its job in one transaction (a rollback leaves neither). A replayed
  update finds its item there already and queues nothing: the job was committed with the item.
  Lock: the chat (Procrastinate runs jobs of one lock one at a time, oldest first, so a chat's
  images keep their order across workers). Queueing lock: the work id (never two waiting jobs
  for one item).
- a worker runs a job by handing the item to the core's handler (``handler``), the same path the
  single process uses; an item that failed and waits for a retry is queued again for its time.
- ``sweep`` (a Procrastinate periodic task: one run per tick across the cluster): jobs whose
  worker stopped sending heartbeats (killed, cut off) go back to the queue, and unfinished items
  with no job waiting or running (a job cancelled by a stop) get one.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from procrastinate import App, PsycopgConnector
from procrastinate.exceptions import AlreadyEnqueued

from bot.config import ClusterConfig
from bot.jobs.schema import ensure_schema
from bot.store import checks
from bot.store.postgres.db import CLAIM_LOCK, CONNECT_TIMEOUT, PgDatabase, fetchall, fetchone
from bot.store.work import MAX_PAYLOAD_JSON, MAX_VARIANT

log = logging.getLogger("vigil.jobs")

WORK_TASK = "vigil.work"
SWEEP_TASK = "vigil.sweep"
QUEUE = "vigil"
RETRY_SOON = timedelta(seconds=2)  # an item left unfinished without a retry time is tried again after this
UNQUEUED_AFTER = timedelta(seconds=10)  # an item this old with no job gets one (never one just being recorded)
SWEEP_BATCH = 500  # items re-queued per sweep at most

Handler = Callable[[int], Awaitable[None]]


@dataclass(frozen=True)
class JobStats:
    waiting: int  # work jobs queued and not started
    running: int  # work jobs being run
    oldest_seconds: float  # age of the oldest waiting job (0 when none waits)


def chat_lock(platform: str, chat_id: str) -> str:
    return f"chat:{platform}:{chat_id}"


def _claim_alive(column: str) -> str:
    """SQL: the work claim in ``column`` still counts (its process holds (CLAIM_LOCK, token))."""
    return (
        "EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted"
        " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        f" AND l.classid = {CLAIM_LOCK}::oid AND l.objid = {column}::oid AND l.objsubid = 2)"
    )


class JobQueue:
    """One process's view of the job queue: recording (ingest) and running (worker) jobs."""

    def __init__(self, db: PgDatabase, config: ClusterConfig) -> None:
        self.db = db
        self.config = config
        self.app = App(
            connector=PsycopgConnector(
                conninfo=db.url,
                min_size=1,
                max_size=config.concurrency + 4,
                kwargs={"connect_timeout": CONNECT_TIMEOUT},
            )
        )
        self._handler: Handler | None = None
        self.work_task = self.app.task(name=WORK_TASK, queue=QUEUE)(self._run)
        sweep = self.app.task(name=SWEEP_TASK, queue=QUEUE)(self._sweep)
        self.app.periodic(cron=f"* * * * * */{config.sweep_every}", periodic_id="sweep")(sweep)

    async def open(self) -> None:
        await self.app.open_async()
        await ensure_schema(self.db.url, self.db.shown, self.app)

    async def close(self) -> None:
        await self.app.close_async()

    # --- ingest --------------------------------------------------------------------------------

    async def record(self, platform: str, chat_id: str | int, message_id: str | int, payload: Mapping[str, Any]) -> int:
        """The store's ``enqueue_work`` with the item's job in the same transaction; returns the
        work id (the first one on a replay, which queues nothing)."""
        p, cid, mid = (
            checks.platform(platform),
            checks.ident("chat_id", chat_id),
            checks.ident("message_id", message_id),
        )
        text = checks.json_text("payload", payload, MAX_PAYLOAD_JSON)
        variant = checks.text("payload['variant']", payload.get("variant") or "", MAX_VARIANT)
        async with self.db.write() as c:
            row = await fetchone(
                c,
                "INSERT INTO work (platform, chat_id, message_id, variant, payload, enqueued_at)"
                " VALUES (%s, %s, %s, %s, %s::jsonb, %s) ON CONFLICT DO NOTHING RETURNING id",
                (p, cid, mid, variant, text, self.db.now()),
            )
            if row is None:  # a replay: the item and its job were committed together before
                row = await fetchone(
                    c,
                    "SELECT id FROM work WHERE platform = %s AND chat_id = %s AND message_id = %s AND variant = %s",
                    (p, cid, mid, variant),
                )
                assert row is not None
                return int(row["id"])
            work_id = int(row["id"])
            deferrer = self.work_task.configure(connection=c, lock=chat_lock(p, cid), queueing_lock=f"work:{work_id}")
            await deferrer.defer_async(work_id=work_id)
        return work_id

    async def requeue(self, work_id: int, platform: str, chat_id: str, at: datetime | None = None) -> bool:
        """A job for an item that has none (a retry at ``at``); False when one is waiting already."""
        try:
            await self.work_task.configure(
                lock=chat_lock(platform, chat_id), queueing_lock=f"work:{work_id}", schedule_at=at
            ).defer_async(work_id=work_id)
        except AlreadyEnqueued:
            return False
        return True

    # --- worker --------------------------------------------------------------------------------

    def handle_with(self, handler: Handler) -> None:
        self._handler = handler

    async def run_worker(self, name: str) -> None:
        """Runs jobs until cancelled (a cancelled job's item is released; the sweep queues it again)."""
        c = self.config
        await self.app.run_worker_async(
            queues=[QUEUE],
            name=name,
            concurrency=c.concurrency,
            install_signal_handlers=False,
            update_heartbeat_interval=c.heartbeat,
            stalled_worker_timeout=c.stalled_after,
            delete_jobs="successful",
            shutdown_graceful_timeout=10.0,
        )

    async def _run(self, work_id: int) -> None:
        if self._handler is None:  # a process that only records never runs the worker
            raise RuntimeError("jobs: a work job reached a process with no handler")
        await self._handler(checks.record_id("work_id", work_id))

    async def _sweep(self, timestamp: int) -> None:
        manager = self.app.job_manager
        stalled = list(
            await manager.get_stalled_jobs(
                queue=QUEUE, task_name=WORK_TASK, seconds_since_heartbeat=self.config.stalled_after
            )
        )
        for job in stalled:
            await manager.retry_job(job)
        if stalled:
            log.warning("jobs: %d jobs of workers that stopped answering are queued again", len(stalled))
        before = datetime.now(UTC) - UNQUEUED_AFTER
        async with self.db.read() as c:
            rows = await fetchall(
                c,
                "SELECT w.id, w.platform, w.chat_id, w.not_before FROM work w WHERE w.finished_at IS NULL"
                " AND w.enqueued_at < %s"
                f" AND (w.taken_by IS NULL OR NOT {_claim_alive('w.taken_by')})"
                " AND NOT EXISTS (SELECT 1 FROM procrastinate_jobs j WHERE j.task_name = %s"
                "   AND j.status IN ('todo', 'doing') AND j.args->>'work_id' = w.id::text)"
                " ORDER BY w.id LIMIT %s",
                (checks.timestamp(before), WORK_TASK, SWEEP_BATCH),
            )
        queued = 0
        for r in rows:
            at = datetime.fromisoformat(r["not_before"]) if r["not_before"] else None
            queued += await self.requeue(int(r["id"]), r["platform"], r["chat_id"], at)
        if queued:
            log.info("jobs: %d unfinished items had no job; queued", queued)

    # --- figures -------------------------------------------------------------------------------

    async def stats(self) -> JobStats:
        async with self.db.read() as c:
            row = await fetchone(
                c,
                "SELECT count(*) FILTER (WHERE j.status = 'todo') AS waiting,"
                " count(*) FILTER (WHERE j.status = 'doing') AS running,"
                " extract(epoch FROM now() - min(greatest(j.scheduled_at, e.at)) FILTER (WHERE j.status = 'todo'))"
                " AS oldest FROM procrastinate_jobs j LEFT JOIN LATERAL (SELECT min(at) AS at"
                " FROM procrastinate_events WHERE job_id = j.id AND type = 'deferred') e ON true"
                " WHERE j.task_name = %s AND j.status IN ('todo', 'doing')",
                (WORK_TASK,),
            )
        if row is None:
            return JobStats(0, 0, 0.0)
        return JobStats(int(row["waiting"]), int(row["running"]), max(0.0, float(row["oldest"] or 0)))
