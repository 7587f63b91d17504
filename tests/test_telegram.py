"""Telegram moderation end to end: the real python-telegram-bot against the Bot API emulator."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bot.i18n import LANGUAGES, Translator
from bot.store import Store
from tests.support.botapi import BotApiEmulator, full_rights
from tests.support.decided import decided, telegram_decided, verdicts
from tests.support.imagegen import mp4_bytes, webm_bytes
from tests.support.marker_model import add_marker
from tests.support.vigil_harness import (
    VigilProcess,
    jpeg,
    running_vigil,
    webp,
    write_config,
)

FULL_RIGHTS = full_rights()


class Group:
    """A group with an owner, a second admin, a member, and Vigil as an admin."""

    def __init__(self, emu: BotApiEmulator, *, bot_rights=FULL_RIGHTS, started=("owner", "admin")) -> None:
        self.emu = emu
        self.owner = emu.add_user("Olivia", username="olivia", language_code="en")
        self.admin = emu.add_user("Ana", username="ana", language_code="es")
        self.member = emu.add_user("Max", username="max")
        self.chat = emu.add_group(
            "Year 9 parents", creator=self.owner, admins=[self.admin], members=[self.member], bot_rights=bot_rights
        )
        for who in started:
            emu.start_private(getattr(self, who))

    def alerts(self, user: int) -> list[dict]:
        """Alerts (their first message) carry the details button; command replies and greetings do not."""
        return [m for m in self.emu.sent_to(user) if "details:" in json.dumps(m.get("reply_markup") or {})]

    def details(self, user: int) -> list[dict]:
        """The second message of alerts, sent when the admin asks: it carries the evidence record button."""
        return [m for m in self.emu.sent_to(user) if "export:" in json.dumps(m.get("reply_markup") or {})]

    def press(self, user: int, message: dict, verb: str) -> str:
        data = next(
            b["callback_data"]
            for row in message["reply_markup"]["inline_keyboard"]
            for b in row
            if b["callback_data"].startswith(f"{verb}:")
        )
        return self.emu.press_button(user, message["message_id"], user, data)

    def present(self, message_id: int) -> bool:
        return any(m["message_id"] == message_id for m in self.emu.messages_in(self.chat))


async def wait_deleted(g: Group, message_id: int, timeout: float = 20) -> None:
    await g.emu.wait_for(lambda: not g.present(message_id), timeout=timeout)


def no_image_anywhere(emu: BotApiEmulator) -> None:
    """No call from the bot ever carried image bytes or a file reference to the image."""
    for call in emu.calls:
        assert call.method not in (
            "sendPhoto",
            "sendSticker",
            "sendAnimation",
            "sendVideo",
            "sendMediaGroup",
            "forwardMessage",
            "copyMessage",
        )
        if call.method == "sendDocument":
            assert call.params.get("document_name", "").endswith(".json") or "json" in json.dumps(call.params)[:2000]


async def test_benign_photo_stays_and_nobody_is_alerted(emu, tmp_path, marker_model, photo):
    g = Group(emu)
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)) as app:
        mid = emu.post_photo(g.chat, g.member, jpeg(photo))
        records = await telegram_decided(app, emu, g.chat, mid)
        assert verdicts(records) == ["allow"] * len(records)
        assert g.present(mid)
        assert emu.calls_to("deleteMessage") == []
        assert g.alerts(g.owner) == [] and g.alerts(g.admin) == []


async def test_nudity_hit_is_deleted_sender_muted_and_each_admin_alerted_once(emu, tmp_path, marker_model, photo):
    g = Group(emu)
    cfg = write_config(tmp_path, emu.url, marker_model, groups='action = "mute"\nmute_duration = "12h"')
    async with running_vigil(cfg) as app:
        mid = emu.post_photo(g.chat, g.member, jpeg(add_marker(photo)))
        await wait_deleted(g, mid)
        await emu.wait_for(lambda: len(g.alerts(g.owner)) == 1 and len(g.alerts(g.admin)) == 1)
        await emu.wait_for(lambda: len(emu.calls_to("restrictChatMember")) == 1)
        restrict = emu.calls_to("restrictChatMember")[0].params
        assert int(restrict["user_id"]) == g.member
        await telegram_decided(app, emu, g.chat, mid)  # its alerts all went out before it finished
        assert len(g.alerts(g.owner)) == 1 and len(g.alerts(g.admin)) == 1
        owner_alert = g.alerts(g.owner)[0]["text"]
        assert "Year 9 parents" in owner_alert and "What to do now" in owner_alert
        assert len(owner_alert.splitlines()) <= 15 and str(g.member) not in owner_alert  # ids wait for the details
        spanish = g.alerts(g.admin)[0]["text"]  # Ana's Telegram is in Spanish
        assert "eliminad" in spanish.lower() or "borrad" in spanish.lower()
        # the Details button answers with a second message: the sender, the ids and all the steps
        query = g.press(g.owner, g.alerts(g.owner)[0], "details")
        await emu.wait_for(lambda: len(g.details(g.owner)) == 1 and emu.callback_answer(query) is not None)
        details = g.details(g.owner)[0]["text"]
        assert "Max" in details and str(g.member) in details and "What to do next" in details
        g.press(g.admin, g.alerts(g.admin)[0], "details")
        await emu.wait_for(lambda: len(g.details(g.admin)) == 1)
        assert "Todos los pasos" in g.details(g.admin)[0]["text"]
        assert len(emu.calls_to("deleteMessage")) == 1
        no_image_anywhere(emu)


async def test_block_then_recompressed_resized_copy_is_deleted(emu, tmp_path, marker_model, other_photo):
    g = Group(emu)
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)) as app:
        original = emu.post_photo(g.chat, g.member, jpeg(other_photo, 92))
        emu.post_text(g.chat, g.owner, "/block", reply_to=original)
        await wait_deleted(g, original)
        h, w = other_photo.shape[:2]
        from PIL import Image

        smaller = np.asarray(Image.fromarray(other_photo).resize((w * 3 // 4, h * 3 // 4)))
        copy = emu.post_photo(g.chat, g.member, jpeg(smaller, 60))
        await wait_deleted(g, copy)
        await emu.wait_for(lambda: len(g.alerts(g.owner)) == 1 and len(g.alerts(g.admin)) == 1)
        await telegram_decided(app, emu, g.chat, copy)
        assert len(g.alerts(g.owner)) == 1 and len(g.alerts(g.admin)) == 1
        no_image_anywhere(emu)


async def test_review_band_buttons_delete_and_keep(emu, tmp_path, marker_model, photo):
    g = Group(emu)
    # the marker scores about 0.9: a 0.97 threshold puts it in the review band
    cfg = write_config(tmp_path, emu.url, marker_model, extra="[detectors.thresholds]\nFEMALE_BREAST_EXPOSED = 0.97\n")
    async with running_vigil(cfg):
        first = emu.post_photo(g.chat, g.member, jpeg(add_marker(photo)))
        await emu.wait_for(lambda: len(g.alerts(g.owner)) == 1)
        assert g.present(first)
        alert = g.alerts(g.owner)[0]
        buttons = [b for row in alert["reply_markup"]["inline_keyboard"] for b in row]
        delete = next(b for b in buttons if b["callback_data"].startswith("del:"))
        emu.press_button(g.owner, alert["message_id"], g.owner, delete["callback_data"])
        await wait_deleted(g, first)

        second = emu.post_photo(g.chat, g.member, jpeg(add_marker(photo, 0.3)))
        await emu.wait_for(lambda: len(g.alerts(g.owner)) == 2)
        alert = g.alerts(g.owner)[1]
        keep = next(
            b for row in alert["reply_markup"]["inline_keyboard"] for b in row if b["callback_data"].startswith("keep:")
        )
        query = emu.press_button(g.owner, alert["message_id"], g.owner, keep["callback_data"])
        # the answer goes out after the review is decided: it is Vigil's record that it kept the message
        answer = await emu.wait_for(lambda: emu.callback_answer(query))
        assert answer["text"] == "Kept."
        assert g.present(second)


async def test_dry_run_deletes_nothing_and_says_what_would_have_happened(emu, tmp_path, marker_model, photo):
    g = Group(emu)
    cfg = write_config(tmp_path, emu.url, marker_model, groups='mode = "dryrun"\naction = "ban"')
    async with running_vigil(cfg):
        mid = emu.post_photo(g.chat, g.member, jpeg(add_marker(photo)))
        await emu.wait_for(lambda: len(g.alerts(g.owner)) == 1)
        assert g.present(mid)
        assert emu.calls_to("deleteMessage") == [] and emu.calls_to("banChatMember") == []
        assert "would have" in g.alerts(g.owner)[0]["text"].lower()


async def test_a_members_command_is_refused_and_changes_nothing(emu, tmp_path, marker_model, photo):
    g = Group(emu)
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)) as app:
        emu.post_text(g.chat, g.member, "/vigil mode off")
        await emu.wait_for(lambda: any("admins" in (m.get("text") or "") for m in emu.messages_in(g.chat)))
        settings = await app.core.group_settings(
            __import__("bot.events", fromlist=["ChatRef"]).ChatRef("telegram", str(g.chat))
        )
        assert settings.mode == "delete"
        mid = emu.post_photo(g.chat, g.member, jpeg(add_marker(photo)))
        await wait_deleted(g, mid)
        # an admin's command works
        emu.post_text(g.chat, g.owner, "/vigil mode dryrun")
        await emu.wait_for(lambda: any("dryrun" in (m.get("text") or "") for m in emu.messages_in(g.chat)))


async def test_bot_without_delete_right_tells_the_admin_who_added_it(emu, tmp_path, marker_model):
    owner = emu.add_user("Olivia", username="olivia")
    member = emu.add_user("Max")
    emu.start_private(owner)
    chat = emu.add_group("Football club", creator=owner, members=[member], bot_present=False)
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)):
        emu.add_bot_to_group(
            chat, by_user=owner, rights=full_rights(can_delete_messages=False, can_restrict_members=False)
        )
        await emu.wait_for(lambda: any("delete messages" in (m.get("text") or "") for m in emu.sent_to(owner)))


@pytest.mark.parametrize(
    "form", ["document", "sticker", "video_sticker", "album", "animation", "video", "forward", "edit"]
)
async def test_every_form_of_image_is_found(emu, tmp_path, marker_model, photo, form):
    g = Group(emu)
    marked = add_marker(photo)
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)) as app:
        if form == "document":
            mid = emu.post_document(g.chat, g.member, jpeg(marked), file_name="holiday.jpg", mime="image/jpeg")
        elif form == "sticker":
            mid = emu.post_sticker(g.chat, g.member, webp(np.ascontiguousarray(marked[:512, :512])))
        elif form == "album":
            ids = [emu.post_photo(g.chat, g.member, jpeg(p), media_group_id="album1") for p in (photo, marked, photo)]
            mid = ids[1]
            await wait_deleted(g, mid)
            records = await telegram_decided(app, emu, g.chat, ids[0], ids[2])
            assert verdicts(records) == ["allow"] * len(records)
            assert g.present(ids[0]) and g.present(ids[2])
            return
        elif form == "video_sticker":
            small = [np.ascontiguousarray(f[:512, :512]) for f in (photo, photo, marked, marked)]
            mid = emu.post_sticker(g.chat, g.member, webm_bytes(small, fps=4), is_video=True)
        elif form == "animation":
            frames = [photo] * 5 + [marked] * 5
            mid = emu.post_animation(g.chat, g.member, mp4_bytes(frames, fps=5))
        elif form == "video":
            frames = [photo] * 8 + [marked] * 2
            mid = emu.post_video(g.chat, g.member, mp4_bytes(frames, fps=5))
        elif form == "forward":
            stranger = emu.add_user("Someone else")
            mid = emu.post_photo(g.chat, g.member, jpeg(marked), forward_from=stranger)
        else:
            mid = emu.post_photo(g.chat, g.member, jpeg(photo))
            records = await telegram_decided(app, emu, g.chat, mid)
            assert verdicts(records) == ["allow"] * len(records)
            assert g.present(mid)
            emu.edit_media(g.chat, mid, jpeg(marked))
        await wait_deleted(g, mid)


async def test_rate_limits_and_server_errors_still_delete_once(emu, tmp_path, marker_model, photo):
    g = Group(emu)
    emu.fail_next("deleteMessage", times=1, status=429, retry_after=1)
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)):
        mid = emu.post_photo(g.chat, g.member, jpeg(add_marker(photo)))
        await emu.wait_for(lambda: len(emu.calls_to("deleteMessage")) >= 1, timeout=20)
        emu.fail_next("deleteMessage", times=2, status=500)
        await wait_deleted(g, mid, timeout=30)
        ok = [c for c in emu.calls_to("deleteMessage") if c.status == 200]
        assert len(ok) == 1


async def test_unreadable_and_oversized_images_are_reported(emu, tmp_path, marker_model, photo):
    g = Group(emu)
    cfg = write_config(tmp_path, emu.url, marker_model, extra="[detectors.limits]\nmax_bytes = 400000\n")
    async with running_vigil(cfg):
        emu.post_document(
            g.chat, g.member, b"\xff\xd8\xff\xe0" + b"\x00" * 200, file_name="broken.jpg", mime="image/jpeg"
        )
        big = np.random.default_rng(1).integers(0, 255, (1200, 1200, 3), dtype=np.uint8)
        emu.post_document(g.chat, g.member, jpeg(big, 95), file_name="big.jpg", mime="image/jpeg")
        await emu.wait_for(lambda: len(g.alerts(g.owner)) == 2, timeout=20)
        texts = " ".join(a["text"] for a in g.alerts(g.owner)).lower()
        assert "could not be checked" in texts
        assert "too large to check" in texts  # the size refusal names its reason, as the decoder's does
        # and it keeps going
        mid = emu.post_photo(g.chat, g.member, jpeg(add_marker(photo)))
        await wait_deleted(g, mid)


@pytest.mark.slow
async def test_killed_during_a_burst_and_restarted_nothing_is_lost(emu, tmp_path, marker_model, photo, other_photo):
    g = Group(emu)
    cfg = write_config(tmp_path, emu.url, marker_model)
    proc = VigilProcess(cfg, tmp_path / "vigil.log")
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
        proc.kill()
        proc.start()
        for mid in hits:
            await wait_deleted(g, mid, timeout=90)
        await emu.wait_for(lambda: emu.pending_updates() == 0, timeout=60)
        store = await Store.open(tmp_path / "data" / "vigil.sqlite3")  # Vigil's own record, from its file
        try:
            await decided(store, "telegram", g.chat, hits + clean, timeout=90)
        finally:
            await store.close()
        assert all(g.present(mid) for mid in clean)
        assert [emu.deletes_of(g.chat, mid) for mid in clean] == [0] * len(clean)  # not even tried
        assert proc.terminate() == 0
    finally:
        if proc.proc and proc.proc.poll() is None:
            proc.kill()


def buttons_of(alert: dict) -> dict[str, str]:
    """callback prefix -> callback data of an alert's buttons."""
    return {
        b["callback_data"].split(":")[0]: b["callback_data"]
        for row in alert["reply_markup"]["inline_keyboard"]
        for b in row
    }


