"""Following Matrix policy rooms: their image-hash rules become an instance list, kept in step.

Each followed policy room maps to one instance list (kind block, label ``policy``, named
``policy:<alias or room id>``); rooms that follow the policy room follow that list, and a
Telegram group can follow it too (``vigil hash follow``). The list is reconciled with the room's
whole state when it is followed, at start-up, and whenever the sync shows a policy event or a
redaction there, so a removed rule stops matching at once. Only public, unencrypted rooms are
followed: policy rooms are public state by design, and Vigil reads them without trusting anyone.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from bot.i18n import N_, Translator
from bot.platforms import matrix_bounds as bounds
from bot.platforms.errors import PlatformError
from bot.platforms.matrix_errors import call
from bot.platforms.matrix_host import MatrixHost
from bot.platforms.matrix_policy import (
    MEDIA_HASH_TYPES,
    POLICY_TYPES,
    BadPolicyRule,
    MediaHashRule,
    parse_media_hash,
)
from bot.platforms.matrix_policy_bans import PolicyBans, user_rules
from detectors.errors import VigilError

log = logging.getLogger("vigil.matrix.policy")

STATE_KEY = "matrix.policy_rooms"  # JSON {"rooms": {room id: list name}, "report_only": [room ids]}
LABEL = "policy"
MAX_RULES = 100_000  # rules read from one room; beyond that the room is reported, not followed further
MAX_REF = 255
MAX_STATE_BYTES = 64 * 1024 * 1024  # a policy room's whole state, as read at once


class PolicyRoomRefused(VigilError):
    """A room Vigil will not follow as a policy room; the message says why and what to do.

    The reason is kept as a catalog msgid with its values, so the room's moderators read it in
    the room's language while the log keeps the English."""

    def __init__(self, msgid: str, **fmt: str) -> None:
        self.msgid, self.fmt = msgid, fmt
        super().__init__(msgid.format(**fmt))

    def said(self, t: Translator) -> str:
        return t.gettext(self.msgid, **self.fmt)


@dataclass(frozen=True)
class Followed:
    room_id: str
    list_name: str
    rules: int


def list_name_for(ref: str) -> str:
    return f"policy:{ref}"


