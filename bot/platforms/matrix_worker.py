"""The Matrix account on a cluster's worker (`vigil run --role worker`): a device of its own.

The active ingest holds the account's reading device: it syncs the timelines, keeps the room
keys, decrypts each event and records each picture's job with what a worker needs to check it
(the mxc URI and, for an encrypted attachment, the ``file`` object's key, iv and hash). A
worker never reads the timelines. It logs in as the same account with a device of its own,
because a device's encryption state cannot be shared between processes, and uses it to:

- download a job's attachment and open it with the key from the job (matrix_media);
- redact, mute, ban and alert: a direct message to a moderator is encrypted when the room is,
  so the worker's device needs the room lists, members and the moderators' device keys. It
  gets them from a state-only sync (``StateSync``: its timeline filter lets through only the
  state it follows, so no message is ever read, decrypted or judged twice), which also keeps
  each room's power rules fresh, and from matrix-nio's key upkeep between syncs;
- react with an alert's choices (the active ingest reads the reactions and commands).

``MatrixPlatform.start_sending`` puts these together; this module never imports the platform.

Each worker's device lives in a slot: ``<data_dir>/matrix-workers/<n>/`` holds its session and
keys, claimed with a lock on a file in it (released when the process ends), so several workers
sharing a data directory take different devices, and a restarted worker takes a free slot back
with the device that was in it instead of creating another one on the homeserver.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bot.config import MatrixConfig
from bot.errors import ConfigError
from bot.events import ChatRef
from bot.platforms import matrix_bounds as bounds
from bot.platforms.errors import PlatformError, RetryLater
from bot.platforms.matrix_errors import call
from bot.platforms.matrix_roomstate import POWER_TYPES
from bot.platforms.matrix_state import Pending, PendingEncrypted
from bot.platforms.matrix_sync import NAME, MatrixIntake

log = logging.getLogger("vigil.matrix")

WORKERS_DIR = "matrix-workers"  # under data_dir: one folder (slot) per worker device
MAX_SLOTS = 64  # worker devices one data directory holds
LOCK_FILE = "in-use.lock"


# the state a worker follows: who moderates (power rules) and whether a room is encrypted
FOLLOWED = POWER_TYPES | {"m.room.encryption"}


def worker_filter() -> dict[str, Any]:
    """A worker's sync: rooms' state and members (for encrypted alerts and power rules), never a message."""
    return {
        "presence": {"not_types": ["*"]},
        "account_data": {"types": ["m.direct"]},  # direct rooms other processes of the account opened
        "room": {
            # the messages are the ingest's to read: only the state events a worker follows come in the
            # timeline (a limit of 0 is not honoured: Synapse still sends the last message)
            "timeline": {"limit": 50, "types": sorted(FOLLOWED)},
            "ephemeral": {"not_types": ["*"]},
            "account_data": {"not_types": ["*"]},
            "state": {"lazy_load_members": False},
        },
    }


@dataclass(frozen=True)
class DeviceSlot:
    """A worker's device folder, held (flock) while this process runs."""

    number: int
    path: Path
    fd: int


def claim_slot(base: Path) -> DeviceSlot:
    """The first free slot under ``base`` (its device is reused); a new one when all are taken."""
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    for number in range(MAX_SLOTS):
        path = base / str(number)
        path.mkdir(exist_ok=True, mode=0o700)
        fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return DeviceSlot(number, path, fd)
    raise ConfigError(
        "vigil.data_dir",
        f"all {MAX_SLOTS} Matrix worker devices in {base} are in use by running workers",
        "give the workers on this machine data directories of their own, or run fewer of them",
    )


class NothingWaits(PendingEncrypted):
    """A worker has no room keys and no timeline to retry from: an encrypted edit it reads back
    before a redaction (for its files) is redacted without them, never kept to be retried or
    reported as undecryptable (the ingest reports what it cannot read)."""

    def add(
        self, event_id: str, room_id: str, now: float, *, sender: str = "", session: str = "", device: str = ""
    ) -> list[Pending]:
        return []


def worker_config(config: MatrixConfig, slot: DeviceSlot) -> MatrixConfig:
    """How a worker logs in: with the password (an access token is the ingest's device), as its slot's device."""
    if not config.password:
        raise ConfigError(
            "matrix.password",
            "a Matrix worker logs in a device of its own, which needs the account's password",
            "set VIGIL_MATRIX_PASSWORD for the workers (an access token belongs to one device: the ingest's)",
        )
    return replace(config, access_token="", device_name=f"{config.device_name} worker {slot.number}")


class StateSync:
    """A worker's sync: the rooms' followed state, m.direct, to-device messages and device lists;
    never a message (``worker_filter``). Its position is kept in memory only: a restart reads the
    state again in full."""

    def __init__(self, platform: MatrixIntake) -> None:
        self.platform = platform
        self.token: str | None = None
        self.filter = worker_filter()

    async def once(self, *, first: bool) -> None:
        p = self.platform
        core = p.core
        response = await call(
            "sync (room state)",
            p.client.sync(
                timeout=0 if first else p.config.sync_timeout * 1000,  # the long poll, as the ingest's
                since=self.token,
                full_state=True if first else None,
                sync_filter=self.filter,
            ),
        )
        for data in response.account_data_events:
            if getattr(data, "type", None) == "m.direct":
                p.direct.follow(getattr(data, "content", None))
        for room_id in response.rooms.leave:
            p._forget_room(room_id)
        for room_id, info in response.rooms.join.items():
            if not bounds.room_id(room_id):
                continue
            states = [e.source for e in info.state if isinstance(getattr(e, "source", None), dict)]
            # the timeline carries only the followed state events (the filter), after the state block
            states += [
                e.source
                for e in info.timeline.events
                if isinstance(getattr(e, "source", None), dict) and isinstance(e.source.get("state_key"), str)
            ]
            if first:
                p.state.seed(room_id, states)
            for state in states:
                if not first:
                    p._state_event(room_id, state)
                p.bridges.note(room_id, state)
            changed = {s.get("type") for s in states} & POWER_TYPES
            if changed and not first:  # who moderates may have changed: alerts go to the current moderators
                core.forget_admins(ChatRef(NAME, room_id))
                if "m.room.power_levels" in changed:
                    log.info("matrix: room %s: power levels changed; this worker follows them", room_id)
        self.token = response.next_batch
        p._undecrypted.clear()  # encrypted edits read back for a redaction: never retried here (NothingWaits)
        p._ready.set()  # nio knows the rooms: direct rooms can be looked up
        await p._keys_maintenance()

    async def run(self) -> None:
        backoff = 1.0
        while not self.platform._stopping.is_set():
            try:
                await self.once(first=False)
                backoff = 1.0
            except asyncio.CancelledError:
                raise
            except RetryLater as exc:
                await asyncio.sleep(exc.retry_after)
            except Exception as exc:  # alerts must keep their room lists: try again from the last position
                if isinstance(exc, PlatformError):
                    log.warning("matrix: the worker's state sync failed (%s); retrying in %.0f s", exc, backoff)
                else:
                    log.exception("matrix: the worker's state sync failed; retrying in %.0f s", backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 60)
