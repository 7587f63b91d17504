"""Hash lists, their entries, follows, entry features, bulk imports and the list change log: the
PostgreSQL twin of bot/store/lists.py. Bulk imports use COPY."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import Any

import psycopg

from bot.errors import BadStoreValue, UnknownRecord
from bot.store import checks
from bot.store.lists import (
    ACTIONS,
    BULK_CHUNK,
    ENTRY_CHUNK,
    KINDS,
    SCOPES,
    _check_fingerprint,
    _check_views,
    group_list_name,
)
from bot.store.postgres import rows
from bot.store.postgres.db import PgDatabase, fetchall, fetchone, rowcount
from bot.store.postgres.groups import ensure_group
from bot.store.records import EntryFeatures, EntryRecord, ImportCounts, ListRecord

COPY_CHUNK = BULK_CHUNK  # rows per COPY transaction: as SQLite, so the bot's list writes never wait long
_E = rows.ENTRY_COLUMNS


def _ids(field: str, values: Iterable[int]) -> list[int]:
    return [checks.record_id(field, v) for v in values]


class PgListMatchingMixin:
    """Entry features, bulk imports and the list change log."""

    _db: PgDatabase

    async def set_entry_features(
        self, entry_id: int, *, views: Sequence[Mapping[str, Any]] = (), fingerprint: bytes | None = None
    ) -> EntryFeatures:
        """Stores (or replaces) the trimmed views and local fingerprint of an entry's image."""
        eid = checks.record_id("entry_id", entry_id)
        values = (_check_views(views), _check_fingerprint(fingerprint))
        async with self._db.write() as c:
            if await fetchone(c, "SELECT 1 AS x FROM entries WHERE id = %s", (eid,)) is None:
                raise UnknownRecord("entry", eid)
            await c.execute(
                "INSERT INTO entry_features (entry_id, views, fingerprint, added_at) VALUES (%s, %s::jsonb, %s, %s)"
                " ON CONFLICT (entry_id) DO UPDATE SET views = excluded.views, fingerprint = excluded.fingerprint",
                (eid, *values, self._db.now()),
            )
            row = await fetchone(c, "SELECT * FROM entry_features WHERE entry_id = %s", (eid,))
        assert row is not None
        return rows.features(row)

    async def entry_features(self, entry_ids: Iterable[int]) -> dict[int, EntryFeatures]:
        """The features of those entries that have them, by entry id."""
        ids = _ids("entry_id", entry_ids)
        async with self._db.read() as c:
            found = await fetchall(c, "SELECT * FROM entry_features WHERE entry_id = ANY(%s)", (ids,))
        return {r["entry_id"]: rows.features(r) for r in found}

    async def entries_by_id(self, entry_ids: Iterable[int]) -> dict[int, EntryRecord]:
        """The entries that still exist among ``entry_ids``, by id."""
        ids = _ids("entry_id", entry_ids)
        async with self._db.read() as c:
            found = await fetchall(c, f"SELECT {_E} FROM entries WHERE id = ANY(%s)", (ids,))
        return {r["id"]: rows.entry(r) for r in found}

    async def iter_all_features(self, chunk_size: int = ENTRY_CHUNK) -> AsyncIterator[EntryFeatures]:
        """Every entry's features, by entry id, in chunks."""
        size = checks.record_id("chunk_size", chunk_size)
        after = 0
        while True:
            async with self._db.read() as c:
                found = await fetchall(
                    c, "SELECT * FROM entry_features WHERE entry_id > %s ORDER BY entry_id LIMIT %s", (after, size)
                )
            for r in found:
                yield rows.features(r)
            if len(found) < size:
                return
            after = found[-1]["entry_id"]

    async def add_entries_bulk(
        self,
        list_id: int,
        hashes: Sequence[Mapping[str, Any]],
        *,
        added_by: str | int | None = None,
        note: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> ImportCounts:
        """Adds many entries, all or none; see ``bot.store.lists.ListMatchingMixin.add_entries_bulk``.

        Rows go in with COPY, in transactions of ``COPY_CHUNK``; on a failure the rows this call
        wrote are deleted again."""
        lid = checks.record_id("list_id", list_id)
        by = checks.optional_ident("added_by", added_by)
        default_note = checks.text("note", note, 500)
        items = []
        for i, h in enumerate(hashes):
            if not isinstance(h, Mapping):
                raise BadStoreValue(f"hashes[{i}]", h, "a mapping of pdq, pdq_quality, phash, sha256, note")
            item = (
                checks.hex_hash("pdq", h.get("pdq"), 64),
                checks.quality(h.get("pdq_quality")),
                checks.hex_hash("phash", h.get("phash"), None),
                checks.hex_hash("sha256", h.get("sha256"), 64),
                checks.text("note", h.get("note", default_note), 500),
            )
            if item[0] is None and item[2] is None and item[3] is None:
                raise BadStoreValue(f"hashes[{i}]", h, "at least one of pdq, phash or sha256")
            items.append(item)
        stamp = self._db.now()  # marks this import's rows, to take them back on a failure
        async with self._db.read() as c:
            if await fetchone(c, "SELECT 1 AS x FROM lists WHERE id = %s", (lid,)) is None:
                raise UnknownRecord("list", lid)
            known = await fetchall(c, "SELECT pdq, sha256 FROM entries WHERE list_id = %s", (lid,))
            first = (await fetchone(c, "SELECT coalesce(max(id), 0) AS m FROM entries"))["m"]  # type: ignore[index]
        pdqs = {r["pdq"] for r in known if r["pdq"] is not None}
        shas = {r["sha256"] for r in known if r["sha256"] is not None}
        del known
        fresh = []
        for pdq, quality, phash, sha, text in items:
            if (sha is not None and sha in shas) or (pdq is not None and pdq in pdqs):
                continue
            pdqs.add(pdq)
            shas.add(sha)
            fresh.append((lid, pdq, quality, phash, sha, by, stamp, text))
        try:
            for start in range(0, len(fresh), COPY_CHUNK):
                async with (
                    self._db.write() as c,
                    c.cursor() as cur,
                    cur.copy(
                        "COPY entries (list_id, pdq, pdq_quality, phash, sha256, added_by, added_at, note) FROM STDIN"
                    ) as copy,
                ):
                    for row in fresh[start : start + COPY_CHUNK]:
                        await copy.write_row(row)
                if progress is not None:
                    progress(min(len(fresh), start + COPY_CHUNK))
        except BaseException:
            async with self._db.write() as c:
                await c.execute(
                    "DELETE FROM entries WHERE list_id = %s AND added_at = %s AND id > %s", (lid, stamp, first)
                )
            raise
        return ImportCounts(added=len(fresh), duplicates=len(items) - len(fresh))

    async def followers(self) -> Mapping[int, tuple[tuple[str, str], ...]]:
        """For each followed instance list, the (platform, chat_id) of the groups that follow it."""
        async with self._db.read() as c:
            found = await fetchall(
                c, 'SELECT list_id, platform, chat_id FROM follows ORDER BY list_id, platform, chat_id COLLATE "C"'
            )
        out: dict[int, list[tuple[str, str]]] = {}
        for r in found:
            out.setdefault(r["list_id"], []).append((r["platform"], r["chat_id"]))
        return {k: tuple(v) for k, v in out.items()}


class PgListsMixin(PgListMatchingMixin):
    _db: PgDatabase

    async def create_list(
        self,
        name: str,
        *,
        kind: str,
        label: str = "local",
        action: str = "delete",
        scope: str = "instance",
        platform: str | None = None,
        chat_id: str | int | None = None,
    ) -> ListRecord:
        """A new list. Instance lists have no platform or chat; group lists need both."""
        n = checks.text("name", name, 200, optional=False)
        values = (
            checks.choice("kind", kind, KINDS),
            checks.label(label),
            checks.choice("action", action, ACTIONS),
            checks.choice("scope", scope, SCOPES),
        )
        p: str | None
        cid: str | None
        if scope == "group":
            p, cid = checks.platform(platform), checks.ident("chat_id", chat_id)
        elif platform is not None or chat_id is not None:
            raise BadStoreValue("platform", platform, "None for an instance list (it belongs to no group)")
        else:
            p = cid = None
        now = self._db.now()
        async with self._db.write() as c:
            if p is not None and cid is not None:
                await ensure_group(c, p, cid, now)
            try:
                row = await fetchone(
                    c,
                    "INSERT INTO lists (name, kind, label, action, scope, platform, chat_id, created_at)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING *",
                    (n, *values, p, cid, now),
                )
            except psycopg.errors.UniqueViolation:
                raise BadStoreValue("name", name, "a name no other list has") from None
        assert row is not None
        return rows.list_(row)

    async def group_list(self, platform: str, chat_id: str | int, kind: str) -> ListRecord:
        """The group's own block or allow list, created on first use."""
        p, cid, k = checks.platform(platform), checks.ident("chat_id", chat_id), checks.choice("kind", kind, KINDS)
        name = group_list_name(p, cid, k)
        now = self._db.now()
        async with self._db.write() as c:
            await ensure_group(c, p, cid, now)
            await c.execute(
                "INSERT INTO lists (name, kind, label, action, scope, platform, chat_id, created_at)"
                " VALUES (%s, %s, 'local', 'delete', 'group', %s, %s, %s) ON CONFLICT (name) DO NOTHING",
                (name, k, p, cid, now),
            )
            row = await fetchone(c, "SELECT * FROM lists WHERE name = %s", (name,))
        assert row is not None
        return rows.list_(row)

    async def get_list(self, list_id: int) -> ListRecord | None:
        lid = checks.record_id("list_id", list_id)
        async with self._db.read() as c:
            row = await fetchone(c, "SELECT * FROM lists WHERE id = %s", (lid,))
        return None if row is None else rows.list_(row)

    async def list_by_name(self, name: str) -> ListRecord | None:
        async with self._db.read() as c:
            row = await fetchone(c, "SELECT * FROM lists WHERE name = %s", (name,))
        return None if row is None else rows.list_(row)

    async def all_lists(self) -> list[ListRecord]:
        async with self._db.read() as c:
            found = await fetchall(c, "SELECT * FROM lists ORDER BY id")
        return [rows.list_(r) for r in found]

    async def delete_list(self, list_id: int) -> bool:
        """Removes the list with its entries and follows; True if it existed."""
        lid = checks.record_id("list_id", list_id)
        async with self._db.write() as c:
            return await rowcount(c, "DELETE FROM lists WHERE id = %s", (lid,)) == 1

    async def add_entry(
        self,
        list_id: int,
        *,
        pdq: str | None = None,
        pdq_quality: int | None = None,
        phash: str | None = None,
        sha256: str | None = None,
        added_by: str | int | None = None,
        source_platform: str | None = None,
        source_chat: str | int | None = None,
        note: str | None = None,
    ) -> EntryRecord:
        """Adds hashes to a list. The same image (same SHA-256, or same PDQ) added again returns the first entry."""
        lid = checks.record_id("list_id", list_id)
        values = (
            checks.hex_hash("pdq", pdq, 64),
            checks.quality(pdq_quality),
            checks.hex_hash("phash", phash, None),
            checks.hex_hash("sha256", sha256, 64),
        )
        if values[0] is None and values[2] is None and values[3] is None:
            raise BadStoreValue("hashes", None, "at least one of pdq, phash or sha256")
        extra = (
            checks.optional_ident("added_by", added_by),
            None if source_platform is None else checks.platform(source_platform),
            checks.optional_ident("source_chat", source_chat),
            checks.text("note", note, 500),
        )
        async with self._db.write() as c:
            # the list's row lock makes two adds of the same image to one list wait for each other,
            # so the second finds the first (SQLite gets this from its single writer)
            if await fetchone(c, "SELECT 1 AS x FROM lists WHERE id = %s FOR NO KEY UPDATE", (lid,)) is None:
                raise UnknownRecord("list", lid)
            row = await self._same_entry(c, lid, values[0], values[3])
            if row is None:
                row = await fetchone(
                    c,
                    "INSERT INTO entries (list_id, pdq, pdq_quality, phash, sha256, added_by, added_at,"
                    " source_platform, source_chat, note) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                    f" RETURNING {_E}",
                    (lid, *values, extra[0], self._db.now(), *extra[1:]),
                )
        assert row is not None
        return rows.entry(row)

    @staticmethod
    async def _same_entry(c: Any, list_id: int, pdq: str | None, sha256: str | None) -> dict[str, Any] | None:
        if sha256 is not None:
            row = await fetchone(
                c, f"SELECT {_E} FROM entries WHERE sha256 = %s AND list_id = %s ORDER BY id LIMIT 1", (sha256, list_id)
            )
            if row is not None:
                return row
        if pdq is not None:
            return await fetchone(
                c, f"SELECT {_E} FROM entries WHERE list_id = %s AND pdq = %s ORDER BY id LIMIT 1", (list_id, pdq)
            )
        return None

    async def get_entry(self, entry_id: int) -> EntryRecord | None:
        eid = checks.record_id("entry_id", entry_id)
        async with self._db.read() as c:
            row = await fetchone(c, f"SELECT {_E} FROM entries WHERE id = %s", (eid,))
        return None if row is None else rows.entry(row)

    async def remove_entry(self, entry_id: int) -> bool:
        eid = checks.record_id("entry_id", entry_id)
        async with self._db.write() as c:
            return await rowcount(c, "DELETE FROM entries WHERE id = %s", (eid,)) == 1

    async def entries(self, list_id: int) -> list[EntryRecord]:
        lid = checks.record_id("list_id", list_id)
        async with self._db.read() as c:
            found = await fetchall(c, f"SELECT {_E} FROM entries WHERE list_id = %s ORDER BY id", (lid,))
        return [rows.entry(r) for r in found]

    async def iter_all_entries(self, chunk_size: int = ENTRY_CHUNK) -> AsyncIterator[EntryRecord]:
        """Every entry of every list, by id, fetched in chunks so other work can run in between."""
        size = checks.record_id("chunk_size", chunk_size)
        after = 0
        while True:
            async with self._db.read() as c:
                found = await fetchall(c, f"SELECT {_E} FROM entries WHERE id > %s ORDER BY id LIMIT %s", (after, size))
            for r in found:
                yield rows.entry(r)
            if len(found) < size:
                return
            after = found[-1]["id"]

    async def lists_for_group(self, platform: str, chat_id: str | int) -> list[ListRecord]:
        """The group's own lists and the instance lists it follows; never another group's list."""
        key = {"p": checks.platform(platform), "c": checks.ident("chat_id", chat_id)}
        async with self._db.read() as c:
            found = await fetchall(
                c,
                "SELECT * FROM lists WHERE scope = 'group' AND platform = %(p)s AND chat_id = %(c)s"
                " UNION SELECT l.* FROM lists l JOIN follows f ON f.list_id = l.id"
                "  WHERE f.platform = %(p)s AND f.chat_id = %(c)s AND l.scope = 'instance'"
                " ORDER BY id",
                key,
            )
        return [rows.list_(r) for r in found]

    async def follow(self, platform: str, chat_id: str | int, list_id: int) -> bool:
        """The group starts using an instance list; True if it did not follow it before."""
        p, cid, lid = checks.platform(platform), checks.ident("chat_id", chat_id), checks.record_id("list_id", list_id)
        now = self._db.now()
        async with self._db.write() as c:
            row = await fetchone(c, "SELECT scope FROM lists WHERE id = %s", (lid,))
            if row is None:
                raise UnknownRecord("list", lid)
            if row["scope"] != "instance":
                raise BadStoreValue("list_id", lid, "an instance list (a group's own list cannot be followed)")
            await ensure_group(c, p, cid, now)
            return (
                await rowcount(
                    c,
                    "INSERT INTO follows (platform, chat_id, list_id, followed_at) VALUES (%s, %s, %s, %s)"
                    " ON CONFLICT DO NOTHING",
                    (p, cid, lid, now),
                )
                == 1
            )

    async def unfollow(self, platform: str, chat_id: str | int, list_id: int) -> bool:
        key = (checks.platform(platform), checks.ident("chat_id", chat_id), checks.record_id("list_id", list_id))
        async with self._db.write() as c:
            return (
                await rowcount(c, "DELETE FROM follows WHERE platform = %s AND chat_id = %s AND list_id = %s", key) == 1
            )

    async def list_sizes(self) -> Mapping[int, int]:
        """Entries per list id, 0 for empty lists."""
        async with self._db.read() as c:
            found = await fetchall(
                c,
                "SELECT l.id, (SELECT count(*) FROM entries e WHERE e.list_id = l.id) AS n FROM lists l ORDER BY l.id",
            )
        return {r["id"]: r["n"] for r in found}
