"""Test control: what the bot did, and waiting for it."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from typing import Any

from tests.support.botapi.model import Call
from tests.support.botapi.params import _scope_key, _short
from tests.support.botapi.posting import Posting


class Inspection(Posting):
    """What tests read: calls, messages in a chat, deletes, private messages, members; waiting for a condition."""

    # --- test-control API: inspection -------------------------------------------------------------

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method.lower() == method.lower()]

    def messages_in(self, chat_id: int) -> list[dict]:
        """The messages in a chat now (deleted ones gone), oldest first."""
        chat = self._chat_or_fail(chat_id)
        return [copy.deepcopy(m) for _, m in sorted(chat.messages.items())]

    def message(self, chat_id: int, message_id: int) -> dict | None:
        msg = self._chat_or_fail(chat_id).messages.get(message_id)
        return copy.deepcopy(msg)

    def deletes_of(self, chat_id: int, message_id: int) -> int:
        """How many delete calls (deleteMessage or deleteMessages) named this message, failed and
        unanswered ones too: counting the messages deleted would hide a second delete of one."""
        return self.delete_attempts.count((chat_id, message_id))

    def deleted_in(self, chat_id: int) -> list[dict]:
        """Messages the bot deleted from a chat, in the order it deleted them."""
        return copy.deepcopy(self._chat_or_fail(chat_id).deleted)

    def sent_to(self, user_id: int) -> list[dict]:
        """Messages the bot sent to a user's private chat (texts and documents), oldest first."""
        chat = self._chats.get(user_id)
        if chat is None:
            return []
        return [copy.deepcopy(m) for _, m in sorted(chat.messages.items()) if m["from"]["id"] == self.bot_id]

    def member(self, chat_id: int, user_id: int) -> dict:
        """The ChatMember JSON getChatMember would return (restrictions and bans show here)."""
        chat = self._chat_or_fail(chat_id)
        self._user(user_id)
        return self._member_json(chat, user_id)

    def commands(self, scope: dict | None = None, language_code: str = "") -> list[dict]:
        return copy.deepcopy(self._commands.get((_scope_key(scope), language_code), []))

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 10, *, what: str | None = None) -> Any:
        """Wait until ``predicate()`` is truthy and return its value, else fail with the recent calls.

        Re-checked on every call the bot makes and every state change, and every 50 ms for
        conditions that depend on state outside the emulator.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value = predicate()
            if value:
                return value
            remaining = deadline - loop.time()
            if remaining <= 0:
                recent = "\n".join(
                    f"  {c.method} {c.status} {_short(c.params)}" + (f" -> {c.description}" if c.description else "")
                    for c in self.calls[-15:]
                )
                raise AssertionError(
                    f"{what or 'condition'} not met within {timeout} s; last calls to the Bot API emulator:\n"
                    f"{recent or '  (none)'}"
                )
            fut = loop.create_future()
            self._watchers.append(fut)
            await asyncio.wait({fut}, timeout=min(remaining, 0.05))
            if not fut.done():
                fut.cancel()

    async def wait_for_call(
        self, method: str, predicate: Callable[[Call], bool] = lambda c: True, timeout: float = 10
    ) -> Call:
        """The first call of ``method`` (that satisfies ``predicate``)."""
        found = await self.wait_for(
            lambda: next((c for c in self.calls_to(method) if predicate(c)), None), timeout, what=f"a {method} call"
        )
        return found
