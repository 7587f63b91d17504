"""Matrix moderation end to end: Vigil on matrix-nio against a real Synapse on loopback.

Most tests share one running Vigil (module scope) and make their own people and rooms; the
restart test runs `vigil run` as a process and kills it; the mixed test serves a Telegram
emulator group and a Synapse room from one process. Pure helpers are tested at the end.
"""

from __future__ import annotations

import asyncio
import math
import re
import time

import numpy as np
import pytest
import pytest_asyncio
from PIL import Image

from bot.events import ChatRef
from bot.platforms.base import Button, OutgoingMessage
from bot.platforms.matrix_events import media_ref, parse_command, posted_media, render
from bot.platforms.matrix_power import room_power
from bot.store import Store
from tests.support.botapi import BotApiEmulator, full_rights
from tests.support.decided import decided
from tests.support.detector_images import file_images
from tests.support.imagegen import mp4_bytes, png_bytes
from tests.support.marker_model import add_marker
from tests.support.matrix_client import HumanClient
from tests.support.matrix_harness import (
    Inbox,
    MatrixVigilProcess,
    matrix_env,
    new_user,
    people,
    protected_room,
    running_matrix_vigil,
    undecrypted,
    wait_redacted,
    write_matrix_config,
)
from tests.support.vigil_harness import TOKEN, jpeg

pytestmark = pytest.mark.synapse
# the async tests share the module's event loop with the shared Vigil
shared_loop = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def vigil(synapse, marker_model, tmp_path_factory):
    """One Vigil for the module's shared tests: default settings, no Synapse admin token."""
    bot = new_user(synapse, "vigil")
    cfg = write_matrix_config(tmp_path_factory.mktemp("vigil"), synapse, bot, marker_model)
    async with running_matrix_vigil(cfg, matrix_env(bot)) as app:
        app.bot = bot  # type: ignore[attr-defined]
        yield app


def bot_of(app) -> str:
    return app.bot.user_id


def choice(body: str, prefix: str) -> tuple[str | None, str]:
    """(reaction key, button data) of the choice whose data starts with ``prefix:`` in an alert."""
    for line in body.splitlines():
        m = re.search(r"!vigil (" + re.escape(prefix) + r":\S+)$", line)
        if m:
            key = line.split(" ", 1)[0]
            return (key if key != "•" else None), m.group(1)
    raise AssertionError(f"no {prefix}: choice in {body[-600:]!r}")


async def details_of(client: HumanClient, inbox: Inbox, dm: str, alert) -> str:
    """Asks for an alert's details (its Details choice, typed) and returns the second message's text."""
    _, data = choice(alert.body, "details")
    record = data.split(":", 1)[1]
    await client.send_text(dm, f"!vigil {data}")
    await inbox.wait(lambda i: any(f"!vigil export:{record}" in e.body for _, e in i.details()))
    return next(e.body for _, e in inbox.details() if f"!vigil export:{record}" in e.body)


async def bot_says(client: HumanClient, room_id: str, bot_id: str, words: str, timeout: float = 20) -> str:
    _, event = await client.sync_until(
        lambda r, e: r == room_id and getattr(e, "sender", None) == bot_id and words in (getattr(e, "body", "") or ""),
        timeout,
    )
    return event.body


async def checked(app, event_id: str, timeout: float = 30) -> None:
    """Until Vigil has received this message and finished with it (its work item left the store's inbox)."""
    platform = app.core.platforms["matrix"]
    for _ in range(int(timeout * 10)):
        if event_id in platform.timings:
            pending = await app.core.store.pending_work("matrix")
            if not any(item.message_id == event_id for item in pending):
                return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{event_id} is still being checked after {timeout} s")


def assert_no_image_sent(inbox: Inbox) -> None:
    """Vigil's private messages are text (and JSON evidence files): never the image or a link to it."""
    for _, event in inbox.messages:
        content = event.source.get("content", {})
        assert content.get("msgtype") in (None, "m.text", "m.notice", "m.file"), content.get("msgtype")
        if content.get("msgtype") == "m.file":
            assert content.get("filename", "").endswith(".json")
        else:
            assert "url" not in content and "file" not in content
        # the only media addresses are those listed, as code, for the homeserver's admin to quarantine
        markup = content.get("formatted_body") or ""
        assert "mxc://" not in markup.split("Files:")[0] and 'href="mxc' not in markup


async def power_level(client: HumanClient, room_id: str, user_id: str) -> int | None:
    response = await client.nio.room_get_state_event(room_id, "m.room.power_levels")
    return response.content.get("users", {}).get(user_id)


# --- the shared Vigil ------------------------------------------------------------------------------


@shared_loop
async def test_benign_image_stays_and_only_the_hit_is_alerted(synapse, vigil, photo, other_photo):
    async with people(synapse, "owner", "member") as (owner, member):
        room = await protected_room(owner, bot_of(vigil), members=[member])
        inbox = Inbox(owner, bot_of(vigil))
        benign = await member.send_image(room.room_id, jpeg(other_photo), "image/jpeg")
        hit = await member.send_image(room.room_id, jpeg(add_marker(photo)), "image/jpeg")
        # one chat's images are handled in order: once the hit is gone, the benign one was checked
        await wait_redacted(owner, room.room_id, hit)
        for event_id in (benign, hit):  # Vigil's record: each finished, every alert of it sent
            await checked(vigil, event_id)
        assert not await owner.redacted(room.room_id, benign)
        await inbox.wait(lambda i: len(i.alerts()) == 1)
        await inbox.poll()  # one read after the record: a duplicate alert would be in it
        assert len(inbox.alerts()) == 1
        dm, alert = inbox.alerts()[0]
        assert len(alert.body.splitlines()) <= 15  # one phone screen, the choices included
        details = await details_of(owner, inbox, dm, alert)
        assert hit in details and benign not in details


