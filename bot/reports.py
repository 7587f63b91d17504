"""Private reports: a member tells a group's admins about a harmful message without the group
seeing who did.

A report comes in as a command in reply to the message (Telegram ``/report``, Matrix ``!vigil
report``; the command message is deleted first, so the group never sees it), as the message's
link sent to Vigil privately, or (Matrix) as a report a client made to the homeserver
(bot/platforms/matrix_reports.py). The group's admins get a private alert in their language:
which message (a link, never the image), who reported it, when; and three choices: delete the
message, block it (its kept hashes go on the group's block list, so copies are caught too),
dismiss. One alert per message, however many report it; members the admins ignore
(``/vigil ignorereports``) and reports over the rate limits (``[reports]``) are dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from bot.actions import Actions
from bot.admin_delivery import Delivery, dm_admin
from bot.admins import Admins
from bot.buttons import ReportChoice, ReportVerb, encode
from bot.circles import Circles
from bot.config import ReportsConfig
from bot.entries import EntrySource, EntryWriter
from bot.errors import StoreError
from bot.events import ButtonPressed, ChatRef, CommandIssued, UserRef
from bot.group_settings import SettingsLookup
from bot.i18n import Translator, Translators
from bot.platforms.base import Button, OutgoingMessage, Platform
from bot.platforms.errors import PlatformError
from bot.platforms.matrix_reports import EventReport
from bot.platforms.retries import with_retries
from bot.report_links import MessageLink, message_link, parse_message_link
from bot.rich_text import clean_name
from bot.scan_record import record_command
from bot.store.protocol import Store
from bot.store.reports import ReportRecord, ReportSource, ReportState
from bot.values import ListKind

log = logging.getLogger("vigil.reports")

REPORT_VERB = "report"
IGNORE_VERBS = ("ignorereports", "unignorereports")
MAX_LINK_TRIERS = 10_000  # people whose recent reports by link are counted in memory
RESUME_HOURS = 48  # at start, reports this recent whose alerts a stop cut short are alerted
RESUME_AT_MOST = 200


class KeptFrame(Protocol):
    """One frame's hashes as the window of seen images keeps them (bot/store/seen.py: SeenFrame)."""

    @property
    def pdq(self) -> str | None: ...
    @property
    def pdq_quality(self) -> int | None: ...
    @property
    def phash(self) -> str | None: ...


class KeptImage(Protocol):
    """What was kept of one posted image (bot/store/seen.py: SeenImage): its file's SHA-256 and its frames."""

    @property
    def sha256(self) -> str | None: ...
    @property
    def frames(self) -> Sequence[KeptFrame]: ...


class KeptHashes(Protocol):
    """The hashes Vigil kept of an image it saw posted (the sweep's window; the store's ``seen_image``
    has this shape), or None when nothing was kept for that message (too old, never an image, the
    window is off)."""

    async def seen_image(self, platform: str, chat_id: str, message_id: str) -> KeptImage | None: ...


class NoKeptHashes:
    """Until a store of seen images is wired: nothing is kept, so Block is unavailable."""

    async def seen_image(self, platform: str, chat_id: str, message_id: str) -> KeptImage | None:
        return None


def kept_entries(image: KeptImage) -> list[dict[str, Any]]:
    """One list entry's hashes per distinct frame (by PDQ); the file's SHA-256 goes with the first."""
    out: list[dict[str, Any]] = []
    seen: set[str | None] = set()
    for frame in image.frames:
        if frame.pdq in seen or (frame.pdq is None and frame.phash is None):
            continue
        seen.add(frame.pdq)
        out.append({"pdq": frame.pdq, "pdq_quality": frame.pdq_quality, "phash": frame.phash, "sha256": None})
    if out:
        out[0]["sha256"] = image.sha256
    elif image.sha256:  # a file kept by its SHA-256 alone still matches exact copies
        out.append({"pdq": None, "pdq_quality": None, "phash": None, "sha256": image.sha256})
    return out


class EventReportReader(Protocol):
    """An adapter's reader of reports members made to their homeserver (Matrix: bot/platforms/matrix_reports.py):
    those numbered above ``after``, oldest first; None when it cannot read them (no admin token)."""

    async def __call__(self, after: int, page_size: int) -> Sequence[EventReport] | None: ...


