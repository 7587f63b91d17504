"""Circles end to end: the real python-telegram-bot against the Bot API emulator (and the real
Synapse for a circle that holds a Telegram group and a Matrix room)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from bot.__main__ import main as vigil_main
from tests.support.botapi import BotApiEmulator, full_rights
from tests.support.decided import decided, telegram_decided, verdicts
from tests.support.marker_model import add_marker
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
from tests.support.vigil_harness import TOKEN, jpeg, running_vigil, write_config


class Group:
    """A group with its own owner (who started the bot privately), a member, and Vigil as an admin."""

    def __init__(
        self,
        emu: BotApiEmulator,
        title: str,
        *,
        members: tuple[int, ...] = (),
        admins: tuple[int, ...] = (),
        started=True,
    ) -> None:
        self.emu, self.title = emu, title
        self.owner = emu.add_user(f"Owner of {title}", language_code="en")
        self.member = emu.add_user(f"Member of {title}")
        self.chat = emu.add_group(
            title, creator=self.owner, admins=admins, members=[self.member, *members], bot_rights=full_rights()
        )
        if started:
            emu.start_private(self.owner)

    @property
    def key(self) -> tuple[str, str]:
        return ("telegram", str(self.chat))

    def present(self, message_id: int) -> bool:
        return any(m["message_id"] == message_id for m in self.emu.messages_in(self.chat))

    def notices(self, user: int) -> list[str]:
        """Private messages without alert buttons that tell of a block in another group."""
        return [
            m.get("text") or ""
            for m in self.emu.sent_to(user)
            if "blocked an image" in (m.get("text") or "") and "details:" not in json.dumps(m.get("reply_markup") or {})
        ]

    def replies(self) -> list[str]:
        return [m.get("text") or "" for m in self.emu.messages_in(self.chat) if m["from"]["id"] == self.emu.bot_id]


def smaller(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    return np.asarray(Image.fromarray(rgb).resize((w * 3 // 4, h * 3 // 4)))


async def test_a_block_in_one_group_of_a_circle_deletes_copies_in_the_others_only(
    emu, tmp_path, marker_model, other_photo
):
    a, outside = Group(emu, "Class 3A"), Group(emu, "Chess club")
    b = Group(emu, "Class 3B", admins=(a.owner,))  # A's owner runs B too
    c = Group(emu, "Class 3C", started=False)  # nobody there can be told privately
    admins_chat = emu.add_group("3C admins", creator=c.owner, bot_rights=full_rights())
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)) as app:
        await app.store.update_settings("telegram", str(c.chat), {"logchat": str(admins_chat)})
        await app.store.add_to_circle("school", [a.key, b.key, c.key])
        original = emu.post_photo(a.chat, a.member, jpeg(other_photo, 92))
        await telegram_decided(app, emu, a.chat, original)
        emu.post_text(a.chat, a.owner, "/block", reply_to=original)
        await emu.wait_for(lambda: not a.present(original))
        # B's owner is told once, privately, which group blocked it; C's admin log chat is told;
        # the admin who blocked it (an admin of B too) and the outsider are not
        await emu.wait_for(lambda: len(b.notices(b.owner)) == 1)
        assert "Class 3A" in b.notices(b.owner)[0] and "school" in b.notices(b.owner)[0]
        await emu.wait_for(
            lambda: any("blocked an image" in (m.get("text") or "") for m in emu.messages_in(admins_chat))
        )
        assert a.notices(a.owner) == [] and outside.notices(outside.owner) == []

        copy_b = emu.post_photo(b.chat, b.member, jpeg(smaller(other_photo), 60))
        copy_out = emu.post_photo(outside.chat, outside.member, jpeg(smaller(other_photo), 60))
        await emu.wait_for(lambda: not b.present(copy_b))
        assert verdicts(await telegram_decided(app, emu, b.chat, copy_b)) == ["delete"]
        # B's alert names the circle's list: not B's own list, and not A's id
        alert = next(m["text"] for m in emu.sent_to(b.owner) if "details:" in json.dumps(m.get("reply_markup") or {}))
        assert "block list of this group's circle" in alert and str(a.chat) not in alert
        assert verdicts(await telegram_decided(app, emu, outside.chat, copy_out)) == ["allow"]
        assert outside.present(copy_out)

        # out of the circle, B matches A's list no more; A's own list still holds it
        await app.store.remove_from_circle("school", [b.key])
        again_b = emu.post_photo(b.chat, b.member, jpeg(other_photo, 80))
        assert verdicts(await telegram_decided(app, emu, b.chat, again_b)) == ["allow"]
        again_a = emu.post_photo(a.chat, a.member, jpeg(other_photo, 80))
        assert verdicts(await telegram_decided(app, emu, a.chat, again_a)) == ["delete"]
        assert len(b.notices(b.owner)) == 1


async def test_shared_bans_carry_a_ban_to_the_circles_other_groups_but_not_to_its_admins(
    emu, tmp_path, marker_model, photo
):
    a = Group(emu, "Team A")
    raider = a.member
    b = Group(emu, "Team B", members=(raider,))
    c = Group(emu, "Team C", members=(raider,))
    outside = Group(emu, "Elsewhere", members=(raider,))
    emu.promote(c.chat, raider)  # an admin of C: never banned there through the circle
    cfg = write_config(tmp_path, emu.url, marker_model, groups='action = "ban"')
    async with running_vigil(cfg) as app:
        await app.store.add_to_circle("league", [a.key, b.key, c.key], shared_bans=True)
        await app.store.add_to_circle("plain", [a.key, outside.key])  # no shared bans here
        mid = emu.post_photo(a.chat, raider, jpeg(add_marker(photo)))
        await telegram_decided(app, emu, a.chat, mid)
        banned = {int(call.params["chat_id"]) for call in emu.calls_to("banChatMember")}
        assert banned == {a.chat, b.chat}
        assert emu.member(b.chat, raider)["status"] == "kicked"
        assert emu.member(c.chat, raider)["status"] == "administrator"
        assert emu.member(outside.chat, raider)["status"] == "member"


async def test_without_shared_bans_a_ban_stays_in_its_group(emu, tmp_path, marker_model, photo):
    a = Group(emu, "Team A")
    b = Group(emu, "Team B", members=(a.member,))
    cfg = write_config(tmp_path, emu.url, marker_model, groups='action = "ban"')
    async with running_vigil(cfg) as app:
        await app.store.add_to_circle("league", [a.key, b.key])
        mid = emu.post_photo(a.chat, a.member, jpeg(add_marker(photo)))
        await telegram_decided(app, emu, a.chat, mid)
        assert {int(call.params["chat_id"]) for call in emu.calls_to("banChatMember")} == {a.chat}


async def test_an_admins_ban_button_reaches_the_circles_groups_with_shared_bans(emu, tmp_path, marker_model, photo):
    a = Group(emu, "Team A")
    b = Group(emu, "Team B", members=(a.member,))
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)) as app:  # action none: admins ban
        await app.store.add_to_circle("league", [a.key, b.key], shared_bans=True)
        mid = emu.post_photo(a.chat, a.member, jpeg(add_marker(photo)))
        await telegram_decided(app, emu, a.chat, mid)
        assert emu.calls_to("banChatMember") == []
        alert = next(m for m in emu.sent_to(a.owner) if "details:" in json.dumps(m.get("reply_markup") or {}))
        ban = next(
            b["callback_data"]
            for row in alert["reply_markup"]["inline_keyboard"]
            for b in row
            if b["callback_data"].startswith("ban:")
        )
        query = emu.press_button(a.owner, alert["message_id"], a.owner, ban)
        await emu.wait_for(lambda: emu.callback_answer(query) is not None)
        assert {int(call.params["chat_id"]) for call in emu.calls_to("banChatMember")} == {a.chat, b.chat}
        assert emu.member(b.chat, a.member)["status"] == "kicked"


async def test_vigil_circles_shows_the_other_groups_to_admins_only(emu, tmp_path, marker_model):
    a, b, outside = Group(emu, "Class 3A"), Group(emu, "Class 3B"), Group(emu, "Chess club")
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)) as app:
        await app.store.upsert_group("telegram", str(b.chat), "Class 3B")
        await app.store.add_to_circle("school", [a.key, b.key], shared_bans=True)
        emu.post_text(a.chat, a.member, "/vigil circles")
        await emu.wait_for(lambda: any("admins" in t for t in a.replies()))
        assert not any("Class 3B" in t for t in a.replies())  # a member learns nothing of the circle
        emu.post_text(a.chat, a.owner, "/vigil circles")
        await emu.wait_for(lambda: any("school" in t for t in a.replies()))
        answer = next(t for t in a.replies() if "school" in t)
        assert "Class 3B" in answer and "Chess club" not in answer and "ban" in answer
        emu.post_text(outside.chat, outside.owner, "/vigil circles")
        await emu.wait_for(lambda: any("no circle" in t for t in outside.replies()))


@pytest.mark.synapse
async def test_a_circle_of_a_telegram_group_and_a_matrix_room_blocks_across_both(
    synapse, marker_model, tmp_path, photo, other_photo
):
    emu = BotApiEmulator(token=TOKEN)
    await emu.start()
    try:
        tg = Group(emu, "Year 9 parents")
        bot = new_user(synapse, "vigil")
        async with people(synapse, "owner", "member") as (owner, member):
            cfg = write_matrix_config(tmp_path, synapse, bot, marker_model, telegram_url=emu.url)
            async with running_matrix_vigil(cfg, matrix_env(bot, telegram=True)) as app:
                room = await protected_room(owner, bot.user_id, members=[member], name="Year 9 on Matrix")
                await app.store.add_to_circle("year9", [tg.key, ("matrix", room.room_id)])

                # blocked on Telegram: the copy posted in the Matrix room is redacted
                original = emu.post_photo(tg.chat, tg.member, jpeg(other_photo, 92))
                await telegram_decided(app, emu, tg.chat, original)
                emu.post_text(tg.chat, tg.owner, "/block", reply_to=original)
                await emu.wait_for(lambda: not tg.present(original))
                inbox = Inbox(owner, bot.user_id)
                await inbox.wait(lambda i: any("blocked an image" in t for t in i.texts()))
                notice = next(t for t in inbox.texts() if "blocked an image" in t)
                assert "Year 9 parents" in notice and "Year 9 on Matrix" in notice
                copy = await member.send_image(room.room_id, jpeg(smaller(other_photo), 60), "image/jpeg")
                await wait_redacted(owner, room.room_id, copy)

                # blocked on Matrix: the copy posted in the Telegram group is deleted
                second = await member.send_image(room.room_id, jpeg(photo, 92), "image/jpeg")
                await decided(app.store, "matrix", room.room_id, [second])
                await owner.reply(room.room_id, second, "!vigil block")
                await wait_redacted(owner, room.room_id, second)
                await emu.wait_for(lambda: len(tg.notices(tg.owner)) == 1, timeout=30)
                assert "Year 9 on Matrix" in tg.notices(tg.owner)[0]
                tg_copy = emu.post_photo(tg.chat, tg.member, jpeg(smaller(photo), 60))
                await emu.wait_for(lambda: not tg.present(tg_copy), timeout=30)
                assert verdicts(await telegram_decided(app, emu, tg.chat, tg_copy)) == ["delete"]
    finally:
        await emu.stop()


def test_the_circle_command_validates_groups_and_changes_circles_by_name(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[vigil]\ndata_dir = "{tmp_path / "data"}"\n')
    base = ["circle", "--config", str(cfg)]
    add = [*base, "add", "school", "--group", "telegram:-1001", "--group", "matrix:!abc:example.org"]
    assert vigil_main(add) == 0
    assert "2 groups, shared bans off" in capsys.readouterr().out
    for bad in ("telegram:abc", "matrix:#alias:example.org", "irc:#x", "telegram:"):
        with pytest.raises(SystemExit):
            vigil_main([*base, "add", "school", "--group", bad])
        assert "is not a group" in capsys.readouterr().err
    assert vigil_main([*base, "add", "bad name", "--group", "telegram:-1"]) == 2
    assert "'name'" in capsys.readouterr().err
    assert vigil_main([*base, "add", "school", "--shared-bans"]) == 0
    assert vigil_main([*base, "list"]) == 0
    assert "school: shared bans on; matrix:!abc:example.org, telegram:-1001" in capsys.readouterr().out
    assert vigil_main([*base, "remove", "school", "--group", "telegram:-1001"]) == 0
    assert vigil_main([*base, "remove", "school"]) == 0
    assert vigil_main([*base, "remove", "school"]) == 1
    capsys.readouterr()
    assert vigil_main([*base, "list"]) == 0
    assert "no circles" in capsys.readouterr().out
