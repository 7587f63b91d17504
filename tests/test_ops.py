"""Operations: the health, readiness and metrics endpoint, logs, SIGTERM, retention, purge, backup.

Real parts throughout: the real python-telegram-bot against the Bot API emulator, real SQLite
files, real HTTP to the ops endpoint on 127.0.0.1, `vigil` run as its own process.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import io
import json
import logging
import socket
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.__main__ import main as vigil_main
from bot.app import App, setup_logging
from bot.config import RetentionConfig, load_config
from bot.errors import ConfigError
from bot.metrics import Metrics
from bot.ops import main as probe_main
from bot.ops import readiness
from bot.retention import RetentionJob, apply_retention
from bot.store import Store
from tests.support.botapi import BotApiEmulator
from tests.support.decided import decided, telegram_decided
from tests.support.marker_model import add_marker
from tests.support.vigil_harness import ROOT, TOKEN, VigilProcess, jpeg, running_vigil, write_config

T = "telegram"


class Group:
    """Owner and admin who started the bot, a member, and Vigil as an admin with every right."""

    def __init__(self, emu: BotApiEmulator) -> None:
        from tests.support.botapi import full_rights

        self.emu = emu
        self.owner = emu.add_user("Olivia", username="olivia")
        self.admin = emu.add_user("Ana", username="ana", language_code="es")
        self.member = emu.add_user("Max", username="max")
        self.chat = emu.add_group(
            "Year 9 parents", creator=self.owner, admins=[self.admin], members=[self.member], bot_rights=full_rights()
        )
        emu.start_private(self.owner)
        emu.start_private(self.admin)

    def present(self, message_id: int) -> bool:
        return any(m["message_id"] == message_id for m in self.emu.messages_in(self.chat))

    def alerts(self, user: int) -> list[dict]:
        return [m for m in self.emu.sent_to(user) if "details:" in json.dumps(m.get("reply_markup") or {})]

    def deletes(self, message_id: int) -> int:
        """Delete calls that named one message (deleteMessage or deleteMessages), failed ones too."""
        return self.emu.deletes_of(self.chat, message_id)


async def get(port: int, path: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}{path}") as r:
        return r.status, await r.text()


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text, None when absent."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None


async def wait_ready(port: int, want: int = 200, timeout: float = 20) -> dict:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        status, body = await get(port, "/readyz")
        if status == want:
            return json.loads(body)
        if loop.time() > end:
            raise AssertionError(f"/readyz stayed {status}: {body}")
        await asyncio.sleep(0.1)


async def wait_metric(port: int, name: str, total: float, timeout: float = 20) -> None:
    """Until the samples of ``name`` (all labels) add up to ``total``."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        _, text = await get(port, "/metrics")
        got = sum(s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name)
        if got == total:
            return
        if loop.time() > end:
            raise AssertionError(f"{name} stayed at {got}, not {total}")
        await asyncio.sleep(0.1)


# --- the endpoint ---------------------------------------------------------------------------


