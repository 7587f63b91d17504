"""Floods: one picture posted many times in a short time, anywhere in the instance.

Every scanned image is counted by its hashes (the file's SHA-256, and its PDQ when that is
reliable, so a recompressed copy counts with the original). Once ``[flood] count`` copies came
within ``window`` seconds, that copy and every further one is held: the policy puts it to the
admins of its group (the review path), whatever the detectors said, until ``hold`` seconds pass
without a copy or an admin decides on one of them (a block then deletes copies; a keep lets them
through). The operator's log chat is told once per flood.

A raid of new accounts: pictures from ``new_members`` different members who joined less than
``new_member_minutes`` ago (their join time from the door, bot/door.py), within ``window`` seconds
anywhere. From then on every picture a new member posts is held, until ``hold`` seconds pass
without one; the log chat is told once per raid.

Memory is bounded and nothing is written per message: a fixed number of pictures is tracked
(least recently seen forgotten first), each with at most ``count`` timestamps. Each process
counts what it sees: on several workers a flood is seen per worker (the threshold is per worker).
"""

from __future__ import annotations

import logging
import sys
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from bot.config import FloodConfig
from bot.events import MediaPosted
from bot.i18n import Translators
from bot.platforms.base import OutgoingMessage, Platform
from bot.platforms.errors import PlatformError
from detectors.hashing import ImageHashes

log = logging.getLogger("vigil.flood")

MIN_PDQ_QUALITY = 50  # below it PDQ says little: flat or tiny pictures would count together


def flood_keys(hashes: ImageHashes | Mapping[str, Any]) -> tuple[str, ...]:
    """The keys a picture is counted under: its SHA-256, and its PDQ when reliable."""
    get = hashes.get if isinstance(hashes, Mapping) else lambda k: getattr(hashes, k, None)
    keys = []
    if sha := get("sha256"):
        keys.append(f"sha256:{sha}")
    if (pdq := get("pdq")) and (get("pdq_quality") or 0) >= MIN_PDQ_QUALITY:
        keys.append(f"pdq:{pdq}")
    return tuple(keys)


class Hold(StrEnum):
    """Why a picture is held for the admins' review, whatever the detectors said."""

    NONE = ""
    COPIES = "copies"  # one of many copies of one picture
    RAID = "raid"  # a new member's picture while many new members post pictures


class RaidCounter:
    """New members who posted pictures lately: at most ``new_members`` kept, each once, newest last."""

    def __init__(self, config: FloodConfig, clock: Callable[[], float]) -> None:
        self.needed, self.window, self.hold = config.new_members, config.window, config.hold
        self.clock = clock
        self._posters: deque[tuple[float, str]] = deque()
        self.held_until = 0.0

    def note(self, member: str) -> tuple[bool, bool]:
        """A new member posted a picture: (held, this one made it a raid)."""
        now = self.clock()
        while self._posters and now - self._posters[0][0] > self.window:
            self._posters.popleft()
        self._posters = deque([(t, m) for t, m in self._posters if m != member], maxlen=self.needed)
        self._posters.append((now, member))
        was = self.held_until > now
        if was or len(self._posters) >= self.needed:
            self.held_until = now + self.hold
            return True, not was
        return False, False


@dataclass(frozen=True)
class FloodSeen:
    held: bool = False  # this copy is held for review
    started: bool = False  # this copy made it a flood (the log chat is told)
    copies: int = 0  # copies counted within the window
    groups: int = 0  # groups they came from


class _Track:
    """One picture's latest copies: their times and chats (at most ``count``), oldest first."""

    __slots__ = ("times", "chats", "last", "held_until")

    def __init__(self) -> None:
        self.times: list[float] = []
        self.chats: list[str] = []  # interned "platform:chat": one string per chat, shared by every track
        self.last: tuple[str, str] | None = None  # the last message counted: its other pictures count once
        self.held_until = 0.0

    def add(self, now: float, chat: str, message_id: str, keep: int) -> None:
        if self.last == (chat, message_id):
            return
        self.last = (chat, message_id)
        self.times.append(now)
        self.chats.append(chat)
        if len(self.times) > keep:
            del self.times[0], self.chats[0]

    def within(self, now: float, window: int) -> tuple[int, int]:
        """Copies within the window, and the groups they came from."""
        recent = [c for t, c in zip(self.times, self.chats, strict=True) if now - t <= window]
        return len(recent), len(set(recent))