async def test_message_older_than_48_hours_is_reported_for_deletion_by_hand(emu, tmp_path, marker_model, photo):
    g = Group(emu)
    mid = emu.post_photo(g.chat, g.member, jpeg(add_marker(photo)))
    emu.age_message(g.chat, mid, hours=49)  # Vigil was down when it was posted
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)):
        await emu.wait_for(lambda: len(g.alerts(g.owner)) == 1)
        assert g.present(mid)
        text = g.alerts(g.owner)[0]["text"]
        assert "48" in text
        assert emu.deleted_in(g.chat) == []


async def test_no_reachable_admin_hint_once_then_the_admin_log_chat(emu, tmp_path, marker_model, photo, other_photo):
    g = Group(emu, started=())
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)) as app:
        first = emu.post_photo(g.chat, g.member, jpeg(add_marker(photo)))
        await wait_deleted(g, first)
        second = emu.post_photo(g.chat, g.member, jpeg(add_marker(other_photo)))
        await wait_deleted(g, second)
        await telegram_decided(app, emu, g.chat, first, second)
        from_bot = [m for m in emu.messages_in(g.chat) if m["from"]["id"] == emu.bot_id]
        assert len(from_bot) == 1  # told once, however many hits
        hint = from_bot[0]["text"]
        assert "start" in hint.lower() and "nude" not in hint.lower()
        # the admins make their own chat the log chat for this group
        log_chat = emu.add_group("Admins", creator=g.owner, admins=[g.admin], bot_rights=FULL_RIGHTS)
        emu.post_text(log_chat, g.owner, f"/vigil logchat {g.chat}")
        await emu.wait_for(lambda: any("receives" in (m.get("text") or "") for m in emu.messages_in(log_chat)))
        third = emu.post_photo(g.chat, g.member, jpeg(add_marker(photo, 0.3)))
        await wait_deleted(g, third)
        await emu.wait_for(
            lambda: any("details:" in json.dumps(m.get("reply_markup") or {}) for m in emu.messages_in(log_chat))
        )
        # the details come in the chat where they were asked for
        alert = next(m for m in emu.messages_in(log_chat) if "details:" in json.dumps(m.get("reply_markup") or {}))
        data = next(
            b["callback_data"]
            for row in alert["reply_markup"]["inline_keyboard"]
            for b in row
            if b["callback_data"].startswith("details:")
        )
        emu.press_button(log_chat, alert["message_id"], g.owner, data)
        await emu.wait_for(
            lambda: any("export:" in json.dumps(m.get("reply_markup") or {}) for m in emu.messages_in(log_chat))
        )
        no_image_anywhere(emu)


