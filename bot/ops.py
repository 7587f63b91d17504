"""The operations endpoint: a small HTTP server on a local port ([ops] listen).

    /healthz   200 while the process runs (the container's HEALTHCHECK)
    /readyz    200 when the models are loaded, the store answers, every enabled platform is
               connected and the in-memory indexes follow the store; otherwise 503, with a JSON
               body saying what is not ready (and each index's lag: changes behind, seconds since
               it last read its change log to the end)
    /metrics   Prometheus text format (bot/metrics.py)

It starts before the models load, so /healthz answers during a slow start while /readyz says
"loading". It serves counts and states only: nothing about a chat, a person or an image.

``python -m bot.ops --config FILE [--path /readyz]`` probes the endpoint that FILE configures
(exit 0 when it answers 200): the image's HEALTHCHECK, which has python but no curl.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from bot.config import load_config
from bot.errors import ConfigError
from bot.index_versions import IndexGate, IndexLag
from bot.metrics import Metrics
from bot.platforms.base import Platform
from bot.store.protocol import Store

log = logging.getLogger("vigil.ops")

STORE_TIMEOUT = 2.0  # seconds the store may take to answer a readiness check
# an index whose last complete catch-up is older than this no longer follows the store (the polls
# are every few seconds): the process is not ready
INDEX_STALE_SECONDS = 120.0
CONTENT_TYPE_METRICS = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class Readiness:
    ready: bool
    checks: Mapping[str, str]  # what was checked -> "ok", or what is wrong
    index: Mapping[str, Mapping[str, float | int | None]] = field(default_factory=dict)  # lag per change log
    role: str = "all"  # `vigil run --role` (bot/roles.py), with "ingest: active" or "ingest: standby"

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ready": self.ready, "checks": dict(self.checks)}
        if self.role != "all":  # a cluster's process says which part it plays
            body["role"] = self.role
        if self.index:
            body["index"] = {k: dict(v) for k, v in self.index.items()}
        return body


class RunningCore(Protocol):
    """What the endpoints read of the running core."""

    @property
    def platforms(self) -> Mapping[str, Platform]: ...
    @property
    def backlog(self) -> int: ...
    @property
    def index_gate(self) -> IndexGate: ...


class RunningApp(Protocol):
    """What the endpoints read of the app (bot/app.py ``App``): None while it is starting."""

    @property
    def core(self) -> RunningCore | None: ...
    @property
    def store(self) -> Store | None: ...
    @property
    def stopping(self) -> bool: ...


async def readiness(app: RunningApp) -> Readiness:
    """Models loaded, store open and answering, each enabled platform connected."""
    checks: dict[str, str] = {}
    core = app.core
    if getattr(app, "stopping", False):  # an app that never started has no such flag yet
        checks["vigil"] = "stopping"
    checks["models"] = "ok" if core is not None else "loading"
    store = app.store
    if store is None:
        checks["store"] = "not open"
    else:
        try:
            async with asyncio.timeout(STORE_TIMEOUT):
                await store.schema_version()
            checks["store"] = "ok"
        except TimeoutError:
            checks["store"] = f"no answer within {STORE_TIMEOUT:.0f} s (busy, or a backup is running)"
        except Exception as exc:  # closed or broken: say so instead of failing the probe
            checks["store"] = f"error: {type(exc).__name__}"
    role = str(getattr(app, "role_status", "all"))  # an app from before roles has none
    if core is not None and role != "ingest: standby":  # a standby reads nothing until it takes over
        for name, platform in core.platforms.items():
            checks[f"platform:{name}"] = "ok" if platform.connected else "not connected"
    index: dict[str, dict[str, float | int | None]] = {}
    if core is not None and store is not None and checks["store"] == "ok" and role != "ingest: standby":
        try:
            async with asyncio.timeout(STORE_TIMEOUT):
                lags = await core.index_gate.lag(store)
        except Exception as exc:  # the store check above says more
            log.warning("readiness: index lag not read (%s)", type(exc).__name__)
            lags = []
        index = {str(lag.kind): _lag_json(lag) for lag in lags}
        stale = [lag for lag in lags if lag.since_catch_up is not None and lag.since_catch_up > INDEX_STALE_SECONDS]
        checks["indexes"] = (
            "ok"
            if not stale
            else "; ".join(f"{lag.kind} last read the store's changes {lag.since_catch_up:.0f} s ago" for lag in stale)
        )
    return Readiness(all(v == "ok" for v in checks.values()), checks, index=index, role=role)


def _lag_json(lag: IndexLag) -> dict[str, float | int | None]:
    age = None if lag.since_catch_up is None else round(lag.since_catch_up, 1)
    return {"head": lag.head, "applied": lag.applied, "behind": lag.behind, "seconds_since_catch_up": age}


class OpsServer:
    """Serves the endpoints for one app; ``port`` is the bound port (useful with port 0)."""

    def __init__(self, app: RunningApp, metrics: Metrics, address: tuple[str, int]) -> None:
        self.app, self.metrics, self.address = app, metrics, address
        self._runner: web.AppRunner | None = None
        self.port = 0
        metrics.watch(
            "vigil_queue_depth",
            "Chats with images waiting or in flight (the images wait in the store)",
            self._queue_depth,
        )
        metrics.watch("vigil_platform_connected", "1 while the platform's connection works", self._connected)

    def _queue_depth(self) -> list[tuple[dict[str, str], float]]:
        core = self.app.core
        return [({}, float(core.backlog if core is not None else 0))]

    def _connected(self) -> list[tuple[dict[str, str], float]]:
        core = self.app.core
        platforms = core.platforms.items() if core is not None else ()
        return [({"platform": name}, 1.0 if p.connected else 0.0) for name, p in platforms]

    async def start(self) -> None:
        web_app = web.Application()
        web_app.router.add_get("/healthz", self._healthz)
        web_app.router.add_get("/readyz", self._readyz)
        web_app.router.add_get("/metrics", self._metrics)
        # no access log: probes every few seconds would drown the bot's own lines
        self._runner = web.AppRunner(web_app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        host, port = self.address
        site = web.TCPSite(self._runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            raise ConfigError(
                "ops.listen",
                f"cannot listen on {host}:{port} ({exc.strerror or exc})",
                'choose a free port, or set listen = "" to turn the endpoint off',
            ) from None
        self.port = self._runner.addresses[0][1]
        log.info("ops endpoint on http://%s:%d (/healthz, /readyz, /metrics)", host, self.port)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"alive": True})

    async def _readyz(self, request: web.Request) -> web.Response:
        state = await readiness(self.app)
        return web.json_response(state.as_json(), status=200 if state.ready else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        store, core = self.app.store, self.app.core
        if store is not None and core is not None:
            try:
                async with asyncio.timeout(STORE_TIMEOUT):
                    lists = await store.all_lists()
                    sizes = await store.list_sizes()
                self.metrics.set_lists(lists, sizes)
            except Exception as exc:  # the counters are still worth serving
                log.warning("metrics: list sizes not read (%s)", type(exc).__name__)
            try:
                async with asyncio.timeout(STORE_TIMEOUT):
                    lags = await core.index_gate.lag(store)
                gate = core.index_gate
                self.metrics.set_index_lag(lags, gate.gave_up, gate.stale_hits)
            except Exception as exc:
                log.warning("metrics: index lag not read (%s)", type(exc).__name__)
        return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE_METRICS})


# --- the probe -------------------------------------------------------------------------------


def probe(address: tuple[str, int], path: str = "/healthz", timeout: float = 5.0) -> tuple[int, str]:
    """GET ``path`` on the endpoint; returns (status, body), status 0 when nothing answered."""
    host, port = address
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    shown = f"[{host}]" if ":" in host else host
    try:
        with urllib.request.urlopen(f"http://{shown}:{port}{path}", timeout=timeout) as r:  # noqa: S310 (loopback)
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except OSError as exc:
        return 0, str(exc)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bot.ops", description="Probe Vigil's ops endpoint (exit 0 when it answers 200)."
    )
    p.add_argument("--config", type=Path, metavar="FILE", help="the config whose [ops] listen to probe")
    p.add_argument("--path", default="/healthz", choices=("/healthz", "/readyz"))
    args = p.parse_args(argv)
    try:
        ops = load_config(args.config).ops
    except ConfigError as exc:
        print(f"vigil probe: {exc}", file=sys.stderr)
        return 1
    if not ops.enabled:
        print('vigil probe: the ops endpoint is off ([ops] listen = ""): nothing to check')
        return 0
    status, body = probe(ops.address, args.path)
    print(f"vigil probe: {args.path} -> {status or 'no answer'} {body.strip()[:300]}")
    return 0 if status == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