class PolicyRooms:
    def __init__(self, platform: MatrixHost) -> None:
        self.platform = platform
        self.rooms: dict[str, str] = {}  # policy room id -> list name
        self.report_only: set[str] = set()  # rooms where a ban rule's match is reported, not banned
        self.bans = PolicyBans(self)
        self._dirty: set[str] = set()
        self._runner: dict[str, asyncio.Task[None]] = {}
        # one reconciliation of a room at a time: following it and a rule arriving in the same
        # moment must not both find the list empty and add every entry twice
        self._reconciling: dict[str, asyncio.Lock] = {}

    @property
    def store(self) -> Any:
        return self.platform.store

    async def load(self) -> None:
        raw = await self.store.get_state(STATE_KEY)
        data = json.loads(raw) if raw else {}
        self.rooms = {k: v for k, v in (data.get("rooms") or {}).items() if bounds.room_id(k) and isinstance(v, str)}
        self.report_only = {r for r in data.get("report_only") or () if bounds.room_id(r)}

    async def _save(self) -> None:
        data = {"rooms": self.rooms, "report_only": sorted(self.report_only)}
        await self.store.set_state(STATE_KEY, json.dumps(data, sort_keys=True))

    # --- following -------------------------------------------------------------------------

    async def start(self, configured: tuple[str, ...]) -> None:
        """At start-up: the rooms followed before and those in the config, each read again in full."""
        for ref in configured:
            try:
                await self.follow(ref)
            except (PolicyRoomRefused, PlatformError) as exc:
                log.error("matrix: policy room %s from the config is not followed: %s", ref, exc)
        for room_id in list(self.rooms):
            self.changed(room_id)

    async def resolve(self, ref: str) -> str:
        if not isinstance(ref, str) or len(ref) > MAX_REF:
            raise PolicyRoomRefused(N_("name the policy room by its alias (#room:server) or its id (!id:server)"))
        if ref.startswith("!") and bounds.room_id(ref):
            return ref
        if ref.startswith("#") and ":" in ref:
            got = await call(f"resolve {ref}", self.platform.client.room_resolve_alias(ref))
            room_id = getattr(got, "room_id", None)
            if bounds.room_id(room_id):
                return room_id
        raise PolicyRoomRefused(
            N_("{ref} is neither a room alias (#room:server) nor a room id (!id:server)"), ref=repr(ref)
        )

    async def follow(self, ref: str, chat_id: str | None = None) -> Followed:
        """Join and read the policy room, keep its list in step, and make ``chat_id`` follow it."""
        room_id = await self.resolve(ref)
        if room_id == chat_id:
            raise PolicyRoomRefused(N_("a room cannot follow itself as a policy room"))
        await call(f"join the policy room {ref}", self.platform.client.join(room_id))
        state = await self._state(room_id)
        problem = refusal(state)
        if problem is not None:
            if room_id not in self.rooms:
                try:
                    await call("leave the refused policy room", self.platform.client.room_leave(room_id))
                except PlatformError:
                    pass
            raise problem
        name = self.rooms.get(room_id) or list_name_for(ref)
        lst = await self.store.list_by_name(name)
        if lst is None:
            lst = await self.store.create_list(name, kind="block", label=LABEL, action="delete")
        self.rooms[room_id] = name
        await self._save()
        rules = await self._reconcile(room_id, state)
        if chat_id is not None:
            await self.store.follow(self.platform.name, chat_id, lst.id)
            await self.bans.enforce(chat_id)
        return Followed(room_id, name, rules)

    async def unfollow(self, ref: str, chat_id: str) -> bool:
        room_id = await self.resolve(ref)
        name = self.rooms.get(room_id)
        lst = await self.store.list_by_name(name) if name else None
        return bool(lst is not None and await self.store.unfollow(self.platform.name, chat_id, lst.id))

    async def followers_of(self, policy_room: str) -> list[str]:
        """The Matrix rooms following a policy room's list."""
        lst = await self.store.list_by_name(self.rooms.get(policy_room, ""))
        if lst is None:
            return []
        following = (await self.store.followers()).get(lst.id, ())
        return [chat for platform, chat in following if platform == self.platform.name]

    async def followed_rooms(self, chat_id: str) -> list[str]:
        """The policy rooms a Matrix room follows."""
        by_name = {name: room for room, name in self.rooms.items()}
        lists = await self.store.lists_for_group(self.platform.name, chat_id)
        return [by_name[lst.name] for lst in lists if lst.name in by_name]

    async def followed_by(self, chat_id: str) -> list[tuple[str, int]]:
        """(list name, entries) of the policy rooms a room follows."""
        names = set(self.rooms.values())
        lists = await self.store.lists_for_group(self.platform.name, chat_id)
        core = self.platform.core
        return [(lst.name, core.list_size(lst.id)) for lst in lists if lst.name in names]

    async def _translator(self, chat_id: str) -> Translator:
        """The room's language (its `!vigil lang`), as every other reply in the room."""
        platform = self.platform
        language = await platform._language(chat_id)
        translator: Translator = platform.core.translator(language, language or "en")
        return translator

    async def command(self, chat_id: str, args: list[str]) -> str:
        """``!vigil policy ...`` from one of the room's moderators (checked by the core): the reply,
        in the room's language."""
        t = await self._translator(chat_id)
        verb = args[0].lower() if args else "list"
        try:
            if verb == "follow" and len(args) == 2:
                got = await self.follow(args[1], chat_id)
                return t.ngettext(
                    "This room now follows the policy room {room}: {n} image-hash rule, kept as the list {list}.",
                    "This room now follows the policy room {room}: {n} image-hash rules, kept as the list {list}.",
                    got.rules,
                    room=args[1],
                    list=got.list_name,
                )
            if verb == "unfollow" and len(args) == 2:
                if await self.unfollow(args[1], chat_id):
                    return t.gettext("This room no longer follows the policy room {room}.", room=args[1])
                return t.gettext("This room does not follow the policy room {room}.", room=args[1])
            if verb == "mode" and len(args) == 2 and args[1].lower() in ("ban", "report"):
                if args[1].lower() == "report":
                    self.report_only.add(chat_id)
                else:
                    self.report_only.discard(chat_id)
                await self._save()
                if chat_id in self.report_only:
                    return t.gettext(
                        "Members matching a ban rule of a followed policy room are now reported to the moderators, "
                        "not banned."
                    )
                return t.gettext("Members matching a ban rule of a followed policy room are now banned.")
            if verb == "list" and len(args) == 1:
                followed = await self.followed_by(chat_id)
                if not followed:
                    return t.gettext("This room follows no policy room.") + " " + usage(t)
                lines = [
                    t.ngettext("- {name}: {n} image hash", "- {name}: {n} image hashes", size, name=name)
                    for name, size in followed
                ]
                return t.gettext("Policy rooms followed here:") + "\n" + "\n".join(lines)
        except PolicyRoomRefused as exc:
            return t.gettext("Not followed: {reason}.", reason=exc.said(t))
        except PlatformError as exc:
            log.warning("matrix: policy command in %s failed: %s", chat_id, exc)
            return t.gettext(
                "The policy room could not be read ({error}): check its alias and that it is public.",
                error=type(exc).__name__,
            )
        return usage(t)

    # --- keeping in step ---------------------------------------------------------------------

    def wants(self, room_id: str, source: dict[str, Any]) -> bool:
        """Whether an event of a followed policy room changes its rules (a rule, or a redaction)."""
        return room_id in self.rooms and source.get("type") in (*POLICY_TYPES, "m.room.redaction")

    def changed(self, room_id: str) -> None:
        """Read the room's rules again soon; changes coming in a burst are read once."""
        self._dirty.add(room_id)
        task = self._runner.get(room_id)
        if task is None or task.done():
            task = asyncio.ensure_future(self._catch_up(room_id))
            self._runner[room_id] = task
            self.platform._tasks.add(task)  # waited for when the platform stops
            task.add_done_callback(lambda t: self.platform._done(t, f"reading the policy room {room_id}"))

    async def _catch_up(self, room_id: str) -> None:
        while room_id in self._dirty:
            self._dirty.discard(room_id)
            try:
                await self._reconcile(room_id, await self._state(room_id))
            except Exception as exc:  # noqa: BLE001 - whatever failed, it is read again at the next change or start-up
                log.error("matrix: policy room %s: reading its rules failed: %s", room_id, exc)
                return

    async def _state(self, room_id: str) -> list[dict[str, Any]]:
        raw = self.platform.raw
        events = await raw(
            "GET",
            f"/_matrix/client/v3/rooms/{quote(room_id)}/state",
            what="read the policy room",
            expect=list,
            limit=MAX_STATE_BYTES,
        )
        return [e for e in events if isinstance(e, dict)]

    async def _reconcile(self, room_id: str, state: list[dict[str, Any]]) -> int:
        """Makes the room's list hold exactly the room's current image-hash rules; returns how many."""
        async with self._reconciling.setdefault(room_id, asyncio.Lock()):
            return await self._reconcile_now(room_id, state)

    async def _reconcile_now(self, room_id: str, state: list[dict[str, Any]]) -> int:
        name = self.rooms.get(room_id)
        lst = await self.store.list_by_name(name) if name else None
        if lst is None:
            return 0
        rules = media_rules(room_id, state)
        entries = await self.store.entries(lst.id)
        have = {e.pdq: e for e in entries if e.pdq}
        for entry in entries:
            if entry.pdq not in rules:
                await self.store.remove_entry(entry.id)
        fresh = [
            {"pdq": pdq, "pdq_quality": r.quality, "note": r.reason or None}
            for pdq, r in rules.items()
            if pdq not in have
        ]
        if fresh:  # one bulk write: a room of thousands of rules is read in seconds
            await self.store.add_entries_bulk(lst.id, fresh, added_by=room_id)
        await self.platform.core.sync_lists()  # matched (or no longer) from now on, not in 2 s
        log.info("matrix: policy room %s: %d image-hash rules in list %s", room_id, len(rules), name)
        await self.bans.update(room_id, user_rules(room_id, state))
        return len(rules)


