"""A member who tries to stall, crash or slip past Vigil's core: hanging downloads, crash loops,
failed attempts, decompression bombs, metadata and tokens in logs, stops in the middle of work.

Real parts: the real python-telegram-bot against the Bot API emulator, `vigil run` as its own
process where a crash is the point, real SQLite files, real models for `vigil scan`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import logging
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp import web
from PIL import Image

from bot.app import setup_logging
from bot.config import load_config
from tests.support.botapi import BotApiEmulator, full_rights
from tests.support.hostile_files import write_hostile_folder
from tests.support.marker_model import add_marker
from tests.support.vigil_harness import ROOT, TOKEN, VigilProcess, jpeg, running_vigil, write_config


class HangingEmulator(BotApiEmulator):
    """The Bot API emulator, where the downloads of chosen files hang until released (a slow or
    stuck file server, as a remote Matrix homeserver can be)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.hang_uploads = False  # files uploaded while True hang when downloaded
        self.hung_ids: set[str] = set()
        self.hanging = 0  # download requests waiting now
        self.hung_started = 0  # download requests of hung files so far
        self.release = asyncio.Event()

    def upload(self, data, **kwargs):
        ref = super().upload(data, **kwargs)
        if self.hang_uploads:
            self.hung_ids.add(ref.file_id)
        return ref

    async def _serve_file(self, request: web.Request) -> web.Response:
        file_id = self._paths.get(request.match_info["path"])
        if file_id in self.hung_ids and not self.release.is_set():
            self.hanging += 1
            self.hung_started += 1
            self._changed()
            try:
                await self.release.wait()
            finally:
                self.hanging -= 1
                self._changed()
        return await super()._serve_file(request)

    async def stop(self) -> None:
        self.release.set()
        await super().stop()


@pytest.fixture
async def emu():
    e = HangingEmulator(token=TOKEN)
    await e.start()
    yield e
    await e.stop()


class Groups:
    """Two groups with the same owner and admin (who started the bot), a member in each."""

    def __init__(self, emu: BotApiEmulator) -> None:
        self.emu = emu
        self.owner = emu.add_user("Olivia", username="olivia")
        self.admin = emu.add_user("Ana", username="ana")
        self.member = emu.add_user("Max", username="max")
        people = dict(creator=self.owner, admins=[self.admin], members=[self.member], bot_rights=full_rights())
        self.a = emu.add_group("Flooded", **people)
        self.b = emu.add_group("Quiet", **people)
        emu.start_private(self.owner)
        emu.start_private(self.admin)

    def present(self, chat: int, message_id: int) -> bool:
        return any(m["message_id"] == message_id for m in self.emu.messages_in(chat))

    def alerts(self, user: int) -> list[dict]:
        return [m for m in self.emu.sent_to(user) if "details:" in json.dumps(m.get("reply_markup") or {})]

    def delete_attempts(self, message_id: int) -> int:
        """deleteMessage calls for one message, refused ones too (a repeat gets a 400)."""
        return sum(1 for c in self.emu.calls_to("deleteMessage") if int(c.params["message_id"]) == message_id)


def config(tmp: Path, emu: BotApiEmulator, model: Path, **pipeline: object) -> Path:
    path = write_config(tmp, emu.url, model)
    extra = "".join(f"\n{k} = {json.dumps(v)}" for k, v in pipeline.items())
    path.write_text(path.read_text().replace("scan_timeout = 60", "scan_timeout = 60" + extra))
    return path


def work_rows(tmp: Path) -> list[sqlite3.Row]:
    db = sqlite3.connect(tmp / "data" / "vigil.sqlite3")
    db.row_factory = sqlite3.Row
    try:
        return db.execute("SELECT * FROM work ORDER BY id").fetchall()
    finally:
        db.close()


def all_finished(tmp: Path, count: int | None = None) -> bool:
    """Every work item finished (``count``: and there are that many; None: at least one)."""
    rows = work_rows(tmp)
    return (len(rows) == count if count is not None else bool(rows)) and all(r["finished_at"] for r in rows)


# --- one chat cannot stall the others ------------------------------------------------------


async def test_a_chat_whose_downloads_hang_does_not_delay_a_hit_in_another_chat(
    emu, tmp_path, marker_model, photo, other_photo
):
    g = Groups(emu)
    async with running_vigil(config(tmp_path, emu, marker_model, in_flight=2)) as app:
        # chat A floods: more images than any per-chat queue would hold, and each download hangs
        emu.hang_uploads = True
        flood = [emu.post_photo(g.a, g.member, jpeg(other_photo, 60 + i % 30)) for i in range(60)]
        emu.hang_uploads = False
        await emu.wait_for(lambda: emu.hanging >= 1, timeout=30)
        # then a command and a hit in chat B: both answered while A's downloads hang
        emu.post_text(g.b, g.owner, "/vigil status")
        hit = emu.post_photo(g.b, g.member, jpeg(add_marker(photo)))
        status = lambda: any("Mode: delete" in (m.get("text") or "") for m in emu.messages_in(g.b))  # noqa: E731
        await emu.wait_for(status, timeout=30)
        await emu.wait_for(lambda: not g.present(g.b, hit), timeout=30)
        await emu.wait_for(lambda: len(g.alerts(g.owner)) == 1, timeout=30)
        # B's hit was handled while A's download still hung and none of A's images was finished
        assert emu.hanging >= 1 and not emu.release.is_set()
        rows = work_rows(tmp_path)
        a_rows = [r for r in rows if r["chat_id"] == str(g.a)]
        assert len(a_rows) == len(flood)  # every image of A is in the inbox: intake did not wait
        assert not any(r["finished_at"] for r in a_rows)
        assert app.core.pipeline.depth <= 2  # memory holds chat keys, not A's backlog
        emu.release.set()


