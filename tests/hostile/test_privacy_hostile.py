"""Who learns who is protected: a hostile admin of their own group, a hostile member of /protect.

Through the real adapter: the real python-telegram-bot against the Bot API emulator, real SQLite,
the real local-feature matcher, the marker model standing in for NudeNet. The attacker makes a
group, adds Vigil, and posts an edit of a stranger's photo; they read the private alert, the
evidence record, and what /protect answers them. None of it may name the person or say that they
are protected.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from tests.support import transforms as tf
from tests.support.botapi import BotApiEmulator, full_rights
from tests.support.marker_model import add_marker
from tests.support.vigil_harness import running_vigil, write_config
from tests.test_protect import _protect, _said, _wait_notice, jpeg
from tests.test_telegram import Group

FULL = full_rights()
BUTTON_DATA = re.compile(r"(del|keep|ban|unmute|fp|export|details):\d+")
UNNAMED = ("made from a real person's photo", "a partir de la foto de una persona real")


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    return tf.photos()


def _alerts(emu: BotApiEmulator, user: int) -> list[dict]:
    """First messages of alerts: they carry the Details button."""
    return [m for m in emu.sent_to(user) if "details:" in json.dumps(m.get("reply_markup") or {})]


def _button(message: dict, verb: str) -> str:
    return next(
        b["callback_data"]
        for row in message["reply_markup"]["inline_keyboard"]
        for b in row
        if b["callback_data"].startswith(f"{verb}:")
    )


async def _details(emu: BotApiEmulator, who: int, chat: int, alert: dict) -> dict:
    """Asks for an alert's second message where the alert is, as its admin would; returns it."""

    def shown() -> list[dict]:
        return [m for m in emu.messages_in(chat) if "export:" in json.dumps(m.get("reply_markup") or {})]

    before = len(shown())
    emu.press_button(chat, alert["message_id"], who, _button(alert, "details"))
    await emu.wait_for(lambda: len(shown()) > before, timeout=30)
    return shown()[-1]


def _fake(rgb: np.ndarray) -> bytes:
    """An undress-like edit with nudity (the marker): deleted, alerted, and the owner told."""
    edited = tf.undress_like(rgb, region="torso", share=0.4, fill="smooth", side=960)
    return jpeg(add_marker(edited, 0.2, at=(380, 620)), 88)


def _attacker(emu: BotApiEmulator, name: str = "Mallory") -> tuple[int, int, int]:
    """A stranger who makes their own group with an accomplice in it (an admin's own posts are
    only reported), adds Vigil as an admin, and starts it privately: (admin, accomplice, group)."""
    who = emu.add_user(name, username=name.lower())
    accomplice = emu.add_user("Trudy", username="trudy")
    chat = emu.add_group(f"{name}'s group", creator=who, members=[accomplice], bot_rights=FULL)
    emu.start_private(who)
    return who, accomplice, chat


def _assert_unnamed(alert: dict, *names: str) -> None:
    text = alert["text"]
    for name in names:
        assert name not in text, text
    assert "protect" not in text.lower() and "proteg" not in text.lower(), text
    assert any(u in text.lower() for u in UNNAMED), text
    for row in (alert.get("reply_markup") or {}).get("inline_keyboard", []):
        for button in row:
            assert BUTTON_DATA.fullmatch(button["callback_data"]), button  # no photo or owner id rides along


