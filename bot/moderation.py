"""What happens to one posted image: fetch, scan, match lists, decide, act, alert, record.

Every step is safe to repeat: the work item stays pending in the store until the end, and a
run that was cut short (crash, restart) is replayed from the start. Actions are recorded
before they are attempted and skipped when already done; alerts are sent once per admin per
finding; the audit record of a work item is reused on replay.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import replace
from functools import partial
from typing import TypeVar

from bot.actions import Actions, SimulatedActions
from bot.admins import Admins
from bot.circles import Circles
from bot.config import Config
from bot.errors import DownloadTimedOut, GaveUp
from bot.events import ChatRef, MediaPosted
from bot.flood import FloodGuard, Hold
from bot.group_settings import SettingsLookup, list_ids_for
from bot.index_versions import IndexGate
from bot.lists import HashLists, ListMatch, as_signals
from bot.metrics import NO_METRICS, Metrics
from bot.notify import Notifier
from bot.outcomes import Acted, Outcome, alert_outcome
from bot.pipeline import Pipeline
from bot.platforms.base import Platform
from bot.platforms.errors import PlatformError
from bot.platforms.retries import with_retries
from bot.policy import Decision, Evidence, GroupSettings, decide
from bot.protect import DerivedMatch, Protector, derived_evidence
from bot.recheck import Recheck
from bot.repeats import RepeatCache, platform_key, sha256_of
from bot.scan_record import audit_key, record_scan
from bot.seen_window import SeenWindow
from bot.store.protocol import Store
from bot.values import DONE_BY_SANCTION, AlertOutcome, BlockAction, ListKind, Sanction, Verdict
from detectors.errors import CorruptMedia, MediaError, TooManyBytes
from detectors.scanner import Scan, Scanner
from detectors.verdict import CLEAN, judge_frames

log = logging.getLogger("vigil.moderation")
T = TypeVar("T")


def judge_severity(scanner: Scanner, scan: Scan, settings: GroupSettings, frames: Iterable[int]) -> str:
    """The severity of these frames of a scan, with the group's thresholds."""
    thresholds = scanner.thresholds.shifted(settings.threshold_shift())
    chosen = [scan.frames[i] for i in frames]
    severity, _ = judge_frames([(((d.label, d.score) for d in f.detections), f.nsfw) for f in chosen], thresholds)
    return severity


