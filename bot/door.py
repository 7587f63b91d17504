"""At the door: a member's profile photo, checked when they join, ask to join, change it, or post.

An adapter hands the core a ``MemberJoined``; ``Door.admit`` records it in the store's inbox as a
work item of its own (marked ``door`` in the payload) and wakes the chat, like a posted image. So
the checks go through the same bounded pipeline: a flood of joins in one chat holds at most that
chat's share of workers, survives a restart, and never stalls the other chats.

The check itself is the posted image's: the photo is fetched in memory with the same bounds
(Telegram: ``getUserProfilePhotos``, the largest size within the limit; Matrix: the avatar's mxc
through the media repository), scanned by the Moderator's scan path (its repeat cache keyed by
Telegram's file_unique_id or the mxc URI, so a member who joins and leaves again is not downloaded
twice) and matched against the group's lists and the protected photos. A photo found clean is
noted per group (``claim_avatar``) and not checked again; a bad one is checked again at each join.

Nudity or a block-list match: the group's ``joins`` action (decline a join request; restrict a
member who joined from sending media; ban; or only alert) and an alert to the admins. A photo
made from a protected member's photo (an impersonation): an alert only. The photo never leaves
memory, and the alert never carries it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from bot.admin_delivery import Delivery, dm_admin
from bot.admins import Admins
from bot.config import JOIN_ACTIONS, Config
from bot.events import MediaPosted, MediaRef, MemberJoined, UserRef
from bot.group_settings import SettingsLookup, list_ids_for
from bot.i18n import Translator, Translators
from bot.lists import HashLists, as_signals
from bot.member_hold import MemberHold
from bot.metrics import NO_METRICS, Metrics
from bot.moderation import Moderator, judge_severity
from bot.pipeline import Pipeline
from bot.platforms.base import OutgoingMessage, Platform
from bot.platforms.errors import PlatformError
from bot.platforms.retries import with_retries
from bot.policy import GroupSettings
from bot.protect import Protector
from bot.repeats import platform_key
from bot.store.protocol import Store
from bot.store.records import WorkItem
from bot.values import ListKind
from detectors.scanner import Scanner
from detectors.verdict import NUDITY

log = logging.getLogger("vigil.door")

DOOR = "door"  # the payload key that marks a work item as a check at the door
MAX_RECHECKS = 1000  # members who posted waiting for their photo to be looked at again
RECHECK_SECONDS = 60.0  # looking one member's photo up, retries included


def is_door(payload: Mapping[str, Any]) -> bool:
    return DOOR in payload


def door_message_id(event: MemberJoined) -> str:
    """The work item's and its actions' message id: one per member event, the same on a replay."""
    digest = hashlib.sha256(f"{event.member.user_id}\0{event.how}\0{event.key}".encode()).hexdigest()[:40]
    return f"door:{digest}"


@dataclass(frozen=True)
class DoorFinding:
    nudity: bool = False
    blocked: bool = False
    impersonation: bool = False  # made from a protected member's photo
    hit_before: bool = False  # the same photo was a hit in this group before (not scanned again)

    @property
    def hit(self) -> bool:
        return self.nudity or self.blocked or self.impersonation or self.hit_before


class Door:
    """Checks members' profile photos, given the parts it uses (bot/core.py wires them)."""

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
        moderator: Moderator,
        scanner: Scanner,
        pipeline: Pipeline,
        translators: Translators,
        hold: MemberHold,
        record: Callable[[str, str, str, Mapping[str, Any]], Awaitable[int]],
        wake: Callable[[str, str], None],
        metrics: Metrics = NO_METRICS,
    ) -> None:
        self.config = config
        self.platforms = platforms
        self.store = store
        self.settings = settings
        self.admins = admins
        self.lists = lists
        self.protector = protector
        self.moderator = moderator
        self.record = record  # a work item (with its job, past one machine)
        self.wake = wake
        self.scanner = scanner
        self.pipeline = pipeline
        self.translators = translators
        self.hold = hold
        self.metrics = metrics
        self._rechecks: asyncio.Queue[MemberJoined] = asyncio.Queue(maxsize=MAX_RECHECKS)
        self._rechecker: asyncio.Task[None] | None = None

    async def _recheck_posters(self) -> None:
        """Members who posted: their current profile photo, admitted for a check when it is new here."""
        while True:
            event = await self._rechecks.get()
            try:
                async with asyncio.timeout(RECHECK_SECONDS):
                    photo = await self._current_photo(event)
                if photo is None:
                    continue
                known = await self.store.member(event.chat.platform, event.chat.chat_id, event.member.user_id)
                if known is None or known.avatar != self._key(event, photo):
                    await self.admit(replace(event, photo=photo))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the next post tries again
                log.info("chat %s: a member's photo was not looked at again: %s", event.chat.chat_id, exc)

    async def _current_photo(self, event: MemberJoined) -> MediaRef | None:
        fetch = getattr(self.platforms[event.chat.platform], "profile_photo", None)
        if fetch is None:
            return None
        limit = self.config.detectors.limits.max_bytes
        photo: MediaRef | None = await with_retries(
            f"profile photo in chat {event.chat.chat_id}", lambda: fetch(event.member.user_id, limit)
        )
        return photo

    @staticmethod
    def _key(event: MemberJoined, photo: MediaRef) -> str:
        return platform_key(event.chat.platform, photo) or photo.file_id[:255]

    # --- intake ------------------------------------------------------------------------

    def start(self) -> None:
        self._rechecker = asyncio.create_task(self._recheck_posters(), name="vigil-door-rechecks")

    async def stop(self) -> None:
        task, self._rechecker = self._rechecker, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def admit(self, event: MemberJoined) -> None:
        """Records the member event durably and wakes its chat; returns once it cannot be lost.
        A member who posted (Telegram) is looked at first, off the intake: only a profile photo not
        checked in the group yet becomes a work item (a best effort: a recheck dropped when too many
        wait is tried at their next post)."""
        if event.how == "post" and event.photo is None:
            try:
                self._rechecks.put_nowait(event)
            except asyncio.QueueFull:
                log.warning("chat %s: too many members' photos to look at again; one skipped", event.chat.chat_id)
            return
        chat = event.chat
        if event.how == "join":
            await self.store.record_join(chat.platform, chat.chat_id, event.member.user_id, event.at)
        payload = {DOOR: event.payload(), "variant": ""}
        work_id = await self.record(chat.platform, chat.chat_id, door_message_id(event), payload)
        item = await self.store.work_item(work_id)
        if item is not None and item.finished:
            return  # a replayed update: checked already
        await self.store.upsert_group(chat.platform, chat.chat_id, chat.title)
        self.wake(chat.platform, chat.chat_id)

    # --- one work item -----------------------------------------------------------------

    async def run(self, item: WorkItem) -> None:
        """A door item, by the worker that holds its chat: counted as an attempt when it starts."""
        p = self.config.pipeline
        attempts = await self.store.start_work(item.id)
        if attempts is None:
            return
        try:
            event = MemberJoined.from_payload(item.platform, item.payload[DOOR])
        except Exception as exc:  # a record this version cannot read
            log.error("door item %d cannot be read (%s); it is dropped", item.id, type(exc).__name__)
            await self.store.give_up_work(item.id, f"unreadable record: {type(exc).__name__}")
            return
        if attempts > p.max_attempts:
            await self.store.give_up_work(item.id, item.last_error or "the process stopped during each attempt")
            return
        try:
            await self.check(item.id, event)
        except asyncio.CancelledError:
            await asyncio.shield(self.store.release_work(item.id))
            raise
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.warning("chat %s: the check of a member failed (attempt %d): %s", event.chat.chat_id, attempts, error)
            if attempts >= p.max_attempts:
                await self.store.give_up_work(item.id, error)
            else:
                delay = p.retry_backoff * 2 ** (attempts - 1)
                await self.store.defer_work(item.id, error, datetime.now(UTC) + timedelta(seconds=delay))

    async def check(self, work_id: int, event: MemberJoined) -> None:
        chat, member = event.chat, event.member
        settings = await self.settings.of(chat)
        platform = self.platforms[chat.platform]
        if settings.mode == "off":
            await self.store.finish_work(work_id)
            return
        mid = door_message_id(event)
        if event.how == "join":
            await self.hold.on_join(platform, event, settings, mid)
        photo = event.photo or await self._current_photo(event)
        if photo is None:
            await self.store.finish_work(work_id)
            return
        key = self._key(event, photo)
        known = await self.store.member(chat.platform, chat.chat_id, member.user_id)
        finding: DoorFinding | None
        if known is not None and known.avatar == key:
            if not known.avatar_hit or event.how in ("post", "avatar"):
                log.debug("chat %s: a member's profile photo was checked before; not again", chat.chat_id)
                await self.store.finish_work(work_id)
                return
            # back at the door with a photo that was a hit here: the group's action again, no new download
            finding = DoorFinding(hit_before=True)
        else:
            finding = await self._judge(platform, event, photo_event(event, photo, mid), settings)
        if finding is None:  # refused by the limits or not fetched: logged, nothing to act on
            await self.store.finish_work(work_id)
            return
        if not finding.hit:
            await self.store.claim_avatar(chat.platform, chat.chat_id, member.user_id, key)
            await self.store.finish_work(work_id)
            log.info("chat %s: a member's profile photo is clean (%s)", chat.chat_id, event.how)
            return
        dry = settings.mode == "dryrun"
        acting = finding.nudity or finding.blocked or finding.hit_before
        action = settings.joins if acting and not dry else "alert"
        if action not in JOIN_ACTIONS:
            action = "decline"
        exempt = await self.admins.is_exempt(chat, member.user_id)
        done, failure = "", ""
        if action != "alert" and not exempt:
            done, failure = await self._act(platform, event, action, mid)
        await self._alert(platform, event, settings, finding, done, failure, dry, mid)
        # noted only now: a replay after a crash acts and alerts (each once), it never skips them
        await self.store.claim_avatar(chat.platform, chat.chat_id, member.user_id, key, hit=True)
        await self.store.finish_work(work_id)
        log.info("chat %s: a member's profile photo hit (%s): %s", chat.chat_id, event.how, done or "alerted")

    async def _judge(
        self, platform: Platform, event: MemberJoined, posted: MediaPosted, settings: GroupSettings
    ) -> DoorFinding | None:
        scan, error = await self.moderator.scan_media(platform, posted, list_signals=True)
        if scan is None:
            log.warning("chat %s: a member's profile photo was not checked: %s", event.chat.chat_id, error)
            return None
        severity = judge_severity(self.scanner, scan, settings, range(len(scan.frames)))
        list_ids = await list_ids_for(self.store, event.chat)
        matches = []
        if list_ids:
            match = partial(
                self.lists.match,
                list_ids,
                [as_signals(f) for f in scan.frames],
                distance=settings.hash_distance,
                min_quality=settings.pdq_min_quality,
            )
            matches = await self.pipeline.run_cpu(match, timeout=self.config.pipeline.scan_timeout)
        if any(m.kind == ListKind.ALLOW for m in matches):
            return DoorFinding()
        # someone else's protected photo as an avatar, changed or not, is an impersonation (a post
        # of it unchanged is not counted: people share their friends' photos)
        me = (event.member.platform, event.member.user_id)
        derived = [m for m in await self.protector.match_scan(scan) if m.photo.member != me]
        return DoorFinding(
            nudity=severity == NUDITY,
            blocked=any(m.kind == ListKind.BLOCK for m in matches),
            impersonation=bool(derived),
        )

    async def _act(self, platform: Platform, event: MemberJoined, action: str, mid: str) -> tuple[str, str]:
        """The group's action, recorded before it is tried (a replay never repeats it). Returns what
        was done (an alert line's key) and why it failed ("" when it did not)."""
        chat_id, user_id = event.chat.chat_id, event.member.user_id
        answer = getattr(platform, "answer_join_request", None)
        restrict_media = getattr(platform, "restrict_media", None)
        call: Callable[[], Awaitable[object]]
        if event.how == "request" and answer is not None:
            done = "declined"
            call = partial(answer, chat_id, user_id, approve=False)
            if action == "ban":
                done = "banned"
                decline = call
                call = partial(_both, decline, partial(platform.ban, chat_id, user_id))
        elif action == "ban":
            done, call = "banned", partial(platform.ban, chat_id, user_id)
        elif restrict_media is not None:
            done, call = "restricted", partial(restrict_media, chat_id, user_id, None)
        else:  # Matrix: no per-kind right to take away: a new member is removed, a member who changed
            # their avatar muted
            kick = getattr(platform, "kick", None)
            if action == "decline" and kick is not None and event.how == "join":
                done, call = "removed", partial(kick, chat_id, user_id)
            else:
                forever = datetime.now(UTC) + timedelta(days=365)
                done, call = "muted", partial(platform.restrict, chat_id, user_id, forever)
        record = await self.store.record_action(platform.name, chat_id, mid, f"door-{done}", {"user": user_id})
        if record.state == "done":
            return done, ""
        try:
            await with_retries(f"door {done} in chat {chat_id}", call)
        except PlatformError as exc:
            log.warning("chat %s: at the door, %s failed: %s", chat_id, done, exc)
            await self.store.action_failed(record.id, str(exc))
            return done, str(exc)
        await self.store.action_done(record.id)
        return done, ""

    async def _alert(
        self,
        platform: Platform,
        event: MemberJoined,
        settings: GroupSettings,
        finding: DoorFinding,
        done: str,
        failure: str,
        dry: bool,
        mid: str,
    ) -> None:
        """Each reachable admin once (a replay skips those alerted), else the admin log chat."""
        chat = event.chat
        admins = await self.admins.of(chat)
        contacts = await self.store.contacts(chat.platform, sorted(admins))
        delivered = 0
        for contact in contacts:
            if not contact.can_dm or contact.user_id not in admins:
                continue
            record = await self.store.record_action(chat.platform, chat.chat_id, mid, _alert_key(contact.user_id), {})
            if record.state == "done":
                delivered += 1
                continue
            t = self.translators(contact.language or settings.language, settings.language)
            text = door_alert_text(t, event, finding, done, failure, dry)
            message = OutgoingMessage(text, language=t.language)
            sent = await dm_admin(platform, self.store, contact.user_id, message, f"door alert for chat {chat.chat_id}")
            if sent.outcome is not Delivery.SENT:
                continue
            await self.store.action_done(record.id)
            delivered += 1
        if delivered == 0 and settings.logchat:
            t = self.translators(settings.language, settings.language)
            try:
                text = door_alert_text(t, event, finding, done, failure, dry)
                await platform.send_chat(settings.logchat, OutgoingMessage(text, language=t.language))
            except PlatformError as exc:
                log.error("admin log chat %s for chat %s failed: %s", settings.logchat, chat.chat_id, exc)


