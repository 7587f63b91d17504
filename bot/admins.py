"""Who a group's admins are now, asked on the platform and kept for a few seconds."""

from __future__ import annotations

import time
from collections.abc import Mapping

from bot.events import ChatRef
from bot.platforms.base import Platform
from bot.platforms.retries import with_retries
from bot.store.protocol import GroupsStore

ADMIN_CACHE_SECONDS = 10.0  # admin rights are re-checked at least this often


class Admins:
    def __init__(self, platforms: Mapping[str, Platform], store: GroupsStore) -> None:
        self.platforms = platforms
        self.store = store
        self._seen: dict[tuple[str, str], tuple[float, frozenset[str]]] = {}

    async def of(self, chat: ChatRef, *, fresh: bool = False) -> frozenset[str]:
        """The chat's admins; ``fresh``: asked now (a command: a demoted admin loses control at once)."""
        key = (chat.platform, chat.chat_id)
        cached = self._seen.get(key)
        if not fresh and cached and time.monotonic() - cached[0] < ADMIN_CACHE_SECONDS:
            return cached[1]
        platform = self.platforms[chat.platform]
        ids = await with_retries(f"admins of chat {chat.chat_id}", lambda: platform.admins(chat.chat_id))
        self._seen[key] = (time.monotonic(), frozenset(ids))
        return frozenset(ids)

    def forget(self, chat: ChatRef) -> None:
        self._seen.pop((chat.platform, chat.chat_id), None)

    async def is_exempt(self, chat: ChatRef, user_id: str) -> bool:
        """An admin, or a member the admins exempted: their hits are reported, not acted on."""
        return user_id in await self.of(chat) or await self.store.is_exempt(chat.platform, chat.chat_id, user_id)
