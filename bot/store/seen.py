"""The seen-images window: what Vigil keeps of each image it scanned so that a block entry or a
protected photo added later finds the copies already posted (bot/sweep.py). Ids, hashes and
local-feature fingerprints only, never pixels; pruned by age and bounded per chat and in total
(``prune_seen``, called by the retention pass and now and then by the recorder).
"""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.errors import BadStoreValue
from bot.store import checks
from bot.store.db import Database, fetch_all, found
from bot.store.records import FrozenJSON, load_json

MAX_EVENT_JSON = 8192  # the post's durable form, as the inbox keeps it
MAX_VARIANT = 200  # bot.events.MAX_VARIANT
MAX_FRAMES = 64  # detectors' max_frames bound
MAX_SEEN_FINGERPRINT = 65_536  # bytes, as in the schema
SEEN_CHUNK = 2000  # rows per page when a sweep reads the window
CHAT_FILTER = 100  # chats a page query names at most; more are filtered by the caller


@dataclass(frozen=True)
class SeenFrame:
    """One fingerprinted frame of a seen image."""

    frame: int
    pdq: str | None
    pdq_quality: int | None
    phash: str | None
    fingerprint: bytes | None = None  # ``Fingerprint.to_bytes``; only where asked for


@dataclass(frozen=True)
class SeenImage:
    """One image Vigil scanned, as the window keeps it."""

    id: int
    platform: str
    chat_id: str
    message_id: str
    variant: str
    sender_id: str
    posted_at: str  # ISO-8601 UTC
    seen_at: str
    sha256: str | None
    frames: tuple[SeenFrame, ...]
    event: FrozenJSON  # bot.events.MediaPosted.payload()


def seen_frames(frames: Sequence[SeenFrame]) -> list[tuple[int, str | None, int | None, str | None, str | None]]:
    """The frames checked for the store: bounded count, hex hashes, fingerprint size (kept as base64
    text, like protected photos': the database holds no bytes column)."""
    if not isinstance(frames, Sequence) or len(frames) > MAX_FRAMES:
        raise BadStoreValue("frames", f"<{len(frames)} frames>", f"a sequence of at most {MAX_FRAMES} SeenFrame")
    out = []
    numbers: set[int] = set()
    for f in frames:
        if not isinstance(f, SeenFrame) or isinstance(f.frame, bool) or not 0 <= f.frame <= 1000:
            raise BadStoreValue("frames", f, "SeenFrame values with a frame number from 0 to 1000")
        if f.frame in numbers:
            raise BadStoreValue("frames", f.frame, "each frame number once")
        numbers.add(f.frame)
        fp = f.fingerprint
        if fp is not None and (not isinstance(fp, bytes) or len(fp) > MAX_SEEN_FINGERPRINT):
            raise BadStoreValue("fingerprint", f"<{len(fp)} bytes>", f"bytes, at most {MAX_SEEN_FINGERPRINT}")
        out.append(
            (
                f.frame,
                checks.hex_hash("pdq", f.pdq, 64),
                checks.quality(f.pdq_quality),
                checks.hex_hash("phash", f.phash, None),
                None if fp is None else base64.b64encode(fp).decode("ascii"),
            )
        )
    return out


def limit_value(field: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadStoreValue(field, value, "a whole number, 0 or more (0: no bound)")
    return value


def chat_pairs(chats: Collection[tuple[str, str | int]] | None) -> list[tuple[str, str]] | None:
    """The chats a query is limited to, checked; None: every chat (or too many to name in SQL)."""
    if chats is None:
        return None
    pairs = sorted({(checks.platform(p), checks.ident("chat_id", c)) for p, c in chats})
    return pairs if len(pairs) <= CHAT_FILTER else None


def _image(row: sqlite3.Row, frames: tuple[SeenFrame, ...]) -> SeenImage:
    return SeenImage(
        id=row["id"],
        platform=row["platform"],
        chat_id=row["chat_id"],
        message_id=row["message_id"],
        variant=row["variant"],
        sender_id=row["sender_id"],
        posted_at=row["posted_at"],
        seen_at=row["seen_at"],
        sha256=row["sha256"],
        frames=frames,
        event=load_json(row["event"]),
    )


def frame_of(row: sqlite3.Row | Mapping[str, Any], fingerprints: bool) -> SeenFrame:
    fp = row["fingerprint"] if fingerprints else None
    return SeenFrame(row["frame"], row["pdq"], row["pdq_quality"], row["phash"], None if fp is None else _bytes(fp))


def _bytes(text: str) -> bytes | None:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeError):
        return None  # a damaged row matches nothing; the sweep goes on


