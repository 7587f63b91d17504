"""Circles: an operator's groups that share blocks, and bans when the circle says so.

A circle keeps no entries: each member group matches the others' own block lists too (the
store's ``circle_block_lists``, added to the group's lists in ``bot.group_settings.list_ids_for``),
so a ``/block`` in one group is matched in all of them from the next image on, and ``/vigil remove``
in the group that blocked it takes it off everywhere. This module does what follows a block or a
ban: one private notice to each admin of the other groups, and the ban carried to the other groups
of the same platform (a Telegram user id means nothing in a Matrix room).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from bot.actions import Actions
from bot.admins import Admins
from bot.alert_facts import Finding
from bot.events import ChatRef
from bot.group_settings import SettingsLookup
from bot.i18n import Translator, Translators
from bot.platforms.base import OutgoingMessage, Platform
from bot.platforms.errors import PlatformError
from bot.store.circles import CircleRecord
from bot.store.protocol import CirclesStore, GroupsStore

log = logging.getLogger("vigil.circles")

CIRCLE_LIST = "circle"  # how an alert names a match on another circle member's own list


def circle_findings(findings: Sequence[Finding], chat: ChatRef) -> tuple[Finding, ...]:
    """An alert's findings in ``chat``: a match on another group's own block list (only a circle
    brings one) is shown as the circle's list, never as this group's own or by the other's id."""
    own = f"group:{chat.platform}:{chat.chat_id}:"
    return tuple(
        replace(f, label=CIRCLE_LIST)
        if f.kind == "hash" and f.label.startswith("group:") and not f.label.startswith(own)
        else f
        for f in findings
    )


class CircleStore(CirclesStore, GroupsStore, Protocol):
    """What circles need of the store."""


@dataclass(frozen=True)
class Spread:
    """What a block or ban did in the circle's other groups."""

    groups: int = 0  # other groups it reached
    notices: int = 0  # admins told (each once)
    bans: int = 0  # bans carried out in other groups


