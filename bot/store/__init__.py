"""Vigil's store: one SQLite file with group settings, hash lists, contacts, the audit log
and what is needed to resume after a restart. Ids and hashes only, never image bytes or
message text.

    store = await Store.open(config.database)
    async with store: ...   # or: await store.close()

The same store on PostgreSQL is ``bot.store.postgres.PostgresStore``; both satisfy the
``bot.store.protocol.Store`` protocol, and ``bot.store.factory.open_store(config)`` opens the
one the configuration names.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

from bot.store.audit import AuditMixin
from bot.store.changes import ChangesMixin
from bot.store.circles import CirclesMixin
from bot.store.db import MIGRATIONS_DIR, Clock, Database, utc_now
from bot.store.groups import UNSET, GroupsMixin
from bot.store.lists import ListsMixin, group_list_name
from bot.store.members import MembersMixin
from bot.store.mutes import MutesMixin
from bot.store.protected import ProtectedMixin, ProtectedOwner, ProtectedPhoto
from bot.store.records import (
    ActionRecord,
    AlertRecord,
    AuditRecord,
    ContactRecord,
    EntryRecord,
    ExemptionRecord,
    FrozenJSON,
    GroupRecord,
    ListRecord,
    PruneCounts,
    PurgeCounts,
    ReviewRecord,
    WorkItem,
)
from bot.store.reports import ReportsMixin
from bot.store.seen import SeenMixin
from bot.store.snapshots import SnapshotsMixin
from bot.store.work import WorkMixin

__all__ = [
    "Store",
    "UNSET",
    "MIGRATIONS_DIR",
    "group_list_name",
    "ActionRecord",
    "AlertRecord",
    "AuditRecord",
    "ContactRecord",
    "EntryRecord",
    "ExemptionRecord",
    "FrozenJSON",
    "GroupRecord",
    "ListRecord",
    "PruneCounts",
    "PurgeCounts",
    "ReviewRecord",
    "WorkItem",
    "ProtectedOwner",
    "ProtectedPhoto",
]


class Store(
    GroupsMixin,
    ListsMixin,
    AuditMixin,
    WorkMixin,
    ProtectedMixin,
    ChangesMixin,
    ReportsMixin,
    CirclesMixin,
    SeenMixin,
    MembersMixin,
    SnapshotsMixin,
    MutesMixin,
):
    """All of Vigil's persistent data behind async methods; see the mixins for each topic."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        *,
        migrations_dir: Path | None = None,
        clock: Clock = utc_now,
        check: bool = True,
    ) -> Store:
        """Opens (or creates) the database and applies new migrations.

        ``migrations_dir`` replaces the shipped migrations (tests); ``clock`` gives the time
        stamped on rows; ``check`` runs SQLite's quick_check first.
        """
        return cls(await Database.open(path, migrations_dir=migrations_dir, clock=clock, check=check))

    backend = "sqlite"

    @property
    def path(self) -> Path:
        return self._db.path

    @property
    def location(self) -> str:
        """Where the data lives, fit for messages: the file's path."""
        return str(self._db.path)

    async def schema_version(self) -> int:
        async with self._db.read() as c:
            row = await (await c.execute("SELECT max(version) FROM schema_migrations")).fetchone()
        return int(row[0] or 0) if row else 0

    async def backup(self, dest_path: str | os.PathLike[str]) -> Path:
        """A consistent copy of the database at ``dest_path`` (SQLite online backup)."""
        return await self._db.backup(dest_path)

    async def close(self) -> None:
        await self._db.close()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
