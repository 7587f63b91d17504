"""Small records the Matrix adapter keeps between restarts, beside matrix-nio's key store.

Ids and times only (never content): the timed mutes Vigil has to lift (in the store, shared by
every process of a cluster; an old ``mutes.json`` is moved there once), and the encrypted events
it could not decrypt yet (their room keys may arrive later: one JSON file under
``<data_dir>/matrix``, replaced atomically so a crash leaves the old or the new version).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.errors import BadStoreValue
from bot.store.mutes import MuteRecord
from bot.store.protocol import MutesStore

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


Mute = MuteRecord  # room, user, level, previous level (None: the room's default), until (UTC)
MUTES_FILE = "mutes.json"  # where mutes lived before they moved to the store
IMPORTED = ".imported"  # the suffix a mutes file takes once its mutes are in the store
MAX_IMPORTED = 100_000  # the most mutes one old file may bring; beyond that it is not a mutes file


class MuteBook:
    """Matrix has no timed mute: Vigil records each one in the store and lifts it when it runs out.

    Every process of a cluster records in the same table; only the process that reads the
    platforms lifts them (MatrixPlatform._lift_mutes), and ``take`` is a conditional delete so
    two processes racing over one mute never both lift it.
    """

    def __init__(self, store: MutesStore) -> None:
        self.store = store

    async def get(self, room: str, user: str) -> Mute | None:
        return await self.store.mute_of(room, user)

    async def put(self, mute: Mute) -> None:
        await self.store.record_mute(mute)

    async def take(self, room: str, user: str, until: datetime | None = None) -> Mute | None:
        """Removes the mute and returns it, if this process got it first (with ``until``: only that mute)."""
        return await self.store.take_mute(room, user, until)

    async def restore(self, mute: Mute) -> None:
        """A lift failed: the mute goes back, to be lifted later (unless a newer one was recorded)."""
        await self.store.restore_mute(mute)

    async def expired(self, now: datetime | None = None) -> list[Mute]:
        return await self.store.expired_mutes(now or datetime.now(UTC))

    async def import_file(self, directory: Path) -> int:
        """Moves the mutes of an install from before the store (``<directory>/mutes.json``) into the
        store, once: the file is then renamed ``mutes.json.imported``. A mute already in the store
        stands. Returns how many were added."""
        path = directory / MUTES_FILE
        if not path.is_file():
            return 0
        raw = JsonFile(path).load()
        items = raw if isinstance(raw, list) else []
        added = 0
        for item in items[:MAX_IMPORTED]:
            mute = _old_mute(item)
            if mute is None:
                log.warning("matrix: %s holds an entry that is not a mute; left out", path)
                continue
            try:
                added += await self.store.restore_mute(mute)
            except BadStoreValue as exc:
                log.warning("matrix: %s holds a mute the store refuses (%s); left out", path, exc.field)
        try:
            path.replace(path.with_name(MUTES_FILE + IMPORTED))
        except FileNotFoundError:
            pass  # another process of the cluster imported it at the same time
        log.info("matrix: %d timed mutes moved from %s into the store", added, path)
        return added


def _old_mute(item: object) -> Mute | None:
    """One entry of an old mutes.json: {room, user, level, previous, until (ISO text)}."""
    if not isinstance(item, dict) or set(item) != {"room", "user", "level", "previous", "until"}:
        return None
    until = item["until"]
    if not isinstance(until, str) or len(until) > 40:
        return None
    try:
        moment = datetime.fromisoformat(until)
    except ValueError:
        return None
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return Mute(item["room"], item["user"], item["level"], item["previous"], moment)


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
