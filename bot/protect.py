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

The index lives in memory (``ProtectedIndex``) and follows the store: the running bot
polls the store's ``protected:generation`` and applies what ``vigil protect`` changed.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from detectors.errors import VigilError
from detectors.hashing import hamming_hex, pdq_hash, working_copy
from detectors.localmatch import Fingerprint, fingerprint
from detectors.media import decode
from detectors.settings import MediaLimits

if TYPE_CHECKING:
    from bot.config import ProtectConfig
    from bot.store import ProtectedOwner, ProtectedPhoto

log = logging.getLogger("vigil.protect")

NEAR_COPY_DISTANCE = 31  # PDQ bits: within this, the whole picture is the same photo
DECODE_MIN_SIDE = 320  # decode registered photos as the scanner decodes posted ones
SEARCH_LIMIT = 5  # known photos reported per scanned frame
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
class KnownPhoto:
    """What the index knows of one protected photo besides its fingerprint."""

    id: int
    owner_id: int
    owner: str  # display name: shown only to the admins of a group where a fake appears
    source: str  # "private" | "group" | "operator"
    member: tuple[str, str] | None  # (platform, user id) of a member owner
    notify_to: tuple[str, str] | None  # (platform, user id) to tell, when the owner opted in
    group: tuple[str, str] | None  # (platform, chat id) of a group photo
    label: str | None
    pdq: str | None


@dataclass(frozen=True)
class DerivedMatch:
    """A scanned frame shares a large, consistent region with a protected photo."""

    photo: KnownPhoto
    frame: int  # index of the scanned frame in its file
    match_fraction: float  # share of the scanned image covered by the matched region
    source_fraction: float  # share of the protected photo covered
    inliers: int
    transform: tuple[float, ...]  # 2x3 similarity, scanned image frame -> protected photo frame
    mirrored: bool
    near_copy: bool  # the whole picture is (almost) the same as the photo: re-posted unchanged

    @property
    def owner(self) -> str:
        return self.photo.owner

    def as_json(self) -> dict:
        return {
            "owner": self.photo.owner,
            "photo": self.photo.id,
            "match_fraction": round(self.match_fraction, 4),
            "source_fraction": round(self.source_fraction, 4),
            "transform": [round(v, 5) for v in self.transform],
            "mirrored": self.mirrored,
            "near_copy": self.near_copy,
        }


@dataclass(frozen=True)
class PhotoPrint:
    """What Vigil keeps of a photo: its fingerprint (for the index) and whole-image PDQ; with
    ``query``, also the fingerprint to look the photo itself up with (not kept)."""

    fingerprint: Fingerprint
    pdq: str | None
    points: int
    query: Fingerprint | None = None


@dataclass(frozen=True)
class Registered:
    photo_id: int
    owner_id: int
    total: int  # the owner's photos now
    first: bool  # the owner's first photo: ask whether they want notices


def encode_fingerprint(fp: Fingerprint) -> str:
    return base64.b64encode(fp.to_bytes()).decode("ascii")


def decode_fingerprint(text: str) -> Fingerprint:
    from detectors.errors import BadFingerprint

    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeError) as exc:
        raise BadFingerprint(f"the stored text is not base64 ({exc})") from None
    return Fingerprint.from_bytes(raw)


def print_of_pixels(rgb: Any, query: bool = False) -> PhotoPrint:
    """The fingerprint to keep of a known photo (``query=False``: a spread prefix, no mirror);
    ``query``: also the query fingerprint, to check whose photo it already is."""
    fp = fingerprint(rgb, query=False)
    pdq, quality = pdq_hash(working_copy(rgb))
    return PhotoPrint(fp, pdq if quality >= 50 else None, len(fp), fingerprint(rgb) if query else None)


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


