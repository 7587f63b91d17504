"""A member who tries to get round Vigil on Matrix: every picture, poison events, foreign edits,
quarantine paths, keys withheld, slow remote media. Through the real Synapse, with a loopback
proxy in front of it playing what other homeservers could send (tests/support/matrix_proxy.py).
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time

import pytest
import pytest_asyncio
from aiohttp import web

from bot.errors import StoreError
from bot.platforms.matrix_state import Pending
from bot.platforms.matrix_sync import SYNC_KEY
from bot.platforms.matrix_undecryptable import told_key
from tests.support.imagegen import mp4_bytes
from tests.support.marker_model import add_marker
from tests.support.matrix_client import HumanClient
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
from tests.support.matrix_proxy import MatrixProxy
from tests.support.vigil_harness import jpeg

pytestmark = pytest.mark.synapse
shared_loop = pytest.mark.asyncio(loop_scope="module")

# short bounds, so the tests wait seconds instead of minutes
HOSTILE_SETTINGS = "download_deadline = 2\nundecryptable_notice_after = 1"


class HoldingProxy(MatrixProxy):
    """The module's proxy; it can also hold the alerts' reactions and slow downloads (which call goes first)."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.reactions_open = asyncio.Event()
        self.reactions_open.set()
        self.reaction_held = asyncio.Event()
        self.download_delay = 0.0

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        path = request.rel_url.raw_path
        if "/send/m.reaction/" in path and not self.reactions_open.is_set():
            self.reaction_held.set()
            await self.reactions_open.wait()
        elif "/download/" in path and self.download_delay:
            await asyncio.sleep(self.download_delay)
        return await super()._forward(request)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def proxy(synapse):
    async with HoldingProxy(synapse.base_url) as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def vigil(synapse, proxy, marker_model, tmp_path_factory):
    """Vigil behind the proxy, with a Synapse admin token (it quarantines what it redacts)."""
    bot = new_user(synapse, "vigil")
    cfg = write_matrix_config(
        tmp_path_factory.mktemp("vigil"),
        synapse,
        bot,
        marker_model,
        homeserver=proxy.url,
        matrix_extra=HOSTILE_SETTINGS,
    )
    async with running_matrix_vigil(cfg, matrix_env(bot, admin_token=synapse.admin_token)) as app:
        app.bot = bot  # type: ignore[attr-defined]
        yield app


_made = itertools.count()


def fresh(base, *, hit: bool = False) -> bytes:
    """JPEG bytes no earlier test sent: Synapse quarantines every copy of a file (by its hash) at once."""
    n = next(_made)
    pixels = add_marker(base, 0.2 + 0.004 * (n % 25)) if hit else base.copy()
    pixels[:16, :16] = (n * 37) % 256, (n * 11) % 256, n // 256 % 256  # a corner of its own
    return jpeg(pixels, 90)


def bot_of(app) -> str:
    return app.bot.user_id


def platform_of(app):
    return app.core.platforms["matrix"]


async def checked(app, event_id: str, timeout: float = 30) -> None:
    """Until Vigil has received this message and finished every picture of it (no work item left)."""
    platform = platform_of(app)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if event_id in platform.timings:
            pending = await app.core.store.pending_work("matrix")
            if not any(item.message_id == event_id for item in pending):
                return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{event_id} is still being checked after {timeout} s")


async def settle(inbox: Inbox) -> None:
    """Read the inbox once more, after Vigil's record that it is done (``checked``, ``told``): what
    it sends about a message goes out before that record, so a duplicate would be in this read."""
    await inbox.poll()


async def told(app, item: Pending, timeout: float = 30) -> None:
    """Until Vigil has recorded that the moderators were told about this member's session (it
    records that after sending, under the lock that keeps a second notice from going out)."""
    store, key = platform_of(app).store, told_key(item)
    deadline = time.monotonic() + timeout
    while await store.get_state(key) is None:
        assert time.monotonic() < deadline, f"no record of a notice about {item.event_id} after {timeout} s"
        await asyncio.sleep(0.1)


