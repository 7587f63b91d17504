"""At the door (bot/door.py, bot/member_hold.py), end to end on Telegram: the real python-telegram-bot
against the Bot API emulator. A member's profile photo is checked when they join or ask to join, with
the same detectors, lists and protected photos as a post; the new members' media hold."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from bot.door import door_message_id
from bot.events import ChatRef, MemberJoined, UserRef
from tests.support.botapi import BotApiEmulator, NotPermitted, full_rights
from tests.support.decided import telegram_decided
from tests.support.marker_model import add_marker
from tests.support.matrix_client import HumanClient
from tests.support.matrix_harness import (
    Inbox,
    matrix_env,
    new_user,
    people,
    protected_room,
    running_matrix_vigil,
    wait_joined,
    wait_redacted,
    write_matrix_config,
)
from tests.support.vigil_harness import TOKEN, jpeg, running_vigil, write_config

T = "telegram"


@pytest.fixture
async def emu():
    e = BotApiEmulator(token=TOKEN)
    await e.start()
    yield e
    await e.stop()


class Group:
    """A group with an owner and an admin who started the bot, a member, and Vigil as an admin."""

    def __init__(self, emu: BotApiEmulator) -> None:
        self.emu = emu
        self.owner = emu.add_user("Olivia", username="olivia", language_code="en")
        self.admin = emu.add_user("Ana", username="ana", language_code="es")
        self.member = emu.add_user("Max", username="max")
        self.chat = emu.add_group(
            "Year 9 parents", creator=self.owner, admins=[self.admin], members=[self.member], bot_rights=full_rights()
        )
        emu.start_private(self.owner)
        emu.start_private(self.admin)

    def door_alerts(self, user: int) -> list[str]:
        return [m["text"] for m in self.emu.sent_to(user) if "Profile photo check" in m.get("text", "")]

    def door_alerts_es(self, user: int) -> list[str]:
        return [m["text"] for m in self.emu.sent_to(user) if "foto de perfil" in m.get("text", "").lower()]


async def door_done(
    app, emu: BotApiEmulator, chat_id: int, user_id: int, *, times: int = 1, timeout: float = 120
) -> None:
    """Until Vigil has finished its checks at the door of this member, by its own records: it asked
    for their profile photo (``times`` checks started) and no door item of the chat is pending."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        asked = [c for c in emu.calls_to("getUserProfilePhotos") if int(c.params["user_id"]) == user_id]
        pending = [
            w for w in await app.store.pending_work(T) if w.chat_id == str(chat_id) and w.message_id.startswith("door:")
        ]
        if len(asked) >= times and not pending:
            return
        assert loop.time() < deadline, "the check at the door did not finish"
        await asyncio.sleep(0.05)


async def polling(emu: BotApiEmulator) -> None:
    """Until Vigil polls: Telegram keeps join updates only for a bot that asked for them (allowed_updates)."""
    await emu.wait_for(lambda: any("chat_member" in str(c.params.get("allowed_updates")) for c in emu.calls))


def no_image_anywhere(emu: BotApiEmulator) -> None:
    for call in emu.calls:
        assert call.method not in ("sendPhoto", "sendDocument", "sendMediaGroup", "forwardMessage", "copyMessage")


async def test_a_join_with_a_nude_profile_photo_is_restricted_from_media_and_the_admins_alerted(
    emu, tmp_path, marker_model, photo
):
    g = Group(emu)
    newcomer = emu.add_user("Rex", username="rex")
    emu.set_profile_photo(newcomer, jpeg(add_marker(photo)))
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)) as app:
        await polling(emu)
        emu.add_member(g.chat, newcomer)
        await door_done(app, emu, g.chat, newcomer)
        m = emu.member(g.chat, newcomer)
        assert m["status"] == "restricted" and m["can_send_photos"] is False and m["can_send_messages"] is True
        await emu.wait_for(lambda: len(g.door_alerts(g.owner)) == 1)
        alert = g.door_alerts(g.owner)[0]
        assert "Rex" in alert and "nudity" in alert and "stopped them from sending media" in alert
        assert len(g.door_alerts_es(g.admin)) == 1  # Ana reads it in Spanish
        no_image_anywhere(emu)


