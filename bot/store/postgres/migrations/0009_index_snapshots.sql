-- Index snapshots and the processes following the change logs: the PostgreSQL twin of SQLite's
-- 0011 (bot/snapshots.py, bot/follow.py). Never pixels: built index arrays only, in parts of base64
-- text (no column holds bytes). At most the latest
-- two snapshots per kind are kept; the log is pruned only below the oldest change a live process
-- applied. Runs inside one transaction opened by bot/store/postgres/db.py: no BEGIN/COMMIT here.
CREATE TABLE index_snapshots (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('lists', 'protected')),
    seq bigint NOT NULL CHECK (seq >= 0),
    format integer NOT NULL CHECK (format >= 1),
    size bigint NOT NULL CHECK (size >= 0),
    parts integer NOT NULL CHECK (parts >= 0),
    created_at timestamptz NOT NULL
);
CREATE INDEX index_snapshots_by_kind ON index_snapshots (kind, seq);

CREATE TABLE index_snapshot_parts (
    snapshot_id bigint NOT NULL REFERENCES index_snapshots (id) ON DELETE CASCADE,
    part integer NOT NULL CHECK (part >= 0),
    data text NOT NULL CHECK (length(data) BETWEEN 4 AND 33554432),  -- as SQLite's: a length bound only
    PRIMARY KEY (snapshot_id, part)
);
-- out of line, uncompressed: the parts hold descriptors (random-looking bytes), which compression
-- only slows down, on every write and every read
ALTER TABLE index_snapshot_parts ALTER COLUMN data SET STORAGE EXTERNAL;

CREATE TABLE change_followers (
    process text NOT NULL CHECK (length(process) BETWEEN 1 AND 128),
    kind text NOT NULL CHECK (kind IN ('lists', 'protected')),
    role text NOT NULL CHECK (length(role) BETWEEN 1 AND 32),
    seq bigint NOT NULL CHECK (seq >= 0),
    seen_at timestamptz NOT NULL,
    PRIMARY KEY (process, kind)
);
