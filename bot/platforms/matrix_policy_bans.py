"""Ban rules of followed policy rooms (``m.policy.rule.user``, ``m.ban``) applied to the rooms following them.

A member matching a rule's entity (a user id or a glob) is banned from each room that follows
the policy room, or only reported to its moderators when the room chose ``!vigil policy mode
report``. The room's moderators and Vigil itself are never banned. Each decision is recorded in
the audit log and in the store's state (``matrix.policy_ban:<room>:<user>``), so a member is
acted on once however often the rules are read again; a banned member is no longer joined anyway.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from bot.i18n import Translator
from bot.platforms.base import OutgoingMessage
from bot.platforms.errors import PlatformError
from bot.platforms.matrix_errors import call
from bot.platforms.matrix_host import PolicyFollowing
from bot.platforms.matrix_policy import (
    USER_RULE_TYPES,
    BadPolicyRule,
    UserBanRule,
    parse_user_rule,
)

log = logging.getLogger("vigil.matrix.policy")

DONE_KEY = "matrix.policy_ban:"
POLICY_BAN_REASON = "Banned by Vigil (policy room {room})"


def done_key(room_id: str, user_id: str) -> str:
    return f"{DONE_KEY}{room_id}:{user_id}"


def user_rules(room_id: str, state: list[dict[str, Any]]) -> tuple[UserBanRule, ...]:
    rules = []
    for event in state:
        if event.get("type") not in USER_RULE_TYPES:
            continue
        try:
            rule = parse_user_rule(event.get("state_key"), event.get("content"))
        except BadPolicyRule as exc:
            log.warning("matrix: policy room %s: skipped a user rule (%s)", room_id, exc)
            continue
        if rule is not None:
            rules.append(rule)
    return tuple(rules)


class PolicyBans:
    def __init__(self, rooms: PolicyFollowing) -> None:
        self.rooms = rooms
        self.rules: dict[str, tuple[UserBanRule, ...]] = {}  # policy room id -> its ban rules
        self._lock = asyncio.Lock()  # one room's members at a time: no member judged twice at once

    @property
    def active(self) -> bool:
        return any(self.rules.values())

    async def update(self, policy_room: str, rules: tuple[UserBanRule, ...]) -> None:
        """The policy room's ban rules as read now; the rooms following it are checked again."""
        self.rules[policy_room] = rules
        if rules:
            for chat_id in await self.rooms.followers_of(policy_room):
                await self.enforce(chat_id)

    async def enforce(self, chat_id: str, only: str | None = None) -> None:
        """Applies the ban rules of the policy rooms ``chat_id`` follows to its joined members (or to ``only``)."""
        platform = self.rooms.platform
        rules = [(p, r) for p in await self.rooms.followed_rooms(chat_id) for r in self.rules.get(p, ())]
        if not rules:
            return
        room = platform.client.rooms.get(chat_id)
        members = [only] if only else list(room.users) if room is not None else []
        async with self._lock:
            moderators: frozenset[str] | None = None
            for user_id in members:
                hit = next(((p, r) for p, r in rules if r.matches(user_id)), None)
                if hit is None or user_id == platform.me:
                    continue
                if moderators is None:
                    moderators = await platform.admins(chat_id)
                if user_id in moderators or await platform.store.get_state(done_key(chat_id, user_id)) is not None:
                    continue
                if not await platform.is_member(chat_id, user_id):
                    continue
                await self._act(chat_id, user_id, *hit)

    async def _act(self, chat_id: str, user_id: str, policy_room: str, rule: UserBanRule) -> None:
        platform = self.rooms.platform
        report = chat_id in self.rooms.report_only
        outcome = "reported"
        if not report:
            try:
                reason = POLICY_BAN_REASON.format(room=policy_room)
                banning = platform.client.room_ban(chat_id, user_id, reason=reason)
                await call(f"ban {user_id}", banning, right="ban members")
                platform._invalidate(chat_id)
                outcome = "banned"
            except PlatformError as exc:  # told to the moderators: they can ban by hand
                log.error("matrix: room %s: banning %s by policy failed: %s", chat_id, user_id, exc)
                outcome = "ban failed"
        await platform.store.add_audit(
            platform=platform.name,
            chat_id=chat_id,
            kind="action",
            label="policy_ban",
            sender_id=user_id,
            findings={"policy_room": policy_room, "entity": rule.entity, "reason": rule.reason[:200]},
            decision="report" if report else "ban",
            actions={"ban": outcome},
            actor=platform.me,
        )
        await platform.store.set_state(done_key(chat_id, user_id), outcome)
        log.info("matrix: room %s: member %s %s by a rule of policy room %s", chat_id, user_id, outcome, policy_room)
        await self._tell(chat_id, user_id, policy_room, rule, outcome)

    async def _tell(self, chat_id: str, user_id: str, policy_room: str, rule: UserBanRule, outcome: str) -> None:
        """Each of the room's moderators is told privately, in their language (else the room's)."""
        platform = self.rooms.platform
        title = platform._chat(chat_id).title or chat_id
        try:
            moderators = await platform.admins(chat_id)
        except PlatformError as exc:
            log.error("matrix: room %s: could not read its moderators to tell them of a policy ban: %s", chat_id, exc)
            return
        room_language = await platform._language(chat_id)
        for moderator in sorted(moderators):
            contact = await platform.store.get_contact(platform.name, moderator)
            t: Translator = platform.core.translator(contact.language if contact else None, room_language or "en")
            text = ban_notice(t, outcome, user_id=user_id, title=title, policy_room=policy_room, rule=rule)
            try:
                await platform.send_private(moderator, OutgoingMessage(text, language=t.language))
            except PlatformError as exc:
                log.error("matrix: room %s: could not tell %s of a policy ban: %s", chat_id, moderator, exc)


def ban_notice(t: Translator, outcome: str, *, user_id: str, title: str, policy_room: str, rule: UserBanRule) -> str:
    """What the moderators read about a member matching a ban rule: what Vigil did, the rule, its reason."""
    fmt = {"user": user_id, "room": title, "policy_room": policy_room, "entity": rule.entity}
    if outcome == "banned":
        first = t.gettext(
            "Vigil banned {user} from {room}: a ban rule of the policy room {policy_room} matches them: {entity}", **fmt
        )
    elif outcome == "reported":
        first = t.gettext(
            "{user} in {room} matches a ban rule of the policy room {policy_room}; not banned (mode report): {entity}",
            **fmt,
        )
    else:
        first = t.gettext(
            "{user} in {room} matches a ban rule of the policy room {policy_room}, but the ban failed: {entity}",
            **fmt,
        )
    if not rule.reason:
        return f"{first}."
    return f"{first}. " + t.gettext("The rule's reason: {reason}", reason=rule.reason)