async def test_only_a_group_she_is_in_learns_her_name_and_only_while_she_is_in_it(emu, tmp_path, marker_model, photos):
    g = Group(emu)  # "Year 9 parents": Olivia (owner, English), Ana (admin, Spanish), Max
    victim = emu.add_user("Lucía", last_name="<i>R</i> & \u202eco", username="lucia", language_code="en")
    emu.add_member(g.chat, victim)
    mallory, trudy, theirs = _attacker(emu)
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)):
        await _protect(emu, victim, photos["astronaut"], notify=True)

        # the stranger's group: the image goes, the alert says what it is, and nothing of who
        posted = emu.post_photo(theirs, trudy, _fake(photos["astronaut"]))
        await emu.wait_for(lambda: len(_alerts(emu, mallory)) == 1, timeout=30)
        alert = _alerts(emu, mallory)[0]
        _assert_unnamed(alert, "Lucía", "lucia", str(victim))
        assert posted not in [m["message_id"] for m in emu.messages_in(theirs)]
        # nor the details, rebuilt from the audit record when asked for
        details = await _details(emu, mallory, mallory, alert)
        _assert_unnamed(details, "Lucía", "lucia", str(victim))
        # the evidence record the attacker can export carries no protected photo's or owner's id
        emu.press_button(mallory, details["message_id"], mallory, _button(details, "export"))
        await emu.wait_for(lambda: any("document" in m for m in emu.sent_to(mallory)))
        doc = next(m for m in emu.sent_to(mallory) if "document" in m)
        record = json.loads(emu.file_bytes(doc["document"]["file_id"]))["records"][0]
        derived = record["findings"]["derived"]
        assert derived and all(set(d) <= {"frame", "match_fraction"} for d in derived)
        # Lucía is told, without the stranger's group named
        notice = await _wait_notice(emu, victim)
        assert "Mallory" not in notice["text"] and "a group Vigil watches" in notice["text"]

        # the group she is in: its admins read her name, in their own language
        emu.post_photo(g.chat, g.member, _fake(photos["astronaut"]))
        await emu.wait_for(lambda: len(g.alerts(g.owner)) == 1 and len(g.alerts(g.admin)) == 1, timeout=30)
        assert "Lucía" in g.alerts(g.owner)[0]["text"] and "Lucía" in g.alerts(g.admin)[0]["text"]
        assert "Lucía" in (await _details(emu, g.owner, g.owner, g.alerts(g.owner)[0]))["text"]
        # her display name is shown as text: escaped, not markup, and without its direction override
        sent = next(
            c.params["text"]
            for c in emu.calls_to("sendMessage")
            if str(c.params.get("chat_id")) == str(g.owner) and "Lucía" in str(c.params.get("text"))
        )
        assert "Lucía &lt;i&gt;R&lt;/i&gt; &amp; co" in sent and "\u202e" not in sent

        # she leaves: asked again at the next alert, she is no longer named there
        emu.leave(g.chat, victim)
        emu.post_photo(g.chat, g.member, _fake(photos["astronaut"]))
        await emu.wait_for(lambda: len(g.alerts(g.owner)) == 2 and len(g.alerts(g.admin)) == 2, timeout=30)
        _assert_unnamed(g.alerts(g.owner)[1], "Lucía", "lucia")
        _assert_unnamed(g.alerts(g.admin)[1], "Lucía", "lucia")  # in Spanish too
        # and the details of the first alert, asked for again now, no longer name her either
        _assert_unnamed(await _details(emu, g.owner, g.owner, g.alerts(g.owner)[0]), "Lucía", "lucia")
        # nothing in any group names her
        for chat in (g.chat, theirs):
            assert not [m for m in emu.messages_in(chat) if "Lucía" in (m.get("text") or "")]


async def test_a_trusted_group_learns_the_name_of_someone_not_in_it_and_an_untrusted_one_does_not(
    emu, tmp_path, marker_model, photos
):
    mallory, trudy, theirs = _attacker(emu)
    safeguarding = emu.add_user("Sam", username="sam")
    trusted = emu.add_group("School safeguarding team", creator=safeguarding, bot_rights=FULL)
    emu.start_private(safeguarding)
    victim = emu.add_user("Lucía", username="lucia")
    extra = f'[protect]\ntrusted_groups = ["telegram:{trusted}"]\n'
    async with running_vigil(write_config(tmp_path, emu.url, marker_model, extra=extra)) as app:
        await _protect(emu, victim, photos["chelsea"], notify=False)
        # the operator's own photos: an owner with no platform account is named in trusted groups only
        await app.core.protector.add_operator_photo("Eva Operator-Added", jpeg(photos["coffee"]))

        # nothing else found in it: kept for review
        edit = tf.undress_like(photos["chelsea"], region="centre", share=0.35, fill="noise")
        emu.post_photo(theirs, trudy, jpeg(edit, 85))
        emu.post_photo(trusted, safeguarding, jpeg(edit, 85))
        await emu.wait_for(lambda: len(_alerts(emu, mallory)) == 1 and len(_alerts(emu, safeguarding)) == 1, timeout=30)
        _assert_unnamed(_alerts(emu, mallory)[0], "Lucía", "lucia")
        assert "Lucía" in _alerts(emu, safeguarding)[0]["text"]

        operators = _fake(photos["coffee"])
        emu.post_photo(theirs, trudy, operators)
        emu.post_photo(trusted, safeguarding, operators)
        await emu.wait_for(lambda: len(_alerts(emu, mallory)) == 2 and len(_alerts(emu, safeguarding)) == 2, timeout=30)
        _assert_unnamed(_alerts(emu, mallory)[1], "Eva")
        assert "Eva Operator-Added" in _alerts(emu, safeguarding)[1]["text"]


