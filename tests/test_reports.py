"""Private reports end to end: the real python-telegram-bot against the Bot API emulator.

A member's ``/report`` in reply to a message reaches the group's admins privately and the group
never sees who reported; a report by link from the private chat; ignored reporters; the rate
limit; the alert's Delete (by id, with nothing kept) and Block (with the kept hashes, through a
fake of Vigil's own ``KeptHashes`` seam) buttons.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from bot.report_links import MessageLink, message_link, parse_message_link
from bot.store.reports import ReportState
from bot.values import ListKind
from tests.support.botapi import BotApiEmulator, full_rights
from tests.support.vigil_harness import jpeg, running_vigil, write_config

T = "telegram"
NOTHING_KEPT = "[sweep]\nwindow_hours = 0\n"  # no seen-images window: Block has nothing to add


class Group:
    """A supergroup with an owner, a second admin, a poster, two members who report, and Vigil as an admin."""

    def __init__(self, emu: BotApiEmulator, *, username: str | None = None) -> None:
        self.emu = emu
        self.owner = emu.add_user("Olivia", username="olivia", language_code="en")
        self.admin = emu.add_user("Ana", username="ana", language_code="es")
        self.poster = emu.add_user("Max", username="max")
        self.reporter = emu.add_user("Rita Reporter", username="rita", language_code="en")
        self.other = emu.add_user("Otto", username="otto", language_code="en")
        self.outsider = emu.add_user("Nina", username="nina", language_code="en")
        self.chat = emu.add_group(
            "Year 9 parents",
            creator=self.owner,
            admins=[self.admin],
            members=[self.poster, self.reporter, self.other],
            bot_rights=full_rights(),
            username=username,
        )
        for who in (self.owner, self.admin, self.reporter, self.other, self.outsider):
            emu.start_private(who)

    def report_alerts(self, user: int) -> list[dict]:
        return [m for m in self.emu.sent_to(user) if "rdismiss:" in json.dumps(m.get("reply_markup") or {})]

    def said_to(self, user: int) -> list[str]:
        return [m.get("text", "") for m in self.emu.sent_to(user) if not m.get("reply_markup")]

    def present(self, message_id: int) -> bool:
        return any(m["message_id"] == message_id for m in self.emu.messages_in(self.chat))

    def press(self, user: int, message: dict, prefix: str) -> str:
        data = next(
            b["callback_data"]
            for row in message["reply_markup"]["inline_keyboard"]
            for b in row
            if b["callback_data"].startswith(prefix + ":")
        )
        return self.emu.press_button(user, message["message_id"], user, data)

    def bot_said_in_group(self) -> list[str]:
        return [m.get("text", "") for m in self.emu.messages_in(self.chat) if m["from"]["id"] == self.emu.bot_id]


async def dropped(app: Any, chat: int, reason: str, n: int = 1) -> None:
    """Until Vigil's audit log has ``n`` records of reports it dropped for ``reason``."""
    for _ in range(400):
        records = await app.store.audit_for_group(T, str(chat))
        if sum(r.label.endswith(f"dropped: {reason}") for r in records) >= n:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no record of a report dropped for {reason}")


