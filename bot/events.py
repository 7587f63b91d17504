"""Platform-neutral events and values that adapters hand to the core."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class ChatRef:
    platform: str  # "telegram" | "matrix"
    chat_id: str
    title: str = ""


@dataclass(frozen=True)
class UserRef:
    platform: str
    user_id: str
    display_name: str = ""
    username: str | None = None
    language: str | None = None  # the user's client language, when the platform tells


@dataclass(frozen=True)
class MediaRef:
    """Enough to fetch one media item again, even after a restart."""

    kind: str  # "photo" | "document" | "sticker" | "video_sticker" | "animation" | "video" | "image"
    file_id: str
    size: int | None = None  # bytes, as the platform declares it before download
    mime: str | None = None
    extra: dict = field(default_factory=dict, compare=False)  # adapter-specific (e.g. Matrix encryption info)


@dataclass(frozen=True)
class MediaPosted:
    chat: ChatRef
    message_id: str
    sender: UserRef
    posted_at: datetime
    media: MediaRef
    # Which version of the message, and which of its pictures, this is: "" for the main file as
    # first posted. Adapters compose it from what the version carries (an edit's update or event
    # id, a thumbnail's role), never from a timestamp: two edits in one second are two versions.
    variant: str = ""
    link: str | None = None  # a link to the message for admins, when the platform has one

    def payload(self) -> dict:
        """The durable form kept in the store until the work is done (ids only, no content)."""
        return {
            "chat": {"id": self.chat.chat_id, "title": self.chat.title},
            "message_id": self.message_id,
            "sender": {
                "id": self.sender.user_id,
                "name": self.sender.display_name,
                "username": self.sender.username,
                "language": self.sender.language,
            },
            "posted_at": self.posted_at.isoformat(),
            "media": {
                "kind": self.media.kind,
                "file_id": self.media.file_id,
                "size": self.media.size,
                "mime": self.media.mime,
                "extra": self.media.extra,
            },
            "variant": self.variant,
            "link": self.link,
        }

    @classmethod
    def from_payload(cls, platform: str, p: dict) -> "MediaPosted":
        s, m = p["sender"], p["media"]
        return cls(
            chat=ChatRef(platform, p["chat"]["id"], p["chat"].get("title", "")),
            message_id=p["message_id"],
            sender=UserRef(platform, s["id"], s.get("name") or "", s.get("username"), s.get("language")),
            posted_at=datetime.fromisoformat(p["posted_at"]),
            media=MediaRef(m["kind"], m["file_id"], m.get("size"), m.get("mime"), m.get("extra") or {}),
            variant=_variant_of(p),
            link=p.get("link"),
        )


MAX_VARIANT = 200


def _variant_of(payload: dict) -> str:
    # work recorded before variants existed carries an integer revision (0 = first version)
    if "variant" in payload:
        return str(payload["variant"] or "")
    revision = payload.get("revision") or 0
    return f"rev:{revision}" if revision else ""


@dataclass(frozen=True)
class CommandIssued:
    """A Vigil command typed by someone: `/vigil mode dryrun`, `!vigil block`, `/start`…"""

    chat: ChatRef
    message_id: str
    sender: UserRef
    private: bool  # typed in a private chat with the bot
    verb: str  # "vigil", "block", "allow", "start", "groups", "help", "protect", …
    args: tuple[str, ...]
    reply_to: MediaPosted | None = None  # the media message it answers, for /block and /allow
    reply_to_id: str | None = None  # the replied-to message id, media or not
    reply_sender: UserRef | None = None  # who wrote the replied-to message


@dataclass(frozen=True)
class ButtonPressed:
    chat: ChatRef  # where the button was (usually a private chat)
    sender: UserRef
    data: str  # e.g. "ban:42"
    callback_id: str = ""
    message_id: str = ""  # the message that carries the button


@dataclass(frozen=True)
class BotAdded:
    """Vigil was added to a group (or its rights there changed)."""

    chat: ChatRef
    by: UserRef | None
    can_delete: bool
    can_restrict: bool
    is_admin: bool
