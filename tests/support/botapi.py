"""A Telegram Bot API emulator for Vigil's tests, served by aiohttp on 127.0.0.1.

The real python-telegram-bot (PTB) talks to it over real HTTP; point it here with
``Application.builder().token(emu.token).base_url(f"{emu.url}/bot").base_file_url(f"{emu.url}/file/bot")``
or ``Bot(**emu.bot_kwargs())``. The tests steer the Telegram side with plain Python methods
(users post photos, press buttons, messages age) and assert on :attr:`BotApiEmulator.calls` and on
the resulting chat state.

What it models, because Vigil's behaviour depends on it:

* members with statuses and the full administrator-rights / restriction-permission sets;
* the bot's own membership and privacy mode (a non-admin bot sees only commands, replies to it
  and service messages);
* the update queue with ``offset`` confirmation, ``limit``, long polling, ``allowed_updates``
  (``chat_member`` only when asked for and only for admin bots) and the 409 conflict between two
  pollers;
* the real error texts and shapes for the mistakes a bot makes (deleting without rights or after
  48 h, messaging users who never started the bot, bad HTML / Markdown, oversized callback data,
  files over 20 MB, restricting admins, ...);
* failure injection (429 with ``retry_after``, 5xx) per method.

Everything stays in memory; nothing is written to disk. Run on the caller's event loop, no threads.
Standalone: ``python -m tests.support.botapi --port N`` serves an empty emulator and prints its URL.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import html
import io
import itertools
import json
import mimetypes
import re
import secrets
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from aiohttp import web

__all__ = [
    "ADMIN_RIGHTS",
    "PERMISSIONS",
    "BotApiEmulator",
    "Call",
    "FileRef",
    "NotPermitted",
    "ScenarioError",
    "Upload",
    "full_rights",
]

# --- limits of the real Bot API ----------------------------------------------------------

MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024  # getFile refuses larger files
MAX_UPLOAD_BYTES = 50 * 1024 * 1024  # multipart uploads by bots
DELETE_WINDOW_S = 48 * 3600  # messages older than this can't be deleted for everyone
MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64
PHOTO_SIDES = (90, 320, 800, 1280, 2560)  # the sizes Telegram derives from a photo

#: ChatMemberAdministrator rights of a group (the channel-only ones are left out)
ADMIN_RIGHTS = (
    "can_manage_chat",
    "can_delete_messages",
    "can_manage_video_chats",
    "can_restrict_members",
    "can_promote_members",
    "can_change_info",
    "can_invite_users",
    "can_post_stories",
    "can_edit_stories",
    "can_delete_stories",
    "can_pin_messages",
    "can_manage_topics",
)

#: ChatPermissions / ChatMemberRestricted permissions
PERMISSIONS = (
    "can_send_messages",
    "can_send_audios",
    "can_send_documents",
    "can_send_photos",
    "can_send_videos",
    "can_send_video_notes",
    "can_send_voice_notes",
    "can_send_polls",
    "can_send_other_messages",
    "can_add_web_page_previews",
    "can_change_info",
    "can_invite_users",
    "can_pin_messages",
    "can_manage_topics",
    "can_edit_tag",
    "can_react_to_messages",
)
_MEDIA_PERMISSIONS = (
    "can_send_audios",
    "can_send_documents",
    "can_send_photos",
    "can_send_videos",
    "can_send_video_notes",
    "can_send_voice_notes",
)

ALL_UPDATE_TYPES = frozenset(
    {
        "message",
        "edited_message",
        "channel_post",
        "edited_channel_post",
        "business_connection",
        "business_message",
        "edited_business_message",
        "deleted_business_messages",
        "message_reaction",
        "message_reaction_count",
        "inline_query",
        "chosen_inline_result",
        "callback_query",
        "shipping_query",
        "pre_checkout_query",
        "purchased_paid_media",
        "poll",
        "poll_answer",
        "my_chat_member",
        "chat_member",
        "chat_join_request",
        "chat_boost",
        "removed_chat_boost",
    }
)
# Telegram sends these only to a bot that lists them in allowed_updates
_OPT_IN_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
DEFAULT_UPDATES = ALL_UPDATE_TYPES - _OPT_IN_UPDATES

_CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
_COMMAND_SCOPES = frozenset(
    {
        "default",
        "all_private_chats",
        "all_group_chats",
        "all_chat_administrators",
        "chat",
        "chat_administrators",
        "chat_member",
    }
)
_BUTTON_ACTIONS = (
    "callback_data",
    "url",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)
_MEDIA_KEYS = ("photo", "document", "animation", "sticker", "video", "audio", "video_note")
# parameters the Bot API reads as strings: never JSON-decode these from a form
_STRING_PARAMS = frozenset(
    {
        "text",
        "caption",
        "parse_mode",
        "callback_query_id",
        "file_id",
        "action",
        "language_code",
        "custom_title",
        "description",
        "short_description",
        "url",
        "title",
        "name",
        "emoji",
        "secret_token",
        "business_connection_id",
        "message_effect_id",
        "inline_message_id",
        "sticker_set_name",
    }
)
_FILE_ID_PREFIX = {
    "photo": "AgACAgQAAxkBAA",
    "document": "BQACAgQAAxkBAA",
    "sticker": "CAACAgQAAxkBAA",
    "animation": "CgACAgQAAxkBAA",
    "video": "BAACAgQAAxkBAA",
    "thumbnail": "AAMCBAADGQEAA",
    "audio": "CQACAgQAAxkBAA",
    "video_note": "DQACAgQAAxkBAA",
}
_FILE_DIR = {
    "photo": ("photos", ".jpg"),
    "document": ("documents", ""),
    "sticker": ("stickers", ".webp"),
    "animation": ("animations", ".mp4"),
    "video": ("videos", ".mp4"),
    "thumbnail": ("thumbnails", ".jpg"),
    "audio": ("music", ".mp3"),
    "video_note": ("video_notes", ".mp4"),
}
_KIND_PERMISSION = {
    "text": "can_send_messages",
    "photo": "can_send_photos",
    "document": "can_send_documents",
    "video": "can_send_videos",
    "sticker": "can_send_other_messages",
    "animation": "can_send_other_messages",
    "audio": "can_send_audios",
    "video_note": "can_send_video_notes",
}
THUMBNAIL_SIDE = 320  # Telegram's thumbnails are JPEGs of at most 320 px a side
MAX_THUMBNAIL_BYTES = 200 * 1024  # and at most 200 kB
#: the placeholder users Telegram shows as the sender of posts made by a chat
CHANNEL_BOT = {"id": 136817688, "is_bot": True, "first_name": "Channel", "username": "Channel_Bot"}
GROUP_ANONYMOUS_BOT = {"id": 1087968824, "is_bot": True, "first_name": "Group", "username": "GroupAnonymousBot"}
TELEGRAM_SERVICE = {"id": 777000, "is_bot": False, "first_name": "Telegram"}


def full_rights(**overrides: bool) -> dict[str, bool]:
    """Every administrator right switched on, with optional exceptions."""
    rights = {r: True for r in ADMIN_RIGHTS}
    rights.update(overrides)
    return rights


# --- values handed to tests -----------------------------------------------------------------


@dataclass(frozen=True)
class FileRef:
    """A file stored in the emulator, as Telegram identifies it."""

    file_id: str
    file_unique_id: str
    file_path: str  # relative, e.g. "photos/file_3.jpg"
    size: int
    kind: str
    mime: str | None = None
    file_name: str | None = None


@dataclass(frozen=True)
class Upload:
    """A file part of a multipart request (what the bot uploaded)."""

    filename: str | None
    content_type: str | None
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class Call:
    """One request the bot made. ``params`` are decoded (JSON values parsed, uploads as Upload)."""

    method: str  # canonical name, e.g. "sendMessage"; downloads are "downloadFile"
    params: dict[str, Any]
    time: float
    status: int
    result: Any = None
    description: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200


class ScenarioError(Exception):
    """The test asked the emulator for something that cannot happen (unknown user, chat, ...)."""


class NotPermitted(ScenarioError):
    """Telegram would stop this user action (a restricted or banned user posting, ...)."""


class ApiError(Exception):
    """An error answer of the Bot API: status, description and optional parameters."""

    def __init__(self, status: int, description: str, parameters: dict | None = None) -> None:
        super().__init__(f"{status} {description}")
        self.status, self.description, self.parameters = status, description, parameters


def _bad(description: str) -> ApiError:
    return ApiError(400, f"Bad Request: {description}")


def _forbidden(description: str) -> ApiError:
    return ApiError(403, f"Forbidden: {description}")


# --- mutable state records (internal) ------------------------------------------------------


@dataclass
class _Member:
    status: str  # creator | administrator | member | restricted | left | kicked
    rights: dict[str, bool] = field(default_factory=dict)
    permissions: dict[str, bool] = field(default_factory=dict)
    until_date: int = 0  # 0: forever
    is_member: bool = True  # restricted members only
    custom_title: str | None = None
    is_anonymous: bool = False  # an administrator who posts as the group itself


@dataclass
class _Chat:
    id: int
    type: str  # private | group | supergroup
    title: str | None
    members: dict[int, _Member] = field(default_factory=dict)
    messages: dict[int, dict] = field(default_factory=dict)
    deleted: list[dict] = field(default_factory=list)
    next_message_id: int = 1
    permissions: dict[str, bool] = field(default_factory=lambda: {p: True for p in PERMISSIONS})
    username: str | None = None
    instance: str = field(default_factory=lambda: str(secrets.randbits(63)))
    linked_chat_id: int | None = None  # a supergroup's discussion channel, or a channel's group
    migrated_to: int | None = None  # a basic group upgraded to this supergroup: calls to it fail
    banned_senders: set[int] = field(default_factory=set)  # banChatSenderChat


@dataclass
class _Stored:
    ref: FileRef
    data: bytes = field(repr=False)


@dataclass
class _Failure:
    status: int
    description: str
    parameters: dict | None
    times: int


@dataclass
class _CallbackQuery:
    id: str
    user_id: int
    chat_id: int
    message_id: int
    data: str
    answer: dict | None = None


# --- text formatting: HTML, MarkdownV2 and legacy Markdown ----------------------------------


class _ParseError(Exception):
    pass


def _u16(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram's entity offsets."""
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(src: str, index: int) -> int:
    return len(src[:index].encode("utf-8"))


