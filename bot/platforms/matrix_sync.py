"""The inbound half of the Matrix adapter: Vigil's own sync loop, and what each event becomes.

Nothing lost, nothing done twice: each sync's pictures are handed to the core (``core.submit``
returns once the work is recorded in the store) before the sync token is saved, so a crash or
a failed hand-over replays that sync instead of skipping it. What else a sync asks for
(commands, choices, photos to protect, invites) is only started once its token is saved, so a
replayed sync never repeats them. Every event is checked against ``matrix_bounds`` first: one
that cannot be recorded is logged (ids only), counted and skipped, never retried forever.

Why one file of about 680 lines: it is one loop and the dispatch of what each event becomes; the
event kinds' own parsing already lives apart (matrix_events, matrix_pictures, matrix_bounds), and
what stays here is the order of hand-over and token saving that the guarantee above rests on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from nio import AsyncClient, EncryptionError, Event, InviteMemberEvent, MegolmEvent

from bot.errors import BadStoreValue, StoreError
from bot.events import BotAdded, ButtonPressed, ChatRef, CommandIssued, MediaPosted, UserRef
from bot.platforms import matrix_bounds as bounds
from bot.platforms.base import BotCore
from bot.platforms.errors import MessageGone, PlatformError, RetryLater
from bot.platforms.matrix_errors import call
from bot.platforms.matrix_events import (
    Typed,
    event_pictures,
    own_message,
    parse_command,
    plain_body,
    posted_media,
    reaction,
    relation,
    reply_target,
    same_key,
)
from bot.platforms.matrix_members import member_event
from bot.platforms.matrix_memory import Related
from bot.platforms.matrix_timing import HitClock

if TYPE_CHECKING:
    from bot.config import MatrixConfig
    from bot.platforms.base import Rights
    from bot.platforms.matrix_bridges import BridgeBook
    from bot.platforms.matrix_direct import DirectRooms
    from bot.platforms.matrix_memory import Lru
    from bot.platforms.matrix_policy_rooms import PolicyRooms
    from bot.platforms.matrix_power import RoomPower
    from bot.platforms.matrix_roomstate import SyncedState
    from bot.platforms.matrix_state import PendingEncrypted
    from bot.platforms.matrix_undecryptable import UndecryptableNotices
    from bot.store.protocol import Store

log = logging.getLogger("vigil.matrix")

NAME = "matrix"
SYNC_KEY = "matrix:sync_token"
BUTTONS_KEY = "matrix:buttons:"
UNDECRYPTABLE_FOR = 24 * 3600  # seconds an encrypted event is retried before Vigil gives up on it
SENDER_LOOKUP_SECONDS = 10.0  # reading an edited message's sender from the homeserver


def sync_filter(me: str) -> dict[str, Any]:
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


def kind_of(source: dict[str, Any]) -> tuple[object, object]:
    """(type, membership) of an event; membership None unless it is a member event."""
    content = source.get("content")
    if isinstance(content, dict) and source.get("type") == "m.room.member":
        return source.get("type"), content.get("membership")
    return source.get("type"), None


def _as_megolm(event: Any) -> Any:
    """An encrypted event matrix-nio could not read for want of a timestamp, read again with one.

    Without it the event would pass as an unknown one and its image would never be checked;
    the timestamp only dates the message, so "now" stands in for it.
    """
    source = getattr(event, "source", None)
    if not isinstance(source, dict) or source.get("type") != "m.room.encrypted":
        return event
    ts = source.get("origin_server_ts")
    if isinstance(ts, int) and not isinstance(ts, bool) and ts >= 0:
        return event
    reparsed = Event.parse_event({**source, "origin_server_ts": int(time.time() * 1000)})
    return reparsed if isinstance(reparsed, MegolmEvent) else event


class _SubmitFailed(Exception):
    """The core could not record an event: the sync is retried and its token not saved."""


class MatrixIntake:
    """The sync loop and event handling of ``MatrixPlatform`` (which holds the state both halves share)."""

    # the state both halves share, made by MatrixPlatform.__init__ (declared here for the type checker)
    config: MatrixConfig
    store: Store
    client: AsyncClient
    _core: BotCore | None

    @property
    def core(self) -> BotCore:
        """The running bot, from ``start()`` on."""
        if self._core is None:
            raise RuntimeError("the Matrix adapter is used before start()")
        return self._core

    connected: bool
    policy: PolicyRooms
    direct: DirectRooms
    bridges: BridgeBook
    pending: PendingEncrypted
    undecryptable: UndecryptableNotices
    state: SyncedState
    timings: Lru
    _undecrypted: dict[str, MegolmEvent]
    _posted: Lru
    _related: Lru
    _buttons: Lru
    _senders: Lru
    _acted: Lru
    _deferred: list[tuple[str | None, Callable[[], Awaitable[Any]], str]]
    _rights: dict[str, Rights]
    _reachable: set[str]
    _joining: set[str]
    _stopping: asyncio.Event
    _ready: asyncio.Event
    _filter: dict[str, Any]

    @property
    def me(self) -> str:
        return self.config.user_id

    # what the outbound half does for the inbound one
    def _spawn(self, coro: Awaitable[Any], what: str) -> None:
        raise NotImplementedError

    async def _power(self, room_id: str, *, fresh: bool = False) -> RoomPower:
        raise NotImplementedError

    def _state_event(self, room_id: str, source: dict[str, Any]) -> None:
        raise NotImplementedError

    def _invalidate(self, room_id: str) -> None:
        raise NotImplementedError

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
                    log.error(
                        "matrix: could not record this sync's events (%s); reading them again in %.0f s",
                        exc.__cause__,
                        backoff,
                    )
                elif isinstance(exc, PlatformError):
                    log.warning("matrix: sync failed (%s); retrying in %.0f s", exc, backoff)
                else:
                    log.exception("matrix: the sync loop failed; retrying in %.0f s", backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 60)

    async def _sync_once(self, token: str | None, first: bool) -> tuple[str | None, bool]:
        """One sync: hand its pictures over, save its token, and only then start what else it asked for."""
        response = await call(
            "sync",
            self.client.sync(
                timeout=self.config.sync_timeout * 1000,
                since=token,
                full_state=True if first else None,
                sync_filter=self._filter,
            ),
        )
        arrived = time.perf_counter()
        self.connected = True
        self._ready.set()  # nio has read the rooms' state: direct rooms can be looked up
        self._deferred = []
        try:
            # _SubmitFailed leaves the token as it was: the same events come again (the store's work is idempotent)
            await self._handle_sync(response, token, arrived, full=first)
            await self.store.set_state(SYNC_KEY, response.next_batch)
        except BaseException:
            self._deferred = []  # a replayed sync asks for them again
            raise
        deferred, self._deferred = self._deferred, []
        for key, start, what in deferred:
            if key is None or key not in self._acted:
                if key is not None:
                    self._acted.put(key, True)
                self._spawn(start(), what)
        await self._keys_maintenance()
        return response.next_batch, False

    def _after_sync(self, key: str | None, start: Callable[[], Awaitable[Any]], what: str) -> None:
        """Start ``start()`` once this sync's token is saved, and once per ``key`` (an event id) in this run."""
        self._deferred.append((key, start, what))

    def _skip(self, room_id: str, event_id: object, reason: str) -> None:
        """An event Vigil cannot take: logged by its ids and counted, never retried."""
        log.warning(
            "matrix: room %s: skipped event %s (%s)", bounds.shown_id(room_id), bounds.shown_id(event_id), reason
        )
        self.core.metrics.rejected_event(NAME, reason)

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

    async def _handle_sync(self, response: Any, since: str | None, arrived: float, *, full: bool = False) -> None:
        """``full``: the sync was asked for every room's whole state (the first of a run)."""
        for data in getattr(response, "account_data_events", ()):  # direct rooms a cluster's worker opened
            if getattr(data, "type", None) == "m.direct":
                self.direct.follow(getattr(data, "content", None))
        for room_id, info in response.rooms.invite.items():
            if not bounds.room_id(room_id):
                self._skip(room_id, "-", "bad_room_id")
            elif room_id not in self._joining:
                self._after_sync(None, partial(self._on_invite, room_id, info.invite_state), f"joining {room_id}")
        for room_id in response.rooms.leave:
            self._forget_room(room_id)
        for room_id, info in response.rooms.join.items():
            if not bounds.room_id(room_id):
                self._skip(room_id, "-", "bad_room_id")
                continue
            if info.timeline.limited and since:
                # the events the limit left out come first; the state block is the state after them
                for event in await self._backfill(room_id, info.timeline.prev_batch, since):
                    await self._on_timeline_event(room_id, event, arrived)
            states = [e.source for e in info.state if isinstance(getattr(e, "source", None), dict)]
            if full:
                self.state.seed(room_id, states)  # the room's whole state, as of the timeline's start
            for state in states:
                if not full:
                    self._state_event(room_id, state)
                self.bridges.note(room_id, state)
            for event in info.timeline.events:
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
                page = await call(
                    "read missed events", self.client.room_messages(room_id, start=start, end=since, limit=100)
                )
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
            event = _as_megolm(event)
            if not isinstance(event, MegolmEvent):
                return event
        event.room_id = room_id
        try:
            return self.client.decrypt_event(event)
        except EncryptionError:
            self._undecrypted[event.event_id] = event
            evicted = self.pending.add(
                event.event_id,
                room_id,
                time.time(),
                sender=event.sender,
                session=bounds.text(event.session_id, 128),
                device=bounds.text(event.device_id, 128),
            )
            log.info("matrix: room %s: event %s waits for its room key", room_id, event.event_id)
            for item in evicted:  # too many waiting: the oldest give way, and their moderators are told
                self._spawn(self.undecryptable.tell(item), "telling moderators of undecryptable messages")
            return None

    async def _retry_undecrypted(self, arrived: float) -> None:
        if not self.pending.items:
            return
        done, now = [], time.time()
        for event_id, item in list(self.pending.items.items()):
            room_id, first_seen = item.room, item.first_seen
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
                if now - first_seen >= self.config.undecryptable_notice_after:
                    # not silent: the moderators learn that this member's messages cannot be checked, and why
                    self._spawn(self.undecryptable.tell(item), "telling moderators of undecryptable messages")
                if now - first_seen > UNDECRYPTABLE_FOR:
                    log.error("matrix: room %s: gave up on event %s: its room key never arrived", room_id, event_id)
                    self.core.metrics.rejected_event(NAME, "undecryptable")
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
            raw = getattr(event, "source", None)
            if isinstance(raw, dict):
                problem = bounds.event_problem(raw)
                if "state_key" in raw or raw.get("type") == "m.room.redaction":
                    # before anything reads it: a demoted moderator loses control at once (a state event
                    # Vigil cannot take makes it read the room's state from the server instead)
                    if problem:
                        self._invalidate(room_id)
                    else:
                        self._state_event(room_id, raw)
                if problem:
                    self._skip(room_id, raw.get("event_id"), problem)
                    return
            clear = self._decrypted(room_id, event)
            if clear is None:
                return
            source = getattr(clear, "source", None)
            if not isinstance(source, dict):
                return
            if clear is not event and (problem := bounds.event_problem(source)):
                self._skip(room_id, source.get("event_id"), problem)
                return
            await self._dispatch(room_id, source, arrived)
        except _SubmitFailed:
            raise
        except Exception:
            event_id = bounds.shown_id(getattr(event, "event_id", "?"))
            log.exception("matrix: room %s: handling event %s failed", room_id, event_id)

    async def _dispatch(self, room_id: str, source: dict[str, Any], arrived: float) -> None:
        """One valid event (ids checked by ``matrix_bounds``): pictures now, everything else after the sync."""
        if "state_key" in source:  # already applied to the room's state (_on_timeline_event)
            self.bridges.note(room_id, source)
        sender = source["sender"]
        event_id = source["event_id"]
        if room_id in self.policy.rooms:
            if self.policy.wants(room_id, source):
                self.policy.changed(room_id)  # read the rules again from the room's state: nothing to replay
            return  # Vigil only reads a policy room: it does not moderate it, nor take commands there
        if kind_of(source) == ("m.room.member", "join") and self.policy.bans.active:
            joined = partial(self.policy.bans.enforce, room_id, source["state_key"])
            self._after_sync(event_id, joined, "checking a new member against the policy rooms' ban rules")
        if sender == self.me:
            return
        if (source.get("unsigned") or {}).get("redacted_because"):
            return
        if source.get("type") == "m.room.member" and room_id not in self.direct.user_of:
            await self._on_member(room_id, source)  # at the door: a join or a new avatar
            return
        kind = source.get("type")
        given = source.get("content")
        content: dict[str, Any] = given if isinstance(given, dict) else {}
        private = room_id in self.direct.user_of
        if kind == "m.reaction":
            self._after_sync(event_id, partial(self._on_reaction, room_id, source), "a reaction")
            if not private:
                await self._on_media(room_id, source, arrived)  # a custom emoji is a picture too
            return
        if kind == "m.room.power_levels" and source.get("state_key") == "":
            self._after_sync(event_id, partial(self._on_power_change, room_id, sender), "a power level change")
            return
        if kind not in ("m.room.message", "m.sticker"):
            return
        self._senders.put((room_id, event_id), sender)  # whose message it is, for edits of it
        if private and sender not in self._reachable:
            self._reachable.add(sender)  # any message in the direct room makes the person reachable
            started = partial(self.core.private_started, self._user(room_id, sender))
            self._after_sync(None, started, "marking a contact reachable")
        # commands are typed text; notices are what bots write, and answering them could loop
        if kind == "m.room.message" and content.get("msgtype") == "m.text" and relation(content)[0] != "m.replace":
            typed = parse_command(plain_body(content), private=private)
            if typed is not None:
                self._after_sync(event_id, partial(self._on_command, room_id, source, typed, private), "a command")
                return
        if private:
            # an image in a direct room is a member's photo to protect (when a /protect session is open)
            found = posted_media(source)
            if found is not None:
                event = MediaPosted(
                    chat=self._chat(room_id),
                    message_id=found.event_id,
                    sender=self._user(room_id, found.sender),
                    posted_at=found.posted_at,
                    media=found.media,
                )
                self._after_sync(event_id, partial(self.core.private_media, event), "a photo sent privately")
            return
        await self._on_media(room_id, source, arrived)

    async def _sender_of(self, room_id: str, event_id: str) -> str | None:
        """Who sent a message: remembered from the sync, else read from the homeserver (bounded); None if unknown."""
        known = self._senders.get((room_id, event_id))
        if known is not None:
            return known or None
        try:
            async with asyncio.timeout(SENDER_LOOKUP_SECONDS):
                got = await call("fetch the edited event", self.client.room_get_event(room_id, event_id))
        except (TimeoutError, PlatformError) as exc:
            log.info("matrix: room %s: the sender of %s is unknown: %s", room_id, event_id, type(exc).__name__)
            if isinstance(exc, MessageGone):
                self._senders.put((room_id, event_id), "")  # no such message: not asked again
            return None
        sender = getattr(got.event, "sender", None)
        if not bounds.user_id(sender):
            return None
        self._senders.put((room_id, event_id), sender)
        return sender

    async def _on_media(self, room_id: str, source: dict[str, Any], arrived: float) -> None:
        """Hand every picture this event shows to the core: each a version of its message."""
        found = event_pictures(source)
        if found.unchecked:
            self._skip(room_id, source.get("event_id"), "inline_images_over_limit")
        pictures = list(found.pictures)
        if not pictures:
            return
        edit_of = pictures[0].edit_of
        if edit_of is not None and await self._sender_of(room_id, edit_of) != pictures[0].sender:
            # clients ignore an "edit" by someone else (or of a message nobody can find): it is a message of its own
            pictures = [own_message(p) for p in pictures]
        message_id = pictures[0].message_id
        related = self._related.get((room_id, message_id))
        if related is None:
            related = Related(sender=pictures[0].sender)
            self._related.put((room_id, message_id), related)
        if pictures[0].edit_of is not None:
            if pictures[0].event_id not in related.edits:
                related.edits.append(pictures[0].event_id)
        else:
            related.complete = True
        for picture in pictures:
            if picture.media.file_id not in related.mxcs:
                related.mxcs.append(picture.media.file_id)
        if message_id not in self.timings:
            self.timings.put(message_id, HitClock(arrived))
        for picture in pictures:
            event = MediaPosted(
                chat=self._chat(room_id),
                message_id=message_id,
                sender=self._user(room_id, picture.sender),
                posted_at=picture.posted_at,
                media=picture.media,
                variant=picture.variant,
                link=None,  # a link would lead to the image: alerts carry ids instead
            )
            if picture.role == "":
                self._posted.put((room_id, message_id), event)  # the message's main file, for replies to it
            try:
                await self.core.submit(event)
            except BadStoreValue:
                self._skip(room_id, picture.event_id, "not_recordable")  # the same values would fail on every replay
            except Exception as exc:
                raise _SubmitFailed(str(exc)) from exc

    async def _on_member(self, room_id: str, source: dict[str, Any]) -> None:
        """A join or an avatar change, recorded before the sync token is saved (like a picture)."""
        member = source.get("state_key")
        if not bounds.user_id(member) or member == self.me:
            return
        event = member_event(self._chat(room_id), self._user(room_id, member), source)
        if event is None:
            return
        try:
            await self.core.member_joined(event)
        except BadStoreValue:
            self._skip(room_id, source.get("event_id"), "not_recordable")
        except StoreError as exc:  # not recorded: this sync is read again
            raise _SubmitFailed(str(exc)) from exc
        except Exception:  # a bug in one member's check must not hold every room's sync
            log.exception("matrix: room %s: a member event could not be handed over; skipped", room_id)

    def _chat(self, room_id: str) -> ChatRef:
        room = self.client.rooms.get(room_id)
        return ChatRef(NAME, room_id, bounds.name(room.display_name) if room is not None else "")

    def _user(self, room_id: str, user_id: str) -> UserRef:
        room = self.client.rooms.get(room_id)
        name = ""
        if room is not None and user_id in room.users:
            name = bounds.name(room.users[user_id].display_name)
        return UserRef(NAME, user_id, name, None, None)

    def _forget_room(self, room_id: str) -> None:
        self._rights.pop(room_id, None)
        self._invalidate(room_id)
        self._joining.discard(room_id)

    # --- commands, reactions, invites ------------------------------------------------------------

    async def _on_command(self, room_id: str, source: dict[str, Any], typed: Typed, private: bool) -> None:
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
        await self.core.command(
            CommandIssued(
                chat=chat,
                message_id=event_id,
                sender=sender,
                private=private,
                verb=typed.verb,
                args=typed.args,
                reply_to=reply_to,
                reply_to_id=reply_id,
                reply_sender=reply_sender,
            )
        )

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
        if not isinstance(source, dict) or bounds.event_problem(source):
            return None, None
        if isinstance(got.event, MegolmEvent):
            return None, source.get("sender")
        found = posted_media(source)
        if found is None:
            return None, source.get("sender")
        cached = self._posted.get((room_id, found.message_id))  # a reply to an edit: the message it edits
        if cached is not None:
            return cached, cached.sender.user_id
        posted = MediaPosted(
            self._chat(room_id),
            found.message_id,
            self._user(room_id, found.sender),
            found.posted_at,
            found.media,
            found.variant,
        )
        return posted, found.sender

    async def _on_reaction(self, room_id: str, source: dict[str, Any]) -> None:
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
        await self.core.button(
            ButtonPressed(self._chat(room_id), sender, data, str(source.get("event_id") or ""), target)
        )

    def _may_invite(self, user_id: str) -> bool:
        allowed = self.config.invite_from or (self.config.server_name,)
        server = user_id.partition(":")[2]
        return "*" in allowed or user_id in allowed or server in allowed

    async def _on_invite(self, room_id: str, invite_state: list[Any]) -> None:
        if room_id in self._joining:
            return  # already being answered (a later sync still showed the invite)
        self._joining.add(room_id)
        inviter, direct = None, False
        for event in invite_state:
            # nio moves the content out of an invite event's source: read its attributes
            if isinstance(event, InviteMemberEvent) and event.state_key == self.me and event.membership == "invite":
                inviter, direct = event.sender, bool((event.content or {}).get("is_direct"))
        inviter = inviter if bounds.user_id(inviter) else None
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
        title = self._chat(room_id).title or bounds.name(await self._room_name(room_id))
        await self.core.bot_added(
            BotAdded(
                ChatRef(NAME, room_id, title),
                UserRef(NAME, inviter, power.members.get(inviter, "")),
                can_delete=rights.can_delete,
                can_restrict=rights.can_restrict,
                is_admin=rights.is_admin,
            )
        )

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
        rights = (await self._power(room_id)).rights(self.me)  # the sync that showed the change applied it
        before = self._rights.get(room_id)
        self._rights[room_id] = rights
        if before is not None and rights != before:
            await self.core.bot_added(
                BotAdded(
                    chat,
                    self._user(room_id, by),
                    can_delete=rights.can_delete,
                    can_restrict=rights.can_restrict,
                    is_admin=rights.is_admin,
                )
            )
