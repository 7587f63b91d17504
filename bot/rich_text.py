"""A tiny rich-text model for the alerts: one source for both the plain text (Matrix body) and the
Telegram-safe HTML. Names from chats go in as segments and are escaped once, at the end."""

from __future__ import annotations

import html
import re
import string
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bot.i18n import Translator

MAX_NAME = 64  # longer names are cut: they only need to identify someone


@dataclass(frozen=True)
class RenderedAlert:
    text: str  # plain text (Matrix body)
    html: str  # Telegram-HTML-safe: only <b>, <i>, <a href>, <code>; everything else escaped


@dataclass(frozen=True)
class Seg:
    text: str
    style: str = ""  # "" | "b" | "i" | "code"
    href: str | None = None
    plain: str | None = None  # what plain text shows instead of ``text`` (e.g. the full link)


Line = tuple[Seg, ...]

SAFE_HREF = re.compile(r"^https?://[^\s<>\"'`]+$", re.IGNORECASE)


def clean_name(value: str | None, limit: int = MAX_NAME) -> str:
    """A chat-supplied name made safe to show: no control or direction-override characters, one line, bounded."""
    text = "".join(
        " " if unicodedata.category(c) in ("Zl", "Zp", "Cc") else c
        for c in (value or "")
        if unicodedata.category(c) not in ("Cf", "Cs", "Co", "Cn") or c == "\u200d"
    )
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def strong(text: str) -> Seg:
    return Seg(text, "b")


def code_seg(text: str) -> Seg:
    return Seg(text, "code")


def link_seg(text: str, href: str | None, plain: str | None = None) -> Seg:
    if href and SAFE_HREF.match(href):
        return Seg(text, "", href, plain)
    return Seg(plain or text)


def fill(template: str, values: Mapping[str, object]) -> Line:
    out: list[Seg] = []
    for literal, name, _spec, _conv in string.Formatter().parse(template):
        if literal:
            out.append(Seg(literal))
        if name is not None:
            value = values[name]
            if isinstance(value, tuple):  # a whole translated line, e.g. "the shared list {name}"
                out.extend(value)
            else:
                out.append(value if isinstance(value, Seg) else Seg(str(value)))
    return tuple(out)


class Writer:
    """Translates a msgid and fills its fields with segments, so names are escaped once, at the end."""

    def __init__(self, translator: Translator) -> None:
        self.t = translator
        self.lang = translator.language

    def gettext(self, msgid: str, **values: object) -> Line:
        try:
            return fill(self.t.gettext(msgid), values)
        except (KeyError, IndexError, ValueError):  # a broken translation: fall back to English
            return fill(msgid, values)

    def ngettext(self, singular: str, plural: str, n: int, **values: object) -> Line:
        values.setdefault("n", n)
        try:
            return fill(self.t.ngettext(singular, plural, n), values)
        except (KeyError, IndexError, ValueError):
            return fill(singular if n == 1 else plural, values)

    def word(self, msgid: str) -> str:
        return self.t.gettext(msgid)


def merged(line: Line) -> Line:
    """Joins neighbouring segments of the same style, so the HTML has one <b> per bold run."""
    out: list[Seg] = []
    for s in line:
        if (
            out
            and not s.href
            and not out[-1].href
            and s.style == out[-1].style
            and s.plain is None
            and out[-1].plain is None
        ):
            out[-1] = Seg(out[-1].text + s.text, s.style)
        else:
            out.append(s)
    return tuple(out)


def bolded(line: Line) -> Line:
    return tuple(Seg(s.text, "b", s.href, s.plain) if s.style in ("", "b") else s for s in line)


def render(lines: Iterable[Line]) -> RenderedAlert:
    text_lines, html_lines = [], []
    for line in map(merged, lines):
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


def bullet(line: Line) -> Line:
    return (Seg("• "),) + line
