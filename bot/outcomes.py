"""What one work item came to: the value the alert, the metrics and the one-alert-per-message claim read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.lists import ListMatch
from bot.platforms.errors import PlatformError
from bot.policy import Decision
from bot.protect import DerivedMatch
from bot.values import ActionFailure, AlertOutcome, SanctionDone, Verdict
from detectors.errors import MediaError, VigilError
from detectors.scanner import Scan


@dataclass(frozen=True)
class Acted:
    """What carrying out a decision did on the platform (or would have, in a dry run)."""

    deleted: bool = False
    delete_failure: ActionFailure | None = None
    sender_action_done: SanctionDone = SanctionDone.NONE
    muted_until: datetime | None = None


NOTHING_DONE = Acted()


@dataclass(frozen=True)
class Outcome:
    """What one work item came to, for the alert and the audit."""

    scan: Scan | None
    error: MediaError | PlatformError | VigilError | None  # why it could not be checked (a reason word on each)
    matches: tuple[ListMatch, ...]
    severity: str  # the detectors' label of the frames that decide (detectors.verdict): clean, review, nudity
    decision: Decision
    acted: Acted = NOTHING_DONE
    derived: tuple[DerivedMatch, ...] = ()  # manipulated copies of protected photos (bot/protect.py)

    @property
    def deleted(self) -> bool:
        return self.acted.deleted

    @property
    def delete_failure(self) -> ActionFailure | None:
        return self.acted.delete_failure

    @property
    def sender_action_done(self) -> SanctionDone:
        return self.acted.sender_action_done

    @property
    def muted_until(self) -> datetime | None:
        return self.acted.muted_until


def alert_outcome(outcome: Outcome) -> AlertOutcome:
    """The one word the alert leads with."""
    d = outcome.decision
    if outcome.error is not None:
        return AlertOutcome.NOT_CHECKED
    if d.verdict == Verdict.DELETE:
        return AlertOutcome.DELETED if outcome.deleted else AlertOutcome.DELETE_FAILED
    if d.verdict == Verdict.ASK:
        return AlertOutcome.REVIEW
    return AlertOutcome.REPORTED
