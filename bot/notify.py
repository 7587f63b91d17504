"""Telling admins: private alerts with buttons, the admin-log fallback, the owner's one-time hint.

An alert never carries the image, a thumbnail or a link to it: only what was found, who,
where, when, what Vigil did, and the guidance.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from bot.alerts import AlertFacts, Finding, button_labels, render_alert, render_owner_notice, render_unreachable_owner_hint
from bot.events import ChatRef, MediaPosted, picture_role
from bot.metrics import metrics_of
from bot.platforms.base import Button, OutgoingMessage
from bot.platforms.errors import PlatformError, Unreachable
from bot.policy import ASK, DELETE, GroupSettings

if TYPE_CHECKING:
    from bot.core import Core
    from bot.moderation import Outcome

log = logging.getLogger("vigil.notify")


def findings_of(outcome: "Outcome", synthetic_threshold: float | None = None,
                named: frozenset[int] = frozenset()) -> tuple[Finding, ...]:
    """What the alert lists. ``named``: the owners of protected photos whom this alert may name
    (``Protector.nameable``); the others make one unnamed finding, whatever their number."""
    found: list[Finding] = []
    if outcome.error is not None:
        found.append(Finding("unscannable", detail=getattr(outcome.error, "reason", "error")))
    # a manipulated copy of a protected photo: the owner's name only where they may be named
    seen: set[int] = set()
    unnamed = False
    for d in getattr(outcome, "derived", ()):
        if d.photo.owner_id in seen:
            continue
        seen.add(d.photo.owner_id)
        score = min(1.0, max(0.0, d.match_fraction))
        if d.photo.owner_id in named:
            found.append(Finding("derived", detail=d.photo.owner, score=score))
        elif not unnamed:
            unnamed = True
            found.append(Finding("derived", score=score))
    for m in outcome.matches:
        if m.kind == "block":
            found.append(Finding("hash", label=m.list_name, distance=m.distance, algorithm=m.algorithm))
    if outcome.scan is not None:
        for h in outcome.scan.hits:
            found.append(Finding("nudity", label=h.label, score=h.score))
        nsfw = outcome.scan.nsfw
        if nsfw is not None and outcome.label != "clean":
            found.append(Finding("nsfw", score=nsfw))
        # evidence of AI making or editing: shown with a hit, never a reason to act on its own
        for p in outcome.scan.provenance:
            found.append(Finding("provenance", label=p.signal, detail=p.detail))
        synthetic = outcome.scan.synthetic
        if synthetic is not None and synthetic_threshold is not None and synthetic >= synthetic_threshold:
            found.append(Finding("provenance", label=f"ai-image-detector {synthetic:.0%}", score=synthetic))
    return tuple(found)


def outcome_word(outcome: "Outcome") -> str:
    d = outcome.decision
    if outcome.error is not None:
        return "not_checked"
    if d.verdict == DELETE:
        return "deleted" if outcome.deleted else "delete_failed"
    if d.verdict == ASK:
        return "review"
    return "reported"


class Notifier:
    def __init__(self, core: "Core") -> None:
        self.core = core

    def facts(self, event: MediaPosted, outcome: "Outcome", settings: GroupSettings,
              named: frozenset[int] = frozenset()) -> AlertFacts:
        s = event.sender
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
            findings=findings_of(outcome, getattr(self.core.config.detectors.synthetic, "threshold", None), named),
            outcome=outcome_word(outcome),
            failure=outcome.delete_failure,
            sender_action=outcome.sender_action_done,
            muted_until=outcome.muted_until,
            dry_run=outcome.decision.dry_run,
            region=settings.region,
            sender_kind=s.kind,
            picture=picture_role(event.variant),
        )

    def buttons(self, translator, audit_id: int, outcome: "Outcome") -> tuple[tuple[Button, ...], ...]:
        labels = button_labels(translator)
        rows: list[tuple[Button, ...]] = []
        if outcome.decision.verdict == ASK and not outcome.decision.dry_run:
            rows.append((Button(labels["delete"], f"del:{audit_id}"), Button(labels["keep"], f"keep:{audit_id}")))
        sanction = [Button(labels["ban"], f"ban:{audit_id}")]
        if outcome.sender_action_done == "muted":
            sanction.append(Button(labels["unrestrict"], f"unmute:{audit_id}"))
        rows.append(tuple(sanction))
        if outcome.error is None:
            rows.append((Button(labels["false_positive"], f"fp:{audit_id}"),))
        rows.append((Button(labels["export"], f"export:{audit_id}"),))
        return tuple(rows)

    async def alert_admins(self, event: MediaPosted, outcome: "Outcome", settings: GroupSettings, audit_id: int) -> int:
        """Alert every reachable admin once; returns how many were alerted."""
        core = self.core
        platform = core.platforms[event.chat.platform]
        admins = await core.admins(event.chat)
        contacts = await core.store.contacts(event.chat.platform, sorted(admins))
        already = {a.user_id for a in await core.store.alerts_for(audit_id)}
        named = await self.nameable(event.chat, outcome)
        facts = self.facts(event, outcome, settings, named)
        delivered = len(already & admins)
        for contact in contacts:
            if not contact.can_dm or contact.user_id in already or contact.user_id not in admins:
                continue
            translator = core.translator(contact.language or settings.language, settings.language)
            rendered = render_alert(facts, translator, core.resources)
            message = OutgoingMessage(rendered.text, rendered.html, self.buttons(translator, audit_id, outcome))
            try:
                from bot.moderation import with_retries

                sent = await with_retries(
                    f"alert to admin {contact.user_id}", lambda: platform.send_private(contact.user_id, message)
                )
            except Unreachable:
                await core.store.set_contact(event.chat.platform, contact.user_id, can_dm=False)
                metrics_of(core).alert(event.chat.platform, "unreachable")
                continue
            except PlatformError as exc:
                log.error("alert for chat %s to admin %s failed: %s", event.chat.chat_id, contact.user_id, exc)
                metrics_of(core).alert(event.chat.platform, "failed")
                continue
            await core.store.record_alert(audit_id, event.chat.platform, contact.user_id, sent)
            metrics_of(core).alert(event.chat.platform, "sent")
            delivered += 1
        if delivered == 0:
            # the log chat is a group chat: nobody is named there
            unnamed = self.facts(event, outcome, settings)
            await self._fallback(platform, event.chat, unnamed, settings, audit_id, outcome)
        return delivered

    async def nameable(self, chat: ChatRef, outcome: "Outcome") -> frozenset[int]:
        """Owners of the protected photos this image was made from whom this group's admins may
        read the name of: the group is trusted, or the owner belongs to it (asked now)."""
        derived = getattr(outcome, "derived", ())
        if not derived:
            return frozenset()
        platform = self.core.platforms.get(chat.platform)
        if getattr(platform, "is_member", None) is None:
            return frozenset()
        from bot.moderation import with_retries

        async def check(chat_id: str, user_id: str) -> bool:  # rate limits and blips are retried; then: not named
            return await with_retries(f"membership in chat {chat_id}", lambda: platform.is_member(chat_id, user_id))

        return await self.core.protector.nameable((chat.platform, chat.chat_id), derived, check)

    async def _owner_in_group(self, chat: ChatRef, target: tuple[str, str]) -> bool:
        """Whether the person told is a member of the group, so the notice may name it."""
        if target[0] != chat.platform:
            return False
        platform = self.core.platforms.get(chat.platform)
        from bot.moderation import with_retries

        try:
            return bool(await with_retries(
                f"membership in chat {chat.chat_id}", lambda: platform.is_member(chat.chat_id, target[1])
            ))
        except Exception as exc:  # unknown: the notice does not name the group
            log.warning("chat %s: membership of a notice's addressee unknown (%s)", chat.chat_id, type(exc).__name__)
            return False

    async def _fallback(self, platform, chat: ChatRef, facts: AlertFacts, settings: GroupSettings, audit_id: int, outcome) -> None:
        """No admin can be reached privately: the admin log chat, and a one-time hint to the owner."""
        core = self.core
        translator = core.translator(settings.language, settings.language)
        if settings.logchat:
            rendered = render_alert(facts, translator, core.resources)
            try:
                await platform.send_chat(settings.logchat, OutgoingMessage(rendered.text, rendered.html, self.buttons(translator, audit_id, outcome)))
                await core.store.record_alert(audit_id, chat.platform, f"logchat:{settings.logchat}", None)
                return
            except PlatformError as exc:
                log.error("admin log chat %s for chat %s failed: %s", settings.logchat, chat.chat_id, exc)
        log.warning("chat %s: no admin can receive alerts privately", chat.chat_id)
        if await core.store.owner_hint_sent(chat.platform, chat.chat_id):
            return
        hint = render_unreachable_owner_hint(translator, core.bot_username(chat.platform))
        try:
            # the hint is about starting the bot, never about the image
            await platform.send_chat(chat.chat_id, OutgoingMessage(hint))
            await core.store.mark_owner_hint_sent(chat.platform, chat.chat_id)
        except PlatformError as exc:
            log.error("owner hint in chat %s failed: %s", chat.chat_id, exc)

    async def owner_notices(self, event: MediaPosted, outcome: "Outcome", settings: GroupSettings, audit_id: int) -> int:
        """Tell the owners of protected photos who opted in that a manipulated copy of one of
        their photos was removed: where, that it is not their fault, where to get help; never the
        image, and not who posted it. Once per record and owner; only when the copy was deleted."""
        if not outcome.deleted or outcome.decision.dry_run:
            return 0
        core = self.core
        sent = 0
        told: set[int] = set()
        for d in outcome.derived:
            target = d.photo.notify_to
            if target is None or d.photo.owner_id in told or target == (event.sender.platform, event.sender.user_id):
                continue
            told.add(d.photo.owner_id)
            platform = core.platforms.get(target[0])
            key = f"protect:notice:{audit_id}:{d.photo.owner_id}"
            if platform is None or await core.store.get_state(key):
                continue
            contact = await core.store.get_contact(target[0], target[1])
            translator = core.translator(contact.language if contact and contact.language else settings.language, settings.language)
            # the group is named only to a member of it: anyone can make a group and give it a title
            member = await self._owner_in_group(event.chat, target)
            rendered = render_owner_notice(
                translator, core.resources, group_title=event.chat.title if member else None, member=member,
                platform=target[0], region=settings.region,
            )
            try:
                from bot.moderation import with_retries

                await with_retries(
                    f"notice to owner {target[1]}", lambda: platform.send_private(target[1], OutgoingMessage(rendered.text, rendered.html))
                )
            except PlatformError as exc:  # never started the bot, or blocked it: nothing more to do
                log.warning("notice to the owner of protected photo %d failed: %s", d.photo.id, exc)
                continue
            await core.store.set_state(key, "sent")
            sent += 1
        return sent

    async def neutral_notice(self, platform, chat: ChatRef, settings: GroupSettings) -> None:
        translator = self.core.translator(settings.language, settings.language)
        try:
            await platform.send_chat(chat.chat_id, OutgoingMessage(translator.gettext("An image was removed by Vigil.")))
        except PlatformError as exc:
            log.warning("neutral notice in chat %s failed: %s", chat.chat_id, exc)

