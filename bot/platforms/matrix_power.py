"""Who may do what in a Matrix room, from its state: power levels, and the creators of room version 12.

From room version 12 (Synapse's default) the room's creators (the sender of m.room.create plus
``additional_creators``) hold unlimited power and must not appear in the power-level ``users`` map.
matrix-nio 0.26 does not know that and gives a creator the default level; this module reads the
create event itself, so the person who made the room counts as a moderator.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.platforms.base import Rights

# room versions whose creators are ordinary users with a power level (before MSC4289)
CLASSIC_VERSIONS = frozenset(str(v) for v in range(1, 12))
DEFAULT_LEVELS = {"redact": 50, "ban": 50, "kick": 50, "state_default": 50, "events_default": 0, "users_default": 0}
# what a member needs to post an image: a muted member is put below all of these
POSTING_EVENTS = ("m.room.message", "m.sticker", "m.reaction", "m.room.encrypted")


def _int(value: Any, default: int) -> int:
    """Power levels may be strings in old rooms; anything unreadable counts as the default."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


@dataclass(frozen=True)
class RoomPower:
    """The room's power rules and membership, as of the state it was built from."""

    levels: Mapping[str, Any] | None  # content of m.room.power_levels, None when the room has none
    creators: frozenset[str]
    creators_privileged: bool  # room version 12 and later: creators outrank every level
    joined: frozenset[str] = frozenset()
    room_version: str = "1"
    members: Mapping[str, str] = field(default_factory=dict)  # user id -> display name
    create_sender: str = ""  # who sent m.room.create: the room's owner

    # --- levels --------------------------------------------------------------------------

    def _get(self, key: str) -> int:
        if self.levels is None:
            # no power-levels event: the spec's defaults apply (creators 100 in classic rooms)
            return {"redact": 50, "ban": 50, "kick": 50, "state_default": 0, "events_default": 0, "users_default": 0}[
                key
            ]
        return _int(self.levels.get(key), DEFAULT_LEVELS[key])

    def level(self, user_id: str) -> float:
        """The user's effective power level; infinite for a creator in room version 12 and later."""
        if self.creators_privileged and user_id in self.creators:
            return math.inf
        if self.levels is None:
            return 100 if user_id in self.creators else 0
        users = self.levels.get("users") or {}
        if user_id in users:
            return _int(users[user_id], self._get("users_default"))
        return self._get("users_default")

    def event_level(self, event_type: str, *, state: bool = False) -> int:
        events = (self.levels or {}).get("events") or {}
        if event_type in events:
            return _int(events[event_type], 0)
        return self._get("state_default" if state else "events_default")

    @property
    def redact_level(self) -> int:
        # redacting someone else's event needs "redact", and sending the redaction event itself
        return max(self._get("redact"), self.event_level("m.room.redaction"))

    @property
    def ban_level(self) -> int:
        return self._get("ban")

    @property
    def power_change_level(self) -> int:
        return self.event_level("m.room.power_levels", state=True)

    @property
    def mute_level(self) -> int:
        """A level just below what posting needs (never above the users' default)."""
        needed = min(self.event_level(t) for t in POSTING_EVENTS)
        return min(needed, self._get("events_default")) - 1

    # --- people ----------------------------------------------------------------------------

    def moderators(self, exclude: Iterable[str] = ()) -> frozenset[str]:
        """Joined members whose effective level reaches the redact level: they receive alerts."""
        skip = set(exclude)
        needed = self._get("redact")
        return frozenset(u for u in self.joined if u not in skip and self.level(u) >= needed)

    @property
    def owner(self) -> str | None:
        """The room's creator (the sender of m.room.create)."""
        return self.create_sender or None

    def rights(self, user_id: str) -> Rights:
        """What Vigil (``user_id``) can do here: redact, and ban or change levels (to mute)."""
        mine = self.level(user_id)
        can_delete = mine >= self.redact_level
        can_restrict = mine >= self.ban_level and mine >= self.power_change_level
        # on Matrix a plain member already sees every message; power decides what it can do
        return Rights(is_admin=True, can_delete=can_delete, can_restrict=can_restrict)

    def can_lower(self, actor: str, target: str) -> bool:
        """Whether ``actor`` may change ``target``'s level (needs a higher level than theirs)."""
        return self.level(actor) >= self.power_change_level and self.level(actor) > self.level(target)


def room_power(state: Iterable[Mapping[str, Any]]) -> RoomPower:
    """Build the rules from a room's state events (as /rooms/{id}/state returns them)."""
    levels: Mapping[str, Any] | None = None
    create: Mapping[str, Any] | None = None
    joined: set[str] = set()
    names: dict[str, str] = {}
    for event in state:
        kind, key = event.get("type"), event.get("state_key")
        content = event.get("content") or {}
        if kind == "m.room.power_levels" and key == "":
            levels = content
        elif kind == "m.room.create" and key == "":
            create = event
        elif kind == "m.room.member" and isinstance(key, str) and content.get("membership") == "join":
            joined.add(key)
            if isinstance(content.get("displayname"), str):
                names[key] = content["displayname"]
    creators: set[str] = set()
    version = "1"
    sender = ""
    if create is not None:
        content = create.get("content") or {}
        version = str(content.get("room_version", "1"))
        sender = str(create.get("sender") or content.get("creator") or "")
        if sender:
            creators.add(sender)
        extra = content.get("additional_creators")
        if version not in CLASSIC_VERSIONS and isinstance(extra, list):
            creators.update(u for u in extra if isinstance(u, str))
    return RoomPower(
        levels=levels,
        creators=frozenset(creators),
        creators_privileged=version not in CLASSIC_VERSIONS,
        joined=frozenset(joined),
        room_version=version,
        members=names,
        create_sender=sender,
    )