async def test_health_readiness_and_metrics_follow_a_moderation_flow(emu, tmp_path, marker_model, photo, other_photo):
    g = Group(emu)
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)) as app:
        port = app.ops.port
        assert port != 0
        assert await get(port, "/healthz") == (200, '{"alive": true}')
        body = await wait_ready(port)
        assert body["checks"] == {"models": "ok", "store": "ok", "platform:telegram": "ok", "indexes": "ok"}
        assert body["ready"] is True and body["index"]["lists"]["behind"] == 0  # each index's lag

        hit = emu.post_photo(g.chat, g.member, jpeg(add_marker(photo)))
        clean = emu.post_photo(g.chat, g.member, jpeg(other_photo))
        await emu.wait_for(lambda: not g.present(hit), timeout=20)
        await emu.wait_for(lambda: len(g.alerts(g.owner)) == 1 and len(g.alerts(g.admin)) == 1, timeout=20)
        await wait_metric(port, "vigil_images_scanned_total", 2)  # the clean one too, before /block
        emu.post_text(g.chat, g.owner, "/block", reply_to=clean)
        await emu.wait_for(lambda: not g.present(clean), timeout=20)

        status, text = await get(port, "/metrics")
        assert status == 200
        assert sample(text, "vigil_images_scanned_total", platform=T, outcome="nudity") == 1
        assert sample(text, "vigil_images_scanned_total", platform=T, outcome="clean") == 1
        assert sample(text, "vigil_hits_total", kind="nudity") == 1
        assert sample(text, "vigil_actions_total", action="delete", result="done") == 2  # the hit and the /block
        assert sample(text, "vigil_alerts_total", platform=T, result="sent") == 2
        assert sample(text, "vigil_scan_seconds_count") == 2
        assert sample(text, "vigil_queue_depth") == 0
        assert sample(text, "vigil_platform_connected", platform=T) == 1
        # /block put the image's hashes on the group's block list
        assert sample(text, "vigil_list_entries", kind="block", scope="group") >= 1
        assert sample(text, "vigil_lists", kind="block", scope="group") == 1
        assert sample(text, "vigil_retention_runs_total", result="ok") == 1  # the pass at start
        assert sample(text, "vigil_index_lag_changes", log="lists") is not None  # the index's lag, read at scrape
        assert sample(text, "vigil_index_waits_given_up") == 0
        # counts and kinds only: no chat, user or message id in any label
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                assert not {str(g.chat), str(g.member), str(hit)} & set(s.labels.values())
    assert app.ops._runner is None  # the endpoint closed with the app


async def test_readyz_turns_unready_while_telegram_fails_and_recovers(emu, tmp_path, marker_model):
    Group(emu)
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)) as app:
        port = app.ops.port
        await wait_ready(port)
        emu.fail_next("getUpdates", times=3, status=500)
        body = await wait_ready(port, want=503)
        assert body["ready"] is False
        assert body["checks"]["platform:telegram"] == "not connected"
        assert body["checks"]["models"] == "ok" and body["checks"]["store"] == "ok"
        _, text = await get(port, "/metrics")
        assert sample(text, "vigil_platform_connected", platform=T) == 0
        assert (await get(port, "/healthz"))[0] == 200  # alive all along
        await wait_ready(port, timeout=30)  # the failures pass and polling resumes


async def test_readiness_names_what_is_missing():
    class Closed:
        async def schema_version(self) -> int:
            raise RuntimeError("closed")

    starting = await readiness(type("A", (), {"core": None, "store": None})())
    assert not starting.ready
    assert starting.checks == {"models": "loading", "store": "not open"}
    broken = await readiness(type("A", (), {"core": None, "store": Closed(), "stopping": True})())
    assert broken.checks == {"vigil": "stopping", "models": "loading", "store": "error: RuntimeError"}


async def test_endpoint_off_and_a_taken_port_is_refused_by_name(emu, tmp_path, marker_model):
    cfg = write_config(tmp_path, emu.url, marker_model)
    config = load_config(cfg, env={"VIGIL_TELEGRAM_TOKEN": TOKEN, "VIGIL_OPS_LISTEN": ""})
    app = App(config)
    await app.start()
    try:
        assert app.ops is None
    finally:
        await app.stop()

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = App(load_config(cfg, env={"VIGIL_TELEGRAM_TOKEN": TOKEN, "VIGIL_OPS_LISTEN": f"127.0.0.1:{port}"}))
        with pytest.raises(ConfigError) as err:
            await busy.start()
        assert err.value.key == "ops.listen" and str(port) in str(err.value)
        assert busy.store is None  # refused before anything was opened


