"""`vigil purge --user` on Matrix removes the person's timed-mute records (bot/store/mutes.py) and
says so; another person's mute, and a Telegram id that looks the same, are left alone."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from bot.__main__ import main as vigil_main
from bot.store import Store
from bot.store.mutes import MuteRecord

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
