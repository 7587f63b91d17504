"""The private alert an admin gets, in two messages.

The first message is short enough for one phone screen (FIRST_MESSAGE_LINES, choices included):
what happened, what Vigil did, and the two or three things to do now. The second, sent when
the admin asks for it (the Details button or choice), has the findings, the ids, the full
steps and the region's reporting routes and help lines.

Platform-neutral values in, plain text and Telegram-safe HTML out. An alert never carries the
image, a thumbnail or a link to it; at most the link to the message. Every text goes through
the admin's translator, and every name that came from a chat is cleaned and escaped.
"""

from __future__ import annotations

import html
import re
import string
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from bot.events import PICTURE_ROLES, SENDER_KINDS
from bot.guidance.resources import REGIONS, Resource, Resources
from bot.i18n import N_, Translator
from detectors.errors import BadAlertFacts

BRIDGED_NETWORKS = ("", "whatsapp")  # networks a Matrix bridge may bring senders from (bot.platforms.matrix_bridges)
FINDING_KINDS = ("nudity", "nsfw", "hash", "derived", "provenance", "unscannable")
OUTCOMES = ("deleted", "review", "reported", "delete_failed", "not_checked")
FAILURES = ("too_old", "no_right", "error")
SENDER_ACTIONS = ("none", "muted", "banned")
PLATFORMS = ("telegram", "matrix")
BUTTONS = ("ban", "unrestrict", "false_positive", "export", "delete", "keep", "details")

MAX_FINDINGS_SHOWN = 5
MAX_CHARS = 4000  # one Telegram message holds 4096
FIRST_MESSAGE_LINES = 15  # what a phone shows on one screen, the platform's choice lines included
MAX_NAME = 64  # longer names are cut: they only need to identify someone

# NudeNet classes in plain words; unknown labels are shown as they are
PART_NAMES: Mapping[str, str] = {
    "FEMALE_GENITALIA_EXPOSED": N_("exposed genitals (female)"),
    "MALE_GENITALIA_EXPOSED": N_("exposed genitals (male)"),
    "FEMALE_BREAST_EXPOSED": N_("exposed breasts"),
    "BUTTOCKS_EXPOSED": N_("exposed buttocks"),
    "ANUS_EXPOSED": N_("exposed anus"),
    "MALE_BREAST_EXPOSED": N_("bare male chest"),
    "BELLY_EXPOSED": N_("bare belly"),
    "ARMPITS_EXPOSED": N_("bare armpits"),
    "FEET_EXPOSED": N_("bare feet"),
    "FEMALE_GENITALIA_COVERED": N_("covered genitals (female)"),
    "FEMALE_BREAST_COVERED": N_("covered breasts"),
    "BUTTOCKS_COVERED": N_("covered buttocks"),
    "ANUS_COVERED": N_("covered anus"),
    "BELLY_COVERED": N_("covered belly"),
    "FEET_COVERED": N_("covered feet"),
    "ARMPITS_COVERED": N_("covered armpits"),
    "FACE_FEMALE": N_("a face (female)"),
    "FACE_MALE": N_("a face (male)"),
}

# MediaError.reason values (and the pipeline's own) in plain words
UNSCANNABLE_REASONS: Mapping[str, str] = {
    "empty": N_("the file is empty"),
    "too_large": N_("the file is too large to check"),
    "too_many_pixels": N_("the image is too large to check"),
    "too_many_frames": N_("the animation or video is too long to check"),
    "unsupported": N_("the file type is not supported"),
    "corrupt": N_("the file is damaged or incomplete"),
    "timeout": N_("checking it took too long"),
    "gave_up": N_("every attempt to check it failed (the file may be made to break image readers)"),
}

UNKNOWN_REASON = N_("an error while checking it")
OPEN_IN_GROUP = N_("open in the group")

HASH_BITS = {"pdq": 256, "phash": 64}

PLATFORM_NAMES = {"telegram": "Telegram", "matrix": "Matrix"}

# the order resources are listed in: where to report first, then support
_KIND_ORDER = ("emergency", "police", "hotline", "regulator", "hash_tool", "helpline", "professional")


# --- values ---------------------------------------------------------------------------------


def _one_of(field_name: str, value: object, allowed: Iterable[str]) -> None:
    allowed = tuple(allowed)
    if value not in allowed:
        raise BadAlertFacts(field_name, value, "one of " + ", ".join(allowed))


@dataclass(frozen=True)
class Finding:
    kind: str  # "nudity" | "nsfw" | "hash" | "derived" | "provenance" | "unscannable"
    label: str = ""  # nudity: NudeNet class; hash: list name; provenance: signal
    score: float | None = None  # nudity/nsfw score, 0..1
    distance: int | None = None  # hash match distance
    algorithm: str | None = None  # hash: "pdq" | "phash" | "sha256"
    detail: str = ""  # unscannable: the reason; derived: the owner's name, "" where they may not be named

    def __post_init__(self) -> None:
        _one_of("Finding.kind", self.kind, FINDING_KINDS)
        if self.score is not None and not 0.0 <= self.score <= 1.0:
            raise BadAlertFacts("Finding.score", self.score, "between 0 and 1, or None")
        if self.distance is not None and self.distance < 0:
            raise BadAlertFacts("Finding.distance", self.distance, "0 or more, or None")


