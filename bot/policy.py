"""The decision for one scanned image: a pure function of what was found and the group's settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from bot.config import SENSITIVITIES, GroupDefaults
from bot.values import BlockAction, Sanction, Verdict
from detectors.verdict import NUDITY, REVIEW

ALLOW, ASK, DELETE, REPORT = Verdict.ALLOW, Verdict.ASK, Verdict.DELETE, Verdict.REPORT
FLOOD_REASON = "flood: held until an admin decides"
RAID_REASON = "raid: a new member's picture while many new members post; held until an admin decides"


@dataclass(frozen=True)
class GroupSettings(GroupDefaults):
    """A group's settings: the instance-wide defaults, changed per group by its admins."""

    logchat: str | None = None  # the admins' chat that gets alerts when none can be reached privately

    @classmethod
    def from_defaults(cls, d: GroupDefaults, stored: Mapping[str, object] | None = None) -> GroupSettings:
        base = cls(**asdict(d))
        known: dict[str, Any] = {k: v for k, v in (stored or {}).items() if k in cls.__dataclass_fields__}
        return replace(base, **known)

    def threshold_shift(self) -> float:
        if self.sensitivity in SENSITIVITIES:
            return SENSITIVITIES[self.sensitivity]
        return float(self.sensitivity) - 0.5  # a number is the delete threshold around 0.5


@dataclass(frozen=True)
class Evidence:
    """What the detectors and lists found, reduced to what the policy needs."""

    severity: str  # the image's label from the detectors (detectors.verdict), judged with the group's thresholds
    block_action: BlockAction | None = None  # when a block list matched
    allowed: bool = False  # an allow list matched: wins over everything
    unscannable: bool = False  # the image could not be checked
    derived: bool = False  # a manipulated copy of a protected photo
    flood: bool = False  # one of many copies of a picture posted in a short time (bot/flood.py)
    raid: bool = False  # a new member's picture while many new members post pictures (bot/flood.py)


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    sender_action: Sanction = Sanction.NONE
    dry_run: bool = False
    reason: str = ""  # why, for the audit log

    @property
    def alert(self) -> bool:
        return self.verdict != ALLOW


def decide(evidence: Evidence, settings: GroupSettings, *, exempt: bool) -> Decision:
    """Allow, ask the admins, delete (plus restrict or ban), or only report.

    ``exempt``: the sender is an admin or exempted; their hits are reported, not acted on,
    unless the group turned ``spare_exempt`` off.
    """
    if settings.mode == "off":
        return Decision(ALLOW, reason="vigil is off in this group")
    if evidence.allowed:
        return Decision(ALLOW, reason="on the group's allow list")
    dry = settings.mode == "dryrun"
    if evidence.unscannable:
        return Decision(REPORT, dry_run=dry, reason="could not be checked")
    if evidence.block_action == BlockAction.DELETE or evidence.severity == NUDITY:
        verdict, reason = DELETE, "block list" if evidence.block_action == BlockAction.DELETE else "nudity"
    elif evidence.block_action == BlockAction.REVIEW or evidence.severity == REVIEW or evidence.derived:
        verdict, reason = ASK, "review band" if evidence.severity == REVIEW else "needs review"
    elif evidence.flood or evidence.raid:
        verdict, reason = ASK, FLOOD_REASON if evidence.flood else RAID_REASON
    else:
        return Decision(ALLOW, reason="clean")
    if settings.mode == "review" and verdict == DELETE:
        verdict, reason = ASK, f"{reason}; the group asks admins first"
    if exempt and settings.spare_exempt:
        return Decision(REPORT, dry_run=dry, reason=f"{reason}; sender is an admin or exempt")
    action = Sanction(settings.action) if verdict == DELETE else Sanction.NONE
    return Decision(verdict, sender_action=action, dry_run=dry, reason=reason)