async def test_alert_buttons_ban_export_and_false_positive(emu, tmp_path, marker_model, photo):
    g = Group(emu)
    marked = jpeg(add_marker(photo))
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)) as app:
        mid = emu.post_photo(g.chat, g.member, marked)
        await wait_deleted(g, mid)
        await emu.wait_for(lambda: len(g.alerts(g.owner)) == 1)
        alert = g.alerts(g.owner)[0]
        b = buttons_of(alert)
        assert {"ban", "fp", "details"} <= set(b)
        # a member cannot use an admin's button, even with its data
        emu.start_private(g.member)
        emu.press_button(g.owner, alert["message_id"], g.member, b["ban"], check=False)
        emu.press_button(g.owner, alert["message_id"], g.member, b["details"], check=False)
        await emu.wait_for(lambda: len(emu.calls_to("answerCallbackQuery")) == 2)
        assert emu.calls_to("banChatMember") == [] and g.details(g.owner) == [] and g.details(g.member) == []
        g.press(g.owner, alert, "details")
        await emu.wait_for(lambda: len(g.details(g.owner)) == 1)
        details = g.details(g.owner)[0]
        assert {"ban", "fp", "export"} <= set(buttons_of(details))
        emu.press_button(g.owner, details["message_id"], g.owner, buttons_of(details)["export"])
        await emu.wait_for(lambda: any("document" in m for m in emu.sent_to(g.owner)))
        doc = next(m["document"] for m in emu.sent_to(g.owner) if "document" in m)
        assert doc["file_name"].endswith(".json") and doc["mime_type"] in (
            "application/json",
            "application/octet-stream",
        )
        record = json.loads(emu.file_bytes(doc["file_id"]))
        (item,) = record["records"]
        assert item["sender_id"] == str(g.member) and item["hashes"]["sha256"] and item["label"] == "nudity"
        emu.press_button(g.owner, alert["message_id"], g.owner, b["ban"])
        await emu.wait_for(lambda: len(emu.calls_to("banChatMember")) == 1)
        assert int(emu.calls_to("banChatMember")[0].params["user_id"]) == g.member
        emu.press_button(g.owner, alert["message_id"], g.owner, b["fp"])
        await emu.wait_for(lambda: len(emu.calls_to("answerCallbackQuery")) == 6)
        # on the allow list now: the same image from someone else stays
        other = emu.add_user("Lea")
        emu.add_member(g.chat, other)
        again = emu.post_photo(g.chat, other, marked)
        records = await telegram_decided(app, emu, g.chat, again)
        assert verdicts(records) == ["allow"] * len(records)
        assert g.present(again)


