"""Reading Matrix events (as plain JSON dicts) into what Vigil needs, and writing Vigil's messages.

Everything here is pure: no network, no client state, so it is easy to test on its own.
Events are read from their JSON (``event.source`` in matrix-nio, decrypted where it was
encrypted), which keeps plain and end-to-end encrypted rooms on one path.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from bot.events import MediaRef
from bot.platforms import matrix_bounds as bounds
from bot.platforms.base import Button, OutgoingMessage
from bot.platforms.matrix_pictures import (
    Picture,
    media_ref,  # noqa: F401 - read by tests and tools from here
    pictures_of,
    reaction_picture,
    variant_of,
)

COMMAND_PREFIX = "!vigil"
# a button's data ("del:12", "set:!room:mode:off") typed as a command: a word, a colon, the rest
BUTTON_DATA = re.compile(r"^[a-z]+:\S+$")
KEYCAPS = tuple(f"{d}\ufe0f\u20e3" for d in "123456789") + ("\U0001f51f",)  # 1️⃣ … 9️⃣ 🔟


# --- media ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PostedMedia:
    """One picture one event shows, and which message it belongs to."""

    message_id: str  # the event to redact: the original one for an edit (or the reaction itself)
    event_id: str  # the event that carried this picture (the edit itself for an edit)
    media: MediaRef
    variant: str  # composed by matrix_pictures.variant_of: "", "thumb", "inline:0", "edit:<id>", "edit:<id>/thumb" …
    sender: str
    posted_at: datetime
    edit_of: str | None = None  # the message an edit replaces (message_id then), None for a message of its own
    role: str = ""  # which picture of the event: "" its file, "thumb", "inline:0", "fallback/thumb" …


def own_message(picture: PostedMedia) -> PostedMedia:
    """An "edit" taken as a message of its own (its sender did not write the original): judged and redacted alone."""
    return replace(picture, message_id=picture.event_id, variant=variant_of(None, picture.role), edit_of=None)


def relation(content: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(rel_type, event_id) of an m.relates_to, or (None, None); an event id out of grammar reads as None."""
    rel = content.get("m.relates_to") if isinstance(content, Mapping) else None
    if not isinstance(rel, Mapping):
        return None, None
    rel_type, target = rel.get("rel_type"), rel.get("event_id")
    rel_type = rel_type if isinstance(rel_type, str) and len(rel_type) <= 255 else None
    return rel_type, (target if bounds.event_id(target) else None)


def _posted_at(source: Mapping[str, Any]) -> datetime:
    ts = source.get("origin_server_ts")
    ok = isinstance(ts, int) and not isinstance(ts, bool) and 0 < ts < 2**53
    try:
        if ok:
            return datetime.fromtimestamp(ts / 1000, UTC)  # type: ignore[operator]
        return datetime.now(UTC)
    except (OverflowError, OSError, ValueError):
        return datetime.now(UTC)


@dataclass(frozen=True)
class EventPictures:
    """Every picture one event shows, and how many inline images were left unchecked (beyond the bound)."""

    pictures: tuple[PostedMedia, ...]
    unchecked: int = 0


def event_pictures(source: Mapping[str, Any]) -> EventPictures:
    """Every picture an m.room.message, m.sticker or custom-emoji m.reaction shows.

    An edit (m.replace) belongs to the message it replaces: what edit-aware clients show
    (``m.new_content``), and its fallback content where that shows other files. An "edit" whose
    target id is out of grammar is judged as a message of its own. The event's own ids must
    have passed ``matrix_bounds.event_problem`` already.
    """
    event_type = source.get("type")
    event_id = str(source.get("event_id") or "")
    sender = str(source.get("sender") or "")
    posted_at = _posted_at(source)
    if event_type == "m.reaction":
        media = reaction_picture(source)
        if media is None:
            return EventPictures(())
        return EventPictures((PostedMedia(event_id, event_id, media, "", sender, posted_at),))
    if event_type not in ("m.room.message", "m.sticker"):
        return EventPictures(())
    content = source.get("content")
    if not isinstance(content, Mapping):
        return EventPictures(())
    rel_type, target = relation(content)

    def own(p: Picture) -> PostedMedia:
        return PostedMedia(event_id, event_id, p.media, variant_of(None, p.role), sender, posted_at, None, p.role)

    if rel_type != "m.replace":
        found, more = pictures_of(event_type, content)
        return EventPictures(tuple(own(p) for p in found), more)
    new = content.get("m.new_content")
    shown, more = pictures_of(event_type, new) if isinstance(new, Mapping) else ([], 0)
    fallback, more_fallback = pictures_of(event_type, content)
    files = {p.media.file_id for p in shown}
    # what clients without edits show: only files the new content does not show already
    shown += [
        Picture(f"fallback/{p.role}" if p.role else "fallback", p.media)
        for p in fallback
        if p.media.file_id not in files
    ]
    if target is None:  # an edit of nothing valid: a message of its own
        return EventPictures(tuple(own(p) for p in shown), more + more_fallback)
    return EventPictures(
        tuple(
            PostedMedia(target, event_id, p.media, variant_of(event_id, p.role), sender, posted_at, target, p.role)
            for p in shown
        ),
        more + more_fallback,
    )


def posted_media(source: Mapping[str, Any]) -> PostedMedia | None:
    """The main picture an event shows (its file, else its first other picture), or None."""
    found = event_pictures(source).pictures
    return found[0] if found else None


def mxcs_of(source: Mapping[str, Any]) -> list[str]:
    """Every valid media URI this event itself shows (files, thumbnails, inline images, a custom emoji)."""
    return list(dict.fromkeys(p.media.file_id for p in event_pictures(source).pictures))


# --- text: commands and reactions -----------------------------------------------------------


def plain_body(content: Mapping[str, Any]) -> str:
    """The typed text of a message, without the quoted fallback of a reply."""
    body = content.get("body") if isinstance(content, Mapping) else None
    if not isinstance(body, str):
        return ""
    lines = body[: bounds.MAX_BODY].split("\n")
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
    return target if bounds.event_id(target) else None


def reaction(source: Mapping[str, Any]) -> tuple[str, str] | None:
    """(target event id, key) of an m.reaction, or None."""
    if source.get("type") != "m.reaction":
        return None
    rel = (source.get("content") or {}).get("m.relates_to")
    if not isinstance(rel, Mapping) or rel.get("rel_type") != "m.annotation":
        return None
    target, key = rel.get("event_id"), rel.get("key")
    if not bounds.event_id(target) or not isinstance(key, str) or len(key) > 64:
        return None  # choice keys are emoji; a longer key (a custom emoji's mxc://) is a picture, not a choice
    return target, key


def same_key(a: str, b: str) -> bool:
    """Reaction keys compared without the emoji variation selector some clients drop."""
    return a.replace("\ufe0f", "") == b.replace("\ufe0f", "")


# --- writing ------------------------------------------------------------------------------------


# The core writes commands the Telegram way; on Matrix a leading "/" is a client command (Element
# would not even send "/vigil"), so Vigil's commands are spelled "!vigil …" here.
_SLASH_COMMAND = re.compile(r"(?<![\w/])/(vigil|block|allow|groups|help|start)\b")
_AS_MATRIX = {
    "vigil": "!vigil",
    "block": "!vigil block",
    "allow": "!vigil allow",
    "groups": "!vigil groups",
    "help": "!vigil help",
    "start": "!vigil start",
}


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
            html_lines.append(
                f"{prefix}<b>{html.escape(button.label, quote=False)}</b> — "
                f"<code>{html.escape(command, quote=False)}</code>"
            )
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
