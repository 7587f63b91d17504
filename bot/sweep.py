"""The sweep: when an image is blocked or a photo protected, find the copies already posted.

Triggers come from the store's change logs, whoever made the change (``/block``, a review's
"false negative" button, ``vigil hash add`` or import, ``/protect``, ``vigil protect add``, an
instance list gaining entries): ``HashLists.apply`` hands the entries it added to
``entries_added``, ``Protector.apply`` the photos to ``photos_added``. A group photo kept from an
ordinary post is not a trigger (it is a member's own photo, not a new protection).

The window (bot/seen_window.py) is read in pages and matched in bounded batches in the CPU pool,
with the live scan's matchers: the new entries in a list index of their own (PDQ, pHash,
SHA-256, with the group's distance and quality), the new photo in a protected-photo index of
its own (local features, the configured share). A block entry is looked for in the groups that
use its list (the list's group, or the groups following the instance list); a protected photo
in every group.

A hit is recorded as a new work item of the message (variant ``sweep-<trigger>``, the post's
durable form as payload) and its chat woken: the pipeline fetches, scans, matches, decides, acts
and alerts as for a new post, with the same durability and the same one-alert-per-message rule.
A message older than the platform lets a bot delete is skipped with a note. When the items are
done, the admins of each group get one summary ("3 earlier copies removed"), claimed in the
store so that two processes following the same log send it once.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import numpy as np

from bot.admins import Admins
from bot.cpu import RunCpu
from bot.events import ChatRef
from bot.group_settings import SettingsLookup, list_ids_for
from bot.i18n import Translators
from bot.lists import HashLists, entry_from_records, list_info
from bot.platforms.base import OutgoingMessage, Platform
from bot.platforms.errors import PlatformError
from bot.platforms.retries import with_retries
from bot.policy import GroupSettings
from bot.protect import Protector
from bot.seen_window import SWEEP_PREFIX, SeenWindow
from bot.store.protocol import Store
from bot.store.records import EntryRecord
from bot.store.seen import MAX_VARIANT, SeenImage
from bot.values import Verdict
from detectors.hashing import ImageHashes
from detectors.localmatch import Fingerprint
from detectors.matching import PHASH_DISTANCE, EntryHashes, FrameSignals
from detectors.protected import KnownPhoto, ProtectedIndex, decode_fingerprint, derived_evidence

log = logging.getLogger("vigil.sweep")

# how long after posting a platform lets a bot delete a message (Telegram: 48 hours; Matrix: no limit)
DELETE_WINDOWS: Mapping[str, timedelta] = {"telegram": timedelta(hours=48)}
SWEPT_SOURCES = ("private", "operator")  # protected photos whose arrival starts a sweep
SUMMARY_WAIT = 900.0  # seconds a summary waits for the sweep's work items at most
SUMMARY_POLL = 1.0
MAX_TRIGGERS_REMEMBERED = 100_000  # entry and photo ids already swept for (a change applied twice sweeps once)
NO_HASH = ""


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Hit:
    image: SeenImage
    tag: str  # "b<entry id>" (a block entry) or "p<photo id>" (a protected photo)


@dataclass
class SweepResult:
    """What one sweep did: images looked at, and per chat the work items recorded and the copies
    too old to delete."""

    kind: str  # "block" | "protected"
    tag: str
    started: datetime = field(default_factory=_utc_now)
    looked: int = 0
    queued: dict[tuple[str, str], list[tuple[int, str]]] = field(default_factory=dict)  # chat -> (work id, msg)
    too_old: Counter[tuple[str, str]] = field(default_factory=Counter)

    @property
    def found(self) -> int:
        return sum(len(v) for v in self.queued.values()) + sum(self.too_old.values())


@dataclass(frozen=True)
class _Chat:
    """What a sweep needs of one group, read once per sweep."""

    settings: GroupSettings
    lists: frozenset[int]


def _signals(image: SeenImage) -> list[FrameSignals]:
    """A kept image's frames as the list matcher takes them (whole-frame hashes only)."""
    out = []
    for f in image.frames:
        pdq = f.pdq or "0" * 64
        quality = f.pdq_quality if f.pdq is not None and f.pdq_quality is not None else 0
        out.append(FrameSignals(ImageHashes(pdq, quality, f.phash or NO_HASH, NO_HASH, image.sha256 or NO_HASH), ()))
    return out


_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], np.uint8)
PREFILTER_CODES = 4096  # entry hashes beyond this (a large import): every kept image goes to the matcher


