"""Named hash lists, their entries, and which instance lists a group follows."""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import Any

import aiosqlite

from bot.errors import BadStoreValue, UnknownRecord
from bot.store import checks
from bot.store.db import Database, fetch_all, found
from bot.store.groups import ensure_group
from bot.store.records import EntryFeatures, EntryRecord, ImportCounts, ListRecord, freeze

KINDS = ("block", "allow")
ACTIONS = ("delete", "review")
SCOPES = ("group", "instance")
ENTRY_CHUNK = 5000  # rows per query when streaming every entry at start-up
ID_CHUNK = 500  # ids per IN (...) query, well under SQLite's variable limit
VIEW_CROPS = ("border", "content", "value")  # the extra views an entry may keep (detectors.matching)
MAX_VIEWS = 4
BULK_CHUNK = 2000  # rows per write transaction of a bulk import: the bot's writes wait well under a second
MAX_FINGERPRINT = 262144  # characters of base64: the schema's bound

_ENTRY_COLUMNS = "id, list_id, pdq, pdq_quality, phash, sha256, added_by, added_at, source_platform, source_chat, note"


def group_list_name(platform: str, chat_id: str, kind: str) -> str:
    return f"group:{platform}:{chat_id}:{kind}"


def _list(row: sqlite3.Row) -> ListRecord:
    return ListRecord(
        id=row["id"],
        name=row["name"],
        label=row["label"],
        kind=row["kind"],
        action=row["action"],
        scope=row["scope"],
        platform=row["platform"],
        chat_id=row["chat_id"],
        created_at=row["created_at"],
    )


def _entry(row: sqlite3.Row) -> EntryRecord:
    return EntryRecord(*row)  # columns in _ENTRY_COLUMNS order, the dataclass's field order


def _features(row: sqlite3.Row) -> EntryFeatures:
    fp = row["fingerprint"]
    return EntryFeatures(
        entry_id=row["entry_id"],
        views=tuple(freeze(v) for v in json.loads(row["views"])),
        fingerprint=None if fp is None else base64.b64decode(fp),
        added_at=row["added_at"],
    )


def _check_views(views: object) -> str:
    """The trimmed views of an entry's image as JSON text; each {"crop", "pdq", "quality", "phash"}."""
    if isinstance(views, (str, bytes)) or not isinstance(views, Sequence) or len(views) > MAX_VIEWS:
        raise BadStoreValue("views", views, f"a list of at most {MAX_VIEWS} views")
    out = []
    for v in views:
        if not isinstance(v, Mapping) or set(v) - {"crop", "pdq", "quality", "phash"}:
            raise BadStoreValue("views", v, "a mapping with the keys crop, pdq, quality and phash")
        view = {
            "crop": checks.choice("crop", v.get("crop"), VIEW_CROPS),
            "pdq": checks.hex_hash("pdq", v.get("pdq"), 64),
            "quality": checks.quality(v.get("quality")),
            "phash": checks.hex_hash("phash", v.get("phash"), None),
        }
        if view["pdq"] is None and view["phash"] is None:
            raise BadStoreValue("views", v, "a view with a pdq or a phash")
        out.append(view)
    return json.dumps(out, separators=(",", ":"))


def _check_fingerprint(fingerprint: object) -> str | None:
    if fingerprint is None:
        return None
    if not isinstance(fingerprint, (bytes, bytearray, memoryview)):
        raise BadStoreValue("fingerprint", type(fingerprint).__name__, "bytes (Fingerprint.to_bytes()) or None")
    text = base64.b64encode(bytes(fingerprint)).decode("ascii")
    if not 16 <= len(text) <= MAX_FINGERPRINT:
        raise BadStoreValue(
            "fingerprint",
            f"<{len(fingerprint)} bytes>",
            f"12 to {MAX_FINGERPRINT * 3 // 4} bytes (keep fewer keypoints)",
        )
    return text


