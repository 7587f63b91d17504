-- Twin of bot/store/migrations/0012_mutes.sql: Matrix timed mutes, recorded by any process of a
-- cluster and lifted by the one that reads the platforms. Ids and times only.
-- Runs inside one transaction opened by bot/store/postgres/db.py: no BEGIN/COMMIT here.
CREATE TABLE mutes (
    room_id text NOT NULL CHECK (length(room_id) BETWEEN 1 AND 255),
    user_id text NOT NULL CHECK (length(user_id) BETWEEN 1 AND 255),
    level bigint NOT NULL CHECK (level BETWEEN -9007199254740991 AND 9007199254740991),
    previous bigint CHECK (previous BETWEEN -9007199254740991 AND 9007199254740991),
    until timestamptz NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX mutes_by_until ON mutes (until);