@dataclass(frozen=True)
class EntryCodes:
    """The new entries' hashes (whole image and trimmed views) as bit arrays, to pass over the kept
    images that cannot match any of them before the list matcher looks at the rest."""

    pdq: np.ndarray  # (m, 32) uint8
    phash: np.ndarray  # (k, 8) uint8
    sha256: frozenset[str]

    @classmethod
    def of(cls, entries: Sequence[EntryHashes]) -> EntryCodes | None:
        pdqs = {e.pdq for e in entries if e.pdq} | {v[1] for e in entries for v in e.views if v[1]}
        phashes = {e.phash for e in entries if e.phash} | {v[3] for e in entries for v in e.views if v[3]}
        phashes = {p for p in phashes if len(p) == 16}
        if len(pdqs) + len(phashes) > PREFILTER_CODES or any(len(p) != 64 for p in pdqs):
            return None
        return cls(_bits(sorted(pdqs), 32), _bits(sorted(phashes), 8), frozenset(e.sha256 for e in entries if e.sha256))

    def near(self, batch: Sequence[tuple[SeenImage, frozenset[int], int, int]]) -> list[bool]:
        """Per kept image: whether any frame is within reach of a new entry (a superset of matches)."""
        out = []
        for image, _, distance, _ in batch:
            hit = image.sha256 is not None and image.sha256 in self.sha256
            for f in image.frames:
                if hit:
                    break
                if f.pdq is not None and len(self.pdq) and len(f.pdq) == 64:
                    hit = _closest(self.pdq, f.pdq) <= distance
                if not hit and f.phash is not None and len(f.phash) == 16 and len(self.phash):
                    hit = _closest(self.phash, f.phash) <= PHASH_DISTANCE
            out.append(hit)
        return out


def _bits(codes: Sequence[str], size: int) -> np.ndarray:
    return np.frombuffer(bytes.fromhex("".join(codes)), np.uint8).reshape(len(codes), size)


def _closest(codes: np.ndarray, code: str) -> int:
    return int(_POPCOUNT[codes ^ np.frombuffer(bytes.fromhex(code), np.uint8)].sum(axis=1).min())


def match_entries(
    lists: HashLists, batch: Sequence[tuple[SeenImage, frozenset[int], int, int]], codes: EntryCodes | None = None
) -> list[tuple[SeenImage, int]]:
    """CPU-bound: the kept images (each with the new lists its group uses, its PDQ distance and
    quality) that match a new entry; (image, entry id). ``codes``: the new entries' hashes, to pass
    over the images none of them is near before the list matcher runs."""
    hits = []
    near = codes.near(batch) if codes is not None else [True] * len(batch)
    for (image, list_ids, distance, quality), maybe in zip(batch, near, strict=True):
        if not maybe:
            continue
        found = lists.match(list_ids, _signals(image), distance=distance, min_quality=quality, local=False)
        blocks = [m for m in found if m.kind == "block"]
        if blocks:
            hits.append((image, blocks[0].entry_id))
    return hits


def match_photos(index: ProtectedIndex, batch: Sequence[SeenImage], min_fraction: float) -> list[tuple[SeenImage, int]]:
    """CPU-bound: the kept images made from a new protected photo; (image, photo id). The sender's
    own photo and an unchanged re-post are left out, as in a live scan."""
    hits = []
    for image in batch:
        frames = []
        for f in image.frames:
            if f.fingerprint is None:
                continue
            try:
                fp = Fingerprint.from_bytes(f.fingerprint)
            except ValueError as exc:
                log.warning("seen image %d: its fingerprint cannot be read (%s); skipped", image.id, exc)
                continue
            pdq = f.pdq if f.pdq is not None and (f.pdq_quality or 0) >= 50 else None
            frames.append((f.frame, fp, pdq))
        if not frames:
            continue
        found = index.search(frames, min_fraction=min_fraction)
        kept = derived_evidence(found, label="clean", sender=(image.platform, image.sender_id))
        if kept:
            hits.append((image, kept[0].photo.id))
    return hits