def _alert_key(user_id: str) -> str:
    """The alert's action name for one admin (at most 32 characters, however long a Matrix id)."""
    return "door-alert:" + hashlib.sha256(user_id.encode()).hexdigest()[:20]


async def _both(first: Callable[[], Awaitable[object]], second: Callable[[], Awaitable[object]]) -> None:
    await first()
    await second()


def photo_event(event: MemberJoined, photo: Any, mid: str) -> MediaPosted:
    """The profile photo as the scan path takes a posted picture (nothing is posted: ids only)."""
    return MediaPosted(
        chat=event.chat,
        message_id=mid,
        sender=UserRef(event.member.platform, event.member.user_id, event.member.display_name, event.member.username),
        posted_at=event.at,
        media=photo,
    )


def _who(member: UserRef) -> str:
    name = member.display_name or (f"@{member.username}" if member.username else "")
    return f"{name} ({member.user_id})" if name else member.user_id


def door_alert_text(
    t: Translator, event: MemberJoined, finding: DoorFinding, done: str, failure: str, dry: bool
) -> str:
    """The admins' alert: who, where, what was found, what Vigil did. Never the photo."""
    lines = [
        t.gettext(
            "Profile photo check in {group}: {member}.",
            group=event.chat.title or event.chat.chat_id,
            member=_who(event.member),
        )
    ]
    if event.how == "request":
        lines.append(t.gettext("They asked to join."))
    elif event.how == "join":
        lines.append(t.gettext("They joined."))
    elif event.how == "avatar":
        lines.append(t.gettext("They changed their profile photo."))
    else:
        lines.append(t.gettext("Their profile photo was checked when they posted."))
    if finding.nudity:
        lines.append(t.gettext("The photo shows nudity."))
    if finding.blocked:
        lines.append(t.gettext("The photo matches the group's block list."))
    if finding.hit_before:
        lines.append(t.gettext("The same photo was found harmful here before."))
    if finding.impersonation:
        lines.append(
            t.gettext("The photo looks made from a protected member's photo: a possible impersonation or fake.")
        )
    if dry:
        lines.append(t.gettext("Dry run: Vigil did nothing."))
    elif failure:
        lines.append(t.gettext("Vigil could not act: {error}", error=failure[:200]))
    elif done == "declined":
        lines.append(t.gettext("Vigil declined the join request."))
    elif done == "restricted":
        lines.append(t.gettext("Vigil stopped them from sending media; lift it in the group's member settings."))
    elif done in ("banned",):
        lines.append(t.gettext("Vigil banned them."))
    elif done == "removed":
        lines.append(t.gettext("Vigil removed them from the room."))
    elif done == "muted":
        lines.append(t.gettext("Vigil muted them."))
    else:
        lines.append(t.gettext("Vigil took no action: please look at it."))
    lines.append(
        t.gettext("The photo is not attached. Choose what Vigil does: /vigil joins decline|restrict|ban|alert")
    )
    return "\n".join(lines)