@dataclass(frozen=True)
class AlertFacts:
    platform: str  # "telegram" | "matrix"
    group_title: str
    group_id: str
    message_id: str
    message_link: str | None
    sender_name: str
    sender_username: str | None
    sender_id: str
    posted_at: datetime  # aware
    findings: tuple[Finding, ...]
    outcome: str  # "deleted" | "review" | "reported" | "delete_failed" | "not_checked"
    failure: str | None = None  # for delete_failed: "too_old" | "no_right" | "error"
    sender_action: str = "none"  # "none" | "muted" | "banned"
    muted_until: datetime | None = None
    dry_run: bool = False  # everything is "would have"
    region: str = "OTHER"
    media_left: tuple[str, ...] = ()  # Matrix: files (mxc URIs) still on the homeserver after the redaction
    sender_kind: str = "user"  # or a chat posting as itself: bot.events.SENDER_KINDS
    picture: str = ""  # where in the message: "" its file, "thumb", "cover", "quoted" (a quoted message's)
    bridged: str = ""  # Matrix: the network of a sender bridged into the room ("whatsapp"), "" if none

    def __post_init__(self) -> None:
        _one_of("AlertFacts.sender_kind", self.sender_kind, SENDER_KINDS)
        _one_of("AlertFacts.picture", self.picture, ("", *PICTURE_ROLES))
        _one_of("AlertFacts.bridged", self.bridged, BRIDGED_NETWORKS)
        _one_of("AlertFacts.platform", self.platform, PLATFORMS)
        _one_of("AlertFacts.outcome", self.outcome, OUTCOMES)
        _one_of("AlertFacts.sender_action", self.sender_action, SENDER_ACTIONS)
        _one_of("AlertFacts.region", self.region, REGIONS)
        if self.failure is not None:
            _one_of("AlertFacts.failure", self.failure, FAILURES)
        if self.posted_at.tzinfo is None or self.posted_at.utcoffset() is None:
            raise BadAlertFacts("AlertFacts.posted_at", self.posted_at, "a datetime with a time zone")
        if any(not isinstance(f, Finding) for f in self.findings):
            raise BadAlertFacts("AlertFacts.findings", self.findings, "a tuple of Finding values")


@dataclass(frozen=True)
class RenderedAlert:
    text: str  # plain text (Matrix body)
    html: str  # Telegram-HTML-safe: only <b>, <i>, <a href>, <code>; everything else escaped


# --- a tiny rich-text model: one source for both the plain and the HTML rendering ------------


@dataclass(frozen=True)
class _Seg:
    text: str
    style: str = ""  # "" | "b" | "i" | "code"
    href: str | None = None
    plain: str | None = None  # what plain text shows instead of ``text`` (e.g. the full link)


_Line = tuple[_Seg, ...]

_SAFE_HREF = re.compile(r"^https?://[^\s<>\"'`]+$", re.IGNORECASE)


def clean_name(value: str | None, limit: int = MAX_NAME) -> str:
    """A chat-supplied name made safe to show: no control or direction-override characters, one line, bounded."""
    text = "".join(
        " " if unicodedata.category(c) in ("Zl", "Zp", "Cc") else c
        for c in (value or "")
        if unicodedata.category(c) not in ("Cf", "Cs", "Co", "Cn") or c == "\u200d"
    )
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _b(text: str) -> _Seg:
    return _Seg(text, "b")


def _code(text: str) -> _Seg:
    return _Seg(text, "code")


def _link(text: str, href: str | None, plain: str | None = None) -> _Seg:
    if href and _SAFE_HREF.match(href):
        return _Seg(text, "", href, plain)
    return _Seg(plain or text)


def _fill(template: str, values: Mapping[str, object]) -> _Line:
    out: list[_Seg] = []
    for literal, name, _spec, _conv in string.Formatter().parse(template):
        if literal:
            out.append(_Seg(literal))
        if name is not None:
            value = values[name]
            if isinstance(value, tuple):  # a whole translated line, e.g. "the shared list {name}"
                out.extend(value)
            else:
                out.append(value if isinstance(value, _Seg) else _Seg(str(value)))
    return tuple(out)


class _Writer:
    """Translates a msgid and fills its fields with segments, so names are escaped once, at the end."""

    def __init__(self, translator: Translator) -> None:
        self.t = translator
        self.lang = translator.language

    def gettext(self, msgid: str, **values: object) -> _Line:
        try:
            return _fill(self.t.gettext(msgid), values)
        except (KeyError, IndexError, ValueError):  # a broken translation: fall back to English
            return _fill(msgid, values)

    def ngettext(self, singular: str, plural: str, n: int, **values: object) -> _Line:
        values.setdefault("n", n)
        try:
            return _fill(self.t.ngettext(singular, plural, n), values)
        except (KeyError, IndexError, ValueError):
            return _fill(singular if n == 1 else plural, values)

    def word(self, msgid: str) -> str:
        return self.t.gettext(msgid)


def _merged(line: _Line) -> _Line:
    """Joins neighbouring segments of the same style, so the HTML has one <b> per bold run."""
    out: list[_Seg] = []
    for s in line:
        if (
            out
            and not s.href
            and not out[-1].href
            and s.style == out[-1].style
            and s.plain is None
            and out[-1].plain is None
        ):
            out[-1] = _Seg(out[-1].text + s.text, s.style)
        else:
            out.append(s)
    return tuple(out)


