"""`vigil protect`: the operator's side of protected photos.

    vigil protect add IMAGE... --owner NAME [--notify USER]
    vigil protect list [--json]
    vigil protect remove (ID | --owner NAME | --member PLATFORM:ID)

Works on the store in the config's data_dir, also while the bot runs: the bot applies the
change within seconds (it follows the store's protected-photo change log, bot/follow.py). Images are read
into memory, fingerprinted and dropped; only fingerprints are stored.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from bot.config import Config
    from bot.protect import Protector
    from bot.store.protocol import Store

    Job = Callable[[Protector, Store], Awaitable[int]]

PLATFORMS = ("telegram", "matrix")
_MATRIX_USER = re.compile(r"^@[^:\s]+:[A-Za-z0-9.\-\[\]:]+$")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "protect",
        help="protect people's photos from manipulated copies",
        description="Keep local-feature fingerprints (never the images) of photos of a person, so that a "
        "manipulated copy posted in a group (an AI 'undress' fake, a photo with a replaced body) is traced to "
        "them: the alert names them to that group's admins, and deletion is certain when nudity is found too.",
    )
    p.add_argument("--config", type=Path, metavar="FILE", help="the bot's config file (to find its data_dir)")
    verbs = p.add_subparsers(dest="verb", metavar="VERB")
    add = verbs.add_parser("add", help="fingerprint images of a person and keep the fingerprints")
    add.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    add.add_argument(
        "--owner", required=True, metavar="NAME", help="the person in the photos, as admins should read it"
    )
    add.add_argument(
        "--notify",
        metavar="USER",
        help="tell this user privately when a manipulated copy is removed: a Telegram user id (or telegram:ID), "
        "or a Matrix id like @alice:example.org",
    )
    add.add_argument("--config", type=Path, metavar="FILE", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    lst = verbs.add_parser("list", help="owners and their protected photos")
    lst.add_argument("--json", action="store_true", help="one JSON object per owner per line")
    lst.add_argument("--config", type=Path, metavar="FILE", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    rm = verbs.add_parser("remove", help="remove one photo, or every photo of a person")
    which = rm.add_mutually_exclusive_group(required=True)
    which.add_argument("id", nargs="?", type=int, metavar="ID", help="a photo id from `vigil protect list`")
    which.add_argument("--owner", metavar="NAME", help="every photo the operator added for this person")
    which.add_argument("--member", metavar="PLATFORM:ID", help="every photo of a member (e.g. telegram:12345)")
    rm.add_argument("--config", type=Path, metavar="FILE", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    p.set_defaults(func=run, verb=None)


def notify_target(text: str) -> tuple[str, str]:
    """'12345', 'telegram:12345' or '@alice:example.org' → (platform, user id); ValueError otherwise."""
    value = text.strip()
    if value.startswith("telegram:"):
        value = value.removeprefix("telegram:")
        if value.lstrip("-").isdigit():
            return "telegram", value
    elif value.startswith("matrix:"):
        value = value.removeprefix("matrix:")
        if _MATRIX_USER.match(value):
            return "matrix", value
    elif value.isdigit():
        return "telegram", value
    elif _MATRIX_USER.match(value):
        return "matrix", value
    raise ValueError(
        f"'{text}' is neither a Telegram user id (12345, telegram:12345) nor a Matrix id (@alice:example.org)"
    )


def member_target(text: str) -> tuple[str, str]:
    platform, _, user = text.partition(":")
    if platform not in PLATFORMS or not user:
        raise ValueError(f"'{text}' is not PLATFORM:ID (telegram:12345 or matrix:@alice:example.org)")
    return platform, user


async def _with_store(config: Config, job: Job, *, create: bool = False) -> int:
    from bot.protect import Protector
    from bot.store.factory import open_store

    store = await open_store(config, must_exist=not create)
    try:
        return await job(Protector(store, config.protect, config.detectors.limits), store)
    finally:
        await store.close()


async def _add(config: Config, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from bot.protect import ProtectError
    from detectors.errors import MediaError

    notify = notify_target(args.notify) if args.notify else None
    failed = 0

    async def job(protector: Protector, store: Store) -> int:
        nonlocal failed
        for path in args.images:
            try:
                data = path.read_bytes()
            except OSError as exc:
                print(f"error    {path}: cannot read the file: {exc.strerror or exc}", file=err)
                failed += 1
                continue
            try:
                photo_id = await protector.add_operator_photo(args.owner, data, label=path.name[:200], notify=notify)
            except (MediaError, ProtectError) as exc:
                print(f"error    {path}: {exc}", file=err)
                failed += 1
                continue
            finally:
                del data
            print(f"added    #{photo_id} {path} (owner {args.owner})", file=out)
        return failed

    await _with_store(config, job, create=True)
    return 1 if failed else 0


async def _list(config: Config, args: argparse.Namespace, out: TextIO) -> int:
    async def job(protector: Protector, store: Store) -> int:
        owners = await store.protected_owners()
        photos = await store.protected_photos()
        by_owner: dict[int, list[Any]] = {}
        for p in photos:
            by_owner.setdefault(p.owner_id, []).append(p)
        if not owners and not args.json:
            print("no protected photos", file=out)
        for o in owners:
            mine = by_owner.get(o.id, [])
            who = f"member {o.platform}:{o.user_id}" if o.kind == "member" else "added by the operator"
            notice = f"{o.notify_platform}:{o.notify_user}" if o.notify else None
            if args.json:
                print(
                    json.dumps(
                        {
                            "owner": o.name,
                            "owner_id": o.id,
                            "kind": o.kind,
                            "member": f"{o.platform}:{o.user_id}" if o.kind == "member" else None,
                            "notify": notice,
                            "photos": [
                                {
                                    "photo": p.id,
                                    "source": p.source,
                                    "label": p.label,
                                    "added_at": p.added_at,
                                    "group": f"{p.platform}:{p.chat_id}" if p.chat_id else None,
                                    "expires_at": p.expires_at,
                                }
                                for p in mine
                            ],
                        },
                        ensure_ascii=False,
                    ),
                    file=out,
                )
                continue
            print(f"{o.name} ({who}; notices {'to ' + notice if notice else 'off'}): {len(mine)} photos", file=out)
            for p in mine:
                where = {
                    "private": "sent privately",
                    "operator": p.label or "operator",
                    "group": f"group {p.platform}:{p.chat_id} until {p.expires_at}",
                }[p.source]
                print(f"  #{p.id:<6} {where}  added {p.added_at}", file=out)
        return 0

    return await _with_store(config, job)


async def _remove(config: Config, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    async def job(protector: Protector, store: Store) -> int:
        if args.id is not None:
            if args.id < 1 or not await protector.remove_photo(args.id):
                print(f"vigil protect: no protected photo #{args.id}", file=err)
                return 1
            print(f"removed  photo #{args.id}", file=out)
            return 0
        if args.owner is not None:
            owner = await store.operator_owner(args.owner)
            if owner is None:
                print(
                    f"vigil protect: no owner named '{args.owner}' added by the operator (see vigil protect list)",
                    file=err,
                )
                return 1
            removed = await protector.remove_owner(owner.id)
            print(f"removed  {removed} photos of {args.owner}", file=out)
            return 0
        platform, user = member_target(args.member)
        removed = await protector.remove_member(platform, user)
        print(f"removed  {removed} photos of member {platform}:{user}", file=out)
        return 0 if removed else 1

    return await _with_store(config, job)


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    from bot.config import load_config

    if args.verb is None:
        print("vigil protect: give a verb: add, list or remove (see vigil protect --help)", file=err)
        return 2
    try:
        if args.verb == "add" and args.notify:
            notify_target(args.notify)
        if args.verb == "remove" and args.member:
            member_target(args.member)
    except ValueError as exc:
        print(f"vigil protect: {exc}", file=err)
        return 2
    if args.verb == "add" and not args.owner.strip():
        print("vigil protect: --owner must not be empty", file=err)
        return 2
    config = load_config(args.config)
    if args.verb == "add":
        return asyncio.run(_add(config, args, out, err))
    if args.verb == "list":
        return asyncio.run(_list(config, args, out))
    return asyncio.run(_remove(config, args, out, err))
