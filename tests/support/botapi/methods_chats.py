"""The Bot API methods about chats and members: getChat, members, restrict, ban, leave."""

from __future__ import annotations

from tests.support.botapi.inspection import Inspection
from tests.support.botapi.limits import _MEDIA_PERMISSIONS, PERMISSIONS
from tests.support.botapi.model import _bad, _Chat, _Member
from tests.support.botapi.params import _bool, _counts


class ChatMethods(Inspection):
    """Bot API methods on chats and their members."""

    def _m_getChat(self, p: dict) -> dict:
        chat = self._readable_chat(p)
        out = self._chat_json(chat)
        out.update(
            accent_color_id=0,
            max_reaction_count=11,
            accepted_gift_types={
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        )
        if chat.type != "private":
            out["permissions"] = dict(chat.permissions)
        if chat.linked_chat_id is not None:
            out["linked_chat_id"] = chat.linked_chat_id
        return out

    def _m_getChatAdministrators(self, p: dict) -> list[dict]:
        chat = self._readable_chat(p)
        if chat.type == "private":
            raise _bad("there are no administrators in the private chat")
        return [
            self._member_json(chat, uid)
            for uid in list(chat.members)
            if self._member(chat, uid).status in ("creator", "administrator")
        ]

    def _m_getChatMember(self, p: dict) -> dict:
        chat = self._readable_chat(p)
        user_id = self._user_param(p)
        return self._member_json(chat, user_id)

    def _m_getChatMemberCount(self, p: dict) -> int:
        chat = self._readable_chat(p)
        return sum(1 for uid in list(chat.members) if _counts(self._member(chat, uid)))

    def _m_restrictChatMember(self, p: dict) -> bool:
        chat = self._readable_chat(p)
        if chat.type != "supergroup":
            raise _bad("method is available only for supergroups")
        self._need_restrict_right(chat)
        user_id = self._user_param(p)
        self._protect_admins(chat, user_id, "can't restrict self")
        raw = p.get("permissions")
        if not isinstance(raw, dict):
            raise _bad("can't parse permissions JSON object" if raw is not None else "permissions is empty")
        perms = {k: bool(raw.get(k, False)) for k in PERMISSIONS}
        if not _bool(p, "use_independent_chat_permissions"):
            if perms["can_send_other_messages"] or perms["can_add_web_page_previews"]:
                perms.update({k: True for k in (*_MEDIA_PERMISSIONS, "can_send_messages")})
            if perms["can_send_polls"]:
                perms["can_send_messages"] = True
        until = self._until(p)
        current = self._member(chat, user_id)
        if perms == chat.permissions:
            new = _Member("member") if current.status != "left" else _Member("left")
        else:
            new = _Member(
                "restricted", permissions=perms, until_date=until, is_member=current.status not in ("left", "kicked")
            )
        self._set_member(chat, user_id, new, by=self.bot_id)
        return True

    def _m_banChatMember(self, p: dict) -> bool:
        chat = self._readable_chat(p)
        if chat.type == "private":
            raise _bad("chat member status can't be changed in private chats")
        self._need_restrict_right(chat)
        user_id = self._user_param(p)
        self._protect_admins(chat, user_id, "can't remove self")
        until = self._until(p) if chat.type == "supergroup" else 0  # bans in basic groups are forever
        self._set_member(chat, user_id, _Member("kicked", until_date=until), by=self.bot_id)
        return True

    def _m_unbanChatMember(self, p: dict) -> bool:
        chat = self._readable_chat(p)
        if chat.type == "private":
            raise _bad("chat member status can't be changed in private chats")
        self._need_restrict_right(chat)
        user_id = self._user_param(p)
        status = self._member(chat, user_id).status
        if status == "kicked":
            self._set_member(chat, user_id, _Member("left"), by=self.bot_id)
        elif status in ("member", "restricted") and not _bool(p, "only_if_banned"):
            # without only_if_banned, unban guarantees the user is out of the chat afterwards
            self._protect_admins(chat, user_id, "can't remove self")
            self._set_member(chat, user_id, _Member("left"), by=self.bot_id)
        elif status in ("creator", "administrator") and not _bool(p, "only_if_banned"):
            self._protect_admins(chat, user_id, "can't remove self")
        return True

    def _m_banChatSenderChat(self, p: dict) -> bool:
        chat, sender = self._sender_chat_param(p)
        chat.banned_senders.add(sender)
        return True

    def _m_unbanChatSenderChat(self, p: dict) -> bool:
        chat, sender = self._sender_chat_param(p)
        chat.banned_senders.discard(sender)
        return True

    def _sender_chat_param(self, p: dict) -> tuple[_Chat, int]:
        chat = self._readable_chat(p)
        if chat.type != "supergroup":
            raise _bad("method is available only for supergroups and channel")
        self._need_restrict_right(chat)
        sender = p.get("sender_chat_id")
        if sender is None or sender == "":
            raise _bad("sender_chat_id is empty")
        if not isinstance(sender, int) or isinstance(sender, bool) or sender >= 0:
            raise _bad("invalid sender_chat_id specified")  # a user is banned with banChatMember
        if sender == chat.id:
            raise _bad("can't ban self")
        if sender not in self._chats:
            raise _bad("chat not found")
        return chat, sender

    def _need_restrict_right(self, chat: _Chat) -> None:
        bot = self._member(chat, self.bot_id)
        ok = bot.status == "creator" or (
            bot.status == "administrator" and (chat.type == "group" or bot.rights.get("can_restrict_members"))
        )
        if not ok:
            raise _bad("not enough rights to restrict/unrestrict chat member")

    def _protect_admins(self, chat: _Chat, user_id: int, self_message: str) -> None:
        if user_id == self.bot_id:
            raise _bad(self_message)
        status = self._member(chat, user_id).status
        if status == "creator":
            raise _bad("can't remove chat owner")
        if status == "administrator":
            raise _bad("user is an administrator of the chat")

    def _until(self, p: dict) -> int:
        until = p.get("until_date")
        if until is None or until == 0:
            return 0
        if not isinstance(until, int) or isinstance(until, bool):
            raise _bad("invalid until_date specified")
        if until < self._now():
            # the real API silently treats a past until_date as "forever"; Vigil must never send one
            raise _bad("until_date is in the past")
        return until

    def _m_leaveChat(self, p: dict) -> bool:
        chat = self._readable_chat(p)
        if chat.type == "private":
            raise _bad("chat not found")
        self._set_member(chat, self.bot_id, _Member("left"), by=self.bot_id)
        return True
