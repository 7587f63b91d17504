"""The emulated world's state: users, chats, files, the update queue; and the waking of waiters."""

from __future__ import annotations

import asyncio
import copy
import itertools
import secrets
import time
from typing import Any

from aiohttp import web

from tests.support.botapi.limits import (
    _KIND_PERMISSION,
    _MEDIA_KEYS,
    ADMIN_RIGHTS,
    CHANNEL_BOT,
    DEFAULT_UPDATES,
    GROUP_ANONYMOUS_BOT,
    PERMISSIONS,
    TELEGRAM_SERVICE,
)
from tests.support.botapi.model import (
    Call,
    NotPermitted,
    ScenarioError,
    _CallbackQuery,
    _Chat,
    _Failure,
    _Member,
    _Stored,
)


class State:
    """The Telegram world in memory and the update queue, and what waits on changes to them."""

    def __init__(
        self,
        token: str | None = None,
        *,
        bot_username: str = "vigil_test_bot",
        bot_name: str = "Vigil",
        privacy_mode: bool = True,
        port: int = 0,
    ) -> None:
        self.token = token or f"{7_000_000_000 + secrets.randbelow(10**9)}:AA{secrets.token_urlsafe(24)}"
        self.bot_id = int(self.token.split(":", 1)[0])
        self.privacy_mode = privacy_mode
        self.bot_user: dict = {"id": self.bot_id, "is_bot": True, "first_name": bot_name, "username": bot_username}
        self.url = ""
        self.port = port
        self.calls: list[Call] = []
        #: (chat, message) of every message a delete call named, as the call arrived, whatever its answer
        self.delete_attempts: list[tuple[int, int]] = []
        #: exceptions raised inside the emulator itself; stop() fails if there are any
        self.internal_errors: list[BaseException] = []

        self._users: dict[int, dict] = {self.bot_id: self.bot_user}
        for placeholder in (CHANNEL_BOT, GROUP_ANONYMOUS_BOT, TELEGRAM_SERVICE):
            self._users[placeholder["id"]] = dict(placeholder)
        self._started: set[int] = set()
        self._blocked: set[int] = set()
        self._chats: dict[int, _Chat] = {}
        self._files: dict[str, _Stored] = {}
        self._paths: dict[str, str] = {}  # file_path -> file_id
        self._photo_sets: dict[str, list[dict]] = {}  # original file_id -> PhotoSize list
        self._updates: list[tuple[int, str, Any]] = []  # raw payloads: a test may queue malformed ones
        self._allowed: frozenset[str] = DEFAULT_UPDATES
        self._failures: dict[str, list[_Failure]] = {}
        self._flood_after: int | None = None  # see flood_new_deletes
        self._held: dict[str, asyncio.Event] = {}  # see hold
        self._flood_seen: set[tuple[int, int]] = set()
        self._queries: dict[str, _CallbackQuery] = {}
        self._commands: dict[tuple[str, str], list[dict]] = {}
        self._poll: asyncio.Future | None = None
        self._watchers: list[asyncio.Future] = []
        self._stopping = False
        self._runner: web.AppRunner | None = None

        self._update_ids = itertools.count(500_000_000 + secrets.randbelow(10**6))
        self._user_ids = itertools.count(100_000_001)
        self._supergroup_ids = itertools.count(1)
        self._file_numbers = itertools.count(0)
        self._query_ids = itertools.count(4_000_000_000_000_000_001)

    # --- waking waiters -----------------------------------------------------------------------

    def _changed(self) -> None:
        watchers, self._watchers = self._watchers, []
        for fut in watchers:
            if not fut.done():
                fut.set_result(None)

    def _wake_poll(self, reason: str) -> None:
        if self._poll is not None and not self._poll.done():
            self._poll.set_result(reason)

    # --- the update queue ---------------------------------------------------------------------

    def _queue(self, kind: str, payload: dict) -> None:
        # allowed_updates applies when an update is created, as on the real server
        if kind not in self._allowed:
            return
        self._updates.append((next(self._update_ids), kind, copy.deepcopy(payload)))
        self._wake_poll("update")
        self._changed()

    def _queue_message(self, chat: _Chat, msg: dict, kind: str = "message") -> None:
        if self._bot_sees(chat, msg):
            self._queue(kind, msg)

    @property
    def polling(self) -> bool:
        """True while a getUpdates long poll is waiting for an update."""
        return self._poll is not None and not self._poll.done()

    def queue_raw_update(self, payload: dict) -> int:
        """Queue an update exactly as given (no checks): to test how the bot survives malformed ones.

        ``payload`` is the update without ``update_id``; returns the id it got.
        """
        update_id = next(self._update_ids)
        kinds = [k for k in payload if k != "update_id"] or ["message"]
        self._updates.append((update_id, kinds[0], copy.deepcopy(payload.get(kinds[0]))))
        self._wake_poll("update")
        self._changed()
        return update_id

    def pending_updates(self) -> int:
        """Updates queued and not yet confirmed by an offset."""
        return len(self._updates)

    def peek_updates(self) -> list[dict]:
        """The pending updates as getUpdates would return them (copies)."""
        return [{"update_id": uid, kind: copy.deepcopy(payload)} for uid, kind, payload in self._updates]

    def _bot_sees(self, chat: _Chat, msg: dict) -> bool:
        """Privacy mode: a non-admin bot in a group gets only commands, replies to it, service messages."""
        if chat.type == "private":
            return chat.id not in self._blocked
        bot = self._member(chat, self.bot_id)
        if bot.status in ("left", "kicked"):
            return False
        if not self.privacy_mode or bot.status in ("creator", "administrator"):
            return True
        if any(
            k in msg
            for k in (
                "new_chat_members",
                "left_chat_member",
                "new_chat_title",
                "new_chat_photo",
                "pinned_message",
                "migrate_to_chat_id",
                "migrate_from_chat_id",
            )
        ):
            return True
        reply = msg.get("reply_to_message")
        if reply and reply.get("from", {}).get("id") == self.bot_id:
            return True
        return self._is_command_for_me(msg)

    def _is_command_for_me(self, msg: dict) -> bool:
        text = msg.get("text", "")
        first = next(iter(msg.get("entities", [])), None)
        if not first or first["type"] != "bot_command" or first["offset"] != 0:
            return False
        _, _, addressee = text.split()[0].partition("@")
        return not addressee or addressee.lower() == self.bot_user["username"].lower()

    # --- state helpers -------------------------------------------------------------------------

    @staticmethod
    def _now() -> int:
        return int(time.time())

    def _user(self, user_id: int) -> dict:
        user = self._users.get(user_id)
        if user is None:
            raise ScenarioError(f"no user {user_id}: create it with add_user() first")
        return user

    def _chat_or_fail(self, chat_id: int) -> _Chat:
        chat = self._chats.get(chat_id)
        if chat is None:
            raise ScenarioError(f"no chat {chat_id}: create it with add_group() or start_private() first")
        return chat

    def _member(self, chat: _Chat, user_id: int) -> _Member:
        """The member record with timed restrictions and bans lifted once they expire."""
        m = chat.members.get(user_id)
        if m is None:
            return _Member("left")
        if m.status in ("restricted", "kicked") and m.until_date and m.until_date <= self._now():
            m = _Member("member") if m.status == "restricted" and m.is_member else _Member("left")
            chat.members[user_id] = m
        return m

    def _chat_json(self, chat: _Chat) -> dict:
        if chat.type == "private":
            user = self._users[chat.id]
            out = {"id": chat.id, "type": "private", "first_name": user["first_name"]}
            for key in ("last_name", "username"):
                if key in user:
                    out[key] = user[key]
            return out
        out = {"id": chat.id, "type": chat.type, "title": chat.title}
        if chat.username:
            out["username"] = chat.username
        return out

    def _member_json(self, chat: _Chat, user_id: int) -> dict:
        m = self._member(chat, user_id)
        user = copy.deepcopy(self._users[user_id])
        if m.status == "creator":
            out = {"status": "creator", "user": user, "is_anonymous": m.is_anonymous}
        elif m.status == "administrator":
            out = {"status": "administrator", "user": user, "can_be_edited": False, "is_anonymous": m.is_anonymous}
            out.update({r: bool(m.rights.get(r, False)) for r in ADMIN_RIGHTS})
            out["can_manage_chat"] = True
        elif m.status == "restricted":
            out = {"status": "restricted", "user": user, "is_member": m.is_member, "until_date": m.until_date}
            out.update({p: bool(m.permissions.get(p, False)) for p in PERMISSIONS})
        elif m.status == "kicked":
            out = {"status": "kicked", "user": user, "until_date": m.until_date}
        else:
            out = {"status": m.status, "user": user}
        if m.custom_title and m.status in ("creator", "administrator"):
            out["custom_title"] = m.custom_title
        return out

    def _may_post(self, chat: _Chat, user_id: int, kind: str) -> None:
        if chat.type == "private":
            if user_id != chat.id:
                raise ScenarioError(f"user {user_id} cannot post in the private chat of user {chat.id}")
            return
        m = self._member(chat, user_id)
        if m.status in ("left", "kicked"):
            raise NotPermitted(f"user {user_id} is not a member of chat {chat.id} (status {m.status})")
        if m.status == "restricted" and not m.permissions.get(_KIND_PERMISSION[kind], False):
            raise NotPermitted(f"user {user_id} is restricted in chat {chat.id}: no {_KIND_PERMISSION[kind]}")

    def _set_member(self, chat: _Chat, user_id: int, new: _Member, *, by: int, bot_visible: bool = True) -> None:
        """Change a membership and queue the update Telegram would send about it."""
        old_json = self._member_json(chat, user_id)
        chat.members[user_id] = new
        update = {
            "chat": self._chat_json(chat),
            "from": copy.deepcopy(self._users[by]),
            "date": self._now(),
            "old_chat_member": old_json,
            "new_chat_member": self._member_json(chat, user_id),
        }
        if user_id == self.bot_id:
            if bot_visible:
                self._queue("my_chat_member", update)
        elif self._member(chat, self.bot_id).status in ("creator", "administrator"):
            self._queue("chat_member", update)
        self._changed()

    def _new_message(
        self,
        chat: _Chat,
        sender: int,
        content: dict,
        *,
        reply_to: int | None = None,
        forward_from: int | str | None = None,
        media_group_id: str | None = None,
        sender_chat: int | None = None,
        quote_from: tuple[int, int] | None = None,
    ) -> dict:
        msg: dict[str, Any] = {
            "message_id": chat.next_message_id,
            "date": self._now(),
            "chat": self._chat_json(chat),
            "from": copy.deepcopy(self._users[sender]),
        }
        if sender_chat is not None:
            # the person stays hidden: a placeholder user, and the chat they posted as
            author = self._chats[sender_chat]
            placeholder = GROUP_ANONYMOUS_BOT if sender_chat == chat.id else CHANNEL_BOT
            msg["from"] = dict(placeholder)
            msg["sender_chat"] = self._chat_json(author)
            title = self._member(chat, sender).custom_title if sender_chat == chat.id else None
            if title:
                msg["author_signature"] = title
        chat.next_message_id += 1
        if reply_to is not None:
            target = chat.messages.get(reply_to)
            if target is None:
                raise ScenarioError(f"chat {chat.id} has no message {reply_to} to reply to")
            msg["reply_to_message"] = self._replied(target)
        if forward_from is not None:
            msg["forward_origin"] = self._forward_origin(forward_from)
        if quote_from is not None:
            msg["external_reply"] = self._external_reply(chat, *quote_from)
        if media_group_id is not None:
            msg["media_group_id"] = str(media_group_id)
        msg.update(content)
        chat.messages[msg["message_id"]] = msg
        self._changed()
        return msg

    def _external_reply(self, chat: _Chat, source_id: int, message_id: int) -> dict:
        """ExternalReplyInfo: a reply to a message of another chat, with that message's media."""
        source = self._chat_or_fail(source_id)
        if source.id == chat.id:
            raise ScenarioError("a reply in the same chat is reply_to; external replies quote another chat")
        target = source.messages.get(message_id)
        if target is None:
            raise ScenarioError(f"chat {source_id} has no message {message_id} to quote")
        if source.type == "channel":
            origin = {
                "type": "channel",
                "chat": self._chat_json(source),
                "message_id": message_id,
                "date": target["date"],
            }
        else:
            origin = {"type": "user", "sender_user": copy.deepcopy(target["from"]), "date": target["date"]}
        info: dict[str, Any] = {"origin": origin, "chat": self._chat_json(source), "message_id": message_id}
        for key in _MEDIA_KEYS:
            if key in target:
                info[key] = copy.deepcopy(target[key])
        return info

    @staticmethod
    def _replied(target: dict) -> dict:
        replied = copy.deepcopy(target)
        replied.pop("reply_to_message", None)
        return replied

    def _forward_origin(self, source: int | str) -> dict:
        date = self._now() - 3600
        if isinstance(source, str):
            return {"type": "hidden_user", "date": date, "sender_user_name": source}
        if source > 0:
            return {"type": "user", "date": date, "sender_user": copy.deepcopy(self._user(source))}
        chat = self._chats.get(source)
        chat_json = self._chat_json(chat) if chat else {"id": source, "type": "channel", "title": f"Channel {source}"}
        if chat is None:
            return {"type": "channel", "date": date, "chat": chat_json, "message_id": 1}
        return {"type": "chat", "date": date, "sender_chat": chat_json}
