"""Who is in a /protect conversation: after /protect, the photos a member sends the bot
privately are registered as theirs for ``minutes`` (each photo extends it), until they close it
or the time runs out. In memory only: a restart ends every session (the member sends /protect
again), and nothing of it is worth a row in the store."""

from __future__ import annotations

import time
from collections.abc import Callable


class ProtectSessions:
    """Open /protect sessions by (platform, user id)."""

    def __init__(self, minutes: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._seconds = minutes * 60
        self._clock = clock
        self._until: dict[tuple[str, str], float] = {}

    def open(self, platform: str, user_id: str) -> None:
        now = self._clock()
        for key in [k for k, until in self._until.items() if until < now]:
            del self._until[key]  # sessions nobody closed
        self._until[(platform, user_id)] = now + self._seconds

    def is_open(self, platform: str, user_id: str) -> bool:
        """Whether the member's session is open; if so, it is extended."""
        until = self._until.get((platform, user_id))
        if until is None:
            return False
        now = self._clock()
        if now > until:
            del self._until[(platform, user_id)]
            return False
        self._until[(platform, user_id)] = now + self._seconds
        return True

    def close(self, platform: str, user_id: str) -> bool:
        """Ends the session; True if one was open."""
        return self._until.pop((platform, user_id), None) is not None
