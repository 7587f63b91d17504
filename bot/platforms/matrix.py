"""The Matrix adapter, on matrix-nio with end-to-end encryption, and Vigil's own sync loop.

Nothing lost: each sync's media events are handed to the core (``core.submit`` returns once the
work is recorded in the store) before the sync token is saved in the store, so a crash replays
that sync instead of skipping it. The device, its keys and the session stay in
``<data_dir>/matrix``, so a restart is the same device with the same keys.

What Matrix lacks and how Vigil makes up for it:
- no timed mute: a mute lowers the member's power level below what posting needs; Vigil records
  it (``mutes.json``) and restores the earlier level when the time runs out (checked every
  ``mute_check_interval`` seconds, and at start) or when an admin presses Unmute;
- no buttons: an alert lists its choices with a number emoji (react with it) and the command
  ``!vigil <data>`` (type it); either becomes a ButtonPressed;
- a redaction leaves the uploaded file on the homeserver: with a Synapse admin token Vigil
  quarantines it; without one, ``media_left`` tells the core, whose alert names the media for
  the homeserver's admin.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Awaitable
from urllib.parse import quote

import aiohttp
from nio import AsyncClient, EncryptionError, Event, InviteMemberEvent, MegolmEvent, RoomSendResponse

from bot.config import MatrixConfig
from bot.events import BotAdded, ButtonPressed, ChatRef, CommandIssued, MediaPosted, UserRef
from bot.platforms.base import OutgoingMessage, Rights
from bot.platforms.errors import MediaTooLarge, MessageGone, MissingRight, PlatformError, RetryLater, Transient
from bot.platforms.matrix_errors import call, check
from bot.platforms.matrix_direct import DirectRooms, RawApi
from bot.platforms.matrix_events import (
    Typed,
    mxcs_of,
    parse_command,
    plain_body,
    posted_media,
    reaction,
    relation,
    render,
    reply_target,
    same_key,
)
from bot.platforms.matrix_media import MediaFetcher, decrypt
from bot.platforms.matrix_power import RoomPower, room_power
from bot.platforms.matrix_session import log_in, new_client
from bot.platforms.matrix_state import Mute, MuteBook, PendingEncrypted

log = logging.getLogger("vigil.matrix")

NAME = "matrix"
SYNC_KEY = "matrix:sync_token"
BUTTONS_KEY = "matrix:buttons:"
REDACT_REASON = "Removed by Vigil (image moderation)"
BAN_REASON = "Banned by Vigil (image moderation)"
UNDECRYPTABLE_FOR = 24 * 3600  # seconds an encrypted event is retried before Vigil gives up on it


def sync_filter(me: str) -> dict:
    """What Vigil reads: every room's timeline (but its own events, which only cost it a sync each),
    full member lists, and no presence, typing or receipts."""
    return {
        "presence": {"not_types": ["*"]},
        "room": {
            "timeline": {"limit": 100, "not_senders": [me]},  # a gap beyond the limit is filled from /messages
            "ephemeral": {"not_types": ["*"]},
            "state": {"lazy_load_members": False},
        },
    }


CACHE = 5000  # events remembered for replies, edits and redactions
OFFER_DELAY = 60.0  # seconds the choice reactions may wait behind images still being checked

class _SubmitFailed(Exception):
    """The core could not record an event: the sync is retried and its token not saved."""


class _Lru(OrderedDict):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def put(self, key: Any, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


@dataclass
class _Related:
    """What a redaction of one message must also cover: its edits and every file they showed."""

    sender: str = ""
    edits: list[str] = field(default_factory=list)
    mxcs: list[str] = field(default_factory=list)
    complete: bool = False  # the original message itself was seen (not only an edit of it)


class MatrixPlatform:
    name = NAME

    def __init__(self, config: MatrixConfig, store: Any, directory: Path) -> None:
        # nio logs every room event at INFO, and normal key exchange ("missing session") as warnings
        logging.getLogger("nio").setLevel(max(logging.WARNING, logging.getLogger("nio").level))
        logging.getLogger("nio.crypto").setLevel(max(logging.ERROR, logging.getLogger("nio.crypto").level))
        self.config = config
        self.store = store
        self.directory = Path(directory)
        self.client: AsyncClient = new_client(config, self.directory)
        self.http: aiohttp.ClientSession | None = None
        self.media: MediaFetcher | None = None
        self.username = config.user_id
        self.core: Any = None
        self.connected = False
        self.offer_reactions = True  # react with each choice's key first, so one tap chooses
        self.mutes = MuteBook(self.directory)
        self.pending = PendingEncrypted(self.directory)
        # when each media event reached Vigil (its sync returned) and when it was redacted, by event id
        self.timings: _Lru = _Lru(20_000)
        self._undecrypted: dict[str, MegolmEvent] = {}
        self._posted: _Lru = _Lru(CACHE)  # (room, message id) -> MediaPosted (latest version)
        self._related: _Lru = _Lru(CACHE)  # (room, message id) -> _Related
        self._buttons: _Lru = _Lru(CACHE)  # event id -> {reaction key: button data}
        self._unquarantined: _Lru = _Lru(CACHE)  # message id -> media still on the server
        self._rights: dict[str, Rights] = {}
        # each room's power rules, dropped when the sync shows any state event there (levels,
        # members, creators) and after Vigil's own changes: as fresh as the sync itself
        self._powers: dict[str, RoomPower] = {}
        self._power_gen: dict[str, int] = {}  # bumped on each change, so a read in flight is not kept
        self._reachable: set[str] = set()
        self._contacts_known: set[str] = set()
        self._joining: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = asyncio.Event()
        self._ready = asyncio.Event()  # set once the first sync told nio which rooms Vigil is in
        self.raw = RawApi(config.homeserver, lambda: self.http, lambda: self.client.access_token)
        self.direct = DirectRooms(self.client, self.raw, config.user_id, self._ready)
        self._syncer: asyncio.Task[None] | None = None
        self._filter = sync_filter(config.user_id)
        self._lifter: asyncio.Task[None] | None = None
        self._offers: asyncio.Queue[tuple[str, str, list[str]]] = asyncio.Queue()
        self._offerer: asyncio.Task[None] | None = None

    @property
    def me(self) -> str:
        return self.config.user_id

    # --- life cycle ----------------------------------------------------------------------

    async def start(self, core: Any) -> None:
        self.core = core
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120, sock_connect=15))
        self.media = MediaFetcher(self.http, self.config.homeserver)
        await log_in(self.client, self.config, self.directory)
        await self.direct.load()
        self._stopping.clear()
        self._syncer = asyncio.create_task(self._sync_loop(), name="vigil-matrix-sync")
        self._lifter = asyncio.create_task(self._lift_mutes(), name="vigil-matrix-mutes")
        self._offerer = asyncio.create_task(self._offer_reactions(), name="vigil-matrix-reactions")
        log.info("matrix: syncing as %s (device %s)", self.me, self.client.device_id)

    async def stop(self) -> None:
        """Stop taking events; calls out (alerts, redactions) keep working until ``close``."""
        self._stopping.set()
        if self._syncer is not None:
            self._syncer.cancel()
            await asyncio.gather(self._syncer, return_exceptions=True)
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)
        self.connected = False

    async def close(self) -> None:
        for task in (self._lifter, self._offerer):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await self.client.close()
        if self.http is not None:
            await self.http.close()

    def _spawn(self, coro: Awaitable[Any], what: str) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._done(t, what))

    def _done(self, task: asyncio.Task[Any], what: str) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("matrix: %s failed", what, exc_info=task.exception())

    # --- the sync loop ---------------------------------------------------------------------

    async def _sync_loop(self) -> None:
        token: str | None = None
        loaded, first, backoff = False, True, 1.0
        while not self._stopping.is_set():
            try:
                if not loaded:
                    token, loaded = await self.store.get_state(SYNC_KEY), True
                token, first = await self._sync_once(token, first)
                backoff = 1.0
            except asyncio.CancelledError:
                raise
            except RetryLater as exc:
                await asyncio.sleep(exc.retry_after)
            except Exception as exc:  # whatever fails, the loop goes on from the last saved token
                self.connected = False
                if isinstance(exc, _SubmitFailed):
                    log.error("matrix: could not record this sync's events (%s); reading them again in %.0f s", exc.__cause__, backoff)
                elif isinstance(exc, PlatformError):
                    log.warning("matrix: sync failed (%s); retrying in %.0f s", exc, backoff)
                else:
                    log.exception("matrix: the sync loop failed; retrying in %.0f s", backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 60)

    async def _sync_once(self, token: str | None, first: bool) -> tuple[str | None, bool]:
        """One sync: hand its events over, then (only then) save its token. Returns the new token."""
        response = await call(
            "sync",
            self.client.sync(
                timeout=self.config.sync_timeout * 1000, since=token, full_state=True if first else None, sync_filter=self._filter
            ),
        )
        arrived = time.perf_counter()
        self.connected = True
        self._ready.set()  # nio has read the rooms' state: direct rooms can be looked up
        # _SubmitFailed leaves the token as it was: the same events come again (the store's work is idempotent)
        await self._handle_sync(response, token, arrived)
        await self.store.set_state(SYNC_KEY, response.next_batch)
        await self._keys_maintenance()
        return response.next_batch, False

    async def _keys_maintenance(self) -> None:
        """What matrix-nio's sync_forever does between syncs: keep the device's encryption going."""
        client = self.client
        steps = []
        if client.outgoing_to_device_messages:
            steps.append(("send to-device messages", client.send_to_device_messages))
        if client.should_upload_keys:
            steps.append(("upload keys", client.keys_upload))
        if client.should_query_keys:
            steps.append(("query device keys", client.keys_query))
        if client.should_claim_keys:
            steps.append(("claim keys", lambda: client.keys_claim(client.get_users_for_key_claiming())))
        for what, step in steps:
            try:
                await step()
            except Exception as exc:  # encryption upkeep must never stop the sync
                log.warning("matrix: %s failed: %s", what, exc)

    async def _handle_sync(self, response: Any, since: str | None, arrived: float) -> None:
        for room_id, info in response.rooms.invite.items():
            if room_id not in self._joining:
                self._joining.add(room_id)
                self._spawn(self._on_invite(room_id, info.invite_state), f"joining {room_id}")
        for room_id in response.rooms.leave:
            self._forget_room(room_id)
        for room_id, info in response.rooms.join.items():
            if info.state:
                self._invalidate(room_id)
            events = list(info.timeline.events)
            if info.timeline.limited and since:
                events = await self._backfill(room_id, info.timeline.prev_batch, since) + events
            for event in events:
                await self._on_timeline_event(room_id, event, arrived)
        await self._retry_undecrypted(arrived)

    async def _backfill(self, room_id: str, prev_batch: str | None, since: str) -> list[Event]:
        """Events a limited sync left out (more than the filter's limit since the last sync), oldest first."""
        gathered: list[Event] = []
        start = prev_batch
        for _ in range(50):
            if not start:
                break
            try:
                page = await call("read missed events", self.client.room_messages(room_id, start=start, end=since, limit=100))
            except PlatformError as exc:
                log.error("matrix: room %s: could not read the events missed while away: %s", room_id, exc)
                break
            gathered.extend(page.chunk)
            if not page.chunk or not page.end or page.end == start:
                break
            start = page.end
        gathered.reverse()
        if gathered:
            log.info("matrix: room %s: read %d events the sync left out", room_id, len(gathered))
        return gathered

    # --- events ----------------------------------------------------------------------------

    def _decrypted(self, room_id: str, event: Any) -> Any | None:
        """The event, decrypted when it was encrypted; None (and kept for later) when its key is missing."""
        if not isinstance(event, MegolmEvent):
            return event
        event.room_id = room_id
        try:
            return self.client.decrypt_event(event)
        except EncryptionError:
            self._undecrypted[event.event_id] = event
            self.pending.add(event.event_id, room_id, time.time())
            log.info("matrix: room %s: event %s waits for its room key", room_id, event.event_id)
            return None

    async def _retry_undecrypted(self, arrived: float) -> None:
        if not self.pending.items:
            return
        done, now = [], time.time()
        for event_id, (room_id, first_seen) in list(self.pending.items.items()):
            event = self._undecrypted.get(event_id)
            if event is None:  # after a restart: fetch it again
                try:
                    got = await call("fetch event", self.client.room_get_event(room_id, event_id))
                    event = got.event
                except PlatformError as exc:
                    log.warning("matrix: could not fetch undecrypted event %s: %s", event_id, exc)
                    done.append(event_id)
                    continue
            if not isinstance(event, MegolmEvent):  # room_get_event decrypted it
                done.append(event_id)
                await self._on_timeline_event(room_id, event, arrived)
                continue
            event.room_id = room_id
            try:
                clear = self.client.decrypt_event(event)
            except EncryptionError:
                self._undecrypted[event_id] = event
                if now - first_seen > UNDECRYPTABLE_FOR:
                    log.error("matrix: room %s: gave up on event %s: its room key never arrived", room_id, event_id)
                    done.append(event_id)
                continue
            done.append(event_id)
            await self._on_timeline_event(room_id, clear, arrived)
        for e in done:
            self._undecrypted.pop(e, None)
        self.pending.remove(done)

    async def _on_timeline_event(self, room_id: str, event: Any, arrived: float) -> None:
        """One event; a failing handler is logged and the sync goes on (except recording media)."""
        try:
            clear = self._decrypted(room_id, event)
            if clear is None:
                return
            source = getattr(clear, "source", None)
            if isinstance(source, dict):
                await self._dispatch(room_id, source, arrived)
        except _SubmitFailed:
            raise
        except Exception:
            log.exception("matrix: room %s: handling event %s failed", room_id, getattr(event, "event_id", "?"))

    async def _dispatch(self, room_id: str, source: dict, arrived: float) -> None:
        if "state_key" in source:  # before anything reads it: a demoted moderator loses control at once
            self._invalidate(room_id)
        sender = source.get("sender")
        if not isinstance(sender, str) or sender == self.me:
            return
        if (source.get("unsigned") or {}).get("redacted_because"):
            return
        kind = source.get("type")
        content = source.get("content") if isinstance(source.get("content"), dict) else {}
        if kind == "m.reaction":
            self._spawn(self._on_reaction(room_id, source), "a reaction")
            return
        if kind == "m.room.power_levels" and source.get("state_key") == "":
            self._spawn(self._on_power_change(room_id, sender), "a power level change")
            return
        if kind not in ("m.room.message", "m.sticker"):
            return
        private = room_id in self.direct.user_of
        if private and sender not in self._reachable:
            self._reachable.add(sender)  # any message in the direct room makes the person reachable
            self._spawn(self.core.private_started(self._user(room_id, sender)), "marking a contact reachable")
        # commands are typed text; notices are what bots write, and answering them could loop
        if kind == "m.room.message" and content.get("msgtype") == "m.text" and relation(content)[0] != "m.replace":
            typed = parse_command(plain_body(content), private=private)
            if typed is not None:
                self._spawn(self._on_command(room_id, source, typed, private), "a command")
                return
        if private:
            # an image in a direct room is a member's photo to protect (when a /protect session is open)
            found = posted_media(source)
            if found is not None:
                event = MediaPosted(
                    chat=self._chat(room_id), message_id=found.event_id, sender=self._user(room_id, found.sender),
                    posted_at=found.posted_at, media=found.media,
                )
                self._spawn(self.core.private_media(event), "a photo sent privately")
            return
        await self._on_media(room_id, source, arrived)

    async def _on_media(self, room_id: str, source: dict, arrived: float) -> None:
        found = posted_media(source)
        if found is None:
            return
        message_id, variant = found.message_id, found.variant
        related = self._related.get((room_id, message_id))
        if variant and related is not None and related.sender and related.sender != found.sender:
            # clients ignore an "edit" by someone else; it is still a message showing an image
            message_id, variant = found.event_id, ""
            related = None
        if related is None:
            related = _Related(sender=found.sender)
            self._related.put((room_id, message_id), related)
        if variant:
            related.edits.append(found.event_id)
        else:
            related.complete = True
        for mxc in mxcs_of(source):
            if mxc not in related.mxcs:
                related.mxcs.append(mxc)
        event = MediaPosted(
            chat=self._chat(room_id),
            message_id=message_id,
            sender=self._user(room_id, found.sender),
            posted_at=found.posted_at,
            media=found.media,
            variant=variant,
            link=None,  # a link would lead to the image: alerts carry ids instead
        )
        self._posted.put((room_id, message_id), event)
        if message_id not in self.timings:
            self.timings.put(message_id, [arrived, None])
        try:
            await self.core.submit(event)
        except Exception as exc:
            raise _SubmitFailed(str(exc)) from exc

    def _chat(self, room_id: str) -> ChatRef:
        room = self.client.rooms.get(room_id)
        return ChatRef(NAME, room_id, room.display_name if room is not None else "")

    def _user(self, room_id: str, user_id: str) -> UserRef:
        room = self.client.rooms.get(room_id)
        name = ""
        if room is not None and user_id in room.users:
            name = room.users[user_id].display_name or ""
        return UserRef(NAME, user_id, name, None, None)

    def _forget_room(self, room_id: str) -> None:
        self._rights.pop(room_id, None)
        self._invalidate(room_id)
        self._joining.discard(room_id)

    # --- commands, reactions, invites ------------------------------------------------------------

    async def _on_command(self, room_id: str, source: dict, typed: Typed, private: bool) -> None:
        sender = self._user(room_id, source["sender"])
        chat = self._chat(room_id)
        event_id = str(source.get("event_id") or "")
        if typed.button is not None:
            await self.core.button(ButtonPressed(chat, sender, typed.button, event_id, event_id))
            return
        reply_to = reply_sender = None
        reply_id = reply_target(source.get("content") or {})
        if reply_id and not private:
            reply_to, reply_author = await self._posted_for(room_id, reply_id)
            reply_sender = self._user(room_id, reply_author) if reply_author else None
        await self.core.command(CommandIssued(
            chat=chat,
            message_id=event_id,
            sender=sender,
            private=private,
            verb=typed.verb,
            args=typed.args,
            reply_to=reply_to,
            reply_to_id=reply_id,
            reply_sender=reply_sender,
        ))

    async def _posted_for(self, room_id: str, event_id: str) -> tuple[MediaPosted | None, str | None]:
        """The media message a command replies to (from memory, else fetched), and its sender."""
        cached = self._posted.get((room_id, event_id))
        if cached is not None:
            return cached, cached.sender.user_id
        try:
            got = await call("fetch the replied-to event", self.client.room_get_event(room_id, event_id))
        except PlatformError as exc:
            log.warning("matrix: room %s: could not fetch replied-to event %s: %s", room_id, event_id, exc)
            return None, None
        source = getattr(got.event, "source", None) or {}
        if isinstance(got.event, MegolmEvent):
            return None, source.get("sender")
        found = posted_media(source)
        if found is None:
            return None, source.get("sender")
        cached = self._posted.get((room_id, found.message_id))  # a reply to an edit: the message it edits
        if cached is not None:
            return cached, cached.sender.user_id
        posted = MediaPosted(
            self._chat(room_id), found.message_id, self._user(room_id, found.sender), found.posted_at, found.media, found.variant
        )
        return posted, found.sender

    async def _on_reaction(self, room_id: str, source: dict) -> None:
        found = reaction(source)
        if found is None:
            return
        target, key = found
        keys = self._buttons.get(target)
        if keys is None:
            stored = await self.store.get_state(BUTTONS_KEY + target)
            if stored is None:
                return  # a reaction to something that offers no choice
            keys = json.loads(stored)
            self._buttons.put(target, keys)
        data = next((d for k, d in keys.items() if same_key(k, key)), None)
        if data is None:
            return
        sender = self._user(room_id, source["sender"])
        await self.core.button(ButtonPressed(self._chat(room_id), sender, data, str(source.get("event_id") or ""), target))

    def _may_invite(self, user_id: str) -> bool:
        allowed = self.config.invite_from or (self.config.server_name,)
        server = user_id.partition(":")[2]
        return "*" in allowed or user_id in allowed or server in allowed

    async def _on_invite(self, room_id: str, invite_state: list[Any]) -> None:
        inviter, direct = None, False
        for event in invite_state:
            # nio moves the content out of an invite event's source: read its attributes
            if isinstance(event, InviteMemberEvent) and event.state_key == self.me and event.membership == "invite":
                inviter, direct = event.sender, bool((event.content or {}).get("is_direct"))
        try:
            if not inviter or not self._may_invite(inviter):
                log.warning("matrix: declining the invite to %s from %s (not in matrix.invite_from)", room_id, inviter)
                await call("decline invite", self.client.room_leave(room_id))
                return
            await call("join room", self.client.join(room_id))
        except PlatformError as exc:
            self._joining.discard(room_id)  # tried again at the next sync that still shows the invite
            log.error("matrix: could not answer the invite to %s: %s", room_id, exc)
            return
        log.info("matrix: joined %s (invited by %s%s)", room_id, inviter, ", direct" if direct else "")
        if direct:
            await self.direct.remember(inviter, room_id)
            self._reachable.add(inviter)
            await self.core.private_started(UserRef(NAME, inviter))
            return
        power = await self._power(room_id)
        rights = power.rights(self.me)
        self._rights[room_id] = rights
        title = self._chat(room_id).title or await self._room_name(room_id)
        await self.core.bot_added(BotAdded(
            ChatRef(NAME, room_id, title), UserRef(NAME, inviter, power.members.get(inviter, "")),
            can_delete=rights.can_delete, can_restrict=rights.can_restrict, is_admin=rights.is_admin,
        ))

    async def _room_name(self, room_id: str) -> str:
        try:
            got = await self.client.room_get_state_event(room_id, "m.room.name")
            return str(getattr(got, "content", {}).get("name") or "")
        except Exception:
            return ""

    async def _on_power_change(self, room_id: str, by: str) -> None:
        """Levels changed: the core's moderator list is stale, and Vigil's own rights may be short now."""
        chat = self._chat(room_id)
        self.core.forget_admins(chat)
        if room_id in self.direct.user_of:
            return
        rights = (await self._power(room_id, fresh=True)).rights(self.me)
        before = self._rights.get(room_id)
        self._rights[room_id] = rights
        if before is not None and rights != before:
            await self.core.bot_added(BotAdded(
                chat, self._user(room_id, by), can_delete=rights.can_delete, can_restrict=rights.can_restrict, is_admin=rights.is_admin
            ))

    # --- sending ---------------------------------------------------------------------------------

    async def _language(self, room_id: str) -> str | None:
        try:
            if room_id in self.direct.user_of:
                contact = await self.store.get_contact(NAME, self.direct.user_of[room_id])
                return contact.language if contact else None
            return (await self.core.group_settings(ChatRef(NAME, room_id))).language
        except Exception:
            return None

    def _choose_line(self, language: str | None) -> str:
        """The line above an alert's choices, in the reader's language (from Vigil's catalogs)."""
        if self.core is None:
            return "To choose, react with the number or send the command:"
        return self.core.translator(language).gettext("To choose, react with the number or send the command:")

    async def _send(
        self, room_id: str, message: OutgoingMessage, *, notice: bool, reply_to: str | None = None, txn: str | None = None
    ) -> str:
        language = message.language or await self._language(room_id)
        rendered = render(message, notice=notice, choose_line=self._choose_line(language) if message.buttons else "")
        content = rendered.content
        if reply_to:
            content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to}}
        sent = await call(
            f"send a message in {room_id}",
            self.client.room_send(room_id, "m.room.message", content, tx_id=txn, ignore_unverified_devices=True),
            right="send messages",
        )
        assert isinstance(sent, RoomSendResponse)
        if rendered.keys:
            self._buttons.put(sent.event_id, rendered.keys)
            await self.store.set_state(BUTTONS_KEY + sent.event_id, json.dumps(rendered.keys, ensure_ascii=False))
            if self.offer_reactions:
                self._offers.put_nowait((room_id, sent.event_id, list(rendered.keys)))
        return sent.event_id

    async def _offer_reactions(self) -> None:
        """React with each choice's key under an alert, so a moderator only has to tap one.

        Each reaction is an event the homeserver must store: while images wait to be checked
        (a burst), they wait too, so redactions come first (at most OFFER_DELAY seconds).
        """
        while True:
            room_id, event_id, keys = await self._offers.get()
            waited = 0.0
            while waited < OFFER_DELAY and getattr(getattr(self.core, "pipeline", None), "depth", 0) > 0:
                await asyncio.sleep(0.5)
                waited += 0.5
            for key in keys:
                content = {"m.relates_to": {"rel_type": "m.annotation", "event_id": event_id, "key": key}}
                try:
                    await call("offer a reaction", self.client.room_send(room_id, "m.reaction", content, ignore_unverified_devices=True))
                except PlatformError as exc:
                    log.warning("matrix: could not add the choice reactions to %s: %s", event_id, exc)
                    break

    async def send_private(self, user_id: str, message: OutgoingMessage) -> str:
        room_id = await self.direct.room_for(user_id)
        # an alert is known by its choices (they name its audit record): the same transaction id
        # makes the homeserver drop a resend after a crash between sending and recording it
        data = sorted(b.data for row in message.buttons for b in row)
        txn = self._txn("alert", room_id, *data) if data else None
        return await self._send(room_id, message, notice=False, txn=txn)  # m.text: an alert must notify

    async def send_chat(self, chat_id: str, message: OutgoingMessage) -> str:
        # replies to commands are notices (no ping, and bots ignore them); choices are alerts
        return await self._send(chat_id, message, notice=not message.buttons)

    async def send_file(self, user_id: str, filename: str, data: bytes, caption: str) -> None:
        room_id = await self.direct.room_for(user_id)
        room = self.client.rooms.get(room_id)
        encrypted = bool(room is not None and room.encrypted)
        mime = "application/json" if filename.endswith(".json") else "application/octet-stream"
        try:
            uploaded, keys = await self.client.upload(
                io.BytesIO(data), content_type=mime, filename=filename, encrypt=encrypted, filesize=len(data)
            )
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise Transient(f"upload {filename}: {exc}") from None
        uploaded = check(uploaded, f"upload {filename}")
        content: dict[str, Any] = {
            "msgtype": "m.file", "body": caption or filename, "filename": filename, "info": {"mimetype": mime, "size": len(data)},
        }
        if encrypted and keys:
            content["file"] = {**keys, "url": uploaded.content_uri, "mimetype": mime}
        else:
            content["url"] = uploaded.content_uri
        await call(
            f"send {filename}", self.client.room_send(room_id, "m.room.message", content, ignore_unverified_devices=True), right="send messages"
        )

    async def answer(self, press: ButtonPressed, text: str) -> None:
        if not text:  # nothing to say: the core answers with a message of its own
            return
        try:
            await self._send(press.chat.chat_id, OutgoingMessage(text), notice=True, reply_to=press.message_id or None)
        except PlatformError as exc:
            log.warning("matrix: answering a choice in %s failed: %s", press.chat.chat_id, exc)

    # --- media and actions -------------------------------------------------------------------------

    async def fetch_media(self, event: MediaPosted, max_bytes: int) -> bytes:
        media = event.media
        if media.size is not None and media.size > max_bytes:
            raise MediaTooLarge(media.size, max_bytes)  # as the event declares it: nothing downloaded
        assert self.media is not None
        extra = media.extra or {}
        data = await self.media.download(str(extra.get("mxc") or media.file_id), self.client.access_token, max_bytes)
        encrypted = extra.get("encrypted")
        if isinstance(encrypted, dict):
            data = decrypt(data, encrypted)
        return data

    def _txn(self, *parts: str) -> str:
        # the same transaction id for the same action, so a retried request is not done twice
        return "vigil-" + hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]

    async def _redact(self, room_id: str, event_id: str) -> None:
        await call(
            f"redact {event_id}",
            self.client.room_redact(room_id, event_id, reason=REDACT_REASON, tx_id=self._txn("redact", room_id, event_id)),
            right="remove messages (redact)",
        )

    async def delete(self, chat_id: str, message_id: str) -> None:
        related = self._related.get((chat_id, message_id))
        if related is None or not related.complete:  # not seen in this run (a restart): ask the server
            found = await self._find_related(chat_id, message_id)
            if related is not None:
                found.edits = list(dict.fromkeys(found.edits + related.edits))
                found.mxcs = list(dict.fromkeys(found.mxcs + related.mxcs))
            related = found
        await self._redact(chat_id, message_id)
        timing = self.timings.get(message_id)
        if timing is not None and timing[1] is None:
            timing[1] = time.perf_counter()
            log.debug("matrix: redacted %s %.0f ms after it arrived", message_id, (timing[1] - timing[0]) * 1000)
        for edit in related.edits:
            try:
                await self._redact(chat_id, edit)
            except PlatformError as exc:
                log.warning("matrix: room %s: could not redact edit %s of %s: %s", chat_id, edit, message_id, exc)
        await self._quarantine(chat_id, message_id, related.mxcs)

    async def _find_related(self, room_id: str, message_id: str) -> _Related:
        related = _Related()
        try:
            got = await call("fetch event", self.client.room_get_event(room_id, message_id))
            source = getattr(got.event, "source", {}) or {}
            related.sender = str(source.get("sender") or "")
            related.mxcs.extend(mxcs_of(source))
            related.complete = True
        except PlatformError as exc:
            log.info("matrix: room %s: event %s not fetched before redaction: %s", room_id, message_id, exc)
            return related
        try:
            page = await self.raw(
                "GET", f"/_matrix/client/v1/rooms/{quote(room_id)}/relations/{quote(message_id)}/m.replace?limit=100", what="read edits"
            )
        except PlatformError as exc:
            log.warning("matrix: room %s: could not read the edits of %s: %s", room_id, message_id, exc)
            return related
        for raw in page.get("chunk") or []:
            if not isinstance(raw, dict) or raw.get("sender") != related.sender or not isinstance(raw.get("event_id"), str):
                continue
            related.edits.append(raw["event_id"])
            clear = self._decrypted(room_id, Event.parse_event(raw)) if raw.get("type") == "m.room.encrypted" else None
            for mxc in mxcs_of(getattr(clear, "source", None) or raw):
                if mxc not in related.mxcs:
                    related.mxcs.append(mxc)
        self._related.put((room_id, message_id), related)
        return related

    async def _quarantine(self, room_id: str, message_id: str, mxcs: list[str]) -> None:
        """A redaction hides the message; the file stays downloadable until quarantined."""
        if not mxcs:
            return
        left: list[str] = []
        if self.config.admin_token:
            assert self.media is not None
            for mxc in mxcs:
                try:
                    await self.media.quarantine(mxc, self.config.admin_token)
                except PlatformError as exc:
                    log.error("matrix: room %s: could not quarantine %s: %s", room_id, mxc, exc)
                    left.append(mxc)
        else:
            left = list(mxcs)
        if left:
            self._unquarantined.put(message_id, left)
            log.warning("matrix: room %s: message %s was redacted but its media stays on the homeserver until an admin quarantines it: %s",
                        room_id, message_id, " ".join(left))

    def media_left(self, message_id: str) -> tuple[str, ...]:
        """The files (mxc URIs) a redaction of this message left on the homeserver, for the alert:
        empty when they were quarantined (or the message is unknown)."""
        return tuple(self._unquarantined.get(message_id) or ())

    async def _power(self, room_id: str, *, fresh: bool = False) -> RoomPower:
        """The room's power rules, from its state; kept until the sync shows a state change there."""
        cached = None if fresh else self._powers.get(room_id)
        if cached is not None:
            return cached
        generation = self._power_gen.get(room_id, 0)
        state = await call(f"read the state of {room_id}", self.client.room_get_state(room_id))
        power = room_power(state.events)
        if self._power_gen.get(room_id, 0) == generation:
            self._powers[room_id] = power
        return power

    def _invalidate(self, room_id: str) -> None:
        self._powers.pop(room_id, None)
        self._power_gen[room_id] = self._power_gen.get(room_id, 0) + 1

    async def restrict(self, chat_id: str, user_id: str, until: datetime) -> None:
        """Matrix has no timed mute: lower the member's level below what posting needs, and record until when."""
        power = await self._power(chat_id, fresh=True)
        if power.levels is None:
            raise PlatformError(f"room {chat_id} has no power levels to lower a member in")
        if not power.can_lower(self.me, user_id):
            raise MissingRight("change members' power levels (to mute them)")
        levels = dict(power.levels or {})
        users = dict(levels.get("users") or {})
        earlier = self.mutes.get(chat_id, user_id)
        previous = earlier.previous if earlier is not None else users.get(user_id)
        level = power.mute_level
        self.mutes.put(Mute(chat_id, user_id, level, previous, until.astimezone(timezone.utc).isoformat()))
        users[user_id] = level
        levels["users"] = users
        self._invalidate(chat_id)  # Vigil's own changes do not come back through its sync
        await call(f"mute {user_id}", self.client.room_put_state(chat_id, "m.room.power_levels", levels), right="change power levels (to mute)")

    async def unrestrict(self, chat_id: str, user_id: str) -> None:
        """Give back the level the member had before Vigil muted them (unless an admin changed it since)."""
        record = self.mutes.get(chat_id, user_id)
        power = await self._power(chat_id, fresh=True)
        levels = dict(power.levels or {})
        users = dict(levels.get("users") or {})
        current = users.get(user_id)
        if record is not None and current != record.level:
            self.mutes.remove(chat_id, user_id)  # someone else changed it: theirs stands
            return
        if record is None and (current is None or int(current) >= power.event_level("m.room.message")):
            return  # not muted
        if record is not None and record.previous is not None:
            users[user_id] = record.previous
        else:
            users.pop(user_id, None)
        levels["users"] = users
        self._invalidate(chat_id)
        await call(f"unmute {user_id}", self.client.room_put_state(chat_id, "m.room.power_levels", levels), right="change power levels (to unmute)")
        self.mutes.remove(chat_id, user_id)

    async def _lift_mutes(self) -> None:
        """Lift mutes whose time ran out (also those that ran out while Vigil was down)."""
        await asyncio.sleep(1)
        while True:
            for mute in self.mutes.expired():
                try:
                    await self.unrestrict(mute.room, mute.user)
                    log.info("matrix: room %s: the mute of %s ran out and was lifted", mute.room, mute.user)
                except PlatformError as exc:
                    log.warning("matrix: room %s: lifting the mute of %s failed (retried later): %s", mute.room, mute.user, exc)
            await asyncio.sleep(self.config.mute_check_interval)

    async def ban(self, chat_id: str, user_id: str) -> None:
        self._invalidate(chat_id)
        await call(f"ban {user_id}", self.client.room_ban(chat_id, user_id, reason=BAN_REASON), right="ban members")
        self.mutes.remove(chat_id, user_id)

    async def kick(self, chat_id: str, user_id: str) -> None:
        self._invalidate(chat_id)
        await call(f"kick {user_id}", self.client.room_kick(chat_id, user_id, reason=BAN_REASON), right="remove members (kick)")

    # --- who is who -----------------------------------------------------------------------------------

    async def admins(self, chat_id: str) -> frozenset[str]:
        """Members whose effective level reaches the redact level, the room's creators included."""
        power = await self._power(chat_id)
        moderators = power.moderators(exclude=(self.me,))
        for user_id in moderators - self._contacts_known:
            # on Matrix Vigil can always open a direct room: a moderator is reachable from the start
            if await self.store.get_contact(NAME, user_id) is None:
                await self.store.set_contact(NAME, user_id, can_dm=True, display_name=power.members.get(user_id, ""))
            self._contacts_known.add(user_id)
        return moderators

    async def owner(self, chat_id: str) -> str | None:
        return (await self._power(chat_id)).owner

    async def is_member(self, chat_id: str, user_id: str) -> bool:
        """Whether the user has joined the room now (invited, left, banned or never there: False),
        from the homeserver's current state rather than what the last sync brought."""
        if not user_id.startswith("@") or len(user_id) > 255:
            return False
        try:
            got = await call(
                f"read the membership of {user_id} in {chat_id}",
                self.client.room_get_state_event(chat_id, "m.room.member", user_id),
            )
        except MessageGone:  # M_NOT_FOUND: no membership event, never in the room
            return False
        content = getattr(got, "content", None)
        return isinstance(content, dict) and content.get("membership") == "join"

    async def rights(self, chat_id: str) -> Rights:
        return (await self._power(chat_id)).rights(self.me)