class SeenMixin:
    """The seen-images window (migration 0007)."""

    _db: Database

    async def add_seen(
        self,
        platform: str,
        chat_id: str | int,
        message_id: str | int,
        *,
        variant: str,
        sender_id: str | int,
        posted_at: datetime,
        sha256: str | None,
        frames: Sequence[SeenFrame],
        event: Mapping[str, Any],
    ) -> int:
        """Keeps one scanned image (its frames' hashes and fingerprints, the post's ids); returns
        its id. Idempotent on (platform, chat, message, variant): a repeat returns the first id."""
        p, cid, mid = (
            checks.platform(platform),
            checks.ident("chat_id", chat_id),
            checks.ident("message_id", message_id),
        )
        var = checks.text("variant", variant, MAX_VARIANT, optional=False) if variant else ""
        sender = checks.ident("sender_id", sender_id)
        posted = checks.timestamp(posted_at)
        sha = checks.hex_hash("sha256", sha256, 64)
        rows = seen_frames(frames)
        text = checks.json_text("event", event, MAX_EVENT_JSON)
        async with self._db.write() as c:
            cur = await c.execute(
                "INSERT INTO seen_images (platform, chat_id, message_id, variant, sender_id, posted_at, seen_at,"
                " sha256, event) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (p, cid, mid, var, sender, posted, self._db.now(), sha, text),
            )
            if cur.rowcount:
                image_id = int(cur.lastrowid or 0)
                await c.executemany(
                    "INSERT INTO seen_frames (image_id, frame, pdq, pdq_quality, phash) VALUES (?, ?, ?, ?, ?)",
                    [(image_id, *r[:4]) for r in rows],
                )
                await c.executemany(
                    "INSERT INTO seen_prints (image_id, frame, fingerprint) VALUES (?, ?, ?)",
                    [(image_id, r[0], r[4]) for r in rows if r[4] is not None],
                )
                return image_id
            row = await (
                await c.execute(
                    "SELECT id FROM seen_images WHERE platform = ? AND chat_id = ? AND message_id = ? AND variant = ?",
                    (p, cid, mid, var),
                )
            ).fetchone()
        return int(found(row)[0])

    async def seen_batch(
        self,
        *,
        since: datetime,
        after_id: int = 0,
        limit: int = SEEN_CHUNK,
        chats: Collection[tuple[str, str | int]] | None = None,
        fingerprints: bool = False,
    ) -> list[SeenImage]:
        """Kept images seen at ``since`` or later with an id above ``after_id``, in id order, at most
        ``limit``, with their frames (and fingerprints when asked). ``chats`` narrows the page to those
        (platform, chat id) when they are few; the caller filters otherwise."""
        after = limit_value("after_id", after_id)
        size = checks.record_id("limit", limit)
        pairs = chat_pairs(chats)
        where = ["id > ?", "seen_at >= ?"]
        params: list[object] = [after, checks.timestamp(since)]
        if pairs is not None:
            if not pairs:
                return []
            where.append("(platform, chat_id) IN (VALUES " + ", ".join(["(?, ?)"] * len(pairs)) + ")")
            params.extend(v for pair in pairs for v in pair)
        async with self._db.read() as c:
            images = await fetch_all(
                c, f"SELECT * FROM seen_images WHERE {' AND '.join(where)} ORDER BY id LIMIT ?", (*params, size)
            )
            if not images:
                return []
            ids = [r["id"] for r in images]
            marks = ", ".join("?" * len(ids))
            frames = await fetch_all(
                c,
                (
                    "SELECT f.image_id, f.frame, f.pdq, f.pdq_quality, f.phash, p.fingerprint FROM seen_frames f"
                    " LEFT JOIN seen_prints p ON p.image_id = f.image_id AND p.frame = f.frame"
                    if fingerprints
                    else "SELECT image_id, frame, pdq, pdq_quality, phash FROM seen_frames f"
                )
                + f" WHERE f.image_id IN ({marks}) ORDER BY f.image_id, f.frame",
                ids,
            )
        by_image: dict[int, list[SeenFrame]] = {}
        for f in frames:
            by_image.setdefault(f["image_id"], []).append(frame_of(f, fingerprints))
        return [_image(r, tuple(by_image.get(r["id"], ()))) for r in images]

    async def seen_image(self, platform: str, chat_id: str | int, message_id: str | int) -> SeenImage | None:
        """The kept hashes of a message's picture (its main file as first posted when kept, else
        the first of its pictures or versions kept); None when the window holds none."""
        p, cid, mid = (
            checks.platform(platform),
            checks.ident("chat_id", chat_id),
            checks.ident("message_id", message_id),
        )
        async with self._db.read() as c:
            row = await (
                await c.execute(
                    "SELECT * FROM seen_images WHERE platform = ? AND chat_id = ? AND message_id = ?"
                    " ORDER BY variant != '', id LIMIT 1",
                    (p, cid, mid),
                )
            ).fetchone()
            if row is None:
                return None
            frames = await fetch_all(
                c,
                "SELECT frame, pdq, pdq_quality, phash FROM seen_frames WHERE image_id = ? ORDER BY frame",
                (row["id"],),
            )
        return _image(row, tuple(frame_of(f, False) for f in frames))

    async def prune_seen(self, before: datetime, *, per_chat: int = 0, total: int = 0) -> int:
        """Deletes kept images seen before ``before``, then the oldest beyond ``per_chat`` in any chat
        and beyond ``total`` in all (0: no such bound); returns how many went."""
        cutoff = checks.timestamp(before)
        chat_cap, all_cap = limit_value("per_chat", per_chat), limit_value("total", total)
        removed = 0
        async with self._db.write() as c:
            cur = await c.execute("DELETE FROM seen_images WHERE seen_at < ?", (cutoff,))
            removed += cur.rowcount
            if chat_cap:
                cur = await c.execute(
                    "DELETE FROM seen_images WHERE id IN (SELECT id FROM (SELECT id, row_number() OVER"
                    " (PARTITION BY platform, chat_id ORDER BY id DESC) AS r FROM seen_images) WHERE r > ?)",
                    (chat_cap,),
                )
                removed += cur.rowcount
            if all_cap:
                cur = await c.execute(
                    "DELETE FROM seen_images WHERE id <= (SELECT id FROM seen_images ORDER BY id DESC"
                    " LIMIT 1 OFFSET ?)",
                    (all_cap,),
                )
                removed += cur.rowcount
        return int(removed)

    async def purge_seen_user(self, platform: str, user_id: str | int) -> int:
        """Deletes every kept image this person posted; returns how many."""
        p, uid = checks.platform(platform), checks.ident("user_id", user_id)
        async with self._db.write() as c:
            cur = await c.execute("DELETE FROM seen_images WHERE platform = ? AND sender_id = ?", (p, uid))
            return int(cur.rowcount)

    async def deleted_messages(self, platform: str, chat_id: str | int, message_ids: Collection[str]) -> set[str]:
        """Of these messages of a chat, those Vigil deleted already (a settled delete action)."""
        p, cid = checks.platform(platform), checks.ident("chat_id", chat_id)
        ids = sorted({checks.ident("message_id", m) for m in message_ids})
        if not ids:
            return set()
        async with self._db.read() as c:
            rows = await fetch_all(
                c,
                "SELECT message_id FROM actions WHERE platform = ? AND chat_id = ? AND action = 'delete'"
                f" AND state = 'done' AND message_id IN ({', '.join('?' * len(ids))})",
                (p, cid, *ids),
            )
        return {r[0] for r in rows}

    async def seen_count(self) -> tuple[int, int]:
        """(images, frames) the window holds now."""
        async with self._db.read() as c:
            images = found(await (await c.execute("SELECT count(*) FROM seen_images")).fetchone())[0]
            frames = found(await (await c.execute("SELECT count(*) FROM seen_frames")).fetchone())[0]
        return int(images), int(frames)