class _Builder:
    """Accumulates plain text and entities while a markup parser walks its source."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pos = 0  # UTF-16 units written so far
        self.entities: list[dict] = []

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.pos += _u16(text)

    def entity(self, kind: str, start: int, **extra: Any) -> None:
        if self.pos > start:
            self.entities.append({"type": kind, "offset": start, "length": self.pos - start, **extra})

    def result(self) -> tuple[str, list[dict]]:
        return "".join(self.parts), self.entities


_HTML_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_HTML_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_ATTR_RE = re.compile(r"""([a-zA-Z-]+)\s*(?:=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?""")
_ENTITY_RE = re.compile(r"&(#[0-9]{1,7}|#x[0-9a-fA-F]{1,6}|[a-zA-Z]+);")


def _parse_html(src: str) -> tuple[str, list[dict]]:
    out = _Builder()
    stack: list[tuple[str, int, dict]] = []  # (tag, start, extra fields)
    i = 0
    while i < len(src):
        c = src[i]
        if c == "<":
            end = src.find(">", i)
            if end < 0:
                raise _ParseError(f"Unclosed start tag at byte offset {_byte_offset(src, i)}")
            inner = src[i + 1 : end]
            if inner.startswith("/"):
                name = inner[1:].strip().lower()
                if not stack:
                    raise _ParseError(f"Unexpected end tag at byte offset {_byte_offset(src, i)}")
                tag, start, extra = stack.pop()
                if name != tag:
                    raise _ParseError(
                        f'Unmatched end tag at byte offset {_byte_offset(src, i)}, expected "</{tag}>", '
                        f'found "</{name}>"'
                    )
                kind = _HTML_TAGS[tag]
                if not extra.pop("_skip", False):
                    out.entity(kind, start, **extra)
            else:
                name, _, rest = inner.partition(" ")
                name = name.strip().lower()
                if name not in _HTML_TAGS:
                    raise _ParseError(f'Unsupported start tag "{name}" at byte offset {_byte_offset(src, i)}')
                attrs = {
                    m.group(1).lower(): html.unescape(m.group(2) or m.group(3) or m.group(4) or "")
                    for m in _ATTR_RE.finditer(rest)
                }
                extra: dict[str, Any] = {}
                if name == "span" and attrs.get("class") != "tg-spoiler":
                    raise _ParseError(f'Tag "span" must have class "tg-spoiler" at byte offset {_byte_offset(src, i)}')
                if name == "a":
                    href = attrs.get("href", "")
                    if not href:
                        extra["_skip"] = True  # an <a> without href is plain text
                    elif not re.match(r"^(https?|tg)://", href):
                        raise _ParseError(f'Wrong HTTP URL "{href}"')
                    else:
                        extra["url"] = href
                if name == "tg-emoji":
                    if not attrs.get("emoji-id"):
                        raise _ParseError(
                            f'Tag "tg-emoji" must have attribute "emoji-id" at byte offset {_byte_offset(src, i)}'
                        )
                    extra["custom_emoji_id"] = attrs["emoji-id"]
                if name == "code" and stack and stack[-1][0] == "pre" and stack[-1][1] == out.pos:
                    # <pre><code class="language-x"> is one pre entity with a language
                    lang = attrs.get("class", "")
                    if lang.startswith("language-"):
                        stack[-1][2]["language"] = lang[len("language-") :]
                    extra["_skip"] = True
                stack.append((name, out.pos, extra))
            i = end + 1
        elif c == "&":
            m = _ENTITY_RE.match(src, i)
            char = None
            if m:
                ref = m.group(1)
                if ref.startswith("#x"):
                    char = chr(int(ref[2:], 16)) if int(ref[2:], 16) <= 0x10FFFF else None
                elif ref.startswith("#"):
                    char = chr(int(ref[1:])) if int(ref[1:]) <= 0x10FFFF else None
                else:
                    char = _HTML_NAMED.get(ref)
            if char is not None and m is not None:
                out.add(char)
                i = m.end()
            else:  # a stray & is tolerated as text, as the real API does
                out.add("&")
                i += 1
        else:
            out.add(c)
            i += 1
    if stack:
        raise _ParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    return out.result()


_MDV2_RESERVED = frozenset("_*[]()~`>#+-=|{}.!")
_MDV2_NAMES = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "text_link": "TextUrl",
}


def _parse_markdown_v2(src: str) -> tuple[str, list[dict]]:
    out = _Builder()
    stack: list[tuple[str, int, int]] = []  # (kind, start, source index)
    i, n = 0, len(src)

    def reserved(ch: str) -> _ParseError:
        return _ParseError(f"Character '{ch}' is reserved and must be escaped with the preceding '\\'")

    def toggle(kind: str, at: int) -> None:
        for k in range(len(stack) - 1, -1, -1):
            if stack[k][0] == kind:
                _, start, _ = stack.pop(k)
                out.entity(kind, start)
                return
        stack.append((kind, out.pos, at))

    while i < n:
        c = src[i]
        if c == "\\":
            if i + 1 < n and 1 <= ord(src[i + 1]) <= 126:
                out.add(src[i + 1])
                i += 2
                continue
            raise reserved("\\")
        if c == "`":
            fence = "```" if src.startswith("```", i) else "`"
            j = i + len(fence)
            language = None
            if fence == "```":
                line_end = src.find("\n", j)
                first = src[j:line_end] if line_end >= 0 else ""
                if line_end >= 0 and first and not re.search(r"\s", first):
                    language, j = first, line_end + 1
            start, closed = out.pos, False
            while j < n:
                if src[j] == "\\" and j + 1 < n:
                    out.add(src[j + 1])
                    j += 2
                elif src.startswith(fence, j):
                    closed = True
                    break
                else:
                    out.add(src[j])
                    j += 1
            if not closed:
                name = "Pre" if fence == "```" else "Code"
                raise _ParseError(f"Can't find end of {name} entity at byte offset {_byte_offset(src, i)}")
            if fence == "```":
                out.entity("pre", start, **({"language": language} if language else {}))
            else:
                out.entity("code", start)
            i = j + len(fence)
        elif c == "*":
            toggle("bold", i)
            i += 1
        elif c == "_":
            if src.startswith("__", i):
                toggle("underline", i)
                i += 2
            else:
                toggle("italic", i)
                i += 1
        elif c == "~":
            toggle("strikethrough", i)
            i += 1
        elif c == "|":
            if not src.startswith("||", i):
                raise reserved("|")
            toggle("spoiler", i)
            i += 2
        elif c == "[":
            stack.append(("text_link", out.pos, i))
            i += 1
        elif c == "]":
            if not stack or stack[-1][0] != "text_link":
                raise reserved("]")
            if i + 1 >= n or src[i + 1] != "(":
                raise _ParseError(f"Can't find end of a url at byte offset {_byte_offset(src, i)}")
            j, url = i + 2, []
            while j < n and src[j] != ")":
                if src[j] == "\\" and j + 1 < n:
                    j += 1
                url.append(src[j])
                j += 1
            if j >= n:
                raise _ParseError(f"Can't find end of a url at byte offset {_byte_offset(src, i)}")
            _, start, _ = stack.pop()
            out.entity("text_link", start, url="".join(url))
            i = j + 1
        elif c == ">" and (i == 0 or src[i - 1] == "\n"):
            line_end = src.find("\n", i)
            line_end = n if line_end < 0 else line_end
            start = out.pos
            inner_text, inner_entities = _parse_markdown_v2(src[i + 1 : line_end])
            for e in inner_entities:
                out.entities.append({**e, "offset": e["offset"] + start})
            out.add(inner_text)
            out.entity("blockquote", start)
            i = line_end
        elif c in _MDV2_RESERVED:
            raise reserved(c)
        else:
            out.add(c)
            i += 1
    if stack:
        kind, _, at = stack[-1]
        raise _ParseError(
            f"Can't find end of {_MDV2_NAMES.get(kind, kind)} entity at byte offset {_byte_offset(src, at)}"
        )
    return out.result()


def _parse_markdown(src: str) -> tuple[str, list[dict]]:
    """Legacy Markdown: *bold*, _italic_, `code`, ```pre```, [text](url); no nesting."""
    out = _Builder()
    i, n = 0, len(src)

    def unclosed(at: int) -> _ParseError:
        return _ParseError(f"Can't find end of the entity starting at byte offset {_byte_offset(src, at)}")

    while i < n:
        c = src[i]
        if c == "\\" and i + 1 < n and src[i + 1] in "_*`[":
            out.add(src[i + 1])
            i += 2
        elif c in "*_":
            j = src.find(c, i + 1)
            if j < 0:
                raise unclosed(i)
            start = out.pos
            out.add(src[i + 1 : j])
            out.entity("bold" if c == "*" else "italic", start)
            i = j + 1
        elif c == "`":
            fence = "```" if src.startswith("```", i) else "`"
            j = src.find(fence, i + len(fence))
            if j < 0:
                raise unclosed(i)
            start = out.pos
            out.add(src[i + len(fence) : j])
            out.entity("pre" if fence == "```" else "code", start)
            i = j + len(fence)
        elif c == "[":
            close = src.find("]", i + 1)
            if close < 0 or close + 1 >= n or src[close + 1] != "(" or src.find(")", close) < 0:
                raise unclosed(i)
            url_end = src.find(")", close)
            start = out.pos
            out.add(src[i + 1 : close])
            out.entity("text_link", start, url=src[close + 2 : url_end])
            i = url_end + 1
        else:
            out.add(c)
            i += 1
    return out.result()


_PARSERS: dict[str, Callable[[str], tuple[str, list[dict]]]] = {
    "html": _parse_html,
    "markdownv2": _parse_markdown_v2,
    "markdown": _parse_markdown,
}


def _strip(text: str, entities: list[dict]) -> tuple[str, list[dict]]:
    """Telegram trims surrounding whitespace from texts and captions; entities follow."""
    stripped = text.strip()
    if stripped == text:
        return text, entities
    lead = _u16(text[: len(text) - len(text.lstrip())])
    total = _u16(stripped)
    kept = []
    for e in entities:
        start = max(e["offset"] - lead, 0)
        end = min(e["offset"] + e["length"] - lead, total)
        if end > start:
            kept.append({**e, "offset": start, "length": end - start})
    return stripped, kept


_COMMAND_RE = re.compile(r"(?<![^\s])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?")


def _command_entities(text: str) -> list[dict]:
    return [
        {"type": "bot_command", "offset": _u16(text[: m.start()]), "length": _u16(m.group())}
        for m in _COMMAND_RE.finditer(text)
    ]


# --- images and videos (for photo sizes and thumbnails) -------------------------------------


def _image_size(data: bytes) -> tuple[int, int] | None:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.size
    except Exception:  # not an image Pillow can read: the caller falls back
        return None


def _scaled_jpegs(data: bytes, sides: Iterable[int]) -> list[tuple[bytes, int, int]]:
    """Downscaled JPEG copies (largest side = each of ``sides``), smallest first."""
    from PIL import Image, ImageOps

    results: list[tuple[bytes, int, int]] = []
    if not sides:
        return results
    try:
        with Image.open(io.BytesIO(data)) as src:
            if src.width * src.height > 50_000_000:  # keep tests fast with huge images
                return []
            img = ImageOps.exif_transpose(src.convert("RGB"))
    except Exception:
        return []
    for side in sorted(sides, reverse=True):
        img = img.copy()
        img.thumbnail((side, side))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=80)
        results.append((buf.getvalue(), img.width, img.height))
    return results[::-1]


def _probe_video(data: bytes) -> tuple[int, int, int, bytes | None] | None:
    """(width, height, whole seconds, first frame as PNG) of a video or GIF, or None."""
    try:
        import av

        with av.open(io.BytesIO(data)) as container:
            stream = container.streams.video[0]
            width, height = stream.codec_context.width, stream.codec_context.height
            seconds = int(container.duration / 1_000_000) if container.duration else 0
            frame = next(container.decode(video=0)).to_image()
            buf = io.BytesIO()
            frame.save(buf, "PNG")
            return width, height, seconds, buf.getvalue()
    except Exception:  # not a video PyAV can read
        pass
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as img:
            frames = getattr(img, "n_frames", 1)
            total_ms = 0
            for k in range(frames):
                img.seek(k)
                total_ms += img.info.get("duration", 0) or 0
            img.seek(0)
            buf = io.BytesIO()
            img.convert("RGB").save(buf, "PNG")
            return img.width, img.height, total_ms // 1000, buf.getvalue()
    except Exception:
        return None


# --- the emulator ------------------------------------------------------------------------------


class BotApiEmulator:
    """One emulated bot and the Telegram world around it. See the module docstring."""

    def __init__(
        self,
        token: str | None = None,
        *,
        bot_username: str = "vigil_test_bot",
        bot_name: str = "Vigil",
        privacy_mode: bool = True,
        port: int = 0,
    ) -> None:
        self.token = token or f"{7_000_000_000 + secrets.randbelow(10**9)}:AA{secrets.token_urlsafe(24)}"
        self.bot_id = int(self.token.split(":", 1)[0])
        self.privacy_mode = privacy_mode
        self.bot_user: dict = {"id": self.bot_id, "is_bot": True, "first_name": bot_name, "username": bot_username}
        self.url = ""
        self.port = port
        self.calls: list[Call] = []
        #: (chat, message) of every message a delete call named, as the call arrived, whatever its answer
        self.delete_attempts: list[tuple[int, int]] = []
        #: exceptions raised inside the emulator itself; stop() fails if there are any
        self.internal_errors: list[BaseException] = []

        self._users: dict[int, dict] = {self.bot_id: self.bot_user}
        for placeholder in (CHANNEL_BOT, GROUP_ANONYMOUS_BOT, TELEGRAM_SERVICE):
            self._users[placeholder["id"]] = dict(placeholder)
        self._started: set[int] = set()
        self._blocked: set[int] = set()
        self._chats: dict[int, _Chat] = {}
        self._files: dict[str, _Stored] = {}
        self._paths: dict[str, str] = {}  # file_path -> file_id
        self._photo_sets: dict[str, list[dict]] = {}  # original file_id -> PhotoSize list
        self._updates: list[tuple[int, str, dict]] = []
        self._allowed: frozenset[str] = DEFAULT_UPDATES
        self._failures: dict[str, list[_Failure]] = {}
        self._flood_after: int | None = None  # see flood_new_deletes
        self._held: dict[str, asyncio.Event] = {}  # see hold
        self._flood_seen: set[tuple[int, int]] = set()
        self._queries: dict[str, _CallbackQuery] = {}
        self._commands: dict[tuple[str, str], list[dict]] = {}
        self._poll: asyncio.Future | None = None
        self._watchers: list[asyncio.Future] = []
        self._stopping = False
        self._runner: web.AppRunner | None = None

        self._update_ids = itertools.count(500_000_000 + secrets.randbelow(10**6))
        self._user_ids = itertools.count(100_000_001)
        self._supergroup_ids = itertools.count(1)
        self._file_numbers = itertools.count(0)
        self._query_ids = itertools.count(4_000_000_000_000_000_001)

        self._handlers: dict[str, Callable[[dict], Any]] = {}
        self._canonical: dict[str, str] = {}
        for name in (
            "getMe",
            "logOut",
            "close",
            "deleteWebhook",
            "getWebhookInfo",
            "getUpdates",
            "sendMessage",
            "editMessageText",
            "editMessageReplyMarkup",
            "deleteMessage",
            "deleteMessages",
            "getFile",
            "getChat",
            "getChatAdministrators",
            "getChatMember",
            "getChatMemberCount",
            "restrictChatMember",
            "banChatMember",
            "unbanChatMember",
            "answerCallbackQuery",
            "sendDocument",
            "setMyCommands",
            "getMyCommands",
            "deleteMyCommands",
            "sendChatAction",
            "leaveChat",
            "banChatSenderChat",
            "unbanChatSenderChat",
        ):
            self._handlers[name.lower()] = getattr(self, "_m_" + name)
            self._canonical[name.lower()] = name

    # --- server lifecycle -------------------------------------------------------------------

    async def start(self) -> str:
        """Serve on 127.0.0.1 (a free port unless one was given); returns the base URL."""
        app = web.Application(client_max_size=MAX_UPLOAD_BYTES + 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._serve_api)
        app.router.add_route("GET", "/file/bot{token}/{path:.+}", self._serve_file)
        app.router.add_route("*", "/{tail:.*}", self._serve_not_found)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._stopping = False
        return self.url

    async def stop(self) -> None:
        """Answer pending long polls at once, then close the server (short shutdown timeout)."""
        self._stopping = True
        self._wake_poll("stop")
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        if self.internal_errors:
            errors, self.internal_errors = self.internal_errors, []
            raise AssertionError(f"the Bot API emulator failed internally: {errors!r}") from errors[0]

    async def __aenter__(self) -> BotApiEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def bot_kwargs(self) -> dict[str, str]:
        """Keyword arguments for ``telegram.Bot(...)`` pointed at this emulator."""
        return {"token": self.token, "base_url": f"{self.url}/bot", "base_file_url": f"{self.url}/file/bot"}

    # --- HTTP layer -------------------------------------------------------------------------------

    async def _serve_api(self, request: web.Request) -> web.Response:
        started = time.time()
        name = request.match_info["method"]
        method = self._canonical.get(name.lower(), name)
        params: dict[str, Any] = {}
        try:
            if request.match_info["token"] != self.token:
                raise ApiError(401, "Unauthorized")
            params = await self._read_params(request)
            self._note_delete_attempt(method, params)
            held = self._held.get(method.lower())
            if held is not None:  # the test holds this method: its calls wait, then go on as sent
                await held.wait()
            self._maybe_fail(method)
            self._maybe_flood(method, params)
            handler = self._handlers.get(name.lower())
            if handler is None:
                raise ApiError(404, "Not Found")
            result = handler(params)
            if asyncio.iscoroutine(result):
                result = await result
        except ApiError as err:
            return self._error_response(method, params, started, err)
        except Exception as exc:  # a bug in the emulator: answer 500 and make the test fail in stop()
            self.internal_errors.append(exc)
            return self._error_response(method, params, started, ApiError(500, f"Internal Server Error: {exc!r}"))
        self._record(Call(method, params, started, 200, copy.deepcopy(result)))
        return web.json_response({"ok": True, "result": result})

    async def _serve_file(self, request: web.Request) -> web.Response:
        started = time.time()
        path = request.match_info["path"]
        params = {"file_path": path}
        try:
            if request.match_info["token"] != self.token:
                raise ApiError(401, "Unauthorized")
            self._maybe_fail("downloadFile")
            file_id = self._paths.get(path)
            if file_id is None or self._files[file_id].ref.size > MAX_DOWNLOAD_BYTES:
                raise ApiError(404, "Not Found")
        except ApiError as err:
            return self._error_response("downloadFile", params, started, err)
        stored = self._files[file_id]
        self._record(Call("downloadFile", params, started, 200, {"size": stored.ref.size}))
        return web.Response(body=stored.data, content_type="application/octet-stream")

    async def _serve_not_found(self, request: web.Request) -> web.Response:
        return self._error_response(request.path, {}, time.time(), ApiError(404, "Not Found"))

    def _error_response(self, method: str, params: dict, started: float, err: ApiError) -> web.Response:
        body: dict[str, Any] = {"ok": False, "error_code": err.status, "description": err.description}
        if err.parameters:
            body["parameters"] = err.parameters
        self._record(Call(method, params, started, err.status, None, err.description))
        return web.json_response(body, status=err.status)

    async def _read_params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = {k: _decode_form_value(k, v) for k, v in request.query.items()}
        if not request.can_read_body:
            return params
        ctype = request.content_type
        if ctype == "application/json":
            try:
                body = await request.json()
            except ValueError:
                raise _bad("can't parse JSON object") from None
            if not isinstance(body, dict):
                raise _bad("can't parse JSON object")
            params.update(body)
        elif ctype == "multipart/form-data":
            # read parts ourselves: aiohttp's request.post() would spool file parts to disk
            reader = await request.multipart()
            total = 0
            async for part in reader:
                data = await part.read()
                total += len(data)
                if total > MAX_UPLOAD_BYTES:
                    raise ApiError(413, "Request Entity Too Large")
                if part.filename is not None:
                    params[part.name] = Upload(part.filename, part.headers.get("Content-Type"), bytes(data))
                else:
                    params[part.name] = _decode_form_value(part.name, data.decode("utf-8"))
            for key, value in list(params.items()):
                if isinstance(value, str) and value.startswith("attach://"):
                    attached = params.get(value[len("attach://") :])
                    if isinstance(attached, Upload):
                        params[key] = attached
        else:
            try:
                form = await request.post()
            except web.HTTPRequestEntityTooLarge:
                raise ApiError(413, "Request Entity Too Large") from None
            for key, value in form.items():
                params[key] = _decode_form_value(key, value) if isinstance(value, str) else value
        return params

    def _note_delete_attempt(self, method: str, params: dict) -> None:
        # noted on arrival: a delete of a gone message is answered 400 (deleteMessages skips it and
        # answers True), and a call cut off by a killed client never gets an answer, yet each is a repeat
        if method not in ("deleteMessage", "deleteMessages"):
            return
        ids = params.get("message_ids") if method == "deleteMessages" else [params.get("message_id")]
        chat = params.get("chat_id")
        if not isinstance(ids, list) or not _is_int_like(chat):
            return
        self.delete_attempts.extend((int(chat), int(i)) for i in ids if _is_int_like(i))

    def _maybe_fail(self, method: str) -> None:
        for key in (method.lower(), "*"):
            queue = self._failures.get(key)
            if queue:
                failure = queue[0]
                failure.times -= 1
                if failure.times <= 0:
                    queue.pop(0)
                raise ApiError(failure.status, failure.description, failure.parameters)

    def _maybe_flood(self, method: str, params: dict) -> None:
        if self._flood_after is None or method not in ("deleteMessage", "deleteMessages"):
            return
        chat = params.get("chat_id")
        ids = params.get("message_ids") if method == "deleteMessages" else [params.get("message_id")]
        if not isinstance(ids, list):
            return
        keys = {(int(chat), int(i)) for i in ids if isinstance(i, int) or (isinstance(i, str) and i.isdigit())}
        if keys - self._flood_seen:
            self._flood_seen |= keys
            raise ApiError(
                429, f"Too Many Requests: retry after {self._flood_after}", {"retry_after": self._flood_after}
            )

    def _record(self, call: Call) -> None:
        self.calls.append(call)
        self._changed()

    # --- waking waiters -----------------------------------------------------------------------

    def _changed(self) -> None:
        watchers, self._watchers = self._watchers, []
        for fut in watchers:
            if not fut.done():
                fut.set_result(None)

    def _wake_poll(self, reason: str) -> None:
        if self._poll is not None and not self._poll.done():
            self._poll.set_result(reason)

    # --- the update queue ---------------------------------------------------------------------

    def _queue(self, kind: str, payload: dict) -> None:
        # allowed_updates applies when an update is created, as on the real server
        if kind not in self._allowed:
            return
        self._updates.append((next(self._update_ids), kind, copy.deepcopy(payload)))
        self._wake_poll("update")
        self._changed()

    def _queue_message(self, chat: _Chat, msg: dict, kind: str = "message") -> None:
        if self._bot_sees(chat, msg):
            self._queue(kind, msg)

    @property
    def polling(self) -> bool:
        """True while a getUpdates long poll is waiting for an update."""
        return self._poll is not None and not self._poll.done()

    def queue_raw_update(self, payload: dict) -> int:
        """Queue an update exactly as given (no checks): to test how the bot survives malformed ones.

        ``payload`` is the update without ``update_id``; returns the id it got.
        """
        update_id = next(self._update_ids)
        kinds = [k for k in payload if k != "update_id"] or ["message"]
        self._updates.append((update_id, kinds[0], copy.deepcopy(payload.get(kinds[0]))))
        self._wake_poll("update")
        self._changed()
        return update_id

    def pending_updates(self) -> int:
        """Updates queued and not yet confirmed by an offset."""
        return len(self._updates)

    def peek_updates(self) -> list[dict]:
        """The pending updates as getUpdates would return them (copies)."""
        return [{"update_id": uid, kind: copy.deepcopy(payload)} for uid, kind, payload in self._updates]

    def _bot_sees(self, chat: _Chat, msg: dict) -> bool:
        """Privacy mode: a non-admin bot in a group gets only commands, replies to it, service messages."""
        if chat.type == "private":
            return chat.id not in self._blocked
        bot = self._member(chat, self.bot_id)
        if bot.status in ("left", "kicked"):
            return False
        if not self.privacy_mode or bot.status in ("creator", "administrator"):
            return True
        if any(
            k in msg
            for k in (
                "new_chat_members",
                "left_chat_member",
                "new_chat_title",
                "new_chat_photo",
                "pinned_message",
                "migrate_to_chat_id",
                "migrate_from_chat_id",
            )
        ):
            return True
        reply = msg.get("reply_to_message")
        if reply and reply.get("from", {}).get("id") == self.bot_id:
            return True
        return self._is_command_for_me(msg)

    def _is_command_for_me(self, msg: dict) -> bool:
        text = msg.get("text", "")
        first = next(iter(msg.get("entities", [])), None)
        if not first or first["type"] != "bot_command" or first["offset"] != 0:
            return False
        _, _, addressee = text.split()[0].partition("@")
        return not addressee or addressee.lower() == self.bot_user["username"].lower()

    # --- state helpers -------------------------------------------------------------------------

    @staticmethod
    def _now() -> int:
        return int(time.time())

    def _user(self, user_id: int) -> dict:
        user = self._users.get(user_id)
        if user is None:
            raise ScenarioError(f"no user {user_id}: create it with add_user() first")
        return user

    def _chat_or_fail(self, chat_id: int) -> _Chat:
        chat = self._chats.get(chat_id)
        if chat is None:
            raise ScenarioError(f"no chat {chat_id}: create it with add_group() or start_private() first")
        return chat

    def _member(self, chat: _Chat, user_id: int) -> _Member:
        """The member record with timed restrictions and bans lifted once they expire."""
        m = chat.members.get(user_id)
        if m is None:
            return _Member("left")
        if m.status in ("restricted", "kicked") and m.until_date and m.until_date <= self._now():
            m = _Member("member") if m.status == "restricted" and m.is_member else _Member("left")
            chat.members[user_id] = m
        return m

    def _chat_json(self, chat: _Chat) -> dict:
        if chat.type == "private":
            user = self._users[chat.id]
            out = {"id": chat.id, "type": "private", "first_name": user["first_name"]}
            for key in ("last_name", "username"):
                if key in user:
                    out[key] = user[key]
            return out
        out = {"id": chat.id, "type": chat.type, "title": chat.title}
        if chat.username:
            out["username"] = chat.username
        return out

    def _member_json(self, chat: _Chat, user_id: int) -> dict:
        m = self._member(chat, user_id)
        user = copy.deepcopy(self._users[user_id])
        if m.status == "creator":
            out = {"status": "creator", "user": user, "is_anonymous": m.is_anonymous}
        elif m.status == "administrator":
            out = {"status": "administrator", "user": user, "can_be_edited": False, "is_anonymous": m.is_anonymous}
            out.update({r: bool(m.rights.get(r, False)) for r in ADMIN_RIGHTS})
            out["can_manage_chat"] = True
        elif m.status == "restricted":
            out = {"status": "restricted", "user": user, "is_member": m.is_member, "until_date": m.until_date}
            out.update({p: bool(m.permissions.get(p, False)) for p in PERMISSIONS})
        elif m.status == "kicked":
            out = {"status": "kicked", "user": user, "until_date": m.until_date}
        else:
            out = {"status": m.status, "user": user}
        if m.custom_title and m.status in ("creator", "administrator"):
            out["custom_title"] = m.custom_title
        return out

    def _may_post(self, chat: _Chat, user_id: int, kind: str) -> None:
        if chat.type == "private":
            if user_id != chat.id:
                raise ScenarioError(f"user {user_id} cannot post in the private chat of user {chat.id}")
            return
        m = self._member(chat, user_id)
        if m.status in ("left", "kicked"):
            raise NotPermitted(f"user {user_id} is not a member of chat {chat.id} (status {m.status})")
        if m.status == "restricted" and not m.permissions.get(_KIND_PERMISSION[kind], False):
            raise NotPermitted(f"user {user_id} is restricted in chat {chat.id}: no {_KIND_PERMISSION[kind]}")

    def _set_member(self, chat: _Chat, user_id: int, new: _Member, *, by: int, bot_visible: bool = True) -> None:
        """Change a membership and queue the update Telegram would send about it."""
        old_json = self._member_json(chat, user_id)
        chat.members[user_id] = new
        update = {
            "chat": self._chat_json(chat),
            "from": copy.deepcopy(self._users[by]),
            "date": self._now(),
            "old_chat_member": old_json,
            "new_chat_member": self._member_json(chat, user_id),
        }
        if user_id == self.bot_id:
            if bot_visible:
                self._queue("my_chat_member", update)
        elif self._member(chat, self.bot_id).status in ("creator", "administrator"):
            self._queue("chat_member", update)
        self._changed()

    def _new_message(
        self,
        chat: _Chat,
        sender: int,
        content: dict,
        *,
        reply_to: int | None = None,
        forward_from: int | str | None = None,
        media_group_id: str | None = None,
        sender_chat: int | None = None,
        quote_from: tuple[int, int] | None = None,
    ) -> dict:
        msg: dict[str, Any] = {
            "message_id": chat.next_message_id,
            "date": self._now(),
            "chat": self._chat_json(chat),
            "from": copy.deepcopy(self._users[sender]),
        }
        if sender_chat is not None:
            # the person stays hidden: a placeholder user, and the chat they posted as
            author = self._chats[sender_chat]
            placeholder = GROUP_ANONYMOUS_BOT if sender_chat == chat.id else CHANNEL_BOT
            msg["from"] = dict(placeholder)
            msg["sender_chat"] = self._chat_json(author)
            title = self._member(chat, sender).custom_title if sender_chat == chat.id else None
            if title:
                msg["author_signature"] = title
        chat.next_message_id += 1
        if reply_to is not None:
            target = chat.messages.get(reply_to)
            if target is None:
                raise ScenarioError(f"chat {chat.id} has no message {reply_to} to reply to")
            msg["reply_to_message"] = self._replied(target)
        if forward_from is not None:
            msg["forward_origin"] = self._forward_origin(forward_from)
        if quote_from is not None:
            msg["external_reply"] = self._external_reply(chat, *quote_from)
        if media_group_id is not None:
            msg["media_group_id"] = str(media_group_id)
        msg.update(content)
        chat.messages[msg["message_id"]] = msg
        self._changed()
        return msg

    def _external_reply(self, chat: _Chat, source_id: int, message_id: int) -> dict:
        """ExternalReplyInfo: a reply to a message of another chat, with that message's media."""
        source = self._chat_or_fail(source_id)
        if source.id == chat.id:
            raise ScenarioError("a reply in the same chat is reply_to; external replies quote another chat")
        target = source.messages.get(message_id)
        if target is None:
            raise ScenarioError(f"chat {source_id} has no message {message_id} to quote")
        if source.type == "channel":
            origin = {
                "type": "channel",
                "chat": self._chat_json(source),
                "message_id": message_id,
                "date": target["date"],
            }
        else:
            origin = {"type": "user", "sender_user": copy.deepcopy(target["from"]), "date": target["date"]}
        info: dict[str, Any] = {"origin": origin, "chat": self._chat_json(source), "message_id": message_id}
        for key in _MEDIA_KEYS:
            if key in target:
                info[key] = copy.deepcopy(target[key])
        return info

    @staticmethod
    def _replied(target: dict) -> dict:
        replied = copy.deepcopy(target)
        replied.pop("reply_to_message", None)
        return replied

    def _forward_origin(self, source: int | str) -> dict:
        date = self._now() - 3600
        if isinstance(source, str):
            return {"type": "hidden_user", "date": date, "sender_user_name": source}
        if source > 0:
            return {"type": "user", "date": date, "sender_user": copy.deepcopy(self._user(source))}
        chat = self._chats.get(source)
        chat_json = self._chat_json(chat) if chat else {"id": source, "type": "channel", "title": f"Channel {source}"}
        if chat is None:
            return {"type": "channel", "date": date, "chat": chat_json, "message_id": 1}
        return {"type": "chat", "date": date, "sender_chat": chat_json}

    # --- files -----------------------------------------------------------------------------

    def upload(
        self, data: bytes, *, kind: str = "photo", mime: str | None = None, file_name: str | None = None
    ) -> FileRef:
        """Store bytes as a Telegram file and return its ids (no message is posted)."""
        if kind not in _FILE_DIR:
            raise ScenarioError(f"unknown file kind {kind!r}; use one of {sorted(_FILE_DIR)}")
        if not isinstance(data, (bytes, bytearray)):
            raise ScenarioError("upload() needs bytes")
        number = next(self._file_numbers)
        folder, ext = _FILE_DIR[kind]
        if kind == "document":
            ext = (file_name and "." in file_name and "." + file_name.rsplit(".", 1)[1].lower()) or (
                mimetypes.guess_extension(mime or "") or ""
            )
        path = f"{folder}/file_{number}{ext}"
        ref = FileRef(
            file_id=_FILE_ID_PREFIX[kind] + secrets.token_urlsafe(40),
            file_unique_id="AQAD" + secrets.token_urlsafe(9),
            file_path=path,
            size=len(data),
            kind=kind,
            mime=mime,
            file_name=file_name,
        )
        self._files[ref.file_id] = _Stored(ref, bytes(data))
        self._paths[path] = ref.file_id
        return ref

    def file_bytes(self, file_id: str) -> bytes:
        stored = self._files.get(file_id)
        if stored is None:
            raise ScenarioError(f"no file {file_id!r}")
        return stored.data

    def _ref(self, data: bytes | FileRef, kind: str, **meta: Any) -> FileRef:
        if isinstance(data, FileRef):
            if data.file_id not in self._files:
                raise ScenarioError(f"FileRef {data.file_id!r} was not made by this emulator")
            return data
        return self.upload(data, kind=kind, **meta)

    def _thumbnail(self, image: bytes | None, side: int = 320) -> dict | None:
        if image is None:
            return None
        scaled = _scaled_jpegs(image, [side])
        if not scaled:
            return None
        jpeg, width, height = scaled[0]
        ref = self.upload(jpeg, kind="thumbnail", mime="image/jpeg")
        return _photo_size(ref, width, height)

    def _photo(self, data: bytes | FileRef) -> list[dict]:
        ref = self._ref(data, "photo", mime="image/jpeg")
        if ref.file_id not in self._photo_sets:
            raw = self._files[ref.file_id].data
            width, height = _image_size(raw) or (0, 0)
            sizes = []
            for jpeg, w, h in _scaled_jpegs(raw, [s for s in PHOTO_SIDES if s < max(width, height)]):
                sizes.append(_photo_size(self.upload(jpeg, kind="photo", mime="image/jpeg"), w, h))
            sizes.append(_photo_size(ref, width, height))  # the largest is the original bytes
            self._photo_sets[ref.file_id] = sizes
        return copy.deepcopy(self._photo_sets[ref.file_id])

    def _document(self, data: bytes | FileRef, file_name: str, mime: str | None) -> dict:
        mime = mime or mimetypes.guess_type(file_name)[0] or "application/octet-stream"
        ref = self._ref(data, "document", mime=mime, file_name=file_name)
        doc = _file_json(ref)
        doc["file_name"] = ref.file_name or file_name
        doc["mime_type"] = ref.mime or mime
        if (ref.mime or "").startswith("image/"):
            thumb = self._thumbnail(self._files[ref.file_id].data)
            if thumb:
                doc["thumbnail"] = thumb
        return doc

    def _video_like(
        self,
        data: bytes | FileRef,
        kind: str,
        mime: str,
        file_name: str | None,
        width: int | None,
        height: int | None,
        duration: int | None,
    ) -> dict:
        ref = self._ref(data, kind, mime=mime, file_name=file_name)
        probe = _probe_video(self._files[ref.file_id].data)
        pw, ph, pd, frame = probe if probe else (0, 0, 0, None)
        out = _file_json(ref)
        out.update(
            width=width if width is not None else pw,
            height=height if height is not None else ph,
            duration=duration if duration is not None else pd,
            mime_type=ref.mime or mime,
        )
        if ref.file_name or file_name:
            out["file_name"] = ref.file_name or file_name
        thumb = self._thumbnail(frame)
        if thumb:
            out["thumbnail"] = thumb
        return out

    # --- test-control API: world ---------------------------------------------------------

    def add_user(
        self,
        first_name: str,
        *,
        username: str | None = None,
        language_code: str | None = "en",
        is_bot: bool = False,
        last_name: str | None = None,
    ) -> int:
        user_id = next(self._user_ids)
        user: dict[str, Any] = {"id": user_id, "is_bot": is_bot, "first_name": first_name}
        if last_name:
            user["last_name"] = last_name
        if username:
            user["username"] = username
        if language_code:
            user["language_code"] = language_code
        self._users[user_id] = user
        return user_id

    def add_group(
        self,
        title: str,
        *,
        creator: int,
        admins: Iterable[int] = (),
        members: Iterable[int] = (),
        bot_rights: dict[str, bool] | None = None,
        bot_present: bool = True,
        kind: str = "supergroup",
        username: str | None = None,
        permissions: dict[str, bool] | None = None,
    ) -> int:
        """A group with its members already in it (no updates queued).

        ``bot_rights``: None makes the bot a plain member, a dict an administrator with those
        rights (see ADMIN_RIGHTS, full_rights()). ``bot_present=False``: add it later with
        add_bot_to_group(). ``kind``: "supergroup" (ids -100…) or "group". ``permissions``: the
        members' default ChatPermissions (missing keys False; default: all True).
        """
        if kind not in ("supergroup", "group"):
            raise ScenarioError(f"kind must be 'supergroup' or 'group', not {kind!r}")
        n = next(self._supergroup_ids)
        chat_id = int(f"-100{1_000_000_000 + n}") if kind == "supergroup" else -(4_000_000_000 + n)
        chat = _Chat(chat_id, kind, title, username=username)
        if permissions is not None:
            unknown = set(permissions) - set(PERMISSIONS)
            if unknown:
                raise ScenarioError(f"unknown permissions {sorted(unknown)}; known: {', '.join(PERMISSIONS)}")
            chat.permissions = {p: bool(permissions.get(p, False)) for p in PERMISSIONS}
        self._user(creator)
        chat.members[creator] = _Member("creator")
        for uid in admins:
            self._user(uid)
            chat.members[uid] = _Member("administrator", rights=full_rights())
        for uid in members:
            self._user(uid)
            chat.members.setdefault(uid, _Member("member"))
        if bot_present:
            chat.members[self.bot_id] = _bot_member(bot_rights)
        self._chats[chat_id] = chat
        return chat_id

    def set_bot_rights(self, chat_id: int, rights: dict[str, bool] | None) -> None:
        """The creator promotes (dict) or demotes (None) the bot; queues my_chat_member."""
        chat = self._chat_or_fail(chat_id)
        if self._member(chat, self.bot_id).status in ("left", "kicked"):
            raise ScenarioError(f"the bot is not in chat {chat_id}: use add_bot_to_group()")
        self._set_member(chat, self.bot_id, _bot_member(rights), by=self._creator(chat))

    def promote(self, chat_id: int, user_id: int, rights: dict[str, bool] | None = None) -> None:
        chat = self._chat_or_fail(chat_id)
        if self._member(chat, user_id).status in ("left", "kicked", "creator"):
            raise ScenarioError(f"user {user_id} cannot be promoted in chat {chat_id}")
        self._set_member(
            chat,
            user_id,
            _Member("administrator", rights=_checked_rights(rights or full_rights())),
            by=self._creator(chat),
        )

    def demote(self, chat_id: int, user_id: int) -> None:
        chat = self._chat_or_fail(chat_id)
        if self._member(chat, user_id).status != "administrator":
            raise ScenarioError(f"user {user_id} is not an administrator of chat {chat_id}")
        self._set_member(chat, user_id, _Member("member"), by=self._creator(chat))

    def add_member(self, chat_id: int, user_id: int) -> int:
        """The user joins the group: a new_chat_members service message and a chat_member update."""
        chat = self._chat_or_fail(chat_id)
        self._user(user_id)
        if self._member(chat, user_id).status not in ("left",):
            raise ScenarioError(
                f"user {user_id} cannot join chat {chat_id} (status {self._member(chat, user_id).status})"
            )
        self._set_member(chat, user_id, _Member("member"), by=user_id)
        msg = self._new_message(chat, user_id, {"new_chat_members": [copy.deepcopy(self._users[user_id])]})
        self._queue_message(chat, msg)
        return msg["message_id"]

    def leave(self, chat_id: int, user_id: int) -> int:
        """The user leaves the group: a left_chat_member service message and a chat_member update."""
        chat = self._chat_or_fail(chat_id)
        if self._member(chat, user_id).status in ("left", "kicked"):
            raise ScenarioError(f"user {user_id} is not in chat {chat_id}")
        self._set_member(chat, user_id, _Member("left"), by=user_id)
        msg = self._new_message(chat, user_id, {"left_chat_member": copy.deepcopy(self._users[user_id])})
        self._queue_message(chat, msg)
        return msg["message_id"]

    def add_bot_to_group(self, chat_id: int, by_user: int, rights: dict[str, bool] | None = None) -> None:
        """``by_user`` adds the bot: queues my_chat_member and the new_chat_members service message."""
        chat = self._chat_or_fail(chat_id)
        if self._member(chat, self.bot_id).status not in ("left", "kicked"):
            raise ScenarioError(f"the bot is already in chat {chat_id}")
        adder = self._member(chat, by_user).status
        if adder in ("left", "kicked") or (rights is not None and adder not in ("creator", "administrator")):
            raise NotPermitted(f"user {by_user} cannot add the bot to chat {chat_id} (status {adder})")
        self._set_member(chat, self.bot_id, _bot_member(rights), by=by_user)
        msg = self._new_message(chat, by_user, {"new_chat_members": [copy.deepcopy(self.bot_user)]})
        self._queue_message(chat, msg)

    def remove_bot_from_group(self, chat_id: int, by_user: int) -> None:
        """An admin removes the bot (status kicked); queues my_chat_member."""
        chat = self._chat_or_fail(chat_id)
        self._set_member(chat, self.bot_id, _Member("kicked"), by=by_user)

    def start_private(self, user_id: int) -> int:
        """The user opens a private chat with the bot and sends /start; returns the message id."""
        self._user(user_id)
        chat = self._chats.get(user_id)
        if chat is None:
            chat = self._chats[user_id] = _Chat(user_id, "private", None)
            chat.members = {user_id: _Member("member"), self.bot_id: _Member("member")}
        if user_id in self._blocked:
            self._blocked.discard(user_id)
        self._started.add(user_id)
        msg = self._new_message(chat, user_id, {"text": "/start", "entities": _command_entities("/start")})
        self._queue_message(chat, msg)
        return msg["message_id"]

    def block_bot(self, user_id: int) -> None:
        """The user blocks the bot: later private messages fail with 403; queues my_chat_member."""
        chat = self._chats.get(user_id)
        if chat is None or user_id not in self._started:
            raise ScenarioError(f"user {user_id} never started the bot")
        self._set_member(chat, self.bot_id, _Member("kicked"), by=user_id)
        self._blocked.add(user_id)

    def add_channel(self, title: str, *, owner: int, admins: Iterable[int] = (), username: str | None = None) -> int:
        """A channel (ids -100…); the bot is not in it. Its admins may post as it in supergroups."""
        self._user(owner)
        n = next(self._supergroup_ids)
        chat = _Chat(int(f"-100{1_000_000_000 + n}"), "channel", title, username=username)
        chat.members[owner] = _Member("creator")
        for uid in admins:
            self._user(uid)
            chat.members[uid] = _Member("administrator", rights=full_rights())
        self._chats[chat.id] = chat
        return chat.id

    def link_channel(self, group_id: int, channel_id: int) -> None:
        """Make ``channel_id`` the supergroup's linked channel: its posts are forwarded into the group."""
        group, channel = self._chat_or_fail(group_id), self._chat_or_fail(channel_id)
        if group.type != "supergroup" or channel.type != "channel":
            raise ScenarioError("only a supergroup and a channel can be linked")
        group.linked_chat_id, channel.linked_chat_id = channel.id, group.id

    def set_anonymous(self, chat_id: int, user_id: int, anonymous: bool = True) -> None:
        """An admin turns "remain anonymous" on: their posts come from the group itself."""
        chat = self._chat_or_fail(chat_id)
        m = self._member(chat, user_id)
        if m.status not in ("creator", "administrator"):
            raise ScenarioError(f"user {user_id} is not an admin of chat {chat_id}")
        m.is_anonymous = anonymous

    def post_in_channel(self, channel_id: int, user_id: int, data: bytes | FileRef) -> int | None:
        """An admin posts a photo in a channel; returns the id of its automatic forward in the
        linked group (from the placeholder user 777000, ``is_automatic_forward``), or None."""
        channel = self._chat_or_fail(channel_id)
        if channel.type != "channel" or self._member(channel, user_id).status not in ("creator", "administrator"):
            raise NotPermitted(f"user {user_id} cannot post in channel {channel_id}")
        photo = self._photo(data)
        post = {
            "message_id": channel.next_message_id,
            "date": self._now(),
            "chat": self._chat_json(channel),
            "sender_chat": self._chat_json(channel),
            "photo": photo,
        }
        channel.next_message_id += 1
        channel.messages[post["message_id"]] = post
        group = self._chats.get(channel.linked_chat_id) if channel.linked_chat_id else None
        if group is None:
            return None
        msg = self._new_message(group, TELEGRAM_SERVICE["id"], {"photo": copy.deepcopy(photo)})
        msg["sender_chat"] = self._chat_json(channel)
        msg["is_automatic_forward"] = True
        msg["forward_origin"] = {
            "type": "channel",
            "chat": self._chat_json(channel),
            "message_id": post["message_id"],
            "date": post["date"],
        }
        self._queue_message(group, msg)
        return msg["message_id"]

    def upgrade_group(self, chat_id: int, by_user: int) -> int:
        """The creator upgrades a basic group to a supergroup (a new id, ``-100…``): members and
        rights move; the old group answers every call with the migration error. Queues the two
        service messages Telegram sends: ``migrate_to_chat_id`` in the old group, then
        ``migrate_from_chat_id`` in the new supergroup. Returns the new id."""
        old = self._chat_or_fail(chat_id)
        if old.type != "group" or old.migrated_to is not None:
            raise ScenarioError(f"chat {chat_id} is not a basic group")
        if self._member(old, by_user).status != "creator":
            raise NotPermitted(f"only the creator can upgrade chat {chat_id}")
        n = next(self._supergroup_ids)
        new = _Chat(
            int(f"-100{1_000_000_000 + n}"),
            "supergroup",
            old.title,
            username=old.username,
            members=copy.deepcopy(old.members),
            permissions=dict(old.permissions),
        )
        self._chats[new.id] = new
        gone = self._new_message(old, by_user, {"migrate_to_chat_id": new.id})
        self._queue_message(old, gone)
        old.migrated_to = new.id
        came = self._new_message(new, by_user, {"migrate_from_chat_id": old.id})
        self._queue_message(new, came)
        return new.id

    # --- test-control API: messages ------------------------------------------------------------

    def _may_post_as(self, chat: _Chat, user_id: int, sender_chat: int) -> None:
        """Who may post as a chat: the group's anonymous admins as the group, a channel's admins as the channel."""
        if sender_chat == chat.id:
            m = self._member(chat, user_id)
            if m.status not in ("creator", "administrator") or not m.is_anonymous:
                raise NotPermitted(f"user {user_id} is not an anonymous admin of chat {chat.id}")
            return
        channel = self._chats.get(sender_chat)
        if channel is None or channel.type != "channel":
            raise ScenarioError(f"no channel {sender_chat}: create it with add_channel() first")
        if chat.type != "supergroup":
            raise NotPermitted("only supergroups let members post as a channel")
        if self._member(channel, user_id).status not in ("creator", "administrator"):
            raise NotPermitted(f"user {user_id} cannot post as channel {sender_chat}: not one of its admins")
        if sender_chat in chat.banned_senders:
            raise NotPermitted(f"channel {sender_chat} is banned in chat {chat.id}")

    def _post(
        self,
        chat_id: int,
        user_id: int,
        kind: str,
        content: dict,
        *,
        reply_to: int | None = None,
        forward_from: int | str | None = None,
        media_group_id: str | None = None,
        caption: str | None = None,
        sender_chat: int | None = None,
        quote_from: tuple[int, int] | None = None,
    ) -> int:
        self._user(user_id)
        chat = self._chats.get(chat_id)
        if chat is None and chat_id == user_id and chat_id > 0:
            # a user writing to the bot opens the private chat (and lets the bot answer)
            chat = self._chats[chat_id] = _Chat(chat_id, "private", None)
            chat.members = {user_id: _Member("member"), self.bot_id: _Member("member")}
            self._started.add(user_id)
        if chat is None:
            raise ScenarioError(f"no chat {chat_id}")
        if chat.migrated_to is not None:
            raise NotPermitted(f"chat {chat_id} became supergroup {chat.migrated_to}: post there")
        self._may_post(chat, user_id, kind)
        if sender_chat is not None:
            self._may_post_as(chat, user_id, sender_chat)
        if caption is not None:
            content["caption"] = caption
            entities = _command_entities(caption)
            if entities:
                content["caption_entities"] = entities
        msg = self._new_message(
            chat,
            user_id,
            content,
            reply_to=reply_to,
            forward_from=forward_from,
            media_group_id=media_group_id,
            sender_chat=sender_chat,
            quote_from=quote_from,
        )
        self._queue_message(chat, msg)
        return msg["message_id"]

    def post_text(
        self,
        chat_id: int,
        user_id: int,
        text: str,
        *,
        reply_to: int | None = None,
        forward_from: int | str | None = None,
        sender_chat: int | None = None,
        quote_from: tuple[int, int] | None = None,
    ) -> int:
        """A text message; commands ("/cmd", "/cmd@bot") get bot_command entities.

        ``quote_from``: (chat id, message id) of a message in another chat this one replies to
        (``external_reply``, with that message's media, as clients show it above the reply)."""
        content: dict[str, Any] = {"text": text}
        entities = _command_entities(text)
        if entities:
            content["entities"] = entities
        return self._post(
            chat_id,
            user_id,
            "text",
            content,
            reply_to=reply_to,
            forward_from=forward_from,
            sender_chat=sender_chat,
            quote_from=quote_from,
        )

    def post_photo(
        self,
        chat_id: int,
        user_id: int,
        data: bytes | FileRef,
        *,
        caption: str | None = None,
        media_group_id: str | None = None,
        forward_from: int | str | None = None,
        reply_to: int | None = None,
        spoiler: bool = False,
        sender_chat: int | None = None,
    ) -> int:
        """A compressed photo: PhotoSize list (downscaled JPEGs, smallest first; the last is ``data``).

        ``forward_from``: a user id, a chat id (negative) or a hidden sender's name.
        Undecodable bytes give one PhotoSize of 0x0 holding them.
        """
        content: dict[str, Any] = {"photo": self._photo(data)}
        if spoiler:
            content["has_media_spoiler"] = True
        return self._post(
            chat_id,
            user_id,
            "photo",
            content,
            caption=caption,
            media_group_id=media_group_id,
            forward_from=forward_from,
            reply_to=reply_to,
            sender_chat=sender_chat,
        )

    def post_album(
        self, chat_id: int, user_id: int, items: Iterable[bytes | FileRef], *, caption: str | None = None
    ) -> list[int]:
        """Several photos sharing a media_group_id (the caption goes on the first)."""
        group = str(secrets.randbits(60))
        ids = []
        for k, item in enumerate(items):
            ids.append(
                self.post_photo(chat_id, user_id, item, caption=caption if k == 0 else None, media_group_id=group)
            )
        return ids

    def post_document(
        self,
        chat_id: int,
        user_id: int,
        data: bytes | FileRef,
        *,
        file_name: str = "file.bin",
        mime: str | None = None,
        caption: str | None = None,
        media_group_id: str | None = None,
        forward_from: int | str | None = None,
        reply_to: int | None = None,
        thumbnail: bytes | None = None,
        sender_chat: int | None = None,
    ) -> int:
        """A file sent uncompressed (images sent this way get a thumbnail, as on Telegram).

        ``thumbnail``: the sender's own thumbnail for any file (an image; Telegram keeps a JPEG of
        at most 320 px a side), shown in the chat in place of a generic file icon."""
        document = self._document(data, file_name, mime)
        if thumbnail is not None:
            document["thumbnail"] = self._custom_thumbnail(thumbnail)
        return self._post(
            chat_id,
            user_id,
            "document",
            {"document": document},
            caption=caption,
            media_group_id=media_group_id,
            forward_from=forward_from,
            reply_to=reply_to,
            sender_chat=sender_chat,
        )

    def post_sticker(
        self,
        chat_id: int,
        user_id: int,
        data: bytes | FileRef,
        *,
        is_video: bool = False,
        is_animated: bool = False,
        emoji: str = "🙂",
        set_name: str | None = None,
        forward_from: int | str | None = None,
        reply_to: int | None = None,
        thumbnail: bytes | None = None,
    ) -> int:
        """``thumbnail``: for an animated (Lottie) sticker, the picture Telegram renders from it."""
        mime = "video/webm" if is_video else "application/x-tgsticker" if is_animated else "image/webp"
        ref = self._ref(data, "sticker", mime=mime)
        raw = self._files[ref.file_id].data
        if is_video:
            probe = _probe_video(raw)
            width, height, frame = (probe[0], probe[1], probe[3]) if probe else (512, 512, None)
        elif is_animated:
            width, height, frame = 512, 512, thumbnail
        else:
            width, height = _image_size(raw) or (512, 512)
            frame = raw
        sticker: dict[str, Any] = _file_json(ref)
        sticker.update(
            type="regular", width=width, height=height, is_animated=is_animated, is_video=is_video, emoji=emoji
        )
        if set_name:
            sticker["set_name"] = set_name
        thumb = self._thumbnail(frame, 128)
        if thumb:
            sticker["thumbnail"] = thumb
        return self._post(
            chat_id, user_id, "sticker", {"sticker": sticker}, forward_from=forward_from, reply_to=reply_to
        )

    def post_animation(
        self,
        chat_id: int,
        user_id: int,
        data: bytes | FileRef,
        *,
        file_name: str = "animation.mp4",
        mime: str | None = None,
        caption: str | None = None,
        width: int | None = None,
        height: int | None = None,
        duration: int | None = None,
        forward_from: int | str | None = None,
        reply_to: int | None = None,
        thumbnail: bytes | None = None,
    ) -> int:
        """A GIF/silent video. Like Telegram, the message also carries it as ``document``.

        (Telegram converts GIFs to MP4; the emulator serves the bytes it was given.)
        """
        mime = mime or mimetypes.guess_type(file_name)[0] or "video/mp4"
        animation = self._video_like(data, "animation", mime, file_name, width, height, duration)
        if thumbnail is not None:
            animation["thumbnail"] = self._custom_thumbnail(thumbnail)
        document = {
            k: v
            for k, v in animation.items()
            if k in ("file_id", "file_unique_id", "file_size", "file_name", "mime_type", "thumbnail")
        }
        return self._post(
            chat_id,
            user_id,
            "animation",
            {"animation": animation, "document": document},
            caption=caption,
            forward_from=forward_from,
            reply_to=reply_to,
        )

    def post_video(
        self,
        chat_id: int,
        user_id: int,
        data: bytes | FileRef,
        *,
        caption: str | None = None,
        media_group_id: str | None = None,
        file_name: str | None = None,
        width: int | None = None,
        height: int | None = None,
        duration: int | None = None,
        forward_from: int | str | None = None,
        reply_to: int | None = None,
        thumbnail: bytes | None = None,
        cover: bytes | None = None,
        sender_chat: int | None = None,
    ) -> int:
        """``thumbnail``: the sender's own thumbnail; ``cover``: the video's cover (Bot API
        ``Video.cover``, a PhotoSize list), shown before the video plays."""
        video = self._video_like(data, "video", "video/mp4", file_name, width, height, duration)
        if thumbnail is not None:
            video["thumbnail"] = self._custom_thumbnail(thumbnail)
        if cover is not None:
            video["cover"] = self._photo(cover)
        return self._post(
            chat_id,
            user_id,
            "video",
            {"video": video},
            caption=caption,
            media_group_id=media_group_id,
            forward_from=forward_from,
            reply_to=reply_to,
            sender_chat=sender_chat,
        )

    def post_audio(
        self,
        chat_id: int,
        user_id: int,
        data: bytes | FileRef,
        *,
        file_name: str = "song.mp3",
        title: str | None = None,
        performer: str | None = None,
        thumbnail: bytes | None = None,
        caption: str | None = None,
    ) -> int:
        """A music file; ``thumbnail`` is its cover art (the album cover clients show)."""
        ref = self._ref(data, "audio", mime="audio/mpeg", file_name=file_name)
        audio: dict[str, Any] = {**_file_json(ref), "duration": 1, "mime_type": "audio/mpeg", "file_name": file_name}
        if title:
            audio["title"] = title
        if performer:
            audio["performer"] = performer
        if thumbnail is not None:
            audio["thumbnail"] = self._custom_thumbnail(thumbnail)
        return self._post(chat_id, user_id, "audio", {"audio": audio}, caption=caption)

    def post_video_note(
        self, chat_id: int, user_id: int, data: bytes | FileRef, *, thumbnail: bytes | None = None
    ) -> int:
        """A round video message (square, no caption); ``thumbnail`` replaces the first frame's."""
        note = self._video_like(data, "video_note", "video/mp4", None, None, None, None)
        note = {
            k: v
            for k, v in note.items()
            if k in ("file_id", "file_unique_id", "file_size", "width", "duration", "thumbnail")
        }
        note["length"] = note.pop("width")
        if thumbnail is not None:
            note["thumbnail"] = self._custom_thumbnail(thumbnail)
        return self._post(chat_id, user_id, "video_note", {"video_note": note})

    def _custom_thumbnail(self, image: bytes) -> dict:
        thumb = self._thumbnail(image, THUMBNAIL_SIDE)
        if thumb is None:
            raise ScenarioError("a thumbnail must be an image Telegram can read")
        if thumb["file_size"] > MAX_THUMBNAIL_BYTES:
            raise ScenarioError(f"a thumbnail must be at most {MAX_THUMBNAIL_BYTES} bytes")
        return thumb

    def edit_media(
        self,
        chat_id: int,
        message_id: int,
        new_data: bytes | FileRef,
        kind: str = "photo",
        *,
        edit_date: int | None = None,
    ) -> None:
        """The sender swaps the media of a message; queues edited_message (if the bot may see it).

        ``edit_date``: when (whole seconds, as Telegram gives it); two edits can share one."""
        chat = self._chat_or_fail(chat_id)
        msg = self._user_message(chat, message_id)
        if not any(k in msg for k in _MEDIA_KEYS):
            raise ScenarioError(f"message {message_id} in chat {chat_id} has no media to replace")
        if kind == "photo":
            content: dict[str, Any] = {"photo": self._photo(new_data)}
        elif kind == "document":
            content = {"document": self._document(new_data, "file.bin", None)}
        elif kind == "video":
            content = {"video": self._video_like(new_data, "video", "video/mp4", None, None, None, None)}
        elif kind == "animation":
            animation = self._video_like(new_data, "animation", "video/mp4", "animation.mp4", None, None, None)
            content = {
                "animation": animation,
                "document": {k: v for k, v in animation.items() if k not in ("width", "height", "duration")},
            }
        else:
            raise ScenarioError(f"edit_media cannot make a {kind!r}; use photo, document, video or animation")
        for key in _MEDIA_KEYS:
            msg.pop(key, None)
        msg.update(content)
        msg["edit_date"] = self._now() if edit_date is None else int(edit_date)
        self._changed()
        self._queue_message(chat, msg, "edited_message")

    def edit_text(self, chat_id: int, message_id: int, text: str) -> None:
        """The sender edits the text (or the caption of a media message); queues edited_message."""
        chat = self._chat_or_fail(chat_id)
        msg = self._user_message(chat, message_id)
        field_name = "caption" if any(k in msg for k in _MEDIA_KEYS) else "text"
        msg[field_name] = text
        entities = _command_entities(text)
        entity_key = "caption_entities" if field_name == "caption" else "entities"
        msg.pop(entity_key, None)
        if entities:
            msg[entity_key] = entities
        msg["edit_date"] = self._now()
        self._changed()
        self._queue_message(chat, msg, "edited_message")

    def _user_message(self, chat: _Chat, message_id: int) -> dict:
        msg = chat.messages.get(message_id)
        if msg is None:
            raise ScenarioError(f"chat {chat.id} has no message {message_id}")
        if msg["from"]["id"] == self.bot_id:
            raise ScenarioError("users cannot edit the bot's messages")
        if chat.migrated_to is not None:
            raise NotPermitted(f"chat {chat.id} became supergroup {chat.migrated_to}")
        return msg

    def press_button(
        self, chat_id: int, message_id: int, user_id: int, callback_data: str, *, check: bool = True
    ) -> str:
        """The user presses an inline button of a bot message; returns the callback query id.

        ``check=False`` lets a test send data no button carries (a forged client).
        """
        chat = self._chat_or_fail(chat_id)
        user = self._user(user_id)
        msg = chat.messages.get(message_id)
        if msg is None:
            raise ScenarioError(f"chat {chat_id} has no message {message_id} (deleted?)")
        if check:
            rows = msg.get("reply_markup", {}).get("inline_keyboard", [])
            if not any(b.get("callback_data") == callback_data for row in rows for b in row):
                raise ScenarioError(f"message {message_id} has no button with callback_data {callback_data!r}")
        if self._member(chat, user_id).status in ("left", "kicked") and chat.type != "private":
            raise NotPermitted(f"user {user_id} is not in chat {chat_id}")
        query_id = str(next(self._query_ids))
        self._queries[query_id] = _CallbackQuery(query_id, user_id, chat_id, message_id, callback_data)
        self._queue(
            "callback_query",
            {
                "id": query_id,
                "from": copy.deepcopy(user),
                "chat_instance": chat.instance,
                "message": copy.deepcopy(msg),
                "data": callback_data,
            },
        )
        return query_id

    def callback_answer(self, query_id: str) -> dict | None:
        """What the bot answered to a callback query (None: not answered yet)."""
        query = self._queries.get(query_id)
        if query is None:
            raise ScenarioError(f"no callback query {query_id!r}")
        return copy.deepcopy(query.answer)

    def age_message(self, chat_id: int, message_id: int, hours: float) -> None:
        """Move a message's date into the past (the 48 h deletion rule)."""
        msg = self._chat_or_fail(chat_id).messages.get(message_id)
        if msg is None:
            raise ScenarioError(f"chat {chat_id} has no message {message_id}")
        msg["date"] -= int(hours * 3600)

    def fail_next(
        self,
        method: str,
        *,
        times: int = 1,
        status: int = 429,
        retry_after: int = 1,
        description: str | None = None,
        parameters: dict | None = None,
    ) -> None:
        """Make the next ``times`` calls of ``method`` ("*": any method, "downloadFile": downloads) fail.

        429 answers carry ``parameters.retry_after``; other statuses get the HTTP reason as
        description unless one is given. Nothing changes on a failed call.
        """
        if status == 429:
            description = description or f"Too Many Requests: retry after {retry_after}"
            parameters = {"retry_after": retry_after, **(parameters or {})}
        elif description is None:
            try:
                description = HTTPStatus(status).phrase
            except ValueError:
                description = "Error"
        self._failures.setdefault(method.lower(), []).append(_Failure(status, description, parameters, times))

    def hold(self, method: str) -> None:
        """Calls of ``method`` wait (unanswered, as on a slow link) until ``release(method)``; then
        each is answered in turn, injected failures included."""
        self._held[method.lower()] = asyncio.Event()

    def release(self, method: str) -> None:
        held = self._held.pop(method.lower(), None)
        if held is not None:
            held.set()

    def flood_new_deletes(self, retry_after: int = 1) -> None:
        """From now on, a delete call (deleteMessage or deleteMessages) that names a message no
        delete call named before is answered 429 with ``retry_after`` (and deletes nothing), as a
        group under flood control answers: each message's first delete meets one rate limit."""
        self._flood_after = retry_after

    # --- test-control API: inspection -------------------------------------------------------------

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method.lower() == method.lower()]

    def messages_in(self, chat_id: int) -> list[dict]:
        """The messages in a chat now (deleted ones gone), oldest first."""
        chat = self._chat_or_fail(chat_id)
        return [copy.deepcopy(m) for _, m in sorted(chat.messages.items())]

    def message(self, chat_id: int, message_id: int) -> dict | None:
        msg = self._chat_or_fail(chat_id).messages.get(message_id)
        return copy.deepcopy(msg)

    def deletes_of(self, chat_id: int, message_id: int) -> int:
        """How many delete calls (deleteMessage or deleteMessages) named this message, failed and
        unanswered ones too: counting the messages deleted would hide a second delete of one."""
        return self.delete_attempts.count((chat_id, message_id))

    def deleted_in(self, chat_id: int) -> list[dict]:
        """Messages the bot deleted from a chat, in the order it deleted them."""
        return copy.deepcopy(self._chat_or_fail(chat_id).deleted)

    def sent_to(self, user_id: int) -> list[dict]:
        """Messages the bot sent to a user's private chat (texts and documents), oldest first."""
        chat = self._chats.get(user_id)
        if chat is None:
            return []
        return [copy.deepcopy(m) for _, m in sorted(chat.messages.items()) if m["from"]["id"] == self.bot_id]

    def member(self, chat_id: int, user_id: int) -> dict:
        """The ChatMember JSON getChatMember would return (restrictions and bans show here)."""
        chat = self._chat_or_fail(chat_id)
        self._user(user_id)
        return self._member_json(chat, user_id)

    def commands(self, scope: dict | None = None, language_code: str = "") -> list[dict]:
        return copy.deepcopy(self._commands.get((_scope_key(scope), language_code), []))

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 10, *, what: str | None = None) -> Any:
        """Wait until ``predicate()`` is truthy and return its value, else fail with the recent calls.

        Re-checked on every call the bot makes and every state change, and every 50 ms for
        conditions that depend on state outside the emulator.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value = predicate()
            if value:
                return value
            remaining = deadline - loop.time()
            if remaining <= 0:
                recent = "\n".join(
                    f"  {c.method} {c.status} {_short(c.params)}" + (f" -> {c.description}" if c.description else "")
                    for c in self.calls[-15:]
                )
                raise AssertionError(
                    f"{what or 'condition'} not met within {timeout} s; last calls to the Bot API emulator:\n"
                    f"{recent or '  (none)'}"
                )
            fut = loop.create_future()
            self._watchers.append(fut)
            await asyncio.wait({fut}, timeout=min(remaining, 0.05))
            if not fut.done():
                fut.cancel()

    async def wait_for_call(
        self, method: str, predicate: Callable[[Call], bool] = lambda c: True, timeout: float = 10
    ) -> Call:
        """The first call of ``method`` (that satisfies ``predicate``)."""
        found = await self.wait_for(
            lambda: next((c for c in self.calls_to(method) if predicate(c)), None), timeout, what=f"a {method} call"
        )
        return found

    # --- Bot API methods ---------------------------------------------------------------------------

    def _m_getMe(self, p: dict) -> dict:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": not self.privacy_mode,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def _m_logOut(self, p: dict) -> bool:
        return True

    def _m_close(self, p: dict) -> bool:
        return True

    def _m_deleteWebhook(self, p: dict) -> bool:
        if _bool(p, "drop_pending_updates"):
            self._updates.clear()
        return True

    def _m_getWebhookInfo(self, p: dict) -> dict:
        return {"url": "", "has_custom_certificate": False, "pending_update_count": len(self._updates)}

    async def _m_getUpdates(self, p: dict) -> list[dict]:
        offset = _opt_int(p, "offset")
        limit = min(max(_opt_int(p, "limit") or 100, 1), 100)
        timeout = p.get("timeout", 0) or 0
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool):
            raise _bad("invalid timeout specified")
        allowed = p.get("allowed_updates")
        if allowed is not None:
            if not isinstance(allowed, list) or not all(isinstance(a, str) for a in allowed):
                raise _bad("can't parse allowed updates list")
            self._allowed = frozenset(a for a in allowed if a in ALL_UPDATE_TYPES) or DEFAULT_UPDATES
        if offset is not None:
            if offset < 0:
                del self._updates[: max(len(self._updates) + offset, 0)]
            else:
                self._updates = [u for u in self._updates if u[0] >= offset]
            self._changed()
        # a newer getUpdates terminates an older one, as on the real server
        self._wake_poll("conflict")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + float(timeout)
        while not self._updates and not self._stopping:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            fut = loop.create_future()
            self._poll = fut
            try:
                await asyncio.wait({fut}, timeout=remaining)
            finally:
                if self._poll is fut:
                    self._poll = None
            if fut.done() and fut.result() == "conflict":
                raise ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
                )
            if not fut.done():
                fut.cancel()
        return [{"update_id": uid, kind: copy.deepcopy(payload)} for uid, kind, payload in self._updates[:limit]]

    def _m_sendMessage(self, p: dict) -> dict:
        chat = self._writable_chat(p)
        text, entities = self._formatted(
            p, "text", "entities", MAX_TEXT, empty="message text is empty", too_long="message is too long"
        )
        markup = _inline_markup(p.get("reply_markup"))
        reply_to = self._reply_target(chat, p)
        content: dict[str, Any] = {"text": text}
        if entities:
            content["entities"] = entities
        return self._bot_message(chat, content, markup, reply_to)

    def _m_sendDocument(self, p: dict) -> dict:
        chat = self._writable_chat(p)
        document = p.get("document")
        if document is None or document == "":
            raise _bad("there is no document in the request")
        if isinstance(document, Upload):
            if not document.data:
                raise _bad("file must be non-empty")
            name = document.filename or "document"
            mime = document.content_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
            ref = self.upload(document.data, kind="document", mime=mime, file_name=name)
        elif isinstance(document, str) and document in self._files:
            ref = self._files[document].ref
        else:
            raise _bad("wrong file identifier/HTTP URL specified")
        caption, entities = self._formatted(
            p, "caption", "caption_entities", MAX_CAPTION, empty=None, too_long="message caption is too long"
        )
        markup = _inline_markup(p.get("reply_markup"))
        reply_to = self._reply_target(chat, p)
        doc = _file_json(ref)
        doc["file_name"] = ref.file_name or "document"
        doc["mime_type"] = ref.mime or "application/octet-stream"
        content: dict[str, Any] = {"document": doc}
        if caption:
            content["caption"] = caption
        if entities:
            content["caption_entities"] = entities
        return self._bot_message(chat, content, markup, reply_to)

    def _m_editMessageText(self, p: dict) -> dict:
        chat, msg = self._bot_own_message(p)
        if "text" not in msg:
            raise _bad("there is no text in the message to edit")
        text, entities = self._formatted(
            p, "text", "entities", MAX_TEXT, empty="message text is empty", too_long="message is too long"
        )
        markup = _inline_markup(p.get("reply_markup"))
        new = {"text": text, "entities": entities or None, "reply_markup": markup}
        self._apply_edit(msg, new)
        return copy.deepcopy(msg)

    def _m_editMessageReplyMarkup(self, p: dict) -> dict:
        chat, msg = self._bot_own_message(p)
        self._apply_edit(msg, {"reply_markup": _inline_markup(p.get("reply_markup"))})
        return copy.deepcopy(msg)

    def _apply_edit(self, msg: dict, new: dict) -> None:
        # leaving out reply_markup removes the keyboard, as on the real API
        if all(msg.get(k) == v for k, v in new.items()):
            raise _bad(
                "message is not modified: specified new message content and reply markup are exactly "
                "the same as a current content and reply markup of the message"
            )
        for key, value in new.items():
            if value is None:
                msg.pop(key, None)
            else:
                msg[key] = value
        msg["edit_date"] = self._now()
        self._changed()

    def _bot_own_message(self, p: dict) -> tuple[_Chat, dict]:
        if "inline_message_id" in p:
            raise _bad("message to edit not found")
        chat = self._readable_chat(p)
        mid = _req_int(p, "message_id", "message identifier is not specified")
        msg = chat.messages.get(mid)
        if msg is None:
            raise _bad("message to edit not found")
        if msg["from"]["id"] != self.bot_id:
            raise _bad("message can't be edited")
        return chat, msg

    def _m_deleteMessage(self, p: dict) -> bool:
        chat = self._readable_chat(p)
        mid = _req_int(p, "message_id", "message identifier is not specified")
        msg = chat.messages.get(mid)
        if msg is None:
            raise _bad("message to delete not found")
        self._check_deletable(chat, msg)
        self._delete(chat, mid)
        return True

    def _m_deleteMessages(self, p: dict) -> bool:
        chat = self._readable_chat(p)
        ids = p.get("message_ids")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise _bad("message_ids is empty" if not ids else "invalid message_ids specified")
        if len(ids) > 100:
            raise _bad("too many messages to delete")
        present = [i for i in dict.fromkeys(ids) if i in chat.messages]  # missing ones are skipped
        for mid in present:  # all or nothing: check every message before deleting any
            self._check_deletable(chat, chat.messages[mid])
        for mid in present:
            self._delete(chat, mid)
        return True

    def _check_deletable(self, chat: _Chat, msg: dict) -> None:
        if msg["from"]["id"] != self.bot_id and chat.type != "private":
            bot = self._member(chat, self.bot_id)
            if chat.type == "group":
                allowed = bot.status in ("creator", "administrator")
            else:
                allowed = bot.status == "creator" or (
                    bot.status == "administrator" and bot.rights.get("can_delete_messages", False)
                )
            if not allowed:
                raise _bad("message can't be deleted")
        if self._now() - msg["date"] >= DELETE_WINDOW_S:
            raise _bad("message can't be deleted for everyone")

    def _delete(self, chat: _Chat, message_id: int) -> None:
        chat.deleted.append(chat.messages.pop(message_id))
        self._changed()

    def _m_getFile(self, p: dict) -> dict:
        file_id = p.get("file_id")
        if not file_id:
            raise _bad("file_id is empty")
        stored = self._files.get(str(file_id))
        if stored is None:
            raise _bad("invalid file_id")
        if stored.ref.size > MAX_DOWNLOAD_BYTES:
            raise _bad("file is too big")
        ref = stored.ref
        return {
            "file_id": ref.file_id,
            "file_unique_id": ref.file_unique_id,
            "file_size": ref.size,
            "file_path": ref.file_path,
        }

    def _m_getChat(self, p: dict) -> dict:
        chat = self._readable_chat(p)
        out = self._chat_json(chat)
        out.update(
            accent_color_id=0,
            max_reaction_count=11,
            accepted_gift_types={
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        )
        if chat.type != "private":
            out["permissions"] = dict(chat.permissions)
        if chat.linked_chat_id is not None:
            out["linked_chat_id"] = chat.linked_chat_id
        return out

    def _m_getChatAdministrators(self, p: dict) -> list[dict]:
        chat = self._readable_chat(p)
        if chat.type == "private":
            raise _bad("there are no administrators in the private chat")
        return [
            self._member_json(chat, uid)
            for uid in list(chat.members)
            if self._member(chat, uid).status in ("creator", "administrator")
        ]

    def _m_getChatMember(self, p: dict) -> dict:
        chat = self._readable_chat(p)
        user_id = self._user_param(p)
        return self._member_json(chat, user_id)

    def _m_getChatMemberCount(self, p: dict) -> int:
        chat = self._readable_chat(p)
        return sum(1 for uid in list(chat.members) if _counts(self._member(chat, uid)))

    def _m_restrictChatMember(self, p: dict) -> bool:
        chat = self._readable_chat(p)
        if chat.type != "supergroup":
            raise _bad("method is available only for supergroups")
        self._need_restrict_right(chat)
        user_id = self._user_param(p)
        self._protect_admins(chat, user_id, "can't restrict self")
        raw = p.get("permissions")
        if not isinstance(raw, dict):
            raise _bad("can't parse permissions JSON object" if raw is not None else "permissions is empty")
        perms = {k: bool(raw.get(k, False)) for k in PERMISSIONS}
        if not _bool(p, "use_independent_chat_permissions"):
            if perms["can_send_other_messages"] or perms["can_add_web_page_previews"]:
                perms.update({k: True for k in (*_MEDIA_PERMISSIONS, "can_send_messages")})
            if perms["can_send_polls"]:
                perms["can_send_messages"] = True
        until = self._until(p)
        current = self._member(chat, user_id)
        if perms == chat.permissions:
            new = _Member("member") if current.status != "left" else _Member("left")
        else:
            new = _Member(
                "restricted", permissions=perms, until_date=until, is_member=current.status not in ("left", "kicked")
            )
        self._set_member(chat, user_id, new, by=self.bot_id)
        return True

    def _m_banChatMember(self, p: dict) -> bool:
        chat = self._readable_chat(p)
        if chat.type == "private":
            raise _bad("chat member status can't be changed in private chats")
        self._need_restrict_right(chat)
        user_id = self._user_param(p)
        self._protect_admins(chat, user_id, "can't remove self")
        until = self._until(p) if chat.type == "supergroup" else 0  # bans in basic groups are forever
        self._set_member(chat, user_id, _Member("kicked", until_date=until), by=self.bot_id)
        return True

    def _m_unbanChatMember(self, p: dict) -> bool:
        chat = self._readable_chat(p)
        if chat.type == "private":
            raise _bad("chat member status can't be changed in private chats")
        self._need_restrict_right(chat)
        user_id = self._user_param(p)
        status = self._member(chat, user_id).status
        if status == "kicked":
            self._set_member(chat, user_id, _Member("left"), by=self.bot_id)
        elif status in ("member", "restricted") and not _bool(p, "only_if_banned"):
            # without only_if_banned, unban guarantees the user is out of the chat afterwards
            self._protect_admins(chat, user_id, "can't remove self")
            self._set_member(chat, user_id, _Member("left"), by=self.bot_id)
        elif status in ("creator", "administrator") and not _bool(p, "only_if_banned"):
            self._protect_admins(chat, user_id, "can't remove self")
        return True

    def _m_banChatSenderChat(self, p: dict) -> bool:
        chat, sender = self._sender_chat_param(p)
        chat.banned_senders.add(sender)
        return True

    def _m_unbanChatSenderChat(self, p: dict) -> bool:
        chat, sender = self._sender_chat_param(p)
        chat.banned_senders.discard(sender)
        return True

    def _sender_chat_param(self, p: dict) -> tuple[_Chat, int]:
        chat = self._readable_chat(p)
        if chat.type != "supergroup":
            raise _bad("method is available only for supergroups and channel")
        self._need_restrict_right(chat)
        sender = p.get("sender_chat_id")
        if sender is None or sender == "":
            raise _bad("sender_chat_id is empty")
        if not isinstance(sender, int) or isinstance(sender, bool) or sender >= 0:
            raise _bad("invalid sender_chat_id specified")  # a user is banned with banChatMember
        if sender == chat.id:
            raise _bad("can't ban self")
        if sender not in self._chats:
            raise _bad("chat not found")
        return chat, sender

    def _need_restrict_right(self, chat: _Chat) -> None:
        bot = self._member(chat, self.bot_id)
        ok = bot.status == "creator" or (
            bot.status == "administrator" and (chat.type == "group" or bot.rights.get("can_restrict_members"))
        )
        if not ok:
            raise _bad("not enough rights to restrict/unrestrict chat member")

    def _protect_admins(self, chat: _Chat, user_id: int, self_message: str) -> None:
        if user_id == self.bot_id:
            raise _bad(self_message)
        status = self._member(chat, user_id).status
        if status == "creator":
            raise _bad("can't remove chat owner")
        if status == "administrator":
            raise _bad("user is an administrator of the chat")

    def _until(self, p: dict) -> int:
        until = p.get("until_date")
        if until is None or until == 0:
            return 0
        if not isinstance(until, int) or isinstance(until, bool):
            raise _bad("invalid until_date specified")
        if until < self._now():
            # the real API silently treats a past until_date as "forever"; Vigil must never send one
            raise _bad("until_date is in the past")
        return until

    def _m_answerCallbackQuery(self, p: dict) -> bool:
        query = self._queries.get(str(p.get("callback_query_id", "")))
        if query is None or query.answer is not None:
            raise _bad("query is too old and response timeout expired or query ID is invalid")
        text = p.get("text")
        if text is not None and len(str(text)) > 200:
            raise _bad("MESSAGE_TOO_LONG")
        query.answer = {"text": text, "show_alert": _bool(p, "show_alert"), "url": p.get("url")}
        self._changed()
        return True

    def _m_setMyCommands(self, p: dict) -> bool:
        commands = p.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise _bad("can't parse commands JSON object")
        for command in commands:
            if not isinstance(command, dict):
                raise _bad("can't parse BotCommand")
            if not re.fullmatch(r"[a-z0-9_]{1,32}", str(command.get("command", ""))):
                raise _bad("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", "")).strip()) <= 256:
                raise _bad(
                    "command description is empty"
                    if not command.get("description")
                    else "command description is too long"
                )
        key = (self._scope_param(p), str(p.get("language_code") or ""))
        self._commands[key] = [{"command": c["command"], "description": c["description"]} for c in commands]
        return True

    def _m_getMyCommands(self, p: dict) -> list[dict]:
        return copy.deepcopy(self._commands.get((self._scope_param(p), str(p.get("language_code") or "")), []))

    def _m_deleteMyCommands(self, p: dict) -> bool:
        self._commands.pop((self._scope_param(p), str(p.get("language_code") or "")), None)
        return True

    def _scope_param(self, p: dict) -> str:
        scope = p.get("scope")
        if scope is None:
            return _scope_key(None)
        if not isinstance(scope, dict) or scope.get("type") not in _COMMAND_SCOPES:
            raise _bad("can't parse BotCommandScope")
        if "chat_id" in scope and scope["chat_id"] not in self._chats:
            raise _bad("chat not found")
        return _scope_key(scope)

    def _m_sendChatAction(self, p: dict) -> bool:
        self._writable_chat(p)
        if p.get("action") not in _CHAT_ACTIONS:
            raise _bad("wrong parameter action in request")
        return True

    def _m_leaveChat(self, p: dict) -> bool:
        chat = self._readable_chat(p)
        if chat.type == "private":
            raise _bad("chat not found")
        self._set_member(chat, self.bot_id, _Member("left"), by=self.bot_id)
        return True

    # --- method helpers -----------------------------------------------------------------------------

    def _chat_param(self, p: dict) -> tuple[int, _Chat | None]:
        raw = p.get("chat_id")
        if raw is None or raw == "":
            raise _bad("chat_id is empty")
        if isinstance(raw, str) and raw.startswith("@"):
            chat = next((c for c in self._chats.values() if c.username and c.username.lower() == raw[1:].lower()), None)
            if chat is None:
                raise _bad("chat not found")
            return chat.id, chat
        if not isinstance(raw, int) or isinstance(raw, bool):
            raise _bad("chat not found")
        return raw, self._chats.get(raw)

    def _readable_chat(self, p: dict) -> _Chat:
        """A chat the bot can act on: known to it and the bot still in it."""
        chat_id, chat = self._chat_param(p)
        if chat is None:
            if chat_id in self._users and chat_id > 0:
                raise _forbidden("bot can't initiate conversation with a user")
            raise _bad("chat not found")
        if chat.type == "private":
            if chat.id in self._blocked:
                raise _forbidden("bot was blocked by the user")
            return chat
        if chat.migrated_to is not None:
            raise ApiError(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                {"migrate_to_chat_id": chat.migrated_to},
            )
        label = "supergroup chat" if chat.type == "supergroup" else "group chat"
        status = self._member(chat, self.bot_id).status
        if status == "kicked":
            raise _forbidden(f"bot was kicked from the {label}")
        if status == "left":
            raise _forbidden(f"bot is not a member of the {label}")
        return chat

    def _writable_chat(self, p: dict) -> _Chat:
        chat = self._readable_chat(p)
        bot = self._member(chat, self.bot_id)
        if bot.status == "restricted" and not bot.permissions.get("can_send_messages"):
            raise _bad("not enough rights to send text messages to the chat")
        return chat

    def _user_param(self, p: dict) -> int:
        user_id = p.get("user_id")
        if user_id is None or user_id == "":
            raise _bad("user_id is empty")
        if not isinstance(user_id, int) or isinstance(user_id, bool) or user_id <= 0:
            raise _bad("invalid user_id specified")
        if user_id not in self._users:
            raise _bad("user not found")
        return user_id

    def _creator(self, chat: _Chat) -> int:
        return next((uid for uid, m in chat.members.items() if m.status == "creator"), self.bot_id)

    def _formatted(
        self, p: dict, name: str, entities_name: str, limit: int, *, empty: str | None, too_long: str
    ) -> tuple[str, list[dict]]:
        raw = p.get(name)
        if raw is None or raw == "":
            if empty is not None:
                raise _bad(empty)
            return "", []
        text = str(raw)
        mode = p.get("parse_mode")
        explicit = p.get(entities_name)
        if explicit is not None:
            if not isinstance(explicit, list) or not all(
                isinstance(e, dict) and {"type", "offset", "length"} <= e.keys() for e in explicit
            ):
                raise _bad(f"can't parse {entities_name} JSON object")
            entities = [dict(e) for e in explicit]
        elif mode:
            parser = _PARSERS.get(str(mode).lower())
            if parser is None:
                raise _bad("unsupported parse_mode")
            try:
                text, entities = parser(text)
            except _ParseError as err:
                raise _bad(f"can't parse entities: {err}") from None
        else:
            entities = []
        text, entities = _strip(text, entities)
        if not text and empty is not None:
            raise _bad(empty)
        if _u16(text) > limit:
            raise _bad(too_long)
        entities.sort(key=lambda e: (e["offset"], -e["length"]))
        return text, entities

    def _reply_target(self, chat: _Chat, p: dict) -> dict | None:
        params = p.get("reply_parameters")
        if params is None and p.get("reply_to_message_id") is not None:
            params = {
                "message_id": p["reply_to_message_id"],
                "allow_sending_without_reply": _bool(p, "allow_sending_without_reply"),
            }
        if params is None:
            return None
        if not isinstance(params, dict) or not isinstance(params.get("message_id"), int):
            raise _bad("can't parse reply parameters JSON object")
        target_chat = chat
        if params.get("chat_id") is not None and params["chat_id"] != chat.id:
            target_chat = self._chats.get(params["chat_id"])
            if target_chat is None:
                raise _bad("chat not found")
        target = target_chat.messages.get(params["message_id"])
        if target is None:
            if params.get("allow_sending_without_reply"):
                return None
            raise _bad("message to be replied not found")
        return target

    def _bot_message(self, chat: _Chat, content: dict, markup: dict | None, reply_to: dict | None) -> dict:
        msg: dict[str, Any] = {
            "message_id": chat.next_message_id,
            "date": self._now(),
            "chat": self._chat_json(chat),
            "from": copy.deepcopy(self.bot_user),
        }
        chat.next_message_id += 1
        if reply_to is not None:
            msg["reply_to_message"] = self._replied(reply_to)
        msg.update(content)
        if markup is not None:
            msg["reply_markup"] = markup
        chat.messages[msg["message_id"]] = msg
        self._changed()
        return copy.deepcopy(msg)


# --- small pure helpers ---------------------------------------------------------------------------


def _decode_form_value(key: str, value: str) -> Any:
    # PTB JSON-encodes every non-string value; the Bot API decodes by parameter type
    if key in _STRING_PARAMS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _opt_int(p: dict, name: str) -> int | None:
    value = p.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(f"invalid {name} specified")
    return value


def _is_int_like(value: object) -> bool:
    """An integer, or the decimal text of one (chat ids may come as strings)."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, str) and value.lstrip("-").isdigit())


