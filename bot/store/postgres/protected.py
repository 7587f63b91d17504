"""Protected photos, their owners and fingerprints (never the photos): the PostgreSQL twin of
bot/store/protected.py. Every change is logged by the triggers of migration 0003."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import psycopg

from bot.errors import BadStoreValue, UnknownRecord
from bot.store import checks
from bot.store.postgres import rows
from bot.store.postgres.db import PgDatabase, fetchall, fetchone
from bot.store.protected import (
    MAX_LABEL,
    PHOTO_CHUNK,
    SOURCES,
    PhotoLimitReached,
    ProtectedOwner,
    ProtectedPhoto,
    _fingerprint_text,
    _name,
)

_P = rows.PHOTO_COLUMNS
_MEMBER = "SELECT * FROM protected_owners WHERE kind = 'member' AND platform = %s AND user_id = %s"
_OPERATOR = "SELECT * FROM protected_owners WHERE kind = 'operator' AND name = %s"
_UPSERT_MEMBER = (
    "INSERT INTO protected_owners AS o (kind, platform, user_id, name, created_at, updated_at)"
    " VALUES ('member', %s, %s, %s, %s, %s)"
    " ON CONFLICT (platform, user_id) WHERE kind = 'member' DO UPDATE SET"
    "  name = excluded.name, updated_at = excluded.updated_at WHERE o.name != excluded.name"
)


async def _delete_photos(c: Any, where: str, params: tuple[Any, ...]) -> int:
    """Inside a write transaction: deletes the photos ``where`` selects, and owners left with none."""
    found = await fetchall(c, f"DELETE FROM protected_photos WHERE {where} RETURNING id, owner_id", params)
    if not found:
        return 0
    owners = sorted({r["owner_id"] for r in found})
    await c.execute(
        "DELETE FROM protected_owners o WHERE o.id = ANY(%s) AND NOT EXISTS"
        " (SELECT 1 FROM protected_photos p WHERE p.owner_id = o.id)",
        (owners,),
    )
    return len(found)


class PgProtectedMixin:
    _db: PgDatabase

    # --- owners -------------------------------------------------------------------------

    async def member_owner(
        self, platform: str, user_id: str | int, *, name: str | None = None, create: bool = False
    ) -> ProtectedOwner | None:
        """A member's owner row; with ``create``, made (or renamed to ``name``) if needed."""
        p, uid = checks.platform(platform), checks.ident("user_id", user_id)
        if not create:
            async with self._db.read() as c:
                row = await fetchone(c, _MEMBER, (p, uid))
            return None if row is None else rows.owner(row)
        n = _name(name if name else uid)
        now = self._db.now()
        async with self._db.write() as c:
            await c.execute(_UPSERT_MEMBER, (p, uid, n, now, now))
            row = await fetchone(c, _MEMBER, (p, uid))
        assert row is not None
        return rows.owner(row)

    async def operator_owner(
        self,
        name: str,
        *,
        create: bool = False,
        notify_platform: str | None = None,
        notify_user: str | int | None = None,
    ) -> ProtectedOwner | None:
        """An owner the operator named; with ``create``, made if needed (see the SQLite twin)."""
        n = _name(name)
        if not create:
            async with self._db.read() as c:
                row = await fetchone(c, _OPERATOR, (n,))
            return None if row is None else rows.owner(row)
        np_ = None if notify_user is None else checks.platform(notify_platform)
        nu = checks.optional_ident("notify_user", notify_user)
        now = self._db.now()
        async with self._db.write() as c:
            await c.execute(
                "INSERT INTO protected_owners (kind, name, created_at, updated_at) VALUES ('operator', %s, %s, %s)"
                " ON CONFLICT (name) WHERE kind = 'operator' DO NOTHING",
                (n, now, now),
            )
            if nu is not None:
                await c.execute(
                    "UPDATE protected_owners SET notify = true, notify_platform = %s, notify_user = %s,"
                    " updated_at = %s WHERE kind = 'operator' AND name = %s",
                    (np_, nu, now, n),
                )
            row = await fetchone(c, _OPERATOR, (n,))
        assert row is not None
        return rows.owner(row)

    async def get_protected_owner(self, owner_id: int) -> ProtectedOwner | None:
        oid = checks.record_id("owner_id", owner_id)
        async with self._db.read() as c:
            row = await fetchone(c, "SELECT * FROM protected_owners WHERE id = %s", (oid,))
        return None if row is None else rows.owner(row)

    async def protected_owners(self) -> list[ProtectedOwner]:
        async with self._db.read() as c:
            found = await fetchall(c, "SELECT * FROM protected_owners ORDER BY id")
        return [rows.owner(r) for r in found]

    async def set_owner_notify(self, owner_id: int, notify: bool) -> ProtectedOwner:
        """A member's answer to "tell me if a manipulated copy is found"."""
        oid = checks.record_id("owner_id", owner_id)
        if not isinstance(notify, bool):
            raise BadStoreValue("notify", notify, "True or False")
        now = self._db.now()
        async with self._db.write() as c:
            row = await fetchone(c, "SELECT * FROM protected_owners WHERE id = %s FOR UPDATE", (oid,))
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
                "UPDATE protected_owners SET notify = %s, notify_platform = %s, notify_user = %s, updated_at = %s"
                " WHERE id = %s",
                (notify, target[0], target[1], now, oid),
            )
            row = await fetchone(c, "SELECT * FROM protected_owners WHERE id = %s", (oid,))
        assert row is not None
        return rows.owner(row)

    async def remove_protected_owner(self, owner_id: int) -> int:
        """Removes the owner with every fingerprint of theirs; returns how many photos went."""
        oid = checks.record_id("owner_id", owner_id)
        async with self._db.write() as c:
            counted = await fetchone(c, "SELECT count(*) AS n FROM protected_photos WHERE owner_id = %s", (oid,))
            await c.execute("DELETE FROM protected_owners WHERE id = %s", (oid,))
        assert counted is not None
        return int(counted["n"])

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
        p: str | None
        cid: str | None
        exp: str | None
        if src == "group":
            p, cid = checks.platform(platform), checks.ident("chat_id", chat_id)
            if expires_at is None:
                raise BadStoreValue("expires_at", expires_at, "a datetime for a group photo (its retention period)")
            exp = checks.timestamp(expires_at)
        elif platform is not None or chat_id is not None or expires_at is not None:
            raise BadStoreValue(
                "chat_id", chat_id, f"None for a '{src}' photo (only group photos belong to a group and expire)"
            )
        else:
            p = cid = exp = None
        now = self._db.now()
        async with self._db.write() as c:
            try:
                row = await fetchone(
                    c,
                    "INSERT INTO protected_photos AS p (owner_id, source, platform, chat_id, label, pdq, fingerprint,"
                    f" added_at, expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING {_P}",
                    (oid, src, p, cid, lab, h, fp, now, exp),
                )
            except psycopg.errors.ForeignKeyViolation:
                raise UnknownRecord("protected owner", oid) from None
        assert row is not None
        return rows.photo(row)

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
        """A photo a member registered privately, within ``max_photos``; see the SQLite twin.
        Raises ``PhotoLimitReached``."""
        p, uid = checks.platform(platform), checks.ident("user_id", user_id)
        n = _name(name if name else uid)
        fp = _fingerprint_text(fingerprint)
        h = checks.hex_hash("pdq", pdq, 64)
        limit = checks.record_id("max_photos", max_photos)
        now = self._db.now()
        async with self._db.write() as c:
            await c.execute(_UPSERT_MEMBER, (p, uid, n, now, now))
            # the owner's row lock: photos of one album sent at once are counted one after the other
            found = await fetchone(c, _MEMBER + " FOR UPDATE", (p, uid))
            assert found is not None
            owner = rows.owner(found)
            counted = await fetchone(
                c,
                "SELECT count(*) FILTER (WHERE source = 'private') AS mine,"
                " count(*) FILTER (WHERE source != 'private') AS others FROM protected_photos WHERE owner_id = %s",
                (owner.id,),
            )
            assert counted is not None
            before, others = int(counted["mine"]), int(counted["others"])
            if before >= limit:
                raise PhotoLimitReached(limit)  # rolls back: not even the owner row is left behind
            row = await fetchone(
                c,
                "INSERT INTO protected_photos AS p (owner_id, source, pdq, fingerprint, added_at)"
                f" VALUES (%s, 'private', %s, %s, %s) RETURNING {_P}",
                (owner.id, h, fp, now),
            )
        assert row is not None
        return owner, rows.photo(row), before, before + others + 1

    async def protected_photos(self, owner_id: int | None = None) -> list[ProtectedPhoto]:
        """Photos (without fingerprints), of one owner or of all, by id."""
        async with self._db.read() as c:
            if owner_id is None:
                found = await fetchall(c, f"SELECT {_P} FROM protected_photos p ORDER BY p.id")
            else:
                oid = checks.record_id("owner_id", owner_id)
                found = await fetchall(
                    c, f"SELECT {_P} FROM protected_photos p WHERE p.owner_id = %s ORDER BY p.id", (oid,)
                )
        return [rows.photo(r) for r in found]

    async def get_protected_photo(self, photo_id: int) -> ProtectedPhoto | None:
        pid = checks.record_id("photo_id", photo_id)
        async with self._db.read() as c:
            row = await fetchone(c, f"SELECT {_P} FROM protected_photos p WHERE p.id = %s", (pid,))
        return None if row is None else rows.photo(row)

    async def iter_protected_photos(
        self, *, after: int = 0, ids: list[int] | None = None, chunk_size: int = PHOTO_CHUNK
    ) -> AsyncIterator[ProtectedPhoto]:
        """Photos with their fingerprints, by id, in chunks; ``ids``: only these photos."""
        size = checks.record_id("chunk_size", chunk_size)
        if ids is not None:
            wanted = sorted({checks.record_id("photo_id", i) for i in ids})
            for start in range(0, len(wanted), size):
                async with self._db.read() as c:
                    found = await fetchall(
                        c,
                        f"SELECT {_P}, p.fingerprint FROM protected_photos p WHERE p.id = ANY(%s) ORDER BY p.id",
                        (wanted[start : start + size],),
                    )
                for r in found:
                    yield rows.photo(r, True)
            return
        last = after
        while True:
            async with self._db.read() as c:
                found = await fetchall(
                    c,
                    f"SELECT {_P}, p.fingerprint FROM protected_photos p WHERE p.id > %s ORDER BY p.id LIMIT %s",
                    (last, size),
                )
            for r in found:
                yield rows.photo(r, True)
            if len(found) < size:
                return
            last = found[-1]["id"]

    async def protected_photo_ids(self) -> set[int]:
        async with self._db.read() as c:
            found = await fetchall(c, "SELECT id FROM protected_photos")
        return {r["id"] for r in found}

    async def remove_protected_photo(self, photo_id: int) -> bool:
        """Removes one photo; an owner left without photos goes too."""
        pid = checks.record_id("photo_id", photo_id)
        async with self._db.write() as c:
            return bool(await _delete_photos(c, "id = %s", (pid,)))

    async def remove_group_photos(self, platform: str, chat_id: str | int) -> int:
        """A group stopped keeping group photos: their fingerprints go at once."""
        key = (checks.platform(platform), checks.ident("chat_id", chat_id))
        async with self._db.write() as c:
            return await _delete_photos(c, "source = 'group' AND platform = %s AND chat_id = %s", key)

    async def expire_protected_photos(self, now: datetime) -> int:
        """Retention: group photos past their expiry go; returns how many."""
        at = checks.timestamp(now)
        async with self._db.write() as c:
            return await _delete_photos(c, "expires_at IS NOT NULL AND expires_at <= %s", (at,))

    async def protected_counts(self) -> dict[str, int]:
        """Photos per source, and owners."""
        async with self._db.read() as c:
            found = await fetchall(c, "SELECT source, count(*) AS n FROM protected_photos GROUP BY source")
            owners = await fetchone(c, "SELECT count(*) AS n FROM protected_owners")
        out = {s: 0 for s in SOURCES}
        out.update({r["source"]: r["n"] for r in found})
        assert owners is not None
        out["owners"] = owners["n"]
        return out