def _bold(line: _Line) -> _Line:
    return tuple(_Seg(s.text, "b", s.href, s.plain) if s.style in ("", "b") else s for s in line)


def _render(lines: Iterable[_Line]) -> RenderedAlert:
    text_lines, html_lines = [], []
    for line in map(_merged, lines):
        text_lines.append("".join(s.plain if s.plain is not None else s.text for s in line))
        parts = []
        for s in line:
            body = html.escape(s.text, quote=False)
            if s.href:
                parts.append(f'<a href="{html.escape(s.href, quote=True)}">{body}</a>')
            elif s.style:
                parts.append(f"<{s.style}>{body}</{s.style}>")
            else:
                parts.append(body)
        html_lines.append("".join(parts))
    # no more than one blank line in a row, none at the ends
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(text_lines)).strip()
    markup = re.sub(r"\n{3,}", "\n\n", "\n".join(html_lines)).strip()
    return RenderedAlert(text, markup)


def _bullet(line: _Line) -> _Line:
    return (_Seg("• "),) + line


# --- buttons ------------------------------------------------------------------------------


def button_labels(translator: Translator) -> Mapping[str, str]:
    """Short labels for the alert's buttons, in the admin's language."""
    t = translator
    return {
        "ban": t.gettext("Ban sender"),
        "unrestrict": t.gettext("Unmute sender"),
        "false_positive": t.gettext("False alarm"),
        "export": t.gettext("Evidence record"),
        "delete": t.gettext("Delete"),
        "keep": t.gettext("Keep"),
        "details": t.gettext("Details and help"),
    }


def first_buttons(f: AlertFacts) -> tuple[tuple[str, ...], ...]:
    """The choices under the first message, in rows: at most four, so it stays one screen on Matrix."""
    live = not f.dry_run
    if f.outcome == "review" and live:
        return (("delete", "keep"), ("details",), ("ban",))
    rows: list[tuple[str, ...]] = [("details",)]
    if f.sender_action == "muted" and live:
        rows.append(("unrestrict",))
    if f.outcome != "not_checked":
        rows.append(("false_positive",))
    if f.sender_action != "banned" or not live:
        rows.append(("ban",))
    return tuple(rows)


def details_buttons(f: AlertFacts) -> tuple[tuple[str, ...], ...]:
    """The choices under the details message."""
    rows: list[tuple[str, ...]] = [("ban",)]
    if f.sender_action == "muted" and not f.dry_run:
        rows[0] += ("unrestrict",)
    if f.outcome != "not_checked":
        rows.append(("false_positive",))
    rows.append(("export",))
    return tuple(rows)


# --- pieces of an alert ----------------------------------------------------------------------


def _headline(w: _Writer, f: AlertFacts, group: _Seg) -> _Line:
    if f.dry_run:
        return {
            "deleted": lambda: w.gettext("Test mode: Vigil would have deleted an image in {group}.", group=group),
            "review": lambda: w.gettext(
                "Test mode: Vigil would have asked you to decide about an image in {group}.", group=group
            ),
            "reported": lambda: w.gettext(
                "Test mode: Vigil would have reported an image in {group} and left it there.", group=group
            ),
            "delete_failed": lambda: w.gettext(
                "Test mode: Vigil would have tried to delete an image in {group}, but could not have.", group=group
            ),
            "not_checked": lambda: w.gettext("Test mode: Vigil could not check an image in {group}.", group=group),
        }[f.outcome]()
    return {
        "deleted": lambda: w.gettext("Vigil deleted an image in {group}.", group=group),
        "review": lambda: w.gettext("An image in {group} needs your decision.", group=group),
        "reported": lambda: w.gettext("Vigil found an image in {group} and left it there.", group=group),
        "delete_failed": lambda: w.gettext("Vigil found an image in {group} but could not delete it.", group=group),
        "not_checked": lambda: w.gettext("Vigil could not check an image in {group}.", group=group),
    }[f.outcome]()


def _failure_reason(w: _Writer, f: AlertFacts) -> _Line | None:
    if f.outcome != "delete_failed":
        return None
    if f.failure == "too_old":
        return w.gettext("Telegram does not let bots delete messages older than 48 hours.")
    if f.failure == "no_right":
        return w.gettext(
            "Vigil is not an admin with the right to delete messages. Give it that right so it can act next time."
        )
    return w.gettext("The platform refused or failed. If it happens again, check Vigil's admin rights.")


def _urgent(w: _Writer, f: AlertFacts) -> list[_Line | None]:
    """The one thing to do first, in bold, when the image may still be there."""
    if f.outcome == "not_checked":
        return [
            _bold(
                w.gettext(
                    "An admin should check this message with care. If it may be sexual, do not open or enlarge it: "
                    "delete it."
                )
            )
        ]
    if f.outcome == "delete_failed" and not f.dry_run:
        return [_bold(w.gettext("Delete the message by hand now, without opening the image.")), _failure_reason(w, f)]
    if f.outcome == "review" and not f.dry_run:
        return [
            _bold(
                w.gettext(
                    "The image is still in the group. Decide with the buttons below; you do not need to open it. "
                    "If in doubt, delete it."
                )
            )
        ]
    if f.dry_run or f.outcome == "reported":  # nothing was deleted
        why = None
        if f.outcome == "reported" and not f.dry_run:
            why = w.gettext("Vigil kept it: the sender is an admin or exempt, or this group only gets reports.")
        still = w.gettext("The image is still in the group. If it must go, delete it by hand without opening it.")
        return [_bold(still), why or _failure_reason(w, f)]
    return []


