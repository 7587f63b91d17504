"""Provenance signals: evidence in a file's metadata that a generative model made or altered it.

Reads, from bytes in memory and without decoding pixels:

- Content Credentials (C2PA), through ``c2pa-python``: a ``digitalSourceType`` that says
  the content was made or altered by a generative model, in any manifest of the store
  (the current one or an ingredient's), with the claim generator, the signer and the
  store's validation state. An invalid or untrusted manifest is still reported, with
  its state in the detail: it is evidence, not proof.
- XMP: ``Iptc4xmpExt:DigitalSourceType``, IPTC 2025 ``AISystemUsed``/``AIPromptInformation``,
  a China GB 45438-2025 ``AIGC`` label, and tool names in ``xmp:CreatorTool``,
  ``photoshop:Credit``, ``stEvt:softwareAgent``, descriptions ...
- EXIF: tool names in Software, Make, Model, Artist, ImageDescription, UserComment,
  XPComment, and generation settings written as text (AUTOMATIC1111 style).
- PNG text chunks (tEXt, zTXt, iTXt): keywords generators write ("parameters",
  ComfyUI "prompt"/"workflow", "invokeai_metadata" ...) and tool names in values.

Names and keywords come from ``detectors/data/generators.toml`` plus any files an
operator adds (``ProvenanceScanner(extra_files=...)``).

Absence of evidence proves nothing, and the API cannot say otherwise: ``scan`` returns
a tuple of positive findings only, and there is no "authentic" verdict. Most tools write
no metadata, and messengers strip it (Telegram does for anything sent as a photo).

Which IPTC digital source types count (``GENERATIVE_SOURCE_TYPES``):
``trainedAlgorithmicMedia`` (made by a trained model), ``compositeWithTrainedAlgorithmicMedia``
(a composite with generated parts, e.g. generative fill), ``compositeSynthetic`` (a
composite with synthetic parts, which includes generated ones), ``algorithmicMedia``
(made by software rather than captured; the term itself is for non-AI algorithms, so
the alert says so) and C2PA's ``trainedAlgorithmicData``. Not counted:
``algorithmicallyEnhanced`` (phones put it on ordinary photos after computational
clean-up), ``dataDrivenMedia``, ``digitalCreation``, captures, composites of captures,
screen captures, scans and human edits.

Alerts never quote prompt text: a prompt may describe the very abuse the alert is
about, and the admin does not need it to act. Details name the field and the tool only.

Hostile files: each text value is cut to ``MAX_TEXT_BYTES`` before matching (compressed
chunks are inflated only that far), at most ``MAX_PNG_CHUNKS`` chunks are walked and
``MAX_TEXT_CHUNKS`` text chunks read, XMP is cut to ``MAX_XMP_BYTES`` and searched with
bounded patterns (never given to an XML parser), EXIF to ``MAX_EXIF_BYTES``. Nothing is
written anywhere; the only log lines are warnings when the C2PA library fails, and they
never contain metadata values.

Thread safety: a scanner is immutable after construction; the C2PA library's context
is kept per thread.
"""

from __future__ import annotations

import html
import io
import json
import logging
import re
import struct
import threading
import tomllib
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

# Importing a plugin registers it with Pillow; metadata is read only from these.
from PIL import (  # noqa: F401
    GifImagePlugin,
    Image,
    JpegImagePlugin,
    TiffImagePlugin,
    WebPImagePlugin,
)

from detectors.errors import SettingError

logger = logging.getLogger(__name__)

DEFAULT_GENERATORS_FILE = Path(__file__).resolve().parent / "data" / "generators.toml"

# --- limits against hostile files ---------------------------------------------------

MAX_TEXT_BYTES = 64 * 1024  # per text value, after inflating
MAX_TEXT_CHUNKS = 64  # PNG text chunks read per file
MAX_PNG_CHUNKS = 50_000  # PNG chunk headers walked per file (IDATs included)
MAX_XMP_BYTES = 256 * 1024
MAX_EXIF_BYTES = 256 * 1024
MAX_VALUES_PER_PROPERTY = 16  # XMP values read per property name
MAX_GENERATOR_NAME = 80  # characters of an unknown tool name shown in an alert

SOURCES = ("c2pa", "xmp", "exif", "png-text")

