"""Both stores implement the Store protocol: checked by mypy, and method by method at run time
(so a SQLite method added without its PostgreSQL twin is named here)."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

from bot.store import Store as SqliteStore
from bot.store import protocol
from bot.store.postgres import PostgresStore

ROOT = Path(__file__).resolve().parents[2]


def _public(cls: type) -> set[str]:
    return {n for n in dir(cls) if not n.startswith("_")}


def test_every_protocol_method_exists_on_both_stores_with_the_same_parameters() -> None:
    wanted = _public(protocol.Store) - {"backend"}
    for impl in (SqliteStore, PostgresStore):
        missing = sorted(wanted - _public(impl))
        assert not missing, f"{impl.__name__} lacks {missing}"
        for name in sorted(wanted):
            want, got = getattr(protocol.Store, name), getattr(impl, name)
            if isinstance(want, property):
                assert isinstance(got, property), f"{impl.__name__}.{name} is not a property"
                continue
            assert list(inspect.signature(got).parameters) == list(inspect.signature(want).parameters), (
                f"{impl.__name__}.{name}{inspect.signature(got)} differs from the protocol's {inspect.signature(want)}"
            )
            assert inspect.iscoroutinefunction(got) == inspect.iscoroutinefunction(want), name
            assert inspect.isasyncgenfunction(got) == (not inspect.iscoroutinefunction(want)), name


def test_the_sqlite_store_has_no_public_method_the_protocol_leaves_out() -> None:
    # "path" is SQLite's own (its file); everything else the code may call is in the contract
    extra = _public(SqliteStore) - _public(protocol.Store) - {"open", "path", "backend"}
    assert not extra, f"declare {sorted(extra)} in bot/store/protocol.py and give them PostgreSQL twins"


def test_mypy_accepts_both_stores_as_the_protocol() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--follow-imports=silent",
            "--ignore-missing-imports",
            "--no-error-summary",
            "--cache-dir=/dev/null",
            "tests/store_contract/typecheck_stores.py",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
