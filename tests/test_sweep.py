"""The sweep (bot/sweep.py) end to end, through the real Telegram adapter and the Bot API emulator:
a copy posted before the /block is deleted, a fake posted before its source photo is protected is
found in another group, the window keeps nothing when off and nothing older than itself, and
`vigil purge --user` removes a person's rows."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from PIL import Image

from bot.cli.purge import purge
from bot.config import load_config
from tests.support import transforms as tf
from tests.support.botapi import BotApiEmulator
from tests.support.decided import telegram_decided, verdicts
from tests.support.vigil_harness import TOKEN, jpeg, running_vigil, write_config
from tests.test_protect import _protect
from tests.test_telegram import Group, no_image_anywhere, wait_deleted

T = "telegram"
BLOCK_SUMMARY = ("earlier copy of the newly blocked image was removed", "copia anterior de la imagen recién bloqueada")


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    return tf.photos()


def smaller(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    return np.asarray(Image.fromarray(rgb).resize((w * 3 // 4, h * 3 // 4)))


def said(emu: BotApiEmulator, user: int, *texts: str) -> list[str]:
    return [m.get("text", "") for m in emu.sent_to(user) if any(t in m.get("text", "") for t in texts)]


async def swept(app) -> None:
    """Until the store's list change log is applied here and every sweep it started is done."""
    await app.core.sync_lists()
    await app.core.sweeper.idle()


async def test_a_copy_posted_before_the_block_is_deleted_by_the_sweep(emu, tmp_path, marker_model, other_photo):
    g = Group(emu)
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)) as app:
        copy = emu.post_photo(g.chat, g.member, jpeg(smaller(other_photo), 60))
        assert verdicts(await telegram_decided(app, emu, g.chat, copy)) == ["allow"]
        kept = await app.store.seen_image(T, g.chat, copy)
        assert kept is not None and kept.sender_id == str(g.member) and kept.frames[0].pdq
        original = emu.post_photo(g.chat, g.member, jpeg(other_photo, 92))
        await telegram_decided(app, emu, g.chat, original)
        emu.post_text(g.chat, g.owner, "/block", reply_to=original)
        await wait_deleted(g, original)
        await wait_deleted(g, copy, timeout=30)  # the earlier copy, found in the window
        await swept(app)
        # handled as if just posted: a scan record that deleted it, one alert per admin
        records = await telegram_decided(app, emu, g.chat, copy, scans=2)
        assert verdicts(records) == ["allow", "delete"]
        assert records[-1].findings["lists"][0]["kind"] == "block"
        await emu.wait_for(lambda: said(emu, g.owner, *BLOCK_SUMMARY) and said(emu, g.admin, *BLOCK_SUMMARY))
        assert "1 earlier copy of the newly blocked image was removed." in said(emu, g.owner, *BLOCK_SUMMARY)[0]
        assert len(said(emu, g.owner, *BLOCK_SUMMARY)) == 1
        assert len(g.alerts(g.owner)) == 1 and len(g.alerts(g.admin)) == 1  # the copy's; none for the original
        assert sorted(int(c.params["message_id"]) for c in emu.calls_to("deleteMessage")) == sorted([original, copy])
        no_image_anywhere(emu)


async def test_a_fake_posted_in_another_group_before_the_photo_is_protected_is_found(
    emu, tmp_path, marker_model, photos
):
    g = Group(emu)  # where the fake was posted
    victim = emu.add_user("Irene", username="irene", language_code="en")
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)) as app:
        fake = tf.undress_like(photos["chelsea"], region="centre", share=0.35, fill="noise")
        mid = emu.post_photo(g.chat, g.member, jpeg(fake, 85))
        assert verdicts(await telegram_decided(app, emu, g.chat, mid)) == ["allow"]
        assert g.alerts(g.owner) == []
        # Irene, who is not in that group, protects her photo privately
        emu.start_private(victim)
        await _protect(emu, victim, photos["chelsea"], notify=False)
        await app.core.protector.refresh()
        await app.core.sweeper.idle()
        # the fake is handled as if just posted: without nudity it goes to the admins for review
        records = await telegram_decided(app, emu, g.chat, mid, scans=2)
        assert verdicts(records) == ["allow", "review"]
        assert records[-1].findings["derived"][0]["match_fraction"] > 0
        await emu.wait_for(lambda: len(g.alerts(g.owner)) == 1)
        assert g.present(mid)
        review = ("earlier copy was sent to you for review",)
        await emu.wait_for(lambda: bool(said(emu, g.owner, *review)))
        # Irene is not a member: the alert does not name her
        assert "Irene" not in g.alerts(g.owner)[0]["text"]
        no_image_anywhere(emu)


