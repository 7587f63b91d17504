"""Policy rules read from Matrix policy rooms: the one place their shapes are parsed.

Image-hash rules follow MSC4113 (not merged yet, so its names may change: keep them here):
a state event of type ``m.policy.media_hash`` (or ``space.midnightthoughts.policy.media_hash``),
state key = the hash, content ``{"m.pdqhash": {"hash": "<64 hex>", "quality": "<0-100>"},
"reason": "..."}`` (the hash also under ``space.midnightthoughts.pdqhash``). Quality comes as a
number or a string in the wild; everything else is strict. Empty content means the rule was
removed (or redacted). User rules are the spec's ``m.policy.rule.user`` with an ``m.ban``
recommendation; their entity is a glob (``*`` and ``?``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from detectors.errors import VigilError

MEDIA_HASH_TYPES = ("m.policy.media_hash", "space.midnightthoughts.policy.media_hash")
PDQ_KEYS = ("m.pdqhash", "space.midnightthoughts.pdqhash")
USER_RULE_TYPES = ("m.policy.rule.user", "m.room.rule.user", "org.matrix.mjolnir.rule.user")  # the older names too
BAN = ("m.ban", "org.matrix.mjolnir.ban")
POLICY_TYPES = MEDIA_HASH_TYPES + USER_RULE_TYPES
MAX_REASON = 500  # characters kept as the entry's note
MAX_ENTITY = 255  # a user id's bound
MAX_STATE_KEY = 255
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_QUALITY = re.compile(r"[0-9]{1,3}")


class BadPolicyRule(VigilError, ValueError):
    """A rule in a policy room that Vigil cannot read: logged by its ids and skipped."""


@dataclass(frozen=True)
class MediaHashRule:
    state_key: str
    pdq: str  # 64 lowercase hex digits
    quality: int  # 0..100
    reason: str


@dataclass(frozen=True)
class UserBanRule:
    state_key: str
    entity: str  # a user id or a glob of them
    reason: str

    def matches(self, user_id: str) -> bool:
        return glob_match(self.entity, user_id)


def _reason(content: Mapping[str, Any]) -> str:
    reason = content.get("reason", "")
    if not isinstance(reason, str):
        raise BadPolicyRule("the reason is not text")
    if len(reason) > MAX_REASON:
        raise BadPolicyRule(f"the reason is longer than {MAX_REASON} characters")
    return "".join(ch for ch in reason if ch.isprintable())


def _quality(value: object) -> int:
    """A quality as a number (int, or a float with no fraction) or a string of digits; 0..100."""
    if isinstance(value, bool):
        raise BadPolicyRule("the quality is not a number")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and _QUALITY.fullmatch(value.strip()):
        value = int(value.strip())
    if not isinstance(value, int) or not 0 <= value <= 100:
        raise BadPolicyRule("the quality is not a whole number from 0 to 100")
    return value


def parse_media_hash(state_key: object, content: object) -> MediaHashRule | None:
    """The rule of one media-hash state event; None when it was removed (empty content)."""
    if not isinstance(state_key, str) or not state_key or len(state_key) > MAX_STATE_KEY:
        raise BadPolicyRule("the state key is not a bounded text")
    if not isinstance(content, Mapping):
        raise BadPolicyRule("the content is not an object")
    if not content:
        return None
    found = [content[k] for k in PDQ_KEYS if k in content]
    if not found:
        raise BadPolicyRule(f"no PDQ hash (one of {', '.join(PDQ_KEYS)})")
    pdq = found[0]
    if not isinstance(pdq, Mapping):
        raise BadPolicyRule("the PDQ hash is not an object")
    value = pdq.get("hash")
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise BadPolicyRule("the PDQ hash is not 64 hex digits")
    if _HEX64.fullmatch(state_key) and state_key.lower() != value.lower():
        raise BadPolicyRule("the state key and the PDQ hash differ")
    return MediaHashRule(state_key, value.lower(), _quality(pdq.get("quality")), _reason(content))


def parse_user_rule(state_key: object, content: object) -> UserBanRule | None:
    """A ban rule for users; None when removed, or when its recommendation is not a ban."""
    if not isinstance(state_key, str) or not state_key or len(state_key) > MAX_STATE_KEY:
        raise BadPolicyRule("the state key is not a bounded text")
    if not isinstance(content, Mapping):
        raise BadPolicyRule("the content is not an object")
    if not content:
        return None
    if content.get("recommendation") not in BAN:
        return None
    entity = content.get("entity")
    if not isinstance(entity, str) or not 0 < len(entity) <= MAX_ENTITY or not entity.isprintable() or " " in entity:
        raise BadPolicyRule("the entity is not a user id or a glob of them")
    return UserBanRule(state_key, entity, _reason(content))


def glob_match(pattern: str, text: str) -> bool:
    """``*`` any run of characters, ``?`` one character; everything else literal (no regex from the network)."""
    p = t = 0
    star, mark = -1, 0
    while t < len(text):
        if p < len(pattern) and (pattern[p] == "?" or pattern[p] == text[t]):
            p, t = p + 1, t + 1
        elif p < len(pattern) and pattern[p] == "*":
            star, mark, p = p, t, p + 1
        elif star >= 0:
            p, mark = star + 1, mark + 1
            t = mark
        else:
            return False
    while p < len(pattern) and pattern[p] == "*":
        p += 1
    return p == len(pattern)
