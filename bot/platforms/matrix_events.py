"""Reading Matrix events (as plain JSON dicts) into what Vigil needs, and writing Vigil's messages.

Everything here is pure: no network, no client state, so it is easy to test on its own.
Events are read from their JSON (``event.source`` in matrix-nio, decrypted where it was
encrypted), which keeps plain and end-to-end encrypted rooms on one path.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import PurePath
from typing import Any, Mapping, Sequence
from urllib.parse import urlparse

from bot.events import MediaRef
from bot.platforms.base import Button, OutgoingMessage

MEDIA_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic", ".heif", ".avif", ".mp4", ".webm", ".mov", ".mkv"}
COMMAND_PREFIX = "!vigil"
# a button's data ("del:12", "set:!room:mode:off") typed as a command: a word, a colon, the rest
BUTTON_DATA = re.compile(r"^[a-z]+:\S+$")
KEYCAPS = tuple(f"{d}\ufe0f\u20e3" for d in "123456789") + ("\U0001f51f",)  # 1️⃣ … 9️⃣ 🔟


def parse_mxc(uri: str) -> tuple[str, str]:
    """``mxc://server/media_id`` -> (server, media_id); ValueError for anything else."""
    parsed = urlparse(uri or "")
    media_id = parsed.path.lstrip("/")
    if parsed.scheme != "mxc" or not parsed.netloc or not media_id or "/" in media_id:
        raise ValueError(f"not an mxc://server/media_id URI: {uri!r}")
    return parsed.netloc, media_id


# --- media ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PostedMedia:
    """The media one event shows, and which message it belongs to."""

    message_id: str  # the event to redact: the original one for an edit
    event_id: str  # the event that carried this media (the edit itself for an edit)
    media: MediaRef
    variant: str  # "", or "edit:<event id>" when an edit swapped the media in
    sender: str
    posted_at: datetime


def _kind(event_type: str, content: Mapping[str, Any]) -> str | None:
    """Vigil's media kind for this content, or None when it shows no image or video."""
    if event_type == "m.sticker":
        return "sticker"
    msgtype = content.get("msgtype")
    info = content.get("info") if isinstance(content.get("info"), Mapping) else {}
    mime = str(info.get("mimetype") or (content.get("file") or {}).get("mimetype") or "").lower()
    if msgtype == "m.image":
        return "image"
    if msgtype == "m.video":
        return "video"
    if msgtype == "m.file":
        name = str(content.get("filename") or content.get("body") or "")
        if mime.startswith(("image/", "video/")) or PurePath(name).suffix.lower() in MEDIA_SUFFIXES:
            return "document"
    return None


def media_ref(event_type: str, content: Mapping[str, Any]) -> MediaRef | None:
    """The media in one message content (plain ``url`` or encrypted ``file``), with what a restart needs."""
    if not isinstance(content, Mapping):
        return None
    kind = _kind(event_type, content)
    if kind is None:
        return None
    info = content.get("info") if isinstance(content.get("info"), Mapping) else {}
    size = info.get("size")
    size = size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None
    mime = info.get("mimetype") if isinstance(info.get("mimetype"), str) else None
    file = content.get("file")
    if isinstance(file, Mapping):
        url = file.get("url")
        key = (file.get("key") or {}).get("k") if isinstance(file.get("key"), Mapping) else None
        sha = (file.get("hashes") or {}).get("sha256") if isinstance(file.get("hashes"), Mapping) else None
        iv = file.get("iv")
        if not all(isinstance(v, str) and v for v in (url, key, sha, iv)):
            return None  # an encrypted file without its keys cannot be opened by anyone
        try:
            parse_mxc(url)
        except ValueError:
            return None
        mime = mime or (file.get("mimetype") if isinstance(file.get("mimetype"), str) else None)
        extra = {"mxc": url, "encrypted": {"key": key, "iv": iv, "sha256": sha}}
        return MediaRef(kind, url, size, mime, extra)
    url = content.get("url")
    if not isinstance(url, str):
        return None
    try:
        parse_mxc(url)
    except ValueError:
        return None
    return MediaRef(kind, url, size, mime, {"mxc": url})


