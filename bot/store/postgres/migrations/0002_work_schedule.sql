-- Twin of bot/store/migrations/0005_work_schedule.sql: the inbox is the scheduler's queue
-- (bot/pipeline.py), each chat takes its oldest due item. not_before: a failed item waits until
-- then (retry with backoff); gave_up: the item was finished without a check after too many
-- attempts (the admins were told).
-- taken_by (PostgreSQL only: SQLite has one process): the claim token of the process handling
-- the item (bot/store/postgres/work.py). A token counts only while its process holds the
-- session advisory lock (73674479, token): a process that dies loses it with its
-- connection, and its items can be taken at once. Cleared when the attempt ends.
-- Runs inside one transaction opened by bot/store/postgres/db.py: no BEGIN/COMMIT here.
ALTER TABLE work ADD COLUMN not_before timestamptz;
ALTER TABLE work ADD COLUMN gave_up boolean NOT NULL DEFAULT false;
ALTER TABLE work ADD COLUMN taken_by integer CHECK (taken_by > 0);
CREATE INDEX work_pending_chat ON work (platform, chat_id, id) WHERE finished_at IS NULL;
