-- A NOTIFY on channel vigil_changes (payload: the log's kind) in the transaction that logs a
-- change: PostgreSQL delivers it after the commit, once per transaction however many rows it
-- logged (equal notices are folded), so a listening process catches up at once
-- (bot/index_versions.py); the followers' polls stay as the fallback. Same bodies as in 0001 and
-- 0003 otherwise. Runs inside one transaction opened by bot/store/postgres/db.py: no BEGIN/COMMIT.
CREATE OR REPLACE FUNCTION vigil_log_list_change(op text, list_id bigint, entry_id bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7367447965300001);
    INSERT INTO list_changes (op, list_id, entry_id) VALUES (op, list_id, entry_id);
    PERFORM pg_notify('vigil_changes', 'lists');
END $$;

CREATE OR REPLACE FUNCTION vigil_log_protected_change(op text, owner_id bigint, photo_id bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7367447965300002);
    INSERT INTO protected_changes (op, owner_id, photo_id) VALUES (op, owner_id, photo_id);
    PERFORM pg_notify('vigil_changes', 'protected');
END $$;
