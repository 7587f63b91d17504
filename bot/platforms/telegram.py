"""The Telegram adapter, on python-telegram-bot's Bot object with Vigil's own polling loop.

PTB's Updater confirms a batch of updates to Telegram before any handler has run, so a crash
at that moment would lose them. Vigil instead records each update's work durably in its store
and only then moves the offset on (which is what confirms the update to Telegram).
"""

from __future__ import annotations

import asyncio
import html
import logging
import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

from telegram import Bot, ChatPermissions, InlineKeyboardButton, InlineKeyboardMarkup, InputFile, Message, Update
from telegram.constants import ChatMemberStatus, ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.request import HTTPXRequest
from telegram.warnings import PTBUserWarning

from bot.config import TelegramConfig
from bot.errors import StoreError
from bot.events import (
    BotAdded,
    ButtonPressed,
    ChatRef,
    CommandIssued,
    MediaPosted,
    MediaRef,
    compose_variant,
    picture_role,
)
from bot.platforms.base import EventSink, OutgoingMessage, Rights
from bot.platforms.errors import (
    MessageGone,
    MessageTooOld,
    MissingRight,
    PlatformError,
    RetryLater,
    Transient,
    Unreachable,
)
from bot.platforms.telegram_media import main_media, pictures_of
from bot.platforms.telegram_members import PostRechecks, TelegramMembers, join_request, joined, member_posted
from bot.platforms.telegram_senders import (
    MAX_MESSAGE_ID,
    SHARED_SENDER_IDS,
    MalformedUpdate,
    checked_id,
    clip,
    sender_of,
    user_of,
)
from bot.store.protocol import Store
from detectors.errors import TooManyBytes

log = logging.getLogger("vigil.telegram")
# Vigil reads getUpdates raw on purpose (to skip one malformed update instead of stalling)
warnings.filterwarnings("ignore", message=".*Bot.getUpdates.*", category=PTBUserWarning)

NAME = "telegram"
ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "my_chat_member", "chat_member", "chat_join_request"]
OFFSET_KEY = "telegram:offset"
MAX_COMMAND_TEXT = 4096  # Telegram's own limit for a message's text
MAX_COMMAND_ARGS = 16  # no command takes more; the rest is ignored
MAX_CALLBACK_DATA = 64  # Telegram's limit for a button's data
# commands that change a group's lists: the updates behind them wait (this long at most) until they are handled
LIST_VERBS = frozenset({"block", "allow"})
LIST_COMMAND_WAIT = 10.0


def _retry_after(exc: RetryAfter) -> float:
    with warnings.catch_warnings():  # PTB warns that the type will become timedelta: both are handled
        warnings.simplefilter("ignore")
        value: Any = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def translate_error(exc: TelegramError, what: str) -> PlatformError | TooManyBytes:
    """PTB's errors, mapped onto the ones the core understands."""
    text = str(exc).lower()
    if isinstance(exc, ChatMigrated):
        return PlatformError(
            f"{what}: the group became a supergroup (new id {exc.new_chat_id}); "
            "Vigil follows it there when Telegram reports the move"
        )
    if isinstance(exc, RetryAfter):
        return RetryLater(_retry_after(exc), what)
    if isinstance(exc, BadRequest):
        if "not found" in text and "message" in text:
            return MessageGone(f"{what}: {exc}")
        if "for everyone" in text:
            return MessageTooOld(f"({what})")
        if "can't be deleted" in text or "not enough rights" in text or "rights" in text:
            return MissingRight("delete messages" if "delet" in what else what, str(exc))
        if "file is too big" in text:
            return TooManyBytes(0, 20 * 1024 * 1024, "the Telegram Bot API serves at most 20 MB to bots")
        if "chat not found" in text or "user not found" in text:
            return Unreachable(f"{what}: {exc}")
        return PlatformError(f"{what}: {exc}")
    if isinstance(exc, Forbidden):
        return (
            Unreachable(f"{what}: {exc}")
            if "user" in text or "initiate" in text or "blocked" in text
            else MissingRight(what, str(exc))
        )
    if isinstance(exc, InvalidToken):
        return PlatformError(f"{what}: the Telegram token was refused; check VIGIL_TELEGRAM_TOKEN")
    if isinstance(exc, (TimedOut, NetworkError)):
        return Transient(f"{what}: {exc}")
    return PlatformError(f"{what}: {exc}")


def media_of(message: Message) -> MediaRef | None:
    """The image or video a message carries itself (thumbnails and covers: ``pictures_of``)."""
    return main_media(message)


