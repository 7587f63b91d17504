"""Secrets and media links out of text that leaves the process (logs, audit records, exports).

A Telegram bot token appears in every Bot API URL; an ``mxc://`` id is a download link for
anyone on the homeserver, also after the message was redacted.
"""

from __future__ import annotations

import re

_TOKEN_IN_URL = re.compile(r"bot\d{3,}:[\w-]{20,}")
_MXC = re.compile(r"mxc://[^\s'\"<>,;)\]]+")


def redact(text: str, secrets: tuple[str, ...] = (), *, media_links: bool = True) -> str:
    """``text`` with each of ``secrets``, any bot token in a URL and (``media_links``) any mxc id replaced."""
    for secret in secrets:
        if secret and len(secret) >= 6:
            text = text.replace(secret, "<secret>")
    text = _TOKEN_IN_URL.sub("bot<token>", text)
    return _MXC.sub("mxc://<media>", text) if media_links else text
