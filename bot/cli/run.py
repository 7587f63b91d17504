"""`vigil run --config FILE`: the bot itself."""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("run", help="run the bot", description="Run Vigil on the platforms enabled in the config.")
    p.add_argument("--config", type=Path, metavar="FILE", help="the config file (see config.example.toml)")
    p.add_argument(
        "--role",
        choices=("all", "ingest", "worker"),
        default="all",
        help="all: one process does everything (default); ingest: reads the platforms and queues jobs "
        "(one active per bot account, others stand by); worker: runs jobs. ingest and worker need PostgreSQL",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bot.app import run as run_app
    from bot.app import setup_logging
    from bot.config import load_config
    from bot.roles import Role

    # each connection names its process (pg_stat_activity shows who holds a job or the reader's lock)
    os.environ.setdefault("PGAPPNAME", f"vigil-{args.role}-{os.getpid()}")
    config = load_config(args.config)
    setup_logging(config)
    return asyncio.run(run_app(config, Role(args.role)))
