"""The small vocabularies the core parts share, as StrEnums (each member compares and prints as its text,
so stored records, metrics labels and JSON keep the same words)."""

from __future__ import annotations

from enum import StrEnum


class Verdict(StrEnum):
    """What the policy decided for one image."""

    ALLOW = "allow"
    ASK = "review"  # ask the admins; the image stays until one decides
    DELETE = "delete"
    REPORT = "report"  # keep it, tell the admins (an exempt sender, an unscannable image)


class Sanction(StrEnum):
    """What a group does to the sender of a hit (its ``action`` setting)."""

    NONE = "none"
    MUTE = "mute"
    BAN = "ban"


class SanctionDone(StrEnum):
    """What was done to the sender, as the alert says it."""

    NONE = "none"
    MUTED = "muted"
    BANNED = "banned"


DONE_BY_SANCTION = {Sanction.MUTE: SanctionDone.MUTED, Sanction.BAN: SanctionDone.BANNED}


class ActionFailure(StrEnum):
    """Why a platform action did not happen."""

    TOO_OLD = "too_old"  # Telegram: older than 48 hours
    NO_RIGHT = "no_right"
    ERROR = "error"


class AlertOutcome(StrEnum):
    """What became of the image, in one word, for the alert (and the one-alert-per-message claim)."""

    DELETED = "deleted"
    REVIEW = "review"
    REPORTED = "reported"
    DELETE_FAILED = "delete_failed"
    NOT_CHECKED = "not_checked"


class ListKind(StrEnum):
    BLOCK = "block"
    ALLOW = "allow"


class BlockAction(StrEnum):
    """What a block list does on a match."""

    DELETE = "delete"
    REVIEW = "review"
