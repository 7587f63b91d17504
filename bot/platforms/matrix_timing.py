"""Where a hit's time goes on Matrix: in Vigil, or waiting on the homeserver.

Each media message keeps a ``HitClock``: when the sync that carried it returned, when the
homeserver accepted its redaction, and how long Vigil waited on the homeserver for that message
in between (its downloads, reading its edits, the redaction itself). Every request Vigil sends
to the homeserver (the long-poll sync apart) is also counted and timed by kind
(``HomeserverCalls``), so a change that saves calls per hit shows in ``bench/bench_matrix.py``.
"""

from __future__ import annotations

import re
import time
from collections import Counter, defaultdict, deque
from dataclasses import dataclass
from types import SimpleNamespace

import aiohttp


@dataclass
class HitClock:
    """One media message's way to its redaction (``time.perf_counter`` seconds)."""

    arrived: float
    redacted: float | None = None
    waited: float = 0.0  # seconds spent in homeserver calls for this message before its redaction
    # the stages in between, each stamped once: a worker asked for the file (the rest before is the
    # queue), the file was in memory, the redaction was asked for (the rest before is scan and decision)
    fetching: float | None = None
    fetched: float | None = None
    redacting: float | None = None

    def stages(self) -> dict[str, float] | None:
        """Seconds per stage (queue, download, scan and decision, redaction), once redacted."""
        if None in (self.redacted, self.fetching, self.fetched, self.redacting):
            return None
        assert self.redacted is not None and self.fetching is not None
        assert self.fetched is not None and self.redacting is not None
        return {
            "queue": self.fetching - self.arrived,
            "download": self.fetched - self.fetching,
            "scan and decision": self.redacting - self.fetched,
            "redaction": self.redacted - self.redacting,
        }

    @property
    def latency(self) -> float | None:
        return None if self.redacted is None else self.redacted - self.arrived


# the first matching pattern names a request's kind; ids in the path never make a kind of their own
_KINDS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(pattern))
    for kind, pattern in (
        ("sync", r"/sync\b"),
        ("admin", r"/_synapse/admin/"),  # the media's uploader, quarantine
        ("redact", r"/rooms/[^/]+/redact/"),
        ("reaction", r"/rooms/[^/]+/send/m\.reaction/"),
        ("send", r"/rooms/[^/]+/send/"),
        ("read state", r"^GET .*/rooms/[^/]+/state(/|$|\?)"),
        ("write state", r"^PUT .*/rooms/[^/]+/state/"),
        ("read event", r"/rooms/[^/]+/(event|context|relations)/"),
        ("read messages", r"/rooms/[^/]+/messages"),
        ("members", r"/rooms/[^/]+/(joined_)?members"),
        ("ban or kick", r"/rooms/[^/]+/(ban|kick|unban)"),
        ("join or leave", r"/(join|rooms/[^/]+/(join|leave|invite))"),
        ("download", r"/(media|download|thumbnail)/"),
        ("keys", r"/(keys|sendToDevice)/"),
        ("make a room", r"/createRoom"),
        ("account data", r"/account_data/"),
        ("profile", r"/profile/"),
    )
)


def request_kind(method: str, path: str) -> str:
    """'PUT /_matrix/client/v3/rooms/!a:b/redact/$e/t' → 'redact'; what no pattern names is 'other'."""
    line = f"{method.upper()} {path.split('?', 1)[0]}"
    return next((kind for kind, pattern in _KINDS if pattern.search(line)), "other")


@dataclass(frozen=True)
class Request:
    kind: str
    started: float  # time.perf_counter()
    ended: float


RECENT = 10_000  # requests kept in order, to see which went first


class HomeserverCalls:
    """How many requests of each kind Vigil sent to the homeserver, the seconds each kind took, and
    the most recent ones in the order they ended."""

    def __init__(self) -> None:
        self.count: Counter[str] = Counter()
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self.recent: deque[Request] = deque(maxlen=RECENT)

    def record(self, method: str, path: str, started: float, ended: float) -> None:
        kind = request_kind(method, path)
        if kind == "sync":  # a long poll: its time is waiting for news, not work
            return
        self.count[kind] += 1
        self.seconds[kind] += ended - started
        self.recent.append(Request(kind, started, ended))

    def snapshot(self) -> tuple[Counter[str], dict[str, float]]:
        return Counter(self.count), dict(self.seconds)

    def trace_config(self) -> aiohttp.TraceConfig:
        """For Vigil's own HTTP session (media, raw API calls): each request recorded as it ends."""
        trace = aiohttp.TraceConfig()

        async def started(
            _session: aiohttp.ClientSession, context: SimpleNamespace, _params: aiohttp.TraceRequestStartParams
        ) -> None:
            context.vigil_started = time.perf_counter()

        async def ended(
            _session: aiohttp.ClientSession, context: SimpleNamespace, params: aiohttp.TraceRequestEndParams
        ) -> None:
            begun = getattr(context, "vigil_started", None)
            if isinstance(begun, float):
                self.record(params.method, params.url.path, begun, time.perf_counter())

        trace.on_request_start.append(started)
        trace.on_request_end.append(ended)
        return trace