def query_of_bytes(data: bytes, limits: MediaLimits = MediaLimits()) -> list[tuple[int, Fingerprint, str | None]]:
    """What a scan gives ``Protector.match`` for a file, without the detection models: each
    decoded frame's query fingerprint and PDQ (the ``vigil scan``-free path of the bench and tests)."""
    media = decode(data, limits, min_side=DECODE_MIN_SIDE)
    out = []
    for frame in media.frames:
        pdq, quality = pdq_hash(working_copy(frame.rgb))
        out.append((frame.index, fingerprint(frame.rgb), pdq if quality >= 50 else None))
    return out


def _notify_of(owner: ProtectedOwner) -> tuple[str, str] | None:
    return (
        (owner.notify_platform, owner.notify_user)
        if owner.notify and owner.notify_platform and owner.notify_user
        else None
    )


def _known(photo: ProtectedPhoto, owner: ProtectedOwner) -> KnownPhoto:
    member = (owner.platform, owner.user_id) if owner.kind == "member" and owner.platform and owner.user_id else None
    notify = _notify_of(owner)
    group = (photo.platform, photo.chat_id) if photo.platform and photo.chat_id else None
    return KnownPhoto(photo.id, owner.id, owner.name, photo.source, member, notify, group, photo.label, photo.pdq)


# --- the in-memory index ---------------------------------------------------------------------


class ProtectedIndex:
    """Fingerprints of protected photos in a ``LocalIndex``, and who each one belongs to.

    Safe for searches from worker threads while the event loop adds and removes.
    """

    def __init__(self) -> None:
        self._local: Any = None  # made at the first add
        self._photos: dict[int, KnownPhoto] = {}
        self._by_owner: dict[int, set[int]] = {}  # owner id -> photo ids
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._photos)

    def ids(self) -> set[int]:
        with self._lock:
            return set(self._photos)

    def get(self, photo_id: int) -> KnownPhoto | None:
        return self._photos.get(photo_id)

    @property
    def memory_bytes(self) -> int:
        """The local index's memory (fingerprints and postings); the metadata adds ~0.5 kB a photo."""
        return int(self._local.memory_bytes) if self._local is not None else 0

    def add(self, photo: KnownPhoto, fp: Fingerprint) -> None:
        self.add_many([(photo, fp)])

    def add_many(self, items: Sequence[tuple[KnownPhoto, Fingerprint]]) -> None:
        """Adds (or replaces) photos; many at once is much faster (one index segment)."""
        if not items:
            return
        with self._lock:
            if self._local is None:
                from detectors.localmatch import LocalIndex

                self._local = LocalIndex()
            self._local.add_many([(photo.id, fp) for photo, fp in items])
            for photo, _ in items:
                self._photos[photo.id] = photo
                self._by_owner.setdefault(photo.owner_id, set()).add(photo.id)

    def owner_details(self, owner_id: int) -> tuple[str, tuple[str, str] | None] | None:
        """(name, notify_to) of an owner as the index holds them; None if none of theirs is held."""
        for pid in self._by_owner.get(owner_id, ()):
            photo = self._photos.get(pid)
            if photo is not None:
                return photo.owner, photo.notify_to
        return None

    def update_owner(self, owner_id: int, name: str, notify_to: tuple[str, str] | None) -> None:
        """New owner details (a name or notice choice changed) for all their photos."""
        with self._lock:
            for pid in self._by_owner.get(owner_id, ()):
                photo = self._photos.get(pid)
                if photo is not None:
                    self._photos[pid] = replace(photo, owner=name, notify_to=notify_to)

    def remove(self, photo_id: int) -> bool:
        with self._lock:
            photo = self._photos.pop(photo_id, None)
            if photo is None:
                return False
            mine = self._by_owner.get(photo.owner_id)
            if mine is not None:
                mine.discard(photo_id)
                if not mine:
                    del self._by_owner[photo.owner_id]
            self._local.remove(photo_id)
            return True

    def search(
        self, frames: Sequence[tuple[int, Fingerprint, str | None]], *, min_fraction: float, limit: int = SEARCH_LIMIT
    ) -> list[DerivedMatch]:
        """Protected photos that scanned frames ``(index, fingerprint, pdq)`` were made from,
        the best match per photo, largest shared region first."""
        if not self._photos or self._local is None:
            return []
        best: dict[int, DerivedMatch] = {}
        for index, fp, pdq in frames:
            if fp is None or not len(fp):
                continue
            for m in self._local.search(fp, min_fraction=min_fraction, limit=limit):
                photo = self._photos.get(m.key)
                if photo is None:  # removed while we searched
                    continue
                near = bool(pdq and photo.pdq and hamming_hex(pdq, photo.pdq) <= NEAR_COPY_DISTANCE)
                found = DerivedMatch(
                    photo, index, m.match_fraction, m.source_fraction, m.inliers, tuple(m.transform), m.mirrored, near
                )
                old = best.get(photo.id)
                if old is None or found.match_fraction > old.match_fraction:
                    best[photo.id] = found
        return sorted(best.values(), key=lambda d: (-d.match_fraction, d.photo.id))


