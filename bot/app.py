"""Wiring: config -> store -> detectors -> core -> platforms; start, run until a signal, stop cleanly."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from typing import Any

from bot.config import Config
from bot.core import Core
from detectors.scanner import Scanner

log = logging.getLogger("vigil")

STOP_TIMEOUT = 20.0  # seconds to finish in-flight work after SIGTERM


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": self.formatTime(record), "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(config: Config) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if config.log_format == "json" else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(config.log_level)
    # httpx logs every request URL, which contains the bot token
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    # at DEBUG these log whole API payloads (captions, message text, the token in Telegram's URL)
    # and SQL parameters: never below INFO, whatever log_level says
    for name in ("telegram", "nio", "aiosqlite", "psycopg"):
        logging.getLogger(name).setLevel(max(logging.INFO, root.level))


class App:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.store: Any = None
        self.core: Core | None = None
        # operations (bot/ops.py, bot/metrics.py, bot/retention.py)
        from bot.metrics import Metrics

        self.metrics = Metrics()
        self.ops: Any = None
        self.retention: Any = None
        self.stopping = False

    async def start(self) -> Core:
        from bot.store.factory import open_store

        cfg = self.config
        if cfg.ops.enabled:
            from bot.ops import OpsServer

            # first, so /healthz answers while the models load and /readyz says what is missing
            self.ops = OpsServer(self, self.metrics, cfg.ops.address)
            await self.ops.start()
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = await open_store(cfg)
        scanner = await asyncio.to_thread(Scanner, cfg.detectors)  # loads the models once
        core = Core(cfg, self.store, scanner)
        core.metrics = core.actions.metrics = self.metrics  # type: ignore[attr-defined]
        if cfg.telegram.enabled:
            from bot.platforms.telegram import TelegramPlatform

            core.add_platform(TelegramPlatform(cfg.telegram, self.store))
        if cfg.matrix.enabled:
            from bot.platforms.matrix import MatrixPlatform

            core.add_platform(MatrixPlatform(cfg.matrix, self.store, cfg.data_dir / "matrix"))
        if not core.platforms:
            log.warning("no platform is enabled: set VIGIL_TELEGRAM_TOKEN or VIGIL_MATRIX_PASSWORD, or enable a platform in the config")
        for platform in core.platforms.values():
            await platform.start(core)
        await core.start()
        self.core = core
        from bot.retention import RetentionJob

        self.retention = RetentionJob(self.store, cfg.retention, metrics=self.metrics)
        self.retention.start()  # a pass now, then hourly
        return core

    async def stop(self) -> None:
        self.stopping = True  # /readyz answers 503 from here on
        if self.retention is not None:
            await self.retention.stop()
        core = self.core
        if core is not None:
            for platform in core.platforms.values():
                await platform.stop()  # no new updates from here on
            try:
                await asyncio.wait_for(core.pipeline.drain(), STOP_TIMEOUT)
            except asyncio.TimeoutError:
                log.warning("stopping with work in flight; it stays pending and resumes at the next start")
            await core.stop()
            for platform in core.platforms.values():
                await platform.close()
        if self.store is not None:
            await self.store.close()
        if self.ops is not None:
            await self.ops.stop()


async def run(config: Config) -> int:
    app = App(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await app.start()
    log.info("vigil is running")
    await stop.wait()
    log.info("stopping")
    await app.stop()
    return 0
