"""New members' media hold (``/vigil newmedia hold 24h``), and the ``joins``/``newmedia`` commands.

Members who joined less than the hold ago cannot post media, so that a raid of fresh accounts
cannot flood a group with pictures. Telegram: at the join, the member is restricted from sending
photos, videos, documents and the rest until join + hold (``until_date``: Telegram lifts it by
itself). Matrix has no per-kind right to take away: a picture a held member posts is redacted,
with a neutral notice, and not scanned.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from bot.config import HOLD_LIMIT, JOIN_ACTIONS, parse_duration
from bot.events import MediaPosted, MemberJoined
from bot.group_settings import SettingsLookup
from bot.i18n import Translator, Translators
from bot.platforms.base import OutgoingMessage, Platform
from bot.platforms.errors import MessageGone, PlatformError
from bot.platforms.retries import with_retries
from bot.policy import GroupSettings
from bot.store.protocol import Store

log = logging.getLogger("vigil.hold")

MIN_HOLD = timedelta(seconds=30)  # Telegram takes a shorter restriction as one for ever


def hold_of(settings: GroupSettings) -> timedelta | None:
    """The group's hold, or None when it is off (or the stored value is not a duration)."""
    value = settings.newmedia_hold
    if not value or value == "off":
        return None
    try:
        return parse_duration(value)
    except ValueError:
        return None


class MemberHold:
    def __init__(
        self, store: Store, platforms: Mapping[str, Platform], settings: SettingsLookup, translators: Translators
    ) -> None:
        self.store = store
        self.platforms = platforms
        self.settings = settings
        self.translators = translators

    async def on_join(self, platform: Platform, event: MemberJoined, settings: GroupSettings, mid: str) -> None:
        """Telegram: the new member cannot send media until join + hold (recorded, done once)."""
        hold = hold_of(settings)
        restrict_media = getattr(platform, "restrict_media", None)
        if hold is None or restrict_media is None or settings.mode == "dryrun":
            return
        until = event.at + hold
        if until - datetime.now(UTC) < MIN_HOLD:
            return  # over already (a late replay)
        chat_id, user_id = event.chat.chat_id, event.member.user_id
        record = await self.store.record_action(platform.name, chat_id, mid, "hold", {"user": user_id})
        if record.state == "done":
            return
        try:
            await with_retries(f"hold media in chat {chat_id}", partial(restrict_media, chat_id, user_id, until))
        except PlatformError as exc:
            log.warning("chat %s: holding a new member's media failed: %s", chat_id, exc)
            await self.store.action_failed(record.id, str(exc))
            return
        await self.store.action_done(record.id)

    async def redact_if_held(self, event: MediaPosted) -> bool:
        """Matrix: a picture from a member still on hold is removed, with a neutral notice. True
        when it was (the item is then done: it is not scanned)."""
        platform = self.platforms.get(event.chat.platform)
        if platform is None or getattr(platform, "restrict_media", None) is not None or event.sender.is_chat:
            return False  # Telegram holds by a restriction: whatever gets through, an admin allowed
        settings = await self.settings.of(event.chat)
        hold = hold_of(settings)
        if hold is None or settings.mode in ("off", "dryrun"):
            return False
        member = await self.store.member(event.chat.platform, event.chat.chat_id, event.sender.user_id)
        if member is None or member.joined_at + hold <= event.posted_at:
            return False
        record = await self.store.record_action(
            platform.name, event.chat.chat_id, event.message_id, "delete", {"hold": True}
        )
        if record.state != "done":
            try:
                await with_retries(
                    f"hold: delete in chat {event.chat.chat_id}",
                    partial(platform.delete, event.chat.chat_id, event.message_id),
                )
            except MessageGone:
                pass
            await self.store.action_done(record.id)
            t = self.translators(settings.language, settings.language)
            try:
                await platform.send_chat(
                    event.chat.chat_id,
                    OutgoingMessage(t.gettext("An image was removed: new members cannot post media yet.")),
                )
            except PlatformError as exc:
                log.warning("hold notice in chat %s failed: %s", event.chat.chat_id, exc)
        log.info("chat %s message %s: a new member's media removed (hold)", event.chat.chat_id, event.message_id)
        return True


def joins_command(args: list[str], t: Translator) -> tuple[dict[str, Any] | None, str]:
    """``/vigil joins decline|restrict|ban|alert``: the changes to store (None: none) and the reply."""
    if len(args) != 1 or args[0].lower() not in JOIN_ACTIONS:
        return None, t.gettext("Use: /vigil joins decline|restrict|ban|alert")
    action = args[0].lower()
    return {"joins": action}, t.gettext("At the door, a profile photo that is a hit: {action}.", action=action)


def newmedia_command(args: list[str], t: Translator) -> tuple[dict[str, Any] | None, str]:
    """``/vigil newmedia hold DURATION`` or ``/vigil newmedia off``."""
    usage = t.gettext("Use: /vigil newmedia hold DURATION|off (a duration is like 12h or 2d, at most 30d)")
    words = [a.lower() for a in args]
    if words == ["off"]:
        return {"newmedia_hold": "off"}, t.gettext("New members may post media at once.")
    if len(words) != 2 or words[0] != "hold":
        return None, usage
    try:
        hold = parse_duration(words[1])
    except ValueError:
        return None, usage
    if not MIN_HOLD <= hold <= HOLD_LIMIT:
        return None, usage
    return {"newmedia_hold": words[1]}, t.gettext(
        "New members cannot post media for {duration} after they join.", duration=words[1]
    )
