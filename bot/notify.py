"""Telling admins: private alerts with buttons, the admin-log fallback, the owner's one-time hint.

An alert never carries the image, a thumbnail or a link to it: only what was found, who,
where, when, what Vigil did, and the guidance. It comes in two messages: a short one at once,
and the details (findings, ids, all the steps, where to report) when an admin asks for them;
the details are rebuilt from the audit record, so they work after a restart too.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime

from bot.admin_delivery import Delivery, dm_admin
from bot.admins import Admins
from bot.alert_facts import RAID
from bot.alerts import (
    AlertFacts,
    Finding,
    button_labels,
    details_buttons,
    first_buttons,
    render_alert,
    render_details,
    render_owner_notice,
    render_unreachable_owner_hint,
)
from bot.buttons import VERB_OF_KEY, RecordChoice, encode
from bot.circles import circle_findings
from bot.events import PICTURE_ROLES, SENDER_KINDS, ChatRef, MediaPosted, picture_role
from bot.group_settings import SettingsLookup
from bot.guidance.resources import Resources
from bot.i18n import Translator, Translators
from bot.metrics import NO_METRICS, Metrics
from bot.outcomes import Outcome, alert_outcome
from bot.platforms.base import Button, OutgoingMessage, Platform
from bot.platforms.errors import PlatformError
from bot.platforms.retries import with_retries
from bot.policy import FLOOD_REASON, RAID_REASON, GroupSettings
from bot.protect import Protector
from bot.store.protected import ProtectedOwner
from bot.store.protocol import Store
from bot.store.records import AuditRecord
from bot.values import DONE_BY_SANCTION, AlertOutcome, Sanction, SanctionDone, Verdict
from detectors.verdict import CLEAN

log = logging.getLogger("vigil.notify")


def _one_known(value: object, known: Iterable[str], default: str) -> str:
    """A value read back from a stored record, if it is one of ``known``."""
    return value if isinstance(value, str) and value in known else default


def findings_of(
    outcome: Outcome, synthetic_threshold: float | None = None, named: frozenset[int] = frozenset()
) -> tuple[Finding, ...]:
    """What the alert lists. ``named``: the owners of protected photos whom this alert may name
    (``Protector.nameable``); the others make one unnamed finding, whatever their number."""
    found: list[Finding] = []
    if outcome.error is not None:
        found.append(Finding("unscannable", detail=getattr(outcome.error, "reason", "error")))
    # a manipulated copy of a protected photo: the owner's name only where they may be named
    seen: set[int] = set()
    unnamed = False
    for d in outcome.derived:
        if d.photo.owner_id in seen:
            continue
        seen.add(d.photo.owner_id)
        score = min(1.0, max(0.0, d.match_fraction))
        if d.photo.owner_id in named:
            found.append(Finding("derived", detail=d.photo.owner, score=score))
        elif not unnamed:
            unnamed = True
            found.append(Finding("derived", score=score))
    if outcome.decision.reason.startswith(FLOOD_REASON):  # held as one of many copies (bot/flood.py)
        found.append(Finding("flood"))
    elif outcome.decision.reason.startswith(RAID_REASON):  # a new member's, during a raid (bot/flood.py)
        found.append(Finding("flood", detail=RAID))
    for m in outcome.matches:
        if m.kind == "block":
            found.append(Finding("hash", label=m.list_name, distance=m.distance, algorithm=m.algorithm))
    if outcome.scan is not None:
        for h in outcome.scan.hits:
            found.append(Finding("nudity", label=h.label, score=h.score))
        nsfw = outcome.scan.nsfw
        if nsfw is not None and outcome.severity != CLEAN:
            found.append(Finding("nsfw", score=nsfw))
        # evidence of AI making or editing: shown with a hit, never a reason to act on its own
        for p in outcome.scan.provenance:
            found.append(Finding("provenance", label=p.signal, detail=p.detail))
        synthetic = outcome.scan.synthetic
        if synthetic is not None and synthetic_threshold is not None and synthetic >= synthetic_threshold:
            found.append(Finding("provenance", label=f"ai-image-detector {synthetic:.0%}", score=synthetic))
    return tuple(found)


def _record_time(text: str | None) -> datetime:
    try:
        moment = datetime.fromisoformat(text or "")
    except ValueError:
        return datetime.now(UTC)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _outcome_of_record(record: AuditRecord) -> AlertOutcome:
    if record.label == "unscannable":
        return AlertOutcome.NOT_CHECKED
    if record.decision == Verdict.DELETE:
        return AlertOutcome.DELETED
    return AlertOutcome.REVIEW if record.decision == Verdict.ASK else AlertOutcome.REPORTED


def _planned_sanction(record: AuditRecord) -> SanctionDone:
    """What the record says was to be done to the sender (the details of an alert)."""
    planned = (record.actions or {}).get("sender_action") if record.decision == Verdict.DELETE else None
    if not isinstance(planned, str) or planned not in set(Sanction):
        return SanctionDone.NONE
    return DONE_BY_SANCTION.get(Sanction(planned), SanctionDone.NONE)


class Notifier:
    def __init__(
        self,
        *,
        platforms: Mapping[str, Platform],
        store: Store,
        admins: Admins,
        settings: SettingsLookup,
        translators: Translators,
        resources: Resources,
        protector: Protector,
        synthetic_threshold: float | None = None,
        metrics: Metrics = NO_METRICS,
    ) -> None:
        self.platforms = platforms
        self.store = store
        self.admins = admins
        self.settings = settings
        self.translators = translators
        self.resources = resources
        self.protector = protector
        self.synthetic_threshold = synthetic_threshold
        self.metrics = metrics

    def bot_username(self, platform: str) -> str:
        found = self.platforms.get(platform)
        return (found.username if found is not None else "") or "Vigil"

    def facts(
        self, event: MediaPosted, outcome: Outcome, settings: GroupSettings, named: frozenset[int] = frozenset()
    ) -> AlertFacts:
        s = event.sender
        platform = self.platforms.get(event.chat.platform)
        left = getattr(platform, "media_left", None)  # Matrix: files a redaction left on the homeserver
        bridged = getattr(platform, "bridged", None)  # Matrix: a person of another network, through a bridge
        return AlertFacts(
            platform=event.chat.platform,
            group_title=event.chat.title or event.chat.chat_id,
            group_id=event.chat.chat_id,
            message_id=event.message_id,
            message_link=event.link,
            sender_name=s.display_name or s.user_id,
            sender_username=s.username,
            sender_id=s.user_id,
            posted_at=event.posted_at,
            findings=circle_findings(findings_of(outcome, self.synthetic_threshold, named), event.chat),
            outcome=alert_outcome(outcome),
            failure=outcome.delete_failure,
            sender_action=outcome.sender_action_done,
            muted_until=outcome.muted_until,
            dry_run=outcome.decision.dry_run,
            region=self.resources.code(settings.region),
            media_left=tuple(left(event.message_id)) if left is not None and outcome.deleted else (),
            sender_kind=s.kind,
            picture=picture_role(event.variant),
            bridged=bridged(event.chat.chat_id, s.user_id) if bridged is not None else "",
        )

    @staticmethod
    def buttons(translator: Translator, audit_id: int, rows: Iterable[Iterable[str]]) -> tuple[tuple[Button, ...], ...]:
        """Button rows for an alert message, from the keys alerts.first_buttons / details_buttons chose."""
        labels = button_labels(translator)
        return tuple(
            tuple(Button(labels[k], encode(RecordChoice(VERB_OF_KEY[k], audit_id))) for k in row) for row in rows
        )

    async def details(self, record: AuditRecord, translator: Translator, *, may_name: bool = True) -> OutgoingMessage:
        """The second message of an alert, rebuilt from its audit record and the group's current region.

        A protected member is named only while their protection lasts (the record keeps ids only),
        and only where the first message could name them (``_may_name``); never when ``may_name``
        is False (the details were asked for in a group chat, such as the admin log chat).
        """
        chat = ChatRef(record.platform, record.chat_id)
        settings = await self.settings.of(chat)
        group = await self.store.get_group(record.platform, record.chat_id)
        platform = self.platforms.get(record.platform)
        left = getattr(platform, "media_left", None)
        media_left = tuple(left(record.message_id)) if left is not None and record.message_id else ()
        found = dict(record.findings or {})
        facts = AlertFacts(
            platform=record.platform,
            group_title=(group.title if group is not None else None) or record.chat_id,
            group_id=record.chat_id,
            message_id=record.message_id or "?",
            message_link=None,
            sender_name=record.sender_name or record.sender_id or "?",
            sender_username=None,
            sender_id=record.sender_id or "?",
            posted_at=_record_time(record.at),
            findings=circle_findings(await self._findings_of_record(record, chat if may_name else None), chat),
            outcome=_outcome_of_record(record),
            sender_action=_planned_sanction(record),
            dry_run=record.dry_run,
            region=self.resources.code(settings.region),
            media_left=media_left,
            sender_kind=_one_known(found.get("sender_kind"), SENDER_KINDS, "user"),
            picture=_one_known(found.get("picture"), PICTURE_ROLES, ""),
        )
        rendered = render_details(facts, translator, self.resources)
        buttons = self.buttons(translator, record.id, details_buttons(facts))
        return OutgoingMessage(rendered.text, rendered.html, buttons, language=translator.language)

    async def _findings_of_record(self, record: AuditRecord, chat: ChatRef | None) -> tuple[Finding, ...]:
        """``chat``: the group whose admins asked, to check who may be named; None names nobody."""
        found = dict(record.findings or {})
        out: list[Finding] = []
        if found.get("error"):
            out.append(Finding("unscannable", detail=str(found["error"])))
        unnamed = False
        for d in found.get("derived") or ():
            owner = await self.store.get_protected_owner(int(d.get("owner", 0)))
            score = d.get("match_fraction")
            fraction = min(1.0, max(0.0, float(score))) if score is not None else None
            if owner is not None and chat is not None and await self._may_name(chat, owner):
                out.append(Finding("derived", detail=owner.name, score=fraction))
            elif not unnamed:  # one unnamed finding, whatever their number
                unnamed = True
                out.append(Finding("derived", score=fraction))
        for m in found.get("lists") or ():
            if m.get("kind") == "block":
                out.append(
                    Finding(
                        "hash", label=str(m.get("list") or ""), distance=m.get("distance"), algorithm=m.get("algorithm")
                    )
                )
        for h in found.get("nudity") or ():
            out.append(Finding("nudity", label=str(h.get("class") or ""), score=h.get("score")))
        if found.get("nsfw") is not None and record.label != "clean":
            out.append(Finding("nsfw", score=found["nsfw"]))
        for signal in found.get("provenance") or ():
            out.append(Finding("provenance", label=str(signal)))
        return tuple(out)

    async def alert_admins(self, event: MediaPosted, outcome: Outcome, settings: GroupSettings, audit_id: int) -> int:
        """Alert every reachable admin once; returns how many were alerted."""
        platform = self.platforms[event.chat.platform]
        admins = await self.admins.of(event.chat)
        contacts = await self.store.contacts(event.chat.platform, sorted(admins))
        already = {a.user_id for a in await self.store.alerts_for(audit_id)}
        named = await self.nameable(event.chat, outcome)
        facts = self.facts(event, outcome, settings, named)
        delivered = len(already & admins)
        for contact in contacts:
            if not contact.can_dm or contact.user_id in already or contact.user_id not in admins:
                continue
            translator = self.translators(contact.language or settings.language, settings.language)
            rendered = render_alert(facts, translator, self.resources)
            buttons = self.buttons(translator, audit_id, first_buttons(facts))
            message = OutgoingMessage(rendered.text, rendered.html, buttons, language=translator.language)
            done = await dm_admin(
                platform, self.store, contact.user_id, message, f"alert for chat {event.chat.chat_id}"
            )
            self.metrics.alert(event.chat.platform, str(done.outcome))
            if done.outcome is not Delivery.SENT:
                continue
            await self.store.record_alert(audit_id, event.chat.platform, contact.user_id, done.message_id)
            delivered += 1
        if delivered == 0:
            # the log chat is a group chat: nobody is named there
            unnamed = self.facts(event, outcome, settings)
            await self._fallback(platform, event.chat, unnamed, settings, audit_id)
        return delivered

    async def _is_member(self, chat: ChatRef, user_id: str) -> bool:
        """Whether the user is in the group now, asked on the platform; False when it cannot say
        (rate limits and blips are retried first): a wrong name cannot be taken back."""
        platform = self.platforms.get(chat.platform)
        if platform is None:
            return False
        try:
            return bool(
                await with_retries(
                    f"membership in chat {chat.chat_id}", lambda: platform.is_member(chat.chat_id, user_id)
                )
            )
        except Exception as exc:
            log.warning("chat %s: membership unknown (%s); not named", chat.chat_id, type(exc).__name__)
            return False

    def _member_check(self, chat: ChatRef) -> Callable[[str, str], Awaitable[bool]]:
        """``_is_member`` for this group, in the shape the protector asks with."""

        async def check(chat_id: str, user_id: str) -> bool:
            return await self._is_member(chat, user_id)

        return check

    async def nameable(self, chat: ChatRef, outcome: Outcome) -> frozenset[int]:
        """Owners of the protected photos this image was made from whom this group's admins may
        read the name of: the group is trusted, or the owner belongs to it (asked now)."""
        derived = outcome.derived
        if not derived:
            return frozenset()
        return await self.protector.nameable((chat.platform, chat.chat_id), derived, self._member_check(chat))

    async def _may_name(self, chat: ChatRef, owner: ProtectedOwner) -> bool:
        """``nameable``'s rule for an owner record (the details of an alert)."""
        member = (
            (owner.platform, owner.user_id) if owner.kind == "member" and owner.platform and owner.user_id else None
        )
        return await self.protector.may_name((chat.platform, chat.chat_id), member, self._member_check(chat))

    async def _fallback(
        self, platform: Platform, chat: ChatRef, facts: AlertFacts, settings: GroupSettings, audit_id: int
    ) -> None:
        """No admin can be reached privately: the admin log chat, and a one-time hint to the owner."""
        translator = self.translators(settings.language, settings.language)
        if settings.logchat:
            rendered = render_alert(facts, translator, self.resources)
            try:
                buttons = self.buttons(translator, audit_id, first_buttons(facts))
                message = OutgoingMessage(rendered.text, rendered.html, buttons, language=translator.language)
                await platform.send_chat(settings.logchat, message)
                await self.store.record_alert(audit_id, chat.platform, f"logchat:{settings.logchat}", None)
                return
            except PlatformError as exc:
                log.error("admin log chat %s for chat %s failed: %s", settings.logchat, chat.chat_id, exc)
        log.warning("chat %s: no admin can receive alerts privately", chat.chat_id)
        if await self.store.owner_hint_sent(chat.platform, chat.chat_id):
            return
        hint = render_unreachable_owner_hint(translator, self.bot_username(chat.platform))
        try:
            # the hint is about starting the bot, never about the image
            await platform.send_chat(chat.chat_id, OutgoingMessage(hint))
            await self.store.mark_owner_hint_sent(chat.platform, chat.chat_id)
        except PlatformError as exc:
            log.error("owner hint in chat %s failed: %s", chat.chat_id, exc)

    async def owner_notices(self, event: MediaPosted, outcome: Outcome, settings: GroupSettings, audit_id: int) -> int:
        """Tell the owners of protected photos who opted in that a manipulated copy of one of
        their photos was removed: where, that it is not their fault, where to get help; never the
        image, and not who posted it. Once per record and owner; only when the copy was deleted."""
        if not outcome.deleted or outcome.decision.dry_run:
            return 0
        sent = 0
        told: set[int] = set()
        for d in outcome.derived:
            target = d.photo.notify_to
            if target is None or d.photo.owner_id in told or target == (event.sender.platform, event.sender.user_id):
                continue
            told.add(d.photo.owner_id)
            platform = self.platforms.get(target[0])
            key = f"protect:notice:{audit_id}:{d.photo.owner_id}"
            if platform is None or await self.store.get_state(key):
                continue
            contact = await self.store.get_contact(target[0], target[1])
            translator = self.translators(
                contact.language if contact and contact.language else settings.language, settings.language
            )
            # the group is named only to a member of it: anyone can make a group and give it a title
            member = target[0] == event.chat.platform and await self._is_member(event.chat, target[1])
            rendered = render_owner_notice(
                translator,
                self.resources,
                group_title=event.chat.title if member else None,
                member=member,
                platform=target[0],
                region=settings.region,
            )
            try:
                await with_retries(
                    f"notice to owner {target[1]}",
                    lambda: platform.send_private(target[1], OutgoingMessage(rendered.text, rendered.html)),
                )
            except PlatformError as exc:  # never started the bot, or blocked it: nothing more to do
                log.warning("notice to the owner of protected photo %d failed: %s", d.photo.id, exc)
                continue
            await self.store.set_state(key, "sent")
            sent += 1
        return sent

    async def neutral_notice(self, platform: Platform, chat: ChatRef, settings: GroupSettings) -> None:
        translator = self.translators(settings.language, settings.language)
        try:
            await platform.send_chat(
                chat.chat_id, OutgoingMessage(translator.gettext("An image was removed by Vigil."))
            )
        except PlatformError as exc:
            log.warning("neutral notice in chat %s failed: %s", chat.chat_id, exc)
