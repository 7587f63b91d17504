"""Test control: users, groups, members, rights and the bot's own membership."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from tests.support.botapi.chat_params import ChatParams
from tests.support.botapi.formatting import _command_entities
from tests.support.botapi.limits import PERMISSIONS, TELEGRAM_SERVICE, full_rights
from tests.support.botapi.model import FileRef, NotPermitted, ScenarioError, _Chat, _Member
from tests.support.botapi.params import _bot_member, _checked_rights


class World(ChatParams):
    """Test control of who is where: users, groups and channels, members, rights, the bot joining."""

    # --- test-control API: world ---------------------------------------------------------

    def add_user(
        self,
        first_name: str,
        *,
        username: str | None = None,
        language_code: str | None = "en",
        is_bot: bool = False,
        last_name: str | None = None,
    ) -> int:
        user_id = next(self._user_ids)
        user: dict[str, Any] = {"id": user_id, "is_bot": is_bot, "first_name": first_name}
        if last_name:
            user["last_name"] = last_name
        if username:
            user["username"] = username
        if language_code:
            user["language_code"] = language_code
        self._users[user_id] = user
        return user_id

    def add_group(
        self,
        title: str,
        *,
        creator: int,
        admins: Iterable[int] = (),
        members: Iterable[int] = (),
        bot_rights: dict[str, bool] | None = None,
        bot_present: bool = True,
        kind: str = "supergroup",
        username: str | None = None,
        permissions: dict[str, bool] | None = None,
    ) -> int:
        """A group with its members already in it (no updates queued).

        ``bot_rights``: None makes the bot a plain member, a dict an administrator with those
        rights (see ADMIN_RIGHTS, full_rights()). ``bot_present=False``: add it later with
        add_bot_to_group(). ``kind``: "supergroup" (ids -100…) or "group". ``permissions``: the
        members' default ChatPermissions (missing keys False; default: all True).
        """
        if kind not in ("supergroup", "group"):
            raise ScenarioError(f"kind must be 'supergroup' or 'group', not {kind!r}")
        n = next(self._supergroup_ids)
        chat_id = int(f"-100{1_000_000_000 + n}") if kind == "supergroup" else -(4_000_000_000 + n)
        chat = _Chat(chat_id, kind, title, username=username)
        if permissions is not None:
            unknown = set(permissions) - set(PERMISSIONS)
            if unknown:
                raise ScenarioError(f"unknown permissions {sorted(unknown)}; known: {', '.join(PERMISSIONS)}")
            chat.permissions = {p: bool(permissions.get(p, False)) for p in PERMISSIONS}
        self._user(creator)
        chat.members[creator] = _Member("creator")
        for uid in admins:
            self._user(uid)
            chat.members[uid] = _Member("administrator", rights=full_rights())
        for uid in members:
            self._user(uid)
            chat.members.setdefault(uid, _Member("member"))
        if bot_present:
            chat.members[self.bot_id] = _bot_member(bot_rights)
        self._chats[chat_id] = chat
        return chat_id

    def set_bot_rights(self, chat_id: int, rights: dict[str, bool] | None) -> None:
        """The creator promotes (dict) or demotes (None) the bot; queues my_chat_member."""
        chat = self._chat_or_fail(chat_id)
        if self._member(chat, self.bot_id).status in ("left", "kicked"):
            raise ScenarioError(f"the bot is not in chat {chat_id}: use add_bot_to_group()")
        self._set_member(chat, self.bot_id, _bot_member(rights), by=self._creator(chat))

    def promote(self, chat_id: int, user_id: int, rights: dict[str, bool] | None = None) -> None:
        chat = self._chat_or_fail(chat_id)
        if self._member(chat, user_id).status in ("left", "kicked", "creator"):
            raise ScenarioError(f"user {user_id} cannot be promoted in chat {chat_id}")
        self._set_member(
            chat,
            user_id,
            _Member("administrator", rights=_checked_rights(rights or full_rights())),
            by=self._creator(chat),
        )

    def demote(self, chat_id: int, user_id: int) -> None:
        chat = self._chat_or_fail(chat_id)
        if self._member(chat, user_id).status != "administrator":
            raise ScenarioError(f"user {user_id} is not an administrator of chat {chat_id}")
        self._set_member(chat, user_id, _Member("member"), by=self._creator(chat))

    def add_member(self, chat_id: int, user_id: int) -> int:
        """The user joins the group: a new_chat_members service message and a chat_member update."""
        chat = self._chat_or_fail(chat_id)
        self._user(user_id)
        if self._member(chat, user_id).status not in ("left",):
            raise ScenarioError(
                f"user {user_id} cannot join chat {chat_id} (status {self._member(chat, user_id).status})"
            )
        self._set_member(chat, user_id, _Member("member"), by=user_id)
        msg = self._new_message(chat, user_id, {"new_chat_members": [copy.deepcopy(self._users[user_id])]})
        self._queue_message(chat, msg)
        return msg["message_id"]

    def leave(self, chat_id: int, user_id: int) -> int:
        """The user leaves the group: a left_chat_member service message and a chat_member update."""
        chat = self._chat_or_fail(chat_id)
        if self._member(chat, user_id).status in ("left", "kicked"):
            raise ScenarioError(f"user {user_id} is not in chat {chat_id}")
        self._set_member(chat, user_id, _Member("left"), by=user_id)
        msg = self._new_message(chat, user_id, {"left_chat_member": copy.deepcopy(self._users[user_id])})
        self._queue_message(chat, msg)
        return msg["message_id"]

    def add_bot_to_group(self, chat_id: int, by_user: int, rights: dict[str, bool] | None = None) -> None:
        """``by_user`` adds the bot: queues my_chat_member and the new_chat_members service message."""
        chat = self._chat_or_fail(chat_id)
        if self._member(chat, self.bot_id).status not in ("left", "kicked"):
            raise ScenarioError(f"the bot is already in chat {chat_id}")
        adder = self._member(chat, by_user).status
        if adder in ("left", "kicked") or (rights is not None and adder not in ("creator", "administrator")):
            raise NotPermitted(f"user {by_user} cannot add the bot to chat {chat_id} (status {adder})")
        self._set_member(chat, self.bot_id, _bot_member(rights), by=by_user)
        msg = self._new_message(chat, by_user, {"new_chat_members": [copy.deepcopy(self.bot_user)]})
        self._queue_message(chat, msg)

    def remove_bot_from_group(self, chat_id: int, by_user: int) -> None:
        """An admin removes the bot (status kicked); queues my_chat_member."""
        chat = self._chat_or_fail(chat_id)
        self._set_member(chat, self.bot_id, _Member("kicked"), by=by_user)

    def start_private(self, user_id: int) -> int:
        """The user opens a private chat with the bot and sends /start; returns the message id."""
        self._user(user_id)
        chat = self._chats.get(user_id)
        if chat is None:
            chat = self._chats[user_id] = _Chat(user_id, "private", None)
            chat.members = {user_id: _Member("member"), self.bot_id: _Member("member")}
        if user_id in self._blocked:
            self._blocked.discard(user_id)
        self._started.add(user_id)
        msg = self._new_message(chat, user_id, {"text": "/start", "entities": _command_entities("/start")})
        self._queue_message(chat, msg)
        return msg["message_id"]

    def block_bot(self, user_id: int) -> None:
        """The user blocks the bot: later private messages fail with 403; queues my_chat_member."""
        chat = self._chats.get(user_id)
        if chat is None or user_id not in self._started:
            raise ScenarioError(f"user {user_id} never started the bot")
        self._set_member(chat, self.bot_id, _Member("kicked"), by=user_id)
        self._blocked.add(user_id)

    def add_channel(self, title: str, *, owner: int, admins: Iterable[int] = (), username: str | None = None) -> int:
        """A channel (ids -100…); the bot is not in it. Its admins may post as it in supergroups."""
        self._user(owner)
        n = next(self._supergroup_ids)
        chat = _Chat(int(f"-100{1_000_000_000 + n}"), "channel", title, username=username)
        chat.members[owner] = _Member("creator")
        for uid in admins:
            self._user(uid)
            chat.members[uid] = _Member("administrator", rights=full_rights())
        self._chats[chat.id] = chat
        return chat.id

    def link_channel(self, group_id: int, channel_id: int) -> None:
        """Make ``channel_id`` the supergroup's linked channel: its posts are forwarded into the group."""
        group, channel = self._chat_or_fail(group_id), self._chat_or_fail(channel_id)
        if group.type != "supergroup" or channel.type != "channel":
            raise ScenarioError("only a supergroup and a channel can be linked")
        group.linked_chat_id, channel.linked_chat_id = channel.id, group.id

    def set_anonymous(self, chat_id: int, user_id: int, anonymous: bool = True) -> None:
        """An admin turns "remain anonymous" on: their posts come from the group itself."""
        chat = self._chat_or_fail(chat_id)
        m = self._member(chat, user_id)
        if m.status not in ("creator", "administrator"):
            raise ScenarioError(f"user {user_id} is not an admin of chat {chat_id}")
        m.is_anonymous = anonymous

    def post_in_channel(self, channel_id: int, user_id: int, data: bytes | FileRef) -> int | None:
        """An admin posts a photo in a channel; returns the id of its automatic forward in the
        linked group (from the placeholder user 777000, ``is_automatic_forward``), or None."""
        channel = self._chat_or_fail(channel_id)
        if channel.type != "channel" or self._member(channel, user_id).status not in ("creator", "administrator"):
            raise NotPermitted(f"user {user_id} cannot post in channel {channel_id}")
        photo = self._photo(data)
        post: dict[str, Any] = {
            "message_id": channel.next_message_id,
            "date": self._now(),
            "chat": self._chat_json(channel),
            "sender_chat": self._chat_json(channel),
            "photo": photo,
        }
        channel.next_message_id += 1
        channel.messages[post["message_id"]] = post
        group = self._chats.get(channel.linked_chat_id) if channel.linked_chat_id else None
        if group is None:
            return None
        msg = self._new_message(group, TELEGRAM_SERVICE["id"], {"photo": copy.deepcopy(photo)})
        msg["sender_chat"] = self._chat_json(channel)
        msg["is_automatic_forward"] = True
        msg["forward_origin"] = {
            "type": "channel",
            "chat": self._chat_json(channel),
            "message_id": post["message_id"],
            "date": post["date"],
        }
        self._queue_message(group, msg)
        return msg["message_id"]

    def upgrade_group(self, chat_id: int, by_user: int) -> int:
        """The creator upgrades a basic group to a supergroup (a new id, ``-100…``): members and
        rights move; the old group answers every call with the migration error. Queues the two
        service messages Telegram sends: ``migrate_to_chat_id`` in the old group, then
        ``migrate_from_chat_id`` in the new supergroup. Returns the new id."""
        old = self._chat_or_fail(chat_id)
        if old.type != "group" or old.migrated_to is not None:
            raise ScenarioError(f"chat {chat_id} is not a basic group")
        if self._member(old, by_user).status != "creator":
            raise NotPermitted(f"only the creator can upgrade chat {chat_id}")
        n = next(self._supergroup_ids)
        new = _Chat(
            int(f"-100{1_000_000_000 + n}"),
            "supergroup",
            old.title,
            username=old.username,
            members=copy.deepcopy(old.members),
            permissions=dict(old.permissions),
        )
        self._chats[new.id] = new
        gone = self._new_message(old, by_user, {"migrate_to_chat_id": new.id})
        self._queue_message(old, gone)
        old.migrated_to = new.id
        came = self._new_message(new, by_user, {"migrate_from_chat_id": old.id})
        self._queue_message(new, came)
        return new.id
