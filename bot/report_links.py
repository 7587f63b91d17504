"""Links to a message, as a member pastes them in a private report, read strictly.

Telegram: ``https://t.me/c/<internal id>/<message>`` (a private supergroup; a topic's id may come
between), ``https://t.me/<username>/<message>`` (a public group, whose id the adapter looks up).
Matrix: ``https://matrix.to/#/<room id>/<event id>``, the ``matrix:roomid/…/e/…`` URI form, and
clients' permalinks (``https://app.element.io/#/room/<room id>/<event id>``). Room aliases are not
followed (an alias can point elsewhere by the time an admin looks); the room id form is asked for.
Anything else, or anything out of bounds, is None: the reporter is told which forms work.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

MAX_LINK = 600  # characters: a Matrix permalink with a long room id, event id and via= parameters
MAX_MESSAGE_ID = 2**31 - 1  # Telegram message ids are 32-bit
# a Telegram supergroup's id is -100 followed by this internal id
_TG_PRIVATE = re.compile(r"(?:https?://)?(?:t|telegram)\.me/c/(\d{1,13})(?:/(\d{1,10}))?/(\d{1,10})/?(?:[?#]\S*)?")
_TG_PUBLIC = re.compile(
    r"(?:https?://)?(?:t|telegram)\.me/([A-Za-z][A-Za-z0-9_]{3,31})(?:/(\d{1,10}))?/(\d{1,10})/?(?:[?#]\S*)?"
)
_SERVER = r"[A-Za-z0-9.\-]{1,230}(?::\d{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](?::\d{1,5})?"
# room version 12 ids carry no server name (``!<hash>``); older ones do (``!opaque:server``)
_ROOM = rf"![^\s/:?#]{{1,250}}(?::(?:{_SERVER}))?"
_EVENT = r"\$[A-Za-z0-9+/_\-.=:]{1,250}"
_MX_TO = re.compile(rf"https?://matrix\.to/#/({_ROOM})/({_EVENT})(?:\?\S*)?")
_MX_CLIENT = re.compile(rf"https?://[A-Za-z0-9.\-]{{1,253}}(?::\d{{1,5}})?/#/room/({_ROOM})/({_EVENT})(?:\?\S*)?")
_MX_URI = re.compile(r"matrix:roomid/([^\s/?]{1,250})/e/([^\s/?]{1,255})(?:\?\S*)?")


@dataclass(frozen=True)
class MessageLink:
    """Where a linked message is: its chat by id (or, for a public Telegram group, by username)."""

    platform: str  # "telegram" | "matrix"
    message_id: str
    chat_id: str | None = None
    username: str | None = None  # a public Telegram group's @name, without the @


def parse_message_link(text: str) -> MessageLink | None:
    """The message a link points at, or None if it is not one of the forms above."""
    if not isinstance(text, str):
        return None
    link = text.strip().strip("<>")
    if not link or len(link) > MAX_LINK:
        return None
    if m := _TG_PRIVATE.fullmatch(link):
        message = int(m.group(3))
        if not 0 < message <= MAX_MESSAGE_ID:
            return None
        return MessageLink("telegram", str(message), chat_id=f"-100{int(m.group(1))}")
    if m := _TG_PUBLIC.fullmatch(link):
        message = int(m.group(3))
        if not 0 < message <= MAX_MESSAGE_ID or m.group(1).lower() in ("c", "joinchat", "addstickers", "share"):
            return None
        return MessageLink("telegram", str(message), username=m.group(1))
    if m := _MX_URI.fullmatch(link):
        room, event = "!" + unquote(m.group(1)), "$" + unquote(m.group(2))
        return _matrix(room, event)
    decoded = unquote(link)  # matrix.to and clients percent-encode ! and $ (and the server's colon)
    if len(decoded) > MAX_LINK:
        return None
    for form in (_MX_TO, _MX_CLIENT):
        if m := form.fullmatch(decoded):
            return _matrix(m.group(1), m.group(2))
    return None


def _matrix(room: str, event: str) -> MessageLink | None:
    if not re.fullmatch(_ROOM, room) or not re.fullmatch(_EVENT, event):
        return None
    return MessageLink("matrix", event, chat_id=room)


def message_link(platform: str, chat_id: str, message_id: str) -> str | None:
    """A link for admins to the reported message (it opens the chat; it is not the image itself);
    None where the platform has no link for it (a basic Telegram group)."""
    if platform == "telegram":
        if chat_id.startswith("-100") and chat_id[4:].isdigit() and message_id.isdigit():
            return f"https://t.me/c/{chat_id[4:]}/{message_id}"
        return None
    if platform == "matrix":
        return f"https://matrix.to/#/{chat_id}/{message_id}"
    return None
