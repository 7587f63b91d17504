"""A person in a Matrix room, for tests: matrix-nio against the test Synapse, end-to-end encryption on.

    async with HumanClient(synapse, user) as alice:
        room_id = await alice.create_room("class 5b", invite=[bob.user_id], encrypted=True)
        event_id = await alice.send_image(room_id, jpeg_bytes, "image/jpeg", encrypted_room=True)

Every sync goes through one place, which keeps the events it has not handed out yet, so
``sync_until`` never misses an event that an earlier sync (for example the one before an encrypted
send) already fetched.
"""

from __future__ import annotations

import io
import shutil
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from nio import (
    AsyncClient,
    AsyncClientConfig,
    EncryptionError,
    ErrorResponse,
    Event,
    MegolmEvent,
    MessageDirection,
    RoomCreateResponse,
    RoomGetEventResponse,
    RoomMessagesResponse,
    RoomSendResponse,
    SyncResponse,
    UploadResponse,
)
from nio.crypto.attachments import decrypt_attachment
from nio.responses import DownloadResponse
from PIL import Image, UnidentifiedImageError

from tests.support.synapse import RegisteredUser, Synapse

MEGOLM = "m.megolm.v1.aes-sha2"

#: (room_id, event) as ``sync_until`` sees and returns them
RoomEvent = tuple[str, Event]


class HumanClientError(RuntimeError):
    """The homeserver refused what the test client asked, or a wait ran out."""

    def __init__(self, message: str, *, http_status: int | None = None, errcode: str | None = None) -> None:
        super().__init__(message)
        self.http_status, self.errcode = http_status, errcode


def _check(response: Any, what: str) -> Any:
    if isinstance(response, ErrorResponse):
        transport = getattr(response, "transport_response", None)
        status = getattr(transport, "status", None)
        raise HumanClientError(
            f"{what} failed: HTTP {status} {response.status_code} {response.message}",
            http_status=status,
            errcode=response.status_code,
        )
    return response


def _image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height for the event's info, when the bytes are an image Pillow can read the header of."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except (UnidentifiedImageError, OSError, ValueError):
        return None  # tests also send bytes that are not images on purpose