async def test_window_zero_keeps_nothing_and_sweeps_nothing(emu, tmp_path, marker_model, other_photo):
    g = Group(emu)
    cfg = write_config(tmp_path, emu.url, marker_model, extra="[sweep]\nwindow_hours = 0\n")
    async with running_vigil(cfg) as app:
        copy = emu.post_photo(g.chat, g.member, jpeg(smaller(other_photo), 60))
        await telegram_decided(app, emu, g.chat, copy)
        assert await app.store.seen_count() == (0, 0)
        original = emu.post_photo(g.chat, g.member, jpeg(other_photo, 92))
        emu.post_text(g.chat, g.owner, "/block", reply_to=original)
        await wait_deleted(g, original)
        await swept(app)
        assert app.core.sweeper.done == []
        assert g.present(copy)
        assert await app.store.seen_count() == (0, 0)


async def test_an_image_older_than_the_window_is_not_swept(emu, tmp_path, marker_model, other_photo):
    g = Group(emu)
    cfg = write_config(tmp_path, emu.url, marker_model, extra="[sweep]\nwindow_hours = 2\n")
    async with running_vigil(cfg) as app:
        old = emu.post_photo(g.chat, g.member, jpeg(smaller(other_photo), 60))
        await telegram_decided(app, emu, g.chat, old)
        recent = emu.post_photo(g.chat, g.member, jpeg(smaller(other_photo), 70))
        await telegram_decided(app, emu, g.chat, recent)
        # the first was seen three hours ago (beyond the 2-hour window)
        then = (datetime.now(UTC) - timedelta(hours=3)).isoformat(timespec="microseconds")
        with sqlite3.connect(tmp_path / "data" / "vigil.sqlite3") as db:
            db.execute("UPDATE seen_images SET seen_at = ? WHERE message_id = ?", (then, str(old)))
        original = emu.post_photo(g.chat, g.member, jpeg(other_photo, 92))
        await telegram_decided(app, emu, g.chat, original)
        emu.post_text(g.chat, g.owner, "/block", reply_to=original)
        await wait_deleted(g, original)
        await wait_deleted(g, recent, timeout=30)
        await swept(app)
        assert [r.looked for r in app.core.sweeper.done] == [2]  # the recent copy and the original
        assert g.present(old)
        assert (await app.retention.run_once()).seen == 1
        assert await app.store.seen_image(T, g.chat, old) is None  # pruned by the retention pass


async def test_a_copy_too_old_for_the_platform_to_delete_is_reported_not_deleted(
    emu, tmp_path, marker_model, other_photo
):
    g = Group(emu)
    cfg = write_config(tmp_path, emu.url, marker_model, extra="[sweep]\nwindow_hours = 72\n")
    async with running_vigil(cfg) as app:
        copy = emu.post_photo(g.chat, g.member, jpeg(smaller(other_photo), 60))
        await telegram_decided(app, emu, g.chat, copy)
        then = (datetime.now(UTC) - timedelta(hours=50)).isoformat(timespec="microseconds")
        with sqlite3.connect(tmp_path / "data" / "vigil.sqlite3") as db:
            db.execute("UPDATE seen_images SET posted_at = ? WHERE message_id = ?", (then, str(copy)))
        original = emu.post_photo(g.chat, g.member, jpeg(other_photo, 92))
        emu.post_text(g.chat, g.owner, "/block", reply_to=original)
        await wait_deleted(g, original)
        await swept(app)
        note = ("older than the 48 hours",)
        await emu.wait_for(lambda: bool(said(emu, g.owner, *note)))
        assert g.present(copy)
        assert app.core.sweeper.done[-1].too_old[(T, str(g.chat))] == 1


async def test_purge_user_removes_their_rows_of_the_window(emu, tmp_path, marker_model, photo, other_photo):
    g = Group(emu)
    other = emu.add_user("Noa", username="noa")
    emu.add_member(g.chat, other)
    cfg = write_config(tmp_path, emu.url, marker_model)
    async with running_vigil(cfg) as app:
        mine = emu.post_photo(g.chat, g.member, jpeg(photo))
        theirs = emu.post_photo(g.chat, other, jpeg(other_photo))
        await telegram_decided(app, emu, g.chat, mine, theirs)
        assert await app.store.seen_count() == (2, 2)
    config = load_config(cfg, env={"VIGIL_TELEGRAM_TOKEN": TOKEN})
    removed = (await purge(config, T, str(g.member))).seen
    assert removed == 1
    async with running_vigil(cfg) as app:
        assert await app.store.seen_image(T, g.chat, mine) is None
        assert await app.store.seen_image(T, g.chat, theirs) is not None


