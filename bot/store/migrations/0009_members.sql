-- When each member joined a group, and which profile photo of theirs Vigil last checked there
-- (bot/door.py): the new members' media hold reads the join time, and a photo already checked
-- in a group (by Telegram's file_unique_id or Matrix's mxc URI) is not downloaded again. Ids and
-- times only, never a picture. Rows go with retention (bot/retention.py) and `vigil purge --user`.
-- Runs inside one transaction opened by bot/store/db.py: no BEGIN/COMMIT here.
CREATE TABLE members (
    platform TEXT NOT NULL CHECK (platform IN ('telegram', 'matrix')),
    chat_id TEXT NOT NULL CHECK (length(chat_id) BETWEEN 1 AND 255),
    user_id TEXT NOT NULL CHECK (length(user_id) BETWEEN 1 AND 255),
    joined_at TEXT NOT NULL CHECK (length(joined_at) <= 40),
    avatar TEXT NOT NULL DEFAULT '' CHECK (length(avatar) <= 255),
    -- 1: that photo was a hit (nudity, a blocked picture, made from a protected photo)
    avatar_hit INTEGER NOT NULL DEFAULT 0 CHECK (avatar_hit IN (0, 1)),
    seen_at TEXT NOT NULL CHECK (length(seen_at) <= 40),
    PRIMARY KEY (platform, chat_id, user_id)
) STRICT;
CREATE INDEX members_seen ON members (seen_at);
CREATE INDEX members_user ON members (platform, user_id);
