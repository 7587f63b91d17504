"""Files seen before: the models' verdict of a file posted again is reused, never its pixels.

A raid posts the same few pictures over and over, forwards carry the same file from group to
group. Such a repeat is known before any download when the platform says it is the same file
(Telegram's ``file_unique_id``, a Matrix ``mxc://`` address: both name one immutable file), and
before any model by the SHA-256 of its bytes otherwise. What is kept is the ``Scan``: detections
and scores, hashes, trimmed views and the local fingerprint, which list and protected-photo
matching need to match the repeat again against today's lists (a /block made after the first
sighting still catches it). A file that could not be checked is never remembered, so its repeat
is checked again.

Bounded by count and by an estimate of the bytes held; the least recently used goes first. In
memory only: a restart forgets it all.

Copies that arrive while the first is still being scanned (a raid or a burst has several images
in flight at once) wait for that scan (``settled``) instead of running the models again beside it.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from detectors.scanner import Scan

MAX_KEY = 255
_PLATFORM_KEY = re.compile(r"[A-Za-z0-9_\-:/.!]+")
_BASE_BYTES = 2048  # a Scan's small fields, hashes and dict entries, roughly


@dataclass(frozen=True)
class Remembered:
    scan: Scan
    sha256: str
    with_signals: bool  # scanned with list signals (views, fingerprint): enough for any list
    size: int  # estimated bytes held


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def platform_key(platform: str, media: Any) -> str | None:
    """The platform's own name for this very file, when it has one that never changes:
    Telegram's file_unique_id (kept by the adapter in ``MediaRef.extra``), a Matrix mxc:// URI."""
    if platform == "telegram":
        value = media.extra.get("unique_id") if isinstance(media.extra, dict) else None
    elif platform == "matrix":
        value = media.file_id if isinstance(media.file_id, str) and media.file_id.startswith("mxc://") else None
    else:
        value = None
    if not isinstance(value, str) or not 0 < len(value) <= MAX_KEY or not _PLATFORM_KEY.fullmatch(value):
        return None
    return f"{platform}:{value}"


def _bytes_of(value: Any, depth: int = 0) -> int:
    """The memory a fingerprint or view holds, roughly: its arrays, and its small fields."""
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, (bytes, bytearray, str)):
        return len(value)
    if depth > 3:
        return 64
    if isinstance(value, (tuple, list)):
        return sum(_bytes_of(v, depth + 1) for v in value) + 8 * len(value)
    fields = getattr(value, "__dataclass_fields__", None)
    if fields:
        return sum(_bytes_of(getattr(value, f), depth + 1) for f in fields) + 64
    return 64


def size_of(scan: Scan) -> int:
    return _BASE_BYTES + sum(_bytes_of(f.views) + _bytes_of(f.fingerprint) + 256 for f in scan.frames)


class RepeatCache:
    def __init__(self, entries: int, max_bytes: int) -> None:
        self.entries = max(0, entries)
        self.max_bytes = max_bytes
        self._by_sha: OrderedDict[str, Remembered] = OrderedDict()
        self._by_file: OrderedDict[str, str] = OrderedDict()  # platform key -> sha256
        self.bytes = 0
        self.hits_before_download = 0
        self.hits_before_models = 0
        self._scanning: dict[str, asyncio.Future[None]] = {}  # sha256 -> done when its scan ends

    @property
    def enabled(self) -> bool:
        return self.entries > 0

    def __len__(self) -> int:
        return len(self._by_sha)

    def by_file(self, key: str | None, *, signals: bool) -> Remembered | None:
        if not self.enabled or key is None or (sha := self._by_file.get(key)) is None:
            return None
        found = self._usable(sha, signals)
        if found is not None:
            self._by_file.move_to_end(key)
            self.hits_before_download += 1
        return found

    def by_sha(self, sha: str, key: str | None, *, signals: bool) -> Remembered | None:
        found = self._usable(sha, signals) if self.enabled else None
        if found is not None:
            self.hits_before_models += 1
            if key is not None:
                self._link(key, sha)
        return found

    def remember(self, sha: str, key: str | None, scan: Scan, *, signals: bool) -> None:
        if not self.enabled:
            return
        entry = Remembered(scan, sha, signals, size_of(scan))
        if entry.size > self.max_bytes:
            return
        old = self._by_sha.pop(sha, None)
        if old is not None:
            self.bytes -= old.size
        self._by_sha[sha] = entry
        self.bytes += entry.size
        if key is not None:
            self._link(key, sha)
        while self._by_sha and (len(self._by_sha) > self.entries or self.bytes > self.max_bytes):
            _, dropped = self._by_sha.popitem(last=False)
            self.bytes -= dropped.size

    async def settled(self, sha: str) -> None:
        """Returns once no scan of these bytes is under way: then ``by_sha`` finds its verdict
        (unless that scan failed, or lacked the list signals asked for: then scan it again)."""
        while self.enabled and (done := self._scanning.get(sha)) is not None:
            await asyncio.shield(done)

    @contextmanager
    def scanning(self, sha: str) -> Iterator[None]:
        """Marks these bytes as being scanned until the block ends, however it ends."""
        if not self.enabled or not sha or sha in self._scanning:
            yield
            return
        done = asyncio.get_running_loop().create_future()
        self._scanning[sha] = done
        try:
            yield
        finally:
            del self._scanning[sha]
            done.set_result(None)

    def _usable(self, sha: str, signals: bool) -> Remembered | None:
        found = self._by_sha.get(sha)
        if found is None or (signals and not found.with_signals):
            return None  # a list needs the views and fingerprint this scan did not compute
        self._by_sha.move_to_end(sha)
        return found

    def _link(self, key: str, sha: str) -> None:
        self._by_file[key] = sha
        self._by_file.move_to_end(key)
        while len(self._by_file) > max(1, 2 * self.entries):  # stale links point at dropped entries: harmless
            self._by_file.popitem(last=False)
