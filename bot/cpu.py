"""How CPU-bound work is handed off the event loop. The bot passes its pipeline's one pool
(``Pipeline.run_cpu``) to every part that decodes, fingerprints or indexes, so all CPU work
shares one bound; code run without a pipeline (the command line, tests) uses a thread."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class RunCpu(Protocol):
    """Runs ``fn(*args)`` off the event loop and returns its result."""

    def __call__(self, fn: Callable[..., T], /, *args: Any) -> Awaitable[T]: ...


async def in_thread(fn: Callable[..., T], /, *args: Any) -> T:
    """A ``RunCpu`` without a pool: a thread of asyncio's default executor."""
    return await asyncio.to_thread(fn, *args)