# --- crash loops -------------------------------------------------------------------------------


@pytest.mark.slow
async def test_an_image_that_kills_vigil_each_time_is_given_up_after_three_attempts_and_the_admins_are_told(
    emu, tmp_path, marker_model, photo
):
    g = Groups(emu)
    proc = VigilProcess(config(tmp_path, emu, marker_model), tmp_path / "vigil.log")
    try:
        emu.hang_uploads = True
        poison = emu.post_photo(g.a, g.member, jpeg(add_marker(photo)))
        emu.hang_uploads = False
        for attempt in (1, 2, 3):
            proc.start()
            # the process dies (kill -9, as the OS kills it for memory) during this item
            await emu.wait_for(lambda: emu.hung_started == attempt, timeout=90)
            await asyncio.to_thread(proc.kill)
        proc.start()
        await emu.wait_for(lambda: len(g.alerts(g.owner)) == 1 and len(g.alerts(g.admin)) == 1, timeout=90)
        await emu.wait_for(lambda: "given up after 3 attempts" in proc.log(), timeout=30)
        assert await asyncio.to_thread(proc.terminate, 30) == 0
    finally:
        if proc.proc and proc.proc.poll() is None:
            proc.kill()
    assert emu.hung_started == 3  # the fourth start did not try again
    alert = g.alerts(g.owner)[0]["text"]
    assert "could not check an image" in alert and "every attempt to check it failed" in alert
    assert g.present(g.a, poison)  # not deleted: the admins look at it themselves
    (row,) = work_rows(tmp_path)
    assert row["finished_at"] and row["gave_up"] == 1 and row["attempts"] == 4


async def test_a_failed_attempt_is_retried_with_backoff_while_vigil_runs(emu, tmp_path, marker_model, photo):
    g = Groups(emu)
    cfg = config(tmp_path, emu, marker_model, download_timeout=1.0, retry_backoff=3.0)
    async with running_vigil(cfg):
        emu.hang_uploads = True
        hit = emu.post_photo(g.a, g.member, jpeg(add_marker(photo)))
        emu.hang_uploads = False
        # the first attempt fails (its download outlasts download_timeout) and waits for its retry
        await emu.wait_for(lambda: any(r["not_before"] for r in work_rows(tmp_path)), timeout=30)
        assert emu.hung_started == 1
        emu.release.set()  # the server recovers: the retry, without a restart, goes through
        await emu.wait_for(lambda: not g.present(g.a, hit), timeout=30)
        await emu.wait_for(lambda: len(g.alerts(g.owner)) == 1, timeout=30)
        await emu.wait_for(lambda: all(r["finished_at"] for r in work_rows(tmp_path)), timeout=30)
    (row,) = work_rows(tmp_path)
    assert row["attempts"] == 2 and row["gave_up"] == 0 and "took longer than 1 s" in row["last_error"]
    assert g.delete_attempts(hit) == 1 and len(g.alerts(g.owner)) == 1


async def test_an_image_that_fails_every_attempt_is_given_up_with_a_notice_without_a_restart(
    emu, tmp_path, marker_model, photo
):
    g = Groups(emu)
    cfg = config(tmp_path, emu, marker_model, download_timeout=1.0, retry_backoff=0.2)
    async with running_vigil(cfg):
        emu.hang_uploads = True
        stuck = emu.post_photo(g.a, g.member, jpeg(add_marker(photo)))
        emu.hang_uploads = False
        await emu.wait_for(lambda: len(g.alerts(g.owner)) == 1 and len(g.alerts(g.admin)) == 1, timeout=60)
        await emu.wait_for(lambda: all(r["finished_at"] for r in work_rows(tmp_path)), timeout=30)
    assert emu.hung_started == 3
    (row,) = work_rows(tmp_path)
    assert row["gave_up"] == 1 and row["attempts"] == 3
    assert g.present(g.a, stuck) and "could not check an image" in g.alerts(g.admin)[0]["text"]


# --- exactly once ------------------------------------------------------------------------------------