async def test_a_report_in_reply_reaches_the_admins_and_the_group_never_sees_the_reporter(
    emu, tmp_path, marker_model, photo
):
    g = Group(emu)
    async with running_vigil(write_config(tmp_path, emu.url, marker_model, extra=NOTHING_KEPT)) as app:
        posted = emu.post_photo(g.chat, g.poster, jpeg(photo))
        command = emu.post_text(g.chat, g.reporter, "/report", reply_to=posted)
        await emu.wait_for(lambda: len(g.report_alerts(g.owner)) == 1 and len(g.report_alerts(g.admin)) == 1)
        assert not g.present(command)  # deleted: nobody in the group sees who reported
        assert g.present(posted)  # the reported message stays until an admin chooses
        alert = g.report_alerts(g.owner)[0]["text"]
        assert "Rita Reporter" in alert and "@rita" in alert and "Year 9 parents" in alert
        assert message_link(T, str(g.chat), str(posted)) in alert
        assert "Block is not available" in alert  # nothing kept for this message (the window is off)
        buttons = [
            b["callback_data"] for row in g.report_alerts(g.owner)[0]["reply_markup"]["inline_keyboard"] for b in row
        ]
        assert [b.split(":")[0] for b in buttons] == ["rdel", "rdismiss"]
        assert "Rita" not in " ".join(g.bot_said_in_group()) and "rita" not in " ".join(g.bot_said_in_group())
        await emu.wait_for(lambda: any("admins were told" in s for s in g.said_to(g.reporter)))
        # /report without a reply: deleted too, and the member is told privately how to report
        bare = emu.post_text(g.chat, g.other, "/report")
        await emu.wait_for(lambda: any("reply to it with /report" in s for s in g.said_to(g.other)))
        assert not g.present(bare)

        # another member reports the same message: no second alert
        emu.post_text(g.chat, g.other, "/report", reply_to=posted)
        await emu.wait_for(lambda: any("reported already" in s for s in g.said_to(g.other)))
        assert len(g.report_alerts(g.owner)) == 1 and len(g.report_alerts(g.admin)) == 1
        assert not any(m["from"]["id"] == emu.bot_id for m in emu.messages_in(g.chat))
        report = await app.store.get_report(1)
        assert (report.message_id, report.reporter_id, report.source) == (str(posted), str(g.reporter), "reply")
        for call in emu.calls:
            assert call.method not in ("sendPhoto", "forwardMessage", "copyMessage", "sendDocument")


async def test_delete_button_removes_the_message_by_id_when_nothing_was_kept(emu, tmp_path, marker_model, photo):
    g = Group(emu)
    async with running_vigil(write_config(tmp_path, emu.url, marker_model, extra=NOTHING_KEPT)) as app:
        posted = emu.post_photo(g.chat, g.poster, jpeg(photo))
        emu.post_text(g.chat, g.reporter, "/report", reply_to=posted)
        await emu.wait_for(lambda: len(g.report_alerts(g.owner)) == 1)
        alert = g.report_alerts(g.owner)[0]
        query = g.press(g.owner, alert, "rdel")
        answer = await emu.wait_for(lambda: emu.callback_answer(query))
        assert answer["text"] == "Deleted."
        assert not g.present(posted)
        report = await app.store.get_report(1)
        assert (report.state, report.decided_by) == (ReportState.DELETED, str(g.owner))
        query = g.press(g.admin, g.report_alerts(g.admin)[0], "rdismiss")
        answer = await emu.wait_for(lambda: emu.callback_answer(query))
        assert answer["text"] != "Deleted." and (await app.store.get_report(1)).state == ReportState.DELETED


async def test_block_button_puts_the_kept_hashes_on_the_block_list_and_copies_are_caught(
    emu, tmp_path, marker_model, other_photo
):
    g = Group(emu)
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)) as app:
        data = jpeg(other_photo, 92)
        posted = emu.post_photo(g.chat, g.poster, data)
        scan = app.core.scanner.scan(data)
        for _ in range(400):  # until the seen-images window keeps the scanned message's hashes
            if await app.store.seen_image(T, str(g.chat), str(posted)) is not None:
                break
            await asyncio.sleep(0.05)
        emu.post_text(g.chat, g.reporter, "/report", reply_to=posted)
        await emu.wait_for(lambda: len(g.report_alerts(g.owner)) == 1)
        alert = g.report_alerts(g.owner)[0]
        assert "Block is not available" not in alert["text"]
        query = g.press(g.owner, alert, "rblock")
        answer = await emu.wait_for(lambda: emu.callback_answer(query))
        assert answer["text"].startswith("Blocked (entry ")
        assert not g.present(posted)
        block = await app.store.group_list(T, str(g.chat), ListKind.BLOCK)
        entries = await app.store.entries(block.id)
        assert [e.pdq for e in entries] == [scan.frames[0].hashes.pdq]
        assert (await app.store.get_report(1)).state == ReportState.BLOCKED
        copy = emu.post_photo(g.chat, g.poster, jpeg(other_photo, 70))  # a copy posted later is caught
        await emu.wait_for(lambda: not g.present(copy), timeout=30)


