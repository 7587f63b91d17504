"""Checks on values before they reach SQL, so a wrong value gets a clear error and writes nothing.

The schema repeats these limits as CHECK constraints; this module turns them into
``BadStoreValue`` messages that name the field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bot.errors import BadStoreValue

PLATFORMS = ("telegram", "matrix")
MAX_ID = 255
MAX_NAME = 256  # display texts (titles, names) are cut to this, not refused
_HEX = re.compile(r"[0-9a-f]+")
_LABEL = re.compile(r"[a-z0-9_-]{1,32}")


def platform(value: object) -> str:
    if value not in PLATFORMS:
        raise BadStoreValue("platform", value, "'telegram' or 'matrix'")
    return str(value)


def ident(field: str, value: object) -> str:
    """A platform id as text: Telegram's integers become strings, Matrix ids stay as they are."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or not value or len(value) > MAX_ID:
        raise BadStoreValue(field, value, f"a non-empty id of at most {MAX_ID} characters (text or integer)")
    return value


def optional_ident(field: str, value: object) -> str | None:
    return None if value is None else ident(field, value)


def display(field: str, value: object) -> str | None:
    """Titles and display names: kept short; a long room name is cut, not refused."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadStoreValue(field, value, "text or None")
    return value[:MAX_NAME]


def text(field: str, value: object, limit: int, *, optional: bool = True) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or len(value) > limit or (not optional and not value):
        raise BadStoreValue(field, value, f"text of at most {limit} characters")
    return value


def choice(field: str, value: object, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise BadStoreValue(field, value, "one of " + ", ".join(repr(a) for a in allowed))
    return str(value)


def label(value: object) -> str:
    if not isinstance(value, str) or not _LABEL.fullmatch(value):
        raise BadStoreValue("label", value, "1 to 32 lowercase letters, digits, '_' or '-' (like 'local' or 'ncii')")
    return value


def hex_hash(field: str, value: object, length: int | None) -> str | None:
    """Lowercase hex of a fixed length (any length up to 64 when ``length`` is None)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadStoreValue(field, value, "a hex string or None")
    v = value.lower()
    ok = _HEX.fullmatch(v) is not None and (len(v) == length if length else 0 < len(v) <= 64)
    if not ok:
        size = f"exactly {length}" if length else "1 to 64"
        raise BadStoreValue(field, value, f"{size} hex digits")
    return v


def quality(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise BadStoreValue("pdq_quality", value, "a whole number from 0 to 100, or None")
    return value


def record_id(field: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadStoreValue(field, value, "a positive whole number (a record id)")
    return value


def json_text(field: str, value: Mapping[str, Any] | None, limit: int) -> str:
    """A small JSON object as text; bytes or other non-JSON values are refused."""
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise BadStoreValue(field, value, "a mapping of JSON values")
    try:
        out = json.dumps(dict(value), ensure_ascii=False, sort_keys=True, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise BadStoreValue(
            field, value, f"JSON values only (text, numbers, booleans, lists, mappings): {exc}"
        ) from None
    if len(out) > limit:
        raise BadStoreValue(field, f"<{len(out)} characters of JSON>", f"at most {limit} characters of JSON")
    return out


def timestamp(value: datetime) -> str:
    """The stored form of a moment: ISO-8601 in UTC with microseconds, so text order is time order.

    A naive datetime is taken as UTC.
    """
    if not isinstance(value, datetime):
        raise BadStoreValue("time", value, "a datetime")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds")