class Sweeper:
    """Runs sweeps in the background, one at a time, and tells the admins what they found."""

    def __init__(
        self,
        *,
        store: Store,
        window: SeenWindow,
        lists: HashLists,
        protector: Protector,
        settings: SettingsLookup,
        admins: Admins,
        platforms: Mapping[str, Platform],
        translators: Translators,
        cpu: RunCpu,
        record: Callable[[str, str, str, Mapping[str, Any]], Awaitable[int]],
        wake: Callable[[str, str], None],
        active: Callable[[], bool] = lambda: True,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.store = store
        self.window = window
        self.lists = lists
        self.protector = protector
        self.settings = settings
        self.admins = admins
        self.platforms = platforms
        self.translators = translators
        self.cpu = cpu
        self.record = record  # a work item (with its job, past one machine)
        self.wake = wake
        # past one machine every process follows the change logs, but one sweeps: the one reading the
        # platforms (a sweep is CPU over the whole window; its hits become work any worker takes)
        self.active = active
        self._triggered: OrderedDict[tuple[str, int], None] = OrderedDict()  # entries and photos swept for
        self.clock = clock
        self._queue: asyncio.Queue[tuple[str, tuple[int, ...]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._summaries: set[asyncio.Task[None]] = set()
        self._token = uuid.uuid4().hex  # this process's claim on a summary
        self.done: list[SweepResult] = []  # the latest sweeps, for tests and the log (bounded)

    # --- triggers ----------------------------------------------------------------------

    def _new(self, trigger: str, ids: Sequence[int]) -> tuple[int, ...]:
        """The ids not swept for yet: a change the follower applies again (after a reload, or the
        process's own change read back from the log) starts no second sweep."""
        fresh = tuple(i for i in ids if (trigger, i) not in self._triggered)
        for i in fresh:
            self._triggered[(trigger, i)] = None
        while len(self._triggered) > MAX_TRIGGERS_REMEMBERED:
            self._triggered.popitem(last=False)
        return fresh

    def entries_added(self, records: Sequence[EntryRecord]) -> None:
        """``HashLists.apply`` added these entries: sweep for those of block lists. Never waits."""
        ids = self._new(
            "block",
            [r.id for r in records if (info := self.lists.info(r.list_id)) is not None and info.kind == "block"],
        )
        if ids and self.window.enabled and self.active():
            self._queue.put_nowait(("block", ids))
            self.start()

    def photos_added(self, photo_ids: Collection[int]) -> None:
        """``Protector.apply`` added these photos: sweep for those newly protected. Never waits."""
        ids = self._new(
            "protected",
            sorted(
                i
                for i in photo_ids
                if (photo := self.protector.index.get(i)) is not None and photo.source in SWEPT_SOURCES
            ),
        )
        if ids and self.window.enabled and self.window.settings.fingerprint_points and self.active():
            self._queue.put_nowait(("protected", ids))
            self.start()

    # --- life cycle ----------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="vigil-sweep")

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._summaries) if t is not None]
        self._task = None
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def idle(self) -> None:
        """Waits until every queued sweep ran and its summary went out (tests, benchmarks)."""
        while self._task is not None and not self._task.done():
            await asyncio.wait([self._task])
        if self._summaries:
            await asyncio.gather(*list(self._summaries), return_exceptions=True)

    async def _run(self) -> None:
        while not self._queue.empty():
            kind, ids = self._queue.get_nowait()
            # what queued meanwhile of the same kind goes along: one pass over the window for all
            others = []
            while not self._queue.empty():
                more_kind, more = self._queue.get_nowait()
                if more_kind == kind:
                    ids = ids + more
                else:
                    others.append((more_kind, more))
            for other in others:
                self._queue.put_nowait(other)
            try:
                result = await (self.sweep_entries(ids) if kind == "block" else self.sweep_photos(ids))
            except asyncio.CancelledError:
                raise
            except Exception:  # a failed sweep must not stop the next one; the posts were scanned live
                log.exception("sweep for %s %s failed", kind, ",".join(map(str, ids[:10])))
                continue
            self.done = [*self.done[-99:], result]
            if result.queued or result.too_old:
                task = asyncio.create_task(self._summarise(result), name="vigil-sweep-summary")
                self._summaries.add(task)
                task.add_done_callback(self._summaries.discard)

    # --- the sweeps ---------------------------------------------------------------------------

    async def sweep_entries(self, entry_ids: Sequence[int]) -> SweepResult:
        """Looks for new block entries in the window of the groups that use their lists."""
        records = await self.store.entries_by_id(sorted(set(entry_ids)))
        result = SweepResult("block", f"b{min(records) if records else 0}", self.clock())
        if not records:
            return result
        lists = {}
        for list_id in {r.list_id for r in records.values()}:
            lst = await self.store.get_list(list_id)
            if lst is not None and lst.kind == "block":
                lists[list_id] = lst
        records = {i: r for i, r in records.items() if r.list_id in lists}
        if not records:
            return result
        followers = await self.store.followers()
        chats: set[tuple[str, str]] = set()
        for lst in lists.values():
            if lst.scope == "group" and lst.platform and lst.chat_id:
                chats.add((lst.platform, lst.chat_id))
            chats.update(followers.get(lst.id, ()))
        if not chats:
            return result
        features = await self.store.entry_features(sorted(records))
        index = HashLists(local=False)
        for lst in lists.values():
            index.set_list(list_info(lst))
        entries = [entry_from_records(r, features.get(i)) for i, r in sorted(records.items())]
        index.add_many(entries)
        codes = EntryCodes.of(entries)
        new_lists = frozenset(lists)
        known: dict[tuple[str, str], _Chat | None] = {}
        after = 0
        while True:
            page = await self.store.seen_batch(
                since=self.window.since(), after_id=after, limit=self.window.settings.batch, chats=chats
            )
            if not page:
                break
            after = page[-1].id
            batch = []
            for image in page:
                key = (image.platform, image.chat_id)
                if key not in chats:
                    continue
                chat = await self._chat(known, key)
                if chat is None or not chat.lists & new_lists:
                    continue
                batch.append(
                    (image, chat.lists & new_lists, chat.settings.hash_distance, chat.settings.pdq_min_quality)
                )
            result.looked += len(batch)
            if batch:
                for image, entry_id in await self.cpu(match_entries, index, batch, codes):
                    await self._queue_hit(result, Hit(image, f"b{entry_id}"))
        self._log(result, f"entries {','.join(map(str, sorted(records)[:10]))}")
        return result

    async def sweep_photos(self, photo_ids: Sequence[int]) -> SweepResult:
        """Looks for images made from newly protected photos in every group's window."""
        wanted = sorted(set(photo_ids))
        result = SweepResult("protected", f"p{wanted[0] if wanted else 0}", self.clock())
        items: list[tuple[KnownPhoto, Fingerprint]] = []
        async for photo in self.store.iter_protected_photos(ids=wanted):
            known = self.protector.index.get(photo.id)
            if known is None or known.source not in SWEPT_SOURCES or photo.fingerprint is None:
                continue
            try:
                items.append((known, decode_fingerprint(photo.fingerprint)))
            except ValueError as exc:
                log.warning("protected photo %d: fingerprint unreadable (%s); not swept", photo.id, exc)
        if not items:
            return result
        index = ProtectedIndex()
        await self.cpu(index.add_many, items)
        min_fraction = self.protector.settings.min_fraction
        known_chats: dict[tuple[str, str], _Chat | None] = {}
        after = 0
        while True:
            page = await self.store.seen_batch(
                since=self.window.since(), after_id=after, limit=self.window.settings.batch, fingerprints=True
            )
            if not page:
                break
            after = page[-1].id
            batch = [i for i in page if await self._chat(known_chats, (i.platform, i.chat_id)) is not None]
            result.looked += len(batch)
            if batch:
                for image, photo_id in await self.cpu(match_photos, index, batch, min_fraction):
                    await self._queue_hit(result, Hit(image, f"p{photo_id}"))
        self._log(result, f"protected photos {','.join(map(str, wanted[:10]))}")
        return result

    async def _chat(self, known: dict[tuple[str, str], _Chat | None], key: tuple[str, str]) -> _Chat | None:
        """The group's settings and lists, once per sweep; None where Vigil is off."""
        if key not in known:
            ref = ChatRef(*key)
            settings = await self.settings.of(ref)
            known[key] = (
                None if settings.mode == "off" else _Chat(settings, frozenset(await list_ids_for(self.store, ref)))
            )
        return known[key]

    def _log(self, result: SweepResult, what: str) -> None:
        log.info(
            "sweep for %s: %d kept images looked at, %d copies found (%d too old to delete)",
            what,
            result.looked,
            result.found,
            sum(result.too_old.values()),
        )

    async def _queue_hit(self, result: SweepResult, hit: Hit) -> None:
        """Records the hit as a new work item of its message and wakes its chat; a message older than
        the platform lets a bot delete is only counted."""
        image = hit.image
        key = (image.platform, image.chat_id)
        limit = DELETE_WINDOWS.get(image.platform)
        posted = datetime.fromisoformat(image.posted_at)
        if limit is not None and self.clock() - posted > limit:
            log.info(
                "sweep: chat %s message %s matches but was posted more than %d hours ago; the platform no "
                "longer lets a bot delete it",
                image.chat_id,
                image.message_id,
                limit.total_seconds() // 3600,
            )
            result.too_old[key] += 1
            return
        if await self.store.deleted_messages(image.platform, image.chat_id, [image.message_id]):
            return  # Vigil deleted it already (the /block that started this sweep, or an earlier hit)
        variant = f"{SWEEP_PREFIX}{hit.tag}" + (f"/{image.variant}" if image.variant else "")
        if len(variant) > MAX_VARIANT:
            log.warning("sweep: chat %s message %s: variant too long; not swept", image.chat_id, image.message_id)
            return
        payload = {**image.event, "variant": variant}
        work_id = await self.record(image.platform, image.chat_id, image.message_id, payload)
        item = await self.store.work_item(work_id)
        if item is not None and item.finished:
            return  # swept for this trigger before (another process, or a replayed change)
        result.queued.setdefault(key, []).append((work_id, image.message_id))
        self.wake(image.platform, image.chat_id)

    # --- the summary ------------------------------------------------------------------------

    async def _summarise(self, result: SweepResult) -> None:
        for key in sorted(set(result.queued) | set(result.too_old)):
            try:
                await self._summary_for(result, key, result.started)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sweep summary for chat %s failed", key[1])

    async def _summary_for(self, result: SweepResult, key: tuple[str, str], started: datetime) -> None:
        queued = result.queued.get(key, [])
        removed = review = 0
        if queued:
            await self._wait_finished([w for w, _ in queued])
            messages = {m for _, m in queued}
            since = started - timedelta(seconds=1)
            decisions: dict[str, str] = {}
            for record in await self.store.audit_for_group(*key, since=since):
                if record.kind == "scan" and record.message_id in messages and not record.dry_run:
                    old = decisions.get(record.message_id)
                    if old != Verdict.DELETE:
                        decisions[record.message_id] = record.decision or ""
            removed = sum(d == Verdict.DELETE for d in decisions.values())
            review = sum(d == Verdict.ASK for d in decisions.values())
        too_old = result.too_old.get(key, 0)
        if not removed and not review and not too_old:
            return
        claim = await self.store.record_action(key[0], key[1], f"sweep-{result.tag}", "summary", {"by": self._token})
        if claim.params.get("by") != self._token or claim.state == "done":
            return  # another process told them
        await self._send_summary(ChatRef(*key), result.kind, removed, review, too_old)
        await self.store.action_done(claim.id)

    async def _wait_finished(self, work_ids: Sequence[int]) -> None:
        deadline = asyncio.get_running_loop().time() + SUMMARY_WAIT
        pending = list(work_ids)
        while pending and asyncio.get_running_loop().time() < deadline:
            items = [await self.store.work_item(w) for w in pending]
            pending = [w for w, item in zip(pending, items, strict=True) if item is not None and not item.finished]
            if pending:
                await asyncio.sleep(SUMMARY_POLL)

    async def _send_summary(self, chat: ChatRef, kind: str, removed: int, review: int, too_old: int) -> None:
        platform = self.platforms.get(chat.platform)
        if platform is None:
            return
        settings = await self.settings.of(chat)
        admins = await self.admins.of(chat)
        group = await self.store.get_group(chat.platform, chat.chat_id)
        title = (group.title if group is not None else None) or chat.chat_id
        hours = int(DELETE_WINDOWS.get(chat.platform, timedelta(0)).total_seconds() // 3600)
        for contact in await self.store.contacts(chat.platform, sorted(admins)):
            if not contact.can_dm or contact.user_id not in admins:
                continue
            t = self.translators(contact.language or settings.language, settings.language)
            lines = [t.gettext("Vigil looked again at the images posted recently in {group}.", group=title)]
            if removed and kind == "block":
                lines.append(
                    t.ngettext(
                        "{count} earlier copy of the newly blocked image was removed.",
                        "{count} earlier copies of the newly blocked image were removed.",
                        removed,
                        count=removed,
                    )
                )
            elif removed:
                lines.append(
                    t.ngettext(
                        "{count} earlier image made from a newly protected photo was removed.",
                        "{count} earlier images made from a newly protected photo were removed.",
                        removed,
                        count=removed,
                    )
                )
            if review:
                lines.append(
                    t.ngettext(
                        "{count} earlier copy was sent to you for review.",
                        "{count} earlier copies were sent to you for review.",
                        review,
                        count=review,
                    )
                )
            if too_old:
                lines.append(
                    t.ngettext(
                        "{count} earlier copy is older than the {hours} hours in which the platform lets Vigil "
                        "delete messages: please remove it by hand.",
                        "{count} earlier copies are older than the {hours} hours in which the platform lets Vigil "
                        "delete messages: please remove them by hand.",
                        too_old,
                        count=too_old,
                        hours=hours,
                    )
                )
            message = OutgoingMessage("\n".join(lines), language=t.language)
            user = contact.user_id
            try:
                await with_retries(f"sweep summary to admin {user}", partial(platform.send_private, user, message))
            except PlatformError as exc:
                log.error("sweep summary for chat %s to admin %s failed: %s", chat.chat_id, contact.user_id, exc)