async def test_a_report_by_link_in_the_private_chat_and_only_from_a_member(emu, tmp_path, marker_model, photo):
    g = Group(emu, username="year9parents")
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)) as app:
        first = emu.post_photo(g.chat, g.poster, jpeg(photo))
        second = emu.post_photo(g.chat, g.poster, jpeg(photo, 70))
        # someone who is not in the group cannot report its messages
        emu.post_text(g.outsider, g.outsider, f"/report {message_link(T, str(g.chat), str(first))}")
        await emu.wait_for(lambda: any("member of" in s for s in g.said_to(g.outsider)))
        emu.post_text(g.reporter, g.reporter, f"/report {message_link(T, str(g.chat), str(first))}")
        await emu.wait_for(lambda: len(g.report_alerts(g.owner)) == 1)
        assert "Rita Reporter" in g.report_alerts(g.owner)[0]["text"]
        # a public group's link names it by its username
        emu.post_text(g.other, g.other, f"/report https://t.me/year9parents/{second}")
        await emu.wait_for(lambda: len(g.report_alerts(g.owner)) == 2)
        assert "Otto" in g.report_alerts(g.owner)[1]["text"]
        emu.post_text(g.other, g.other, "/report https://example.org/not-a-message")
        await emu.wait_for(lambda: any("copy its link" in s for s in g.said_to(g.other)))
        reports = [await app.store.get_report(i) for i in (1, 2)]
        assert [(r.message_id, r.reporter_id, r.source) for r in reports] == [
            (str(first), str(g.reporter), "link"),
            (str(second), str(g.other), "link"),
        ]
        assert not g.bot_said_in_group()


async def test_reports_by_link_are_limited_before_asking_telegram(emu, tmp_path, marker_model):
    g = Group(emu)
    cfg = write_config(tmp_path, emu.url, marker_model, extra="[reports]\nper_member = 1\n")
    async with running_vigil(cfg):
        said = emu.post_text(g.chat, g.poster, "hello")
        link = message_link(T, str(g.chat), str(said))

        def answers() -> list[str]:
            return [s for s in g.said_to(g.outsider) if "report" in s]

        for n in range(3):
            emu.post_text(g.outsider, g.outsider, f"/report {link}")
            await emu.wait_for(lambda n=n: len(answers()) == n + 1)
        assert "member of" in answers()[0] and "no more reports from you" in answers()[2]
        asked = [c for c in emu.calls_to("getChatMember") if str(c.params.get("user_id")) == str(g.outsider)]
        assert len(asked) <= 2 and g.report_alerts(g.owner) == []


async def test_an_ignored_members_reports_are_dropped_silently(emu, tmp_path, marker_model, photo):
    g = Group(emu)
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)) as app:
        hello = emu.post_text(g.chat, g.reporter, "hello")
        emu.post_text(g.chat, g.reporter, "/vigil ignorereports", reply_to=hello)  # a member cannot
        emu.post_text(g.chat, g.owner, "/vigil ignorereports", reply_to=hello)
        await emu.wait_for(lambda: any("ignored in this group" in s for s in g.bot_said_in_group()))
        assert await app.store.is_ignored_reporter(T, str(g.chat), str(g.reporter))
        posted = emu.post_photo(g.chat, g.poster, jpeg(photo))
        command = emu.post_text(g.chat, g.reporter, "/report", reply_to=posted)
        await dropped(app, g.chat, "ignored")
        assert not g.present(command)
        assert g.report_alerts(g.owner) == [] and g.report_alerts(g.admin) == []
        assert not any("admins were told" in s for s in g.said_to(g.reporter))
        # the admins take them again
        emu.post_text(g.chat, g.owner, f"/vigil unignorereports {g.reporter}")
        await emu.wait_for(lambda: any("taken again" in s for s in g.bot_said_in_group()))
        emu.post_text(g.chat, g.reporter, "/report", reply_to=posted)
        await emu.wait_for(lambda: len(g.report_alerts(g.owner)) == 1)


