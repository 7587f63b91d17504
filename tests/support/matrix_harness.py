"""Running Vigil against the test Synapse: config files, the app in-process or as a process, rooms of people.

bot = new_user(synapse, "vigil")
cfg = write_matrix_config(tmp_path, synapse, bot, marker_model)
async with running_matrix_vigil(cfg, bot) as app, people(synapse, "owner", "member") as (owner, member):
    room = await protected_room(owner, bot, members=[member])
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from nio import EncryptionError, Event, MegolmEvent

from bot.app import App
from bot.config import load_config
from tests.support.matrix_client import HumanClient, HumanClientError
from tests.support.synapse import RegisteredUser, Synapse
from tests.support.vigil_harness import ROOT, TOKEN, VigilProcess


def new_user(synapse: Synapse, prefix: str) -> RegisteredUser:
    return synapse.register(f"{prefix}-{secrets.token_hex(4)}", secrets.token_hex(10))


def write_matrix_config(
    tmp: Path,
    synapse: Synapse,
    bot: RegisteredUser,
    marker_model: Path,
    *,
    groups: str = "",
    extra: str = "",
    matrix_extra: str = "",
    telegram_url: str | None = None,
    name: str = "config.toml",
    homeserver: str | None = None,
) -> Path:
    """A config with Synapse as the Matrix homeserver (and Telegram off unless an emulator URL is given).

    ``homeserver``: another address for it, e.g. a ``MatrixProxy`` in front of Synapse."""
    path = tmp / name
    telegram = (
        f'[telegram]\nbase_url = "{telegram_url}/bot"\nbase_file_url = "{telegram_url}/file/bot"\npoll_timeout = 1\n'
        if telegram_url
        else "[telegram]\nenabled = false\n"
    )
    path.write_text(
        f"""
[vigil]
data_dir = "{tmp / "data"}"
log_level = "INFO"

[matrix]
homeserver = "{homeserver or synapse.base_url}"
user_id = "{bot.user_id}"
sync_timeout = 5
mute_check_interval = 1
{matrix_extra}

{telegram}

[models.nudity]
path = "{marker_model}"

[pipeline]
workers = 2
scan_timeout = 60

[ops]
listen = "127.0.0.1:0"

