"""What the Matrix adapter's helper parts (policy rooms, policy bans, notices about undecryptable
images) use of the adapter, as a protocol: they are typed against it instead of importing
``bot.platforms.matrix``, which builds them (an import cycle otherwise)."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from nio import AsyncClient

from bot.events import ChatRef, UserRef
from bot.platforms.base import BotCore, OutgoingMessage
from bot.platforms.matrix_direct import RawApi
from bot.store.protocol import Store


class MatrixHost(Protocol):
    name: str
    store: Store
    client: AsyncClient
    raw: RawApi
    _tasks: set[asyncio.Task[Any]]

    @property
    def me(self) -> str: ...
    @property
    def core(self) -> BotCore: ...  # the running bot, from start() on

    async def admins(self, chat_id: str) -> frozenset[str]: ...
    async def is_member(self, chat_id: str, user_id: str) -> bool: ...
    async def send_private(self, user_id: str, message: OutgoingMessage) -> str: ...
    def _chat(self, room_id: str) -> ChatRef: ...
    def _user(self, room_id: str, user_id: str) -> UserRef: ...
    async def _language(self, room_id: str) -> str | None: ...
    def _invalidate(self, room_id: str) -> None: ...
    def _done(self, task: asyncio.Task[Any], what: str) -> None: ...


class PolicyFollowing(Protocol):
    """What the ban rules (bot/platforms/matrix_policy_bans.py) read of the followed policy rooms."""

    platform: MatrixHost
    report_only: set[str]  # rooms where a ban rule's match is reported, not banned

    async def followers_of(self, policy_room: str) -> list[str]: ...
    async def followed_rooms(self, chat_id: str) -> list[str]: ...
