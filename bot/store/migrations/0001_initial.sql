-- Vigil's first schema.
--
-- Every table is STRICT and every column is INTEGER or TEXT with a length bound: the
-- database holds ids, hashes, settings and short texts, never image bytes or message text.
-- Timestamps are ISO-8601 UTC text with microseconds ("2024-05-01T10:00:00.000000+00:00"),
-- so they sort as text. Platform ids are TEXT (Matrix ids are strings).
-- Runs inside one transaction opened by bot/store/db.py: no BEGIN/COMMIT here.

CREATE TABLE groups (
    platform TEXT NOT NULL CHECK (platform IN ('telegram', 'matrix')),
    chat_id TEXT NOT NULL CHECK (length(chat_id) BETWEEN 1 AND 255),
    title TEXT CHECK (length(title) <= 256),
    settings TEXT NOT NULL DEFAULT '{}'
        CHECK (length(settings) <= 8192 AND json_valid(settings) AND json_type(settings) = 'object'),
    added_by TEXT CHECK (length(added_by) <= 255),
    bot_rights TEXT CHECK (bot_rights IS NULL OR (length(bot_rights) <= 2048 AND json_valid(bot_rights))),
    owner_hint_sent_at TEXT CHECK (length(owner_hint_sent_at) <= 40),
    created_at TEXT NOT NULL CHECK (length(created_at) <= 40),
    updated_at TEXT NOT NULL CHECK (length(updated_at) <= 40),
    PRIMARY KEY (platform, chat_id)
) STRICT;

-- Users who can receive private messages (admins who pressed Start).
CREATE TABLE contacts (
    platform TEXT NOT NULL CHECK (platform IN ('telegram', 'matrix')),
    user_id TEXT NOT NULL CHECK (length(user_id) BETWEEN 1 AND 255),
    can_dm INTEGER NOT NULL DEFAULT 0 CHECK (can_dm IN (0, 1)),
    language TEXT CHECK (length(language) <= 35),
    dm_room TEXT CHECK (length(dm_room) <= 255),
    display_name TEXT CHECK (length(display_name) <= 256),
    updated_at TEXT NOT NULL CHECK (length(updated_at) <= 40),
    PRIMARY KEY (platform, user_id)
) STRICT;

CREATE TABLE exemptions (
    platform TEXT NOT NULL CHECK (platform IN ('telegram', 'matrix')),
    chat_id TEXT NOT NULL CHECK (length(chat_id) BETWEEN 1 AND 255),
    user_id TEXT NOT NULL CHECK (length(user_id) BETWEEN 1 AND 255),
    added_at TEXT NOT NULL CHECK (length(added_at) <= 40),
    PRIMARY KEY (platform, chat_id, user_id),
    FOREIGN KEY (platform, chat_id) REFERENCES groups (platform, chat_id) ON DELETE CASCADE
) STRICT;

-- Named hash lists. A group's own lists have scope 'group'; 'instance' lists (shared
-- lists such as NCII or deepfake lists) belong to no group and are followed by groups.
-- AUTOINCREMENT: ids are held in memory and in buttons, so a deleted id is never reused.
CREATE TABLE lists (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    label TEXT NOT NULL CHECK (length(label) BETWEEN 1 AND 32 AND NOT label GLOB '*[^a-z0-9_-]*'),
    kind TEXT NOT NULL CHECK (kind IN ('block', 'allow')),
    action TEXT NOT NULL CHECK (action IN ('delete', 'review')),
    scope TEXT NOT NULL CHECK (scope IN ('group', 'instance')),
    platform TEXT CHECK (platform IN ('telegram', 'matrix')),
    chat_id TEXT CHECK (length(chat_id) BETWEEN 1 AND 255),
    created_at TEXT NOT NULL CHECK (length(created_at) <= 40),
    CHECK ((scope = 'group' AND platform IS NOT NULL AND chat_id IS NOT NULL)
        OR (scope = 'instance' AND platform IS NULL AND chat_id IS NULL)),
    FOREIGN KEY (platform, chat_id) REFERENCES groups (platform, chat_id) ON DELETE CASCADE
) STRICT;
CREATE INDEX lists_by_group ON lists (platform, chat_id);

