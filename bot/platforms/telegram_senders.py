"""Who really sent a Telegram message, and ids bounded where they enter.

Posts made as a channel, by anonymous admins and automatic forwards from a linked channel come
from placeholder users that many senders share. The real sender is ``sender_chat``: Vigil
treats that chat as the sender, so alerts name it, a ban bans the chat, and an exemption or a
ban never lands on the placeholder (which would exempt or hit every such sender at once).
"""

from __future__ import annotations

from typing import Any

from bot.events import UserRef
from bot.platforms.errors import PlatformError

NAME = "telegram"
CHANNEL_BOT = 136817688  # "Channel_Bot": the sender of posts made as a channel
GROUP_ANONYMOUS_BOT = 1087968824  # "GroupAnonymousBot": the sender of anonymous admins' posts
TELEGRAM_SERVICE = 777000  # "Telegram": the sender of automatic forwards from a linked channel
SHARED_SENDER_IDS = frozenset(str(i) for i in (CHANNEL_BOT, GROUP_ANONYMOUS_BOT, TELEGRAM_SERVICE))

MAX_ID = 2**53  # Telegram ids fit in 52 bits; chat ids are negative
MAX_MESSAGE_ID = 2**31 - 1
MAX_NAME = 128  # names and titles are at most 64/128 characters on Telegram
MAX_USERNAME = 32


class MalformedUpdate(PlatformError):
    """An update with a value Telegram never sends: it is logged and skipped, never retried."""


def checked_id(value: Any, what: str, *, low: int = -MAX_ID, high: int = MAX_ID) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high or value == 0:
        raise MalformedUpdate(f"{what} is not a Telegram id (expected a non-zero integer in {low}..{high})")
    return value


def clip(text: Any, limit: int = MAX_NAME) -> str:
    return text[:limit] if isinstance(text, str) else ""


def username(value: Any) -> str | None:
    return value[:MAX_USERNAME] if isinstance(value, str) and value else None


def user_of(u: Any) -> UserRef:
    name = " ".join(x for x in (clip(u.first_name), clip(u.last_name)) if x)
    language = u.language_code if isinstance(u.language_code, str) and len(u.language_code) <= 35 else None
    return UserRef(NAME, str(checked_id(u.id, "a user id", low=1)), name, username(u.username), language)


def sender_kind(message: Any) -> str:
    """ "user", or how a chat posted the message (see bot.events.SENDER_KINDS)."""
    chat = message.sender_chat
    if chat is None:
        return "user"
    if chat.id == message.chat.id:
        return "anonymous_admin"
    if message.is_automatic_forward:
        return "linked_channel"
    return "channel"


def sender_of(message: Any) -> UserRef | None:
    """The sender Vigil acts on: the sender chat when there is one, else the user; None if neither."""
    chat = message.sender_chat
    if chat is not None:
        kind = sender_kind(message)
        title = clip(chat.title) or clip(getattr(chat, "full_name", None))
        return UserRef(
            NAME, str(checked_id(chat.id, "sender_chat.id", high=-1)), title, username(chat.username), None, kind=kind
        )
    if message.from_user is None:
        return None
    return user_of(message.from_user)