@pytest.mark.synapse
async def test_matrix_a_copy_posted_before_the_block_is_redacted_by_the_sweep(
    synapse, marker_model, tmp_path, other_photo
):
    from tests.support.matrix_harness import (
        Inbox,
        matrix_env,
        new_user,
        people,
        protected_room,
        running_matrix_vigil,
        wait_redacted,
        write_matrix_config,
    )
    from tests.test_matrix import checked

    bot = new_user(synapse, "vigil")
    cfg = write_matrix_config(tmp_path, synapse, bot, marker_model)
    async with (
        running_matrix_vigil(cfg, matrix_env(bot)) as app,
        people(synapse, "owner", "member") as (
            owner,
            member,
        ),
    ):
        room = await protected_room(owner, bot.user_id, members=[member])
        copy = await member.send_image(room.room_id, jpeg(smaller(other_photo), 60), "image/jpeg")
        await checked(app, copy)
        assert await app.store.seen_image("matrix", room.room_id, copy) is not None
        original = await member.send_image(room.room_id, jpeg(other_photo, 92), "image/jpeg")
        await checked(app, original)
        await owner.reply(room.room_id, original, "!vigil block")
        await wait_redacted(owner, room.room_id, original)
        await wait_redacted(owner, room.room_id, copy)  # found in the window
        await swept(app)
        inbox = Inbox(owner, bot.user_id)
        await inbox.wait(lambda i: any(BLOCK_SUMMARY[0] in t for t in i.texts()))
        await inbox.wait(lambda i: len(i.alerts()) == 1)  # the copy's alert, once


def test_the_hash_prefilter_passes_over_no_image_the_list_matcher_would_match():
    import random as rnd_module

    from bot.lists import HashLists, ListInfo
    from bot.store.records import FrozenJSON
    from bot.store.seen import SeenFrame, SeenImage
    from bot.sweep import EntryCodes, match_entries
    from detectors.matching import EntryHashes

    rnd = rnd_module.Random(3)

    def flip(code: str, bits: int) -> str:
        value = int(code, 16)
        for b in rnd.sample(range(len(code) * 4), bits):
            value ^= 1 << b
        return f"{value:0{len(code)}x}"

    entries = [
        EntryHashes(
            i, 1, f"{rnd.getrandbits(256):064x}", 90, f"{rnd.getrandbits(64):016x}", f"{rnd.getrandbits(256):064x}"
        )
        for i in range(1, 6)
    ]
    lists = HashLists(local=False)
    lists.set_list(ListInfo(1, "block", "block", "delete"))
    lists.add_many(entries)
    images = []
    for n in range(400):
        e = entries[n % len(entries)]
        pdq = flip(e.pdq, rnd.choice([0, 10, 31, 32, 60, 128]))
        phash = flip(e.phash, rnd.choice([0, 4, 8, 9, 30]))
        quality = rnd.choice([90, 20])
        sha = e.sha256 if n % 97 == 0 else None
        frame = SeenFrame(0, pdq, quality, phash)
        images.append(
            SeenImage(n + 1, T, "-1", str(n), "", "7", "2026-01-01T00:00:00+00:00", "", sha, (frame,), FrozenJSON())
        )
    batch = [(image, frozenset({1}), 31, 50) for image in images]
    codes = EntryCodes.of(entries)
    assert codes is not None
    plain = match_entries(lists, batch)
    assert match_entries(lists, batch, codes) == plain
    assert 0 < len(plain) < len(images)


async def test_an_operator_adding_to_a_followed_instance_list_sweeps_the_group(
    emu, tmp_path, marker_model, photo, other_photo
):
    """`vigil hash follow` and `vigil hash add` from another process: the running bot learns of the
    new entry from the store's change log and sweeps the group that follows the list."""
    import asyncio
    import sys

    g = Group(emu)
    cfg = write_config(tmp_path, emu.url, marker_model)

    async def vigil_hash(*args: str) -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "hash",
            *args,
            "--config",
            str(cfg),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await proc.communicate()
        assert proc.returncode == 0, out.decode()

    async with running_vigil(cfg) as app:
        copy = emu.post_photo(g.chat, g.member, jpeg(smaller(other_photo), 60))
        assert verdicts(await telegram_decided(app, emu, g.chat, copy)) == ["allow"]
        first, image = tmp_path / "first.jpg", tmp_path / "blocked.jpg"
        first.write_bytes(jpeg(photo, 92))
        image.write_bytes(jpeg(other_photo, 92))
        await vigil_hash("add", str(first), "--list", "shared-fakes")  # the list, with another image
        await vigil_hash("follow", "shared-fakes", "--group", f"telegram:{g.chat}")
        await vigil_hash("add", str(image), "--list", "shared-fakes")
        await wait_deleted(g, copy, timeout=30)
        await swept(app)
        records = await telegram_decided(app, emu, g.chat, copy, scans=2)
        assert verdicts(records) == ["allow", "delete"]
        assert records[-1].findings["lists"][0]["list"] == "shared-fakes"
