"""The Matrix test harness itself: a real Synapse on loopback and matrix-nio clients acting as people."""

from __future__ import annotations

import io
import secrets
from pathlib import Path

import pytest
from nio import (
    RedactionEvent,
    RoomEncryptedImage,
    RoomMessageFile,
    RoomMessageImage,
    RoomMessageText,
    StickerEvent,
    UnknownEvent,
)
from PIL import Image

from tests.support.matrix_client import HumanClient, HumanClientError
from tests.support.synapse import HttpReply, RegisteredUser, Synapse, SynapseError, parse_mxc

pytestmark = pytest.mark.synapse

IMAGES = Path(__file__).resolve().parent / "images"


@pytest.fixture(scope="module")
def photo() -> bytes:
    return (IMAGES / "astronaut.jpg").read_bytes()


@pytest.fixture(scope="module")
def other_photo() -> bytes:
    return (IMAGES / "coffee.jpg").read_bytes()


def png(width: int = 40, height: int = 30, colour: tuple[int, int, int] = (30, 120, 200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, format="PNG")
    return out.getvalue()


def new_user(synapse: Synapse, prefix: str) -> RegisteredUser:
    return synapse.register(f"{prefix}-{secrets.token_hex(3)}", secrets.token_hex(8))


def by_id(event_id: str):
    return lambda _room, event: getattr(event, "event_id", None) == event_id


async def room_with(
    alice: HumanClient, bob: HumanClient, *, encrypted: bool = False, bob_level: int | None = None
) -> str:
    """Alice creates a room and invites Bob, who accepts."""
    levels = {bob.user_id: bob_level} if bob_level is not None else None
    room_id = await alice.create_room("harness", invite=[bob.user_id], encrypted=encrypted, power_levels=levels)
    assert await bob.wait_invite() == room_id
    assert await bob.join(room_id) == room_id
    return room_id


# --- the homeserver ------------------------------------------------------------------------------


def test_homeserver_serves_the_client_api_on_loopback_only(synapse: Synapse) -> None:
    assert synapse.base_url.startswith("http://127.0.0.1:")
    assert synapse.server_name == "localhost"
    versions = synapse.request("GET", "/_matrix/client/versions")
    assert versions.status == 200 and versions.body["versions"]
    # no federation listener, and open registration is off
    assert synapse.request("GET", "/_matrix/federation/v1/version").status == 404
    assert synapse.request("POST", "/_matrix/client/v3/register", body={"username": "x"}).status == 403
    listener = synapse.config()["listeners"][0]
    assert listener["bind_addresses"] == ["127.0.0.1"]
    assert synapse.rss_bytes() > 10 * 1024 * 1024


def test_registered_user_has_a_working_token_and_password(synapse: Synapse) -> None:
    user = new_user(synapse, "carol")
    assert user.user_id == f"@{user.localpart}:localhost"
    whoami = synapse.request("GET", "/_matrix/client/v3/account/whoami", token=user.access_token)
    assert whoami.status == 200
    assert whoami.body["user_id"] == user.user_id and whoami.body["device_id"] == user.device_id
    login = synapse.request(
        "POST",
        "/_matrix/client/v3/login",
        body={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user.localpart},
            "password": user.password,
        },
    )
    assert login.status == 200 and login.body["user_id"] == user.user_id
    wrong = synapse.request(
        "POST",
        "/_matrix/client/v3/login",
        body={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user.localpart},
            "password": "nope",
        },
    )
    assert wrong.status == 403


def test_admin_token_is_a_server_admin_and_plain_users_are_not(synapse: Synapse) -> None:
    reply = synapse.admin_request("GET", f"/_synapse/admin/v2/users/{synapse.admin.user_id}")
    assert reply.status == 200 and reply.body["admin"] is True
    user = new_user(synapse, "dave")
    assert synapse.admin_request("GET", f"/_synapse/admin/v2/users/{user.user_id}").body["admin"] is False
    refused = synapse.request("GET", f"/_synapse/admin/v2/users/{user.user_id}", token=user.access_token)
    assert refused.status == 403


def test_registering_a_taken_name_is_refused(synapse: Synapse) -> None:
    user = new_user(synapse, "erin")
    with pytest.raises(SynapseError, match="registering"):
        synapse.register(user.localpart, "other")


