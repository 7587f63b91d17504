"""The values an alert is made from: what was found, where, by whom, and what Vigil did.

Platform-neutral and checked on construction (an unknown word is a BadAlertFacts, not a wrong text).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from bot.errors import BadAlertFacts
from bot.events import PICTURE_ROLES, SENDER_KINDS
from bot.guidance.resources import REGIONS
from bot.values import ActionFailure, AlertOutcome, SanctionDone

BRIDGED_NETWORKS = ("", "whatsapp")  # networks a Matrix bridge may bring senders from (bot.platforms.matrix_bridges)
FindingKind = Literal["nudity", "nsfw", "hash", "derived", "provenance", "unscannable", "flood"]
FINDING_KINDS: tuple[FindingKind, ...] = ("nudity", "nsfw", "hash", "derived", "provenance", "unscannable", "flood")
# the words as plain strings (for tables and parameters); the fields below take the enums
OUTCOMES = tuple(o.value for o in AlertOutcome)
FAILURES = tuple(f.value for f in ActionFailure)
SENDER_ACTIONS = tuple(a.value for a in SanctionDone)
PLATFORMS = ("telegram", "matrix")
BUTTONS = ("ban", "unrestrict", "false_positive", "export", "delete", "keep", "details")


# --- values ---------------------------------------------------------------------------------


def one_of(field_name: str, value: object, allowed: Iterable[str]) -> None:
    allowed = tuple(allowed)
    if value not in allowed:
        raise BadAlertFacts(field_name, value, "one of " + ", ".join(allowed))


RAID = "raid"  # Finding("flood", detail=RAID): a new member's picture held during a raid of new accounts


@dataclass(frozen=True)
class Finding:
    kind: FindingKind
    label: str = ""  # what it was: nudity: the NudeNet class; hash: the list's name; provenance: the signal
    score: float | None = None  # nudity/nsfw score, 0..1
    distance: int | None = None  # hash match distance
    algorithm: str | None = None  # hash: "pdq" | "phash" | "sha256"
    detail: str = ""  # unscannable: the reason; derived: the owner's name, "" where they may not be named

    def __post_init__(self) -> None:
        one_of("Finding.kind", self.kind, FINDING_KINDS)
        if self.score is not None and not 0.0 <= self.score <= 1.0:
            raise BadAlertFacts("Finding.score", self.score, "between 0 and 1, or None")
        if self.distance is not None and self.distance < 0:
            raise BadAlertFacts("Finding.distance", self.distance, "0 or more, or None")


@dataclass(frozen=True)
class AlertFacts:
    platform: str  # "telegram" | "matrix"
    group_title: str
    group_id: str
    message_id: str
    message_link: str | None
    sender_name: str
    sender_username: str | None
    sender_id: str
    posted_at: datetime  # aware
    findings: tuple[Finding, ...]
    outcome: AlertOutcome
    failure: ActionFailure | None = None  # why a delete failed
    sender_action: SanctionDone = SanctionDone.NONE
    muted_until: datetime | None = None
    dry_run: bool = False  # everything is "would have"
    region: str = "OTHER"
    media_left: tuple[str, ...] = ()  # Matrix: files (mxc URIs) still on the homeserver after the redaction
    sender_kind: str = "user"  # or a chat posting as itself: bot.events.SENDER_KINDS
    picture: str = ""  # where in the message: "" its file, "thumb", "cover", "quoted" (a quoted message's)
    bridged: str = ""  # Matrix: the network of a sender bridged into the room ("whatsapp"), "" if none

    def __post_init__(self) -> None:
        one_of("AlertFacts.sender_kind", self.sender_kind, SENDER_KINDS)
        one_of("AlertFacts.picture", self.picture, ("", *PICTURE_ROLES))
        one_of("AlertFacts.bridged", self.bridged, BRIDGED_NETWORKS)
        one_of("AlertFacts.platform", self.platform, PLATFORMS)
        one_of("AlertFacts.outcome", self.outcome, OUTCOMES)
        one_of("AlertFacts.sender_action", self.sender_action, SENDER_ACTIONS)
        one_of("AlertFacts.region", self.region, REGIONS)
        if self.failure is not None:
            one_of("AlertFacts.failure", self.failure, FAILURES)
        if self.posted_at.tzinfo is None or self.posted_at.utcoffset() is None:
            raise BadAlertFacts("AlertFacts.posted_at", self.posted_at, "a datetime with a time zone")
        if any(not isinstance(f, Finding) for f in self.findings):
            raise BadAlertFacts("AlertFacts.findings", self.findings, "a tuple of Finding values")