def scan_frames(scan: Any) -> list[tuple[int, Fingerprint, str | None]]:
    """The frames of a ``detectors.scanner.Scan`` that carry a local fingerprint."""
    out = []
    for f in scan.frames:
        fp = getattr(f, "fingerprint", None)
        if fp is not None:
            out.append((f.index, fp, f.hashes.pdq if f.hashes.pdq_quality >= 50 else None))
    return out


def derived_evidence(
    matches: Iterable[DerivedMatch], *, label: str, sender: tuple[str, str] | None
) -> tuple[DerivedMatch, ...]:
    """The matches that count as a manipulated copy of someone's photo.

    Left out: the owner posting their own photo, and a photo re-posted unchanged (a near
    copy by whole-image PDQ) when the scan found nothing else in it (``label`` clean).
    With nudity, a near copy still counts: the protected photos are ordinary photos.
    """
    out = []
    for m in matches:
        if sender is not None and m.photo.member == sender:
            continue
        if m.near_copy and label == "clean":
            continue
        out.append(m)
    return tuple(out)


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


class Protector:
    """Register, list, remove and match protected photos; keeps the index in step with the store.

    ``cpu`` runs CPU-bound work off the event loop (the bot passes its pipeline's pool);
    by default a thread.
    """

    def __init__(
        self,
        store: Any,
        settings: ProtectConfig,
        limits: MediaLimits = MediaLimits(),
        *,
        cpu: Callable[..., Any] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.limits = limits
        self.index = ProtectedIndex()
        self._cpu = cpu
        self._clock = clock or (lambda: datetime.now(UTC))
        self._generation = -1
        self._sessions: dict[tuple[str, str], float] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._sync_lock = asyncio.Lock()
        # one registration at a time from the look-up to the index: two people sending the same
        # photo at once cannot both own it
        self._register_lock = asyncio.Lock()
        # a member's photos are taken one at a time, so an album past the limit is refused before
        # any of the rest is fingerprinted (the store's count-and-add holds the limit regardless)
        self._member_locks: dict[tuple[str, str], tuple[asyncio.Lock, int]] = {}

    async def _run_cpu(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self._cpu is not None:
            return await self._cpu(fn, *args)
        return await asyncio.to_thread(fn, *args)

    async def _index_add(self, photo: KnownPhoto, fp: Fingerprint) -> None:
        # off the event loop: an add now and then merges large index segments (seconds at 100,000)
        await asyncio.to_thread(self.index.add, photo, fp)

    # --- loading and following the store ------------------------------------------------

    async def load(self) -> int:
        """Everything from the store into the index; returns how many photos."""
        async with self._sync_lock:
            started = time.monotonic()
            # read first: a change made while loading shows as a newer generation, and the
            # next refresh applies it
            self._generation = await self.store.protected_generation()
            try:
                owners = {o.id: o for o in await self.store.protected_owners()}
                count = await self._add_stored(self.store.iter_protected_photos(), owners)
            except BaseException:
                self._generation = -1  # half loaded: the next refresh catches up
                raise
            if count:
                log.info("protected photos: %d fingerprints loaded in %.1f s", count, time.monotonic() - started)
            return count

    async def _add_stored(self, photos: Any, owners: dict) -> int:
        """Stored photos (an async iterator) into the index, a batch at a time."""
        count = 0
        batch: list = []
        async for photo in photos:
            batch.append(photo)
            if len(batch) >= LOAD_BATCH:
                count += await self._add_loaded(batch, owners)
                batch = []
        return count + await self._add_loaded(batch, owners)

    async def _add_loaded(self, photos: list[ProtectedPhoto], owners: dict) -> int:
        """Stored photos into the index (decoding off the event loop); returns how many."""
        return await asyncio.to_thread(self._add_decoded, photos, owners)

    def _add_decoded(self, photos: list[ProtectedPhoto], owners: dict) -> int:
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
        self.index.add_many(items)
        return len(items)

    async def refresh(self, *, force: bool = False) -> bool:
        """Apply changes made elsewhere (``vigil protect``, another task); True if any."""
        generation = await self.store.protected_generation()
        if generation == self._generation and not force:
            return False
        async with self._sync_lock:
            self._generation = generation
            stored = await self.store.protected_photo_ids()
            held = self.index.ids()
            for gone in held - stored:
                await asyncio.to_thread(self.index.remove, gone)
            owners = {o.id: o for o in await self.store.protected_owners()}
            new = sorted(stored - held)
            if new:
                await self._add_stored(self.store.iter_protected_photos(ids=new), owners)
            # owner details (name, notices) may have changed for photos already held
            for owner in owners.values():
                fresh = (owner.name, _notify_of(owner))
                held_as = self.index.owner_details(owner.id)
                if held_as is not None and held_as != fresh:
                    self.index.update_owner(owner.id, *fresh)
        return True

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
        except Exception:  # the refreshes below catch up
            log.exception("protected photos: loading failed; retrying in %.0f s", REFRESH_SECONDS)
        await self._every(REFRESH_SECONDS, self.refresh)

    async def _every(self, seconds: float, job: Callable[[], Any]) -> None:
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

    async def match_scan(self, scan: Any) -> list[DerivedMatch]:
        frames = scan_frames(scan)
        if not frames or not len(self.index) or not self.settings.enabled:
            return []
        return await self._run_cpu(self.match, frames)

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
        now = time.monotonic()
        for key in [k for k, until in self._sessions.items() if until < now]:
            del self._sessions[key]  # sessions nobody closed
        self._sessions[(platform, user_id)] = now + self.settings.session_minutes * 60

    def session_open(self, platform: str, user_id: str) -> bool:
        until = self._sessions.get((platform, user_id))
        if until is None:
            return False
        if time.monotonic() > until:
            del self._sessions[(platform, user_id)]
            return False
        self._sessions[(platform, user_id)] = time.monotonic() + self.settings.session_minutes * 60
        return True

    def close_session(self, platform: str, user_id: str) -> bool:
        return self._sessions.pop((platform, user_id), None) is not None

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
        from bot.store.protected import PhotoLimitReached

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
        await asyncio.to_thread(lambda: [self.index.remove(pid) for pid in ids])
        return removed

    async def remove_photo(self, photo_id: int) -> bool:
        done = await self.store.remove_protected_photo(photo_id)
        await asyncio.to_thread(self.index.remove, photo_id)
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
            await self.refresh(force=True)
        return removed

    async def expire(self, now: datetime | None = None) -> int:
        """Retention: delete group photos past their period; returns how many."""
        removed = await self.store.expire_protected_photos(now or self._clock())
        if removed:
            log.info("protected photos: %d group photos past their retention deleted", removed)
            await self.refresh(force=True)
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
        photo = await self.store.add_protected_photo(
            owner.id, encode_fingerprint(made.fingerprint), source="operator", pdq=made.pdq, label=label
        )
        await self._index_add(_known(photo, owner), made.fingerprint)
        return photo.id