[groups]
{groups}
{extra}
"""
    )
    return path


def matrix_env(bot: RegisteredUser, *, admin_token: str | None = None, telegram: bool = False) -> dict[str, str]:
    env = {"VIGIL_MATRIX_PASSWORD": bot.password}
    if admin_token:
        env["VIGIL_MATRIX_ADMIN_TOKEN"] = admin_token
    if telegram:
        env["VIGIL_TELEGRAM_TOKEN"] = TOKEN
    return env


@asynccontextmanager
async def running_matrix_vigil(config_path: Path, env: dict[str, str]) -> AsyncIterator[App]:
    app = App(load_config(config_path, env=env))
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


class MatrixVigilProcess(VigilProcess):
    """`vigil run` as its own process with the Matrix secrets in its environment."""

    def __init__(self, config_path: Path, log_path: Path, env: dict[str, str]) -> None:
        super().__init__(config_path, log_path)
        self.extra_env = env

    def start(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.extra_env}
        if "VIGIL_TELEGRAM_TOKEN" not in self.extra_env:
            env.pop("VIGIL_TELEGRAM_TOKEN", None)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "run", "--config", str(self.config_path)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


@asynccontextmanager
async def people(synapse: Synapse, *prefixes: str) -> AsyncIterator[list[HumanClient]]:
    """Newly registered users, each with an open client (encryption on)."""
    async with AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(HumanClient(synapse, new_user(synapse, p))) for p in prefixes]
        yield clients


@dataclass(frozen=True)
class ProtectedRoom:
    room_id: str
    encrypted: bool


async def wait_joined(owner: HumanClient, room_id: str, user_id: str, timeout: float = 20) -> None:
    """Until ``user_id`` has joined (as the owner's client sees the room)."""
    deadline = time.monotonic() + timeout
    while True:
        await owner.sync()
        room = owner.nio.rooms.get(room_id)
        if room is not None and user_id in room.users and user_id not in room.invited_users:
            return
        if time.monotonic() > deadline:
            raise HumanClientError(f"{user_id} did not join {room_id} within {timeout} s")
        await asyncio.sleep(0.1)


async def protected_room(
    owner: HumanClient,
    bot_id: str,
    *,
    members: Sequence[HumanClient] = (),
    moderators: Sequence[HumanClient] = (),
    encrypted: bool = False,
    bot_level: int = 50,
    name: str = "Class 5B parents",
    power_level_content: dict | None = None,
) -> ProtectedRoom:
    """The owner creates a room with Vigil (at ``bot_level``), moderators (50) and members, all joined."""
    levels = {bot_id: bot_level, **{m.user_id: 50 for m in moderators}}
    others = [*moderators, *members]
    room_id = await owner.create_room(
        name,
        invite=[bot_id, *(p.user_id for p in others)],
        encrypted=encrypted,
        power_levels=levels,
        power_level_content=power_level_content,
    )
    for person in others:
        assert await person.wait_invite() == room_id
        await person.join(room_id)
    await wait_joined(owner, room_id, bot_id)
    for person in others:
        await person.sync()
    return ProtectedRoom(room_id, encrypted)


async def wait_redacted(client: HumanClient, room_id: str, event_id: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not await client.redacted(room_id, event_id):
        if time.monotonic() > deadline:
            raise HumanClientError(f"{event_id} was not redacted within {timeout} s")
        await asyncio.sleep(0.2)


class Inbox:
    """What Vigil sends one person privately: it joins Vigil's direct rooms and collects the messages."""

    def __init__(self, client: HumanClient, bot_id: str) -> None:
        self.client, self.bot_id = client, bot_id
        self.rooms: set[str] = set()
        self.messages: list[tuple[str, Event]] = []

    async def poll(self) -> None:
        client = self.client
        await client.sync(timeout_ms=200)  # invites, and room keys (to-device) for encrypted rooms
        for room_id, room in list(client.nio.invited_rooms.items()):
            if room_id not in self.rooms and getattr(room, "inviter", None) == self.bot_id:
                self.rooms.add(room_id)
                await client.join(room_id)
        # each direct room's history (a sync's timeline is cut to its last events)
        messages = []
        for room_id in sorted(self.rooms):
            for event in await client.messages(room_id, limit=200):
                if getattr(event, "sender", None) == self.bot_id and getattr(event, "event_id", None):
                    if isinstance(event, MegolmEvent):
                        try:
                            event = client.nio.decrypt_event(event)
                        except EncryptionError:
                            pass
                    messages.append((room_id, event))
        messages.sort(key=lambda m: getattr(m[1], "server_timestamp", 0))
        self.messages = messages

    def texts(self) -> list[str]:
        return [getattr(e, "body", "") for _, e in self.messages if getattr(e, "body", None)]

    def alerts(self) -> list[tuple[str, Event]]:
        """Alerts (their first message) carry the details choice; replies and greetings do not."""
        return [(r, e) for r, e in self.messages if "!vigil details:" in (getattr(e, "body", "") or "")]

    def details(self) -> list[tuple[str, Event]]:
        """The second messages of alerts, sent on request: they carry the evidence-record choice (`export:`)."""
        return [(r, e) for r, e in self.messages if "!vigil export:" in (getattr(e, "body", "") or "")]

    async def wait(self, predicate: Callable[[Inbox], bool], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not predicate(self):
            if time.monotonic() > deadline:
                raise HumanClientError(
                    f"inbox of {self.client.user_id}: condition not met within {timeout} s; got {self.texts()[-3:]}"
                )
            await self.poll()


def undecrypted(inbox: Inbox) -> list[Event]:
    return [e for _, e in inbox.messages if isinstance(e, MegolmEvent)]