async def test_admins_and_exempt_members_are_reported_not_deleted(emu, tmp_path, marker_model, photo, other_photo):
    g = Group(emu)
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)):
        by_admin = emu.post_photo(g.chat, g.admin, jpeg(add_marker(photo)))
        await emu.wait_for(lambda: len(g.alerts(g.owner)) == 1)
        assert g.present(by_admin)
        hello = emu.post_text(g.chat, g.member, "hello")
        emu.post_text(g.chat, g.owner, "/vigil exempt", reply_to=hello)
        await emu.wait_for(
            lambda: any(
                "exempt" in (m.get("text") or "") for m in emu.messages_in(g.chat) if m["from"]["id"] == emu.bot_id
            )
        )
        by_member = emu.post_photo(g.chat, g.member, jpeg(add_marker(other_photo)))
        await emu.wait_for(lambda: len(g.alerts(g.owner)) == 2)
        assert g.present(by_member)


async def test_groups_in_private_lists_my_groups_and_sets_the_mode(emu, tmp_path, marker_model, photo):
    g = Group(emu)
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)) as app:
        emu.post_text(g.chat, g.owner, "/vigil status")
        await emu.wait_for(lambda: any("Mode: delete" in (m.get("text") or "") for m in emu.messages_in(g.chat)))
        emu.post_text(g.owner, g.owner, "/groups")
        await emu.wait_for(lambda: any("Year 9 parents" in (m.get("text") or "") for m in emu.sent_to(g.owner)))
        listing = next(m for m in emu.sent_to(g.owner) if "Year 9 parents" in (m.get("text") or ""))
        dry = next(
            b["callback_data"]
            for row in listing["reply_markup"]["inline_keyboard"]
            for b in row
            if b["callback_data"].endswith(":dryrun")
        )
        # the member is not an admin: no group is listed, and the button does nothing for them
        emu.start_private(g.member)
        emu.post_text(g.member, g.member, "/groups")
        await emu.wait_for(lambda: any("not an admin" in (m.get("text") or "") for m in emu.sent_to(g.member)))
        emu.press_button(g.owner, listing["message_id"], g.owner, dry)
        from bot.events import ChatRef

        chat = ChatRef("telegram", str(g.chat))
        await emu.wait_for(lambda: len(emu.calls_to("answerCallbackQuery")) == 1)
        assert (await app.core.group_settings(chat)).mode == "dryrun"
        mid = emu.post_photo(g.chat, g.member, jpeg(add_marker(photo)))
        await emu.wait_for(lambda: len(g.alerts(g.owner)) == 1)
        assert g.present(mid)


