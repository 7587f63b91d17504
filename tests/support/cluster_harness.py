"""A Vigil cluster for the tests: `vigil run --role ingest|worker` subprocesses on the real
PostgreSQL the suite starts and the Bot API emulator, with what a test reads of it (the work
inbox, the jobs, which process does what)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import psycopg

from bot.store.postgres.db import CLAIM_LOCK
from tests.support.vigil_harness import ROOT, TOKEN


def cluster_config(tmp: Path, base_url: str, marker_model: Path, url: str) -> Path:
    """The emulator as Telegram, the marker model as NudeNet, the store on ``url``; quick
    heartbeats (a killed worker's job runs elsewhere within seconds), short download timeout and
    retry backoff (a failed attempt is retried within a second)."""
    path = tmp / "config.toml"
    path.write_text(
        f"""
[vigil]
data_dir = "{tmp / "data"}"
log_level = "INFO"

[telegram]
base_url = "{base_url}/bot"
base_file_url = "{base_url}/file/bot"
poll_timeout = 1

[models.nudity]
path = "{marker_model}"

[pipeline]
workers = 2
scan_timeout = 60
download_timeout = 3
retry_backoff = 0.5

[ops]
listen = "127.0.0.1:0"

[database]
url = "{url}"

[cluster]
concurrency = 2
standby_poll = 0.3
heartbeat = 0.5
stalled_after = 2.0
sweep_every = 1
"""
    )
    return path


def cluster_sections(url: str) -> str:
    """The store on ``url`` and quick cluster timings, for a config written by another harness."""
    return f"""
[database]
url = "{url}"

[cluster]
concurrency = 2
standby_poll = 0.3
heartbeat = 0.5
stalled_after = 2.0
sweep_every = 1
"""


class RoleProcess:
    """One `vigil run --role ROLE` process, its output in a file of its own."""

    def __init__(self, config: Path, role: str, log: Path, env: dict[str, str] | None = None) -> None:
        self.config, self.role, self.log_path = config, role, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.env = env  # the secrets instead of the Telegram token (a Matrix cluster)

    def start(self) -> RoleProcess:
        env = {**os.environ, "VIGIL_TELEGRAM_TOKEN": TOKEN, "PYTHONUNBUFFERED": "1"}
        if self.env is not None:
            env.pop("VIGIL_TELEGRAM_TOKEN")
            env.update(self.env)
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bot", "run", "--config", str(self.config), "--role", self.role],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 30) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            return None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def rss_mb(self) -> float:
        """Resident memory of the process now (Linux), in MB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    @property
    def active(self) -> bool:
        return "this process is the active reader" in self.log()

    @property
    def standing_by(self) -> bool:
        """Started, found the reader's lock held by another process, and waits for it."""
        return "ingest: standby;" in self.log()


# the work items of posted images: not a member's check at the door (bot/door.py), nor a sweep's (bot/sweep.py)
POSTED = "message_id NOT LIKE 'door:%%' AND variant NOT LIKE 'sweep%%'"


class Cluster:
    """The processes of one test, stopped together."""

    def __init__(self, config: Path, url: str, logs: Path, env: dict[str, str] | None = None) -> None:
        self.config, self.url, self.logs = config, url, logs
        self.procs: list[RoleProcess] = []
        self.env = env

    def start(self, role: str) -> RoleProcess:
        p = RoleProcess(self.config, role, self.logs / f"{role}-{len(self.procs)}.log", self.env).start()
        self.procs.append(p)
        return p

    def stop(self) -> None:
        for p in self.procs:
            p.stop()

    def logs_text(self) -> str:
        return "\n".join(f"--- {p.log_path.name}\n{p.log()[-4000:]}" for p in self.procs)

    # --- what the database says ----------------------------------------------------------------

    def query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        with psycopg.connect(self.url, autocommit=True) as c:
            return c.execute(sql, params).fetchall()

    def count(self, sql: str) -> int:
        value = self.query(sql)[0][0]
        assert isinstance(value, int)
        return value

    def workers_ready(self) -> int:
        """Procrastinate workers with a live heartbeat (each worker process runs one)."""
        try:
            return self.count(
                "SELECT count(*) FROM procrastinate_workers WHERE last_heartbeat > now() - interval '2 s'"
            )
        except psycopg.errors.UndefinedTable:
            return 0

    def pending(self) -> int:
        """Posted images not finished yet (a member's check at the door and a sweep's second look apart)."""
        return self.count(f"SELECT count(*) FROM work WHERE finished_at IS NULL AND {POSTED}")

    def finished(self) -> int:
        return self.count(f"SELECT count(*) FROM work WHERE finished_at IS NOT NULL AND {POSTED}")

    def running_job_pid(self) -> int | None:
        """The pid of the process handling a work item now: its claim's lock is held by a
        connection whose application name (PGAPPNAME, set by `vigil run`) ends in the pid."""
        rows = self.query(
            "SELECT a.application_name FROM work w JOIN pg_locks l ON l.locktype = 'advisory' AND l.granted"
            f" AND l.classid = {CLAIM_LOCK}::oid AND l.objid = w.taken_by::oid AND l.objsubid = 2"
            " JOIN pg_stat_activity a ON a.pid = l.pid WHERE w.finished_at IS NULL LIMIT 1"
        )
        return int(str(rows[0][0]).rsplit("-", 1)[1]) if rows else None

    def attempts(self, message_id: int) -> tuple[int, bool]:
        """(attempts, finished) of the work item of a message."""
        rows = self.query(
            "SELECT attempts, finished_at IS NOT NULL FROM work WHERE message_id = %s", (str(message_id),)
        )
        if not rows:
            return 0, False
        attempts, finished = rows[0]
        assert isinstance(attempts, int) and isinstance(finished, bool)
        return attempts, finished

    def scans_per_message(self, chat: int) -> dict[str, int]:
        rows = self.query(
            "SELECT message_id, count(*) FROM audit WHERE kind = 'scan' AND chat_id = %s GROUP BY message_id",
            (str(chat),),
        )
        return {str(m): int(n) for m, n in rows}  # type: ignore[call-overload]


async def until(predicate, what: str, timeout: float = 60, cluster: Cluster | None = None) -> None:  # type: ignore[no-untyped-def]
    """Polls ``predicate`` (run in a thread: it may query the database) until true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await asyncio.to_thread(predicate):
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{cluster.logs_text() if cluster else ''}")
        await asyncio.sleep(0.1)