async def test_a_join_request_with_a_blocked_picture_is_declined(emu, tmp_path, marker_model, other_photo):
    g = Group(emu)
    asker = emu.add_user("Ivo", username="ivo")
    emu.set_profile_photo(asker, jpeg(other_photo, 80))
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)) as app:
        await polling(emu)
        posted = emu.post_photo(g.chat, g.member, jpeg(other_photo, 92))
        emu.post_text(g.chat, g.owner, "/block", reply_to=posted)
        await telegram_decided(app, emu, g.chat, posted)
        await emu.wait_for(lambda: all(m["message_id"] != posted for m in emu.messages_in(g.chat)))
        emu.request_join(g.chat, asker)
        await door_done(app, emu, g.chat, asker)
        assert emu.join_requests(g.chat) == []  # answered
        assert [c.method for c in emu.calls if "ChatJoinRequest" in c.method] == ["declineChatJoinRequest"]
        assert emu.member(g.chat, asker)["status"] == "left"
        await emu.wait_for(lambda: len(g.door_alerts(g.owner)) == 1)
        assert "block list" in g.door_alerts(g.owner)[0] and "declined the join request" in g.door_alerts(g.owner)[0]


async def test_with_joins_ban_a_nude_profile_photo_is_banned(emu, tmp_path, marker_model, photo):
    g = Group(emu)
    newcomer = emu.add_user("Rex", username="rex")
    emu.set_profile_photo(newcomer, jpeg(add_marker(photo)))
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)) as app:
        await polling(emu)
        emu.post_text(g.chat, g.owner, "/vigil joins ban")
        await emu.wait_for(lambda: any("At the door" in m.get("text", "") for m in emu.messages_in(g.chat)))
        emu.add_member(g.chat, newcomer)
        await door_done(app, emu, g.chat, newcomer)
        assert emu.member(g.chat, newcomer)["status"] == "kicked"
        await emu.wait_for(lambda: len(g.door_alerts(g.owner)) == 1)
        assert "banned them" in g.door_alerts(g.owner)[0]


async def test_a_benign_profile_photo_is_left_alone_and_not_fetched_again(emu, tmp_path, marker_model, photo):
    g = Group(emu)
    newcomer = emu.add_user("Bea", username="bea")
    emu.set_profile_photo(newcomer, jpeg(photo))
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)) as app:
        await polling(emu)
        emu.add_member(g.chat, newcomer)
        await door_done(app, emu, g.chat, newcomer)
        assert emu.member(g.chat, newcomer)["status"] == "member"
        assert g.door_alerts(g.owner) == [] and emu.calls_to("restrictChatMember") == []
        downloads = len(emu.calls_to("downloadFile"))
        assert downloads == 1
        # leaves and joins again with the same photo: looked up, not downloaded again
        emu.leave(g.chat, newcomer)
        emu.add_member(g.chat, newcomer)
        await door_done(app, emu, g.chat, newcomer, times=2)
        assert len(emu.calls_to("downloadFile")) == downloads
        assert emu.member(g.chat, newcomer)["status"] == "member"


async def test_a_protected_members_photo_as_an_avatar_alerts_the_admins(emu, tmp_path, marker_model, photo):
    g = Group(emu)
    faker = emu.add_user("Fake Max", username="fakemax")
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)) as app:
        await polling(emu)
        assert app.core is not None
        done = await app.core.protector.register_member_photo(T, str(g.member), "Max", jpeg(photo))
        assert done
        emu.set_profile_photo(faker, jpeg(photo, 80))  # Max's own photo, taken as someone else's avatar
        emu.add_member(g.chat, faker)
        await door_done(app, emu, g.chat, faker)
        await emu.wait_for(lambda: len(g.door_alerts(g.owner)) == 1)
        alert = g.door_alerts(g.owner)[0]
        assert "protected member's photo" in alert and "Fake Max" in alert
        assert emu.member(g.chat, faker)["status"] == "member"  # an alert only: the admins judge
        # Max's own photo as his own avatar is no impersonation (checked when he next posts)
        emu.set_profile_photo(g.member, jpeg(photo, 80))
        emu.post_text(g.chat, g.member, "hello")
        await door_done(app, emu, g.chat, g.member)
        assert len(g.door_alerts(g.owner)) == 1