class Moderator:
    """Handles one posted image, given the parts it uses (bot/core.py wires them)."""

    def __init__(
        self,
        *,
        config: Config,
        platforms: Mapping[str, Platform],
        store: Store,
        settings: SettingsLookup,
        admins: Admins,
        lists: HashLists,
        protector: Protector,
        pipeline: Pipeline,
        scanner: Scanner,
        repeats: RepeatCache,
        actions: Actions,
        simulated: SimulatedActions,
        notifier: Notifier,
        metrics: Metrics = NO_METRICS,
        gate: IndexGate | None = None,
        recheck: Recheck | None = None,
        circles: Circles | None = None,
        flood: FloodGuard | None = None,
        seen: SeenWindow | None = None,
    ) -> None:
        self.config = config
        self.platforms = platforms
        self.store = store
        self.settings = settings
        self.admins = admins
        self.lists = lists
        self.protector = protector
        self.pipeline = pipeline
        self.scanner = scanner
        self.repeats = repeats
        self.actions = actions
        self.simulated = simulated
        self.notifier = notifier
        self.metrics = metrics
        # judged by the indexes as recorded with the item, hits confirmed in the store (bot/index_versions.py,
        # bot/recheck.py): what another process changed holds here too
        self.gate = gate
        self.recheck = recheck or Recheck(store)
        self.circles = circles
        self.flood = flood
        self.seen = seen  # the seen-images window (bot/seen_window.py), when sweeping is on

    async def _cpu(self, fn: Callable[..., T], *args: object) -> T:
        return await self.pipeline.run_cpu(fn, *args, timeout=self.config.pipeline.scan_timeout)

    async def handle(self, work_id: int, event: MediaPosted, *, detach: bool = False) -> Awaitable[None] | None:
        """Handles one item. ``detach``: when the decision is a delete, returns the rest (the delete,
        sent with the chat's other deletes, then alerts and finishing the item) to be run on its
        own, so that the chat's next image need not wait for it; None when all was done here."""
        platform = self.platforms[event.chat.platform]
        settings = await self.settings.of(event.chat)
        if settings.mode == "off":
            await self.store.finish_work(work_id)
            return None
        if self.gate is not None:
            await self.gate.ready(event.versions, f"chat {event.chat.chat_id} message {event.message_id}")
        list_ids = await list_ids_for(self.store, event.chat)
        # trimmed views, rotations and local features only when there is a list to match
        # (a local fingerprint is also needed to look protected photos up, or keep a group photo)
        has_lists = self.lists.wants_signals(list_ids)
        fingerprints = self.protector.wants_fingerprints(settings.group_photos)
        blocked_first = None
        if has_lists and not fingerprints:
            # a copy of a blocked image is deleted on its hashes alone, before the models run (the
            # bulk of a scan); with protected photos or group photos in play the whole scan is needed
            blocked_first = partial(self._blocked_by_hashes, event.chat, list_ids, settings)
        scan, error = await self._scan(
            platform,
            event,
            list_signals=has_lists or fingerprints or self._keeps_fingerprints(),
            blocked_first=blocked_first,
        )
        # the chat's images are scanned side by side, but decided and acted on in the order they came
        await self.pipeline.turn(event.chat.platform, event.chat.chat_id, work_id)
        matches: tuple[ListMatch, ...] = ()
        severity = CLEAN
        if scan is not None:
            severity = judge_severity(self.scanner, scan, settings, range(len(scan.frames)))
            if list_ids:
                matches = await self._confirmed_hits(event.chat, list_ids, settings, scan)
        derived: tuple[DerivedMatch, ...] = ()
        if scan is not None:
            found = await self.recheck.protected(await self.protector.match_scan(scan))
            derived = derived_evidence(found, label=severity, sender=(event.sender.platform, event.sender.user_id))
        allowed = any(m.kind == ListKind.ALLOW for m in matches)
        if allowed and scan is not None and len(scan.frames) > 1:
            severity, matches, derived, allowed = await self._frames_not_allowed(
                scan, severity, matches, derived, settings
            )
            matches = await self.recheck.lists(event.chat, matches)  # blocks of the other frames: confirmed too
        blocks = [m for m in matches if m.kind == ListKind.BLOCK]
        block_action = None
        if blocks:
            deletes = any(m.action == BlockAction.DELETE for m in blocks)
            block_action = BlockAction.DELETE if deletes else BlockAction.REVIEW
        # many copies of one picture in a short time, across the instance: held for review
        hold = Hold.NONE
        if scan is not None and self.flood is not None and self.flood.enabled:
            joined = None
            if self.flood.watches_new_members and event.sender.kind == "user":
                member = await self.store.member(event.chat.platform, event.chat.chat_id, event.sender.user_id)
                joined = member.joined_at if member is not None else None
            hold = await self.flood.check(event, scan.hashes, joined)
        flood = hold is Hold.COPIES
        evidence = Evidence(
            severity=severity,
            block_action=block_action,
            allowed=allowed,
            unscannable=error is not None,
            derived=bool(derived),
            flood=flood,
            raid=hold is Hold.RAID,
        )
        exempt = False
        if evidence.severity != CLEAN or blocks or derived or hold is not Hold.NONE or error is not None:
            # an anonymous admin posts as the group itself: only the group's admins can
            exempt = event.sender.kind == "anonymous_admin" or await self.admins.is_exempt(
                event.chat, event.sender.user_id
            )
        decision = decide(evidence, settings, exempt=exempt)
        audit_id = await record_scan(self.store, work_id, event, scan, error, matches, severity, decision, derived)
        rest = self._conclude(
            work_id, event, platform, settings, scan, error, matches, severity, decision, derived, audit_id
        )
        if detach and decision.verdict == Verdict.DELETE and not decision.dry_run:
            return rest
        await rest
        return None

    async def _conclude(
        self,
        work_id: int,
        event: MediaPosted,
        platform: Platform,
        settings: GroupSettings,
        scan: Scan | None,
        error: MediaError | PlatformError | None,
        matches: tuple[ListMatch, ...],
        severity: str,
        decision: Decision,
        derived: tuple[DerivedMatch, ...],
        audit_id: int,
    ) -> None:
        """What follows a decision: act, alert, keep a group photo, finish the item."""
        acted = await self._act(platform, event, decision, settings, audit_id)
        if scan is not None and not acted.deleted:
            await self._keep_seen(event, scan)
        outcome = Outcome(scan, error, matches, severity, decision, acted, derived=derived)
        self.metrics.outcome(event.chat.platform, outcome)
        if decision.alert and await self._first_report_of_message(work_id, event, outcome):
            await self.notifier.alert_admins(event, outcome, settings, audit_id)
        elif decision.alert:
            log.info(
                "chat %s message %s: already reported for another of its pictures or versions; "
                "audit record %d, no second alert",
                event.chat.chat_id,
                event.message_id,
                audit_id,
            )
        if derived:
            await self.notifier.owner_notices(event, outcome, settings, audit_id)
        elif settings.group_photos and decision.verdict == Verdict.ALLOW and not matches and scan is not None:
            await self._keep_group_photo(event, scan, settings)
        await self.store.finish_work(work_id)
        await self.store.delete_state(audit_key(work_id))
        log.info(
            "chat %s message %s: %s -> %s%s",
            event.chat.chat_id,
            event.message_id,
            severity if error is None else "unscannable",
            decision.verdict,
            " (dry run)" if decision.dry_run else "",
        )

    def _keeps_fingerprints(self) -> bool:
        """The window keeps local fingerprints, for a photo protected later: every scan makes one."""
        return self.seen is not None and self.seen.enabled and self.seen.settings.fingerprint_points > 0

    async def _keep_seen(self, event: MediaPosted, scan: Scan) -> None:
        """The image in the seen-images window (a deleted one has nothing left to sweep). The window
        serves later sweeps only: a failure to keep it is logged, the image's handling goes on."""
        if self.seen is None:
            return
        try:
            await self.seen.record(event, scan)
        except Exception as exc:
            log.warning(
                "chat %s message %s: not kept in the seen-images window (%s)",
                event.chat.chat_id,
                event.message_id,
                type(exc).__name__,
            )

    async def gave_up(self, work_id: int, event: MediaPosted, last_error: str) -> None:
        """The image could not be checked in ``max_attempts`` attempts: the admins are told to look at
        it themselves (once; the record and the alerts are reused if this is replayed)."""
        settings = await self.settings.of(event.chat)
        if settings.mode == "off":
            return
        error = GaveUp(self.config.pipeline.max_attempts, last_error)
        decision = decide(Evidence(severity=CLEAN, unscannable=True), settings, exempt=False)
        audit_id = await record_scan(self.store, work_id, event, None, error, (), CLEAN, decision)
        outcome = Outcome(None, error, (), CLEAN, decision)
        self.metrics.outcome(event.chat.platform, outcome)
        if decision.alert and await self._first_report_of_message(work_id, event, outcome):
            await self.notifier.alert_admins(event, outcome, settings, audit_id)

    async def _first_report_of_message(self, work_id: int, event: MediaPosted, outcome: Outcome) -> bool:
        """One alert per message: a message's pictures (file, thumbnail, cover) and versions are
        separate work items, and two of them can hit. The first to report claims the message
        (a replay of that item still owns it); a later one alerts only when it says more (the
        message deleted now, where it was only put to review or reported before)."""
        word = alert_outcome(outcome)
        claim = await self.store.record_action(
            event.chat.platform, event.chat.chat_id, event.message_id, "alert", {"work": work_id, "outcome": word}
        )
        if claim.params.get("work") == work_id:
            if claim.state == "pending":  # settled, so that retention prunes it like any action
                await self.store.action_done(claim.id)
            return True
        return word == AlertOutcome.DELETED and claim.params.get("outcome") != AlertOutcome.DELETED

    async def _frames_not_allowed(
        self,
        scan: Scan,
        severity: str,
        matches: tuple[ListMatch, ...],
        derived: tuple[DerivedMatch, ...],
        settings: GroupSettings,
    ) -> tuple[str, tuple[ListMatch, ...], tuple[DerivedMatch, ...], bool]:
        """An allow match excuses only the frames it covers: an animation whose first frame is an
        allowed picture and whose next one is nudity or a blocked copy is judged by the rest.

        Returns the severity, list matches, protected-photo matches and whether the whole file is
        allowed, each for the frames no allow list covers."""
        allow_ids = sorted({m.list_id for m in matches if m.kind == ListKind.ALLOW})
        signals = [as_signals(f) for f in scan.frames]

        def covered(i: int) -> bool:
            return bool(
                self.lists.match(
                    allow_ids, [signals[i]], distance=settings.hash_distance, min_quality=settings.pdq_min_quality
                )
            )

        rest = [i for i in range(len(signals)) if not await self._cpu(partial(covered, i))]
        if not rest:
            return severity, matches, derived, True  # every frame is allowed: the whole file is
        others = sorted({m.list_id for m in matches if m.kind != ListKind.ALLOW})
        blocks: tuple[ListMatch, ...] = ()
        if others:
            match = partial(
                self.lists.match,
                others,
                [signals[i] for i in rest],
                distance=settings.hash_distance,
                min_quality=settings.pdq_min_quality,
            )
            blocks = tuple(await self._cpu(match))
        kept = tuple(d for d in derived if d.frame in rest)
        allows = tuple(m for m in matches if m.kind == ListKind.ALLOW)  # kept for the record, no longer deciding
        return judge_severity(self.scanner, scan, settings, rest), blocks + allows, kept, False

    async def _keep_group_photo(self, event: MediaPosted, scan: Scan, settings: GroupSettings) -> None:
        """The group keeps group photos: a member's ordinary photo is protected for a while, owner = the sender."""
        if event.media.kind not in ("photo", "document", "image") or len(scan.frames) != 1:
            return  # stills only: animations, videos and stickers are not photos of people
        frame = scan.frames[0]
        if frame.fingerprint is None:
            return
        days = settings.group_photos_days or self.config.protect.group_photo_days
        pdq = frame.hashes.pdq if frame.hashes.pdq_quality >= 50 else None
        await self.protector.keep_group_photo(
            (event.chat.platform, event.chat.chat_id),
            (event.sender.platform, event.sender.user_id),
            event.sender.display_name or event.sender.username or "",
            frame.fingerprint,
            pdq,
            days,
        )

    async def _confirmed_hits(
        self, chat: ChatRef, list_ids: list[int], settings: GroupSettings, scan: Scan
    ) -> tuple[ListMatch, ...]:
        """The scan's frames matched against the lists in the CPU pool, each hit confirmed in the store."""
        match = partial(
            self.lists.match,
            list_ids,
            [as_signals(f) for f in scan.frames],
            distance=settings.hash_distance,
            min_quality=settings.pdq_min_quality,
        )
        return await self.recheck.lists(chat, await self._cpu(match))

    async def _blocked_by_hashes(
        self, chat: ChatRef, list_ids: list[int], settings: GroupSettings, first: Scan
    ) -> bool:
        """Whether a hashes-only pass already proves a delete: a block list's delete entry matches
        a frame as posted and no allow entry does (an allowed image always gets the whole scan).
        The hits are confirmed against the store first, as any hit is: a stale entry proves nothing."""
        found = await self._confirmed_hits(chat, list_ids, settings, first)
        if any(m.kind == ListKind.ALLOW for m in found):
            return False
        return any(m.kind == ListKind.BLOCK and m.action == BlockAction.DELETE for m in found)

    async def scan_media(
        self, platform: Platform, event: MediaPosted, *, list_signals: bool = False
    ) -> tuple[Scan | None, MediaError | PlatformError | None]:
        """A picture's scan by the posted images' path (bounds, repeat cache), for other checks
        (a member's profile photo, bot/door.py)."""
        return await self._scan(platform, event, list_signals=list_signals)

    async def _scan(
        self,
        platform: Platform,
        event: MediaPosted,
        *,
        list_signals: bool = False,
        blocked_first: Callable[[Scan], Awaitable[bool]] | None = None,
    ) -> tuple[Scan | None, MediaError | PlatformError | None]:
        limit = self.config.detectors.limits.max_bytes
        seconds = self.config.pipeline.download_timeout
        scan_timeout = self.config.pipeline.scan_timeout
        repeats = self.repeats
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
            async with asyncio.timeout(seconds):
                data = await with_retries(
                    f"download in chat {event.chat.chat_id}", lambda: platform.fetch_media(event, limit)
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
                    else await self.pipeline.run_cpu(sha256_of, data, timeout=scan_timeout)
                )
            if sha:
                await repeats.settled(sha)  # a copy being scanned right now: its verdict, not a second scan
            if sha and (seen := repeats.by_sha(sha, file_key, signals=list_signals)) is not None:
                return seen.scan, None  # the same bytes as a file seen before: no model runs again
            with repeats.scanning(sha):
                if blocked_first is not None:
                    first = await self._cpu(partial(self.scanner.scan, models=False), data)
                    if await blocked_first(first):
                        # not remembered: a copy elsewhere, in a chat without this list, needs the models
                        return first, None
                scan = await self._cpu(partial(self.scanner.scan, list_signals=list_signals), data)
                if sha:  # only a file that was checked: an unscannable one is checked again next time
                    repeats.remember(sha, file_key, scan, signals=list_signals)
            return scan, None
        except MediaError as exc:
            log.warning("chat %s message %s: not checked: %s", event.chat.chat_id, event.message_id, exc.reason)
            return None, exc
        except TimeoutError:
            return None, CorruptMedia(f"the scan took longer than {scan_timeout:.0f} s")
        finally:
            del data  # the image lives only as long as its scan

    @staticmethod
    def _can_sanction(event: MediaPosted, action: Sanction) -> bool:
        """A chat posting as itself cannot be muted, only banned (as a chat); the group's own linked
        channel and its anonymous admins are the admins' own: never sanctioned by Vigil."""
        kind = event.sender.kind
        return kind == "user" or (kind == "channel" and action == Sanction.BAN)

    async def _act(
        self, platform: Platform, event: MediaPosted, decision: Decision, settings: GroupSettings, audit_id: int
    ) -> Acted:
        """Carry out the decision (or simulate it in dry-run)."""
        actions = self.simulated if decision.dry_run else self.actions
        acted = Acted()
        removed_before = False
        if decision.verdict == Verdict.DELETE:
            if not decision.dry_run:  # another picture or version of this message deleted it already?
                prior = await self.store.record_action(
                    event.chat.platform, event.chat.chat_id, event.message_id, "delete", {}
                )
                removed_before = prior.state == "done"
            result = await actions.delete(platform, event.chat.chat_id, event.message_id)
            acted = Acted(deleted=result.done, delete_failure=result.failure)
            if decision.sender_action != Sanction.NONE and self._can_sanction(event, decision.sender_action):
                done = await actions.sanction(
                    platform, event.chat.chat_id, event.sender.user_id, event.message_id, settings
                )
                if done.done:
                    acted = replace(
                        acted, sender_action_done=DONE_BY_SANCTION[decision.sender_action], muted_until=done.until
                    )
                if done.done and decision.sender_action == Sanction.BAN and not decision.dry_run and self.circles:
                    await self.circles.banned(event.chat, event.sender.user_id, event.message_id)
        if decision.verdict == Verdict.ASK:
            await self.store.open_review(audit_id, event.chat.platform, event.chat.chat_id, event.message_id)
        if acted.deleted and settings.neutral_notice and not decision.dry_run and not removed_before:
            await self.notifier.neutral_notice(platform, event.chat, settings)
        return acted
