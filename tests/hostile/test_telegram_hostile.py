"""A member who tries to get round Vigil on Telegram: the real python-telegram-bot against the Bot API emulator.

Every picture a client shows for a message is checked (edits in one second, thumbnails, covers,
cover art); the sender of a post made as a chat is that chat; a group upgraded to a supergroup
keeps its settings and lists.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from bot.events import ChatRef
from bot.store import Store
from tests.support.botapi import BotApiEmulator, full_rights
from tests.support.detector_images import file_images
from tests.support.imagegen import mp4_bytes
from tests.support.marker_model import add_marker
from tests.support.vigil_harness import jpeg, running_vigil, write_config

FULL_RIGHTS = full_rights()
PLACEHOLDERS = {136817688, 1087968824, 777000}


class Group:
    """A group with an owner, a second admin, a member, and Vigil as an admin."""

    def __init__(self, emu: BotApiEmulator, *, kind: str = "supergroup") -> None:
        self.emu = emu
        self.owner = emu.add_user("Olivia", username="olivia", language_code="en")
        self.admin = emu.add_user("Ana", username="ana", language_code="en")
        self.member = emu.add_user("Max", username="max")
        self.chat = emu.add_group(
            "Year 9 parents",
            creator=self.owner,
            admins=[self.admin],
            members=[self.member],
            bot_rights=FULL_RIGHTS,
            kind=kind,
        )
        emu.start_private(self.owner)
        emu.start_private(self.admin)

    def alerts(self, user: int) -> list[dict]:
        """Alerts (their first message) carry the details button."""
        return [m for m in self.emu.sent_to(user) if "details:" in json.dumps(m.get("reply_markup") or {})]

    async def details(self, user: int, alert: dict) -> str:
        """Asks for an alert's second message (who posted it, ids, findings) and returns its text."""

        def shown() -> list[dict]:
            return [m for m in self.emu.sent_to(user) if "export:" in json.dumps(m.get("reply_markup") or {})]

        before = len(shown())
        data = next(
            b["callback_data"]
            for row in alert["reply_markup"]["inline_keyboard"]
            for b in row
            if b["callback_data"].startswith("details:")
        )
        self.emu.press_button(user, alert["message_id"], user, data)
        await self.emu.wait_for(lambda: len(shown()) > before, timeout=30)
        return shown()[-1]["text"]

    def present(self, message_id: int, chat: int | None = None) -> bool:
        return any(m["message_id"] == message_id for m in self.emu.messages_in(chat or self.chat))