class ReportOutcome(StrEnum):
    """What became of one report (logged, and what the reporter is told)."""

    ALERTED = "alerted"  # the admins were told
    REPEAT = "repeat"  # the message was reported already: no second alert
    IGNORED = "ignored"  # the admins ignore this member's reports: dropped silently
    RATE_LIMITED = "rate_limited"  # too many reports from the member or the chat in the window
    UNKNOWN_CHAT = "unknown_chat"  # not a group Vigil protects
    NOT_MEMBER = "not_member"  # a report by link from someone who is not in that group
    OFF = "off"  # [reports] enabled = false


@dataclass(frozen=True)
class Report:
    """A report as it reaches the core, from any intake."""

    chat: ChatRef
    message_id: str
    reporter: UserRef
    source: ReportSource


class Reports:
    """Taking reports, alerting the admins, and their choices on the alert."""

    def __init__(
        self,
        *,
        config: ReportsConfig,
        platforms: Mapping[str, Platform],
        store: Store,
        settings: SettingsLookup,
        admins: Admins,
        translators: Translators,
        actions: Actions,
        entries: EntryWriter,
        kept: KeptHashes,
        circles: Circles | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config = config
        self.platforms = platforms
        self.store = store
        self.settings = settings
        self.admins = admins
        self.translators = translators
        self.actions = actions
        self.entries = entries
        self.kept = kept
        self.circles = circles  # a block from a report reaches the group's circle, as a /block does
        self.clock = clock
        # one report at a time per chat: the rate limits' counts and the one-alert-per-message rule hold
        # when members report at once (commands are handled concurrently); a lock goes when unused
        self._locks: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = weakref.WeakValueDictionary()
        self._link_tries: dict[tuple[str, str], list[float]] = {}  # reports by link per person (monotonic times)

    # --- intake --------------------------------------------------------------------------------

    @staticmethod
    def is_report(cmd: CommandIssued) -> bool:
        """``/report`` (Telegram), ``!vigil report`` (Matrix, in a room), ``!vigil report LINK`` (a direct room)."""
        return cmd.verb == REPORT_VERB or (cmd.verb == "vigil" and bool(cmd.args) and cmd.args[0].lower() == "report")

    async def command(self, cmd: CommandIssued) -> ReportOutcome | None:
        """A report typed by a member: in a group in reply to the message, or privately with its link."""
        if cmd.private:
            return await self._by_link(cmd)
        platform = self.platforms[cmd.chat.platform]
        # first of all, so that the group does not see who reported (whatever becomes of the report)
        try:
            await with_retries(
                f"delete report command in {cmd.chat.chat_id}",
                lambda: platform.delete(cmd.chat.chat_id, cmd.message_id),
            )
        except PlatformError as exc:
            log.warning("chat %s: the report command could not be deleted: %s", cmd.chat.chat_id, exc)
        t = self.translators(cmd.sender.language)
        if cmd.reply_to_id is None:
            await self._tell(
                cmd.sender,
                t.gettext(
                    "To report a message to the group's admins, reply to it with /report (the group does not see "
                    "who reported), or send Vigil the message's link here: /report LINK"
                ),
            )
            return None
        # the report was made in the group: Vigil is in it, so it protects it (a group with no image yet)
        await self.store.upsert_group(cmd.chat.platform, cmd.chat.chat_id, cmd.chat.title)
        outcome = await self.report(Report(cmd.chat, cmd.reply_to_id, cmd.sender, ReportSource.REPLY))
        await self._acknowledge(cmd.sender, outcome, t)
        return outcome

    def _link_try(self, user: UserRef) -> bool:
        """Counts a report by link before any lookup on the platform (each costs a call there): at most
        twice ``per_member`` a window per person, whatever the groups; False when over."""
        now = time.monotonic()
        window = self.config.window_minutes * 60
        key = (user.platform, user.user_id)
        tries = [t for t in self._link_tries.pop(key, []) if now - t < window]
        over = len(tries) >= 2 * self.config.per_member
        if not over:
            tries.append(now)
        self._link_tries[key] = tries  # most recent last: the oldest person goes first when full
        while len(self._link_tries) > MAX_LINK_TRIERS:
            self._link_tries.pop(next(iter(self._link_tries)))
        return not over

    async def _by_link(self, cmd: CommandIssued) -> ReportOutcome | None:
        t = self.translators(cmd.sender.language)
        if not self._link_try(cmd.sender):
            await self._acknowledge(cmd.sender, ReportOutcome.RATE_LIMITED, t, chat_id=cmd.chat.chat_id)
            return ReportOutcome.RATE_LIMITED
        args = [a for a in cmd.args if a.lower() != "report"] if cmd.verb == "vigil" else list(cmd.args)
        link = parse_message_link(args[0]) if len(args) == 1 else None
        if link is None or link.platform != cmd.chat.platform:
            await self._tell(
                cmd.sender,
                t.gettext(
                    "Send the message's link after /report: in Telegram, open the message's menu and copy its link "
                    "(t.me/c/... or t.me/NAME/...); in Matrix, share the message and copy its link "
                    "(matrix.to/#/!room:server/$event)."
                ),
                chat_id=cmd.chat.chat_id,
            )
            return None
        chat_id = await self._chat_of(link)
        outcome = ReportOutcome.UNKNOWN_CHAT
        if chat_id is not None and await self.store.get_group(link.platform, chat_id) is not None:
            outcome = ReportOutcome.NOT_MEMBER
            if await self._is_member(link.platform, chat_id, cmd.sender.user_id):
                report = Report(ChatRef(link.platform, chat_id), link.message_id, cmd.sender, ReportSource.LINK)
                outcome = await self.report(report)
        await self._acknowledge(cmd.sender, outcome, t, chat_id=cmd.chat.chat_id)
        return outcome

    async def _chat_of(self, link: MessageLink) -> str | None:
        if link.chat_id is not None:
            return link.chat_id
        lookup = getattr(self.platforms.get(link.platform), "chat_id_of", None)  # Telegram: a public group's @name
        if lookup is None or link.username is None:
            return None
        try:
            found = await lookup(link.username)
        except PlatformError as exc:
            log.info("report by link: @%s could not be looked up: %s", link.username, type(exc).__name__)
            return None
        return found if isinstance(found, str) else None

    async def _is_member(self, platform_name: str, chat_id: str, user_id: str) -> bool:
        platform = self.platforms.get(platform_name)
        if platform is None:
            return False
        try:
            return bool(await with_retries(f"membership in {chat_id}", lambda: platform.is_member(chat_id, user_id)))
        except PlatformError as exc:
            log.info("report by link: membership in %s unknown (%s); refused", chat_id, type(exc).__name__)
            return False

    async def report(self, report: Report) -> ReportOutcome:
        """One report, from any intake: dropped, a repeat, or an alert to the group's admins."""
        async with self._chat_lock(report.chat.platform, report.chat.chat_id):
            return await self._report(report)

    def _chat_lock(self, platform: str, chat_id: str) -> asyncio.Lock:
        lock = self._locks.get((platform, chat_id))
        if lock is None:
            lock = self._locks[(platform, chat_id)] = asyncio.Lock()
        return lock

    async def _report(self, report: Report) -> ReportOutcome:
        chat, reporter = report.chat, report.reporter
        if not self.config.enabled:
            return ReportOutcome.OFF
        if await self.store.get_group(chat.platform, chat.chat_id) is None:
            return ReportOutcome.UNKNOWN_CHAT
        if await self.store.is_ignored_reporter(chat.platform, chat.chat_id, reporter.user_id):
            await self._dropped(report, ReportOutcome.IGNORED)
            return ReportOutcome.IGNORED
        since = self.clock() - timedelta(minutes=self.config.window_minutes)
        mine, chats = await self.store.report_counts(chat.platform, chat.chat_id, reporter.user_id, since)
        if mine >= self.config.per_member or chats >= self.config.per_chat:
            await self._dropped(report, ReportOutcome.RATE_LIMITED)
            return ReportOutcome.RATE_LIMITED
        added = await self.store.add_report(
            chat.platform, chat.chat_id, report.message_id, reporter.user_id, str(report.source)
        )
        if added.report.alerted_at is not None:
            log.info("chat %s: report %d made again; no second alert", chat.chat_id, added.report.id)
            return ReportOutcome.REPEAT
        # a report made before a stop, and not yet alerted, is alerted now (whoever repeats it)
        await self._alert(added.report, reporter if added.new_report else None)
        await self.store.mark_report_alerted(added.report.id)
        log.info("chat %s: report %d alerted to the admins", chat.chat_id, added.report.id)
        return ReportOutcome.ALERTED

    async def resume(self) -> int:
        """At start: the reports whose alerts a stop cut short (made within ``RESUME_HOURS``) are alerted
        now, to the admins not told yet; returns how many."""
        since = self.clock() - timedelta(hours=RESUME_HOURS)
        done = 0
        for report in await self.store.unalerted_reports(since, RESUME_AT_MOST):
            if report.platform not in self.platforms:
                continue
            async with self._chat_lock(report.platform, report.chat_id):
                await self._alert(report, None)
                await self.store.mark_report_alerted(report.id)
            log.info("chat %s: report %d alerted after a restart", report.chat_id, report.id)
            done += 1
        return done

    async def _dropped(self, report: Report, outcome: ReportOutcome) -> None:
        """Vigil's record that it dropped a report (the group's audit log, admins only)."""
        what = f"report of message {report.message_id} dropped: {outcome}"
        await record_command(self.store, report.chat, report.reporter.user_id, what[:500])
        log.info("chat %s: a report was dropped (%s)", report.chat.chat_id, outcome)

    # --- reports made to the homeserver (Matrix) ---------------------------------------------------

    @staticmethod
    def homeserver_key(platform: str) -> str:
        """The state key holding the number of the last homeserver report handled."""
        return f"reports:{platform}:homeserver:last"

    async def follow_homeserver(self, platform: str, reader: EventReportReader) -> None:
        """Reads the homeserver's reports every ``homeserver_poll_seconds`` until stopped; returns
        at once when the adapter cannot read them."""
        while True:
            try:
                if await self.read_homeserver(platform, reader) is None:
                    log.info("%s: no admin token: reports made to the homeserver are not read", platform)
                    return
            except (PlatformError, StoreError) as exc:
                log.warning("%s: reading the homeserver's reports failed: %s", platform, exc)
            await asyncio.sleep(self.config.homeserver_poll_seconds)

    async def read_homeserver(self, platform: str, reader: EventReportReader) -> int | None:
        """One read: each new report is handled (rooms Vigil does not protect are left), and its
        number kept after it, so none is handled twice; returns how many were read (None: cannot)."""
        key = self.homeserver_key(platform)
        stored = await self.store.get_state(key) or "0"
        last = int(stored) if stored.isdigit() else 0
        found = await reader(last, self.config.homeserver_page_size)
        if found is None:
            return None
        for item in found:
            if item.id <= last:
                continue
            chat = ChatRef(platform, item.room_id)
            await self.report(Report(chat, item.event_id, UserRef(platform, item.user_id), ReportSource.HOMESERVER))
            await self.store.set_state(key, str(item.id))
            last = item.id
        return len(found)

    # --- telling people ----------------------------------------------------------------------------

    async def _tell(self, user: UserRef, text: str, *, chat_id: str | None = None) -> None:
        """A private word to the reporter; nothing if they cannot be reached (never in the group)."""
        platform = self.platforms[user.platform]
        try:
            if chat_id is not None:
                await platform.send_chat(chat_id, OutgoingMessage(text))
            else:
                await platform.send_private(user.user_id, OutgoingMessage(text))
        except PlatformError as exc:
            log.info("reporter could not be told privately: %s", type(exc).__name__)

    async def _acknowledge(
        self, user: UserRef, outcome: ReportOutcome, t: Translator, *, chat_id: str | None = None
    ) -> None:
        if outcome in (ReportOutcome.IGNORED, ReportOutcome.OFF):
            return  # dropped silently
        text: str | None = {
            ReportOutcome.ALERTED: t.gettext(
                "Thank you. The group's admins were told about the message; Vigil does not tell the group who "
                "reported it."
            ),
            ReportOutcome.REPEAT: t.gettext("Thank you. This message was reported already; the admins know about it."),
            ReportOutcome.RATE_LIMITED: t.gettext(
                "Vigil is taking no more reports from you in this group for now. Please try again later."
            ),
        }.get(outcome)
        if text is None:  # one answer for both: whether Vigil protects a group is not told to outsiders
            text = t.gettext("You can report messages only of groups that Vigil protects and that you are a member of.")
        await self._tell(user, text, chat_id=chat_id)

    def alert_text(self, report: ReportRecord, t: Translator, group: str, reporter: str | None, kept: bool) -> str:
        """The alert: which message (a link, never the image), who reported it, when, and the choices."""
        link = message_link(report.platform, report.chat_id, report.message_id)
        where = link or t.gettext("message {message} (no link: find it by its time)", message=report.message_id)
        try:
            moment = datetime.fromisoformat(report.reported_at)
        except ValueError:
            moment = self.clock()
        lines = [
            t.gettext("A member reported a message in {group}.", group=group),
            t.gettext("Message: {where}", where=where),
            t.gettext("Reported: {when}", when=t.format_datetime(moment)),
        ]
        if reporter is not None:
            lines.append(t.gettext("Reported by: {name} (only the admins are told)", name=reporter))
        lines.append("")
        lines.append(
            t.gettext("Look at the message, then choose: Delete, Block (delete it and catch copies of it), or Dismiss.")
            if kept
            else t.gettext(
                "Vigil kept no fingerprint of this message, so Block is not available: Delete removes it by its id."
            )
        )
        return "\n".join(lines)

    def buttons(self, report_id: int, t: Translator, kept: bool) -> tuple[tuple[Button, ...], ...]:
        row = [Button(t.gettext("Delete"), encode(ReportChoice(ReportVerb.DELETE, report_id)))]
        if kept:
            row.append(Button(t.gettext("Block"), encode(ReportChoice(ReportVerb.BLOCK, report_id))))
        row.append(Button(t.gettext("Dismiss"), encode(ReportChoice(ReportVerb.DISMISS, report_id))))
        return (tuple(row),)

    async def _alert(self, report: ReportRecord, reporter: UserRef | None) -> int:
        """Each reachable admin of the group, privately, in their language; else the admin log chat
        (which names nobody). Returns how many admins were told."""
        chat = ChatRef(report.platform, report.chat_id)
        platform = self.platforms[chat.platform]
        settings = await self.settings.of(chat)
        group_record = await self.store.get_group(chat.platform, chat.chat_id)
        group = clean_name(group_record.title if group_record else None) or chat.chat_id
        image = await self.kept.seen_image(report.platform, report.chat_id, report.message_id)
        kept = image is not None and bool(kept_entries(image))
        who = None
        if reporter is not None:  # with the id: what /vigil ignorereports takes
            name = clean_name(reporter.display_name)
            ids = [f"@{clean_name(reporter.username)}"] if reporter.username else []
            ids += [reporter.user_id] if name else []
            who = (name or reporter.user_id) + (f" ({', '.join(ids)})" if ids else "")
        try:
            admins = await self.admins.of(chat)
        except PlatformError as exc:
            log.warning("chat %s: admins unknown (%s); report %d goes to the log chat", chat.chat_id, exc, report.id)
            admins = frozenset()
        already = await self.store.report_alerted_to(report.id)  # told before a stop cut the round short
        told = len(already & admins)
        for contact in await self.store.contacts(chat.platform, sorted(admins)):
            if not contact.can_dm or contact.user_id not in admins or contact.user_id in already:
                continue
            t = self.translators(contact.language or settings.language, settings.language)
            message = OutgoingMessage(
                self.alert_text(report, t, group, who, kept),
                buttons=self.buttons(report.id, t, kept),
                language=t.language,
            )
            done = await dm_admin(platform, self.store, contact.user_id, message, f"report {report.id}")
            if done.outcome is not Delivery.SENT:
                continue
            await self.store.record_report_alert(report.id, chat.platform, contact.user_id)
            told += 1
        if told == 0 and settings.logchat:
            t = self.translators(settings.language, settings.language)
            message = OutgoingMessage(
                self.alert_text(report, t, group, None, kept), buttons=self.buttons(report.id, t, kept)
            )
            try:
                await platform.send_chat(settings.logchat, message)
            except PlatformError as exc:
                log.error("report %d to the admin log chat failed: %s", report.id, exc)
        return told

    # --- the admins' choices ---------------------------------------------------------------------

    async def button(self, press: ButtonPressed, choice: ReportChoice) -> None:
        platform = self.platforms[press.chat.platform]
        t = self.translators(press.sender.language)
        report = await self.store.get_report(choice.report_id)
        if report is None or report.platform != press.chat.platform:
            await platform.answer(press, t.gettext("That button is out of date."))
            return
        group = ChatRef(report.platform, report.chat_id)
        if press.sender.user_id not in await self.admins.of(group, fresh=True):
            await platform.answer(press, t.gettext("Only this group's admins can change Vigil's settings."))
            return
        if report.state != ReportState.OPEN:
            await platform.answer(press, t.gettext("Another admin already decided."))
            return
        text = await self._choose(choice.verb, report, group, press.sender.user_id, t)
        await record_command(self.store, group, press.sender.user_id, f"button {choice.verb} on report {report.id}")
        await platform.answer(press, text)

    async def _choose(self, verb: ReportVerb, report: ReportRecord, group: ChatRef, admin: str, t: Translator) -> str:
        platform = self.platforms[group.platform]
        if verb == ReportVerb.DISMISS:
            if not await self.store.decide_report(report.id, ReportState.DISMISSED, admin):
                return t.gettext("Another admin already decided.")
            return t.gettext("Dismissed: the message stays.")
        added: list[int] = []
        if verb == ReportVerb.BLOCK:
            image = await self.kept.seen_image(report.platform, report.chat_id, report.message_id)
            hashes = kept_entries(image) if image is not None else []
            if not hashes:
                return t.gettext(
                    "Vigil kept no fingerprint of this message, so Block is not available: Delete removes it by its id."
                )
            lst = await self.store.group_list(group.platform, group.chat_id, ListKind.BLOCK)
            source = EntrySource(admin, group.platform, group.chat_id, f"report {report.id}")
            for one in hashes:
                added.append(await self.entries.add_hashes(lst, one, source))
        result = await self.actions.delete(platform, group.chat_id, report.message_id)
        state = ReportState.BLOCKED if verb == ReportVerb.BLOCK else ReportState.DELETED
        await self.store.decide_report(report.id, state, admin)
        if verb == ReportVerb.BLOCK:
            if self.circles is not None:
                await self.circles.blocked(group, admin)
            entry = ", ".join(str(i) for i in added)
            return (
                t.gettext("Blocked (entry {entry}) and deleted: copies of it will be removed too.", entry=entry)
                if result.done
                else t.gettext(
                    "Blocked (entry {entry}), but Vigil could not delete the message: please delete it by hand.",
                    entry=entry,
                )
            )
        return (
            t.gettext("Deleted.")
            if result.done
            else t.gettext("Vigil could not delete the message: please delete it by hand.")
        )

    # --- /vigil ignorereports, unignorereports ------------------------------------------------------

    async def ignore(self, cmd: CommandIssued, args: list[str], t: Translator, *, ignore: bool) -> str:
        """An admin's choice (the admin check came first, in bot/commands.py); returns the reply."""
        user = self._target(cmd, args)
        if user is None:
            return (
                t.gettext("Reply to a message of the member with /vigil ignorereports, or give their id.")
                if ignore
                else t.gettext("Reply to a message of the member with /vigil unignorereports, or give their id.")
            )
        if ignore:
            await self.store.ignore_reporter(cmd.chat.platform, cmd.chat.chat_id, user, cmd.sender.user_id)
        else:
            await self.store.unignore_reporter(cmd.chat.platform, cmd.chat.chat_id, user)
        await record_command(
            self.store, cmd.chat, cmd.sender.user_id, f"{'ignorereports' if ignore else 'unignorereports'} {user}"
        )
        return (
            t.gettext("Reports from {user} are ignored in this group from now on.", user=user)
            if ignore
            else t.gettext("Reports from {user} are taken again.", user=user)
        )

    @staticmethod
    def _target(cmd: CommandIssued, args: list[str]) -> str | None:
        """The member: the sender of the replied-to message, a numeric id, a Matrix user id, or a
        Telegram @username Vigil has seen (its contacts)."""
        if cmd.reply_sender is not None and not cmd.reply_sender.is_chat:
            return cmd.reply_sender.user_id
        if len(args) != 1 or len(args[0]) > 255:
            return None
        arg = args[0]
        if arg.isascii() and arg.lstrip("-").isdigit():
            return arg
        if arg.startswith("@") and ":" in arg:
            return arg
        return None
