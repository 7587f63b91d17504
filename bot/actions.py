"""Platform actions (delete, mute, ban), recorded before they are tried so a replay never repeats them.

``SimulatedActions`` is the twin used in dry-run mode: it does nothing on the platform and
says what it would have done.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.config import parse_duration
from bot.delete_batcher import DeleteBatcher
from bot.metrics import NO_METRICS, Metrics
from bot.platforms.base import Platform
from bot.platforms.errors import MessageGone, MessageTooOld, MissingRight, PlatformError
from bot.platforms.retries import with_retries
from bot.policy import GroupSettings
from bot.store.protocol import WorkStore
from bot.values import ActionFailure, Sanction

log = logging.getLogger("vigil.actions")


@dataclass(frozen=True)
class ActionResult:
    done: bool
    failure: ActionFailure | None = None
    until: datetime | None = None


class Actions:
    def __init__(
        self, store: WorkStore, batcher: DeleteBatcher | None = None, *, metrics: Metrics = NO_METRICS
    ) -> None:
        self.store = store
        self.batcher = batcher  # None: each delete is its own call, retried on its own
        self.metrics = metrics

    async def _once(
        self,
        platform: Platform,
        chat_id: str,
        message_id: str,
        action: str,
        params: Mapping[str, Any],
        call: Callable[[], Awaitable[object]],
        *,
        retried: bool = False,
    ) -> ActionResult:
        """``retried``: ``call`` waits out rate limits and retries by itself (the delete batcher)."""
        record = await self.store.record_action(platform.name, chat_id, message_id, action, params)
        if record.state == "done":
            return ActionResult(True)
        try:
            if retried:
                await call()
            else:
                if self.batcher is not None:  # a rate limit the chat's deletes met holds its sanctions too
                    await self.batcher.gate.wait((platform.name, str(chat_id)))
                await with_retries(f"{action} in chat {chat_id}", call)
        except MessageGone:
            pass  # someone deleted it first: the goal is reached
        except PlatformError as exc:
            failure = (
                ActionFailure.TOO_OLD
                if isinstance(exc, MessageTooOld)
                else ActionFailure.NO_RIGHT
                if isinstance(exc, MissingRight)
                else ActionFailure.ERROR
            )
            if failure == ActionFailure.ERROR:
                log.error("%s of message %s in chat %s failed: %s", action, message_id, chat_id, exc)
            await self.store.action_failed(record.id, str(exc))
            self.metrics.action(action, failure)
            return ActionResult(False, failure)
        await self.store.action_done(record.id)
        self.metrics.action(action, "done")
        return ActionResult(True)

    async def delete(self, platform: Platform, chat_id: str, message_id: str) -> ActionResult:
        if self.batcher is not None:
            batcher = self.batcher
            return await self._once(
                platform,
                chat_id,
                message_id,
                "delete",
                {},
                lambda: batcher.delete(platform, chat_id, message_id),
                retried=True,
            )
        return await self._once(
            platform, chat_id, message_id, "delete", {}, lambda: platform.delete(chat_id, message_id)
        )

    async def mute(
        self, platform: Platform, chat_id: str, user_id: str, message_id: str, duration: str
    ) -> ActionResult:
        until = datetime.now(UTC) + parse_duration(duration)
        result = await self._once(
            platform,
            chat_id,
            message_id,
            "mute",
            {"user": user_id, "until": until.isoformat()},
            lambda: platform.restrict(chat_id, user_id, until),
        )
        return ActionResult(result.done, result.failure, until)

    async def ban(self, platform: Platform, chat_id: str, user_id: str, message_id: str) -> ActionResult:
        return await self._once(
            platform, chat_id, message_id, "ban", {"user": user_id}, lambda: platform.ban(chat_id, user_id)
        )

    async def sanction(
        self, platform: Platform, chat_id: str, user_id: str, message_id: str, settings: GroupSettings
    ) -> ActionResult:
        if settings.action == Sanction.MUTE:
            return await self.mute(platform, chat_id, user_id, message_id, settings.mute_duration)
        if settings.action == Sanction.BAN:
            return await self.ban(platform, chat_id, user_id, message_id)
        return ActionResult(False)


class SimulatedActions(Actions):
    """Dry run: nothing happens on the platform; every call is kept as what would have happened."""

    def __init__(self) -> None:
        self.would: list[tuple[str, str, str]] = []
        self.batcher = None
        self.metrics = NO_METRICS

    async def _once(
        self,
        platform: Platform,
        chat_id: str,
        message_id: str,
        action: str,
        params: Mapping[str, Any],
        call: Callable[[], Awaitable[object]],
        *,
        retried: bool = False,
    ) -> ActionResult:
        self.would.append((action, chat_id, message_id))
        return ActionResult(True)
