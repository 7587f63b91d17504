"""Protected photos: trace a manipulated image back to the real photo it was made from.

AI "undress" apps keep the face, hair, pose and background of a real photo and replace
the body. Vigil keeps local-feature fingerprints (``detectors.localmatch``: keypoint
positions and descriptors, never pixels) of photos people want protected, and looks
every scanned image up among them: a large, geometrically consistent shared region means
the image was made from that photo.

Where fingerprints come from (``source``):

* ``private``: a member sends photos of themselves to Vigil in a private chat after
  ``/protect`` (``Protector.register_member_photo``). Only the fingerprint, the whole-image
  PDQ hash and the member's id and display name are kept; the bytes are dropped as soon
  as the fingerprint is made. The member chooses whether to be told privately when a
  manipulated copy is removed (off until they say yes).
* ``group``: a group that turned on group photos (``/vigil groupphotos on [DAYS]``) keeps
  the fingerprints of ordinary photos its members post, owner = the sender, deleted after
  the group's retention period (``Protector.expire``) or at once when it is turned off.
* ``operator``: ``vigil protect add IMAGE... --owner NAME``.

Matching works across groups: a member's protection holds in every group Vigil watches,
because fakes spread from group to group. Naming does not (``Protector.nameable``): the
person is named only to the admins of a group they belong to (checked on the platform when
the alert is sent) or of a group the operator trusts (``[protect] trusted_groups``); an owner
the operator added (no platform account) only in a trusted group. Anywhere else the alert
says the image was very likely made from a real person's photo, and nothing more: otherwise
anyone could make a group, post a crop of a stranger's photo, and learn from the alert
whether that stranger is protected and their name. The person is never named in a group
chat (the admin log chat included), and the owner's notice names the group only when the
owner is a member of it.

Not a manipulation: the owner posting their own photo, and a photo re-posted unchanged
(whole-image PDQ within ``NEAR_COPY_DISTANCE``) when nothing else was found in it.

The index lives in memory (``detectors.protected.ProtectedIndex``, pure) and follows the
store's protected-photo change log (bot/follow.py), as the hash lists follow theirs: what
``vigil protect`` or another worker changes is matched here within ``REFRESH_SECONDS``. A process
starts from the newest index snapshot (bot/snapshots.py) rather than building the index, when there is one.
The /protect chat sessions are kept apart (bot/protect_sessions.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from bot.cpu import RunCpu, in_thread
from bot.follow import ChangeFollower, net_changes
from bot.protect_sessions import ProtectSessions
from bot.recheck import known_photo
from bot.store.protected import PhotoLimitReached, ProtectedOwner, ProtectedPhoto
from bot.store.protocol import ChangesStore, ProtectedStore, SnapshotsStore
from bot.store.records import Change, ChangeKind, ChangeOp
from detectors.errors import VigilError
from detectors.index_snapshot import FORMAT as SNAPSHOT_FORMAT
from detectors.index_snapshot import dump_protected, load_protected
from detectors.localmatch import Fingerprint
from detectors.media import decode
from detectors.protected import (
    DECODE_MIN_SIDE,
    NEAR_COPY_DISTANCE,
    SEARCH_LIMIT,
    DerivedMatch,
    KnownPhoto,
    PhotoPrint,
    ProtectedIndex,
    decode_fingerprint,
    derived_evidence,
    encode_fingerprint,
    print_of_pixels,
    query_of_bytes,
    scan_frames,
)
from detectors.settings import MediaLimits

if TYPE_CHECKING:
    from bot.config import ProtectConfig
    from detectors.scanner import Scan

__all__ = [
    "NEAR_COPY_DISTANCE",
    "SEARCH_LIMIT",
    "DerivedMatch",
    "KnownPhoto",
    "PhotoPrint",
    "ProtectError",
    "ProtectedIndex",
    "Protector",
    "Registered",
    "decode_fingerprint",
    "derived_evidence",
    "encode_fingerprint",
    "exported_findings",
    "print_of_bytes",
    "print_of_pixels",
    "query_of_bytes",
    "scan_frames",
]

log = logging.getLogger("vigil.protect")

REFRESH_SECONDS = 5.0  # how often a running bot looks for changes made by `vigil protect`
EXPIRE_SECONDS = 3600.0  # how often group photos past their retention are deleted
LOAD_BATCH = 2000  # stored fingerprints added to the index at once when loading


class ProtectError(VigilError):
    """A photo Vigil will not protect; the message says why and what to do.

    ``reason``: "too_many" (the member's limit is reached), "no_features" (too small or flat)
    or "taken" (the photo is already someone else's: the message never says whose).
    """

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


# --- values ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Registered:
    photo_id: int
    owner_id: int
    total: int  # the owner's photos now
    first: bool  # the owner's first photo: ask whether they want notices


def print_of_bytes(data: bytes, limits: MediaLimits, query: bool = False) -> PhotoPrint:
    """Decode an image's bytes in memory and fingerprint its first frame; the bytes and
    pixels are not kept. Raises ``MediaError`` for input Vigil refuses, ``ProtectError`` for
    a picture with nothing to match (flat, tiny)."""
    media = decode(data, limits, min_side=DECODE_MIN_SIDE)
    made = print_of_pixels(media.frames[0].rgb, query)
    del media
    if made.points == 0:
        raise ProtectError(
            "no_features", "the picture is too small or too flat to recognise later: use a clearer photo"
        )
    return made


def _notify_of(owner: ProtectedOwner) -> tuple[str, str] | None:
    return (
        (owner.notify_platform, owner.notify_user)
        if owner.notify and owner.notify_platform and owner.notify_user
        else None
    )


_known = known_photo  # one way to read a stored photo and owner, shared with the hit re-check


def exported_findings(findings: Any) -> Any:
    """An audit record's findings as an admin may export them: a match with a protected photo
    keeps its frame and shared share, not the photo's or owner's ids (any admin of any group can
    export, and those ids would tell who is protected and link one person's fakes across groups)."""
    if not isinstance(findings, dict) or not isinstance(findings.get("derived"), list):
        return findings
    out = dict(findings)
    out["derived"] = [
        {k: v for k, v in d.items() if k in ("match_fraction", "frame")} if isinstance(d, dict) else None
        for d in findings["derived"]
    ]
    return out


# --- the service ----------------------------------------------------------------------------


class ProtectedSource(ProtectedStore, ChangesStore, SnapshotsStore, Protocol):
    """What the protected-photo service needs of the store."""


class Protector:
    """Register, list, remove and match protected photos; keeps the index in step with the store.

    ``cpu`` runs CPU-bound work (decoding, fingerprinting, indexing, searching) off the event
    loop: the bot passes its pipeline's pool, so all CPU work has one bound; by default a thread.
    """

    def __init__(
        self,
        store: ProtectedSource,
        settings: ProtectConfig,
        limits: MediaLimits = MediaLimits(),
        *,
        cpu: RunCpu = in_thread,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.limits = limits
        self.index = ProtectedIndex()
        self._cpu = cpu
        self._clock = clock or (lambda: datetime.now(UTC))
        self.follower = ChangeFollower(store, ChangeKind.PROTECTED, self)
        # told of the photos each change-log step added, whoever added them (bot/sweep.py)
        self.added_hook: Callable[[Sequence[int]], None] | None = None
        self.sessions = ProtectSessions(settings.session_minutes)
        self._tasks: list[asyncio.Task[None]] = []
        # one registration at a time from the look-up to the index: two people sending the same
        # photo at once cannot both own it
        self._register_lock = asyncio.Lock()
        # a member's photos are taken one at a time, so an album past the limit is refused before
        # any of the rest is fingerprinted (the store's count-and-add holds the limit regardless)
        self._member_locks: dict[tuple[str, str], tuple[asyncio.Lock, int]] = {}

    async def _run_cpu(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await self._cpu(fn, *args)

    async def _index_add(self, photo: KnownPhoto, fp: Fingerprint) -> None:
        # in the pool: an add now and then merges large index segments (seconds at 100,000)
        await self._cpu(self.index.add, photo, fp)

    # --- loading and following the store ------------------------------------------------

    async def load(self) -> int:
        """Everything from the store into the index (the changes made meanwhile follow at the
        next ``refresh``); returns how many photos the index holds."""
        started = time.monotonic()
        await self.follower.load()
        if len(self.index):
            log.info("protected photos: %d fingerprints loaded in %.1f s", len(self.index), time.monotonic() - started)
        return len(self.index)

    async def reload(self) -> None:
        """Every photo from the store, replacing what is held. The first load fills the live index
        (scans match what is loaded so far); a later one builds a new index and swaps it in."""
        target = self.index if not len(self.index) else ProtectedIndex()
        owners = {o.id: o for o in await self.store.protected_owners()}
        await self._add_stored(target, self.store.iter_protected_photos(), owners)
        self.index = target

    async def apply(self, changes: Sequence[Change]) -> None:
        """Changes from the store's protected-photo log, oldest first."""
        net = net_changes(changes)
        added, removed = net.added, list(net.removed)
        owners_changed = {ch.parent for ch in net.other if ch.op is ChangeOp.OWNER}
        if removed:
            await self._cpu(self._remove_all, removed)
        if added:
            owners = {o.id: o for o in await self.store.protected_owners()}
            await self._add_stored(self.index, self.store.iter_protected_photos(ids=sorted(added)), owners)
            if self.added_hook is not None:
                self.added_hook(sorted(added))
        for owner_id in owners_changed:  # a new name or notice choice, for the photos already held
            owner = await self.store.get_protected_owner(owner_id)
            if owner is not None:
                self._update_owner(owner)

    # an index snapshot (bot/snapshots.py): the built index, so a new process skips the build
    snapshot_format = SNAPSHOT_FORMAT

    async def dump(self) -> bytes:
        return bytes(await self._cpu(dump_protected, self.index))

    async def restore(self, data: bytes) -> None:
        self.index = await self._cpu(load_protected, data)

    def _remove_all(self, photo_ids: Iterable[int]) -> None:
        for pid in photo_ids:
            self.index.remove(pid)

    async def refresh(self) -> bool:
        """Apply the changes made elsewhere (``vigil protect``, another worker) now; True if any."""
        return await self.follower.catch_up() > 0

    async def _add_stored(
        self, index: ProtectedIndex, photos: AsyncIterator[ProtectedPhoto], owners: dict[int, ProtectedOwner]
    ) -> int:
        """Stored photos (an async iterator) into ``index``, a batch at a time, in the CPU pool."""
        count = 0
        batch: list[ProtectedPhoto] = []
        async for photo in photos:
            batch.append(photo)
            if len(batch) >= LOAD_BATCH:
                count += await self._cpu(self._add_decoded, index, batch, owners)
                batch = []
        return count + await self._cpu(self._add_decoded, index, batch, owners)

    @staticmethod
    def _add_decoded(index: ProtectedIndex, photos: list[ProtectedPhoto], owners: dict[int, ProtectedOwner]) -> int:
        items = []
        for photo in photos:
            owner = owners.get(photo.owner_id)
            if owner is None or photo.fingerprint is None:
                continue
            try:
                fp = decode_fingerprint(photo.fingerprint)
            except ValueError as exc:
                log.error("protected photo %d: fingerprint unreadable (%s); skipped", photo.id, exc)
                continue
            items.append((_known(photo, owner), fp))
        index.add_many(items)
        return len(items)

    def start(self) -> None:
        """Load the index in the background (100,000 photos take a minute or two; scans go on
        meanwhile, matching what is loaded so far), then follow the store and delete expired
        group photos, until ``stop``."""
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._follow(), name="vigil-protect-refresh"),
                asyncio.create_task(self._every(EXPIRE_SECONDS, self.expire), name="vigil-protect-expire"),
            ]

    async def _follow(self) -> None:
        try:
            await self.load()
        except asyncio.CancelledError:
            raise
        except Exception:  # the follower loads again at its next poll
            log.exception("protected photos: loading failed; retrying in %.0f s", REFRESH_SECONDS)
        await self.follower.run(REFRESH_SECONDS)

    async def _every(self, seconds: float, job: Callable[[], Awaitable[object]]) -> None:
        while True:
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception:  # a locked or full disk: try again next time
                log.exception(
                    "protected photos: %s failed; retrying in %.0f s", getattr(job, "__name__", "job"), seconds
                )
            await asyncio.sleep(seconds)

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- matching ---------------------------------------------------------------------------

    def wants_fingerprints(self, group_photos: bool = False) -> bool:
        """Whether scans need local fingerprints: protected photos to look up, or a group
        that keeps group photos."""
        return self.settings.enabled and (len(self.index) > 0 or group_photos)

    def match(self, frames: Sequence[tuple[int, Fingerprint, str | None]]) -> list[DerivedMatch]:
        """CPU-bound: call from a worker thread."""
        return self.index.search(frames, min_fraction=self.settings.min_fraction)

    async def match_scan(self, scan: Scan) -> list[DerivedMatch]:
        frames = scan_frames(scan)
        if not frames or not len(self.index) or not self.settings.enabled:
            return []
        return await self._cpu(self.match, frames)

    # --- who may read a protected person's name -------------------------------------------------

    def trusts(self, chat: tuple[str, str]) -> bool:
        """The operator trusts this group's admins with any protected person's name."""
        return tuple(chat) in self.settings.trusted_groups

    async def nameable(
        self, chat: tuple[str, str], matches: Iterable[DerivedMatch], is_member: Callable[[str, str], Awaitable[bool]]
    ) -> frozenset[int]:
        """The owners (ids) of these matches whom the alert to ``chat``'s admins may name.

        A trusted group: all of them. Otherwise a member owner only if they belong to the group
        now (``is_member(chat_id, user_id)``, asked on the platform); an owner the operator added
        (no platform account) never. A failed check names nobody: an unnamed alert still says
        what to do, a wrong name cannot be taken back."""
        owners: dict[int, KnownPhoto] = {}
        for m in matches:
            owners.setdefault(m.photo.owner_id, m.photo)
        return frozenset(
            [owner_id for owner_id, photo in owners.items() if await self.may_name(chat, photo.member, is_member)]
        )

    async def may_name(
        self, chat: tuple[str, str], member: tuple[str, str] | None, is_member: Callable[[str, str], Awaitable[bool]]
    ) -> bool:
        """Whether ``chat``'s admins may read the name of one owner: ``member`` is the owner's
        (platform, user id), None for an owner the operator added. The rule of ``nameable``."""
        if self.trusts(chat):
            return True
        if member is None or member[0] != chat[0]:
            return False
        try:
            return bool(await is_member(chat[1], member[1]))
        except Exception as exc:  # the platform could not say: do not name
            log.warning(
                "chat %s: membership of a protected photo's owner unknown (%s); not named", chat[1], type(exc).__name__
            )
            return False

    # --- members' own photos ------------------------------------------------------------------

    def open_session(self, platform: str, user_id: str) -> None:
        """After /protect: photos the member sends privately are registered for a while."""
        self.sessions.open(platform, user_id)

    def session_open(self, platform: str, user_id: str) -> bool:
        return self.sessions.is_open(platform, user_id)

    def close_session(self, platform: str, user_id: str) -> bool:
        return self.sessions.close(platform, user_id)

    def _too_many(self) -> ProtectError:
        return ProtectError(
            "too_many",
            f"this person already protects {self.settings.max_photos} photos, the most Vigil keeps for one person "
            f"([protect] max_photos); remove some first",
        )

    async def register_member_photo(self, platform: str, user_id: str, name: str, data: bytes) -> Registered:
        """Fingerprint a photo a member sent privately and keep only that. Raises ``MediaError``
        (not an image Vigil reads) or ``ProtectError`` (too many photos, nothing to match, or
        already someone else's photo).

        The limit holds however many photos arrive at once (an album): the store counts and
        adds in one write transaction. The check before fingerprinting only saves the work."""
        key = (platform, user_id)
        lock, users = self._member_locks.get(key) or (asyncio.Lock(), 0)
        self._member_locks[key] = (lock, users + 1)
        try:
            async with lock:
                return await self._register(platform, user_id, name, data)
        finally:
            lock, users = self._member_locks[key]
            if users <= 1:
                del self._member_locks[key]
            else:
                self._member_locks[key] = (lock, users - 1)

    async def _register(self, platform: str, user_id: str, name: str, data: bytes) -> Registered:
        owner = await self.store.member_owner(platform, user_id)
        photos = await self.store.protected_photos(owner.id) if owner else []
        if sum(p.source == "private" for p in photos) >= self.settings.max_photos:
            raise self._too_many()
        made = await self._run_cpu(print_of_bytes, data, self.limits, True)
        del data
        async with self._register_lock:
            if made.query is not None and len(made.query):
                found = await self._run_cpu(self.match, [(0, made.query, made.pdq)])
                if any(m.photo.member != (platform, user_id) for m in found):
                    # whose it is stays unsaid: the refusal must not tell a stranger who is protected
                    raise ProtectError(
                        "taken", "this photo, or one it was made from, is already protected for someone else"
                    )
            try:
                owner, photo, before, total = await self.store.add_member_photo(
                    platform,
                    user_id,
                    name or user_id,
                    encode_fingerprint(made.fingerprint),
                    max_photos=self.settings.max_photos,
                    pdq=made.pdq,
                )
            except PhotoLimitReached:
                raise self._too_many() from None
            await self._index_add(_known(photo, owner), made.fingerprint)
        return Registered(photo.id, owner.id, total, first=before == 0)

    async def set_member_notify(self, platform: str, user_id: str, notify: bool) -> bool:
        """The member's answer to "tell me privately if a manipulated copy is found"; False if
        they have no protected photo."""
        owner = await self.store.member_owner(platform, user_id)
        if owner is None:
            return False
        owner = await self.store.set_owner_notify(owner.id, notify)
        self._update_owner(owner)
        return True

    def _update_owner(self, owner: ProtectedOwner) -> None:
        self.index.update_owner(owner.id, owner.name, _notify_of(owner))

    async def member_photos(self, platform: str, user_id: str) -> tuple[ProtectedOwner | None, list[ProtectedPhoto]]:
        owner = await self.store.member_owner(platform, user_id)
        if owner is None:
            return None, []
        return owner, await self.store.protected_photos(owner.id)

    async def remove_member(self, platform: str, user_id: str) -> int:
        """Every fingerprint of the member's photos (registered privately and kept from
        groups) and their owner record; returns how many photos went."""
        owner = await self.store.member_owner(platform, user_id)
        if owner is None:
            return 0
        return await self.remove_owner(owner.id)

    async def remove_owner(self, owner_id: int) -> int:
        ids = [p.id for p in await self.store.protected_photos(owner_id)]
        removed = await self.store.remove_protected_owner(owner_id)
        await self._cpu(self._remove_all, ids)
        return removed

    async def remove_photo(self, photo_id: int) -> bool:
        done = await self.store.remove_protected_photo(photo_id)
        await self._cpu(self.index.remove, photo_id)
        return done

    async def remove_member_photo(self, platform: str, user_id: str, photo_id: int) -> bool:
        """One photo, only if it is this member's."""
        owner = await self.store.member_owner(platform, user_id)
        photo = await self.store.get_protected_photo(photo_id)
        if owner is None or photo is None or photo.owner_id != owner.id:
            return False
        return await self.remove_photo(photo_id)

    # --- group photos ----------------------------------------------------------------------------

    async def keep_group_photo(
        self,
        chat: tuple[str, str],
        sender: tuple[str, str],
        sender_name: str,
        fp: Fingerprint,
        pdq: str | None,
        days: int,
    ) -> int | None:
        """Keep a member photo posted in a group that keeps group photos, for ``days``.
        Returns the photo id, or None when the photo is already protected (it matched)."""
        if not len(fp):
            return None
        async with self._register_lock:
            if await self._run_cpu(self.match, [(0, fp, pdq)]):
                return None  # someone's protected photo already, or a copy of one: not the sender's to own
            owner = await self.store.member_owner(sender[0], sender[1], name=sender_name or sender[1], create=True)
            assert owner is not None  # made if missing
            expires = self._clock() + timedelta(days=days)
            known = fp.as_known()
            photo = await self.store.add_protected_photo(
                owner.id,
                encode_fingerprint(known),
                source="group",
                pdq=pdq,
                platform=chat[0],
                chat_id=chat[1],
                expires_at=expires,
            )
            await self._index_add(_known(photo, owner), known)
        return photo.id

    async def drop_group(self, platform: str, chat_id: str) -> int:
        """The group turned group photos off: its fingerprints go at once."""
        removed = await self.store.remove_group_photos(platform, chat_id)
        if removed:
            await self.refresh()
        return removed

    async def expire(self, now: datetime | None = None) -> int:
        """Retention: delete group photos past their period; returns how many."""
        removed = await self.store.expire_protected_photos(now or self._clock())
        if removed:
            log.info("protected photos: %d group photos past their retention deleted", removed)
            await self.refresh()
        return removed

    # --- the operator ------------------------------------------------------------------------------

    async def add_operator_photo(
        self, owner_name: str, data: bytes, *, label: str | None = None, notify: tuple[str, str] | None = None
    ) -> int:
        made = await self._run_cpu(print_of_bytes, data, self.limits)
        del data
        owner = await self.store.operator_owner(
            owner_name,
            create=True,
            notify_platform=notify[0] if notify else None,
            notify_user=notify[1] if notify else None,
        )
        assert owner is not None  # made if missing
        photo = await self.store.add_protected_photo(
            owner.id, encode_fingerprint(made.fingerprint), source="operator", pdq=made.pdq, label=label
        )
        await self._index_add(_known(photo, owner), made.fingerprint)
        return photo.id
