"""A stand-in for mautrix-whatsapp on the test Synapse: its application service speaks as puppets.

    bridge = PuppetBridge(synapse)
    puppet = await bridge.puppet("34600111222")          # @whatsapp_34600111222:localhost
    await bridge.join(puppet, room_id)
    event_id = await bridge.send_image(puppet, room_id, jpeg_bytes)

What a bridge does with the homeserver (the client API with its as_token and ``user_id=``, as the
application-service API allows), and nothing more: Synapse pushes it nothing (no URL).
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import quote

import aiohttp

from tests.support.synapse import Synapse


class PuppetBridge:
    def __init__(self, synapse: Synapse) -> None:
        self.synapse = synapse
        self.service = synapse.bridge
        self.bot_id = synapse.user_id(self.service.sender_localpart)

    async def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        as_user: str | None = None,
        data: bytes | None = None,
        content_type: str | None = None,
    ) -> dict:
        params = {"user_id": as_user} if as_user else {}
        headers = {"Authorization": f"Bearer {self.service.as_token}"}
        if content_type:
            headers["Content-Type"] = content_type
        async with (
            aiohttp.ClientSession() as http,
            http.request(
                method,
                self.synapse.base_url + path,
                params=params,
                headers=headers,
                json=body if data is None else None,
                data=data,
            ) as reply,
        ):
            got = await reply.json(content_type=None)
            if reply.status != 200:
                raise AssertionError(f"bridge {method} {path}: {reply.status} {got}")
            return got

    async def puppet(self, number: str, name: str | None = None) -> str:
        """Registers the puppet of a WhatsApp number (mautrix-whatsapp's default template whatsapp_{number})."""
        got = await self._call(
            "POST",
            "/_matrix/client/v3/register",
            {"type": "m.login.application_service", "username": f"whatsapp_{number}"},
        )
        user_id = got["user_id"]
        await self._call(
            "PUT",
            f"/_matrix/client/v3/profile/{quote(user_id)}/displayname",
            {"displayname": name or f"+{number} (WhatsApp)"},
            as_user=user_id,
        )
        return user_id

    async def join(self, user_id: str, room_id: str) -> None:
        await self._call("POST", f"/_matrix/client/v3/join/{quote(room_id)}", {}, as_user=user_id)

    async def send_image(self, user_id: str, room_id: str, data: bytes, mimetype: str = "image/jpeg") -> str:
        uploaded = await self._call(
            "POST", "/_matrix/media/v3/upload", as_user=user_id, data=data, content_type=mimetype
        )
        content = {
            "msgtype": "m.image",
            "body": "image.jpg",
            "url": uploaded["content_uri"],
            "info": {"mimetype": mimetype, "size": len(data)},
        }
        txn = secrets.token_hex(8)
        got = await self._call(
            "PUT", f"/_matrix/client/v3/rooms/{quote(room_id)}/send/m.room.message/{txn}", content, as_user=user_id
        )
        return got["event_id"]


def bridge_state(group_jid: str, bot_id: str) -> dict:
    """The ``m.bridge`` content mautrix-whatsapp puts in a portal room (MSC2346's shape)."""
    return {
        "bridgebot": bot_id,
        "protocol": {"id": "whatsapp", "displayname": "WhatsApp"},
        "channel": {"id": group_jid, "displayname": "Class 5B parents (WhatsApp)"},
    }