def _owner(f: AlertFacts) -> str | None:
    """The protected member the image was made from, when the alert may name them."""
    derived = next((x for x in f.findings if x.kind == "derived"), None)
    if derived is None:
        return None
    return clean_name(derived.detail) or None


def _list_name(w: _Writer, label: str) -> object:
    """A hash list as an admin knows it: never the internal name of a group's own list."""
    name = clean_name(label)
    if name.startswith("group:") or not name:
        return w.word(N_("this group's block list"))
    return w.gettext("the shared list {name}", name=_b(name))


def _what(w: _Writer, f: AlertFacts) -> _Line | None:
    """What the image seems to be, in one sentence."""
    owner = _owner(f)
    kinds = {x.kind for x in f.findings}
    if owner is not None:
        # named only where the person belongs, or in a group the operator trusts (bot/protect.py)
        return w.gettext(
            "It looks like a fake made from a photo of {owner}. Only admins see this name.", owner=_b(owner)
        )
    if "derived" in kinds:
        # no name, and nothing that tells whether or how the person is known to Vigil
        return w.gettext(
            "It was very likely made from a real person's photo and changed: a fake image of a real person."
        )
    hashed = next((x for x in f.findings if x.kind == "hash"), None)
    if hashed is not None:
        where = _list_name(w, hashed.label)
        if hashed.algorithm == "sha256":  # byte for byte the same file
            return w.gettext("It is an exact copy of an image on {list}.", list=where)
        return w.gettext("It is a copy of an image on {list}.", list=where)
    if kinds & {"nudity", "nsfw"}:
        return w.gettext("It looks like a nude or sexual image.")
    if "unscannable" in kinds:
        x = next(x for x in f.findings if x.kind == "unscannable")
        reason = w.word(UNSCANNABLE_REASONS.get(x.detail) or UNKNOWN_REASON)
        return w.gettext("It could not be checked: {reason}.", reason=reason)
    if "provenance" in kinds:
        return w.gettext("It shows signs of being edited or made by AI.")
    return None


def _sender_done(w: _Writer, f: AlertFacts) -> _Line | None:
    would = f.dry_run
    if f.sender_action == "muted" and f.muted_until is not None:
        until = w.t.format_datetime(f.muted_until)
        return (
            w.gettext("Vigil would have muted the sender until {time}.", time=until)
            if would
            else w.gettext("Vigil muted the sender until {time}.", time=until)
        )
    if f.sender_action == "muted":
        return w.gettext("Vigil would have muted the sender.") if would else w.gettext("Vigil muted the sender.")
    if f.sender_action == "banned":
        if would:
            return w.gettext("Vigil would have removed and banned the sender.")
        return w.gettext("Vigil removed and banned the sender.")
    if f.sender_kind != "user":
        return w.gettext(
            "A chat posting as itself cannot be muted on Telegram, and Vigil never sanctions your own linked channel "
            "or anonymous admins; a channel can be banned from the group with the ban button."
        )
    return None


def _media_left(w: _Writer, f: AlertFacts) -> _Line | None:
    if f.platform != "matrix" or not f.media_left or f.dry_run:  # a test run hides nothing
        return None
    return w.gettext(
        "The message is hidden, but the file stays on the Matrix server until its admin deletes it (see the details)."
    )


def _bridged(w: _Writer, f: AlertFacts) -> _Line | None:
    if f.bridged != "whatsapp":
        return None
    return w.gettext(
        "The sender is a WhatsApp user bridged into this room. The removal reaches WhatsApp only if the bridge's "
        "WhatsApp account is an admin of the WhatsApp group; if it is not, the WhatsApp group's admins must delete "
        "the message in WhatsApp and remove the sender there."
    )


def _contact_text(r: Resource, lang: str, limit: int = 2) -> str:
    return " / ".join(c.shown for c in r.contact(lang)[:limit])


def _named(r: Resource, lang: str) -> str:
    """A resource's name with its first contact, unless the name already has it ("Childline: 0800 1111")."""
    name = r.name(lang)
    contacts = sorted(r.contact(lang), key=lambda c: c.kind != "phone")  # a number first: quickest in a crisis
    if not contacts or contacts[0].kind == "text" or contacts[0].shown in name:
        return name
    return f"{name}: {contacts[0].shown}"


def _now_help(w: _Writer, f: AlertFacts, resources: Resources) -> _Line | None:
    """The emergency number and the one help line that matters most in the region."""
    emergency, lead = resources.emergency(f.region), resources.lead(f.region)
    if emergency is not None and lead is not None:
        return w.gettext(
            "In danger now: {emergency}. Help and advice: {helpline}.",
            emergency=_b(_contact_text(emergency, w.lang)),
            helpline=_b(_named(lead, w.lang)),
        )
    if emergency is not None:
        return w.gettext("In danger now: {emergency}.", emergency=_b(_contact_text(emergency, w.lang)))
    if lead is not None:
        return w.gettext("Help and advice: {helpline}.", helpline=_b(_named(lead, w.lang)))
    return None


def _support_now(w: _Writer, f: AlertFacts) -> _Line:
    owner = _owner(f)
    if owner is not None:
        return w.gettext("Support {owner} privately and calmly: it is not their fault.", owner=_b(owner))
    return w.gettext("Support the person shown: believe them and do not blame them.")


