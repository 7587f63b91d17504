"""Bounds on every value a Matrix event brings from the network, checked where it enters the adapter.

A homeserver relays events from other homeservers, and those may not refuse what the spec
forbids (Synapse refuses a 300-character event id from its own users; a remote server may send
one anyway). Everything Vigil records, downloads or calls with is checked here first: ids by
the spec's grammar and length, ``mxc://`` URIs strictly (a media id is ``[A-Za-z0-9_-]+``, so
it can never become a path), sizes, mimetypes and text lengths, and the shape of the event
(size, nesting). An event that fails is skipped with a reason (for the log and the metrics).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, TypeGuard

MAX_ID = 255  # the spec's limit, in bytes, for event, room and user ids
MAX_EVENT_JSON = 65_536  # the spec's limit for a whole event (federation refuses bigger ones)
MAX_DEPTH = 12  # nesting of an event's JSON; real events are a few levels deep
MAX_NODES = 4_000  # values in one event's JSON
MAX_MEDIA_ID = 255
MAX_SIZE = 2**53  # a declared file size beyond this is nonsense
MAX_BODY = 4_000  # characters of a body read for a command
MAX_HTML = 65_536  # characters of formatted_body parsed for inline images
MAX_KEY_FIELD = 128  # base64 of an attachment's key, iv or hash is 22 to 44 characters
MAX_NAME = 256  # display names and room names are cut to this

_PRINTABLE = re.compile(r"[\x21-\x7e]+")  # ASCII without spaces or control characters
_DNS_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,253}[A-Za-z0-9])?")
_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
_IPV6 = re.compile(r"\[[0-9A-Fa-f:.]{2,45}\]")
_PORT = re.compile(r"\d{1,5}")
_MEDIA_ID = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_MEDIA_ID}}}")
_MIME = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}")
_BASE64 = re.compile(rf"[A-Za-z0-9+/_=-]{{1,{MAX_KEY_FIELD}}}")


def server_name(value: object) -> bool:
    """The spec's server name: a DNS name, an IPv4 address or a bracketed IPv6 one, and an optional port."""
    if not isinstance(value, str) or not value or len(value) > MAX_ID:
        return False
    host, port = value, None
    if value.startswith("["):
        end = value.find("]")
        host, rest = value[: end + 1], value[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                return False
            port = rest[1:]
    elif ":" in value:
        host, _, port = value.partition(":")
    if port is not None and (not _PORT.fullmatch(port) or not 0 < int(port) < 65536):
        return False
    if host.startswith("["):
        return bool(_IPV6.fullmatch(host))
    if _IPV4.fullmatch(host):
        return all(int(part) < 256 for part in host.split("."))
    return bool(_DNS_NAME.fullmatch(host)) and ".." not in host


def _sigil_id(value: object, sigil: str) -> TypeGuard[str]:
    if not isinstance(value, str) or not 1 < len(value.encode()) <= MAX_ID:
        return False
    return value[0] == sigil and bool(_PRINTABLE.fullmatch(value))


def event_id(value: object) -> TypeGuard[str]:
    """``$`` and printable ASCII, at most 255 bytes (room versions 1-2 add ``:server``; later ones are hashes)."""
    return _sigil_id(value, "$")


def room_id(value: object) -> TypeGuard[str]:
    return _sigil_id(value, "!")


def user_id(value: object) -> TypeGuard[str]:
    """``@localpart:server``, at most 255 bytes, the server part a valid server name."""
    if not _sigil_id(value, "@"):
        return False
    localpart, sep, server = str(value)[1:].partition(":")
    return bool(localpart and sep) and server_name(server)


def parse_mxc(uri: object) -> tuple[str, str]:
    """``mxc://server/media_id`` -> (server, media_id), strictly: ValueError for anything else.

    The media id is ``[A-Za-z0-9_-]+`` (the spec's grammar) and the server a valid server name,
    so neither can carry ``..``, ``/``, ``?`` or ``%`` into a URL path.
    """
    if not isinstance(uri, str) or not uri.startswith("mxc://") or len(uri) > 6 + MAX_ID + 1 + MAX_MEDIA_ID:
        raise ValueError("not an mxc://server/media_id URI")
    server, slash, media = uri[6:].partition("/")
    if not slash or not server_name(server) or not _MEDIA_ID.fullmatch(media):
        raise ValueError("not an mxc://server/media_id URI (server name or media id out of grammar)")
    return server, media


def mxc(value: object) -> str | None:
    """The URI when it is a valid ``mxc://server/media_id``, else None."""
    try:
        parse_mxc(value)
    except ValueError:
        return None
    return value  # type: ignore[return-value]


def size(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SIZE:
        return value
    return None


def mimetype(value: object) -> str | None:
    if isinstance(value, str) and len(value) <= 129 and _MIME.fullmatch(value.lower()):
        return value.lower()
    return None


def key_field(value: object) -> str | None:
    """An attachment's key, iv or hash: base64 of bounded length."""
    return value if isinstance(value, str) and _BASE64.fullmatch(value) else None


def name(value: object) -> str:
    """A display or room name, cut to MAX_NAME characters (names are shown, never used as ids)."""
    return value[:MAX_NAME] if isinstance(value, str) else ""


def text(value: object, limit: int) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _shape_problem(value: Any) -> str | None:
    """'too deep' or 'too many values' for JSON beyond the bounds; iterative, so no recursion limit."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    nodes = 0
    while stack:
        item, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            return "too_many_values"
        if isinstance(item, Mapping):
            if depth >= MAX_DEPTH:
                return "too_deep"
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            if depth >= MAX_DEPTH:
                return "too_deep"
            stack.extend((v, depth + 1) for v in item)
    return None


def event_problem(source: Mapping[str, Any]) -> str | None:
    """Why this event (its JSON, decrypted where it was encrypted) must be skipped, or None.

    The reason is a short label for the metric; it never quotes the event.
    """
    if not event_id(source.get("event_id")):
        return "bad_event_id"
    if not user_id(source.get("sender")):
        return "bad_sender"
    if not isinstance(source.get("type"), str) or len(source["type"]) > MAX_ID:
        return "bad_type"
    content = source.get("content")
    if content is not None and not isinstance(content, Mapping):
        return "bad_content"
    problem = _shape_problem(source)
    if problem:
        return problem
    try:
        encoded = json.dumps(source, ensure_ascii=False, separators=(",", ":"), default=str)
    except (TypeError, ValueError):
        return "not_json"
    if len(encoded.encode()) > MAX_EVENT_JSON * 2:  # decrypted events carry some more than the wire form
        return "too_large"
    return None


def shown_id(value: object) -> str:
    """An id for a log line: as it is when valid-looking, else its start and length (never a whole payload)."""
    if isinstance(value, str) and len(value) <= MAX_ID and _PRINTABLE.fullmatch(value or "x"):
        return value
    text_value = value if isinstance(value, str) else type(value).__name__
    return f"{text_value[:24]!r}…({len(text_value)} chars)"
