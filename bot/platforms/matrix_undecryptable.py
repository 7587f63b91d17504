"""Telling a room's moderators that a member's encrypted messages cannot be checked, and how to fix it.

In an encrypted room each member's app decides which devices get the keys of their messages.
Apps that send only to verified devices (Element's "Never send encrypted messages to unverified
sessions") leave Vigil's device without keys: those messages, images included, cannot be
checked. Waiting silently would let a member hide images from Vigil; instead, once an event has
stayed unreadable ``matrix.undecryptable_notice_after`` seconds, the room's moderators are told
privately, once per member and session (device), which member, why, and what fixes it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging

from bot.events import ChatRef
from bot.i18n import N_
from bot.platforms.base import OutgoingMessage
from bot.platforms.errors import PlatformError
from bot.platforms.matrix_host import MatrixHost
from bot.platforms.matrix_state import Pending

log = logging.getLogger("vigil.matrix")

STATE_KEY = "matrix:undecryptable:"  # + a hash of (room, member, session): told already

NOTICE = N_(
    "Vigil cannot check the messages that {member} sends in the encrypted room {room} from their session "
    "{device}: their app does not give Vigil's session the keys to read them, most likely because it only "
    "shares keys with verified sessions. Until this is fixed, images this member posts from that session "
    "are not checked.\n\n"
    "To fix it, {member} can verify Vigil's session ({vigil_device}, account {vigil}) in their app, or allow "
    "their app to send encrypted messages to unverified sessions (in Element: Settings, Security & Privacy, "
    'turn off "Never send encrypted messages to unverified sessions").'
)


def told_key(item: Pending) -> str:
    """The store key that records this member's session in this room as told (ids hashed, fixed length)."""
    session = item.device or item.session
    return STATE_KEY + hashlib.sha256(f"{item.room}\0{item.sender}\0{session}".encode()).hexdigest()[:40]


class UndecryptableNotices:
    def __init__(self, platform: MatrixHost) -> None:
        self.platform = platform
        self._told: set[str] = set()
        self._lock = asyncio.Lock()  # one notice at a time, so two retries of one session never both send

    async def tell(self, item: Pending) -> bool:
        """Tell the room's moderators about ``item``'s member and session, unless they were told already.

        Returns whether a notice went out now.
        """
        key = told_key(item)
        platform = self.platform
        async with self._lock:
            if key in self._told:
                return False
            if await platform.store.get_state(key) is not None:
                self._told.add(key)
                return False
            sent = await self._send(item)
            # recorded even when no moderator could be reached: the notice is not retried at every sync
            await platform.store.set_state(key, str(sent))
            self._told.add(key)
            log.warning(
                "matrix: room %s: messages of %s from session %s cannot be decrypted; %d moderators told",
                item.room,
                item.sender,
                item.device or item.session,
                sent,
            )
            return sent > 0

    async def _send(self, item: Pending) -> int:
        platform = self.platform
        core = platform.core
        try:
            moderators = await platform.admins(item.room)
        except PlatformError as exc:
            log.error(
                "matrix: room %s: could not read its moderators to tell them about undecryptable messages: %s",
                item.room,
                exc,
            )
            return 0
        chat = platform._chat(item.room)
        member = platform._user(item.room, item.sender)
        shown_member = f"{member.display_name} ({item.sender})" if member.display_name else item.sender
        try:
            settings_language = (await core.group_settings(ChatRef("matrix", item.room))).language
        except Exception:
            settings_language = None
        contacts = await platform.store.contacts("matrix", sorted(moderators))
        sent = 0
        for contact in contacts:
            if not contact.can_dm:
                continue
            translator = core.translator(contact.language or settings_language, settings_language or "en")
            text = translator.gettext(
                NOTICE,
                member=shown_member,
                room=chat.title or item.room,
                device=item.device or item.session or "?",
                vigil_device=platform.client.device_id or "?",
                vigil=platform.me,
            )
            try:
                await platform.send_private(contact.user_id, OutgoingMessage(text))
                sent += 1
            except PlatformError as exc:
                log.error(
                    "matrix: room %s: could not tell moderator %s about undecryptable messages: %s",
                    item.room,
                    contact.user_id,
                    exc,
                )
        return sent
