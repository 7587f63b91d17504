"""The Bot API methods about updates, messages, files, buttons and commands."""

from __future__ import annotations

import asyncio
import copy
import mimetypes
import re
from typing import Any

from tests.support.botapi.limits import (
    _CHAT_ACTIONS,
    _COMMAND_SCOPES,
    ALL_UPDATE_TYPES,
    DEFAULT_UPDATES,
    DELETE_WINDOW_S,
    MAX_CAPTION,
    MAX_DOWNLOAD_BYTES,
    MAX_TEXT,
)
from tests.support.botapi.methods_chats import ChatMethods
from tests.support.botapi.model import ApiError, Upload, _bad, _Chat
from tests.support.botapi.params import _bool, _file_json, _inline_markup, _opt_int, _req_int, _scope_key


class MessageMethods(ChatMethods):
    """Bot API methods on updates, messages, files, callback queries and commands."""

    # --- Bot API methods ---------------------------------------------------------------------------

    def _m_getMe(self, p: dict) -> dict:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": not self.privacy_mode,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def _m_logOut(self, p: dict) -> bool:
        return True

    def _m_close(self, p: dict) -> bool:
        return True

    def _m_deleteWebhook(self, p: dict) -> bool:
        if _bool(p, "drop_pending_updates"):
            self._updates.clear()
        return True

    def _m_getWebhookInfo(self, p: dict) -> dict:
        return {"url": "", "has_custom_certificate": False, "pending_update_count": len(self._updates)}

    async def _m_getUpdates(self, p: dict) -> list[dict]:
        offset = _opt_int(p, "offset")
        limit = min(max(_opt_int(p, "limit") or 100, 1), 100)
        timeout = p.get("timeout", 0) or 0
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool):
            raise _bad("invalid timeout specified")
        allowed = p.get("allowed_updates")
        if allowed is not None:
            if not isinstance(allowed, list) or not all(isinstance(a, str) for a in allowed):
                raise _bad("can't parse allowed updates list")
            self._allowed = frozenset(a for a in allowed if a in ALL_UPDATE_TYPES) or DEFAULT_UPDATES
        if offset is not None:
            if offset < 0:
                del self._updates[: max(len(self._updates) + offset, 0)]
            else:
                self._updates = [u for u in self._updates if u[0] >= offset]
            self._changed()
        # a newer getUpdates terminates an older one, as on the real server
        self._wake_poll("conflict")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + float(timeout)
        while not self._updates and not self._stopping:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            fut = loop.create_future()
            self._poll = fut
            try:
                await asyncio.wait({fut}, timeout=remaining)
            finally:
                if self._poll is fut:
                    self._poll = None
            if fut.done() and fut.result() == "conflict":
                raise ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
                )
            if not fut.done():
                fut.cancel()
        return [{"update_id": uid, kind: copy.deepcopy(payload)} for uid, kind, payload in self._updates[:limit]]

    def _m_sendMessage(self, p: dict) -> dict:
        chat = self._writable_chat(p)
        text, entities = self._formatted(
            p, "text", "entities", MAX_TEXT, empty="message text is empty", too_long="message is too long"
        )
        markup = _inline_markup(p.get("reply_markup"))
        reply_to = self._reply_target(chat, p)
        content: dict[str, Any] = {"text": text}
        if entities:
            content["entities"] = entities
        return self._bot_message(chat, content, markup, reply_to)

    def _m_sendDocument(self, p: dict) -> dict:
        chat = self._writable_chat(p)
        document = p.get("document")
        if document is None or document == "":
            raise _bad("there is no document in the request")
        if isinstance(document, Upload):
            if not document.data:
                raise _bad("file must be non-empty")
            name = document.filename or "document"
            mime = document.content_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
            ref = self.upload(document.data, kind="document", mime=mime, file_name=name)
        elif isinstance(document, str) and document in self._files:
            ref = self._files[document].ref
        else:
            raise _bad("wrong file identifier/HTTP URL specified")
        caption, entities = self._formatted(
            p, "caption", "caption_entities", MAX_CAPTION, empty=None, too_long="message caption is too long"
        )
        markup = _inline_markup(p.get("reply_markup"))
        reply_to = self._reply_target(chat, p)
        doc = _file_json(ref)
        doc["file_name"] = ref.file_name or "document"
        doc["mime_type"] = ref.mime or "application/octet-stream"
        content: dict[str, Any] = {"document": doc}
        if caption:
            content["caption"] = caption
        if entities:
            content["caption_entities"] = entities
        return self._bot_message(chat, content, markup, reply_to)

    def _m_editMessageText(self, p: dict) -> dict:
        chat, msg = self._bot_own_message(p)
        if "text" not in msg:
            raise _bad("there is no text in the message to edit")
        text, entities = self._formatted(
            p, "text", "entities", MAX_TEXT, empty="message text is empty", too_long="message is too long"
        )
        markup = _inline_markup(p.get("reply_markup"))
        new = {"text": text, "entities": entities or None, "reply_markup": markup}
        self._apply_edit(msg, new)
        return copy.deepcopy(msg)

    def _m_editMessageReplyMarkup(self, p: dict) -> dict:
        chat, msg = self._bot_own_message(p)
        self._apply_edit(msg, {"reply_markup": _inline_markup(p.get("reply_markup"))})
        return copy.deepcopy(msg)

    def _apply_edit(self, msg: dict, new: dict) -> None:
        # leaving out reply_markup removes the keyboard, as on the real API
        if all(msg.get(k) == v for k, v in new.items()):
            raise _bad(
                "message is not modified: specified new message content and reply markup are exactly "
                "the same as a current content and reply markup of the message"
            )
        for key, value in new.items():
            if value is None:
                msg.pop(key, None)
            else:
                msg[key] = value
        msg["edit_date"] = self._now()
        self._changed()

    def _bot_own_message(self, p: dict) -> tuple[_Chat, dict]:
        if "inline_message_id" in p:
            raise _bad("message to edit not found")
        chat = self._readable_chat(p)
        mid = _req_int(p, "message_id", "message identifier is not specified")
        msg = chat.messages.get(mid)
        if msg is None:
            raise _bad("message to edit not found")
        if msg["from"]["id"] != self.bot_id:
            raise _bad("message can't be edited")
        return chat, msg

    def _m_deleteMessage(self, p: dict) -> bool:
        chat = self._readable_chat(p)
        mid = _req_int(p, "message_id", "message identifier is not specified")
        msg = chat.messages.get(mid)
        if msg is None:
            raise _bad("message to delete not found")
        self._check_deletable(chat, msg)
        self._delete(chat, mid)
        return True

    def _m_deleteMessages(self, p: dict) -> bool:
        chat = self._readable_chat(p)
        ids = p.get("message_ids")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise _bad("message_ids is empty" if not ids else "invalid message_ids specified")
        if len(ids) > 100:
            raise _bad("too many messages to delete")
        present = [i for i in dict.fromkeys(ids) if i in chat.messages]  # missing ones are skipped
        for mid in present:  # all or nothing: check every message before deleting any
            self._check_deletable(chat, chat.messages[mid])
        for mid in present:
            self._delete(chat, mid)
        return True

    def _check_deletable(self, chat: _Chat, msg: dict) -> None:
        if msg["from"]["id"] != self.bot_id and chat.type != "private":
            bot = self._member(chat, self.bot_id)
            if chat.type == "group":
                allowed = bot.status in ("creator", "administrator")
            else:
                allowed = bot.status == "creator" or (
                    bot.status == "administrator" and bot.rights.get("can_delete_messages", False)
                )
            if not allowed:
                raise _bad("message can't be deleted")
        if self._now() - msg["date"] >= DELETE_WINDOW_S:
            raise _bad("message can't be deleted for everyone")

    def _delete(self, chat: _Chat, message_id: int) -> None:
        chat.deleted.append(chat.messages.pop(message_id))
        self._changed()

    def _m_getFile(self, p: dict) -> dict:
        file_id = p.get("file_id")
        if not file_id:
            raise _bad("file_id is empty")
        stored = self._files.get(str(file_id))
        if stored is None:
            raise _bad("invalid file_id")
        if stored.ref.size > MAX_DOWNLOAD_BYTES:
            raise _bad("file is too big")
        ref = stored.ref
        return {
            "file_id": ref.file_id,
            "file_unique_id": ref.file_unique_id,
            "file_size": ref.size,
            "file_path": ref.file_path,
        }

    def _m_answerCallbackQuery(self, p: dict) -> bool:
        query = self._queries.get(str(p.get("callback_query_id", "")))
        if query is None or query.answer is not None:
            raise _bad("query is too old and response timeout expired or query ID is invalid")
        text = p.get("text")
        if text is not None and len(str(text)) > 200:
            raise _bad("MESSAGE_TOO_LONG")
        query.answer = {"text": text, "show_alert": _bool(p, "show_alert"), "url": p.get("url")}
        self._changed()
        return True

    def _m_setMyCommands(self, p: dict) -> bool:
        commands = p.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise _bad("can't parse commands JSON object")
        for command in commands:
            if not isinstance(command, dict):
                raise _bad("can't parse BotCommand")
            if not re.fullmatch(r"[a-z0-9_]{1,32}", str(command.get("command", ""))):
                raise _bad("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", "")).strip()) <= 256:
                raise _bad(
                    "command description is empty"
                    if not command.get("description")
                    else "command description is too long"
                )
        key = (self._scope_param(p), str(p.get("language_code") or ""))
        self._commands[key] = [{"command": c["command"], "description": c["description"]} for c in commands]
        return True

    def _m_getMyCommands(self, p: dict) -> list[dict]:
        return copy.deepcopy(self._commands.get((self._scope_param(p), str(p.get("language_code") or "")), []))

    def _m_deleteMyCommands(self, p: dict) -> bool:
        self._commands.pop((self._scope_param(p), str(p.get("language_code") or "")), None)
        return True

    def _scope_param(self, p: dict) -> str:
        scope = p.get("scope")
        if scope is None:
            return _scope_key(None)
        if not isinstance(scope, dict) or scope.get("type") not in _COMMAND_SCOPES:
            raise _bad("can't parse BotCommandScope")
        if "chat_id" in scope and scope["chat_id"] not in self._chats:
            raise _bad("chat not found")
        return _scope_key(scope)

    def _m_sendChatAction(self, p: dict) -> bool:
        self._writable_chat(p)
        if p.get("action") not in _CHAT_ACTIONS:
            raise _bad("wrong parameter action in request")
        return True
