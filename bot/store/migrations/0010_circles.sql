-- Circles: an operator's groups (Telegram groups and Matrix rooms alike) that share blocks, and
-- bans when the circle says so (`vigil circle`). A circle holds no entries of its own: its block
-- list is its members' own block lists, each matched in every member group (bot/circles.py).
-- Runs inside one transaction opened by bot/store/db.py: no BEGIN/COMMIT here.
CREATE TABLE circles (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 64 AND NOT name GLOB '*[^A-Za-z0-9_.-]*'),
    shared_bans INTEGER NOT NULL DEFAULT 0 CHECK (shared_bans IN (0, 1)),
    created_at TEXT NOT NULL CHECK (length(created_at) <= 40)
) STRICT;

CREATE TABLE circle_members (
    circle_id INTEGER NOT NULL REFERENCES circles (id) ON DELETE CASCADE,
    platform TEXT NOT NULL CHECK (platform IN ('telegram', 'matrix')),
    chat_id TEXT NOT NULL CHECK (length(chat_id) BETWEEN 1 AND 255),
    added_at TEXT NOT NULL CHECK (length(added_at) <= 40),
    PRIMARY KEY (circle_id, platform, chat_id),
    FOREIGN KEY (platform, chat_id) REFERENCES groups (platform, chat_id) ON DELETE CASCADE
) STRICT;
CREATE INDEX circle_members_by_group ON circle_members (platform, chat_id);