class FloodCounter:
    """The counts, in a fixed-size map from hash to the times of its latest copies."""

    def __init__(self, config: FloodConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.count, self.window, self.hold, self.tracked = config.count, config.window, config.hold, config.tracked
        self.clock = clock
        self._tracks: OrderedDict[str, _Track] = OrderedDict()

    def __len__(self) -> int:
        return len(self._tracks)

    def _track(self, key: str) -> _Track:
        track = self._tracks.get(key)
        if track is None:
            track = self._tracks[key] = _Track()
            while len(self._tracks) > self.tracked:
                self._tracks.popitem(last=False)  # the least recently seen picture is forgotten
        else:
            self._tracks.move_to_end(key)
        return track

    def note(self, keys: Sequence[str], chat: tuple[str, str], message_id: str) -> FloodSeen:
        """One copy posted in ``chat``: counted under each key; whether it is held."""
        if self.count <= 0 or not keys:
            return FloodSeen()
        now = self.clock()
        where = sys.intern(f"{chat[0]}:{chat[1]}")
        tracks = [self._track(k) for k in keys]
        for track in tracks:
            track.add(now, where, message_id, self.count)
        was_held = any(t.held_until > now for t in tracks)
        counts = [t.within(now, self.window) for t in tracks]
        held = was_held or any(copies >= self.count for copies, _ in counts)
        if held:
            for t in tracks:  # every key of this picture holds its copies, for ``hold`` after the last
                t.held_until = now + self.hold
        copies, groups = max(counts)
        return FloodSeen(held=held, started=held and not was_held, copies=copies, groups=groups)

    def release(self, keys: Sequence[str]) -> bool:
        """An admin decided on a held copy: its picture is counted afresh. True if it was held."""
        now, was = self.clock(), False
        for key in keys:
            track = self._tracks.pop(key, None)
            was = was or (track is not None and track.held_until > now)
        return was


class FloodGuard:
    """The counter, and telling the operator's log chat (bot/core.py wires it)."""

    def __init__(
        self,
        config: FloodConfig,
        platforms: Mapping[str, Platform],
        translators: Translators,
        language: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.platforms = platforms
        self.translators = translators
        self.language = language
        self.counter = FloodCounter(config, clock)
        self.raids = RaidCounter(config, clock)

    @property
    def enabled(self) -> bool:
        return self.config.count > 0 or self.watches_new_members

    @property
    def watches_new_members(self) -> bool:
        """Whether a sender's join time is wanted (``check``'s ``joined_at``)."""
        return self.config.new_members > 0

    async def check(self, event: MediaPosted, hashes: ImageHashes, joined_at: datetime | None = None) -> Hold:
        """Counts this copy (and a new member's picture); whether it is to be held for review, and why.
        ``joined_at``: when the sender joined the group, if Vigil saw it."""
        if not self.enabled:
            return Hold.NONE
        hold = await self._copies(event, hashes)
        new = joined_at is not None and datetime.now(UTC) - joined_at < timedelta(
            minutes=self.config.new_member_minutes
        )
        if hold is Hold.NONE and self.watches_new_members and new:
            held, started = self.raids.note(f"{event.sender.platform}:{event.sender.user_id}")
            if started:
                log.warning(
                    "flood: pictures from %d new members within %d s", self.config.new_members, self.config.window
                )
                await self._say(self._raid_text())
            hold = Hold.RAID if held else Hold.NONE
        return hold

    async def _copies(self, event: MediaPosted, hashes: ImageHashes) -> Hold:
        if self.config.count <= 0:
            return Hold.NONE
        seen = self.counter.note(flood_keys(hashes), (event.chat.platform, event.chat.chat_id), event.message_id)
        if seen.started:
            log.warning(
                "flood: a picture was posted %d times within %d s in %d groups; its copies are held for review",
                seen.copies,
                self.config.window,
                seen.groups,
            )
            await self._tell(seen, hashes)
        return Hold.COPIES if seen.held else Hold.NONE

    def _raid_text(self) -> tuple[str, str]:
        t = self.translators(self.language)
        return t.gettext(
            "Raid: pictures from {members} members who joined recently, within {minutes} minutes. Pictures from "
            "new members are held for the admins' review everywhere until {hold} minutes pass without one.",
            members=self.config.new_members,
            minutes=max(1, round(self.config.window / 60)),
            hold=max(1, round(self.config.hold / 60)),
        ), t.language

    def release(self, hashes: Mapping[str, Any]) -> bool:
        """An admin decided on a copy (kept it, or blocked it): the hold on its picture ends."""
        return self.enabled and self.counter.release(flood_keys(hashes))

    async def _tell(self, seen: FloodSeen, hashes: ImageHashes) -> None:
        t = self.translators(self.language)
        text = t.gettext(
            "Flood: one picture was posted {copies} times within {minutes} minutes, in {groups} groups. Its copies "
            "are held for the admins' review everywhere until {hold} minutes pass without one, or an admin decides. "
            "Picture SHA-256: {sha256}",
            copies=seen.copies,
            minutes=max(1, round(self.config.window / 60)),
            groups=seen.groups,
            hold=max(1, round(self.config.hold / 60)),
            sha256=hashes.sha256,
        )
        await self._say((text, t.language))

    async def _say(self, said: tuple[str, str]) -> None:
        """The operator's log chat, once per flood or raid."""
        if self.config.log_chat is None:
            return
        platform_name, chat_id = self.config.log_chat
        platform = self.platforms.get(platform_name)
        if platform is None:
            log.error("flood: the log chat's platform %s is not running; the operator is not told", platform_name)
            return
        text, language = said
        try:
            await platform.send_chat(chat_id, OutgoingMessage(text, language=language))
        except PlatformError as exc:
            log.error("flood: the log chat %s could not be told: %s", chat_id, exc)
