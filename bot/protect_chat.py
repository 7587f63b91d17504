"""The protected-photos conversation, platform-neutral: what members say to Vigil privately
(``/protect``, photos, ``/done``, ``/protected``, ``/unprotect``; on Matrix ``!vigil protect``
and so on in a direct room), their answer to the notice question, and the admins'
``/vigil groupphotos on|off [DAYS]``. The work itself is in ``bot.protect``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from bot.buttons import NoticeChoice, encode
from bot.config import ProtectConfig
from bot.events import ButtonPressed, ChatRef, CommandIssued, MediaPosted
from bot.i18n import Translator, Translators
from bot.platforms.base import Button, OutgoingMessage, Platform
from bot.platforms.errors import PlatformError
from bot.platforms.retries import with_retries
from bot.policy import GroupSettings
from bot.protect import ProtectError, Protector
from detectors.errors import MediaError

log = logging.getLogger("vigil.protect")

PRIVATE_VERBS = ("protect", "unprotect", "protected", "done")
PHOTO_KINDS = ("photo", "document", "image")  # stills; videos, animations and stickers are refused
NOTIFY_ON, NOTIFY_OFF = encode(NoticeChoice(True)), encode(NoticeChoice(False))


def private_verb(cmd: CommandIssued) -> str | None:
    """The protect verb of a private command: ``/protect`` or ``!vigil protect``; else None."""
    if cmd.verb in PRIVATE_VERBS:
        return cmd.verb
    if cmd.verb == "vigil" and cmd.args and cmd.args[0].lower() in PRIVATE_VERBS:
        return cmd.args[0].lower()
    return None


class ProtectChat:
    def __init__(
        self,
        *,
        platforms: Mapping[str, Platform],
        protector: Protector,
        translators: Translators,
        config: ProtectConfig,
        max_bytes: int,
    ) -> None:
        self.platforms = platforms
        self.protector = protector
        self.translators = translators
        self.config = config
        self.max_bytes = max_bytes  # the largest image downloaded (detectors' limits)

    async def _say(self, chat: ChatRef, text: str, buttons: tuple[tuple[Button, ...], ...] = ()) -> None:
        try:
            await self.platforms[chat.platform].send_chat(chat.chat_id, OutgoingMessage(text, buttons=buttons))
        except PlatformError as exc:
            log.warning("reply in private chat %s failed: %s", chat.chat_id, exc)

    def _notify_buttons(self, t: Translator) -> tuple[tuple[Button, ...], ...]:
        return ((Button(t.gettext("Yes, tell me"), NOTIFY_ON), Button(t.gettext("No"), NOTIFY_OFF)),)

    # --- private commands ------------------------------------------------------------------

    async def command(self, cmd: CommandIssued) -> None:
        t = self.translators(cmd.sender.language)
        if not self.config.enabled:
            await self._say(cmd.chat, t.gettext("Photo protection is turned off on this Vigil."))
            return
        verb = private_verb(cmd)
        args = list(cmd.args[1:] if cmd.verb == "vigil" else cmd.args)
        user = (cmd.sender.platform, cmd.sender.user_id)
        if verb == "protect":
            self.protector.open_session(*user)
            await self._say(cmd.chat, self.intro(t))
        elif verb == "done":
            self.protector.close_session(*user)
            _, photos = await self.protector.member_photos(*user)
            await self._say(
                cmd.chat,
                t.ngettext(
                    "Done: you protect {n} photo. Send /protect to add more.",
                    "Done: you protect {n} photos. Send /protect to add more.",
                    len(photos),
                ),
            )
        elif verb == "protected":
            await self.listing(cmd.chat, user, t)
        elif verb == "unprotect":
            await self.unprotect(cmd.chat, user, args, t)

    def intro(self, t: Translator) -> str:
        return "\n\n".join(
            [
                t.gettext("Protect your photos from fakes."),
                t.gettext(
                    "Send me one or more photos of yourself, the kind anyone could take from your profile or a group. "
                    "For each one Vigil keeps a fingerprint (points and patterns that recognise the photo, not the "
                    "picture) "
                    "and your name, and deletes the photo at once."
                ),
                t.gettext(
                    "If someone later posts a manipulated copy of one of them in a group Vigil watches, for "
                    "example a fake "
                    "nude made with an AI app, Vigil removes it and tells that group's admins privately that it is "
                    "very likely "
                    "a fake of you, so they can support you."
                ),
                t.gettext(
                    "When you have sent your photos, send /done. /protected lists them, /unprotect removes them all."
                ),
            ]
        )

    async def listing(self, chat: ChatRef, user: tuple[str, str], t: Translator) -> None:
        owner, photos = await self.protector.member_photos(*user)
        if owner is None or not photos:
            await self._say(chat, t.gettext("You do not protect any photos. Send /protect to start."))
            return
        lines = [t.ngettext("You protect {n} photo:", "You protect {n} photos:", len(photos))]
        for p in photos:
            added = t.format_datetime(datetime.fromisoformat(p.added_at), "short")
            if p.source == "group":
                until = t.format_datetime(datetime.fromisoformat(p.expires_at), "short") if p.expires_at else "?"
                lines.append(
                    t.gettext(
                        "#{id}: posted in a group on {added}, kept until {until}", id=p.id, added=added, until=until
                    )
                )
            else:
                lines.append(t.gettext("#{id}: sent on {added}", id=p.id, added=added))
        lines.append("")
        lines.append(
            t.gettext("If a manipulated copy is removed, Vigil tells you privately.")
            if owner.notify
            else t.gettext("If a manipulated copy is removed, Vigil does not tell you.")
        )
        lines.append(t.gettext("/unprotect removes them all; /unprotect followed by a number removes one."))
        lines.append(
            t.gettext("Do you want to be told privately if a manipulated copy of one of your photos is removed?")
        )
        await self._say(chat, "\n".join(lines), self._notify_buttons(t))

    async def unprotect(self, chat: ChatRef, user: tuple[str, str], args: list[str], t: Translator) -> None:
        if args:
            number = args[0].lstrip("#")
            if not number.isdigit() or int(number) < 1:
                await self._say(
                    chat, t.gettext("Use: /unprotect to remove all your photos, or /unprotect NUMBER (see /protected).")
                )
                return
            done = await self.protector.remove_member_photo(*user, int(number))
            await self._say(
                chat,
                t.gettext("Photo #{id} removed.", id=number)
                if done
                else t.gettext("You have no photo #{id}.", id=number),
            )
            return
        self.protector.close_session(*user)
        removed = await self.protector.remove_member(*user)
        if removed:
            await self._say(
                chat,
                t.ngettext(
                    "Removed the fingerprint of {n} photo, and your name with it. Vigil keeps nothing of your "
                    "photos now.",
                    "Removed the fingerprints of {n} photos, and your name with them. Vigil keeps nothing of your "
                    "photos now.",
                    removed,
                ),
            )
        else:
            await self._say(chat, t.gettext("You do not protect any photos. Send /protect to start."))

    # --- photos sent privately --------------------------------------------------------------------

    async def media(self, event: MediaPosted, *, command: str | None = None) -> None:
        t = self.translators(event.sender.language)
        user = (event.sender.platform, event.sender.user_id)
        if not self.config.enabled:
            return
        if command == "protect":
            self.protector.open_session(*user)
        elif not self.protector.session_open(*user):
            await self._say(
                event.chat, t.gettext("To protect a photo of yourself from fakes, send /protect first, then the photo.")
            )
            return
        if event.media.kind not in PHOTO_KINDS:
            await self._say(
                event.chat, t.gettext("Send photos only: videos, animations and stickers cannot be protected.")
            )
            return
        platform = self.platforms[event.chat.platform]
        limit = self.max_bytes
        try:
            data = await with_retries(
                f"download in private chat {event.chat.chat_id}", lambda: platform.fetch_media(event, limit)
            )
            try:
                done = await self.protector.register_member_photo(
                    *user, event.sender.display_name or event.sender.username or "", data
                )
            finally:
                del data  # the bytes live only as long as the fingerprinting
        except ProtectError as exc:
            await self._say(event.chat, self._refusal(exc, t))
            return
        except (MediaError, PlatformError) as exc:
            await self._say(event.chat, t.gettext("Vigil could not read that image: {reason}", reason=str(exc)))
            return
        removed = await self._remove_message(event)
        text = t.ngettext(
            "Saved as a fingerprint: the photo itself was not kept. You protect {n} photo.",
            "Saved as a fingerprint: the photo itself was not kept. You protect {n} photos.",
            done.total,
        )
        if removed:
            text += " " + t.gettext("Vigil also deleted it from this chat.")
        if done.first:
            text += "\n\n" + t.gettext(
                "Do you want to be told privately if a manipulated copy of one of your photos is removed? The "
                "message never shows the image."
            )
            await self._say(event.chat, text, self._notify_buttons(t))
        else:
            await self._say(event.chat, text)

    def _refusal(self, exc: ProtectError, t: Translator) -> str:
        if exc.reason == "too_many":
            return t.gettext(
                "You already protect {n} photos, the most Vigil keeps for one person. Remove some with /unprotect "
                "first.",
                n=self.config.max_photos,
            )
        if exc.reason == "taken":
            # never whose: a stranger could otherwise learn who protects a photo by sending it
            return t.gettext(
                "Vigil cannot protect this photo for you: it, or a photo it was made from, is already protected for "
                "someone else. If it is a photo of you, ask the admins of your group to contact Vigil's operator."
            )
        return t.gettext("That picture is too small or too plain to recognise later: send a clearer photo of yourself.")

    async def _remove_message(self, event: MediaPosted) -> bool:
        """The photo leaves the private chat too (best effort: some platforms or old messages refuse)."""
        try:
            await self.platforms[event.chat.platform].delete(event.chat.chat_id, event.message_id)
            return True
        except PlatformError as exc:
            log.info("private chat %s: the registered photo could not be deleted (%s)", event.chat.chat_id, exc)
            return False

    # --- the notice question -------------------------------------------------------------------------

    async def button(self, press: ButtonPressed, choice: NoticeChoice) -> None:
        t = self.translators(press.sender.language)
        platform = self.platforms[press.chat.platform]
        on = choice.on
        known = await self.protector.set_member_notify(press.sender.platform, press.sender.user_id, on)
        if not known:
            await platform.answer(press, t.gettext("You do not protect any photos. Send /protect to start."))
        elif on:
            await platform.answer(
                press,
                t.gettext("Vigil will tell you privately if it removes a manipulated copy of one of your photos."),
            )
        else:
            await platform.answer(press, t.gettext("Vigil will not tell you. You can change this with /protected."))

    # --- the admins' group setting ----------------------------------------------------------------------

    async def group_photos(
        self, cmd: CommandIssued, args: list[str], t: Translator, settings: GroupSettings
    ) -> dict[str, Any] | None:
        """``/vigil groupphotos on [DAYS]`` or ``off``: the settings to store, after telling the
        group (every member reads it); None when the command was wrong."""
        default_days = self.config.group_photo_days
        choice = args[0].lower() if args else ""
        days_arg = args[1] if len(args) > 1 else None
        days = default_days
        ok = choice in ("on", "off") and len(args) <= 2 and (choice == "on" or days_arg is None)
        if ok and days_arg is not None:
            ok = days_arg.isdigit() and 1 <= int(days_arg) <= 3650
            days = int(days_arg) if ok else days
        if not ok or not self.config.enabled:
            if not self.config.enabled:
                await self._say(cmd.chat, t.gettext("Photo protection is turned off on this Vigil."))
            else:
                await self._say(
                    cmd.chat,
                    t.gettext(
                        "Use: /vigil groupphotos on|off [DAYS] (days from 1 to 3650, {days} if not given)",
                        days=default_days,
                    ),
                )
            return None
        if choice == "off":
            removed = await self.protector.drop_group(cmd.chat.platform, cmd.chat.chat_id)
            await self._say(
                cmd.chat,
                t.ngettext(
                    "Vigil no longer keeps fingerprints of photos posted here; the {n} it kept was deleted.",
                    "Vigil no longer keeps fingerprints of photos posted here; the {n} it kept were deleted.",
                    removed,
                ),
            )
            return {"group_photos": False}
        await self._say(
            cmd.chat,
            t.gettext(
                "From now on Vigil keeps a fingerprint of each photo members post here (never the photo itself) "
                "for {days} days, "
                "so that a manipulated copy, such as a fake nude, can be traced to the person in it. "
                "Members can see and remove theirs in a private chat with Vigil: /protected and /unprotect. "
                "Admins: /vigil groupphotos off stops this and deletes them.",
                days=days,
            ),
        )
        return {"group_photos": True, "group_photos_days": days}