async def test_the_probe_the_image_uses(emu, tmp_path, marker_model, capsys):
    Group(emu)
    cfg = write_config(tmp_path, emu.url, marker_model)
    async with running_vigil(cfg) as app:
        await wait_ready(app.ops.port)
        probe_cfg = tmp_path / "probe.toml"
        probe_cfg.write_text(f'[ops]\nlisten = "0.0.0.0:{app.ops.port}"\n')  # 0.0.0.0 is probed on loopback
        assert await asyncio.to_thread(probe_main, ["--config", str(probe_cfg)]) == 0
        assert await asyncio.to_thread(probe_main, ["--config", str(probe_cfg), "--path", "/readyz"]) == 0
    assert await asyncio.to_thread(probe_main, ["--config", str(probe_cfg)]) == 1  # nothing listens now
    assert "no answer" in capsys.readouterr().out
    off = tmp_path / "off.toml"
    off.write_text('[ops]\nlisten = ""\n')
    assert probe_main(["--config", str(off)]) == 0
    bad = tmp_path / "bad.toml"
    bad.write_text('[ops]\nlistne = "x"\n')
    assert probe_main(["--config", str(bad)]) == 1
    assert "ops.listne" in capsys.readouterr().err


def test_each_app_counts_in_its_own_registry():
    a, b = Metrics(), Metrics()
    a.action("delete", "done")
    a.alert(T, "unreachable")
    assert a.registry.get_sample_value("vigil_actions_total", {"action": "delete", "result": "done"}) == 1
    assert a.registry.get_sample_value("vigil_alert_failures_total", {"platform": T}) == 1
    assert b.registry.get_sample_value("vigil_actions_total", {"action": "delete", "result": "done"}) is None


# --- logs -----------------------------------------------------------------------------------------


async def test_logs_name_chats_and_messages_but_never_image_bytes_or_message_text(
    emu, tmp_path, marker_model, photo, other_photo, monkeypatch
):
    g = Group(emu)
    cfg = write_config(tmp_path, emu.url, marker_model)
    config = load_config(cfg, env={"VIGIL_TELEGRAM_TOKEN": TOKEN})
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (
        root.handlers[:],
        root.level,
        {n: logging.getLogger(n).level for n in ("telegram", "nio", "aiosqlite", "httpx", "httpcore")},
    )
    monkeypatch.setattr(sys, "stderr", stream)
    # DEBUG, the most talkative level an operator can choose
    setup_logging(dataclasses.replace(config, log_level="DEBUG", log_format="json"))
    hit_bytes, clean_bytes = jpeg(add_marker(photo)), jpeg(other_photo)
    caption, text = "Lucia at the pool party, do not share", "my phone number is 600 123 456"
    try:
        async with running_vigil(cfg) as app:
            hit = emu.post_photo(g.chat, g.member, hit_bytes, caption=caption)
            clean = emu.post_photo(g.chat, g.member, clean_bytes, caption=caption)
            emu.post_text(g.chat, g.member, text)
            await emu.wait_for(lambda: not g.present(hit), timeout=20)
            await emu.wait_for(lambda: len(g.alerts(g.owner)) == 1 and len(g.alerts(g.admin)) == 1, timeout=20)
            await emu.wait_for(lambda: f"message {hit}: nudity" in stream.getvalue(), timeout=20)
            await telegram_decided(app, emu, g.chat, hit, clean)  # both logged all they will log
            assert logging.getLogger("vigil").isEnabledFor(logging.DEBUG)  # DEBUG was really on
            assert not logging.getLogger("telegram.ext").isEnabledFor(logging.DEBUG)
    finally:
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])
        for name, level in saved[2].items():
            logging.getLogger(name).setLevel(level)
    log = stream.getvalue()
    lines = [json.loads(line) for line in log.splitlines() if line.strip()]
    assert len(lines) >= 3, log
    # useful: the hit's line names the chat and the message
    assert any(str(g.chat) in line["message"] and str(hit) in line["message"] for line in lines)
    # private: no caption, no message text, no token, no image bytes in any encoding
    for secret in (caption, "pool party", text, "600 123 456", TOKEN):
        assert secret not in log
    for data in (hit_bytes, clean_bytes):
        for chunk in (data[200:248], data[-64:-16]):
            assert base64.b64encode(chunk).decode() not in log
            assert chunk.hex() not in log
            assert repr(chunk)[2:40] not in log
            assert chunk.decode("latin-1") not in log
    assert "\\xff\\xd8" not in log and "ÿØ" not in log