async def test_reports_over_the_members_rate_limit_are_dropped(emu, tmp_path, marker_model, photo):
    g = Group(emu)
    cfg = write_config(tmp_path, emu.url, marker_model, extra="[reports]\nper_member = 2\nper_chat = 3\n")
    async with running_vigil(cfg) as app:
        posts = [emu.post_text(g.chat, g.poster, f"message {i}") for i in range(4)]
        for p in posts[:3]:
            emu.post_text(g.chat, g.reporter, "/report", reply_to=p)
        await dropped(app, g.chat, "rate_limited")
        await emu.wait_for(lambda: len(g.report_alerts(g.owner)) == 2)
        assert any("no more reports from you" in s for s in g.said_to(g.reporter))
        # another member is not limited by Rita's reports
        emu.post_text(g.chat, g.other, "/report", reply_to=posts[3])
        await emu.wait_for(lambda: len(g.report_alerts(g.owner)) == 3)
        # the group has raised per_chat reports in the window: Otto's next one is dropped too
        extra = emu.post_text(g.chat, g.poster, "one more")
        emu.post_text(g.chat, g.other, "/report", reply_to=extra)
        await dropped(app, g.chat, "rate_limited", n=2)
        assert len(g.report_alerts(g.owner)) == 3


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        ("https://t.me/c/1000000001/45", MessageLink(T, "45", chat_id="-1001000000001")),
        ("t.me/c/1000000001/7/45?thread=7", MessageLink(T, "45", chat_id="-1001000000001")),
        ("https://t.me/year9parents/45", MessageLink(T, "45", username="year9parents")),
        (
            "https://matrix.to/#/%21room%3Aexample.org/%24ev_1?via=example.org",
            MessageLink("matrix", "$ev_1", chat_id="!room:example.org"),
        ),
        (
            "https://app.element.io/#/room/!room:example.org/$ev_1",
            MessageLink("matrix", "$ev_1", chat_id="!room:example.org"),
        ),
        (
            "matrix:roomid/room:example.org/e/ev_1?via=example.org",
            MessageLink("matrix", "$ev_1", chat_id="!room:example.org"),
        ),
        ("https://t.me/c/1000000001/99999999999", None),  # out of Telegram's message ids
        ("https://t.me/joinchat/45", None),
        ("https://matrix.to/#/#alias:example.org/$ev", None),  # aliases are not followed
        (  # room version 12: no server name in the room id
            "https://matrix.to/#/!Abc-_12/$ev_1",
            MessageLink("matrix", "$ev_1", chat_id="!Abc-_12"),
        ),
        ("https://t.me/c/1000000001/45" + "0" * 700, None),
        ("javascript:alert(1)", None),
    ],
)
def test_message_links_are_read_strictly(link: str, expected: MessageLink | None) -> None:
    assert parse_message_link(link) == expected


# --- Matrix, through the real Synapse ------------------------------------------------------------------


