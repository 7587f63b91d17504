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

import re

from bot.alert_facts import (
    OUTCOMES,
    PLATFORMS,
    AlertFacts,
    Finding,
    one_of,
)
from bot.alert_pieces import (
    FIRST_MESSAGE_LINES,
    MAX_CHARS,
    button_labels,
    details_buttons,
    first_buttons,
    part_bridged,
    part_buttons_help,
    part_contact_text,
    part_do_now,
    part_found,
    part_headline,
    part_help,
    part_ids,
    part_matrix_media,
    part_media_left,
    part_names,
    part_picture,
    part_resource_lines,
    part_sender_done,
    part_steps,
    part_urgent,
    part_what,
)
from bot.guidance.resources import Resources
from bot.i18n import Translator
from bot.rich_text import (
    Line,
    RenderedAlert,
    Seg,
    Writer,
    bolded,
    bullet,
    clean_name,
    render,
    strong,
)

# the alerts' API (values from bot.alert_facts, choices from bot.alert_pieces)
__all__ = [
    "AlertFacts",
    "FIRST_MESSAGE_LINES",
    "Finding",
    "MAX_CHARS",
    "OUTCOMES",
    "RenderedAlert",
    "button_labels",
    "clean_name",
    "details_buttons",
    "first_buttons",
    "plain_title",
    "render_alert",
    "render_details",
    "render_owner_notice",
    "render_unreachable_owner_hint",
]

# --- public rendering -------------------------------------------------------------------------------


def _length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2  # Telegram counts UTF-16 code units


def _group(f: AlertFacts) -> Seg:
    return strong(clean_name(f.group_title) or clean_name(f.group_id) or "?")


def render_alert(facts: AlertFacts, translator: Translator, resources: Resources) -> RenderedAlert:
    """The first message for one admin, in that admin's language: one phone screen.

    What happened, what Vigil did, and what to do now; the rest is behind the Details choice
    (``render_details``).
    """
    w = Writer(translator)
    lines: list[Line | None] = [bolded(part_headline(w, facts, _group(facts)))]
    if facts.dry_run:
        lines.append(w.gettext("Nothing was changed in the group: this only shows what Vigil would have done."))
    lines += [
        part_media_left(w, facts),
        part_bridged(w, facts),
        part_what(w, facts),
        part_picture(w, facts),
        part_sender_done(w, facts),
    ]
    lines += part_urgent(w, facts)
    lines += [(), *part_do_now(w, facts, resources)]
    return render([x for x in lines if x is not None])


def render_details(facts: AlertFacts, translator: Translator, resources: Resources) -> RenderedAlert:
    """The second message: findings, ids, the full steps and where to report and get help.

    It fits one chat message (MAX_CHARS): if the full text is too long, the buttons' help goes
    first, then the help list's descriptions (those of the police and reporting services,
    which warn never to send the image, last); the steps are always kept.
    """
    w = Writer(translator)
    labels = button_labels(translator)
    lines: list[Line] = [bolded(w.gettext("Details: an image in {group}", group=_group(facts)))]
    if facts.dry_run:
        lines.append(w.gettext("Nothing was changed in the group: this only shows what Vigil would have done."))
    lines += [()] + part_found(w, facts)
    lines += [()] + part_ids(w, facts)
    media = part_matrix_media(w, facts)
    if media:
        lines += [()] + media
    lines += [()] + part_steps(w, facts, resources, labels)
    rendered = RenderedAlert("", "")
    for compact, buttons, help_list in (
        (0, True, True),
        (0, False, True),
        (1, True, True),
        (1, False, True),
        (2, False, True),
        (2, False, False),
    ):
        tail: list[Line] = []
        if help_list:
            tail += [()] + part_help(w, facts, resources, compact)
        if buttons:
            tail += [()] + part_buttons_help(w, facts, labels)
        rendered = render(lines + tail)
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
    one_of("platform", platform, PLATFORMS)
    w = Writer(translator)
    member = group_title is not None if member is None else member
    title = plain_title(group_title) if member else None
    if title is not None:
        group = strong(title)
        opening: list[Line] = [
            bolded(w.gettext("A message from Vigil, the safety bot in {group}.", group=group)),
            w.gettext(
                "Someone posted an image in {group} that was made from one of your photos and changed. "
                "Vigil removed the message and told the group's admins.",
                group=group,
            ),
        ]
    elif member:
        opening = [
            bolded(w.gettext("A message from Vigil, a safety bot.")),
            w.gettext(
                "Someone posted an image in a group you are in that was made from one of your photos and changed. "
                "Vigil removed it and told the group's admins."
            ),
        ]
    else:
        opening = [
            bolded(w.gettext("A message from Vigil, a safety bot.")),
            w.gettext(
                "Someone posted an image in a group Vigil watches that was made from one of your photos and changed. "
                "Vigil removed it and told the group's admins."
            ),
        ]
    lines: list[Line] = opening + [
        w.gettext("It is not your fault. This message does not show the image, and you do not need to look for it."),
        (),
        bolded(w.gettext("If you want help:")),
        bullet(w.gettext("Talk to someone you trust: a parent, a teacher or a friend.")),
        bullet(w.gettext("Do not reply to, or pay, anyone who asks you for money or for more images.")),
    ]
    emergency = resources.emergency(region)
    if emergency is not None:
        number = strong(part_contact_text(emergency, w.lang))
        lines.append(bullet(w.gettext("If you are in danger now, call {emergency}.", emergency=number)))
    police = resources.of_role(region, "police")[:1]
    if police:
        lines.append(
            bullet(
                w.gettext(
                    "You can report it to the police without having the image: {police}.",
                    police=strong(part_names(police, w.lang)),
                )
            )
        )
    tools = resources.of_role(region, "hash_tool")
    if tools:
        lines.append(
            bullet(
                w.gettext(
                    "Only if you have the image on your own device: {tools} can stop it being shared on the sites that "
                    "take part. "
                    "They do not remove it from Telegram or Matrix.",
                    tools=strong(part_names(tools, w.lang)),
                )
            )
        )
    order = ("emergency", "police", "hotline", "regulator", "helpline")
    support = sorted((r for r in resources.region(region) if r.role in order), key=lambda r: order.index(r.role))
    if support:
        lines += [(), bolded(w.gettext("Where to get help:"))] + part_resource_lines(w, support, compact=1)
    lines += [(), w.gettext("You get this message because you asked Vigil to watch for copies of your photos.")]
    return render(lines)


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
