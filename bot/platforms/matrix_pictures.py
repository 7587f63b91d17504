"""Every picture a Matrix client shows for one message content, each read strictly.

Not only the main file: the thumbnail a client shows before (or instead of) the file (a video's
poster, the preview of an encrypted image), and images pasted inline into the HTML of a text,
notice or emote. Each is checked as a version of its message (``variant_of``); a hit in any is
a hit for the message.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import PurePath
from typing import Any

from bot.events import MAX_VARIANT, MediaRef
from bot.platforms import matrix_bounds as bounds

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
    ".avif",
    ".mp4",
    ".webm",
    ".mov",
    ".mkv",
}
MAX_INLINE = 16  # distinct inline images checked per message; beyond, it is reported as not fully checked
TOO_MANY_INLINE = f"the message shows more than {MAX_INLINE} inline images; Vigil checked the first {MAX_INLINE}"
# msgtypes whose info may carry a thumbnail
THUMBNAIL_OF = ("m.image", "m.video", "m.file", "m.audio", "m.location")
# msgtypes whose formatted_body may carry <img>: texts, and the captions of files
INLINE_IN = ("m.text", "m.notice", "m.emote", "m.image", "m.video", "m.file", "m.audio")


@dataclass(frozen=True)
class Picture:
    role: str  # "" the main file, "thumb", "inline:<n>" ("url", "thumb_url": a plain file beside an encrypted one)
    media: MediaRef


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _encrypted(kind: str, file: Any, info: Mapping[str, Any]) -> MediaRef | None:
    """An encrypted ``file`` (with its key, iv and hash), strictly read."""
    if not isinstance(file, Mapping):
        return None
    url = bounds.mxc(file.get("url"))
    key = bounds.key_field(_mapping(file.get("key")).get("k"))
    sha = bounds.key_field(_mapping(file.get("hashes")).get("sha256"))
    iv = bounds.key_field(file.get("iv"))
    if not (url and key and sha and iv):
        return None  # an encrypted file without its keys cannot be opened by anyone
    mime = bounds.mimetype(info.get("mimetype")) or bounds.mimetype(file.get("mimetype"))
    extra = {"mxc": url, "encrypted": {"key": key, "iv": iv, "sha256": sha}}
    return MediaRef(kind, url, bounds.size(info.get("size")), mime, extra)


def _plain(kind: str, url: Any, info: Mapping[str, Any]) -> MediaRef | None:
    valid = bounds.mxc(url)
    if valid is None:
        return None
    return MediaRef(kind, valid, bounds.size(info.get("size")), bounds.mimetype(info.get("mimetype")), {"mxc": valid})


def _media(
    kind: str, holder: Mapping[str, Any], url_key: str, file_key: str, info: Mapping[str, Any]
) -> list[MediaRef]:
    """The encrypted ``file`` and the plain ``url`` of one picture: clients differ in which they show
    when an event carries both, so each valid one is a picture to check (the encrypted one first)."""
    both = (_encrypted(kind, holder.get(file_key), info), _plain(kind, holder.get(url_key), info))
    found = [m for m in both if m is not None]
    return found if len(found) < 2 or found[0].file_id != found[1].file_id else found[:1]


def _kind(event_type: str, content: Mapping[str, Any]) -> str | None:
    """Vigil's media kind for this content's main file, or None when it is not an image or video."""
    if event_type == "m.sticker":
        return "sticker"
    msgtype = content.get("msgtype")
    info = _mapping(content.get("info"))
    mime = bounds.mimetype(info.get("mimetype")) or bounds.mimetype(_mapping(content.get("file")).get("mimetype")) or ""
    if msgtype == "m.image":
        return "image"
    if msgtype == "m.video":
        return "video"
    if msgtype == "m.file":
        name = bounds.text(content.get("filename"), 255) or bounds.text(content.get("body"), 255)
        if mime.startswith(("image/", "video/")) or PurePath(name).suffix.lower() in MEDIA_SUFFIXES:
            return "document"
    return None


def main_files(event_type: str, content: Mapping[str, Any]) -> list[MediaRef]:
    """The main file of one message content (encrypted ``file`` and/or plain ``url``), with what a restart needs."""
    if not isinstance(content, Mapping):
        return []
    kind = _kind(event_type, content)
    if kind is None:
        return []
    return _media(kind, content, "url", "file", _mapping(content.get("info")))


def media_ref(event_type: str, content: Mapping[str, Any]) -> MediaRef | None:
    """The main file of one message content, or None when it shows no image or video."""
    found = main_files(event_type, content)
    return found[0] if found else None


def thumbnails(event_type: str, content: Mapping[str, Any]) -> list[MediaRef]:
    """The thumbnail a client shows for a file, video, image or sticker (``thumbnail_file``, ``thumbnail_url``)."""
    if event_type != "m.sticker" and content.get("msgtype") not in THUMBNAIL_OF:
        return []
    info = _mapping(content.get("info"))
    return _media("image", info, "thumbnail_url", "thumbnail_file", _mapping(info.get("thumbnail_info")))


class _ImageSources(HTMLParser):
    """The ``src`` of each ``<img>`` in a message's HTML, bounded in count and length."""

    def __init__(self, limit: int) -> None:
        super().__init__(convert_charrefs=True)
        self.limit = limit
        self.found: list[str] = []
        self.more = 0  # distinct valid images beyond the limit
        self.first_beyond: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "img":
            return
        for attr, value in attrs:
            if attr == "src":
                url = bounds.mxc(value) if value is not None and len(value) <= 600 else None
                if url is None or url in self.found:
                    return
                if len(self.found) < self.limit:
                    self.found.append(url)
                else:
                    self.more += 1
                    self.first_beyond = self.first_beyond or url
                return

    handle_startendtag = handle_starttag