async def test_a_malformed_update_is_skipped_and_the_bot_keeps_going(emu, tmp_path, marker_model, photo):
    g = Group(emu)
    emu.queue_raw_update({"message": {"message_id": 77, "text": "no chat, no date, no sender"}})
    emu.queue_raw_update({"edited_message": "not even an object"})
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)):
        mid = emu.post_photo(g.chat, g.member, jpeg(add_marker(photo)))
        await wait_deleted(g, mid)
        # it moved past the bad updates instead of asking for them again and again
        assert len(emu.calls_to("getUpdates")) < 20


async def test_region_and_language_codes_and_the_admins_own_language(emu, tmp_path, marker_model, photo):
    """/vigil region takes the new codes in any spelling; an admin whose app language Vigil lacks gets the group's."""
    owner = emu.add_user("Jordi", username="jordi", language_code="ja")  # no Japanese catalog: the group's language
    member = emu.add_user("Max", username="max")
    chat = emu.add_group("Escola 3r B", creator=owner, members=[member], bot_rights=FULL_RIGHTS)
    emu.start_private(owner)
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)):
        emu.post_text(chat, owner, "/vigil region XX")
        await emu.wait_for(
            lambda: any("ES-CT (Catalonia, Spain)" in (m.get("text") or "") for m in emu.messages_in(chat))
        )
        emu.post_text(chat, owner, "/vigil lang klingon")
        await emu.wait_for(
            lambda: any(
                "/vigil lang ca|de|en|es|eu|fr|gl|it|pt|pt_BR" in (m.get("text") or "") for m in emu.messages_in(chat)
            )
        )
        emu.post_text(chat, owner, "/vigil lang es-ES")
        await emu.wait_for(lambda: any("Idioma" in (m.get("text") or "") for m in emu.messages_in(chat)))
        emu.post_text(chat, owner, "/vigil region es_ct")
        await emu.wait_for(
            lambda: any("ES-CT (Cataluña, España)" in (m.get("text") or "") for m in emu.messages_in(chat))
        )
        mid = emu.post_photo(chat, member, jpeg(add_marker(photo)))
        await emu.wait_for(lambda: not any(m["message_id"] == mid for m in emu.messages_in(chat)))

        def alerts() -> list[dict]:
            return [m for m in emu.sent_to(owner) if "details:" in json.dumps(m.get("reply_markup") or {})]

        await emu.wait_for(lambda: len(alerts()) == 1)
        first = alerts()[0]
        assert "Qué hacer ahora" in first["text"] and "112" in first["text"] and "017" in first["text"]
        data = next(
            b["callback_data"]
            for row in first["reply_markup"]["inline_keyboard"]
            for b in row
            if b["callback_data"].startswith("details:")
        )
        emu.press_button(owner, first["message_id"], owner, data)
        await emu.wait_for(
            lambda: any("export:" in json.dumps(m.get("reply_markup") or {}) for m in emu.sent_to(owner))
        )
        details = next(m["text"] for m in emu.sent_to(owner) if "export:" in json.dumps(m.get("reply_markup") or {}))
        assert (
            "Mossos d'Esquadra" in details
            and "Infància Respon" in details
            and "Canal Prioritario de la AEPD" in details
        )
        assert "Cataluña, España" in details and "Todos los pasos" in details


