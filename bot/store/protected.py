"""Protected photos: their owners and their local-feature fingerprints (never the photos).

Fingerprints arrive as base64 text (``Fingerprint.to_bytes`` encoded by ``bot.protect``);
the store checks their form and size, the service checks that they decode. Every change
is logged by the triggers of migration 0006 (bot/store/changes.py), so every running process
applies what ``vigil protect`` or another process changed.
"""

from __future__ import annotations

import re
import sqlite3
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.errors import BadStoreValue, UnknownRecord
from bot.store import checks
from bot.store.db import Database, fetch_all, found

SOURCES = ("private", "group", "operator")
OWNER_KINDS = ("member", "operator")
MAX_FINGERPRINT = 262_144  # base64 characters, as in the schema
MAX_LABEL = 200
PHOTO_CHUNK = 2000  # rows per query when streaming every fingerprint at start-up
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")

_PHOTO_COLUMNS = "p.id, p.owner_id, p.source, p.platform, p.chat_id, p.label, p.pdq, p.added_at, p.expires_at"


@dataclass(frozen=True)
class ProtectedOwner:
    id: int
    kind: str  # "member" | "operator"
    platform: str | None  # members only
    user_id: str | None
    name: str  # display name, shown only to the admins of a group where a fake appears
    notify: bool  # opted in to a private notice when a manipulated copy is removed
    notify_platform: str | None  # where the notice goes (a member: themselves)
    notify_user: str | None
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class ProtectedPhoto:
    id: int
    owner_id: int
    source: str  # "private" | "group" | "operator"
    platform: str | None  # group photos: the group's platform and id
    chat_id: str | None
    label: str | None  # operator photos: the file name
    pdq: str | None  # whole-image PDQ, hex
    added_at: str
    expires_at: str | None  # group photos only
    fingerprint: str | None = None  # base64; only where asked for (loading the index)


