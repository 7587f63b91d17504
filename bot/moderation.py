"""What happens to one posted image: fetch, scan, match lists, decide, act, alert, record.

Every step is safe to repeat: the work item stays pending in the store until the end, and a
run that was cut short (crash, restart) is replayed from the start. Actions are recorded
before they are attempted and skipped when already done; alerts are sent once per admin per
finding; the audit record of a work item is reused on replay.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, TypeVar

from bot.errors import DownloadTimedOut, GaveUp
from bot.events import MediaPosted
from bot.lists import ListMatch, as_signals
from bot.metrics import metrics_of
from bot.platforms.errors import (
    PlatformError,
    RetryLater,
    Transient,
)
from bot.policy import ALLOW, ASK, DELETE, Decision, Evidence, GroupSettings, decide
from bot.protect import DerivedMatch, derived_evidence
from bot.repeats import platform_key, sha256_of
from detectors.errors import MediaError, TooManyBytes
from detectors.scanner import Scan
from detectors.verdict import CLEAN, judge_frames

if TYPE_CHECKING:
    from bot.core import Core

log = logging.getLogger("vigil.moderation")
T = TypeVar("T")

RETRIES = 6  # per platform call; with backoff this spans about a minute


async def with_retries(what: str, call: Callable[[], Awaitable[T]], *, attempts: int = RETRIES) -> T:
    """Retry rate limits (as long as the platform asks) and transient errors (with jittered backoff)."""
    delay = 0.5
    for attempt in range(1, attempts + 1):
        try:
            return await call()
        except RetryLater as exc:
            if attempt == attempts:
                raise
            log.warning("%s: rate limited, retrying in %.1f s", what, exc.retry_after)
            await asyncio.sleep(exc.retry_after)
        except Transient as exc:
            if attempt == attempts:
                raise
            log.warning("%s: %s; retry %d in %.1f s", what, exc, attempt, delay)
            await asyncio.sleep(delay * (0.75 + random.random() / 2))
            delay = min(delay * 2, 15.0)
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Outcome:
    """What one work item came to, for the alert and the audit."""

    scan: Scan | None
    error: MediaError | PlatformError | None
    matches: tuple[ListMatch, ...]
    label: str
    decision: Decision
    deleted: bool
    delete_failure: str | None  # "too_old" | "no_right" | "error"
    sender_action_done: str  # "none" | "muted" | "banned"
    muted_until: datetime | None
    derived: tuple[DerivedMatch, ...] = ()  # manipulated copies of protected photos (bot/protect.py)


def judge_frames_label(core: Core, scan: Scan, settings: GroupSettings, frames: Iterable[int]) -> str:
    """The label of these frames of a scan, with the group's thresholds."""
    thresholds = core.scanner.thresholds.shifted(settings.threshold_shift())
    chosen = [scan.frames[i] for i in frames]
    label, _ = judge_frames([(((d.label, d.score) for d in f.detections), f.nsfw) for f in chosen], thresholds)
    return label


