"""Metadata read from a file's bytes, without decoding pixels: XMP, EXIF and PNG text chunks.

What is read: XMP (``Iptc4xmpExt:DigitalSourceType``, IPTC 2025 ``AISystemUsed`` /
``AIPromptInformation``, a China GB 45438-2025 ``AIGC`` label, tool names in
``xmp:CreatorTool``, ``photoshop:Credit``, ``stEvt:softwareAgent``, descriptions ...); EXIF
(tool names in Software, Make, Model, Artist, ImageDescription, UserComment, XPComment, and
generation settings written as text, AUTOMATIC1111 style); PNG text chunks (tEXt, zTXt,
iTXt). What they mean is decided by the scanner (``detectors.provenance.scanner``).

Hostile files: each text value is cut to ``MAX_TEXT_BYTES`` before matching (compressed
chunks are inflated only that far), at most ``MAX_PNG_CHUNKS`` chunks are walked and
``MAX_TEXT_CHUNKS`` text chunks read, XMP is cut to ``MAX_XMP_BYTES`` and searched with
bounded patterns (never given to an XML parser), EXIF to ``MAX_EXIF_BYTES``. A file that
fails half way keeps what was read before the failure.
"""

from __future__ import annotations

import html
import io
import logging
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

# Importing a plugin registers it with Pillow; metadata is read only from these.
from PIL import (  # noqa: F401
    GifImagePlugin,
    Image,
    JpegImagePlugin,
    TiffImagePlugin,
    WebPImagePlugin,
)

logger = logging.getLogger("detectors.provenance")

# --- limits against hostile files ---------------------------------------------------

MAX_TEXT_BYTES = 64 * 1024  # per text value, after inflating
MAX_TEXT_CHUNKS = 64  # PNG text chunks read per file
MAX_PNG_CHUNKS = 50_000  # PNG chunk headers walked per file (IDATs included)
MAX_XMP_BYTES = 256 * 1024
MAX_EXIF_BYTES = 256 * 1024
MAX_VALUES_PER_PROPERTY = 16  # XMP values read per property name


@dataclass(frozen=True)
class MetadataField:
    source: str  # "xmp" | "exif" | "png-text"
    label: str  # e.g. "EXIF Software", shown in the alert
    text: str  # already cut to MAX_TEXT_BYTES


@dataclass
class Metadata:
    fields: list[MetadataField]
    png_texts: list[tuple[str, str]]  # (keyword, value)
    source_types: list[MetadataField]  # DigitalSourceType values
    ai_markers: list[MetadataField]  # AISystemUsed, AIPromptInformation, AIGC


