"""Errors every adapter maps its SDK's failures onto, so the core can react the same way everywhere."""

from __future__ import annotations

from detectors.errors import VigilError


class PlatformError(VigilError):
    """A chat platform refused or failed a request."""


class RetryLater(PlatformError):
    """Rate limited: try again after ``retry_after`` seconds."""

    def __init__(self, retry_after: float, detail: str = "") -> None:
        self.retry_after = retry_after
        super().__init__(f"rate limited by the platform; retrying after {retry_after:.1f} s {detail}".strip())


class Transient(PlatformError):
    """A network error or a server error: worth retrying with backoff."""


class MessageTooOld(PlatformError):
    """Telegram bots cannot delete messages older than 48 hours."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(
            "the message is too old for a bot to delete (Telegram allows bots 48 hours); "
            f"an admin must delete it by hand {detail}".strip()
        )


class MissingRight(PlatformError):
    def __init__(self, right: str, detail: str = "") -> None:
        self.right = right
        super().__init__(f"Vigil lacks the right to {right} here; an admin must grant it. {detail}".strip())


class MessageGone(PlatformError):
    """The message no longer exists (already deleted): the goal is reached."""


class Unreachable(PlatformError):
    """The user has not started a private chat with the bot, or blocked it."""
