"""Test control: users post, edit, react and press buttons; messages age."""

from __future__ import annotations

import copy
import mimetypes
import secrets
from collections.abc import Iterable
from typing import Any

from tests.support.botapi.formatting import _command_entities
from tests.support.botapi.limits import _MEDIA_KEYS, MAX_THUMBNAIL_BYTES, THUMBNAIL_SIDE
from tests.support.botapi.media import _image_size, _probe_video
from tests.support.botapi.model import FileRef, NotPermitted, ScenarioError, _CallbackQuery, _Chat, _Member
from tests.support.botapi.params import _file_json
from tests.support.botapi.world import World


class Posting(World):
    """Test control of what users do: post (photos, documents, stickers, albums, ...), edit, press buttons."""

    # --- test-control API: messages ------------------------------------------------------------

    def _may_post_as(self, chat: _Chat, user_id: int, sender_chat: int) -> None:
        """Who may post as a chat: the group's anonymous admins as the group, a channel's admins as the channel."""
        if sender_chat == chat.id:
            m = self._member(chat, user_id)
            if m.status not in ("creator", "administrator") or not m.is_anonymous:
                raise NotPermitted(f"user {user_id} is not an anonymous admin of chat {chat.id}")
            return
        channel = self._chats.get(sender_chat)
        if channel is None or channel.type != "channel":
            raise ScenarioError(f"no channel {sender_chat}: create it with add_channel() first")
        if chat.type != "supergroup":
            raise NotPermitted("only supergroups let members post as a channel")
        if self._member(channel, user_id).status not in ("creator", "administrator"):
            raise NotPermitted(f"user {user_id} cannot post as channel {sender_chat}: not one of its admins")
        if sender_chat in chat.banned_senders:
            raise NotPermitted(f"channel {sender_chat} is banned in chat {chat.id}")

    def _post(
        self,
        chat_id: int,
        user_id: int,
        kind: str,
        content: dict,
        *,
        reply_to: int | None = None,
        forward_from: int | str | None = None,
        media_group_id: str | None = None,
        caption: str | None = None,
        sender_chat: int | None = None,
        quote_from: tuple[int, int] | None = None,
    ) -> int:
        self._user(user_id)
        chat = self._chats.get(chat_id)
        if chat is None and chat_id == user_id and chat_id > 0:
            # a user writing to the bot opens the private chat (and lets the bot answer)
            chat = self._chats[chat_id] = _Chat(chat_id, "private", None)
            chat.members = {user_id: _Member("member"), self.bot_id: _Member("member")}
            self._started.add(user_id)
        if chat is None:
            raise ScenarioError(f"no chat {chat_id}")
        if chat.migrated_to is not None:
            raise NotPermitted(f"chat {chat_id} became supergroup {chat.migrated_to}: post there")
        self._may_post(chat, user_id, kind)
        if sender_chat is not None:
            self._may_post_as(chat, user_id, sender_chat)
        if caption is not None:
            content["caption"] = caption
            entities = _command_entities(caption)
            if entities:
                content["caption_entities"] = entities
        msg = self._new_message(
            chat,
            user_id,
            content,
            reply_to=reply_to,
            forward_from=forward_from,
            media_group_id=media_group_id,
            sender_chat=sender_chat,
            quote_from=quote_from,
        )
        self._queue_message(chat, msg)
        return msg["message_id"]

    def post_text(
        self,
        chat_id: int,
        user_id: int,
        text: str,
        *,
        reply_to: int | None = None,
        forward_from: int | str | None = None,
        sender_chat: int | None = None,
        quote_from: tuple[int, int] | None = None,
    ) -> int:
        """A text message; commands ("/cmd", "/cmd@bot") get bot_command entities.

        ``quote_from``: (chat id, message id) of a message in another chat this one replies to
        (``external_reply``, with that message's media, as clients show it above the reply)."""
        content: dict[str, Any] = {"text": text}
        entities = _command_entities(text)
        if entities:
            content["entities"] = entities
        return self._post(
            chat_id,
            user_id,
            "text",
            content,
            reply_to=reply_to,
            forward_from=forward_from,
            sender_chat=sender_chat,
            quote_from=quote_from,
        )

    def post_photo(
        self,
        chat_id: int,
        user_id: int,
        data: bytes | FileRef,
        *,
        caption: str | None = None,
        media_group_id: str | None = None,
        forward_from: int | str | None = None,
        reply_to: int | None = None,
        spoiler: bool = False,
        sender_chat: int | None = None,
    ) -> int:
        """A compressed photo: PhotoSize list (downscaled JPEGs, smallest first; the last is ``data``).

        ``forward_from``: a user id, a chat id (negative) or a hidden sender's name.
        Undecodable bytes give one PhotoSize of 0x0 holding them.
        """
        content: dict[str, Any] = {"photo": self._photo(data)}
        if spoiler:
            content["has_media_spoiler"] = True
        return self._post(
            chat_id,
            user_id,
            "photo",
            content,
            caption=caption,
            media_group_id=media_group_id,
            forward_from=forward_from,
            reply_to=reply_to,
            sender_chat=sender_chat,
        )

    def post_album(
        self, chat_id: int, user_id: int, items: Iterable[bytes | FileRef], *, caption: str | None = None
    ) -> list[int]:
        """Several photos sharing a media_group_id (the caption goes on the first)."""
        group = str(secrets.randbits(60))
        ids = []
        for k, item in enumerate(items):
            ids.append(
                self.post_photo(chat_id, user_id, item, caption=caption if k == 0 else None, media_group_id=group)
            )
        return ids

    def post_document(
        self,
        chat_id: int,
        user_id: int,
        data: bytes | FileRef,
        *,
        file_name: str = "file.bin",
        mime: str | None = None,
        caption: str | None = None,
        media_group_id: str | None = None,
        forward_from: int | str | None = None,
        reply_to: int | None = None,
        thumbnail: bytes | None = None,
        sender_chat: int | None = None,
    ) -> int:
        """A file sent uncompressed (images sent this way get a thumbnail, as on Telegram).

        ``thumbnail``: the sender's own thumbnail for any file (an image; Telegram keeps a JPEG of
        at most 320 px a side), shown in the chat in place of a generic file icon."""
        document = self._document(data, file_name, mime)
        if thumbnail is not None:
            document["thumbnail"] = self._custom_thumbnail(thumbnail)
        return self._post(
            chat_id,
            user_id,
            "document",
            {"document": document},
            caption=caption,
            media_group_id=media_group_id,
            forward_from=forward_from,
            reply_to=reply_to,
            sender_chat=sender_chat,
        )

    def post_sticker(
        self,
        chat_id: int,
        user_id: int,
        data: bytes | FileRef,
        *,
        is_video: bool = False,
        is_animated: bool = False,
        emoji: str = "🙂",
        set_name: str | None = None,
        forward_from: int | str | None = None,
        reply_to: int | None = None,
        thumbnail: bytes | None = None,
    ) -> int:
        """``thumbnail``: for an animated (Lottie) sticker, the picture Telegram renders from it."""
        mime = "video/webm" if is_video else "application/x-tgsticker" if is_animated else "image/webp"
        ref = self._ref(data, "sticker", mime=mime)
        raw = self._files[ref.file_id].data
        if is_video:
            probe = _probe_video(raw)
            width, height, frame = (probe[0], probe[1], probe[3]) if probe else (512, 512, None)
        elif is_animated:
            width, height, frame = 512, 512, thumbnail
        else:
            width, height = _image_size(raw) or (512, 512)
            frame = raw
        sticker: dict[str, Any] = _file_json(ref)
        sticker.update(
            type="regular", width=width, height=height, is_animated=is_animated, is_video=is_video, emoji=emoji
        )
        if set_name:
            sticker["set_name"] = set_name
        thumb = self._thumbnail(frame, 128)
        if thumb:
            sticker["thumbnail"] = thumb
        return self._post(
            chat_id, user_id, "sticker", {"sticker": sticker}, forward_from=forward_from, reply_to=reply_to
        )

    def post_animation(
        self,
        chat_id: int,
        user_id: int,
        data: bytes | FileRef,
        *,
        file_name: str = "animation.mp4",
        mime: str | None = None,
        caption: str | None = None,
        width: int | None = None,
        height: int | None = None,
        duration: int | None = None,
        forward_from: int | str | None = None,
        reply_to: int | None = None,
        thumbnail: bytes | None = None,
    ) -> int:
        """A GIF/silent video. Like Telegram, the message also carries it as ``document``.

        (Telegram converts GIFs to MP4; the emulator serves the bytes it was given.)
        """
        mime = mime or mimetypes.guess_type(file_name)[0] or "video/mp4"
        animation = self._video_like(data, "animation", mime, file_name, width, height, duration)
        if thumbnail is not None:
            animation["thumbnail"] = self._custom_thumbnail(thumbnail)
        document = {
            k: v
            for k, v in animation.items()
            if k in ("file_id", "file_unique_id", "file_size", "file_name", "mime_type", "thumbnail")
        }
        return self._post(
            chat_id,
            user_id,
            "animation",
            {"animation": animation, "document": document},
            caption=caption,
            forward_from=forward_from,
            reply_to=reply_to,
        )

    def post_video(
        self,
        chat_id: int,
        user_id: int,
        data: bytes | FileRef,
        *,
        caption: str | None = None,
        media_group_id: str | None = None,
        file_name: str | None = None,
        width: int | None = None,
        height: int | None = None,
        duration: int | None = None,
        forward_from: int | str | None = None,
        reply_to: int | None = None,
        thumbnail: bytes | None = None,
        cover: bytes | None = None,
        sender_chat: int | None = None,
    ) -> int:
        """``thumbnail``: the sender's own thumbnail; ``cover``: the video's cover (Bot API
        ``Video.cover``, a PhotoSize list), shown before the video plays."""
        video = self._video_like(data, "video", "video/mp4", file_name, width, height, duration)
        if thumbnail is not None:
            video["thumbnail"] = self._custom_thumbnail(thumbnail)
        if cover is not None:
            video["cover"] = self._photo(cover)
        return self._post(
            chat_id,
            user_id,
            "video",
            {"video": video},
            caption=caption,
            media_group_id=media_group_id,
            forward_from=forward_from,
            reply_to=reply_to,
            sender_chat=sender_chat,
        )

    def post_audio(
        self,
        chat_id: int,
        user_id: int,
        data: bytes | FileRef,
        *,
        file_name: str = "song.mp3",
        title: str | None = None,
        performer: str | None = None,
        thumbnail: bytes | None = None,
        caption: str | None = None,
    ) -> int:
        """A music file; ``thumbnail`` is its cover art (the album cover clients show)."""
        ref = self._ref(data, "audio", mime="audio/mpeg", file_name=file_name)
        audio: dict[str, Any] = {**_file_json(ref), "duration": 1, "mime_type": "audio/mpeg", "file_name": file_name}
        if title:
            audio["title"] = title
        if performer:
            audio["performer"] = performer
        if thumbnail is not None:
            audio["thumbnail"] = self._custom_thumbnail(thumbnail)
        return self._post(chat_id, user_id, "audio", {"audio": audio}, caption=caption)

    def post_video_note(
        self, chat_id: int, user_id: int, data: bytes | FileRef, *, thumbnail: bytes | None = None
    ) -> int:
        """A round video message (square, no caption); ``thumbnail`` replaces the first frame's."""
        note = self._video_like(data, "video_note", "video/mp4", None, None, None, None)
        note = {
            k: v
            for k, v in note.items()
            if k in ("file_id", "file_unique_id", "file_size", "width", "duration", "thumbnail")
        }
        note["length"] = note.pop("width")
        if thumbnail is not None:
            note["thumbnail"] = self._custom_thumbnail(thumbnail)
        return self._post(chat_id, user_id, "video_note", {"video_note": note})

    def _custom_thumbnail(self, image: bytes) -> dict:
        thumb = self._thumbnail(image, THUMBNAIL_SIDE)
        if thumb is None:
            raise ScenarioError("a thumbnail must be an image Telegram can read")
        if thumb["file_size"] > MAX_THUMBNAIL_BYTES:
            raise ScenarioError(f"a thumbnail must be at most {MAX_THUMBNAIL_BYTES} bytes")
        return thumb

    def edit_media(
        self,
        chat_id: int,
        message_id: int,
        new_data: bytes | FileRef,
        kind: str = "photo",
        *,
        edit_date: int | None = None,
    ) -> None:
        """The sender swaps the media of a message; queues edited_message (if the bot may see it).

        ``edit_date``: when (whole seconds, as Telegram gives it); two edits can share one."""
        chat = self._chat_or_fail(chat_id)
        msg = self._user_message(chat, message_id)
        if not any(k in msg for k in _MEDIA_KEYS):
            raise ScenarioError(f"message {message_id} in chat {chat_id} has no media to replace")
        if kind == "photo":
            content: dict[str, Any] = {"photo": self._photo(new_data)}
        elif kind == "document":
            content = {"document": self._document(new_data, "file.bin", None)}
        elif kind == "video":
            content = {"video": self._video_like(new_data, "video", "video/mp4", None, None, None, None)}
        elif kind == "animation":
            animation = self._video_like(new_data, "animation", "video/mp4", "animation.mp4", None, None, None)
            content = {
                "animation": animation,
                "document": {k: v for k, v in animation.items() if k not in ("width", "height", "duration")},
            }
        else:
            raise ScenarioError(f"edit_media cannot make a {kind!r}; use photo, document, video or animation")
        for key in _MEDIA_KEYS:
            msg.pop(key, None)
        msg.update(content)
        msg["edit_date"] = self._now() if edit_date is None else int(edit_date)
        self._changed()
        self._queue_message(chat, msg, "edited_message")

    def edit_text(self, chat_id: int, message_id: int, text: str) -> None:
        """The sender edits the text (or the caption of a media message); queues edited_message."""
        chat = self._chat_or_fail(chat_id)
        msg = self._user_message(chat, message_id)
        field_name = "caption" if any(k in msg for k in _MEDIA_KEYS) else "text"
        msg[field_name] = text
        entities = _command_entities(text)
        entity_key = "caption_entities" if field_name == "caption" else "entities"
        msg.pop(entity_key, None)
        if entities:
            msg[entity_key] = entities
        msg["edit_date"] = self._now()
        self._changed()
        self._queue_message(chat, msg, "edited_message")

    def _user_message(self, chat: _Chat, message_id: int) -> dict:
        msg = chat.messages.get(message_id)
        if msg is None:
            raise ScenarioError(f"chat {chat.id} has no message {message_id}")
        if msg["from"]["id"] == self.bot_id:
            raise ScenarioError("users cannot edit the bot's messages")
        if chat.migrated_to is not None:
            raise NotPermitted(f"chat {chat.id} became supergroup {chat.migrated_to}")
        return msg

    def press_button(
        self, chat_id: int, message_id: int, user_id: int, callback_data: str, *, check: bool = True
    ) -> str:
        """The user presses an inline button of a bot message; returns the callback query id.

        ``check=False`` lets a test send data no button carries (a forged client).
        """
        chat = self._chat_or_fail(chat_id)
        user = self._user(user_id)
        msg = chat.messages.get(message_id)
        if msg is None:
            raise ScenarioError(f"chat {chat_id} has no message {message_id} (deleted?)")
        if check:
            rows = msg.get("reply_markup", {}).get("inline_keyboard", [])
            if not any(b.get("callback_data") == callback_data for row in rows for b in row):
                raise ScenarioError(f"message {message_id} has no button with callback_data {callback_data!r}")
        if self._member(chat, user_id).status in ("left", "kicked") and chat.type != "private":
            raise NotPermitted(f"user {user_id} is not in chat {chat_id}")
        query_id = str(next(self._query_ids))
        self._queries[query_id] = _CallbackQuery(query_id, user_id, chat_id, message_id, callback_data)
        self._queue(
            "callback_query",
            {
                "id": query_id,
                "from": copy.deepcopy(user),
                "chat_instance": chat.instance,
                "message": copy.deepcopy(msg),
                "data": callback_data,
            },
        )
        return query_id

    def callback_answer(self, query_id: str) -> dict | None:
        """What the bot answered to a callback query (None: not answered yet)."""
        query = self._queries.get(query_id)
        if query is None:
            raise ScenarioError(f"no callback query {query_id!r}")
        return copy.deepcopy(query.answer)

    def age_message(self, chat_id: int, message_id: int, hours: float) -> None:
        """Move a message's date into the past (the 48 h deletion rule)."""
        msg = self._chat_or_fail(chat_id).messages.get(message_id)
        if msg is None:
            raise ScenarioError(f"chat {chat_id} has no message {message_id}")
        msg["date"] -= int(hours * 3600)
