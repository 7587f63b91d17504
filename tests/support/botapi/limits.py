"""The real Bot API's limits, rights, permissions and update kinds, as the emulator enforces them."""

from __future__ import annotations

from typing import Any

# --- limits of the real Bot API ----------------------------------------------------------

MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024  # getFile refuses larger files
MAX_UPLOAD_BYTES = 50 * 1024 * 1024  # multipart uploads by bots
DELETE_WINDOW_S = 48 * 3600  # messages older than this can't be deleted for everyone
MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64
PHOTO_SIDES = (90, 320, 800, 1280, 2560)  # the sizes Telegram derives from a photo

#: ChatMemberAdministrator rights of a group (the channel-only ones are left out)
ADMIN_RIGHTS = (
    "can_manage_chat",
    "can_delete_messages",
    "can_manage_video_chats",
    "can_restrict_members",
    "can_promote_members",
    "can_change_info",
    "can_invite_users",
    "can_post_stories",
    "can_edit_stories",
    "can_delete_stories",
    "can_pin_messages",
    "can_manage_topics",
)

#: ChatPermissions / ChatMemberRestricted permissions
PERMISSIONS = (
    "can_send_messages",
    "can_send_audios",
    "can_send_documents",
    "can_send_photos",
    "can_send_videos",
    "can_send_video_notes",
    "can_send_voice_notes",
    "can_send_polls",
    "can_send_other_messages",
    "can_add_web_page_previews",
    "can_change_info",
    "can_invite_users",
    "can_pin_messages",
    "can_manage_topics",
    "can_edit_tag",
    "can_react_to_messages",
)
_MEDIA_PERMISSIONS = (
    "can_send_audios",
    "can_send_documents",
    "can_send_photos",
    "can_send_videos",
    "can_send_video_notes",
    "can_send_voice_notes",
)

ALL_UPDATE_TYPES = frozenset(
    {
        "message",
        "edited_message",
        "channel_post",
        "edited_channel_post",
        "business_connection",
        "business_message",
        "edited_business_message",
        "deleted_business_messages",
        "message_reaction",
        "message_reaction_count",
        "inline_query",
        "chosen_inline_result",
        "callback_query",
        "shipping_query",
        "pre_checkout_query",
        "purchased_paid_media",
        "poll",
        "poll_answer",
        "my_chat_member",
        "chat_member",
        "chat_join_request",
        "chat_boost",
        "removed_chat_boost",
    }
)
# Telegram sends these only to a bot that lists them in allowed_updates
_OPT_IN_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
DEFAULT_UPDATES = ALL_UPDATE_TYPES - _OPT_IN_UPDATES

_CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
_COMMAND_SCOPES = frozenset(
    {
        "default",
        "all_private_chats",
        "all_group_chats",
        "all_chat_administrators",
        "chat",
        "chat_administrators",
        "chat_member",
    }
)
_BUTTON_ACTIONS = (
    "callback_data",
    "url",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)
_MEDIA_KEYS = ("photo", "document", "animation", "sticker", "video", "audio", "video_note")
# parameters the Bot API reads as strings: never JSON-decode these from a form
_STRING_PARAMS = frozenset(
    {
        "text",
        "caption",
        "parse_mode",
        "callback_query_id",
        "file_id",
        "action",
        "language_code",
        "custom_title",
        "description",
        "short_description",
        "url",
        "title",
        "name",
        "emoji",
        "secret_token",
        "business_connection_id",
        "message_effect_id",
        "inline_message_id",
        "sticker_set_name",
    }
)
_FILE_ID_PREFIX = {
    "photo": "AgACAgQAAxkBAA",
    "document": "BQACAgQAAxkBAA",
    "sticker": "CAACAgQAAxkBAA",
    "animation": "CgACAgQAAxkBAA",
    "video": "BAACAgQAAxkBAA",
    "thumbnail": "AAMCBAADGQEAA",
    "audio": "CQACAgQAAxkBAA",
    "video_note": "DQACAgQAAxkBAA",
}
_FILE_DIR = {
    "photo": ("photos", ".jpg"),
    "document": ("documents", ""),
    "sticker": ("stickers", ".webp"),
    "animation": ("animations", ".mp4"),
    "video": ("videos", ".mp4"),
    "thumbnail": ("thumbnails", ".jpg"),
    "audio": ("music", ".mp3"),
    "video_note": ("video_notes", ".mp4"),
}
_KIND_PERMISSION = {
    "text": "can_send_messages",
    "photo": "can_send_photos",
    "document": "can_send_documents",
    "video": "can_send_videos",
    "sticker": "can_send_other_messages",
    "animation": "can_send_other_messages",
    "audio": "can_send_audios",
    "video_note": "can_send_video_notes",
}
THUMBNAIL_SIDE = 320  # Telegram's thumbnails are JPEGs of at most 320 px a side
MAX_THUMBNAIL_BYTES = 200 * 1024  # and at most 200 kB
#: the placeholder users Telegram shows as the sender of posts made by a chat
CHANNEL_BOT: dict[str, Any] = {"id": 136817688, "is_bot": True, "first_name": "Channel", "username": "Channel_Bot"}
GROUP_ANONYMOUS_BOT: dict[str, Any] = {
    "id": 1087968824,
    "is_bot": True,
    "first_name": "Group",
    "username": "GroupAnonymousBot",
}
TELEGRAM_SERVICE: dict[str, Any] = {"id": 777000, "is_bot": False, "first_name": "Telegram"}


def full_rights(**overrides: bool) -> dict[str, bool]:
    """Every administrator right switched on, with optional exceptions."""
    rights = {r: True for r in ADMIN_RIGHTS}
    rights.update(overrides)
    return rights