class Moderator:
    def __init__(self, core: Core) -> None:
        self.core = core

    async def handle(self, work_id: int, event: MediaPosted, *, detach: bool = False) -> Awaitable[None] | None:
        """Handles one item. ``detach``: when the decision is a delete, returns the rest (the delete,
        sent with the chat's other deletes, then alerts and finishing the item) to be run on its
        own, so that the chat's next image need not wait for it; None when all was done here."""
        core = self.core
        platform = core.platforms[event.chat.platform]
        settings = await core.group_settings(event.chat)
        if settings.mode == "off":
            await core.store.finish_work(work_id)
            return None
        list_ids = await core.list_ids_for(event.chat)
        # trimmed views, rotations and local features only when there is a list to match
        # (a local fingerprint is also needed to look protected photos up, or keep a group photo)
        scan, error = await self._scan(
            platform,
            event,
            list_signals=core.lists.wants_signals(list_ids) or core.protector.wants_fingerprints(settings.group_photos),
        )
        # the chat's images are scanned side by side, but decided and acted on in the order they came
        await core.pipeline.turn(event.chat.platform, event.chat.chat_id, work_id)
        matches: tuple[ListMatch, ...] = ()
        label = CLEAN
        if scan is not None:
            label = judge_frames_label(core, scan, settings, range(len(scan.frames)))
            if list_ids:
                match = partial(
                    core.lists.match,
                    list_ids,
                    [as_signals(f) for f in scan.frames],
                    distance=settings.hash_distance,
                    min_quality=settings.pdq_min_quality,
                )
                matches = tuple(await core.pipeline.run_cpu(match, timeout=core.config.pipeline.scan_timeout))
        derived: tuple[DerivedMatch, ...] = ()
        if scan is not None:
            found = await core.protector.match_scan(scan)
            derived = derived_evidence(found, label=label, sender=(event.sender.platform, event.sender.user_id))
        allowed = any(m.kind == "allow" for m in matches)
        if allowed and scan is not None and len(scan.frames) > 1:
            label, matches, derived, allowed = await self._frames_not_allowed(scan, label, matches, derived, settings)
        blocks = [m for m in matches if m.kind == "block"]
        evidence = Evidence(
            label=label,
            block_action=("delete" if any(m.action == "delete" for m in blocks) else "review") if blocks else None,
            allowed=allowed,
            unscannable=error is not None,
            derived=bool(derived),
        )
        exempt = False
        if evidence.label != CLEAN or blocks or derived or error is not None:
            # an anonymous admin posts as the group itself: only the group's admins can
            exempt = event.sender.kind == "anonymous_admin" or await core.is_exempt(event.chat, event.sender.user_id)
        decision = decide(evidence, settings, exempt=exempt)
        audit_id = await core.record_scan(work_id, event, scan, error, matches, label, decision, derived=derived)
        rest = self._conclude(
            work_id, event, platform, settings, scan, error, matches, label, decision, derived, audit_id
        )
        if detach and decision.verdict == DELETE and not decision.dry_run:
            return rest
        await rest
        return None

    async def _conclude(
        self,
        work_id: int,
        event: MediaPosted,
        platform,
        settings: GroupSettings,
        scan: Scan | None,
        error: MediaError | PlatformError | None,
        matches: tuple[ListMatch, ...],
        label: str,
        decision: Decision,
        derived: tuple[DerivedMatch, ...],
        audit_id: int,
    ) -> None:
        """What follows a decision: act, alert, keep a group photo, finish the item."""
        core = self.core
        deleted, failure, sanction, until = await self._act(platform, event, decision, settings, audit_id)
        outcome = Outcome(scan, error, matches, label, decision, deleted, failure, sanction, until, derived=derived)
        metrics_of(core).outcome(event.chat.platform, outcome)
        if decision.alert and await self._first_report_of_message(work_id, event, outcome):
            await core.notifier.alert_admins(event, outcome, settings, audit_id)
        elif decision.alert:
            log.info(
                "chat %s message %s: already reported for another of its pictures or versions; "
                "audit record %d, no second alert",
                event.chat.chat_id,
                event.message_id,
                audit_id,
            )
        if derived:
            await core.notifier.owner_notices(event, outcome, settings, audit_id)
        elif settings.group_photos and decision.verdict == ALLOW and not matches and scan is not None:
            await self._keep_group_photo(event, scan, settings)
        await core.store.finish_work(work_id)
        await core.store.delete_state(f"work:{work_id}:audit")
        log.info(
            "chat %s message %s: %s -> %s%s",
            event.chat.chat_id,
            event.message_id,
            label if error is None else "unscannable",
            decision.verdict,
            " (dry run)" if decision.dry_run else "",
        )

    async def gave_up(self, work_id: int, event: MediaPosted, last_error: str) -> None:
        """The image could not be checked in ``max_attempts`` attempts: the admins are told to look at
        it themselves (once; the record and the alerts are reused if this is replayed)."""
        core = self.core
        settings = await core.group_settings(event.chat)
        if settings.mode == "off":
            return
        error = GaveUp(core.config.pipeline.max_attempts, last_error)
        decision = decide(Evidence(label=CLEAN, unscannable=True), settings, exempt=False)
        audit_id = await core.record_scan(work_id, event, None, error, (), CLEAN, decision)
        outcome = Outcome(None, error, (), CLEAN, decision, False, None, "none", None)
        metrics_of(core).outcome(event.chat.platform, outcome)
        if decision.alert and await self._first_report_of_message(work_id, event, outcome):
            await core.notifier.alert_admins(event, outcome, settings, audit_id)

    async def _first_report_of_message(self, work_id: int, event: MediaPosted, outcome: Outcome) -> bool:
        """One alert per message: a message's pictures (file, thumbnail, cover) and versions are
        separate work items, and two of them can hit. The first to report claims the message
        (a replay of that item still owns it); a later one alerts only when it says more (the
        message deleted now, where it was only put to review or reported before)."""
        from bot.notify import outcome_word

        word = outcome_word(outcome)
        claim = await self.core.store.record_action(
            event.chat.platform, event.chat.chat_id, event.message_id, "alert", {"work": work_id, "outcome": word}
        )
        if claim.params.get("work") == work_id:
            if claim.state == "pending":  # settled, so that retention prunes it like any action
                await self.core.store.action_done(claim.id)
            return True
        return word == "deleted" and claim.params.get("outcome") != "deleted"

    async def _frames_not_allowed(
        self,
        scan: Scan,
        label: str,
        matches: tuple[ListMatch, ...],
        derived: tuple[DerivedMatch, ...],
        settings: GroupSettings,
    ) -> tuple[str, tuple[ListMatch, ...], tuple[DerivedMatch, ...], bool]:
        """An allow match excuses only the frames it covers: an animation whose first frame is an
        allowed picture and whose next one is nudity or a blocked copy is judged by the rest.

        Returns the label, list matches, protected-photo matches and whether the whole file is
        allowed, each for the frames no allow list covers."""
        core = self.core
        allow_ids = sorted({m.list_id for m in matches if m.kind == "allow"})
        timeout = core.config.pipeline.scan_timeout
        signals = [as_signals(f) for f in scan.frames]

        def covered(i: int) -> bool:
            return bool(
                core.lists.match(
                    allow_ids, [signals[i]], distance=settings.hash_distance, min_quality=settings.pdq_min_quality
                )
            )

        rest = [i for i in range(len(signals)) if not await core.pipeline.run_cpu(partial(covered, i), timeout=timeout)]
        if not rest:
            return label, matches, derived, True  # every frame is allowed: the whole file is
        others = sorted({m.list_id for m in matches if m.kind != "allow"})
        blocks: tuple[ListMatch, ...] = ()
        if others:
            match = partial(
                core.lists.match,
                others,
                [signals[i] for i in rest],
                distance=settings.hash_distance,
                min_quality=settings.pdq_min_quality,
            )
            blocks = tuple(await core.pipeline.run_cpu(match, timeout=timeout))
        kept = tuple(d for d in derived if d.frame in rest)
        allows = tuple(m for m in matches if m.kind == "allow")  # kept for the record, no longer deciding
        return judge_frames_label(core, scan, settings, rest), blocks + allows, kept, False

    async def _keep_group_photo(self, event: MediaPosted, scan: Scan, settings: GroupSettings) -> None:
        """The group keeps group photos: a member's ordinary photo is protected for a while, owner = the sender."""
        if event.media.kind not in ("photo", "document", "image") or len(scan.frames) != 1:
            return  # stills only: animations, videos and stickers are not photos of people
        frame = scan.frames[0]
        if frame.fingerprint is None:
            return
        core = self.core
        days = settings.group_photos_days or core.config.protect.group_photo_days
        pdq = frame.hashes.pdq if frame.hashes.pdq_quality >= 50 else None
        await core.protector.keep_group_photo(
            (event.chat.platform, event.chat.chat_id),
            (event.sender.platform, event.sender.user_id),
            event.sender.display_name or event.sender.username or "",
            frame.fingerprint,
            pdq,
            days,
        )

    async def _scan(
        self, platform, event: MediaPosted, *, list_signals: bool = False
    ) -> tuple[Scan | None, MediaError | PlatformError | None]:
        core = self.core
        limit = core.config.detectors.limits.max_bytes
        seconds = core.config.pipeline.download_timeout
        repeats = core.repeats
        file_key = platform_key(event.chat.platform, event.media)
        if (seen := repeats.by_file(file_key, signals=list_signals)) is not None:
            log.debug(
                "chat %s message %s: a file seen before; its verdict is reused, not downloaded",
                event.chat.chat_id,
                event.message_id,
            )
            return seen.scan, None
        try:
            if event.media.size is not None and event.media.size > limit:
                raise TooManyBytes(event.media.size, limit)
            # a bound on the whole download, retries included: a hanging server costs this chat
            # one failed attempt (retried later), never a worker for good
            data = await asyncio.wait_for(
                with_retries(f"download in chat {event.chat.chat_id}", lambda: platform.fetch_media(event, limit)),
                seconds,
            )
        except TimeoutError:
            raise DownloadTimedOut(seconds) from None
        except (TooManyBytes, PlatformError) as exc:
            log.warning("chat %s message %s: not downloaded: %s", event.chat.chat_id, event.message_id, exc)
            return None, exc
        try:
            sha = ""
            if repeats.enabled:  # a large file is hashed in the pool, off the event loop
                sha = (
                    sha256_of(data)
                    if len(data) <= 1 << 20
                    else await core.pipeline.run_cpu(sha256_of, data, timeout=core.config.pipeline.scan_timeout)
                )
            if sha:
                await repeats.settled(sha)  # a copy being scanned right now: its verdict, not a second scan
            if sha and (seen := repeats.by_sha(sha, file_key, signals=list_signals)) is not None:
                return seen.scan, None  # the same bytes as a file seen before: no model runs again
            with repeats.scanning(sha):
                scan = await core.pipeline.run_cpu(
                    partial(core.scanner.scan, list_signals=list_signals),
                    data,
                    timeout=core.config.pipeline.scan_timeout,
                )
                if sha:  # only a file that was checked: an unscannable one is checked again next time
                    repeats.remember(sha, file_key, scan, signals=list_signals)
            return scan, None
        except MediaError as exc:
            log.warning("chat %s message %s: not checked: %s", event.chat.chat_id, event.message_id, exc.reason)
            return None, exc
        except TimeoutError:
            from detectors.errors import CorruptMedia

            return None, CorruptMedia(f"the scan took longer than {core.config.pipeline.scan_timeout:.0f} s")
        finally:
            del data  # the image lives only as long as its scan

    @staticmethod
    def _can_sanction(event: MediaPosted, action: str) -> bool:
        """A chat posting as itself cannot be muted, only banned (as a chat); the group's own linked
        channel and its anonymous admins are the admins' own: never sanctioned by Vigil."""
        kind = event.sender.kind
        return kind == "user" or (kind == "channel" and action == "ban")

    async def _act(
        self, platform, event: MediaPosted, decision: Decision, settings: GroupSettings, audit_id: int
    ) -> tuple[bool, str | None, str, datetime | None]:
        """Carry out the decision (or simulate it in dry-run); returns deleted, failure, sender action, until."""
        core = self.core
        actions = core.simulated if decision.dry_run else core.actions
        deleted, failure, sanction, until = False, None, "none", None
        removed_before = False
        if decision.verdict == DELETE:
            if not decision.dry_run:  # another picture or version of this message deleted it already?
                prior = await core.store.record_action(
                    event.chat.platform, event.chat.chat_id, event.message_id, "delete", {}
                )
                removed_before = prior.state == "done"
            result = await actions.delete(platform, event.chat.chat_id, event.message_id)
            deleted, failure = result.done, result.failure
            if decision.sender_action != "none" and self._can_sanction(event, decision.sender_action):
                done = await actions.sanction(
                    platform, event.chat.chat_id, event.sender.user_id, event.message_id, settings
                )
                if done.done:
                    sanction, until = {"mute": "muted", "ban": "banned"}[decision.sender_action], done.until
        if decision.verdict == ASK:
            await core.store.open_review(audit_id, event.chat.platform, event.chat.chat_id, event.message_id)
        if deleted and settings.neutral_notice and not decision.dry_run and not removed_before:
            await core.notifier.neutral_notice(platform, event.chat, settings)
        return deleted, failure, sanction, until
