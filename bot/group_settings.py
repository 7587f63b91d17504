"""A group's settings as the core reads them: the instance defaults, changed by the group's admins."""

from __future__ import annotations

from typing import Protocol

from bot.config import GroupDefaults
from bot.events import ChatRef
from bot.policy import GroupSettings
from bot.store.protocol import CirclesStore, GroupsStore, ListsStore


class SettingsLookup:
    def __init__(self, store: GroupsStore, defaults: GroupDefaults) -> None:
        self.store = store
        self.defaults = defaults

    async def of(self, chat: ChatRef) -> GroupSettings:
        group = await self.store.get_group(chat.platform, chat.chat_id)
        return GroupSettings.from_defaults(self.defaults, group.settings if group else None)


class MatchingStore(ListsStore, CirclesStore, Protocol):
    """What finding a group's lists needs of the store."""


async def list_ids_for(store: MatchingStore, chat: ChatRef) -> list[int]:
    """The lists a group matches against: its own, those it follows, and the block lists of the
    other groups in its circles (bot/circles.py)."""
    own = [lst.id for lst in await store.lists_for_group(chat.platform, chat.chat_id)]
    return own + [i for i in await store.circle_block_lists(chat.platform, chat.chat_id) if i not in own]
