"""Retrying a platform call, next to the errors it reacts to (bot/platforms/errors.py)."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from bot.platforms.errors import RetryLater, Transient

log = logging.getLogger("vigil.retries")
T = TypeVar("T")

RETRIES = 6  # per platform call; with backoff this spans about a minute


async def with_retries(what: str, call: Callable[[], Awaitable[T]], *, attempts: int = RETRIES) -> T:
    """Retry rate limits (as long as the platform asks) and transient errors (with jittered backoff)."""
    delay = 0.5
    for attempt in range(1, attempts + 1):
        try:
            return await call()
        except RetryLater as exc:
            if attempt == attempts:
                raise
            log.warning("%s: rate limited, retrying in %.1f s", what, exc.retry_after)
            await asyncio.sleep(exc.retry_after)
        except Transient as exc:
            if attempt == attempts:
                raise
            log.warning("%s: %s; retry %d in %.1f s", what, exc, attempt, delay)
            await asyncio.sleep(delay * (0.75 + random.random() / 2))
            delay = min(delay * 2, 15.0)
    raise AssertionError("unreachable")
