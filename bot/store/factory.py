"""One way to open the store a configuration names: PostgreSQL when ``[database] url`` (or
VIGIL_DATABASE_URL) is set, else the SQLite file in ``data_dir``.

Takes any object with the three attributes below (``bot.config.Config`` has them), so the store
imports nothing from the rest of Vigil.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

from bot.errors import StoreError
from bot.store.protocol import Store

log = logging.getLogger("vigil.store")


class StoreSettings(Protocol):
    @property
    def database(self) -> Path: ...  # the SQLite file
    @property
    def database_url(self) -> str: ...  # "" or postgresql://...
    @property
    def database_pool(self) -> int: ...  # PostgreSQL connections at most


async def open_store(config: StoreSettings, *, must_exist: bool = False, check: bool = True) -> Store:
    """Opens (and migrates) the configured store.

    ``must_exist``: refuse to create a new SQLite file (commands that work on existing data);
    ``check``: SQLite's quick_check at opening (a backup checks the copy instead)."""
    if config.database_url:
        from bot.store.postgres import PostgresStore

        store = await PostgresStore.open(config.database_url, pool_size=(1, config.database_pool))
        log.info("store: PostgreSQL at %s", store.location)
        return store
    from bot.store import Store as SqliteStore

    if must_exist and not config.database.exists():
        raise StoreError(f"no database at {config.database}; check data_dir in the config (or pass --config)")
    config.database.parent.mkdir(parents=True, exist_ok=True)
    return await SqliteStore.open(config.database, check=check)
