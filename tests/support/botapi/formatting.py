"""Text formatting as Telegram parses it: HTML, MarkdownV2 and legacy Markdown to entities."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Any

# --- text formatting: HTML, MarkdownV2 and legacy Markdown ----------------------------------


class _ParseError(Exception):
    pass


def _u16(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram's entity offsets."""
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(src: str, index: int) -> int:
    return len(src[:index].encode("utf-8"))


class _Builder:
    """Accumulates plain text and entities while a markup parser walks its source."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pos = 0  # UTF-16 units written so far
        self.entities: list[dict] = []

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.pos += _u16(text)

    def entity(self, kind: str, start: int, **extra: Any) -> None:
        if self.pos > start:
            self.entities.append({"type": kind, "offset": start, "length": self.pos - start, **extra})

    def result(self) -> tuple[str, list[dict]]:
        return "".join(self.parts), self.entities


_HTML_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_HTML_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_ATTR_RE = re.compile(r"""([a-zA-Z-]+)\s*(?:=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?""")
_ENTITY_RE = re.compile(r"&(#[0-9]{1,7}|#x[0-9a-fA-F]{1,6}|[a-zA-Z]+);")


def _parse_html(src: str) -> tuple[str, list[dict]]:
    out = _Builder()
    stack: list[tuple[str, int, dict[str, Any]]] = []  # (tag, start, extra fields)
    i = 0
    while i < len(src):
        c = src[i]
        if c == "<":
            end = src.find(">", i)
            if end < 0:
                raise _ParseError(f"Unclosed start tag at byte offset {_byte_offset(src, i)}")
            inner = src[i + 1 : end]
            if inner.startswith("/"):
                name = inner[1:].strip().lower()
                if not stack:
                    raise _ParseError(f"Unexpected end tag at byte offset {_byte_offset(src, i)}")
                tag, start, extra = stack.pop()
                if name != tag:
                    raise _ParseError(
                        f'Unmatched end tag at byte offset {_byte_offset(src, i)}, expected "</{tag}>", '
                        f'found "</{name}>"'
                    )
                kind = _HTML_TAGS[tag]
                if not extra.pop("_skip", False):
                    out.entity(kind, start, **extra)
            else:
                name, _, rest = inner.partition(" ")
                name = name.strip().lower()
                if name not in _HTML_TAGS:
                    raise _ParseError(f'Unsupported start tag "{name}" at byte offset {_byte_offset(src, i)}')
                attrs = {
                    m.group(1).lower(): html.unescape(m.group(2) or m.group(3) or m.group(4) or "")
                    for m in _ATTR_RE.finditer(rest)
                }
                extra = {}
                if name == "span" and attrs.get("class") != "tg-spoiler":
                    raise _ParseError(f'Tag "span" must have class "tg-spoiler" at byte offset {_byte_offset(src, i)}')
                if name == "a":
                    href = attrs.get("href", "")
                    if not href:
                        extra["_skip"] = True  # an <a> without href is plain text
                    elif not re.match(r"^(https?|tg)://", href):
                        raise _ParseError(f'Wrong HTTP URL "{href}"')
                    else:
                        extra["url"] = href
                if name == "tg-emoji":
                    if not attrs.get("emoji-id"):
                        raise _ParseError(
                            f'Tag "tg-emoji" must have attribute "emoji-id" at byte offset {_byte_offset(src, i)}'
                        )
                    extra["custom_emoji_id"] = attrs["emoji-id"]
                if name == "code" and stack and stack[-1][0] == "pre" and stack[-1][1] == out.pos:
                    # <pre><code class="language-x"> is one pre entity with a language
                    lang = attrs.get("class", "")
                    if lang.startswith("language-"):
                        stack[-1][2]["language"] = lang[len("language-") :]
                    extra["_skip"] = True
                stack.append((name, out.pos, extra))
            i = end + 1
        elif c == "&":
            m = _ENTITY_RE.match(src, i)
            char = None
            if m:
                ref = m.group(1)
                if ref.startswith("#x"):
                    char = chr(int(ref[2:], 16)) if int(ref[2:], 16) <= 0x10FFFF else None
                elif ref.startswith("#"):
                    char = chr(int(ref[1:])) if int(ref[1:]) <= 0x10FFFF else None
                else:
                    char = _HTML_NAMED.get(ref)
            if char is not None and m is not None:
                out.add(char)
                i = m.end()
            else:  # a stray & is tolerated as text, as the real API does
                out.add("&")
                i += 1
        else:
            out.add(c)
            i += 1
    if stack:
        raise _ParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    return out.result()


_MDV2_RESERVED = frozenset("_*[]()~`>#+-=|{}.!")
_MDV2_NAMES = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "text_link": "TextUrl",
}


def _parse_markdown_v2(src: str) -> tuple[str, list[dict]]:
    out = _Builder()
    stack: list[tuple[str, int, int]] = []  # (kind, start, source index)
    i, n = 0, len(src)

    def reserved(ch: str) -> _ParseError:
        return _ParseError(f"Character '{ch}' is reserved and must be escaped with the preceding '\\'")

    def toggle(kind: str, at: int) -> None:
        for k in range(len(stack) - 1, -1, -1):
            if stack[k][0] == kind:
                _, start, _ = stack.pop(k)
                out.entity(kind, start)
                return
        stack.append((kind, out.pos, at))

    while i < n:
        c = src[i]
        if c == "\\":
            if i + 1 < n and 1 <= ord(src[i + 1]) <= 126:
                out.add(src[i + 1])
                i += 2
                continue
            raise reserved("\\")
        if c == "`":
            fence = "```" if src.startswith("```", i) else "`"
            j = i + len(fence)
            language = None
            if fence == "```":
                line_end = src.find("\n", j)
                first = src[j:line_end] if line_end >= 0 else ""
                if line_end >= 0 and first and not re.search(r"\s", first):
                    language, j = first, line_end + 1
            start, closed = out.pos, False
            while j < n:
                if src[j] == "\\" and j + 1 < n:
                    out.add(src[j + 1])
                    j += 2
                elif src.startswith(fence, j):
                    closed = True
                    break
                else:
                    out.add(src[j])
                    j += 1
            if not closed:
                name = "Pre" if fence == "```" else "Code"
                raise _ParseError(f"Can't find end of {name} entity at byte offset {_byte_offset(src, i)}")
            if fence == "```":
                out.entity("pre", start, **({"language": language} if language else {}))
            else:
                out.entity("code", start)
            i = j + len(fence)
        elif c == "*":
            toggle("bold", i)
            i += 1
        elif c == "_":
            if src.startswith("__", i):
                toggle("underline", i)
                i += 2
            else:
                toggle("italic", i)
                i += 1
        elif c == "~":
            toggle("strikethrough", i)
            i += 1
        elif c == "|":
            if not src.startswith("||", i):
                raise reserved("|")
            toggle("spoiler", i)
            i += 2
        elif c == "[":
            stack.append(("text_link", out.pos, i))
            i += 1
        elif c == "]":
            if not stack or stack[-1][0] != "text_link":
                raise reserved("]")
            if i + 1 >= n or src[i + 1] != "(":
                raise _ParseError(f"Can't find end of a url at byte offset {_byte_offset(src, i)}")
            j, url = i + 2, []
            while j < n and src[j] != ")":
                if src[j] == "\\" and j + 1 < n:
                    j += 1
                url.append(src[j])
                j += 1
            if j >= n:
                raise _ParseError(f"Can't find end of a url at byte offset {_byte_offset(src, i)}")
            _, start, _ = stack.pop()
            out.entity("text_link", start, url="".join(url))
            i = j + 1
        elif c == ">" and (i == 0 or src[i - 1] == "\n"):
            line_end = src.find("\n", i)
            line_end = n if line_end < 0 else line_end
            start = out.pos
            inner_text, inner_entities = _parse_markdown_v2(src[i + 1 : line_end])
            for e in inner_entities:
                out.entities.append({**e, "offset": e["offset"] + start})
            out.add(inner_text)
            out.entity("blockquote", start)
            i = line_end
        elif c in _MDV2_RESERVED:
            raise reserved(c)
        else:
            out.add(c)
            i += 1
    if stack:
        kind, _, at = stack[-1]
        raise _ParseError(
            f"Can't find end of {_MDV2_NAMES.get(kind, kind)} entity at byte offset {_byte_offset(src, at)}"
        )
    return out.result()


def _parse_markdown(src: str) -> tuple[str, list[dict]]:
    """Legacy Markdown: *bold*, _italic_, `code`, ```pre```, [text](url); no nesting."""
    out = _Builder()
    i, n = 0, len(src)

    def unclosed(at: int) -> _ParseError:
        return _ParseError(f"Can't find end of the entity starting at byte offset {_byte_offset(src, at)}")

    while i < n:
        c = src[i]
        if c == "\\" and i + 1 < n and src[i + 1] in "_*`[":
            out.add(src[i + 1])
            i += 2
        elif c in "*_":
            j = src.find(c, i + 1)
            if j < 0:
                raise unclosed(i)
            start = out.pos
            out.add(src[i + 1 : j])
            out.entity("bold" if c == "*" else "italic", start)
            i = j + 1
        elif c == "`":
            fence = "```" if src.startswith("```", i) else "`"
            j = src.find(fence, i + len(fence))
            if j < 0:
                raise unclosed(i)
            start = out.pos
            out.add(src[i + len(fence) : j])
            out.entity("pre" if fence == "```" else "code", start)
            i = j + len(fence)
        elif c == "[":
            close = src.find("]", i + 1)
            if close < 0 or close + 1 >= n or src[close + 1] != "(" or src.find(")", close) < 0:
                raise unclosed(i)
            url_end = src.find(")", close)
            start = out.pos
            out.add(src[i + 1 : close])
            out.entity("text_link", start, url=src[close + 2 : url_end])
            i = url_end + 1
        else:
            out.add(c)
            i += 1
    return out.result()


_PARSERS: dict[str, Callable[[str], tuple[str, list[dict]]]] = {
    "html": _parse_html,
    "markdownv2": _parse_markdown_v2,
    "markdown": _parse_markdown,
}


def _strip(text: str, entities: list[dict]) -> tuple[str, list[dict]]:
    """Telegram trims surrounding whitespace from texts and captions; entities follow."""
    stripped = text.strip()
    if stripped == text:
        return text, entities
    lead = _u16(text[: len(text) - len(text.lstrip())])
    total = _u16(stripped)
    kept = []
    for e in entities:
        start = max(e["offset"] - lead, 0)
        end = min(e["offset"] + e["length"] - lead, total)
        if end > start:
            kept.append({**e, "offset": start, "length": end - start})
    return stripped, kept


_COMMAND_RE = re.compile(r"(?<![^\s])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?")


def _command_entities(text: str) -> list[dict]:
    return [
        {"type": "bot_command", "offset": _u16(text[: m.start()]), "length": _u16(m.group())}
        for m in _COMMAND_RE.finditer(text)
    ]