async def test_an_album_of_a_hundred_photos_registers_only_the_limit(emu, tmp_path, marker_model, photos):
    member = emu.add_user("Nora", username="nora")
    emu.start_private(member)
    extra = "[protect]\nmax_photos = 5\n"
    async with running_vigil(write_config(tmp_path, emu.url, marker_model, extra=extra)) as app:
        emu.post_text(member, member, "/protect")
        await emu.wait_for(lambda: _said(emu, member, "Protect your photos"))
        data = jpeg(photos["rocket"], 90)
        emu.post_album(member, member, [data] * 100)

        def answered() -> int:
            return len(_said(emu, member, "Saved as a fingerprint", "the most Vigil keeps"))

        await emu.wait_for(lambda: answered() == 100, timeout=120)
        assert len(_said(emu, member, "Saved as a fingerprint")) == 5
        assert (await app.core.store.protected_counts())["private"] == 5
        assert len(app.core.protector.index) == 5


async def test_a_photo_someone_else_protects_is_refused_without_saying_whose(emu, tmp_path, marker_model, photos):
    owner = emu.add_user("Lucía", username="lucia")
    prober = emu.add_user("Mallory", username="mallory")
    for who in (owner, prober):
        emu.start_private(who)
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)) as app:
        await _protect(emu, owner, photos["motorcycle"], notify=False)
        emu.post_text(prober, prober, "/protect")
        await emu.wait_for(lambda: _said(emu, prober, "Protect your photos"))
        # the same photo, cropped and recompressed, as a stranger would find it on a profile
        crop = tf.variants()["crop_large"][1](photos["motorcycle"])
        emu.post_photo(prober, prober, jpeg(crop, 80))
        await emu.wait_for(lambda: _said(emu, prober, "already protected", "Saved as a fingerprint"), timeout=30)
        assert not _said(emu, prober, "Saved as a fingerprint")
        answer = _said(emu, prober, "already protected")[0]["text"]
        for leak in ("Lucía", "lucia", str(owner), "#"):
            assert leak not in answer
        assert len(app.core.protector.index) == 1
        assert await app.core.store.member_owner("telegram", str(prober)) is None
        # the owner can still add another photo of her own
        emu.post_text(owner, owner, "/protect")
        emu.post_photo(owner, owner, jpeg(photos["camera"], 90))
        await emu.wait_for(lambda: len(app.core.protector.index) == 2, timeout=30)


async def test_a_link_in_the_group_title_never_reaches_the_owners_notice(emu, tmp_path, marker_model, photos):
    admin = emu.add_user("Olivia", username="olivia")
    member = emu.add_user("Max", username="max")
    victim = emu.add_user("Lucía", username="lucia")
    title = "Prizes at t.me/freeprizes ask @scammer"
    chat = emu.add_group(title, creator=admin, members=[member, victim], bot_rights=FULL)
    emu.start_private(admin)
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)):
        await _protect(emu, victim, photos["astronaut"], notify=True)
        emu.post_photo(chat, member, _fake(photos["astronaut"]))
        notice = await _wait_notice(emu, victim)
    text = notice["text"]
    assert "t.me" not in text and "@scammer" not in text and "Prizes" not in text
    assert "a group you are in" in text  # she is a member: told that much
    # the only links are the help lines' own
    assert not [
        e
        for e in notice.get("entities", [])
        if e["type"] in ("url", "mention", "text_mention") or "freeprizes" in e.get("url", "")
    ]
    sent = [c for c in emu.calls_to("sendMessage") if str(c.params.get("chat_id")) == str(victim)]
    assert not [c for c in sent if "freeprizes" in str(c.params.get("text"))]


