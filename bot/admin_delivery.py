"""One private message to one admin: the platform's retries, an admin who cannot be written to
marked so (they are asked to start the bot again elsewhere), a failure logged. The alerts, report
alerts and door alerts all reach admins this way; each keeps its own record of who was told."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from bot.platforms.base import OutgoingMessage, Platform
from bot.platforms.errors import PlatformError, Unreachable
from bot.platforms.retries import with_retries

log = logging.getLogger("vigil.delivery")


class Delivery(StrEnum):
    SENT = "sent"
    UNREACHABLE = "unreachable"  # the admin blocked the bot or never started it: marked, not retried
    FAILED = "failed"  # the platform failed after its retries: tried again at the next alert


@dataclass(frozen=True)
class Delivered:
    outcome: Delivery
    message_id: str | None = None  # the sent message, when the platform names it


class ContactMarks(Protocol):
    async def set_contact(self, platform: str, user_id: str | int, *, can_dm: bool) -> object: ...


async def dm_admin(
    platform: Platform, contacts: ContactMarks, user_id: str, message: OutgoingMessage, what: str
) -> Delivered:
    """``what`` names the message in the logs (e.g. "alert for chat -100…"), never its text."""
    try:
        sent = await with_retries(f"{what} to admin {user_id}", lambda: platform.send_private(user_id, message))
    except Unreachable:
        await contacts.set_contact(platform.name, user_id, can_dm=False)
        return Delivered(Delivery.UNREACHABLE)
    except PlatformError as exc:
        log.error("%s to admin %s failed: %s", what, user_id, exc)
        return Delivered(Delivery.FAILED)
    return Delivered(Delivery.SENT, sent)
