"""Reading a method's chat and user parameters (with Telegram's errors), formatting, the bot's messages."""

from __future__ import annotations

import copy
from typing import Any

from tests.support.botapi.files import Files
from tests.support.botapi.formatting import _PARSERS, _ParseError, _strip, _u16
from tests.support.botapi.model import ApiError, _bad, _Chat, _forbidden
from tests.support.botapi.params import _bool


class ChatParams(Files):
    """What the Bot API methods share: chat and user parameters with Telegram's errors, formatted
    text, the bot's own messages."""

    # --- method helpers -----------------------------------------------------------------------------

    def _chat_param(self, p: dict) -> tuple[int, _Chat | None]:
        raw = p.get("chat_id")
        if raw is None or raw == "":
            raise _bad("chat_id is empty")
        if isinstance(raw, str) and raw.startswith("@"):
            chat = next((c for c in self._chats.values() if c.username and c.username.lower() == raw[1:].lower()), None)
            if chat is None:
                raise _bad("chat not found")
            return chat.id, chat
        if not isinstance(raw, int) or isinstance(raw, bool):
            raise _bad("chat not found")
        return raw, self._chats.get(raw)

    def _readable_chat(self, p: dict) -> _Chat:
        """A chat the bot can act on: known to it and the bot still in it."""
        chat_id, chat = self._chat_param(p)
        if chat is None:
            if chat_id in self._users and chat_id > 0:
                raise _forbidden("bot can't initiate conversation with a user")
            raise _bad("chat not found")
        if chat.type == "private":
            if chat.id in self._blocked:
                raise _forbidden("bot was blocked by the user")
            return chat
        if chat.migrated_to is not None:
            raise ApiError(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                {"migrate_to_chat_id": chat.migrated_to},
            )
        label = "supergroup chat" if chat.type == "supergroup" else "group chat"
        status = self._member(chat, self.bot_id).status
        if status == "kicked":
            raise _forbidden(f"bot was kicked from the {label}")
        if status == "left":
            raise _forbidden(f"bot is not a member of the {label}")
        return chat

    def _writable_chat(self, p: dict) -> _Chat:
        chat = self._readable_chat(p)
        bot = self._member(chat, self.bot_id)
        if bot.status == "restricted" and not bot.permissions.get("can_send_messages"):
            raise _bad("not enough rights to send text messages to the chat")
        return chat

    def _user_param(self, p: dict) -> int:
        user_id = p.get("user_id")
        if user_id is None or user_id == "":
            raise _bad("user_id is empty")
        if not isinstance(user_id, int) or isinstance(user_id, bool) or user_id <= 0:
            raise _bad("invalid user_id specified")
        if user_id not in self._users:
            raise _bad("user not found")
        return user_id

    def _creator(self, chat: _Chat) -> int:
        return next((uid for uid, m in chat.members.items() if m.status == "creator"), self.bot_id)

    def _formatted(
        self, p: dict, name: str, entities_name: str, limit: int, *, empty: str | None, too_long: str
    ) -> tuple[str, list[dict]]:
        raw = p.get(name)
        if raw is None or raw == "":
            if empty is not None:
                raise _bad(empty)
            return "", []
        text = str(raw)
        mode = p.get("parse_mode")
        explicit = p.get(entities_name)
        if explicit is not None:
            if not isinstance(explicit, list) or not all(
                isinstance(e, dict) and {"type", "offset", "length"} <= e.keys() for e in explicit
            ):
                raise _bad(f"can't parse {entities_name} JSON object")
            entities = [dict(e) for e in explicit]
        elif mode:
            parser = _PARSERS.get(str(mode).lower())
            if parser is None:
                raise _bad("unsupported parse_mode")
            try:
                text, entities = parser(text)
            except _ParseError as err:
                raise _bad(f"can't parse entities: {err}") from None
        else:
            entities = []
        text, entities = _strip(text, entities)
        if not text and empty is not None:
            raise _bad(empty)
        if _u16(text) > limit:
            raise _bad(too_long)
        entities.sort(key=lambda e: (e["offset"], -e["length"]))
        return text, entities

    def _reply_target(self, chat: _Chat, p: dict) -> dict | None:
        params = p.get("reply_parameters")
        if params is None and p.get("reply_to_message_id") is not None:
            params = {
                "message_id": p["reply_to_message_id"],
                "allow_sending_without_reply": _bool(p, "allow_sending_without_reply"),
            }
        if params is None:
            return None
        if not isinstance(params, dict) or not isinstance(params.get("message_id"), int):
            raise _bad("can't parse reply parameters JSON object")
        target_chat = chat
        if params.get("chat_id") is not None and params["chat_id"] != chat.id:
            found = self._chats.get(params["chat_id"])
            if found is None:
                raise _bad("chat not found")
            target_chat = found
        target = target_chat.messages.get(params["message_id"])
        if target is None:
            if params.get("allow_sending_without_reply"):
                return None
            raise _bad("message to be replied not found")
        return target

    def _bot_message(self, chat: _Chat, content: dict, markup: dict | None, reply_to: dict | None) -> dict:
        msg: dict[str, Any] = {
            "message_id": chat.next_message_id,
            "date": self._now(),
            "chat": self._chat_json(chat),
            "from": copy.deepcopy(self.bot_user),
        }
        chat.next_message_id += 1
        if reply_to is not None:
            msg["reply_to_message"] = self._replied(reply_to)
        msg.update(content)
        if markup is not None:
            msg["reply_markup"] = markup
        chat.messages[msg["message_id"]] = msg
        self._changed()
        return copy.deepcopy(msg)