@pytest.mark.synapse
async def test_matrix_report_in_reply_and_a_report_made_to_the_homeserver(synapse, marker_model, tmp_path, photo):
    from urllib.parse import quote

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

    bot = new_user(synapse, "vigil")
    cfg = write_matrix_config(tmp_path, synapse, bot, marker_model, extra="[reports]\nhomeserver_poll_seconds = 5\n")
    async with (
        people(synapse, "owner", "poster", "reporter", "outsider") as (owner, poster, reporter, outsider),
        running_matrix_vigil(cfg, matrix_env(bot, admin_token=synapse.admin_token)) as app,
    ):
        room = await protected_room(owner, bot.user_id, members=[poster, reporter])
        # a report in a room Vigil does not protect is left alone
        other_room = await outsider.create_room("Elsewhere", invite=[])
        elsewhere = await outsider.send_text(other_room, "not Vigil's business")
        reply = await asyncio.to_thread(
            synapse.request,
            "POST",
            f"/_matrix/client/v3/rooms/{quote(other_room)}/report/{quote(elsewhere)}",
            token=outsider.user.access_token,
            body={"reason": "spam"},
        )
        assert reply.status == 200, reply.body

        posted = await poster.send_image(room.room_id, jpeg(photo), "image/jpeg")
        command = await reporter.reply(room.room_id, posted, "!vigil report")
        await wait_redacted(owner, room.room_id, command)  # the room does not see who reported
        inbox = Inbox(owner, bot.user_id)
        await inbox.wait(lambda i: sum("!vigil rdismiss:" in t for t in i.texts()) == 1)
        alert = next(t for t in inbox.texts() if "!vigil rdismiss:" in t)
        assert reporter.user_id in alert and posted in alert and "Class 5B parents" in alert

        # a member reports a message with their client: the homeserver's report reaches the admins too
        said = await poster.send_text(room.room_id, "something harmful")
        reply = await asyncio.to_thread(
            synapse.request,
            "POST",
            f"/_matrix/client/v3/rooms/{quote(room.room_id)}/report/{quote(said)}",
            token=reporter.user.access_token,
            body={"reason": "harmful"},
        )
        assert reply.status == 200, reply.body
        await inbox.wait(lambda i: sum("!vigil rdismiss:" in t for t in i.texts()) == 2, timeout=60)
        second = [t for t in inbox.texts() if "!vigil rdismiss:" in t][1]
        assert said in second and reporter.user_id in second
        reports = [await app.store.get_report(i) for i in (1, 2)]
        assert [(r.message_id, r.source) for r in reports] == [(posted, "reply"), (said, "homeserver")]
        assert await app.store.get_report(3) is None  # the other room's report was not taken
        last = await app.store.get_state("reports:matrix:homeserver:last")
        assert last is not None and int(last) >= 2  # both homeserver reports were read, each once

        # a report by link from the reporter's direct room with Vigil
        third = await poster.send_text(room.room_id, "more of it")
        dm = await reporter.create_room("", invite=[bot.user_id], is_direct=True)
        await reporter.send_text(dm, f"!vigil report https://matrix.to/#/{room.room_id}/{third}")
        _, answer = await reporter.sync_until(
            lambda r, e: (
                r == dm and getattr(e, "sender", None) == bot.user_id and "were told" in getattr(e, "body", "")
            ),
            timeout=30,
        )
        await inbox.wait(lambda i: sum("!vigil rdismiss:" in t for t in i.texts()) == 3)
        assert (await app.store.get_report(3)).source == "link"
        # the owner chooses Delete on the first alert, typed in the direct room: the image is redacted
        alert_room = next(r for r, e in inbox.messages if "!vigil rdel:1" in (getattr(e, "body", "") or ""))
        await owner.send_text(alert_room, "!vigil rdel:1")
        await wait_redacted(owner, room.room_id, posted)
        assert (await app.store.get_report(1)).state == "deleted"


def test_reports_settings_are_bounded_and_named_when_wrong(tmp_path) -> None:
    from bot.config import ConfigError, load_config

    path = tmp_path / "config.toml"
    path.write_text("[reports]\nper_member = 3\nwindow_minutes = 30\n")
    cfg = load_config(path, env={})
    assert (cfg.reports.per_member, cfg.reports.window_minutes, cfg.reports.per_chat) == (3, 30, 30)
    path.write_text("[reports]\nper_member = 0\n")
    with pytest.raises(ConfigError, match="reports.per_member"):
        load_config(path, env={})
    path.write_text("[reports]\nhomeserver_page_size = 100000\n")
    with pytest.raises(ConfigError, match="reports.homeserver_page_size"):
        load_config(path, env={})


