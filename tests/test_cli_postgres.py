"""The commands on PostgreSQL ([database] url through VIGIL_DATABASE_URL), against the real server the
suite starts: hash import (COPY) and export, purge, protect, backup (pg_dump), and migrate-store
from an SQLite install. Plus: a database password never shows in an error."""

from __future__ import annotations

import asyncio
import io
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psycopg
import pytest
from PIL import Image

from bot.__main__ import main as vigil_main
from bot.errors import StoreError
from bot.lists import stored_fingerprint, stored_views
from bot.store import Store
from bot.store.postgres import PostgresStore
from bot.store.records import ChangeKind
from detectors.matching import media_signals
from tests.support import transforms as TF

T = "telegram"
PDQ = "f" * 64


def jpeg(rgb: np.ndarray, quality: int = 92) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


@pytest.fixture
def pg(postgres_url: str, monkeypatch, tmp_path: Path) -> str:
    """The commands use this PostgreSQL database; data_dir is an empty folder (nothing goes there)."""
    monkeypatch.setenv("VIGIL_DATABASE_URL", postgres_url)
    monkeypatch.setenv("VIGIL_DATA_DIR", str(tmp_path / "data"))
    return postgres_url


def vigil(capsys, *args: str) -> tuple[int, str, str]:
    code = vigil_main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def count(url: str, sql: str) -> int:
    with psycopg.connect(url) as c:
        return int(c.execute(sql).fetchone()[0])


def test_hash_import_export_remove_and_lists_on_postgresql(pg, tmp_path, capsys):
    hashes = [f"{i:064x}" for i in range(1, 4501)]  # more than one COPY chunk
    te = tmp_path / "partner.te"
    te.write_text("".join(f"pdq {h}\n" for h in hashes) + f"pdq {hashes[0]}\n")
    code, out, err = vigil(capsys, "hash", "import", str(te), "--list", "partner-ncii", "--label", "ncii")
    assert code == 0, err
    assert "imported 4500 entries into 'partner-ncii'" in out and "1 already in the list" in out
    assert count(pg, "SELECT count(*) FROM entries") == 4500
    assert count(pg, "SELECT count(*) FROM list_changes WHERE op = 'add'") == 4500  # the running bot follows them
    assert count(pg, "SELECT count(*) FROM groups") == 0 and not (tmp_path / "data" / "vigil.sqlite3").exists()
    out_file = tmp_path / "out.te"
    code, _, err = vigil(capsys, "hash", "export", "--list", "partner-ncii", "--output", str(out_file))
    assert code == 0 and "exported 4500 entries" in err
    assert out_file.read_text().splitlines() == [f"pdq {h}" for h in hashes]
    code, out, _ = vigil(capsys, "hash", "remove", "1", "99999")
    assert code == 1 and "entry 1: removed" in out
    code, out, _ = vigil(capsys, "hash", "follow", "partner-ncii", "--group", "telegram:-100")
    assert code == 0
    code, out, _ = vigil(capsys, "hash", "lists")
    assert "partner-ncii: block, label ncii, action delete, instance, 4499 entries; followed by telegram:-100" in out


async def _seed_person(store, user: str, n: int) -> None:
    lst = await store.group_list(T, "-100", "block")
    await store.add_audit(
        platform=T,
        chat_id="-100",
        message_id=f"m{user}",
        sender_id=user,
        kind="scan",
        label="nudity",
        hashes={"pdq": PDQ},
        decision="delete",
    )
    await store.set_contact(T, user, can_dm=True, display_name=f"user {user}")
    await store.add_entry(lst.id, sha256=f"{n}" * 64, added_by=user, source_platform=T, source_chat="-100")


async def test_purge_on_postgresql(pg, capsys):
    async with await PostgresStore.open(pg) as store:
        await _seed_person(store, "7", 1)
        await _seed_person(store, "8", 2)
    code = await asyncio.to_thread(vigil_main, ["purge", "--user", "7"])
    assert code == 0
    assert "purged telegram user 7: 3 rows (audit 1, contacts 1, exemptions 0, entries 1," in capsys.readouterr().out
    with psycopg.connect(pg) as c:
        assert c.execute("SELECT sender_id FROM audit").fetchall() == [("8",)]
        assert c.execute("SELECT added_by FROM entries").fetchall() == [("8",)]


