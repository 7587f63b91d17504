"""`vigil hash ...`: the operator's hash lists, while the bot runs or not.

Every subcommand opens the configured database (SQLite in WAL mode in data_dir, or PostgreSQL
with [database] url; the running bot keeps working) and changes it only through the store; the running bot
follows the store's list change log, so an entry added or removed here is matched (or
no longer matched) within seconds, without a restart.

    vigil hash add IMAGE... --list NAME [--note TEXT] [--label L] [--action A] [--kind K]
    vigil hash match IMAGE... [--json] [--list NAME]...
    vigil hash import FILE --list NAME [--format auto|te|csv]
    vigil hash export --list NAME [--format te|csv] [--output FILE]
    vigil hash remove ENTRY...
    vigil hash lists
    vigil hash follow NAME --group PLATFORM:CHAT_ID   (and unfollow)
    vigil hash delete-list NAME --yes
    vigil hash publish NAME --room #room:server   (MSC4113 image-hash rules in a Matrix policy room)

File formats:
* ``te``: python-threatexchange's local file exchange, one signal a line: ``pdq <64 hex
  digits>`` (the signal type, one space, the hash). Blank lines are skipped; a bare
  64-digit hash is read as PDQ. Only PDQ entries are written (other hashes have no TE type
  Vigil shares).
* ``csv``: one row per entry with a header: entry, list, pdq, pdq_quality, phash, sha256,
  added_by, added_at, source_platform, source_chat, note.

An import is all or nothing: every bad line is reported with its number and the reason,
and then nothing is added.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import re
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from bot.store.lists import ACTIONS, KINDS

if TYPE_CHECKING:
    from bot.config import Config
    from bot.store.protocol import Store
    from bot.store.records import ListRecord

    Command = Callable[[Store, Config, argparse.Namespace, TextIO, TextIO], Awaitable[int]]

TE_SIGNAL = "pdq"
CSV_FIELDS = (
    "entry",
    "list",
    "pdq",
    "pdq_quality",
    "phash",
    "sha256",
    "added_by",
    "added_at",
    "source_platform",
    "source_chat",
    "note",
)
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX = re.compile(r"[0-9a-f]{1,64}")
OPERATOR = "operator"  # added_by of entries the operator adds here
MAX_REPORTED = 50  # bad lines listed one by one; past that, only their count


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "hash",
        help="manage hash lists (add, match, import, export, remove, follow)",
        description=__doc__.split("\n\n")[0] + " See `vigil hash COMMAND --help`.",
    )

    def show_help(args: argparse.Namespace) -> int:
        p.print_help()
        return 2

    p.set_defaults(func=show_help)
    hs = p.add_subparsers(dest="hash_command", metavar="COMMAND")

    def command(name: str, help: str, func: Command) -> argparse.ArgumentParser:
        c = hs.add_parser(name, help=help, description=help)
        c.add_argument("--config", type=Path, metavar="FILE", help="the config file (its data_dir holds the database)")
        c.set_defaults(func=lambda args: _run(func, args))
        return c

    def list_options(c: argparse.ArgumentParser) -> None:
        c.add_argument(
            "--list",
            required=True,
            dest="list_name",
            metavar="NAME",
            help="the list; a new name creates an instance list",
        )
        c.add_argument(
            "--label", default="local", help="what a new list holds: ncii, csam-suspected, deepfake, spam, local, ..."
        )
        c.add_argument(
            "--action", choices=ACTIONS, default="delete", help="what a block match of a new list does (default delete)"
        )
        c.add_argument("--kind", choices=KINDS, default="block", help="block or allow list (default block)")

    c = command("add", "add images to a list (only their hashes and features are stored)", add)
    c.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    list_options(c)
    c.add_argument("--note", help="a note kept with each entry (500 characters at most)")

    c = command("match", "show the list entries each image matches", match)
    c.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    c.add_argument("--json", action="store_true", help="one JSON object per image per line")
    c.add_argument("--list", action="append", dest="list_names", metavar="NAME", help="only this list (repeatable)")

    c = command("import", "import hashes from a file (ThreatExchange text or Vigil CSV); all or nothing", import_file)
    c.add_argument("file", type=Path, metavar="FILE")
    list_options(c)
    c.add_argument("--format", choices=("auto", "te", "csv"), default="auto")
    c.add_argument("--note", help="a note kept with each imported entry (CSV rows keep their own)")

    c = command("export", "write a list's hashes (ThreatExchange text or CSV)", export)
    c.add_argument("--list", required=True, dest="list_name", metavar="NAME")
    c.add_argument("--format", choices=("te", "csv"), default="te")
    c.add_argument("--output", type=Path, metavar="FILE", help="write here instead of standard output")

    c = command("remove", "remove entries by id, everywhere (the running bot stops matching them)", remove)
    c.add_argument("entries", nargs="+", type=int, metavar="ENTRY")

    command("lists", "every list: name, label, kind, action, size, and the groups following it", show_lists)

    for verb in ("follow", "unfollow"):
        c = command(verb, f"make a group {verb} an instance list", follow if verb == "follow" else unfollow)
        c.add_argument("list_name", metavar="NAME")
        c.add_argument("--group", required=True, metavar="PLATFORM:CHAT_ID", help="e.g. telegram:-1001234567890")

    c = command(
        "publish", "publish a block list's PDQ hashes to a Matrix policy room (removed entries are redacted)", publish
    )
    c.add_argument("list_name", metavar="NAME")
    c.add_argument(
        "--room",
        required=True,
        metavar="#ROOM:SERVER",
        help="the policy room (alias or id) Vigil's account may write to",
    )

    c = command("delete-list", "delete a list and all its entries", delete_list)
    c.add_argument("list_name", metavar="NAME")
    c.add_argument("--yes", action="store_true", help="really delete (without it, only say what would go)")


def _run(func: Command, args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    return asyncio.run(_with_store(func, args, out or sys.stdout, err or sys.stderr))


async def _with_store(func: Command, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from bot.config import load_config
    from bot.store.factory import open_store

    config = load_config(args.config)
    store = await open_store(config)
    try:
        return await func(store, config, args, out, err)
    except CliError as exc:
        print(f"vigil hash {args.hash_command}: {exc}", file=err)
        return 2
    finally:
        await store.close()


class CliError(Exception):
    """A problem the command reports on stderr with exit status 2 (nothing was changed)."""


async def _list_named(store: Store, name: str) -> ListRecord:
    lst = await store.list_by_name(name)
    if lst is None:
        names = ", ".join(lst.name for lst in await store.all_lists()) or "none yet"
        raise CliError(f"no list named '{name}' (lists: {names}; `vigil hash lists` shows them)")
    return lst


async def _list_or_new(store: Store, args: argparse.Namespace, err: TextIO) -> ListRecord:
    lst = await store.list_by_name(args.list_name)
    if lst is not None:
        return lst
    lst = await store.create_list(args.list_name, kind=args.kind, label=args.label, action=args.action)
    print(f"created instance list '{lst.name}' ({lst.kind}, label {lst.label}, action {lst.action})", file=err)
    return lst


def _progress(total: int, err: TextIO, unit: str) -> Any:
    if not err.isatty() or total < 2:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, file=err, leave=False)


def _signals(path: Path, limits: Any) -> Any:
    """(frames, None) or (None, reason) for one image file; the bytes are dropped after hashing."""
    from detectors.errors import MediaError
    from detectors.matching import media_signals

    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, f"cannot read the file: {exc.strerror or exc}"
    try:
        return media_signals(data, limits), None
    except MediaError as exc:
        return None, str(exc)
    finally:
        del data


# --- add ---------------------------------------------------------------------------------


async def add(store: Store, config: Config, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    missing = [p for p in args.images if not p.is_file()]
    if missing:
        raise CliError(f"no such file: {missing[0]}")
    from bot.entries import EntrySource, EntryWriter  # the detectors load only for commands that hash

    lst = await _list_or_new(store, args, err)
    writer = EntryWriter(store)  # the bot's own way of adding entries; the running bot follows the change log
    source = EntrySource(OPERATOR, note=args.note)
    failed = 0
    for path in args.images:
        frames, problem = await asyncio.to_thread(_signals, path, config.detectors.limits)
        if frames is None:
            print(f"{path}: not added: {problem}", file=err)
            failed += 1
            continue
        ids = await writer.add_frames(lst, frames, source)
        print(f"{path}: entry {', '.join(map(str, ids))} in '{lst.name}'", file=out)
    return 1 if failed else 0


# --- match -------------------------------------------------------------------------------


async def match(store: Store, config: Config, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from bot.lists import HashLists

    missing = [p for p in args.images if not p.exists()]
    if missing:
        raise CliError(f"no such file: {missing[0]}")
    lists = HashLists()
    await lists.load(store)
    names = {lst.id: lst.name for lst in await store.all_lists()}
    wanted = None
    if args.list_names:
        wanted = {(await _list_named(store, n)).id for n in args.list_names}
    d = config.groups
    for path in args.images:
        frames, problem = await asyncio.to_thread(_signals, path, config.detectors.limits)
        if frames is None:
            line = json.dumps({"path": str(path), "error": problem}) if args.json else f"{path}: error: {problem}"
            print(line, file=out, flush=True)
            continue
        found = _entries_matched(lists, frames, wanted, d.hash_distance, d.pdq_min_quality)
        rows = [
            {
                "list": names.get(c.list_id, str(c.list_id)),
                "entry": c.entry_id,
                "algorithm": c.algorithm,
                "distance": c.distance,
            }
            for c in found
        ]
        if args.json:
            print(json.dumps({"path": str(path), "matches": rows}, ensure_ascii=False), file=out, flush=True)
        elif rows:
            for r in rows:
                print(
                    f"{path}: list '{r['list']}' entry {r['entry']} ({r['algorithm']}, distance {r['distance']})",
                    file=out,
                )
        else:
            print(f"{path}: no match", file=out)
    return 0


def _entries_matched(
    lists: Any, frames: Sequence[Any], wanted: set[int] | None, distance: int, min_quality: int
) -> list[Any]:
    """Every entry the frames match, once, by its most exact algorithm."""
    best: dict[int, Any] = {}
    for c in lists.index.candidates(frames, list_ids=wanted, distance=distance, min_quality=min_quality):
        best.setdefault(c.entry_id, c)  # candidates come by algorithm, then distance
    return list(best.values())


# --- import ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BadLine:
    number: int
    reason: str


def _te_rows(lines: list[str]) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            continue
        kind, _, signal = line.partition(" ")
        if not signal and _HEX64.fullmatch(kind.lower()):
            kind, signal = TE_SIGNAL, kind  # a bare hash: PDQ, as the TE file reader's default type allows
        signal = signal.strip()
        if kind != TE_SIGNAL:
            yield (
                number,
                None,
                (f"signal type '{kind[:40]}' is not one Vigil matches; write '{TE_SIGNAL} <64 hex digits>'"),
            )
        elif not _HEX64.fullmatch(signal):
            yield number, None, f"'{signal[:80]}' is not a PDQ hash (64 lowercase hex digits)"
        else:
            yield number, {"pdq": signal}, None


def _csv_rows(lines: list[str]) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    reader = csv.DictReader(lines)
    header = reader.fieldnames or []
    unknown = [f for f in header if f not in CSV_FIELDS]
    if unknown or not {"pdq", "phash", "sha256"} & set(header):
        yield (
            1,
            None,
            (
                f"the header must name columns among {', '.join(CSV_FIELDS)} "
                f"(at least one of pdq, phash, sha256); unknown: {', '.join(unknown) or 'none'}"
            ),
        )
        return
    for row in reader:
        number = reader.line_num
        if None in row:
            yield number, None, "more fields than the header names (quote a note that holds a comma)"
            continue
        item: dict[str, Any] = {}
        problems = []
        for field, pattern, what in (
            ("pdq", _HEX64, "64 hex digits"),
            ("phash", _HEX, "1 to 64 hex digits"),
            ("sha256", _HEX64, "64 hex digits"),
        ):
            value = (row.get(field) or "").strip().lower()
            if value:
                if pattern.fullmatch(value):
                    item[field] = value
                else:
                    problems.append(f"{field} '{value[:80]}' is not {what}")
        quality = (row.get("pdq_quality") or "").strip()
        if quality:
            if quality.isdigit() and 0 <= int(quality) <= 100:
                item["pdq_quality"] = int(quality)
            else:
                problems.append(f"pdq_quality '{quality[:20]}' is not a whole number from 0 to 100")
        note = row.get("note") or ""
        if len(note) > 500:
            problems.append(f"the note has {len(note)} characters, over 500")
        elif note:
            item["note"] = note
        if not problems and not {"pdq", "phash", "sha256"} & set(item):
            problems.append("no hash: give a pdq, a phash or a sha256")
        yield number, (None if problems else item), ("; ".join(problems) or None)


def _detect_format(lines: list[str]) -> str:
    first = next((line for line in lines if line.strip()), "")
    return "csv" if "," in first and any(f in first.lower().split(",") for f in ("pdq", "sha256", "phash")) else "te"


async def import_file(store: Store, config: Config, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from bot.entries import EntrySource, EntryWriter

    try:
        text = args.file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CliError(f"no such file: {args.file}") from None
    except UnicodeDecodeError as exc:
        raise CliError(f"{args.file} is not UTF-8 text ({exc.reason} at byte {exc.start}); nothing imported") from None
    except OSError as exc:
        raise CliError(f"cannot read {args.file}: {exc.strerror or exc}") from None
    lines = text.splitlines()
    fmt = _detect_format(lines) if args.format == "auto" else args.format
    rows: list[dict[str, Any]] = []
    bad: list[BadLine] = []
    progress = _progress(len(lines), err, "line")
    for number, item, problem in _csv_rows(lines) if fmt == "csv" else _te_rows(lines):
        if problem is not None or item is None:
            bad.append(BadLine(number, problem or "unreadable"))
        else:
            rows.append(item)
        if progress is not None:
            progress.update(number - progress.n)
    if progress is not None:
        progress.close()
    if bad:
        for b in bad[:MAX_REPORTED]:
            print(f"{args.file}:{b.number}: {b.reason}", file=err)
        if len(bad) > MAX_REPORTED:
            print(f"... and {len(bad) - MAX_REPORTED} more bad lines", file=err)
        print(f"{len(bad)} bad lines: nothing was imported (fix them and import the file again)", file=err)
        return 1
    if not rows:
        raise CliError(f"{args.file} holds no hashes; nothing imported")
    lst = await _list_or_new(store, args, err)
    progress = _progress(len(rows), err, "entry")
    done = (lambda n: progress.update(n - progress.n)) if progress is not None else None
    try:
        counts = await EntryWriter(store).add_bulk(lst, rows, EntrySource(OPERATOR, note=args.note), done)
    finally:
        if progress is not None:
            progress.close()
    print(
        f"imported {counts.added} entries into '{lst.name}' ({fmt} format)"
        + (f"; {counts.duplicates} already in the list" if counts.duplicates else ""),
        file=out,
    )
    return 0


# --- export ------------------------------------------------------------------------------


async def export(store: Store, config: Config, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    lst = await _list_named(store, args.list_name)
    entries = await store.entries(lst.id)
    buf = io.StringIO()
    skipped = 0
    if args.format == "te":
        for e in entries:
            if e.pdq:
                buf.write(f"{TE_SIGNAL} {e.pdq}\n")
            else:
                skipped += 1
    else:
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(CSV_FIELDS)
        for e in entries:
            w.writerow(
                [
                    e.id,
                    lst.name,
                    e.pdq or "",
                    "" if e.pdq_quality is None else e.pdq_quality,
                    e.phash or "",
                    e.sha256 or "",
                    e.added_by or "",
                    e.added_at,
                    e.source_platform or "",
                    e.source_chat or "",
                    e.note or "",
                ]
            )
    if args.output:
        args.output.write_text(buf.getvalue(), encoding="utf-8")
    else:
        out.write(buf.getvalue())
    print(
        f"exported {len(entries) - skipped} entries of '{lst.name}'"
        + (
            f"; {skipped} without a PDQ hash left out (the te format carries PDQ only; use --format csv)"
            if skipped
            else ""
        ),
        file=err,
    )
    return 0


# --- remove, lists, follow, delete-list --------------------------------------------------


async def remove(store: Store, config: Config, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from bot.entries import EntryWriter

    status = 0
    for entry_id in args.entries:
        if entry_id < 1 or not await EntryWriter(store).remove(entry_id):
            print(f"entry {entry_id}: no such entry", file=err)
            status = 1
        else:
            print(f"entry {entry_id}: removed", file=out)
    return status


async def show_lists(store: Store, config: Config, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    sizes = await store.list_sizes()
    followers = await store.followers()
    lists = await store.all_lists()
    if not lists:
        print("no lists yet (`vigil hash add IMAGE --list NAME` creates one)", file=out)
        return 0
    for lst in lists:
        scope = "instance" if lst.scope == "instance" else f"group {lst.platform}:{lst.chat_id}"
        groups = ", ".join(f"{p}:{c}" for p, c in followers.get(lst.id, ())) or "none"
        following = f"; followed by {groups}" if lst.scope == "instance" else ""
        print(
            f"{lst.name}: {lst.kind}, label {lst.label}, action {lst.action}, {scope}, "
            f"{sizes.get(lst.id, 0)} entries{following}",
            file=out,
        )
    return 0


def _group(value: str) -> tuple[str, str]:
    platform, _, chat = value.partition(":")
    if platform not in ("telegram", "matrix") or not chat:
        raise CliError(
            f"--group {value!r}: write PLATFORM:CHAT_ID, e.g. telegram:-1001234567890 or matrix:!room:example.org"
        )
    return platform, chat


async def follow(store: Store, config: Config, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    platform, chat = _group(args.group)
    lst = await _list_named(store, args.list_name)
    if lst.scope != "instance":
        raise CliError(f"'{lst.name}' is a group's own list; only instance lists can be followed")
    new = await store.follow(platform, chat, lst.id)
    print(f"{platform}:{chat} {'now follows' if new else 'already followed'} '{lst.name}'", file=out)
    return 0


async def unfollow(store: Store, config: Config, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    platform, chat = _group(args.group)
    lst = await _list_named(store, args.list_name)
    gone = await store.unfollow(platform, chat, lst.id)
    print(f"{platform}:{chat} {'no longer follows' if gone else 'did not follow'} '{lst.name}'", file=out)
    return 0


async def delete_list(store: Store, config: Config, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    lst = await _list_named(store, args.list_name)
    size = (await store.list_sizes()).get(lst.id, 0)
    if not args.yes:
        print(f"would delete '{lst.name}' and its {size} entries everywhere; run again with --yes", file=err)
        return 1
    await store.delete_list(lst.id)
    print(f"deleted '{lst.name}' and its {size} entries", file=out)
    return 0


async def publish(store: Store, config: Config, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from bot.platforms.matrix_publish import PublishFailed, summary
    from bot.platforms.matrix_publish import publish as publish_list

    if not config.matrix.user_id or not config.matrix.homeserver:
        raise CliError("set [matrix] homeserver and user_id (and the account's secret in the environment)")
    try:
        got = await publish_list(config.matrix, config.data_dir / "matrix", store, args.list_name, args.room)
    except PublishFailed as exc:
        raise CliError(str(exc)) from None
    for line in summary(got, args.list_name):
        print(line, file=out)
    return 0
