"""What the Matrix adapter remembers about recent events (bounded), shared by its inbound and outbound halves."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

CACHE = 5000  # events remembered for replies, edits and redactions


class Lru(OrderedDict[Any, Any]):
    """A dict that forgets its oldest entries beyond ``size``."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def put(self, key: Any, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


@dataclass
class Related:
    """What a redaction of one message must also cover: its edits and every file they showed."""

    sender: str = ""
    edits: list[str] = field(default_factory=list)
    mxcs: list[str] = field(default_factory=list)
    complete: bool = False  # the original message itself was seen (not only an edit of it)