class HumanClient:
    """One user's device, with its own encryption store under the Synapse work dir."""

    def __init__(self, synapse: Synapse, user: RegisteredUser, *, store_dir: Path | None = None) -> None:
        self.synapse = synapse
        self.user = user
        self.store_dir = store_dir or synapse.workdir / "clients" / f"{user.localpart}-{user.device_id}"
        self.client: AsyncClient | None = None
        self._pending: deque[RoomEvent] = deque(maxlen=10_000)

    @property
    def user_id(self) -> str:
        return self.user.user_id

    @property
    def nio(self) -> AsyncClient:
        if self.client is None:
            raise HumanClientError("the client is not open: use `async with HumanClient(...)`")
        return self.client

    async def __aenter__(self) -> HumanClient:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        config = AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True)
        self.client = AsyncClient(
            self.synapse.base_url,
            self.user.user_id,
            device_id=self.user.device_id,
            store_path=str(self.store_dir),
            config=config,
        )
        self.client.restore_login(self.user.user_id, self.user.device_id, self.user.access_token)
        try:
            if self.client.should_upload_keys:
                _check(await self.client.keys_upload(), "uploading device keys")
            await self.sync(full_state=True)
        except BaseException:
            await self.client.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.client is not None:
            await self.client.close()
            self.client = None

    def forget_store(self) -> None:
        """Delete this device's encryption store (call after the client is closed)."""
        shutil.rmtree(self.store_dir, ignore_errors=True)

    # --- syncing -----------------------------------------------------------------------------

    async def sync(self, timeout_ms: int = 0, *, full_state: bool = False) -> SyncResponse:
        """One sync; its timeline and invite events join the queue that ``sync_until`` reads."""
        client = self.nio
        response = _check(await client.sync(timeout=timeout_ms, full_state=full_state), "sync")
        for room_id, info in response.rooms.join.items():
            self._pending.extend((room_id, event) for event in info.timeline.events)
        for room_id, info in response.rooms.invite.items():
            self._pending.extend((room_id, event) for event in info.invite_state)
        if client.should_upload_keys:
            _check(await client.keys_upload(), "uploading one-time keys")
        if client.should_query_keys:
            _check(await client.keys_query(), "querying device keys")
        self._retry_decryption()
        return response

    def _retry_decryption(self) -> None:
        # a room key can arrive (to-device) in a later sync than the message it opens
        for index, (room_id, event) in list(enumerate(self._pending)):
            if isinstance(event, MegolmEvent):
                try:
                    self._pending[index] = (room_id, self.nio.decrypt_event(event))
                except EncryptionError:
                    pass

    async def sync_until(self, predicate: Callable[[str, Event], bool], timeout: float = 10.0) -> RoomEvent:
        """Sync until an event (timeline of a joined room, or an invite) matches; return and consume it.

        Events that do not match stay queued for later waits, so the order of two waits does not
        have to follow the order in which the server delivered the events.
        """
        deadline = time.monotonic() + timeout
        while True:
            for item in list(self._pending):
                if predicate(*item):
                    self._pending.remove(item)
                    return item
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seen = ", ".join(f"{type(e).__name__}({e.sender})" for _, e in list(self._pending)[-15:])
                raise HumanClientError(f"no matching event within {timeout} s; unconsumed: {seen or 'none'}")
            await self.sync(timeout_ms=int(min(remaining, 1.0) * 1000))

    async def wait_invite(self, timeout: float = 10.0) -> str:
        """Wait for an invite to this user; return the room id."""
        room_id, _ = await self.sync_until(
            lambda _, e: getattr(e, "membership", None) == "invite" and getattr(e, "state_key", None) == self.user_id,
            timeout,
        )
        return room_id

    # --- rooms -------------------------------------------------------------------------------

    async def create_room(
        self,
        name: str,
        invite: Sequence[str] = (),
        encrypted: bool = False,
        power_levels: Mapping[str, int] | None = None,
        *,
        power_level_content: Mapping[str, Any] | None = None,
        room_version: str | None = None,
        is_direct: bool = False,
    ) -> str:
        """Create a private room and return its id.

        ``power_levels`` maps user ids to levels for OTHER users: from room version 12 (Synapse's
        default) the creator holds unlimited power and must not appear in that map.
        ``power_level_content`` overrides other keys of m.room.power_levels (e.g. ``{"redact": 50}``).
        """
        override: dict[str, Any] = dict(power_level_content or {})
        if power_levels is not None:
            override["users"] = dict(power_levels)
        initial_state = []
        if encrypted:
            initial_state.append({"type": "m.room.encryption", "state_key": "", "content": {"algorithm": MEGOLM}})
        response = await self.nio.room_create(
            name=name,
            invite=list(invite),
            initial_state=initial_state,
            power_level_override=override or None,
            room_version=room_version,
            is_direct=is_direct,
        )
        room_id = _check(response, f"creating room {name!r}").room_id
        assert isinstance(response, RoomCreateResponse)
        await self.sync()  # so the client knows the room (and its encryption) before anyone sends
        return room_id

    async def invite(self, room_id: str, user_id: str) -> None:
        _check(await self.nio.room_invite(room_id, user_id), f"inviting {user_id}")

    async def join(self, room_id: str) -> str:
        joined = _check(await self.nio.join(room_id), f"joining {room_id}").room_id
        await self.sync()
        return joined

    async def leave(self, room_id: str) -> None:
        _check(await self.nio.room_leave(room_id), f"leaving {room_id}")

    async def set_power_levels(self, room_id: str, content: Mapping[str, Any]) -> str:
        """Replace the room's m.room.power_levels content (the creator must not be in ``users``)."""
        response = await self.nio.room_put_state(room_id, "m.room.power_levels", dict(content))
        return _check(response, "setting power levels").event_id

    # --- sending -----------------------------------------------------------------------------

    async def send(self, room_id: str, event_type: str, content: Mapping[str, Any]) -> str:
        """Send any event; in an encrypted room, first learn the other devices and share keys with all."""
        client = self.nio
        if room_id not in client.rooms:
            await self.sync()
        room = client.rooms.get(room_id)
        if room is None:
            raise HumanClientError(f"{self.user_id} is not in room {room_id}")
        if room.encrypted:
            await self.sync()  # members who joined since the last sync, and their device lists
        response = await client.room_send(room_id, event_type, dict(content), ignore_unverified_devices=True)
        result = _check(response, f"sending {event_type}")
        assert isinstance(result, RoomSendResponse)
        return result.event_id

    async def send_text(self, room_id: str, text: str) -> str:
        return await self.send(room_id, "m.room.message", {"msgtype": "m.text", "body": text})

    async def upload(self, data: bytes, mimetype: str, filename: str, *, encrypt: bool = False) -> dict[str, Any]:
        """Upload bytes; returns the content fields that point at them: ``{"url": …}`` or ``{"file": {…}}``."""
        response, keys = await self.nio.upload(
            io.BytesIO(data), content_type=mimetype, filename=filename, encrypt=encrypt, filesize=len(data)
        )
        uploaded = _check(response, f"uploading {filename}")
        assert isinstance(uploaded, UploadResponse)
        if encrypt:
            assert keys is not None
            return {"file": {**keys, "url": uploaded.content_uri, "mimetype": mimetype}}
        return {"url": uploaded.content_uri}

    async def media_content(
        self, msgtype: str, data: bytes, mimetype: str, filename: str, *, encrypt: bool = False
    ) -> dict[str, Any]:
        """The content of an m.image / m.video / m.file message for these bytes, uploaded."""
        info: dict[str, Any] = {"mimetype": mimetype, "size": len(data)}
        if msgtype in ("m.image", "m.sticker") and (size := _image_size(data)):
            info["w"], info["h"] = size
        content = {"msgtype": msgtype, "body": filename, "info": info}
        content.update(await self.upload(data, mimetype, filename, encrypt=encrypt))
        return content

    async def send_media(
        self, room_id: str, msgtype: str, data: bytes, mimetype: str, filename: str, *, encrypted_room: bool = False
    ) -> str:
        content = await self.media_content(msgtype, data, mimetype, filename, encrypt=encrypted_room)
        return await self.send(room_id, "m.room.message", content)

    async def send_image(
        self, room_id: str, data: bytes, mimetype: str, *, encrypted_room: bool = False, filename: str = "image"
    ) -> str:
        """Upload (encrypted when ``encrypted_room``) and send an m.image; returns the event id."""
        return await self.send_media(room_id, "m.image", data, mimetype, filename, encrypted_room=encrypted_room)

    async def send_video(
        self, room_id: str, data: bytes, mimetype: str = "video/mp4", *, encrypted_room: bool = False
    ) -> str:
        return await self.send_media(room_id, "m.video", data, mimetype, "video", encrypted_room=encrypted_room)

    async def send_file(
        self, room_id: str, data: bytes, mimetype: str, filename: str = "file", *, encrypted_room: bool = False
    ) -> str:
        return await self.send_media(room_id, "m.file", data, mimetype, filename, encrypted_room=encrypted_room)

    async def send_sticker(self, room_id: str, data: bytes, mimetype: str = "image/png", body: str = "sticker") -> str:
        """An m.sticker event. Stickers carry a plain ``url`` (the spec has no encrypted form),
        though the event itself is encrypted in an encrypted room."""
        content = await self.media_content("m.sticker", data, mimetype, body)
        content.pop("msgtype")
        return await self.send(room_id, "m.sticker", content)

    async def edit_media(
        self,
        room_id: str,
        event_id: str,
        data: bytes,
        mimetype: str = "image/jpeg",
        *,
        encrypted_room: bool = False,
        msgtype: str = "m.image",
    ) -> str:
        """Replace an earlier media message's file (an m.replace edit); returns the edit's event id."""
        new_content = await self.media_content(msgtype, data, mimetype, "image", encrypt=encrypted_room)
        content = {
            **new_content,
            "body": f"* {new_content['body']}",
            "m.new_content": new_content,
            "m.relates_to": {"rel_type": "m.replace", "event_id": event_id},
        }
        return await self.send(room_id, "m.room.message", content)

    async def reply(self, room_id: str, event_id: str, text: str) -> str:
        content = {"msgtype": "m.text", "body": text, "m.relates_to": {"m.in_reply_to": {"event_id": event_id}}}
        return await self.send(room_id, "m.room.message", content)

    async def react(self, room_id: str, event_id: str, key: str) -> str:
        content = {"m.relates_to": {"rel_type": "m.annotation", "event_id": event_id, "key": key}}
        return await self.send(room_id, "m.reaction", content)

    async def redact(self, room_id: str, event_id: str, reason: str | None = None) -> str:
        response = await self.nio.room_redact(room_id, event_id, reason=reason)
        return _check(response, f"redacting {event_id}").event_id

    # --- reading -----------------------------------------------------------------------------

    async def messages(self, room_id: str, limit: int = 100) -> list[Event]:
        """The room's latest ``limit`` events, oldest first, decrypted where this device has the keys."""
        response = await self.nio.room_messages(room_id, direction=MessageDirection.back, limit=limit)
        result = _check(response, f"reading history of {room_id}")
        assert isinstance(result, RoomMessagesResponse)
        return list(reversed(result.chunk))

    async def get_event(self, room_id: str, event_id: str) -> Event:
        response = await self.nio.room_get_event(room_id, event_id)
        result = _check(response, f"fetching {event_id}")
        assert isinstance(result, RoomGetEventResponse)
        return result.event

    async def redacted(self, room_id: str, event_id: str) -> bool:
        """Whether the server now serves this event as redacted."""
        event = await self.get_event(room_id, event_id)
        return bool(event.source.get("unsigned", {}).get("redacted_because"))

    async def download(self, mxc: str) -> bytes:
        """Media bytes through nio (the authenticated /_matrix/client/v1/media endpoints)."""
        response = _check(await self.nio.download(mxc), f"downloading {mxc}")
        assert isinstance(response, DownloadResponse)
        return response.body

    async def download_media(self, event: Event) -> bytes:
        """The plain bytes of an image/file/video/sticker event, decrypting encrypted attachments."""
        if hasattr(event, "key") and hasattr(event, "iv"):  # RoomEncrypted{Image,File,Video,Audio}
            ciphertext = await self.download(event.url)
            return decrypt_attachment(ciphertext, event.key["k"], event.hashes["sha256"], event.iv)
        url = getattr(event, "url", None)
        if not url:
            raise HumanClientError(f"{type(event).__name__} carries no media")
        return await self.download(url)
