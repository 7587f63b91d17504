"""Every picture a Telegram client shows for a message, with each value bounded where it enters.

Besides the file itself, a client draws thumbnails (videos, animations, documents of any type,
video notes, animated stickers), a video's cover and an audio file's cover art. The sender
chooses these pictures (sendDocument with a custom thumbnail, a video with a cover), so a
clean file can carry a picture that is not: each is checked as a variant of the message.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from bot.events import MediaRef

log = logging.getLogger("vigil.telegram")

MEDIA_SUFFIXES = {
    ".jpg",
    ".jpeg",
    ".png",
    ".webp",
    ".gif",
    ".bmp",
    ".tif",
    ".tiff",
    ".heic",
    ".heif",
    ".mp4",
    ".webm",
    ".mov",
}
MAX_FILE_ID = 255  # Telegram's ids are about 80 characters; the store keeps ids of up to 255
MAX_UNIQUE_ID = 64  # Telegram's file_unique_id is about 16 characters
MAX_FILE_SIZE = 4 * 1024**3  # the largest file Telegram stores: a larger declared size is a lie
MAX_PHOTO_SIZES = 16  # a PhotoSize list holds a handful of sizes; more is not Telegram
MAX_MIME = 127
_FILE_ID = re.compile(r"[A-Za-z0-9_\-]+")


@dataclass(frozen=True)
class Picture:
    """One picture of a message: ``role`` "" for the file itself, "thumb" or "cover"."""

    role: str
    media: MediaRef


def _size(value: Any, where: str) -> int | None:
    """A declared file size; a value that is not a size becomes "unknown" (the download is bounded anyway)."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_FILE_SIZE:
        return value
    log.warning("telegram: %s declares an impossible file_size; treated as unknown", where)
    return None


def _mime(value: Any) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= MAX_MIME else None


def media_ref(kind: str, file: Any, mime: str | None, where: str) -> MediaRef | None:
    """A MediaRef for a PTB file object, or None (logged) when its id cannot be a Telegram file id."""
    file_id = getattr(file, "file_id", None)
    if not isinstance(file_id, str) or not 0 < len(file_id) <= MAX_FILE_ID or not _FILE_ID.fullmatch(file_id):
        log.warning("telegram: %s has a malformed file_id; this picture is skipped", where)
        return None
    unique = getattr(file, "file_unique_id", None)  # the same file, whoever posts or forwards it
    extra = (
        {"unique_id": unique}
        if isinstance(unique, str) and 0 < len(unique) <= MAX_UNIQUE_ID and _FILE_ID.fullmatch(unique)
        else {}
    )
    return MediaRef(kind, file_id, _size(getattr(file, "file_size", None), where), _mime(mime), extra)


def largest(sizes: Sequence[Any] | None) -> Any | None:
    """The largest of a PhotoSize list (bounded in length; sizes with odd dimensions count as 0)."""
    if not sizes:
        return None

    def area(p: Any) -> int:
        w, h = getattr(p, "width", 0), getattr(p, "height", 0)
        ok = all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 100_000 for v in (w, h))
        return w * h if ok else 0

    return max(list(sizes)[:MAX_PHOTO_SIZES], key=area)


def main_media(message: Any) -> MediaRef | None:
    """The file of the message itself when it is an image or a video; None for anything else."""
    if message.photo:
        p = largest(message.photo)
        return media_ref("photo", p, "image/jpeg", "a photo")
    if message.sticker:
        s = message.sticker
        if s.is_animated:
            return None  # Lottie vector animations (.tgs) have no pixels: their thumbnail is checked
        if s.is_video:
            return media_ref("video_sticker", s, "video/webm", "a video sticker")
        return media_ref("sticker", s, "image/webp", "a sticker")
    if message.animation:
        a = message.animation
        return media_ref("animation", a, a.mime_type or "video/mp4", "an animation")
    if message.video:
        v = message.video
        return media_ref("video", v, v.mime_type or "video/mp4", "a video")
    if message.video_note:
        return media_ref("video", message.video_note, "video/mp4", "a video note")
    if message.document:
        d = message.document
        mime = (d.mime_type or "").lower() if isinstance(d.mime_type, str) else ""
        suffix = PurePath(d.file_name or "").suffix.lower() if isinstance(d.file_name, str) else ""
        if mime.startswith(("image/", "video/")) or suffix in MEDIA_SUFFIXES:
            return media_ref("document", d, d.mime_type, "a document")
    return None


def _previews(message: Any) -> list[tuple[str, Any, str]]:
    """(role, PTB file, where) of the pictures shown besides the file."""
    out: list[tuple[str, Any, str]] = []
    if message.animation is not None:
        out.append(("thumb", message.animation.thumbnail, "an animation's thumbnail"))
    elif message.document is not None:  # an animation message repeats its file as a document
        out.append(("thumb", message.document.thumbnail, "a document's thumbnail"))
    if message.video is not None:
        out.append(("thumb", message.video.thumbnail, "a video's thumbnail"))
        out.append(("cover", largest(getattr(message.video, "cover", None)), "a video's cover"))
    if message.video_note is not None:
        out.append(("thumb", message.video_note.thumbnail, "a video note's thumbnail"))
    if message.audio is not None:
        out.append(("cover", message.audio.thumbnail, "an audio file's cover art"))
    if message.sticker is not None and message.sticker.is_animated:
        out.append(("thumb", message.sticker.thumbnail, "an animated sticker's thumbnail"))
    return out


def _quoted(message: Any) -> tuple[Any, str] | None:
    """The picture of a message quoted from another chat (``external_reply``), which a client shows
    above the reply: a photo, or the thumbnail of other media (a static sticker is its own picture)."""
    quoted = getattr(message, "external_reply", None)
    if quoted is None:
        return None
    if quoted.photo:
        return largest(quoted.photo), "a quoted photo"
    if quoted.sticker is not None and not quoted.sticker.is_animated and not quoted.sticker.is_video:
        return quoted.sticker, "a quoted sticker"
    for name in ("animation", "video", "video_note", "document", "sticker", "audio"):
        media = getattr(quoted, name, None)
        if media is not None and getattr(media, "thumbnail", None) is not None:
            return media.thumbnail, f"a quoted {name.replace('_', ' ')}'s thumbnail"
    return None


def pictures_of(message: Any) -> tuple[Picture, ...]:
    """Every picture a client shows for the message: the file first, then thumbnails, covers and
    the picture of a message it quotes from another chat."""
    found: list[Picture] = []
    main = main_media(message)
    if main is not None:
        found.append(Picture("", main))
    roles = set()
    for role, file, where in _previews(message):
        if file is None or role in roles:
            continue
        ref = media_ref("cover" if role == "cover" else "thumbnail", file, "image/jpeg", where)
        if ref is not None and (main is None or ref.file_id != main.file_id):
            roles.add(role)
            found.append(Picture(role, ref))
    quoted = _quoted(message)
    if quoted is not None:
        ref = media_ref("quoted", quoted[0], None, quoted[1])
        if ref is not None:
            found.append(Picture("quoted", ref))
    return tuple(found)
