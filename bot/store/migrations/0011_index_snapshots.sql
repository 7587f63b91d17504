-- Index snapshots and the processes following the change logs (bot/snapshots.py, bot/follow.py).
-- A snapshot is a built in-memory index as bytes (detectors/index_snapshot.py: ids, hash codes,
-- descriptors; never pixels) covering the change log up to ``seq``; its bytes are split into parts
-- kept as base64 text (no column holds bytes: nothing shaped like an image can be stored), written
-- in the one transaction that adds the row.
-- At most the latest two per kind are kept. Each process records the change it applied last per
-- log, with a heartbeat: the log is pruned only below the oldest change a live process applied.
-- Runs inside one transaction opened by bot/store/db.py: no BEGIN/COMMIT here.
CREATE TABLE index_snapshots (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('lists', 'protected')),
    seq INTEGER NOT NULL CHECK (seq >= 0),
    format INTEGER NOT NULL CHECK (format >= 1),
    size INTEGER NOT NULL CHECK (size >= 0),
    parts INTEGER NOT NULL CHECK (parts >= 0),
    created_at TEXT NOT NULL CHECK (length(created_at) <= 40)
) STRICT;
CREATE INDEX index_snapshots_by_kind ON index_snapshots (kind, seq);

CREATE TABLE index_snapshot_parts (
    snapshot_id INTEGER NOT NULL REFERENCES index_snapshots (id) ON DELETE CASCADE,
    part INTEGER NOT NULL CHECK (part >= 0),
    -- a length bound only: a GLOB over 32 MiB per part made writing a snapshot 15x slower
    data TEXT NOT NULL CHECK (length(data) BETWEEN 4 AND 33554432),
    PRIMARY KEY (snapshot_id, part)
) STRICT;

CREATE TABLE change_followers (
    process TEXT NOT NULL CHECK (length(process) BETWEEN 1 AND 128),
    kind TEXT NOT NULL CHECK (kind IN ('lists', 'protected')),
    role TEXT NOT NULL CHECK (length(role) BETWEEN 1 AND 32),
    seq INTEGER NOT NULL CHECK (seq >= 0),
    seen_at TEXT NOT NULL CHECK (length(seen_at) <= 40),
    PRIMARY KEY (process, kind)
) STRICT;
