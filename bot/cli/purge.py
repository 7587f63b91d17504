"""`vigil purge --user ID`: delete everything Vigil holds about one person (a data-protection request)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from bot.config import Config
from bot.store.records import PurgeCounts

PLATFORMS = ("telegram", "matrix")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "purge",
        help="delete what Vigil holds about a person",
        description="Delete what Vigil holds about one person: the audit records of images they posted (with "
        "their hashes, reviews and alerts), their contact and exemptions, the list entries they added, alerts "
        "sent to them, actions aimed at them, the hashes and fingerprints of the images they posted that the "
        "seen-images window keeps, when they joined groups (with the profile photos checked there), their "
        "private reports and the record of a Matrix mute Vigil was to lift (the mute itself stays until an admin "
        "lifts it). Records of what they did as an admin stay, without their id. "
        "Prints what was removed.",
    )
    p.add_argument(
        "--user",
        required=True,
        metavar="ID",
        help="the person's id: a Telegram user id, or a Matrix id like @alice:example.org",
    )
    p.add_argument(
        "--platform", choices=PLATFORMS, default="telegram", help="where the id comes from (default: telegram)"
    )
    p.add_argument("--config", type=Path, metavar="FILE", help="the bot's config file (to find its data_dir)")
    p.set_defaults(func=run)


@dataclass(frozen=True)
class Purged:
    """What one purge removed: the store's own counts, and the person's rows of the newer records."""

    counts: PurgeCounts
    seen: int  # images of the seen-images window they posted (bot/seen_window.py)
    members: int  # join times and checked profile photos (bot/door.py)
    reports: int  # private-report rows removed or made anonymous (bot/reports.py)
    mutes: int = 0  # Matrix timed mutes Vigil was to lift (bot/store/mutes.py)


async def purge(config: Config, platform: str, user_id: str) -> Purged:
    from bot.store.factory import open_store

    store = await open_store(config, must_exist=True)
    try:
        return Purged(
            counts=await store.purge_user(platform, user_id),
            seen=await store.purge_seen_user(platform, user_id),
            members=await store.forget_member(platform, user_id),
            reports=await store.purge_reporter(platform, user_id),
            mutes=await store.forget_mutes(user_id) if platform == "matrix" else 0,
        )
    finally:
        await store.close()


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    from bot.config import load_config

    user = args.user.strip()
    if not user:
        print("vigil purge: --user must not be empty", file=sys.stderr)
        return 2
    config = load_config(args.config)
    purged = asyncio.run(purge(config, args.platform, user))
    counts = purged.counts
    extra = (("members", purged.members), ("mutes", purged.mutes))
    detail = ", ".join(f"{name} {value}" for name, value in [*asdict(counts).items(), *extra])
    total = counts.total + purged.members + purged.mutes
    print(f"purged {args.platform} user {user}: {total} rows ({detail})", file=out)
    print(f"their private reports: {purged.reports} rows removed or made anonymous", file=out)
    print(f"seen-images window: {purged.seen} images they posted removed", file=out)
    if counts.entries:
        # a running bot follows the store's list change log (bot/follow.py)
        print("a running Vigil stops matching the removed list entries within seconds", file=out)
    return 0