def _req_int(p: dict, name: str, missing: str) -> int:
    value = _opt_int(p, name)
    if value is None:
        raise _bad(missing)
    return value


def _bool(p: dict, name: str) -> bool:
    value = p.get(name)
    if isinstance(value, str):
        return value.lower() in ("true", "1")
    return bool(value)


def _counts(m: _Member) -> bool:
    return m.status in ("creator", "administrator", "member") or (m.status == "restricted" and m.is_member)


def _checked_rights(rights: dict[str, bool]) -> dict[str, bool]:
    unknown = set(rights) - set(ADMIN_RIGHTS)
    if unknown:
        raise ScenarioError(f"unknown administrator rights {sorted(unknown)}; known: {', '.join(ADMIN_RIGHTS)}")
    return {**{r: False for r in ADMIN_RIGHTS}, **{k: bool(v) for k, v in rights.items()}, "can_manage_chat": True}


def _bot_member(rights: dict[str, bool] | None) -> _Member:
    return _Member("member") if rights is None else _Member("administrator", rights=_checked_rights(rights))


def _file_json(ref: FileRef) -> dict:
    return {"file_id": ref.file_id, "file_unique_id": ref.file_unique_id, "file_size": ref.size}


def _photo_size(ref: FileRef, width: int, height: int) -> dict:
    return {**_file_json(ref), "width": width, "height": height}