# --- SIGTERM ---------------------------------------------------------------------------------------


@pytest.mark.slow
async def test_sigterm_during_a_burst_then_restart_loses_nothing_and_repeats_nothing(
    emu, tmp_path, marker_model, photo, other_photo
):
    g = Group(emu)
    proc = VigilProcess(write_config(tmp_path, emu.url, marker_model), tmp_path / "vigil.log")
    proc.start()
    try:
        await emu.wait_for(lambda: len(emu.calls_to("getUpdates")) >= 1, timeout=60)
        hits, clean = [], []
        for i in range(12):
            base = photo if i % 2 else other_photo
            if i % 3 == 0:
                hits.append(emu.post_photo(g.chat, g.member, jpeg(add_marker(base, 0.2 + 0.01 * i))))
            else:
                clean.append(emu.post_photo(g.chat, g.member, jpeg(base, 70 + i)))
        await emu.wait_for(lambda: len(emu.calls_to("getFile")) >= 2, timeout=60)
        assert await asyncio.to_thread(proc.terminate, 30) == 0  # a clean exit, within the bound
        assert "stopping" in proc.log()
        proc.start()
        for mid in hits:
            await emu.wait_for(lambda: not g.present(mid), timeout=90)
        await emu.wait_for(lambda: emu.pending_updates() == 0, timeout=60)
        await emu.wait_for(
            lambda: len(g.alerts(g.owner)) >= len(hits) and len(g.alerts(g.admin)) >= len(hits), timeout=60
        )
        # Vigil's own record, read from its store file: every image decided and finished (a repeat
        # would be sent before its item finished)
        store = await Store.open(tmp_path / "data" / "vigil.sqlite3")
        try:
            await decided(store, T, g.chat, hits + clean, timeout=60)
        finally:
            await store.close()
        assert all(g.present(mid) for mid in clean)
        assert [g.deletes(mid) for mid in hits] == [1] * len(hits)
        assert len(g.alerts(g.owner)) == len(hits) and len(g.alerts(g.admin)) == len(hits)
        assert await asyncio.to_thread(proc.terminate, 30) == 0
    finally:
        if proc.proc and proc.proc.poll() is None:
            proc.kill()


# --- retention ---------------------------------------------------------------------------------------


NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
PDQ = "f" * 64


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


async def scan_record(store: Store, sender: str, message: str, hashes: bool = True) -> int:
    return await store.add_audit(
        platform=T,
        chat_id="-100",
        message_id=message,
        sender_id=sender,
        kind="scan",
        label="nudity",
        findings={"nudity": [{"class": "FEMALE_BREAST_EXPOSED", "score": 0.9}]},
        hashes={"pdq": PDQ, "sha256": "a" * 64} if hashes else {},
        decision="delete",
    )