def choice(body: str, prefix: str) -> str:
    """The data (``prefix:N``) of an alert's choice, as typed after `!vigil`."""
    found = re.search(r"!vigil (" + re.escape(prefix) + r":\S+)$", body, re.MULTILINE)
    if found is None:
        raise AssertionError(f"no {prefix}: choice in {body[-600:]!r}")
    return found.group(1)


class AlertsAbout:
    """The alerts about one message. An alert's first message names no ids: its details do, so each
    alert's details are asked for once (its Details choice, typed in the DM) and kept by the alert's event."""

    def __init__(self, client: HumanClient, inbox: Inbox) -> None:
        self.client, self.inbox = client, inbox
        self.details: dict[str, str] = {}  # alert event id -> its details' text

    async def _details(self, dm: str, alert) -> str:
        if alert.event_id not in self.details:
            record = choice(alert.body, "details").split(":", 1)[1]
            await self.client.send_text(dm, f"!vigil details:{record}")

            def answered(i: Inbox) -> list[str]:
                return [e.body for _, e in i.details() if f"!vigil export:{record}" in e.body]

            await self.inbox.wait(lambda i: bool(answered(i)))
            self.details[alert.event_id] = answered(self.inbox)[0]
        return self.details[alert.event_id]

    async def __call__(self, event_id: str) -> list[tuple[str, str]]:
        """(first message, details) of each alert in the inbox (as last read) whose details name ``event_id``."""
        found = []
        for dm, alert in self.inbox.alerts():
            details = await self._details(dm, alert)
            if event_id in details:
                found.append((alert.body, details))
        return found

    async def wait(self, event_id: str, count: int, timeout: float = 30) -> list[tuple[str, str]]:
        """Until at least ``count`` alerts are about ``event_id``; returns them."""
        deadline = time.monotonic() + timeout
        while len(found := await self(event_id)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{len(found)} alerts about {event_id} after {timeout} s; inbox: {self.inbox.texts()[-3:]}"
                )
            await self.inbox.poll()
        return found


def rejected(app, reason: str) -> float:
    return app.metrics.events_rejected.labels("matrix", reason)._value.get()


async def bot_says(client: HumanClient, room_id: str, bot_id: str, words: str, timeout: float = 30) -> None:
    def said(r: str, e) -> bool:
        return r == room_id and getattr(e, "sender", None) == bot_id and words in (getattr(e, "body", "") or "")

    await client.sync_until(said, timeout)


async def status_replies(client: HumanClient, room_id: str, bot_id: str) -> list[str]:
    """Vigil's answers to `!vigil` (the group's status) in the room's history."""
    return [
        e.body
        for e in await client.messages(room_id, limit=200)
        if getattr(e, "sender", None) == bot_id and "Sensitivity:" in (getattr(e, "body", "") or "")
    ]


def media_id(mxc: str) -> str:
    return mxc.rsplit("/", 1)[1]


# --- every picture a client shows is checked ----------------------------------------------------


@shared_loop
@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
async def test_two_media_edits_with_the_same_or_no_timestamp_are_each_checked(
    synapse, proxy, vigil, photo, other_photo, encrypted
):
    async with people(synapse, "owner", "member") as (owner, member):
        room = await protected_room(owner, bot_of(vigil), members=[member], encrypted=encrypted)
        r = room.room_id
        original = await member.send_image(r, fresh(other_photo), "image/jpeg", encrypted_room=encrypted)
        await checked(vigil, original)

        def same_time(room_id: str, event: dict) -> None:
            # every edit in this room, whatever sync carries it (m.relates_to stays clear when encrypted)
            relation = (event.get("content") or {}).get("m.relates_to") or {}
            if room_id == r and relation.get("rel_type") == "m.replace":
                if encrypted:
                    event.pop("origin_server_ts", None)  # no timestamp at all
                else:
                    event["origin_server_ts"] = 1_700_000_000_000

        proxy.rewrite(same_time)
        await member.edit_media(r, original, fresh(other_photo), encrypted_room=encrypted)
        second = await member.edit_media(r, original, fresh(photo, hit=True), encrypted_room=encrypted)
        await wait_redacted(owner, r, second)
        await wait_redacted(owner, r, original)


