"""What a pressed button does: an admin's choice on an alert (details, delete or keep an image under
review, ban, lift a mute, false alarm, evidence record), a group setting from the private ``/groups``
list, a protected member's answer about notices. The sender's current admin rights come first."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from bot.actions import Actions
from bot.admins import Admins
from bot.buttons import NoticeChoice, RecordChoice, RecordVerb, ReportChoice, SetChoice, decode
from bot.circles import Circles
from bot.config import MODES
from bot.entries import EntrySource, EntryWriter
from bot.events import ButtonPressed, ChatRef
from bot.evidence import export_evidence
from bot.flood import FloodGuard
from bot.group_settings import SettingsLookup
from bot.guidance.resources import REGIONS
from bot.i18n import LANGUAGES, Translator, Translators
from bot.notify import Notifier
from bot.platforms.base import Platform
from bot.platforms.errors import PlatformError
from bot.protect_chat import ProtectChat
from bot.reports import Reports
from bot.scan_record import record_command
from bot.store.protocol import Store
from bot.store.records import AuditRecord
from bot.values import ListKind

log = logging.getLogger("vigil.commands")

SETTABLE = {"mode": MODES, "lang": LANGUAGES, "region": REGIONS}  # what a /groups button may set


class Presses:
    def __init__(
        self,
        *,
        platforms: Mapping[str, Platform],
        store: Store,
        settings: SettingsLookup,
        admins: Admins,
        translators: Translators,
        actions: Actions,
        notifier: Notifier,
        entries: EntryWriter,
        protect_chat: ProtectChat,
        reports: Reports | None = None,
        flood: FloodGuard | None = None,
        circles: Circles | None = None,
    ) -> None:
        self.platforms = platforms
        self.store = store
        self.settings = settings
        self.admins = admins
        self.translators = translators
        self.actions = actions
        self.notifier = notifier
        self.entries = entries
        self.protect_chat = protect_chat
        self.reports = reports
        self.flood = flood
        self.circles = circles

    async def button(self, press: ButtonPressed) -> None:
        platform = self.platforms[press.chat.platform]
        t = self.translators(press.sender.language)
        choice = decode(press.data)
        if isinstance(choice, NoticeChoice):  # a member's answer about notices for their protected photos
            await self.protect_chat.button(press, choice)
            return
        if isinstance(choice, ReportChoice):  # an admin's choice on a member's report (bot/reports.py)
            if self.reports is None:
                await platform.answer(press, t.gettext("That button is out of date."))
            else:
                await self.reports.button(press, choice)
            return
        if isinstance(choice, SetChoice):
            group = ChatRef(press.chat.platform, choice.chat_id)
            if press.sender.user_id not in await self.admins.of(group, fresh=True):
                await platform.answer(press, t.gettext("Only this group's admins can change Vigil's settings."))
                return
            if choice.key not in SETTABLE or choice.value not in SETTABLE[choice.key]:
                await platform.answer(press, t.gettext("That button is out of date."))
                return
            await self.store.update_settings(group.platform, group.chat_id, {choice.key: choice.value})
            await record_command(self.store, group, press.sender.user_id, f"settings {choice.key}={choice.value}")
            await platform.answer(press, t.gettext("Mode set to {mode}.", mode=choice.value))
            return
        record = await self.store.audit_record(choice.record_id) if choice is not None else None
        if choice is None or record is None:
            await platform.answer(press, t.gettext("That button is out of date."))
            return
        group = ChatRef(record.platform, record.chat_id)
        if press.sender.user_id not in await self.admins.of(group, fresh=True):
            await platform.answer(press, t.gettext("Only this group's admins can change Vigil's settings."))
            return
        if choice.verb == RecordVerb.DETAILS:  # the second message of an alert, where the choice was made
            settings = await self.settings.of(group)
            # a protected person is never named in a group chat (the group itself, or its admin log chat)
            in_group = press.chat.chat_id in (group.chat_id, settings.logchat)
            message = await self.notifier.details(
                record, self.translators(press.sender.language, settings.language), may_name=not in_group
            )
            await record_command(self.store, group, press.sender.user_id, f"button {choice.verb} on record {record.id}")
            await platform.answer(press, "")  # only acknowledges: the answer is the message below
            try:
                await platform.send_chat(press.chat.chat_id, message)
            except PlatformError as exc:
                log.warning("details for record %s to %s failed: %s", record.id, press.chat.chat_id, exc)
            return
        text = await self._button_action(choice, record, group, press, t)
        await record_command(self.store, group, press.sender.user_id, f"button {choice.verb} on record {record.id}")
        await platform.answer(press, text)

    async def _button_action(
        self, choice: RecordChoice, record: AuditRecord, group: ChatRef, press: ButtonPressed, t: Translator
    ) -> str:
        platform = self.platforms[group.platform]
        verb = choice.verb
        if verb in (RecordVerb.DELETE, RecordVerb.KEEP):
            review = await self.store.get_review(record.id)
            if review is None or review.state != "open" or record.message_id is None:
                return t.gettext("Another admin already decided.")
            if self.flood is not None and record.hashes:  # an admin decided: a flood's hold on it ends
                self.flood.release(record.hashes)
            if verb == RecordVerb.DELETE:
                result = await self.actions.delete(platform, group.chat_id, record.message_id)
                if not result.done:
                    return t.gettext("Vigil could not delete the message: please delete it by hand.")
                await self.store.decide_review(review.id, "deleted", press.sender.user_id)
                return t.gettext("Deleted.")
            await self.store.decide_review(review.id, "kept", press.sender.user_id)
            return t.gettext("Kept.")
        if verb == RecordVerb.BAN and record.sender_id:
            result = await self.actions.ban(platform, group.chat_id, record.sender_id, record.message_id or "")
            if result.done and self.circles is not None:  # circles with shared bans ban them in their groups too
                await self.circles.banned(group, record.sender_id, record.message_id or "")
            return (
                t.gettext("The sender was banned.")
                if result.done
                else t.gettext("Vigil could not ban the sender: check its rights.")
            )
        if verb == RecordVerb.UNMUTE and record.sender_id:
            try:
                await platform.unrestrict(group.chat_id, record.sender_id)
            except PlatformError:
                return t.gettext("Vigil could not lift the restriction: check its rights.")
            return t.gettext("The restriction was lifted.")
        if verb == RecordVerb.FALSE_POSITIVE:
            hashes = record.hashes or {}
            if not hashes:
                return t.gettext("There is nothing to add for this record.")
            lst = await self.store.group_list(group.platform, group.chat_id, ListKind.ALLOW)
            note = f"false positive, record {record.id}"
            await self.entries.add_hashes(
                lst, hashes, EntrySource(press.sender.user_id, group.platform, group.chat_id, note)
            )
            return t.gettext("Marked as a false positive: this image is on the group's allow list now.")
        if verb == RecordVerb.EXPORT:
            return await export_evidence(self.store, platform, group, press.sender.user_id, record.id, t)
        return t.gettext("That button is out of date.")