-- Hashes only: lowercase hex, at least one of the three.
CREATE TABLE entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    list_id INTEGER NOT NULL REFERENCES lists (id) ON DELETE CASCADE,
    pdq TEXT CHECK (length(pdq) = 64 AND NOT pdq GLOB '*[^0-9a-f]*'),
    pdq_quality INTEGER CHECK (pdq_quality BETWEEN 0 AND 100),
    phash TEXT CHECK (length(phash) BETWEEN 1 AND 64 AND NOT phash GLOB '*[^0-9a-f]*'),
    sha256 TEXT CHECK (length(sha256) = 64 AND NOT sha256 GLOB '*[^0-9a-f]*'),
    added_by TEXT CHECK (length(added_by) <= 255),
    added_at TEXT NOT NULL CHECK (length(added_at) <= 40),
    source_platform TEXT CHECK (source_platform IN ('telegram', 'matrix')),
    source_chat TEXT CHECK (length(source_chat) <= 255),
    note TEXT CHECK (length(note) <= 500),
    CHECK (pdq IS NOT NULL OR phash IS NOT NULL OR sha256 IS NOT NULL)
) STRICT;
CREATE INDEX entries_by_list ON entries (list_id, pdq);
CREATE INDEX entries_by_sha256 ON entries (sha256) WHERE sha256 IS NOT NULL;
CREATE INDEX entries_by_added_by ON entries (added_by) WHERE added_by IS NOT NULL;

-- A group follows instance lists.
CREATE TABLE follows (
    platform TEXT NOT NULL CHECK (platform IN ('telegram', 'matrix')),
    chat_id TEXT NOT NULL CHECK (length(chat_id) BETWEEN 1 AND 255),
    list_id INTEGER NOT NULL REFERENCES lists (id) ON DELETE CASCADE,
    followed_at TEXT NOT NULL CHECK (length(followed_at) <= 40),
    PRIMARY KEY (platform, chat_id, list_id),
    FOREIGN KEY (platform, chat_id) REFERENCES groups (platform, chat_id) ON DELETE CASCADE
) STRICT;
CREATE INDEX follows_by_list ON follows (list_id);

-- Append-only record of what Vigil saw and did. No group FK: records outlive settings.
CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL CHECK (length(at) <= 40),
    platform TEXT NOT NULL CHECK (platform IN ('telegram', 'matrix')),
    chat_id TEXT NOT NULL CHECK (length(chat_id) BETWEEN 1 AND 255),
    message_id TEXT CHECK (length(message_id) <= 255),
    sender_id TEXT CHECK (length(sender_id) <= 255),
    sender_name TEXT CHECK (length(sender_name) <= 256),
    kind TEXT NOT NULL CHECK (kind IN ('scan', 'action', 'admin_command', 'alert', 'error')),
    label TEXT NOT NULL CHECK (length(label) BETWEEN 1 AND 512),
    findings TEXT NOT NULL DEFAULT '{}' CHECK (length(findings) <= 16384 AND json_valid(findings)),
    hashes TEXT NOT NULL DEFAULT '{}' CHECK (length(hashes) <= 1024 AND json_valid(hashes)),
    decision TEXT CHECK (length(decision) <= 64),
    actions TEXT NOT NULL DEFAULT '{}' CHECK (length(actions) <= 4096 AND json_valid(actions)),
    actor TEXT CHECK (length(actor) <= 255),
    dry_run INTEGER NOT NULL DEFAULT 0 CHECK (dry_run IN (0, 1))
) STRICT;
CREATE INDEX audit_by_group ON audit (platform, chat_id, at);
CREATE INDEX audit_by_at ON audit (at);
CREATE INDEX audit_by_sender ON audit (platform, sender_id) WHERE sender_id IS NOT NULL;
CREATE INDEX audit_by_actor ON audit (platform, actor) WHERE actor IS NOT NULL;