@shared_loop
async def test_a_video_poster_a_file_thumbnail_and_an_encrypted_thumbnail_are_checked(
    synapse, vigil, photo, other_photo
):
    marked = fresh(photo, hit=True)
    async with people(synapse, "owner", "member") as (owner, member):
        plain = await protected_room(owner, bot_of(vigil), members=[member])
        r = plain.room_id
        video = {"msgtype": "m.video", "body": "clip.mp4", "info": {"mimetype": "video/mp4"}}
        video.update(await member.upload(mp4_bytes([other_photo] * 3, fps=3), "video/mp4", "clip.mp4"))
        video["info"]["thumbnail_url"] = (await member.upload(marked, "image/jpeg", "poster.jpg"))["url"]
        video["info"]["thumbnail_info"] = {"mimetype": "image/jpeg", "size": len(marked)}
        poster = await member.send(r, "m.room.message", video)
        pdf = {"msgtype": "m.file", "body": "minutes.pdf", "info": {"mimetype": "application/pdf"}}
        pdf.update(await member.upload(b"%PDF-1.4\n%%EOF\n", "application/pdf", "minutes.pdf"))
        # other bytes: Synapse quarantines every copy of a file (by hash) with the poster above
        thumb = await member.upload(fresh(other_photo, hit=True), "image/jpeg", "thumb.jpg")
        pdf["info"]["thumbnail_url"] = thumb["url"]
        document = await member.send(r, "m.room.message", pdf)
        await wait_redacted(owner, r, poster)
        await wait_redacted(owner, r, document)

    async with people(synapse, "owner", "member") as (owner, member):
        room = await protected_room(owner, bot_of(vigil), members=[member], encrypted=True)
        content = await member.media_content("m.image", fresh(other_photo), "image/jpeg", "holiday.jpg", encrypt=True)
        thumb = await member.upload(marked, "image/jpeg", "thumb.jpg", encrypt=True)
        content["info"]["thumbnail_file"] = thumb["file"]
        # (encrypted: other bytes on the server than the quarantined poster)
        content["info"]["thumbnail_info"] = {"mimetype": "image/jpeg", "size": len(marked)}
        image = await member.send(room.room_id, "m.room.message", content)
        await wait_redacted(owner, room.room_id, image)


@shared_loop
@pytest.mark.parametrize("msgtype", ["m.text", "m.notice", "m.emote"])
async def test_inline_images_in_a_text_are_checked_and_two_hits_make_one_alert(
    synapse, vigil, photo, other_photo, msgtype
):
    async with people(synapse, "owner", "member") as (owner, member):
        room = await protected_room(owner, bot_of(vigil), members=[member])
        r = room.room_id
        inbox = Inbox(owner, bot_of(vigil))
        alerts_about = AlertsAbout(owner, inbox)
        first = (await member.upload(fresh(photo, hit=True), "image/jpeg", "a.jpg"))["url"]
        second = (await member.upload(fresh(other_photo, hit=True), "image/jpeg", "b.jpg"))["url"]
        benign = (await member.upload(fresh(other_photo), "image/jpeg", "c.jpg"))["url"]
        markup = (
            f'<p>look</p><img src="{benign}" alt="cat"><img alt="x" src="{first}" width="1">'
            f'<img src="mxc://../delete"><img src="{"x" * 5000}"><p><img src="{second}"/></p>'
        )
        text = await member.send(
            r,
            "m.room.message",
            {
                "msgtype": msgtype,
                "body": "look",
                "format": "org.matrix.custom.html",
                "formatted_body": markup,
            },
        )
        await wait_redacted(owner, r, text)
        await checked(vigil, text)  # every inline image was checked: two hits
        await alerts_about.wait(text, 1)
        await settle(inbox)
        assert len(await alerts_about(text)) == 1