@shared_loop
async def test_block_by_the_rooms_creator_then_a_recompressed_copy_is_redacted_each_moderator_alerted_once(
    synapse, vigil, other_photo
):
    async with people(synapse, "owner", "moderator", "member") as (owner, moderator, member):
        # room version 12: the owner is a creator, not in the power-level map, and still a moderator
        room = await protected_room(owner, bot_of(vigil), members=[member], moderators=[moderator])
        original = await member.send_image(room.room_id, jpeg(other_photo, 92), "image/jpeg")
        await checked(vigil, original)  # else it is found on the block list too, and alerted
        await owner.reply(room.room_id, original, "!vigil block")
        await wait_redacted(owner, room.room_id, original)
        await bot_says(owner, room.room_id, bot_of(vigil), "block list")
        h, w = other_photo.shape[:2]
        smaller = np.asarray(Image.fromarray(other_photo).resize((w * 3 // 4, h * 3 // 4)))
        copy = await member.send_image(room.room_id, jpeg(smaller, 60), "image/jpeg")
        await wait_redacted(owner, room.room_id, copy)
        inboxes = [Inbox(owner, bot_of(vigil)), Inbox(moderator, bot_of(vigil))]
        for inbox in inboxes:
            await inbox.wait(lambda i: len(i.alerts()) == 1)
        await checked(vigil, copy)
        for inbox in inboxes:
            await inbox.poll()
            assert len(inbox.alerts()) == 1
            assert_no_image_sent(inbox)
        # the media is still on the server (no admin token here): the alert says so at once, and
        # its details name the files for the homeserver admin
        dm, alert = inboxes[0].alerts()[0]
        assert "file stays on the Matrix server" in alert.body and "mxc://" not in alert.body
        body = await details_of(owner, inboxes[0], dm, alert)
        assert copy in body and "quarantine" in body.lower() and "mxc://localhost/" in body
        assert "group:matrix" not in alert.body + body  # the group's own list by its name for people


@shared_loop
async def test_nudity_hit_mutes_the_sender_and_unmute_by_reaction_restores_them(synapse, vigil, photo):
    async with people(synapse, "owner", "member") as (owner, member):
        # changing levels needs Synapse's default 100 for m.room.power_levels
        room = await protected_room(owner, bot_of(vigil), members=[member], bot_level=100)
        await owner.send_text(room.room_id, "!vigil action mute 12h")
        await bot_says(owner, room.room_id, bot_of(vigil), "mute 12h")
        hit = await member.send_image(room.room_id, jpeg(add_marker(photo)), "image/jpeg")
        await wait_redacted(owner, room.room_id, hit)
        inbox = Inbox(owner, bot_of(vigil))
        await inbox.wait(lambda i: len(i.alerts()) == 1)
        assert await power_level(owner, room.room_id, member.user_id) == -1
        record = await vigil.core.store.mute_of(room.room_id, member.user_id)  # in the store, for every process
        assert (record.level, record.previous) == (-1, None)
        with pytest.raises(Exception, match="M_FORBIDDEN|forbidden|power"):
            await member.send_text(room.room_id, "can I still post?")
        dm, alert = inbox.alerts()[0]
        key, data = choice(alert.body, "unmute")
        assert key is not None
        await owner.react(dm, alert.event_id, key)
        await bot_says(owner, dm, bot_of(vigil), "lifted")
        assert await power_level(owner, room.room_id, member.user_id) is None  # back to the room's default
        assert await vigil.core.store.mute_of(room.room_id, member.user_id) is None
        await member.send_text(room.room_id, "back again")


@shared_loop
async def test_a_spanish_room_gets_a_one_screen_alert_in_spanish_choices_included(synapse, vigil, photo):
    async with people(synapse, "owner", "member") as (owner, member):
        room = await protected_room(owner, bot_of(vigil), members=[member])
        await owner.send_text(room.room_id, "!vigil lang es")
        await bot_says(owner, room.room_id, bot_of(vigil), "Idioma")
        hit = await member.send_image(room.room_id, jpeg(add_marker(photo)), "image/jpeg")
        await wait_redacted(owner, room.room_id, hit)
        inbox = Inbox(owner, bot_of(vigil))
        await inbox.wait(lambda i: len(i.alerts()) == 1)
        dm, alert = inbox.alerts()[0]
        # Matrix clients do not say their language: the room's is used, for the adapter's own line too
        assert "Qué hacer ahora" in alert.body and "Para elegir, reacciona con el número" in alert.body
        assert "el archivo sigue en el servidor de Matrix" in alert.body
        assert len(alert.body.splitlines()) <= 15
        details = await details_of(owner, inbox, dm, alert)
        assert "Todos los pasos" in details and "Para elegir" in details and hit in details


@shared_loop
async def test_alert_choices_evidence_record_and_ban(synapse, vigil, photo):
    import json

    async with people(synapse, "owner", "member") as (owner, member):
        room = await protected_room(owner, bot_of(vigil), members=[member])
        hit = await member.send_image(room.room_id, jpeg(add_marker(photo)), "image/jpeg")
        inbox = Inbox(owner, bot_of(vigil))
        await inbox.wait(lambda i: len(i.alerts()) == 1)
        dm, alert = inbox.alerts()[0]
        details = await details_of(owner, inbox, dm, alert)
        _, export = choice(details, "export")
        await owner.send_text(dm, f"!vigil {export}")
        await inbox.wait(lambda i: any(e.source["content"].get("msgtype") == "m.file" for _, e in i.messages))
        file_event = next(e for _, e in inbox.messages if e.source["content"].get("msgtype") == "m.file")
        record = json.loads(await owner.download_media(file_event))
        (item,) = record["records"]
        assert item["message_id"] == hit and item["sender_id"] == member.user_id and item["hashes"]["sha256"]
        key, _ = choice(alert.body, "ban")
        await owner.react(dm, alert.event_id, key)
        for _ in range(100):
            state = await owner.nio.room_get_state_event(room.room_id, "m.room.member", member.user_id)
            if getattr(state, "content", {}).get("membership") == "ban":
                break
            await asyncio.sleep(0.1)
        assert state.content["membership"] == "ban"
        assert_no_image_sent(inbox)


@shared_loop
async def test_a_moderator_who_left_the_direct_room_is_not_invited_again(synapse, vigil, photo, other_photo):
    async with people(synapse, "owner", "moderator", "member") as (owner, moderator, member):
        room = await protected_room(owner, bot_of(vigil), members=[member], moderators=[moderator])
        owner_inbox, mod_inbox = Inbox(owner, bot_of(vigil)), Inbox(moderator, bot_of(vigil))
        await member.send_image(room.room_id, jpeg(add_marker(photo)), "image/jpeg")
        await mod_inbox.wait(lambda i: len(i.alerts()) == 1)
        (dm,) = mod_inbox.rooms
        await moderator.leave(dm)
        second = await member.send_image(room.room_id, jpeg(add_marker(other_photo)), "image/jpeg")
        await wait_redacted(owner, room.room_id, second)
        await owner_inbox.wait(lambda i: len(i.alerts()) == 2)
        await checked(vigil, second)  # its alerts (and any invitation) went out before it finished
        await moderator.sync()
        assert not [
            r for r, inv in moderator.nio.invited_rooms.items() if getattr(inv, "inviter", None) == bot_of(vigil)
        ]
        contact = await vigil.core.store.get_contact("matrix", moderator.user_id)
        assert contact is not None and not contact.can_dm


@shared_loop
async def test_a_timed_mute_is_lifted_when_it_runs_out(synapse, vigil, photo):
    async with people(synapse, "owner", "member") as (owner, member):
        room = await protected_room(owner, bot_of(vigil), members=[member], bot_level=100)
        await owner.send_text(room.room_id, "!vigil action mute 3s")
        await bot_says(owner, room.room_id, bot_of(vigil), "mute 3s")
        hit = await member.send_image(room.room_id, jpeg(add_marker(photo)), "image/jpeg")
        await wait_redacted(owner, room.room_id, hit)
        for _ in range(100):
            if await power_level(owner, room.room_id, member.user_id) == -1:
                break
            await asyncio.sleep(0.1)
        assert await power_level(owner, room.room_id, member.user_id) == -1
        for _ in range(150):
            if await power_level(owner, room.room_id, member.user_id) is None:
                break
            await asyncio.sleep(0.1)
        assert await power_level(owner, room.room_id, member.user_id) is None
        await member.send_text(room.room_id, "muted no more")


@shared_loop
async def test_review_band_delete_by_reaction_and_keep_by_command(synapse, vigil, photo):
    async with people(synapse, "owner", "member") as (owner, member):
        room = await protected_room(owner, bot_of(vigil), members=[member])
        # the marker scores about 0.9: a 0.95 threshold puts it in the review band
        await owner.send_text(room.room_id, "!vigil sensitivity 0.95")
        await bot_says(owner, room.room_id, bot_of(vigil), "0.95")
        inbox = Inbox(owner, bot_of(vigil))
        first = await member.send_image(room.room_id, jpeg(add_marker(photo)), "image/jpeg")
        await inbox.wait(lambda i: len(i.alerts()) == 1)
        assert not await owner.redacted(room.room_id, first)
        dm, alert = inbox.alerts()[0]
        key, _ = choice(alert.body, "del")
        await owner.react(dm, alert.event_id, key)
        await wait_redacted(owner, room.room_id, first)

        second = await member.send_image(room.room_id, jpeg(add_marker(photo, 0.3)), "image/jpeg")
        await inbox.wait(lambda i: len(i.alerts()) == 2)
        dm, alert = inbox.alerts()[1]
        _, keep = choice(alert.body, "keep")
        await owner.send_text(dm, f"!vigil {keep}")
        await bot_says(owner, dm, bot_of(vigil), "Kept")
        assert not await owner.redacted(room.room_id, second)


@shared_loop
async def test_dry_run_redacts_nothing_and_says_what_would_have_happened(synapse, vigil, photo):
    async with people(synapse, "owner", "member") as (owner, member):
        room = await protected_room(owner, bot_of(vigil), members=[member])
        await owner.send_text(room.room_id, "!vigil mode dryrun")
        await bot_says(owner, room.room_id, bot_of(vigil), "dryrun")
        inbox = Inbox(owner, bot_of(vigil))
        hit = await member.send_image(room.room_id, jpeg(add_marker(photo)), "image/jpeg")
        await inbox.wait(lambda i: len(i.alerts()) == 1)
        assert "would have" in inbox.alerts()[0][1].body.lower()
        assert not await owner.redacted(room.room_id, hit)


@shared_loop
async def test_a_members_command_is_refused_and_changes_nothing(synapse, vigil, photo):
    async with people(synapse, "owner", "member") as (owner, member):
        room = await protected_room(owner, bot_of(vigil), members=[member])
        await member.send_text(room.room_id, "!vigil mode off")
        await bot_says(owner, room.room_id, bot_of(vigil), "admins")
        settings = await vigil.core.group_settings(ChatRef("matrix", room.room_id))
        assert settings.mode == "delete"
        hit = await member.send_image(room.room_id, jpeg(add_marker(photo)), "image/jpeg")
        await wait_redacted(owner, room.room_id, hit)


@shared_loop
async def test_a_demoted_moderator_loses_control_at_once(synapse, vigil):
    async with people(synapse, "owner", "moderator") as (owner, moderator):
        room = await protected_room(owner, bot_of(vigil), moderators=[moderator])
        await moderator.send_text(room.room_id, "!vigil mode dryrun")
        await bot_says(owner, room.room_id, bot_of(vigil), "Mode set to dryrun")
        levels = (await owner.nio.room_get_state_event(room.room_id, "m.room.power_levels")).content
        levels["users"].pop(moderator.user_id)
        await owner.set_power_levels(room.room_id, levels)
        await moderator.send_text(room.room_id, "!vigil mode delete")
        await bot_says(owner, room.room_id, bot_of(vigil), "admins")
        assert (await vigil.core.group_settings(ChatRef("matrix", room.room_id))).mode == "dryrun"


@shared_loop
async def test_too_low_a_power_level_is_reported_to_the_inviter(synapse, vigil):
    async with people(synapse, "owner") as (owner,):
        inbox = Inbox(owner, bot_of(vigil))
        await protected_room(owner, bot_of(vigil), bot_level=0, name="Football club")
        await inbox.wait(lambda i: any("delete messages" in t for t in i.texts()))
        text = next(t for t in inbox.texts() if "delete messages" in t)
        assert "Football club" in text


@shared_loop
@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
async def test_every_form_of_image_is_found(synapse, vigil, photo, encrypted):
    marked = add_marker(photo)
    async with people(synapse, "owner", "member") as (owner, member):
        room = await protected_room(owner, bot_of(vigil), members=[member], encrypted=encrypted)
        r = room.room_id
        sticker = await member.send_sticker(r, png_bytes(np.ascontiguousarray(marked[::2, ::2])))
        file = await member.send_file(r, jpeg(marked), "image/jpeg", "holiday.jpg", encrypted_room=encrypted)
        video = await member.send_video(r, mp4_bytes([photo] * 3 + [marked] * 3, fps=3), encrypted_room=encrypted)
        edited = await member.send_image(r, jpeg(photo), "image/jpeg", encrypted_room=encrypted)
        edit = await member.edit_media(r, edited, jpeg(marked), encrypted_room=encrypted)
        for event_id in (sticker, file, video, edited, edit):  # an edit's own event goes too: it holds the new file
            await wait_redacted(owner, r, event_id)


@shared_loop
async def test_a_declared_size_over_the_limit_is_not_downloaded_and_is_reported(synapse, vigil, photo):
    async with people(synapse, "owner", "member") as (owner, member):
        room = await protected_room(owner, bot_of(vigil), members=[member])
        inbox = Inbox(owner, bot_of(vigil))
        content = await member.media_content("m.image", jpeg(photo), "image/jpeg", "big.jpg")
        content["info"]["size"] = 200 * 1024 * 1024
        big = await member.send(room.room_id, "m.room.message", content)
        await inbox.wait(lambda i: len(i.alerts()) == 1)
        assert (
            "could not be checked" in inbox.alerts()[0][1].body.lower()
            or "could not check" in inbox.alerts()[0][1].body.lower()
        )
        assert not await owner.redacted(room.room_id, big)


@shared_loop
async def test_end_to_end_encrypted_room_image_is_decrypted_redacted_and_the_alert_is_encrypted(
    synapse, vigil, photo, other_photo
):
    async with people(synapse, "owner", "member") as (owner, member):
        room = await protected_room(owner, bot_of(vigil), members=[member], encrypted=True)
        inbox = Inbox(owner, bot_of(vigil))
        benign = await member.send_image(room.room_id, jpeg(other_photo), "image/jpeg", encrypted_room=True)
        hit = await member.send_image(room.room_id, jpeg(add_marker(photo)), "image/jpeg", encrypted_room=True)
        raw = synapse.request(
            "GET", f"/_matrix/client/v3/rooms/{room.room_id}/event/{hit}", token=member.user.access_token
        )
        assert raw.body["type"] == "m.room.encrypted"  # Synapse never saw the image's keys
        await wait_redacted(owner, room.room_id, hit)
        assert not await owner.redacted(room.room_id, benign)
        await inbox.wait(lambda i: len(i.alerts()) == 1)
        dm, alert = inbox.alerts()[0]
        assert getattr(alert, "decrypted", False), "the alert must arrive end-to-end encrypted"
        assert owner.nio.rooms[dm].encrypted
        assert undecrypted(inbox) == []
        # the evidence record is an encrypted file in the encrypted direct room
        _, export = choice(await details_of(owner, inbox, dm, alert), "export")
        await owner.send_text(dm, f"!vigil {export}")
        await inbox.wait(lambda i: any(e.source["content"].get("msgtype") == "m.file" for _, e in i.messages))
        file_event = next(e for _, e in inbox.messages if e.source["content"].get("msgtype") == "m.file")
        assert "file" in file_event.source["content"] and "url" not in file_event.source["content"]
        assert hit in (await owner.download_media(file_event)).decode()
        # block by reply works on an encrypted image too
        original = await member.send_image(room.room_id, jpeg(other_photo, 90), "image/jpeg", encrypted_room=True)
        await owner.reply(room.room_id, original, "!vigil block")
        await wait_redacted(owner, room.room_id, original)
        again = await member.send_image(room.room_id, jpeg(other_photo, 70), "image/jpeg", encrypted_room=True)
        await wait_redacted(owner, room.room_id, again)


@shared_loop
async def test_block_of_a_message_not_in_memory_fetches_it_and_redacts_its_edits_too(
    synapse, vigil, photo, other_photo
):
    """As after a restart: the replied-to event and its edits are read back from the homeserver (and decrypted)."""
    platform = vigil.core.platforms["matrix"]
    async with people(synapse, "owner", "member") as (owner, member):
        room = await protected_room(owner, bot_of(vigil), members=[member], encrypted=True)
        original = await member.send_image(room.room_id, jpeg(photo), "image/jpeg", encrypted_room=True)
        edit = await member.edit_media(room.room_id, original, jpeg(other_photo), encrypted_room=True)
        await checked(vigil, original)
        platform._posted.clear()
        platform._related.clear()
        await owner.reply(room.room_id, original, "!vigil block")
        await wait_redacted(owner, room.room_id, original)
        await wait_redacted(owner, room.room_id, edit)


@shared_loop
async def test_direct_room_start_and_groups(synapse, vigil):
    async with people(synapse, "owner") as (owner,):
        room = await protected_room(owner, bot_of(vigil), name="Chess club")
        dm = await owner.create_room("", invite=[bot_of(vigil)], is_direct=True)
        await owner.send_text(dm, "!vigil start")
        await bot_says(owner, dm, bot_of(vigil), "alerts here")
        await owner.send_text(dm, "!vigil groups")
        listing = await bot_says(owner, dm, bot_of(vigil), "Chess club")
        _, data = choice(listing, f"set:{room.room_id}:mode")
        await owner.send_text(dm, f"!vigil {data}")
        await bot_says(owner, dm, bot_of(vigil), "Mode set")
        mode = data.rsplit(":", 1)[1]
        assert (await vigil.core.group_settings(ChatRef("matrix", room.room_id))).mode == mode


# --- Vigil as its own process: killed mid-burst and restarted ----------------------------------------


@shared_loop
@pytest.mark.slow
async def test_killed_during_a_burst_and_restarted_nothing_is_missed_or_repeated(
    synapse, marker_model, tmp_path, photo, other_photo
):
    bot = new_user(synapse, "vigil")
    cfg = write_matrix_config(tmp_path, synapse, bot, marker_model)
    proc = MatrixVigilProcess(cfg, tmp_path / "vigil.log", matrix_env(bot))
    proc.start()
    try:
        async with people(synapse, "owner", "member") as (owner, member):
            room = await protected_room(owner, bot.user_id, members=[member])
            hits, clean = [], []
            for i in range(12):
                base = photo if i % 2 else other_photo
                if i % 3 == 0:
                    hits.append(
                        await member.send_image(room.room_id, jpeg(add_marker(base, 0.2 + 0.01 * i)), "image/jpeg")
                    )
                else:
                    clean.append(await member.send_image(room.room_id, jpeg(base, 70 + i), "image/jpeg"))
            await wait_redacted(owner, room.room_id, hits[0], timeout=60)
            proc.kill()
            # posted while Vigil is down: the saved sync token brings them after the restart
            hits.append(await member.send_image(room.room_id, jpeg(add_marker(other_photo, 0.28)), "image/jpeg"))
            clean.append(await member.send_image(room.room_id, jpeg(photo, 65), "image/jpeg"))
            proc.start()
            for event_id in hits:
                await wait_redacted(owner, room.room_id, event_id, timeout=90)
            after = await member.send_image(room.room_id, jpeg(add_marker(photo, 0.33)), "image/jpeg")
            await wait_redacted(owner, room.room_id, after, timeout=60)
            store = await Store.open(tmp_path / "data" / "vigil.sqlite3")  # Vigil's own record, from its file
            try:
                await decided(store, "matrix", room.room_id, [*hits, after, *clean], timeout=90)
            finally:
                await store.close()
            for event_id in clean:
                assert not await owner.redacted(room.room_id, event_id)
            inbox = Inbox(owner, bot.user_id)
            await inbox.wait(lambda i: len(i.alerts()) >= len(hits) + 1, timeout=60)
            await inbox.poll()
            bodies = [await details_of(owner, inbox, dm, e) for dm, e in inbox.alerts()]
            assert sorted(h for h in hits + [after] for b in bodies if h in b) == sorted(hits + [after])  # each once
            # the restart reused Vigil's device (registering the account made one more, unnamed)
            devices = synapse.admin_request("GET", f"/_synapse/admin/v2/users/{bot.user_id}/devices").body["devices"]
            assert len([d for d in devices if d.get("display_name") == "Vigil"]) == 1
            started = re.findall(r"syncing as \S+ \(device (\w+)\)", proc.log())
            assert len(started) == 2 and started[0] == started[1]
            assert proc.terminate() == 0
    finally:
        if proc.proc and proc.proc.poll() is None:
            proc.kill()


# --- one process, Telegram and Matrix at once ---------------------------------------------------------


@shared_loop
async def test_one_process_protects_a_telegram_group_and_a_matrix_room(synapse, marker_model, tmp_path, photo):
    emu = BotApiEmulator(token=TOKEN)
    await emu.start()
    try:
        tg_owner = emu.add_user("Olivia", username="olivia")
        tg_member = emu.add_user("Max")
        emu.start_private(tg_owner)
        group = emu.add_group("Year 9 parents", creator=tg_owner, members=[tg_member], bot_rights=full_rights())
        bot = new_user(synapse, "vigil")
        async with people(synapse, "owner", "member", "stranger") as (owner, member, stranger):
            cfg = write_matrix_config(
                tmp_path,
                synapse,
                bot,
                marker_model,
                telegram_url=emu.url,
                matrix_extra=f'invite_from = ["{owner.user_id}"]',
            )
            env = matrix_env(bot, admin_token=synapse.admin_token, telegram=True)
            async with running_matrix_vigil(cfg, env) as app:
                assert set(app.core.platforms) == {"telegram", "matrix"}
                # only the listed user may invite Vigil
                refused = await stranger.create_room("Not allowed", invite=[bot.user_id])
                room = await protected_room(owner, bot.user_id, members=[member])
                _, leave = await stranger.sync_until(
                    lambda r, e: (
                        r == refused
                        and getattr(e, "state_key", None) == bot.user_id
                        and getattr(e, "membership", None) == "leave"
                    )
                )
                tg_hit = emu.post_photo(group, tg_member, jpeg(add_marker(photo)))
                content = await member.media_content("m.image", jpeg(add_marker(photo)), "image/jpeg", "x.jpg")
                mx_hit = await member.send(room.room_id, "m.room.message", content)
                await wait_redacted(owner, room.room_id, mx_hit)
                await emu.wait_for(
                    lambda: not any(m["message_id"] == tg_hit for m in emu.messages_in(group)), timeout=30
                )
                # with an admin token the file itself is quarantined: nobody can download it any more
                for _ in range(50):
                    if not isinstance(synapse.download(content["url"], member.user.access_token), bytes):
                        break
                    await asyncio.sleep(0.1)
                gone = synapse.download(content["url"], member.user.access_token)
                assert not isinstance(gone, bytes) and gone.status == 404
                inbox = Inbox(owner, bot.user_id)
                await inbox.wait(lambda i: len(i.alerts()) == 1)
                assert "mxc://" not in inbox.alerts()[0][1].body  # nothing left for the homeserver admin to do
    finally:
        await emu.stop()


# --- pure helpers ------------------------------------------------------------------------------------


def test_power_levels_count_room_version_12_creators_as_moderators():
    state = [
        {
            "type": "m.room.create",
            "state_key": "",
            "sender": "@owner:x",
            "content": {"room_version": "12", "additional_creators": ["@co:x"]},
        },
        {
            "type": "m.room.power_levels",
            "state_key": "",
            "sender": "@owner:x",
            "content": {
                "users": {"@vigil:x": 50, "@mod:x": 50, "@gone:x": 100},
                "redact": 50,
                "events": {"m.room.message": 0},
            },
        },
        *(
            {"type": "m.room.member", "state_key": u, "sender": u, "content": {"membership": "join"}}
            for u in ("@owner:x", "@co:x", "@vigil:x", "@mod:x", "@m:x")
        ),
    ]
    power = room_power(state)
    assert power.level("@owner:x") == math.inf and power.level("@co:x") == math.inf
    assert power.moderators(exclude=["@vigil:x"]) == {"@owner:x", "@co:x", "@mod:x"}  # @gone:x left the room
    assert power.owner == "@owner:x"
    assert power.rights("@vigil:x").can_delete and power.mute_level == -1
    assert not power.can_lower("@vigil:x", "@owner:x") and not power.can_lower("@vigil:x", "@mod:x")
    assert power.can_lower("@vigil:x", "@m:x")  # power levels need state_default (50) here
    classic = room_power([{**state[0], "content": {"room_version": "10"}}, *state[1:]])
    assert classic.level("@owner:x") == 0 and "@owner:x" not in classic.moderators()


def test_media_is_read_from_plain_encrypted_and_edited_content():
    plain = media_ref(
        "m.room.message", {"msgtype": "m.image", "url": "mxc://s/a", "info": {"size": 10, "mimetype": "image/png"}}
    )
    assert (
        plain is not None and plain.file_id == "mxc://s/a" and plain.size == 10 and plain.extra == {"mxc": "mxc://s/a"}
    )
    enc = media_ref(
        "m.room.message",
        {
            "msgtype": "m.file",
            "body": "x.jpg",
            "file": {
                "url": "mxc://s/b",
                "key": {"k": "K"},
                "iv": "I",
                "hashes": {"sha256": "H"},
                "mimetype": "image/jpeg",
            },
        },
    )
    assert (
        enc is not None and enc.kind == "document" and enc.extra["encrypted"] == {"key": "K", "iv": "I", "sha256": "H"}
    )
    assert (
        media_ref(
            "m.room.message",
            {"msgtype": "m.file", "body": "notes.pdf", "url": "mxc://s/c", "info": {"mimetype": "application/pdf"}},
        )
        is None
    )
    assert media_ref("m.room.message", {"msgtype": "m.image", "url": "https://evil.example/x.jpg"}) is None
    edit = posted_media(
        {
            "type": "m.room.message",
            "event_id": "$e",
            "sender": "@a:s",
            "origin_server_ts": 1700000000000,
            "content": {
                "msgtype": "m.image",
                "url": "mxc://s/old",
                "m.new_content": {"msgtype": "m.image", "url": "mxc://s/new"},
                "m.relates_to": {"rel_type": "m.replace", "event_id": "$orig"},
            },
        }
    )
    assert (
        edit is not None
        and edit.message_id == "$orig"
        and edit.event_id == "$e"
        and edit.variant == "edit:$e"
        and edit.media.file_id == "mxc://s/new"
    )


def test_commands_and_choices():
    assert parse_command("!vigil mode off", private=False).args == ("mode", "off")
    assert parse_command("!vigil block", private=False).verb == "block"
    assert parse_command("!vigil del:12", private=True).button == "del:12"
    assert parse_command("!vigil start", private=True).verb == "start"
    assert parse_command("hello", private=False) is None
    msg = render(
        OutgoingMessage("Alert", "<b>Alert</b>", ((Button("Delete", "del:3"), Button("Keep", "keep:3")),)),
        notice=False,
        choose_line="Choose:",
    )
    assert msg.keys == {"1\ufe0f\u20e3": "del:3", "2\ufe0f\u20e3": "keep:3"}
    assert "!vigil keep:3" in msg.content["body"] and "<br>" in msg.content["formatted_body"]
    # the core's Telegram-style commands are written the Matrix way ("/" is a client command there)
    help_line = render(
        OutgoingMessage("/block (reply) or /vigil mode off; see https://example.org/help"), notice=True, choose_line=""
    )
    assert help_line.content["body"] == "!vigil block (reply) or !vigil mode off; see https://example.org/help"
    assert help_line.content["msgtype"] == "m.notice" and help_line.keys == {}


# --- the adapter on its own: errors over real HTTP, and the sync token rule --------------------------


async def test_homeserver_errors_become_vigils_errors_over_real_http(unused_tcp_port_factory):
    from aiohttp import web
    from nio import AsyncClient, AsyncClientConfig

    from bot.platforms.errors import MessageGone, MissingRight, RetryLater, Transient
    from bot.platforms.matrix_errors import call

    replies = {
        "$limited": (429, {"errcode": "M_LIMIT_EXCEEDED", "error": "Too many requests", "retry_after_ms": 1500}),
        "$gone": (404, {"errcode": "M_NOT_FOUND", "error": "Unknown event"}),
        "$forbidden": (403, {"errcode": "M_FORBIDDEN", "error": "You don't have permission to redact events"}),
        "$broken": (502, {"errcode": "M_UNKNOWN", "error": "Bad gateway"}),
    }

    async def redact(request: web.Request) -> web.Response:
        status, body = replies[request.match_info["event"]]
        return web.json_response(body, status=status)

    app = web.Application()
    app.router.add_put("/_matrix/client/v3/rooms/{room}/redact/{event}/{txn}", redact)
    runner = web.AppRunner(app)
    await runner.setup()
    port = unused_tcp_port_factory()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    config = AsyncClientConfig(encryption_enabled=False, max_limit_exceeded=0, max_timeouts=0)
    client = AsyncClient(f"http://127.0.0.1:{port}", "@vigil:localhost", config=config)
    client.restore_login("@vigil:localhost", "DEVICE", "token")
    try:
        with pytest.raises(RetryLater) as limited:
            await call("redact", client.room_redact("!r:localhost", "$limited"), right="remove messages")
        assert limited.value.retry_after == pytest.approx(1.5)
        with pytest.raises(MessageGone):
            await call("redact", client.room_redact("!r:localhost", "$gone"), right="remove messages")
        with pytest.raises(MissingRight, match="remove messages"):
            await call("redact", client.room_redact("!r:localhost", "$forbidden"), right="remove messages")
        with pytest.raises(Transient):
            await call("redact", client.room_redact("!r:localhost", "$broken"), right="remove messages")
    finally:
        await client.close()
        await runner.cleanup()
    # nothing listens any more: a network error, worth retrying
    closed = AsyncClient(f"http://127.0.0.1:{port}", "@vigil:localhost", config=config)
    closed.restore_login("@vigil:localhost", "DEVICE", "token")
    try:
        with pytest.raises(Transient):
            await call("redact", closed.room_redact("!r:localhost", "$gone"))
    finally:
        await closed.close()


class RecordingCore:
    """Vigil's core seam: records what the adapter hands over; the first submit fails like a full disk."""

    def __init__(self) -> None:
        self.submitted: list = []
        self.added: list = []
        self.failures = 1

    async def submit(self, event) -> None:
        if self.failures:
            self.failures -= 1
            from bot.errors import StoreError

            raise StoreError("database: disk I/O error")
        self.submitted.append(event)

    async def command(self, cmd) -> None:
        raise RuntimeError("a handler bug")  # must not stop the sync

    async def bot_added(self, event) -> None:
        self.added.append(event)

    async def button(self, press) -> None: ...

    async def private_started(self, user) -> None: ...

    def forget_admins(self, chat) -> None: ...

    async def member_joined(self, event) -> None: ...


@shared_loop
async def test_the_sync_token_is_saved_only_after_the_core_recorded_the_events(synapse, tmp_path, photo):
    from bot.config import MatrixConfig
    from bot.platforms.matrix import SYNC_KEY, MatrixPlatform
    from bot.store import Store

    bot = new_user(synapse, "vigil")
    config = MatrixConfig(
        enabled=True, homeserver=synapse.base_url, user_id=bot.user_id, password=bot.password, sync_timeout=1
    )
    store = await Store.open(tmp_path / "vigil.sqlite3")
    core = RecordingCore()
    platform = MatrixPlatform(config, store, tmp_path / "matrix")
    await platform.start(core)
    try:
        async with people(synapse, "owner", "member") as (owner, member):
            room = await protected_room(owner, bot.user_id, members=[member])
            await member.send_text(room.room_id, "!vigil status")
            image = await member.send_image(room.room_id, jpeg(photo), "image/jpeg")
            for _ in range(300):
                if any(e.message_id == image for e in core.submitted):
                    break
                await asyncio.sleep(0.05)
            # the first hand-over failed: the same sync was read again, so the image was not lost
            assert core.failures == 0 and [e.message_id for e in core.submitted if e.message_id == image] == [image]
            assert core.added and core.added[0].by.user_id == owner.user_id and core.added[0].can_delete
            for _ in range(100):
                if await store.get_state(SYNC_KEY):
                    break
                await asyncio.sleep(0.05)
            assert await store.get_state(SYNC_KEY)
    finally:
        await platform.stop()
        await platform.close()
        await store.close()


def test_homeserver_requests_are_counted_by_kind_the_long_poll_apart():
    from bot.platforms.matrix_timing import HomeserverCalls, request_kind

    room = "/_matrix/client/v3/rooms/%21abc%3Alocalhost"
    assert request_kind("PUT", f"{room}/redact/%24ev/vigil-1") == "redact"
    assert request_kind("PUT", f"{room}/send/m.reaction/t1") == "reaction"
    assert request_kind("PUT", f"{room}/send/m.room.message/t2") == "send"
    assert request_kind("GET", f"{room}/state") == "read state"
    assert request_kind("PUT", f"{room}/state/m.room.power_levels/") == "write state"
    assert request_kind("GET", "/_matrix/client/v1/media/download/localhost/abc?allow_redirect=true") == "download"
    calls = HomeserverCalls()
    calls.record("GET", "/_matrix/client/v3/sync?since=s1&timeout=30000", 1.0, 31.0)
    calls.record("PUT", f"{room}/redact/%24ev/vigil-1", 31.0, 31.25)
    calls.record("PUT", f"{room}/redact/%24ev2/vigil-2", 31.1, 31.15)
    count, seconds = calls.snapshot()
    assert dict(count) == {"redact": 2} and math.isclose(seconds["redact"], 0.30)
    assert [r.ended for r in calls.recent] == [31.25, 31.15]  # in the order they ended


@shared_loop
async def test_power_rules_follow_the_sync_a_promotion_obeyed_without_reading_the_rooms_state(synapse, vigil):
    bot = bot_of(vigil)
    platform = vigil.core.platforms["matrix"]
    async with people(synapse, "owner", "helper") as (owner, helper):
        room = await protected_room(owner, bot, members=[helper])
        await owner.send_text(room.room_id, "!vigil mode dryrun")
        await bot_says(owner, room.room_id, bot, "Mode set to dryrun")  # the room's rules are known by now
        reads = platform.calls.count["read state"]
        levels = (await owner.nio.room_get_state_event(room.room_id, "m.room.power_levels")).content
        levels["users"][helper.user_id] = 50
        await owner.set_power_levels(room.room_id, levels)
        await helper.send_text(room.room_id, "!vigil mode delete")
        await bot_says(owner, room.room_id, bot, "Mode set to delete")  # the promotion counted at once
        assert (await vigil.core.group_settings(ChatRef("matrix", room.room_id))).mode == "delete"
        assert platform.calls.count["read state"] == reads  # from the sync: the room's state was not read again


@shared_loop
async def test_the_alerts_reactions_wait_until_every_hit_of_a_burst_is_redacted(synapse, vigil):
    photos = [add_marker(v) for k, v in sorted(file_images().items())[:4]]
    for k, pixels in enumerate(photos):  # bytes no other test sent: Synapse quarantines a file by its hash
        pixels[:16, :16] = 7 + k, 191, 83
    platform = vigil.core.platforms["matrix"]
    async with people(synapse, "owner", "member") as (owner, member):
        room = await protected_room(owner, bot_of(vigil), members=[member])
        contents = [await member.media_content("m.image", jpeg(p), "image/jpeg", "photo.jpg") for p in photos]
        since = time.perf_counter()
        hits = [(await member.nio.room_send(room.room_id, "m.room.message", c)).event_id for c in contents]
        for hit in hits:
            await wait_redacted(owner, room.room_id, hit)
        inbox = Inbox(owner, bot_of(vigil))
        await inbox.wait(lambda i: len(i.alerts()) == len(hits))
        for _ in range(600):  # until the last alert's reactions are answered
            if platform._offers.empty() and not platform._offering:
                break
            await asyncio.sleep(0.1)
        recent = [r for r in platform.calls.recent if r.started >= since]
        redactions = [r for r in recent if r.kind == "redact"]
        reactions = [r for r in recent if r.kind == "reaction"]
        assert len(redactions) == len(hits) and len(reactions) >= len(hits)
        # no reaction was asked for before the homeserver had answered every redaction of the burst
        assert min(r.started for r in reactions) >= max(r.ended for r in redactions)


def test_the_state_the_sync_brings_keeps_the_power_rules_and_a_redaction_of_it_asks_for_a_full_read():
    from bot.platforms.matrix_roomstate import SyncedState

    room, owner, mod = "!r:localhost", "@owner:localhost", "@mod:localhost"
    create = {"type": "m.room.create", "state_key": "", "sender": owner, "content": {"room_version": "10"}}
    levels = {"type": "m.room.power_levels", "state_key": "", "event_id": "$pl1", "content": {"users": {owner: 100}}}

    def joined(user: str) -> dict:
        return {"type": "m.room.member", "state_key": user, "content": {"membership": "join"}}

    state = SyncedState()
    state.apply(room, joined(mod))  # not known in full yet: nothing to build on
    assert state.power(room) is None
    state.seed(room, [create, levels, joined(owner), joined(mod), {"type": "m.room.topic", "state_key": ""}])
    assert state.power(room).moderators() == {owner}
    promoted = {**levels, "event_id": "$pl2", "content": {"users": {owner: 100, mod: 50}}}
    state.apply(room, promoted)
    assert state.power(room).moderators() == {owner, mod}
    state.apply(room, {**joined(mod), "content": {"membership": "leave"}})
    assert state.power(room).moderators() == {owner}
    state.apply(room, {"type": "m.room.redaction", "redacts": "$other", "content": {}})
    assert state.known(room)  # a redaction of something else changes nothing
    state.apply(room, {"type": "m.room.redaction", "content": {"redacts": "$pl2"}})
    assert not state.known(room) and state.power(room) is None  # read in full again when next needed