@pytest.mark.parametrize("language", LANGUAGES)
async def test_an_admin_gets_alerts_in_their_apps_language(emu, tmp_path, marker_model, photo, language):
    """Every catalog present reaches an admin through the real adapter: the first message and the details."""
    t = Translator(language)
    owner = emu.add_user("Kim", username="kim", language_code=language.replace("_", "-").lower())
    member = emu.add_user("Max", username="max")
    chat = emu.add_group("Club", creator=owner, members=[member], bot_rights=FULL_RIGHTS)
    emu.start_private(owner)
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)):  # the group stays in English
        mid = emu.post_photo(chat, member, jpeg(add_marker(photo)))
        await emu.wait_for(lambda: not any(m["message_id"] == mid for m in emu.messages_in(chat)))

        def sent(marker: str) -> list[dict]:
            return [m for m in emu.sent_to(owner) if marker in json.dumps(m.get("reply_markup") or {})]

        await emu.wait_for(lambda: len(sent("details:")) == 1)
        first = sent("details:")[0]
        assert t.gettext("What to do now:") in first["text"] and len(first["text"].splitlines()) <= 15
        data = next(
            b["callback_data"]
            for row in first["reply_markup"]["inline_keyboard"]
            for b in row
            if b["callback_data"].startswith("details:")
        )
        assert next(
            b["text"] for row in first["reply_markup"]["inline_keyboard"] for b in row if b["callback_data"] == data
        ) == t.gettext("Details and help")
        emu.press_button(owner, first["message_id"], owner, data)
        await emu.wait_for(lambda: len(sent("export:")) == 1)
        assert t.gettext("What to do next:") in sent("export:")[0]["text"]