def inline_images(content: Mapping[str, Any], limit: int = MAX_INLINE) -> tuple[list[str], int, str | None]:
    """(mxc URIs of the first ``limit`` distinct inline images, how many more there were, the first of those)."""
    if content.get("msgtype") not in INLINE_IN or content.get("format") != "org.matrix.custom.html":
        return [], 0, None
    markup = content.get("formatted_body")
    if not isinstance(markup, str) or "<" not in markup:
        return [], 0, None
    parser = _ImageSources(limit)
    try:
        parser.feed(markup[: bounds.MAX_HTML])
        parser.close()
    except Exception:  # html.parser is lenient; whatever it still refuses, what was found stands
        pass
    return parser.found, parser.more, parser.first_beyond


def pictures_of(event_type: str, content: Mapping[str, Any]) -> tuple[list[Picture], int]:
    """Each picture this content shows, once per file (a thumbnail that is the main file is one picture),
    and the number of inline images left unchecked beyond MAX_INLINE."""
    if not isinstance(content, Mapping):
        return [], 0
    found: list[Picture] = []
    seen: set[str] = set()

    def add(role: str, media: MediaRef | None) -> None:
        if media is not None and media.file_id not in seen:
            seen.add(media.file_id)
            found.append(Picture(role, media))

    for n, media in enumerate(main_files(event_type, content)):
        add("url" if n else "", media)  # "url": the plain file beside an encrypted one
    for n, media in enumerate(thumbnails(event_type, content)):
        add("thumb_url" if n else "thumb", media)
    inline, more, beyond = inline_images(content) if event_type == "m.room.message" else ([], 0, None)
    for n, url in enumerate(inline):
        add(f"inline:{n}", MediaRef("image", url, None, None, {"mxc": url}))
    if beyond is not None:
        # not downloaded: it stands for the images left unchecked, so the moderators hear of them
        add("inline:more", MediaRef("image", beyond, None, None, {"mxc": beyond, "unchecked": TOO_MANY_INLINE}))
    return found, more


def reaction_picture(source: Mapping[str, Any]) -> MediaRef | None:
    """A custom-emoji reaction: its key is an ``mxc://`` image that clients show under the message."""
    if source.get("type") != "m.reaction":
        return None
    rel = _mapping(_mapping(source.get("content")).get("m.relates_to"))
    url = bounds.mxc(rel.get("key"))
    return MediaRef("image", url, None, None, {"mxc": url}) if url else None


def variant_of(edit_id: str | None, role: str) -> str:
    """The one place a Matrix picture's variant is composed: "" (main file), "thumb", "inline:0",
    "edit:<event id>", "edit:<event id>/thumb" … An edit id too long for the store's variant
    column is replaced by its hash, so distinct edits stay distinct."""
    if not edit_id:
        return role
    tail = f"/{role}" if role else ""
    variant = f"edit:{edit_id}{tail}"
    if len(variant) > MAX_VARIANT:
        variant = f"edit:#{hashlib.sha256(edit_id.encode()).hexdigest()[:40]}{tail}"
    return variant
