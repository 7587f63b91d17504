"""The sentences an alert is made of: the headline, what was found, what to do now, the steps and
where to report (bot/alerts.py puts them together into the first message and the details)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from bot.alert_facts import RAID, AlertFacts, Finding
from bot.guidance.resources import Resource, Resources
from bot.i18n import N_, Translator
from bot.rich_text import SAFE_HREF, Line, Seg, Writer, bolded, bullet, clean_name, code_seg, link_seg, strong

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


def part_headline(w: Writer, f: AlertFacts, group: Seg) -> Line:
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


def _failure_reason(w: Writer, f: AlertFacts) -> Line | None:
    if f.outcome != "delete_failed":
        return None
    if f.failure == "too_old":
        return w.gettext("Telegram does not let bots delete messages older than 48 hours.")
    if f.failure == "no_right":
        return w.gettext(
            "Vigil is not an admin with the right to delete messages. Give it that right so it can act next time."
        )
    return w.gettext("The platform refused or failed. If it happens again, check Vigil's admin rights.")


def part_urgent(w: Writer, f: AlertFacts) -> list[Line | None]:
    """The one thing to do first, in bold, when the image may still be there."""
    if f.outcome == "not_checked":
        return [
            bolded(
                w.gettext(
                    "An admin should check this message with care. If it may be sexual, do not open or enlarge it: "
                    "delete it."
                )
            )
        ]
    if f.outcome == "delete_failed" and not f.dry_run:
        return [bolded(w.gettext("Delete the message by hand now, without opening the image.")), _failure_reason(w, f)]
    if f.outcome == "review" and not f.dry_run:
        return [
            bolded(
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
        return [bolded(still), why or _failure_reason(w, f)]
    return []


def _owner(f: AlertFacts) -> str | None:
    """The protected member the image was made from, when the alert may name them."""
    derived = next((x for x in f.findings if x.kind == "derived"), None)
    if derived is None:
        return None
    return clean_name(derived.detail) or None


def _list_name(w: Writer, label: str) -> object:
    """A hash list as an admin knows it: never the internal name of a group's own list."""
    name = clean_name(label)
    if name.startswith("group:") or not name:
        return w.word(N_("this group's block list"))
    if name == "circle":  # another group's own list, matched here through a circle (bot/circles.py)
        return w.word(N_("the block list of this group's circle"))
    return w.gettext("the shared list {name}", name=strong(name))