# an admin's Telegram app language, the group's region, and what the alert must then say in that language:
# the first message's heading, the emergency number and the main help line, and in the details a heading, the
# region's name and one of its resources' texts from the language's resource_texts overlay
ALERT_LANGUAGES = [
    (
        "ca",
        "ES-CT",
        "Què cal fer ara:",
        "112",
        "017",
        "Tots els passos:",
        "Catalunya, Espanya",
        "Denuncia-ho a qualsevol comissaria dels Mossos",
    ),
    (
        "eu",
        "ES-PV",
        "Zer egin orain:",
        "112",
        "017",
        "Urrats guztiak:",
        "Euskadi, Espainia",
        "Salatu Ertzaintzaren etxerik hurbilenean",
    ),
    (
        "gl",
        "ES-GA",
        "Que facer agora:",
        "112",
        "017",
        "Todos os pasos:",
        "Galicia, España",
        "Canle Prioritaria da AEPD (Axencia Española de Protección de Datos): Retirada urxente",
    ),
    (
        "pt",
        "PT",
        "O que fazer agora:",
        "112",
        "800 21 90 90",
        "Todos os passos:",
        "Portugal",
        "Linha gratuita de apoio e de denúncia de conteúdos ilegais",
    ),
    (
        "pt-br",
        "BR",
        "O que fazer agora:",
        "190",
        "100",
        "Todos os passos:",
        "Brasil",
        "A linha nacional de denúncias de direitos humanos: gratuita, anônima",
    ),
    (
        "fr",
        "FR",
        "Que faire maintenant\u00a0:",
        "17",
        "3018",
        "Toutes les étapes\u00a0:",
        "France",
        "La victime porte plainte au commissariat ou à la gendarmerie.",
    ),
    (
        "it",
        "IT",
        "Cosa fare adesso:",
        "112",
        "19696",
        "Tutti i passi:",
        "Italia",
        "Garante Privacy – procedura contro il revenge porn",
    ),
    (
        "de",
        "DE",
        "Was jetzt zu tun ist:",
        "110",
        "0800 22 55 530",
        "Alle Schritte:",
        "Deutschland",
        "Erstatten Sie Anzeige bei der Polizei oder bei der Onlinewache Ihres Bundeslandes.",
    ),
]