@shared_loop
async def test_inline_images_beyond_the_bound_make_the_message_reported_as_not_fully_checked(
    synapse, vigil, photo, other_photo
):
    async with people(synapse, "owner", "member") as (owner, member):
        room = await protected_room(owner, bot_of(vigil), members=[member])
        inbox = Inbox(owner, bot_of(vigil))
        alerts_about = AlertsAbout(owner, inbox)
        benign = fresh(other_photo)
        urls = [(await member.upload(benign, "image/jpeg", f"{n}.jpg"))["url"] for n in range(16)]
        urls.append((await member.upload(fresh(photo, hit=True), "image/jpeg", "17.jpg"))["url"])  # the 17th
        markup = "".join(f'<img src="{url}">' for url in urls)
        text = await member.send(
            room.room_id,
            "m.room.message",
            {
                "msgtype": "m.text",
                "body": "gallery",
                "format": "org.matrix.custom.html",
                "formatted_body": markup,
            },
        )
        await checked(vigil, text)
        await alerts_about.wait(text, 1)
        await settle(inbox)
        ((alert, details),) = await alerts_about(text)
        assert "could not" in alert.lower() and "could not" in details.lower()


@shared_loop
async def test_a_custom_emoji_reaction_showing_a_blocked_image_is_redacted(synapse, vigil, photo):
    async with people(synapse, "owner", "member") as (owner, member):
        room = await protected_room(owner, bot_of(vigil), members=[member])
        r = room.room_id
        target = await owner.send_text(r, "Welcome to the class group")
        emoji = (await member.upload(fresh(photo, hit=True), "image/jpeg", "emoji.jpg"))["url"]
        reaction = await member.send(
            r,
            "m.reaction",
            {
                "m.relates_to": {"rel_type": "m.annotation", "event_id": target, "key": emoji},
                "shortcode": ":wave:",
            },
        )
        await wait_redacted(owner, r, reaction)
        assert not await owner.redacted(r, target)


# --- poison events and replays ---------------------------------------------------------------------


def crafted(sender: str, event_id: str, content: dict, event_type: str = "m.room.message") -> dict:
    """An event as a (hostile) remote homeserver could relay it in a /sync response."""
    return {
        "type": event_type,
        "event_id": event_id,
        "sender": sender,
        "origin_server_ts": int(time.time() * 1000),
        "content": content,
        "unsigned": {"age": 1},
    }


def nested(depth: int) -> dict:
    value: dict = {"leaf": True}
    for _ in range(depth):
        value = {"x": value}
    return value


@shared_loop
async def test_poison_events_are_skipped_counted_and_the_sync_goes_on_without_repeating_commands(
    synapse, proxy, vigil, photo, other_photo
):
    async with people(synapse, "owner", "member") as (owner, member):
        room = await protected_room(owner, bot_of(vigil), members=[member])
        r = room.room_id
        benign = (await member.upload(fresh(other_photo), "image/jpeg", "x.jpg"))["url"]
        image = {"msgtype": "m.image", "body": "x.jpg", "url": benign}
        poison = [
            # an edit whose target id is 300 characters: the store caps ids at 255
            crafted(
                member.user_id,
                "$" + "p" * 43,
                {
                    **image,
                    "m.new_content": image,
                    "m.relates_to": {"rel_type": "m.replace", "event_id": "$" + "a" * 299},
                },
            ),
            crafted(member.user_id, "$" + "b" * 299, image),  # an event id of 300 characters
            crafted(member.user_id, "$" + "c" * 43, {**image, "extra": nested(60)}),  # nesting beyond any real event
            crafted(member.user_id, "$" + "d" * 43, {**image, "url": "mxc://../delete"}),  # a path, not a media id
            crafted("@" + "m" * 300 + ":localhost", "$" + "e" * 43, image),  # a sender out of grammar
            crafted(member.user_id, "$" + "f" * 43, {"msgtype": "m.text", "body": "y" * 200_000}),  # far over 64 KiB
        ]
        token_before = await vigil.core.store.get_state(SYNC_KEY)
        proxy.inject_after_text(r, "Hello everyone", poison)
        await owner.send_text(r, "Hello everyone")
        await owner.send_text(r, "!vigil")  # the status: a command in the same or the next sync
        await bot_says(owner, r, bot_of(vigil), "Sensitivity:")
        # moderation goes on after the poison: the sync token moved past it
        hit = await member.send_image(r, fresh(photo, hit=True), "image/jpeg")
        await wait_redacted(owner, r, hit)
        assert await vigil.core.store.get_state(SYNC_KEY) != token_before
        for reason in ("bad_event_id", "too_deep", "bad_sender", "too_large"):
            assert rejected(vigil, reason) >= 1, reason
        assert len(await status_replies(owner, r, bot_of(vigil))) == 1