async def test_the_admin_log_chat_never_gets_a_protected_persons_name(emu, tmp_path, marker_model, photos):
    g = Group(emu, started=())  # no admin can be messaged privately: alerts go to the log chat
    victim = emu.add_user("Lucía", username="lucia")
    emu.add_member(g.chat, victim)  # her group: its admins could read her name privately
    emu.start_private(victim)
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)):
        await _protect(emu, victim, photos["astronaut"], notify=False)
        log_chat = emu.add_group("Admins", creator=g.owner, admins=[g.admin], bot_rights=FULL)
        emu.post_text(log_chat, g.owner, f"/vigil logchat {g.chat}")
        await emu.wait_for(lambda: any("receives" in (m.get("text") or "") for m in emu.messages_in(log_chat)))
        emu.post_photo(g.chat, g.member, _fake(photos["astronaut"]))

        def logged() -> list[dict]:
            return [m for m in emu.messages_in(log_chat) if "details:" in json.dumps(m.get("reply_markup") or {})]

        await emu.wait_for(lambda: logged(), timeout=30)
        _assert_unnamed(logged()[0], "Lucía", "lucia")
        # the details asked for in the log chat, by an admin of a group she is in, do not name her either
        _assert_unnamed(await _details(emu, g.owner, log_chat, logged()[0]), "Lucía", "lucia")
        assert not [m for m in emu.messages_in(g.chat) if "Lucía" in (m.get("text") or "")]


@pytest.mark.synapse
async def test_on_matrix_only_a_room_she_has_joined_learns_her_name(synapse, tmp_path, marker_model, photos):
    from tests.support.matrix_harness import (
        Inbox,
        matrix_env,
        new_user,
        people,
        protected_room,
        running_matrix_vigil,
        write_matrix_config,
    )

    bot = new_user(synapse, "vigil")
    cfg = write_matrix_config(tmp_path, synapse, bot, marker_model)
    async with (
        running_matrix_vigil(cfg, matrix_env(bot)) as app,
        people(synapse, "owner", "stranger", "victim", "member", "accomplice") as (
            owner,
            stranger,
            victim,
            member,
            accomplice,
        ),
    ):
        ours = await protected_room(owner, bot.user_id, members=[victim, member])
        theirs = await protected_room(stranger, bot.user_id, members=[accomplice], name="Stranger's room")
        await app.core.protector.register_member_photo("matrix", victim.user_id, "Lucía", jpeg(photos["chelsea"]))
        platform = app.core.platforms["matrix"]
        assert await platform.is_member(ours.room_id, victim.user_id)
        assert not await platform.is_member(theirs.room_id, victim.user_id)
        assert not await platform.is_member(ours.room_id, "@nobody:" + victim.user_id.split(":", 1)[1])

        edit = jpeg(tf.undress_like(photos["chelsea"], region="centre", share=0.35, fill="noise"), 85)  # review
        await accomplice.send_image(theirs.room_id, edit, "image/jpeg")
        await member.send_image(ours.room_id, edit, "image/jpeg")
        mine, strangers = Inbox(owner, bot.user_id), Inbox(stranger, bot.user_id)
        await strangers.wait(lambda i: len(i.alerts()) == 1, timeout=60)
        await mine.wait(lambda i: len(i.alerts()) == 1, timeout=60)
        body = strangers.alerts()[0][1].body
        assert "Lucía" not in body and victim.user_id not in body and "protect" not in body.lower()
        assert any(u in body for u in UNNAMED)
        assert "Lucía" in mine.alerts()[0][1].body

        await victim.leave(ours.room_id)  # asked at alert time: gone from the room, not named there
        assert not await platform.is_member(ours.room_id, victim.user_id)