def test_missing_install_fails_with_the_fix(tmp_path: Path) -> None:
    server = Synapse(tmp_path / "hs", venv=tmp_path / "no-venv")
    with pytest.raises(SynapseError, match="scripts/install-synapse"):
        server.start()
    assert not server.running


def test_parse_mxc_refuses_other_uris() -> None:
    assert parse_mxc("mxc://localhost/abc") == ("localhost", "abc")
    for bad in ("http://localhost/abc", "mxc://localhost/", "mxc:///abc", "mxc://h/a/b"):
        with pytest.raises(ValueError):
            parse_mxc(bad)


# --- rooms and media -------------------------------------------------------------------------------


async def test_invited_user_joins_and_downloads_the_exact_image(synapse: Synapse, photo: bytes) -> None:
    async with (
        HumanClient(synapse, new_user(synapse, "alice")) as alice,
        HumanClient(synapse, new_user(synapse, "bob")) as bob,
    ):
        room_id = await room_with(alice, bob)
        event_id = await alice.send_image(room_id, photo, "image/jpeg")
        _, event = await bob.sync_until(by_id(event_id))
        assert isinstance(event, RoomMessageImage)
        assert event.source["content"]["info"] == {"mimetype": "image/jpeg", "size": len(photo), "w": 512, "h": 512}
        assert await bob.download_media(event) == photo


async def test_encrypted_room_image_decrypts_to_the_exact_bytes(synapse: Synapse, photo: bytes) -> None:
    async with (
        HumanClient(synapse, new_user(synapse, "alice")) as alice,
        HumanClient(synapse, new_user(synapse, "bob")) as bob,
    ):
        room_id = await room_with(alice, bob, encrypted=True)
        event_id = await alice.send_image(room_id, photo, "image/jpeg", encrypted_room=True)
        _, event = await bob.sync_until(by_id(event_id))
        assert isinstance(event, RoomEncryptedImage)
        # the server holds only ciphertext
        stored = await bob.download(event.url)
        assert len(stored) == len(photo) and stored != photo
        assert await bob.download_media(event) == photo
        # the event itself went over the wire encrypted
        raw = synapse.request(
            "GET", f"/_matrix/client/v3/rooms/{room_id}/event/{event_id}", token=bob.user.access_token
        )
        assert raw.body["type"] == "m.room.encrypted"

        text_id = await alice.send_text(room_id, "hello, encrypted")
        _, text = await bob.sync_until(by_id(text_id))
        assert isinstance(text, RoomMessageText) and text.body == "hello, encrypted"
        history = await bob.messages(room_id)
        assert [e.event_id for e in history if isinstance(e, (RoomEncryptedImage, RoomMessageText))][-2:] == [
            event_id,
            text_id,
        ]


async def test_new_member_of_encrypted_room_can_read_what_is_sent_after_joining(synapse: Synapse) -> None:
    # the sender must learn the newcomer's device and share a fresh room key with it
    async with (
        HumanClient(synapse, new_user(synapse, "alice")) as alice,
        HumanClient(synapse, new_user(synapse, "bob")) as bob,
        HumanClient(synapse, new_user(synapse, "bot")) as late,
    ):
        room_id = await room_with(alice, bob, encrypted=True)
        await alice.send_text(room_id, "before")
        await alice.invite(room_id, late.user_id)
        await late.join(await late.wait_invite())
        data = png()
        event_id = await alice.send_image(room_id, data, "image/png", encrypted_room=True)
        _, event = await late.sync_until(by_id(event_id))
        assert isinstance(event, RoomEncryptedImage)
        assert await late.download_media(event) == data


async def test_quarantined_media_no_longer_downloads(synapse: Synapse, photo: bytes) -> None:
    async with (
        HumanClient(synapse, new_user(synapse, "alice")) as alice,
        HumanClient(synapse, new_user(synapse, "bob")) as bob,
    ):
        room_id = await room_with(alice, bob)
        event_id = await alice.send_image(room_id, photo, "image/jpeg")
        _, event = await bob.sync_until(by_id(event_id))
        assert await bob.download(event.url) == photo

        reply = synapse.quarantine_media(event.url)
        assert reply.status == 200, reply.body
        with pytest.raises(HumanClientError, match="404"):
            await bob.download(event.url)
        direct = synapse.download(event.url, bob.user.access_token)
        assert isinstance(direct, HttpReply) and direct.status == 404