@shared_loop
async def test_a_replayed_sync_does_not_repeat_its_commands(synapse, proxy, vigil, other_photo, monkeypatch):
    """The core fails to record one picture once (a full disk): the whole sync is read again, its command is not."""
    async with people(synapse, "owner", "member") as (owner, member):
        room = await protected_room(owner, bot_of(vigil), members=[member])
        r = room.room_id
        benign = (await member.upload(fresh(other_photo), "image/jpeg", "x.jpg"))["url"]
        injected = "$" + "r" * 43
        failures = [1]
        submit = vigil.core.submit

        async def flaky_submit(event):
            if event.message_id == injected and failures:
                failures.pop()
                raise StoreError("database: disk I/O error")
            await submit(event)

        monkeypatch.setattr(vigil.core, "submit", flaky_submit)
        image = {"msgtype": "m.image", "body": "x.jpg", "url": benign}
        proxy.inject_after_text(r, "!vigil", [crafted(member.user_id, injected, image)])
        await owner.send_text(r, "!vigil")
        await checked(vigil, injected)  # recorded at the second reading of the sync, and finished
        assert not failures
        await owner.send_text(r, "!vigil sensitivity 0.9")
        await bot_says(owner, r, bot_of(vigil), "Sensitivity set to")
        assert len(await status_replies(owner, r, bot_of(vigil))) == 1


# --- edits by someone else -------------------------------------------------------------------------


async def foreign_edit(member: HumanClient, room_id: str, target: str, data: bytes) -> str:
    new = await member.media_content("m.image", data, "image/jpeg", "image.jpg")
    return await member.send(
        room_id,
        "m.room.message",
        {
            **new,
            "body": "* image.jpg",
            "m.new_content": new,
            "m.relates_to": {"rel_type": "m.replace", "event_id": target},
        },
    )


@shared_loop
async def test_a_members_edit_of_a_moderators_text_redacts_only_the_edit(synapse, vigil, photo):
    platform = platform_of(vigil)
    async with people(synapse, "owner", "member") as (owner, member):
        room = await protected_room(owner, bot_of(vigil), members=[member])
        r = room.room_id
        notice = await owner.send_text(r, "The trip is on Friday")
        edit = await foreign_edit(member, r, notice, fresh(photo, hit=True))
        await wait_redacted(owner, r, edit)  # the "edit" shows an image: judged as a message of its own
        await checked(vigil, edit)
        assert not await owner.redacted(r, notice)

        # the original not in Vigil's memory (as after a restart): its sender is read from the homeserver
        second = await owner.send_text(r, "Bring a packed lunch")
        for _ in range(300):
            if (r, second) in getattr(platform, "_senders", {}):
                break
            await asyncio.sleep(0.1)
        platform._senders.clear()
        platform._related.clear()
        edit2 = await foreign_edit(member, r, second, fresh(photo, hit=True))
        await wait_redacted(owner, r, edit2)
        await checked(vigil, edit2)
        assert not await owner.redacted(r, second)


# --- quarantine --------------------------------------------------------------------------------------