async def test_retention_deletes_exactly_what_is_old(tmp_path):
    clock = Clock()
    store = await Store.open(tmp_path / "vigil.sqlite3", clock=clock)
    try:
        lst = await store.group_list(T, "-100", "block")
        ages = {"ancient": 400, "old": 200, "middle": 100, "recent": 10, "today": 0}
        ids = {}
        for name, days in ages.items():
            clock.now = NOW - timedelta(days=days)
            ids[name] = await scan_record(store, "7", name)
        clock.now = NOW - timedelta(days=400)
        entry = await store.add_entry(lst.id, pdq=PDQ, added_by="1")  # list entries are not records
        work = {}
        for name, days in (("done_long_ago", 30), ("done_lately", 2)):
            clock.now = NOW - timedelta(days=days)
            work[name] = await store.enqueue_work(T, "-100", name, {"file_id": "x"})
            await store.finish_work(work[name])
            action = await store.record_action(T, "-100", name, "delete")
            await store.action_done(action.id)
        clock.now = NOW - timedelta(days=30)
        work["pending"] = await store.enqueue_work(T, "-100", "pending", {"file_id": "y"})
        pending_action = await store.record_action(T, "-100", "pending", "delete")
        clock.now = NOW

        settings = RetentionConfig(audit_days=180, fingerprint_days=90, work_days=7)
        result = await apply_retention(store, settings, NOW)
        assert (result.audit, result.fingerprints, result.work, result.actions) == (2, 1, 1, 1)

        assert await store.audit_record(ids["ancient"]) is None and await store.audit_record(ids["old"]) is None
        middle = await store.audit_record(ids["middle"])
        assert middle is not None and dict(middle.hashes) == {}  # kept, without the fingerprints
        assert middle.findings["nudity"][0]["score"] == 0.9
        for name in ("recent", "today"):
            assert dict((await store.audit_record(ids[name])).hashes) == {"pdq": PDQ, "sha256": "a" * 64}
        assert [e.id for e in await store.entries(lst.id)] == [entry.id]
        assert await store.work_item(work["done_long_ago"]) is None
        assert await store.work_item(work["done_lately"]) is not None
        assert [w.id for w in await store.pending_work()] == [work["pending"]]  # unfinished work is never pruned
        assert [a.id for a in await store.pending_actions()] == [pending_action.id]

        assert (await apply_retention(store, settings, NOW)).total == 0  # nothing left to do
        keep_all = await apply_retention(store, RetentionConfig(0, 0, 0), NOW + timedelta(days=3650))
        assert keep_all.total == 0 and await store.audit_record(ids["today"]) is not None
    finally:
        await store.close()


async def test_the_retention_job_runs_at_start_and_counts(tmp_path):
    clock = Clock()
    store = await Store.open(tmp_path / "vigil.sqlite3", clock=clock)
    metrics = Metrics()
    job = RetentionJob(
        store,
        RetentionConfig(audit_days=30, fingerprint_days=10, work_days=7),
        metrics=metrics,
        interval=3600,
        clock=lambda: NOW,
    )
    try:
        clock.now = NOW - timedelta(days=60)
        await scan_record(store, "7", "a")
        clock.now = NOW - timedelta(days=20)
        await scan_record(store, "7", "b")
        job.start()
        for _ in range(200):
            if job.last is not None:
                break
            await asyncio.sleep(0.02)
        assert job.last is not None and (job.last.audit, job.last.fingerprints) == (1, 1)
        r = metrics.registry
        assert r.get_sample_value("vigil_retention_deleted_total", {"kind": "audit"}) == 1
        assert r.get_sample_value("vigil_retention_deleted_total", {"kind": "fingerprints"}) == 1
        assert r.get_sample_value("vigil_retention_runs_total", {"result": "ok"}) == 1
    finally:
        await job.stop()
        await store.close()
    with pytest.raises(Exception):  # noqa: B017 (which error a closed store raises is the driver's choice)
        await job.run_once()  # the store is closed: a failed pass is counted, not hidden
    assert metrics.registry.get_sample_value("vigil_retention_runs_total", {"result": "error"}) == 1


# --- purge and backup ------------------------------------------------------------------------------


def cli_config(tmp_path: Path) -> Path:
    cfg = tmp_path / "cli.toml"
    cfg.write_text(f'[vigil]\ndata_dir = "{tmp_path / "data"}"\n')
    (tmp_path / "data").mkdir(exist_ok=True)
    return cfg