def _owner(row: sqlite3.Row) -> ProtectedOwner:
    return ProtectedOwner(
        id=row["id"],
        kind=row["kind"],
        platform=row["platform"],
        user_id=row["user_id"],
        name=row["name"],
        notify=bool(row["notify"]),
        notify_platform=row["notify_platform"],
        notify_user=row["notify_user"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _photo(row: sqlite3.Row, with_fingerprint: bool = False) -> ProtectedPhoto:
    return ProtectedPhoto(
        id=row["id"],
        owner_id=row["owner_id"],
        source=row["source"],
        platform=row["platform"],
        chat_id=row["chat_id"],
        label=row["label"],
        pdq=row["pdq"],
        added_at=row["added_at"],
        expires_at=row["expires_at"],
        fingerprint=row["fingerprint"] if with_fingerprint else None,
    )


def _fingerprint_text(value: object) -> str:
    if not isinstance(value, str) or not 16 <= len(value) <= MAX_FINGERPRINT or not _BASE64.fullmatch(value):
        shown = f"<{len(value)} characters>" if isinstance(value, (str, bytes)) else value
        raise BadStoreValue(
            "fingerprint",
            shown,
            f"base64 text of 16 to {MAX_FINGERPRINT} characters (an encoded local-feature fingerprint, never an image)",
        )
    return value


def _name(value: object) -> str:
    """A display name as members and the operator give it, made safe to keep and show: no control,
    format or direction-override characters (a zero-width joiner stays, for emoji), one line."""
    name = checks.display("name", value)
    if name:
        name = "".join(
            " " if unicodedata.category(c) in ("Zl", "Zp", "Cc") else c
            for c in name
            if unicodedata.category(c) not in ("Cf", "Cs", "Co", "Cn") or c == "\u200d"
        )
        name = " ".join(name.split())
    if not name:
        raise BadStoreValue("name", value, "a non-empty name of at most 256 characters")
    return name


class PhotoLimitReached(BadStoreValue):
    """A member already protects as many photos as ``[protect] max_photos`` allows; nothing was written."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__("max_photos", limit, f"more than the photos already registered (at most {limit} each)")


class ProtectedMixin:
    _db: Database

    # --- owners -------------------------------------------------------------------------

    async def member_owner(
        self, platform: str, user_id: str | int, *, name: str | None = None, create: bool = False
    ) -> ProtectedOwner | None:
        """A member's owner row; with ``create``, made (or renamed to ``name``) if needed."""
        p, uid = checks.platform(platform), checks.ident("user_id", user_id)
        if not create:
            async with self._db.read() as c:
                row = await (
                    await c.execute(
                        "SELECT * FROM protected_owners WHERE kind = 'member' AND platform = ? AND user_id = ?",
                        (p, uid),
                    )
                ).fetchone()
            return None if row is None else _owner(row)
        n = _name(name if name else uid)
        now = self._db.now()
        async with self._db.write() as c:
            await c.execute(
                "INSERT INTO protected_owners (kind, platform, user_id, name, created_at, updated_at)"
                " VALUES ('member', ?, ?, ?, ?, ?)"
                " ON CONFLICT (platform, user_id) WHERE kind = 'member' DO UPDATE SET"
                "  name = excluded.name, updated_at = excluded.updated_at WHERE name != excluded.name",
                (p, uid, n, now, now),
            )
            row = await (
                await c.execute(
                    "SELECT * FROM protected_owners WHERE kind = 'member' AND platform = ? AND user_id = ?", (p, uid)
                )
            ).fetchone()
        return _owner(found(row))

    async def operator_owner(
        self,
        name: str,
        *,
        create: bool = False,
        notify_platform: str | None = None,
        notify_user: str | int | None = None,
    ) -> ProtectedOwner | None:
        """An owner the operator named; with ``create``, made if needed. A notify user given
        here turns notices on for that user (None leaves the setting as it is)."""
        n = _name(name)
        if not create:
            async with self._db.read() as c:
                row = await (
                    await c.execute("SELECT * FROM protected_owners WHERE kind = 'operator' AND name = ?", (n,))
                ).fetchone()
            return None if row is None else _owner(row)
        np_ = None if notify_user is None else checks.platform(notify_platform)
        nu = checks.optional_ident("notify_user", notify_user)
        now = self._db.now()
        async with self._db.write() as c:
            await c.execute(
                "INSERT INTO protected_owners (kind, name, created_at, updated_at) VALUES ('operator', ?, ?, ?)"
                " ON CONFLICT (name) WHERE kind = 'operator' DO NOTHING",
                (n, now, now),
            )
            if nu is not None:
                await c.execute(
                    "UPDATE protected_owners SET notify = 1, notify_platform = ?, notify_user = ?, updated_at = ?"
                    " WHERE kind = 'operator' AND name = ?",
                    (np_, nu, now, n),
                )
            row = await (
                await c.execute("SELECT * FROM protected_owners WHERE kind = 'operator' AND name = ?", (n,))
            ).fetchone()
        return _owner(found(row))

    async def get_protected_owner(self, owner_id: int) -> ProtectedOwner | None:
        oid = checks.record_id("owner_id", owner_id)
        async with self._db.read() as c:
            row = await (await c.execute("SELECT * FROM protected_owners WHERE id = ?", (oid,))).fetchone()
        return None if row is None else _owner(row)

    async def protected_owners(self) -> list[ProtectedOwner]:
        async with self._db.read() as c:
            rows = await fetch_all(c, "SELECT * FROM protected_owners ORDER BY id")
        return [_owner(r) for r in rows]

    async def set_owner_notify(self, owner_id: int, notify: bool) -> ProtectedOwner:
        """A member's answer to "tell me if a manipulated copy is found": the notice goes to
        them on their own platform."""
        oid = checks.record_id("owner_id", owner_id)
        if not isinstance(notify, bool):
            raise BadStoreValue("notify", notify, "True or False")
        now = self._db.now()
        async with self._db.write() as c:
            row = await (await c.execute("SELECT * FROM protected_owners WHERE id = ?", (oid,))).fetchone()
            if row is None:
                raise UnknownRecord("protected owner", oid)
            target = (
                (row["platform"], row["user_id"])
                if row["kind"] == "member"
                else (row["notify_platform"], row["notify_user"])
            )
            if notify and target[1] is None:
                raise BadStoreValue(
                    "notify", notify, "False for an operator's owner without a notify user (give --notify USER)"
                )
            await c.execute(
                "UPDATE protected_owners SET notify = ?, notify_platform = ?, notify_user = ?, updated_at = ? "
                "WHERE id = ?",
                (int(notify), target[0], target[1], now, oid),
            )
            row = await (await c.execute("SELECT * FROM protected_owners WHERE id = ?", (oid,))).fetchone()
        return _owner(found(row))

    async def remove_protected_owner(self, owner_id: int) -> int:
        """Removes the owner with every fingerprint of theirs; returns how many photos went."""
        oid = checks.record_id("owner_id", owner_id)
        async with self._db.write() as c:
            photos = found(
                await (await c.execute("SELECT count(*) FROM protected_photos WHERE owner_id = ?", (oid,))).fetchone()
            )[0]
            await c.execute("DELETE FROM protected_owners WHERE id = ?", (oid,))
        return int(photos)

    # --- photos -------------------------------------------------------------------------

    async def add_protected_photo(
        self,
        owner_id: int,
        fingerprint: str,
        *,
        source: str,
        pdq: str | None = None,
        platform: str | None = None,
        chat_id: str | int | None = None,
        label: str | None = None,
        expires_at: datetime | None = None,
    ) -> ProtectedPhoto:
        """One photo's fingerprint. Group photos ('group') need their group and an expiry."""
        oid = checks.record_id("owner_id", owner_id)
        src = checks.choice("source", source, SOURCES)
        fp = _fingerprint_text(fingerprint)
        h = checks.hex_hash("pdq", pdq, 64)
        lab = checks.text("label", label, MAX_LABEL)
        if src == "group":
            p, cid = checks.platform(platform), checks.ident("chat_id", chat_id)
            if expires_at is None:
                raise BadStoreValue("expires_at", expires_at, "a datetime for a group photo (its retention period)")
            exp: str | None = checks.timestamp(expires_at)
        elif platform is not None or chat_id is not None or expires_at is not None:
            raise BadStoreValue(
                "chat_id", chat_id, f"None for a '{src}' photo (only group photos belong to a group and expire)"
            )
        else:
            p = cid = exp = None  # type: ignore[assignment]
        now = self._db.now()
        async with self._db.write() as c:
            try:
                cur = await c.execute(
                    "INSERT INTO protected_photos (owner_id, source, platform, chat_id, label, pdq, fingerprint, "
                    "added_at, expires_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (oid, src, p, cid, lab, h, fp, now, exp),
                )
            except sqlite3.IntegrityError:
                raise UnknownRecord("protected owner", oid) from None
            row = await (
                await c.execute(f"SELECT {_PHOTO_COLUMNS} FROM protected_photos p WHERE p.id = ?", (cur.lastrowid,))
            ).fetchone()
        return _photo(found(row))

    async def add_member_photo(
        self,
        platform: str,
        user_id: str | int,
        name: str | None,
        fingerprint: str,
        *,
        max_photos: int,
        pdq: str | None = None,
    ) -> tuple[ProtectedOwner, ProtectedPhoto, int, int]:
        """A photo a member registered privately, in one write transaction: the owner row made (or
        renamed), the member's private photos counted and the photo added only while fewer than
        ``max_photos`` (so an album of many photos at once cannot pass the limit). Returns the
        owner, the photo, how many private photos the member had before, and how many photos of
        every source they have now. Raises ``PhotoLimitReached``."""
        p, uid = checks.platform(platform), checks.ident("user_id", user_id)
        n = _name(name if name else uid)
        fp = _fingerprint_text(fingerprint)
        h = checks.hex_hash("pdq", pdq, 64)
        limit = checks.record_id("max_photos", max_photos)
        now = self._db.now()
        async with self._db.write() as c:
            await c.execute(
                "INSERT INTO protected_owners (kind, platform, user_id, name, created_at, updated_at)"
                " VALUES ('member', ?, ?, ?, ?, ?)"
                " ON CONFLICT (platform, user_id) WHERE kind = 'member' DO UPDATE SET"
                "  name = excluded.name, updated_at = excluded.updated_at WHERE name != excluded.name",
                (p, uid, n, now, now),
            )
            owner = _owner(
                found(
                    await (
                        await c.execute(
                            "SELECT * FROM protected_owners WHERE kind = 'member' AND platform = ? AND user_id = ?",
                            (p, uid),
                        )
                    ).fetchone()
                )
            )
            before, others = found(
                await (
                    await c.execute(
                        "SELECT count(*) FILTER (WHERE source = 'private'), count(*) FILTER (WHERE source != 'private')"
                        " FROM protected_photos WHERE owner_id = ?",
                        (owner.id,),
                    )
                ).fetchone()
            )
            if before >= limit:
                raise PhotoLimitReached(limit)  # rolls back: not even the owner row is left behind
            cur = await c.execute(
                "INSERT INTO protected_photos (owner_id, source, pdq, fingerprint, added_at)"
                " VALUES (?, 'private', ?, ?, ?)",
                (owner.id, h, fp, now),
            )
            row = await (
                await c.execute(f"SELECT {_PHOTO_COLUMNS} FROM protected_photos p WHERE p.id = ?", (cur.lastrowid,))
            ).fetchone()
        return owner, _photo(found(row)), int(before), int(before) + int(others) + 1

    async def protected_photos(self, owner_id: int | None = None) -> list[ProtectedPhoto]:
        """Photos (without fingerprints), of one owner or of all, by id."""
        async with self._db.read() as c:
            if owner_id is None:
                rows = await fetch_all(c, f"SELECT {_PHOTO_COLUMNS} FROM protected_photos p ORDER BY p.id")
            else:
                oid = checks.record_id("owner_id", owner_id)
                rows = await fetch_all(
                    c, f"SELECT {_PHOTO_COLUMNS} FROM protected_photos p WHERE p.owner_id = ? ORDER BY p.id", (oid,)
                )
        return [_photo(r) for r in rows]

    async def get_protected_photo(self, photo_id: int) -> ProtectedPhoto | None:
        pid = checks.record_id("photo_id", photo_id)
        async with self._db.read() as c:
            row = await (
                await c.execute(f"SELECT {_PHOTO_COLUMNS} FROM protected_photos p WHERE p.id = ?", (pid,))
            ).fetchone()
        return None if row is None else _photo(row)

    async def iter_protected_photos(
        self, *, after: int = 0, ids: list[int] | None = None, chunk_size: int = PHOTO_CHUNK
    ) -> AsyncIterator[ProtectedPhoto]:
        """Photos with their fingerprints, by id, in chunks (start-up, and reloads after a change).
        ``ids``: only these photos."""
        size = checks.record_id("chunk_size", chunk_size)
        if ids is not None:
            wanted = sorted({checks.record_id("photo_id", i) for i in ids})
            for start in range(0, len(wanted), 500):
                part = wanted[start : start + 500]
                async with self._db.read() as c:
                    rows = await fetch_all(
                        c,
                        f"SELECT {_PHOTO_COLUMNS}, p.fingerprint FROM protected_photos p"
                        f" WHERE p.id IN ({','.join('?' * len(part))}) ORDER BY p.id",
                        part,
                    )
                for r in rows:
                    yield _photo(r, True)
            return
        last = after
        while True:
            async with self._db.read() as c:
                rows = await fetch_all(
                    c,
                    f"SELECT {_PHOTO_COLUMNS}, p.fingerprint FROM protected_photos p WHERE p.id > ? ORDER BY p.id "
                    "LIMIT ?",
                    (last, size),
                )
            for r in rows:
                yield _photo(r, True)
            if len(rows) < size:
                return
            last = rows[-1]["id"]

    async def protected_photo_ids(self) -> set[int]:
        async with self._db.read() as c:
            rows = await fetch_all(c, "SELECT id FROM protected_photos")
        return {r[0] for r in rows}

    async def remove_protected_photo(self, photo_id: int) -> bool:
        """Removes one photo; an owner left without photos goes too."""
        pid = checks.record_id("photo_id", photo_id)
        async with self._db.write() as c:
            return bool(await _delete_photos(c, "id = ?", (pid,)))

    async def remove_group_photos(self, platform: str, chat_id: str | int) -> int:
        """A group stopped keeping group photos: their fingerprints go at once."""
        key = (checks.platform(platform), checks.ident("chat_id", chat_id))
        async with self._db.write() as c:
            return await _delete_photos(c, "source = 'group' AND platform = ? AND chat_id = ?", key)

    async def expire_protected_photos(self, now: datetime) -> int:
        """Retention: group photos past their expiry go; returns how many."""
        at = checks.timestamp(now)
        async with self._db.write() as c:
            return await _delete_photos(c, "expires_at IS NOT NULL AND expires_at <= ?", (at,))

    async def protected_counts(self) -> dict[str, int]:
        """Photos per source, and owners."""
        async with self._db.read() as c:
            rows = await fetch_all(c, "SELECT source, count(*) FROM protected_photos GROUP BY source")
            owners = found(await (await c.execute("SELECT count(*) FROM protected_owners")).fetchone())[0]
        out = {s: 0 for s in SOURCES}
        out.update({r[0]: r[1] for r in rows})
        out["owners"] = owners
        return out


async def _delete_photos(c: Any, where: str, params: tuple[object, ...]) -> int:
    """Inside a write transaction: deletes the photos ``where`` selects; their owners left
    with no photo go too (nothing of theirs needs keeping). Returns the photos deleted."""
    rows = await fetch_all(c, f"SELECT id, owner_id FROM protected_photos WHERE {where}", params)
    if not rows:
        return 0
    ids = [r[0] for r in rows]
    owners = sorted({r[1] for r in rows})
    for start in range(0, len(ids), 500):
        part = ids[start : start + 500]
        await c.execute(f"DELETE FROM protected_photos WHERE id IN ({','.join('?' * len(part))})", part)
    for start in range(0, len(owners), 500):
        part = owners[start : start + 500]
        await c.execute(
            f"DELETE FROM protected_owners WHERE id IN ({','.join('?' * len(part))}) AND NOT EXISTS"
            " (SELECT 1 FROM protected_photos p WHERE p.owner_id = protected_owners.id)",
            part,
        )
    return len(ids)
