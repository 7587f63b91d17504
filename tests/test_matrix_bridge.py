"""A WhatsApp group bridged into Matrix (as mautrix-whatsapp does it), on the real Synapse.

An application service registered on the test Synapse speaks as puppets (``@whatsapp_<number>``)
in a room marked with ``m.bridge``; Vigil redacts a puppet's hit and its alert says what reaches
WhatsApp and what the WhatsApp group's admins must do.
"""

from __future__ import annotations

import asyncio
import os

import pytest
import pytest_asyncio

from bot.platforms.matrix_bridges import BridgeBook
from tests.support.bridge import PuppetBridge, bridge_state
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
from tests.support.vigil_harness import jpeg
from tests.test_matrix import choice


def _unique(pixels):
    """The picture with a corner of its own: Synapse quarantines every copy of a file (by its hash),
    so bytes another test sent and had quarantined could not be downloaded here."""
    out = pixels.copy()
    out[:16, :16] = tuple(os.urandom(3))
    return out


pytestmark = pytest.mark.synapse
shared_loop = pytest.mark.asyncio(loop_scope="module")

BRIDGED = "The sender is a WhatsApp user bridged into this room"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def vigil(synapse, marker_model, tmp_path_factory):
    bot = new_user(synapse, "vigil")
    cfg = write_matrix_config(tmp_path_factory.mktemp("vigil"), synapse, bot, marker_model)
    async with running_matrix_vigil(cfg, matrix_env(bot)) as app:
        app.bot = bot  # type: ignore[attr-defined]
        yield app


@shared_loop
async def test_a_puppets_image_in_a_bridged_room_is_redacted_and_the_alert_says_what_reaches_whatsapp(
    synapse, vigil, photo
):
    bot = vigil.bot.user_id
    bridge = PuppetBridge(synapse)
    async with people(synapse, "owner", "member") as (owner, member):
        room = await protected_room(owner, bot, members=[member])
        await owner.nio.room_put_state(
            room.room_id,
            "m.bridge",
            bridge_state("120363000000000001@g.us", bridge.bot_id),
            state_key="net.maunium.whatsapp://whatsapp/120363000000000001@g.us",
        )
        puppet = await bridge.puppet("34600111222")
        await owner.invite(room.room_id, puppet)
        await bridge.join(puppet, room.room_id)
        hit = await bridge.send_image(puppet, room.room_id, jpeg(_unique(add_marker(photo))))
        await wait_redacted(owner, room.room_id, hit)
        inbox = Inbox(owner, bot)
        await inbox.wait(lambda i: len(i.alerts()) == 1)
        _, alert = inbox.alerts()[0]
        assert BRIDGED in alert.body and "admin of the WhatsApp group" in alert.body
        assert len(alert.body.splitlines()) <= 15  # still one phone screen, the choices included

        # a ban acts on the puppet, in the Matrix room (the WhatsApp membership is the group admins' to change)
        dm, _ = inbox.alerts()[0]
        _, data = choice(alert.body, "ban")
        await owner.send_text(dm, f"!vigil {data}")
        for _ in range(300):
            got = await owner.nio.room_get_state_event(room.room_id, "m.room.member", puppet)
            if getattr(got, "content", {}).get("membership") == "ban":
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the puppet was not banned")

        # a Matrix member's hit in the same room is not called bridged
        own = await member.send_image(room.room_id, jpeg(_unique(add_marker(photo)), 80), "image/jpeg")
        await wait_redacted(owner, room.room_id, own)
        await inbox.wait(lambda i: len(i.alerts()) == 2)
        assert BRIDGED not in inbox.alerts()[1][1].body


def test_a_sender_is_bridged_only_as_a_puppet_of_a_network_the_room_is_bridged_to():
    book = BridgeBook()
    room = "!r:localhost"
    assert book.network(room, "@whatsapp_1:localhost") == ""  # no bridge state: not bridged
    book.note(room, {"type": "uk.half-shot.bridge", "state_key": "k", "content": {"protocol": {"id": "whatsapp"}}})
    assert book.network(room, "@whatsapp_1:localhost") == "whatsapp"
    assert book.network(room, "@alice:localhost") == ""
    book.note(room, {"type": "uk.half-shot.bridge", "state_key": "k", "content": {}})  # the bridge left
    assert book.network(room, "@whatsapp_1:localhost") == ""
