"""The platform-neutral bot: adapters hand it events; it owns the store, the detectors and the pipeline."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.actions import Actions, SimulatedActions
from bot.config import Config
from bot.delete_batcher import DeleteBatcher
from bot.entries import EntrySource, EntryWriter
from bot.events import BotAdded, ButtonPressed, ChatRef, CommandIssued, MediaPosted, UserRef, picture_role
from bot.lists import HashLists, ListMatch, as_signals
from bot.metrics import metrics_of
from bot.moderation import Moderator
from bot.notify import Notifier
from bot.pipeline import Pipeline
from bot.policy import Decision, GroupSettings
from bot.redact import redact
from bot.repeats import RepeatCache
from detectors.scanner import Scan, Scanner

log = logging.getLogger("vigil.core")

ADMIN_CACHE_SECONDS = 10.0  # admin rights are re-checked at least this often
LIST_SYNC_SECONDS = 2.0  # how often the store's list change log is read (changes by `vigil hash`)


class Core:
    def __init__(self, config: Config, store: Any, scanner: Scanner) -> None:
        from bot.guidance.resources import load_resources

        self.config = config
        self.store = store
        self.scanner = scanner
        self.platforms: dict[str, Any] = {}
        # a chat's deletes in batches behind one rate-limit gate, while its next images are scanned
        self.batching = config.pipeline.batch_deletes
        self.actions = Actions(store, DeleteBatcher() if self.batching else None)
        self.simulated = SimulatedActions()
        self.moderator = Moderator(self)
        # verdicts of files seen recently (bot/repeats.py): a repeat is not downloaded or scanned again
        self.repeats = RepeatCache(config.pipeline.repeat_cache_entries, config.pipeline.repeat_cache_mb * 1024 * 1024)
        self.notifier = Notifier(self)
        self.resources = load_resources(config.resources)
        p = config.pipeline
        self.pipeline = Pipeline(store, self._handle_work, in_flight=p.in_flight, workers=p.workers)
        # hash lists (bot/lists.py): indexed in the scan pool, following the store's change log
        self.lists = HashLists(cpu=lambda fn, *args: self.pipeline.run_cpu(fn, *args, timeout=p.scan_timeout))
        self._lists_follower = self.lists.follower(store)
        self.entries = EntryWriter(store, self.lists)
        # protected photos (bot/protect.py): fingerprinting and searching run in the scan pool
        from bot.protect import Protector

        self.protector = Protector(
            store,
            config.protect,
            config.detectors.limits,
            cpu=lambda fn, *args: self.pipeline.run_cpu(fn, *args, timeout=p.scan_timeout),
        )
        self._admins: dict[tuple[str, str], tuple[float, frozenset[str]]] = {}
        self._translators: dict[str, Any] = {}
        self._started = False
        self._list_sync: asyncio.Task | None = None

    # --- life cycle ---------------------------------------------------------

    def add_platform(self, platform: Any) -> None:
        self.platforms[platform.name] = platform

    async def start(self) -> None:
        await self.load_lists()
        if self.config.protect.enabled:
            self.protector.start()  # loads the protected photos in the background
        self._list_sync = asyncio.create_task(self._follow_lists(), name="vigil-list-sync")
        self.pipeline.start()
        self._started = True
        # the inbox is the queue: chats with unfinished work get a turn (an adapter that polled
        # before this woke its chats already; a chat is never taken by two workers)
        if chats := await self.pipeline.wake_pending(self.platforms):
            log.info("resuming the images of %d chats that were not finished before the last stop", chats)

    async def stop(self, timeout: float = 0.0) -> bool:
        """Stops taking images; waits up to ``timeout`` s for those in flight. True if none was cut short."""
        await self.protector.stop()
        if self._list_sync is not None:
            self._list_sync.cancel()
            await asyncio.gather(self._list_sync, return_exceptions=True)
            self._list_sync = None
        clean = await self.pipeline.stop(timeout)
        if self.actions.batcher is not None:
            await self.actions.batcher.close()
        return clean

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
        work_id = await self.store.enqueue_work(
            event.chat.platform, event.chat.chat_id, event.message_id, event.payload()
        )
        item = await self.store.work_item(work_id)
        if item is not None and item.finished:
            return  # a replayed update (stopped after the work but before confirming it): done already
        await self.store.upsert_group(event.chat.platform, event.chat.chat_id, event.chat.title)
        self.pipeline.wake(event.chat.platform, event.chat.chat_id)

    async def _handle_work(self, item: Any) -> None:
        """One work item, by the one worker that holds its chat: counted as an attempt when it
        starts, so an image that kills the process is given up after ``max_attempts`` starts."""
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

    async def _tail(self, work_id: int, event: MediaPosted, attempts: int, tail: Any) -> None:
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
        metrics_of(self).work_failed(event.chat.platform)
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
        await self.store.delete_state(f"work:{work_id}:audit")
        metrics_of(self).work_gave_up(event.chat.platform)

    async def command(self, cmd: CommandIssued) -> None:
        from bot.commands import Commands

        await Commands(self).handle(cmd)

    async def button(self, press: ButtonPressed) -> None:
        from bot.commands import Commands

        await Commands(self).button(press)

    async def bot_added(self, event: BotAdded) -> None:
        from bot.commands import Commands

        await Commands(self).bot_added(event)

    async def private_media(self, event: MediaPosted, *, command: str | None = None) -> None:
        """An image a user sent the bot in a private chat (Telegram, or a Matrix direct room):
        a photo to protect while a /protect session is open. ``command``: the verb of a
        command in its caption (``protect`` opens the session with this photo)."""
        from bot.protect_chat import ProtectChat

        await ProtectChat(self).media(event, command=command)

    async def private_started(self, user: UserRef) -> None:
        await self.store.set_contact(
            user.platform, user.user_id, can_dm=True, language=user.language, display_name=user.display_name
        )

    # --- helpers the pieces share ---------------------------------------------------

    async def group_settings(self, chat: ChatRef) -> GroupSettings:
        group = await self.store.get_group(chat.platform, chat.chat_id)
        return GroupSettings.from_defaults(self.config.groups, group.settings if group else None)

    async def admins(self, chat: ChatRef, *, fresh: bool = False) -> frozenset[str]:
        key = (chat.platform, chat.chat_id)
        cached = self._admins.get(key)
        if not fresh and cached and time.monotonic() - cached[0] < ADMIN_CACHE_SECONDS:
            return cached[1]
        from bot.moderation import with_retries

        ids = await with_retries(
            f"admins of chat {chat.chat_id}", lambda: self.platforms[chat.platform].admins(chat.chat_id)
        )
        self._admins[key] = (time.monotonic(), frozenset(ids))
        return frozenset(ids)

    def forget_admins(self, chat: ChatRef) -> None:
        self._admins.pop((chat.platform, chat.chat_id), None)

    async def is_exempt(self, chat: ChatRef, user_id: str) -> bool:
        return user_id in await self.admins(chat) or await self.store.is_exempt(chat.platform, chat.chat_id, user_id)

    async def list_ids_for(self, chat: ChatRef) -> list[int]:
        return [lst.id for lst in await self.store.lists_for_group(chat.platform, chat.chat_id)]

    def translator(self, language: str | None, fallback: str = "en") -> Any:
        """The admin's own language when Vigil has a catalog for it, else ``fallback`` (the group's)."""
        from bot.i18n import DEFAULT_LANGUAGE, Translator, supported

        lang = supported(language) or supported(fallback) or DEFAULT_LANGUAGE
        if lang not in self._translators:
            self._translators[lang] = Translator(lang, timezone=self.config.timezone)
        return self._translators[lang]

    def bot_username(self, platform: str) -> str:
        return getattr(self.platforms.get(platform), "username", "") or "Vigil"

    async def record_scan(
        self,
        work_id: int,
        event: MediaPosted,
        scan: Scan | None,
        error: Exception | None,
        matches: tuple[ListMatch, ...],
        label: str,
        decision: Decision,
        derived: tuple = (),
    ) -> int:
        """The audit record of one work item, reused when the item is replayed after a restart."""
        key = f"work:{work_id}:audit"
        existing = await self.store.get_state(key)
        if existing:
            return int(existing)
        findings: dict[str, Any] = {}
        hashes: dict[str, Any] = {}
        clean = decision.verdict == "allow" and error is None
        if scan is not None:
            findings = {
                "nudity": [{"class": h.label, "score": round(h.score, 4), "level": h.level} for h in scan.hits],
                "nsfw": None if scan.nsfw is None else round(scan.nsfw, 4),
                "format": scan.format,
                "frames": len(scan.frames),
            }
            if scan.provenance:  # signals only (e.g. "c2pa.generative"), for the alert's details
                findings["provenance"] = [p.signal for p in scan.provenance]
            if not clean:
                # hashes only for images that matter: a clean member photo leaves no trace
                hashes = {
                    "pdq": scan.hashes.pdq,
                    "pdq_quality": scan.hashes.pdq_quality,
                    "phash": scan.hashes.phash,
                    "sha256": scan.hashes.sha256,
                }
        if event.sender.kind != "user":  # a post made as a chat: the details say which kind
            findings["sender_kind"] = event.sender.kind
        if picture := picture_role(event.variant):  # a thumbnail, a cover or a quoted message's picture
            findings["picture"] = picture
        if derived:
            # which protected photo (ids only): the owner's name stays out of the record
            findings["derived"] = [
                {
                    "photo": d.photo.id,
                    "owner": d.photo.owner_id,
                    "match_fraction": round(d.match_fraction, 3),
                    "frame": d.frame,
                }
                for d in derived
            ]
        if matches:
            findings["lists"] = [
                {
                    "list": m.list_name,
                    "kind": m.kind,
                    "entry": m.entry_id,
                    "algorithm": m.algorithm,
                    "distance": m.distance,
                }
                for m in matches
            ]
        if error is not None:
            findings["error"] = getattr(error, "reason", type(error).__name__)
            findings["error_detail"] = redact(str(error))  # exported: no media link, no token
        audit_id = await self.store.add_audit(
            platform=event.chat.platform,
            chat_id=event.chat.chat_id,
            message_id=event.message_id,
            sender_id=None if clean else event.sender.user_id,
            sender_name=None if clean else event.sender.display_name,
            kind="scan",
            label=label if error is None else "unscannable",
            findings=findings,
            hashes=hashes,
            decision=decision.verdict,
            actions={"sender_action": decision.sender_action, "reason": decision.reason},
            actor=None,
            dry_run=decision.dry_run,
        )
        await self.store.set_state(key, str(audit_id))
        return audit_id

    # --- list entries ---------------------------------------------------------------------

    async def add_entry_hashes(
        self,
        lst: Any,
        hashes: Mapping[str, Any],
        *,
        added_by: str,
        chat: ChatRef,
        note: str | None = None,
        views: Any = (),
        fingerprint: Any | None = None,
    ) -> int:
        """Adds one entry to a list, in the store and in memory at once (bot/entries.py)."""
        source = EntrySource(added_by, chat.platform, chat.chat_id, note)
        return await self.entries.add_hashes(lst, hashes, source, views=views, fingerprint=fingerprint)

    async def add_entries(
        self, lst: Any, scan: Scan, *, added_by: str, chat: ChatRef, note: str | None = None
    ) -> list[int]:
        """One entry per distinct sampled frame (an animation is blocked by any of its frames)."""
        frames = [as_signals(f) for f in scan.frames]
        return await self.entries.add_frames(lst, frames, EntrySource(added_by, chat.platform, chat.chat_id, note))

    async def remove_entry(self, entry_id: int) -> bool:
        """Removes an entry from the store and from memory; True if it existed."""
        return await self.entries.remove(entry_id)
