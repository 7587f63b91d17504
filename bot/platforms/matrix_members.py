"""Matrix at the door (bot/door.py): an ``m.room.member`` event in which someone joined, or a member
changed their avatar, as a ``MemberJoined`` for the core. Matrix shows every avatar change (the
event's ``unsigned.prev_content`` holds the one before), so a new avatar is checked when it is set.
Only a valid ``mxc://`` URI is taken (matrix_bounds): anything else is no photo to check."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bot.events import ChatRef, MediaRef, MemberJoined, UserRef
from bot.platforms import matrix_bounds as bounds


def member_event(chat: ChatRef, member: UserRef, source: Mapping[str, Any]) -> MemberJoined | None:
    """A join (from outside) or an avatar change of a joined member; None for anything else."""
    content = source.get("content")
    if source.get("type") != "m.room.member" or not isinstance(content, dict) or content.get("membership") != "join":
        return None
    unsigned = source.get("unsigned")
    prev = unsigned.get("prev_content") if isinstance(unsigned, dict) else None
    before = prev if isinstance(prev, dict) else {}
    avatar = bounds.mxc(content.get("avatar_url"))
    if before.get("membership") == "join":
        if avatar is None or avatar == bounds.mxc(before.get("avatar_url")):
            return None  # a new display name, or the avatar removed: nothing to look at
        how = "avatar"
    else:
        how = "join"
    ts = source.get("origin_server_ts")
    at = (
        datetime.fromtimestamp(ts / 1000, UTC)
        if isinstance(ts, int) and not isinstance(ts, bool) and 0 <= ts < 2**45
        else datetime.now(UTC)
    )
    photo = MediaRef("avatar", avatar) if avatar is not None else None
    return MemberJoined(chat, member, at, how, str(source["event_id"]), photo)