def relation(content: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(rel_type, event_id) of an m.relates_to, or (None, None)."""
    rel = content.get("m.relates_to") if isinstance(content, Mapping) else None
    if not isinstance(rel, Mapping):
        return None, None
    rel_type, target = rel.get("rel_type"), rel.get("event_id")
    return (rel_type if isinstance(rel_type, str) else None), (target if isinstance(target, str) else None)


def posted_media(source: Mapping[str, Any]) -> PostedMedia | None:
    """The media an m.room.message / m.sticker event shows; an edit that swaps media counts too."""
    event_type = source.get("type")
    if event_type not in ("m.room.message", "m.sticker"):
        return None
    content = source.get("content")
    if not isinstance(content, Mapping):
        return None
    event_id = str(source.get("event_id") or "")
    ts = source.get("origin_server_ts")
    ts = ts if isinstance(ts, int) and ts > 0 else 0
    posted_at = datetime.fromtimestamp(ts / 1000, timezone.utc) if ts else datetime.now(timezone.utc)
    rel_type, target = relation(content)
    if rel_type == "m.replace" and target:
        new = content.get("m.new_content")
        media = media_ref(event_type, new) if isinstance(new, Mapping) else None
        if media is None:
            return None  # a text edit, or an edit without new content
        # an edit is known by its own event id: timestamps can be equal or missing
        return PostedMedia(target, event_id, media, f"edit:{event_id}", str(source.get("sender") or ""), posted_at)
    media = media_ref(event_type, content)
    if media is None:
        return None
    return PostedMedia(event_id, event_id, media, "", str(source.get("sender") or ""), posted_at)


def mxcs_of(source: Mapping[str, Any]) -> list[str]:
    """Every media URI an event carries (content, new content of an edit, thumbnails)."""
    found: list[str] = []

    def visit(content: Any) -> None:
        if not isinstance(content, Mapping):
            return
        for holder in (content, content.get("file"), (content.get("info") or {}) if isinstance(content.get("info"), Mapping) else {}):
            if not isinstance(holder, Mapping):
                continue
            for key in ("url", "thumbnail_url"):
                value = holder.get(key)
                if isinstance(value, str) and value.startswith("mxc://") and value not in found:
                    found.append(value)
        info = content.get("info")
        if isinstance(info, Mapping) and isinstance(info.get("thumbnail_file"), Mapping):
            value = info["thumbnail_file"].get("url")
            if isinstance(value, str) and value.startswith("mxc://") and value not in found:
                found.append(value)
        visit(content.get("m.new_content"))

    visit(source.get("content"))
    return found


# --- text: commands and reactions -----------------------------------------------------------


def plain_body(content: Mapping[str, Any]) -> str:
    """The typed text of a message, without the quoted fallback of a reply."""
    body = content.get("body") if isinstance(content, Mapping) else None
    if not isinstance(body, str):
        return ""
    lines = body.split("\n")
    if lines and lines[0].startswith("> "):
        # a reply fallback: "> <@someone> quoted…" lines, a blank line, then the reply
        while lines and lines[0].startswith(">"):
            lines.pop(0)
        while lines and not lines[0].strip():
            lines.pop(0)
    return "\n".join(lines).strip()


@dataclass(frozen=True)
class Typed:
    """A `!vigil …` message: a command, or a button's data typed out."""

    verb: str
    args: tuple[str, ...]
    button: str | None = None  # the data of a button, when the message names one


def parse_command(text: str, *, private: bool) -> Typed | None:
    """``!vigil mode off`` -> vigil (mode, off); ``!vigil block`` -> block; ``!vigil del:12`` -> a button.

    In a direct room the first word is the verb itself (start, groups, help), as Telegram's
    /start and /groups.
    """
    words = text.split()
    if not words or words[0].lower() != COMMAND_PREFIX:
        return None
    rest = words[1:]
    if len(rest) == 1 and BUTTON_DATA.match(rest[0]):
        return Typed("button", (), rest[0])
    if not rest:
        return Typed("vigil", ())
    head = rest[0].lower()
    if private:
        return Typed(head, tuple(rest[1:]))
    if head in ("block", "allow"):
        return Typed(head, tuple(rest[1:]))
    return Typed("vigil", tuple(rest))


def reply_target(content: Mapping[str, Any]) -> str | None:
    rel = content.get("m.relates_to") if isinstance(content, Mapping) else None
    reply = rel.get("m.in_reply_to") if isinstance(rel, Mapping) else None
    target = reply.get("event_id") if isinstance(reply, Mapping) else None
    return target if isinstance(target, str) else None


def reaction(source: Mapping[str, Any]) -> tuple[str, str] | None:
    """(target event id, key) of an m.reaction, or None."""
    if source.get("type") != "m.reaction":
        return None
    rel = (source.get("content") or {}).get("m.relates_to")
    if not isinstance(rel, Mapping) or rel.get("rel_type") != "m.annotation":
        return None
    target, key = rel.get("event_id"), rel.get("key")
    if not isinstance(target, str) or not isinstance(key, str):
        return None
    return target, key


def same_key(a: str, b: str) -> bool:
    """Reaction keys compared without the emoji variation selector some clients drop."""
    return a.replace("\ufe0f", "") == b.replace("\ufe0f", "")


# --- writing ------------------------------------------------------------------------------------


# The core writes commands the Telegram way; on Matrix a leading "/" is a client command (Element
# would not even send "/vigil"), so Vigil's commands are spelled "!vigil …" here.
_SLASH_COMMAND = re.compile(r"(?<![\w/])/(vigil|block|allow|groups|help|start)\b")
_AS_MATRIX = {"vigil": "!vigil", "block": "!vigil block", "allow": "!vigil allow", "groups": "!vigil groups", "help": "!vigil help", "start": "!vigil start"}


def matrix_commands(text: str) -> str:
    """'/vigil mode off' -> '!vigil mode off', '/block' -> '!vigil block' (URLs and paths are left alone)."""
    return _SLASH_COMMAND.sub(lambda m: _AS_MATRIX[m.group(1)], text)


def button_choices(buttons: Sequence[Sequence[Button]]) -> list[tuple[str | None, Button]]:
    """Each button with its reaction key (the first ten get 1️⃣…🔟; the rest are typed only)."""
    flat = [b for row in buttons for b in row]
    return [(KEYCAPS[i] if i < len(KEYCAPS) else None, b) for i, b in enumerate(flat)]


@dataclass(frozen=True)
class MatrixMessage:
    content: dict[str, Any]
    keys: dict[str, str]  # reaction key -> button data


def render(message: OutgoingMessage, *, notice: bool, choose_line: str) -> MatrixMessage:
    """An OutgoingMessage as Matrix content: plain body, HTML, and buttons as reactions or commands."""
    text = matrix_commands(message.text)
    markup = matrix_commands(message.html if message.html is not None else html.escape(message.text, quote=False))
    keys: dict[str, str] = {}
    choices = button_choices(message.buttons)
    if choices:
        plain_lines, html_lines = [choose_line], [html.escape(choose_line, quote=False)]
        for key, button in choices:
            command = f"{COMMAND_PREFIX} {button.data}"
            prefix = f"{key} " if key else "• "
            plain_lines.append(f"{prefix}{button.label} — {command}")
            html_lines.append(f"{prefix}<b>{html.escape(button.label, quote=False)}</b> — <code>{html.escape(command, quote=False)}</code>")
            if key:
                keys[key] = button.data
        text = f"{text}\n\n" + "\n".join(plain_lines)
        markup = f"{markup}\n\n" + "\n".join(html_lines)
    content = {
        "msgtype": "m.notice" if notice else "m.text",
        "body": text,
        "format": "org.matrix.custom.html",
        # the renderer writes line breaks as newlines (Telegram style); Matrix HTML needs <br>
        "formatted_body": markup.replace("\n", "<br>\n"),
    }
    return MatrixMessage(content, keys)