# IPTC (cv.iptc.org/newscodes/digitalsourcetype/) and C2PA (c2pa.org/digitalsourcetype/)
# terms that count, with how an alert explains them. See the module docstring.
GENERATIVE_SOURCE_TYPES: Mapping[str, str] = MappingProxyType(
    {
        "trainedAlgorithmicMedia": "made by a generative AI model",
        "compositeWithTrainedAlgorithmicMedia": "edited with parts made by a generative AI model",
        "compositeSynthetic": "a composite that includes synthetic (possibly AI-made) parts",
        "algorithmicMedia": (
            "made by software rather than captured by a camera (the term is for "
            "algorithms other than trained AI models)"
        ),
        "trainedAlgorithmicData": "data made by a generative AI model",
    }
)

_KIND_TEXT: Mapping[str, str] = MappingProxyType(
    {
        "image-generator": "an AI image generator",
        "face-swap": "an AI face-swap or face-altering app",
        "nudify": "an app that makes fake nude images ('nudify')",
    }
)


@dataclass(frozen=True)
class ProvenanceFinding:
    """One piece of evidence that a generative model made or altered the image."""

    source: str  # "c2pa" | "xmp" | "exif" | "png-text"
    signal: str  # e.g. "digitalSourceType=trainedAlgorithmicMedia", "generator=ComfyUI"
    detail: str  # short text for an admin alert; never prompt text
    generator: str | None


# --- the generator catalog ----------------------------------------------------------


@dataclass(frozen=True)
class Generator:
    name: str
    kind: str  # a key of _KIND_TEXT
    match: tuple[str, ...]


@dataclass(frozen=True)
class PngKey:
    key: str
    generator: str
    contains_any: tuple[str, ...] = ()  # empty: the keyword alone counts


@dataclass(frozen=True)
class SettingsText:
    generator: str
    contains_all: tuple[str, ...]


@dataclass(frozen=True)
class GeneratorCatalog:
    generators: tuple[Generator, ...]
    png_keys: tuple[PngKey, ...]
    settings_texts: tuple[SettingsText, ...]


def _norm_name(text: str) -> str:
    # the same folding the name pattern allows: case, and runs of space/_/-
    return re.sub(r"[\s_-]+", " ", text.casefold()).strip()


def _names(value: object, key: str) -> tuple[str, ...]:
    names = _strings(value, key, required=True)
    for name in names:
        if sum(c.isalnum() for c in name) < 3:
            raise SettingError(
                key,
                f"has the name {name!r}, which is too short: it would match ordinary text",
                "give names of at least 3 letters or digits, as the tool writes them",
            )
    return names


def _strings(value: object, key: str, *, required: bool) -> tuple[str, ...]:
    if value is None and not required:
        return ()
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        field = key.rsplit(".", 1)[-1]
        raise SettingError(key, "must be a non-empty list of non-empty strings", f'write e.g. {field} = ["..."]')
    return tuple(value)


