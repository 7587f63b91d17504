"""Floods end to end: one picture posted many times across groups is held for review after the
threshold, the operator's log chat is told once, and an admin's decision ends the hold."""

from __future__ import annotations

import json

import pytest

from bot.config import FloodConfig, load_config
from bot.errors import ConfigError
from bot.flood import FloodCounter
from tests.support.botapi import BotApiEmulator, full_rights
from tests.support.decided import telegram_decided, verdicts
from tests.support.vigil_harness import jpeg, running_vigil, write_config


def alerts(emu: BotApiEmulator, user: int) -> list[dict]:
    return [m for m in emu.sent_to(user) if "details:" in json.dumps(m.get("reply_markup") or {})]


def flood_notes(emu: BotApiEmulator, chat: int) -> list[str]:
    return [m.get("text") or "" for m in emu.messages_in(chat) if "Flood" in (m.get("text") or "")]


async def test_a_flood_across_three_groups_is_held_after_the_threshold_and_the_log_chat_told_once(
    emu, tmp_path, marker_model, photo, other_photo
):
    operator = emu.add_user("Operator")
    log_chat = emu.add_group("Operator log", creator=operator, bot_rights=full_rights())
    groups = []
    for title in ("Class 1", "Class 2", "Class 3"):
        owner, raider = emu.add_user(f"Owner of {title}"), emu.add_user(f"Raider in {title}")
        emu.start_private(owner)
        groups.append((emu.add_group(title, creator=owner, members=[raider], bot_rights=full_rights()), owner, raider))
    extra = f'[flood]\ncount = 4\nwindow = 600\nlog_chat = "telegram:{log_chat}"\n'
    picture = jpeg(photo)  # benign: only its number of copies makes it a flood
    async with running_vigil(write_config(tmp_path, emu.url, marker_model, extra=extra)) as app:
        decided, posted = [], []
        for i in range(7):  # one after the other, round the three groups: the order decides who is held
            chat, _, raider = groups[i % 3]
            mid = emu.post_photo(chat, raider, picture)
            posted.append((chat, mid))
            decided += verdicts(await telegram_decided(app, emu, chat, mid))
        assert decided == ["allow"] * 3 + ["review"] * 4
        assert len(flood_notes(emu, log_chat)) == 1
        assert "3 groups" in flood_notes(emu, log_chat)[0]
        # held copies stay in their chats, with their admins asked; nothing was deleted
        assert emu.calls_to("deleteMessage") == []
        for chat, mid in posted:
            assert emu.message(chat, mid) is not None
        await emu.wait_for(lambda: all(alerts(emu, owner) for _, owner, _ in groups))
        assert "flood" in alerts(emu, groups[0][1])[0]["text"]

        # another picture meanwhile is not part of it
        chat, _, raider = groups[0]
        other = emu.post_photo(chat, raider, jpeg(other_photo))
        assert verdicts(await telegram_decided(app, emu, chat, other)) == ["allow"]

        # an admin keeps a held copy: the hold ends and the picture is counted afresh
        chat, owner, raider = groups[0]
        alert = alerts(emu, owner)[-1]
        keep = next(
            b["callback_data"]
            for row in alert["reply_markup"]["inline_keyboard"]
            for b in row
            if b["callback_data"].startswith("keep:")
        )
        query = emu.press_button(owner, alert["message_id"], owner, keep)
        assert (await emu.wait_for(lambda: emu.callback_answer(query)))["text"] == "Kept."
        after = emu.post_photo(chat, raider, picture)
        assert verdicts(await telegram_decided(app, emu, chat, after)) == ["allow"]
        assert len(flood_notes(emu, log_chat)) == 1


def test_the_counter_keeps_a_fixed_number_of_pictures_and_counts_a_message_once():
    clock = [0.0]
    counter = FloodCounter(FloodConfig(count=3, window=60, hold=100, tracked=100), clock=lambda: clock[0])
    for i in range(1000):
        counter.note([f"sha256:{i:064x}"], ("telegram", "-1"), str(i))
    assert len(counter) == 100
    key = ["sha256:" + "f" * 64]
    # a message's second picture (a thumbnail, a replay) is not a second copy
    assert not counter.note(key, ("telegram", "-1"), "m1").held
    assert not counter.note(key, ("telegram", "-1"), "m1").held
    assert not counter.note(key, ("telegram", "-2"), "m2").held
    third = counter.note(key, ("telegram", "-3"), "m3")
    assert third.held and third.started and third.groups == 3
    fourth = counter.note(key, ("telegram", "-3"), "m4")
    assert fourth.held and not fourth.started
    clock[0] += 1000  # a long quiet: the hold ran out and the copies left the window
    assert not counter.note(key, ("telegram", "-1"), "m5").held
    # copies spread wider than the window are no flood
    slow = ["pdq:" + "a" * 64]
    for i in range(6):
        clock[0] += 61
        assert not counter.note(slow, ("telegram", "-1"), f"s{i}").held


def test_the_flood_settings_are_read_and_a_bad_log_chat_is_named(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[flood]\ncount = 5\nlog_chat = "matrix:!ops:example.org"\n')
    flood = load_config(path).flood
    assert (flood.count, flood.log_chat) == (5, ("matrix", "!ops:example.org"))
    path.write_text('[flood]\nlog_chat = "#ops:example.org"\n')
    with pytest.raises(ConfigError, match="flood.log_chat"):
        load_config(path)
    assert load_config(None).flood.count == 0  # off unless the operator sets a count


async def test_a_raid_of_new_members_posting_pictures_is_held_and_old_members_are_not(
    emu, tmp_path, marker_model, photo, other_photo
):
    from tests.test_door import door_done, polling

    operator = emu.add_user("Operator")
    log_chat = emu.add_group("Operator log", creator=operator, bot_rights=full_rights())
    owner, old = emu.add_user("Owner"), emu.add_user("Old member")
    emu.start_private(owner)
    chat = emu.add_group("Class 4", creator=owner, members=[old], bot_rights=full_rights())
    extra = f'[flood]\nnew_members = 3\nwindow = 600\nlog_chat = "telegram:{log_chat}"\n'
    async with running_vigil(write_config(tmp_path, emu.url, marker_model, extra=extra)) as app:
        await polling(emu)
        decided = []
        for i in range(4):  # fresh accounts join, then each posts a different benign picture
            raider = emu.add_user(f"Raider {i}")
            emu.add_member(chat, raider)
            await door_done(app, emu, chat, raider)
            picture = jpeg(photo if i % 2 else other_photo, 60 + 10 * i)
            decided += verdicts(await telegram_decided(app, emu, chat, emu.post_photo(chat, raider, picture)))
        assert decided == ["allow", "allow", "review", "review"]  # held from the third new member on
        raid_notes = [m.get("text") or "" for m in emu.messages_in(log_chat) if "Raid" in (m.get("text") or "")]
        assert len(raid_notes) == 1 and "3 members" in raid_notes[0]
        await emu.wait_for(lambda: alerts(emu, owner))
        assert "raid" in alerts(emu, owner)[0]["text"]
        # a member who was there before: not held
        assert verdicts(await telegram_decided(app, emu, chat, emu.post_photo(chat, old, jpeg(photo, 55)))) == ["allow"]
