"""A hit is confirmed in the database before Vigil acts on it or names anyone.

The indexes in memory follow the store's change logs (bot/follow.py) and may lag behind them
for a moment, on a busy worker more. So a list hit is kept only if its entry still exists in
that list and the list still applies to the chat (its own, or one it follows), with the list's
kind and action as they are now; a protected-photo match only if the photo still exists with
the same owner, whose name and notice choice are read afresh. A lagging worker then never
deletes for a removed entry, nor names a person who is no longer protected. The reads happen
only when there is a hit: an image that matched nothing costs none.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Protocol

from bot.events import ChatRef
from bot.lists import ListMatch
from bot.store.protected import ProtectedOwner, ProtectedPhoto
from bot.store.records import ChangeKind, EntryRecord, ListRecord
from bot.values import ListKind
from detectors.protected import DerivedMatch, KnownPhoto

log = logging.getLogger("vigil.recheck")


class RecheckStore(Protocol):
    """What confirming hits needs of the store."""

    async def entries_by_id(self, entry_ids: Sequence[int]) -> dict[int, EntryRecord]: ...

    async def lists_for_group(self, platform: str, chat_id: str) -> list[ListRecord]: ...

    async def circle_block_lists(self, platform: str, chat_id: str | int) -> list[int]: ...

    async def get_list(self, list_id: int) -> ListRecord | None: ...

    async def get_protected_photo(self, photo_id: int) -> ProtectedPhoto | None: ...

    async def get_protected_owner(self, owner_id: int) -> ProtectedOwner | None: ...


def known_photo(photo: ProtectedPhoto, owner: ProtectedOwner) -> KnownPhoto:
    """What the index knows of a stored photo and its owner (as ``bot.protect`` loads it)."""
    member = (owner.platform, owner.user_id) if owner.kind == "member" and owner.platform and owner.user_id else None
    notify = (
        (owner.notify_platform, owner.notify_user)
        if owner.notify and owner.notify_platform and owner.notify_user
        else None
    )
    group = (photo.platform, photo.chat_id) if photo.platform and photo.chat_id else None
    return KnownPhoto(photo.id, owner.id, owner.name, photo.source, member, notify, group, photo.label, photo.pdq)


class Recheck:
    """Confirms hits against the store; ``stale(kind, count)`` is told when the index held removed
    ones (``IndexGate.stale``: counted, and the index catches up now instead of at its next poll)."""

    def __init__(self, store: RecheckStore, stale: Callable[[ChangeKind, int], None] | None = None) -> None:
        self.store = store
        self._stale = stale

    def _dropped(self, kind: ChangeKind, count: int, chat: ChatRef | None = None) -> None:
        where = f"chat {chat.chat_id}: " if chat is not None else ""
        log.info("%s%d %s hits no longer in the store were not acted on; catching up", where, count, kind)
        if self._stale is not None:
            self._stale(kind, count)

    async def lists(self, chat: ChatRef, matches: Sequence[ListMatch]) -> tuple[ListMatch, ...]:
        """The list hits whose entry and list still hold for ``chat``, with the lists as they are now."""
        if not matches:
            return ()
        entries = await self.store.entries_by_id(sorted({m.entry_id for m in matches}))
        applying = {lst.id: lst for lst in await self.store.lists_for_group(chat.platform, chat.chat_id)}
        # another group's own block list, matched here through a circle (bot/circles.py), holds too
        # while the circle does
        if any(m.list_id not in applying for m in matches):
            circle = set(await self.store.circle_block_lists(chat.platform, chat.chat_id))
            for list_id in {m.list_id for m in matches if m.list_id in circle and m.list_id not in applying}:
                lst = await self.store.get_list(list_id)
                if lst is not None and lst.kind == ListKind.BLOCK:
                    applying[list_id] = lst
        kept: list[ListMatch] = []
        for m in matches:
            entry, lst = entries.get(m.entry_id), applying.get(m.list_id)
            if entry is None or entry.list_id != m.list_id or lst is None:
                continue
            kept.append(replace(m, list_name=lst.name, kind=lst.kind, action=lst.action))
        if len(kept) < len(matches):
            self._dropped(ChangeKind.LISTS, len(matches) - len(kept), chat)
        return tuple(kept)

    async def protected(self, found: Sequence[DerivedMatch]) -> list[DerivedMatch]:
        """The protected-photo matches whose photo and owner still exist, with the owner read afresh
        (name, membership, notice choice): one read per photo matched and per owner."""
        if not found:
            return []
        photos: dict[int, ProtectedPhoto | None] = {}
        owners: dict[int, ProtectedOwner | None] = {}
        kept: list[DerivedMatch] = []
        for m in found:
            pid = m.photo.id
            if pid not in photos:
                photos[pid] = await self.store.get_protected_photo(pid)
            photo = photos[pid]
            if photo is None or photo.owner_id != m.photo.owner_id:
                continue
            if photo.owner_id not in owners:
                owners[photo.owner_id] = await self.store.get_protected_owner(photo.owner_id)
            owner = owners[photo.owner_id]
            if owner is None:
                continue
            kept.append(replace(m, photo=known_photo(photo, owner)))
        if len(kept) < len(found):
            self._dropped(ChangeKind.PROTECTED, len(found) - len(kept))
        return kept
