"""The seen-images window: the PostgreSQL twin of bot/store/seen.py (migration 0004)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from bot.store import checks
from bot.store.postgres.db import PgDatabase, fetchall, fetchone, rowcount
from bot.store.postgres.rows import Row
from bot.store.records import freeze
from bot.store.seen import (
    MAX_EVENT_JSON,
    MAX_VARIANT,
    SEEN_CHUNK,
    SeenFrame,
    SeenImage,
    chat_pairs,
    frame_of,
    limit_value,
    seen_frames,
)


def _image(r: Row, frames: tuple[SeenFrame, ...]) -> SeenImage:
    return SeenImage(
        id=int(r["id"]),
        platform=r["platform"],
        chat_id=r["chat_id"],
        message_id=r["message_id"],
        variant=r["variant"],
        sender_id=r["sender_id"],
        posted_at=r["posted_at"],
        seen_at=r["seen_at"],
        sha256=r["sha256"],
        frames=frames,
        event=freeze(r["event"]),
    )


class PgSeenMixin:
    _db: PgDatabase

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
        """Keeps one scanned image; returns its id (the first id on a repeat)."""
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
            row = await fetchone(
                c,
                "INSERT INTO seen_images (platform, chat_id, message_id, variant, sender_id, posted_at, seen_at,"
                " sha256, event) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb)"
                " ON CONFLICT DO NOTHING RETURNING id",
                (p, cid, mid, var, sender, posted, self._db.now(), sha, text),
            )
            if row is not None:
                image_id = int(row["id"])
                if rows:
                    async with c.cursor() as cur:
                        await cur.executemany(
                            "INSERT INTO seen_frames (image_id, frame, pdq, pdq_quality, phash)"
                            " VALUES (%s, %s, %s, %s, %s)",
                            [(image_id, *r[:4]) for r in rows],
                        )
                        prints = [(image_id, r[0], r[4]) for r in rows if r[4] is not None]
                        if prints:
                            await cur.executemany(
                                "INSERT INTO seen_prints (image_id, frame, fingerprint) VALUES (%s, %s, %s)", prints
                            )
                return image_id
            row = await fetchone(
                c,
                "SELECT id FROM seen_images WHERE platform = %s AND chat_id = %s AND message_id = %s AND variant = %s",
                (p, cid, mid, var),
            )
        assert row is not None  # the conflicting row
        return int(row["id"])

    async def seen_batch(
        self,
        *,
        since: datetime,
        after_id: int = 0,
        limit: int = SEEN_CHUNK,
        chats: Collection[tuple[str, str | int]] | None = None,
        fingerprints: bool = False,
    ) -> list[SeenImage]:
        """Kept images seen at ``since`` or later with an id above ``after_id``, in id order."""
        after = limit_value("after_id", after_id)
        size = checks.record_id("limit", limit)
        pairs = chat_pairs(chats)
        where = ["id > %s", "seen_at >= %s"]
        params: list[object] = [after, checks.timestamp(since)]
        if pairs is not None:
            if not pairs:
                return []
            where.append("(platform, chat_id) IN (" + ", ".join(["(%s, %s)"] * len(pairs)) + ")")
            params.extend(v for pair in pairs for v in pair)
        async with self._db.read() as c:
            images = await fetchall(
                c, f"SELECT * FROM seen_images WHERE {' AND '.join(where)} ORDER BY id LIMIT %s", (*params, size)
            )
            if not images:
                return []
            frames = await fetchall(
                c,
                (
                    "SELECT f.image_id, f.frame, f.pdq, f.pdq_quality, f.phash, p.fingerprint FROM seen_frames f"
                    " LEFT JOIN seen_prints p ON p.image_id = f.image_id AND p.frame = f.frame"
                    if fingerprints
                    else "SELECT image_id, frame, pdq, pdq_quality, phash FROM seen_frames f"
                )
                + " WHERE f.image_id = ANY(%s) ORDER BY f.image_id, f.frame",
                ([int(r["id"]) for r in images],),
            )
        by_image: dict[int, list[SeenFrame]] = {}
        for f in frames:
            by_image.setdefault(int(f["image_id"]), []).append(frame_of(f, fingerprints))
        return [_image(r, tuple(by_image.get(int(r["id"]), ()))) for r in images]

    async def seen_image(self, platform: str, chat_id: str | int, message_id: str | int) -> SeenImage | None:
        """The kept hashes of a message's picture (its main file when kept); None when none is kept."""
        p, cid, mid = (
            checks.platform(platform),
            checks.ident("chat_id", chat_id),
            checks.ident("message_id", message_id),
        )
        async with self._db.read() as c:
            row = await fetchone(
                c,
                "SELECT * FROM seen_images WHERE platform = %s AND chat_id = %s AND message_id = %s"
                " ORDER BY variant <> '', id LIMIT 1",
                (p, cid, mid),
            )
            if row is None:
                return None
            frames = await fetchall(
                c,
                "SELECT frame, pdq, pdq_quality, phash FROM seen_frames WHERE image_id = %s ORDER BY frame",
                (row["id"],),
            )
        return _image(row, tuple(frame_of(f, False) for f in frames))

    async def prune_seen(self, before: datetime, *, per_chat: int = 0, total: int = 0) -> int:
        """Deletes kept images seen before ``before``, then the oldest beyond the bounds."""
        cutoff = checks.timestamp(before)
        chat_cap, all_cap = limit_value("per_chat", per_chat), limit_value("total", total)
        async with self._db.write() as c:
            removed = await rowcount(c, "DELETE FROM seen_images WHERE seen_at < %s", (cutoff,))
            if chat_cap:
                removed += await rowcount(
                    c,
                    "DELETE FROM seen_images WHERE id IN (SELECT id FROM (SELECT id, row_number() OVER"
                    " (PARTITION BY platform, chat_id ORDER BY id DESC) AS r FROM seen_images) AS ranked"
                    " WHERE r > %s)",
                    (chat_cap,),
                )
            if all_cap:
                removed += await rowcount(
                    c,
                    "DELETE FROM seen_images WHERE id <= (SELECT id FROM seen_images ORDER BY id DESC LIMIT 1"
                    " OFFSET %s)",
                    (all_cap,),
                )
        return int(removed)

    async def purge_seen_user(self, platform: str, user_id: str | int) -> int:
        """Deletes every kept image this person posted; returns how many."""
        p, uid = checks.platform(platform), checks.ident("user_id", user_id)
        async with self._db.write() as c:
            return await rowcount(c, "DELETE FROM seen_images WHERE platform = %s AND sender_id = %s", (p, uid))

    async def deleted_messages(self, platform: str, chat_id: str | int, message_ids: Collection[str]) -> set[str]:
        """Of these messages of a chat, those Vigil deleted already (a settled delete action)."""
        p, cid = checks.platform(platform), checks.ident("chat_id", chat_id)
        ids = sorted({checks.ident("message_id", m) for m in message_ids})
        if not ids:
            return set()
        async with self._db.read() as c:
            rows = await fetchall(
                c,
                "SELECT message_id FROM actions WHERE platform = %s AND chat_id = %s AND action = 'delete'"
                " AND state = 'done' AND message_id = ANY(%s)",
                (p, cid, ids),
            )
        return {r["message_id"] for r in rows}

    async def seen_count(self) -> tuple[int, int]:
        """(images, frames) the window holds now."""
        async with self._db.read() as c:
            row = await fetchone(
                c, "SELECT (SELECT count(*) FROM seen_images) AS i, (SELECT count(*) FROM seen_frames) AS f"
            )
        assert row is not None
        return int(row["i"]), int(row["f"])
