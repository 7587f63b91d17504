"""Deletions of one chat, in batches, behind one rate-limit gate for the chat.

Under a burst every hit of a chat needs a delete. One call per message, each retried on its own
after a 429, makes the chat wait once per message. Here a chat has one queue and one sender:
deletes that arrive while a call is out (or waits) go together in the next call (``delete_many``, up to
``MAX_BATCH`` ids, where the platform has it), and a 429 closes the chat's gate for the time the
platform asks; everything of that chat waits on the gate once, then goes out in one call.

A batch that fails for another reason falls back to one call per message, so one message that
cannot be deleted (too old, no right) does not take the others down with it; "message to delete
not found" counts as done (someone removed it first). Callers have recorded the action before
they ask (bot/actions.py), so a crash replays it and nothing is done twice.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

from bot.platforms.errors import MessageGone, PlatformError, RetryLater, Transient

log = logging.getLogger("vigil.deletes")

MAX_BATCH = 100  # Telegram's deleteMessages takes up to 100 ids
ATTEMPTS = 6  # rate limits and transient errors per batch, as bot.moderation.RETRIES
MAX_WAIT = 3600.0  # a longer retry_after than an hour is not believed: waited as an hour


@dataclass
class _Chat:
    queue: list[tuple[str, asyncio.Future[None]]] = field(default_factory=list)
    sender: asyncio.Task[None] | None = None
    open_at: float = 0.0  # monotonic time before which nothing of the chat is sent


class ChatGate:
    """One gate per chat: a rate limit seen on any call of the chat holds every call of it."""

    def __init__(self) -> None:
        self._open_at: dict[tuple[str, str], float] = {}

    def close_for(self, key: tuple[str, str], seconds: float) -> None:
        until = time.monotonic() + min(max(seconds, 0.0), MAX_WAIT)
        if until > self._open_at.get(key, 0.0):
            self._open_at[key] = until

    async def wait(self, key: tuple[str, str]) -> None:
        while (delay := self._open_at.get(key, 0.0) - time.monotonic()) > 0:
            await asyncio.sleep(delay)
        self._open_at.pop(key, None)


class DeleteBatcher:
    def __init__(self, gate: ChatGate | None = None) -> None:
        self.gate = gate or ChatGate()
        self._chats: dict[tuple[str, str], _Chat] = {}

    async def delete(self, platform: Any, chat_id: str, message_id: str) -> None:
        """Deletes one message, together with the chat's other pending deletes; raises the
        platform's error for this message (MessageGone never: the goal is reached)."""
        key = (platform.name, str(chat_id))
        chat = self._chats.setdefault(key, _Chat())
        waiting = next((f for m, f in chat.queue if m == str(message_id)), None)
        if waiting is not None:  # another picture of the same message asked already: one delete
            await asyncio.shield(waiting)
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        chat.queue.append((str(message_id), done))
        if chat.sender is None or chat.sender.done():
            chat.sender = asyncio.create_task(self._send(platform, key, chat), name=f"vigil-deletes-{chat_id}")
        await done

    async def close(self) -> None:
        tasks = [c.sender for c in self._chats.values() if c.sender is not None and not c.sender.done()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._chats.clear()

    async def _send(self, platform: Any, key: tuple[str, str], chat: _Chat) -> None:
        limited = transient = 0  # failed tries of the batch at the head of the queue
        delay = 0.5
        try:
            retry: list[tuple[str, asyncio.Future[None]]] = []
            while chat.queue or retry:
                await self.gate.wait(key)
                size = MAX_BATCH if getattr(platform, "delete_many", None) is not None else 1
                if retry:
                    batch, retry = retry, []
                else:
                    batch, chat.queue = chat.queue[:size], chat.queue[size:]
                batch = [(m, f) for m, f in batch if not f.done()]  # a caller cancelled: not sent
                if not batch:
                    continue
                try:
                    await self._once(platform, key, [m for m, _ in batch])
                except (RetryLater, Transient) as exc:
                    if isinstance(exc, RetryLater):
                        limited += 1
                        self.gate.close_for(key, exc.retry_after)  # the chat waits once, for all
                        log.warning("chat %s: deletes rate limited; the chat waits %.1f s", key[1], exc.retry_after)
                    else:
                        transient += 1
                        log.warning("chat %s: deletes: %s; retry in %.1f s", key[1], exc, delay)
                        await asyncio.sleep(delay * (0.75 + random.random() / 2))
                        delay = min(delay * 2, 15.0)
                    if max(limited, transient) >= ATTEMPTS:
                        for _, done in batch:
                            _settle(done, exc)
                        limited = transient = 0
                    else:  # the same call again after the wait; what came meanwhile goes in the next one
                        retry = batch
                    continue
                except MessageGone:
                    pass  # deleteMessages skips missing ones; a single one gone is done as well
                except PlatformError as exc:
                    limited = transient = 0
                    await self._one_by_one(platform, key, batch, exc)
                    continue
                except Exception as exc:  # a bug: every caller gets it, the sender goes on with the queue
                    for _, done in batch:
                        _settle(done, exc)
                    continue
                limited = transient = 0
                delay = 0.5
                for _, done in batch:
                    _settle(done, None)
        except BaseException as exc:  # cancelled at stop: every caller still waiting learns it
            for _, f in chat.queue + retry:
                if not f.done():
                    f.set_exception(exc if isinstance(exc, Exception) else asyncio.CancelledError())
            raise
        finally:
            if self._chats.get(key) is chat and not chat.queue:
                del self._chats[key]

    @staticmethod
    async def _once(platform: Any, key: tuple[str, str], ids: list[str]) -> None:
        if len(ids) > 1:
            await platform.delete_many(key[1], ids)
        else:  # one message, or a platform without batches (Matrix): one call
            await platform.delete(key[1], ids[0])

    async def _one_by_one(
        self, platform: Any, key: tuple[str, str], batch: list[tuple[str, asyncio.Future[None]]], error: PlatformError
    ) -> None:
        """A batch failed as a whole: each message on its own, so one that cannot go takes no other."""
        if len(batch) == 1:
            _settle(batch[0][1], error)
            return
        log.warning("chat %s: deleting %d messages at once failed (%s); one by one", key[1], len(batch), error)
        for message_id, done in batch:
            try:
                await self._retried(key, lambda m=message_id: platform.delete(key[1], m), "delete message")
            except MessageGone:
                pass
            except PlatformError as one:
                _settle(done, one)
                continue
            except Exception as bug:
                _settle(done, bug)
                continue
            _settle(done, None)

    async def _retried(self, key: tuple[str, str], call: Any, what: str) -> None:
        delay = 0.5
        for attempt in range(1, ATTEMPTS + 1):
            await self.gate.wait(key)
            try:
                await call()
                return
            except RetryLater as exc:
                if attempt == ATTEMPTS:
                    raise
                log.warning("chat %s: %s rate limited; the chat waits %.1f s", key[1], what, exc.retry_after)
                self.gate.close_for(key, exc.retry_after)
            except Transient as exc:
                if attempt == ATTEMPTS:
                    raise
                log.warning("chat %s: %s: %s; retry %d in %.1f s", key[1], what, exc, attempt, delay)
                await asyncio.sleep(delay * (0.75 + random.random() / 2))
                delay = min(delay * 2, 15.0)


def _settle(done: asyncio.Future[None], error: BaseException | None) -> None:
    if done.done():
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)
