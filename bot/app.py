"""Wiring: config -> store -> detectors -> core -> platforms; start, run until a signal, stop cleanly."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys

from bot.config import Config
from bot.core import Core
from bot.metrics import Metrics
from bot.ops import OpsServer
from bot.redact import redact
from bot.retention import RetentionJob
from bot.roles import ClusterNode, Role, check_role, uses_jobs
from bot.store.factory import open_store
from bot.store.protocol import Store
from detectors.memory import return_large_buffers
from detectors.scanner import Scanner

log = logging.getLogger("vigil")

STOP_TIMEOUT = 20.0  # seconds to finish the images in flight after SIGTERM


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info or record.exc_text:
            # exc_text first: the Redactor leaves a cleaned copy there
            entry["error"] = record.exc_text or self.formatException(record.exc_info or (None, None, None))
        return json.dumps(entry, ensure_ascii=False)


# Vigil's own loggers follow log_level. Every other logger stays at INFO or above whatever
# log_level says: at DEBUG, Pillow prints image metadata (EXIF Artist, ImageDescription, PNG
# text), python-telegram-bot, httpx, aiohttp and nio print request URLs (the bot token, the
# access token) and whole payloads (captions), aiosqlite prints SQL parameters.
OWN_LOGGERS = ("vigil", "detectors")
# and these stay quieter still: at INFO they log every request URL, which carries the bot token
# (psycopg.pool: a line for every connection borrowed and returned)
WARNING_ONLY = ("httpx", "httpcore", "aiohttp.client", "aiohttp.access", "urllib3", "psycopg.pool")


class Redactor(logging.Filter):
    """Takes secrets and media links out of every line, whoever logs it.

    The configured tokens and passwords, any Telegram bot token in a URL, and ``mxc://`` ids
    (a removed image's id is a download link for anyone on the homeserver). The lines about
    media that waits for an admin to quarantine it keep their ids: the operator needs them.
    """

    def __init__(self, secrets: tuple[str, ...]) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # a broken format string: let the handler report it as usual
            return True
        clean = redact(text, self.secrets, media_links="quarantin" not in str(record.msg))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        if clean != text:
            record.msg, record.args = clean, None
        return True


def setup_logging(config: Config) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if config.log_format == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    handler.addFilter(
        Redactor(
            (
                config.telegram.token,
                config.matrix.password,
                config.matrix.access_token,
                config.matrix.admin_token,
            )
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    level = logging.getLevelName(config.log_level) if isinstance(config.log_level, str) else config.log_level
    root.setLevel(max(logging.INFO, level))  # libraries inherit this
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(level)
    for name in WARNING_ONLY:
        logging.getLogger(name).setLevel(logging.WARNING)
    # libraries that set their own level below INFO (or were set so earlier) are clamped too
    for name, logger in list(logging.root.manager.loggerDict.items()):
        own = name.startswith(OWN_LOGGERS) or name in WARNING_ONLY
        if isinstance(logger, logging.Logger) and not own and logging.NOTSET < logger.level < logging.INFO:
            logger.setLevel(logging.INFO)
    for name in ("telegram", "nio", "aiosqlite", "psycopg", "PIL"):
        logging.getLogger(name).setLevel(max(logging.INFO, root.level))


class App:
    def __init__(self, config: Config, role: Role = Role.ALL) -> None:
        self.config = config
        self.role = role
        self.cluster: ClusterNode | None = None  # past one machine (bot/roles.py)
        self.stop_requested = asyncio.Event()  # set by a signal, or by an ingest that lost its lock
        self.store: Store | None = None
        self.core: Core | None = None
        # operations (bot/ops.py, bot/metrics.py, bot/retention.py)
        self.metrics = Metrics()
        self.ops: OpsServer | None = None
        self.retention: RetentionJob | None = None
        self.stopping = False

    @property
    def role_status(self) -> str:
        """The role as /readyz shows it: all, worker, ingest: active, ingest: standby."""
        return self.cluster.status if self.cluster is not None else str(self.role)

    async def start(self) -> Core:
        cfg = self.config
        check_role(cfg, self.role)
        if cfg.ops.enabled:
            # first, so /healthz answers while the models load and /readyz says what is missing
            self.ops = OpsServer(self, self.metrics, cfg.ops.address)
            await self.ops.start()
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        return_large_buffers()  # scans in parallel threads must not each keep their peak
        self.store = await open_store(cfg)
        scanner = await asyncio.to_thread(Scanner, cfg.detectors)  # loads the models once
        core = Core(cfg, self.store, scanner, metrics=self.metrics)
        core.set_role(str(self.role))  # recorded with each change-log follower's heartbeat
        # each platform's SDK is loaded only when the platform is enabled
        if cfg.telegram.enabled:
            from bot.platforms.telegram import TelegramPlatform

            core.add_platform(TelegramPlatform(cfg.telegram, self.store))
        if cfg.matrix.enabled:
            from bot.platforms.matrix import MatrixPlatform

            core.add_platform(MatrixPlatform(cfg.matrix, self.store, cfg.data_dir / "matrix"))
        if not core.platforms:
            log.warning(
                "no platform is enabled: set VIGIL_TELEGRAM_TOKEN or VIGIL_MATRIX_PASSWORD, or enable a platform "
                "in the config"
            )
        if uses_jobs(cfg, self.role):  # jobs on PostgreSQL; reading only while this process holds the lock
            core.sweeping = False  # until this process reads the platforms (_read)
            self.cluster = await ClusterNode.open(cfg, self.role, core, self.metrics)
            self.core = core
            await self.cluster.start(self._read, self.stop_requested.set)
            return core
        for platform in core.platforms.values():
            await platform.start(core)
        await core.start()
        core.resume_reports()
        self.core = core
        self.retention = RetentionJob(self.store, cfg.retention, metrics=self.metrics, sweep=cfg.sweep)
        self.retention.start()  # a pass now, then hourly
        return core

    async def _read(self) -> None:
        """The active ingest starts reading the platforms, and runs the retention (once in the cluster)."""
        core, store = self.core, self.store
        assert core is not None and store is not None
        for platform in core.platforms.values():
            await platform.start(core)
        core.sweeping = True  # the one process of the cluster that sweeps what was already posted
        core.resume_reports()
        self.retention = RetentionJob(store, self.config.retention, metrics=self.metrics)
        self.retention.start()

    async def stop(self) -> None:
        self.stopping = True  # /readyz answers 503 from here on
        if self.retention is not None:
            await self.retention.stop()
        core = self.core
        if core is not None:
            for platform in core.platforms.values():
                await platform.stop()  # no new updates from here on
            if self.cluster is not None:
                await self.cluster.stop()
            # the images in flight may finish; the rest waits in the store for the next start
            if not await core.stop(STOP_TIMEOUT):
                log.warning("stopping with work in flight; it stays pending and resumes at the next start")
            for platform in core.platforms.values():
                await platform.close()
        if self.store is not None:
            await self.store.close()
        if self.ops is not None:
            await self.ops.stop()


async def run(config: Config, role: Role = Role.ALL) -> int:
    app = App(config, role)
    stop = app.stop_requested
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await app.start()
    log.info("vigil is running")
    await stop.wait()
    log.info("stopping")
    await app.stop()
    return 0