async def test_the_new_members_media_hold_restricts_a_fresh_member_and_not_an_old_one(
    emu, tmp_path, marker_model, photo
):
    g = Group(emu)
    newcomer = emu.add_user("Nel", username="nel")
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)) as app:
        await polling(emu)
        emu.post_text(g.chat, g.owner, "/vigil newmedia hold 24h")
        await emu.wait_for(
            lambda: any("cannot post media for 24h" in m.get("text", "") for m in emu.messages_in(g.chat))
        )
        emu.add_member(g.chat, newcomer)
        await door_done(app, emu, g.chat, newcomer)
        m = emu.member(g.chat, newcomer)
        assert m["status"] == "restricted" and m["can_send_photos"] is False and m["can_send_videos"] is False
        assert m["can_send_documents"] is False and m["can_send_messages"] is True
        restrict = emu.calls_to("restrictChatMember")[0].params
        until = datetime.fromtimestamp(int(restrict["until_date"]), UTC)
        assert timedelta(hours=23) < until - datetime.now(UTC) <= timedelta(hours=24)
        with pytest.raises(NotPermitted):
            emu.post_photo(g.chat, newcomer, jpeg(photo))
        # the old member posts: their photo is looked at again, and they are not held
        mid = emu.post_photo(g.chat, g.member, jpeg(photo))
        await telegram_decided(app, emu, g.chat, mid)
        await door_done(app, emu, g.chat, g.member)
        assert emu.member(g.chat, g.member)["status"] == "member"
        assert [int(c.params["user_id"]) for c in emu.calls_to("restrictChatMember")] == [newcomer]


async def test_a_join_flood_is_queued_and_another_groups_post_is_still_handled(emu, tmp_path, marker_model, photo):
    g = Group(emu)
    other = emu.add_group("Chess club", creator=g.owner, members=[g.member], bot_rights=full_rights())
    raiders = [emu.add_user(f"R{i}") for i in range(150)]
    shared = emu.upload(jpeg(photo), kind="photo", mime="image/jpeg")
    for r in raiders[:5]:
        emu.set_profile_photo(r, shared)
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)) as app:
        await polling(emu)
        for r in raiders:
            emu.add_member(g.chat, r)
        nude = emu.post_photo(other, g.member, jpeg(add_marker(photo)))
        await emu.wait_for(lambda: all(m["message_id"] != nude for m in emu.messages_in(other)), timeout=60)
        for r in raiders:
            await door_done(app, emu, g.chat, r, timeout=120)
        # one photo, five members: downloaded at most once per scan thread (the repeat cache by
        # file_unique_id), and the nude post once
        assert len(emu.calls_to("downloadFile")) <= 3
        asked = [int(c.params["user_id"]) for c in emu.calls_to("getUserProfilePhotos")]
        assert sorted(u for u in asked if u in raiders) == sorted(raiders)  # each raider once