def _scope_key(scope: dict | None) -> str:
    return json.dumps(scope or {"type": "default"}, sort_keys=True)


def _inline_markup(markup: Any) -> dict | None:
    """Validate reply_markup; return the inline keyboard a message keeps (other keyboards: None)."""
    if markup is None or markup == "":
        return None
    if not isinstance(markup, dict):
        raise _bad("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" not in markup:
        if {"keyboard", "remove_keyboard", "force_reply"} & markup.keys():
            return None
        raise _bad("can't parse reply keyboard markup JSON object")
    rows = markup["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise _bad("can't parse inline keyboard button: InlineKeyboardMarkup must be an Array of Arrays")
    clean_rows = []
    for row in rows:
        clean = []
        for button in row:
            if not isinstance(button, dict) or not isinstance(button.get("text"), str) or not button["text"]:
                raise _bad("can't parse inline keyboard button: Text must be non-empty")
            actions = [a for a in _BUTTON_ACTIONS if a in button]
            if not actions:
                raise _bad("text buttons are unallowed in the inline keyboard")
            if len(actions) > 1:
                raise _bad("can't parse inline keyboard button: exactly one of the optional fields must be used")
            if "callback_data" in button:
                data = button["callback_data"]
                if not isinstance(data, str) or not 1 <= len(data.encode("utf-8")) <= MAX_CALLBACK_DATA:
                    raise _bad("BUTTON_DATA_INVALID")
            if "url" in button and not re.match(r"^(https?|tg)://\S+$", str(button["url"])):
                raise _bad(f"inline keyboard button URL '{button['url']}' is invalid: Wrong HTTP URL")
            clean.append(dict(button))
        if clean:
            clean_rows.append(clean)
    return {"inline_keyboard": clean_rows}


def _short(params: dict) -> str:
    def one(v: Any) -> str:
        if isinstance(v, Upload):
            return f"<upload {v.filename} {len(v.data)} B>"
        s = json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else v
        return s if len(s) <= 60 else s[:57] + "..."

    return "{" + ", ".join(f"{k}={one(v)}" for k, v in params.items()) + "}"


# --- standalone ------------------------------------------------------------------------------------


async def _serve_forever(port: int, token: str | None) -> None:
    emulator = BotApiEmulator(token, port=port)
    url = await emulator.start()
    print(f"{url} {emulator.token}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await emulator.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve an (empty) Telegram Bot API emulator on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=0, help="port (0: a free one)")
    parser.add_argument("--token", default=None, help="bot token (default: a random one)")
    args = parser.parse_args(argv)
    asyncio.run(_serve_forever(args.port, args.token))


if __name__ == "__main__":
    main()
