"""The Bot API emulator, driven by the real python-telegram-bot over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import datetime as dtm
import io
import subprocess
import sys
from pathlib import Path

import aiohttp
import av
import numpy as np
import pytest
from PIL import Image
from telegram import (
    Animation,
    Bot,
    ChatMemberAdministrator,
    ChatMemberBanned,
    ChatMemberLeft,
    ChatMemberMember,
    ChatMemberOwner,
    ChatMemberRestricted,
    ChatPermissions,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    MessageOriginUser,
    Sticker,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest, Conflict, Forbidden, NetworkError, RetryAfter
from telegram.ext import Application, MessageHandler, filters

from tests.support.botapi import BotApiEmulator, NotPermitted, ScenarioError, full_rights

ROOT = Path(__file__).resolve().parents[1]


# --- generated media (benign: gradients and flat colours) ----------------------------------------


def jpeg(width: int = 1000, height: int = 700, seed: int = 0) -> bytes:
    x = np.linspace(0, 255, width, dtype=np.uint8)
    y = np.linspace(0, 255, height, dtype=np.uint8)
    rgb = np.dstack(
        [np.tile(x, (height, 1)), np.tile(y[:, None], (1, width)), np.full((height, width), seed, np.uint8)]
    )
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def webp(size: int = 512) -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA", (size, size), (30, 160, 90, 255)).save(buf, "WEBP")
    return buf.getvalue()


def gif(width: int = 40, height: int = 30) -> bytes:
    frames = [Image.new("RGB", (width, height), (k * 60, 100, 100)) for k in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=500, loop=0)
    return buf.getvalue()


def mp4(width: int = 64, height: int = 48, frames: int = 20) -> bytes:
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for k in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), k * 10, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue()


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture
async def emu():
    async with BotApiEmulator() as emulator:
        yield emulator


@pytest.fixture
async def bot(emu):
    async with Bot(**emu.bot_kwargs()) as b:
        yield b


@pytest.fixture
def world(emu):
    """A supergroup where the bot is an admin that may delete and restrict."""
    owner = emu.add_user("Olga", username="olga")
    admin = emu.add_user("Adam")
    member = emu.add_user("Mia", username="mia_k")
    chat = emu.add_group(
        "Parents 3B",
        creator=owner,
        admins=[admin],
        members=[member],
        bot_rights={"can_delete_messages": True, "can_restrict_members": True},
    )
    return {"owner": owner, "admin": admin, "member": member, "chat": chat}


# --- basics -------------------------------------------------------------------------------------------


async def test_get_me_describes_the_bot_in_privacy_mode(emu, bot):
    me = await bot.get_me()
    assert me.id == emu.bot_id and me.is_bot and me.username == "vigil_test_bot"
    assert me.can_read_all_group_messages is False
    assert [c.method for c in emu.calls][:1] == ["getMe"]


async def test_private_message_needs_a_started_user(emu, bot):
    started, stranger = emu.add_user("Sara"), emu.add_user("Tom")
    emu.start_private(started)
    sent = await bot.send_message(started, "hello")
    assert sent.chat.id == started and sent.text == "hello"
    assert [m["text"] for m in emu.sent_to(started)] == ["hello"]
    with pytest.raises(Forbidden, match="initiate conversation"):
        await bot.send_message(stranger, "hello")
    assert emu.calls_to("sendMessage")[-1].status == 403
    emu.block_bot(started)
    with pytest.raises(Forbidden, match="blocked by the user"):
        await bot.send_message(started, "again")
    assert len(emu.sent_to(started)) == 1


async def test_unknown_chat_and_unknown_method(emu, bot):
    with pytest.raises(BadRequest, match="Chat not found"):
        await bot.send_message(-1009999999999, "x")
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{emu.url}/bot{emu.token}/sendTelepathy", data={"chat_id": "1"}) as resp:
            assert resp.status == 404
            assert await resp.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
        async with http.post(f"{emu.url}/bot123:wrong/getMe") as resp:
            assert resp.status == 401
            assert (await resp.json())["description"] == "Unauthorized"


async def test_json_bodies_and_form_bodies_decode_alike(emu, world):
    emu.start_private(world["member"])
    async with aiohttp.ClientSession() as http:
        url = f"{emu.url}/bot{emu.token}/sendMessage"
        async with http.post(url, json={"chat_id": world["member"], "text": "42"}) as resp:
            assert (await resp.json())["result"]["text"] == "42"
        # a string that looks like JSON stays a string: text is a string parameter
        async with http.post(url, data={"chat_id": str(world["member"]), "text": "[1, 2]"}) as resp:
            assert (await resp.json())["result"]["text"] == "[1, 2]"
    assert [c.params["chat_id"] for c in emu.calls_to("sendMessage")] == [world["member"]] * 2


# --- deleting ----------------------------------------------------------------------------------------


async def test_delete_removes_the_message_and_a_second_delete_fails(emu, bot, world):
    chat = world["chat"]
    mid = emu.post_text(chat, world["member"], "hi all")
    assert await bot.delete_message(chat, mid) is True
    assert emu.messages_in(chat) == []
    assert [m["message_id"] for m in emu.deleted_in(chat)] == [mid]
    with pytest.raises(BadRequest, match="(?i)message to delete not found"):
        await bot.delete_message(chat, mid)


async def test_a_message_older_than_48_hours_cannot_be_deleted(emu, bot, world):
    chat = world["chat"]
    old, young = emu.post_text(chat, world["member"], "old"), emu.post_text(chat, world["member"], "young")
    emu.age_message(chat, old, 49)
    emu.age_message(chat, young, 47)
    with pytest.raises(BadRequest, match="(?i)message can't be deleted for everyone"):
        await bot.delete_message(chat, old)
    assert await bot.delete_message(chat, young)
    assert [m["message_id"] for m in emu.messages_in(chat)] == [old]


async def test_a_plain_member_bot_cannot_delete_others_messages(emu, bot):
    owner, member = emu.add_user("O"), emu.add_user("M")
    chat = emu.add_group("Club", creator=owner, members=[member], bot_rights=None)
    mid = emu.post_text(chat, member, "/help")
    with pytest.raises(BadRequest, match="(?i)^message can't be deleted$"):
        await bot.delete_message(chat, mid)
    own = await bot.send_message(chat, "I need admin rights")
    assert await bot.delete_message(chat, own.message_id)  # its own messages it may delete
    emu.set_bot_rights(chat, {"can_delete_messages": True})
    assert await bot.delete_message(chat, mid)


async def test_delete_messages_is_all_or_nothing_and_skips_missing(emu, bot, world):
    chat = world["chat"]
    a, b = emu.post_text(chat, world["member"], "a"), emu.post_text(chat, world["member"], "b")
    emu.age_message(chat, b, 50)
    with pytest.raises(BadRequest, match="for everyone"):
        await bot.delete_messages(chat, [a, b])
    assert len(emu.messages_in(chat)) == 2
    assert await bot.delete_messages(chat, [a, 999])
    assert [m["message_id"] for m in emu.messages_in(chat)] == [b]


async def test_every_delete_attempt_is_counted_whatever_the_answer(emu, bot, world):
    """A repeated delete is visible: refused (400), skipped by deleteMessages, or failed by injection."""
    chat = world["chat"]
    a, b = emu.post_text(chat, world["member"], "a"), emu.post_text(chat, world["member"], "b")
    assert await bot.delete_message(chat, a)
    with pytest.raises(BadRequest, match="not found"):
        await bot.delete_message(chat, a)
    assert await bot.delete_messages(chat, [a, b])  # a is gone: skipped, and the call still answers True
    emu.fail_next("deleteMessage", times=1, status=500)
    with pytest.raises(NetworkError):
        await bot.delete_message(chat, b)
    assert (emu.deletes_of(chat, a), emu.deletes_of(chat, b), emu.deletes_of(chat, 999)) == (3, 2, 0)
    assert [m["message_id"] for m in emu.deleted_in(chat)] == [a, b]  # what counting deletions would see


# --- injected failures ------------------------------------------------------------------------------


async def test_injected_429_raises_retry_after_and_changes_nothing(emu, bot, world):
    chat = world["chat"]
    mid = emu.post_text(chat, world["member"], "x")
    emu.fail_next("deleteMessage", status=429, retry_after=3)
    with pytest.raises(RetryAfter) as caught:
        await bot.delete_message(chat, mid)
    retry = caught.value._retry_after  # a timedelta in PTB 22 (the public attribute warns)
    assert retry == dtm.timedelta(seconds=3)
    assert len(emu.messages_in(chat)) == 1
    failed = emu.calls_to("deleteMessage")[0]
    assert failed.status == 429 and failed.description == "Too Many Requests: retry after 3"
    assert await bot.delete_message(chat, mid)  # only the next call failed


async def test_injected_500_raises_network_error_times_times(emu, bot):
    emu.fail_next("getMe", status=500, times=2)
    for _ in range(2):
        with pytest.raises(NetworkError, match="Internal Server Error"):
            await bot.get_me()
    assert (await bot.get_me()).id == emu.bot_id
    assert [c.status for c in emu.calls_to("getMe")][-3:] == [500, 500, 200]


async def test_raw_429_response_has_the_real_shape(emu):
    emu.fail_next("*", retry_after=7)
    async with aiohttp.ClientSession() as http, http.post(f"{emu.url}/bot{emu.token}/getMe") as resp:
        assert resp.status == 429
        assert await resp.json() == {
            "ok": False,
            "error_code": 429,
            "description": "Too Many Requests: retry after 7",
            "parameters": {"retry_after": 7},
        }


# --- files ----------------------------------------------------------------------------------------------


async def test_get_file_and_download_return_the_exact_bytes(emu, bot, world):
    data = jpeg()
    emu.post_photo(world["chat"], world["member"], data)
    (update,) = await bot.get_updates()
    largest = update.message.photo[-1]
    tg_file = await bot.get_file(largest.file_id)
    assert tg_file.file_path.endswith(".jpg") and "/photos/file_" in tg_file.file_path
    assert bytes(await tg_file.download_as_bytearray()) == data
    smallest = await (await bot.get_file(update.message.photo[0].file_id)).download_as_bytearray()
    with Image.open(io.BytesIO(bytes(smallest))) as thumb:
        assert max(thumb.size) == 90
    assert emu.calls_to("downloadFile")[0].params["file_path"] == emu.calls_to("getFile")[0].result["file_path"]


async def test_get_file_refuses_files_over_20_mb(emu, bot, world):
    big = emu.upload(b"\0" * (20 * 1024 * 1024 + 1), kind="document", file_name="big.bin")
    emu.post_document(world["chat"], world["member"], big, file_name="big.bin")
    with pytest.raises(BadRequest, match="(?i)file is too big"):
        await bot.get_file(big.file_id)
    with pytest.raises(BadRequest, match="(?i)invalid file_id"):
        await bot.get_file("AgACnonsense")


async def test_send_document_records_the_upload(emu, bot, world):
    emu.start_private(world["admin"])
    payload = b"case,action\n1,deleted\n"
    sent = await bot.send_document(world["admin"], payload, filename="report.csv", caption="Weekly report")
    assert sent.document.file_name == "report.csv" and sent.caption == "Weekly report"
    upload = emu.calls_to("sendDocument")[0].params["document"]
    assert upload.filename == "report.csv" and upload.data == payload
    (doc,) = emu.sent_to(world["admin"])
    assert doc["document"]["file_size"] == len(payload)
    assert emu.file_bytes(doc["document"]["file_id"]) == payload


# --- members and rights ----------------------------------------------------------------------------------


async def test_chat_administrators_parse_into_owner_and_administrators(emu, bot, world):
    admins = await bot.get_chat_administrators(world["chat"])
    by_id = {m.user.id: m for m in admins}
    assert set(by_id) == {world["owner"], world["admin"], emu.bot_id}
    assert isinstance(by_id[world["owner"]], ChatMemberOwner)
    assert isinstance(by_id[world["admin"]], ChatMemberAdministrator)
    me = by_id[emu.bot_id]
    assert isinstance(me, ChatMemberAdministrator)
    assert me.can_delete_messages and me.can_restrict_members and not me.can_promote_members
    assert isinstance(await bot.get_chat_member(world["chat"], world["member"]), ChatMemberMember)
    assert await bot.get_chat_member_count(world["chat"]) == 4
    chat = await bot.get_chat(world["chat"])
    assert chat.title == "Parents 3B" and chat.type == "supergroup"


async def test_restrict_rejects_a_past_until_date_and_applies_a_future_one(emu, bot, world):
    chat, member = world["chat"], world["member"]
    no_media = ChatPermissions(can_send_messages=True)
    past = dtm.datetime.now(dtm.UTC) - dtm.timedelta(minutes=5)
    with pytest.raises(BadRequest, match="(?i)until_date"):
        await bot.restrict_chat_member(chat, member, no_media, until_date=past)
    assert emu.member(chat, member)["status"] == "member"

    until = dtm.datetime.now(dtm.UTC) + dtm.timedelta(hours=1)
    assert await bot.restrict_chat_member(
        chat, member, no_media, until_date=until, use_independent_chat_permissions=True
    )
    restricted = await bot.get_chat_member(chat, member)
    assert isinstance(restricted, ChatMemberRestricted)
    assert restricted.can_send_messages and not restricted.can_send_photos
    assert abs(restricted.until_date.timestamp() - until.timestamp()) < 1
    with pytest.raises(NotPermitted):
        emu.post_photo(chat, member, jpeg())
    emu.post_text(chat, member, "text still works")

    everything = ChatPermissions.all_permissions()
    assert await bot.restrict_chat_member(chat, member, everything, use_independent_chat_permissions=True)
    assert isinstance(await bot.get_chat_member(chat, member), ChatMemberMember)


async def test_restrict_refuses_admins_owner_and_a_bot_without_the_right(emu, bot, world):
    chat, perms = world["chat"], ChatPermissions(can_send_messages=False)
    with pytest.raises(BadRequest, match="(?i)administrator of the chat"):
        await bot.restrict_chat_member(chat, world["admin"], perms)
    with pytest.raises(BadRequest, match="(?i)chat owner"):
        await bot.restrict_chat_member(chat, world["owner"], perms)
    emu.set_bot_rights(chat, {"can_delete_messages": True})
    with pytest.raises(BadRequest, match="(?i)not enough rights to restrict"):
        await bot.restrict_chat_member(chat, world["member"], perms)


async def test_ban_and_unban(emu, bot, world):
    chat, member = world["chat"], world["member"]
    assert await bot.ban_chat_member(chat, member)
    assert isinstance(await bot.get_chat_member(chat, member), ChatMemberBanned)
    with pytest.raises(NotPermitted):
        emu.post_text(chat, member, "let me back")
    assert await bot.unban_chat_member(chat, member, only_if_banned=True)
    assert isinstance(await bot.get_chat_member(chat, member), ChatMemberLeft)
    emu.add_member(chat, member)
    # without only_if_banned, unban makes sure the user is out of the chat, as Telegram does
    assert await bot.unban_chat_member(chat, member)
    assert emu.member(chat, member)["status"] == "left"


async def test_leave_chat_then_the_bot_is_forbidden_there(emu, bot, world):
    assert await bot.leave_chat(world["chat"])
    with pytest.raises(Forbidden, match="not a member of the supergroup"):
        await bot.send_message(world["chat"], "still here?")
    (update,) = await bot.get_updates()
    assert update.my_chat_member.new_chat_member.status == "left"


# --- updates ------------------------------------------------------------------------------------------------


async def test_photo_update_has_valid_photo_sizes_smallest_first(emu, bot, world):
    data = jpeg(1000, 700)
    mid = emu.post_photo(world["chat"], world["member"], data, caption="look")
    (update,) = await bot.get_updates()
    msg = update.message
    assert msg.message_id == mid and msg.chat.id == world["chat"] and msg.from_user.id == world["member"]
    assert msg.caption == "look"
    sides = [max(p.width, p.height) for p in msg.photo]
    assert sides == sorted(sides) and sides[0] == 90 and sides[-1] == 1000
    assert (msg.photo[-1].width, msg.photo[-1].height, msg.photo[-1].file_size) == (1000, 700, len(data))


async def test_album_forward_and_reply_parse(emu, bot, world):
    chat, member, owner = world["chat"], world["member"], world["owner"]
    ids = emu.post_album(chat, member, [jpeg(seed=1), jpeg(seed=2), jpeg(seed=3)], caption="trip")
    emu.post_photo(chat, member, jpeg(seed=4), forward_from=owner, reply_to=ids[0])
    updates = await bot.get_updates()
    album = [u.message for u in updates[:3]]
    assert [m.message_id for m in album] == ids
    assert len({m.media_group_id for m in album}) == 1 and album[0].media_group_id
    assert album[0].caption == "trip" and album[1].caption is None
    forwarded = updates[3].message
    assert isinstance(forwarded.forward_origin, MessageOriginUser)
    assert forwarded.forward_origin.sender_user.id == owner
    assert forwarded.reply_to_message.message_id == ids[0]


async def test_reposting_a_file_ref_keeps_its_ids(emu, bot, world):
    ref = emu.upload(jpeg(), kind="photo")
    emu.post_photo(world["chat"], world["member"], ref)
    emu.post_photo(world["chat"], world["admin"], ref)
    first, second = await bot.get_updates()
    assert first.message.photo[-1].file_unique_id == second.message.photo[-1].file_unique_id == ref.file_unique_id


async def test_sticker_animation_video_and_document_updates_parse(emu, bot, world):
    chat, member = world["chat"], world["member"]
    emu.post_sticker(chat, member, webp(512))
    emu.post_sticker(chat, member, mp4(512, 512, 5), is_video=True)
    emu.post_animation(chat, member, gif(40, 30), file_name="fun.gif")
    emu.post_video(chat, member, mp4(64, 48), caption="clip")
    emu.post_document(chat, member, jpeg(), file_name="photo.jpg")
    sticker, video_sticker, animation, video, document = [u.message for u in await bot.get_updates()]
    assert isinstance(sticker.sticker, Sticker)
    assert (sticker.sticker.type, sticker.sticker.width, sticker.sticker.is_video) == ("regular", 512, False)
    assert video_sticker.sticker.is_video and video_sticker.sticker.height == 512
    assert isinstance(animation.animation, Animation)
    assert (animation.animation.width, animation.animation.height) == (40, 30)
    assert animation.document.file_id == animation.animation.file_id  # as Telegram sends it
    raw_video = video.video.to_dict()  # the wire form; PTB 22's duration attribute warns
    assert (raw_video["width"], raw_video["height"], raw_video["duration"]) == (64, 48, 2)
    assert video.video.thumbnail is not None and video.caption == "clip"
    assert document.document.mime_type == "image/jpeg" and document.document.thumbnail is not None


async def test_edited_media_arrives_as_edited_message(emu, bot, world):
    chat = world["chat"]
    mid = emu.post_photo(chat, world["member"], jpeg(seed=1))
    first = (await bot.get_updates())[0]
    emu.edit_media(chat, mid, jpeg(640, 480, seed=9))
    (update,) = await bot.get_updates(offset=first.update_id + 1)
    edited = update.edited_message
    assert edited is not None and update.message is None
    assert edited.message_id == mid and edited.edit_date is not None
    assert (edited.photo[-1].width, edited.photo[-1].height) == (640, 480)
    assert edited.photo[-1].file_id != first.message.photo[-1].file_id


async def test_privacy_mode_hides_members_photos_from_a_plain_member_bot(emu, bot):
    owner, member = emu.add_user("O"), emu.add_user("M")
    chat = emu.add_group("Club", creator=owner, members=[member], bot_rights=None)
    emu.post_photo(chat, member, jpeg())
    emu.post_text(chat, member, "/status@vigil_test_bot")
    emu.post_text(chat, member, "/help@some_other_bot")
    own = await bot.send_message(chat, "please make me an admin")
    emu.post_text(chat, owner, "ok", reply_to=own.message_id)
    updates = await bot.get_updates()
    assert [u.message.text for u in updates] == ["/status@vigil_test_bot", "ok"]
    emu.set_bot_rights(chat, full_rights())
    emu.post_photo(chat, member, jpeg())
    later = await bot.get_updates(offset=updates[-1].update_id + 1)
    assert later[0].my_chat_member.new_chat_member.status == "administrator"
    assert later[1].message.photo


async def test_adding_the_bot_queues_my_chat_member_and_the_service_message(emu, bot):
    owner = emu.add_user("O")
    chat = emu.add_group("New group", creator=owner, bot_present=False)
    emu.add_bot_to_group(chat, owner, rights=None)
    first, second = await bot.get_updates()
    assert first.my_chat_member.old_chat_member.status == "left"
    assert first.my_chat_member.new_chat_member.status == "member"
    assert first.my_chat_member.from_user.id == owner
    assert [u.id for u in second.message.new_chat_members] == [emu.bot_id]


async def test_every_world_change_gives_updates_ptb_can_parse(emu, bot, world):
    chat, member = world["chat"], world["member"]
    newcomer = emu.add_user("Nora <script>", username="nora")
    emu.start_private(member)
    emu.add_member(chat, newcomer)
    emu.leave(chat, newcomer)
    emu.post_text(member, member, "hello bot")
    emu.edit_text(chat, emu.post_photo(chat, member, jpeg(), caption="a"), "b")
    emu.block_bot(member)
    emu.remove_bot_from_group(chat, world["owner"])
    updates = await bot.get_updates()
    kinds = [next(k for k in ("message", "edited_message", "my_chat_member") if getattr(u, k)) for u in updates]
    assert kinds == [
        "message",
        "message",
        "message",
        "message",
        "message",
        "edited_message",
        "my_chat_member",
        "my_chat_member",
    ]
    assert updates[1].message.new_chat_members[0].first_name == "Nora <script>"
    assert updates[2].message.left_chat_member.id == newcomer
    assert updates[3].message.chat.type == "private" and updates[3].message.text == "hello bot"
    assert updates[5].edited_message.caption == "b"
    assert updates[6].my_chat_member.chat.type == "private"
    assert updates[6].my_chat_member.new_chat_member.status == "kicked"
    assert updates[7].my_chat_member.new_chat_member.status == "kicked"
    assert updates[7].my_chat_member.chat.id == chat


@pytest.mark.filterwarnings("ignore:Please use 'Bot.getUpdates'")
async def test_a_raw_update_is_served_as_given(emu, bot):
    # a malformed update (no date) makes PTB's parser fail: the bot under test must survive this
    update_id = emu.queue_raw_update({"message": {"message_id": 1, "chat": {"id": 1, "type": "private"}}})
    with pytest.raises(KeyError, match="date"):
        await bot.get_updates()
    raw = await bot.do_api_request("getUpdates", api_kwargs={"offset": 0, "timeout": 0})
    assert raw == [{"update_id": update_id, "message": {"message_id": 1, "chat": {"id": 1, "type": "private"}}}]
    await bot.do_api_request("getUpdates", api_kwargs={"offset": update_id + 1, "timeout": 0})
    assert emu.pending_updates() == 0


async def test_unrestrict_with_the_chats_default_permissions_makes_a_member_again(emu, bot):
    owner, member = emu.add_user("O"), emu.add_user("M")
    chat = emu.add_group(
        "Team",
        creator=owner,
        members=[member],
        bot_rights=full_rights(),
        permissions={"can_send_messages": True, "can_send_photos": True, "can_invite_users": True},
    )
    assert await bot.restrict_chat_member(chat, member, ChatPermissions.no_permissions())
    assert emu.member(chat, member)["status"] == "restricted"
    defaults = (await bot.get_chat(chat)).permissions
    assert defaults.can_send_photos and not defaults.can_change_info
    assert await bot.restrict_chat_member(chat, member, defaults, use_independent_chat_permissions=True)
    assert emu.member(chat, member)["status"] == "member"


async def test_offset_confirms_and_allowed_updates_filters(emu, bot, world):
    chat = world["chat"]
    emu.post_text(chat, world["member"], "one")
    emu.post_text(chat, world["member"], "two")
    updates = await bot.get_updates(limit=1)
    assert len(updates) == 1 and emu.pending_updates() == 2
    await bot.get_updates(offset=updates[0].update_id + 1, timeout=0)
    assert emu.pending_updates() == 1
    await bot.get_updates(offset=-1)
    # chat_member updates come only when asked for
    emu.promote(chat, world["member"])
    assert not any("chat_member" in u for u in emu.peek_updates())
    rest = await bot.get_updates(offset=updates[0].update_id + 2, allowed_updates=Update.ALL_TYPES)
    assert rest == ()
    emu.demote(chat, world["member"])
    (demoted,) = await bot.get_updates()
    assert demoted.chat_member.new_chat_member.status == "member"


async def test_delete_webhook_can_drop_pending_updates(emu, bot, world):
    emu.post_text(world["chat"], world["member"], "x")
    info = await bot.get_webhook_info()
    assert info.url == "" and info.pending_update_count == 1
    assert await bot.delete_webhook(drop_pending_updates=True)
    assert emu.pending_updates() == 0


async def test_long_poll_returns_when_an_update_arrives(emu, bot, world):
    poll = asyncio.create_task(bot.get_updates(timeout=30))
    await emu.wait_for(lambda: emu.polling, what="a pending long poll")
    emu.post_text(world["chat"], world["member"], "wake up")
    updates = await asyncio.wait_for(poll, 5)
    assert [u.message.text for u in updates] == ["wake up"]


async def test_a_second_poller_terminates_the_first_with_conflict(emu, bot):
    first = asyncio.create_task(bot.get_updates(timeout=30))
    await emu.wait_for(lambda: emu.polling)
    async with Bot(**emu.bot_kwargs()) as second_instance:
        assert await second_instance.get_updates(timeout=0) == ()
    with pytest.raises(Conflict, match="only one bot instance"):
        await asyncio.wait_for(first, 5)


async def test_stop_wakes_a_pending_long_poll():
    emu = BotApiEmulator()
    await emu.start()
    async with Bot(**emu.bot_kwargs()) as bot:
        poll = asyncio.create_task(bot.get_updates(timeout=30))
        await emu.wait_for(lambda: emu.polling)
        await emu.stop()
        assert await asyncio.wait_for(poll, 5) == ()
    assert emu.calls_to("getUpdates")[-1].status == 200


async def test_wait_for_fails_clearly_with_the_recent_calls(emu, bot):
    await bot.get_me()
    with pytest.raises(AssertionError, match=r"(?s)a deletion not met within 0.2 s.*getMe 200"):
        await emu.wait_for(lambda: emu.calls_to("deleteMessage"), timeout=0.2, what="a deletion")


# --- texts, keyboards, buttons, commands --------------------------------------------------------------


async def test_html_and_markdown_are_parsed_or_refused_like_telegram(emu, bot, world):
    emu.start_private(world["member"])
    to = world["member"]
    sent = await bot.send_message(to, "Deleted a photo by <b>Mia</b> &amp; friends", parse_mode=ParseMode.HTML)
    assert sent.text == "Deleted a photo by Mia & friends"
    assert [(e.type, e.offset, e.length) for e in sent.entities] == [("bold", 19, 3)]
    for bad, mode in [
        ("score < 3", ParseMode.HTML),
        ("<b>open", ParseMode.HTML),
        ("<x>y</x>", ParseMode.HTML),
        ("Done.", ParseMode.MARKDOWN_V2),
        ("user snake_case", ParseMode.MARKDOWN),
    ]:
        with pytest.raises(BadRequest, match="(?i)can't parse entities"):
            await bot.send_message(to, bad, parse_mode=mode)
    ok = await bot.send_message(to, r"*bold* and \_not italic\_ \.", parse_mode=ParseMode.MARKDOWN_V2)
    assert ok.text == "bold and _not italic_ ." and ok.entities[0].type == "bold"
    with pytest.raises(BadRequest, match="(?i)message text is empty"):
        await bot.send_message(to, "   ")
    with pytest.raises(BadRequest, match="(?i)message is too long"):
        await bot.send_message(to, "x" * 4097)


async def test_buttons_callbacks_and_edits(emu, bot, world):
    admin = world["admin"]
    emu.start_private(admin)
    with pytest.raises(BadRequest, match="(?i)BUTTON_DATA_INVALID"):
        await bot.send_message(
            admin, "x", reply_markup=InlineKeyboardMarkup([[InlineKeyboardButton("Too long", callback_data="x" * 65)]])
        )
    keyboard = InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton("Restore", callback_data="restore:1"),
                InlineKeyboardButton("Ban", callback_data="ban:1"),
            ]
        ]
    )
    alert = await bot.send_message(admin, "Photo deleted", reply_markup=keyboard)
    await bot.get_updates()  # the /start
    query_id = emu.press_button(admin, alert.message_id, admin, "ban:1")
    with pytest.raises(ScenarioError):
        emu.press_button(admin, alert.message_id, admin, "nope")
    updates = await bot.get_updates(offset=-1)
    query = updates[-1].callback_query
    assert query.id == query_id and query.data == "ban:1" and query.message.message_id == alert.message_id
    assert await bot.answer_callback_query(query_id, "Banned")
    assert emu.callback_answer(query_id)["text"] == "Banned"
    with pytest.raises(BadRequest, match="(?i)query is too old"):
        await bot.answer_callback_query(query_id, "again")
    edited = await bot.edit_message_text("Photo deleted; user banned", admin, alert.message_id)
    assert edited.text == "Photo deleted; user banned" and edited.reply_markup is None  # no markup: keyboard gone
    with pytest.raises(BadRequest, match="(?i)message is not modified"):
        await bot.edit_message_text("Photo deleted; user banned", admin, alert.message_id)
    assert await bot.edit_message_reply_markup(admin, alert.message_id, reply_markup=keyboard)
    assert emu.message(admin, alert.message_id)["reply_markup"]["inline_keyboard"][0][1]["callback_data"] == "ban:1"


async def test_commands_and_chat_actions(emu, bot, world):
    from telegram import BotCommand, BotCommandScopeAllGroupChats

    commands = [BotCommand("status", "Show what Vigil does here"), BotCommand("report", "Report a message")]
    assert await bot.set_my_commands(commands, scope=BotCommandScopeAllGroupChats(), language_code="es")
    assert await bot.get_my_commands() == ()
    got = await bot.get_my_commands(scope=BotCommandScopeAllGroupChats(), language_code="es")
    assert [c.command for c in got] == ["status", "report"]
    with pytest.raises(BadRequest, match="(?i)BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand("Bad-Name", "x")])
    assert await bot.send_chat_action(world["chat"], "typing")
    with pytest.raises(BadRequest, match="(?i)wrong parameter action"):
        await bot.send_chat_action(world["chat"], "dancing")


# --- PTB's own start-up sequence -----------------------------------------------------------------------------


async def test_a_full_ptb_application_receives_a_photo_and_deletes_it(emu, world):
    chat = world["chat"]
    app = Application.builder().token(emu.token).base_url(f"{emu.url}/bot").base_file_url(f"{emu.url}/file/bot").build()
    seen: list[int] = []

    async def on_photo(update: Update, context) -> None:
        data = await (await update.message.photo[-1].get_file()).download_as_bytearray()
        seen.append(len(data))
        await update.message.delete()

    app.add_handler(MessageHandler(filters.PHOTO, on_photo))
    await app.initialize()
    await app.start()
    await app.updater.start_polling(poll_interval=0, timeout=5)
    try:
        photo = jpeg()
        mid = emu.post_photo(chat, world["member"], photo)
        await emu.wait_for(lambda: emu.calls_to("deleteMessage"), what="the bot deleting the photo")
    finally:
        await app.updater.stop()
        await app.stop()
        await app.shutdown()
    assert seen == [len(photo)]
    assert emu.message(chat, mid) is None
    methods = [c.method for c in emu.calls]
    assert methods[:3] == ["getMe", "deleteWebhook", "getUpdates"]
    assert emu.pending_updates() == 0  # PTB confirmed the update on stop


async def test_standalone_mode_serves_a_subprocess_client(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.botapi", "--port", "0"], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 20)
        url, token = line.split()
        async with Bot(token, base_url=f"{url}/bot", base_file_url=f"{url}/file/bot") as bot:
            assert (await bot.get_me()).id == int(token.split(":")[0])
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.returncode == 0
