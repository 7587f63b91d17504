"""`vigil hash`: the operator's list commands, on a real database, and the running bot
following what they change (through the Bot API emulator)."""

from __future__ import annotations

import asyncio
import io
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bot.__main__ import main
from tests.support import transforms as T
from tests.support.decided import telegram_decided, verdicts
from tests.support.vigil_harness import running_vigil, write_config
from tests.test_telegram import Group, wait_deleted

PDQ_A = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
PDQ_B = "e64cc9d91c623882f8d1f1d9a398e78c9f199b3bd83924f2b7e11e0bf861b064"


def jpeg(rgb: np.ndarray, quality: int = 92) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'[vigil]\ndata_dir = "{tmp_path / "data"}"\n')
    return path


def vigil(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["hash", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def image(tmp_path: Path, name: str, edit: str | None = None, quality: int = 92) -> Path:
    rgb = T.photos()[name]
    if edit is not None:
        rgb = next(v for v in T.all_variants() if v.name == edit)(rgb)
    path = tmp_path / f"{name}-{edit or 'original'}.jpg"
    path.write_bytes(jpeg(rgb, quality))
    return path


def rows(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as c:
        return c.execute(sql).fetchall()


# --- add, match, remove --------------------------------------------------------------------------


def test_add_creates_an_instance_list_and_match_finds_edited_copies(tmp_path, cfg, capsys):
    original = image(tmp_path, "astronaut")
    code, out, err = vigil(
        capsys,
        "add",
        str(original),
        "--list",
        "ncii-partner",
        "--label",
        "ncii",
        "--note",
        "case 17",
        "--config",
        str(cfg),
    )
    assert code == 0 and "entry 1 in 'ncii-partner'" in out and "created instance list" in err
    db = tmp_path / "data" / "vigil.sqlite3"
    assert rows(db, "SELECT name, label, kind, action, scope FROM lists") == [
        ("ncii-partner", "ncii", "block", "delete", "instance")
    ]
    assert rows(db, "SELECT added_by, note FROM entries") == [("operator", "case 17")]
    assert rows(db, "SELECT count(*) FROM entry_features WHERE fingerprint IS NOT NULL") == [(1,)]
    copies = [image(tmp_path, "astronaut", e) for e in ("mirror_jpeg70", "crop10_3", "phone")]
    other = image(tmp_path, "coffee")
    code, out, _ = vigil(capsys, "match", *map(str, copies), str(other), "--json", "--config", str(cfg))
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["path"] for line in lines] == [*map(str, copies), str(other)]
    for line in lines[:3]:
        assert [(m["list"], m["entry"]) for m in line["matches"]][:1] == [("ncii-partner", 1)]
        assert set(line["matches"][0]) == {"list", "entry", "algorithm", "distance"}
    assert lines[3]["matches"] == []
    code, out, _ = vigil(capsys, "match", str(copies[0]), str(other), "--config", str(cfg))
    assert "list 'ncii-partner' entry 1 (pdq, distance" in out and f"{other}: no match" in out


def test_a_file_that_is_not_an_image_is_reported_and_the_rest_added(tmp_path, cfg, capsys):
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    good = image(tmp_path, "coffee")
    code, out, err = vigil(capsys, "add", str(bad), str(good), "--list", "l", "--config", str(cfg))
    assert code == 1 and "notes.txt: not added" in err and "entry 1" in out
    code, out, _ = vigil(capsys, "match", str(bad), "--json", "--config", str(cfg))
    assert "error" in json.loads(out)


def test_remove_takes_an_entry_out_of_matching(tmp_path, cfg, capsys):
    vigil(capsys, "add", str(image(tmp_path, "chelsea")), "--list", "l", "--config", str(cfg))
    copy = image(tmp_path, "chelsea", "jpeg50")
    assert "entry 1" in vigil(capsys, "match", str(copy), "--config", str(cfg))[1]
    code, out, _ = vigil(capsys, "remove", "1", "--config", str(cfg))
    assert code == 0 and "entry 1: removed" in out
    assert "no match" in vigil(capsys, "match", str(copy), "--config", str(cfg))[1]
    code, _, err = vigil(capsys, "remove", "1", "--config", str(cfg))
    assert code == 1 and "no such entry" in err
    assert rows(tmp_path / "data" / "vigil.sqlite3", "SELECT count(*) FROM entry_features") == [(0,)]


# --- import and export ------------------------------------------------------------------------------


def test_import_of_threatexchange_text_then_export_gives_the_same_list(tmp_path, cfg, capsys):
    src = tmp_path / "partner.te"
    src.write_text(f"pdq {PDQ_A}\n\npdq {PDQ_B}\n{'0123' * 16}\n")
    code, out, _ = vigil(capsys, "import", str(src), "--list", "partner", "--label", "ncii", "--config", str(cfg))
    assert code == 0 and "imported 3 entries into 'partner'" in out
    code, out, _ = vigil(capsys, "export", "--list", "partner", "--config", str(cfg))
    assert code == 0
    assert out.splitlines() == [f"pdq {PDQ_A}", f"pdq {PDQ_B}", f"pdq {'0123' * 16}"]
    again = tmp_path / "again.te"
    again.write_text(out)
    assert vigil(capsys, "import", str(again), "--list", "copy", "--config", str(cfg))[0] == 0
    assert vigil(capsys, "export", "--list", "copy", "--config", str(cfg))[1] == out
    code, out, _ = vigil(capsys, "import", str(again), "--list", "copy", "--config", str(cfg))
    assert "imported 0 entries" in out and "3 already in the list" in out


def test_csv_export_then_import_keeps_every_hash_and_note(tmp_path, cfg, capsys):
    vigil(
        capsys,
        "add",
        str(image(tmp_path, "rocket")),
        "--list",
        "mine",
        "--note",
        "a, quoted; note",
        "--config",
        str(cfg),
    )
    src = tmp_path / "more.te"
    src.write_text(f"pdq {PDQ_A}\n")
    vigil(capsys, "import", str(src), "--list", "mine", "--config", str(cfg))
    out_file = tmp_path / "mine.csv"
    code, _, err = vigil(
        capsys, "export", "--list", "mine", "--format", "csv", "--output", str(out_file), "--config", str(cfg)
    )
    assert code == 0 and "exported 2 entries" in err
    assert vigil(capsys, "import", str(out_file), "--list", "restored", "--config", str(cfg))[0] == 0
    db = tmp_path / "data" / "vigil.sqlite3"
    pick = (
        "SELECT pdq, pdq_quality, phash, sha256, note FROM entries e JOIN lists l ON l.id = e.list_id"
        " WHERE l.name = '{}' ORDER BY e.id"
    )
    assert rows(db, pick.format("restored")) == rows(db, pick.format("mine"))
    assert len(rows(db, pick.format("mine"))) == 2


def test_a_bad_import_reports_every_bad_line_and_imports_nothing(tmp_path, cfg, capsys):
    src = tmp_path / "mixed.te"
    src.write_text(
        f"pdq {PDQ_A}\nmd5 0123456789abcdef0123456789abcdef\npdq {PDQ_B}\npdq 12345\n\npdq {PDQ_A.upper()}\n"
    )
    code, out, err = vigil(capsys, "import", str(src), "--list", "partner", "--config", str(cfg))
    assert code == 1 and out == ""
    assert f"{src}:2: signal type 'md5' is not one Vigil matches" in err
    assert f"{src}:4: '12345' is not a PDQ hash" in err
    assert f"{src}:6: " in err
    assert f"{src}:1:" not in err and f"{src}:3:" not in err
    assert "3 bad lines: nothing was imported" in err
    db = tmp_path / "data" / "vigil.sqlite3"
    assert rows(db, "SELECT count(*) FROM entries") == [(0,)] and rows(db, "SELECT count(*) FROM lists") == [(0,)]


def test_a_bad_csv_row_is_reported_with_its_line_number(tmp_path, cfg, capsys):
    src = tmp_path / "bad.csv"
    src.write_text(f"pdq,pdq_quality,note\n{PDQ_A},90,fine\n{PDQ_B},101,quality too high\n,,no hash at all\n")
    code, _, err = vigil(capsys, "import", str(src), "--list", "l", "--config", str(cfg))
    assert code == 1
    assert f"{src}:3: pdq_quality '101'" in err and f"{src}:4: no hash" in err and f"{src}:2:" not in err
    src.write_text("colour,size\nred,3\n")
    code, _, err = vigil(capsys, "import", str(src), "--list", "l", "--format", "csv", "--config", str(cfg))
    assert code == 1 and f"{src}:1: the header must name columns" in err


# --- lists, follow, delete-list ---------------------------------------------------------------------


def test_lists_follow_unfollow_and_delete(tmp_path, cfg, capsys):
    src = tmp_path / "a.te"
    src.write_text(f"pdq {PDQ_A}\npdq {PDQ_B}\n")
    vigil(
        capsys,
        "import",
        str(src),
        "--list",
        "deepfakes",
        "--label",
        "deepfake",
        "--action",
        "review",
        "--config",
        str(cfg),
    )
    code, out, _ = vigil(capsys, "follow", "deepfakes", "--group", "telegram:-1001", "--config", str(cfg))
    assert code == 0 and "telegram:-1001 now follows 'deepfakes'" in out
    vigil(capsys, "follow", "deepfakes", "--group", "matrix:!room:example.org", "--config", str(cfg))
    code, out, _ = vigil(capsys, "lists", "--config", str(cfg))
    assert (
        "deepfakes: block, label deepfake, action review, instance, 2 entries; followed by "
        "matrix:!room:example.org, telegram:-1001" in out
    )
    assert "did not follow" in vigil(capsys, "unfollow", "deepfakes", "--group", "telegram:-5", "--config", str(cfg))[1]
    assert (
        "no longer follows"
        in vigil(capsys, "unfollow", "deepfakes", "--group", "telegram:-1001", "--config", str(cfg))[1]
    )
    code, _, err = vigil(capsys, "follow", "deepfakes", "--group", "telegram", "--config", str(cfg))
    assert code == 2 and "PLATFORM:CHAT_ID" in err
    code, _, err = vigil(capsys, "follow", "nope", "--group", "telegram:-1", "--config", str(cfg))
    assert code == 2 and "no list named 'nope'" in err
    code, _, err = vigil(capsys, "delete-list", "deepfakes", "--config", str(cfg))
    assert code == 1 and "would delete 'deepfakes' and its 2 entries" in err
    assert "2 entries" in vigil(capsys, "lists", "--config", str(cfg))[1]
    code, out, _ = vigil(capsys, "delete-list", "deepfakes", "--yes", "--config", str(cfg))
    assert code == 0 and "deleted 'deepfakes'" in out
    assert "no lists yet" in vigil(capsys, "lists", "--config", str(cfg))[1]


# --- the running bot follows the command line --------------------------------------------------------


async def cli(*args: str) -> int:
    # the command line runs its own event loop: give it a thread, as a separate process would have
    return await asyncio.to_thread(main, ["hash", *args])


async def test_the_running_bot_follows_entries_added_and_removed_from_the_command_line(emu, tmp_path, marker_model):
    g = Group(emu)
    config = write_config(tmp_path, emu.url, marker_model)
    photo = T.photos()["coffee"]
    original = tmp_path / "original.jpg"
    original.write_bytes(jpeg(photo, 95))
    async with running_vigil(config) as app:
        assert await cli("add", str(original), "--list", "ncii", "--label", "ncii", "--config", str(config)) == 0
        assert await cli("follow", "ncii", "--group", f"telegram:{g.chat}", "--config", str(config)) == 0
        # the bot reads the store's change log every 2 s: until its index holds the entry
        await emu.wait_for(lambda: 1 in app.core.lists, timeout=30)
        mirrored = emu.post_photo(g.chat, g.member, jpeg(np.ascontiguousarray(photo[:, ::-1]), 80))
        await wait_deleted(g, mirrored)
        await emu.wait_for(lambda: len(g.alerts(g.owner)) == 1)
        assert await cli("remove", "1", "--config", str(config)) == 0
        await emu.wait_for(lambda: 1 not in app.core.lists, timeout=30)
        again = emu.post_photo(g.chat, g.member, jpeg(np.ascontiguousarray(photo[:, ::-1]), 80))
        records = await telegram_decided(app, emu, g.chat, again)
        assert verdicts(records) == ["allow"] * len(records)
        assert g.present(again)
        assert len(g.alerts(g.owner)) == 1


async def test_an_admin_blocks_a_picture_then_removes_the_entry(emu, tmp_path, marker_model):
    g = Group(emu)
    photo = T.photos()["chelsea"]
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)) as app:
        first = emu.post_photo(g.chat, g.member, jpeg(photo))
        emu.post_text(g.chat, g.owner, "/block", reply_to=first)
        await wait_deleted(g, first)
        await emu.wait_for(lambda: any("/vigil remove" in (m.get("text") or "") for m in emu.messages_in(g.chat)))
        reply = next(m["text"] for m in emu.messages_in(g.chat) if "/vigil remove" in (m.get("text") or ""))
        entry = reply.rsplit(" ", 1)[1]
        # a cropped, captioned copy is caught by local features
        copy = emu.post_photo(g.chat, g.member, jpeg(T.text_overlay(T.crop(photo, 0.08, 1), "lol", 3)))
        await wait_deleted(g, copy)
        emu.post_text(g.chat, g.owner, "/vigil lists")
        await emu.wait_for(
            lambda: any("block list: 1 images" in (m.get("text") or "") for m in emu.messages_in(g.chat))
        )
        # a member cannot remove it; an admin can, and the copy then stays
        emu.post_text(g.chat, g.member, f"/vigil remove {entry}")
        emu.post_text(g.chat, g.owner, f"/vigil remove {entry}")
        await emu.wait_for(
            lambda: any(f"Entry {entry} removed" in (m.get("text") or "") for m in emu.messages_in(g.chat))
        )
        assert int(entry) not in app.core.lists
        later = emu.post_photo(g.chat, g.member, jpeg(T.crop(photo, 0.08, 1)))
        records = await telegram_decided(app, emu, g.chat, later)
        assert verdicts(records) == ["allow"] * len(records)
        assert g.present(later)