class Circles:
    """The circle side of blocks and bans, given the parts it uses (bot/core.py wires them)."""

    def __init__(
        self,
        *,
        platforms: Mapping[str, Platform],
        store: CircleStore,
        admins: Admins,
        settings: SettingsLookup,
        translators: Translators,
        actions: Actions,
    ) -> None:
        self.platforms = platforms
        self.store = store
        self.admins = admins
        self.settings = settings
        self.translators = translators
        self.actions = actions

    async def _title(self, platform: str, chat_id: str) -> str:
        group = await self.store.get_group(platform, chat_id)
        return (group.title if group is not None and group.title else "") or chat_id

    @staticmethod
    def _others(circles: Sequence[CircleRecord], chat: ChatRef) -> dict[tuple[str, str], str]:
        """The other groups of these circles, each once, with the (first) circle it is reached through."""
        out: dict[tuple[str, str], str] = {}
        for circle in circles:
            for member in circle.members:
                if member != (chat.platform, chat.chat_id):
                    out.setdefault(member, circle.name)
        return out

    async def blocked(self, chat: ChatRef, by: str | None = None) -> Spread:
        """An admin (``by``) of ``chat`` blocked an image: the admins of the circle's other groups are
        told once each (an admin of several of them gets one notice; the one who blocked it none),
        never with the image. A group none of whose admins can be reached privately is told in its
        admin log chat (``/vigil logchat``), if it has one."""
        circles = await self.store.circles_of(chat.platform, chat.chat_id)
        others = self._others(circles, chat)
        if not others:
            return Spread()
        source = chat.title or await self._title(chat.platform, chat.chat_id)
        # who is admin where: one notice per person, naming the groups of theirs it now applies in
        theirs: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for (platform, chat_id), circle in others.items():
            if platform not in self.platforms:
                continue
            try:
                admins = await self.admins.of(ChatRef(platform, chat_id))
            except PlatformError as exc:
                log.warning("circle %s: the admins of chat %s are unknown (%s); not told", circle, chat_id, exc)
                continue
            for user in admins:
                theirs.setdefault((platform, user), []).append((chat_id, circle))
        told, reached = 0, set[tuple[str, str]]()
        for (platform, user), groups in sorted(theirs.items()):
            if (platform, user) == (chat.platform, by):
                reached.update((platform, chat_id) for chat_id, _ in groups)
                continue
            contact = await self.store.get_contact(platform, user)
            if contact is None or not contact.can_dm:
                continue
            first = groups[0][0]
            settings = await self.settings.of(ChatRef(platform, first))
            t = self.translators(contact.language or settings.language, settings.language)
            titles = [await self._title(platform, chat_id) for chat_id, _ in groups]
            text = self.block_notice(t, source, groups[0][1], titles)
            try:
                await self.platforms[platform].send_private(user, OutgoingMessage(text, language=t.language))
                told += 1
                reached.update((platform, chat_id) for chat_id, _ in groups)
            except PlatformError as exc:
                log.warning("circle %s: notice to admin %s failed: %s", groups[0][1], user, exc)
        told += await self._log_chats(
            [g for g in others if g not in reached and g[0] in self.platforms], source, others
        )
        log.info(
            "chat %s: a block reaches %d other groups of its circles; %d admins told", chat.chat_id, len(others), told
        )
        return Spread(groups=len(others), notices=told)

    async def _log_chats(
        self, unreached: Sequence[tuple[str, str]], source: str, circles: Mapping[tuple[str, str], str]
    ) -> int:
        """The notice in the admin log chats of groups whose admins could not be told privately."""
        sent: set[tuple[str, str]] = set()
        for platform, chat_id in unreached:
            settings = await self.settings.of(ChatRef(platform, chat_id))
            if not settings.logchat or (platform, settings.logchat) in sent:
                continue
            t = self.translators(settings.language, settings.language)
            text = self.block_notice(t, source, circles[(platform, chat_id)], [await self._title(platform, chat_id)])
            try:
                await self.platforms[platform].send_chat(settings.logchat, OutgoingMessage(text, language=t.language))
                sent.add((platform, settings.logchat))
            except PlatformError as exc:
                log.warning("chat %s: its admin log chat could not be told of a circle block: %s", chat_id, exc)
        return len(sent)

    @staticmethod
    def block_notice(t: Translator, source: str, circle: str, titles: Sequence[str]) -> str:
        return t.gettext(
            "An admin of {group} blocked an image. Your groups in the circle {circle} block it too: {groups}. "
            "Copies posted there are removed.",
            group=source,
            circle=circle,
            groups=", ".join(titles),
        )

    async def banned(self, chat: ChatRef, user_id: str, message_id: str) -> Spread:
        """Vigil banned ``user_id`` in ``chat``: in circles with shared bans, the other groups of the
        same platform ban them too, unless they are an admin or exempt there, or Vigil is off or in
        dry run there. Each ban is recorded once (a replay does not ban twice)."""
        circles = [c for c in await self.store.circles_of(chat.platform, chat.chat_id) if c.shared_bans]
        others = [g for g in self._others(circles, chat) if g[0] == chat.platform]
        platform = self.platforms.get(chat.platform)
        if not others or platform is None:
            return Spread()
        # the action record's key: one per origin message, apart from the other chat's own messages
        origin = hashlib.blake2s(f"{chat.chat_id}\0{message_id}".encode(), digest_size=12).hexdigest()
        bans = 0
        for _, chat_id in others:
            group = ChatRef(chat.platform, chat_id)
            settings = await self.settings.of(group)
            if settings.mode in ("off", "dryrun"):
                continue
            try:
                if await self.admins.is_exempt(group, user_id):
                    continue
            except PlatformError as exc:
                log.warning("chat %s: admins unknown (%s); the shared ban is not carried out there", chat_id, exc)
                continue
            result = await self.actions.ban(platform, chat_id, user_id, f"circle:{origin}")
            bans += result.done
        log.info("chat %s: a ban carried to %d of %d other groups of its circles", chat.chat_id, bans, len(others))
        return Spread(groups=len(others), bans=bans)

    async def describe(self, chat: ChatRef, t: Translator) -> str:
        """``/vigil circles``: the circles this group is in, with the other groups' titles."""
        circles = await self.store.circles_of(chat.platform, chat.chat_id)
        if not circles:
            return t.gettext(
                "This group is in no circle. The operator can join groups into a circle with `vigil circle add`, "
                "so that a block in one applies in all of them."
            )
        lines = []
        for circle in circles:
            others = [await self._title(p, c) for p, c in circle.members if (p, c) != (chat.platform, chat.chat_id)]
            lines.append(
                t.gettext(
                    "Circle {circle}: a block here applies in {groups}, and theirs here.",
                    circle=circle.name,
                    groups=", ".join(others) or "-",
                )
            )
            if circle.shared_bans:
                lines.append(t.gettext("A ban Vigil applies in one of these groups applies in all of them."))
        return "\n".join(lines)
