"""Telegram at the door (bot/door.py): members joining and asking to join, their profile photos,
join requests answered, and new members' media held.

Telegram tells a bot of a join only in ``chat_member`` updates (asked for in ``allowed_updates``,
sent to admin bots) and of a join request in ``chat_join_request``; it never tells of a changed
profile photo, so a member's photo is looked at again when they post (at most once per
``POST_RECHECK_SECONDS`` per member and group; the check itself skips a photo seen before, by its
``file_unique_id``).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

from telegram import Bot, ChatMemberUpdated, ChatPermissions, Update
from telegram.constants import ChatMemberStatus

from bot.events import MediaRef, MemberJoined, UserRef
from bot.platforms.telegram_senders import checked_id, user_of

POST_RECHECK_SECONDS = 600.0
MAX_RECHECK_ENTRIES = 20_000  # members remembered for the recheck on posting; the oldest go first
MAX_PHOTO_SIZES = 10  # sizes of one profile photo looked at (Telegram sends 3 or 4)
MAX_FILE_ID = 255
# what a member on hold, or restricted at the door, may not send
MEDIA_PERMISSIONS = (
    "can_send_photos",
    "can_send_videos",
    "can_send_documents",
    "can_send_video_notes",
    "can_send_audios",
    "can_send_other_messages",
    "can_add_web_page_previews",
)
_IN = (ChatMemberStatus.MEMBER, ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.OWNER)


def _inside(member: Any) -> bool:
    return member.status in _IN or (member.status == ChatMemberStatus.RESTRICTED and bool(member.is_member))


def joined(update: Update, chat: Any) -> MemberJoined | None:
    """A ``chat_member`` update in which someone came in (not a change of rights of a member)."""
    m: ChatMemberUpdated | None = update.chat_member
    if m is None or m.chat.type not in ("group", "supergroup"):
        return None
    if _inside(m.old_chat_member) or not _inside(m.new_chat_member):
        return None
    user = m.new_chat_member.user
    if user.is_bot:
        return None
    checked_id(user.id, "a member's id", low=1)
    return MemberJoined(chat, user_of(user), m.date.astimezone(UTC), "join", str(update.update_id))


def join_request(update: Update, chat: Any) -> MemberJoined | None:
    r = update.chat_join_request
    if r is None or r.from_user.is_bot:
        return None
    checked_id(r.from_user.id, "a member's id", low=1)
    return MemberJoined(chat, user_of(r.from_user), r.date.astimezone(UTC), "request", str(update.update_id))


class PostRechecks:
    """Which members' photos to look at again when they post: once per member and group a while."""

    def __init__(self, seconds: float = POST_RECHECK_SECONDS, entries: int = MAX_RECHECK_ENTRIES) -> None:
        self.seconds, self.entries = seconds, entries
        self._last: OrderedDict[tuple[str, str], float] = OrderedDict()

    def due(self, chat_id: str, user_id: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        key = (chat_id, user_id)
        last = self._last.get(key)
        if last is not None and now - last < self.seconds:
            return False
        self._last[key] = now
        self._last.move_to_end(key)
        while len(self._last) > self.entries:
            self._last.popitem(last=False)
        return True


def member_posted(chat: Any, sender: UserRef, at: datetime, update_id: int) -> MemberJoined:
    return MemberJoined(chat, sender, at.astimezone(UTC), "post", str(update_id))


class TelegramMembers:
    """The door's capabilities of the Telegram adapter (bot/platforms/base.py ``DoorPlatform``)."""

    bot: Bot

    async def _call(self, what: str, coro: Any) -> Any: ...  # TelegramPlatform's

    async def profile_photo(self, user_id: str, max_bytes: int) -> MediaRef | None:
        """The member's current profile photo, its largest size within ``max_bytes``; None if none."""
        photos = await self._call(
            "getUserProfilePhotos", self.bot.get_user_profile_photos(int(user_id), offset=0, limit=1)
        )
        if not photos.photos:
            return None
        sizes = [s for s in photos.photos[0][:MAX_PHOTO_SIZES] if 0 < len(s.file_id) <= MAX_FILE_ID]
        fitting = [s for s in sizes if s.file_size is None or s.file_size <= max_bytes]
        if not fitting:
            return None  # every size is over the limit: refused before any download
        best = max(fitting, key=lambda s: (s.width * s.height, s.file_size or 0))
        return MediaRef("avatar", best.file_id, best.file_size, "image/jpeg", {"unique_id": best.file_unique_id})

    async def answer_join_request(self, chat_id: str, user_id: str, *, approve: bool) -> None:
        if approve:
            await self._call("approve join request", self.bot.approve_chat_join_request(int(chat_id), int(user_id)))
        else:
            await self._call("decline join request", self.bot.decline_chat_join_request(int(chat_id), int(user_id)))

    async def restrict_media(self, chat_id: str, user_id: str, until: datetime | None) -> None:
        """The member may write but send no media until ``until`` (None: until the admins lift it);
        what the group allows everyone otherwise stays as it is."""
        chat = await self._call("getChat", self.bot.get_chat(int(chat_id)))
        allowed = (chat.permissions or ChatPermissions.all_permissions()).to_dict()
        allowed.update({name: False for name in MEDIA_PERMISSIONS})
        await self._call(
            "restrict members",
            self.bot.restrict_chat_member(
                int(chat_id),
                int(user_id),
                ChatPermissions(**allowed),
                until_date=until,
                use_independent_chat_permissions=True,
            ),
        )