async def test_a_corrupt_or_oversized_profile_photo_is_refused_and_nothing_is_done(emu, tmp_path, marker_model, photo):
    g = Group(emu)
    corrupt, huge = emu.add_user("Cor"), emu.add_user("Hugo")
    emu.set_profile_photo(corrupt, b"\xff\xd8\xff\xe0 not a picture" * 50)
    big = np.random.default_rng(7).integers(0, 255, (1600, 1600, 3), dtype=np.uint8)
    sizes = emu.set_profile_photo(huge, jpeg(big, 95))
    limit = min(s["file_size"] for s in sizes) - 1  # every size of Hugo's photo is over the limit
    cfg = write_config(tmp_path, emu.url, marker_model, extra=f"[detectors.limits]\nmax_bytes = {limit}")
    async with running_vigil(cfg) as app:
        await polling(emu)
        emu.add_member(g.chat, corrupt)
        emu.add_member(g.chat, huge)
        await door_done(app, emu, g.chat, corrupt)
        await door_done(app, emu, g.chat, huge)
        downloaded = [c.params["file_path"] for c in emu.calls_to("downloadFile")]
        assert len(downloaded) == 1  # the corrupt one, small enough; none of Hugo's sizes was fetched
        for user in (corrupt, huge):
            assert emu.member(g.chat, user)["status"] == "member"
        assert g.door_alerts(g.owner) == [] and emu.calls_to("restrictChatMember") == []
        assert await app.store.pending_work(T) == []


def test_a_member_event_survives_its_durable_form():
    event = MemberJoined(
        ChatRef(T, "-1001", "G"), UserRef(T, "7", "Max", "max", "en"), datetime(2024, 5, 1, tzinfo=UTC), "join", "42"
    )
    again = MemberJoined.from_payload(T, json.loads(json.dumps(event.payload())))
    assert again == event and door_message_id(again) == door_message_id(event)
    with pytest.raises(ValueError):
        MemberJoined.from_payload(T, {**event.payload(), "how": "other"})


# --- Matrix, through the real Synapse -------------------------------------------------------------


async def membership(client: HumanClient, room_id: str, user_id: str) -> str | None:
    response = await client.nio.room_get_state_event(room_id, "m.room.member", user_id)
    return getattr(response, "content", {}).get("membership")