def _do_now(w: _Writer, f: AlertFacts, resources: Resources) -> list[_Line]:
    lines = [_bold(w.gettext("What to do now:"))]
    if f.outcome == "not_checked":
        lines.append(_bullet(w.gettext("If it is a nude or sexual image, do not forward it or ask anyone to send it.")))
    else:
        lines.append(_bullet(w.gettext("Do not look for the image, ask anyone for it or forward it.")))
        lines.append(_bullet(_support_now(w, f)))
    now = _now_help(w, f, resources)
    if now is not None:
        lines.append(_bullet(now))
    return lines


def _finding_line(w: _Writer, x: Finding) -> _Line:
    score = w.t.format_percent(x.score) if x.score is not None else "?"
    if x.kind == "nudity":
        words = PART_NAMES.get(x.label)
        part: object = w.word(words) if words else _code(clean_name(x.label) or "?")
        return w.gettext("Nudity: {part} (confidence {score})", part=part, score=score)
    if x.kind == "nsfw":
        return w.gettext("The image as a whole looks sexual (confidence {score})", score=score)
    if x.kind == "hash":
        where = _list_name(w, x.label)
        if x.algorithm == "sha256":
            return w.gettext("On {list}: an exact copy (the same file)", list=where)
        if x.distance is not None and x.algorithm in HASH_BITS:
            return w.gettext(
                "On {list}: a copy, perhaps resized or recompressed ({distance} of {bits} points differ)",
                list=where,
                distance=x.distance,
                bits=HASH_BITS[x.algorithm],
            )
        return w.gettext("On {list}: a copy, perhaps changed", list=where)
    if x.kind == "derived":
        owner = clean_name(x.detail)
        if owner:
            return w.gettext("A manipulated copy of a photo of {owner}", owner=_b(owner))
        return w.gettext("Made from a real person's photo and changed")
    if x.kind == "provenance":
        return w.gettext(
            "Signs that the image was edited or made by AI: {signal}", signal=_code(clean_name(x.label) or "?")
        )
    reason = w.word(UNSCANNABLE_REASONS.get(x.detail) or UNKNOWN_REASON)
    return w.gettext("Could not be checked: {reason}", reason=reason)


def _picture(w: _Writer, f: AlertFacts) -> _Line | None:
    """Where in the message the hit was, when it was not the file itself."""
    if f.picture == "thumb":
        return w.gettext("It was in the message's thumbnail: the small picture members see before opening the file.")
    if f.picture == "cover":
        return w.gettext("It was in the message's cover picture (a video's cover or an audio file's cover art).")
    if f.picture == "quoted":
        return w.gettext(
            "It was in a message from another chat that this message quotes: members see it above the reply."
        )
    return None


def _found(w: _Writer, f: AlertFacts) -> list[_Line]:
    lines = [_bold(w.gettext("What was found:"))]
    shown = f.findings[:MAX_FINDINGS_SHOWN]
    lines += [_bullet(_finding_line(w, x)) for x in shown]
    where = _picture(w, f)
    if where is not None:
        lines.append(_bullet(where))
    if not f.findings:
        lines.append(_bullet(w.gettext("no details were recorded")))
    hidden = len(f.findings) - len(shown)
    if hidden > 0:
        lines.append(
            _bullet(
                w.ngettext(
                    "and {n} more finding (in the evidence record)",
                    "and {n} more findings (in the evidence record)",
                    hidden,
                )
            )
        )
    return lines


def _sent_by(w: _Writer, f: AlertFacts) -> _Line:
    """Who posted it: the member, or the chat a post was made as (never a shared placeholder)."""
    name = _b(clean_name(f.sender_name) or "?")
    sender_id = _code(clean_name(f.sender_id, 128))
    username = clean_name((f.sender_username or "").lstrip("@"))
    if f.sender_kind == "anonymous_admin":
        sent_by = w.gettext("Sent by: an anonymous admin of the group (posting as the group itself)")
    elif f.sender_kind == "linked_channel":
        sent_by = w.gettext(
            "Sent by: your group's linked channel {name} (id {id}), forwarded automatically from a post in the "
            "channel: delete that post in the channel too",
            name=name,
            id=sender_id,
        )
    elif f.sender_kind == "channel" and username:
        sent_by = w.gettext(
            "Sent by: the channel {name} (@{username}, id {id}), posting in the group as itself",
            name=name,
            username=username,
            id=sender_id,
        )
    elif f.sender_kind == "channel":
        sent_by = w.gettext(
            "Sent by: the channel {name} (id {id}), posting in the group as itself", name=name, id=sender_id
        )
    elif username:
        sent_by = w.gettext("Sent by: {name} (@{username}, id {id})", name=name, username=username, id=sender_id)
    else:
        sent_by = w.gettext("Sent by: {name} (id {id})", name=name, id=sender_id)
    return sent_by


def _ids(w: _Writer, f: AlertFacts) -> list[_Line]:
    sent_by = _sent_by(w, f)
    lines = [
        sent_by,
        w.gettext(
            "Group: {group} (id {id})", group=clean_name(f.group_title) or "?", id=_code(clean_name(f.group_id, 128))
        ),
        w.gettext("Message: {id}", id=_code(clean_name(f.message_id, 128))),
    ]
    if f.message_link and _SAFE_HREF.match(f.message_link):
        link = _link(w.word(OPEN_IN_GROUP), f.message_link, f.message_link)
        lines.append(w.gettext("Message link: {link}", link=link))
    lines.append(w.gettext("Posted: {time}", time=w.t.format_datetime(f.posted_at)))
    return lines