@pytest.mark.slow
async def test_kill_9_during_a_burst_then_restart_repeats_no_delete_alert_or_record(
    emu, tmp_path, marker_model, photo, other_photo
):
    g = Groups(emu)
    # one image in flight, and the download of the third hit hangs: kill -9 lands there, with
    # images finished before it, images not started after it, and updates not yet confirmed
    proc = VigilProcess(config(tmp_path, emu, marker_model, in_flight=1), tmp_path / "vigil.log")
    proc.start()
    try:
        await emu.wait_for(lambda: len(emu.calls_to("getUpdates")) >= 1, timeout=60)
        hits, clean = [], []
        for i in range(12):
            chat = g.a if i % 2 else g.b
            emu.hang_uploads = i == 6
            if i % 3 == 0:
                hits.append((chat, emu.post_photo(chat, g.member, jpeg(add_marker(photo, 0.2 + 0.01 * i)))))
            else:
                clean.append((chat, emu.post_photo(chat, g.member, jpeg(other_photo, 70 + i))))
        emu.hang_uploads = False
        await emu.wait_for(lambda: emu.hanging == 1, timeout=90)
        assert len(emu.calls_to("deleteMessage")) >= 1  # the hits before it were handled
        await asyncio.to_thread(proc.kill)
        emu.release.set()
        proc.start()
        for chat, mid in hits:
            await emu.wait_for(lambda: not g.present(chat, mid), timeout=90)
        await emu.wait_for(lambda: all_finished(tmp_path, 12), timeout=90)
        assert await asyncio.to_thread(proc.terminate, 30) == 0
    finally:
        if proc.proc and proc.proc.poll() is None:
            proc.kill()
    assert all(g.present(chat, mid) for chat, mid in clean)
    assert [g.delete_attempts(mid) for _, mid in hits] == [1] * len(hits)
    assert len(g.alerts(g.owner)) == len(hits) and len(g.alerts(g.admin)) == len(hits)
    db = sqlite3.connect(tmp_path / "data" / "vigil.sqlite3")
    try:
        scans = db.execute(
            "SELECT chat_id, message_id, count(*) FROM audit WHERE kind = 'scan' GROUP BY 1, 2"
        ).fetchall()
    finally:
        db.close()
    assert len(scans) == 12 and all(n == 1 for _, _, n in scans)


# --- logs ------------------------------------------------------------------------------------------------


def png_with_metadata(text: str) -> bytes:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Description", text)
    exif = Image.Exif()
    exif[0x013B] = text  # Artist
    exif[0x010E] = text  # ImageDescription
    buf = io.BytesIO()
    Image.new("RGB", (400, 300), (120, 160, 200)).save(buf, "PNG", pnginfo=info, exif=exif)
    return buf.getvalue()


async def test_debug_logs_carry_no_image_metadata_and_no_token(emu, tmp_path, marker_model, monkeypatch):
    g = Groups(emu)
    cfg = config(tmp_path, emu, marker_model)
    settings = load_config(cfg, env={"VIGIL_TELEGRAM_TOKEN": TOKEN})
    stream = io.StringIO()
    root = logging.getLogger()
    names = ("vigil", "detectors", "PIL", "telegram", "nio", "aiosqlite", "httpx", "httpcore", "aiohttp.client")
    saved = (root.handlers[:], root.level, {n: logging.getLogger(n).level for n in names})
    monkeypatch.setattr(sys, "stderr", stream)
    secret = "Lucia Garcia at the pool 600123456"
    setup_logging(dataclasses.replace(settings, log_level="DEBUG"))
    try:
        async with running_vigil(cfg):
            doc = emu.post_document(g.a, g.member, png_with_metadata(secret), file_name="p.png", mime="image/png")
            await emu.wait_for(lambda: all_finished(tmp_path), timeout=30)
            logging.getLogger("vigil.test").debug("a download link %s/file/bot%s/documents/x.png", emu.url, TOKEN)
            logging.getLogger("vigil.test").info("removed mxc://example.org/AbCdEf123 from the room")
            assert logging.getLogger("vigil").isEnabledFor(logging.DEBUG)
    finally:
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])
        for name, level in saved[2].items():
            logging.getLogger(name).setLevel(level)
    log = stream.getvalue()
    assert f"message {doc}" in log  # DEBUG was on and Vigil logged the image's outcome
    assert "a download link" in log and "mxc://<media>" in log
    for leak in (secret, "pool 600123456", TOKEN, TOKEN.split(":")[1], "AbCdEf123"):
        assert leak not in log
    assert "TelegramConfig" in repr(settings.telegram) and TOKEN not in repr(settings)


# --- hostile files -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_vigil_scan_answers_every_hostile_file(tmp_path):
    folder = tmp_path / "hostile"
    names = write_hostile_folder(folder)
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "scan", "--json", "--workers", "2", str(folder)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    answers = {Path(item["path"]).name: item for item in map(json.loads, proc.stdout.splitlines())}
    assert sorted(answers) == sorted(names)
    # deep-colour pictures at the pixel limit are refused from the header, by decoded size
    for name in ("png_rgba_8bit_6300.png", "tiff_float32_6300.tif", "tiff_int32_6300.tif", "tiff_rgba_6300.tif"):
        assert "once decoded" in answers[name]["error"]
    # those under the decoded-bytes limit are checked
    for name in ("png_rgba_8bit_5600.png", "png_grey_16bit_6300.png", "tiff_int16_6300.tif", "gif_5000_frames.gif"):
        assert answers[name].get("label") == "clean", answers[name]
