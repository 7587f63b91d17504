"""The commands and Matrix timed mutes (bot/store/mutes.py): `vigil purge --user` removes the
person's mute records and says so (another person's, and a Telegram purge, leave them alone);
`vigil migrate-store` carries the mutes of an SQLite install to PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from bot.__main__ import main as vigil_main
from bot.store import Store
from bot.store.mutes import MuteRecord
from bot.store.postgres import PostgresStore

UNTIL = datetime(2030, 1, 1, tzinfo=UTC)


async def test_purge_removes_the_persons_matrix_mutes_and_counts_them(tmp_path: Path, capsys) -> None:
    cfg = tmp_path / "cli.toml"
    cfg.write_text(f'[vigil]\ndata_dir = "{tmp_path / "data"}"\n')
    (tmp_path / "data").mkdir()
    store = await Store.open(tmp_path / "data" / "vigil.sqlite3")
    try:
        for room in ("!a:example.org", "!b:example.org"):
            await store.record_mute(MuteRecord(room, "@alice:example.org", -1, None, UNTIL))
        await store.record_mute(MuteRecord("!a:example.org", "@bob:example.org", -1, 0, UNTIL))
    finally:
        await store.close()

    argv = ["purge", "--platform", "matrix", "--user", "@alice:example.org", "--config", str(cfg)]
    assert await asyncio.to_thread(vigil_main, argv) == 0
    out = capsys.readouterr().out
    assert "purged matrix user @alice:example.org: 2 rows (" in out and "mutes 2" in out
    with sqlite3.connect(tmp_path / "data" / "vigil.sqlite3") as c:
        assert c.execute("SELECT user_id FROM mutes").fetchall() == [("@bob:example.org",)]

    # a Telegram purge never touches Matrix mutes
    argv = ["purge", "--user", "@bob:example.org", "--config", str(cfg)]
    assert await asyncio.to_thread(vigil_main, argv) == 0
    assert "mutes 0" in capsys.readouterr().out
    with sqlite3.connect(tmp_path / "data" / "vigil.sqlite3") as c:
        assert c.execute("SELECT count(*) FROM mutes").fetchone() == (1,)


async def test_migrate_store_carries_the_mutes_to_postgresql(postgres_url: str, tmp_path: Path, capsys) -> None:
    source = tmp_path / "old" / "vigil.sqlite3"
    mutes = [
        MuteRecord("!a:example.org", "@alice:example.org", -1, None, UNTIL),
        MuteRecord("!a:example.org", "@bob:example.org", -5, 20, datetime(2030, 1, 2, 3, 4, 5, 678, tzinfo=UTC)),
    ]
    async with await Store.open(source) as s:
        for mute in mutes:
            await s.record_mute(mute)
    argv = ["migrate-store", "--from", f"sqlite:{source}", "--to", postgres_url]
    code = await asyncio.to_thread(vigil_main, argv)
    assert code == 0, capsys.readouterr().err
    target = await PostgresStore.open(postgres_url)
    try:
        assert [await target.mute_of(m.room, m.user) for m in mutes] == mutes
    finally:
        await target.close()