def _matrix_media(w: _Writer, f: AlertFacts) -> list[_Line]:
    """For the homeserver's admin: the files a redaction left behind."""
    if f.platform != "matrix" or not f.media_left:
        return []
    return [
        _bold(w.gettext("The file is still on the Matrix server:")),
        w.gettext(
            "Hiding the message does not delete the uploaded file: anyone with its address can still download it. "
            "The homeserver's admin should quarantine it "
            "(Synapse: POST /_synapse/admin/v1/media/quarantine/<server>/<media id>), "
            "or give Vigil an admin token (VIGIL_MATRIX_ADMIN_TOKEN) to do it. Files:"
        ),
    ] + [_bullet((_code(clean_name(m, 300)),)) for m in f.media_left]


def _names(resources: Iterable[Resource], lang: str) -> str:
    return " / ".join(r.name(lang) for r in resources)


def _steps(w: _Writer, f: AlertFacts, resources: Resources, labels: Mapping[str, str]) -> list[_Line]:
    platform = PLATFORM_NAMES[f.platform]
    owner = _owner(f)
    derived = any(x.kind == "derived" for x in f.findings)
    info = resources.info(f.region)

    dont = (
        w.gettext(
            "Do not open, save, forward or screenshot the image, and do not ask anyone to send it, not even to "
            "report it."
        )
        + (_Seg(" "),)
        + (
            w.gettext("For anyone under 18 that is a crime in itself, whether the image is real or AI-made.")
            if info.minor_images_crime
            else w.gettext("If the person shown is under 18, that can be a crime in itself, real or AI-made.")
        )
    )
    evidence = w.gettext(
        "You do not need the image. This alert and the evidence record ({export} button) have what police and the "
        "platform need: group, message, sender and time.",
        export=_b(labels["export"]),
    )
    if f.sender_action == "banned" and not f.dry_run:
        restrict = w.gettext("Contain it: the sender is banned.")
    elif f.sender_action == "muted" and not f.dry_run:
        restrict = w.gettext("Contain it: the sender is muted.")
    else:
        restrict = w.gettext("Contain it: consider restricting the sender ({ban} button).", ban=_b(labels["ban"]))
    contain = (
        restrict
        + (_Seg(" "),)
        + w.gettext(
            "Report the sender to {platform} (see below), so it keeps what police need. Ask members not to share "
            "the image again.",
            platform=platform,
        )
    )
    # where only the emergency number reaches the police (e.g. Brazil's 190), name that
    police = resources.of_role(f.region, "police")[:1] or tuple(filter(None, [resources.emergency(f.region)]))
    hotlines = resources.of_role(f.region, "hotline")[:2]
    if hotlines:
        report = w.gettext(
            "Report it to the police ({police}) and to {hotline}. Neither needs the image: never send or bring it.",
            police=_b(_names(police, w.lang) or "?"),
            hotline=_b(_names(hotlines, w.lang)),
        )
    else:
        report = w.gettext(
            "Report it to the police ({police}); they do not need the image: never send or bring it.",
            police=_b(_names(police, w.lang) or "?"),
        )
    regulators = resources.of_role(f.region, "regulator")
    if regulators:
        routes = _b(_names(regulators, w.lang))
        report += (_Seg(" "),) + w.gettext("To have it removed quickly: {routes}.", routes=routes)
    tools = resources.of_role(f.region, "hash_tool")
    hashing = None
    if tools:
        hashing = w.gettext(
            "{tools} help only if the person shown has the image on their own device, and only on the sites that "
            "take part (Telegram and Matrix do not). They remove nothing from this group. "
            "Nobody should send the image to anyone to use them.",
            tools=_b(_names(tools, w.lang)),
        )
    if owner is not None:
        support = w.gettext(
            "Support {owner} first: the image is probably a fake made from their photo. Talk to them privately "
            "and calmly (for a child: with their parents and the school's safeguarding lead), and make clear it is "
            "not their fault.",
            owner=_b(owner),
        )
    elif derived:
        support = w.gettext(
            "Support the person shown first: the image is probably a fake made from their photo. Talk to them "
            "privately and calmly (for a child: with their parents and the school's safeguarding lead), and make "
            "clear it is not their fault."
        )
    else:
        support = w.gettext(
            "Support the person shown: believe them and do not blame them. If a child is involved, tell their "
            "parents and the school's safeguarding lead."
        )
    support += (_Seg(" "),) + w.gettext(
        "Do not confront or bargain with whoever made or shared it, and never pay anyone who threatens to share images."
    )
    minor_note = w.gettext(
        "Unless you know the person shown is an adult, treat it as an image of someone under 18, whether it is "
        "real or AI-made. Vigil does not guess anyone's age."
    )

    order = (
        [dont, support, evidence, contain, report, hashing, minor_note]
        if derived
        else [dont, evidence, contain, report, hashing, support, minor_note]
    )
    lines = [_bold(w.gettext("What to do next:"))]
    if f.outcome in ("review", "not_checked"):
        lines.append(w.gettext("If it is a nude or sexual image:"))
    lines += [(_Seg(f"{i}. "),) + step for i, step in enumerate((s for s in order if s is not None), 1)]
    return lines


