"""The state a room's power rules are built from, kept as the sync brings it: no read per change.

Who moderates a room (and what Vigil may do there) comes from three kinds of state event: the
room's creation, its power levels and its members. A room's state is taken in full once (from
the first sync, which asks for the full state, or from one read of ``/rooms/{id}/state``), then
every state event the sync shows (its ``state`` block, then its timeline, in order) is applied to
it, so a demoted moderator loses control with the sync that shows it, without a request.

Vigil's own changes (mutes, bans) do not come back through its sync (it filters out its own
events): after one, the room's state is dropped and read again in full when next needed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bot.platforms.matrix_power import RoomPower, room_power

POWER_TYPES = frozenset({"m.room.create", "m.room.power_levels", "m.room.member"})


def _key(event: Mapping[str, Any]) -> tuple[str, str] | None:
    kind, state_key = event.get("type"), event.get("state_key")
    if kind in POWER_TYPES and isinstance(kind, str) and isinstance(state_key, str):
        return kind, state_key
    return None


class SyncedState:
    """Per room, the power-relevant state events by (type, state key); a room is known once taken in full."""

    def __init__(self) -> None:
        self._rooms: dict[str, dict[tuple[str, str], Mapping[str, Any]]] = {}
        self._powers: dict[str, RoomPower] = {}  # built from the above, until the next change

    def known(self, room_id: str) -> bool:
        return room_id in self._rooms

    def seed(self, room_id: str, events: Iterable[Mapping[str, Any]]) -> None:
        """The room's whole state, as a full sync or ``/rooms/{id}/state`` gives it."""
        state: dict[tuple[str, str], Mapping[str, Any]] = {}
        for event in events:
            if isinstance(event, Mapping) and (key := _key(event)) is not None:
                state[key] = event
        self._rooms[room_id] = state
        self._powers.pop(room_id, None)

    def apply(self, room_id: str, event: Mapping[str, Any]) -> None:
        """One event the sync showed: a state event replaces its kind's, a redaction of one drops the
        room (read again in full: what a redaction leaves of it is the server's rule to apply)."""
        state = self._rooms.get(room_id)
        if state is None:
            return  # not known in full: it is read in full when needed
        if event.get("type") == "m.room.redaction":
            content = event.get("content")
            redacts = event.get("redacts") or (content.get("redacts") if isinstance(content, Mapping) else None)
            if redacts and any(e.get("event_id") == redacts for e in state.values()):
                self.forget(room_id)
            return
        key = _key(event)
        if key is None:
            return
        state[key] = event
        self._powers.pop(room_id, None)

    def forget(self, room_id: str) -> None:
        self._rooms.pop(room_id, None)
        self._powers.pop(room_id, None)

    def power(self, room_id: str) -> RoomPower | None:
        """The room's power rules from its known state; None when it is not known in full."""
        found = self._powers.get(room_id)
        if found is None and room_id in self._rooms:
            found = self._powers[room_id] = room_power(self._rooms[room_id].values())
        return found
