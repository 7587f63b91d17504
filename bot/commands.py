"""Admin commands and buttons, platform-neutral. The permission check comes before anything else."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any

from bot.actions import Actions
from bot.admins import Admins
from bot.buttons import SetChoice, encode
from bot.circles import Circles
from bot.config import ACTIONS, MODES, SENSITIVITIES, Config, parse_duration
from bot.entries import EntrySource, EntryWriter
from bot.events import BotAdded, ChatRef, CommandIssued, UserRef
from bot.evidence import export_evidence
from bot.group_settings import SettingsLookup
from bot.guidance.resources import REGIONS, Resources, region_code
from bot.i18n import LANGUAGES, Translator, Translators, supported
from bot.lists import HashLists, as_signals
from bot.member_hold import joins_command, newmedia_command
from bot.pipeline import Pipeline
from bot.platforms.base import Button, OutgoingMessage, Platform
from bot.platforms.errors import PlatformError
from bot.policy import GroupSettings
from bot.protect_chat import ProtectChat, private_verb
from bot.repeats import RepeatCache, platform_key, sha256_of
from bot.reports import Reports
from bot.scan_record import record_command
from bot.store.protocol import Store
from bot.values import ListKind
from detectors.errors import MediaError
from detectors.scanner import Scanner

log = logging.getLogger("vigil.commands")


class Commands:
    """Admin commands and buttons, given the parts they use (bot/core.py wires them)."""

    def __init__(
        self,
        *,
        config: Config,
        platforms: Mapping[str, Platform],
        store: Store,
        settings: SettingsLookup,
        admins: Admins,
        translators: Translators,
        resources: Resources,
        lists: HashLists,
        entries: EntryWriter,
        repeats: RepeatCache,
        pipeline: Pipeline,
        scanner: Scanner,
        actions: Actions,
        protect_chat: ProtectChat,
        private_started: Callable[[UserRef], Awaitable[None]],
        reports: Reports | None = None,
        circles: Circles | None = None,
    ) -> None:
        self.config = config
        self.platforms = platforms
        self.store = store
        self.settings = settings
        self.admins = admins
        self.translators = translators
        self.resources = resources
        self.lists = lists
        self.entries = entries
        self.repeats = repeats
        self.pipeline = pipeline
        self.scanner = scanner
        self.actions = actions
        self.protect_chat = protect_chat
        self.private_started = private_started
        self.reports = reports  # members' private reports (bot/reports.py)
        self.circles = circles

    # --- plumbing -----------------------------------------------------------------

    async def _say(self, chat: ChatRef, text: str) -> None:
        try:
            await self.platforms[chat.platform].send_chat(chat.chat_id, OutgoingMessage(text))
        except PlatformError as exc:
            log.warning("reply in chat %s failed: %s", chat.chat_id, exc)

    async def _group_t(self, chat: ChatRef) -> tuple[Translator, GroupSettings]:
        settings = await self.settings.of(chat)
        return self.translators(settings.language, settings.language), settings

    async def _audit_command(self, chat: ChatRef, actor: str, what: str) -> None:
        await record_command(self.store, chat, actor, what)

    # --- commands -------------------------------------------------------------------

    async def handle(self, cmd: CommandIssued) -> None:
        if self.reports is not None and self.reports.is_report(cmd):  # any member may report: no admin check
            await self.reports.command(cmd)
            return
        if cmd.private:
            await self.private(cmd)
            return
        if cmd.verb not in ("vigil", "block", "allow"):
            return
        t, settings = await self._group_t(cmd.chat)
        # fresh from the platform: a demoted admin loses control at once
        if cmd.sender.user_id not in await self.admins.of(cmd.chat, fresh=True):
            await self._say(cmd.chat, t.gettext("Only this group's admins can change Vigil's settings."))
            log.info("chat %s: refused a command from non-admin %s", cmd.chat.chat_id, cmd.sender.user_id)
            return
        await self.store.upsert_group(cmd.chat.platform, cmd.chat.chat_id, cmd.chat.title)
        if cmd.verb in ("block", "allow"):
            await self.block_or_allow(cmd, ListKind(cmd.verb), t)
            return
        verb, args = (cmd.args[0].lower(), cmd.args[1:]) if cmd.args else ("status", ())
        handler = getattr(self, f"cmd_{verb}", None)
        if handler is None:
            await self._say(cmd.chat, t.gettext("Unknown command '{verb}'.", verb=verb) + "\n\n" + self.help_text(t))
            return
        await handler(cmd, list(args), t, settings)

    async def _set(self, cmd: CommandIssued, changes: dict[str, Any], t: Translator, confirmation: str) -> None:
        await self.store.update_settings(cmd.chat.platform, cmd.chat.chat_id, changes)
        await self._audit_command(cmd.chat, cmd.sender.user_id, "settings " + json.dumps(changes, sort_keys=True))
        await self._say(cmd.chat, confirmation)

    async def cmd_status(self, cmd: CommandIssued, args: list[str], t: Translator, settings: GroupSettings) -> None:
        platform = self.platforms[cmd.chat.platform]
        try:
            rights = await platform.rights(cmd.chat.chat_id)
            rights_text = ", ".join(
                name
                for ok, name in (
                    (rights.is_admin, t.gettext("admin")),
                    (rights.can_delete, t.gettext("can delete messages")),
                    (rights.can_restrict, t.gettext("can restrict members")),
                )
                if ok
            ) or t.gettext("no admin rights: Vigil cannot see or delete images")
        except PlatformError:
            rights_text = t.gettext("unknown")
        counts = await self.store.counts(cmd.chat.platform, cmd.chat.chat_id)
        sizes = {
            lst.kind: self.lists.size(lst.id)
            for lst in await self.store.lists_for_group(cmd.chat.platform, cmd.chat.chat_id)
            if lst.scope == "group"
        }
        action = settings.action + (f" {settings.mute_duration}" if settings.action == "mute" else "")
        lines = [
            t.gettext("Vigil in this group"),
            t.gettext("Rights: {rights}", rights=rights_text),
            t.gettext("Mode: {mode}", mode=settings.mode),
            t.gettext("Sensitivity: {sensitivity}", sensitivity=settings.sensitivity),
            t.gettext("Action on the sender: {action}", action=action),
            t.gettext("Language: {lang}, region: {region}", lang=settings.language, region=settings.region),
            t.gettext(
                "Block list: {block} images; allow list: {allow} images",
                block=sizes.get(ListKind.BLOCK, 0),
                allow=sizes.get(ListKind.ALLOW, 0),
            ),
            t.gettext(
                "Images checked: {scans}; removed: {deleted}; sent to admins for review: {review}",
                scans=counts.get("scans", 0),
                deleted=counts.get("deleted", 0),
                review=counts.get("review", 0),
            ),
        ]
        await self._say(cmd.chat, "\n".join(lines))

    async def cmd_mode(self, cmd: CommandIssued, args: list[str], t: Translator, settings: GroupSettings) -> None:
        if len(args) != 1 or args[0] not in MODES:
            await self._say(cmd.chat, t.gettext("Use: /vigil mode delete|review|dryrun|off"))
            return
        await self._set(cmd, {"mode": args[0]}, t, t.gettext("Mode set to {mode}.", mode=args[0]))

    async def cmd_sensitivity(
        self, cmd: CommandIssued, args: list[str], t: Translator, settings: GroupSettings
    ) -> None:
        value = args[0].lower() if len(args) == 1 else ""
        if value not in SENSITIVITIES:
            try:
                number = float(value)
            except ValueError:
                number = -1.0
            if not 0.05 <= number <= 0.95:
                await self._say(
                    cmd.chat, t.gettext("Use: /vigil sensitivity low|medium|high, or a number from 0.05 to 0.95")
                )
                return
            value = f"{number:.2f}"
        await self._set(cmd, {"sensitivity": value}, t, t.gettext("Sensitivity set to {value}.", value=value))

    async def cmd_action(self, cmd: CommandIssued, args: list[str], t: Translator, settings: GroupSettings) -> None:
        if (
            not args
            or args[0] not in ACTIONS
            or (args[0] == "mute" and len(args) != 2)
            or (args[0] != "mute" and len(args) != 1)
        ):
            await self._say(
                cmd.chat, t.gettext("Use: /vigil action none|mute DURATION|ban (a duration is like 30m, 12h or 7d)")
            )
            return
        changes: dict[str, Any] = {"action": args[0]}
        if args[0] == "mute":
            try:
                parse_duration(args[1])
            except ValueError:
                await self._say(
                    cmd.chat,
                    t.gettext(
                        "'{value}' is not a duration: use a number and a unit, like 30m, 12h or 7d.", value=args[1]
                    ),
                )
                return
            changes["mute_duration"] = args[1]
        await self._set(cmd, changes, t, t.gettext("Action on the sender set to {action}.", action=" ".join(args)))

    async def cmd_lang(self, cmd: CommandIssued, args: list[str], t: Translator, settings: GroupSettings) -> None:
        lang = supported(args[0]) if len(args) == 1 else None
        if lang is None:
            await self._say(cmd.chat, t.gettext("Use: /vigil lang {languages}", languages="|".join(LANGUAGES)))
            return
        t2 = self.translators(lang, lang)
        await self._set(cmd, {"language": lang}, t2, t2.gettext("Language set to {lang}.", lang=lang))

    def region_list(self, t: Translator) -> str:
        """Every region code with its name in the admin's language."""
        resources = self.resources
        return ", ".join(f"{code} ({resources.info(code).name(t.language)})" for code in REGIONS)

    async def cmd_region(self, cmd: CommandIssued, args: list[str], t: Translator, settings: GroupSettings) -> None:
        code = region_code(args[0]) if len(args) == 1 else ""
        if code not in REGIONS:
            usage = t.gettext("Use: /vigil region CODE, one of: {regions}", regions=self.region_list(t))
            await self._say(cmd.chat, usage)
            return
        name = self.resources.info(code).name(t.language)
        await self._set(cmd, {"region": code}, t, t.gettext("Region set to {region} ({name}).", region=code, name=name))

    def _shared_sender_ids(self, platform: str) -> frozenset[str]:
        """Placeholder user ids that stand for many senders (Telegram's channel and anonymous-admin users)."""
        found: frozenset[str] = getattr(self.platforms.get(platform), "shared_sender_ids", frozenset())
        return found

    def _target(self, cmd: CommandIssued, args: list[str]) -> str | None:
        if cmd.reply_sender is not None:
            return cmd.reply_sender.user_id
        if args and args[0].lstrip("-").isdigit():
            return args[0]
        if args and args[0].startswith("@") and ":" in args[0]:  # a Matrix user id
            return args[0]
        return None

    async def cmd_exempt(self, cmd: CommandIssued, args: list[str], t: Translator, settings: GroupSettings) -> None:
        await self._exemption(cmd, args, t, exempt=True)

    async def cmd_unexempt(self, cmd: CommandIssued, args: list[str], t: Translator, settings: GroupSettings) -> None:
        await self._exemption(cmd, args, t, exempt=False)

    async def _exemption(self, cmd: CommandIssued, args: list[str], t: Translator, *, exempt: bool) -> None:
        user = self._target(cmd, args)
        if user is None:
            usage = (
                t.gettext("Reply to a message of the member with /vigil exempt, or give their numeric id.")
                if exempt
                else t.gettext("Reply to a message of the member with /vigil unexempt, or give their numeric id.")
            )
            await self._say(cmd.chat, usage)
            return
        if exempt and user in self._shared_sender_ids(cmd.chat.platform):  # unexempting it stays possible
            await self._say(
                cmd.chat,
                t.gettext(
                    "That id is shared by every channel, anonymous admin or automatic forward: Vigil does not "
                    "exempt it. "
                    "Reply to the channel's post instead, to exempt that channel."
                ),
            )
            return
        store = self.store
        await (store.add_exemption if exempt else store.remove_exemption)(cmd.chat.platform, cmd.chat.chat_id, user)
        await self._audit_command(cmd.chat, cmd.sender.user_id, f"{'exempt' if exempt else 'unexempt'} {user}")
        done = (
            t.gettext(
                "Member {user} is exempt: their images are still checked, and hits are reported to admins instead "
                "of deleted.",
                user=user,
            )
            if exempt
            else t.gettext("Member {user} is no longer exempt.", user=user)
        )
        await self._say(cmd.chat, done)

    async def cmd_logchat(self, cmd: CommandIssued, args: list[str], t: Translator, settings: GroupSettings) -> None:
        """Typed in the admins' own chat with a group's id: that group's alerts also go here."""
        if len(args) != 1:
            await self._say(
                cmd.chat,
                t.gettext(
                    "To send this group's alerts to a private admin chat, add Vigil to that chat and type there: "
                    "/vigil logchat {chat_id}",
                    chat_id=cmd.chat.chat_id,
                ),
            )
            return
        group = ChatRef(cmd.chat.platform, args[0])
        try:
            admins = await self.admins.of(group, fresh=True)
        except PlatformError:
            admins = frozenset()
        if cmd.sender.user_id not in admins:
            await self._say(cmd.chat, t.gettext("Only this group's admins can change Vigil's settings."))
            return
        await self.store.update_settings(group.platform, group.chat_id, {"logchat": cmd.chat.chat_id})
        await self._audit_command(group, cmd.sender.user_id, f"logchat {cmd.chat.chat_id}")
        await self._say(
            cmd.chat,
            t.gettext(
                "This chat now receives Vigil's alerts for group {group} when no admin can be reached privately.",
                group=group.chat_id,
            ),
        )

    async def cmd_export(self, cmd: CommandIssued, args: list[str], t: Translator, settings: GroupSettings) -> None:
        platform = self.platforms[cmd.chat.platform]
        await self._say(cmd.chat, await export_evidence(self.store, platform, cmd.chat, cmd.sender.user_id, None, t))

    async def cmd_groupphotos(
        self, cmd: CommandIssued, args: list[str], t: Translator, settings: GroupSettings
    ) -> None:
        """Keep fingerprints of members' photos posted here, to trace manipulated copies (bot/protect_chat.py)."""
        changes = await self.protect_chat.group_photos(cmd, args, t, settings)
        if changes is not None:
            await self.store.update_settings(cmd.chat.platform, cmd.chat.chat_id, changes)
            await self._audit_command(cmd.chat, cmd.sender.user_id, "settings " + json.dumps(changes, sort_keys=True))

    async def cmd_circles(self, cmd: CommandIssued, args: list[str], t: Translator, settings: GroupSettings) -> None:
        """The circles this group is in (bot/circles.py); admins only, as every /vigil command."""
        if self.circles is not None:
            await self._say(cmd.chat, await self.circles.describe(cmd.chat, t))

    async def cmd_joins(self, cmd: CommandIssued, args: list[str], t: Translator, settings: GroupSettings) -> None:
        """What a profile photo that is a hit brings at the door (bot/door.py)."""
        changes, reply = joins_command(args, t)
        await (self._set(cmd, changes, t, reply) if changes else self._say(cmd.chat, reply))

    async def cmd_newmedia(self, cmd: CommandIssued, args: list[str], t: Translator, settings: GroupSettings) -> None:
        """New members' media hold (bot/member_hold.py)."""
        changes, reply = newmedia_command(args, t)
        await (self._set(cmd, changes, t, reply) if changes else self._say(cmd.chat, reply))

    async def cmd_help(self, cmd: CommandIssued, args: list[str], t: Translator, settings: GroupSettings) -> None:
        await self._say(cmd.chat, self.help_text(t))

    def help_text(self, t: Translator) -> str:
        return "\n".join(
            [
                t.gettext(
                    "Vigil checks every image posted here and removes nude and known harmful images. Admins only:"
                ),
                t.gettext("/vigil status - rights, settings and counts"),
                t.gettext("/vigil mode delete|review|dryrun|off"),
                t.gettext("/vigil sensitivity low|medium|high"),
                t.gettext("/vigil action none|mute 24h|ban - what happens to the sender"),
                t.gettext("/block (reply to an image) - remove it and block copies of it"),
                t.gettext("/allow (reply to an image) - never act on this image again"),
                t.gettext("/vigil lists - the hash lists used here; /vigil remove ENTRY - take an image off them"),
                t.gettext(
                    "/vigil lang {languages} - the group's language; an admin whose app is in a language "
                    "Vigil has gets alerts in it",
                    languages="|".join(LANGUAGES),
                ),
                t.gettext(
                    "/vigil region CODE - where to report and get help, e.g. ES, ES-CT, GB, FR, MX "
                    "(/vigil region lists them all)"
                ),
                t.gettext("/vigil exempt, /vigil unexempt (reply to a member)"),
                t.gettext("/vigil logchat, /vigil export, /vigil help"),
                t.gettext("/vigil circles - the circles of groups this group shares blocks with"),
                t.gettext(
                    "/vigil groupphotos on|off [DAYS] - keep fingerprints of members' photos, to trace fakes made "
                    "from them"
                ),
                t.gettext(
                    "/vigil joins decline|restrict|ban|alert - what a nude or blocked profile photo brings when "
                    "someone joins"
                ),
                t.gettext("/vigil newmedia hold 24h|off - new members cannot post media for a while"),
                t.gettext("Alerts come in a private chat: each admin should open a chat with the bot and press Start."),
                t.gettext(
                    "Members: /report (reply to a message) tells the admins privately; /vigil ignorereports and "
                    "/vigil unignorereports (reply to a member) - ignore a member's reports"
                ),
            ]
        )

    async def block_or_allow(self, cmd: CommandIssued, kind: ListKind, t: Translator) -> None:
        if cmd.reply_to is None:
            await self._say(cmd.chat, t.gettext("Reply to an image with /{verb}.", verb=str(kind)))
            return
        platform = self.platforms[cmd.chat.platform]
        repeats = self.repeats
        data = b""
        # a file seen before with its list signals is not fetched again; the one fetched here is
        # remembered, so that its next repeat is known before download (bot/repeats.py)
        file_key = platform_key(cmd.chat.platform, cmd.reply_to.media)
        seen = repeats.by_file(file_key, signals=True)
        try:
            if seen is not None:
                scan = seen.scan
            else:
                data = await platform.fetch_media(cmd.reply_to, self.config.detectors.limits.max_bytes)
                # with the views and local features that let trimmed, rotated and cropped copies match
                scan = await self.pipeline.run_cpu(
                    partial(self.scanner.scan, list_signals=True), data, timeout=self.config.pipeline.scan_timeout
                )
                if repeats.enabled:
                    repeats.remember(sha256_of(data), file_key, scan, signals=True)
        except (PlatformError, MediaError) as exc:
            await self._say(cmd.chat, t.gettext("Vigil could not read that image: {reason}", reason=str(exc)))
            return
        finally:
            data = b""  # the bytes live only as long as the hashing
        lst = await self.store.group_list(cmd.chat.platform, cmd.chat.chat_id, kind)
        source = EntrySource(cmd.sender.user_id, cmd.chat.platform, cmd.chat.chat_id)
        ids = await self.entries.add_frames(lst, [as_signals(f) for f in scan.frames], source)
        await self._audit_command(cmd.chat, cmd.sender.user_id, f"{kind} message {cmd.reply_to.message_id}")
        if kind == ListKind.BLOCK:
            result = await self.actions.delete(platform, cmd.chat.chat_id, cmd.reply_to.message_id)
            text = (
                t.gettext("Image removed and added to this group's block list: copies of it will be removed too.")
                if result.done
                else t.gettext(
                    "Added to the block list, but Vigil could not delete the message: please delete it by hand."
                )
            )
        else:
            text = t.gettext("Image added to this group's allow list: Vigil will not act on it again.")
        if ids:
            text += "\n" + t.gettext(
                "Entry {entries}. To take it off the list: /vigil remove {entry}",
                entries=", ".join(str(i) for i in ids),
                entry=ids[0],
            )
        await self._say(cmd.chat, text)
        if kind == ListKind.BLOCK and self.circles is not None:
            # the circle's other groups match it now: their admins are told
            await self.circles.blocked(cmd.chat, cmd.sender.user_id)

    async def cmd_remove(self, cmd: CommandIssued, args: list[str], t: Translator, settings: GroupSettings) -> None:
        """Takes an entry off one of this group's own lists (ids are shown by /block, /allow and alerts)."""
        if len(args) != 1 or not args[0].isdigit() or int(args[0]) < 1:
            await self._say(
                cmd.chat, t.gettext("Use: /vigil remove ENTRY (the entry number Vigil gave when the image was added)")
            )
            return
        entry_id = int(args[0])
        entry = await self.store.get_entry(entry_id)
        own = {
            lst.id
            for lst in await self.store.lists_for_group(cmd.chat.platform, cmd.chat.chat_id)
            if lst.scope == "group"
        }
        if entry is None or entry.list_id not in own:
            await self._say(
                cmd.chat,
                t.gettext(
                    "Entry {entry} is not on this group's lists (lists shared by the operator are changed by the "
                    "operator).",
                    entry=entry_id,
                ),
            )
            return
        await self.entries.remove(entry_id)
        await self._audit_command(cmd.chat, cmd.sender.user_id, f"remove entry {entry_id}")
        await self._say(
            cmd.chat,
            t.gettext("Entry {entry} removed: its image and copies of it are no longer matched.", entry=entry_id),
        )

    cmd_unblock = cmd_remove

    async def cmd_ignorereports(
        self, cmd: CommandIssued, args: list[str], t: Translator, settings: GroupSettings
    ) -> None:
        if self.reports is not None:
            await self._say(cmd.chat, await self.reports.ignore(cmd, args[:1], t, ignore=True))

    async def cmd_unignorereports(
        self, cmd: CommandIssued, args: list[str], t: Translator, settings: GroupSettings
    ) -> None:
        if self.reports is not None:
            await self._say(cmd.chat, await self.reports.ignore(cmd, args[:1], t, ignore=False))

    async def cmd_lists(self, cmd: CommandIssued, args: list[str], t: Translator, settings: GroupSettings) -> None:
        """The group's own lists and the instance lists it follows, with their sizes."""
        lines = [t.gettext("Hash lists used in this group:")]
        for lst in await self.store.lists_for_group(cmd.chat.platform, cmd.chat.chat_id):
            size = self.lists.size(lst.id)
            if lst.scope == "group":
                name = (
                    t.gettext("this group's block list")
                    if lst.kind == ListKind.BLOCK
                    else t.gettext("this group's allow list")
                )
            else:
                name = t.gettext("{name} (shared list, {label})", name=lst.name, label=lst.label)
            action = (
                t.gettext("allow")
                if lst.kind == ListKind.ALLOW
                else (t.gettext("delete") if lst.action == "delete" else t.gettext("ask admins"))
            )
            lines.append(
                t.gettext("- {name}: {count} images, on a match: {action}", name=name, count=size, action=action)
            )
        if len(lines) == 1:
            lines.append(t.gettext("none yet: /block or /allow (reply to an image) starts this group's lists"))
        await self._say(cmd.chat, "\n".join(lines))

    async def cmd_policy(self, cmd: CommandIssued, args: list[str], t: Translator, settings: GroupSettings) -> None:
        """Matrix policy rooms, answered by the Matrix adapter in the room's language."""
        policy = getattr(self.platforms[cmd.chat.platform], "policy", None)
        if policy is None:
            await self._say(
                cmd.chat,
                t.gettext(
                    "Policy rooms are a Matrix feature. A group here can still follow a policy "
                    "room's list: the operator runs `vigil hash follow policy:#room:server "
                    "--group ...`."
                ),
            )
            return
        answer = await policy.command(cmd.chat.chat_id, list(args))
        await self._audit_command(cmd.chat, cmd.sender.user_id, ("policy " + " ".join(args))[:300])
        await self._say(cmd.chat, answer)

    # --- private chat ------------------------------------------------------------------

    async def private(self, cmd: CommandIssued) -> None:
        t = self.translators(cmd.sender.language)
        if private_verb(cmd) is not None:  # /protect, /unprotect, /protected, /done
            await self.protect_chat.command(cmd)
            return
        if cmd.verb == "start":
            await self.private_started(cmd.sender)
            await self._say(
                cmd.chat,
                t.gettext(
                    "Vigil will send you its alerts here for the groups where you are an admin. Nothing in them "
                    "shows the images."
                )
                + "\n\n"
                + t.gettext("/groups - your groups and their settings\n/help - what Vigil does")
                + "\n"
                + t.gettext("/protect - protect photos of yourself from fakes"),
            )
        elif cmd.verb == "groups":
            await self.groups(cmd, t)
        elif cmd.verb in ("help", "vigil"):
            await self._say(cmd.chat, self.help_text(t))

    async def groups(self, cmd: CommandIssued, t: Translator) -> None:
        rows: list[tuple[Button, ...]] = []
        lines: list[str] = []
        for group in await self.store.list_groups(cmd.chat.platform):
            chat = ChatRef(group.platform, group.chat_id, group.title or "")
            try:
                if cmd.sender.user_id not in await self.admins.of(chat):
                    continue
            except PlatformError:
                continue
            s = await self.settings.of(chat)
            lines.append(
                t.gettext(
                    "{title}: mode {mode}, sensitivity {sensitivity}",
                    title=group.title or group.chat_id,
                    mode=s.mode,
                    sensitivity=s.sensitivity,
                )
            )
            try:
                row = tuple(
                    Button(f"{(group.title or group.chat_id)[:16]}: {m}", encode(SetChoice(group.chat_id, "mode", m)))
                    for m in MODES
                    if m != s.mode
                )
            except ValueError:  # an id too long for a button's data: the group is listed, without buttons
                row = ()
            if row:
                rows.append(row)
        text = "\n".join(lines) if lines else t.gettext("You are not an admin of any group that Vigil protects.")
        await self.platforms[cmd.chat.platform].send_chat(cmd.chat.chat_id, OutgoingMessage(text, buttons=tuple(rows)))

    # --- membership -------------------------------------------------------------------------

    async def bot_added(self, event: BotAdded) -> None:
        await self.store.upsert_group(event.chat.platform, event.chat.chat_id, event.chat.title)
        self.admins.forget(event.chat)
        t, settings = await self._group_t(event.chat)
        missing = []
        if not event.is_admin:
            missing.append(
                t.gettext("make Vigil an admin (as a plain member it cannot see the images posted in the group)")
            )
        if not event.can_delete:
            missing.append(t.gettext("the right to delete messages"))
        if settings.action != "none" and not event.can_restrict:
            missing.append(t.gettext("the right to ban or restrict members"))
        if not missing:
            return
        text = t.gettext(
            "Vigil needs more rights in {group} to protect it:", group=event.chat.title or event.chat.chat_id
        )
        text += (
            "\n- "
            + "\n- ".join(missing)
            + "\n"
            + t.gettext("Open the group's settings, Administrators, choose Vigil and turn these on.")
        )
        platform = self.platforms[event.chat.platform]
        if event.by is not None:
            if event.by.language:
                t = self.translators(event.by.language, settings.language)
            try:
                await platform.send_private(event.by.user_id, OutgoingMessage(text))
                return
            except PlatformError:
                pass
        await self._say(event.chat, text)
