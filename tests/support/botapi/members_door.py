"""Members at the door: profile photos, join requests and their answers.

Test control: ``set_profile_photo`` (a user's new current photo), ``request_join`` (a user asks to
join a group that takes join requests: a ``chat_join_request`` update for the admin bot),
``join_requests`` (those not answered yet). Bot API: ``getUserProfilePhotos`` and
``approveChatJoinRequest`` / ``declineChatJoinRequest``, with the real error texts.
"""

from __future__ import annotations

import copy
from typing import Any

from tests.support.botapi.methods_messages import MessageMethods
from tests.support.botapi.model import FileRef, ScenarioError, _bad, _Member
from tests.support.botapi.params import _opt_int

MAX_PROFILE_PHOTOS_LIMIT = 100


class DoorMethods(MessageMethods):
    """Profile photos and join requests, on top of the message methods."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._profile_photos: dict[int, list[list[dict]]] = {}  # user -> photos, newest first
        self._join_requests: dict[int, dict[int, int]] = {}  # chat -> user -> date asked

    # --- test-control API ----------------------------------------------------------------------

    def set_profile_photo(self, user_id: int, data: bytes | FileRef) -> list[dict]:
        """The user sets a new profile photo (it becomes the current one); returns its sizes."""
        self._user(user_id)
        sizes = self._photo(data)
        self._profile_photos.setdefault(user_id, []).insert(0, sizes)
        self._changed()
        return copy.deepcopy(sizes)

    def request_join(self, chat_id: int, user_id: int) -> None:
        """The user asks to join: queues ``chat_join_request`` (admin bots with can_invite_users get it)."""
        chat = self._chat_or_fail(chat_id)
        self._user(user_id)
        if self._member(chat, user_id).status not in ("left",):
            raise ScenarioError(f"user {user_id} cannot ask to join chat {chat_id}")
        self._join_requests.setdefault(chat_id, {})[user_id] = self._now()
        bot = self._member(chat, self.bot_id)
        if bot.status == "creator" or (bot.status == "administrator" and bot.rights.get("can_invite_users")):
            self._queue(
                "chat_join_request",
                {
                    "chat": self._chat_json(chat),
                    "from": copy.deepcopy(self._users[user_id]),
                    "user_chat_id": user_id,
                    "date": self._now(),
                },
            )
        self._changed()

    def join_requests(self, chat_id: int) -> list[int]:
        """Users whose request to join is waiting for an answer."""
        return sorted(self._join_requests.get(chat_id, {}))

    # --- Bot API methods -------------------------------------------------------------------------

    def _m_getUserProfilePhotos(self, p: dict) -> dict:
        user_id = self._user_param(p)
        offset = _opt_int(p, "offset") or 0
        limit = _opt_int(p, "limit") or MAX_PROFILE_PHOTOS_LIMIT
        if not 1 <= limit <= MAX_PROFILE_PHOTOS_LIMIT or offset < 0:
            raise _bad("limit must be 1..100 and offset 0 or more")
        photos = self._profile_photos.get(user_id, [])
        return {"total_count": len(photos), "photos": copy.deepcopy(photos[offset : offset + limit])}

    def _answer_request(self, p: dict) -> tuple[Any, int]:
        chat = self._readable_chat(p)
        bot = self._member(chat, self.bot_id)
        if not (bot.status == "creator" or (bot.status == "administrator" and bot.rights.get("can_invite_users"))):
            raise _bad("not enough rights to manage join requests")
        user_id = self._user_param(p)
        if self._join_requests.get(chat.id, {}).pop(user_id, None) is None:
            raise _bad("HIDE_REQUESTER_MISSING")
        return chat, user_id

    def _m_approveChatJoinRequest(self, p: dict) -> bool:
        chat, user_id = self._answer_request(p)
        self._set_member(chat, user_id, _Member("member"), by=self.bot_id)
        return True

    def _m_declineChatJoinRequest(self, p: dict) -> bool:
        self._answer_request(p)
        self._changed()
        return True