async def test_purge_removes_a_persons_records_and_hashes_and_nothing_else(tmp_path, capsys):
    cfg = cli_config(tmp_path)
    store = await Store.open(tmp_path / "data" / "vigil.sqlite3")
    try:
        lst = await store.group_list(T, "-100", "block")
        for user, n in (("7", 1), ("8", 2)):
            await scan_record(store, user, f"m{user}")
            await store.set_contact(T, user, can_dm=True, display_name=f"user {user}")
            await store.add_entry(lst.id, sha256=f"{n}" * 64, added_by=user, source_platform=T, source_chat="-100")
        await store.set_contact("matrix", "7", can_dm=True)  # the same id on Matrix is someone else
    finally:
        await store.close()

    assert await asyncio.to_thread(vigil_main, ["purge", "--user", "7", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "purged telegram user 7: 3 rows (audit 1, contacts 1, exemptions 0, entries 1," in out
    assert "stops matching the removed list entries" in out  # the running bot follows the change log

    with sqlite3.connect(tmp_path / "data" / "vigil.sqlite3") as c:
        assert c.execute("SELECT sender_id FROM audit").fetchall() == [("8",)]
        assert c.execute("SELECT added_by, sha256 FROM entries").fetchall() == [("8", "2" * 64)]
        assert sorted(c.execute("SELECT platform, user_id FROM contacts").fetchall()) == [("matrix", "7"), (T, "8")]
        assert c.execute("SELECT count(*) FROM audit WHERE hashes LIKE ?", (f"%{PDQ}%",)).fetchone() == (1,)
    assert await asyncio.to_thread(vigil_main, ["purge", "--user", "7", "--config", str(cfg)]) == 0
    assert ": 0 rows" in capsys.readouterr().out


async def test_backup_while_the_bot_writes_gives_a_sound_database(tmp_path):
    cfg = cli_config(tmp_path)
    store = await Store.open(tmp_path / "data" / "vigil.sqlite3")
    written = 0
    stop = asyncio.Event()

    async def writer() -> None:
        nonlocal written
        while not stop.is_set():
            await scan_record(store, str(written % 50), f"m{written}")
            written += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(writer())
    try:
        while written < 200:
            await asyncio.sleep(0.01)
        dest = tmp_path / "backups" / "vigil-backup.sqlite3"
        dest.parent.mkdir()
        before = written
        # `vigil backup` as its own process, as an operator runs it beside the bot
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "bot", "backup", str(dest), "--config", str(cfg)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        during = written
    finally:
        stop.set()
        await task
        await store.close()
    assert done.returncode == 0, done.stderr
    assert "integrity ok" in done.stdout
    assert during > before >= 200  # the bot kept writing while the backup ran
    with sqlite3.connect(dest) as c:
        assert c.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        copied = c.execute("SELECT count(*) FROM audit").fetchone()[0]
    assert before <= copied <= during
    assert oct(dest.stat().st_mode & 0o777) == "0o600"  # as private as the database
    copy = await Store.open(dest)  # a Vigil store opens it as it is
    try:
        assert len(await copy.audit_for_group(T, "-100")) == copied
    finally:
        await copy.close()


def test_backup_and_purge_refuse_a_missing_database(tmp_path, capsys):
    cfg = tmp_path / "cli.toml"
    cfg.write_text(f'[vigil]\ndata_dir = "{tmp_path / "nothing"}"\n')
    assert vigil_main(["backup", str(tmp_path / "b.sqlite3"), "--config", str(cfg)]) == 2
    assert "no database at" in capsys.readouterr().err
    assert vigil_main(["purge", "--user", "7", "--config", str(cfg)]) == 2
    assert "no database at" in capsys.readouterr().err
    assert not (tmp_path / "nothing").exists() and not (tmp_path / "b.sqlite3").exists()  # nothing created
    with pytest.raises(SystemExit):
        vigil_main(["purge", "--user", "7", "--platform", "irc", "--config", str(cfg)])
