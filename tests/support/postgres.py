"""A real PostgreSQL server for the tests, on 127.0.0.1, started once per session.

Debian's server binaries (/usr/lib/postgresql/*/bin, the `postgresql` package; scripts/test
installs it on a fresh machine) run as the `postgres` system user when the tests run as
root, because the server refuses to run as root. ``fsync=off``: a test cluster only.

There is no silent skip: without a server the tests that need one fail and say how to get it.

    server = PostgresServer.start()
    url = server.create_schema()            # an empty schema of its own, as a database URL
    server.stop()
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

HOW_TO_GET_IT = (
    "the store tests need PostgreSQL's server binaries: install them with "
    "`apt-get install -y postgresql` (Debian/Ubuntu; scripts/test does this when run as root), "
    "or point VIGIL_TEST_PG_BIN at a folder holding initdb, pg_ctl and postgres"
)


def find_binaries() -> Path | None:
    """The folder with initdb and pg_ctl: VIGIL_TEST_PG_BIN, else the newest Debian version."""
    wanted = os.environ.get("VIGIL_TEST_PG_BIN")
    candidates = [wanted] if wanted else sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version, reverse=True)
    for c in candidates:
        if c and (Path(c) / "initdb").is_file() and (Path(c) / "pg_ctl").is_file():
            return Path(c)
    return None


def _version(path: str) -> int:
    try:
        return int(Path(path).parent.name)
    except ValueError:
        return 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PostgresServer:
    bin_dir: Path
    root: Path  # holds the cluster (data/) and the socket folder
    port: int
    user: str | None  # the system user the server runs as (None: the current one)

    @classmethod
    def start(cls, *, fsync: bool = False) -> PostgresServer:
        """A new cluster in a temp folder, started; ``fsync`` off unless asked (tests need no durability)."""
        bin_dir = find_binaries()
        if bin_dir is None:
            raise RuntimeError(HOW_TO_GET_IT)
        root = Path(tempfile.mkdtemp(prefix="vigil-pg-"))
        user = None
        if os.geteuid() == 0:
            user = "postgres"
            try:
                entry = pwd.getpwnam(user)
            except KeyError:
                raise RuntimeError(
                    f"running as root, but there is no '{user}' system user to run the server; {HOW_TO_GET_IT}"
                ) from None
            os.chown(root, entry.pw_uid, entry.pw_gid)
        server = cls(bin_dir, root, _free_port(), user)
        server._run(
            "initdb",
            "-D",
            str(root / "data"),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--locale=C",
        )
        (root / "sock").mkdir()
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(root / "sock", entry.pw_uid, entry.pw_gid)
        durability = "" if fsync else "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
        options = f"-h 127.0.0.1 -p {server.port} -k {root / 'sock'} {durability}-c max_connections=200"
        server._run(
            "pg_ctl", "-D", str(root / "data"), "-w", "-t", "60", "-l", str(root / "server.log"), "-o", options, "start"
        )
        return server

    def _run(self, tool: str, *args: str) -> None:
        cmd = [str(self.bin_dir / tool), *args]
        if self.user is not None:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        # cwd: a folder the server's user can enter (the checkout may be in a home it cannot read)
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=self.root)
        if done.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr[-2000:]}{tail}")

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_schema(self) -> str:
        """A new, empty schema in the session's database; returns a URL whose connections use it
        (a schema per test: creating a database takes seconds, a schema a millisecond)."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:16]
        with psycopg.connect(self.admin_url, autocommit=True) as c:
            c.execute(f"CREATE SCHEMA {name}")
        return f"{self.admin_url}?options=-csearch_path%3D{name}"

    def drop_schema(self, url: str) -> None:
        import psycopg

        name = url.rsplit("%3D", 1)[1]
        with psycopg.connect(self.admin_url, autocommit=True) as c:
            c.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server():
    """The session's PostgreSQL server; fails (never skips) when it cannot start."""
    try:
        server = PostgresServer.start()
    except RuntimeError as exc:
        pytest.fail(f"PostgreSQL could not be started: {exc}", pytrace=False)
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer):
    """An empty schema of the test's own (as a database URL), dropped afterwards."""
    url = postgres_server.create_schema()
    yield url
    postgres_server.drop_schema(url)
