-- Matrix timed mutes (Matrix has none of its own): Vigil lowered ``user_id``'s power level in
-- ``room_id`` to ``level`` until ``until`` and restores ``previous`` then (NULL: the room's default).
-- In the store, not a file beside the device, so any process of a cluster records a mute and the
-- one that reads the platforms lifts it (bot/platforms/matrix_state.py). Ids and times only.
-- Runs inside one transaction opened by bot/store/db.py: no BEGIN/COMMIT here.
CREATE TABLE mutes (
    room_id TEXT NOT NULL CHECK (length(room_id) BETWEEN 1 AND 255),
    user_id TEXT NOT NULL CHECK (length(user_id) BETWEEN 1 AND 255),
    level INTEGER NOT NULL CHECK (level BETWEEN -9007199254740991 AND 9007199254740991),
    previous INTEGER CHECK (previous BETWEEN -9007199254740991 AND 9007199254740991),
    until TEXT NOT NULL CHECK (length(until) <= 40),
    PRIMARY KEY (room_id, user_id)
) STRICT;
CREATE INDEX mutes_by_until ON mutes (until);
