"""Checked by mypy (test_protocol.py), never run: both stores are assignable to the Store protocol."""

from __future__ import annotations

from bot.store import Store as SqliteStore
from bot.store.postgres import PostgresStore
from bot.store.protocol import Store


def sqlite_is_a_store(s: SqliteStore) -> Store:
    return s


def postgres_is_a_store(s: PostgresStore) -> Store:
    return s
