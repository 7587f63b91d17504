"""The platform-neutral bot: it wires the parts (moderation, alerts, commands, the protected-photos
chat) to their collaborators, takes the adapters' events (``EventSink``) and owns the life cycle.

The parts never see the Core: each is given the store, the platforms, the settings lookup, the
translators and the metrics it uses, so that any of them can be built and tested on its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from bot.actions import Actions, SimulatedActions
from bot.admins import Admins
from bot.circles import Circles
from bot.commands import Commands
from bot.config import Config
from bot.delete_batcher import DeleteBatcher
from bot.door import Door, is_door
from bot.entries import EntryWriter
from bot.events import BotAdded, ButtonPressed, ChatRef, CommandIssued, MediaPosted, MemberJoined, UserRef
from bot.flood import FloodGuard
from bot.group_settings import SettingsLookup
from bot.guidance.resources import load_resources
from bot.i18n import Translator, Translators
from bot.index_versions import IndexGate, heads
from bot.lists import HashLists
from bot.member_hold import MemberHold
from bot.metrics import NO_METRICS, Metrics
from bot.moderation import Moderator
from bot.notify import Notifier
from bot.pipeline import Pipeline
from bot.platforms.base import BotCore, EventSink, Platform, SharedReads
from bot.policy import GroupSettings
from bot.presses import Presses
from bot.protect import Protector
from bot.protect_chat import ProtectChat
from bot.recheck import Recheck
from bot.repeats import RepeatCache
from bot.reports import Reports
from bot.scan_record import audit_key
from bot.seen_window import SeenWindow
from bot.snapshots import SnapshotWriter
from bot.store.protocol import Store
from bot.store.records import WorkItem
from bot.sweep import Sweeper
from detectors.scanner import Scanner

log = logging.getLogger("vigil.core")

LIST_SYNC_SECONDS = 2.0  # how often the store's list change log is read (changes by `vigil hash`)


class WorkIntake(Protocol):
    """Records a work item together with its job (bot/jobs/queue.py), instead of the store alone."""

    async def record(
        self, platform: str, chat_id: str | int, message_id: str | int, payload: Mapping[str, Any]
    ) -> int: ...


class Core:
    """The ``EventSink`` and ``SharedReads`` the adapters are started with (bot/platforms/base.py)."""

    def __init__(self, config: Config, store: Store, scanner: Scanner, *, metrics: Metrics = NO_METRICS) -> None:
        self.config = config
        self.store = store
        self.scanner = scanner
        self.metrics = metrics
        self.platforms: dict[str, Platform] = {}
        self.settings = SettingsLookup(store, config.groups)
        self.admin_roster = Admins(self.platforms, store)
        self.translators = Translators(config.timezone)
        self.resources = load_resources(config.resources)
        # a chat's deletes in batches behind one rate-limit gate, while its next images are scanned
        self.batching = config.pipeline.batch_deletes
        self.actions = Actions(store, DeleteBatcher() if self.batching else None, metrics=metrics)
        self.simulated = SimulatedActions()
        # verdicts of files seen recently (bot/repeats.py): a repeat is not downloaded or scanned again
        self.repeats = RepeatCache(config.pipeline.repeat_cache_entries, config.pipeline.repeat_cache_mb * 1024 * 1024)
        p = config.pipeline
        self.pipeline = Pipeline(store, self._handle_work, in_flight=p.in_flight, workers=p.workers)
        # hash lists (bot/lists.py): indexed in the scan pool, following the store's change log
        self.lists = HashLists(cpu=lambda fn, *args: self.pipeline.run_cpu(fn, *args, timeout=p.scan_timeout))
        self._lists_follower = self.lists.follower(store)
        self.entries = EntryWriter(store, self.lists)
        # protected photos (bot/protect.py): fingerprinting and searching run in the scan pool
        self.protector = Protector(
            store,
            config.protect,
            config.detectors.limits,
            cpu=lambda fn, *args: self.pipeline.run_cpu(fn, *args, timeout=p.scan_timeout),
        )
        # an item is judged after the indexes applied the changes it was recorded after (bot/index_versions.py)
        protected_follower = self.protector.follower if config.protect.enabled else None
        self.index_gate = IndexGate(self._lists_follower, protected_follower, wait=p.index_wait)
        # the seen-images window and the sweep of what was already posted (bot/sweep.py)
        self.seen_window = SeenWindow(store, config.sweep)
        self.sweeper = Sweeper(
            store=store,
            window=self.seen_window,
            lists=self.lists,
            protector=self.protector,
            settings=self.settings,
            admins=self.admin_roster,
            platforms=self.platforms,
            translators=self.translators,
            cpu=lambda fn, *args: self.pipeline.run_cpu(fn, *args, timeout=p.scan_timeout),
            record=self.record_work,
            wake=self.wake,
            active=lambda: self.sweeping,
        )
        self.lists.added_hook = self.sweeper.entries_added
        self.protector.added_hook = self.sweeper.photos_added
        # index snapshots (bot/snapshots.py): a starting process loads the newest instead of building its indexes
        followers = [self._lists_follower, *([protected_follower] if protected_follower is not None else [])]
        for follower in followers:
            follower.snapshots = config.snapshots.enabled
            follower.live = config.snapshots.live_minutes * 60
        self.snapshot_writer = SnapshotWriter(store, followers, config.snapshots)
        self.notifier = Notifier(
            platforms=self.platforms,
            store=store,
            admins=self.admin_roster,
            settings=self.settings,
            translators=self.translators,
            resources=self.resources,
            protector=self.protector,
            synthetic_threshold=getattr(config.detectors.synthetic, "threshold", None),
            metrics=metrics,
        )
        # circles (bot/circles.py): blocks shared between groups, and bans when the circle says so
        self.circles = Circles(
            platforms=self.platforms,
            store=store,
            admins=self.admin_roster,
            settings=self.settings,
            translators=self.translators,
            actions=self.actions,
        )
        # floods (bot/flood.py): many copies of one picture in a short time are held for review
        self.flood = FloodGuard(config.flood, self.platforms, self.translators, config.groups.language)
        self.moderator = Moderator(
            config=config,
            platforms=self.platforms,
            store=store,
            settings=self.settings,
            admins=self.admin_roster,
            lists=self.lists,
            protector=self.protector,
            pipeline=self.pipeline,
            scanner=scanner,
            repeats=self.repeats,
            actions=self.actions,
            simulated=self.simulated,
            notifier=self.notifier,
            metrics=metrics,
            gate=self.index_gate,
            recheck=Recheck(store, self.index_gate.stale),
            circles=self.circles,
            flood=self.flood,
            seen=self.seen_window,
        )
        self.protect_chat = ProtectChat(
            platforms=self.platforms,
            protector=self.protector,
            translators=self.translators,
            config=config.protect,
            max_bytes=config.detectors.limits.max_bytes,
        )
        # members' private reports; Block needs the kept hashes of seen images (the store's seen_image,
        # once the sweep's window is in: kept=store); until then nothing is kept and Block is not offered
        self.reports = Reports(
            config=config.reports,
            platforms=self.platforms,
            store=store,
            settings=self.settings,
            admins=self.admin_roster,
            translators=self.translators,
            actions=self.actions,
            entries=self.entries,
            kept=store,  # the seen-images window (bot/seen_window.py): what Block adds to the list
            circles=self.circles,
        )
        self.commands = Commands(
            config=config,
            platforms=self.platforms,
            store=store,
            settings=self.settings,
            admins=self.admin_roster,
            translators=self.translators,
            resources=self.resources,
            lists=self.lists,
            entries=self.entries,
            repeats=self.repeats,
            pipeline=self.pipeline,
            scanner=scanner,
            actions=self.actions,
            protect_chat=self.protect_chat,
            private_started=self.private_started,
            reports=self.reports,
            circles=self.circles,
        )
        self.presses = Presses(
            platforms=self.platforms,
            store=store,
            settings=self.settings,
            admins=self.admin_roster,
            translators=self.translators,
            actions=self.actions,
            notifier=self.notifier,
            entries=self.entries,
            protect_chat=self.protect_chat,
            reports=self.reports,
            flood=self.flood,
            circles=self.circles,
        )
        # at the door (bot/door.py): members' profile photos, and the new members' media hold
        self.hold = MemberHold(store, self.platforms, self.settings, self.translators)
        self.door = Door(
            config=config,
            platforms=self.platforms,
            store=store,
            settings=self.settings,
            admins=self.admin_roster,
            lists=self.lists,
            protector=self.protector,
            moderator=self.moderator,
            scanner=scanner,
            pipeline=self.pipeline,
            translators=self.translators,
            hold=self.hold,
            record=self.record_work,
            wake=self.wake,
            metrics=metrics,
        )
        self._started = False
        # whether this process sweeps (bot/sweep.py): the one process that reads the platforms; the
        # app sets it (role all at its start, an ingest once it is the active reader)
        self.sweeping = True
        self._list_sync: asyncio.Task[None] | None = None
        self._report_readers: list[asyncio.Task[None]] = []
        # set by bot/roles.py past one machine: images are recorded with a job, which a worker runs
        self.intake: WorkIntake | None = None

    # --- life cycle ---------------------------------------------------------

    def add_platform(self, platform: Platform) -> None:
        self.platforms[platform.name] = platform

    async def start(self, *, run_pipeline: bool = True) -> None:
        """``run_pipeline``: False where jobs carry the work (bot/roles.py): no in-process queue."""
        await self.load_lists()
        if self.config.protect.enabled:
            self.protector.start()  # loads the protected photos in the background
        self.snapshot_writer.start()
        self._list_sync = asyncio.create_task(self._follow_lists(), name="vigil-list-sync")
        self.index_gate.start(self.store)  # PostgreSQL's change notices wake the followers at once
        for platform in self.platforms.values():  # reports members made to their homeserver (Matrix)
            reader = getattr(platform, "event_reports", None)
            if reader is not None and self.config.reports.enabled:
                task = asyncio.create_task(self.reports.follow_homeserver(platform.name, reader), name="vigil-reports")
                self._report_readers.append(task)
        self.door.start()
        self._started = True
        if not run_pipeline:
            return
        self.pipeline.start()
        # the inbox is the queue: chats with unfinished work get a turn (an adapter that polled
        # before this woke its chats already; a chat is never taken by two workers)
        if chats := await self.pipeline.wake_pending(self.platforms):
            log.info("resuming the images of %d chats that were not finished before the last stop", chats)

    def resume_reports(self) -> None:
        """Alerts, in the background, the reports a stop cut short (by the process that reads the platforms)."""
        if self.config.reports.enabled:
            self._report_readers.append(asyncio.create_task(self._resume_reports(), name="vigil-reports-resume"))

    async def _resume_reports(self) -> None:
        try:
            if done := await self.reports.resume():
                log.info("alerted %d reports a stop had cut short", done)
        except Exception:  # the next start tries again
            log.exception("reports: resuming the alerts a stop cut short failed")

    async def stop(self, timeout: float = 0.0) -> bool:
        """Stops taking images; waits up to ``timeout`` s for those in flight. True if none was cut short."""
        await self.sweeper.stop()
        await self.protector.stop()
        await self.snapshot_writer.stop()
        for task in self._report_readers:
            task.cancel()
        await asyncio.gather(*self._report_readers, return_exceptions=True)
        self._report_readers.clear()
        await self.door.stop()
        if self._list_sync is not None:
            self._list_sync.cancel()
            await asyncio.gather(self._list_sync, return_exceptions=True)
            self._list_sync = None
        clean = await self.pipeline.stop(timeout)
        await self.index_gate.stop()  # after the images in flight: one may be waiting for a catch-up
        if self.actions.batcher is not None:
            await self.actions.batcher.close()
        return clean

    def set_role(self, role: str) -> None:
        """The role this process runs in (bot/roles.py), as its change-log followers record it."""
        for follower in self.snapshot_writer.followers_all:
            follower.process = replace(follower.process, role=role[:32] or "all")

    async def load_lists(self) -> None:
        await self._lists_follower.load()

    async def sync_lists(self) -> int:
        """Applies list changes made since the last call (by `vigil hash`, a purge, another process)."""
        return await self._lists_follower.catch_up()

    async def _follow_lists(self) -> None:
        await self._lists_follower.run(LIST_SYNC_SECONDS)

    # --- events from adapters ----------------------------------------------------

    async def submit(self, event: MediaPosted) -> None:
        """Record the event durably and wake its chat; returns once it cannot be lost, without
        waiting for any chat's backlog (the adapters' loops call this)."""
        # the change logs' heads in the database now: whichever process judges it applies them first
        event = replace(event, versions=await heads(self.store, protected=self.index_gate.protected))
        work_id = await self.record_work(event.chat.platform, event.chat.chat_id, event.message_id, event.payload())
        item = await self.store.work_item(work_id)
        if item is not None and item.finished:
            return  # a replayed update (stopped after the work but before confirming it): done already
        await self.store.upsert_group(event.chat.platform, event.chat.chat_id, event.chat.title)
        self.wake(event.chat.platform, event.chat.chat_id)

    async def record_work(self, platform: str, chat_id: str, message_id: str, payload: Mapping[str, Any]) -> int:
        """A work item, durably; past one machine with its job, in one transaction (a worker takes it)."""
        if self.intake is not None:
            return await self.intake.record(platform, chat_id, message_id, payload)
        return await self.store.enqueue_work(platform, chat_id, message_id, payload)

    def wake(self, platform: str, chat_id: str) -> None:
        """The chat has work: this process's pipeline takes it (past one machine, its job does)."""
        if self.intake is None:
            self.pipeline.wake(platform, chat_id)

    async def run_work(self, work_id: int) -> WorkItem | None:
        """One item by id, as a job queue's worker runs it (bot/jobs/): the pipeline's own handler;
        returns the item as it is afterwards (None: unknown)."""
        item = await self.store.work_item(work_id)
        if item is None or item.finished:
            return item
        await self._handle_work(item)
        return await self.store.work_item(work_id)

    async def _handle_work(self, item: WorkItem) -> None:
        """One work item, by the one worker that holds its chat: counted as an attempt when it
        starts, so an image that kills the process is given up after ``max_attempts`` starts."""
        if is_door(item.payload):  # a member's profile photo (bot/door.py)
            await self.door.run(item)
            return
        p = self.config.pipeline
        attempts = await self.store.start_work(item.id)
        if attempts is None:
            return  # finished meanwhile: never handled twice
        try:
            event = MediaPosted.from_payload(item.platform, item.payload)
        except Exception as exc:  # a record this version cannot read: nothing to check or alert with
            log.error("work item %d cannot be read (%s: %s); it is dropped", item.id, type(exc).__name__, exc)
            await self.store.give_up_work(item.id, f"unreadable record: {type(exc).__name__}")
            return
        if attempts > p.max_attempts:
            await self._give_up(item.id, event, item.last_error or "the process stopped during each attempt")
            return
        try:
            if await self.hold.redact_if_held(event):  # a new member's picture while media is held
                await self.store.finish_work(item.id)
                return
            tail = await self.moderator.handle(item.id, event, detach=self.batching)
        except asyncio.CancelledError:
            await asyncio.shield(self.store.release_work(item.id))  # a stop cut it short: not its fault
            raise
        except Exception as exc:
            await self._attempt_failed(item.id, event, attempts, exc)
            return
        if tail is not None:  # its delete goes out with the chat's others; the chat's next image meanwhile
            self.pipeline.detach(
                event.chat.platform, event.chat.chat_id, item.id, self._tail(item.id, event, attempts, tail)
            )

    async def _tail(self, work_id: int, event: MediaPosted, attempts: int, tail: Awaitable[None]) -> None:
        """The rest of an item's handling (actions, alerts, finishing it), failing as the item would."""
        try:
            await tail
        except asyncio.CancelledError:
            await asyncio.shield(self.store.release_work(work_id))
            raise
        except Exception as exc:
            await self._attempt_failed(work_id, event, attempts, exc)

    async def _attempt_failed(self, work_id: int, event: MediaPosted, attempts: int, exc: Exception) -> None:
        p = self.config.pipeline
        error = f"{type(exc).__name__}: {exc}"
        self.metrics.work_failed(event.chat.platform)
        log.exception(
            "chat %s message %s: handling failed (attempt %d of %d)",
            event.chat.chat_id,
            event.message_id,
            attempts,
            p.max_attempts,
            exc_info=exc,
        )
        if attempts >= p.max_attempts:
            await self._give_up(work_id, event, error)
        else:
            delay = p.retry_backoff * 2 ** (attempts - 1)
            await self.store.defer_work(work_id, error, datetime.now(UTC) + timedelta(seconds=delay))
            log.info("chat %s message %s: retrying in %.0f s", event.chat.chat_id, event.message_id, delay)

    async def _give_up(self, work_id: int, event: MediaPosted, error: str) -> None:
        """Too many attempts: the admins are told the image could not be checked (once), then it is finished."""
        log.error(
            "chat %s message %s: given up after %d attempts; the admins are told to look at it",
            event.chat.chat_id,
            event.message_id,
            self.config.pipeline.max_attempts,
        )
        await self.moderator.gave_up(work_id, event, error)
        await self.store.give_up_work(work_id, error)
        await self.store.delete_state(audit_key(work_id))
        self.metrics.work_gave_up(event.chat.platform)

    async def command(self, cmd: CommandIssued) -> None:
        await self.commands.handle(cmd)

    async def button(self, press: ButtonPressed) -> None:
        await self.presses.button(press)

    async def bot_added(self, event: BotAdded) -> None:
        await self.commands.bot_added(event)

    async def private_media(self, event: MediaPosted, *, command: str | None = None) -> None:
        """An image a user sent the bot in a private chat (Telegram, or a Matrix direct room):
        a photo to protect while a /protect session is open. ``command``: the verb of a
        command in its caption (``protect`` opens the session with this photo)."""
        await self.protect_chat.media(event, command=command)

    async def private_started(self, user: UserRef) -> None:
        await self.store.set_contact(
            user.platform, user.user_id, can_dm=True, language=user.language, display_name=user.display_name
        )

    def forget_admins(self, chat: ChatRef) -> None:
        self.admin_roster.forget(chat)

    async def member_joined(self, event: MemberJoined) -> None:
        """A member at the door: recorded, then checked by the pipeline (bot/door.py)."""
        await self.door.admit(event)

    # --- what adapters read (SharedReads) ------------------------------------------------

    async def group_settings(self, chat: ChatRef) -> GroupSettings:
        return await self.settings.of(chat)

    def translator(self, language: str | None, fallback: str = "en") -> Translator:
        """The admin's own language when Vigil has a catalog for it, else ``fallback`` (the group's)."""
        return self.translators(language, fallback)

    def list_size(self, list_id: int) -> int:
        return self.lists.size(list_id)

    @property
    def backlog(self) -> int:
        return self.pipeline.depth

    async def drain(self) -> None:
        await self.pipeline.drain()


def seams_of(core: Core) -> tuple[EventSink, SharedReads, BotCore]:
    """The core as the adapters see it (mypy checks here that it has the protocols' shape)."""
    return core, core, core
