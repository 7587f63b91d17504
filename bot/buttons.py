"""The data a button carries back: one codec for every button Vigil sends.

The wire text stays short and readable (``del:42``, ``set:<chat>:mode:review``, ``pnotify:on``):
Telegram allows 64 bytes, and on Matrix a moderator may type it after ``!vigil``. Decoding is
bounded and strict: anything else is None (an old or forged button), never an exception.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

MAX_DATA = 64  # bytes: Telegram's limit for a button's data
MAX_RECORD_ID = 10**15


class RecordVerb(StrEnum):
    """A choice on an alert, about the audit record it came from."""

    DELETE = "del"
    KEEP = "keep"
    BAN = "ban"
    UNMUTE = "unmute"
    FALSE_POSITIVE = "fp"
    EXPORT = "export"
    DETAILS = "details"


# the alert's button keys (bot/alerts.py: first_buttons, details_buttons) and the verb each sends
VERB_OF_KEY = {
    "delete": RecordVerb.DELETE,
    "keep": RecordVerb.KEEP,
    "ban": RecordVerb.BAN,
    "unrestrict": RecordVerb.UNMUTE,
    "false_positive": RecordVerb.FALSE_POSITIVE,
    "export": RecordVerb.EXPORT,
    "details": RecordVerb.DETAILS,
}

SET, NOTICE = "set", "pnotify"
_CHAT_ID = re.compile(r"[-!#@A-Za-z0-9_.:=]{1,50}")  # a Telegram id, a Matrix room id
_WORD = re.compile(r"[a-z_]{1,16}")


@dataclass(frozen=True)
class RecordChoice:
    verb: RecordVerb
    record_id: int


@dataclass(frozen=True)
class SetChoice:
    """A setting of a group, chosen in the private ``/groups`` list."""

    chat_id: str
    key: str
    value: str


@dataclass(frozen=True)
class NoticeChoice:
    """A protected member's answer: be told when a manipulated copy of their photo is removed."""

    on: bool


class ReportVerb(StrEnum):
    """An admin's choice on a member's report (bot/reports.py), about the report it came from."""

    DELETE = "rdel"
    BLOCK = "rblock"
    DISMISS = "rdismiss"


@dataclass(frozen=True)
class ReportChoice:
    verb: ReportVerb
    report_id: int


Choice = RecordChoice | SetChoice | NoticeChoice | ReportChoice


def encode(choice: Choice) -> str:
    if isinstance(choice, RecordChoice):
        data = f"{choice.verb}:{choice.record_id}"
    elif isinstance(choice, SetChoice):
        data = f"{SET}:{choice.chat_id}:{choice.key}:{choice.value}"
    elif isinstance(choice, ReportChoice):
        data = f"{choice.verb}:{choice.report_id}"
    else:
        data = f"{NOTICE}:{'on' if choice.on else 'off'}"
    if len(data.encode()) > MAX_DATA or decode(data) != choice:
        raise ValueError(f"button data {data!r} cannot be carried: at most {MAX_DATA} bytes of known parts")
    return data


def decode(data: str) -> Choice | None:
    if not isinstance(data, str) or len(data.encode()) > MAX_DATA:
        return None
    verb, _, rest = data.partition(":")
    if verb == NOTICE:
        return NoticeChoice(rest == "on") if rest in ("on", "off") else None
    if verb == SET:
        chat_id, key, value = ([""] * 3 + rest.rsplit(":", 2))[-3:]  # a Matrix room id has a colon
        ok = _CHAT_ID.fullmatch(chat_id) and _WORD.fullmatch(key) and _WORD.fullmatch(value)
        return SetChoice(chat_id, key, value) if ok else None
    if not rest.isascii() or not rest.isdigit() or not 0 < int(rest) < MAX_RECORD_ID:
        return None
    if verb in set(ReportVerb):
        return ReportChoice(ReportVerb(verb), int(rest))
    try:
        record_verb = RecordVerb(verb)
    except ValueError:
        return None
    return RecordChoice(record_verb, int(rest))
