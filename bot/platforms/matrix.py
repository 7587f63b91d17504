"""The Matrix adapter, on matrix-nio with end-to-end encryption: its life cycle and what it does.

Events come in through ``matrix_sync.MatrixIntake`` (Vigil's own sync loop, the inbound half);
this module is the outbound half: messages, redactions, quarantine, mutes and bans, and who
moderates a room. The two are split so each can be read on its own. The device, its keys and the session stay in
``<data_dir>/matrix``, so a restart is the same device with the same keys.

What Matrix lacks and how Vigil makes up for it:
- no timed mute: a mute lowers the member's power level below what posting needs; Vigil records
  it in the store (table ``mutes``, one for every process of a cluster) and restores the earlier
  level when the time runs out (the process that reads the rooms checks every
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
from collections.abc import Awaitable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
from nio import AsyncClient, Event, MegolmEvent, RoomSendResponse

from bot.config import MatrixConfig
from bot.errors import StoreError
from bot.events import ButtonPressed, ChatRef, MediaPosted
from bot.platforms import matrix_bounds as bounds
from bot.platforms.base import BotCore, OutgoingMessage, Rights
from bot.platforms.errors import MessageGone, MissingRight, PlatformError, Transient
from bot.platforms.matrix_bridges import BridgeBook
from bot.platforms.matrix_direct import DirectRooms, RawApi
from bot.platforms.matrix_errors import call, check
from bot.platforms.matrix_events import mxcs_of, render
from bot.platforms.matrix_media import MediaFetcher, decrypt
from bot.platforms.matrix_memory import CACHE, Lru, Related
from bot.platforms.matrix_policy_rooms import PolicyRooms
from bot.platforms.matrix_power import RoomPower, room_power
from bot.platforms.matrix_reports import EventReport, read_event_reports
from bot.platforms.matrix_roomstate import SyncedState
from bot.platforms.matrix_session import log_in, new_client
from bot.platforms.matrix_state import Mute, MuteBook, PendingEncrypted

# SYNC_KEY: re-exported for tests and tools that read the saved sync position
from bot.platforms.matrix_sync import BUTTONS_KEY, NAME, SYNC_KEY, MatrixIntake, sync_filter  # noqa: F401
from bot.platforms.matrix_timing import HitClock, HomeserverCalls
from bot.platforms.matrix_undecryptable import UndecryptableNotices
from bot.platforms.matrix_worker import WORKERS_DIR, NothingWaits, StateSync, claim_slot, worker_config
from detectors.errors import TooManyBytes

log = logging.getLogger("vigil.matrix")

QUARANTINE_WAIT = 300.0  # seconds a quarantine waits for the other pictures of its message to be checked
REDACT_REASON = "Removed by Vigil (image moderation)"
BAN_REASON = "Banned by Vigil (image moderation)"
OFFER_DELAY = 60.0  # seconds the choice reactions may wait behind images still being checked
OFFER_POLL = 0.1  # seconds between looks at whether an admin's redaction is still on its way


class MatrixPlatform(MatrixIntake):
    name = NAME

    def __init__(self, config: MatrixConfig, store: Any, directory: Path) -> None:
        # nio logs every room event at INFO, and normal key exchange ("missing session") as warnings
        logging.getLogger("nio").setLevel(max(logging.WARNING, logging.getLogger("nio").level))
        logging.getLogger("nio.crypto").setLevel(max(logging.ERROR, logging.getLogger("nio.crypto").level))
        # nio's schema errors quote the whole event or value (bodies, captions, mxc ids): Vigil logs its own
        # skip lines with ids only (matrix_sync._skip)
        for quoting in ("nio.events", "nio.responses"):
            logging.getLogger(quoting).setLevel(max(logging.CRITICAL, logging.getLogger(quoting).level))
        self.config = config
        self.store = store
        self.directory = Path(directory)
        self.calls = HomeserverCalls()  # every request to the homeserver, counted and timed by kind
        self.client: AsyncClient = new_client(config, self.directory, self.calls)
        self.http: aiohttp.ClientSession | None = None
        self.media: MediaFetcher | None = None
        self.username = config.user_id
        self._core: BotCore | None = None  # set by start()
        self.connected = False
        self.offer_reactions = True  # react with each choice's key first, so one tap chooses
        self.mutes = MuteBook(store)  # in the store: every process of a cluster records in one place
        self.pending = PendingEncrypted(self.directory)
        # when each media message reached Vigil (its sync returned), when it was redacted, and how long it
        # waited on the homeserver in between, by event id
        self.timings: Lru = Lru(20_000)
        self._undecrypted: dict[str, MegolmEvent] = {}
        self._posted: Lru = Lru(CACHE)  # (room, message id) -> MediaPosted (latest version)
        self._related: Lru = Lru(CACHE)  # (room, message id) -> Related
        self._buttons: Lru = Lru(CACHE)  # event id -> {reaction key: button data}
        self._unquarantined: Lru = Lru(CACHE)  # message id -> media still on the server
        self._senders: Lru = Lru(20_000)  # (room, event id) -> sender of each message seen, for edits of it
        self._acted: Lru = Lru(20_000)  # event ids whose command, choice or photo was started in this run
        self._deferred: list[tuple[str | None, Any, str]] = []  # started once the current sync's token is saved
        self.undecryptable = UndecryptableNotices(self)
        self._rights: dict[str, Rights] = {}
        # each room's power rules, from the state the sync brings (matrix_roomstate): as fresh as the
        # sync itself, read in full only for a room not known yet and after Vigil's own changes
        self.state = SyncedState()
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
        # (room, alert event, reaction keys, when it was sent: monotonic) of alerts whose reactions are due
        self._offers: asyncio.Queue[tuple[str, str, list[str], float]] = asyncio.Queue()
        self._offerer: asyncio.Task[None] | None = None
        self._offering = False  # an alert's reactions are being sent
        self._redacting = 0  # redactions sent and not yet answered: the reactions wait for them
        self.policy = PolicyRooms(self)
        self.bridges = BridgeBook()

    # --- life cycle ----------------------------------------------------------------------

    async def start(self, core: BotCore) -> None:
        self._core = core
        self.http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=120, sock_connect=15), trace_configs=[self.calls.trace_config()]
        )
        self.media = MediaFetcher(self.http, self.config.homeserver, self.config.download_deadline)
        await log_in(self.client, self.config, self.directory)
        await self.direct.load()
        await self.policy.load()
        await self._import_old_mutes()
        self._stopping.clear()
        self._syncer = asyncio.create_task(self._sync_loop(), name="vigil-matrix-sync")
        # only the process that reads the rooms lifts mutes: once across the cluster (workers only record)
        self._lifter = asyncio.create_task(self._lift_mutes(), name="vigil-matrix-mutes")
        self._offerer = asyncio.create_task(self._offer_reactions(), name="vigil-matrix-reactions")
        self._spawn(self._follow_policy_rooms(), "following the policy rooms")
        log.info("matrix: syncing as %s (device %s)", self.me, self.client.device_id)

    async def start_sending(self, core: BotCore) -> None:
        """A worker of a cluster (bot/roles.py): sends, redacts and alerts from a device of its own,
        and never reads the timelines (the active ingest does): bot/platforms/matrix_worker.py."""
        slot = claim_slot(self.directory.parent / WORKERS_DIR)
        login = worker_config(self.config, slot)
        # everything that belongs to a device lives in the slot, never in the ingest's folder
        self.directory = slot.path
        self.client = new_client(self.config, slot.path, self.calls)
        self.pending = NothingWaits(slot.path)
        self.direct = DirectRooms(self.client, self.raw, self.config.user_id, self._ready)
        self._core = core
        self.http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=120, sock_connect=15), trace_configs=[self.calls.trace_config()]
        )
        self.media = MediaFetcher(self.http, self.config.homeserver, self.config.download_deadline)
        await log_in(self.client, login, slot.path)
        await self.direct.load()
        await self.mutes.import_file(slot.path)
        sync = StateSync(self)
        await sync.once(first=True)  # the rooms, their state and members before the first job
        self._stopping.clear()
        self._syncer = asyncio.create_task(sync.run(), name="vigil-matrix-state-sync")
        self._offerer = asyncio.create_task(self._offer_reactions(), name="vigil-matrix-reactions")
        self.connected = True
        log.info(
            "matrix: sending as %s from worker device %s (slot %d; the ingest reads the rooms)",
            self.me,
            self.client.device_id,
            slot.number,
        )

    async def _import_old_mutes(self) -> None:
        """Mutes an install from before the store kept in files (its own, and any worker slot's,
        even a slot no worker uses now) move into the store once, so none is lost on upgrade."""
        slots = self.directory.parent / WORKERS_DIR
        folders = [self.directory, *(sorted(p for p in slots.iterdir() if p.is_dir()) if slots.is_dir() else [])]
        for folder in folders:
            await self.mutes.import_file(folder)

    async def _follow_policy_rooms(self) -> None:
        await self._ready.wait()
        await self.policy.start(self.config.policy_rooms)

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

    # --- sending ---------------------------------------------------------------------------------

    async def _language(self, room_id: str) -> str | None:
        try:
            if room_id in self.direct.user_of:
                contact = await self.store.get_contact(NAME, self.direct.user_of[room_id])
                return contact.language if contact else None
            language = (await self.core.group_settings(ChatRef(NAME, room_id))).language
        except Exception:
            return None
        return language if isinstance(language, str) else None

    def _choose_line(self, language: str | None) -> str:
        """The line above an alert's choices, in the reader's language (from Vigil's catalogs)."""
        if self._core is None:
            return "To choose, react with the number or send the command:"
        return str(self.core.translator(language).gettext("To choose, react with the number or send the command:"))

    async def _send(
        self,
        room_id: str,
        message: OutgoingMessage,
        *,
        notice: bool,
        reply_to: str | None = None,
        txn: str | None = None,
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
        event_id = sent.event_id if isinstance(sent, RoomSendResponse) else None
        if not bounds.event_id(event_id):
            raise PlatformError(f"send a message in {room_id}: the homeserver answered no valid event id")
        if rendered.keys:
            self._buttons.put(event_id, rendered.keys)
            await self.store.set_state(BUTTONS_KEY + event_id, json.dumps(rendered.keys, ensure_ascii=False))
            if self.offer_reactions:
                self._offers.put_nowait((room_id, event_id, list(rendered.keys), time.monotonic()))
        return event_id

    async def _after_the_hits(self, until: float) -> None:
        """Returns once no image is being checked, redacted or alerted about (or at ``until``, monotonic)."""
        while (remaining := until - time.monotonic()) > 0:
            if self._core is not None:
                try:
                    async with asyncio.timeout(remaining):
                        await self._core.drain()  # every work item and its actions done
                except TimeoutError:
                    return
            if self._redacting == 0:  # redactions asked for outside the pipeline (an admin's choice)
                return
            await asyncio.sleep(OFFER_POLL)

    async def _offer_reactions(self) -> None:
        """React with each choice's key under an alert, so a moderator only has to tap one.

        Each reaction is an event the homeserver must store: before each one, it waits until no image
        is being checked, redacted or alerted about (a burst, or the next image at a steady rate), so
        redactions come first and never queue behind reactions at the homeserver (each alert's
        reactions wait at most OFFER_DELAY seconds after the alert, however many alerts are waiting).
        """
        while True:
            self._offering = False
            room_id, event_id, keys, sent = await self._offers.get()
            self._offering = True
            until = sent + OFFER_DELAY  # from the alert's sending: alerts queued behind each other do not add up
            for key in keys:
                await self._after_the_hits(until)
                content = {"m.relates_to": {"rel_type": "m.annotation", "event_id": event_id, "key": key}}
                try:
                    await call(
                        "offer a reaction",
                        self.client.room_send(room_id, "m.reaction", content, ignore_unverified_devices=True),
                    )
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
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise Transient(f"upload {filename}: {exc}") from None
        uploaded = check(uploaded, f"upload {filename}")
        content: dict[str, Any] = {
            "msgtype": "m.file",
            "body": caption or filename,
            "filename": filename,
            "info": {"mimetype": mime, "size": len(data)},
        }
        if encrypted and keys:
            content["file"] = {**keys, "url": uploaded.content_uri, "mimetype": mime}
        else:
            content["url"] = uploaded.content_uri
        await call(
            f"send {filename}",
            self.client.room_send(room_id, "m.room.message", content, ignore_unverified_devices=True),
            right="send messages",
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
        unchecked = (media.extra or {}).get("unchecked")
        if unchecked:
            raise PlatformError(str(unchecked))  # e.g. inline images beyond the bound: reported, not fetched
        if media.size is not None and media.size > max_bytes:
            raise TooManyBytes(media.size, max_bytes)  # as the event declares it: nothing downloaded
        assert self.media is not None
        extra = media.extra or {}
        picture = (event.chat.chat_id, event.message_id, event.variant)  # its retries share one deadline
        mxc = str(extra.get("mxc") or media.file_id)
        # the file a redaction must also quarantine, as the job named it (a worker never saw the event)
        related = self._related.get((event.chat.chat_id, event.message_id)) or Related(sender=event.sender.user_id)
        if mxc not in related.mxcs:
            related.mxcs.append(mxc)
        self._related.put((event.chat.chat_id, event.message_id), related)
        begun = time.perf_counter()
        self._stamp(event.message_id, "fetching", begun)
        try:
            data = await self.media.download(mxc, self.client.access_token, max_bytes, picture=picture)
        finally:
            self._waited(event.message_id, begun)
        self._stamp(event.message_id, "fetched", time.perf_counter())
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
            self.client.room_redact(
                room_id, event_id, reason=REDACT_REASON, tx_id=self._txn("redact", room_id, event_id)
            ),
            right="remove messages (redact)",
        )

    def _stamp(self, message_id: str, stage: str, when: float) -> None:
        """The first time this message reached a stage, for the per-stage latency (HitClock)."""
        clock = self.timings.get(message_id)
        if isinstance(clock, HitClock) and clock.redacted is None and getattr(clock, stage) is None:
            setattr(clock, stage, when)

    def _waited(self, message_id: str, begun: float) -> None:
        """Counts a homeserver call made for this message into its clock (until it is redacted)."""
        clock = self.timings.get(message_id)
        if isinstance(clock, HitClock) and clock.redacted is None:
            clock.waited += time.perf_counter() - begun

    async def delete(self, chat_id: str, message_id: str) -> None:
        begun = time.perf_counter()
        self._stamp(message_id, "redacting", begun)
        self._redacting += 1
        try:
            related = self._related.get((chat_id, message_id))
            if related is None or not related.complete:  # not seen in this run (a restart): ask the server
                found = await self._find_related(chat_id, message_id)
                if related is not None:
                    found.edits = list(dict.fromkeys(found.edits + related.edits))
                    found.mxcs = list(dict.fromkeys(found.mxcs + related.mxcs))
                related = found
            await self._redact(chat_id, message_id)
        finally:
            self._redacting -= 1
        self._waited(message_id, begun)
        clock = self.timings.get(message_id)
        if isinstance(clock, HitClock) and clock.redacted is None:
            clock.redacted = time.perf_counter()
            log.debug("matrix: redacted %s %.0f ms after it arrived", message_id, (clock.latency or 0) * 1000)
        for edit in related.edits:
            try:
                await self._redact(chat_id, edit)
            except PlatformError as exc:
                log.warning("matrix: room %s: could not redact edit %s of %s: %s", chat_id, edit, message_id, exc)
        if self.config.admin_token:
            # its other pictures may still wait to be checked: quarantine once they are (Synapse
            # quarantines every copy of a file at once, so a download would fail and go unchecked)
            self._spawn(self._quarantine_when_checked(chat_id, message_id, related.mxcs, related.sender), "quarantine")
        else:
            await self._quarantine(chat_id, message_id, related.mxcs, related.sender)

    async def _quarantine_when_checked(self, room_id: str, message_id: str, mxcs: list[str], sender: str) -> None:
        waited = 0.0
        while waited < QUARANTINE_WAIT:
            pending = await self.store.pending_work(NAME)
            if not any(item.chat_id == room_id and item.message_id == message_id for item in pending):
                break
            await asyncio.sleep(0.5)
            waited += 0.5
        await self._quarantine(room_id, message_id, mxcs, sender)

    async def _find_related(self, room_id: str, message_id: str) -> Related:
        related = Related()
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
                "GET",
                f"/_matrix/client/v1/rooms/{quote(room_id)}/relations/{quote(message_id)}/m.replace?limit=100",
                what="read edits",
            )
        except PlatformError as exc:
            log.warning("matrix: room %s: could not read the edits of %s: %s", room_id, message_id, exc)
            return related
        for raw in page.get("chunk") or []:
            if (
                not isinstance(raw, dict)
                or raw.get("sender") != related.sender
                or not isinstance(raw.get("event_id"), str)
            ):
                continue
            related.edits.append(raw["event_id"])
            clear = self._decrypted(room_id, Event.parse_event(raw)) if raw.get("type") == "m.room.encrypted" else None
            for mxc in mxcs_of(getattr(clear, "source", None) or raw):
                if mxc not in related.mxcs:
                    related.mxcs.append(mxc)
        self._related.put((room_id, message_id), related)
        return related

    async def _quarantine(self, room_id: str, message_id: str, mxcs: list[str], sender: str) -> None:
        """A redaction hides the message; the file stays downloadable until quarantined.

        Only media the redacted events themselves carried (strictly valid mxc URIs), and not a file
        the homeserver says someone else uploaded: a member cannot get a moderator's file taken
        down by naming it as the thumbnail of a blocked image.
        """
        mxcs = [m for m in mxcs if bounds.mxc(m)]
        if not mxcs:
            return
        left: list[str] = []
        if self.config.admin_token:
            assert self.media is not None
            for mxc in mxcs:
                uploader = await self.media.uploader(mxc, self.config.admin_token)
                if uploader is not None and sender and uploader != sender:
                    log.warning(
                        "matrix: room %s: message %s named a file uploaded by someone else; not quarantined",
                        room_id,
                        message_id,
                    )
                    continue
                try:
                    await self.media.quarantine(mxc, self.config.admin_token)
                except PlatformError as exc:
                    log.error("matrix: room %s: could not quarantine %s: %s", room_id, mxc, exc)
                    left.append(mxc)
        else:
            left = list(mxcs)
        if left:
            self._unquarantined.put(message_id, left)
            log.warning(
                "matrix: room %s: message %s was redacted but its media stays on the homeserver until an admin "
                "quarantines it: %s",
                room_id,
                message_id,
                " ".join(left),
            )

    def media_left(self, message_id: str) -> tuple[str, ...]:
        """The files (mxc URIs) a redaction of this message left on the homeserver, for the alert:
        empty when they were quarantined (or the message is unknown)."""
        return tuple(self._unquarantined.get(message_id) or ())

    async def _power(self, room_id: str, *, fresh: bool = False) -> RoomPower:
        """The room's power rules, from the state the sync keeps; read in full when it is not known
        (or ``fresh``: before Vigil writes the levels back, from the server's own copy)."""
        known = None if fresh else self.state.power(room_id)
        if known is not None:
            return known
        generation = self._power_gen.get(room_id, 0)
        got = await call(f"read the state of {room_id}", self.client.room_get_state(room_id))
        events = [e for e in got.events if isinstance(e, dict)]
        if self._power_gen.get(room_id, 0) == generation:  # nothing changed meanwhile: kept, then followed
            self.state.seed(room_id, events)
        return room_power(events)

    def _state_event(self, room_id: str, source: dict[str, Any]) -> None:
        """A state event (or a redaction) the sync showed: the room's power rules follow it at once."""
        self.state.apply(room_id, source)
        self._power_gen[room_id] = self._power_gen.get(room_id, 0) + 1

    def _invalidate(self, room_id: str) -> None:
        """Forget the room's state (Vigil changed it, or left): read in full when next needed."""
        self.state.forget(room_id)
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
        earlier = await self.mutes.get(chat_id, user_id)
        previous = earlier.previous if earlier is not None else users.get(user_id)
        level = power.mute_level
        await self.mutes.put(Mute(chat_id, user_id, level, previous, until.astimezone(UTC)))
        users[user_id] = level
        levels["users"] = users
        self._invalidate(chat_id)  # Vigil's own changes do not come back through its sync
        await call(
            f"mute {user_id}",
            self.client.room_put_state(chat_id, "m.room.power_levels", levels),
            right="change power levels (to mute)",
        )

    async def unrestrict(self, chat_id: str, user_id: str) -> None:
        """Give back the level the member had before Vigil muted them (unless an admin changed it since)."""
        await self._give_back(chat_id, user_id, await self.mutes.take(chat_id, user_id))

    async def _give_back(self, chat_id: str, user_id: str, record: Mute | None) -> None:
        """Lifts the mute this process took from the store; put back if the lift fails (retried later)."""
        try:
            await self._lift(chat_id, user_id, record)
        except (Exception, asyncio.CancelledError):
            if record is not None:
                await self.mutes.restore(record)
            raise

    async def _lift(self, chat_id: str, user_id: str, record: Mute | None) -> None:
        power = await self._power(chat_id, fresh=True)
        levels = dict(power.levels or {})
        users = dict(levels.get("users") or {})
        current = users.get(user_id)
        if record is not None and current != record.level:
            return  # someone else changed it: theirs stands (the record is gone)
        if record is None and (current is None or int(current) >= power.event_level("m.room.message")):
            return  # not muted
        if record is not None and record.previous is not None:
            users[user_id] = record.previous
        else:
            users.pop(user_id, None)
        levels["users"] = users
        self._invalidate(chat_id)
        await call(
            f"unmute {user_id}",
            self.client.room_put_state(chat_id, "m.room.power_levels", levels),
            right="change power levels (to unmute)",
        )

    async def _lift_mutes(self) -> None:
        """Lift mutes whose time ran out (also those that ran out while Vigil was down)."""
        await asyncio.sleep(1)
        while True:
            try:
                await self._lift_expired()
            except StoreError as exc:
                log.error("matrix: the timed mutes could not be read from the store (retried later): %s", exc)
            await asyncio.sleep(self.config.mute_check_interval)

    async def _lift_expired(self) -> None:
        for mute in await self.mutes.expired():
            # a conditional delete: of two processes (or a mute made again meanwhile) only one lifts it
            if await self.mutes.take(mute.room, mute.user, mute.until) is None:
                continue
            try:
                await self._give_back(mute.room, mute.user, mute)
                log.info("matrix: room %s: the mute of %s ran out and was lifted", mute.room, mute.user)
            except PlatformError as exc:
                log.warning(
                    "matrix: room %s: lifting the mute of %s failed (retried later): %s", mute.room, mute.user, exc
                )

    async def ban(self, chat_id: str, user_id: str) -> None:
        self._invalidate(chat_id)
        await call(f"ban {user_id}", self.client.room_ban(chat_id, user_id, reason=BAN_REASON), right="ban members")
        await self.mutes.take(chat_id, user_id)

    async def kick(self, chat_id: str, user_id: str) -> None:
        self._invalidate(chat_id)
        await call(
            f"kick {user_id}", self.client.room_kick(chat_id, user_id, reason=BAN_REASON), right="remove members (kick)"
        )

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

    def bridged(self, chat_id: str, user_id: str) -> str:
        """The network of a sender bridged into the room (e.g. "whatsapp"), or ""."""
        return self.bridges.network(chat_id, user_id)

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

    async def event_reports(self, after: int, page_size: int) -> list[EventReport] | None:
        """Reports members made to the homeserver, numbered above ``after``, oldest first
        (bot/platforms/matrix_reports.py); None when Vigil has no admin token to read them."""
        if not self.config.admin_token or self.http is None:
            return None
        return await read_event_reports(
            self.http, self.config.homeserver, self.config.admin_token, after=after, page_size=page_size
        )