def _text(value: object, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SettingError(key, "is missing or not a non-empty string", "give it a name in quotes")
    return value.strip()


def _read_catalog_file(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise SettingError(
            f"provenance generators file {path}",
            f"cannot be read ({e.strerror or e})",
            "check the path, or remove it from the list of generator files",
        ) from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise SettingError(
            f"provenance generators file {path}",
            f"is not valid UTF-8 TOML ({e})",
            "fix the syntax; see detectors/data/generators.toml for the format",
        ) from None


def load_catalog(extra_files: Sequence[Path] = ()) -> GeneratorCatalog:
    """The built-in catalog followed by each extra file's entries (which only add).

    Raises ``SettingError`` naming the file and entry for anything malformed.
    """
    if isinstance(extra_files, (str, Path)):  # one file given bare, not a list of them
        extra_files = [Path(extra_files)]
    generators: list[Generator] = []
    png_keys: list[PngKey] = []
    settings: list[SettingsText] = []
    for path in (DEFAULT_GENERATORS_FILE, *map(Path, extra_files)):
        doc = _read_catalog_file(path)
        unknown = set(doc) - {"generator", "png_key", "settings_text"}
        if unknown:
            raise SettingError(
                f"{path}: {sorted(unknown)[0]}",
                "is not a known table",
                "use [[generator]], [[png_key]] or [[settings_text]]",
            )
        for i, entry in enumerate(_tables(doc, "generator", path)):
            where = f"{path}: generator[{i}]"
            kind = entry.get("kind", "image-generator")
            if kind not in _KIND_TEXT:
                raise SettingError(f"{where}.kind", f"is {kind!r}", f"use one of {sorted(_KIND_TEXT)}")
            generators.append(
                Generator(
                    name=_text(entry.get("name"), f"{where}.name"),
                    kind=kind,
                    match=_names(entry.get("match"), f"{where}.match"),
                )
            )
        for i, entry in enumerate(_tables(doc, "png_key", path)):
            where = f"{path}: png_key[{i}]"
            png_keys.append(
                PngKey(
                    key=_text(entry.get("key"), f"{where}.key"),
                    generator=_text(entry.get("generator"), f"{where}.generator"),
                    contains_any=_strings(entry.get("contains_any"), f"{where}.contains_any", required=False),
                )
            )
        for i, entry in enumerate(_tables(doc, "settings_text", path)):
            where = f"{path}: settings_text[{i}]"
            settings.append(
                SettingsText(
                    generator=_text(entry.get("generator"), f"{where}.generator"),
                    contains_all=_strings(entry.get("contains_all"), f"{where}.contains_all", required=True),
                )
            )
    return GeneratorCatalog(tuple(generators), tuple(png_keys), tuple(settings))


def _tables(doc: dict[str, Any], name: str, path: Path) -> list[dict[str, Any]]:
    tables = doc.get(name, [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise SettingError(f"{path}: {name}", "must be an array of tables", f"write each entry as [[{name}]]")
    return tables


class _NameMatcher:
    """Finds catalog names as whole words (not inside a longer alphanumeric run)."""

    def __init__(self, generators: Sequence[Generator]) -> None:
        self._by_name: dict[str, Generator] = {}
        for gen in generators:
            for name in gen.match:
                # the first entry to claim a name keeps it (built-in before operator files)
                self._by_name.setdefault(_norm_name(name), gen)
        # longest first, so "DALL-E mini" wins over "DALL-E" at the same place
        alternatives = sorted(self._by_name, key=len, reverse=True)
        body = "|".join(r"[\s_-]+".join(re.escape(part) for part in name.split(" ")) for name in alternatives)
        self._pattern = re.compile(rf"(?<![^\W_])(?:{body})(?![^\W_])", re.IGNORECASE) if body else None

    def find(self, text: str) -> list[Generator]:
        if self._pattern is None:
            return []
        found: list[Generator] = []
        for m in self._pattern.finditer(text):
            gen = self._by_name.get(_norm_name(m.group(0)))
            if gen is not None and gen not in found:
                found.append(gen)
        return found


# --- metadata collected from a file -----------------------------------------------------


@dataclass(frozen=True)
class _Field:
    source: str  # "xmp" | "exif" | "png-text"
    label: str  # e.g. "EXIF Software", shown in the alert
    text: str  # already cut to MAX_TEXT_BYTES


@dataclass
class _Metadata:
    fields: list[_Field]
    png_texts: list[tuple[str, str]]  # (keyword, value)
    source_types: list[_Field]  # DigitalSourceType values
    ai_markers: list[_Field]  # AISystemUsed, AIPromptInformation, AIGC


def _sniff(data: bytes) -> str | None:
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


def _read_png(data: bytes, meta: _Metadata) -> None:
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


def _read_exif(raw: bytes, meta: _Metadata, exif: Image.Exif | None = None) -> None:
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
            meta.fields.append(_Field("exif", f"EXIF {name}", text))
    xp = exif.get(_EXIF_XP_COMMENT)
    if isinstance(xp, tuple):
        xp = bytes(v & 0xFF for v in xp)
    if isinstance(xp, bytes):
        text = _decode_text(xp, "utf-16-le")
        if text:
            meta.fields.append(_Field("exif", "EXIF XPComment", text))
    try:
        sub = exif.get_ifd(_EXIF_IFD)
    except Exception:
        sub = {}
    comment = _user_comment(sub.get(_EXIF_USER_COMMENT))
    if comment:
        meta.fields.append(_Field("exif", "EXIF UserComment", comment))


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


def _read_xmp(raw: bytes, meta: _Metadata) -> None:
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
            target.extend(_Field("xmp", label, value) for value in values.get(local, ()))


_XMP_APP1 = b"http://ns.adobe.com/xap/1.0/\x00"
# JPEG covers MPO; AVIF and HEIF count only where their plugins are registered
_PILLOW_FORMATS = ("JPEG", "WEBP", "GIF", "TIFF", "AVIF", "HEIF")


def _read_with_pillow(data: bytes, meta: _Metadata) -> None:
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


def _collect(data: bytes, mime: str) -> _Metadata:
    meta = _Metadata([], [], [], [])
    try:
        if mime == "image/png":
            _read_png(data, meta)
        elif mime.startswith("image/"):
            _read_with_pillow(data, meta)
    except Exception:  # corrupt or hostile file: keep what was read before the failure
        logger.debug("metadata of a %s file could not be read completely", mime)
    return meta


# --- C2PA -------------------------------------------------------------------------


class _C2pa:
    """c2pa-python with the network off: no remote manifests, no OCSP, no hosts allowed."""

    def __init__(self, trust_anchors: str | None) -> None:
        try:
            import c2pa
        except ImportError:
            raise SettingError(
                "provenance c2pa",
                "is on, but the c2pa-python package is not installed",
                "install c2pa-python into Vigil's environment, or turn C2PA reading off",
            ) from None
        self._lib = c2pa
        settings: dict[str, Any] = {
            "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False},
            "core": {"allowed_network_hosts": []},
        }
        if trust_anchors:
            settings["trust"] = {"user_anchors": trust_anchors}
        self._settings = json.dumps(settings)
        self._local = threading.local()
        try:
            self._context()  # fail at start-up, not on the first image
        except Exception as e:
            raise SettingError(
                "provenance trust anchors" if trust_anchors else "provenance c2pa",
                f"the C2PA library refused its settings ({e})",
                "give trust anchors as PEM certificates, or none",
            ) from None

    def _context(self) -> Any:
        # one context per thread, so no two threads share the library's handle
        ctx = getattr(self._local, "context", None)
        if ctx is None:
            ctx = self._lib.Context.from_json(self._settings)
            self._local.context = ctx
        return ctx

    def read(self, data: bytes, mime: str) -> tuple[dict[str, Any], str | None] | None:
        """(manifest store, validation state), or None if there is none."""
        reader = self._lib.Reader.try_create(mime, io.BytesIO(data), None, self._context())
        if reader is None:
            return None
        with reader:
            store = json.loads(reader.json())
            state = reader.get_validation_state()
        return (store if isinstance(store, dict) else {}), state


def _source_type_term(value: str | None) -> str | None:
    """The generative term in a digitalSourceType URI or bare term, else None."""
    if not value:
        return None
    term = value.strip().rstrip("/").rsplit("/", 1)[-1]
    for known in GENERATIVE_SOURCE_TYPES:
        if term.casefold() == known.casefold():
            return known
    return None


def _walk_actions(node: object, agent: str | None, depth: int = 0) -> Iterator[tuple[str | None, str | None]]:
    """(digitalSourceType, softwareAgent nearest to it) for every object in an assertion's
    data that has either (actions, templates, ...), at any depth up to a bound."""
    if depth > 12:
        return
    if isinstance(node, dict):
        here = node.get("softwareAgent")
        if isinstance(here, dict):  # C2PA 2 writes {"name": ...}, C2PA 1 a string
            here = here.get("name")
        has_agent = isinstance(here, str) and bool(here.strip())
        if has_agent:
            agent = here
        dst = node.get("digitalSourceType")
        if isinstance(dst, str) or has_agent:
            yield (dst if isinstance(dst, str) else None), agent
        for value in node.values():
            if isinstance(value, (dict, list)):
                yield from _walk_actions(value, agent, depth + 1)
    elif isinstance(node, list):
        for value in node[:1000]:
            yield from _walk_actions(value, agent, depth + 1)


def _claim_generator(manifest: dict[str, Any]) -> str | None:
    info = manifest.get("claim_generator_info")
    if isinstance(info, list) and info and isinstance(info[0], dict):
        name = info[0].get("name")
        if isinstance(name, str) and name.strip():
            version = info[0].get("version")
            return f"{name} {version}" if isinstance(version, str) and version else name
    name = manifest.get("claim_generator")
    return name if isinstance(name, str) and name.strip() else None


def _signer(manifest: dict[str, Any]) -> str | None:
    sig = manifest.get("signature_info")
    if not isinstance(sig, dict):
        return None
    who = sig.get("common_name") or sig.get("issuer")
    issuer = sig.get("issuer")
    if not isinstance(who, str):
        return None
    return f"{who} ({issuer})" if isinstance(issuer, str) and issuer != who else who


def _validation_text(store: dict[str, Any], state: str | None) -> str:
    codes: list[str] = [
        s["code"]
        for s in store.get("validation_status") or []
        if isinstance(s, dict) and isinstance(s.get("code"), str)
    ]
    if state == "Trusted":
        return "signature valid, signer trusted"
    if state == "Valid":
        return "signature valid, but the signer is not on a trust list (anyone can make such a signature)"
    if state == "Invalid":
        failures = [c for c in codes if c != "signingCredential.untrusted"][:3]
        why = f" ({', '.join(failures)})" if failures else ""
        return f"validation failed{why}: altered after signing or forged; still evidence, not proof"
    return "not validated"


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_GENERATOR_NAME else text[: MAX_GENERATOR_NAME - 1] + "…"


# --- the scanner --------------------------------------------------------------------


class ProvenanceScanner:
    """Finds provenance evidence in image bytes; holds no per-image state."""

    def __init__(
        self,
        extra_files: Sequence[Path] = (),
        *,
        c2pa: bool = True,
        trust_anchors: str | None = None,
    ) -> None:
        """``extra_files``: operator generator catalogs, added to the built-in one.
        ``c2pa``: read Content Credentials (needs c2pa-python).
        ``trust_anchors``: PEM root certificates whose signers count as trusted (e.g. the
        C2PA trust list, saved by the operator; nothing is ever downloaded).

        Raises ``SettingError`` for a missing or malformed catalog, or C2PA settings the
        library refuses.
        """
        self.catalog = load_catalog(extra_files)
        self._names = _NameMatcher(self.catalog.generators)
        self._png_keys: dict[str, list[PngKey]] = {}
        for entry in self.catalog.png_keys:
            self._png_keys.setdefault(entry.key, []).append(entry)
        self._c2pa = _C2pa(trust_anchors) if c2pa else None

    def scan(self, data: bytes) -> tuple[ProvenanceFinding, ...]:
        """Positive findings only, strongest source first; () says nothing about the image.

        Never raises for bad input (corrupt, truncated, hostile or unknown files give no
        finding). ``TypeError`` if ``data`` is not bytes-like.
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"scan() takes the file's bytes, not {type(data).__name__}")
        data = bytes(data)
        mime = _sniff(data)
        if mime is None:
            return ()
        findings: list[ProvenanceFinding] = []
        if self._c2pa is not None:
            findings += self._scan_c2pa(data, mime)
        if mime.startswith("image/"):
            findings += self._scan_metadata(_collect(data, mime))
        unique: dict[tuple[str, str, str | None], ProvenanceFinding] = {}
        for f in findings:
            unique.setdefault((f.source, f.signal, f.generator), f)
        return tuple(unique.values())

    # C2PA

    def _scan_c2pa(self, data: bytes, mime: str) -> list[ProvenanceFinding]:
        assert self._c2pa is not None
        # every embedded manifest store has a JUMBF "jumb" box labelled "c2pa": most
        # images have neither, and then the library is not called at all
        if b"jumb" not in data and b"c2pa" not in data:
            return []
        try:
            result = self._c2pa.read(data, mime)
        except Exception as e:  # the library's errors must never stop a scan
            logger.warning("Content Credentials (C2PA) could not be read: %s: %s", type(e).__name__, _short(str(e)))
            return []
        if result is None:
            return []
        store, state = result
        manifests = store.get("manifests")
        if not isinstance(manifests, dict):
            return []
        active = store.get("active_manifest")
        status = _validation_text(store, state)
        order = sorted(manifests, key=lambda label: label != active)  # the current one first
        findings: list[ProvenanceFinding] = []
        for label in order:
            manifest = manifests[label]
            if not isinstance(manifest, dict):
                continue
            where = "the Content Credentials" if label == active else "an earlier version's Content Credentials"
            claim = _claim_generator(manifest)
            signer = _signer(manifest)
            extra = "".join(
                (
                    f"; made with {_short(claim)}" if claim else "",
                    f"; signed by {_short(signer)}" if signer else "",
                    f"; {status}",
                )
            )
            pairs = self._actions(manifest)
            generative = [(_source_type_term(value), agent) for value, agent in pairs]
            for term, agent in generative:
                if term is None:
                    continue
                findings.append(
                    ProvenanceFinding(
                        "c2pa",
                        f"digitalSourceType={term}",
                        f"{where} say: {GENERATIVE_SOURCE_TYPES[term]} ({term}){extra}",
                        self._tool_name(agent) or self._tool_name(claim),
                    )
                )
            if any(term for term, _ in generative):
                continue  # those findings already name the tool
            # no generative source type, but the tool that signed or acted may be one
            for text in (claim, *(agent for _, agent in pairs)):
                for gen in self._names.find(text or ""):
                    findings.append(
                        ProvenanceFinding(
                            "c2pa",
                            f"generator={gen.name}",
                            f"{where} name {gen.name}, {_KIND_TEXT[gen.kind]}{extra}",
                            gen.name,
                        )
                    )
        return findings

    def _tool_name(self, text: str | None) -> str | None:
        if not text:
            return None
        known = self._names.find(text)
        return known[0].name if known else _short(text)

    @staticmethod
    def _actions(manifest: dict[str, Any]) -> list[tuple[str | None, str | None]]:
        pairs: list[tuple[str | None, str | None]] = []
        for assertion in manifest.get("assertions") or []:
            if isinstance(assertion, dict):
                pairs += _walk_actions(assertion.get("data"), None)
        return pairs

    # XMP, EXIF, PNG text

    def _scan_metadata(self, meta: _Metadata) -> list[ProvenanceFinding]:
        findings: list[ProvenanceFinding] = []
        for field in meta.source_types:
            term = _source_type_term(field.text)
            if term is not None:
                findings.append(
                    ProvenanceFinding(
                        field.source,
                        f"digitalSourceType={term}",
                        f"{field.label} says: {GENERATIVE_SOURCE_TYPES[term]} ({term})",
                        None,
                    )
                )
        for field in meta.ai_markers:
            # the GB 45438 label is JSON with a "Label" member; a bare "AIGC" could be
            # anything (even a namespace prefix)
            if field.label.endswith("AIGC label") and "Label" not in field.text:
                continue
            findings.append(self._ai_marker(field))
        fields = list(meta.fields)
        for key, value in meta.png_texts:
            entry = self._png_key(key, value)
            if entry is not None:
                findings.append(
                    ProvenanceFinding(
                        "png-text",
                        f"png-text={key}",
                        f"PNG text chunk '{key}' holds {entry.generator} generation data",
                        entry.generator,
                    )
                )
                # its value is a prompt or a node graph: never searched further
                continue
            if key == "AIGC" and "Label" in value:
                findings.append(self._ai_marker(_Field("png-text", "PNG text 'AIGC' label", value)))
                continue
            fields.append(_Field("png-text", f"PNG text '{key}'", value))
        for field in fields:
            for settings in self.catalog.settings_texts:
                if all(s in field.text for s in settings.contains_all):
                    findings.append(
                        ProvenanceFinding(
                            field.source,
                            "generation-settings",
                            f"{field.label} holds {settings.generator} generation settings",
                            settings.generator,
                        )
                    )
            for gen in self._names.find(field.text):
                findings.append(
                    ProvenanceFinding(
                        field.source,
                        f"generator={gen.name}",
                        f"{field.label} names {gen.name}, {_KIND_TEXT[gen.kind]}",
                        gen.name,
                    )
                )
        return findings

    def _png_key(self, key: str, value: str) -> PngKey | None:
        for entry in self._png_keys.get(key, ()):
            if not entry.contains_any or any(s in value for s in entry.contains_any):
                return entry
        return None

    def _ai_marker(self, field: _Field) -> ProvenanceFinding:
        if field.label.endswith("AISystemUsed"):
            return ProvenanceFinding(
                field.source,
                "aiSystemUsed",
                f"{field.label} names the AI system that made the image",
                self._tool_name(field.text),
            )
        if field.label.endswith("AIPromptInformation"):
            return ProvenanceFinding(
                field.source,
                "aiPromptInformation",
                f"{field.label} records the prompt given to an AI system (not shown)",
                None,
            )
        return ProvenanceFinding(
            field.source,
            "aigc-label",
            f"{field.label}: marked as AI-generated under China's GB 45438-2025 labelling rules",
            None,
        )