@shared_loop
async def test_quarantine_takes_only_the_events_own_media_by_a_strict_media_id(synapse, proxy, vigil, photo):
    async with people(synapse, "owner", "member") as (owner, member):
        room = await protected_room(owner, bot_of(vigil), members=[member])
        r = room.room_id
        theirs = (await owner.upload(fresh(photo), "image/jpeg", "class-photo.jpg"))["url"]  # a moderator's file
        content = await member.media_content("m.image", fresh(photo, hit=True), "image/jpeg", "x.jpg")
        content["info"]["thumbnail_url"] = theirs  # shown as the thumbnail, but the sender did not upload it
        content["info"]["thumbnail_file"] = {
            "url": "mxc://../delete",
            "key": {"k": "a"},
            "iv": "b",
            "hashes": {"sha256": "c"},
        }
        hit = await member.send(r, "m.room.message", content)
        await wait_redacted(owner, r, hit)
        await checked(vigil, hit)
        # Vigil's decision on each file: it asked who uploaded it, and its quarantine task ended
        asked = f"/_synapse/admin/v1/media/localhost/{media_id(theirs)}"
        for _ in range(200):
            if asked in proxy.paths(asked) and not platform_of(vigil)._tasks:
                break
            await asyncio.sleep(0.1)
        assert asked in proxy.paths(asked) and not platform_of(vigil)._tasks
        gone = synapse.download(content["url"], member.user.access_token)
        assert not isinstance(gone, bytes) and gone.status == 404
        admin = proxy.paths("/_synapse/admin/")  # every admin call this Vigil made, in this test and before
        assert f"/_synapse/admin/v1/media/quarantine/localhost/{media_id(content['url'])}" in admin
        # media checks and quarantines by a strict id, and the members' reports (bot/platforms/matrix_reports.py)
        allowed = re.compile(r"/_synapse/admin/v1/(media/(quarantine/)?localhost/[A-Za-z0-9_-]+|event_reports)")
        assert all(allowed.fullmatch(p) for p in admin), admin
        assert isinstance(synapse.download(theirs, owner.user.access_token), bytes)  # the moderator's file stays


# --- encrypted rooms: keys withheld from Vigil's device ----------------------------------------------


@shared_loop
async def test_moderators_are_told_once_per_member_session_when_messages_cannot_be_decrypted(
    synapse, vigil, photo, other_photo
):
    platform = platform_of(vigil)
    async with people(synapse, "owner", "member") as (owner, member):
        room = await protected_room(owner, bot_of(vigil), members=[member], encrypted=True)
        r = room.room_id
        inbox = Inbox(owner, bot_of(vigil))
        # the member's app shares keys only with verified devices: Vigil's device is left out
        await member.sync()
        if member.nio.should_query_keys:
            await member.nio.keys_query()
        devices = list(member.nio.device_store.active_user_devices(bot_of(vigil)))
        assert devices
        for device in devices:
            member.nio.blacklist_device(device)
        first = await member.send_image(r, fresh(photo, hit=True), "image/jpeg", encrypted_room=True)
        second = await member.send_image(r, fresh(other_photo, hit=True), "image/jpeg", encrypted_room=True)

        def notices(i: Inbox) -> list[str]:
            return [t for t in i.texts() if member.user_id in t and "verify" in t]

        await inbox.wait(lambda i: len(notices(i)) >= 1, timeout=40)
        for _ in range(300):
            if {first, second} <= set(platform.pending.items):
                break
            await asyncio.sleep(0.1)
        assert {first, second} <= set(platform.pending.items)  # still waiting for keys, not dropped
        waiting = [platform.pending.items[first], platform.pending.items[second]]
        # both older than undecryptable_notice_after: from now on each sync retries them and decides
        await asyncio.sleep(1.1)
        for n in range(2):  # two syncs later (Vigil has read these), every decision on both was taken
            seen = await owner.send_text(r, f"still there? {n}")
            for _ in range(300):
                if (r, seen) in platform._senders:
                    break
                await asyncio.sleep(0.1)
            assert (r, seen) in platform._senders
        for item in waiting:
            await told(vigil, item)
        await settle(inbox)
        (text,) = notices(inbox)
        assert member.nio.device_id in text and platform.client.device_id in text
        assert not await owner.redacted(r, first)


# --- slow remote media ---------------------------------------------------------------------------------


@shared_loop
async def test_a_download_that_never_answers_gives_up_at_the_deadline_and_is_reported(synapse, proxy, vigil, photo):
    async with people(synapse, "owner", "member") as (owner, member):
        room = await protected_room(owner, bot_of(vigil), members=[member])
        r = room.room_id
        inbox = Inbox(owner, bot_of(vigil))
        alerts_about = AlertsAbout(owner, inbox)
        content = await member.media_content("m.image", fresh(photo), "image/jpeg", "far.jpg")
        proxy.stall(media_id(content["url"]))
        stuck = await member.send(r, "m.room.message", content)
        await checked(vigil, stuck, timeout=30)  # 6 tries x 120 s before
        await alerts_about.wait(stuck, 1)
        await settle(inbox)
        ((alert, details),) = await alerts_about(stuck)
        assert "could not" in alert.lower() and "could not" in details.lower()
        assert proxy.stalls_seen >= 1
        hit = await member.send_image(r, fresh(photo, hit=True), "image/jpeg")
        await wait_redacted(owner, r, hit)