def _chunks(ids: Iterable[int], size: int = ID_CHUNK) -> Iterable[list[int]]:
    batch: list[int] = []
    for i in ids:
        batch.append(checks.record_id("entry_id", i))
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class ListMatchingMixin:
    """Entry features, bulk imports and the list change log (migration 0002)."""

    _db: Database

    async def set_entry_features(
        self, entry_id: int, *, views: Sequence[Mapping[str, Any]] = (), fingerprint: bytes | None = None
    ) -> EntryFeatures:
        """Stores (or replaces) the trimmed views and local fingerprint of an entry's image."""
        eid = checks.record_id("entry_id", entry_id)
        values = (_check_views(views), _check_fingerprint(fingerprint))
        async with self._db.write() as c:
            if await (await c.execute("SELECT 1 FROM entries WHERE id = ?", (eid,))).fetchone() is None:
                raise UnknownRecord("entry", eid)
            await c.execute(
                "INSERT INTO entry_features (entry_id, views, fingerprint, added_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (entry_id) DO UPDATE SET views = excluded.views, fingerprint = excluded.fingerprint",
                (eid, *values, self._db.now()),
            )
            row = await (await c.execute("SELECT * FROM entry_features WHERE entry_id = ?", (eid,))).fetchone()
        return _features(found(row))

    async def entry_features(self, entry_ids: Iterable[int]) -> dict[int, EntryFeatures]:
        """The features of those entries that have them, by entry id."""
        out: dict[int, EntryFeatures] = {}
        for batch in _chunks(entry_ids):
            async with self._db.read() as c:
                rows = await fetch_all(
                    c, f"SELECT * FROM entry_features WHERE entry_id IN ({','.join('?' * len(batch))})", batch
                )
            out.update((r["entry_id"], _features(r)) for r in rows)
        return out

    async def entries_by_id(self, entry_ids: Iterable[int]) -> dict[int, EntryRecord]:
        """The entries that still exist among ``entry_ids``, by id."""
        out: dict[int, EntryRecord] = {}
        for batch in _chunks(entry_ids):
            async with self._db.read() as c:
                rows = await fetch_all(
                    c, f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE id IN ({','.join('?' * len(batch))})", batch
                )
            out.update((r[0], _entry(r)) for r in rows)
        return out

    async def iter_all_features(self, chunk_size: int = ENTRY_CHUNK) -> AsyncIterator[EntryFeatures]:
        """Every entry's features, by entry id, in chunks (start-up loads them with the entries)."""
        size = checks.record_id("chunk_size", chunk_size)
        after = 0
        while True:
            async with self._db.read() as c:
                rows = await fetch_all(
                    c, "SELECT * FROM entry_features WHERE entry_id > ? ORDER BY entry_id LIMIT ?", (after, size)
                )
            for r in rows:
                yield _features(r)
            if len(rows) < size:
                return
            after = rows[-1]["entry_id"]

    async def add_entries_bulk(
        self,
        list_id: int,
        hashes: Sequence[Mapping[str, Any]],
        *,
        added_by: str | int | None = None,
        note: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> ImportCounts:
        """Adds many entries: all of them or, on any error, none.

        Each item has any of pdq, pdq_quality, phash, sha256 (and optionally its own note);
        items whose SHA-256 or PDQ is already in the list (or earlier in ``hashes``) are
        counted as duplicates and skipped, as ``add_entry`` does. Every item is checked
        before anything is written. The rows are then written in transactions of
        ``BULK_CHUNK``, so the running bot's own writes never wait long; if one fails, the
        rows already written by this call are deleted again. (A process killed midway
        leaves part of the import: running it again adds the rest, the duplicates being
        skipped.) ``progress`` is called with the number of items written so far.
        """
        lid = checks.record_id("list_id", list_id)
        by = checks.optional_ident("added_by", added_by)
        default_note = checks.text("note", note, 500)
        rows = []
        for i, h in enumerate(hashes):
            if not isinstance(h, Mapping):
                raise BadStoreValue(f"hashes[{i}]", h, "a mapping of pdq, pdq_quality, phash, sha256, note")
            row = (
                checks.hex_hash("pdq", h.get("pdq"), 64),
                checks.quality(h.get("pdq_quality")),
                checks.hex_hash("phash", h.get("phash"), None),
                checks.hex_hash("sha256", h.get("sha256"), 64),
                checks.text("note", h.get("note", default_note), 500),
            )
            if row[0] is None and row[2] is None and row[3] is None:
                raise BadStoreValue(f"hashes[{i}]", h, "at least one of pdq, phash or sha256")
            rows.append(row)
        stamp = self._db.now()  # marks this import's rows, to take them back on a failure
        async with self._db.read() as c:
            if await (await c.execute("SELECT 1 FROM lists WHERE id = ?", (lid,))).fetchone() is None:
                raise UnknownRecord("list", lid)
            known = await c.execute_fetchall("SELECT pdq, sha256 FROM entries WHERE list_id = ?", (lid,))
            first = found(await (await c.execute("SELECT coalesce(max(id), 0) FROM entries")).fetchone())[0]
        pdqs = {r[0] for r in known if r[0] is not None}
        shas = {r[1] for r in known if r[1] is not None}
        del known
        fresh = []
        for pdq, quality, phash, sha, text in rows:
            if (sha is not None and sha in shas) or (pdq is not None and pdq in pdqs):
                continue
            pdqs.add(pdq)
            shas.add(sha)
            fresh.append((lid, pdq, quality, phash, sha, by, stamp, text))
        try:
            for start in range(0, len(fresh), BULK_CHUNK):
                async with self._db.write() as c:
                    await c.executemany(
                        "INSERT INTO entries (list_id, pdq, pdq_quality, phash, sha256, added_by, added_at, note)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        fresh[start : start + BULK_CHUNK],
                    )
                if progress is not None:
                    progress(min(len(fresh), start + BULK_CHUNK))
        except BaseException:
            async with self._db.write() as c:
                await c.execute(
                    "DELETE FROM entries WHERE list_id = ? AND added_at = ? AND id > ?", (lid, stamp, first)
                )
            raise
        return ImportCounts(added=len(fresh), duplicates=len(rows) - len(fresh))

    async def followers(self) -> Mapping[int, tuple[tuple[str, str], ...]]:
        """For each followed instance list, the (platform, chat_id) of the groups that follow it."""
        async with self._db.read() as c:
            rows = await fetch_all(
                c, "SELECT list_id, platform, chat_id FROM follows ORDER BY list_id, platform, chat_id"
            )
        out: dict[int, list[tuple[str, str]]] = {}
        for r in rows:
            out.setdefault(r[0], []).append((r[1], r[2]))
        return {k: tuple(v) for k, v in out.items()}


class ListsMixin(ListMatchingMixin):
    _db: Database

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
        if scope == "group":
            p, cid = checks.platform(platform), checks.ident("chat_id", chat_id)
        elif platform is not None or chat_id is not None:
            raise BadStoreValue("platform", platform, "None for an instance list (it belongs to no group)")
        else:
            p = cid = None  # type: ignore[assignment]
        now = self._db.now()
        async with self._db.write() as c:
            if p is not None:
                await ensure_group(c, p, cid, now)  # type: ignore[arg-type]
            try:
                cur = await c.execute(
                    "INSERT INTO lists (name, kind, label, action, scope, platform, chat_id, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (n, *values, p, cid, now),
                )
            except sqlite3.IntegrityError:
                raise BadStoreValue("name", name, "a name no other list has") from None
            row = await (await c.execute("SELECT * FROM lists WHERE id = ?", (cur.lastrowid,))).fetchone()
        return _list(found(row))

    async def group_list(self, platform: str, chat_id: str | int, kind: str) -> ListRecord:
        """The group's own block or allow list, created on first use."""
        p, cid, k = checks.platform(platform), checks.ident("chat_id", chat_id), checks.choice("kind", kind, KINDS)
        name = group_list_name(p, cid, k)
        now = self._db.now()
        async with self._db.write() as c:
            await ensure_group(c, p, cid, now)
            await c.execute(
                "INSERT INTO lists (name, kind, label, action, scope, platform, chat_id, created_at)"
                " VALUES (?, ?, 'local', 'delete', 'group', ?, ?, ?) ON CONFLICT (name) DO NOTHING",
                (name, k, p, cid, now),
            )
            row = await (await c.execute("SELECT * FROM lists WHERE name = ?", (name,))).fetchone()
        return _list(found(row))

    async def get_list(self, list_id: int) -> ListRecord | None:
        lid = checks.record_id("list_id", list_id)
        async with self._db.read() as c:
            row = await (await c.execute("SELECT * FROM lists WHERE id = ?", (lid,))).fetchone()
        return None if row is None else _list(row)

    async def list_by_name(self, name: str) -> ListRecord | None:
        async with self._db.read() as c:
            row = await (await c.execute("SELECT * FROM lists WHERE name = ?", (name,))).fetchone()
        return None if row is None else _list(row)

    async def all_lists(self) -> list[ListRecord]:
        async with self._db.read() as c:
            rows = await fetch_all(c, "SELECT * FROM lists ORDER BY id")
        return [_list(r) for r in rows]

    async def delete_list(self, list_id: int) -> bool:
        """Removes the list with its entries and follows; True if it existed."""
        lid = checks.record_id("list_id", list_id)
        async with self._db.write() as c:
            cur = await c.execute("DELETE FROM lists WHERE id = ?", (lid,))
            return cur.rowcount == 1

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
            if await (await c.execute("SELECT 1 FROM lists WHERE id = ?", (lid,))).fetchone() is None:
                raise UnknownRecord("list", lid)
            row = await self._same_entry(c, lid, values[0], values[3])
            if row is None:
                cur = await c.execute(
                    "INSERT INTO entries (list_id, pdq, pdq_quality, phash, sha256, added_by, added_at,"
                    " source_platform, source_chat, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (lid, *values, extra[0], self._db.now(), *extra[1:]),
                )
                row = await (
                    await c.execute(f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE id = ?", (cur.lastrowid,))
                ).fetchone()
        return _entry(found(row))

    @staticmethod
    async def _same_entry(
        c: aiosqlite.Connection, list_id: int, pdq: str | None, sha256: str | None
    ) -> sqlite3.Row | None:
        if sha256 is not None:
            row = await (
                await c.execute(
                    f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE sha256 = ? AND list_id = ?", (sha256, list_id)
                )
            ).fetchone()
            if row is not None:
                return row
        if pdq is not None:
            return await (
                await c.execute(f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE list_id = ? AND pdq = ?", (list_id, pdq))
            ).fetchone()
        return None

    async def get_entry(self, entry_id: int) -> EntryRecord | None:
        eid = checks.record_id("entry_id", entry_id)
        async with self._db.read() as c:
            row = await (await c.execute(f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE id = ?", (eid,))).fetchone()
        return None if row is None else _entry(row)

    async def remove_entry(self, entry_id: int) -> bool:
        eid = checks.record_id("entry_id", entry_id)
        async with self._db.write() as c:
            cur = await c.execute("DELETE FROM entries WHERE id = ?", (eid,))
            return cur.rowcount == 1

    async def entries(self, list_id: int) -> list[EntryRecord]:
        lid = checks.record_id("list_id", list_id)
        async with self._db.read() as c:
            rows = await fetch_all(c, f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE list_id = ? ORDER BY id", (lid,))
        return [_entry(r) for r in rows]

    async def iter_all_entries(self, chunk_size: int = ENTRY_CHUNK) -> AsyncIterator[EntryRecord]:
        """Every entry of every list, by id, fetched in chunks so other work can run in between."""
        size = checks.record_id("chunk_size", chunk_size)
        after = 0
        while True:
            async with self._db.read() as c:
                rows = await fetch_all(
                    c, f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE id > ? ORDER BY id LIMIT ?", (after, size)
                )
            for r in rows:
                yield _entry(r)
            if len(rows) < size:
                return
            after = rows[-1][0]

    async def lists_for_group(self, platform: str, chat_id: str | int) -> list[ListRecord]:
        """The group's own lists and the instance lists it follows; never another group's list."""
        key = (checks.platform(platform), checks.ident("chat_id", chat_id))
        async with self._db.read() as c:
            rows = await fetch_all(
                c,
                "SELECT * FROM lists WHERE scope = 'group' AND platform = ?1 AND chat_id = ?2"
                " UNION SELECT l.* FROM lists l JOIN follows f ON f.list_id = l.id"
                "  WHERE f.platform = ?1 AND f.chat_id = ?2 AND l.scope = 'instance'"
                " ORDER BY id",
                key,
            )
        return [_list(r) for r in rows]

    async def follow(self, platform: str, chat_id: str | int, list_id: int) -> bool:
        """The group starts using an instance list; True if it did not follow it before."""
        p, cid, lid = checks.platform(platform), checks.ident("chat_id", chat_id), checks.record_id("list_id", list_id)
        now = self._db.now()
        async with self._db.write() as c:
            row = await (await c.execute("SELECT scope FROM lists WHERE id = ?", (lid,))).fetchone()
            if row is None:
                raise UnknownRecord("list", lid)
            if row["scope"] != "instance":
                raise BadStoreValue("list_id", lid, "an instance list (a group's own list cannot be followed)")
            await ensure_group(c, p, cid, now)
            cur = await c.execute(
                "INSERT INTO follows (platform, chat_id, list_id, followed_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                (p, cid, lid, now),
            )
            return cur.rowcount == 1

    async def unfollow(self, platform: str, chat_id: str | int, list_id: int) -> bool:
        key = (checks.platform(platform), checks.ident("chat_id", chat_id), checks.record_id("list_id", list_id))
        async with self._db.write() as c:
            cur = await c.execute("DELETE FROM follows WHERE platform = ? AND chat_id = ? AND list_id = ?", key)
            return cur.rowcount == 1

    async def list_sizes(self) -> Mapping[int, int]:
        """Entries per list id, 0 for empty lists."""
        async with self._db.read() as c:
            rows = await fetch_all(
                c, "SELECT l.id, (SELECT count(*) FROM entries e WHERE e.list_id = l.id) FROM lists l ORDER BY l.id"
            )
        return {r[0]: r[1] for r in rows}