@pytest.mark.parametrize(
    "app_language, region, now, emergency, helpline, next_steps, region_name, resource_text",
    ALERT_LANGUAGES,
    ids=[row[0] for row in ALERT_LANGUAGES],
)
async def test_an_admin_gets_the_alert_in_their_apps_language_with_their_regions_help(
    emu,
    tmp_path,
    marker_model,
    photo,
    app_language,
    region,
    now,
    emergency,
    helpline,
    next_steps,
    region_name,
    resource_text,
):
    """The group speaks English; the admin's Telegram app is in another language Vigil has, so their alert is in it."""
    owner = emu.add_user("Admin", username="admin1", language_code=app_language)
    member = emu.add_user("Max", username="max")
    chat = emu.add_group("Class 3B", creator=owner, members=[member], bot_rights=FULL_RIGHTS)
    emu.start_private(owner)
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)):
        emu.post_text(chat, owner, f"/vigil region {region}")
        await emu.wait_for(
            lambda: any(f"Region set to {region} (" in (m.get("text") or "") for m in emu.messages_in(chat))
        )
        mid = emu.post_photo(chat, member, jpeg(add_marker(photo)))
        await emu.wait_for(lambda: not any(m["message_id"] == mid for m in emu.messages_in(chat)))

        def with_choice(prefix: str) -> list[dict]:
            return [m for m in emu.sent_to(owner) if prefix in json.dumps(m.get("reply_markup") or {})]

        await emu.wait_for(lambda: len(with_choice("details:")) == 1)
        first = with_choice("details:")[0]
        assert now in first["text"] and emergency in first["text"] and helpline in first["text"], first["text"]
        assert "What to do now" not in first["text"]
        data = next(
            b["callback_data"]
            for row in first["reply_markup"]["inline_keyboard"]
            for b in row
            if b["callback_data"].startswith("details:")
        )
        emu.press_button(owner, first["message_id"], owner, data)
        await emu.wait_for(lambda: len(with_choice("export:")) == 1)
        details = with_choice("export:")[0]["text"]
        assert next_steps in details and region_name in details and resource_text in details, details
        assert "What to do next" not in details
