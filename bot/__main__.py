"""The `vigil` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from detectors.errors import VigilError


def build_parser() -> argparse.ArgumentParser:
    from bot.cli import backup, check_config, migrate_store, protect, purge, run, scan
    from bot.cli import circle as circles
    from bot.cli import hash as hash_lists

    parser = argparse.ArgumentParser(
        prog="vigil",
        description="Vigil: a self-hosted moderation bot that checks images in group chats on this machine.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    scan.add_parser(sub)
    run.add_parser(sub)
    check_config.add_parser(sub)
    backup.add_parser(sub)
    purge.add_parser(sub)
    protect.add_parser(sub)
    hash_lists.add_parser(sub)
    migrate_store.add_parser(sub)
    circles.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except VigilError as exc:
        print(f"vigil {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