def refusal(state: list[dict[str, Any]]) -> PolicyRoomRefused | None:
    """Why a room cannot be followed as a policy room, or None."""
    join_rule = next(
        (
            e.get("content", {}).get("join_rule")
            for e in state
            if e.get("type") == "m.room.join_rules" and e.get("state_key") == ""
        ),
        None,
    )
    if any(e.get("type") == "m.room.encryption" for e in state):
        return PolicyRoomRefused(
            N_(
                "the room is encrypted: encrypted policy rooms are not supported (policy rooms are public state by "
                "design); use a public, unencrypted policy room"
            )
        )
    if join_rule != "public":
        return PolicyRoomRefused(
            N_("the room is not public: only public policy rooms are followed; make it public (join rule public)")
        )
    return None


def media_rules(room_id: str, state: list[dict[str, Any]]) -> dict[str, MediaHashRule]:
    """The room's current image-hash rules by PDQ hash; malformed ones logged by their ids and skipped."""
    rules: dict[str, MediaHashRule] = {}
    for event in state[:MAX_RULES]:
        if event.get("type") not in MEDIA_HASH_TYPES:
            continue
        try:
            rule = parse_media_hash(event.get("state_key"), event.get("content"))
        except BadPolicyRule as exc:
            shown = bounds.shown_id(event.get("event_id"))
            log.warning("matrix: policy room %s: skipped rule %s (%s)", room_id, shown, exc)
            continue
        if rule is not None:
            rules.setdefault(rule.pdq, rule)
    if len(state) > MAX_RULES:
        log.error("matrix: policy room %s has more than %d state events; only the first were read", room_id, MAX_RULES)
    return rules


def usage(t: Translator) -> str:
    return t.gettext(
        "Policy rooms: !vigil policy follow #room:server (or !id:server), !vigil policy unfollow #room:server, "
        "!vigil policy list, !vigil policy mode ban|report (what a ban rule's match gets). "
        "Only public, unencrypted policy rooms can be followed."
    )
