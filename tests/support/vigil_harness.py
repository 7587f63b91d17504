"""Running Vigil against the Bot API emulator: config files, the app in-process, the app as a subprocess."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
from PIL import Image

from bot.app import App
from bot.config import load_config

TOKEN = "123456789:AAE-vigil-test-token-0123456789abcdef"
ROOT = Path(__file__).resolve().parents[2]


def write_config(tmp: Path, base_url: str, marker_model: Path, *, groups: str = "", extra: str = "") -> Path:
    """A config for a test: the emulator as Telegram, the marker model as NudeNet, a fresh data dir."""
    path = tmp / "config.toml"
    path.write_text(
        f"""
[vigil]
data_dir = "{tmp / "data"}"
log_level = "INFO"

[telegram]
base_url = "{base_url}/bot"
base_file_url = "{base_url}/file/bot"
poll_timeout = 1

[models.nudity]
path = "{marker_model}"

[pipeline]
workers = 2
scan_timeout = 60

[ops]
# any free port: tests (and other test runs on the machine) must not collide on 9464
listen = "127.0.0.1:0"

[groups]
{groups}
{extra}
"""
    )
    return path


@asynccontextmanager
async def running_vigil(config_path: Path) -> AsyncIterator[App]:
    config = load_config(config_path, env={"VIGIL_TELEGRAM_TOKEN": TOKEN})
    app = App(config)
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


class VigilProcess:
    """`vigil run` as its own process, for kill-and-restart tests."""

    def __init__(self, config_path: Path, log_path: Path) -> None:
        self.config_path, self.log_path = config_path, log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        env = {**os.environ, "VIGIL_TELEGRAM_TOKEN": TOKEN, "PYTHONUNBUFFERED": "1"}
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "run", "--config", str(self.config_path)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = 30) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def webp(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "WEBP", quality=90)
    return buf.getvalue()


async def settle(seconds: float = 1.0) -> None:
    await asyncio.sleep(seconds)