async def test_protect_add_list_remove_on_postgresql(pg, tmp_path, capsys):
    photo = tmp_path / "ana.jpg"
    photo.write_bytes(jpeg(TF.photos()["astronaut"]))
    code = await asyncio.to_thread(vigil_main, ["protect", "add", str(photo), "--owner", "Ana"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "added    #1" in out.out
    assert count(pg, "SELECT count(*) FROM protected_photos") == 1
    code = await asyncio.to_thread(vigil_main, ["protect", "list"])
    assert code == 0 and "Ana" in capsys.readouterr().out
    code = await asyncio.to_thread(vigil_main, ["protect", "remove", "--owner", "Ana"])
    assert code == 0, capsys.readouterr().err
    assert count(pg, "SELECT count(*) FROM protected_photos") == 0


async def test_backup_on_postgresql_is_a_pg_dump_and_says_so(pg, tmp_path, capsys, monkeypatch):
    async with await PostgresStore.open(pg) as store:
        await _seed_person(store, "7", 1)
    dest = tmp_path / "vigil.dump"
    code = await asyncio.to_thread(vigil_main, ["backup", str(dest)])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "by pg_dump" in out.out and "pg_restore" in out.out and "***" not in out.out
    assert dest.read_bytes()[:5] == b"PGDMP"  # pg_dump's custom format
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    # without pg_dump: a clear refusal that names it, and no file
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    code = await asyncio.to_thread(vigil_main, ["backup", str(tmp_path / "other.dump")])
    assert code == 2 and "needs pg_dump" in capsys.readouterr().err
    assert not (tmp_path / "other.dump").exists()


async def test_a_password_never_shows_in_an_error(postgres_server, tmp_path, monkeypatch, capsys):
    closed = f"postgresql://vigil:s3cr3t-pw@127.0.0.1:{postgres_server.port + 1}/vigil"
    with pytest.raises(StoreError) as err:
        await PostgresStore.open(closed)
    assert "s3cr3t-pw" not in str(err.value) and "vigil:***@127.0.0.1" in str(err.value)
    monkeypatch.setenv("VIGIL_DATABASE_URL", closed)
    code = await asyncio.to_thread(vigil_main, ["purge", "--user", "7"])
    assert code == 2 and "s3cr3t-pw" not in capsys.readouterr().err
    monkeypatch.setenv("VIGIL_DATABASE_URL", "mysql://vigil:s3cr3t-pw@db/vigil")
    code = await asyncio.to_thread(vigil_main, ["purge", "--user", "7"])
    err_text = capsys.readouterr().err
    assert code == 2 and "s3cr3t-pw" not in err_text and "not a PostgreSQL URL" in err_text


# --- migrate-store ----------------------------------------------------------------------------------


async def _seed_sqlite(path: Path) -> None:
    async with await Store.open(path) as s:
        await s.upsert_group(T, "-100", "Club", added_by="1", bot_rights={"delete": True})
        await s.update_settings(T, "-100", {"mode": "review", "logchat": "-300"})
        await s.mark_owner_hint_sent(T, "-100")
        await s.set_contact(T, "1", can_dm=True, language="es", display_name="Admin")
        await s.add_exemption(T, "-100", "5")
        own = await s.group_list(T, "-100", "block")
        ncii = await s.create_list("ncii", kind="block", label="ncii", action="review")
        await s.follow(T, "-100", ncii.id)
        await s.add_to_circle("league", [(T, "-100"), ("matrix", "!room:example.org")], shared_bans=True)
        frame = media_signals(jpeg(TF.photos()["coffee"]))[0]
        h = frame.hashes
        e = await s.add_entry(
            own.id,
            pdq=h.pdq,
            pdq_quality=h.pdq_quality,
            phash=h.phash,
            sha256=h.sha256,
            added_by="1",
            source_platform=T,
            source_chat="-100",
            note="blocked",
        )
        await s.set_entry_features(
            e.id, views=stored_views(frame.views), fingerprint=stored_fingerprint(frame.fingerprint)
        )
        await s.add_entries_bulk(ncii.id, [{"pdq": f"{i:064x}"} for i in range(1, 300)])
        await s.remove_entry(e.id + 1)  # a gap in the ids, which must stay
        aid = await s.add_audit(
            platform=T,
            chat_id="-100",
            message_id="55",
            sender_id="7",
            sender_name="Ana",
            kind="scan",
            label="nudity",
            findings={"nudity": [{"score": 0.9}]},
            hashes={"pdq": PDQ},
            decision="review",
            dry_run=True,
        )
        review = await s.open_review(aid, T, "-100", "55")
        await s.decide_review(review.id, "kept", "1")
        await s.record_alert(aid, T, "1", "900")
        done = await s.enqueue_work(T, "-100", "55", {"variant": "", "media": {"file_id": "F"}})
        await s.finish_work(done)
        await s.enqueue_work(T, "-100", "56", {"variant": "edit:2", "media": {"file_id": "G"}})
        # the scheduler's columns: an item waiting for its retry, one given up
        deferred = await s.enqueue_work(T, "-100", "57", {"variant": "", "media": {"file_id": "H"}})
        await s.start_work(deferred)
        await s.defer_work(deferred, "Transient: try later", datetime(2030, 1, 1, 12, 30, tzinfo=UTC))
        given_up = await s.enqueue_work(T, "-100", "58", {"variant": "", "media": {"file_id": "I"}})
        await s.start_work(given_up)
        await s.give_up_work(given_up, "killed")
        act = await s.record_action(T, "-100", "55", "mute", {"user": "7"})
        await s.action_done(act.id)
        await s.record_action(T, "-100", "56", "delete")
        await s.set_state("telegram:offset", "12345")
        owner = await s.member_owner(T, "7", name="Ana", create=True)
        await s.add_protected_photo(owner.id, "QUJD" * 8, source="private", pdq=PDQ)
        await s.add_protected_photo(
            owner.id,
            "REVG" * 8,
            source="group",
            platform=T,
            chat_id="-100",
            expires_at=__import__("datetime").datetime(2030, 1, 1),
        )


async def _everything(s) -> dict:
    lists = await s.all_lists()
    return {
        "groups": await s.list_groups(),
        "contact": await s.get_contact(T, "1"),
        "exemptions": await s.exemptions(T, "-100"),
        "lists": lists,
        "entries": [await s.entries(lst.id) for lst in lists],
        "followers": dict(await s.followers()),
        "features": [f async for f in s.iter_all_features()],
        "audit": await s.audit_for_group(T, "-100"),
        "reviews": await s.get_review(1),
        "alerts": await s.alerts_for(1),
        "work": [await s.work_item(i) for i in (1, 2, 3, 4)],
        "due": await s.next_work(T, "-100", datetime(2030, 1, 1, tzinfo=UTC)),
        "chats": await s.pending_chats(),
        "actions": [await s.get_action(i) for i in (1, 2)],
        "state": await s.get_state("telegram:offset"),
        "owners": await s.protected_owners(),
        "photos": [p async for p in s.iter_protected_photos()],
        "sizes": dict(await s.list_sizes()),
        "circles": await s.circles(),
    }


async def test_migrate_store_copies_an_sqlite_install_whole(pg, tmp_path, capsys):
    source = tmp_path / "old" / "vigil.sqlite3"
    await _seed_sqlite(source)
    async with await Store.open(source) as s:
        before = await _everything(s)
    code = await asyncio.to_thread(vigil_main, ["migrate-store", "--from", f"sqlite:{source}", "--to", pg])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "copied" in out.out and "entries 299" in out.out
    async with await PostgresStore.open(pg) as p:
        after = await _everything(p)
        for key in before:
            assert after[key] == before[key], key
        assert await p.changes_since(ChangeKind.LISTS, 0) == []  # the copy is the starting point, not a change
        assert await p.changes_since(ChangeKind.PROTECTED, 0) == []
        # new rows continue after the copied ids, and the copied rows keep working
        lst = await p.group_list(T, "-100", "block")
        assert lst.id == before["lists"][0].id
        fresh = await p.add_entry(lst.id, sha256="e" * 64)
        assert fresh.id > max(e.id for entries in before["entries"] for e in entries)
        assert [c.op for c in await p.changes_since(ChangeKind.LISTS, 0)] == ["add"]
        assert await p.enqueue_work(T, "-100", "56", {"variant": "edit:2"}) == 2  # a replay is recognised
    # a second run refuses: the target is no longer empty, and nothing changed
    code = await asyncio.to_thread(vigil_main, ["migrate-store", "--from", f"sqlite:{source}", "--to", pg])
    assert code == 2 and "already holds data" in capsys.readouterr().err
    assert count(pg, "SELECT count(*) FROM entries") == 300  # 1 + 299 copied, 1 removed before, 1 added after


def test_migrate_store_refuses_what_it_cannot_use(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("VIGIL_DATABASE_URL", raising=False)
    code = vigil_main(["migrate-store", "--from", f"sqlite:{tmp_path / 'none.sqlite3'}"])
    assert code == 2 and "--to postgresql://" in capsys.readouterr().err
    code = vigil_main(
        ["migrate-store", "--from", f"sqlite:{tmp_path / 'none.sqlite3'}", "--to", "postgresql://x@127.0.0.1/v"]
    )
    assert code == 2 and "no SQLite database at" in capsys.readouterr().err
    code = vigil_main(["migrate-store", "--from", "mysql:x", "--to", "postgresql://x@127.0.0.1/v"])
    assert code == 2 and "write sqlite:PATH" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_check_config_names_the_database_without_its_password(tmp_path, capsys, monkeypatch):
    cfg = tmp_path / "config.toml"
    cfg.write_text('[database]\nurl = "postgresql://vigil@db.example.org/vigil"\npool_size = 4\n')
    assert vigil_main(["check-config", str(cfg)]) == 0
    assert "data in PostgreSQL at postgresql://vigil@db.example.org/vigil;" in capsys.readouterr().out
    monkeypatch.setenv("VIGIL_DATABASE_URL", "postgresql://vigil:s3cr3t-pw@db2.example.org:5433/vigil")
    assert vigil_main(["check-config", str(cfg)]) == 0  # the environment wins over the file
    out = capsys.readouterr().out
    assert "postgresql://vigil:***@db2.example.org:5433/vigil" in out and "s3cr3t-pw" not in out
    cfg.write_text("[database]\npool_size = 0\n")
    assert vigil_main(["check-config", str(cfg)]) == 2
    assert "database.pool_size" in capsys.readouterr().err
