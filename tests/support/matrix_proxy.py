"""A loopback proxy in front of the test Synapse: what a hostile federation could make a homeserver send.

Synapse refuses malformed events from its own users, but relays what other homeservers send;
the tests play those homeservers here. Vigil talks to the proxy as its homeserver, and the
proxy forwards every request to the real Synapse, except that it can:

- add events to the /sync responses that carry a given event (``inject_after``), each time that
  sync is served, so a replayed sync carries them again as a homeserver would;
- rewrite events in /sync responses (``rewrite``), e.g. give two edits the same timestamp;
- hold downloads of chosen media (``stall``) like a remote server that never answers;
- record every request's method and path (``requests``), e.g. to see which admin API calls Vigil makes.

    async with MatrixProxy(synapse.base_url) as proxy:
        proxy.inject_after(command_id, [poison_event])
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web

HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "content-encoding", "keep-alive"}


class MatrixProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.requests: list[tuple[str, str]] = []
        self._injections: list[tuple[Callable[[str, dict[str, Any]], bool], list[dict[str, Any]]]] = []
        self._rewrites: list[Callable[[str, dict[str, Any]], None]] = []
        self._stalled: set[str] = set()
        self.stalls_seen = 0
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.url = ""

    # --- what the test arranges -------------------------------------------------------------

    def inject_after(self, event_id: str, events: list[dict[str, Any]]) -> None:
        """Each /sync response whose timeline holds ``event_id`` gets ``events`` right after it."""
        self._injections.append((lambda _room, e: e.get("event_id") == event_id, events))

    def inject_after_text(self, room_id: str, body: str, events: list[dict[str, Any]]) -> None:
        """As ``inject_after``, anchored on a message with this body in a plain room: arm it before
        sending the message, so no sync can carry the message before the proxy knows."""
        self._injections.append(
            (lambda room, e: room == room_id and (e.get("content") or {}).get("body") == body, events)
        )

    def rewrite(self, change: Callable[[str, dict[str, Any]], None]) -> None:
        """``change(room_id, event)`` may alter each timeline event of every /sync response in place."""
        self._rewrites.append(change)

    def stall(self, media_id: str) -> None:
        """Downloads of this media id never answer (until the proxy stops)."""
        self._stalled.add(media_id)

    def unstall(self, media_id: str) -> None:
        """Later downloads of this media id are forwarded again (one already held stays held)."""
        self._stalled.discard(media_id)

    def paths(self, prefix: str) -> list[str]:
        return [path for _, path in self.requests if path.startswith(prefix)]

    # --- life cycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> MatrixProxy:
        self._session = aiohttp.ClientSession(auto_decompress=True)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    # --- forwarding -------------------------------------------------------------------------------

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        path = request.rel_url.raw_path
        self.requests.append((request.method, path))
        if "/download/" in path and any(m in path for m in self._stalled):
            self.stalls_seen += 1
            await self._release.wait()
            return web.Response(status=504)
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        body = await request.read()
        async with self._session.request(
            request.method,
            self.upstream + str(request.rel_url),
            headers=headers,
            data=body or None,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=120),
        ) as reply:
            data = await reply.read()
            out_headers = {k: v for k, v in reply.headers.items() if k.lower() not in HOP_HEADERS}
            if reply.status == 200 and path.startswith("/_matrix/client/") and path.endswith("/sync"):
                data = self._edit_sync(data)
            return web.Response(status=reply.status, body=data, headers=out_headers)

    def _edit_sync(self, data: bytes) -> bytes:
        if not self._injections and not self._rewrites:
            return data
        body = json.loads(data)
        for room_id, room in ((body.get("rooms") or {}).get("join") or {}).items():
            timeline = (room.get("timeline") or {}).get("events") or []
            for change in self._rewrites:
                for event in timeline:
                    change(room_id, event)
            for anchor, events in self._injections:
                for i, event in enumerate(timeline):
                    if anchor(room_id, event):
                        timeline[i + 1 : i + 1] = [dict(e) for e in events]
                        break
        return json.dumps(body).encode()