async def finished(app, chat: int, message_id: int, count: int, timeout: float = 30) -> None:
    """Wait for Vigil's own record: ``count`` work items of the message finished, none pending."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        async with app.core.store._db.read() as c:
            rows = await c.execute_fetchall(
                "SELECT finished_at FROM work WHERE platform = 'telegram' AND chat_id = ? AND message_id = ?",
                (str(chat), str(message_id)),
            )
        done = sum(1 for r in rows if r[0] is not None)
        if done >= count and done == len(rows):
            return
        if loop.time() > deadline:
            raise AssertionError(f"{done} of {len(rows)} work items of message {message_id} finished, expected {count}")
        await asyncio.sleep(0.05)


async def scans_of(app, chat: int, message_id: int) -> list[dict]:
    async with app.core.store._db.read() as c:
        rows = await c.execute_fetchall(
            "SELECT label, decision, sender_id, sender_name FROM audit"
            " WHERE kind = 'scan' AND chat_id = ? AND message_id = ?",
            (str(chat), str(message_id)),
        )
    return [dict(zip(("label", "decision", "sender_id", "sender_name"), r, strict=False)) for r in rows]


def no_call_on_placeholders(emu: BotApiEmulator) -> None:
    for method in ("banChatMember", "restrictChatMember"):
        assert not [c for c in emu.calls_to(method) if int(c.params.get("user_id", 0)) in PLACEHOLDERS]


# --- every version and every picture of a message --------------------------------------------


async def test_two_media_edits_in_one_second_are_both_checked(emu, tmp_path, marker_model, photo, other_photo):
    g = Group(emu)
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)) as app:
        mid = emu.post_photo(g.chat, g.member, jpeg(photo))
        await finished(app, g.chat, mid, 1)
        second = int(datetime.now(UTC).timestamp())
        emu.edit_media(g.chat, mid, jpeg(other_photo), edit_date=second)
        await finished(app, g.chat, mid, 2)  # the first edit was checked and its work is done
        assert g.present(mid)
        emu.edit_media(g.chat, mid, jpeg(add_marker(photo)), edit_date=second)  # same edit_date
        await emu.wait_for(lambda: not g.present(mid), timeout=20)
        await emu.wait_for(lambda: len(g.alerts(g.owner)) == 1 and len(g.alerts(g.admin)) == 1)
        await finished(app, g.chat, mid, 3)
        assert len(g.alerts(g.owner)) == 1


def _tgs() -> bytes:
    import gzip

    lottie = {"v": "5.5.2", "fr": 60, "ip": 0, "op": 60, "w": 512, "h": 512, "layers": []}
    return gzip.compress(json.dumps(lottie).encode())


@pytest.mark.parametrize(
    "form",
    [
        "video_thumbnail",
        "video_cover",
        "animation_thumbnail",
        "document_thumbnail",
        "audio_cover_art",
        "video_note_thumbnail",
        "animated_sticker_thumbnail",
    ],
)
async def test_a_hit_in_any_picture_a_client_shows_deletes_the_message(emu, tmp_path, marker_model, photo, form):
    g = Group(emu)
    marked = jpeg(np.ascontiguousarray(add_marker(photo, 0.35)))
    clean_video = mp4_bytes([photo] * 4, fps=4)
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)) as app:
        if form == "video_thumbnail":
            mid = emu.post_video(g.chat, g.member, clean_video, thumbnail=marked)
        elif form == "video_cover":
            mid = emu.post_video(g.chat, g.member, clean_video, cover=marked)
        elif form == "animation_thumbnail":
            mid = emu.post_animation(g.chat, g.member, clean_video, thumbnail=marked)
        elif form == "document_thumbnail":  # not an image at all: only its thumbnail is a picture
            mid = emu.post_document(
                g.chat,
                g.member,
                b"%PDF-1.4\n%\xe2\xe3\n" + b"0" * 500,
                file_name="homework.pdf",
                mime="application/pdf",
                thumbnail=marked,
            )
        elif form == "audio_cover_art":
            mid = emu.post_audio(g.chat, g.member, b"ID3\x04" + b"\x00" * 800, title="Song", thumbnail=marked)
        elif form == "video_note_thumbnail":
            square = np.ascontiguousarray(photo[:400, :400])
            mid = emu.post_video_note(g.chat, g.member, mp4_bytes([square] * 4, fps=4), thumbnail=marked)
        else:
            mid = emu.post_sticker(g.chat, g.member, _tgs(), is_animated=True, thumbnail=marked)
        await emu.wait_for(lambda: not g.present(mid), timeout=30)
        await emu.wait_for(lambda: len(g.alerts(g.owner)) == 1)
        where = "cover" if form in ("video_cover", "audio_cover_art") else "thumbnail"
        assert where in g.alerts(g.owner)[0]["text"]
        await finished(app, g.chat, mid, 1)


async def test_a_text_quoting_an_image_from_another_chat_is_checked(emu, tmp_path, marker_model, photo):
    g = Group(emu)
    stranger = emu.add_user("Stranger")
    elsewhere = emu.add_channel("Elsewhere", owner=stranger)
    emu.post_in_channel(elsewhere, stranger, jpeg(add_marker(photo)))  # not linked: only its own subscribers see it
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)) as app:
        mid = emu.post_text(g.chat, g.member, "look at this", quote_from=(elsewhere, 1))
        await emu.wait_for(lambda: not g.present(mid), timeout=20)
        await emu.wait_for(lambda: len(g.alerts(g.owner)) == 1)
        assert "quotes" in g.alerts(g.owner)[0]["text"]
        await finished(app, g.chat, mid, 1)


async def test_one_message_with_two_hits_is_checked_twice_and_alerted_once(emu, tmp_path, marker_model, photo):
    g = Group(emu)
    cfg = write_config(tmp_path, emu.url, marker_model, groups="neutral_notice = true")
    marked = add_marker(photo, 0.35)
    async with running_vigil(cfg) as app:
        mid = emu.post_video(g.chat, g.member, mp4_bytes([marked] * 4, fps=4), thumbnail=jpeg(marked))
        await emu.wait_for(lambda: not g.present(mid), timeout=30)
        await finished(app, g.chat, mid, 2)  # the video and its thumbnail: two work items, both done
        scans = await scans_of(app, g.chat, mid)
        assert len(scans) == 2 and all(s["decision"] == "delete" for s in scans)  # both in the audit
        assert len(g.alerts(g.owner)) == 1 and len(g.alerts(g.admin)) == 1
        assert len([c for c in emu.calls_to("deleteMessage") if c.ok]) == 1
        notices = [m for m in emu.messages_in(g.chat) if m["from"]["id"] == emu.bot_id]
        assert len(notices) == 1  # "an image was removed", once


# --- who sent it ------------------------------------------------------------------------------


def _channel(emu: BotApiEmulator, g: Group, title: str, username: str | None = None) -> int:
    channel = emu.add_channel(title, owner=g.member, username=username)
    return channel


@pytest.mark.parametrize("action", ["ban", "mute"])
async def test_a_post_made_as_a_channel_names_the_channel_and_sanctions_the_chat(
    emu, tmp_path, marker_model, photo, action
):
    g = Group(emu)
    channel = _channel(emu, g, "Spicy memes", "spicymemes")
    groups = 'action = "ban"' if action == "ban" else 'action = "mute"\nmute_duration = "12h"'
    async with running_vigil(write_config(tmp_path, emu.url, marker_model, groups=groups)) as app:
        mid = emu.post_photo(g.chat, g.member, jpeg(add_marker(photo)), sender_chat=channel)
        await emu.wait_for(lambda: not g.present(mid), timeout=20)
        await emu.wait_for(lambda: len(g.alerts(g.owner)) == 1)
        await finished(app, g.chat, mid, 1)
        text = g.alerts(g.owner)[0]["text"]
        details = await g.details(g.owner, g.alerts(g.owner)[0])
        assert "Spicy memes" in details and str(channel) in details and "channel" in details
        no_call_on_placeholders(emu)
        if action == "ban":
            (ban,) = emu.calls_to("banChatSenderChat")
            assert ban.ok and int(ban.params["sender_chat_id"]) == channel and int(ban.params["chat_id"]) == g.chat
            assert "banned" in text.lower()
        else:
            assert emu.calls_to("banChatSenderChat") == [] and emu.calls_to("restrictChatMember") == []
            assert "cannot be muted" in text
        (scan,) = await scans_of(app, g.chat, mid)
        assert scan["sender_id"] == str(channel) and scan["sender_name"] == "Spicy memes"


async def test_the_ban_button_on_a_channels_post_bans_the_channel(emu, tmp_path, marker_model, photo):
    g = Group(emu)
    channel = _channel(emu, g, "Spicy memes")
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)):
        mid = emu.post_photo(g.chat, g.member, jpeg(add_marker(photo)), sender_chat=channel)
        await emu.wait_for(lambda: len(g.alerts(g.owner)) == 1 and not g.present(mid), timeout=20)
        alert = g.alerts(g.owner)[0]
        ban = next(
            b["callback_data"]
            for row in alert["reply_markup"]["inline_keyboard"]
            for b in row
            if b["callback_data"].startswith("ban:")
        )
        emu.press_button(g.owner, alert["message_id"], g.owner, ban)
        await emu.wait_for(lambda: len(emu.calls_to("banChatSenderChat")) == 1)
        assert int(emu.calls_to("banChatSenderChat")[0].params["sender_chat_id"]) == channel
        no_call_on_placeholders(emu)


async def test_an_anonymous_admins_post_is_an_admins_post(emu, tmp_path, marker_model, photo):
    g = Group(emu)
    emu.set_anonymous(g.chat, g.admin)
    async with running_vigil(write_config(tmp_path, emu.url, marker_model, groups='action = "ban"')) as app:
        mid = emu.post_photo(g.chat, g.admin, jpeg(add_marker(photo)), sender_chat=g.chat)
        await emu.wait_for(lambda: len(g.alerts(g.owner)) == 1, timeout=20)
        await finished(app, g.chat, mid, 1)
        assert g.present(mid)  # reported, not deleted: like any admin's post
        assert "anonymous admin" in await g.details(g.owner, g.alerts(g.owner)[0])
        assert emu.calls_to("banChatSenderChat") == []
        no_call_on_placeholders(emu)


async def test_an_automatic_forward_from_the_linked_channel_is_checked_and_named(emu, tmp_path, marker_model, photo):
    g = Group(emu)
    channel = emu.add_channel("Year 9 news", owner=g.owner)
    emu.link_channel(g.chat, channel)
    async with running_vigil(write_config(tmp_path, emu.url, marker_model, groups='action = "ban"')) as app:
        mid = emu.post_in_channel(channel, g.owner, jpeg(add_marker(photo)))
        await emu.wait_for(lambda: not g.present(mid), timeout=20)
        await emu.wait_for(lambda: len(g.alerts(g.owner)) == 1)
        await finished(app, g.chat, mid, 1)
        text = await g.details(g.owner, g.alerts(g.owner)[0])
        assert "linked channel" in text and "Year 9 news" in text
        assert emu.calls_to("banChatSenderChat") == []  # the group's own channel is never banned by Vigil
        no_call_on_placeholders(emu)


async def test_exempting_by_reply_exempts_that_channel_never_the_placeholder(
    emu, tmp_path, marker_model, photo, other_photo
):
    g = Group(emu)
    friendly = _channel(emu, g, "School news")
    other = _channel(emu, g, "Someone else")
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)) as app:
        hello = emu.post_text(g.chat, g.member, "hello", sender_chat=friendly)
        emu.post_text(g.chat, g.owner, "/vigil exempt", reply_to=hello)
        await emu.wait_for(
            lambda: any(
                "exempt" in (m.get("text") or "") for m in emu.messages_in(g.chat) if m["from"]["id"] == emu.bot_id
            )
        )
        assert await app.core.store.is_exempt("telegram", str(g.chat), str(friendly))
        assert not await app.core.store.is_exempt("telegram", str(g.chat), "136817688")
        # another channel shares the placeholder user: it is not exempt
        hit = emu.post_photo(g.chat, g.member, jpeg(add_marker(photo)), sender_chat=other)
        await emu.wait_for(lambda: not g.present(hit), timeout=20)
        # the exempt channel's hit is reported, not deleted
        kept = emu.post_photo(g.chat, g.member, jpeg(add_marker(other_photo)), sender_chat=friendly)
        await emu.wait_for(lambda: len(g.alerts(g.owner)) == 2, timeout=20)
        await finished(app, g.chat, kept, 1)
        assert g.present(kept)
        # and the placeholder's id is refused outright
        emu.post_text(g.chat, g.owner, "/vigil exempt 136817688")
        await emu.wait_for(lambda: any("shared" in (m.get("text") or "") for m in emu.messages_in(g.chat)))
        assert not await app.core.store.is_exempt("telegram", str(g.chat), "136817688")


# --- group -> supergroup -------------------------------------------------------------------------


async def test_a_group_upgraded_to_a_supergroup_keeps_its_settings_list_and_exemptions(
    emu, tmp_path, marker_model, photo, other_photo
):
    g = Group(emu, kind="group")
    trusted = emu.add_user("Tess")
    emu.add_member(g.chat, trusted)
    admins_chat = emu.add_group("Admins", creator=g.owner, admins=[g.admin], bot_rights=FULL_RIGHTS, kind="group")
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)) as app:
        original = emu.post_photo(g.chat, g.member, jpeg(other_photo, 92))
        emu.post_text(g.chat, g.owner, "/block", reply_to=original)
        await emu.wait_for(lambda: not g.present(original), timeout=20)
        hello = emu.post_text(g.chat, trusted, "hi")
        emu.post_text(g.chat, g.owner, "/vigil exempt", reply_to=hello)
        emu.post_text(g.chat, g.owner, "/vigil action ban")
        emu.post_text(admins_chat, g.owner, f"/vigil logchat {g.chat}")
        old = ChatRef("telegram", str(g.chat))
        await emu.wait_for(lambda: any("receives" in (m.get("text") or "") for m in emu.messages_in(admins_chat)))
        for _ in range(200):
            if (await app.core.group_settings(old)).action == "ban" and await app.core.store.is_exempt(
                "telegram", str(g.chat), str(trusted)
            ):
                break
            await asyncio.sleep(0.05)

        new_admins = emu.upgrade_group(admins_chat, g.owner)  # the log chat moves first
        new = emu.upgrade_group(g.chat, g.owner)
        chat = ChatRef("telegram", str(new))
        for _ in range(200):
            group = await app.core.store.get_group("telegram", str(new))
            if group is not None and group.settings.get("logchat") == str(new_admins):
                break
            await asyncio.sleep(0.05)
        assert (await app.core.group_settings(chat)).action == "ban"
        assert await app.core.store.get_group("telegram", str(g.chat)) is None

        copy = emu.post_photo(new, g.member, jpeg(other_photo, 70))  # the blocked image, in the new supergroup
        await emu.wait_for(lambda: not g.present(copy, new), timeout=20)
        await emu.wait_for(
            lambda: any(
                int(c.params["chat_id"]) == new and int(c.params["user_id"]) == g.member
                for c in emu.calls_to("banChatMember")
                if c.ok
            )
        )
        kept = emu.post_photo(new, trusted, jpeg(add_marker(photo)))
        await finished(app, new, kept, 1)
        assert g.present(kept, new)  # still exempt there


async def test_migrate_group_moves_everything_once_and_keeps_what_the_new_id_has(tmp_path):
    store = await Store.open(tmp_path / "vigil.sqlite3")
    try:
        await store.update_settings("telegram", "-41", {"action": "ban", "group_photos": True, "language": "es"})
        await store.upsert_group("telegram", "-41", "Parents")
        await store.add_exemption("telegram", "-41", "7")
        own = await store.create_list("parents-block", kind="block", scope="group", platform="telegram", chat_id="-41")
        shared = await store.create_list("shared", kind="block")
        await store.follow("telegram", "-41", shared.id)
        owner = await store.member_owner("telegram", "7", name="Tess", create=True)
        photo = await store.add_protected_photo(
            owner.id,
            "A" * 32,
            source="group",
            platform="telegram",
            chat_id="-41",
            expires_at=datetime.now(UTC) + timedelta(days=3),
        )
        await store.update_settings("telegram", "-99", {"logchat": "-41"})  # a group whose log chat it is
        # the new supergroup already wrote a row (a message there came first) and has one setting of its own
        await store.update_settings("telegram", "-10042", {"language": "en"})
        await store.add_exemption("telegram", "-10042", "7")

        assert await store.migrate_group("telegram", "-41", "-10042")
        assert not await store.migrate_group("telegram", "-41", "-10042")  # the second service message

        group = await store.get_group("telegram", "-10042")
        assert group.settings == {"action": "ban", "group_photos": True, "language": "en"} and group.title == "Parents"
        assert await store.get_group("telegram", "-41") is None
        assert [e.user_id for e in await store.exemptions("telegram", "-10042")] == ["7"]
        assert {lst.id for lst in await store.lists_for_group("telegram", "-10042")} == {own.id, shared.id}
        assert (await store.get_group("telegram", "-99")).settings["logchat"] == "-10042"
        async with store._db.read() as c:
            row = await (await c.execute("SELECT chat_id FROM protected_photos WHERE id = ?", (photo.id,))).fetchone()
        assert row[0] == "-10042"
    finally:
        await store.close()


# --- values bounded where they enter ---------------------------------------------------------------


async def test_impossible_values_are_skipped_and_a_lying_thumbnail_size_is_still_checked(
    emu, tmp_path, marker_model, photo
):
    g = Group(emu)
    chat_json = {"id": g.chat, "type": "supergroup", "title": "Year 9 parents"}
    member = {"id": g.member, "is_bot": False, "first_name": "Max"}
    bad = emu.upload(jpeg(add_marker(photo)), kind="photo", mime="image/jpeg")
    # a message id no Telegram message has: logged and skipped, its file never fetched
    emu.queue_raw_update(
        {
            "message": {
                "message_id": -5,
                "date": 1_700_000_000,
                "chat": chat_json,
                "from": member,
                "photo": [
                    {
                        "file_id": bad.file_id,
                        "file_unique_id": bad.file_unique_id,
                        "width": 512,
                        "height": 512,
                        "file_size": bad.size,
                    }
                ],
            }
        }
    )
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)) as app:
        # a document whose thumbnail declares an impossible size: the size is unknown, the download bounded
        thumb = emu.upload(
            jpeg(np.ascontiguousarray(add_marker(photo, 0.35)[::2, ::2])), kind="thumbnail", mime="image/jpeg"
        )
        doc = emu.upload(b"%PDF-1.4\n" + b"0" * 300, kind="document", mime="application/pdf", file_name="a.pdf")
        mid = 4242
        msg = {
            "message_id": mid,
            "date": int(datetime.now(UTC).timestamp()),
            "chat": chat_json,
            "from": member,
            "document": {
                "file_id": doc.file_id,
                "file_unique_id": doc.file_unique_id,
                "file_name": "a.pdf",
                "mime_type": "application/pdf",
                "file_size": doc.size,
                "thumbnail": {
                    "file_id": thumb.file_id,
                    "file_unique_id": thumb.file_unique_id,
                    "width": 256,
                    "height": 256,
                    "file_size": 2**62,
                },
            },
        }
        emu.queue_raw_update({"message": msg})
        await finished(app, g.chat, mid, 1)
        assert (await scans_of(app, g.chat, mid))[0]["decision"] == "delete"
        assert not [c for c in emu.calls_to("getFile") if c.params.get("file_id") == bad.file_id]
        async with app.core.store._db.read() as c:
            rows = await c.execute_fetchall("SELECT 1 FROM work WHERE message_id = '-5'")
        assert rows == []


# --- the emulator answers these as Telegram does ----------------------------------------------------


async def test_the_emulator_models_chats_posting_covers_and_group_upgrades_as_telegram_does(emu, photo):
    from telegram import Bot
    from telegram.error import BadRequest, ChatMigrated

    from tests.support.botapi import NotPermitted

    g = Group(emu, kind="group")
    channel = emu.add_channel("News", owner=g.member)
    emu.set_anonymous(g.chat, g.admin)
    bot = Bot(**emu.bot_kwargs())
    await bot.initialize()
    try:
        with pytest.raises(BadRequest, match="(?i)only for supergroups"):
            await bot.ban_chat_sender_chat(g.chat, channel)
        with pytest.raises(NotPermitted):  # basic groups have no "send as"
            emu.post_photo(g.chat, g.member, jpeg(photo), sender_chat=channel)
        with pytest.raises(NotPermitted):  # only anonymous admins post as the group
            emu.post_photo(g.chat, g.member, jpeg(photo), sender_chat=g.chat)
        emu.post_photo(g.chat, g.admin, jpeg(photo), sender_chat=g.chat)
        new = emu.upgrade_group(g.chat, g.owner)
        with pytest.raises(ChatMigrated) as moved:
            await bot.send_message(g.chat, "hello")
        assert moved.value.new_chat_id == new
        with pytest.raises(BadRequest, match="(?i)invalid sender_chat_id"):
            await bot.ban_chat_sender_chat(new, g.member)
        emu.post_video(
            new, g.member, mp4_bytes([photo] * 2, fps=2), cover=jpeg(photo), thumbnail=jpeg(photo), sender_chat=channel
        )
        emu.post_audio(new, g.member, b"ID3\x04" + b"\x00" * 64, thumbnail=jpeg(photo))
        assert await bot.ban_chat_sender_chat(new, channel)
        with pytest.raises(NotPermitted):  # a banned channel cannot post there
            emu.post_photo(new, g.member, jpeg(photo), sender_chat=channel)
        updates = [u.message for u in await bot.get_updates() if u.message and u.message.chat.id in (g.chat, new)]
        anonymous, to, came, video, audio = updates
        assert anonymous.from_user.id == 1087968824 and anonymous.sender_chat.id == g.chat
        assert to.migrate_to_chat_id == new and to.chat.id == g.chat
        assert came.migrate_from_chat_id == g.chat and came.chat.id == new
        assert video.from_user.id == 136817688 and video.sender_chat.id == channel
        assert video.video.cover and video.video.thumbnail.width <= 320
        assert audio.audio.thumbnail.file_size <= 200 * 1024
    finally:
        await bot.shutdown()


# --- an allow match excuses only the frames it covers ---------------------------------------


def _animated_webp(*frames: np.ndarray) -> bytes:
    from io import BytesIO

    from PIL import Image

    images = [Image.fromarray(f) for f in frames]
    out = BytesIO()
    images[0].save(out, "WEBP", save_all=True, append_images=images[1:], lossless=True, duration=400, loop=0)
    return out.getvalue()


async def _allow_and_block(emu: BotApiEmulator, g: Group, allowed: np.ndarray, blocked: np.ndarray) -> None:
    """The admins put one picture on the group's allow list and another on its block list."""
    for picture, verb, word in ((allowed, "allow", "allow list"), (blocked, "block", "block list")):
        posted = emu.post_photo(g.chat, g.owner, jpeg(picture))  # an admin's own post: checked, never deleted
        emu.post_text(g.chat, g.owner, f"/{verb}", reply_to=posted)
        await emu.wait_for(
            lambda: any(
                word in (m.get("text") or "") for m in emu.messages_in(g.chat) if m["from"]["id"] == emu.bot_id
            ),
            timeout=30,
        )


