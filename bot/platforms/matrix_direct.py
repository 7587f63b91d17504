"""Direct rooms: where Vigil writes to one person (alerts, answers), kept in the account's m.direct.

A direct room is reused while both are in it; the first alert to someone makes one (end-to-end
encrypted when Vigil shares an encrypted room with them). Someone who left or declined it is
unreachable until they write to Vigil again, as someone who blocked a bot on Telegram.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import aiohttp
from nio import AsyncClient, RoomPreset
from nio.rooms import MatrixRoom

from bot.platforms import matrix_bounds as bounds
from bot.platforms.errors import MessageGone, PlatformError, Transient, Unreachable
from bot.platforms.matrix_errors import call, translate

log = logging.getLogger("vigil.matrix")

MEGOLM = "m.megolm.v1.aes-sha2"
MAX_DIRECT_ROOMS = 100  # direct rooms per person taken from m.direct
READY_WAIT = 30.0  # seconds a lookup waits, after a start, for the first sync to show the rooms


class RawApi:
    """Client-API calls matrix-nio has no method for, on Vigil's own HTTP session."""

    def __init__(
        self, homeserver: str, session: Callable[[], aiohttp.ClientSession | None], token: Callable[[], str]
    ) -> None:
        self.homeserver = homeserver.rstrip("/")
        self._session, self._token = session, token

    async def __call__(
        self, method: str, path: str, body: Any = None, *, what: str = "", expect: type = dict, limit: int | None = None
    ) -> Any:
        """The reply's JSON (``expect``: dict or list); ``limit``: the most bytes read, beyond which it is refused."""
        session = self._session()
        assert session is not None, "the platform is not started"
        headers = {"Authorization": f"Bearer {self._token()}"}
        try:
            async with session.request(method, self.homeserver + path, headers=headers, json=body) as reply:
                try:
                    if limit is None:
                        data = await reply.json(content_type=None)
                    else:
                        raw = await reply.content.read(limit + 1)
                        if len(raw) > limit:
                            raise PlatformError(f"{what or path}: the answer is larger than {limit} bytes")
                        data = json.loads(raw)
                except ValueError:
                    data = {}
                if reply.status == 200:
                    return data if isinstance(data, expect) else expect()
                raise translate(data if isinstance(data, dict) else {}, what or path, status=reply.status)
        except (TimeoutError, aiohttp.ClientError, ConnectionError) as exc:
            raise Transient(f"{what or path}: {type(exc).__name__} {exc}".strip()) from None


class DirectRooms:
    def __init__(self, client: AsyncClient, raw: RawApi, me: str, ready: asyncio.Event) -> None:
        self.client, self.raw, self.me = client, raw, me
        self.ready = ready  # set once the first sync told nio which rooms Vigil is in
        self.by_user: dict[str, list[str]] = {}  # m.direct: user -> direct rooms, oldest first
        self.user_of: dict[str, str] = {}  # direct room -> the other person
        self._locks: dict[str, asyncio.Lock] = {}

    @property
    def _path(self) -> str:
        return f"/_matrix/client/v3/user/{quote(self.me)}/account_data/m.direct"

    async def load(self) -> None:
        try:
            data = await self.raw("GET", self._path, what="read m.direct")
        except PlatformError:  # never set yet (M_NOT_FOUND), or unreadable: start empty
            data = {}
        self.by_user = {
            u: [r for r in rooms if isinstance(r, str)] for u, rooms in data.items() if isinstance(rooms, list)
        }
        self.user_of = {r: u for u, rooms in self.by_user.items() for r in rooms}

    def follow(self, content: object) -> None:
        """m.direct as read or as a sync shows it: another process of the account (a cluster's
        worker) may have opened a direct room. Its rooms are added to those known here, none dropped."""
        if not isinstance(content, dict):
            return
        for user_id, rooms in content.items():
            if not bounds.user_id(user_id) or not isinstance(rooms, list):
                continue
            known = self.by_user.setdefault(user_id, [])
            for room_id in rooms[:MAX_DIRECT_ROOMS]:
                if bounds.room_id(room_id) and room_id not in known:
                    known.append(room_id)
                    self.user_of[room_id] = user_id

    async def remember(self, user_id: str, room_id: str) -> None:
        try:  # the saved list first: other processes of the account write it too
            self.follow(await self.raw("GET", self._path, what="read m.direct"))
        except PlatformError:
            pass
        rooms = self.by_user.setdefault(user_id, [])
        if room_id not in rooms:
            rooms.append(room_id)
        self.user_of[room_id] = user_id
        try:
            await self.raw("PUT", self._path, self.by_user, what="save m.direct")
        except PlatformError as exc:
            log.warning("matrix: could not save the direct rooms list: %s", exc)

    def _usable(self, room_id: str, user_id: str) -> bool:
        room = self.client.rooms.get(room_id)
        return room is not None and user_id in room.users and self.me in room.users

    async def room_for(self, user_id: str) -> str:
        """The direct room with ``user_id``: reused when it exists, else created."""
        if not self.ready.is_set():  # right after a start, before the first sync: rooms are unknown yet
            try:
                async with asyncio.timeout(READY_WAIT):
                    await self.ready.wait()
            except TimeoutError:
                pass
        async with self._locks.setdefault(user_id, asyncio.Lock()):
            rooms = self.by_user.get(user_id, [])
            for room_id in reversed(rooms):
                if self._usable(room_id, user_id):
                    return room_id
            latest = next((r for r in reversed(rooms) if r in self.client.rooms), None)
            if latest is not None:
                raise Unreachable(f"{user_id} left the direct room {latest} with Vigil")
            await self._check_exists(user_id)
            return await self._create(user_id)

    async def _create(self, user_id: str) -> str:
        shared = (r for r in self.client.rooms.values() if r.room_id not in self.user_of)
        encrypted = any(r.encrypted and user_id in r.users for r in shared)
        state = [{"type": "m.room.encryption", "state_key": "", "content": {"algorithm": MEGOLM}}] if encrypted else []
        created = await call(
            f"open a direct room with {user_id}",
            self.client.room_create(
                is_direct=True, invite=[user_id], preset=RoomPreset.private_chat, initial_state=state, name="Vigil"
            ),
            unreachable=True,
        )
        room_id = created.room_id
        if not bounds.room_id(room_id):
            raise PlatformError(f"open a direct room with {user_id}: the homeserver answered no valid room id")
        room = self.client.rooms.get(room_id)
        if room is None:
            # not synced yet: tell nio about the room now, so sending (and sharing keys) need not wait
            room = MatrixRoom(room_id, self.me, encrypted)
            self.client.rooms[room_id] = room
        # a sync may have shown the room before its encryption state: never send in clear by mistake
        room.add_member(self.me, None, None)
        room.add_member(user_id, None, None, invited=True)
        if encrypted:
            room.encrypted = True
            self.client.encrypted_rooms.add(room_id)
            if self.client.olm is not None:
                self.client.olm.update_tracked_users(room)
        await self.remember(user_id, room_id)
        log.info("matrix: opened a %sdirect room with %s", "encrypted " if encrypted else "", user_id)
        return room_id

    async def _check_exists(self, user_id: str) -> None:
        """A homeserver accepts an invite to a user who does not exist: ask for the profile first."""
        try:
            await self.raw("GET", f"/_matrix/client/v3/profile/{quote(user_id)}", what=f"look up {user_id}")
        except MessageGone:
            raise Unreachable(f"{user_id} does not exist on their homeserver") from None
        except PlatformError:
            pass  # profiles may be private: try the invite anyway
