"""`vigil run --role ingest|worker|all`: what one process of a cluster does.

- ``all`` (the default): today's single process, the in-process pipeline on SQLite or
  PostgreSQL; with ``[cluster] jobs = true`` (PostgreSQL) it records and runs jobs itself.
- ``ingest``: reads the platforms and records each image with its job (bot/jobs/). One process
  per bot account reads, chosen by a PostgreSQL advisory lock (bot/leader.py); the others wait as
  standbys and take over within ``[cluster] standby_poll`` seconds when it dies. Commands and
  button presses are handled by the active ingest itself, as they come: one reader, so once each.
  Retention runs there too (once across the cluster, while it is active).
- ``worker``: runs jobs (download, scan, decide, act, alert) with the same token for sending and
  no getUpdates. Stalled jobs and items left without a job are put back by a Procrastinate
  periodic task (one run per tick across the cluster).

Matrix: the active ingest holds the account's reading device (sync, room keys, decryption) and
records each picture's job with the mxc URI and, for an encrypted attachment, its key, iv and hash
(kept in the work item only until it is finished). A worker logs in a device of its own, never
reads the timelines, and opens the attachment with the key from the job
(bot/platforms/matrix_worker.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable

from bot.config import Config
from bot.core import Core
from bot.errors import ConfigError
from bot.jobs.queue import RETRY_SOON, JobQueue, JobStats
from bot.leader import Leadership
from bot.metrics import Metrics
from bot.platforms.base import BotCore
from bot.store.postgres.db import PgDatabase

log = logging.getLogger("vigil.roles")

STATS_SECONDS = 5.0  # how often the queue's figures are read for /metrics


class Role(StrEnum):
    ALL = "all"
    INGEST = "ingest"
    WORKER = "worker"


@runtime_checkable
class SendingPlatform(Protocol):
    """A platform a worker can send with, without reading updates."""

    async def start_sending(self, core: BotCore) -> None: ...


def uses_jobs(config: Config, role: Role) -> bool:
    return role != Role.ALL or config.cluster.jobs


def check_role(config: Config, role: Role) -> None:
    """Refuses, with the fix, a role the config cannot run."""
    if uses_jobs(config, role) and not config.database_url:
        raise ConfigError(
            "--role" if role != Role.ALL else "cluster.jobs",
            f"role {role} needs the store on PostgreSQL (jobs live there)",
            "set [database] url or VIGIL_DATABASE_URL (move an SQLite install with `vigil migrate-store`), "
            "or run with --role all",
        )
    if role == Role.WORKER and config.matrix.enabled and not config.matrix.password:
        raise ConfigError(
            "matrix.password",
            "a Matrix worker logs in a device of its own, which needs the account's password",
            "set VIGIL_MATRIX_PASSWORD for the workers (an access token belongs to one device: the ingest's)",
        )


def accounts(config: Config) -> dict[str, str]:
    """Each enabled platform's bot account id (the reader's lock is per account)."""
    found = {}
    if config.telegram.enabled:
        found["telegram"] = config.telegram.token.partition(":")[0]  # the bot's numeric id
    if config.matrix.enabled:
        found["matrix"] = config.matrix.user_id
    return found


class ClusterNode:
    """One process's part in the cluster: leadership (ingest), the job worker (worker), figures."""

    def __init__(self, config: Config, role: Role, core: Core, db: PgDatabase, metrics: Metrics) -> None:
        self.config, self.role, self.core, self.db = config, role, core, db
        self.queue = JobQueue(db, config.cluster)
        self.reads = role in (Role.ALL, Role.INGEST)
        self.runs_jobs = role in (Role.ALL, Role.WORKER)
        self.leadership = (
            Leadership(db.url, db.shown, accounts(config), config.cluster.standby_poll) if self.reads else None
        )
        self.stats = JobStats(0, 0, 0.0)
        self._tasks: list[asyncio.Task[None]] = []
        labels = {"role": str(role)}
        metrics.watch("vigil_jobs_waiting", "Work jobs queued and not started", lambda: [(labels, self.stats.waiting)])
        metrics.watch("vigil_jobs_running", "Work jobs being run", lambda: [(labels, self.stats.running)])
        metrics.watch(
            "vigil_jobs_oldest_seconds",
            "Age of the oldest work job waiting for a worker",
            lambda: [(labels, self.stats.oldest_seconds)],
        )
        metrics.watch(
            "vigil_ingest_active",
            "1 while this process is the one reading the platforms (0: standby, or not an ingest)",
            lambda: [(labels, 1.0 if self.leadership is not None and self.leadership.active else 0.0)],
        )

    @classmethod
    async def open(cls, config: Config, role: Role, core: Core, metrics: Metrics) -> ClusterNode:
        # a line per job and per sweep at INFO: the operator needs Procrastinate's warnings only
        logging.getLogger("procrastinate").setLevel(logging.WARNING)
        # its own small pool: jobs are recorded on it, so the store's pool serves the scans
        db = await PgDatabase.open(config.database_url, pool_size=(1, 4))
        node = cls(config, role, core, db, metrics)
        try:
            await node.queue.open()
        except BaseException:
            await db.close()
            raise
        return node

    @property
    def status(self) -> str:
        """The role as /readyz shows it."""
        if self.leadership is None:
            return str(self.role)
        return f"{self.role}: {'active' if self.leadership.active else 'standby'}"

    async def start(self, read: Callable[[], Awaitable[None]], lost: Callable[[], None]) -> None:
        """Starts the role; ``read`` starts reading the platforms (once active), ``lost`` asks the
        process to stop (its reader's lock may be another's now)."""
        core = self.core
        if self.reads:
            core.intake = self.queue
        if self.runs_jobs:
            core.batching = False  # a job ends with its actions done, never with a tail in this process
            self.queue.handle_with(self._run)
        if self.role == Role.WORKER:
            for platform in core.platforms.values():
                if not isinstance(platform, SendingPlatform):
                    raise ConfigError("--role", f"{platform.name} cannot send from a worker", "use --role all")
                await platform.start_sending(core)
        await core.start(run_pipeline=False)
        if self.runs_jobs:
            self._tasks.append(asyncio.create_task(self._work(lost), name="vigil-jobs-worker"))
        if self.leadership is not None:
            self._tasks.append(asyncio.create_task(self._lead(read, lost), name="vigil-ingest-lead"))
        self._tasks.append(asyncio.create_task(self._figures(), name="vigil-jobs-figures"))
        log.info("cluster: running as %s", self.role)

    async def _lead(self, read: Callable[[], Awaitable[None]], lost: Callable[[], None]) -> None:
        assert self.leadership is not None
        await self.leadership.acquire()
        try:
            await read()
        except Exception:  # holding the lock without reading would leave the account unread
            log.exception("ingest: reading the platforms could not start; stopping so a standby takes over")
            lost()
            return
        await self.leadership.watch()  # returns when the lock's connection broke
        lost()

    async def _work(self, lost: Callable[[], None]) -> None:
        try:
            await self.queue.run_worker(f"{socket.gethostname()}-{os.getpid()}")
        except Exception:  # a process that runs no jobs must not look alive: stop, to be restarted
            log.exception("worker: the job queue stopped; stopping this process")
            lost()

    async def _run(self, work_id: int) -> None:
        item = await self.core.run_work(work_id)
        if item is not None and not item.finished:  # a failed attempt waits for its retry time
            at = datetime.fromisoformat(item.not_before) if item.not_before else datetime.now(UTC) + RETRY_SOON
            await self.queue.requeue(item.id, item.platform, item.chat_id, at)

    async def _figures(self) -> None:
        while True:
            try:
                self.stats = await self.queue.stats()
            except Exception as exc:  # figures only: the next read may work
                log.warning("cluster: job figures not read (%s)", type(exc).__name__)
            await asyncio.sleep(STATS_SECONDS)

    async def stop(self) -> None:
        """Stops the worker (a job cut short releases its item; the sweep queues it again) and
        gives up the reader's lock."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self.leadership is not None:
            await self.leadership.release()
        await self.queue.close()
        await self.db.close()
