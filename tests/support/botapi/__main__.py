"""Standalone: ``python -m tests.support.botapi --port N`` serves an empty emulator and prints its URL."""

from __future__ import annotations

import argparse
import asyncio
import signal

from tests.support.botapi.emulator import BotApiEmulator

# --- standalone ------------------------------------------------------------------------------------


async def _serve_forever(port: int, token: str | None) -> None:
    emulator = BotApiEmulator(token, port=port)
    url = await emulator.start()
    print(f"{url} {emulator.token}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await emulator.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve an (empty) Telegram Bot API emulator on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=0, help="port (0: a free one)")
    parser.add_argument("--token", default=None, help="bot token (default: a random one)")
    args = parser.parse_args(argv)
    asyncio.run(_serve_forever(args.port, args.token))


if __name__ == "__main__":
    main()
