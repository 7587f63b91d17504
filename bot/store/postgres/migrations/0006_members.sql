-- Twin of bot/store/migrations/0009_members.sql: when each member joined a group, and which
-- profile photo of theirs was last checked there. Ids and times only, never a picture.
-- Runs inside one transaction opened by bot/store/postgres/db.py: no BEGIN/COMMIT here.
CREATE TABLE members (
    platform text NOT NULL CHECK (platform IN ('telegram', 'matrix')),
    chat_id text NOT NULL CHECK (length(chat_id) BETWEEN 1 AND 255),
    user_id text NOT NULL CHECK (length(user_id) BETWEEN 1 AND 255),
    joined_at timestamptz NOT NULL,
    avatar text NOT NULL DEFAULT '' CHECK (length(avatar) <= 255),
    avatar_hit boolean NOT NULL DEFAULT false,
    seen_at timestamptz NOT NULL,
    PRIMARY KEY (platform, chat_id, user_id)
);
CREATE INDEX members_seen ON members (seen_at);
CREATE INDEX members_user ON members (platform, user_id);