def part_what(w: Writer, f: AlertFacts) -> Line | None:
    """What the image seems to be, in one sentence."""
    owner = _owner(f)
    kinds = {x.kind for x in f.findings}
    if owner is not None:
        # named only where the person belongs, or in a group the operator trusts (bot/protect.py)
        return w.gettext(
            "It looks like a fake made from a photo of {owner}. Only admins see this name.", owner=strong(owner)
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
    if "flood" in kinds and any(x.kind == "flood" and x.detail == RAID for x in f.findings):
        return w.gettext(
            "It was posted by a member who joined recently, while many new members post pictures at once (a "
            "raid): Vigil holds new members' pictures for your decision."
        )
    if "flood" in kinds:
        return w.gettext(
            "It is one of many copies of one picture posted in a short time across Vigil's groups (a flood): "
            "Vigil holds each copy for your decision."
        )
    if "provenance" in kinds:
        return w.gettext("It shows signs of being edited or made by AI.")
    return None


def part_sender_done(w: Writer, f: AlertFacts) -> Line | None:
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


def part_media_left(w: Writer, f: AlertFacts) -> Line | None:
    if f.platform != "matrix" or not f.media_left or f.dry_run:  # a test run hides nothing
        return None
    return w.gettext(
        "The message is hidden, but the file stays on the Matrix server until its admin deletes it (see the details)."
    )


def part_bridged(w: Writer, f: AlertFacts) -> Line | None:
    if f.bridged != "whatsapp":
        return None
    return w.gettext(
        "The sender is a WhatsApp user bridged into this room. The removal reaches WhatsApp only if the bridge's "
        "WhatsApp account is an admin of the WhatsApp group; if it is not, the WhatsApp group's admins must delete "
        "the message in WhatsApp and remove the sender there."
    )


def part_contact_text(r: Resource, lang: str, limit: int = 2) -> str:
    return " / ".join(c.shown for c in r.contact(lang)[:limit])


def _named(r: Resource, lang: str) -> str:
    """A resource's name with its first contact, unless the name already has it ("Childline: 0800 1111")."""
    name = r.name(lang)
    contacts = sorted(r.contact(lang), key=lambda c: c.kind != "phone")  # a number first: quickest in a crisis
    if not contacts or contacts[0].kind == "text" or contacts[0].shown in name:
        return name
    return f"{name}: {contacts[0].shown}"


def _now_help(w: Writer, f: AlertFacts, resources: Resources) -> Line | None:
    """The emergency number and the one help line that matters most in the region."""
    emergency, lead = resources.emergency(f.region), resources.lead(f.region)
    if emergency is not None and lead is not None:
        return w.gettext(
            "In danger now: {emergency}. Help and advice: {helpline}.",
            emergency=strong(part_contact_text(emergency, w.lang)),
            helpline=strong(_named(lead, w.lang)),
        )
    if emergency is not None:
        return w.gettext("In danger now: {emergency}.", emergency=strong(part_contact_text(emergency, w.lang)))
    if lead is not None:
        return w.gettext("Help and advice: {helpline}.", helpline=strong(_named(lead, w.lang)))
    return None


def _support_now(w: Writer, f: AlertFacts) -> Line:
    owner = _owner(f)
    if owner is not None:
        return w.gettext("Support {owner} privately and calmly: it is not their fault.", owner=strong(owner))
    return w.gettext("Support the person shown: believe them and do not blame them.")


def part_do_now(w: Writer, f: AlertFacts, resources: Resources) -> list[Line]:
    lines = [bolded(w.gettext("What to do now:"))]
    if f.outcome == "not_checked":
        lines.append(bullet(w.gettext("If it is a nude or sexual image, do not forward it or ask anyone to send it.")))
    else:
        lines.append(bullet(w.gettext("Do not look for the image, ask anyone for it or forward it.")))
        lines.append(bullet(_support_now(w, f)))
    now = _now_help(w, f, resources)
    if now is not None:
        lines.append(bullet(now))
    return lines


def _finding_line(w: Writer, x: Finding) -> Line:
    score = w.t.format_percent(x.score) if x.score is not None else "?"
    if x.kind == "nudity":
        words = PART_NAMES.get(x.label)
        part: object = w.word(words) if words else code_seg(clean_name(x.label) or "?")
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
            return w.gettext("A manipulated copy of a photo of {owner}", owner=strong(owner))
        return w.gettext("Made from a real person's photo and changed")
    if x.kind == "provenance":
        return w.gettext(
            "Signs that the image was edited or made by AI: {signal}", signal=code_seg(clean_name(x.label) or "?")
        )
    if x.kind == "flood" and x.detail == RAID:
        return w.gettext("Posted by a new member while many new members post pictures (a raid)")
    if x.kind == "flood":
        return w.gettext("One of many copies posted in a short time (a flood)")
    reason = w.word(UNSCANNABLE_REASONS.get(x.detail) or UNKNOWN_REASON)
    return w.gettext("Could not be checked: {reason}", reason=reason)


def part_picture(w: Writer, f: AlertFacts) -> Line | None:
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


def part_found(w: Writer, f: AlertFacts) -> list[Line]:
    lines = [bolded(w.gettext("What was found:"))]
    shown = f.findings[:MAX_FINDINGS_SHOWN]
    lines += [bullet(_finding_line(w, x)) for x in shown]
    where = part_picture(w, f)
    if where is not None:
        lines.append(bullet(where))
    if not f.findings:
        lines.append(bullet(w.gettext("no details were recorded")))
    hidden = len(f.findings) - len(shown)
    if hidden > 0:
        lines.append(
            bullet(
                w.ngettext(
                    "and {n} more finding (in the evidence record)",
                    "and {n} more findings (in the evidence record)",
                    hidden,
                )
            )
        )
    return lines


def _sent_by(w: Writer, f: AlertFacts) -> Line:
    """Who posted it: the member, or the chat a post was made as (never a shared placeholder)."""
    name = strong(clean_name(f.sender_name) or "?")
    sender_id = code_seg(clean_name(f.sender_id, 128))
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


def part_ids(w: Writer, f: AlertFacts) -> list[Line]:
    sent_by = _sent_by(w, f)
    lines = [
        sent_by,
        w.gettext(
            "Group: {group} (id {id})", group=clean_name(f.group_title) or "?", id=code_seg(clean_name(f.group_id, 128))
        ),
        w.gettext("Message: {id}", id=code_seg(clean_name(f.message_id, 128))),
    ]
    if f.message_link and SAFE_HREF.match(f.message_link):
        link = link_seg(w.word(OPEN_IN_GROUP), f.message_link, f.message_link)
        lines.append(w.gettext("Message link: {link}", link=link))
    lines.append(w.gettext("Posted: {time}", time=w.t.format_datetime(f.posted_at)))
    return lines


def part_matrix_media(w: Writer, f: AlertFacts) -> list[Line]:
    """For the homeserver's admin: the files a redaction left behind."""
    if f.platform != "matrix" or not f.media_left:
        return []
    return [
        bolded(w.gettext("The file is still on the Matrix server:")),
        w.gettext(
            "Hiding the message does not delete the uploaded file: anyone with its address can still download it. "
            "The homeserver's admin should quarantine it "
            "(Synapse: POST /_synapse/admin/v1/media/quarantine/<server>/<media id>), "
            "or give Vigil an admin token (VIGIL_MATRIX_ADMIN_TOKEN) to do it. Files:"
        ),
    ] + [bullet((code_seg(clean_name(m, 300)),)) for m in f.media_left]


def part_names(resources: Iterable[Resource], lang: str) -> str:
    return " / ".join(r.name(lang) for r in resources)


def part_steps(w: Writer, f: AlertFacts, resources: Resources, labels: Mapping[str, str]) -> list[Line]:
    platform = PLATFORM_NAMES[f.platform]
    owner = _owner(f)
    derived = any(x.kind == "derived" for x in f.findings)
    info = resources.info(f.region)

    dont = (
        w.gettext(
            "Do not open, save, forward or screenshot the image, and do not ask anyone to send it, not even to "
            "report it."
        )
        + (Seg(" "),)
        + (
            w.gettext("For anyone under 18 that is a crime in itself, whether the image is real or AI-made.")
            if info.minor_images_crime
            else w.gettext("If the person shown is under 18, that can be a crime in itself, real or AI-made.")
        )
    )
    evidence = w.gettext(
        "You do not need the image. This alert and the evidence record ({export} button) have what police and the "
        "platform need: group, message, sender and time.",
        export=strong(labels["export"]),
    )
    if f.sender_action == "banned" and not f.dry_run:
        restrict = w.gettext("Contain it: the sender is banned.")
    elif f.sender_action == "muted" and not f.dry_run:
        restrict = w.gettext("Contain it: the sender is muted.")
    else:
        restrict = w.gettext("Contain it: consider restricting the sender ({ban} button).", ban=strong(labels["ban"]))
    contain = (
        restrict
        + (Seg(" "),)
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
            police=strong(part_names(police, w.lang) or "?"),
            hotline=strong(part_names(hotlines, w.lang)),
        )
    else:
        report = w.gettext(
            "Report it to the police ({police}); they do not need the image: never send or bring it.",
            police=strong(part_names(police, w.lang) or "?"),
        )
    regulators = resources.of_role(f.region, "regulator")
    if regulators:
        routes = strong(part_names(regulators, w.lang))
        report += (Seg(" "),) + w.gettext("To have it removed quickly: {routes}.", routes=routes)
    tools = resources.of_role(f.region, "hash_tool")
    hashing = None
    if tools:
        hashing = w.gettext(
            "{tools} help only if the person shown has the image on their own device, and only on the sites that "
            "take part (Telegram and Matrix do not). They remove nothing from this group. "
            "Nobody should send the image to anyone to use them.",
            tools=strong(part_names(tools, w.lang)),
        )
    if owner is not None:
        support = w.gettext(
            "Support {owner} first: the image is probably a fake made from their photo. Talk to them privately "
            "and calmly (for a child: with their parents and the school's safeguarding lead), and make clear it is "
            "not their fault.",
            owner=strong(owner),
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
    support += (Seg(" "),) + w.gettext(
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
    lines = [bolded(w.gettext("What to do next:"))]
    if f.outcome in ("review", "not_checked"):
        lines.append(w.gettext("If it is a nude or sexual image:"))
    lines += [(Seg(f"{i}. "),) + step for i, step in enumerate((s for s in order if s is not None), 1)]
    return lines


# roles whose description carries a warning (never attach or bring the image): kept when others are cut
_KEEP_PURPOSE = ("police", "hotline", "regulator", "platform")


def part_resource_lines(w: Writer, resources: Iterable[Resource], compact: int = 0) -> list[Line]:
    """compact 0: every description; 1: only those of _KEEP_PURPOSE; 2: names and contacts only."""
    lines: list[Line] = []
    for r in resources:
        name = r.name(w.lang)
        contacts: list[Seg] = []
        for c in r.contact(w.lang):
            if c.kind == "phone" and c.shown in name:
                continue  # "Childline 116 111" needs no "116 111" after it
            if contacts:
                contacts.append(Seg(" · "))
            contacts.append(link_seg(c.shown, c.href, c.shown) if c.href else Seg(c.shown))
        if compact == 2 or (compact == 1 and r.role not in _KEEP_PURPOSE):
            lines.append(bullet((strong(name),) + ((Seg(": "),) + tuple(contacts) if contacts else ())))
            continue
        lines.append(bullet((strong(name), Seg(": " + r.purpose(w.lang)))))
        if contacts:
            lines.append((Seg("  "),) + tuple(contacts))
    return lines


def part_help(w: Writer, f: AlertFacts, resources: Resources, compact: int = 0) -> list[Line]:
    region = resources.region(f.region)
    ordered = sorted(region, key=lambda r: _KIND_ORDER.index(r.role) if r.role in _KIND_ORDER else len(_KIND_ORDER))
    lines: list[Line] = []
    if ordered:
        name = resources.info(f.region).name(w.lang)
        lines.append(bolded(w.gettext("Where to report and get help ({region}):", region=name)))
        lines += part_resource_lines(w, ordered, compact)
    platform = resources.platform(f.platform)
    if platform:
        lines += [(), bolded(w.gettext("Report to {platform}:", platform=PLATFORM_NAMES[f.platform]))]
        lines += part_resource_lines(w, platform, compact)
    return lines


def part_buttons_help(w: Writer, f: AlertFacts, labels: Mapping[str, str]) -> list[Line]:
    shown = {k for row in first_buttons(f) + details_buttons(f) for k in row}
    lines = [bolded(w.gettext("Buttons:"))]
    if "delete" in shown:
        lines.append(
            bullet(
                w.gettext(
                    "{delete}: deletes the message. {keep}: leaves it in the group.",
                    delete=strong(labels["delete"]),
                    keep=strong(labels["keep"]),
                )
            )
        )
    lines.append(bullet(w.gettext("{ban}: removes the sender from the group for good.", ban=strong(labels["ban"]))))
    if "unrestrict" in shown:
        lines.append(
            bullet(w.gettext("{unrestrict}: lets the sender post again.", unrestrict=strong(labels["unrestrict"])))
        )
    if "false_positive" in shown:
        lines.append(
            bullet(
                w.gettext(
                    "{false_positive}: the image is fine; Vigil will allow it in this group from now on.",
                    false_positive=strong(labels["false_positive"]),
                )
            )
        )
    lines.append(
        bullet(
            w.gettext(
                "{export}: sends you the evidence record (ids, times, findings; never the image).",
                export=strong(labels["export"]),
            )
        )
    )
    return lines