# --- the edge's rules on their own ---------------------------------------------------------------------


def test_ids_and_mxc_uris_are_read_by_the_specs_grammar():
    from bot.platforms import matrix_bounds as bounds

    assert bounds.parse_mxc("mxc://matrix.example.org:8448/AbC_12-x") == ("matrix.example.org:8448", "AbC_12-x")
    assert bounds.parse_mxc("mxc://[::1]:8008/abc") == ("[::1]:8008", "abc")
    for bad in (
        "mxc://../delete",
        "mxc://localhost/..%2Fdelete",
        "mxc://localhost/a/b",
        "mxc://localhost/a?x=1",
        "mxc://local host/a",
        "mxc://localhost:99999/a",
        "mxc://-bad.example/a",
        "https://x/a",
        "mxc://x/" + "a" * 256,
    ):
        with pytest.raises(ValueError):
            bounds.parse_mxc(bad)
    assert bounds.event_id("$" + "a" * 43) and not bounds.event_id("$" + "a" * 299) and not bounds.event_id("$a b")
    assert bounds.user_id("@m:localhost") and not bounds.user_id("@" + "m" * 300 + ":localhost")
    assert not bounds.user_id("@m:..")
    deep = {"event_id": "$e", "sender": "@a:s", "type": "m.room.message", "content": nested(60)}
    assert bounds.event_problem(deep) == "too_deep"


def test_variants_of_long_edit_ids_stay_distinct_and_fit_the_store():
    from bot.events import MAX_VARIANT
    from bot.platforms.matrix_pictures import variant_of

    long_a, long_b = "$" + "a" * 254, "$" + "a" * 253 + "b"
    variants = {variant_of(e, role) for e in (long_a, long_b, "$short") for role in ("", "thumb", "inline:15")}
    assert len(variants) == 9 and all(len(v) <= MAX_VARIANT for v in variants)
    assert variant_of("$short", "thumb") == "edit:$short/thumb" and variant_of(None, "inline:0") == "inline:0"


@shared_loop
async def test_an_alerts_reactions_wait_while_the_next_hit_is_on_its_way_to_its_redaction(synapse, proxy, vigil, photo):
    """A hit arriving while an alert's reactions are being added is redacted before the rest of them."""
    platform = platform_of(vigil)
    async with people(synapse, "owner", "member") as (owner, member):
        room = await protected_room(owner, bot_of(vigil), members=[member])
        later = await member.media_content("m.image", fresh(photo, hit=True), "image/jpeg", "photo.jpg")
        proxy.reaction_held.clear()
        proxy.reactions_open.clear()
        try:
            first = await member.send_image(room.room_id, fresh(photo, hit=True), "image/jpeg")
            await wait_redacted(owner, room.room_id, first)
            await asyncio.wait_for(proxy.reaction_held.wait(), 60)  # the first alert's first reaction, held
            proxy.download_delay = 1.5  # the next hit takes a while to download (within the 2 s deadline)
            second = (await member.nio.room_send(room.room_id, "m.room.message", later)).event_id
            for _ in range(600):  # until Vigil has recorded it: it is on its way to a redaction
                if any(i.message_id == second for i in await vigil.core.store.pending_work("matrix")):
                    break
                await asyncio.sleep(0.05)
            proxy.reactions_open.set()
            await wait_redacted(owner, room.room_id, second)
        finally:
            proxy.reactions_open.set()
            proxy.download_delay = 0.0
        for _ in range(600):  # until both alerts' reactions have been answered
            if platform._offers.empty() and not platform._offering:
                break
            await asyncio.sleep(0.1)
        clock = platform.timings[second]
        later_reactions = [r for r in platform.calls.recent if r.kind == "reaction" and r.started >= clock.arrived]
        assert later_reactions  # the first alert's other reactions, and the second alert's
        assert all(r.started >= clock.redacted for r in later_reactions), "a reaction went before the redaction"
