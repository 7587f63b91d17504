"""Small records the Matrix adapter keeps between restarts, beside matrix-nio's key store.

Ids and times only (never content): the timed mutes Vigil has to lift, and the encrypted events
it could not decrypt yet (their room keys may arrive later). Each is one JSON file under
``<data_dir>/matrix``, replaced atomically so a crash leaves the old or the new version.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger("vigil.matrix")


class JsonFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> Any:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (ValueError, OSError) as exc:
            log.error("matrix: %s is unreadable (%s); starting it afresh", self.path, type(exc).__name__)
            return None

    def save(self, value: Any) -> None:
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(value, f, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)


@dataclass(frozen=True)
class Mute:
    """Vigil lowered ``user``'s level in ``room`` to ``level`` until ``until``; ``previous`` is restored."""

    room: str
    user: str
    level: int
    previous: int | None  # None: the user was not listed (had the room's default level)
    until: str  # ISO time, UTC

    @property
    def until_time(self) -> datetime:
        return datetime.fromisoformat(self.until)


class MuteBook:
    """Matrix has no timed mute: Vigil records each one here and lifts it when it runs out."""

    def __init__(self, directory: Path) -> None:
        self.file = JsonFile(directory / "mutes.json")
        raw = self.file.load() or []
        self._mutes: dict[tuple[str, str], Mute] = {}
        for item in raw if isinstance(raw, list) else []:
            try:
                m = Mute(**item)
                m.until_time  # noqa: B018 - validates the stored time
            except (TypeError, ValueError):
                continue
            self._mutes[(m.room, m.user)] = m

    def get(self, room: str, user: str) -> Mute | None:
        return self._mutes.get((room, user))

    def put(self, mute: Mute) -> None:
        self._mutes[(mute.room, mute.user)] = mute
        self._save()

    def remove(self, room: str, user: str) -> None:
        if self._mutes.pop((room, user), None) is not None:
            self._save()

    def expired(self, now: datetime | None = None) -> list[Mute]:
        now = now or datetime.now(UTC)
        return [m for m in self._mutes.values() if m.until_time <= now]

    def all(self) -> list[Mute]:
        return list(self._mutes.values())

    def _save(self) -> None:
        self.file.save([asdict(m) for m in self._mutes.values()])


@dataclass(frozen=True)
class Pending:
    """One encrypted event Vigil could not decrypt yet, and whose device's session it needs."""

    event_id: str
    room: str
    first_seen: float  # UNIX time
    sender: str = ""
    session: str = ""  # the Megolm session id the sender's device encrypted it with
    device: str = ""  # the sender's device id


class PendingEncrypted:
    """Encrypted events whose room key has not arrived yet: retried after each sync and after a restart.

    Bounded: beyond MAX the oldest give way, and ``add`` returns them so their moderators can be told.
    """

    MAX = 2000

    def __init__(self, directory: Path) -> None:
        self.file = JsonFile(directory / "undecrypted.json")
        raw = self.file.load() or {}
        self.items: dict[str, Pending] = {}
        for event_id, value in raw.items() if isinstance(raw, dict) else []:
            # [room, first seen] (older files) or [room, first seen, sender, session, device]
            texts = value[:1] + value[2:] if isinstance(value, list) else []
            if isinstance(value, list) and len(value) in (2, 5) and all(isinstance(v, str) for v in texts):
                try:
                    self.items[str(event_id)] = Pending(str(event_id), value[0], float(value[1]), *value[2:])
                except (TypeError, ValueError):
                    continue

    def add(
        self, event_id: str, room_id: str, now: float, *, sender: str = "", session: str = "", device: str = ""
    ) -> list[Pending]:
        """Keep the event for later; returns the events that gave way to it (the oldest beyond MAX)."""
        if event_id in self.items:
            return []
        self.items[event_id] = Pending(event_id, room_id, now, sender, session, device)
        evicted = []
        while len(self.items) > self.MAX:
            oldest = min(self.items.values(), key=lambda p: p.first_seen)
            log.error("matrix: too many undecryptable events; giving up on %s in %s", oldest.event_id, oldest.room)
            evicted.append(self.items.pop(oldest.event_id))
        self._save()
        return evicted

    def remove(self, event_ids: list[str]) -> None:
        changed = False
        for e in event_ids:
            changed |= self.items.pop(e, None) is not None
        if changed:
            self._save()

    def _save(self) -> None:
        self.file.save({k: [p.room, p.first_seen, p.sender, p.session, p.device] for k, p in self.items.items()})
