"""What the core needs from a chat platform; each adapter implements it and maps its SDK's errors."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


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


class Platform(Protocol):
    name: str

    async def start(self, core: object) -> None: ...
    async def stop(self) -> None: ...  # stop receiving; sending still works
    async def close(self) -> None: ...  # release connections, after the pipeline drained
    async def fetch_media(self, event: object, max_bytes: int) -> bytes: ...
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
    async def answer(self, press: object, text: str) -> None: ...  # acknowledge a button press; "" says nothing