@pytest.mark.parametrize(
    ("item", "kept"),
    [
        ({"id": 7, "room_id": "!r:hs", "event_id": "$e", "user_id": "@u:hs", "reason": "x" * 10_000}, True),
        ({"id": 7, "room_id": "!abc", "event_id": "$e", "user_id": "@u:hs"}, True),  # room version 12
        ({"id": True, "room_id": "!r:hs", "event_id": "$e", "user_id": "@u:hs"}, False),
        ({"id": 0, "room_id": "!r:hs", "event_id": "$e", "user_id": "@u:hs"}, False),
        ({"id": 7, "room_id": "#alias:hs", "event_id": "$e", "user_id": "@u:hs"}, False),
        ({"id": 7, "room_id": "!r:hs", "event_id": "$" + "e" * 300, "user_id": "@u:hs"}, False),
        ({"id": 7, "room_id": "!r:hs", "event_id": "$e", "user_id": None}, False),
        (["not", "a", "report"], False),
    ],
)
def test_homeserver_reports_are_checked_where_they_enter(item: object, kept: bool) -> None:
    from bot.platforms.matrix_reports import report_of

    report = report_of(item)
    assert (report is not None) == kept
    if report is not None:
        assert not hasattr(report, "reason")  # what a member typed is never read


async def test_a_report_in_a_forum_topic_without_a_reply_reports_nothing(emu, tmp_path, marker_model):
    """In a forum topic, Telegram makes every message "reply" to the topic's first (service) message."""
    g = Group(emu)
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)) as app:
        chat = {"id": g.chat, "type": "supergroup", "title": "Year 9 parents", "is_forum": True}
        user = {"id": g.reporter, "is_bot": False, "first_name": "Rita Reporter", "username": "rita"}
        topic = {
            "message_id": 40,
            "date": 1_700_000_000,
            "chat": chat,
            "from": {"id": g.owner, "is_bot": False, "first_name": "Olivia"},
            "message_thread_id": 40,
            "forum_topic_created": {"name": "News", "icon_color": 7322096},
        }
        emu.queue_raw_update(
            {
                "message": {
                    "message_id": 41,
                    "date": 1_700_000_100,
                    "chat": chat,
                    "from": user,
                    "text": "/report",
                    "entities": [{"type": "bot_command", "offset": 0, "length": 7}],
                    "message_thread_id": 40,
                    "is_topic_message": True,
                    "reply_to_message": topic,
                }
            }
        )
        await emu.wait_for(lambda: any("reply to it with /report" in s for s in g.said_to(g.reporter)))
        assert await app.store.get_report(1) is None and g.report_alerts(g.owner) == []


async def test_a_report_whose_alerts_a_stop_cut_short_reaches_the_other_admins_once_after_the_restart(
    emu, tmp_path, marker_model, photo
):
    g = Group(emu)
    config = write_config(tmp_path, emu.url, marker_model)
    async with running_vigil(config) as app:
        first = emu.post_photo(g.chat, g.poster, jpeg(photo))
        emu.post_text(g.chat, g.reporter, "/report", reply_to=first)
        await emu.wait_for(lambda: len(g.report_alerts(g.owner)) == 1 and len(g.report_alerts(g.admin)) == 1)
        # the next report was recorded and Olivia told, then the process died before Ana was
        second = emu.post_photo(g.chat, g.poster, jpeg(photo))
        added = await app.store.add_report(T, str(g.chat), str(second), str(g.other), "reply")
        assert await app.store.record_report_alert(added.report.id, T, str(g.owner))
    async with running_vigil(config) as app:
        await emu.wait_for(lambda: len(g.report_alerts(g.admin)) == 2)
        assert message_link(T, str(g.chat), str(second)) in g.report_alerts(g.admin)[1]["text"]
        for _ in range(100):
            if (await app.store.get_report(added.report.id)).alerted_at is not None:
                break
            await asyncio.sleep(0.05)
        assert (await app.store.get_report(added.report.id)).alerted_at is not None
        assert len(g.report_alerts(g.owner)) == 1  # Olivia was told before the stop: not again
    async with running_vigil(config) as app:  # and a third start alerts nobody again
        await app.core.drain()
        assert len(g.report_alerts(g.admin)) == 2 and len(g.report_alerts(g.owner)) == 1