-- Items waiting for an admin decision; decided once.
CREATE TABLE reviews (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    audit_id INTEGER NOT NULL UNIQUE REFERENCES audit (id) ON DELETE CASCADE,
    platform TEXT NOT NULL CHECK (platform IN ('telegram', 'matrix')),
    chat_id TEXT NOT NULL CHECK (length(chat_id) BETWEEN 1 AND 255),
    message_id TEXT NOT NULL CHECK (length(message_id) BETWEEN 1 AND 255),
    state TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'deleted', 'kept')),
    opened_at TEXT NOT NULL CHECK (length(opened_at) <= 40),
    decided_by TEXT CHECK (length(decided_by) <= 255),
    decided_at TEXT CHECK (length(decided_at) <= 40)
) STRICT;

-- Alerts sent: at most one per record and admin.
CREATE TABLE alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    audit_id INTEGER NOT NULL REFERENCES audit (id) ON DELETE CASCADE,
    platform TEXT NOT NULL CHECK (platform IN ('telegram', 'matrix')),
    user_id TEXT NOT NULL CHECK (length(user_id) BETWEEN 1 AND 255),
    message_id TEXT CHECK (length(message_id) <= 255),
    sent_at TEXT NOT NULL CHECK (length(sent_at) <= 40),
    UNIQUE (audit_id, user_id)
) STRICT;
CREATE INDEX alerts_by_user ON alerts (platform, user_id);

-- Durable inbox: a media event stays here until it is fully handled. The payload (ids
-- to re-fetch the media) is cleared when the item is finished; the row is kept so a
-- replayed update is recognised.
CREATE TABLE work (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    platform TEXT NOT NULL CHECK (platform IN ('telegram', 'matrix')),
    chat_id TEXT NOT NULL CHECK (length(chat_id) BETWEEN 1 AND 255),
    message_id TEXT NOT NULL CHECK (length(message_id) BETWEEN 1 AND 255),
    revision INTEGER NOT NULL DEFAULT 0 CHECK (revision >= 0),
    payload TEXT NOT NULL CHECK (length(payload) <= 8192 AND json_valid(payload)),
    enqueued_at TEXT NOT NULL CHECK (length(enqueued_at) <= 40),
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT CHECK (length(last_error) <= 2000),
    last_attempt_at TEXT CHECK (length(last_attempt_at) <= 40),
    finished_at TEXT CHECK (length(finished_at) <= 40),
    UNIQUE (platform, chat_id, message_id, revision)
) STRICT;
CREATE INDEX work_pending ON work (id) WHERE finished_at IS NULL;
CREATE INDEX work_finished ON work (finished_at) WHERE finished_at IS NOT NULL;

-- Platform actions, recorded before they are tried so a replay never repeats one.
CREATE TABLE actions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    platform TEXT NOT NULL CHECK (platform IN ('telegram', 'matrix')),
    chat_id TEXT NOT NULL CHECK (length(chat_id) BETWEEN 1 AND 255),
    message_id TEXT NOT NULL CHECK (length(message_id) BETWEEN 1 AND 255),
    action TEXT NOT NULL CHECK (length(action) BETWEEN 1 AND 32),
    params TEXT NOT NULL DEFAULT '{}' CHECK (length(params) <= 2048 AND json_valid(params)),
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT CHECK (length(last_error) <= 2000),
    created_at TEXT NOT NULL CHECK (length(created_at) <= 40),
    updated_at TEXT NOT NULL CHECK (length(updated_at) <= 40),
    UNIQUE (platform, chat_id, message_id, action)
) STRICT;
CREATE INDEX actions_pending ON actions (id) WHERE state = 'pending';

-- Small named values: Telegram's update offset, Matrix's sync token.
CREATE TABLE state (
    key TEXT PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 200),
    value TEXT NOT NULL CHECK (length(value) <= 4096),
    updated_at TEXT NOT NULL CHECK (length(updated_at) <= 40)
) STRICT;