# roles whose description carries a warning (never attach or bring the image): kept when others are cut
_KEEP_PURPOSE = ("police", "hotline", "regulator", "platform")


def _resource_lines(w: _Writer, resources: Iterable[Resource], compact: int = 0) -> list[_Line]:
    """compact 0: every description; 1: only those of _KEEP_PURPOSE; 2: names and contacts only."""
    lines: list[_Line] = []
    for r in resources:
        name = r.name(w.lang)
        contacts: list[_Seg] = []
        for c in r.contact(w.lang):
            if c.kind == "phone" and c.shown in name:
                continue  # "Childline 116 111" needs no "116 111" after it
            if contacts:
                contacts.append(_Seg(" · "))
            contacts.append(_link(c.shown, c.href, c.shown) if c.href else _Seg(c.shown))
        if compact == 2 or (compact == 1 and r.role not in _KEEP_PURPOSE):
            lines.append(_bullet((_b(name),) + ((_Seg(": "),) + tuple(contacts) if contacts else ())))
            continue
        lines.append(_bullet((_b(name), _Seg(": " + r.purpose(w.lang)))))
        if contacts:
            lines.append((_Seg("  "),) + tuple(contacts))
    return lines


def _help(w: _Writer, f: AlertFacts, resources: Resources, compact: int = 0) -> list[_Line]:
    region = resources.region(f.region)
    ordered = sorted(region, key=lambda r: _KIND_ORDER.index(r.role) if r.role in _KIND_ORDER else len(_KIND_ORDER))
    lines: list[_Line] = []
    if ordered:
        name = resources.info(f.region).name(w.lang)
        lines.append(_bold(w.gettext("Where to report and get help ({region}):", region=name)))
        lines += _resource_lines(w, ordered, compact)
    platform = resources.platform(f.platform)
    if platform:
        lines += [(), _bold(w.gettext("Report to {platform}:", platform=PLATFORM_NAMES[f.platform]))]
        lines += _resource_lines(w, platform, compact)
    return lines


def _buttons_help(w: _Writer, f: AlertFacts, labels: Mapping[str, str]) -> list[_Line]:
    shown = {k for row in first_buttons(f) + details_buttons(f) for k in row}
    lines = [_bold(w.gettext("Buttons:"))]
    if "delete" in shown:
        lines.append(
            _bullet(
                w.gettext(
                    "{delete}: deletes the message. {keep}: leaves it in the group.",
                    delete=_b(labels["delete"]),
                    keep=_b(labels["keep"]),
                )
            )
        )
    lines.append(_bullet(w.gettext("{ban}: removes the sender from the group for good.", ban=_b(labels["ban"]))))
    if "unrestrict" in shown:
        lines.append(
            _bullet(w.gettext("{unrestrict}: lets the sender post again.", unrestrict=_b(labels["unrestrict"])))
        )
    if "false_positive" in shown:
        lines.append(
            _bullet(
                w.gettext(
                    "{false_positive}: the image is fine; Vigil will allow it in this group from now on.",
                    false_positive=_b(labels["false_positive"]),
                )
            )
        )
    lines.append(
        _bullet(
            w.gettext(
                "{export}: sends you the evidence record (ids, times, findings; never the image).",
                export=_b(labels["export"]),
            )
        )
    )
    return lines


# --- public rendering -------------------------------------------------------------------------------


def _length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2  # Telegram counts UTF-16 code units


def _group(f: AlertFacts) -> _Seg:
    return _b(clean_name(f.group_title) or clean_name(f.group_id) or "?")


def render_alert(facts: AlertFacts, translator: Translator, resources: Resources) -> RenderedAlert:
    """The first message for one admin, in that admin's language: one phone screen.

    What happened, what Vigil did, and what to do now; the rest is behind the Details choice
    (``render_details``).
    """
    w = _Writer(translator)
    lines: list[_Line | None] = [_bold(_headline(w, facts, _group(facts)))]
    if facts.dry_run:
        lines.append(w.gettext("Nothing was changed in the group: this only shows what Vigil would have done."))
    lines += [_media_left(w, facts), _bridged(w, facts), _what(w, facts), _picture(w, facts), _sender_done(w, facts)]
    lines += _urgent(w, facts)
    lines += [(), *_do_now(w, facts, resources)]
    return _render([x for x in lines if x is not None])


def render_details(facts: AlertFacts, translator: Translator, resources: Resources) -> RenderedAlert:
    """The second message: findings, ids, the full steps and where to report and get help.

    It fits one chat message (MAX_CHARS): if the full text is too long, the buttons' help goes
    first, then the help list's descriptions (those of the police and reporting services,
    which warn never to send the image, last); the steps are always kept.
    """
    w = _Writer(translator)
    labels = button_labels(translator)
    lines: list[_Line] = [_bold(w.gettext("Details: an image in {group}", group=_group(facts)))]
    if facts.dry_run:
        lines.append(w.gettext("Nothing was changed in the group: this only shows what Vigil would have done."))
    lines += [()] + _found(w, facts)
    lines += [()] + _ids(w, facts)
    media = _matrix_media(w, facts)
    if media:
        lines += [()] + media
    lines += [()] + _steps(w, facts, resources, labels)
    rendered = RenderedAlert("", "")
    for compact, buttons, help_list in (
        (0, True, True),
        (0, False, True),
        (1, True, True),
        (1, False, True),
        (2, False, True),
        (2, False, False),
    ):
        tail: list[_Line] = []
        if help_list:
            tail += [()] + _help(w, facts, resources, compact)
        if buttons:
            tail += [()] + _buttons_help(w, facts, labels)
        rendered = _render(lines + tail)
        if _length(rendered.text) <= MAX_CHARS:
            break
    return rendered


