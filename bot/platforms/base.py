"""The two seams between the core and a chat platform.

``Platform``: what the core needs from a chat platform; each adapter implements it and maps its
SDK's errors onto bot/platforms/errors.py. ``EventSink``: what an adapter calls on the core.
``SharedReads``: what an adapter may read from the running bot (Matrix: a room's language, list
sizes for its policy rooms). The adapters import these and the events, never the core parts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from bot.events import BotAdded, ButtonPressed, ChatRef, CommandIssued, MediaPosted, MediaRef, MemberJoined, UserRef
from bot.i18n import Translator
from bot.metrics import Metrics
from bot.policy import GroupSettings


@dataclass(frozen=True)
class Button:
    label: str
    data: str  # opaque to the platform; comes back in ButtonPressed.data


@dataclass(frozen=True)
class OutgoingMessage:
    text: str
    html: str | None = None
    buttons: tuple[tuple[Button, ...], ...] = ()  # rows of buttons
    language: str | None = None  # the language the text is in, for words an adapter adds (Matrix's choice line)


@dataclass(frozen=True)
class Rights:
    is_admin: bool
    can_delete: bool
    can_restrict: bool


class EventSink(Protocol):
    """What an adapter hands the core. Each returns once the event is safe (recorded or handled)."""

    async def submit(self, event: MediaPosted) -> None: ...  # an image posted in a group
    async def command(self, cmd: CommandIssued) -> None: ...
    async def button(self, press: ButtonPressed) -> None: ...
    async def bot_added(self, event: BotAdded) -> None: ...
    async def private_media(self, event: MediaPosted, *, command: str | None = None) -> None: ...
    async def private_started(self, user: UserRef) -> None: ...  # the user can be written to privately
    def forget_admins(self, chat: ChatRef) -> None: ...  # the chat's admins changed (or its id did)
    async def member_joined(self, event: MemberJoined) -> None: ...  # at the door: recorded when it returns


class SharedReads(Protocol):
    """What an adapter may read from the running bot."""

    metrics: Metrics

    async def group_settings(self, chat: ChatRef) -> GroupSettings: ...
    def translator(self, language: str | None, fallback: str = "en") -> Translator: ...
    async def sync_lists(self) -> int: ...  # apply list changes in the store now
    def list_size(self, list_id: int) -> int: ...
    @property
    def backlog(self) -> int: ...  # chats with images waiting or in flight
    async def drain(self) -> None: ...  # until no image is being checked or acted on


class BotCore(EventSink, SharedReads, Protocol):
    """The running bot as an adapter is started with it: what it hands over and what it reads."""


class Platform(Protocol):
    """Optional capabilities an adapter may add, read with getattr: ``media_left(message_id)`` and
    ``bridged(chat_id, user_id)`` (Matrix), ``shared_sender_ids`` (Telegram), ``policy`` (Matrix)."""

    name: str
    username: str  # the bot's own name there, for hints ("start @name")
    connected: bool

    async def start(self, core: BotCore) -> None: ...
    async def stop(self) -> None: ...  # stop receiving; sending still works
    async def close(self) -> None: ...  # release connections, after the pipeline drained
    async def fetch_media(self, event: MediaPosted, max_bytes: int) -> bytes: ...
    async def delete(self, chat_id: str, message_id: str) -> None: ...
    async def restrict(self, chat_id: str, user_id: str, until: datetime) -> None: ...
    async def unrestrict(self, chat_id: str, user_id: str) -> None: ...
    async def ban(self, chat_id: str, user_id: str) -> None: ...
    async def send_private(self, user_id: str, message: OutgoingMessage) -> str: ...
    async def send_chat(self, chat_id: str, message: OutgoingMessage) -> str: ...
    async def send_file(self, user_id: str, filename: str, data: bytes, caption: str) -> None: ...
    async def admins(self, chat_id: str) -> frozenset[str]: ...
    async def owner(self, chat_id: str) -> str | None: ...
    async def is_member(self, chat_id: str, user_id: str) -> bool: ...  # belongs to the group now
    async def rights(self, chat_id: str) -> Rights: ...
    async def answer(self, press: ButtonPressed, text: str) -> None: ...  # acknowledge a button press; "" says nothing


class DoorPlatform(Protocol):
    """What an adapter adds for checks at the door (bot/door.py), read with getattr: the member's
    current profile photo (Telegram), a join request answered, media posting held (Telegram)."""

    async def profile_photo(self, user_id: str, max_bytes: int) -> MediaRef | None: ...
    async def answer_join_request(self, chat_id: str, user_id: str, *, approve: bool) -> None: ...
    async def restrict_media(self, chat_id: str, user_id: str, until: datetime | None) -> None: ...
