"""The platform-neutral bot: adapters hand it events; it owns the store, the detectors and the pipeline."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, Mapping

from bot.actions import Actions, SimulatedActions
from bot.config import Config
from bot.events import BotAdded, ButtonPressed, ChatRef, CommandIssued, MediaPosted, UserRef
from bot.lists import HashLists, ListInfo, ListMatch, entry_from_records, stored_fingerprint, stored_views
from bot.moderation import Moderator
from bot.notify import Notifier
from bot.pipeline import Pipeline
from bot.policy import Decision, GroupSettings
from detectors.errors import MediaError
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
        self.lists = HashLists()
        self.actions = Actions(store)
        self.simulated = SimulatedActions()
        self.moderator = Moderator(self)
        self.notifier = Notifier(self)
        self.resources = load_resources(config.resources)
        p = config.pipeline
        self.pipeline: Pipeline[tuple[int, MediaPosted]] = Pipeline(
            self._handle_work, lanes=max(2, p.workers * 4), lane_size=max(1, p.queue_size // max(2, p.workers * 4)), workers=p.workers
        )
        # protected photos (bot/protect.py): fingerprinting and searching run in the scan pool
        from bot.protect import Protector

        self.protector = Protector(
            store, config.protect, config.detectors.limits,
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
        resumed = 0
        for item in await self.store.pending_work():
            if item.platform in self.platforms:
                event = MediaPosted.from_payload(item.platform, item.payload)
                await self.pipeline.submit(event.chat.chat_id, (item.id, event))
                resumed += 1
        if resumed:
            log.info("resumed %d images that were not finished before the last stop", resumed)

    async def stop(self) -> None:
        await self.protector.stop()
        if self._list_sync is not None:
            self._list_sync.cancel()
            await asyncio.gather(self._list_sync, return_exceptions=True)
            self._list_sync = None
        await self.pipeline.stop()

    async def load_lists(self) -> None:
        await self.lists.load(self.store)

    async def sync_lists(self) -> int:
        """Applies list changes made since the last call (by `vigil hash`, a purge, or this bot)."""
        return await self.lists.sync(self.store)

    async def _follow_lists(self) -> None:
        while True:
            await asyncio.sleep(LIST_SYNC_SECONDS)
            try:
                if changed := await self.sync_lists():
                    log.info("hash lists: applied %d changes from the store", changed)
            except Exception:  # a failed read is retried at the next poll
                log.exception("hash lists: reading the store's changes failed; retrying")

    # --- events from adapters ----------------------------------------------------

    async def submit(self, event: MediaPosted) -> None:
        """Record the event durably, then queue it; returns once it cannot be lost."""
        work_id = await self.store.enqueue_work(
            event.chat.platform, event.chat.chat_id, event.message_id, event.payload()
        )
        item = await self.store.work_item(work_id)
        if item is not None and item.finished:
            return  # a replayed update (stopped after the work but before confirming it): done already
        await self.store.upsert_group(event.chat.platform, event.chat.chat_id, event.chat.title)
        await self.pipeline.submit(event.chat.chat_id, (work_id, event))

    async def _handle_work(self, item: tuple[int, MediaPosted]) -> None:
        work_id, event = item
        try:
            await self.moderator.handle(work_id, event)
        except Exception as exc:
            attempts = await self.store.fail_work(work_id, f"{type(exc).__name__}: {exc}")
            log.exception("chat %s message %s: handling failed (attempt %d)", event.chat.chat_id, event.message_id, attempts)

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
        await self.store.set_contact(user.platform, user.user_id, can_dm=True, language=user.language, display_name=user.display_name)

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

        ids = await with_retries(f"admins of chat {chat.chat_id}", lambda: self.platforms[chat.platform].admins(chat.chat_id))
        self._admins[key] = (time.monotonic(), frozenset(ids))
        return frozenset(ids)

    def forget_admins(self, chat: ChatRef) -> None:
        self._admins.pop((chat.platform, chat.chat_id), None)

    async def is_exempt(self, chat: ChatRef, user_id: str) -> bool:
        return user_id in await self.admins(chat) or await self.store.is_exempt(chat.platform, chat.chat_id, user_id)

    async def list_ids_for(self, chat: ChatRef) -> list[int]:
        return [lst.id for lst in await self.store.lists_for_group(chat.platform, chat.chat_id)]

    def translator(self, language: str | None, fallback: str = "en") -> Any:
        from bot.i18n import Translator

        lang = language if language and language.split("-")[0].split("_")[0].lower() in ("en", "es") else fallback
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
            if not clean:
                # hashes only for images that matter: a clean member photo leaves no trace
                hashes = {"pdq": scan.hashes.pdq, "pdq_quality": scan.hashes.pdq_quality, "phash": scan.hashes.phash, "sha256": scan.hashes.sha256}
        if derived:
            # which protected photo (ids only): the owner's name stays out of the record
            findings["derived"] = [
                {"photo": d.photo.id, "owner": d.photo.owner_id, "match_fraction": round(d.match_fraction, 3), "frame": d.frame}
                for d in derived
            ]
        if matches:
            findings["lists"] = [{"list": m.list_name, "kind": m.kind, "entry": m.entry_id, "algorithm": m.algorithm, "distance": m.distance} for m in matches]
        if error is not None:
            findings["error"] = getattr(error, "reason", type(error).__name__)
            findings["error_detail"] = str(error)
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

    async def add_entry_hashes(self, lst: Any, hashes: Mapping[str, Any], *, added_by: str, chat: ChatRef,
                               note: str | None = None, views: Any = (), fingerprint: Any | None = None) -> int:
        """Adds one entry to a list, in the store and in memory at once.

        ``views``/``fingerprint``: the trimmed views and local fingerprint of the entry's
        image (``FrameScan.views``/``.fingerprint``), when the scan computed them.
        """
        entry = await self.store.add_entry(
            lst.id,
            pdq=hashes.get("pdq"),
            pdq_quality=hashes.get("pdq_quality"),
            phash=hashes.get("phash"),
            sha256=hashes.get("sha256"),
            added_by=added_by,
            source_platform=chat.platform,
            source_chat=chat.chat_id,
            note=note,
        )
        kept = stored_views(views)
        known = stored_fingerprint(fingerprint)
        features = None
        if kept or known is not None:
            features = await self.store.set_entry_features(entry.id, views=kept, fingerprint=known)
        self.lists.set_list(ListInfo(lst.id, lst.name, lst.kind, lst.action, lst.label))
        self.lists.add(entry_from_records(entry, features), None if fingerprint is None else fingerprint.as_known())
        return entry.id

    async def add_entries(self, lst: Any, scan: Scan, *, added_by: str, chat: ChatRef, note: str | None = None) -> list[int]:
        """One entry per distinct sampled frame (an animation is blocked by any of its frames)."""
        ids, seen = [], set()
        for frame in scan.frames:
            h = frame.hashes
            if h.pdq in seen:
                continue
            seen.add(h.pdq)
            ids.append(await self.add_entry_hashes(
                lst, {"pdq": h.pdq, "pdq_quality": h.pdq_quality, "phash": h.phash, "sha256": h.sha256},
                added_by=added_by, chat=chat, note=note, views=frame.views, fingerprint=frame.fingerprint,
            ))
        return ids

    async def remove_entry(self, entry_id: int) -> bool:
        """Removes an entry from the store and from memory; True if it existed."""
        removed = await self.store.remove_entry(entry_id)
        self.lists.remove(entry_id)
        return removed