@pytest.mark.parametrize("second", ["nudity", "blocked_copy"])
async def test_an_allowed_first_frame_does_not_excuse_the_next_one(
    emu, tmp_path, marker_model, photo, other_photo, second
):
    import cv2

    g = Group(emu)
    allowed = photo
    blocked = cv2.resize(other_photo, (allowed.shape[1], allowed.shape[0]))  # frames of one size
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)) as app:
        await _allow_and_block(emu, g, allowed, blocked)
        # every frame allowed: the whole file is allowed, and stays
        fine = emu.post_document(
            g.chat, g.member, _animated_webp(allowed, allowed), file_name="fine.webp", mime="image/webp"
        )
        await finished(app, g.chat, fine, 1)
        assert g.present(fine)
        # the first frame is the allowed picture, the next one is not: judged by the next one
        third = next(v for k, v in file_images().items() if "chelsea" in k)  # on no list
        hidden = add_marker(cv2.resize(third, allowed.shape[1::-1])) if second == "nudity" else blocked
        mixed = emu.post_document(
            g.chat, g.member, _animated_webp(allowed, hidden), file_name="mixed.webp", mime="image/webp"
        )
        await emu.wait_for(lambda: not g.present(mixed), timeout=30)
        await finished(app, g.chat, mixed, 1)
        assert g.present(fine)