async def matrix_door_done(app, room_id: str, user_id: str, timeout: float = 60) -> None:
    """Until Vigil recorded the member's photo as checked here (its own record), with no door item pending."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        member = await app.store.member("matrix", room_id, user_id)
        pending = [w for w in await app.store.pending_work("matrix") if w.message_id.startswith("door:")]
        if member is not None and member.avatar and not pending:
            return
        assert loop.time() < deadline, "the check at the door did not finish"
        await asyncio.sleep(0.1)


@pytest.mark.synapse
async def test_matrix_a_join_with_a_blocked_avatar_is_removed_and_the_moderators_alerted(
    synapse, marker_model, tmp_path, other_photo
):
    bot = new_user(synapse, "vigil")
    cfg = write_matrix_config(tmp_path, synapse, bot, marker_model)
    async with (
        running_matrix_vigil(cfg, matrix_env(bot)) as app,
        people(synapse, "owner", "member", "joiner") as (
            owner,
            member,
            joiner,
        ),
    ):
        room = await protected_room(owner, bot.user_id, members=[member], bot_level=100)
        original = await member.send_image(room.room_id, jpeg(other_photo, 92), "image/jpeg")
        await owner.reply(room.room_id, original, "!vigil block")
        await wait_redacted(owner, room.room_id, original)
        uploaded = await joiner.upload(jpeg(other_photo, 80), "image/jpeg", "me.jpg")
        await joiner.nio.set_avatar(uploaded["url"])
        await owner.invite(room.room_id, joiner.user_id)
        assert await joiner.wait_invite() == room.room_id
        await joiner.join(room.room_id)
        await matrix_door_done(app, room.room_id, joiner.user_id)
        assert (await app.store.member("matrix", room.room_id, joiner.user_id)).avatar_hit is True
        deadline = asyncio.get_running_loop().time() + 30
        while await membership(owner, room.room_id, joiner.user_id) != "leave":
            assert asyncio.get_running_loop().time() < deadline, "the joiner was not removed"
            await asyncio.sleep(0.2)
        inbox = Inbox(owner, bot.user_id)
        await inbox.wait(lambda i: any("Profile photo check" in t for t in i.texts()))
        alert = next(t for t in inbox.texts() if "Profile photo check" in t)
        assert "block list" in alert and "removed them from the room" in alert and "mxc://" not in alert


@pytest.mark.synapse
async def test_matrix_a_members_new_nude_avatar_is_checked_and_they_are_muted(synapse, marker_model, tmp_path, photo):
    bot = new_user(synapse, "vigil")
    cfg = write_matrix_config(tmp_path, synapse, bot, marker_model)
    async with (
        running_matrix_vigil(cfg, matrix_env(bot)) as app,
        people(synapse, "owner", "member") as (
            owner,
            member,
        ),
    ):
        room = await protected_room(owner, bot.user_id, members=[member], bot_level=100)
        uploaded = await member.upload(jpeg(add_marker(photo)), "image/jpeg", "me.jpg")
        await member.nio.set_avatar(uploaded["url"])  # Synapse sends a new m.room.member to each room
        await matrix_door_done(app, room.room_id, member.user_id)
        inbox = Inbox(owner, bot.user_id)
        await inbox.wait(lambda i: any("Profile photo check" in t for t in i.texts()))
        alert = next(t for t in inbox.texts() if "Profile photo check" in t)
        assert "changed their profile photo" in alert and "nudity" in alert and "muted them" in alert
        levels = await owner.nio.room_get_state_event(room.room_id, "m.room.power_levels")
        assert levels.content.get("users", {}).get(member.user_id, 0) < 0
        assert await membership(owner, room.room_id, member.user_id) == "join"


@pytest.mark.synapse
async def test_matrix_the_new_members_hold_removes_a_fresh_members_picture_and_not_an_old_ones(
    synapse, marker_model, tmp_path, photo, other_photo
):
    bot = new_user(synapse, "vigil")
    cfg = write_matrix_config(tmp_path, synapse, bot, marker_model)
    async with (
        running_matrix_vigil(cfg, matrix_env(bot)) as app,
        people(synapse, "owner", "old", "fresh") as (
            owner,
            old,
            fresh,
        ),
    ):
        room_id = await owner.create_room("Choir", invite=[old.user_id], power_levels={bot.user_id: 100})
        assert await old.wait_invite() == room_id
        await old.join(room_id)
        await owner.invite(room_id, bot.user_id)
        await wait_joined(owner, room_id, bot.user_id)
        await owner.send_text(room_id, "!vigil newmedia hold 24h")
        await bot_said(owner, room_id, bot.user_id, "cannot post media for 24h")
        await owner.invite(room_id, fresh.user_id)
        assert await fresh.wait_invite() == room_id
        await fresh.join(room_id)
        deadline = asyncio.get_running_loop().time() + 30
        while await app.store.member("matrix", room_id, fresh.user_id) is None:  # Vigil saw the join
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.1)
        held = await fresh.send_image(room_id, jpeg(photo), "image/jpeg")
        await wait_redacted(owner, room_id, held)
        await bot_said(owner, room_id, bot.user_id, "new members cannot post media yet")
        # Vigil read the old member's join from the room's history when it came in: they joined two
        # days ago, as far as the hold goes
        await app.store.record_join("matrix", room_id, old.user_id, datetime.now(UTC) - timedelta(days=2))
        kept = await old.send_image(room_id, jpeg(other_photo), "image/jpeg")
        deadline = asyncio.get_running_loop().time() + 60
        while not any(r.message_id == kept for r in await app.store.audit_for_group("matrix", room_id)):
            assert asyncio.get_running_loop().time() < deadline, "the old member's picture was not checked"
            await asyncio.sleep(0.2)
        assert not await owner.redacted(room_id, kept)


async def bot_said(client: HumanClient, room_id: str, bot_id: str, words: str, timeout: float = 30) -> None:
    await client.sync_until(
        lambda r, e: r == room_id and getattr(e, "sender", None) == bot_id and words in (getattr(e, "body", "") or ""),
        timeout,
    )