# what a chat client may turn into a link or a mention in plain text: a scheme, a bare domain
# (any dot a linkifier accepts, then letters), an e-mail or @mention, a #hashtag or #room:alias,
# a $cashtag, a /command, a phone number
_LINKISH = re.compile(
    r"[@#$/\\]|\b(?:mailto|tel|tg|sms|matrix|xmpp|magnet|callto|geo)\s*:"
    r"|\w[.\u3002\uff0e\uff61][^\W\d_]{2,}|\+?\d[\d\s().\-]{5,}\d",
    re.IGNORECASE,
)


def plain_title(title: str | None) -> str | None:
    """A group's title, if it can be shown in a message without any part of it becoming a link;
    else None. Telegram links URLs, bare domains, @names, #tags and commands in any message,
    bots' HTML ones included, and Matrix clients linkify the same: escaping alone does not stop
    that, and breaking the pattern (zero-width characters, look-alike dots) depends on each
    client's linkifier and is undone by copying. So a title that holds any of it is left out."""
    text = clean_name(title)
    return text if text and not _LINKISH.search(text) else None


def render_owner_notice(
    translator: Translator,
    resources: Resources,
    *,
    group_title: str | None,
    member: bool | None = None,
    platform: str = "telegram",
    region: str = "OTHER",
) -> RenderedAlert:
    """For a member who asked Vigil to protect their photos: a manipulated copy was removed.

    ``group_title``: the group's title, to be given only when the owner is a member of the group
    (``member``, by default: whether a title was given); shown only if nothing in it can become a
    link (``plain_title``). Otherwise the notice says "a group you are in" (a member) or "a group
    Vigil watches". It says that it is not their fault and where to get help, which works without
    the image. It never shows, describes or links the image, and does not name whoever posted it.
    """
    _one_of("platform", platform, PLATFORMS)
    w = _Writer(translator)
    member = group_title is not None if member is None else member
    title = plain_title(group_title) if member else None
    if title is not None:
        group = _b(title)
        opening: list[_Line] = [
            _bold(w.gettext("A message from Vigil, the safety bot in {group}.", group=group)),
            w.gettext(
                "Someone posted an image in {group} that was made from one of your photos and changed. "
                "Vigil removed the message and told the group's admins.",
                group=group,
            ),
        ]
    elif member:
        opening = [
            _bold(w.gettext("A message from Vigil, a safety bot.")),
            w.gettext(
                "Someone posted an image in a group you are in that was made from one of your photos and changed. "
                "Vigil removed it and told the group's admins."
            ),
        ]
    else:
        opening = [
            _bold(w.gettext("A message from Vigil, a safety bot.")),
            w.gettext(
                "Someone posted an image in a group Vigil watches that was made from one of your photos and changed. "
                "Vigil removed it and told the group's admins."
            ),
        ]
    lines: list[_Line] = opening + [
        w.gettext("It is not your fault. This message does not show the image, and you do not need to look for it."),
        (),
        _bold(w.gettext("If you want help:")),
        _bullet(w.gettext("Talk to someone you trust: a parent, a teacher or a friend.")),
        _bullet(w.gettext("Do not reply to, or pay, anyone who asks you for money or for more images.")),
    ]
    emergency = resources.emergency(region)
    if emergency is not None:
        number = _b(_contact_text(emergency, w.lang))
        lines.append(_bullet(w.gettext("If you are in danger now, call {emergency}.", emergency=number)))
    police = resources.of_role(region, "police")[:1]
    if police:
        lines.append(
            _bullet(
                w.gettext(
                    "You can report it to the police without having the image: {police}.",
                    police=_b(_names(police, w.lang)),
                )
            )
        )
    tools = resources.of_role(region, "hash_tool")
    if tools:
        lines.append(
            _bullet(
                w.gettext(
                    "Only if you have the image on your own device: {tools} can stop it being shared on the sites that "
                    "take part. "
                    "They do not remove it from Telegram or Matrix.",
                    tools=_b(_names(tools, w.lang)),
                )
            )
        )
    order = ("emergency", "police", "hotline", "regulator", "helpline")
    support = sorted((r for r in resources.region(region) if r.role in order), key=lambda r: order.index(r.role))
    if support:
        lines += [(), _bold(w.gettext("Where to get help:"))] + _resource_lines(w, support, compact=1)
    lines += [(), w.gettext("You get this message because you asked Vigil to watch for copies of your photos.")]
    return _render(lines)


def render_unreachable_owner_hint(translator: Translator, bot_username: str) -> str:
    """Posted once in a group whose admins Vigil cannot message: how to let Vigil reach them.

    It says nothing about any image, because every member can read it.
    """
    handle = clean_name(bot_username) or "Vigil"
    if not handle.startswith("@"):
        handle = "@" + handle
    return translator.gettext(
        "Vigil needs to reach this group's admins privately, and none of them has started a chat with it yet. "
        "Admins: please open a private chat with {bot} and send /start, so Vigil can send you its alerts.",
        bot=handle,
    )
