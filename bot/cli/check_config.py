"""`vigil check-config FILE`: validate a config without starting anything."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "check-config",
        help="check a config file",
        description="Validate a config file and the model files it names, without starting anything.",
    )
    p.add_argument("config", type=Path, metavar="FILE")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bot.config import load_config
    from detectors.models import resolve_model_path

    config = load_config(args.config)  # a ConfigError stops here with the key and the fix
    resolve_model_path("nudity", config.detectors.nudity_model)
    resolve_model_path("nsfw", config.detectors.nsfw_model)
    from bot.store.urls import redacted

    platforms = [name for name, on in (("telegram", config.telegram.enabled),) if on]
    # the URL without its password: this line may end up in a ticket or a chat
    data = f"PostgreSQL at {redacted(config.database_url)}" if config.database_url else str(config.data_dir)
    print(f"{args.config}: OK (data in {data}; platforms: {', '.join(platforms) or 'none enabled'})", file=sys.stdout)
    return 0
