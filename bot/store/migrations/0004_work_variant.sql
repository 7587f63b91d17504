-- A work item is one version of one picture of a message: "variant" (text, "" for the main
-- file as first posted) replaces the integer revision, which was an edit's timestamp in whole
-- seconds (two edits in one second shared it, and the second was never checked).
-- Runs inside one transaction opened by bot/store/db.py: no BEGIN/COMMIT here.
CREATE TABLE work_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    platform TEXT NOT NULL CHECK (platform IN ('telegram', 'matrix')),
    chat_id TEXT NOT NULL CHECK (length(chat_id) BETWEEN 1 AND 255),
    message_id TEXT NOT NULL CHECK (length(message_id) BETWEEN 1 AND 255),
    variant TEXT NOT NULL DEFAULT '' CHECK (length(variant) <= 200),
    payload TEXT NOT NULL CHECK (length(payload) <= 8192 AND json_valid(payload)),
    enqueued_at TEXT NOT NULL CHECK (length(enqueued_at) <= 40),
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT CHECK (length(last_error) <= 2000),
    last_attempt_at TEXT CHECK (length(last_attempt_at) <= 40),
    finished_at TEXT CHECK (length(finished_at) <= 40),
    UNIQUE (platform, chat_id, message_id, variant)
) STRICT;
INSERT INTO work_new (id, platform, chat_id, message_id, variant, payload, enqueued_at, attempts, last_error,
                      last_attempt_at, finished_at)
    SELECT id, platform, chat_id, message_id, CASE revision WHEN 0 THEN '' ELSE 'rev:' || revision END, payload,
           enqueued_at, attempts, last_error, last_attempt_at, finished_at
    FROM work;
DROP TABLE work;
ALTER TABLE work_new RENAME TO work;
CREATE INDEX work_pending ON work (id) WHERE finished_at IS NULL;
CREATE INDEX work_finished ON work (finished_at) WHERE finished_at IS NOT NULL;