def sniff(data: bytes) -> str | None:
    """MIME type from the first bytes, or None for anything else."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff"
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in (b"avif", b"avis"):
            return "image/avif"
        if brand in (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"):
            return "image/heic"
        if brand == b"qt  ":
            return "video/quicktime"
        return "video/mp4"
    return None


def _decode_text(raw: bytes, encoding: str, limit: int = MAX_TEXT_BYTES) -> str:
    return raw[:limit].decode(encoding, errors="replace").replace("\x00", " ").strip()


def _inflate(raw: bytes, limit: int) -> bytes | None:
    # inflate at most `limit` bytes: a zTXt bomb costs no more than that
    try:
        return zlib.decompressobj().decompress(raw, limit)
    except zlib.error:
        return None


def _png_chunks(data: bytes) -> Iterator[tuple[bytes, memoryview]]:
    """(type, body) of each chunk, lazily; a truncated last chunk yields what is there."""
    view = memoryview(data)
    pos = 8
    for _ in range(MAX_PNG_CHUNKS):
        if pos + 8 > len(data):
            return
        length, ctype = struct.unpack_from(">I4s", data, pos)
        start = pos + 8
        yield ctype, view[start : min(start + length, len(data))]
        if ctype == b"IEND" or start + length > len(data):
            return
        pos = start + length + 4  # skip the CRC


def _png_text(ctype: bytes, body: bytes, limit: int = MAX_TEXT_BYTES) -> tuple[str, str] | None:
    """(keyword, value of at most ``limit`` bytes) of a tEXt/zTXt/iTXt chunk, or None."""
    key, sep, rest = body[:80].partition(b"\x00")  # keywords are 1-79 bytes
    if not sep or not key:
        return None
    rest = body[len(key) + 1 :]
    keyword = key.decode("latin-1")
    if ctype == b"tEXt":
        return keyword, _decode_text(rest, "latin-1", limit)
    if ctype == b"zTXt":
        inflated = _inflate(rest[1:], limit) if rest[:1] == b"\x00" else None
        return None if inflated is None else (keyword, _decode_text(inflated, "latin-1", limit))
    # iTXt: flag, method, language\0, translated keyword\0, text
    if len(rest) < 2:
        return None
    compressed, method, rest = rest[0], rest[1], rest[2:]
    parts = rest.split(b"\x00", 2)
    if len(parts) < 3:
        return None
    text = parts[2]
    if compressed:
        inflated = _inflate(text, limit) if method == 0 else None
        if inflated is None:
            return None
        text = inflated
    return keyword, _decode_text(text, "utf-8", limit)


def _read_png(data: bytes, meta: Metadata) -> None:
    text_chunks = 0
    for ctype, body in _png_chunks(data):
        if ctype in (b"tEXt", b"zTXt", b"iTXt"):
            text_chunks += 1
            if text_chunks > MAX_TEXT_CHUNKS:
                break
            # a text chunk can be as large as the file; only its head is ever looked at
            head = bytes(body[: MAX_XMP_BYTES + 256])
            if ctype == b"iTXt" and head.startswith(b"XML:com.adobe.xmp\x00"):
                parsed = _png_text(ctype, head, MAX_XMP_BYTES)
                if parsed:
                    _read_xmp(parsed[1].encode("utf-8"), meta)
                continue
            parsed = _png_text(ctype, bytes(body[: MAX_TEXT_BYTES + 256]))
            if parsed:
                meta.png_texts.append(parsed)
        elif ctype == b"eXIf":
            _read_exif(bytes(body[:MAX_EXIF_BYTES]), meta)


_EXIF_IFD0 = {
    0x0131: "Software",
    0x010F: "Make",
    0x0110: "Model",
    0x013B: "Artist",
    0x010E: "ImageDescription",
    0x000B: "ProcessingSoftware",
    0x013C: "HostComputer",
}
_EXIF_XP_COMMENT = 0x9C9C  # Windows, UTF-16LE
_EXIF_IFD = 0x8769
_EXIF_USER_COMMENT = 0x9286
_EXIF_XMP = 0x02BC  # TIFF files keep their XMP packet in this tag


def _exif_value(value: object) -> str | None:
    if isinstance(value, str):
        try:  # Pillow reads ASCII tags as Latin-1; many writers put UTF-8 in them
            value = value.encode("latin-1").decode("utf-8")
        except UnicodeError:
            pass
        return value.replace("\x00", " ").strip()[:MAX_TEXT_BYTES] or None
    if isinstance(value, tuple) and value and all(isinstance(v, int) for v in value):
        value = bytes(v & 0xFF for v in value)
    if isinstance(value, bytes):
        return _decode_text(value, "latin-1") or None
    return None


def _user_comment(raw: object) -> str | None:
    """EXIF UserComment: an 8-byte charset code, then the text."""
    if isinstance(raw, str):
        return _exif_value(raw)
    if not isinstance(raw, bytes) or len(raw) < 8:
        return None
    code, body = raw[:8], raw[8 : 8 + 2 * MAX_TEXT_BYTES]
    if code.startswith(b"UNICODE"):
        # the byte order is not stated; the one with zero high bytes on ASCII text wins
        big = body[0::2].count(0) >= body[1::2].count(0)
        text = body.decode("utf-16-be" if big else "utf-16-le", errors="replace")
        return text.replace("\x00", " ").strip()[:MAX_TEXT_BYTES] or None
    return _decode_text(body, "utf-8" if code.startswith(b"\x00") else "latin-1") or None


def _read_exif(raw: bytes, meta: Metadata, exif: Image.Exif | None = None) -> None:
    if exif is None:
        exif = Image.Exif()
        try:
            exif.load(raw[:MAX_EXIF_BYTES])
        except Exception:  # Pillow raises many kinds on corrupt EXIF
            logger.debug("unreadable EXIF block ignored")
            return
    for tag, name in _EXIF_IFD0.items():
        text = _exif_value(exif.get(tag))
        if text:
            meta.fields.append(MetadataField("exif", f"EXIF {name}", text))
    xp = exif.get(_EXIF_XP_COMMENT)
    if isinstance(xp, tuple):
        xp = bytes(v & 0xFF for v in xp)
    if isinstance(xp, bytes):
        text = _decode_text(xp, "utf-16-le")
        if text:
            meta.fields.append(MetadataField("exif", "EXIF XPComment", text))
    try:
        sub = exif.get_ifd(_EXIF_IFD)
    except Exception:
        sub = {}
    comment = _user_comment(sub.get(_EXIF_USER_COMMENT))
    if comment:
        meta.fields.append(MetadataField("exif", "EXIF UserComment", comment))


# XMP properties read, by local name (the namespace prefix is not checked: it can be any).
_XMP_TOOL_PROPERTIES = {
    "CreatorTool": "XMP xmp:CreatorTool",
    "Credit": "XMP photoshop:Credit",
    "softwareAgent": "XMP stEvt:softwareAgent",
    "Software": "XMP tiff:Software",
    "Make": "XMP tiff:Make",
    "Model": "XMP tiff:Model",
    "creator": "XMP dc:creator",
    "description": "XMP dc:description",
    "UserComment": "XMP exif:UserComment",
    "ImageDescription": "XMP tiff:ImageDescription",
    "Source": "XMP photoshop:Source",
}
_XMP_AI_PROPERTIES = {
    "AISystemUsed": "XMP Iptc4xmpExt:AISystemUsed",
    "AIPromptInformation": "XMP Iptc4xmpExt:AIPromptInformation",
    "AIGC": "XMP AIGC label",
}


_XMP_SOURCE_TYPE = {"DigitalSourceType": "XMP Iptc4xmpExt:DigitalSourceType"}
_XMP_NAMES = "|".join((*_XMP_SOURCE_TYPE, *_XMP_TOOL_PROPERTIES, *_XMP_AI_PROPERTIES))
# A property with any namespace prefix (bounded, so long words cost little), as an
# attribute with a quoted value, or as an element opening. Two passes over the packet.
_XMP_PREFIX = r"(?<![\w.:-])(?:[\w.-]{1,40}:)?"
_XMP_ATTRIBUTE = re.compile(rf"{_XMP_PREFIX}({_XMP_NAMES})\s*=\s*(?:\"([^\"<]{{0,4096}})\"|'([^'<]{{0,4096}})')")
_XMP_ELEMENT = re.compile(rf"<{_XMP_PREFIX}({_XMP_NAMES})(\s[^<>]{{0,1024}})?>")
_XMP_RESOURCE = re.compile(r"resource\s*=\s*\"([^\"<]{0,4096})\"")


@cache
def _xmp_end(local: str) -> re.Pattern[str]:
    return re.compile(rf"</(?:[\w.-]{{1,40}}:)?{local}\s*>")


def _xmp_values(text: str) -> dict[str, list[str]]:
    """Values of the properties read, by local name: attribute, rdf:resource or element form.

    Each property gets at most MAX_VALUES_PER_PROPERTY values and element openings
    followed, and an element's value is looked for in a bounded window, so a packet of
    unclosed tags costs a linear scan.
    """
    raw: dict[str, list[str]] = {}
    for m in _XMP_ATTRIBUTE.finditer(text):
        found = raw.setdefault(m.group(1), [])
        if len(found) < MAX_VALUES_PER_PROPERTY:
            found.append(m.group(2) if m.group(2) is not None else m.group(3))
    opened: dict[str, int] = {}
    for m in _XMP_ELEMENT.finditer(text):
        local, attrs = m.group(1), m.group(2) or ""
        if opened.get(local, 0) >= MAX_VALUES_PER_PROPERTY:
            continue
        opened[local] = opened.get(local, 0) + 1
        found = raw.setdefault(local, [])
        resource = _XMP_RESOURCE.search(attrs)
        if resource is not None:
            found.append(resource.group(1))
        elif not attrs.endswith("/"):
            close = _xmp_end(local).search(text, m.end(), m.end() + 8192)
            if close is not None:
                found.append(text[m.end() : close.start()])
    values: dict[str, list[str]] = {}
    for local, found in raw.items():
        for value in found[:MAX_VALUES_PER_PROPERTY]:
            inner = re.sub(r"<[^<>]{0,1024}>", " ", value)  # rdf:Alt/Seq/li wrappers
            value = " ".join(html.unescape(inner).split())
            if value:
                values.setdefault(local, []).append(value[:MAX_TEXT_BYTES])
    return values


def _read_xmp(raw: bytes, meta: Metadata) -> None:
    raw = raw[:MAX_XMP_BYTES]
    head = raw[:64]
    if head.startswith((b"\xfe\xff", b"\xff\xfe")) or head.count(b"\x00") > len(head) // 4:
        text = raw.decode("utf-16", errors="replace")
    else:
        text = raw.decode("utf-8", errors="replace")
    values = _xmp_values(text)
    for groups, target in (
        (_XMP_SOURCE_TYPE, meta.source_types),
        (_XMP_TOOL_PROPERTIES, meta.fields),
        (_XMP_AI_PROPERTIES, meta.ai_markers),
    ):
        for local, label in groups.items():
            target.extend(MetadataField("xmp", label, value) for value in values.get(local, ()))


_XMP_APP1 = b"http://ns.adobe.com/xap/1.0/\x00"
# JPEG covers MPO; AVIF and HEIF count only where their plugins are registered
_PILLOW_FORMATS = ("JPEG", "WEBP", "GIF", "TIFF", "AVIF", "HEIF")


def _read_with_pillow(data: bytes, meta: Metadata) -> None:
    # Image.open parses headers only; pixels are never decoded here
    formats = [f for f in _PILLOW_FORMATS if f in Image.OPEN]
    with Image.open(io.BytesIO(data), formats=formats) as im:
        xmp = im.info.get("xmp")
        if not xmp:  # older Pillow keeps JPEG XMP only in the APP1 list
            for marker, body in getattr(im, "applist", []):
                if marker == "APP1" and body.startswith(_XMP_APP1):
                    xmp = body[len(_XMP_APP1) :]
                    break
        if im.format == "TIFF":
            exif = im.getexif()  # the TIFF's own tags, read with the header
            _read_exif(b"", meta, exif)
            xmp = xmp or exif.get(_EXIF_XMP)
        elif isinstance(im.info.get("exif"), bytes):
            _read_exif(im.info["exif"], meta)
        if isinstance(xmp, str):
            xmp = xmp.encode("utf-8")
        if isinstance(xmp, bytes) and xmp:
            _read_xmp(xmp, meta)


def collect(data: bytes, mime: str) -> Metadata:
    meta = Metadata([], [], [], [])
    try:
        if mime == "image/png":
            _read_png(data, meta)
        elif mime.startswith("image/"):
            _read_with_pillow(data, meta)
    except Exception:  # corrupt or hostile file: keep what was read before the failure
        logger.debug("metadata of a %s file could not be read completely", mime)
    return meta
