"""Values handed to tests (calls, files, uploads, errors) and the emulator's mutable state records."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from tests.support.botapi.limits import PERMISSIONS

# --- values handed to tests -----------------------------------------------------------------


@dataclass(frozen=True)
class FileRef:
    """A file stored in the emulator, as Telegram identifies it."""

    file_id: str
    file_unique_id: str
    file_path: str  # relative, e.g. "photos/file_3.jpg"
    size: int
    kind: str
    mime: str | None = None
    file_name: str | None = None


@dataclass(frozen=True)
class Upload:
    """A file part of a multipart request (what the bot uploaded)."""

    filename: str | None
    content_type: str | None
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class Call:
    """One request the bot made. ``params`` are decoded (JSON values parsed, uploads as Upload)."""

    method: str  # canonical name, e.g. "sendMessage"; downloads are "downloadFile"
    params: dict[str, Any]
    time: float
    status: int
    result: Any = None
    description: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200


class ScenarioError(Exception):
    """The test asked the emulator for something that cannot happen (unknown user, chat, ...)."""


class NotPermitted(ScenarioError):
    """Telegram would stop this user action (a restricted or banned user posting, ...)."""


class ApiError(Exception):
    """An error answer of the Bot API: status, description and optional parameters."""

    def __init__(self, status: int, description: str, parameters: dict | None = None) -> None:
        super().__init__(f"{status} {description}")
        self.status, self.description, self.parameters = status, description, parameters


def _bad(description: str) -> ApiError:
    return ApiError(400, f"Bad Request: {description}")


def _forbidden(description: str) -> ApiError:
    return ApiError(403, f"Forbidden: {description}")


# --- mutable state records (internal) ------------------------------------------------------


@dataclass
class _Member:
    status: str  # creator | administrator | member | restricted | left | kicked
    rights: dict[str, bool] = field(default_factory=dict)
    permissions: dict[str, bool] = field(default_factory=dict)
    until_date: int = 0  # 0: forever
    is_member: bool = True  # restricted members only
    custom_title: str | None = None
    is_anonymous: bool = False  # an administrator who posts as the group itself


@dataclass
class _Chat:
    id: int
    type: str  # private | group | supergroup
    title: str | None
    members: dict[int, _Member] = field(default_factory=dict)
    messages: dict[int, dict] = field(default_factory=dict)
    deleted: list[dict] = field(default_factory=list)
    next_message_id: int = 1
    permissions: dict[str, bool] = field(default_factory=lambda: {p: True for p in PERMISSIONS})
    username: str | None = None
    instance: str = field(default_factory=lambda: str(secrets.randbits(63)))
    linked_chat_id: int | None = None  # a supergroup's discussion channel, or a channel's group
    migrated_to: int | None = None  # a basic group upgraded to this supergroup: calls to it fail
    banned_senders: set[int] = field(default_factory=set)  # banChatSenderChat


@dataclass
class _Stored:
    ref: FileRef
    data: bytes = field(repr=False)


@dataclass
class _Failure:
    status: int
    description: str
    parameters: dict | None
    times: int


@dataclass
class _CallbackQuery:
    id: str
    user_id: int
    chat_id: int
    message_id: int
    data: str
    answer: dict | None = None
