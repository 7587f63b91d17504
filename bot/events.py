"""Platform-neutral events and values that adapters hand to the core."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


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
    # who posted: "user" (a person), or a chat posting as itself (SENDER_KINDS), whose user_id is
    # then the chat's id and display_name its title (Telegram shows a shared placeholder user)
    kind: str = "user"

    @property
    def is_chat(self) -> bool:
        return self.kind != "user"


# "channel": a channel posting in the group; "anonymous_admin": an admin posting as the group
# itself; "linked_channel": the automatic forward of a post of the group's linked channel
SENDER_KINDS = ("user", "channel", "anonymous_admin", "linked_channel")


@dataclass(frozen=True)
class MediaRef:
    """Enough to fetch one media item again, even after a restart."""

    # "photo" | "document" | "sticker" | "video_sticker" | "animation" | "video" | "image"
    # | "thumbnail" | "cover" | "quoted" (a picture a client shows for the message besides its file)
    kind: str
    file_id: str
    size: int | None = None  # bytes, as the platform declares it before download
    mime: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)  # adapter-specific (e.g. Matrix encryption info)


MAX_CHANGE_SEQ = 2**62  # the largest change number a work item's payload may carry


@dataclass(frozen=True)
class IndexVersions:
    """The last change of each store change log (hash lists, protected photos) when a work item was
    recorded: a worker judges the item only after its indexes applied at least these, so an image
    posted right after a `/block` or `/unprotect` made in another process is judged by the new
    lists (bot/index_versions.py)."""

    lists: int = 0
    protected: int = 0

    def as_payload(self) -> dict[str, int]:
        return {"lists": self.lists, "protected": self.protected}

    @classmethod
    def from_payload(cls, value: object) -> IndexVersions | None:
        """The versions a payload carries; None when it has none or they are not whole numbers in
        bounds (the item is then judged without waiting, never dropped for it)."""
        if not isinstance(value, Mapping):
            return None
        seqs = [value.get("lists", 0), value.get("protected", 0)]
        if not all(type(v) is int and 0 <= v <= MAX_CHANGE_SEQ for v in seqs):
            return None
        return cls(seqs[0], seqs[1])


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
    # the change logs' heads when the work was recorded (Core.submit); None: judged without waiting
    versions: IndexVersions | None = field(default=None, compare=False)

    def payload(self) -> dict[str, Any]:
        """The durable form kept in the store until the work is done (ids only, no content)."""
        durable: dict[str, Any] = {
            "chat": {"id": self.chat.chat_id, "title": self.chat.title},
            "message_id": self.message_id,
            "sender": {
                "id": self.sender.user_id,
                "name": self.sender.display_name,
                "username": self.sender.username,
                "language": self.sender.language,
                "kind": self.sender.kind,
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
        if self.versions is not None:
            durable["versions"] = self.versions.as_payload()
        return durable

    @classmethod
    def from_payload(cls, platform: str, p: Mapping[str, Any]) -> MediaPosted:
        s, m = p["sender"], p["media"]
        return cls(
            chat=ChatRef(platform, p["chat"]["id"], p["chat"].get("title", "")),
            message_id=p["message_id"],
            sender=UserRef(
                platform,
                s["id"],
                s.get("name") or "",
                s.get("username"),
                s.get("language"),
                s.get("kind") if s.get("kind") in SENDER_KINDS else "user",
            ),
            posted_at=datetime.fromisoformat(p["posted_at"]),
            media=MediaRef(m["kind"], m["file_id"], m.get("size"), m.get("mime"), m.get("extra") or {}),
            variant=_variant_of(p),
            link=p.get("link"),
            versions=IndexVersions.from_payload(p.get("versions")),
        )


MAX_VARIANT = 200
# the pictures of a message besides its main file: a thumbnail (video, animation, document,
# video note, animated sticker), a cover (a video's cover, an audio file's cover art), and the
# picture of a message it quotes from another chat (shown above the reply)
PICTURE_ROLES = ("thumb", "cover", "quoted")


def compose_variant(version: str = "", role: str = "") -> str:
    """The one way to name a work item's variant: the message's version ("" as first posted,
    "edit:<update id>") and which of its pictures ("" the main file, or a PICTURE_ROLES role)."""
    if role and role not in PICTURE_ROLES:
        raise ValueError(f"unknown picture role {role!r}; use one of {PICTURE_ROLES}")
    variant = f"{version}/{role}" if version and role else version or role
    if len(variant) > MAX_VARIANT:
        raise ValueError(f"variant {variant[:40]!r}… is longer than {MAX_VARIANT} characters")
    return variant


def picture_role(variant: str) -> str:
    """Which picture of the message a variant is ("" for the main file)."""
    tail = variant.rsplit("/", 1)[-1]
    return tail if tail in PICTURE_ROLES else ""


def _variant_of(payload: Mapping[str, Any]) -> str:
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


# why a member's profile photo is checked: they joined, asked to join (a Telegram join request),
# changed their avatar (Matrix sees it), or posted (Telegram: the photo may have changed since)
MEMBER_EVENTS = ("join", "request", "avatar", "post")


@dataclass(frozen=True)
class MemberJoined:
    """A member at the door: joined, asked to join, changed their profile photo or posted again."""

    chat: ChatRef
    member: UserRef
    at: datetime
    how: str  # one of MEMBER_EVENTS
    key: str  # what makes this one event (an update id, an event id): a replay brings the same key
    photo: MediaRef | None = None  # the profile photo when the event names it (Matrix); else fetched later

    def payload(self) -> dict[str, Any]:
        """The durable form kept in the store's inbox until the check is done (ids only)."""
        photo = self.photo
        return {
            "chat": {"id": self.chat.chat_id, "title": self.chat.title},
            "member": {
                "id": self.member.user_id,
                "name": self.member.display_name,
                "username": self.member.username,
                "language": self.member.language,
            },
            "at": self.at.isoformat(),
            "how": self.how,
            "key": self.key,
            "photo": None if photo is None else _media_payload(photo),
        }

    @classmethod
    def from_payload(cls, platform: str, p: Mapping[str, Any]) -> MemberJoined:
        m, ph = p["member"], p.get("photo")
        if p["how"] not in MEMBER_EVENTS:
            raise ValueError(f"unknown member event {p['how']!r}")
        return cls(
            chat=ChatRef(platform, p["chat"]["id"], p["chat"].get("title", "")),
            member=UserRef(platform, m["id"], m.get("name") or "", m.get("username"), m.get("language")),
            at=datetime.fromisoformat(p["at"]),
            how=p["how"],
            key=str(p["key"]),
            photo=MediaRef(ph["kind"], ph["file_id"], ph.get("size"), ph.get("mime"), ph.get("extra") or {})
            if ph
            else None,
        )


def _media_payload(m: MediaRef) -> dict[str, Any]:
    return {"kind": m.kind, "file_id": m.file_id, "size": m.size, "mime": m.mime, "extra": m.extra}
