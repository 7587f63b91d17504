-- The inbox is the scheduler's queue (bot/pipeline.py): each chat takes its oldest due item.
-- not_before: a failed item waits until then (retry with backoff); gave_up: the item was
-- finished without a check after too many attempts (the admins were told).
-- Runs inside one transaction opened by bot/store/db.py: no BEGIN/COMMIT here.
ALTER TABLE work ADD COLUMN not_before TEXT CHECK (length(not_before) <= 40);
ALTER TABLE work ADD COLUMN gave_up INTEGER NOT NULL DEFAULT 0 CHECK (gave_up IN (0, 1));
CREATE INDEX work_pending_chat ON work (platform, chat_id, id) WHERE finished_at IS NULL;
