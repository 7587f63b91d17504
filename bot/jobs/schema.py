"""Procrastinate's tables and functions in Vigil's PostgreSQL database.

Applied at the start of a process that uses jobs, with Procrastinate's own schema (its
``SchemaManager``), under the advisory lock Vigil's migrations take: one process applies it, the
others wait and find it there. Why not a numbered Vigil migration: the schema belongs to the
installed Procrastinate version, and Procrastinate ships its own migrations for upgrades (see the
README); a copy inside Vigil's migrations would drift from the library. `vigil backup` (pg_dump)
and `vigil migrate-store` are unaffected: the job tables travel with the database, and a database
moved from SQLite gets them at its first start with jobs.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from procrastinate import App

from bot.errors import StoreError
from bot.store.postgres.db import CONNECT_TIMEOUT, MIGRATION_LOCK

log = logging.getLogger("vigil.jobs")


async def ensure_schema(url: str, shown: str, app: App) -> bool:
    """Applies Procrastinate's schema unless its jobs table is there; True when it applied it."""
    conn: psycopg.AsyncConnection[Any]
    try:
        conn = await psycopg.AsyncConnection.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT)
    except psycopg.Error as exc:
        raise StoreError(f"cannot connect to PostgreSQL at {shown} for the job queue: {exc}") from None
    try:
        await conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        try:
            cur = await conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")
            row = await cur.fetchone()
            if row is not None and row[0]:
                return False
            await app.schema_manager.apply_schema_async()
            log.info("jobs: applied Procrastinate's schema to %s", shown)
            return True
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
    except psycopg.Error as exc:
        raise StoreError(
            f"PostgreSQL at {shown}: the job queue's schema could not be applied ({exc}). Fix: check that this "
            f"user may create tables, types and functions in the database"
        ) from None
    finally:
        await conn.close()