async def test_redaction_by_a_moderator_shows_on_the_event(synapse: Synapse, photo: bytes) -> None:
    async with (
        HumanClient(synapse, new_user(synapse, "alice")) as alice,
        HumanClient(synapse, new_user(synapse, "mod")) as mod,
    ):
        room_id = await room_with(alice, mod, bob_level=50)
        image_id = await alice.send_image(room_id, photo, "image/jpeg")
        keep_id = await alice.send_text(room_id, "stays")
        await mod.sync_until(by_id(keep_id))
        assert not await mod.redacted(room_id, image_id)

        redaction_id = await mod.redact(room_id, image_id, reason="test")
        _, redaction = await alice.sync_until(lambda _, e: isinstance(e, RedactionEvent) and e.redacts == image_id)
        assert redaction.event_id == redaction_id and redaction.sender == mod.user_id
        assert await alice.redacted(room_id, image_id)
        assert not await alice.redacted(room_id, keep_id)


async def test_plain_member_cannot_redact_others(synapse: Synapse) -> None:
    async with (
        HumanClient(synapse, new_user(synapse, "alice")) as alice,
        HumanClient(synapse, new_user(synapse, "bob")) as bob,
    ):
        room_id = await room_with(alice, bob)
        text_id = await alice.send_text(room_id, "mine")
        with pytest.raises(HumanClientError, match="403"):
            await bob.redact(room_id, text_id)
        assert not await bob.redacted(room_id, text_id)


async def test_room_creator_must_not_be_in_the_power_level_users_map(synapse: Synapse) -> None:
    async with HumanClient(synapse, new_user(synapse, "alice")) as alice:
        with pytest.raises(HumanClientError, match="must not appear"):
            await alice.create_room("bad levels", power_levels={alice.user_id: 100})


async def test_edits_replies_reactions_stickers_and_files_arrive_as_sent(
    synapse: Synapse, photo: bytes, other_photo: bytes
) -> None:
    async with (
        HumanClient(synapse, new_user(synapse, "alice")) as alice,
        HumanClient(synapse, new_user(synapse, "bob")) as bob,
    ):
        room_id = await room_with(alice, bob)
        image_id = await alice.send_image(room_id, photo, "image/jpeg")
        edit_id = await alice.edit_media(room_id, image_id, other_photo)
        reply_id = await alice.reply(room_id, image_id, "nice")
        reaction_id = await alice.react(room_id, image_id, "👍")
        sticker = png(64, 64, (250, 200, 0))
        sticker_id = await alice.send_sticker(room_id, sticker)
        pdf = b"%PDF-1.4\n% not really\n"
        file_id = await alice.send_file(room_id, pdf, "application/pdf", "notes.pdf")

        # waits can come in any order: unmatched events stay queued
        _, file_event = await bob.sync_until(by_id(file_id))
        _, edit = await bob.sync_until(by_id(edit_id))
        relates = edit.source["content"]["m.relates_to"]
        assert relates == {"rel_type": "m.replace", "event_id": image_id}
        new_url = edit.source["content"]["m.new_content"]["url"]
        assert await bob.download(new_url) == other_photo

        _, reply = await bob.sync_until(by_id(reply_id))
        assert reply.source["content"]["m.relates_to"] == {"m.in_reply_to": {"event_id": image_id}}
        _, reaction = await bob.sync_until(by_id(reaction_id))
        assert isinstance(reaction, UnknownEvent) or reaction.source["type"] == "m.reaction"
        assert reaction.source["content"]["m.relates_to"]["key"] == "👍"
        _, sticker_event = await bob.sync_until(by_id(sticker_id))
        assert isinstance(sticker_event, StickerEvent)
        assert await bob.download_media(sticker_event) == sticker
        assert isinstance(file_event, RoomMessageFile) and file_event.body == "notes.pdf"
        assert await bob.download_media(file_event) == pdf

        history = [e.event_id for e in await bob.messages(room_id)]
        positions = [history.index(i) for i in (image_id, edit_id, reply_id, reaction_id, sticker_id, file_id)]
        assert positions == sorted(positions)


async def test_sync_until_times_out_with_what_it_saw(synapse: Synapse) -> None:
    async with HumanClient(synapse, new_user(synapse, "alice")) as alice:
        with pytest.raises(HumanClientError, match="no matching event within"):
            await alice.sync_until(lambda _, e: False, timeout=0.3)
