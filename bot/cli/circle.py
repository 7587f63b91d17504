"""`vigil circle`: the operator joins groups into circles that share blocks (and bans).

    vigil circle add NAME --group telegram:-1001234567890 --group matrix:!room:example.org [--shared-bans]
    vigil circle remove NAME [--group PLATFORM:CHAT_ID ...]   (without --group: the whole circle)
    vigil circle list

A running Vigil reads circles from the store for every image, so a change applies at once.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from detectors.errors import VigilError

if TYPE_CHECKING:
    from bot.store.protocol import Store

# Telegram: a numeric chat id; Matrix: a room id (!opaque:server), never an alias (aliases move)
_GROUP = re.compile(r"telegram:(-?\d{1,20})|matrix:(![^:\s]{1,200}:[A-Za-z0-9.\-\[\]:]{1,250})")


class CircleError(VigilError):
    """A wrong argument to `vigil circle`; the message says how to write it."""


def group_arg(value: str) -> tuple[str, str]:
    """``--group``: ``telegram:CHAT_ID`` or ``matrix:!ROOM_ID:SERVER``."""
    m = _GROUP.fullmatch(value.strip())
    if m is None:
        raise argparse.ArgumentTypeError(
            f"{value[:300]!r} is not a group: write telegram:CHAT_ID (e.g. telegram:-1001234567890) or "
            "matrix:!ROOM_ID:SERVER (e.g. matrix:!abc:example.org; a room id, not an #alias)"
        )
    return ("telegram", m.group(1)) if m.group(1) is not None else ("matrix", m.group(2))


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "circle",
        help="circles of groups that share blocks (and bans)",
        description="A circle joins groups (Telegram groups and Matrix rooms alike): an image an admin blocks in "
        "one of them is blocked in all of them, and with --shared-bans a ban Vigil applies in one applies in the "
        "others of the same platform.",
    )
    p.add_argument("--config", type=Path, metavar="FILE", help="the bot's config file (to find its data)")
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    add = verbs.add_parser("add", help="create a circle or add groups to it")
    add.add_argument("name", metavar="NAME", help="1 to 64 letters, digits, '.', '_' or '-'")
    add.add_argument(
        "--group",
        dest="groups",
        action="append",
        type=group_arg,
        default=[],
        metavar="PLATFORM:CHAT_ID",
        help="a group to add (repeat it): telegram:-1001234567890 or matrix:!room:example.org",
    )
    add.add_argument(
        "--shared-bans",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a ban Vigil applies in one group applies in the circle's other groups (default: unchanged; off "
        "for a new circle)",
    )
    rm = verbs.add_parser("remove", help="take groups out of a circle, or remove the circle")
    rm.add_argument("name", metavar="NAME")
    rm.add_argument("--group", dest="groups", action="append", type=group_arg, default=[], metavar="PLATFORM:CHAT_ID")
    verbs.add_parser("list", help="the circles and their groups")
    p.set_defaults(func=run)


async def circle(store: Store, args: argparse.Namespace, out: TextIO) -> int:
    if args.verb == "add":
        if not args.groups and args.shared_bans is None:
            raise CircleError("circle add: give at least one --group PLATFORM:CHAT_ID (or --shared-bans)")
        unknown = [f"{p}:{c}" for p, c in args.groups if await store.get_group(p, c) is None]
        record = await store.add_to_circle(args.name, args.groups, shared_bans=args.shared_bans)
        print(
            f"circle {record.name}: {len(record.members)} groups, shared bans {'on' if record.shared_bans else 'off'}",
            file=out,
        )
        if unknown:
            print(f"note: Vigil has not seen {', '.join(unknown)} yet (is it added there, with this id?)", file=out)
        return 0
    if args.verb == "remove":
        if args.groups:
            removed = await store.remove_from_circle(args.name, args.groups)
            print(f"circle {args.name}: {removed} of {len(args.groups)} groups taken out", file=out)
            return 0 if removed else 1
        gone = await store.delete_circle(args.name)
        print(f"circle {args.name}: {'removed' if gone else 'no such circle'}", file=out)
        return 0 if gone else 1
    circles = await store.circles()
    for c in circles:
        titles = []
        for p, chat in c.members:
            group = await store.get_group(p, chat)
            titles.append(f"{p}:{chat}" + (f" ({group.title})" if group is not None and group.title else ""))
        print(f"{c.name}: shared bans {'on' if c.shared_bans else 'off'}; {', '.join(titles) or 'no groups'}", file=out)
    if not circles:
        print("no circles: vigil circle add NAME --group PLATFORM:CHAT_ID --group ...", file=out)
    return 0


async def _run(args: argparse.Namespace, out: TextIO) -> int:
    from bot.config import load_config
    from bot.store.factory import open_store

    store = await open_store(load_config(args.config), must_exist=args.verb != "add")
    try:
        return await circle(store, args, out)
    finally:
        await store.close()


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    return asyncio.run(_run(args, out or sys.stdout))