def chat_of(c: Any) -> ChatRef:
    return ChatRef(NAME, str(checked_id(c.id, "a chat id")), clip(c.title) or clip(c.full_name))


def parse_command(message: Message, bot_username: str) -> tuple[str, tuple[str, ...]] | None:
    text = (message.text or message.caption or "")[:MAX_COMMAND_TEXT]
    if not text.startswith(("/", "!")):
        return None
    head, *args = text.split()
    args = args[:MAX_COMMAND_ARGS]
    verb = head[1:]
    if "@" in verb:
        verb, _, target = verb.partition("@")
        if bot_username and target.lower() != bot_username.lower():
            return None  # a command for another bot
    return verb.lower(), tuple(args)


class TelegramPlatform(TelegramMembers):
    name = NAME
    shared_sender_ids = SHARED_SENDER_IDS  # never exempted or sanctioned: they stand for many senders

    def __init__(self, config: TelegramConfig, store: Store) -> None:
        self.config = config
        self.store = store
        self.bot = Bot(
            config.token,
            base_url=config.base_url,
            base_file_url=config.base_file_url,
            request=HTTPXRequest(connection_pool_size=32, read_timeout=20, write_timeout=20, connect_timeout=10),
            get_updates_request=HTTPXRequest(connection_pool_size=2, read_timeout=config.poll_timeout + 15),
        )
        self.username = ""
        self.core: EventSink | None = None  # set by start()
        self._poller: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = asyncio.Event()
        self.connected = False
        self._rechecks = PostRechecks()  # members whose profile photo is looked at again when they post

    def _sink(self) -> EventSink:
        if self.core is None:
            raise RuntimeError("telegram: an update arrived before start() was given the core")
        return self.core

    # --- life cycle -------------------------------------------------------------------

    async def start(self, sink: EventSink) -> None:
        self.core = sink
        await self.bot.initialize()  # getMe: fails fast on a wrong token
        self.username = self.bot.username or ""
        await self._call("deleteWebhook", self.bot.delete_webhook())
        self._stopping.clear()
        self._poller = asyncio.create_task(self._poll(), name="vigil-telegram-poll")
        log.info("telegram: polling as @%s", self.username)

    async def start_sending(self, sink: EventSink) -> None:
        """A worker of a cluster (bot/roles.py): deletes, restricts and alerts with the same token,
        and never calls getUpdates (the active ingest process does; a second caller gets 409)."""
        self.core = sink
        await self.bot.initialize()  # getMe: fails fast on a wrong token
        self.username = self.bot.username or ""
        self.connected = True
        log.info("telegram: sending as @%s (updates are read by the ingest process)", self.username)

    async def stop(self) -> None:
        """Stop taking updates; calls out (alerts, deletes) keep working until ``close``."""
        self._stopping.set()
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)
        self.connected = False

    async def close(self) -> None:
        await self.bot.shutdown()

    async def _poll(self) -> None:
        while not self._stopping.is_set():
            try:
                await self._poll_until_error()
            except asyncio.CancelledError:
                raise
            except Exception:  # the store or a bug: never leave the group unwatched
                log.exception("telegram: polling failed; starting again in 5 s")
                self.connected = False
                await asyncio.sleep(5)

    async def _poll_until_error(self) -> None:
        offset = int(await self.store.get_state(OFFSET_KEY) or 0)
        backoff = 1.0
        while not self._stopping.is_set():
            try:
                raw = await self.bot.do_api_request(
                    "getUpdates",
                    api_kwargs={
                        "offset": offset,
                        "timeout": self.config.poll_timeout,
                        "allowed_updates": ALLOWED_UPDATES,
                    },
                    read_timeout=self.config.poll_timeout + 15,
                )
                self.connected, backoff = True, 1.0
            except RetryAfter as exc:
                await asyncio.sleep(_retry_after(exc))
                continue
            except (TimedOut, NetworkError, TelegramError) as exc:
                self.connected = False
                log.warning("telegram: getUpdates failed (%s); retrying in %.0f s", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 60)
                continue
            for item in raw or []:
                update_id = int(item.get("update_id", offset)) if isinstance(item, dict) else offset
                try:
                    update = Update.de_json(item, self.bot)
                except Exception as exc:  # a malformed update must not stall polling
                    log.error("telegram: skipping malformed update %s: %s", update_id, type(exc).__name__)
                    update = None
                if update is not None:
                    try:
                        await self.dispatch(update)
                    except MalformedUpdate as exc:  # a value Telegram never sends: skipped, never retried
                        log.warning("telegram: update %s skipped: %s", update_id, exc)
                    except StoreError as exc:
                        # the work could not be recorded: keep the offset so Telegram sends it again
                        log.error("telegram: update %s not recorded (%s); retrying in %.0f s", update_id, exc, backoff)
                        await asyncio.sleep(backoff)
                        backoff = min(backoff * 2, 60)
                        break
                    except Exception:  # one update that trips a bug must not stop the bot
                        log.exception("telegram: update %s could not be handled; skipped", update_id)
                offset = update_id + 1
                await self.store.set_state(OFFSET_KEY, str(offset))

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("telegram: a command or button handler failed", exc_info=task.exception())

    # --- updates -> events ---------------------------------------------------------------

    async def dispatch(self, update: Update) -> None:
        if update.my_chat_member is not None:
            m = update.my_chat_member
            if m.chat.type in ("group", "supergroup") and m.new_chat_member.status in (
                ChatMemberStatus.ADMINISTRATOR,
                ChatMemberStatus.MEMBER,
            ):
                new = m.new_chat_member
                is_admin = new.status == ChatMemberStatus.ADMINISTRATOR
                self._spawn(
                    self._sink().bot_added(
                        BotAdded(
                            chat_of(m.chat),
                            user_of(m.from_user) if m.from_user else None,
                            can_delete=bool(getattr(new, "can_delete_messages", False)),
                            can_restrict=bool(getattr(new, "can_restrict_members", False)),
                            is_admin=is_admin,
                        )
                    )
                )
            return
        if update.chat_member is not None or update.chat_join_request is not None:
            at_door = update.chat_member or update.chat_join_request
            assert at_door is not None
            member = joined(update, chat_of(at_door.chat)) or join_request(update, chat_of(at_door.chat))
            if member is not None:
                await self._sink().member_joined(member)
            return
        if update.callback_query is not None:
            q = update.callback_query
            chat = chat_of(q.message.chat) if q.message else ChatRef(NAME, str(q.from_user.id))
            self._spawn(
                self._sink().button(
                    ButtonPressed(
                        chat,
                        user_of(q.from_user),
                        (q.data or "")[:MAX_CALLBACK_DATA],
                        q.id,
                        str(q.message.message_id) if q.message else "",
                    )
                )
            )
            return
        message = update.message or update.edited_message
        if message is None or message.chat.type == "channel":
            return
        checked_id(message.message_id, "message_id", low=1, high=MAX_MESSAGE_ID)
        if message.migrate_to_chat_id or message.migrate_from_chat_id:
            await self._migrated(message)
            return
        if sender_of(message) is None:
            return
        private = message.chat.type == "private"
        edited = update.edited_message is not None
        command = parse_command(message, self.username) if message.from_user is not None else None
        if command is not None:
            reply = message.reply_to_message
            if reply is not None and reply.forum_topic_created is not None:
                reply = None  # in a forum topic every message "replies" to the topic's start: not a reply
            reply_posted = self._posted(reply) if reply is not None else []
            handled = self._spawn(
                self._sink().command(
                    CommandIssued(
                        chat=chat_of(message.chat),
                        message_id=str(message.message_id),
                        # a placeholder user (a channel, an anonymous admin) is never an admin: refused
                        sender=user_of(message.from_user),
                        private=private,
                        verb=command[0],
                        args=command[1],
                        reply_to=reply_posted[0] if reply_posted else None,
                        reply_to_id=str(reply.message_id) if reply is not None else None,
                        # the real sender of the replied-to message: never a shared placeholder user
                        reply_sender=sender_of(reply) if reply is not None else None,
                    )
                )
            )
            if command[0] in LIST_VERBS and not private:
                # a copy posted right behind a /block is recorded once the block is (within a bound),
                # so that whichever process judges it applies the new entry first
                await asyncio.wait({handled}, timeout=LIST_COMMAND_WAIT)
            if not pictures_of(message):
                return
        if private:
            # a photo sent to Vigil privately: one to protect, while the member's /protect is open
            posted = [
                p
                for p in self._posted(message, edited=edited, update_id=update.update_id)
                if not picture_role(p.variant)
            ]
            if posted:
                self._spawn(self._sink().private_media(posted[0], command=command[0] if command else None))
            return
        for event in self._posted(message, edited=edited, update_id=update.update_id):
            await self._sink().submit(event)
        sender = sender_of(message)
        # Telegram never tells of a new profile photo: it is looked at again when the member posts
        said = not (message.new_chat_members or message.left_chat_member)  # a service message says nothing
        person = sender if sender is not None and not sender.is_chat and not edited and said else None
        if person is not None and self._rechecks.due(str(message.chat.id), person.user_id):
            again = member_posted(chat_of(message.chat), person, message.date, update.update_id)
            await self._sink().member_joined(again)

    def _posted(self, message: Message, *, edited: bool = False, update_id: int = 0) -> list[MediaPosted]:
        """One event per picture a client shows for the message (its file, thumbnails, covers)."""
        sender = sender_of(message)
        pictures = pictures_of(message)
        if sender is None or not pictures:
            return []
        # an edit is known by its update (a replay brings the same id), not by its edit_date:
        # whole seconds, so two edits in one second would share it and the second go unchecked
        version = f"edit:{update_id}" if edited else ""
        chat = chat_of(message.chat)
        posted_at = message.date.astimezone(UTC)
        return [
            MediaPosted(
                chat=chat,
                message_id=str(message.message_id),
                sender=sender,
                posted_at=posted_at,
                media=picture.media,
                variant=compose_variant(version, picture.role),
                link=None,  # a message link would lead to the image: alerts carry ids instead
            )
            for picture in pictures
        ]

    async def _migrated(self, message: Message) -> None:
        """A basic group became a supergroup: its settings, lists, exemptions and follows move to
        the new id. Both service messages arrive (one in each chat); the move is idempotent."""
        here = checked_id(message.chat.id, "chat.id", high=-1)
        if message.migrate_to_chat_id:
            old, new = here, checked_id(message.migrate_to_chat_id, "migrate_to_chat_id", high=-1)
        else:
            old, new = checked_id(message.migrate_from_chat_id, "migrate_from_chat_id", high=-1), here
        if old == new:
            raise MalformedUpdate(f"a migration from chat {old} to itself")
        moved = await self.store.migrate_group(NAME, str(old), str(new))
        if self.core is not None:
            self.core.forget_admins(ChatRef(NAME, str(old)))
        log.info(
            "telegram: group %s became supergroup %s; %s",
            old,
            new,
            "its settings, lists and exemptions moved" if moved else "nothing left to move",
        )

    # --- calls ---------------------------------------------------------------------------

    async def _call(self, what: str, coro: Any) -> Any:
        try:
            return await coro
        except TelegramError as exc:
            raise translate_error(exc, what) from None

    async def fetch_media(self, event: MediaPosted, max_bytes: int) -> bytes:
        if event.media.size is not None and event.media.size > max_bytes:
            raise TooManyBytes(event.media.size, max_bytes)
        file = await self._call("getFile", self.bot.get_file(event.media.file_id))
        if file.file_size is not None and file.file_size > max_bytes:
            raise TooManyBytes(file.file_size, max_bytes)
        data = await self._call("download", file.download_as_bytearray())
        if len(data) > max_bytes:
            raise TooManyBytes(len(data), max_bytes)
        return bytes(data)

    async def delete(self, chat_id: str, message_id: str) -> None:
        await self._call("delete message", self.bot.delete_message(int(chat_id), int(message_id)))

    async def delete_many(self, chat_id: str, message_ids: list[str]) -> None:
        """Up to 100 messages of one chat in one call; those already gone are skipped by Telegram."""
        if not 0 < len(message_ids) <= 100:
            raise PlatformError(f"delete messages: {len(message_ids)} ids; Telegram takes 1 to 100 a call")
        await self._call("delete messages", self.bot.delete_messages(int(chat_id), [int(m) for m in message_ids]))

    @staticmethod
    def _a_person(user_id: str, what: str) -> int:
        """A person's id: a chat that posted as itself cannot be muted, and a placeholder user
        stands for every channel and anonymous admin at once."""
        if user_id.startswith("-") or user_id in SHARED_SENDER_IDS:
            raise PlatformError(
                f"{what}: {user_id} is a chat posting as itself or a placeholder shared by such "
                "chats; Telegram cannot restrict it (Vigil bans a channel instead)"
            )
        return int(user_id)

    async def restrict(self, chat_id: str, user_id: str, until: datetime) -> None:
        self._a_person(user_id, "restrict members")
        await self._call(
            "restrict members",
            self.bot.restrict_chat_member(
                int(chat_id), int(user_id), ChatPermissions.no_permissions(), until_date=until
            ),
        )

    async def unrestrict(self, chat_id: str, user_id: str) -> None:
        self._a_person(user_id, "restrict members")
        chat = await self._call("getChat", self.bot.get_chat(int(chat_id)))
        permissions = chat.permissions or ChatPermissions.all_permissions()
        await self._call("restrict members", self.bot.restrict_chat_member(int(chat_id), int(user_id), permissions))

    async def ban(self, chat_id: str, user_id: str) -> None:
        if user_id == chat_id:
            raise PlatformError(
                "ban members: the sender is an anonymous admin, posting as the group itself; "
                "a group cannot be banned from itself (ask the admins who it was)"
            )
        if user_id.startswith("-"):  # a channel posting as itself: ban the chat, never its placeholder user
            await self._call("ban members", self.bot.ban_chat_sender_chat(int(chat_id), int(user_id)))
            return
        await self._call("ban members", self.bot.ban_chat_member(int(chat_id), self._a_person(user_id, "ban members")))

    def _markup(self, message: OutgoingMessage) -> InlineKeyboardMarkup | None:
        if not message.buttons:
            return None
        return InlineKeyboardMarkup(
            [[InlineKeyboardButton(b.label, callback_data=b.data) for b in row] for row in message.buttons]
        )

    async def _send(self, chat_id: str, message: OutgoingMessage) -> str:
        sent = await self._call(
            "send message",
            self.bot.send_message(
                int(chat_id),
                message.html if message.html is not None else html.escape(message.text),
                parse_mode=ParseMode.HTML,
                reply_markup=self._markup(message),
                disable_web_page_preview=True,
            ),
        )
        return str(sent.message_id)

    async def send_private(self, user_id: str, message: OutgoingMessage) -> str:
        try:
            return await self._send(user_id, message)
        except MissingRight as exc:  # Forbidden for a user means: never started, or blocked the bot
            raise Unreachable(str(exc)) from None

    async def send_chat(self, chat_id: str, message: OutgoingMessage) -> str:
        return await self._send(chat_id, message)

    async def send_file(self, user_id: str, filename: str, data: bytes, caption: str) -> None:
        try:
            await self._call(
                "send document",
                self.bot.send_document(int(user_id), InputFile(data, filename=filename), caption=caption),
            )
        except MissingRight as exc:
            raise Unreachable(str(exc)) from None

    async def admins(self, chat_id: str) -> frozenset[str]:
        members = await self._call("getChatAdministrators", self.bot.get_chat_administrators(int(chat_id)))
        return frozenset(str(m.user.id) for m in members if not m.user.is_bot)

    async def is_member(self, chat_id: str, user_id: str) -> bool:
        """Whether the user belongs to the group now: its owner, an admin, a member, or a restricted
        member (muted but still in it). Left, banned or never there: False."""
        try:
            m = await self.bot.get_chat_member(int(chat_id), int(user_id))
        except BadRequest as exc:
            text = str(exc).lower()
            if "user not found" in text or "participant" in text or "member not found" in text:
                return False  # Telegram has never seen this user in the group
            raise translate_error(exc, "getChatMember") from None
        except TelegramError as exc:
            raise translate_error(exc, "getChatMember") from None
        if m.status in (ChatMemberStatus.OWNER, ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.MEMBER):
            return True
        return m.status == ChatMemberStatus.RESTRICTED and bool(getattr(m, "is_member", False))

    async def owner(self, chat_id: str) -> str | None:
        members = await self._call("getChatAdministrators", self.bot.get_chat_administrators(int(chat_id)))
        return next((str(m.user.id) for m in members if m.status == ChatMemberStatus.OWNER), None)

    async def rights(self, chat_id: str) -> Rights:
        me = await self._call("getChatMember", self.bot.get_chat_member(int(chat_id), self.bot.id))
        is_admin = me.status == ChatMemberStatus.ADMINISTRATOR
        return Rights(
            is_admin, bool(getattr(me, "can_delete_messages", False)), bool(getattr(me, "can_restrict_members", False))
        )

    async def answer(self, press: ButtonPressed, text: str) -> None:
        try:
            await self._call("answer button", self.bot.answer_callback_query(press.callback_id, text=text[:200]))
        except PlatformError as exc:
            log.warning("telegram: answering a button failed: %s", exc)
        if len(text) > 200:
            await self.send_private(press.sender.user_id, OutgoingMessage(text))

    async def chat_id_of(self, username: str) -> str | None:
        """A public group's id from its @name (a report by its t.me/NAME/… link); None if it is no group."""
        chat = await self._call("getChat", self.bot.get_chat("@" + username))
        if chat.type not in ("group", "supergroup"):
            return None
        return str(checked_id(chat.id, "a chat id"))
